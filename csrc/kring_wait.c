/*
 * kring_wait.c - the consumer's sleep: wait for records without losing a
 * wakeup (docs/PROTOCOL.md section 9), and tell a producer that died from
 * one that is only quiet.
 *
 * The consumer stores `waiting`, issues a full fence and re-reads
 * producer_pos before it sleeps; the producer stores producer_pos, issues a
 * full fence and reads `waiting` before it decides to wake. One of the two
 * sees the other's store. The platform layer sleeps (futex, epoll, event).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <kring/kring_atomic.h>
#include "kring_guard.h"
#include "kring_plat.h"

static int producer_gone(struct kring_consumer *c)
{
    if (!(kring_consumer_flags(c) & KRING_F_PRODUCER))
        return 0;
    /* Attached and not closed: gone if nobody holds the producer's lock. */
    return kring_plat_role_held(&c->m, 1) == 0;
}

/* Something to do: records pending, or the ring closed or broken. */
static int ready(struct kring_consumer *c)
{
    /* Pairs with the producer's release store of producer_pos. */
    return kring_load_acquire_u64(&c->m.prod->producer_pos) != c->pos ||
           (kring_consumer_flags(c) & (KRING_F_CLOSED | KRING_F_BROKEN)) != 0;
}

static int wait_ready(struct kring_consumer *c, int64_t timeout_ns)
{
    const uint64_t start = kring_plat_monotonic_ns();
    int64_t left = timeout_ns;
    int rc;

    for (;;) {
        if (ready(c))
            return KRING_OK;
        /* Pairs with the seq_cst store in kring_interrupt(). */
        if (kring_load_acquire_u32(&c->m.interrupted))
            return KRING_E_INTR;
        if (timeout_ns >= 0) {
            left = timeout_ns - (int64_t)(kring_plat_monotonic_ns() - start);
            if (left <= 0)
                return KRING_E_TIMEOUT;
        }
        switch (c->m.wait_kind) {
        case KRING_WAIT_FUTEX:
        case KRING_WAIT_EVENT: {
            /* Pairs with the producer's increment of wake_seq before it wakes us. */
            uint32_t seen = kring_load_acquire_u32(&c->m.prod->wake_seq);

            kring_store_relaxed_u32(&c->m.cons->waiting, 1);
            /* Store waiting, full fence, load producer_pos: pairs with the
             * producer's store of producer_pos, full fence, load of waiting.
             * One of the two sees the other's store: no lost wakeup. */
            kring_fence_full();
            if (ready(c)) {
                kring_store_relaxed_u32(&c->m.cons->waiting, 0);
                return KRING_OK;
            }
            rc = kring_plat_wait_data(c, seen, left);
            kring_store_relaxed_u32(&c->m.cons->waiting, 0);
            break;
        }
#if defined(__linux__)
        case KRING_WAIT_EPOLL:          /* kring_consumer_set_epoll: Linux only */
            rc = kring_plat_epoll_wait(&c->m, left);
            break;
#endif
        default:
            return ready(c) ? KRING_OK : KRING_E_TIMEOUT;
        }
        if (rc == KRING_E_INTR || rc == KRING_E_OS)
            return ready(c) ? KRING_OK : rc;
        /* KRING_OK, spurious wakeups and timeouts: re-check at the loop top. */
    }
}

/* ---- public entry points that touch ring memory: each inside a guard ---- */

int kring_producer_gone(struct kring_consumer *c)
{
    int rc;

    if (c->m.faulted)
        return 0;
    KRING_GUARDED(&c->m, rc = 0, rc = producer_gone(c));
    return rc;
}

int kring_wait(struct kring_consumer *c, int64_t timeout_ns)
{
    int rc;

    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = wait_ready(c, timeout_ns));
    return rc;
}
