/*
 * producer.c - the benchmark's C producer process (benchmarks/e2e.py).
 *
 * Attaches to an existing ring as its producer in block mode (lossless),
 * writes COUNT records of RECORD_SIZE bytes (the 24-byte event header
 * included) in batches of BATCH records per kring_write(), then closes the
 * ring cleanly so the consumer sees KRING_F_CLOSED after the last record.
 * kring_write() stamps seq, ts_ns, type and flags; the bodies are one
 * buffer filled once with a cheap byte pattern.
 *
 * usage: producer RING_PATH COUNT RECORD_SIZE BATCH [--handshake]
 *
 * --handshake: print "ready" once attached and wait for a line on stdin
 * before writing, so the consumer times the stream, not process start-up.
 * On success it prints "done <records> <ns> <consumer wakeups> <cpu ns>" on
 * stdout (ns: wall time from the first write to the clean close; cpu ns:
 * this process's CPU time over the same window) and exits 0.
 *
 * Built by the harness with the project's own sources (benchmarks/_common.py,
 * PRODUCER_SOURCES):
 *   cc -O2 -std=c11 -Iinclude -Icsrc benchmarks/producer.c csrc/kring_producer.c
 *      csrc/kring_consumer.c csrc/kring_drain.c csrc/kring_wait.c csrc/kring_meta.c
 *      csrc/kring_linux.c csrc/kring_guard.c csrc/kring_bpf_map.c
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kring_user.h"

static uint64_t clock_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int usage(void)
{
    fprintf(stderr, "usage: producer RING_PATH COUNT RECORD_SIZE BATCH [--handshake]\n");
    return 2;
}

static int parse_u64(const char *s, unsigned long long *v)
{
    char *end;

    *v = strtoull(s, &end, 10);
    return *s != '\0' && *end == '\0';
}

int main(int argc, char **argv)
{
    struct kring_producer p;
    unsigned long long count, size, batch;
    uint64_t left, body, t0, t1, c0, c1, i;
    uint16_t type = 0;
    uint8_t *src;
    int handshake = 0, rc, exit_code = 0;
    uint32_t t;

    if (argc == 6 && strcmp(argv[5], "--handshake") == 0)
        handshake = 1;
    else if (argc != 5)
        return usage();
    if (!parse_u64(argv[2], &count) || !parse_u64(argv[3], &size) ||
        !parse_u64(argv[4], &batch) || batch == 0 || size < KRING_EVENT_HEADER_SIZE)
        return usage();
    body = size - KRING_EVENT_HEADER_SIZE;

    rc = kring_producer_open(&p, argv[1], KRING_BLOCK);
    if (rc != KRING_OK) {
        fprintf(stderr, "producer: open %s: %s (errno %d)\n", argv[1], kring_strerror(rc),
                p.m.os_error);
        return 1;
    }
    /* The ring's one record type must be exactly RECORD_SIZE bytes. */
    for (t = 1; t < KRING_MAX_TYPES; t++) {
        if (p.type_size[t] == size && p.type_min[t] <= size) {
            type = (uint16_t)t;
            break;
        }
    }
    if (type == 0) {
        fprintf(stderr, "producer: the ring has no record type of %llu bytes\n", size);
        kring_producer_close(&p, 0);
        return 1;
    }

    /* One batch of bodies, a cheap pattern; body == 0 still needs a pointer. */
    src = malloc(batch * body + 1);
    if (!src) {
        fprintf(stderr, "producer: out of memory\n");
        kring_producer_close(&p, 0);
        return 1;
    }
    for (i = 0; i < batch * body; i++)
        src[i] = (uint8_t)(i * 131u + 7u);

    if (handshake) {
        char line[16];

        printf("ready\n");
        fflush(stdout);
        if (!fgets(line, sizeof line, stdin)) {
            fprintf(stderr, "producer: no go signal on stdin\n");
            free(src);
            kring_producer_close(&p, 0);
            return 1;
        }
    }

    t0 = clock_ns(CLOCK_MONOTONIC);
    c0 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    left = count;
    while (left > 0) {
        const uint64_t k = left < batch ? left : batch;
        uint64_t done = 0;

        rc = kring_write(&p, type, src, body, (uint32_t)body, NULL, k, 0, -1, &done);
        left -= done;
        if (rc != KRING_OK) {
            fprintf(stderr, "producer: write: %s after %llu records\n", kring_strerror(rc),
                    (unsigned long long)(count - left));
            exit_code = 1;
            break;
        }
    }
    kring_producer_close(&p, 1);
    t1 = clock_ns(CLOCK_MONOTONIC);
    c1 = clock_ns(CLOCK_PROCESS_CPUTIME_ID);
    free(src);
    if (exit_code == 0)
        printf("done %llu %llu %llu %llu\n", (unsigned long long)(count - left),
               (unsigned long long)(t1 - t0), (unsigned long long)p.wakeups,
               (unsigned long long)(c1 - c0));
    return exit_code;
}
