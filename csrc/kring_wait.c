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

#ifdef KRING_TEST_HOOKS
/*
 * Test builds only (-DKRING_TEST_HOOKS, tests/hooked.py): the release
 * extension has none of this. On hardware the windows of the wake protocol
 * last nanoseconds; here a test stops the consumer inside one and publishes
 * a record from another process. Armed with kring_test_wait_pause(point,
 * notify_fd, resume_fd): the first time the wait reaches `point` it writes
 * the point's number to notify_fd and blocks until a byte arrives on
 * resume_fd. Points:
 *   1  the ring looked empty at the loop top (every wait kind);
 *   2  `waiting` stored, before the full fence (futex and event);
 *   3  after the re-check found nothing, before the sleep (futex and event).
 * While armed the store of `waiting = 1` is held back, as a store buffer
 * may hold it (x86-TSO lets a later load pass it): it becomes visible at
 * the next full fence or when the thread enters the sleep (a system call),
 * and a later store of 0 replaces it. So the fence is what makes `waiting`
 * visible to a producer before the re-check, and removing it shows.
 * kring_test_wait_timeouts() counts the sleeps since arming that ended by
 * their timeout: a wait that slept through a record it should have been
 * woken for (the loop top then finds the record, so the return code alone
 * would not tell).
 */
#include <unistd.h>

static int hook_point, hook_notify = -1, hook_resume = -1;
static volatile uint32_t *held_addr;    /* a store of 1 not yet visible, or NULL */
static int timeouts;                    /* sleeps that ended by their timeout */

void kring_test_wait_pause(int point, int notify_fd, int resume_fd)
{
    hook_point = point;
    hook_notify = notify_fd;
    hook_resume = resume_fd;
    held_addr = NULL;
    timeouts = 0;
}

int kring_test_wait_timeouts(void)
{
    return timeouts;
}

static void hook_flush(void)
{
    if (held_addr) {
        (kring_store_relaxed_u32)(held_addr, 1);
        held_addr = NULL;
    }
}

static void hook_at(int point)
{
    char b = (char)point;

    if (point != hook_point || hook_notify < 0)
        return;
    hook_point = 0;             /* once */
    if (write(hook_notify, &b, 1) != 1 || read(hook_resume, &b, 1) != 1)
        return;                 /* the test went away: carry on */
}

static void hook_store_u32(volatile uint32_t *p, uint32_t v)
{
    if (v == 1 && hook_notify >= 0) {
        held_addr = p;
        return;
    }
    if (held_addr == p)
        held_addr = NULL;
    (kring_store_relaxed_u32)(p, v);
}

static int hook_slept(int rc)
{
    if (rc == KRING_E_TIMEOUT)
        timeouts++;
    return rc;
}

#define KRING_TEST_HOOK(point) hook_at(point)
#define kring_store_relaxed_u32(p, v) hook_store_u32((p), (v))
#define kring_fence_full() (hook_flush(), (kring_fence_full)())
#define kring_plat_wait_data(c, seen, left) \
    (hook_flush(), hook_slept((kring_plat_wait_data)((c), (seen), (left))))
#define kring_plat_epoll_wait(m, left) hook_slept((kring_plat_epoll_wait)((m), (left)))
#else
#define KRING_TEST_HOOK(point)
#endif

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

static int ready_arg(const void *c)
{
    return ready((struct kring_consumer *)c);
}

static int wait_ready(struct kring_consumer *c, int64_t timeout_ns)
{
    const uint64_t start = kring_plat_monotonic_ns();
    int64_t left = timeout_ns;
    int spun = 0;
    int rc;

    for (;;) {
        if (ready(c))
            return KRING_OK;
        KRING_TEST_HOOK(1);
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
            uint32_t seen;

            if (!spun) {
                spun = 1;
                if (kring_spin_until(ready_arg, c, &c->spin, left))
                    return KRING_OK;
            }
            /* Pairs with the producer's increment of wake_seq before it wakes us. */
            seen = kring_load_acquire_u32(&c->m.prod->wake_seq);

            kring_store_relaxed_u32(&c->m.cons->waiting, 1);
            KRING_TEST_HOOK(2);
            /* Store waiting, full fence, load producer_pos: pairs with the
             * producer's store of producer_pos, full fence, load of waiting.
             * One of the two sees the other's store: no lost wakeup. */
            kring_fence_full();
            if (ready(c)) {
                kring_store_relaxed_u32(&c->m.cons->waiting, 0);
                return KRING_OK;
            }
            KRING_TEST_HOOK(3);
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

int kring_wait_drain(struct kring_consumer *c, struct kring_out *out, uint64_t max_records,
                     int64_t timeout_ns, uint64_t *n)
{
    uint32_t t;
    int rc;

    *n = 0;
    /* Before anything: a caller that fails after this call (also after a
     * timeout) rewinds to here, never to an older mark. */
    kring_mark(c);
    /* Rows of one read: a caller that reuses them sets nothing per call. */
    for (t = 0; t < KRING_MAX_TYPES; t++)
        out[t].count = 0;
    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = wait_ready(c, timeout_ns));
    if (rc != KRING_OK)
        return rc;
    /* Woken: drain at once, in this call. Nothing is allocated on the way;
     * the rows are the caller's. */
    return kring_drain(c, out, max_records, 0, n);
}
