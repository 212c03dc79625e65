/*
 * kring_process.bpf.c - the process records: process_start from fork
 * (kring_fork) and exec (kring_exec, which also reports the images the kernel
 * mapped at exec), process_exit (kring_exit, kring_exit_live). One unit of
 * kring_events.bpf.o: what the programs and records are, kring_events.bpf.c.
 */
#include "kring_events.bpf.h"
#include "kring_wake.bpf.h"
#include "kring_path.bpf.h"
#include "kring_image.bpf.h"
#include "kring_filter.bpf.h"

/* Set by the loader: when the programs were attached (process_exit's KRING_D_NO_START). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kring_bpf_state);
} kring_state SEC(".maps");

/* ---- process_start ---------------------------------------------------- */

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
    tree_fork(child);
    if (!wanted(child))
        return 0;
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

/* ---- image_load at exec ------------------------------------------------ */

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
    struct scratch *s;
    struct mm_struct *mm = p->mm;
    struct file *exe;

    if (!wanted(p))
        return 0;
    s = get_scratch();
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
    if (!exit_wanted(p))
        return 0;
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

    if (BPF_CORE_READ(p, signal, live.counter) != 0 || !exit_wanted(p))
        return 0;
    k.signal = (__u64)BPF_CORE_READ(p, signal);
    k.started = BPF_CORE_READ(p, group_leader, start_time);
    if (bpf_map_update_elem(&kring_exited, &k, &one, BPF_NOEXIST) != 0)
        return 0;
    return emit_process_exit(p);
}
