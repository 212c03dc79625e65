/*
 * Forced into the driver's ring code (drv/kring_ring*.c, gcc -include) by the wake-window build of
 * tests/test_driver_ring_native.py only; the driver builds never see it.
 *
 * A model of the producer's store buffer, so that the window of the wake
 * protocol on the driver's side (PROTOCOL.md 9.1) can be entered on
 * purpose: while armed (drv/shim/wake_window.c), the release store of
 * producer_pos is held back, as x86-TSO lets a later load pass an earlier
 * store; it becomes visible at the next full fence, or when the ring's
 * lock is released (the shim stops there first, so that a consumer can run
 * in between). The fence in KRingWakeDecision is then what makes the new
 * producer_pos visible before `waiting` is read, and removing it shows.
 */
#ifndef KRING_SHIM_RING_HOOKS_H
#define KRING_SHIM_RING_HOOKS_H

#include <stdint.h>
#include <kring/kring_atomic.h>     /* the real accessors first: the macros below wrap them */

void kring_shim_store_release_u64(volatile uint64_t *p, uint64_t v);
void kring_shim_fence_full(void);

#define kring_store_release_u64(p, v) kring_shim_store_release_u64((p), (v))
#define kring_fence_full() kring_shim_fence_full()

#endif
