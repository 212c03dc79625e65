/*
 * kring_consumer.c - the consumer object: open, create or init it over a
 * mapping, attach (type bounds, the checked starting position), and keep
 * its private position: publish it (commit), mark and rewind it, report
 * what is pending, the producer's flags and counters, and close. The drain
 * of records into rows is kring_drain.c's.
 *
 * The consumer trusts nothing in the ring: its bounds and position are
 * private copies taken when it attached and range-checked then.
 *
 * Every public entry point that touches ring memory runs inside a fault
 * guard (kring_guard.h): a ring file truncated under the mapping makes it
 * return KRING_E_CORRUPT (KRING_BAD_TRUNCATED) instead of killing the
 * process, and the consumer touches the mapping no more.
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_guard.h"
#include "kring_plat.h"

int kring_consumer_corrupt(struct kring_consumer *c, int reason, uint64_t pos, uint64_t value)
{
    c->err_reason = reason;
    c->err_pos = pos;
    c->err_value = value;
    return KRING_E_CORRUPT;
}

/* The mapping faulted (or did before): the file was truncated (kring_plat.h). */
int kring_consumer_truncated(struct kring_consumer *c)
{
    c->m.faulted = 1;
    return kring_consumer_corrupt(c, KRING_BAD_TRUNCATED, c->pos, 0);
}

/* Take the position from the consumer page and check it against producer_pos. */
static int attach_position(struct kring_consumer *c)
{
    /* Pairs with the producer's release store of producer_pos. */
    const uint64_t ppos = kring_load_acquire_u64(&c->m.prod->producer_pos);
    const uint64_t cpos = kring_load_relaxed_u64(&c->m.cons->consumer_pos);

    if ((ppos & (KRING_ALIGN - 1)) != 0)
        return kring_consumer_corrupt(c, KRING_BAD_PRODUCER_POS, ppos, ppos);
    if ((cpos & (KRING_ALIGN - 1)) != 0 || ppos - cpos > c->m.capacity)
        return kring_consumer_corrupt(c, KRING_BAD_CONSUMER_POS, cpos, cpos);
    c->pos = cpos;
    c->committed = cpos;
    c->asked = cpos;
    return KRING_OK;
}

int kring_consumer_init(struct kring_consumer *c, struct kring_consumer_page *cons,
                        struct kring_producer_page *prod, uint8_t *data,
                        uint64_t capacity, int double_mapped, int has_meta)
{
    if (!c || !cons || !prod || !data || capacity < 8 || (capacity & (capacity - 1)) != 0 ||
        capacity > KRING_MAX_CAPACITY)
        return KRING_E_INVAL;
    memset(c, 0, sizeof *c);
    kring_map_init(&c->m, cons, prod, data, capacity, double_mapped, has_meta);
    return attach_position(c);
}

int kring_consumer_set_type(struct kring_consumer *c, uint16_t id, uint32_t size, uint32_t min_size)
{
    if (id == 0 || id >= KRING_MAX_TYPES || size < KRING_EVENT_HEADER_SIZE ||
        min_size < KRING_EVENT_HEADER_SIZE || min_size > size || size > KRING_LEN_MASK)
        return KRING_E_INVAL;
    c->type_size[id] = size;
    c->type_min[id] = min_size;
    return KRING_OK;
}

uint32_t kring_consumer_flags(const struct kring_consumer *c)
{
    if (!c->m.has_meta)
        return 0;
    /* Pairs with the producer's seq_cst update of flags after its last
     * producer_pos store: a consumer that sees CLOSED and then loads
     * producer_pos sees the final position. */
    return kring_load_acquire_u32(&c->m.prod->flags);
}

static int64_t pending(struct kring_consumer *c)
{
    /* Pairs with the producer's release store of producer_pos. */
    uint64_t prod = kring_load_acquire_u64(&c->m.prod->producer_pos);
    uint64_t avail = prod - c->pos;

    if (avail > c->m.capacity || (prod & (KRING_ALIGN - 1)) != 0)
        return kring_consumer_corrupt(c, KRING_BAD_PRODUCER_POS, c->pos, prod);
    return (int64_t)avail;
}

void kring_consumer_commit_pos(struct kring_consumer *c)
{
    c->asked = c->pos;
    kring_consumer_publish(c);
}

void kring_consumer_publish(struct kring_consumer *c)
{
    uint64_t to = c->asked;

    /* Rows of a zero-copy view still in use: not past their start. */
    if (c->holding && c->hold - c->committed < to - c->committed)
        to = c->hold;
    if (to == c->committed)
        return;
    /* Pairs with the producer's acquire load of consumer_pos before it
     * reuses the space. */
    kring_store_release_u64(&c->m.cons->consumer_pos, to);
    c->committed = to;
    /* Store consumer_pos, full fence, load producer_waiting: pairs with the
     * blocking producer's store of producer_waiting, full fence, load of
     * consumer_pos in kring_producer_wait_space(). (A BPF producer reads consumer_pos
     * after its own full fence to decide whether to wake us.) */
    kring_fence_full();
    if ((c->m.wait_kind == KRING_WAIT_FUTEX || c->m.wait_kind == KRING_WAIT_EVENT) &&
        kring_load_relaxed_u32(&c->m.prod->producer_waiting))
        kring_plat_wake_space(&c->m);
}

