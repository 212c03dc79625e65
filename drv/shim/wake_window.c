/*
 * The wake protocol between kring.sys and a mapped Windows consumer
 * (PROTOCOL.md 9.1), one window at a time (tests/test_driver_ring_native.py).
 *
 * The producer is the driver's own KRingRingWrite, KRingWakeDecision and
 * KRingRingSignal (drv/kring_ring_write.c); the consumer is the one pykring runs
 * on Windows: attached with kring_consumer_map_driver (csrc/kring_driver_map.c,
 * so KRING_WAIT_EVENT) and waiting in kring_wait (csrc/kring_wait.c, built
 * with -DKRING_TEST_HOOKS), its sleep on the ring's event with the
 * semantics of csrc/kring_win.c: an auto-reset event that remembers a set,
 * no value compare (drv/shim/shim.c). Under Wine the driver cannot map a
 * ring (its MmMapLockedPagesSpecifyCache returns NULL) and the client falls
 * back to READ, which arms under the driver's lock: this code path is only
 * reachable here.
 *
 *   wake_window consumer POINT   the consumer stops at POINT of its wait
 *                                (csrc/kring_wait.c: 1 ring empty at the
 *                                loop top, 2 `waiting` stored before the
 *                                fence, 3 after the re-check, before the
 *                                sleep) and the driver writes one record then
 *   wake_window driver           the driver stops after its wake decision,
 *                                before its lock is released, its store of
 *                                producer_pos not yet visible unless its full
 *                                fence made it so (drv/shim/ring_hooks.h);
 *                                the consumer then waits, and stops before
 *                                its sleep if it saw nothing
 *
 * Either way the wait must end with the record without sleeping to its
 * timeout (the hook counts such sleeps; nothing reads a clock). Prints
 * "OK ..." or "FAIL ..." and exits 0 or 1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "kring_drv.h"
#include "kring_user.h"

PKRING_RING kring_shim_create(uint64_t ring_size, uint32_t method);
void kring_shim_free(PKRING_RING ring);
int kring_consumer_map_driver(struct kring_consumer *c, const struct kring_attach_out *reply, void *event_handle,
                              struct kring_producer_page *meta);
void kring_test_wait_pause(int point, int notify_fd, int resume_fd);
int kring_test_wait_timeouts(void);

#define WAIT_NS (5LL * 1000000000LL)    /* a lost wakeup sleeps all of it */

extern void (*kring_shim_unlock_hook)(void);
int kring_shim_wait_event(HANDLE Handle, int64_t timeout_ns);
int kring_linux_plat_wait_data(struct kring_consumer *c, uint32_t seen_wake_seq, int64_t timeout_ns);

/* The consumer's sleep, as csrc/kring_win.c has it for KRING_WAIT_EVENT:
 * WaitForSingleObject on the ring's auto-reset event, seen_wake_seq unused
 * (the event remembers a set that came first). kring_linux.c's futex wait
 * is renamed away in this build (-Dkring_plat_wait_data=...). */
int kring_plat_wait_data(struct kring_consumer *c, uint32_t seen_wake_seq, int64_t timeout_ns)
{
    if (c->m.wait_kind != KRING_WAIT_EVENT)
        return kring_linux_plat_wait_data(c, seen_wake_seq, timeout_ns);
    return kring_shim_wait_event(c->m.h_data_event, timeout_ns) ? KRING_E_TIMEOUT : KRING_OK;
}

/* drv/shim/ring_hooks.h: the driver's store buffer, holding producer_pos. */
static volatile uint64_t *hold_addr;    /* while armed: the producer_pos to hold */
static volatile uint64_t *held_addr;    /* a store not yet visible, or NULL */
static uint64_t held_value;
static int hold_notify = -1, hold_resume = -1;

