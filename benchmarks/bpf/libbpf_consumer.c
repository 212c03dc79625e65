/*
 * libbpf_consumer.c - libbpf's own C consumer of a BPF ring buffer, the
 * reference pykring's Python drain is measured against (benchmarks/bpf.py).
 *
 * ring_buffer__new() on an inherited map fd, a callback per record that
 * checks the length, copies the record into the next row of a caller-owned
 * buffer (memcpy: pykring's drain copies into numpy rows too) and checks
 * seq continuity on the copy. libbpf publishes consumer_pos after every
 * record (libbpf 1.1 ringbuf_process_ring()); that is part of what is
 * measured.
 *
 * usage:
 *   libbpf_consumer stream MAP_FD RECORD_SIZE TOTAL ROWS IDLE_MS
 *     Prints "ready", then ring_buffer__poll() until TOTAL records arrived or
 *     none came for IDLE_MS. Prints
 *     "done <records> <gaps> <bad> <first ts_ns> <last ns> <cpu ns> <polls>":
 *     first ts_ns is the producer's CLOCK_MONOTONIC stamp in the first record,
 *     last ns the consumer's CLOCK_MONOTONIC after the poll that delivered
 *     the last record, cpu ns this process's CPU time from "ready" to then.
 *   libbpf_consumer drain MAP_FD PROG_FD RECORD_SIZE RUNS ROUNDS
 *     ROUNDS + 1 times (the first is a warm-up): fill the ring with RUNS
 *     BPF_PROG_TEST_RUN calls of the synthetic producer, then time one
 *     ring_buffer__consume(). Prints "round <ns> <records>" per timed round,
 *     then "done <records> <gaps> <bad> 0 0 0 0".
 *
 * Exit status 0 when every record had the right length (gaps are reported,
 * not fatal: the harness compares them with the producer's drop count).
 *
 * Built by the benchmark: cc -O2 benchmarks/bpf/libbpf_consumer.c -lbpf
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

struct state {
    size_t record_size;     /* expected length of every record */
    uint8_t *rows;          /* nrows * record_size bytes, reused like pykring's out= */
    uint64_t nrows;
    uint64_t fill;          /* next row (modulo nrows) */
    uint64_t count;         /* records delivered */
    uint64_t next_seq;      /* expected seq of the next record */
    uint64_t gaps;          /* seq numbers skipped (the producer's drops) */
    uint64_t bad;           /* records of the wrong length */
    uint64_t first_ts;      /* ts_ns of the first record */
};

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int on_record(void *ctx, void *data, size_t size)
{
    struct state *s = ctx;
    uint8_t *row;
    uint64_t seq;

    if (size != s->record_size) {
        s->bad++;
        return 0;
    }
    row = s->rows + (s->fill++ % s->nrows) * s->record_size;
    memcpy(row, data, size);
    memcpy(&seq, row, sizeof seq);          /* the copy, as pykring checks its own */
    if (s->count == 0)
        memcpy(&s->first_ts, row + 8, sizeof s->first_ts);
    if (seq > s->next_seq)
        s->gaps += seq - s->next_seq;
    s->next_seq = seq + 1;
    s->count++;
    return 0;
}

static int parse_u64(const char *str, unsigned long long *v)
{
    char *end;

    errno = 0;
    *v = strtoull(str, &end, 10);
    return *str != '\0' && *end == '\0' && errno == 0;
}

static int usage(void)
{
    fprintf(stderr, "usage: libbpf_consumer stream MAP_FD RECORD_SIZE TOTAL ROWS IDLE_MS\n"
                    "       libbpf_consumer drain MAP_FD PROG_FD RECORD_SIZE RUNS ROUNDS\n");
    return 2;
}

