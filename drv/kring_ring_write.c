/*++

Module Name:

    kring_ring_write.c

Abstract:

    The producer of one ring (KRingRingWrite): PROTOCOL.md section 7 with
    the drop policy. Its position, sequence number and counters are
    private; consumer_pos is read once per record, range-checked, and a
    nonsense value marks the ring broken, so nothing a client writes into
    its page can make the driver write outside the free part of the data
    area. It reserves the record's span (DISCARD padding at the wrap),
    copies the record, publishes producer_pos, and decides whether the
    consumer sleeps and must be woken (PROTOCOL.md 9.1); KRingRingSignal
    sets the event once the ring's lock is released. KRingTimeNs is the
    clock of the records' time stamps.

Environment:

    Kernel mode.

--*/

#include "kring_drv.h"

#define KRING_UNIX_EPOCH_100NS 116444736000000000ULL

static BOOLEAN
KRingWakeDecision(
    _Inout_ PKRING_RING Ring
    )
/*++

Routine Description:

    After producer_pos (or flags) changed: decides whether the consumer
    sleeps and must be woken (PROTOCOL.md 9.1). Ring->Lock is held.

Return Value:

    TRUE when the caller must set the event (KRingRingSignal) once it has
    released the lock.

--*/
{
    /* Store producer_pos, FULL fence, load waiting: pairs with the
     * consumer's store of waiting, full fence, load of producer_pos in
     * kring_wait() (and with KRingRingRead's arming under this lock). */
    kring_fence_full();
    if (kring_load_relaxed_u32(&Ring->Cons->waiting) != 0) {
        /* The consumer compares wake_seq with what it read before it
         * stored waiting: change it before the wake. */
        kring_fetch_add_u32(&Ring->Prod->wake_seq, 1);
        Ring->Wakeups++;
        return TRUE;
    }
    return FALSE;
}

_Use_decl_annotations_
BOOLEAN
KRingRingWrite(
    PKRING_RING Ring,
    USHORT Type,
    USHORT EventFlags,
    ULONG64 TimeNs,
    const UCHAR *Record,
    ULONG Length
    )
/*++

Routine Description:

    Writes one record into the ring, or drops and counts it: the producer
    of PROTOCOL.md section 7 with the drop policy. Every record takes the
    next sequence number, written or dropped, so the consumer sees loss as
    a gap. The ring's spin lock is held only for this copy.

Arguments:

    Ring - the ring; the caller holds its remove lock.

    Type - KRING_TYPE_*; EventFlags - KRING_EV_*; TimeNs - the event time.

    Record - the record as built (its first 24 bytes, the event header, are
        filled in here), or NULL to count a record that could not be built.

    Length - payload bytes: from the type's min_size to its size.

Return Value:

    TRUE when the consumer must be woken (call KRingRingSignal).

--*/
{
    KLOCK_QUEUE_HANDLE lockHandle;
    struct kring_record_header header;
    struct kring_event_header event;
    BOOLEAN wake = FALSE;
    ULONG64 consumerPos, used, room, span, offset, pad;
    PUCHAR out;

    KeAcquireInStackQueuedSpinLock(&Ring->Lock, &lockHandle);
    event.seq = Ring->Seq++;
    if (Ring->Broken || Record == NULL) {
        goto Drop;
    }

    /* Read the consumer's word once, into a local, and check it
     * (PROTOCOL.md 7.1). Pairs with the consumer's release store of
     * consumer_pos in kring_commit(). */
    consumerPos = kring_load_acquire_u64(&Ring->Cons->consumer_pos);
    Ring->LastConsumerPos = consumerPos;
    used = Ring->Pos - consumerPos;
    if ((consumerPos & (KRING_ALIGN - 1)) != 0 || used > Ring->Capacity) {
        Ring->Broken = TRUE;
        KRING_ERR("ring %u: consumer_pos 0x%I64x is nonsense at producer_pos 0x%I64x: ring broken\n",
                  Ring->Id, consumerPos, Ring->Pos);
        /* seq_cst RMW after the last producer_pos store (pairs with the
         * consumer's acquire load of flags), then wake as after a write. */
        kring_fetch_or_u32(&Ring->Prod->flags, KRING_F_BROKEN);
        wake = KRingWakeDecision(Ring);
        goto Drop;
    }

    room = Ring->Capacity - used;
    span = KRING_RECORD_SPAN(Length);
    offset = Ring->Pos & Ring->Mask;
    pad = (offset + span > Ring->Capacity) ? Ring->Capacity - offset : 0;
    if (pad + span > room) {
        goto Drop;                              /* full: drop the new record */
    }

    if (pad != 0) {
        /* A record never straddles the end (PROTOCOL.md 5.3). */
        header.len = (ULONG)(pad - KRING_RECORD_HEADER_SIZE) | KRING_DISCARD_BIT;
        header.pg_off = 0;
        RtlCopyMemory(Ring->Data + offset, &header, sizeof(header));
        Ring->Pos += pad;
        offset = 0;
    }

    out = Ring->Data + offset;
    header.len = Length;
    header.pg_off = 0;
    event.ts_ns = TimeNs;
    event.type = Type;
    event.flags = EventFlags;
    event.reserved = 0;
    RtlCopyMemory(out, &header, sizeof(header));
    RtlCopyMemory(out + KRING_RECORD_HEADER_SIZE, &event, sizeof(event));
    RtlCopyMemory(out + KRING_RECORD_HEADER_SIZE + KRING_EVENT_HEADER_SIZE,
                  Record + KRING_EVENT_HEADER_SIZE, Length - KRING_EVENT_HEADER_SIZE);
    Ring->Pos += span;
    Ring->Written++;

    kring_store_relaxed_u64(&Ring->Prod->written, Ring->Written);
    /* Pairs with the consumer's acquire load of producer_pos in
     * kring_drain(): the record and the counter are visible before the
     * position that covers them. */
    kring_store_release_u64(&Ring->Prod->producer_pos, Ring->Pos);
    wake = KRingWakeDecision(Ring);
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    return wake;

Drop:
    Ring->Dropped++;
    kring_store_relaxed_u64(&Ring->Prod->dropped, Ring->Dropped);
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    return wake;
}

_Use_decl_annotations_
VOID
KRingRingSignal(
    PKRING_RING Ring
    )
/*++

Routine Description:

    Sets the ring's event, after KRingRingWrite asked for it and the spin
    lock is released. ZwSetEvent on the driver's kernel handle works the
    same on Windows and under Wine (whose KeSetEvent does not reach a named
    event referenced with ObReferenceObjectByHandle); every caller runs at
    PASSIVE_LEVEL (process and image callbacks, IOCTL dispatch).

--*/
{
    ZwSetEvent(Ring->EventHandle, NULL);
}

ULONG64
KRingTimeNs(
    VOID
    )
/*++

Routine Description:

    The current time in nanoseconds since the Unix epoch (PROTOCOL.md 5.7),
    from KeQuerySystemTimePrecise where the system has it.

--*/
{
    LARGE_INTEGER now;

    if (KRingGlobals.QuerySystemTimePrecise != NULL) {
        KRingGlobals.QuerySystemTimePrecise(&now);
    } else {
        KeQuerySystemTime(&now);
    }
    return ((ULONG64)now.QuadPart - KRING_UNIX_EPOCH_100NS) * 100;
}
