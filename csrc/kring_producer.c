/*
 * kring_producer.c - the user-mode producer: one writer per ring.
 *
 * The producer keeps its own position and sequence number and never reads
 * them back from shared memory. It reads consumer_pos once per write call
 * (and once per wait for space), range-checks it, and treats nonsense as a
 * full ring: it sets KRING_F_BROKEN and stops writing, so whatever the
 * consumer page holds, no byte is written outside the data area.
 *
 * Records are written whole (header, event header, body) and published
 * together by one release store of producer_pos, so a consumer never sees a
 * torn record, even if the producer is killed mid-write. A record never
 * straddles the end of the data area: a DISCARD record pads to the end.
 *
 * Every public entry point that touches ring memory runs inside a fault
 * guard (kring_guard.h): a ring file truncated under the mapping makes the
 * producer broken (KRING_E_BROKEN, m.faulted set) instead of killing it.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_copy.h"
#include "kring_guard.h"
#include "kring_plat.h"

uint64_t kring_time_ns(void)
{
    return kring_plat_realtime_ns();
}

static void set_flags(struct kring_map *m, uint32_t set, uint32_t clear)
{
    /* seq_cst read-modify-write: ordered after every earlier store,
     * producer_pos included (pairs with kring_ring_flags()). */
    if (set)
        kring_fetch_or_u32(&m->prod->flags, set);
    if (clear)
        kring_fetch_and_u32(&m->prod->flags, ~clear);
}

/* Wake a sleeping consumer after producer_pos (or flags) changed. */
void kring_producer_notify(struct kring_producer *p)
{
    /* Store producer_pos, full fence, load waiting: pairs with the consumer's
     * store of waiting, full fence, load of producer_pos in kring_wait(). */
    kring_fence_full();
    if (kring_load_relaxed_u32(&p->m.cons->waiting)) {
        /* The consumer futex-waits on wake_seq with the value it read before
         * setting waiting: changing it first makes that wait return. */
        kring_fetch_add_u32(&p->m.prod->wake_seq, 1);
        kring_plat_wake_data(&p->m);
        p->wakeups++;
    }
}

/* Read consumer_pos once into *seen and return the free bytes (fewer while
 * a reservation's rows hold the ring), or -1 (and mark the ring broken)
 * when the value cannot be right. */
int64_t kring_producer_free(struct kring_producer *p, uint64_t *seen)
{
    /* Pairs with the consumer's release store of consumer_pos in kring_commit(). */
    const uint64_t cons = kring_load_acquire_u64(&p->m.cons->consumer_pos);
    const uint64_t used = p->pos - cons;

    *seen = cons;
    if ((cons & (KRING_ALIGN - 1)) != 0 || used > p->m.capacity) {
        if (!p->broken) {
            p->broken = 1;
            p->bad_consumer_pos = cons;
            set_flags(&p->m, KRING_F_BROKEN, 0);
            kring_producer_notify(p);
        }
        return -1;
    }
    /* Rows of a reservation still in use (kring_reserve.c): not over them. */
    if (p->holding && p->pos - p->hold > used)
        return (int64_t)(p->m.capacity - (p->pos - p->hold));
    return (int64_t)(p->m.capacity - used);
}

static int check_lengths(const struct kring_producer *p, uint16_t type, uint32_t len,
                         const uint32_t *lens, uint64_t n)
{
    uint64_t i;
    uint32_t size, min;

    if (type == 0 || type >= KRING_MAX_TYPES || p->type_size[type] == 0)
        return KRING_E_INVAL;
    size = p->type_size[type];
    min = p->type_min[type];
    if (!lens)
        return (len <= size - KRING_EVENT_HEADER_SIZE && len + KRING_EVENT_HEADER_SIZE >= min)
                   ? KRING_OK : KRING_E_INVAL;
    for (i = 0; i < n; i++)
        if (lens[i] > size - KRING_EVENT_HEADER_SIZE || lens[i] + KRING_EVENT_HEADER_SIZE < min)
            return KRING_E_INVAL;
    return KRING_OK;
}

