/*
 * The native driver-ring tests' API (kring_shim_*), on the user-mode kernel
 * of shim.c: create a ring with the driver's own KRingRingCreate, write with
 * KRingRingWrite from any number of threads, copy out with KRingRingRead,
 * drain a mapped-method ring with the user-mode consumer of csrc/ (the C
 * code pykring runs), poke its consumer page as a client could.
 */
#include <string.h>

#include "kring_drv.h"
#include "kring_user.h"

/* ---- the tests' API ---- */

/* A ring made by the driver's KRingRingCreate; method 1: the consumer reads
 * the shared pages directly (as a mapped client), 2: READ copies out. */
PKRING_RING kring_shim_create(uint64_t ring_size, uint32_t method)
{
    struct kring_attach_in req;
    PKRING_RING ring = NULL;

    memset(&req, 0, sizeof req);
    req.size = sizeof req;
    req.flags = KRING_ATTACH_COPY;
    req.ring_size = ring_size;
    req.events = KRING_EVENTS_ALL;
    if (KRingGlobals.NextRingId == 0)
        KeInitializeSpinLock(&KRingGlobals.RingListLock);
    if (!NT_SUCCESS(KRingRingCreate(&req, &ring)))
        return NULL;
    KeInitializeSpinLock(&ring->Lock);
    ring->Method = method;
    return ring;
}

void kring_shim_free(PKRING_RING ring) { KRingRingFree(ring); }

/* One process_start record of `length` payload bytes (>= the type's
 * min_size) with pid and ppid as given; returns the wake decision. */
int kring_shim_write(PKRING_RING ring, uint32_t pid, uint32_t ppid, uint32_t length)
{
    struct kring_process_start r;

    memset(&r, 0, sizeof r);
    r.pid = pid;
    r.ppid = ppid;
    if (length < KRING_PROCESS_START_MIN_SIZE)
        length = KRING_PROCESS_START_MIN_SIZE;
    if (length > sizeof r)
        length = sizeof r;
    return KRingRingWrite(ring, KRING_TYPE_PROCESS_START, 0, 1000, (const UCHAR *)&r, length);
}

int32_t kring_shim_read(PKRING_RING ring, uint32_t flags, uint8_t *out, uint32_t out_len, uint32_t *returned)
{
    ULONG got = 0;
    NTSTATUS st = KRingRingRead(ring, flags, out, out_len, &got);

    *returned = got;
    return st;
}

struct kring_consumer_page *kring_shim_consumer_page(PKRING_RING ring) { return ring->Cons; }
struct kring_producer_page *kring_shim_producer_page(PKRING_RING ring) { return ring->Prod; }
uint8_t *kring_shim_data(PKRING_RING ring) { return ring->Data; }
uint64_t kring_shim_written(PKRING_RING ring) { return ring->Written; }
uint64_t kring_shim_dropped(PKRING_RING ring) { return ring->Dropped; }
uint64_t kring_shim_pos(PKRING_RING ring) { return ring->Pos; }
int kring_shim_broken(PKRING_RING ring) { return ring->Broken; }
uint32_t kring_shim_flags(PKRING_RING ring) { return ring->Prod->flags; }
uint32_t kring_shim_wake_seq(PKRING_RING ring) { return ring->Prod->wake_seq; }
uint64_t kring_shim_last_consumer_pos(PKRING_RING ring) { return ring->LastConsumerPos; }

/* What a mapped client can do to its consumer page (the only page it may
 * write): store any consumer_pos, announce that it sleeps. */
void kring_shim_poke(PKRING_RING ring, uint64_t consumer_pos)
{
    __atomic_store_n(&ring->Cons->consumer_pos, consumer_pos, __ATOMIC_RELEASE);
}
void kring_shim_set_waiting(PKRING_RING ring, uint32_t waiting)
{
    __atomic_store_n(&ring->Cons->waiting, waiting, __ATOMIC_SEQ_CST);
}
