/*
 * kring_plat.h - the library's private interface: the platform layer that
 * the portable files (kring_consumer.c, kring_drain.c, kring_producer.c,
 * kring_meta.c) call down to, and the internal helpers they share. Not part
 * of the API: nothing here is in the cffi cdef (that reads kring_user.h).
 *
 * The platform layer is kring_linux.c or kring_win.c: it talks to the OS and
 * returns KRING_* codes, and never calls back up into a public entry point.
 */
#ifndef KRING_PLAT_H
#define KRING_PLAT_H

#include <string.h>

#include "kring_user.h"

/* ---- helpers of the portable files (kring_meta.c) ---------------------- */

/* Describe a mapping: the consumer page, producer page and data area at
 * these addresses, `capacity` data bytes (a power of two, or 0 with NULL
 * addresses: nothing mapped). Everything else starts empty: no wait
 * (KRING_WAIT_NONE), role 0, fd and epoll_fd -1, no handles, nothing to
 * unmap; whoever acquires those sets them afterwards. */
void kring_map_init(struct kring_map *m, struct kring_consumer_page *cons,
                    struct kring_producer_page *prod, uint8_t *data, uint64_t capacity,
                    int double_mapped, int has_meta);

/* The producer page a new ring starts with: the template's description and
 * schema, positions, counters and flags zero. */
int kring_meta_initial(struct kring_producer_page *page, const struct kring_producer_page *tmpl);
/* The producer's KRING_F_* flags, unguarded (kring_consumer.c). */
uint32_t kring_consumer_flags(const struct kring_consumer *c);
/* Mark the consumer's mapping faulted (truncated file): KRING_E_CORRUPT. */
int kring_consumer_truncated(struct kring_consumer *c);
/* Record why the ring is corrupt (reason, ring position, offending value)
 * in the consumer: KRING_E_CORRUPT (kring_consumer.c, kring_drain.c). */
int kring_consumer_corrupt(struct kring_consumer *c, int reason, uint64_t pos, uint64_t value);
/* Publish the consumer's position if it moved and wake a blocking producer,
 * unguarded (kring_commit, and kring_drain when it commits). */
void kring_consumer_commit_pos(struct kring_consumer *c);
/* Publish what the last commit asked for, as far as a hold lets it. */
void kring_consumer_publish(struct kring_consumer *c);
/* Copy and check the type bounds of a mapped ring. */
int kring_load_types(const struct kring_map *m, uint32_t *size, uint32_t *min_size);

/* Sequence accounting (PROTOCOL.md 5.6) for one delivered record
 * (kring_drain.c, kring_view.c). */
static inline void account_seq(uint64_t seq, uint64_t *next_seq, int64_t *gaps, int *started)
{
    if (seq >= *next_seq || !*started) {
        /* Unsigned arithmetic: hostile sequence numbers must not overflow. */
        *gaps = (int64_t)((uint64_t)*gaps + (*started ? seq - *next_seq : 0));
        *next_seq = seq + 1;
        *started = 1;
    } else {
        /* Late arrival filling an earlier gap (per-CPU producers
         * reserve in one order and number in another). */
        *gaps = (int64_t)((uint64_t)*gaps - 1);
    }
}

/* A user-mode producer's record header and event header at `rec`:
 * {len, pg_off = 0}, seq, ts_ns, {type, flags, reserved = 0}
 * (kring_producer.c, kring_reserve.c). */
static inline void kring_stamp_record(uint8_t *rec, uint32_t len, uint64_t seq, uint64_t ts,
                                      uint16_t type, uint16_t ev_flags)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    struct kring_record_header h;
    struct kring_event_header ev;

    h.len = len;
    h.pg_off = 0;
    ev.seq = seq;
    ev.ts_ns = ts;
    ev.type = type;
    ev.flags = ev_flags;
    ev.reserved = 0;
    memcpy(rec, &h, sizeof h);
    memcpy(rec + KRING_RECORD_HEADER_SIZE, &ev, sizeof ev);
#else
    /* Four little-endian words, each stored straight from a register:
     * building them in memory and copying that would stall on store
     * forwarding per record. */
    const uint64_t w0 = len, w3 = (uint64_t)type | (uint64_t)ev_flags << 16;

    memcpy(rec, &w0, 8);
    memcpy(rec + 8, &seq, 8);
    memcpy(rec + 16, &ts, 8);
    memcpy(rec + 24, &w3, 8);
#endif
}

/* The producer's helpers that kring_reserve.c shares (kring_producer.c):
 * the free bytes after reading consumer_pos once into *seen (-1: broken),
 * the wait for consumer_pos to move from `seen`, the wakeup of a sleeping
 * consumer, and whether kring_interrupt was called. */
