/*
 * kring_events.bpf.c - the Linux kernel producer of pykring's kernel event
 * records (include/kring/kring_events.h, the structs the Windows driver writes too),
 * written into a BPF ring buffer map that pykring drains like any kring ring.
 *
 * Programs (each attached only when its records are wanted):
 *   kring_fork       tp_btf/sched_process_fork    process_start for a new process
 *                                                 (new threads are ignored)
 *   kring_exec       tp_btf/sched_process_exec    process_start with KRING_D_EXEC;
 *                                                 image_load of the main binary
 *                                                 (KRING_D_MAIN_IMAGE) and of the
 *                                                 program interpreter (ld.so)
 *   kring_exit       tp_btf/sched_process_exit    process_exit once the whole
 *                                                 thread group is gone (group_dead;
 *                                                 kring_exit_live on older kernels)
 *   kring_execve*_ent tp/syscalls/sys_enter_execve(at)  remembers the filename pointer
 *   kring_execve*_ret tp/syscalls/sys_exit_execve(at)   exec_failed when the exec failed
 *                                                 (with process records, where tracefs is there)
 *   kring_mmap_ent   tp/syscalls/sys_enter_mmap   remembers executable file mappings
 *   kring_mmap_ret   tp/syscalls/sys_exit_mmap    image_load when such an mmap succeeded
 *
 * Records:
 *   - Every record takes the next ring-wide sequence number (kring_seq, one
 *     atomic add) before it is written; a record that does not fit is counted
 *     in kring_counts.dropped, so the consumer's sequence gaps equal the drops.
 *     Several CPUs number and commit in their own order: the consumer counts a
 *     late number as filling an earlier gap (PROTOCOL.md 5.6).
 *   - ts_ns is ns since the Unix epoch: a kernel clock plus an offset the loader
 *     measured (kring_bpf_config).
 *   - Variable-length records end after their last string's NUL: process_start
 *     after the parent's path (path, command line, cwd, parent path packed one
 *     after the other), image_load after the path. They are built in a
 *     per-CPU scratch record and copied with bpf_ringbuf_output(), whose length
 *     (unlike bpf_ringbuf_reserve's) need not be a constant. Tracepoint programs
 *     run with preemption off and do not nest on a CPU, so one scratch area per
 *     CPU is enough.
 *   - Paths are canonical: the opened file's dentry walked up to the root of its
 *     mount namespace (through mount points), with bpf_loop. A path longer than
 *     KRING_PATH_MAX - 1 bytes is cut there (KRING_D_PATH_TRUNCATED); one longer
 *     than WALK_AREA - 1 bytes or deeper than WALK_MAX_DEPTH keeps its last part.
 *   - `detail` bits (kring_events.h): process_start from fork has none of
 *     KRING_D_EXEC; its path and command line are the parent's (the child runs
 *     the same program until it execs). From exec: KRING_D_EXEC, creator_pid =
 *     the process itself, creator_tid = the thread that called execve (its id
 *     before exec). Kernel threads have no executable: KRING_D_NO_PATH.
 *     process_exit: KRING_D_NO_START when the process started before the fork
 *     program was attached. image_load: KRING_D_MAIN_IMAGE for the program's
 *     own executable.
 *   - Fields: uid is the real uid; session_id is 0 (Windows only). process_start's
 *     cwd is the process's working directory (fs->pwd) and its parent path the
 *     executable of real_parent, both canonical and read when the record is
 *     written (a fork child's cwd is its parent's until it changes it); cut ones
 *     keep their tail (KRING_D_CWD_TRUNCATED, KRING_D_PARENT_PATH_TRUNCATED).
 *     The Windows token fields are not in these records (the packed tail starts
 *     at their offset). process_exit:
 *     exit_code is the exit status 0..255 or -signal, raw_status the wait status.
 *     image_load: base/size/file_offset describe the executable mapping: for an
 *     mmap its address, length (rounded up to pages) and offset; at exec the
 *     code mapping of the program (at mm->start_code) and of the interpreter
 *     (where the new thread starts).
 *   - Not seen: memory made executable later (mprotect), 32-bit mmap2, files
 *     mapped by the kernel other than at exec.
 */
#include "vmlinux.h"
/* Before bpf_helpers.h, whose offsetof() is no constant expression for the
 * static asserts: kring.h defines it as __builtin_offsetof. */
#define KRING_NO_STDINT         /* vmlinux.h has uint8_t .. uint64_t */
#include <kring/kring_events.h>
#include <kring/kring_bpf.h>

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#define PROT_EXEC 0x4
#define MAP_ANONYMOUS 0x20
#define NAME_MAX 255
#define CLOCK_MONOTONIC 1

/* Path building area: components are written right to left ending at
 * WALK_AREA (a path of up to WALK_AREA - 1 bytes, PATH_MAX with its NUL). */
