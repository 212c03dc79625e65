/*
 * synth.bpf.c - the synthetic BPF producer of the `bpf` benchmark
 * (benchmarks/bpf.py): one run writes cfg.records_per_run fixed-size records
 * into a BPF_MAP_TYPE_RINGBUF with bpf_loop(), each a bpf_ringbuf_reserve()
 * and bpf_ringbuf_submit() of pykring's 24-byte event header plus a body.
 *
 * Triggered from user space with BPF_PROG_TEST_RUN (bpf_prog_test_run_opts),
 * which runs the program synchronously in the caller's thread: a raw_tp
 * program needs no attach point, so nothing else on the machine runs it.
 *
 * Records: seq from counters.next_seq (one atomic add per record, also for
 * a record that did not fit, so a consumer's sequence gaps equal
 * counters.dropped), ts_ns = bpf_ktime_get_ns() (CLOCK_MONOTONIC), type 1,
 * flags 0; the body words are seq * 8 + i. Wakeups: with cfg.wakeup_every =
 * K > 0, a record whose seq + 1 is a multiple of K, and the last record of
 * every run, is submitted with BPF_RB_FORCE_WAKEUP and all others with
 * BPF_RB_NO_WAKEUP; with K = 0 the kernel's adaptive policy decides (flags
 * 0: wake when the consumer had caught up).
 *
 * The loader writes cfg (.rodata) before loading and resets the counters
 * (.bss) between measurements, when no run is in progress.
 *
 * Built by the benchmark: clang -O2 -g -target bpf -D__TARGET_ARCH_x86
 *   -I benchmarks/.build -c benchmarks/bpf/synth.bpf.c  (vmlinux.h from bpftool)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "Dual MIT/GPL";

#ifndef SYNTH_BODY_WORDS
#define SYNTH_BODY_WORDS 5          /* 40-byte body: 64-byte records with the header */
#endif

struct synth_record {
    __u64 seq;                      /* consecutive from 0 after a reset */
    __u64 ts_ns;                    /* bpf_ktime_get_ns() when written */
    __u16 type;                     /* 1 */
    __u16 flags;                    /* 0 */
    __u32 reserved;                 /* 0 */
    __u64 body[SYNTH_BODY_WORDS];   /* seq * 8 + i */
};

/* .rodata, written by the loader before load (benchmarks/bpf.py _CONFIG). */
struct synth_config {
    __u32 records_per_run;          /* records one run writes (bpf_loop count) */
    __u32 wakeup_every;             /* K: see the top; 0 = the kernel's adaptive wakeups */
};

/* .bss, read and reset by the loader (benchmarks/bpf.py _COUNTERS). */
struct synth_counters {
    __u64 next_seq;                 /* next sequence number */
    __u64 written;                  /* records submitted */
    __u64 dropped;                  /* reserves that failed (ring full) */
};

const volatile struct synth_config cfg = {4096, 4096};
struct synth_counters counters = {};

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, 16 << 20);  /* set by the loader */
} synth_ring SEC(".maps");

static long emit(__u32 i, void *ctx)
{
    __u64 seq = __sync_fetch_and_add(&counters.next_seq, 1);
    struct synth_record *r = bpf_ringbuf_reserve(&synth_ring, sizeof(*r), 0);
    __u64 flags;
    int k;

    if (!r) {
        __sync_fetch_and_add(&counters.dropped, 1);
        return 0;
    }
    r->seq = seq;
    r->ts_ns = bpf_ktime_get_ns();
    r->type = 1;
    r->flags = 0;
    r->reserved = 0;
    for (k = 0; k < SYNTH_BODY_WORDS; k++)
        r->body[k] = seq * 8 + k;
    if (cfg.wakeup_every == 0)
        flags = 0;
    else if ((seq + 1) % cfg.wakeup_every == 0 || i + 1 == cfg.records_per_run)
        flags = BPF_RB_FORCE_WAKEUP;
    else
        flags = BPF_RB_NO_WAKEUP;
    bpf_ringbuf_submit(r, flags);
    __sync_fetch_and_add(&counters.written, 1);
    return 0;
}

SEC("raw_tp")
int synth_run(void *ctx)
{
    bpf_loop(cfg.records_per_run, emit, NULL, 0);
    return 0;
}
