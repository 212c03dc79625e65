/*
 * kring_reserve.c - zero-copy writes: room for n records of one type,
 * contiguous in the data area, that the caller fills in place; then the
 * records are stamped (length, seq, ts, type, flags) and published by one
 * release store of producer_pos, as kring_write publishes (kring_producer.c).
 *
 * Nothing of a reservation is visible before kring_publish: the consumer
 * reads no byte past producer_pos, so a reservation that is given up, or a
 * producer that dies while filling one, leaves the ring as it was. Only a
 * DISCARD record padding to the end of the data area may be published
 * early, so that the run of rows starts at offset 0 and never wraps.
 *
 * A reservation takes at most a quarter of the data area. A consumer whose
 * last zero-copy view is still referenced holds at most another quarter
 * (kring_view.c): the two can always make progress together, and a block
 * producer never waits on space that only its own waiting keeps.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_guard.h"
#include "kring_plat.h"

/* The mapping faulted (or did before): the file was truncated. */
static int faulted(struct kring_producer *p)
{
    p->m.faulted = 1;
    p->broken = 1;
    return KRING_E_BROKEN;
}

/* Publish a DISCARD record from the position to the end of the data area. */
static void publish_pad(struct kring_producer *p, uint64_t pad)
{
    struct kring_record_header h;

    h.len = (uint32_t)(pad - KRING_RECORD_HEADER_SIZE) | KRING_DISCARD_BIT;
    h.pg_off = 0;
    memcpy(p->m.data + (p->pos & p->m.mask), &h, sizeof h);
    p->pos += pad;
    /* Pairs with the consumer's acquire load of producer_pos. */
    kring_store_release_u64(&p->m.prod->producer_pos, p->pos);
    kring_producer_notify(p);
}

static int reserve(struct kring_producer *p, uint64_t n, uint64_t span, int64_t timeout_ns,
                   struct kring_reservation *r)
{
    const uint64_t cap = p->m.capacity;
    const uint64_t need = n * span;
    const uint64_t start = timeout_ns > 0 ? kring_plat_monotonic_ns() : 0;

    for (;;) {
        uint64_t seen = 0;
        const int64_t room = p->broken ? -1 : kring_producer_free(p, &seen);
        const uint64_t off = p->pos & p->m.mask;
        const uint64_t pad = off + need > cap ? cap - off : 0;
        int rc;

        if (room < 0)
            return KRING_E_BROKEN;
        if (pad && pad <= (uint64_t)room) {
            publish_pad(p, pad);        /* the rows start at offset 0 */
            continue;
        }
        if (!pad && need <= (uint64_t)room) {
            if (!p->m.lent)
                kring_guard_lend(&p->m);    /* the rows go to numpy */
            r->offset = off + KRING_RECORD_HEADER_SIZE;
            r->start = p->pos;
            r->count = n;
            return KRING_OK;
        }
        if (p->policy == KRING_DROP)
            return KRING_OK;            /* count 0: the caller counts the drop */
        rc = kring_producer_wait_room(p, seen, timeout_ns, start);
        if (rc != KRING_OK)
            return rc;
    }
}

int kring_reserve(struct kring_producer *p, uint16_t type, uint64_t n, int64_t timeout_ns,
                  struct kring_reservation *r)
{
    uint64_t span;
    int rc;

    memset(r, 0, sizeof *r);
    if (type == 0 || type >= KRING_MAX_TYPES || p->type_size[type] == 0)
        return KRING_E_INVAL;
    r->type = type;
    r->size = p->type_size[type];
    r->span = span = KRING_RECORD_SPAN(r->size);
    if (n > p->m.capacity / 4 / span)
        return KRING_E_TOOBIG;
    if (n == 0)
        return KRING_OK;
    if (p->m.faulted)
        return faulted(p);
    KRING_GUARDED(&p->m, rc = faulted(p), rc = reserve(p, n, span, timeout_ns, r));
    return rc;
}

static void publish(struct kring_producer *p, const struct kring_reservation *r, uint64_t n,
                    uint16_t ev_flags)
{
    uint8_t *rec = p->m.data + r->offset - KRING_RECORD_HEADER_SIZE;
    const uint64_t ts = kring_time_ns();
    uint64_t i;

    for (i = 0; i < n; i++, rec += r->span)
        kring_stamp_record(rec, r->size, p->seq++, ts, r->type, ev_flags);
    p->written += n;
    kring_store_relaxed_u64(&p->m.prod->written, p->written);
    p->pos += n * r->span;
    /* Pairs with the consumer's acquire load of producer_pos: the records
     * and counters above are visible before the position that covers them. */
    kring_store_release_u64(&p->m.prod->producer_pos, p->pos);
    kring_producer_notify(p);
}

int kring_publish(struct kring_producer *p, const struct kring_reservation *r, uint64_t n,
                  uint16_t ev_flags)
{
    int rc = KRING_OK;

    if (n == 0)
        return KRING_OK;
    if (n > r->count || r->offset - KRING_RECORD_HEADER_SIZE != (p->pos & p->m.mask))
        return KRING_E_INVAL;           /* not the producer's current reservation */
    if (p->m.faulted)
        return faulted(p);
    KRING_GUARDED(&p->m, rc = faulted(p), publish(p, r, n, ev_flags));
    return rc;
}

void kring_count_dropped(struct kring_producer *p, uint64_t n)
{
    p->dropped += n;
    p->seq += n;
    if (!p->m.faulted)
        KRING_GUARDED(&p->m, faulted(p), kring_store_relaxed_u64(&p->m.prod->dropped, p->dropped));
}

void kring_producer_hold(struct kring_producer *p, uint64_t pos, int hold)
{
    p->hold = pos;
    p->holding = hold != 0;
}