void kring_shim_store_release_u64(volatile uint64_t *p, uint64_t v)
{
    if (p == hold_addr) {
        held_addr = p;
        held_value = v;
        return;
    }
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

static void flush_held(void)
{
    if (held_addr) {
        __atomic_store_n(held_addr, held_value, __ATOMIC_RELEASE);
        held_addr = NULL;
    }
}

void kring_shim_fence_full(void)
{
    flush_held();
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* The first lock release after arming: tell the test, wait for it, then
 * let the store out (a lock release is a release: it drains eventually). */
static void stop_before_unlock(void)
{
    char b = 'D';

    kring_shim_unlock_hook = NULL;      /* once */
    hold_addr = NULL;
    if (write(hold_notify, &b, 1) != 1 || read(hold_resume, &b, 1) != 1)
        abort();
    flush_held();
}

void kring_shim_hold_producer_pos(PKRING_RING r, int notify_fd, int resume_fd)
{
    hold_notify = notify_fd;
    hold_resume = resume_fd;
    hold_addr = &r->Prod->producer_pos;
    kring_shim_unlock_hook = stop_before_unlock;
}

static PKRING_RING ring;
static struct kring_consumer cons;
static int cons_notify[2], cons_resume[2], drv_notify[2], drv_resume[2];
static int wait_rc = 99, timeouts = -1, published;

/* What a process callback does for each ring (drv/kring_rings.c). */
static void *write_one(void *arg)
{
    struct kring_process_start r;

    (void)arg;
    memset(&r, 0, sizeof r);
    r.pid = 42;
    if (KRingRingWrite(ring, KRING_TYPE_PROCESS_START, 0, 1000, (const UCHAR *)&r, KRING_PROCESS_START_MIN_SIZE))
        KRingRingSignal(ring);
    __atomic_store_n(&published, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *consumer(void *arg)
{
    char done = 'R';

    kring_test_wait_pause((int)(intptr_t)arg, cons_notify[1], cons_resume[0]);
    wait_rc = kring_wait(&cons, WAIT_NS);
    timeouts = kring_test_wait_timeouts();
    if (write(cons_notify[1], &done, 1) != 1)
        abort();
    return NULL;
}

static char next_byte(int fd)
{
    char b = 0;

    if (read(fd, &b, 1) != 1)
        abort();
    return b;
}

static void resume(int fd)
{
    char b = 1;

    if (write(fd, &b, 1) != 1)
        abort();
}

int main(int argc, char **argv)
{
    static struct kring_process_start rows[4];
    struct kring_attach_out *reply = calloc(1, sizeof *reply);
    struct kring_out out[KRING_MAX_TYPES];
    pthread_t ct, pt;
    uint64_t n = 0;
    int point = 0, drain_rc, reached = 0;
    char b;

    if (argc < 2 || (strcmp(argv[1], "driver") != 0 && (argc != 3 || strcmp(argv[1], "consumer") != 0))) {
        fprintf(stderr, "usage: wake_window consumer 1|2|3 | wake_window driver\n");
        return 2;
    }
    if (pipe(cons_notify) || pipe(cons_resume) || pipe(drv_notify) || pipe(drv_resume) || !reply)
        return 2;
    ring = kring_shim_create(1 << 16, KRING_METHOD_MAP);
    if (!ring)
        return 2;
    /* The ATTACH reply of a mapped ring, the views being the ring itself. */
    reply->capacity = ring->Capacity;
    reply->consumer_page = (uintptr_t)ring->Cons;
    reply->producer_page = (uintptr_t)ring->Prod;
    reply->data = (uintptr_t)ring->Data;
    if (kring_consumer_map_driver(&cons, reply, ring->EventHandle, NULL) != KRING_OK ||
        cons.m.wait_kind != KRING_WAIT_EVENT) {
        printf("FAIL attach\n");
        return 1;
    }

    if (strcmp(argv[1], "consumer") == 0) {
        point = atoi(argv[2]);
        pthread_create(&ct, NULL, consumer, (void *)(intptr_t)point);
        b = next_byte(cons_notify[0]);
        if (b == (char)point) {
            reached = 1;
            write_one(NULL);                    /* in the window */
            resume(cons_resume[1]);
            b = next_byte(cons_notify[0]);
        }
        pthread_join(ct, NULL);
    } else {
        /* The driver first: it stops before its lock release, having decided. */
        kring_shim_hold_producer_pos(ring, drv_notify[1], drv_resume[0]);
        pthread_create(&pt, NULL, write_one, NULL);
        next_byte(drv_notify[0]);
        point = 3;
        pthread_create(&ct, NULL, consumer, (void *)(intptr_t)point);
        b = next_byte(cons_notify[0]);
        resume(drv_resume[1]);                  /* the store becomes visible, the lock is released */
        pthread_join(pt, NULL);
        if (b == (char)point) {
            reached = 1;                        /* the consumer saw nothing and is about to sleep */
            resume(cons_resume[1]);
            b = next_byte(cons_notify[0]);
        }
        pthread_join(ct, NULL);
    }

    memset(out, 0, sizeof out);
    out[KRING_TYPE_PROCESS_START].buf = (uint8_t *)rows;
    out[KRING_TYPE_PROCESS_START].capacity = 4;
    drain_rc = kring_drain(&cons, out, UINT64_MAX, 1, &n);
    {
        int ok = published && wait_rc == KRING_OK && timeouts == 0 && drain_rc == KRING_OK &&
                 out[KRING_TYPE_PROCESS_START].count == 1 && rows[0].pid == 42 && b == 'R';

        printf("%s %s point %d reached %d published %d wait %d timeouts %d drained %llu wakeups %llu\n",
               ok ? "OK" : "FAIL", argv[1], point, reached, published, wait_rc, timeouts,
               (unsigned long long)out[KRING_TYPE_PROCESS_START].count, (unsigned long long)ring->Wakeups);
        kring_shim_free(ring);
        free(reply);
        return ok ? 0 : 1;
    }
}