#define WALK_AREA KRING_PATH_BYTES
#define WALK_MAX_DEPTH 256
/* Room for a packed process_start: the fixed part, then the tail. The tail
 * offsets are masked for the verifier: the command line's to
 * 2 * KRING_PATH_BYTES (it follows the path), cwd's and the parent path's to
 * TAIL_MASK (they follow the command line, up to ARGS_ROOM bytes), and a
 * path of up to KRING_PATH_BYTES may start at the last of those. */
#define ARGS_ROOM KRING_BPF_ARGS_MAX
#define TAIL_MASK (2 * ARGS_ROOM - 1)
#define PS_ROOM (KRING_PROCESS_START_PACKED_MIN_SIZE + TAIL_MASK + 1 + KRING_PATH_BYTES)

/* bpf_ktime_get_tai_ns (Linux 6.1) is newer than some libbpf helper lists. */
static __u64 (*const kring_ktime_get_tai_ns)(void) = (void *)208;

const volatile struct kring_bpf_config kring_cfg SEC(".rodata.kring") = {};

/* Next sequence number (ring-wide). */
__u64 kring_seq = 0;

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);              /* set by the loader */
} kring_events SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kring_bpf_counts);
} kring_counts SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kring_bpf_state);
} kring_state SEC(".maps");

/* The state of a path walk (walk_step, dentry_path). It lives in the scratch
 * record, not on the stack: the verifier tracks stack values exactly, so a
 * position that changes every step would make it explore each of the
 * WALK_MAX_DEPTH iterations of every walk; map memory it reads as unknown. */
struct walk {
    struct dentry *dentry;
    struct vfsmount *vfsmnt;
    struct mount *mnt;
    __u32 pos;              /* the path built so far starts at scratch.path[pos] */
    __u32 done;             /* reached the root */
    __u32 cut;              /* ran out of room or depth: only the last part is kept */
    __u32 pseudo;           /* a file on no path (memfd, anon inode): its name alone */
};

struct scratch {
    union {
        struct kring_process_start ps;
        char ps_room[PS_ROOM];
    };
    struct kring_image_load il;
    struct kring_process_exit_linux pe;
    struct kring_exec_failed ef;
    struct walk w;
    char path[WALK_AREA + NAME_MAX + 1];        /* see WALK_AREA; the slack is for the verifier */
};

/* One scratch record per CPU: an array indexed by CPU number (a per-CPU array
 * value may not exceed 32 KiB). The loader sets max_entries to the number of
 * possible CPUs. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
} kring_scratch SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
    __u32 cpu = bpf_get_smp_processor_id();

    return bpf_map_lookup_elem(&kring_scratch, &cpu);
}

/* An executable file mmap() in flight, by thread (pid_tgid). */
struct mmap_args {
    __u64 len;
    __u64 off;
    __s64 fd;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct mmap_args);
} kring_mmaps SEC(".maps");

/* ---- records ---------------------------------------------------------- */

static __always_inline __u64 now_ns(void)
{
    if (kring_cfg.clock == KRING_BPF_CLOCK_TAI)
        return kring_ktime_get_tai_ns() + (__u64)kring_cfg.clock_offset;
    return bpf_ktime_get_ns() + (__u64)kring_cfg.clock_offset;
}

/* Fill the event header; takes the record's sequence number. */
static __always_inline void header(struct kring_event_header *h, __u16 type, __u16 flags)
{
    h->seq = __sync_fetch_and_add(&kring_seq, 1);
    h->ts_ns = now_ns();
    h->type = type;
    h->flags = flags;
    h->reserved = 0;
}

static __always_inline void count(int ok)
{
    __u32 zero = 0;
    struct kring_bpf_counts *c = bpf_map_lookup_elem(&kring_counts, &zero);

    if (!c)
        return;
    if (ok)
        c->written++;
    else
        c->dropped++;
}

/* ---- batched wakeups (docs/PROTOCOL.md 11.2) ---------------------------
 *
 * With a wake interval (kring_cfg.wake_interval_ns > 0) a record is committed
 * with BPF_RB_NO_WAKEUP, and the consumer is woken for it by one of:
 *   - the high-water mark: a record that leaves kring_cfg.wake_bytes or more
 *     unconsumed is committed with BPF_RB_FORCE_WAKEUP, so a burst wakes the
 *     consumer long before the ring fills;
 *   - the wake timer: after its commit every record makes sure the timer is
 *     armed (kring_wake_armed from 0 to the time, which starts it for one
 *     interval). When it fires it clears kring_wake_armed (xchg) and then,
 *     if any bytes are unconsumed, wakes the consumer;
 *   - a late timer: a record that finds the timer armed for more than twice
 *     the interval is committed with BPF_RB_FORCE_WAKEUP (the timer has not run:
 *     a busy CPU); the same when the timer cannot be started.
 * No lost wakeup: a record R is committed (the kernel's xchg of its header, a
 * full barrier) before its program reads kring_wake_armed. If it reads 0, it
 * arms the timer itself, whose wake comes after R. If it reads a time, the
 * timer that owns that value has not yet cleared it, so its clearing, its look at the
 * unconsumed bytes and its wake all come after R's commit and see R. So a
 * record waits at most one interval from its commit (plus timer and
 * scheduling latency). The consumer sleeps in epoll on the map, which polls
 * ready while bytes are unconsumed: a wake that comes while it is still
 * draining or deciding to sleep is not lost either.
 * Syscall tracepoint programs (tp/) may not use bpf_timer: when they find the
 * timer not armed they wake the consumer at once (a discarded empty record
 * with BPF_RB_FORCE_WAKEUP), which the process records of a burst rarely
 * leave them to do.
 * Without a wake interval every record is committed with flags 0: the kernel
 * wakes the consumer when the record is the first it has not consumed. */

