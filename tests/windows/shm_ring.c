/*
 * shm_ring.c - a user-mode ring between two processes on Windows: a named
 * file mapping and named events (csrc/kring_win.c), the csrc producer and
 * consumer. Run under Wine by tests/windows/test_win_wine_shm.py.
 *
 *   shm_ring.exe consumer NAME COUNT   creates the ring, prints READY, reads
 *                                      until the producer closes it
 *   shm_ring.exe producer NAME COUNT   attaches (blocking policy), writes
 *                                      COUNT records in batches, closes
 *
 * Record: value = its sequence number, check = value * K. The consumer
 * checks every record and prints "records=N gaps=G bad=B written=W
 * dropped=D wakeups_seen=S producer_alive_seen=A"; exit status 0 iff it
 * got exactly COUNT good records with no gap and the ring was closed.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_user.h"

#define TYPE_REC 1
#define CHECK_K 0x9E3779B97F4A7C15ULL
#define BATCH 512
#define ROWS 8192

struct rec {
    struct kring_event_header h;
    uint64_t value;
    uint64_t check;
};

static void set_name(char *dst, const char *src)
{
    memset(dst, 0, KRING_NAME_LEN);
    strncpy(dst, src, KRING_NAME_LEN - 1);
}

/* The ring description: one type, two u8 fields, 1 MiB of data. */
static void make_meta(struct kring_producer_page *m)
{
    memset(m, 0, sizeof *m);
    m->magic = KRING_MAGIC;
    m->abi_major = KRING_ABI_MAJOR;
    m->abi_minor = KRING_ABI_MINOR;
    m->page_size = KRING_PAGE_SIZE;
    m->capacity = 1 << 20;
    m->data_offset = KRING_DATA_OFFSET;
    m->ntypes = 1;
    m->nfields = 2;
    set_name(m->types[0].name, "rec");
    m->types[0].id = TYPE_REC;
    m->types[0].nfields = 2;
    m->types[0].first_field = 0;
    m->types[0].size = sizeof(struct rec);
    m->types[0].min_size = sizeof(struct rec);
    set_name(m->fields[0].name, "value");
    memcpy(m->fields[0].format, "<u8", 4);
    m->fields[0].offset = 24;
    set_name(m->fields[1].name, "check");
    memcpy(m->fields[1].format, "<u8", 4);
    m->fields[1].offset = 32;
}

/* Create the ring as its consumer and say READY; 0, or 2 on failure. */
static int create_ring(struct kring_consumer *c, const char *name)
{
    struct kring_producer_page meta;
    int rc;

    make_meta(&meta);
    rc = kring_consumer_create(c, name, &meta, 0);
    if (rc != KRING_OK) {
        printf("create failed: %s (os error %d)\n", kring_strerror(rc), c->m.os_error);
        return 2;
    }
    printf("READY\n");
    fflush(stdout);
    return 0;
}

/* Wait for records up to 5 s; 0 to go on (records or a timeout of the
 * wait), -1 once the whole run took more than 2 minutes. */
static int wait_some(struct kring_consumer *c, ULONGLONG start, int *woken)
{
    if (GetTickCount64() - start > 120000) {
        printf("timeout\n");
        return -1;
    }
    *woken = kring_wait(c, 5000000000LL) != KRING_E_TIMEOUT;
    return 0;
}

static int rec_bad(const struct rec *r)
{
    return r->value != r->h.seq || r->check != r->value * CHECK_K || r->h.type != TYPE_REC;
}

static void rec_fill(struct rec *r, uint64_t seq)
{
    r->value = seq;
    r->check = seq * CHECK_K;
}

/* The consumer's line, its exit status, and the close. */
static int consumer_done(struct kring_consumer *c, uint64_t count, uint64_t got, uint64_t bad, uint64_t waits,
                         int alive_seen, int closed)
{
    int rc;

    printf("records=%llu gaps=%lld bad=%llu written=%llu dropped=%llu waits=%llu producer_alive_seen=%d closed=%d\n",
           (unsigned long long)got, (long long)c->gaps, (unsigned long long)bad,
           (unsigned long long)c->m.prod->written, (unsigned long long)c->m.prod->dropped,
           (unsigned long long)waits, alive_seen, closed);
    rc = got == count && c->gaps == 0 && bad == 0 && closed && c->m.prod->dropped == 0 ? 0 : 1;
    kring_consumer_close(c);
    return rc;
}

static int consumer(const char *name, uint64_t count)
{
    static struct rec rows[ROWS];
    struct kring_consumer c;
    struct kring_out out[KRING_MAX_TYPES];
    uint64_t got = 0, bad = 0, n, i, waits = 0;
    int alive_seen = 0, closed = 0, woken, rc;
    const ULONGLONG start = GetTickCount64();

    if (create_ring(&c, name))
        return 2;
    memset(out, 0, sizeof out);
    while (!closed && wait_some(&c, start, &woken) == 0) {
        if (!woken)
            continue;
        waits++;
        out[TYPE_REC].buf = (uint8_t *)rows;
        out[TYPE_REC].capacity = ROWS;
        out[TYPE_REC].count = 0;
        rc = kring_drain(&c, out, UINT64_MAX, 1, &n);
        if (rc == KRING_E_CLOSED) {
            closed = 1;
        } else if (rc != KRING_OK) {
            printf("drain failed: %s reason %s\n", kring_strerror(rc), kring_corrupt_reason(c.err_reason));
            break;
        }
        for (i = 0; i < out[TYPE_REC].count; i++)
            bad += rec_bad(&rows[i]);
        got += out[TYPE_REC].count;
        /* While the producer writes, its role lock is held: it is not gone. */
        if (!alive_seen && got > 0 && got < count && kring_producer_gone(&c) == 0)
            alive_seen = 1;
    }
    return consumer_done(&c, count, got, bad, waits, alive_seen, closed);
}

