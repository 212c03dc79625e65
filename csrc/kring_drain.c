/*
 * kring_drain.c - the drain: validate the records from the consumer's
 * private position up to producer_pos and copy them, by type, into
 * caller-owned rows (kring_drain), and count what such a drain would
 * deliver (kring_census). The consumer object, its positions and the
 * publishing of consumer_pos are kring_consumer.c's.
 *
 * The consumer trusts nothing in the ring: every bound it uses (capacity,
 * record sizes per type) is a private copy taken when it attached, every
 * record header is range-checked before its payload is read, and a record
 * that breaks the protocol stops the drain with KRING_E_CORRUPT, the ring
 * position and the reason, after delivering the records before it.
 *
 * Both entry points run inside a fault guard (kring_guard.h): a ring file
 * truncated under the mapping makes them return KRING_E_CORRUPT
 * (KRING_BAD_TRUNCATED) instead of killing the process.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_copy.h"
#include "kring_guard.h"
#include "kring_plat.h"

/* One checked record into its row: exactly len bytes (the checked private
 * value, never the ring's word re-read), then zeros up to the row size
 * unless the row is known to be zero already. */
static inline void put_row(uint8_t *dst, const uint8_t *payload, uint32_t len, uint32_t size, int zeroed)
{
    kring_copy_record(dst, payload, len);      /* len >= KRING_EVENT_HEADER_SIZE: checked */
    if (len < size && !zeroed)
        memset(dst + len, 0, size - len);
}

/* Rows of a run all have the same length: small ones are copied as two
 * fixed-size chunks, the second ending at len and overlapping the first
 * (no loop, no branch per record); `chunk` is a constant at each call. */
static inline void put_run_row(uint8_t *dst, const uint8_t *payload, uint32_t len, uint32_t size,
                               int zeroed, uint32_t chunk)
{
    if (chunk == 16 || chunk == 32 || chunk == 64) {
        memcpy(dst, payload, chunk);                /* chunk <= len <= 2 * chunk */
        memcpy(dst + len - chunk, payload + len - chunk, chunk);
        if (len < size && !zeroed)
            memset(dst + len, 0, size - len);
    } else {
        put_row(dst, payload, len, size, zeroed);
    }
}

/* The loop of drain_run for one shape of row copy (put_run_row). */
static inline uint64_t run_loop(const uint8_t *rec, uint64_t avail, uint8_t *dst, uint64_t max,
                                uint32_t hlen, uint16_t type, uint32_t size, int zeroed,
                                uint64_t *next_seq, int64_t *gaps, uint32_t chunk)
{
    const uint32_t len = hlen;              /* no BUSY or DISCARD bit: checked by the caller */
    const uint64_t span = KRING_RECORD_SPAN(len);
    uint64_t nseq = *next_seq, k;
    int64_t g = *gaps;
    int started = 1;

    for (k = 0; k < max && span <= avail; k++, avail -= span, rec += span, dst += size) {
        const uint8_t *payload = rec + KRING_RECORD_HEADER_SIZE;
        uint64_t seq;
        uint16_t rtype;

        /* Pairs with the producer's release store of the header word, as in drain(). */
        if (kring_load_acquire_u32((const volatile uint32_t *)rec) != hlen)
            break;
        memcpy(&rtype, payload + offsetof(struct kring_event_header, type), sizeof rtype);
        if (rtype != type)
            break;
        memcpy(&seq, payload + offsetof(struct kring_event_header, seq), sizeof seq);
        put_run_row(dst, payload, len, size, zeroed, chunk);
        account_seq(seq, &nseq, &g, &started);
    }
    *next_seq = nseq;
    *gaps = g;
    return k;
}

/* The fast path for the common case, a run of records of one type and
 * length (fixed-size records): after a record with header word hlen and
 * type `type` passed every check of drain(), the records right behind it
 * with the very same header word and type pass the same checks, so each
 * costs two compares. Its bounds are those checks hoisted: the caller
 * passes avail, the bytes up to producer_pos (BAD_LENGTH) or the end of the
 * data area, whichever comes first (BAD_STRADDLE; a doubly mapped ring too:
 * drain() takes a record across the end on its own), and max, the rows
 * left for the type and the records left to max_records. The header word
 * is acquire-loaded per record (a BUSY one is not hlen: the run ends).
 * Returns the records delivered, from rec into rows from dst on; sequence
 * accounting continues in *next_seq and *gaps (started: the record before
 * the run was accounted). */
