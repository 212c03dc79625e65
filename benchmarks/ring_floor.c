/*
 * ring_floor.c - what the hardware gives a ring of pykring's record layout,
 * with nothing else in the way (benchmarks/peers.py, the c_floor keys).
 *
 * Two processes share an anonymous mapping of CAPACITY data bytes. The
 * producer writes COUNT records of SPAN bytes (an 8-byte length word, the
 * 24-byte event header with seq, then the body) in batches of BATCH, each
 * batch contiguous (padded to the end of the data area first when it would
 * not fit), and publishes each batch with one release store of its
 * position; the consumer checks the seq of every record in place and
 * publishes its position after each batch it saw. Both sides spin: no
 * sleep, no wake, no Python, no checks of hostile input.
 *
 * MODE 1, one pass: each record's header and body are written together, as
 * kring_write writes. MODE 2, two passes: every body of the batch first,
 * then every header, as a zero-copy reservation is filled (by the caller)
 * and then stamped (by kring_publish).
 *
 * usage: ring_floor CAPACITY SPAN BATCH COUNT MODE
 * prints: {"records": N, "seconds": S, "bad": B}   (B: records whose seq was wrong)
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAD 0                   /* a length word of 0: skip to the end of the data area */

static double now(void)
{
    struct timespec t;

    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void stamp(uint8_t *r, uint64_t span, uint64_t seq)
{
    const uint64_t len = span - 8, w3 = 1;

    memcpy(r, &len, 8);
    memcpy(r + 8, &seq, 8);
    memcpy(r + 16, &seq, 8);    /* ts */
    memcpy(r + 24, &w3, 8);     /* type, flags */
}

static void produce(uint8_t *data, volatile uint64_t *pos_w, volatile uint64_t *cons_w, uint64_t cap,
                    uint64_t span, uint64_t batch, uint64_t count, int mode)
{
    static uint8_t body[1 << 16];
    uint64_t pos = 0, seq = 0, i;

    memset(body, 7, sizeof body);
    while (seq < count) {
        const uint64_t n = count - seq < batch ? count - seq : batch;
        const uint64_t need = n * span;
        uint64_t off = pos % cap;
        uint8_t *r;

        if (off + need > cap) {
            const uint64_t pad = PAD;

            while (pos + (cap - off) - __atomic_load_n(cons_w, __ATOMIC_ACQUIRE) > cap)
                ;
            memcpy(data + off, &pad, 8);
            pos += cap - off;
            off = 0;
            __atomic_store_n(pos_w, pos, __ATOMIC_RELEASE);
        }
        while (pos + need - __atomic_load_n(cons_w, __ATOMIC_ACQUIRE) > cap)
            ;
        r = data + off;
        if (mode == 1) {
            for (i = 0; i < n; i++, r += span) {
                stamp(r, span, seq + i);
                memcpy(r + 32, body, span - 32);
            }
        } else {
            for (i = 0; i < n; i++)
                memcpy(r + i * span + 32, body, span - 32);
            for (i = 0; i < n; i++)
                stamp(r + i * span, span, seq + i);
        }
        seq += n;
        pos += need;
        __atomic_store_n(pos_w, pos, __ATOMIC_RELEASE);
    }
}

int main(int argc, char **argv)
{
    uint64_t cap, span, batch, count, cons = 0, seq = 0, bad = 0, p;
    volatile uint64_t *ctl;
    uint8_t *data;
    double t0, t;
    int mode, status;
    pid_t pid;

    if (argc != 6) {
        fprintf(stderr, "usage: ring_floor CAPACITY SPAN BATCH COUNT MODE\n");
        return 2;
    }
    cap = strtoull(argv[1], NULL, 0);
    span = strtoull(argv[2], NULL, 0);
    batch = strtoull(argv[3], NULL, 0);
    count = strtoull(argv[4], NULL, 0);
    mode = atoi(argv[5]);
    if (span < 40 || span % 8 || span - 32 > (1 << 16) || batch == 0 || batch * span > cap / 2) {
        fprintf(stderr, "ring_floor: bad sizes\n");
        return 2;
    }
    ctl = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    data = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (ctl == MAP_FAILED || data == MAP_FAILED) {
        perror("ring_floor: mmap");
        return 1;
    }
    pid = fork();
    if (pid < 0) {
        perror("ring_floor: fork");
        return 1;
    }
    if (pid == 0) {
        produce(data, &ctl[0], &ctl[8], cap, span, batch, count, mode);
        _exit(0);
    }
    t0 = now();
    while (seq < count) {
        while ((p = __atomic_load_n(&ctl[0], __ATOMIC_ACQUIRE)) == cons)
            ;
        while (cons < p) {
            const uint64_t off = cons % cap;
            const uint8_t *r = data + off;
            uint64_t w, s;

            memcpy(&w, r, 8);
            if (w == PAD) {
                cons += cap - off;
                continue;
            }
            memcpy(&s, r + 8, 8);
            bad += s != seq;
            seq++;
            cons += span;
        }
        __atomic_store_n(&ctl[8], cons, __ATOMIC_RELEASE);
    }
    t = now() - t0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return 1;
    printf("{\"records\": %llu, \"seconds\": %.9f, \"bad\": %llu}\n", (unsigned long long)seq, t,
           (unsigned long long)bad);
    return 0;
}