/* Attach as the producer (the consumer may not have created the ring yet);
 * 0, or 2 on failure. */
static int open_producer(struct kring_producer *p, const char *name)
{
    int rc = KRING_E_NOTFOUND, tries;

    for (tries = 0; tries < 200 && rc != KRING_OK; tries++) {
        rc = kring_producer_open(p, name, KRING_BLOCK);
        if (rc != KRING_OK)
            Sleep(50);
    }
    if (rc != KRING_OK) {
        printf("open failed: %s\n", kring_strerror(rc));
        return 2;
    }
    return 0;
}

/* A failed call at record `seq`: say so, close, exit status 1. */
static int producer_failed(struct kring_producer *p, const char *what, uint64_t seq, int rc)
{
    printf("%s failed at %llu: %s\n", what, (unsigned long long)seq, kring_strerror(rc));
    kring_producer_close(p, 1);
    return 1;
}

static int producer_done(struct kring_producer *p)
{
    printf("written=%llu dropped=%llu wakeups=%llu\n", (unsigned long long)p->written,
           (unsigned long long)p->dropped, (unsigned long long)p->wakeups);
    kring_producer_close(p, 1);
    return 0;
}

static int producer(const char *name, uint64_t count)
{
    static struct rec batch[BATCH];
    struct kring_producer p;
    uint64_t seq = 0, done;
    int rc;

    if (open_producer(&p, name))
        return 2;
    while (seq < count) {
        uint64_t n = count - seq < BATCH ? count - seq : BATCH, i;

        for (i = 0; i < n; i++)
            rec_fill(&batch[i], seq + i);
        /* Body = the bytes after the event header. */
        rc = kring_write(&p, TYPE_REC, (const uint8_t *)batch + sizeof(struct kring_event_header), sizeof batch[0],
                         sizeof batch[0] - sizeof(struct kring_event_header), NULL, n, 0, 30000000000LL, &done);
        if (rc != KRING_OK || done != n)
            return producer_failed(&p, "write", seq, rc);
        seq += n;
    }
    return producer_done(&p);
}

/* The zero-copy paths (kring_view, kring_reserve): the same stream, read in
 * place and written in place. */
static int consumer_in_place(const char *name, uint64_t count)
{
    struct kring_consumer c;
    struct kring_view v;
    uint64_t got = 0, bad = 0, views = 0, i;
    int closed = 0, woken, rc;
    const ULONGLONG start = GetTickCount64();

    if (create_ring(&c, name))
        return 2;
    while (!closed && wait_some(&c, start, &woken) == 0) {
        if (!woken)
            continue;
        rc = kring_view(&c, UINT64_MAX, &v);
        if (rc != KRING_OK || v.copy) {
            printf("view failed: %s reason %s copy %d\n", kring_strerror(rc), kring_corrupt_reason(c.err_reason),
                   v.copy);
            break;
        }
        for (i = 0; i < v.count; i++)
            bad += rec_bad((const struct rec *)(c.m.data + v.offset + i * v.span));
        got += v.count;
        views += v.count > 0;
        kring_commit(&c);
        if (v.count == 0 && kring_pending(&c) == 0 && (kring_ring_flags(&c) & KRING_F_CLOSED))
            closed = 1;
    }
    return consumer_done(&c, count, got, bad, views, 1, closed);
}

static int producer_in_place(const char *name, uint64_t count)
{
    struct kring_producer p;
    struct kring_reservation r;
    uint64_t seq = 0;
    int rc;

    if (open_producer(&p, name))
        return 2;
    while (seq < count) {
        uint64_t n = count - seq < BATCH ? count - seq : BATCH, i;

        rc = kring_reserve(&p, TYPE_REC, n, 30000000000LL, &r);
        if (rc != KRING_OK || r.count != n)
            return producer_failed(&p, "reserve", seq, rc);
        for (i = 0; i < n; i++)
            rec_fill((struct rec *)(p.m.data + r.offset + i * r.span), seq + i);
        rc = kring_publish(&p, &r, n, 0);
        if (rc != KRING_OK)
            return producer_failed(&p, "publish", seq, rc);
        seq += n;
    }
    return producer_done(&p);
}

int main(int argc, char **argv)
{
    uint64_t count;

    if (argc != 4) {
        fprintf(stderr, "usage: shm_ring.exe consumer|producer[-in-place] NAME COUNT\n");
        return 2;
    }
    count = strtoull(argv[3], NULL, 10);
    if (strcmp(argv[1], "consumer") == 0)
        return consumer(argv[2], count);
    if (strcmp(argv[1], "producer") == 0)
        return producer(argv[2], count);
    if (strcmp(argv[1], "consumer-in-place") == 0)
        return consumer_in_place(argv[2], count);
    if (strcmp(argv[1], "producer-in-place") == 0)
        return producer_in_place(argv[2], count);
    return 2;
}
