/*
 * Many threads writing one ring through the driver's KRingRingWrite while
 * a consumer drains it at the same time (tests/test_driver_ring_native.py
 * runs this plain, under ASan+UBSan and under TSan):
 *
 *   stress map  W N SIZE   the consumer of csrc/ (pykring's C consumer) on
 *                          the shared pages, as a mapped client
 *   stress copy W N SIZE   a reader thread copying out with KRingRingRead,
 *                          checking every record it gets
 *   stress hostile W N SIZE  a thread rewriting the consumer page while
 *                          the writers run (plausible positions, now and
 *                          then nonsense): nothing is written out of bounds
 *                          (ASan), every record is counted
 *
 * Each record carries its writer (pid) and its index in that writer (ppid).
 * Checks: every record arrives at most once, in order per writer; sequence
 * numbers rise, and their gaps add up to the drops; received + dropped is
 * what was written. Prints "OK ..." or "FAIL ..." and exits 0 / 1.
 */
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>

#include "kring_drv.h"
#include "kring_user.h"

PKRING_RING kring_shim_create(uint64_t ring_size, uint32_t method);
void kring_shim_free(PKRING_RING ring);
int kring_shim_write(PKRING_RING ring, uint32_t pid, uint32_t ppid, uint32_t length);
int32_t kring_shim_read(PKRING_RING ring, uint32_t flags, uint8_t *out, uint32_t out_len, uint32_t *returned);

#define MAX_WRITERS 16

static PKRING_RING ring;
static uint32_t per_writer;
static volatile int writers_left;
static volatile int stop_hostile;
static uint64_t next_index[MAX_WRITERS + 1];
static uint64_t received, last_seq, gaps, failures;
static int have_seq;

static void fail(const char *what, unsigned long long a, unsigned long long b)
{
    if (failures++ < 10)
        printf("FAIL %s: %llu %llu\n", what, a, b);
}