/* The mapping faulted (or did before): the file was truncated. */
static int truncated(struct kring_producer *p)
{
    p->m.faulted = 1;
    p->broken = 1;
    return KRING_E_BROKEN;
}

int kring_producer_interrupted(const struct kring_producer *p)
{
    /* Pairs with the seq_cst store in kring_interrupt(). */
    return kring_load_acquire_u32(&p->m.interrupted) != 0;
}

/* The spin's question (kring_spin_until): has consumer_pos moved from `seen`? */
struct space_moved {
    const struct kring_producer *p;
    uint64_t seen;
};

static int space_moved(const void *arg)
{
    const struct space_moved *a = arg;

    /* Pairs with the consumer's release store of consumer_pos. */
    return kring_load_acquire_u64(&a->p->m.cons->consumer_pos) != a->seen;
}

/* Block policy: sleep until consumer_pos moves away from `seen`, the value
 * that showed the ring full, or timeout. Waiting on a value read later
 * would lose the wakeup of a consumer that drained in between. */
int kring_producer_wait_space(struct kring_producer *p, uint64_t seen, int64_t timeout_ns)
{
    const struct space_moved moved = {p, seen};
    int rc;

    /* A consumer that is draining frees room within microseconds: poll
     * before sleeping (kring_plat.h). */
    if (kring_spin_until(space_moved, &moved, &p->spin, timeout_ns))
        return KRING_OK;
    kring_store_relaxed_u32(&p->m.prod->producer_waiting, 1);
    /* Store producer_waiting, full fence, load consumer_pos: pairs with the
     * consumer's store of consumer_pos, full fence, load of producer_waiting
     * in kring_commit(). */
    kring_fence_full();
    if (kring_load_acquire_u64(&p->m.cons->consumer_pos) != seen) {
        kring_store_relaxed_u32(&p->m.prod->producer_waiting, 0);
        return KRING_OK;
    }
    /* The low 32 bits of consumer_pos change on every advance (capacity
     * <= 2 GiB), so they serve as the futex word. */
    rc = kring_plat_wait_space(p, (uint32_t)seen, timeout_ns);
    kring_store_relaxed_u32(&p->m.prod->producer_waiting, 0);
    return rc;
}

int kring_producer_wait_room(struct kring_producer *p, uint64_t seen, int64_t timeout_ns, uint64_t start)
{
    int64_t left = timeout_ns;
    int rc;

    if (timeout_ns == 0)
        return KRING_E_TIMEOUT;
    if (kring_producer_interrupted(p))
        return KRING_E_INTR;
    if (timeout_ns > 0) {
        left = timeout_ns - (int64_t)(kring_plat_monotonic_ns() - start);
        if (left <= 0)
            return KRING_E_TIMEOUT;
    }
    rc = kring_producer_wait_space(p, seen, left);
    return rc == KRING_E_INTR || rc == KRING_E_OS ? rc : KRING_OK;
}