struct wake_timer {
    struct bpf_timer t;
};

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct wake_timer);
} kring_wake SEC(".maps");

/* While the wake timer is armed: when it was armed (ns, bpf_ktime_get_ns(),
 * never 0 in practice: | 1); 0 when not armed. */
__u64 kring_wake_armed = 0;

/* Count a wakeup in kring_counts (`field`: wakes_hwm, wakes_timer, wakes_now).
 * Atomic: the timer callback runs in a softirq that may interrupt a program
 * on the same CPU. */
#define count_wake(field)                                                       \
    do {                                                                        \
        __u32 zero_ = 0;                                                        \
        struct kring_bpf_counts *c_ = bpf_map_lookup_elem(&kring_counts, &zero_); \
        if (c_)                                                                 \
            __sync_fetch_and_add(&c_->field, 1);                                \
    } while (0)

/* Wake the consumer now without a record: reserve an empty one and discard
 * it with BPF_RB_FORCE_WAKEUP (the consumer skips discarded records). */
static __always_inline void wake_now(void)
{
    void *p = bpf_ringbuf_reserve(&kring_events, 0, 0);

    if (p)
        bpf_ringbuf_discard(p, BPF_RB_FORCE_WAKEUP);
}

static int wake_fire(void *map, __u32 *key, struct wake_timer *w)
{
    /* Clear first (a full barrier), then look: a record committed after the
     * look saw 0 or a newer 1, and has its own timer. */
    __sync_lock_test_and_set(&kring_wake_armed, 0);
    if (bpf_ringbuf_query(&kring_events, BPF_RB_AVAIL_DATA) > 0) {
        count_wake(wakes_timer);
        wake_now();
    }
    return 0;
}

/* The flags to commit a record of `len` bytes with. */
static __always_inline __u64 wake_flags(__u32 len)
{
    __u64 armed;

    if (!kring_cfg.wake_interval_ns)
        return 0;
    if (bpf_ringbuf_query(&kring_events, BPF_RB_AVAIL_DATA) + len + 8 >= kring_cfg.wake_bytes) {
        count_wake(wakes_hwm);
        return BPF_RB_FORCE_WAKEUP;
    }
    armed = kring_wake_armed;
    if (armed && (__s64)(bpf_ktime_get_ns() - armed) > (__s64)(2 * kring_cfg.wake_interval_ns)) {
        count_wake(wakes_now);
        return BPF_RB_FORCE_WAKEUP;
    }
    return BPF_RB_NO_WAKEUP;
}

/* After a record committed with `flags`: make sure a wake timer covers it.
 * `can_arm`: the program may use bpf_timer (not a tp/ program). */
static __always_inline void wake_later(__u64 flags, int can_arm)
{
    __u32 zero = 0;
    struct wake_timer *w;

    if (flags != BPF_RB_NO_WAKEUP || kring_wake_armed)
        return;
    if (can_arm && __sync_val_compare_and_swap(&kring_wake_armed, 0, bpf_ktime_get_ns() | 1) == 0) {
        w = bpf_map_lookup_elem(&kring_wake, &zero);
        if (!w)
            goto now;
        if (bpf_timer_start(&w->t, kring_cfg.wake_interval_ns, 0) == 0)
            return;
        /* First use: set the timer up (-EBUSY: another CPU just did). */
        bpf_timer_init(&w->t, &kring_wake, CLOCK_MONOTONIC);
        bpf_timer_set_callback(&w->t, wake_fire);
        if (bpf_timer_start(&w->t, kring_cfg.wake_interval_ns, 0) == 0)
            return;
now:
        __sync_lock_test_and_set(&kring_wake_armed, 0);
    } else if (can_arm) {
        return;                 /* another CPU armed it after our look */
    }
    count_wake(wakes_now);
    wake_now();
}

/* Commit `len` bytes of `data` as a record and count it. */
static __always_inline void submit(void *data, __u32 len, int can_arm)
{
    __u64 flags = wake_flags(len);
    int ok = bpf_ringbuf_output(&kring_events, data, len, flags) == 0;

    count(ok);
    if (ok)
        wake_later(flags, can_arm);
}

/* ---- canonical paths -------------------------------------------------- */

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
    return (struct mount *)((char *)m - bpf_core_field_offset(struct mount, mnt));
}

