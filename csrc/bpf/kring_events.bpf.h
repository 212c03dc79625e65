/*
 * kring_events.bpf.h - what every unit of kring_events.bpf.o shares: the
 * includes, the limits, the per-CPU scratch record, the maps and globals
 * defined once in kring_events.bpf.c (declared extern here), and the record
 * helpers (time stamp, header with its sequence number, written/dropped
 * counts, start time). What the programs and records are: kring_events.bpf.c.
 */
#ifndef KRING_EVENTS_BPF_H
#define KRING_EVENTS_BPF_H

#include "vmlinux.h"
/* Before bpf_helpers.h, whose offsetof() is no constant expression for the
 * static asserts: kring.h defines it as __builtin_offsetof. */
#define KRING_NO_STDINT         /* vmlinux.h has uint8_t .. uint64_t */
#include <kring/kring_events.h>
#include <kring/kring_bpf.h>

#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_tracing.h>

#define NAME_MAX 255

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

extern const volatile struct kring_bpf_config kring_cfg;

/* Next sequence number (ring-wide). */
extern __u64 kring_seq;

struct kring_events_map {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);              /* set by the loader */
};
extern struct kring_events_map kring_events SEC(".maps");

struct kring_counts_map {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct kring_bpf_counts);
};
extern struct kring_counts_map kring_counts SEC(".maps");

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
struct kring_scratch_map {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct scratch);
};
extern struct kring_scratch_map kring_scratch SEC(".maps");

static __always_inline struct scratch *get_scratch(void)
{
    __u32 cpu = bpf_get_smp_processor_id();

    return bpf_map_lookup_elem(&kring_scratch, &cpu);
}

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

/* The start time of a process (its leader), ns since boot: what
 * /proc/PID/stat's starttime counts in clock ticks. */
static __always_inline __u64 start_time(struct task_struct *p)
{
    return BPF_CORE_READ(p, group_leader, start_boottime);
}

#endif /* KRING_EVENTS_BPF_H */
