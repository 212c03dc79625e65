/*++

Module Name:

    kring_ring_read.c

Abstract:

    The consumer side that the driver itself runs for one ring: the
    copy-out path (KRingRingRead, IOCTL_KRING_READ, KRING_METHOD_COPY) for
    clients that cannot map the ring, with its check of the kernel-private
    consumer page and its arming of the wakeup, and the ring's counters for
    IOCTL_KRING_STATS (KRingRingStats).

Environment:

    Kernel mode.

--*/

#include "kring_drv.h"

_Use_decl_annotations_
NTSTATUS
KRingRingRead(
    PKRING_RING Ring,
    ULONG Flags,
    UCHAR *Output,
    ULONG OutputLength,
    PULONG Returned
    )
/*++

Routine Description:

    The copy-out path (KRING_METHOD_COPY): returns the published records
    from the client's position on, as raw ring bytes (whole records, DISCARD
    padding included, at most KRING_READ_MAX_BYTES), and counts them as
    consumed. With KRING_READ_ARM and nothing to return, it stores
    waiting = 1 in the (kernel-private) consumer page under the ring's lock,
    so the next write sets the event: the same decision as for a mapped
    consumer, without a lost wakeup.

    The bytes are copied without the lock: the producer never writes the
    range [start, end) before consumer_pos moves past it, and that happens
    only after the copy. One READ per ring at a time (Reading).

Arguments:

    Ring - a ring of method KRING_METHOD_COPY; the caller holds its remove lock.

    Flags - KRING_READ_*.

    Output, OutputLength - the system buffer: struct kring_read_out, then bytes.

    Returned - receives the bytes of the reply.

Return Value:

    STATUS_SUCCESS, STATUS_BUFFER_TOO_SMALL (less than the header and
    KRING_READ_MIN_BYTES), STATUS_INVALID_DEVICE_REQUEST
    (a mapped ring), STATUS_DEVICE_BUSY (another READ in progress).

--*/
{
    struct kring_read_out reply;
    KLOCK_QUEUE_HANDLE lockHandle;
    ULONG64 start, end, limit, offset, first;
    ULONG hlen;

    *Returned = 0;
    if (Ring->Method != KRING_METHOD_COPY) {
        return STATUS_INVALID_DEVICE_REQUEST;
    }
    if (OutputLength < sizeof(reply) + KRING_READ_MIN_BYTES) {
        return STATUS_BUFFER_TOO_SMALL;         /* else a record might never fit */
    }
    if (InterlockedCompareExchange(&Ring->Reading, 1, 0) != 0) {
        return STATUS_DEVICE_BUSY;
    }
    limit = OutputLength - sizeof(reply);
    if (limit > KRING_READ_MAX_BYTES) {
        limit = KRING_READ_MAX_BYTES;
    }
    RtlZeroMemory(&reply, sizeof(reply));

    KeAcquireInStackQueuedSpinLock(&Ring->Lock, &lockHandle);
    /* In copy mode the consumer page is the driver's own memory and only
     * this routine writes consumer_pos, always equal to CopyPos; it is
     * checked all the same (a test build can poke it), and a broken ring
     * returns nothing. */
    start = Ring->CopyPos;
    end = start;
    if (Ring->Cons->consumer_pos != start && !Ring->Broken) {
        Ring->Broken = TRUE;
        kring_fetch_or_u32(&Ring->Prod->flags, KRING_F_BROKEN);
    }
    while (!Ring->Broken && end != Ring->Pos) {
        /* Our own headers, written under this lock. */
        RtlCopyMemory(&hlen, Ring->Data + (end & Ring->Mask), sizeof(hlen));
        if (end - start + KRING_RECORD_SPAN(hlen & KRING_LEN_MASK) > limit) {
            break;
        }
        end += KRING_RECORD_SPAN(hlen & KRING_LEN_MASK);
    }
    Ring->Cons->waiting = (end == start && (Flags & KRING_READ_ARM) != 0) ? 1 : 0;
    reply.ring_flags = Ring->Prod->flags;
    reply.written = Ring->Written;
    reply.dropped = Ring->Dropped;
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    if (end != start) {
        offset = start & Ring->Mask;
        first = end - start;
        if (first > Ring->Capacity - offset) {
            first = Ring->Capacity - offset;
        }
        RtlCopyMemory(Output + sizeof(reply), Ring->Data + offset, (SIZE_T)first);
        RtlCopyMemory(Output + sizeof(reply) + first, Ring->Data, (SIZE_T)(end - start - first));

        KeAcquireInStackQueuedSpinLock(&Ring->Lock, &lockHandle);
        /* Pairs with the acquire load in KRingRingWrite: the bytes are
         * copied before the space is handed back. */
        if (!Ring->Broken) {
            kring_store_release_u64(&Ring->Cons->consumer_pos, end);
            Ring->CopyPos = end;
        }
        KeReleaseInStackQueuedSpinLock(&lockHandle);
    }

    reply.size = sizeof(reply);
    reply.start_pos = start;
    reply.end_pos = end;
    RtlCopyMemory(Output, &reply, sizeof(reply));
    *Returned = (ULONG)(sizeof(reply) + (end - start));
    InterlockedExchange(&Ring->Reading, 0);
    return STATUS_SUCCESS;
}

_Use_decl_annotations_
VOID
KRingRingStats(
    PKRING_RING Ring,
    struct kring_stats_out *Stats
    )
{
    KLOCK_QUEUE_HANDLE lockHandle;

    KeAcquireInStackQueuedSpinLock(&Ring->Lock, &lockHandle);
    Stats->method = Ring->Method;
    Stats->capacity = Ring->Capacity;
    Stats->producer_pos = Ring->Pos;
    Stats->consumer_pos = Ring->LastConsumerPos;
    Stats->written = Ring->Written;
    Stats->dropped = Ring->Dropped;
    Stats->wakeups = Ring->Wakeups;
    Stats->ring_flags = Ring->Prod->flags;
    Stats->events = Ring->Events;
    KeReleaseInStackQueuedSpinLock(&lockHandle);
}
