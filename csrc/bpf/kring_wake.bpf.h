/*
 * kring_wake.bpf.h - committing a record (submit) with batched wakeups: the
 * high-water mark, the wake timer and the immediate wake, shared by every unit
 * that writes records. kring_wake and kring_wake_armed are defined in
 * kring_events.bpf.c.
 */
#ifndef KRING_WAKE_BPF_H
#define KRING_WAKE_BPF_H

#include "kring_events.bpf.h"

#define CLOCK_MONOTONIC 1

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

struct kring_wake_map {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct wake_timer);
};
extern struct kring_wake_map kring_wake SEC(".maps");

/* While the wake timer is armed: when it was armed (ns, bpf_ktime_get_ns(),
 * never 0 in practice: | 1); 0 when not armed. */
extern __u64 kring_wake_armed;

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

#endif /* KRING_WAKE_BPF_H */