static long walk_step(__u32 i, void *ctx)
{
    __u32 len, off;
    struct scratch *s = get_scratch();
    struct walk *w;
    /* Locals: BPF_CORE_READ must not see our own struct's fields. */
    struct dentry *d, *parent, *mnt_root;
    struct vfsmount *vfsmnt;
    struct mount *mnt;
    const unsigned char *name;

    if (!s)
        return 1;
    w = &s->w;
    d = w->dentry;
    vfsmnt = w->vfsmnt;
    mnt = w->mnt;
    if (!d)
        return 1;
    parent = BPF_CORE_READ(d, d_parent);
    mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
    if (d == parent && d != mnt_root && i == 0) {
        /* A file made with no name in any directory (alloc_file_pseudo:
         * memfd_create, anonymous inodes): its dentry is its own parent and
         * its name ("memfd:NAME") is all there is. */
        w->pseudo = 1;
    } else if (d == mnt_root || d == parent) {
        struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

        if (d != mnt_root || !up || up == mnt) {
            /* The root of the namespace (or of a filesystem that is not
             * mounted anywhere: pipes, memfd, a detached mount). */
            w->done = 1;
            return 1;
        }
        /* Cross to the mount point in the parent mount. */
        w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
        w->mnt = up;
        w->vfsmnt = (struct vfsmount *)((char *)up + bpf_core_field_offset(struct mount, mnt));
        return 0;
    }
    len = BPF_CORE_READ(d, d_name.len);
    name = BPF_CORE_READ(d, d_name.name);
    if (len > NAME_MAX)
        len = NAME_MAX;
    if (len + 2 > w->pos) {            /* keep pos >= 1: at most WALK_AREA - 1 bytes */
        w->cut = 1;
        return 1;
    }
    off = w->pos - len;
    bpf_probe_read_kernel(&s->path[off & (WALK_AREA - 1)], len & NAME_MAX, name);
    if (w->pseudo) {
        w->pos = off;
        w->done = 1;
        return 1;
    }
    off -= 1;
    s->path[off & (WALK_AREA - 1)] = '/';
    w->pos = off;
    w->dentry = parent;
    return 0;
}

/* Write the canonical path of dentry `d` on mount `vfsmnt` into dst (room
 * for KRING_PATH_BYTES), NUL terminated; its length before the NUL into
 * *len. Returns KRING_D_* bits: KRING_D_PATH_TRUNCATED when the walk ran out
 * of room or depth (the tail of the path is kept), KRING_D_MEMFD for a memfd
 * ("memfd:NAME"), KRING_D_DELETED for an unlinked file (its last path),
 * KRING_D_NO_PATH (and an empty string) without a dentry. */
static __always_inline __u32 dentry_path(struct scratch *s, struct dentry *d, struct vfsmount *vfsmnt,
                                         char *dst, __u16 *len)
{
    struct walk *w = &s->w;
    __u32 pos, n, bits = 0;

    if (!d || !vfsmnt) {
        dst[0] = 0;
        *len = 0;
        return KRING_D_NO_PATH;
    }
    w->dentry = d;
    w->vfsmnt = vfsmnt;
    w->mnt = real_mount(vfsmnt);
    w->pos = WALK_AREA;
    w->done = 0;
    w->cut = 0;
    w->pseudo = 0;
    /* d_unlinked(): out of the dcache hash and not a root of its own. */
    if (!BPF_CORE_READ(d, d_hash.pprev) && BPF_CORE_READ(d, d_parent) != d)
        bits |= KRING_D_DELETED;
    bpf_loop(WALK_MAX_DEPTH, walk_step, 0, 0);
    pos = w->pos;
    if (pos >= WALK_AREA) {
        /* The root itself. */
        pos = WALK_AREA - 1;
        s->path[pos] = '/';
    }
    pos &= WALK_AREA - 1;
    n = WALK_AREA - pos;                /* 1 .. WALK_AREA - 1 */
    if (w->pseudo && n >= 6 && s->path[pos & (WALK_AREA - 1)] == 'm' &&
        s->path[(pos + 1) & (WALK_AREA - 1)] == 'e' && s->path[(pos + 2) & (WALK_AREA - 1)] == 'm' &&
        s->path[(pos + 3) & (WALK_AREA - 1)] == 'f' && s->path[(pos + 4) & (WALK_AREA - 1)] == 'd' &&
        s->path[(pos + 5) & (WALK_AREA - 1)] == ':')
        bits |= KRING_D_MEMFD;
    n &= WALK_AREA - 1;
    bpf_probe_read_kernel(dst, n, &s->path[pos]);
    dst[n] = 0;
    *len = (__u16)n;
    if (!w->done || w->cut)
        bits |= KRING_D_PATH_TRUNCATED;
    return bits;
}

/* dentry_path() of the file `f` (KRING_D_NO_PATH when there is none). */
static __always_inline __u32 file_path(struct scratch *s, struct file *f, char *dst, __u16 *len)
{
    if (!f) {
        dst[0] = 0;
        *len = 0;
        return KRING_D_NO_PATH;
    }
    return dentry_path(s, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), dst, len);
}

