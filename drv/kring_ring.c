/*++

Module Name:

    kring_ring.c

Abstract:

    One consumer's ring: its memory and description, its user views, the
    producer that writes records into it, the copy-out path for clients
    that cannot map it, and its teardown.

    The layout is the one of docs/PROTOCOL.md: a consumer page, a producer
    page with the description and schema (csrc/kring_events.c fills it), and
    a data area of 2^n bytes mapped once, with DISCARD padding at the wrap.
    The producer (KRingRingWrite) follows PROTOCOL.md section 7 with the
    drop policy: its position, sequence number and counters are private;
    consumer_pos is read once per record, range-checked, and a nonsense
    value marks the ring broken, so nothing a client writes into its page
    can make the driver write outside the free part of the data area.

Environment:

    Kernel mode.

--*/

#include "kring_drv.h"

#define KRING_UNIX_EPOCH_100NS 116444736000000000ULL

static PVOID
KRingAllocatePages(
    _In_ SIZE_T Bytes,
    _Out_ PVOID *Allocation
    )
/*++

Routine Description:

    Allocates zeroed, page-aligned nonpaged memory for ring pages that may
    be mapped into a process: a mapping must never expose a neighbouring
    pool allocation. Pool blocks of a page or more are page-aligned on
    Windows; elsewhere (Wine) the block is over-allocated and aligned here.

Arguments:

    Bytes - a multiple of PAGE_SIZE.

    Allocation - receives the pool block to free with ExFreePoolWithTag.

Return Value:

    The page-aligned start, or NULL.

--*/
{
    PUCHAR block = ExAllocatePoolWithTag(NonPagedPoolNx, Bytes, KRING_POOL_TAG);
    PUCHAR start = block;

    if (block != NULL && ((ULONG_PTR)block & (PAGE_SIZE - 1)) != 0) {
        ExFreePoolWithTag(block, KRING_POOL_TAG);
        block = ExAllocatePoolWithTag(NonPagedPoolNx, Bytes + PAGE_SIZE, KRING_POOL_TAG);
        start = block ? (PUCHAR)(((ULONG_PTR)block + PAGE_SIZE - 1) & ~(ULONG_PTR)(PAGE_SIZE - 1)) : NULL;
    }
    *Allocation = block;
    if (start != NULL) {
        RtlZeroMemory(start, Bytes);
    }
    return start;
}

static NTSTATUS
KRingCreateEvent(
    _Inout_ PKRING_RING Ring
    )
/*++

Routine Description:

    Creates the ring's auto-reset event, Ring-<id> (eight hex digits) in the
    driver's unnamed event directory, with a security descriptor
    (KRingEventSd) owned by SYSTEM that lets SYSTEM do anything and
    Administrators only wait (SYNCHRONIZE): a client can neither set nor
    reset it, nor, not being its owner, change its DACL. Only this driver
    can create names in that directory and ring ids are unique, so the name
    is never taken; the create still never opens an existing object.

Arguments:

    Ring - receives EventHandle.

Return Value:

    STATUS_SUCCESS, or the status of ZwCreateEvent.

--*/
{
    static const WCHAR hex[] = L"0123456789abcdef";
    /* O:SY, DACL SYSTEM all and Administrators SYNCHRONIZE (kring_access.c).
     * The object manager captures a copy; it is never written. */
    PSECURITY_DESCRIPTOR sd = (PSECURITY_DESCRIPTOR)&KRingEventSd;
    WCHAR name[] = L"Ring-00000000";
    UNICODE_STRING nameString;
    OBJECT_ATTRIBUTES attributes;
    NTSTATUS status;
    ULONG i;

    for (i = 0; i < 8; i++) {
        name[5 + 7 - i] = hex[(Ring->Id >> (4 * i)) & 0xF];
    }
    RtlInitUnicodeString(&nameString, name);
    InitializeObjectAttributes(&attributes, &nameString, OBJ_KERNEL_HANDLE, KRingGlobals.EventDirectory, sd);
    status = ZwCreateEvent(&Ring->EventHandle, EVENT_ALL_ACCESS, &attributes, SynchronizationEvent, FALSE);
    if (!NT_SUCCESS(status)) {
        Ring->EventHandle = NULL;
    }
    return status;
}

_Use_decl_annotations_
NTSTATUS
KRingRingCreate(
    const struct kring_attach_in *Request,
    PKRING_RING *Ring
    )