int64_t kring_producer_free(struct kring_producer *p, uint64_t *seen);
int kring_producer_wait_space(struct kring_producer *p, uint64_t seen, int64_t timeout_ns);
void kring_producer_notify(struct kring_producer *p);
int kring_producer_interrupted(const struct kring_producer *p);
/* A full ring under the block policy: KRING_E_TIMEOUT when timeout_ns (from
 * `start`, monotonic) is used up (0: at once), KRING_E_INTR after
 * kring_interrupt, else wait for consumer_pos to move from `seen` and return
 * KRING_OK (look again) or the wait's KRING_E_INTR / KRING_E_OS. */
int kring_producer_wait_room(struct kring_producer *p, uint64_t seen, int64_t timeout_ns, uint64_t start);

/* ---- the platform layer (kring_linux.c / kring_win.c) ------------------ */

/* Map the ring `path` for `role` (0 consumer, 1 producer), checking a
 * private copy of its producer page first; fills *m. Refuses a symbolic
 * link, and for the producer a file owned by someone other than this user
 * or root unless any_owner (KRING_E_PERM, m->file_uid the owner). */
int kring_plat_map(struct kring_map *m, const char *path, int role, int any_owner);
/* Create the ring `path` from a template producer page (kring_shm_create);
 * on Windows, where a ring exists only while a handle is open, KRING_E_INVAL. */
int kring_plat_shm_create(const char *path, const struct kring_producer_page *meta_template, int mode);
/* Remove the ring `path` (kring_shm_unlink). */
int kring_plat_shm_unlink(const char *path);
/* Create the ring `path` from a template producer page and map it. */
int kring_plat_create(struct kring_map *m, const char *path,
                      const struct kring_producer_page *meta_template, int mode, int role);
/* Release what kring_plat_map or an attach acquired (views, fds, handles). */
void kring_plat_unmap(struct kring_map *m);
int kring_plat_wait_data(struct kring_consumer *c, uint32_t seen_wake_seq, int64_t timeout_ns);
void kring_plat_wake_data(struct kring_map *m);
int kring_plat_wait_space(struct kring_producer *p, uint32_t seen_cons_lo, int64_t timeout_ns);
void kring_plat_wake_space(struct kring_map *m);
/* Wake whatever this process waits on through m (kring_interrupt). */
void kring_plat_interrupt(struct kring_map *m);
uint64_t kring_plat_monotonic_ns(void);

/* Adaptive spinning before a sleep (kring_wait.c, kring_producer.c): a
 * waiter polls the other side's position for up to KRING_SPIN_NS before
 * it sleeps. A peer that is writing or draining moves its position again
 * within microseconds, and a sleep and its wakeup (a system call on each
 * side and a reschedule) cost more than that. A spin that sees nothing
 * come makes the next wait sleep at once, a second one in a row the next
 * three, and one that sees it come ends that: a quiet or trickling peer
 * costs a spin per four waits at most. */
#define KRING_SPIN_NS 50000
#define KRING_SPIN_MAX_FAILS 2

static inline void kring_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(_MSC_VER) && (defined(_M_X64) || defined(_M_IX86))
    _mm_pause();        /* <intrin.h> */
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

/* Poll `done(arg)` for up to KRING_SPIN_NS (at most `left_ns` when that
 * is >= 0), unless `s` says to sleep at once; 1 when it came true. */
static inline int kring_spin_until(int (*done)(const void *), const void *arg, struct kring_spin *s,
                                   int64_t left_ns)
{
    uint64_t until;
    int i;

    if (s->skip) {
        s->skip--;
        return 0;
    }
    until = kring_plat_monotonic_ns() + (left_ns >= 0 && left_ns < KRING_SPIN_NS ? (uint64_t)left_ns : KRING_SPIN_NS);
    do {
        for (i = 0; i < 64; i++) {
            if (done(arg)) {
                s->fails = 0;
                return 1;
            }
            kring_cpu_relax();
        }
    } while (kring_plat_monotonic_ns() < until);
    if (s->fails < KRING_SPIN_MAX_FAILS)
        s->fails++;
    s->skip = (1u << s->fails) - 1;
    return 0;
}
/* The wall clock (kring_time_ns). */
uint64_t kring_plat_realtime_ns(void);
/* Is `role` (0 consumer, 1 producer) held by some process? 1, 0, or -1 unknown. */
int kring_plat_role_held(struct kring_map *m, int role);
uint32_t kring_plat_pid(void);

#if defined(__linux__)
/* ---- Linux only --------------------------------------------------------- */

/* The KRING_E_* code for errno `err`, saved in m->os_error when m is not
 * NULL (kring_linux.c). */
int kring_plat_from_errno(struct kring_map *m, int err);
/* The same, also naming the call that failed (m->os_call, a static string). */
int kring_plat_os_fail(struct kring_map *m, const char *call, int err);
/* Wait until the epoll fd of a KRING_WAIT_EPOLL consumer is readable. */
int kring_plat_epoll_wait(struct kring_map *m, int64_t timeout_ns);
#endif

#endif /* KRING_PLAT_H */