static int stream(int map_fd, struct state *s, uint64_t total, int idle_ms)
{
    struct ring_buffer *rb = ring_buffer__new(map_fd, on_record, s, NULL);
    uint64_t c0, last_ns = 0, last_cpu = 0, polls = 0, idle_since;

    if (!rb) {
        fprintf(stderr, "libbpf_consumer: ring_buffer__new: %s\n", strerror(errno));
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    idle_since = now_ns(CLOCK_MONOTONIC);
    while (s->count < total) {
        int n = ring_buffer__poll(rb, 50);

        polls++;
        if (n < 0 && n != -EINTR) {
            fprintf(stderr, "libbpf_consumer: ring_buffer__poll: %s\n", strerror(-n));
            ring_buffer__free(rb);
            return 1;
        }
        if (n > 0) {
            last_ns = idle_since = now_ns(CLOCK_MONOTONIC);
            last_cpu = now_ns(CLOCK_PROCESS_CPUTIME_ID);
        } else if (now_ns(CLOCK_MONOTONIC) - idle_since > (uint64_t)idle_ms * 1000000u) {
            break;
        }
    }
    ring_buffer__free(rb);
    printf("done %llu %llu %llu %llu %llu %llu %llu\n", (unsigned long long)s->count,
           (unsigned long long)s->gaps, (unsigned long long)s->bad, (unsigned long long)s->first_ts,
           (unsigned long long)last_ns, (unsigned long long)(last_cpu ? last_cpu - c0 : 0),
           (unsigned long long)polls);
    return s->bad != 0;
}

static int drain(int map_fd, int prog_fd, struct state *s, uint64_t runs, uint64_t rounds)
{
    struct ring_buffer *rb = ring_buffer__new(map_fd, on_record, s, NULL);
    uint64_t r, i;

    if (!rb) {
        fprintf(stderr, "libbpf_consumer: ring_buffer__new: %s\n", strerror(errno));
        return 1;
    }
    for (r = 0; r <= rounds; r++) {
        uint64_t before = s->count, t0, t1;
        int n;

        for (i = 0; i < runs; i++) {
            LIBBPF_OPTS(bpf_test_run_opts, opts);
            int rc = bpf_prog_test_run_opts(prog_fd, &opts);

            if (rc != 0) {
                fprintf(stderr, "libbpf_consumer: BPF_PROG_TEST_RUN: %s\n", strerror(-rc));
                ring_buffer__free(rb);
                return 1;
            }
        }
        s->fill = 0;                /* rows from the start, as read(out=) fills them */
        t0 = now_ns(CLOCK_MONOTONIC);
        n = ring_buffer__consume(rb);
        t1 = now_ns(CLOCK_MONOTONIC);
        if (n < 0) {
            fprintf(stderr, "libbpf_consumer: ring_buffer__consume: %s\n", strerror(-n));
            ring_buffer__free(rb);
            return 1;
        }
        if (r > 0)
            printf("round %llu %llu\n", (unsigned long long)(t1 - t0),
                   (unsigned long long)(s->count - before));
    }
    ring_buffer__free(rb);
    printf("done %llu %llu %llu 0 0 0 0\n", (unsigned long long)s->count,
           (unsigned long long)s->gaps, (unsigned long long)s->bad);
    return s->bad != 0;
}

int main(int argc, char **argv)
{
    unsigned long long a[5];
    struct state s;
    int i, rc;

    if (argc != 7)
        return usage();
    for (i = 0; i < 5; i++)
        if (!parse_u64(argv[i + 2], &a[i]))
            return usage();
    memset(&s, 0, sizeof s);
    if (strcmp(argv[1], "stream") == 0) {
        /* MAP_FD RECORD_SIZE TOTAL ROWS IDLE_MS */
        s.record_size = a[1];
        s.nrows = a[3] ? a[3] : 1;
    } else if (strcmp(argv[1], "drain") == 0) {
        /* MAP_FD PROG_FD RECORD_SIZE RUNS ROUNDS: rows for one full ring, allocated below */
        s.record_size = a[2];
        s.nrows = 0;
    } else {
        return usage();
    }
    if (s.record_size < 16)
        return usage();
    if (s.nrows == 0) {
        /* drain: as many rows as the ring can hold records */
        struct bpf_map_info info;
        __u32 len = sizeof info;

        memset(&info, 0, sizeof info);
        if (bpf_obj_get_info_by_fd((int)a[0], &info, &len) != 0) {
            fprintf(stderr, "libbpf_consumer: map info: %s\n", strerror(errno));
            return 1;
        }
        s.nrows = info.max_entries / ((s.record_size + 8 + 7) & ~(size_t)7) + 1;
    }
    s.rows = malloc(s.nrows * s.record_size);
    if (!s.rows) {
        fprintf(stderr, "libbpf_consumer: out of memory\n");
        return 1;
    }
    memset(s.rows, 1, s.nrows * s.record_size);     /* fault the pages in before timing */
    if (argv[1][0] == 's')
        rc = stream((int)a[0], &s, a[2], (int)a[4]);
    else
        rc = drain((int)a[0], (int)a[1], &s, a[3], a[4]);
    free(s.rows);
    return rc;
}