/*++

Routine Description:

    Allocates a ring of Request->ring_size data bytes (checked by the
    caller), fills its producer page (description, the kernel event schema)
    and creates its event. The ring is not mapped and not in the list yet.

Arguments:

    Request - the validated ATTACH request.

    Ring - receives the ring.

Return Value:

    STATUS_SUCCESS, STATUS_INSUFFICIENT_RESOURCES, or the event's status.

--*/
{
    PKRING_RING ring;
    struct kring_producer_page *prod;
    NTSTATUS status;

    *Ring = NULL;
    ring = ExAllocatePoolWithTag(NonPagedPoolNx, sizeof(KRING_RING), KRING_POOL_TAG);
    if (ring == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    RtlZeroMemory(ring, sizeof(KRING_RING));
    InitializeListHead(&ring->Link);
    KeInitializeSpinLock(&ring->Lock);
    IoInitializeRemoveLock(&ring->RemoveLock, KRING_POOL_TAG, 0, 0);
    ring->Capacity = Request->ring_size;
    ring->Mask = ring->Capacity - 1;
    ring->Events = Request->events;
    ring->Id = (ULONG)InterlockedIncrement(&KRingGlobals.NextRingId);
    ring->Bytes = 2 * PAGE_SIZE + (SIZE_T)ring->Capacity;

    ring->Cons = KRingAllocatePages(PAGE_SIZE, &ring->ConsAlloc);
    prod = KRingAllocatePages(PAGE_SIZE + (SIZE_T)ring->Capacity, &ring->ProdAlloc);
    if (ring->Cons == NULL || prod == NULL) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        goto FreeRing;
    }
    ring->Prod = prod;
    ring->Data = (PUCHAR)prod + PAGE_SIZE;

    /* Written once, before anyone can see the page (PROTOCOL.md 3). */
    prod->magic = KRING_MAGIC;
    prod->abi_major = KRING_ABI_MAJOR;
    prod->abi_minor = KRING_ABI_MINOR;
    prod->page_size = KRING_PAGE_SIZE;
    prod->capacity = ring->Capacity;
    prod->data_offset = KRING_DATA_OFFSET;
    prod->producer_pid = 4;                     /* the System process */
    prod->flags = KRING_F_PRODUCER;
    kring_events_schema(prod);

    status = KRingCreateEvent(ring);
    if (!NT_SUCCESS(status)) {
        goto FreeRing;
    }

    /* The list's reference: DETACH releases it and waits for the writers. */
    status = IoAcquireRemoveLock(&ring->RemoveLock, ring);
    if (!NT_SUCCESS(status)) {
        goto FreeRing;
    }
    *Ring = ring;
    return STATUS_SUCCESS;

FreeRing:
    KRingRingFree(ring);
    return status;
}

_Use_decl_annotations_
NTSTATUS
KRingRingMapUser(
    PKRING_RING Ring
    )