static void *writer(void *arg)
{
    uint32_t id = (uint32_t)(uintptr_t)arg, i;

    for (i = 0; i < per_writer; i++) {
        /* Lengths vary so that records wrap with padding. */
        kring_shim_write(ring, id, i, KRING_PROCESS_START_MIN_SIZE + 1 + (i * 37 + id * 11) % 900);
        if ((i & 255) == 0)
            sched_yield();
    }
    __atomic_sub_fetch(&writers_left, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

static void *hostile(void *arg)
{
    uint64_t x = 0x9E3779B97F4A7C15ULL;

    (void)arg;
    while (!__atomic_load_n(&stop_hostile, __ATOMIC_ACQUIRE)) {
        uint64_t pos = __atomic_load_n(&ring->Prod->producer_pos, __ATOMIC_ACQUIRE);

        x ^= x << 13; x ^= x >> 7; x ^= x << 17;
        /* Mostly positions that pass the driver's range check (behind the
         * producer by at most the capacity, 8-aligned, possibly in the
         * middle of a record): the writes they allow must stay inside the
         * data area. One store in 4096 is nonsense and breaks the ring. */
        if ((x & 4095) == 0)
            pos = x | 1;
        else
            pos = (pos - (x >> 20) % (ring->Capacity + 1)) & ~(uint64_t)7;
        __atomic_store_n(&ring->Cons->consumer_pos, pos, __ATOMIC_RELAXED);
        __atomic_store_n(&ring->Cons->waiting, (uint32_t)(x >> 40), __ATOMIC_RELAXED);
    }
    return NULL;
}

static void check_record(uint64_t seq, uint32_t pid, uint32_t ppid, uint16_t type)
{
    if (type != KRING_TYPE_PROCESS_START || pid == 0 || pid > MAX_WRITERS || ppid >= per_writer) {
        fail("record", pid, ppid);
        return;
    }
    if (have_seq && seq <= last_seq)
        fail("seq not rising", last_seq, seq);
    if (!have_seq && seq != 0)
        gaps += seq;
    if (have_seq && seq > last_seq + 1)
        gaps += seq - last_seq - 1;
    have_seq = 1;
    last_seq = seq;
    if (ppid < next_index[pid])
        fail("duplicate or out of order", pid, ppid);
    next_index[pid] = (uint64_t)ppid + 1;
    received++;
}

static int drain_mapped(struct kring_consumer *c, struct kring_process_start *rows, size_t nrows)
{
    struct kring_out out[KRING_MAX_TYPES];
    uint64_t n = 0, i;
    int rc;

    memset(out, 0, sizeof out);
    out[KRING_TYPE_PROCESS_START].buf = (uint8_t *)rows;
    out[KRING_TYPE_PROCESS_START].capacity = nrows;
    rc = kring_drain(c, out, UINT64_MAX, 1, &n);
    if (rc != KRING_OK) {
        fail("kring_drain", (unsigned long long)(-rc), 0);
        return -1;
    }
    for (i = 0; i < out[KRING_TYPE_PROCESS_START].count; i++)
        check_record(rows[i].h.seq, rows[i].pid, rows[i].ppid, rows[i].h.type);
    return (int)out[KRING_TYPE_PROCESS_START].count;
}

static void consume_mapped(void)
{
    static struct kring_process_start rows[256];
    struct kring_consumer c;
    uint32_t t;
    int got;

    if (kring_consumer_init(&c, ring->Cons, ring->Prod, ring->Data, ring->Capacity, 0, 1) != KRING_OK) {
        fail("kring_consumer_init", 0, 0);
        return;
    }
    for (t = 0; t < ring->Prod->ntypes; t++)
        kring_consumer_set_type(&c, ring->Prod->types[t].id, ring->Prod->types[t].size,
                                ring->Prod->types[t].min_size);
    c.seq_started = 1;
    c.next_seq = 0;
    for (;;) {
        int done = __atomic_load_n(&writers_left, __ATOMIC_ACQUIRE) == 0;

        got = drain_mapped(&c, rows, sizeof rows / sizeof rows[0]);
        if (got < 0)
            return;
        if (got == 0 && done && kring_pending(&c) == 0)
            break;
        if (got == 0)
            sched_yield();
    }
}

static void consume_copy(void)
{
    static uint8_t buf[sizeof(struct kring_read_out) + 65536];
    struct kring_read_out hdr;
    uint32_t got;

    for (;;) {
        int done = __atomic_load_n(&writers_left, __ATOMIC_ACQUIRE) == 0;
        int32_t st = kring_shim_read(ring, 0, buf, sizeof buf, &got);
        uint64_t pos;
        size_t off;

        if (st != 0) {
            fail("READ status", (uint32_t)st, 0);
            return;
        }
        memcpy(&hdr, buf, sizeof hdr);
        if (got != sizeof hdr + (hdr.end_pos - hdr.start_pos))
            fail("READ length", got, hdr.end_pos - hdr.start_pos);
        for (pos = hdr.start_pos, off = sizeof hdr; pos < hdr.end_pos;) {
            struct kring_record_header rh;
            struct kring_process_start r;

            memcpy(&rh, buf + off, sizeof rh);
            if ((rh.len & KRING_DISCARD_BIT) == 0) {
                uint32_t len = rh.len & KRING_LEN_MASK;

                if (len < KRING_PROCESS_START_MIN_SIZE || len > sizeof r) {
                    fail("record length", len, pos);
                    return;
                }
                memset(&r, 0, sizeof r);
                memcpy(&r, buf + off + KRING_RECORD_HEADER_SIZE, len);
                check_record(r.h.seq, r.pid, r.ppid, r.h.type);
            }
            pos += KRING_RECORD_SPAN(rh.len & KRING_LEN_MASK);
            off += KRING_RECORD_SPAN(rh.len & KRING_LEN_MASK);
        }
        if (hdr.end_pos == hdr.start_pos) {
            if (done && hdr.end_pos == ring->Pos)
                break;
            sched_yield();
        }
    }
}

int main(int argc, char **argv)
{
    pthread_t threads[MAX_WRITERS], bad;
    int nwriters, i, hostile_mode;
    uint64_t total, dropped;

    if (argc != 5) {
        fprintf(stderr, "usage: stress map|copy|hostile WRITERS PER_WRITER RING_SIZE\n");
        return 2;
    }
    nwriters = atoi(argv[2]);
    per_writer = (uint32_t)strtoul(argv[3], NULL, 0);
    hostile_mode = strcmp(argv[1], "hostile") == 0;
    if (nwriters < 1 || nwriters > MAX_WRITERS)
        return 2;
    ring = kring_shim_create(strtoull(argv[4], NULL, 0), strcmp(argv[1], "copy") == 0 ? KRING_METHOD_COPY
                                                                                        : KRING_METHOD_MAP);
    if (!ring) {
        printf("FAIL create\n");
        return 1;
    }
    writers_left = nwriters;
    if (hostile_mode)
        pthread_create(&bad, NULL, hostile, NULL);
    for (i = 0; i < nwriters; i++)
        pthread_create(&threads[i], NULL, writer, (void *)(uintptr_t)(i + 1));
    if (strcmp(argv[1], "map") == 0)
        consume_mapped();
    else if (strcmp(argv[1], "copy") == 0)
        consume_copy();
    for (i = 0; i < nwriters; i++)
        pthread_join(threads[i], NULL);
    if (hostile_mode) {
        __atomic_store_n(&stop_hostile, 1, __ATOMIC_RELEASE);
        pthread_join(bad, NULL);
    }

    total = (uint64_t)nwriters * per_writer;
    dropped = ring->Dropped;
    if (ring->Written + dropped != total)
        fail("written + dropped != total", ring->Written + dropped, total);
    if (ring->Seq != total)
        fail("seq count", ring->Seq, total);
    if (!hostile_mode) {
        if (received != ring->Written)
            fail("received != written", received, ring->Written);
        /* Dropped records after the last one received are gaps too. */
        if (have_seq)
            gaps += total - 1 - last_seq;
        else
            gaps = total;
        if (gaps != dropped)
            fail("seq gaps != dropped", gaps, dropped);
        if (ring->Broken)
            fail("ring broken", 0, 0);
    }
    printf("%s %s: writers %d, written %llu, dropped %llu, received %llu, broken %d\n",
           failures ? "FAIL" : "OK", argv[1], nwriters, (unsigned long long)ring->Written,
           (unsigned long long)dropped, (unsigned long long)received, ring->Broken);
    kring_shim_free(ring);
    return failures ? 1 : 0;
}