/* ---- process_start ---------------------------------------------------- */

/* The start time of a process (its leader), ns since boot: what
 * /proc/PID/stat's starttime counts in clock ticks. */
static __always_inline __u64 start_time(struct task_struct *p)
{
    return BPF_CORE_READ(p, group_leader, start_boottime);
}

/* Identity and context of process `p` (credentials, audit ids, namespaces,
 * cgroup, terminal, start times). */
static __always_inline void identity(struct kring_process_start *ps, struct task_struct *p)
{
    const struct cred *cred = BPF_CORE_READ(p, real_cred);
    struct pid *pid = BPF_CORE_READ(p, thread_pid);
    struct tty_struct *tty = BPF_CORE_READ(p, signal, tty);
    unsigned int level = BPF_CORE_READ(pid, level);
    struct upid up = {};

    ps->uid = BPF_CORE_READ(cred, uid.val);
    ps->euid = BPF_CORE_READ(cred, euid.val);
    ps->gid = BPF_CORE_READ(cred, gid.val);
    ps->egid = BPF_CORE_READ(cred, egid.val);
    ps->auid = 0xffffffff;
    ps->audit_session = 0xffffffff;
    if (bpf_core_field_exists(p->loginuid)) {
        ps->auid = BPF_CORE_READ(p, loginuid.val);
        ps->audit_session = BPF_CORE_READ(p, sessionid);
    }
    /* The pid namespace the process lives in: its pid's last level. */
    bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
    ps->pidns = BPF_CORE_READ(up.ns, ns.inum);
    ps->mntns = BPF_CORE_READ(p, nsproxy, mnt_ns, ns.inum);
    ps->cwd_len = 0;
    ps->parent_path_len = 0;
    ps->cgroup_id = BPF_CORE_READ(p, cgroups, dfl_cgrp, kn, id);
    ps->start_time = start_time(p);
    ps->parent_start_time = start_time(BPF_CORE_READ(p, real_parent));
    ps->tty[0] = 0;
    if (tty)
        bpf_probe_read_kernel_str(ps->tty, sizeof(ps->tty), &tty->name);
}

/* Copy the command line (argv, NUL-separated) from the user memory of the
 * current process, whose mm is `mm`, right after the path's NUL (packed
 * process_start), at most kring_cfg.args_max - 1 bytes. Returns the tail
 * offset after its NUL (where cwd goes). */
static __always_inline __u32 read_cmdline(struct scratch *s, struct mm_struct *mm)
{
    struct kring_process_start *ps = &s->ps;
    __u64 start = 0, end = 0, n, max = kring_cfg.args_max;
    __u32 at = (ps->path_len + 1) & (2 * KRING_PATH_BYTES - 1);
    char *dst = &s->ps_room[KRING_PROCESS_START_PACKED_MIN_SIZE + at];

    if (max < KRING_BPF_ARGS_MIN || max > KRING_BPF_ARGS_MAX)
        max = KRING_BPF_ARGS_DEFAULT;
    if (mm) {
        start = BPF_CORE_READ(mm, arg_start);
        end = BPF_CORE_READ(mm, arg_end);
    }
    n = end > start ? end - start : 0;
    if (n > max - 1) {
        n = max - 1;
        ps->detail |= KRING_D_CMDLINE_TRUNCATED;
    }
    n &= ARGS_ROOM - 1;
    if (n && bpf_probe_read_user(dst, n, (void *)start) != 0)
        n = 0;
    dst[n] = 0;
    /* argv ends with a NUL: it is the terminator, not part of the text. */
    if (n && !(ps->detail & KRING_D_CMDLINE_TRUNCATED)) {
        __u32 last = (__u32)n - 1;

        barrier_var(last);      /* keep the mask: the verifier needs it */
        if (dst[last & (ARGS_ROOM - 1)] == 0)
            n -= 1;
    }
    ps->cmdline_len = (__u16)(n > 0xffff ? 0xffff : n);
    return at + (__u32)n + 1;
}

/* After the command line (tail offset `at`): the working directory of `p`
 * and the executable of its parent, canonical, each NUL-terminated (packed
 * process_start). Returns the record's length. */
static __always_inline __u32 read_context(struct scratch *s, struct task_struct *p, __u32 at)
{
    struct kring_process_start *ps = &s->ps;
    struct fs_struct *fs = BPF_CORE_READ(p, fs);
    struct mm_struct *pmm = BPF_CORE_READ(p, real_parent, mm);
    __u32 bits;

    at &= TAIL_MASK;
    bits = dentry_path(s, fs ? BPF_CORE_READ(fs, pwd.dentry) : 0, fs ? BPF_CORE_READ(fs, pwd.mnt) : 0,
                       &s->ps_room[KRING_PROCESS_START_PACKED_MIN_SIZE + at], &ps->cwd_len);
    if (bits & KRING_D_PATH_TRUNCATED)
        ps->detail |= KRING_D_CWD_TRUNCATED;
    at = (at + (ps->cwd_len & (KRING_PATH_BYTES - 1)) + 1) & TAIL_MASK;
    /* A kernel thread's child (or a parent past exit_mm) has no executable. */
    bits = file_path(s, pmm ? BPF_CORE_READ(pmm, exe_file) : 0,
                     &s->ps_room[KRING_PROCESS_START_PACKED_MIN_SIZE + at], &ps->parent_path_len);
    if (bits & KRING_D_PATH_TRUNCATED)
        ps->detail |= KRING_D_PARENT_PATH_TRUNCATED;
    return KRING_PROCESS_START_PACKED_MIN_SIZE + at + (ps->parent_path_len & (KRING_PATH_BYTES - 1)) + 1;
}

