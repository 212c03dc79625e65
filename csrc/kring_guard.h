/*
 * kring_guard.h - survive a ring file shrunk under a live mapping (private).
 *
 * Any process that can write a shared-memory ring file can truncate it. The
 * kernel then raises SIGBUS on the next access to a page past the new end,
 * which would kill the consumer or the producer. Every public entry point
 * that touches ring memory runs inside a guard: a SIGBUS whose address lies
 * in the guarded ring's mapping jumps back to the guard, which turns it into
 * an error (KRING_E_CORRUPT / KRING_E_BROKEN, reason "truncated"); any other
 * SIGBUS goes to the handler that was installed before ours (or the default
 * action). docs/PROTOCOL.md explains why this and not file seals.
 *
 *     struct kring_guard g;
 *     kring_guard_push(&g, &c->m);
 *     if (KRING_GUARD_FAULTED(&g)) {      -- the mapping faulted in work()
 *         kring_guard_leave(&g);
 *         return truncated(c);
 *     }
 *     rc = work(c);
 *     kring_guard_leave(&g);
 *     return rc;
 *
 * Guards nest (a guarded call may call another) and are per thread. Windows
 * cannot shrink a mapped section, so there the guard is empty.
 */
#ifndef KRING_GUARD_H
#define KRING_GUARD_H

#include "kring_user.h"

#if defined(__linux__)
#include <setjmp.h>

struct kring_guard {
    sigjmp_buf env;                 /* where a fault in the guarded mapping returns to */
    const struct kring_map *m;      /* the guarded mapping */
    struct kring_guard *prev;       /* the enclosing guard of this thread, or NULL */
};

/* Push g as this thread's innermost guard of mapping m (kring_guard.c). */
void kring_guard_push(struct kring_guard *g, const struct kring_map *m);
/* Pop g: on the normal path, and after a fault has returned to it. */
void kring_guard_leave(struct kring_guard *g);
/* Install the SIGBUS handler (idempotent; again if someone replaced it). */
int kring_guard_install(void);
/* Mapping m's bytes are handed out as arrays (zero-copy rows) that code
 * outside any guard reads and writes: a fault in it anywhere marks it
 * faulted and maps zero pages over the truncated part, so the access that
 * faulted completes (reading zeros) instead of killing the process. Undone
 * by kring_guard_unlend before m is unmapped. */
void kring_guard_lend(struct kring_map *m);
void kring_guard_unlend(struct kring_map *m);

/* True (as the controlling expression of an if) when the guarded code
 * faulted. sigsetjmp must run in the caller's frame, hence a macro; the
 * signal mask is not saved: the handler runs with SA_NODEFER, so SIGBUS
 * does not stay blocked after the jump. */
#define KRING_GUARD_FAULTED(g) (sigsetjmp((g)->env, 0) != 0)

/* Run the statement `call` in a guard of `map`; `on_fault` instead if it
 * faulted. Locals that `call` assigns are indeterminate after a fault:
 * `on_fault` must assign what it needs afresh. */
#define KRING_GUARDED(map, on_fault, call)                \
    do {                                                  \
        struct kring_guard kring_g_;                      \
        kring_guard_push(&kring_g_, (map));               \
        if (KRING_GUARD_FAULTED(&kring_g_)) {             \
            kring_guard_leave(&kring_g_);                 \
            on_fault;                                     \
        } else {                                          \
            call;                                         \
            kring_guard_leave(&kring_g_);                 \
        }                                                 \
    } while (0)

#else

struct kring_guard {
    int unused;
};
#define kring_guard_push(g, map) ((void)(g), (void)(map))
#define kring_guard_leave(g) ((void)(g))
#define kring_guard_install() KRING_OK
#define kring_guard_lend(m) ((void)(m))
#define kring_guard_unlend(m) ((void)(m))
#define KRING_GUARD_FAULTED(g) 0
#define KRING_GUARDED(map, on_fault, call) \
    do {                                   \
        (void)(map);                       \
        call;                              \
    } while (0)

#endif

#endif /* KRING_GUARD_H */
