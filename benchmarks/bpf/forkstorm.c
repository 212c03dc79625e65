/*
 * forkstorm.c - process creation load for benchmarks/bpf.py.
 *
 * usage:
 *   forkstorm storm N
 *     N times fork(), the child _exit(0)s, the parent waitpid()s it, one at a
 *     time. Prints "done <N> <ns>".
 *   forkstorm spawn RATE N PATH
 *     N process starts of PATH (no arguments) paced at RATE per second:
 *     start i is due at t0 + i / RATE; vfork() + execv(), children reaped
 *     as they exit (at most 1024 outstanding; a start that is late goes at
 *     once). Prints "done <N started> <ns until all reaped> <ns until the
 *     last start> <failed execs> <max lateness ns>".
 *
 * Built by the benchmark: cc -O2 benchmarks/bpf/forkstorm.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_OUTSTANDING 1024

static uint64_t now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static int reap(int block, unsigned long long *failed)
{
    int status;
    pid_t pid = waitpid(-1, &status, block ? 0 : WNOHANG);

    if (pid <= 0)
        return 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        (*failed)++;
    return 1;
}

/* vfork() + execv() in a function of its own: the caller's locals stay out
 * of the frame that returns twice. */
static __attribute__((noinline)) pid_t start(const char *path)
{
    char *const argv[] = {(char *)path, NULL};
    pid_t pid = vfork();

    if (pid == 0) {
        execv(path, argv);
        _exit(127);
    }
    return pid;
}

static int storm(unsigned long long n)
{
    unsigned long long i;
    uint64_t t0 = now_ns();

    for (i = 0; i < n; i++) {
        pid_t pid = fork();

        if (pid == 0)
            _exit(0);
        if (pid < 0) {
            perror("forkstorm: fork");
            return 1;
        }
        if (waitpid(pid, NULL, 0) != pid) {
            perror("forkstorm: waitpid");
            return 1;
        }
    }
    printf("done %llu %llu\n", n, (unsigned long long)(now_ns() - t0));
    return 0;
}

static int spawn(double rate, unsigned long long n, const char *path)
{
    unsigned long long i, failed = 0, outstanding = 0;
    uint64_t t0 = now_ns(), t_last = t0, max_late = 0;
    double period = 1e9 / rate;

    for (i = 0; i < n; i++) {
        uint64_t due = t0 + (uint64_t)(i * period), now;
        pid_t pid;

        while ((now = now_ns()) < due) {
            if (outstanding && reap(0, &failed)) {
                outstanding--;
                continue;
            }
            if (due - now > 20000) {
                struct timespec ts = {0, (long)((due - now) / 2)};

                nanosleep(&ts, NULL);
            }
        }
        if (now - due > max_late)
            max_late = now - due;
        while (outstanding >= MAX_OUTSTANDING && reap(1, &failed))
            outstanding--;
        pid = start(path);
        if (pid < 0) {
            perror("forkstorm: vfork");
            return 1;
        }
        outstanding++;
        t_last = now_ns();
        while (outstanding && reap(0, &failed))
            outstanding--;
    }
    while (outstanding && reap(1, &failed))
        outstanding--;
    printf("done %llu %llu %llu %llu %llu\n", n, (unsigned long long)(now_ns() - t0),
           (unsigned long long)(t_last - t0), failed, (unsigned long long)max_late);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "storm") == 0)
        return storm(strtoull(argv[2], NULL, 10));
    if (argc == 5 && strcmp(argv[1], "spawn") == 0)
        return spawn(strtod(argv[2], NULL), strtoull(argv[3], NULL, 10), argv[4]);
    fprintf(stderr, "usage: forkstorm storm N | forkstorm spawn RATE N PATH\n");
    return 2;
}