static __always_inline void emit_process_start(struct scratch *s, __u32 len)
{
    struct kring_process_start *ps = &s->ps;

    ps->detail |= KRING_D_PACKED;
    header(&ps->h, KRING_TYPE_PROCESS_START,
           (ps->detail & (KRING_D_PATH_TRUNCATED | KRING_D_CMDLINE_TRUNCATED | KRING_D_CWD_TRUNCATED |
                          KRING_D_PARENT_PATH_TRUNCATED)) ? KRING_EV_TRUNCATED : 0);
    if (len > PS_ROOM)
        len = PS_ROOM;
    submit(s->ps_room, len, 1);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(kring_fork, struct task_struct *parent, struct task_struct *child)
{
    __u32 tail;
    struct scratch *s;
    struct kring_process_start *ps;
    struct mm_struct *mm;

    if (child->pid != child->tgid)
        return 0;                               /* a new thread, not a process */
    s = get_scratch();
    if (!s)
        return 0;
    ps = &s->ps;
    ps->pid = child->tgid;
    ps->ppid = BPF_CORE_READ(child, real_parent, tgid);
    ps->creator_pid = parent->tgid;
    ps->creator_tid = parent->pid;
    identity(ps, child);
    ps->session_id = 0;
    ps->detail = 0;
    bpf_probe_read_kernel(ps->comm, sizeof(ps->comm), child->comm);
    mm = child->mm;
    ps->detail |= file_path(s, mm ? BPF_CORE_READ(mm, exe_file) : 0, &s->ps_room[KRING_PROCESS_START_PACKED_MIN_SIZE],
                            &ps->path_len);
    /* The child's argv is the parent's (same addresses, same contents): read it
     * from the parent, whose memory is the current one here. */
    tail = read_cmdline(s, mm && parent->mm ? mm : 0);
    emit_process_start(s, read_context(s, child, tail));
    return 0;
}

/* ---- image_load ------------------------------------------------------- */

struct vma_info {
    __u64 start;
    __u64 end;
    __u64 pgoff;
    struct file *file;
};

static long vma_found(struct task_struct *task, struct vm_area_struct *vma, void *ctx)
{
    struct vma_info *v = ctx;

    v->start = vma->vm_start;
    v->end = vma->vm_end;
    v->pgoff = vma->vm_pgoff;
    v->file = vma->vm_file;
    return 0;
}

/* can_arm: see wake_later(). */
static __always_inline void emit_image(struct kring_image_load *il, __u32 detail, int can_arm)
{
    __u32 len = KRING_IMAGE_LOAD_MIN_SIZE + (il->path_len & (KRING_PATH_BYTES - 1)) + 1;

    il->detail |= detail;
    header(&il->h, KRING_TYPE_IMAGE_LOAD, (il->detail & KRING_D_PATH_TRUNCATED) ? KRING_EV_TRUNCATED : 0);
    if (len > sizeof(*il))
        len = sizeof(*il);
    submit(il, len, can_arm);
}

static __always_inline void image_init(struct kring_image_load *il, __u32 pid, __u64 base, __u64 size,
                                       __u64 off)
{
    il->pid = pid;
    il->detail = 0;
    il->base = base;
    il->size = size;
    il->file_offset = off;
    il->reserved[0] = 0;
    il->reserved[1] = 0;
    il->reserved[2] = 0;
    il->start_time = start_time(bpf_get_current_task_btf());
}

/* image_load for the mapping of the current process that contains addr.
 * Skipped when it is not a file mapping or is a mapping of `not_file`. */
static __always_inline struct file *image_at(struct scratch *s, __u32 pid, __u64 addr, __u32 detail,
                                             struct file *not_file)
{
    struct vma_info v = {};
    struct task_struct *task = bpf_get_current_task_btf();

    if (!addr || bpf_find_vma(task, addr, vma_found, &v, 0) != 0 || !v.file || v.file == not_file)
        return 0;
    image_init(&s->il, pid, v.start, v.end - v.start, v.pgoff << (kring_cfg.page_shift & 63));
    s->il.detail = file_path(s, v.file, s->il.path, &s->il.path_len);
    emit_image(&s->il, detail, 1);
    return v.file;
}

/* ---- exec ------------------------------------------------------------- */

SEC("tp_btf/sched_process_exec")
int BPF_PROG(kring_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
    __u32 tail;
    struct scratch *s = get_scratch();
    struct mm_struct *mm = p->mm;
    struct file *exe;

    if (!s)
        return 0;
    if (kring_cfg.want & KRING_BPF_WANT_PROCESS) {
        struct kring_process_start *ps = &s->ps;

        ps->pid = p->tgid;
        ps->ppid = BPF_CORE_READ(p, real_parent, tgid);
        ps->creator_pid = p->tgid;
        ps->creator_tid = (__u32)old_pid;
        identity(ps, p);
        ps->session_id = 0;
        ps->detail = KRING_D_EXEC;
        bpf_probe_read_kernel(ps->comm, sizeof(ps->comm), p->comm);
        ps->detail |= file_path(s, BPF_CORE_READ(bprm, file), &s->ps_room[KRING_PROCESS_START_PACKED_MIN_SIZE],
                                &ps->path_len);
        tail = read_cmdline(s, mm);
        emit_process_start(s, read_context(s, p, tail));
    }
    if ((kring_cfg.want & KRING_BPF_WANT_IMAGE) && mm) {
        /* The kernel mapped the program and its interpreter itself (no mmap
         * syscall): report the executable mapping of each. The main program's
         * code is at start_code; the thread starts in the interpreter's code
         * (or, without one, at the program's entry). */
        struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());

        exe = image_at(s, p->tgid, BPF_CORE_READ(mm, start_code), KRING_D_MAIN_IMAGE, 0);
        if (regs)
            image_at(s, p->tgid, PT_REGS_IP_CORE(regs), 0, exe);
    }
    return 0;
}

