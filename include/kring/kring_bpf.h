/*
 * kring_bpf.h - what the eBPF programs (csrc/bpf/kring_events.bpf.c) and their
 * loader (pykring/kernel_linux.py) share besides the ring: the load-time
 * configuration, the run-time state and the counters. The static asserts
 * below pin their layouts; the loader reads them through the cffi cdef
 * (the part between the markers), so Python declares none of them again.
 *
 * Fixed-width integers only (the loader may be a 32-bit process).
 */
#ifndef KRING_BPF_H
#define KRING_BPF_H

#include <kring/kring.h>

/* @cdef-begin (read verbatim by pykring/_build.py: integer literals and structures only) */

/* kring_bpf_config.want: which records the programs write. */
#define KRING_BPF_WANT_PROCESS 0x1      /* process_start (fork, exec) and process_exit */
#define KRING_BPF_WANT_IMAGE 0x2        /* image_load (exec: main binary + loader; mmap) */

/* kring_bpf_config.clock: the kernel clock behind ts_ns. */
#define KRING_BPF_CLOCK_MONOTONIC 0     /* bpf_ktime_get_ns() + clock_offset */
#define KRING_BPF_CLOCK_TAI 1           /* bpf_ktime_get_tai_ns() + clock_offset (Linux >= 6.1):
                                           follows steps of CLOCK_REALTIME, as ts_ns must */

/* kring_bpf_config.filter: which processes' events the programs write
 * (csrc/bpf/kring_filter.bpf.h); 0: every process's. */
#define KRING_BPF_FILTER_PIDS 0x1       /* its pid is in the map kring_pids */
#define KRING_BPF_FILTER_TREE 0x2       /* it is in the map kring_tree (a process and its descendants) */
#define KRING_BPF_FILTER_UIDS 0x4       /* its real uid is in the map kring_uids */
#define KRING_BPF_FILTER_CGROUP 0x8     /* its cgroup is cgroup_id or below it */

/* kring_bpf_config.args_max: the command line a process_start carries. */
#define KRING_BPF_ARGS_DEFAULT 4096
#define KRING_BPF_ARGS_MIN 64
#define KRING_BPF_ARGS_MAX 65536

/* Load-time configuration: section .rodata.kring, written by the loader
 * before the object is loaded (the verifier then prunes what is not wanted). */
struct kring_bpf_config {
    uint32_t want;              /* KRING_BPF_WANT_* */
    uint32_t clock;             /* KRING_BPF_CLOCK_* */
    int64_t clock_offset;       /* ns to add to the clock to get ns since the Unix epoch:
                                   TAI: -(TAI - UTC) in whole seconds; MONOTONIC:
                                   CLOCK_REALTIME - CLOCK_MONOTONIC, measured by the loader */
    uint32_t page_shift;        /* log2 of the page size (mmap offsets of vm_pgoff) */
    uint32_t args_max;          /* bytes of room for a command line, NUL included:
                                   KRING_BPF_ARGS_MIN .. KRING_BPF_ARGS_MAX */
    uint64_t wake_interval_ns;  /* batched wakeups (PROTOCOL.md 11.2): the longest a record
                                   waits before the consumer is woken for it; 0: a wakeup
                                   for every record that finds the consumer caught up */
    uint64_t wake_bytes;        /* the high-water mark: a record that leaves at least this
                                   many bytes unconsumed wakes the consumer at once */
    uint32_t filter;            /* KRING_BPF_FILTER_* */
    uint32_t cgroup_level;      /* FILTER_CGROUP: the depth of the cgroup below the root (>= 0) */
    uint64_t cgroup_id;         /* FILTER_CGROUP: its id (the inode number of its directory) */
};

/* Run-time state: map kring_state, one entry, written by the loader. */
struct kring_bpf_state {
    uint64_t attached_ns;       /* CLOCK_MONOTONIC ns when the fork program was attached:
                                   a process whose leader started before it has no
                                   process_start (KRING_D_NO_START at its exit). Until
                                   the loader sets it: 0. */
};

/* Counters: map kring_counts, one per-CPU entry; the consumer sums the CPUs. */
struct kring_bpf_counts {
    uint64_t written;           /* records committed to the ring */
    uint64_t dropped;           /* records lost because the ring was full; each took a
                                   sequence number, so the consumer sees them as gaps */
    /* Wakeups the programs asked for with a wake interval (kring_events.bpf.c): */
    uint64_t wakes_hwm;         /* records committed past the high-water mark */
    uint64_t wakes_timer;       /* the wake timer found unconsumed bytes */
    uint64_t wakes_now;         /* at once: no timer to arm (tp/ programs), or a late one */
    uint64_t tree_full;         /* FILTER_TREE: new members the full map could not hold
                                   (their events are not written) */
};

/* @cdef-end */

KRING_STATIC_ASSERT(sizeof(struct kring_bpf_config) == 56, bpf_config_size);
KRING_STATIC_ASSERT(sizeof(struct kring_bpf_state) == 8, bpf_state_size);
KRING_STATIC_ASSERT(sizeof(struct kring_bpf_counts) == 48, bpf_counts_size);

#endif /* KRING_BPF_H */
