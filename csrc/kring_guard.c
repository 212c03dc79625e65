/*
 * kring_guard.c - the SIGBUS guard of kring_guard.h (Linux).
 *
 * One process-wide handler, installed when a ring is mapped. A fault whose
 * address lies in a mapping that the faulting thread guards returns to that
 * guard (siglongjmp); any other SIGBUS is passed to the handler installed
 * before ours, or gets the default action (the process dies as it would
 * have without pykring).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>

#include "kring_guard.h"

/* This thread's innermost guard. Written only by its own thread; the
 * handler runs on the faulting thread, so it reads its own thread's list. */
static __thread struct kring_guard *volatile top;
static struct sigaction previous;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static int install_rc = KRING_E_OS;

static int in_range(const void *addr, const void *base, uint64_t len)
{
    const uintptr_t a = (uintptr_t)addr, b = (uintptr_t)base;

    return base != NULL && a >= b && a - b < len;
}

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
    struct kring_guard *g;

    for (g = top; g != NULL; g = g->prev) {
        const struct kring_map *m = g->m;

        if (si && (in_range(si->si_addr, m->base_cons, m->len_cons) ||
                   in_range(si->si_addr, m->base_prod, m->len_prod)))
            siglongjmp(g->env, 1);
    }
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
    install_rc = sigaction(SIGBUS, &sa, &previous) == 0 ? KRING_OK : KRING_E_OS;
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