/* ---- exit ------------------------------------------------------------- */

static __always_inline int emit_process_exit(struct task_struct *p)
{
    __u32 zero = 0, code, len;
    struct kring_process_exit *e;
    struct kring_bpf_state *st;
    struct scratch *s = get_scratch();
    struct mm_struct *mm;
    __u64 started;

    if (!s)
        return 0;
    e = &s->pe.e;
    e->pid = p->tgid;
    e->ppid = BPF_CORE_READ(p, real_parent, tgid);
    /* exit_code is a wait status: (code & 0xff) << 8 for exit(code), or the
     * signal number (| 0x80 with a core dump) for a killed process. */
    code = (__u32)p->exit_code;
    e->raw_status = code;
    e->exit_code = (code & 0x7f) ? -(__s32)(code & 0x7f) : (__s32)((code >> 8) & 0xff);
    e->detail = 0;
    st = bpf_map_lookup_elem(&kring_state, &zero);
    started = BPF_CORE_READ(p, group_leader, start_time);
    if (!st || started < st->attached_ns || !st->attached_ns)
        e->detail |= KRING_D_NO_START;
    e->reserved = 0;
    bpf_probe_read_kernel(e->comm, sizeof(e->comm), p->comm);
    s->pe.start_time = start_time(p);
    s->pe.duration_ns = bpf_ktime_get_boot_ns() - s->pe.start_time;
    /* The tracepoint fires before exit_mm(): the executable is still there. */
    mm = p->mm;
    e->detail |= file_path(s, mm ? BPF_CORE_READ(mm, exe_file) : 0, s->pe.path, &e->path_len);
    header(&e->h, KRING_TYPE_PROCESS_EXIT, (e->detail & KRING_D_PATH_TRUNCATED) ? KRING_EV_TRUNCATED : 0);
    len = KRING_PROCESS_EXIT_LINUX_MIN_SIZE + (e->path_len & (KRING_PATH_BYTES - 1)) + 1;
    if (len > sizeof(s->pe))
        len = sizeof(s->pe);
    submit(&s->pe, len, 1);
    return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(kring_exit, struct task_struct *p, bool group_dead)
{
    if (!group_dead)
        return 0;                               /* other threads of the process live on */
    return emit_process_exit(p);
}

/* Kernels whose sched_process_exit has no group_dead argument (before 2025):
 * the thread group is gone when signal->live, which each exiting thread
 * decrements before this tracepoint, is 0. Threads exiting together can all
 * see 0, so the first to claim the process in kring_exited reports it. The
 * key is the signal_struct and the leader's start time: a reused
 * signal_struct belongs to a new process. The loader picks this program or
 * kring_exit from the kernel's BTF. */
struct exit_key {
    __u64 signal;
    __u64 started;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 16384);
    __type(key, struct exit_key);
    __type(value, __u8);
} kring_exited SEC(".maps");

SEC("tp_btf/sched_process_exit")
int BPF_PROG(kring_exit_live, struct task_struct *p)
{
    struct exit_key k = {};
    __u8 one = 1;

    if (BPF_CORE_READ(p, signal, live.counter) != 0)
        return 0;
    k.signal = (__u64)BPF_CORE_READ(p, signal);
    k.started = BPF_CORE_READ(p, group_leader, start_time);
    if (bpf_map_update_elem(&kring_exited, &k, &one, BPF_NOEXIST) != 0)
        return 0;
    return emit_process_exit(p);
}