static uint64_t drain_run(const uint8_t *rec, uint64_t avail, uint8_t *dst, uint64_t max,
                          uint32_t hlen, uint16_t type, uint32_t size, int zeroed,
                          uint64_t *next_seq, int64_t *gaps)
{
    /* hlen >= KRING_EVENT_HEADER_SIZE (24): checked by the caller. */
    if (hlen <= 32)
        return run_loop(rec, avail, dst, max, hlen, type, size, zeroed, next_seq, gaps, 16);
    if (hlen <= 64)
        return run_loop(rec, avail, dst, max, hlen, type, size, zeroed, next_seq, gaps, 32);
    if (hlen <= 128)
        return run_loop(rec, avail, dst, max, hlen, type, size, zeroed, next_seq, gaps, 64);
    return run_loop(rec, avail, dst, max, hlen, type, size, zeroed, next_seq, gaps, 0);
}

static int drain(struct kring_consumer *c, struct kring_out *out, uint64_t max_records,
                 int commit, uint64_t *n)
{
    const uint64_t cap = c->m.capacity;
    const uint64_t mask = c->m.mask;
    const uint8_t *const data = c->m.data;
    const int single = !c->m.double_mapped;
    /* Hot state in locals: stores through the uint8_t rows may alias any
     * memory, so fields read through c or out would be reloaded per row. */
    uint32_t size_of[KRING_MAX_TYPES], min_of[KRING_MAX_TYPES];
    uint64_t filled[KRING_MAX_TYPES], room[KRING_MAX_TYPES];
    uint8_t *rows[KRING_MAX_TYPES];
    int zeroed[KRING_MAX_TYPES];
    uint64_t next_seq = c->next_seq;
    int64_t gaps = c->gaps;
    int started = c->seq_started;
    uint64_t pos = c->pos;
    uint64_t count = 0;
    uint64_t prod;
    uint32_t flags, t;
    int rc = KRING_OK;

    *n = 0;
    for (t = 0; t < KRING_MAX_TYPES; t++) {
        size_of[t] = c->type_size[t];
        min_of[t] = c->type_min[t];
        rows[t] = out[t].buf;
        filled[t] = out[t].count;
        room[t] = out[t].buf ? out[t].capacity : 0;
        zeroed[t] = out[t].zeroed != 0;
    }
    flags = kring_consumer_flags(c);
    /* Pairs with the producer's release store of producer_pos after the
     * records and counters it covers. */
    prod = kring_load_acquire_u64(&c->m.prod->producer_pos);
    if (prod - pos > cap || (prod & (KRING_ALIGN - 1)) != 0)
        return kring_consumer_corrupt(c, KRING_BAD_PRODUCER_POS, pos, prod);

    while (pos != prod && count < max_records) {
        const uint64_t off = pos & mask;
        const uint8_t *rec = data + off;
        /* Pairs with the producer's release store of the header word (a BPF
         * producer clears BUSY with it; ours writes it before producer_pos). */
        const uint32_t hlen = kring_load_acquire_u32((const volatile uint32_t *)rec);
        const uint32_t len = hlen & KRING_LEN_MASK;
        const uint64_t span = KRING_RECORD_SPAN(len);

        if (hlen & KRING_BUSY_BIT)
            break;
        if (span > prod - pos) {
            rc = kring_consumer_corrupt(c, KRING_BAD_LENGTH, pos, len);
            break;
        }
        if (single && off + span > cap) {
            rc = kring_consumer_corrupt(c, KRING_BAD_STRADDLE, pos, len);
            break;
        }
        if (!(hlen & KRING_DISCARD_BIT)) {
            const uint8_t *payload = rec + KRING_RECORD_HEADER_SIZE;
            struct kring_event_header ev;
            uint32_t size;
            uint8_t *dst;

            if (len < KRING_EVENT_HEADER_SIZE) {
                rc = kring_consumer_corrupt(c, KRING_BAD_SHORT, pos, len);
                break;
            }
            memcpy(&ev, payload, sizeof ev);
            if (ev.type >= KRING_MAX_TYPES || size_of[ev.type] == 0) {
                rc = kring_consumer_corrupt(c, KRING_BAD_TYPE, pos, ev.type);
                break;
            }
            size = size_of[ev.type];
            if (len > size || len < min_of[ev.type]) {
                rc = kring_consumer_corrupt(c, KRING_BAD_SIZE, pos, len);
                break;
            }
            if (filled[ev.type] >= room[ev.type])
                break;                          /* no room for this type: stop here */
            dst = rows[ev.type] + filled[ev.type]++ * (uint64_t)size;
            put_row(dst, payload, len, size, zeroed[ev.type]);
            /* Sequence accounting on the private copy of the header. */
            account_seq(ev.seq, &next_seq, &gaps, &started);
            count++;
            pos += span;
            /* Then the run of records like this one (drain_run). */
            {
                const uint64_t roff = pos & mask;
                const uint64_t avail = prod - pos < cap - roff ? prod - pos : cap - roff;
                uint64_t left = room[ev.type] - filled[ev.type], k;

                if (left > max_records - count)
                    left = max_records - count;
                k = drain_run(data + roff, avail, dst + size, left, hlen, ev.type, size,
                              zeroed[ev.type], &next_seq, &gaps);
                filled[ev.type] += k;
                count += k;
                pos += k * span;
            }
            continue;
        }
        pos += span;
    }

    for (t = 0; t < KRING_MAX_TYPES; t++)
        out[t].count = filled[t];
    c->next_seq = next_seq;
    c->gaps = gaps;
    c->seq_started = started;
    c->pos = pos;
    c->records += count;
    *n = count;
    if (commit)
        kring_consumer_commit_pos(c);
    if (rc == KRING_OK && count == 0 && pos == prod) {
        if (flags & KRING_F_BROKEN)
            return KRING_E_BROKEN;
        if (flags & KRING_F_CLOSED) {
            /* Records dropped after the last one delivered are loss too. The
             * counters are final: the producer stored them before the seq_cst
             * update of flags we acquired above. */
            const uint64_t end = kring_load_relaxed_u64(&c->m.prod->written) +
                                 kring_load_relaxed_u64(&c->m.prod->dropped);

            if (c->seq_started && end > c->next_seq) {
                c->gaps = (int64_t)((uint64_t)c->gaps + (end - c->next_seq));
                c->next_seq = end;
            }
            return KRING_E_CLOSED;
        }
    }
    return rc;
}

