/*
 * kring_view.c - zero-copy reads: find the run of records from the
 * consumer's private position on that a caller can use in place, as rows of
 * one type with a fixed stride, and move the private position past it. The
 * caller publishes that position when it is done with the rows (commit);
 * while rows of a view are still in use, the consumer's hold keeps the
 * commit from publishing past their start (kring_consumer.c).
 *
 * A view is a run of records that all carry the same type and the full
 * size of that type (len == type_size): every row then has all the bytes
 * its dtype reads, and the rows are span bytes apart. A shorter record (a
 * variable-length kernel record), a record of another type, a busy one or
 * the end of the data area ends the run, and so does a quarter of the data
 * area (the first record aside): a view whose rows are kept after its block
 * holds at most that much of the ring (kring_reserve.c says why). A view of
 * nothing with copy set tells the caller to copy instead (kring_drain). The checks are kring_drain's, on the same
 * private bounds: nothing in the ring is trusted.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_guard.h"
#include "kring_plat.h"

/* The records right behind a run's first one with the very same header word
 * and type: as kring_drain.c's drain_run, two compares each, within the
 * bounds the caller hoisted (avail bytes, at most max records). */
static uint64_t run(const uint8_t *rec, uint64_t avail, uint64_t max, uint32_t hlen, uint16_t type,
                    uint64_t *next_seq, int64_t *gaps)
{
    const uint64_t span = KRING_RECORD_SPAN(hlen);
    uint64_t nseq = *next_seq, k;
    int64_t g = *gaps;
    int started = 1;

    for (k = 0; k < max && span <= avail; k++, avail -= span, rec += span) {
        const uint8_t *payload = rec + KRING_RECORD_HEADER_SIZE;
        uint64_t seq;
        uint16_t rtype;

        /* Pairs with the producer's release store of the header word. */
        if (kring_load_acquire_u32((const volatile uint32_t *)rec) != hlen)
            break;
        memcpy(&rtype, payload + offsetof(struct kring_event_header, type), sizeof rtype);
        if (rtype != type)
            break;
        memcpy(&seq, payload + offsetof(struct kring_event_header, seq), sizeof seq);
        account_seq(seq, &nseq, &g, &started);
    }
    *next_seq = nseq;
    *gaps = g;
    return k;
}

static int view(struct kring_consumer *c, uint64_t max_records, struct kring_view *v)
{
    const uint64_t cap = c->m.capacity;
    const uint64_t mask = c->m.mask;
    const uint8_t *const data = c->m.data;
    const int single = !c->m.double_mapped;
    /* Pairs with the producer's release store of producer_pos. */
    const uint64_t prod = kring_load_acquire_u64(&c->m.prod->producer_pos);
    uint64_t pos = c->pos;

    memset(v, 0, sizeof *v);
    if (prod - pos > cap || (prod & (KRING_ALIGN - 1)) != 0)
        return kring_consumer_corrupt(c, KRING_BAD_PRODUCER_POS, pos, prod);
    while (pos != prod && max_records > 0) {
        const uint64_t off = pos & mask;
        const uint8_t *rec = data + off;
        /* Pairs with the producer's release store of the header word. */
        const uint32_t hlen = kring_load_acquire_u32((const volatile uint32_t *)rec);
        const uint32_t len = hlen & KRING_LEN_MASK;
        const uint64_t span = KRING_RECORD_SPAN(len);
        struct kring_event_header ev;
        uint64_t avail, most, k;

        if (hlen & KRING_BUSY_BIT)
            break;
        if (span > prod - pos)
            return kring_consumer_corrupt(c, KRING_BAD_LENGTH, pos, len);
        if (single && off + span > cap)
            return kring_consumer_corrupt(c, KRING_BAD_STRADDLE, pos, len);
        if (hlen & KRING_DISCARD_BIT) {
            pos += span;                /* padding before the run: skipped */
            c->pos = pos;
            continue;
        }
        if (len < KRING_EVENT_HEADER_SIZE)
            return kring_consumer_corrupt(c, KRING_BAD_SHORT, pos, len);
        memcpy(&ev, rec + KRING_RECORD_HEADER_SIZE, sizeof ev);
        if (ev.type >= KRING_MAX_TYPES || c->type_size[ev.type] == 0)
            return kring_consumer_corrupt(c, KRING_BAD_TYPE, pos, ev.type);
        if (len > c->type_size[ev.type] || len < c->type_min[ev.type])
            return kring_consumer_corrupt(c, KRING_BAD_SIZE, pos, len);
        if (len != c->type_size[ev.type]) {
            v->copy = 1;                /* a short record: only a copy has all its row */
            return KRING_OK;
        }
        account_seq(ev.seq, &c->next_seq, &c->gaps, &c->seq_started);
        /* Then the run behind it: before producer_pos, before the end of
         * a data area mapped once, within a quarter of it. */
        avail = prod - pos - span;
        if (single && cap - off - span < avail)
            avail = cap - off - span;
        most = cap / 4 / span;          /* records in all, the first one included */
        if (most > max_records)
            most = max_records;
        if (most == 0)
            most = 1;
        k = run(rec + span, avail, most - 1, hlen, ev.type, &c->next_seq, &c->gaps);
        if (!c->m.lent)
            kring_guard_lend(&c->m);    /* the rows go to numpy */
        v->offset = off + KRING_RECORD_HEADER_SIZE;
        v->start = pos;
        v->count = 1 + k;
        v->type = ev.type;
        v->span = span;
        v->size = len;
        c->pos = pos + (1 + k) * span;
        c->records += 1 + k;
        return KRING_OK;
    }
    c->pos = pos;
    return KRING_OK;
}

int kring_view(struct kring_consumer *c, uint64_t max_records, struct kring_view *v)
{
    int rc;

    memset(v, 0, sizeof *v);
    kring_mark(c);                      /* kring_rewind goes back to here */
    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = view(c, max_records, v));
    return rc;
}

void kring_hold(struct kring_consumer *c, uint64_t pos, int hold)
{
    c->hold = pos;
    c->holding = hold != 0;
    if (!c->m.faulted)
        KRING_GUARDED(&c->m, kring_consumer_truncated(c), kring_consumer_publish(c));
}
