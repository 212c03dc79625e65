/*
 * synth_trigger.c - drives the synthetic BPF producer (synth.bpf.c) for the
 * streaming half of benchmarks/bpf.py: RUNS calls of BPF_PROG_TEST_RUN on an
 * inherited program fd, back to back, each writing one run of records into
 * the ring while a consumer drains it concurrently.
 *
 * usage: synth_trigger PROG_FD RUNS
 *   Prints "ready", waits for a line on stdin, runs, and prints
 *   "done <runs> <ns> <cpu ns>" (wall and CPU time of the runs).
 *
 * Built by the benchmark: cc -O2 benchmarks/bpf/synth_trigger.c -lbpf
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <bpf/bpf.h>

static uint64_t now_ns(clockid_t clock)
{
    struct timespec ts;

    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    char line[64];
    unsigned long long runs, i;
    uint64_t t0, c0;
    int prog_fd;
    char *end;

    if (argc != 3) {
        fprintf(stderr, "usage: synth_trigger PROG_FD RUNS\n");
        return 2;
    }
    prog_fd = (int)strtol(argv[1], &end, 10);
    if (*end != '\0' || prog_fd < 0)
        return 2;
    runs = strtoull(argv[2], &end, 10);
    if (*end != '\0')
        return 2;
    printf("ready\n");
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 1;
    t0 = now_ns(CLOCK_MONOTONIC);
    c0 = now_ns(CLOCK_PROCESS_CPUTIME_ID);
    for (i = 0; i < runs; i++) {
        LIBBPF_OPTS(bpf_test_run_opts, opts);
        int rc = bpf_prog_test_run_opts(prog_fd, &opts);

        if (rc != 0) {
            fprintf(stderr, "synth_trigger: BPF_PROG_TEST_RUN: %s\n", strerror(-rc));
            return 1;
        }
    }
    printf("done %llu %llu %llu\n", runs, (unsigned long long)(now_ns(CLOCK_MONOTONIC) - t0),
           (unsigned long long)(now_ns(CLOCK_PROCESS_CPUTIME_ID) - c0));
    return 0;
}
