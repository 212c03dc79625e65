/*
 * kring_guard.c - the SIGBUS guard of kring_guard.h (Linux).
 *
 * One process-wide handler, installed when a ring is mapped. A fault whose
 * address lies in a mapping that the faulting thread guards returns to that
 * guard (siglongjmp); a fault in a mapping whose bytes were lent to numpy
 * (zero-copy rows) gets zero pages mapped over it and completes; any other
 * SIGBUS is passed to the handler installed before ours, or gets the
 * default action (the process dies as it would have without pykring).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kring_guard.h"

/* This thread's innermost guard. Written only by its own thread; the
 * handler runs on the faulting thread, so it reads its own thread's list. */
static __thread struct kring_guard *volatile top;
static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_rc = KRING_E_OS;
static uintptr_t page_size = 4096;

/* The mappings whose bytes are numpy rows (kring_guard_lend); read by the
 * handler on any thread, so each slot is one atomic pointer. A mapping that
 * finds no free slot has no net (KRING_MAX_LENT rings at once do). */
#define KRING_MAX_LENT 64
static struct kring_map *lent[KRING_MAX_LENT];

static int in_range(const void *addr, const void *base, uint64_t len)
{
    const uintptr_t a = (uintptr_t)addr, b = (uintptr_t)base;

    return base != NULL && a >= b && a - b < len;
}

static int in_map(const void *addr, const struct kring_map *m)
{
    return in_range(addr, m->base_cons, m->len_cons) || in_range(addr, m->base_prod, m->len_prod);
}

/* A fault in lent bytes outside a guard: numpy touched rows of a ring file
 * that was truncated. Zero pages over the faulting page (mmap is a plain
 * system call here), and the ring is faulted: its next call says so. */
static int zero_fill(void *addr)
{
    void *page = (void *)((uintptr_t)addr & ~(page_size - 1));
    int i;

    for (i = 0; i < KRING_MAX_LENT; i++) {
        struct kring_map *m = __atomic_load_n(&lent[i], __ATOMIC_ACQUIRE);

        if (m == NULL || !in_map(addr, m))
            continue;
        if (mmap(page, page_size, PROT_READ | PROT_WRITE, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) ==
            MAP_FAILED)
            return 0;
        m->faulted = 1;
        return 1;
    }
    return 0;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    struct kring_guard *g;

    for (g = top; g != NULL; g = g->prev) {
        if (si && in_map(si->si_addr, g->m))
            siglongjmp(g->env, 1);
    }
    if (si && si->si_code > 0 && zero_fill(si->si_addr))
        return;                             /* the access is retried, on zeros */
    /* Not ours: what would have happened without us. */
    if (previous.sa_flags & SA_SIGINFO) {
        previous.sa_sigaction(sig, si, uc);
        return;
    }
    if (previous.sa_handler != SIG_DFL && previous.sa_handler != SIG_IGN) {
        previous.sa_handler(sig);
        return;
    }
    if (previous.sa_handler == SIG_IGN && (!si || si->si_code <= 0))
        return;                             /* a sent SIGBUS was ignored before us */
    /* The default action: restore it. A fault (si_code > 0) happens again
     * when the access is retried on return; a SIGBUS sent by kill() or
     * raise() is sent again (SA_NODEFER: not blocked in here). */
    signal(SIGBUS, SIG_DFL);
    if (!si || si->si_code <= 0)
        raise(SIGBUS);
}

static void install(void)
{
    struct sigaction sa;

    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigbus;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sysconf(_SC_PAGESIZE) > 0)
        page_size = (uintptr_t)sysconf(_SC_PAGESIZE);
    install_rc = sigaction(SIGBUS, &sa, &previous) == 0 ? KRING_OK : KRING_E_OS;
}

void kring_guard_lend(struct kring_map *m)
{
    int i;

    if (m->lent)
        return;
    for (i = 0; i < KRING_MAX_LENT; i++) {
        struct kring_map *none = NULL;

        if (__atomic_compare_exchange_n(&lent[i], &none, m, 0, __ATOMIC_RELEASE, __ATOMIC_RELAXED)) {
            m->lent = i + 1;
            return;
        }
    }
}

void kring_guard_unlend(struct kring_map *m)
{
    if (m->lent)
        __atomic_store_n(&lent[m->lent - 1], NULL, __ATOMIC_RELEASE);
    m->lent = 0;
}

int kring_guard_install(void)
{
    /* Once per process. A handler installed after ours (a fault handler, a
     * sanitizer) sees our faults first; it chains to us or it does not,
     * which is its choice: replacing it again could loop between the two. */
    pthread_once(&once, install);
    return install_rc;
}

void kring_guard_push(struct kring_guard *g, const struct kring_map *m)
{
    g->m = m;
    g->prev = top;
    top = g;
}

void kring_guard_leave(struct kring_guard *g)
{
    top = g->prev;
}