/* Count the records of each type from the private position up to
 * producer_pos (at most max_records): what a drain of this moment would
 * deliver, so the caller can size its rows exactly instead of growing
 * them. Reads only record headers and stops, without complaint, at the
 * first one the drain would not deliver (busy, or anything the drain
 * reports as corrupt: the drain says why). */
static uint64_t census(struct kring_consumer *c, uint64_t max_records, uint64_t *counts)
{
    const uint64_t mask = c->m.mask;
    const uint8_t *const data = c->m.data;
    const int single = !c->m.double_mapped;
    uint64_t prod = kring_load_acquire_u64(&c->m.prod->producer_pos);
    uint64_t pos = c->pos, total = 0;

    memset(counts, 0, KRING_MAX_TYPES * sizeof *counts);
    if (prod - pos > c->m.capacity || (prod & (KRING_ALIGN - 1)) != 0)
        return 0;
    while (pos != prod && total < max_records) {
        const uint64_t off = pos & mask;
        const uint8_t *rec = data + off;
        const uint32_t hlen = kring_load_acquire_u32((const volatile uint32_t *)rec);
        const uint32_t len = hlen & KRING_LEN_MASK;
        const uint64_t span = KRING_RECORD_SPAN(len);

        if ((hlen & KRING_BUSY_BIT) || span > prod - pos || (single && off + span > c->m.capacity))
            break;
        if (!(hlen & KRING_DISCARD_BIT)) {
            uint16_t type;

            if (len < KRING_EVENT_HEADER_SIZE)
                break;
            memcpy(&type, rec + KRING_RECORD_HEADER_SIZE + offsetof(struct kring_event_header, type),
                   sizeof type);
            if (type >= KRING_MAX_TYPES || c->type_size[type] == 0 ||
                len > c->type_size[type] || len < c->type_min[type])
                break;
            counts[type]++;
            total++;
        }
        pos += span;
    }
    return total;
}

int64_t kring_census(struct kring_consumer *c, uint64_t max_records, uint64_t *counts)
{
    int64_t rc;

    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = (int64_t)census(c, max_records, counts));
    return rc;
}

int kring_drain(struct kring_consumer *c, struct kring_out *out, uint64_t max_records,
                int commit, uint64_t *n)
{
    int rc;

    *n = 0;
    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = drain(c, out, max_records, commit, n));
    return rc;
}