/* After the platform layer mapped a ring with metadata: types and position;
 * then tell producers a consumer is there (consumer_flags, ABI 1.1). */
static int attach_mapped(struct kring_consumer *c)
{
    int rc = kring_load_types(&c->m, c->type_size, c->type_min);

    if (rc != KRING_OK)
        c->err_reason = KRING_BAD_META;
    else
        rc = attach_position(c);
    if (rc == KRING_OK)
        kring_fetch_or_u32(&c->m.cons->consumer_flags, KRING_C_ATTACHED);
    return rc;
}

/* ---- public entry points that touch ring memory: each inside a guard ---- */

void kring_commit(struct kring_consumer *c)
{
    if (!c->m.faulted)
        KRING_GUARDED(&c->m, kring_consumer_truncated(c), kring_consumer_commit_pos(c));
}

void kring_mark(struct kring_consumer *c)
{
    c->mark_pos = c->pos;
    c->mark_records = c->records;
    c->mark_next_seq = c->next_seq;
    c->mark_gaps = c->gaps;
    c->mark_started = c->seq_started;
}

void kring_rewind(struct kring_consumer *c)
{
    /* Never behind what was published: the producer may reuse that space. */
    if (c->committed > c->mark_pos || c->pos == c->mark_pos)
        return;
    c->pos = c->mark_pos;
    c->records = c->mark_records;
    c->next_seq = c->mark_next_seq;
    c->gaps = c->mark_gaps;
    c->seq_started = c->mark_started;
}

int64_t kring_pending(struct kring_consumer *c)
{
    int64_t rc;

    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = pending(c));
    return rc;
}

uint32_t kring_ring_flags(const struct kring_consumer *c)
{
    uint32_t flags;

    if (c->m.faulted)
        return KRING_F_BROKEN;
    KRING_GUARDED(&c->m, flags = KRING_F_BROKEN, flags = kring_consumer_flags(c));
    return flags;
}

static void read_stats(struct kring_consumer *c, struct kring_ring_stats *out)
{
    const struct kring_producer_page *prod = c->m.prod;

    memset(out, 0, sizeof *out);
    if (!c->m.has_meta)
        return;
    out->flags = kring_consumer_flags(c);
    out->written = kring_load_relaxed_u64(&prod->written);
    out->dropped = kring_load_relaxed_u64(&prod->dropped);
    out->producer_pid = kring_load_relaxed_u32(&prod->producer_pid);
}

int kring_consumer_stats(struct kring_consumer *c, struct kring_ring_stats *out)
{
    int rc = KRING_OK;

    if (c->m.faulted)
        return kring_consumer_truncated(c);
    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), read_stats(c, out));
    return rc;
}

void kring_consumer_close(struct kring_consumer *c)
{
    /* A clean close: no consumer any more (a killed one leaves the flag). */
    if (c->m.cons && c->m.has_meta && !c->m.faulted)
        KRING_GUARDED(&c->m, (void)0, kring_fetch_and_u32(&c->m.cons->consumer_flags, ~(uint32_t)KRING_C_ATTACHED));
    kring_plat_unmap(&c->m);
    kring_map_init(&c->m, NULL, NULL, NULL, 0, 0, 0);
}

static int open_mapped(struct kring_consumer *c)
{
    int rc;

    KRING_GUARDED(&c->m, rc = kring_consumer_truncated(c), rc = attach_mapped(c));
    if (rc != KRING_OK)
        kring_plat_unmap(&c->m);
    return rc;
}

int kring_consumer_open(struct kring_consumer *c, const char *path)
{
    int rc;

    if (!c || !path)
        return KRING_E_INVAL;
    memset(c, 0, sizeof *c);
    rc = kring_plat_map(&c->m, path, 0, 0);
    if (rc == KRING_E_CORRUPT)
        c->err_reason = KRING_BAD_META;     /* the producer page failed kring_meta_check */
    return rc == KRING_OK ? open_mapped(c) : rc;
}

int kring_consumer_create(struct kring_consumer *c, const char *path,
                          const struct kring_producer_page *meta_template, int mode)
{
    int rc;

    if (!c || !path || !meta_template)
        return KRING_E_INVAL;
    memset(c, 0, sizeof *c);
    rc = kring_plat_create(&c->m, path, meta_template, mode, 0);
    if (rc != KRING_OK)
        return rc;
    rc = open_mapped(c);
    if (rc == KRING_OK) {
        c->seq_started = 1;     /* a new ring: sequence numbers start at 0 */
        c->next_seq = 0;
    }
    return rc;
}