static int write_records(struct kring_producer *p, uint16_t type, const uint8_t *src, uint64_t stride,
                         uint32_t len, const uint32_t *lens, uint64_t n, uint16_t ev_flags,
                         int64_t timeout_ns, uint64_t *done)
{
    const uint64_t cap = p->m.capacity;
    const uint64_t mask = p->m.mask;
    uint8_t *const data = p->m.data;
    const uint64_t start = timeout_ns > 0 ? kring_plat_monotonic_ns() : 0;
    uint64_t ts = kring_time_ns();
    uint64_t i = 0;
    int rc;

    *done = 0;
    rc = check_lengths(p, type, len, lens, n);
    if (rc != KRING_OK)
        return rc;

    while (i < n) {
        uint64_t seen = 0;
        int64_t room = p->broken ? -1 : kring_producer_free(p, &seen);
        uint64_t pos = p->pos;
        const uint64_t first = i;

        if (room < 0) {
            if (p->policy == KRING_DROP) {
                p->dropped += n - i;
                p->seq += n - i;
                kring_store_relaxed_u64(&p->m.prod->dropped, p->dropped);
            }
            rc = KRING_E_BROKEN;
            break;
        }
        for (; i < n; i++) {
            const uint32_t body = lens ? lens[i] : len;
            const uint32_t plen = KRING_EVENT_HEADER_SIZE + body;
            const uint64_t span = KRING_RECORD_SPAN(plen);
            uint64_t off = pos & mask;
            const uint64_t pad = off + span > cap ? cap - off : 0;
            struct kring_record_header h;
            uint8_t *rec;

            if (pad + span > (uint64_t)room)
                break;
            if (pad) {
                h.len = (uint32_t)(pad - KRING_RECORD_HEADER_SIZE) | KRING_DISCARD_BIT;
                h.pg_off = 0;
                memcpy(data + off, &h, sizeof h);
                pos += pad;
                room -= (int64_t)pad;
                off = 0;
            }
            rec = data + off;
            kring_stamp_record(rec, plen, p->seq++, ts, type, ev_flags);
            kring_copy_bytes(rec + KRING_RECORD_HEADER_SIZE + KRING_EVENT_HEADER_SIZE, src + i * stride, body);
            pos += span;
            room -= (int64_t)span;
        }
        if (i > first) {
            p->written += i - first;
            kring_store_relaxed_u64(&p->m.prod->written, p->written);
            /* Pairs with the consumer's acquire load of producer_pos in
             * kring_drain(): the records and counters above are visible
             * before the position that covers them. */
            kring_store_release_u64(&p->m.prod->producer_pos, pos);
            p->pos = pos;
            kring_producer_notify(p);
        }
        if (i == n)
            break;
        /* Full. */
        if (p->policy == KRING_DROP) {
            p->dropped += n - i;
            p->seq += n - i;
            kring_store_relaxed_u64(&p->m.prod->dropped, p->dropped);
            break;
        }
        rc = kring_producer_wait_room(p, seen, timeout_ns, start);
        if (rc != KRING_OK)
            break;
        ts = kring_time_ns();
    }
    *done = i;
    return rc;
}

static int flush(struct kring_producer *p, int64_t timeout_ns)
{
    const uint64_t start = kring_plat_monotonic_ns();

    for (;;) {
        uint64_t seen;
        int64_t room = kring_producer_free(p, &seen), left = timeout_ns;
        int rc;

        if (room < 0)
            return KRING_E_BROKEN;
        if ((uint64_t)room == p->m.capacity)
            return KRING_OK;
        if (kring_producer_interrupted(p))
            return KRING_E_INTR;
        if (timeout_ns >= 0) {
            left = timeout_ns - (int64_t)(kring_plat_monotonic_ns() - start);
            if (left <= 0)
                return KRING_E_TIMEOUT;
        }
        rc = kring_producer_wait_space(p, seen, left);
        if (rc == KRING_E_INTR || rc == KRING_E_OS)
            return rc;
    }
}

/* After the platform layer mapped a ring: types, position, counters, flags. */
static int attach_mapped(struct kring_producer *p, int policy)
{
    uint64_t pos;
    int rc = kring_load_types(&p->m, p->type_size, p->type_min);

    /* Our own page: only a previous producer wrote it. Still check it. */
    pos = kring_load_acquire_u64(&p->m.prod->producer_pos);
    if (rc == KRING_OK && (pos & (KRING_ALIGN - 1)) != 0)
        rc = KRING_E_CORRUPT;
    if (rc != KRING_OK) {
        kring_plat_unmap(&p->m);
        return rc;
    }
    p->pos = pos;
    p->written = kring_load_relaxed_u64(&p->m.prod->written);
    p->dropped = kring_load_relaxed_u64(&p->m.prod->dropped);
    p->seq = p->written + p->dropped;
    p->policy = policy;
    p->m.prod->producer_pid = kring_plat_pid();
    set_flags(&p->m, KRING_F_PRODUCER | (policy == KRING_BLOCK ? KRING_F_BLOCKING : 0),
              KRING_F_CLOSED | KRING_F_BROKEN | (policy == KRING_BLOCK ? 0 : KRING_F_BLOCKING));
    return KRING_OK;
}