/* ---- failed execs ----------------------------------------------------- */

/* The filename argument of an execve/execveat in flight, by thread (pid_tgid):
 * a user pointer, read only if the exec fails (the caller's memory is then
 * still there). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, __u64);
} kring_execs SEC(".maps");

static __always_inline int exec_enter(__u64 filename)
{
    __u64 id = bpf_get_current_pid_tgid();

    bpf_map_update_elem(&kring_execs, &id, &filename, BPF_ANY);
    return 0;
}

static __always_inline int exec_return(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u64 *fp = bpf_map_lookup_elem(&kring_execs, &id), filename;
    struct task_struct *task;
    struct kring_exec_failed *ef;
    struct scratch *s;
    long n;
    __u32 len;

    if (!fp)
        return 0;
    filename = *fp;
    bpf_map_delete_elem(&kring_execs, &id);
    if (ret >= 0 || ret < -4095)
        return 0;                               /* the exec succeeded */
    s = get_scratch();
    if (!s)
        return 0;
    ef = &s->ef;
    task = (struct task_struct *)bpf_get_current_task();
    ef->pid = (__u32)(id >> 32);
    ef->tid = (__u32)id;
    ef->uid = (__u32)bpf_get_current_uid_gid();
    ef->euid = BPF_CORE_READ(task, cred, euid.val);
    ef->error = (__s32)-ret;
    ef->detail = 0;
    n = filename ? bpf_probe_read_user_str(ef->path, KRING_PATH_BYTES, (void *)filename) : -1;
    if (n <= 0) {
        n = 1;
        ef->path[0] = 0;
        ef->detail |= KRING_D_NO_PATH;
    } else if (n == KRING_PATH_BYTES) {
        ef->detail |= KRING_D_PATH_TRUNCATED;  /* the kernel refuses it anyway (ENAMETOOLONG) */
    }
    header(&ef->h, KRING_TYPE_EXEC_FAILED, (ef->detail & KRING_D_PATH_TRUNCATED) ? KRING_EV_TRUNCATED : 0);
    len = KRING_EXEC_FAILED_MIN_SIZE + ((__u32)n & (2 * KRING_PATH_BYTES - 1));
    if (len > sizeof(*ef))
        len = sizeof(*ef);
    submit(ef, len, 0);
    return 0;
}

SEC("tp/syscalls/sys_enter_execve")
int kring_execve_ent(struct trace_event_raw_sys_enter *ctx)
{
    return exec_enter(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_execveat")
int kring_execveat_ent(struct trace_event_raw_sys_enter *ctx)
{
    return exec_enter(ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_execve")
int kring_execve_ret(struct trace_event_raw_sys_exit *ctx)
{
    return exec_return(ctx->ret);
}

SEC("tp/syscalls/sys_exit_execveat")
int kring_execveat_ret(struct trace_event_raw_sys_exit *ctx)
{
    return exec_return(ctx->ret);
}

/* ---- mmap ------------------------------------------------------------- */

SEC("tp/syscalls/sys_enter_mmap")
int kring_mmap_ent(struct trace_event_raw_sys_enter *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct mmap_args a;
    __s64 fd = (int)ctx->args[4];

    if (!(ctx->args[2] & PROT_EXEC) || (ctx->args[3] & MAP_ANONYMOUS) || fd < 0)
        return 0;
    a.len = ctx->args[1];
    a.off = ctx->args[5];
    a.fd = fd;
    bpf_map_update_elem(&kring_mmaps, &id, &a, BPF_ANY);
    return 0;
}

SEC("tp/syscalls/sys_exit_mmap")
int kring_mmap_ret(struct trace_event_raw_sys_exit *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct mmap_args *a = bpf_map_lookup_elem(&kring_mmaps, &id);
    struct task_struct *task;
    struct fdtable *fdt;
    struct file **fds, *f = 0;
    struct scratch *s;
    __u64 len, off, page;
    __s64 fd;
    long ret = ctx->ret;

    if (!a)
        return 0;
    len = a->len;
    off = a->off;
    fd = a->fd;
    bpf_map_delete_elem(&kring_mmaps, &id);
    if (ret < 0 && ret > -4096)
        return 0;                               /* the mmap failed */
    s = get_scratch();
    if (!s)
        return 0;
    task = (struct task_struct *)bpf_get_current_task();
    fdt = BPF_CORE_READ(task, files, fdt);
    if (fdt && fd < BPF_CORE_READ(fdt, max_fds)) {
        fds = BPF_CORE_READ(fdt, fd);
        bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
    }
    page = 1ULL << (kring_cfg.page_shift & 63);
    image_init(&s->il, (__u32)(id >> 32), (__u64)ret, (len + page - 1) & ~(page - 1), off);
    s->il.detail = file_path(s, f, s->il.path, &s->il.path_len);
    emit_image(&s->il, 0, 0);
    return 0;
}