/*++

Routine Description:

    Maps the ring into the current process, which must be the client's
    (IOCTL dispatch of a top-level driver): the consumer page read-write,
    the producer page and the data area read-only (MdlMappingNoWrite),
    neither executable. MmMapLockedPagesSpecifyCache raises on failure in
    UserMode, hence __try/__except; Wine's returns NULL instead, which is
    reported as STATUS_INSUFFICIENT_RESOURCES.

Arguments:

    Ring - a ring created by KRingRingCreate, not yet mapped.

Return Value:

    STATUS_SUCCESS, the exception code, or STATUS_INSUFFICIENT_RESOURCES.
    On failure nothing stays mapped.

--*/
{
    PVOID userCons = NULL;
    PVOID userProd = NULL;
    NTSTATUS status = STATUS_SUCCESS;

    Ring->ConsMdl = IoAllocateMdl(Ring->Cons, PAGE_SIZE, FALSE, FALSE, NULL);
    Ring->ProdMdl = IoAllocateMdl(Ring->Prod, (ULONG)(PAGE_SIZE + Ring->Capacity), FALSE, FALSE, NULL);
    if (Ring->ConsMdl == NULL || Ring->ProdMdl == NULL) {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    MmBuildMdlForNonPagedPool(Ring->ConsMdl);
    MmBuildMdlForNonPagedPool(Ring->ProdMdl);

    __try {
        userCons = MmMapLockedPagesSpecifyCache(Ring->ConsMdl, UserMode, MmCached, NULL, FALSE,
                                                NormalPagePriority | MdlMappingNoExecute);
        if (userCons != NULL) {
            userProd = MmMapLockedPagesSpecifyCache(Ring->ProdMdl, UserMode, MmCached, NULL, FALSE,
                                                    NormalPagePriority | MdlMappingNoExecute |
                                                    MdlMappingNoWrite);
        }
    } __except (EXCEPTION_EXECUTE_HANDLER) {
        status = GetExceptionCode();
    }

    if (NT_SUCCESS(status) && (userCons == NULL || userProd == NULL)) {
        KRING_ERR("ring %u: MmMapLockedPagesSpecifyCache(UserMode) returned NULL\n", Ring->Id);
        status = STATUS_INSUFFICIENT_RESOURCES;
    }
    if (!NT_SUCCESS(status)) {
        if (userProd != NULL) {
            MmUnmapLockedPages(userProd, Ring->ProdMdl);
        }
        if (userCons != NULL) {
            MmUnmapLockedPages(userCons, Ring->ConsMdl);
        }
        return status;
    }

    Ring->UserCons = userCons;
    Ring->UserProd = userProd;
    Ring->Owner = PsGetCurrentProcess();
    ObReferenceObject(Ring->Owner);
    return STATUS_SUCCESS;
}

_Use_decl_annotations_
VOID
KRingRingUnmapUser(
    PKRING_RING Ring
    )
/*++

Routine Description:

    Removes the user views, in the context of the process that holds them:
    directly when that is the current process (IRP_MJ_CLEANUP of the last
    handle, the owner's exit callback), else attached to it (a handle
    duplicated into another process was closed last).

Arguments:

    Ring - the ring; ManageLock is held.

--*/
{
    KAPC_STATE apcState;
    BOOLEAN attached = FALSE;

    if (Ring->UserCons == NULL && Ring->UserProd == NULL) {
        return;
    }
    if (PsGetCurrentProcess() != Ring->Owner) {
        KeStackAttachProcess(KRING_KPROCESS(Ring->Owner), &apcState);
        attached = TRUE;
    }
    if (Ring->UserProd != NULL) {
        MmUnmapLockedPages(Ring->UserProd, Ring->ProdMdl);
    }
    if (Ring->UserCons != NULL) {
        MmUnmapLockedPages(Ring->UserCons, Ring->ConsMdl);
    }
    if (attached) {
        KeUnstackDetachProcess(&apcState);
    }
    Ring->UserCons = NULL;
    Ring->UserProd = NULL;
}

_Use_decl_annotations_
VOID
KRingRingFree(
    PKRING_RING Ring
    )
/*++

Routine Description:

    Frees a ring that no writer can reach any more (out of the list, its
    remove lock drained) and that is unmapped.

    A ring that is still mapped (a bug: every path unmaps first) is not
    freed in any build: freeing pages that a process still has mapped
    would hand them to the next allocation while user mode reads (and, on
    the consumer page, writes) them. Its pages and MDLs are leaked and the
    leak logged and counted (KRingGlobals.LeakedRings); debug builds also
    stop at the assertion.

--*/
{
    BOOLEAN mapped = Ring->UserCons != NULL || Ring->UserProd != NULL;

    NT_ASSERT(!mapped);
    if (mapped) {
        InterlockedIncrement(&KRingGlobals.LeakedRings);
        KRING_ERR("ring %u is still mapped at free: its %Iu bytes and MDLs are leaked\n",
                  Ring->Id, Ring->Bytes);
        Ring->ProdMdl = NULL;
        Ring->ConsMdl = NULL;
        Ring->ProdAlloc = NULL;
        Ring->ConsAlloc = NULL;
    }

    if (Ring->EventHandle != NULL) {
        ZwClose(Ring->EventHandle);
    }
    if (Ring->Owner != NULL) {
        ObDereferenceObject(Ring->Owner);
    }
    if (Ring->ProdMdl != NULL) {
        IoFreeMdl(Ring->ProdMdl);
    }
    if (Ring->ConsMdl != NULL) {
        IoFreeMdl(Ring->ConsMdl);
    }
    if (Ring->ProdAlloc != NULL) {
        ExFreePoolWithTag(Ring->ProdAlloc, KRING_POOL_TAG);
    }
    if (Ring->ConsAlloc != NULL) {
        ExFreePoolWithTag(Ring->ConsAlloc, KRING_POOL_TAG);
    }
    ExFreePoolWithTag(Ring, KRING_POOL_TAG);
}

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