/* ---- public entry points that touch ring memory: each inside a guard ---- */

int kring_write(struct kring_producer *p, uint16_t type, const uint8_t *src, uint64_t stride,
                uint32_t len, const uint32_t *lens, uint64_t n, uint16_t ev_flags,
                int64_t timeout_ns, uint64_t *done)
{
    int rc;

    /* Records written before a fault are published and counted; none after. */
    *done = 0;
    if (p->m.faulted)
        return truncated(p);
    KRING_GUARDED(&p->m, rc = truncated(p),
                  rc = write_records(p, type, src, stride, len, lens, n, ev_flags, timeout_ns, done));
    return rc;
}

int kring_flush(struct kring_producer *p, int64_t timeout_ns)
{
    int rc;

    if (p->m.faulted)
        return truncated(p);
    KRING_GUARDED(&p->m, rc = truncated(p), rc = flush(p, timeout_ns));
    return rc;
}

static int consumer_gone(struct kring_producer *p)
{
    /* Attached and not closed: gone if nobody holds the consumer's lock. */
    if (!(kring_load_acquire_u32(&p->m.cons->consumer_flags) & KRING_C_ATTACHED))
        return 0;
    return kring_plat_role_held(&p->m, 0) == 0;
}

int kring_consumer_gone(struct kring_producer *p)
{
    int rc;

    if (p->m.faulted)
        return 0;
    KRING_GUARDED(&p->m, rc = (truncated(p), 0), rc = consumer_gone(p));
    return rc;
}

static int open_mapped(struct kring_producer *p, int policy)
{
    int rc;

    KRING_GUARDED(&p->m, rc = truncated(p), rc = attach_mapped(p, policy));
    if (rc != KRING_OK)
        kring_plat_unmap(&p->m);        /* idempotent: attach_mapped may have done it */
    return rc;
}

int kring_producer_open(struct kring_producer *p, const char *path, int policy)
{
    const int any_owner = (policy & KRING_ANY_OWNER) != 0;
    int rc;

    policy &= ~KRING_ANY_OWNER;
    if (!p || !path || (policy != KRING_DROP && policy != KRING_BLOCK))
        return KRING_E_INVAL;
    memset(p, 0, sizeof *p);
    rc = kring_plat_map(&p->m, path, 1, any_owner);
    return rc == KRING_OK ? open_mapped(p, policy) : rc;
}

int kring_producer_create(struct kring_producer *p, const char *path,
                          const struct kring_producer_page *meta_template, int mode, int policy)
{
    int rc;

    if (!p || !path || !meta_template || (policy != KRING_DROP && policy != KRING_BLOCK))
        return KRING_E_INVAL;
    memset(p, 0, sizeof *p);
    rc = kring_plat_create(&p->m, path, meta_template, mode, 1);
    return rc == KRING_OK ? open_mapped(p, policy) : rc;
}

static void close_clean(struct kring_producer *p)
{
    set_flags(&p->m, KRING_F_CLOSED, KRING_F_PRODUCER);
    kring_producer_notify(p);
}

void kring_producer_mark_closed(struct kring_producer *p)
{
    if (p->m.prod && !p->m.faulted)
        KRING_GUARDED(&p->m, truncated(p), close_clean(p));
}

void kring_producer_close(struct kring_producer *p, int clean)
{
    if (!p->m.prod)
        return;
    if (clean && !p->m.faulted)
        KRING_GUARDED(&p->m, truncated(p), close_clean(p));
    kring_plat_unmap(&p->m);
    kring_map_init(&p->m, NULL, NULL, NULL, 0, 0, 0);
}
