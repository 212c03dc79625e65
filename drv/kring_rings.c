/*++

Module Name:

    kring_rings.c

Abstract:

    The registry of attached rings: the list in KRingGlobals (at most
    KRING_MAX_CONSUMERS rings, KRING_MAX_TOTAL_BYTES of memory), one ring
    per handle (its file object's FsContext). Attach creates a ring and
    puts it into the list, detach takes it out, waits for its writers and
    frees it; the fan-out hands a record to every ring in the list that
    wants it; the unmap-of removes the views of an exiting process.

    The registry knows rings (kring_ring.c) and nothing above it: the
    dispatch routines (kring_main.c) and the callbacks (kring_notify.c)
    call into it.

Environment:

    Kernel mode. ManageLock is a mutex: everything that takes it runs at
    PASSIVE_LEVEL.

--*/

#include "kring_drv.h"

KRING_GLOBALS KRingGlobals;

/* The remove-lock tag of a writer (KRingFanOut) in a ring. */
#define KRING_WRITER_TAG ((PVOID)(ULONG_PTR)'rwRK')

static VOID
KRingLockManage(
    VOID
    )
{
    KeWaitForSingleObject(&KRingGlobals.ManageLock, Executive, KernelMode, FALSE, NULL);
}

static VOID
KRingUnlockManage(
    VOID
    )
{
    KeReleaseMutex(&KRingGlobals.ManageLock, FALSE);
}

static VOID
KRingDetach(
    _In_ PKRING_RING Ring
    )
/*++

Routine Description:

    Takes a ring out of the fan-out list, waits until no writer uses it
    any more (its remove lock), removes its user views in the owner's
    context and frees it. ManageLock is held; PASSIVE_LEVEL.

--*/
{
    KLOCK_QUEUE_HANDLE lockHandle;

    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    RemoveEntryList(&Ring->Link);
    KRingGlobals.RingCount--;
    KRingGlobals.RingBytes -= Ring->Bytes;
    if (Ring->FileObject != NULL) {
        Ring->FileObject->FsContext = NULL;
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    IoReleaseRemoveLockAndWait(&Ring->RemoveLock, Ring);
    KRingRingUnmapUser(Ring);
    KRING_LOG("ring %u detached: %I64u written, %I64u dropped, %I64u wakeups\n",
              Ring->Id, Ring->Written, Ring->Dropped, Ring->Wakeups);
    KRingRingFree(Ring);
}

_Use_decl_annotations_
NTSTATUS
KRingAttach(
    PFILE_OBJECT FileObject,
    PEPROCESS Requestor,
    const struct kring_attach_in *Request,
    struct kring_attach_out *Reply
    )
/*++

Routine Description:

    Creates a ring for a handle, maps it into the caller (KRING_ATTACH_MAP)
    or keeps it for READ (KRING_ATTACH_COPY, or MAP | COPY when mapping
    fails), gives the caller a SYNCHRONIZE-only handle to its event
    (KRingGrantEvent), describes it in the reply and puts it into the
    fan-out list. Runs in the caller's context (the mapping is made there).
    Every failure undoes all of it: the handle made in the caller's process
    is closed again, the views are removed, the ring is freed.

    The slow part (allocating and zeroing up to 64 MiB, mapping) runs under
    no lock: the ring is nobody else's until it is in the list. The checks
    and the reservation of a slot and of the bytes against the limits are
    made under RingListLock first, and the insertion re-checks that the
    handle got no ring meanwhile (two ATTACHes racing on one handle: the
    loser frees its ring and gets STATUS_INVALID_DEVICE_STATE). ManageLock
    is not taken at all, so process exits and detaches never wait for an
    attach.

Arguments:

    FileObject - the handle's file object; its FsContext receives the ring.

    Requestor - the process that sent the ATTACH: it gets the event handle.

    Request - the ATTACH request, a kernel copy, validated by the caller.

    Reply - receives the description of the ring on success.

Return Value:

    STATUS_INVALID_DEVICE_STATE    this handle has a ring already
    STATUS_QUOTA_EXCEEDED          KRING_MAX_CONSUMERS rings exist
    STATUS_INSUFFICIENT_RESOURCES  KRING_MAX_TOTAL_BYTES reached, or no memory
    the mapping's status           MAP without COPY, and mapping failed
    the status of KRingGrantEvent  the event handle could not be made

--*/
{
    SIZE_T bytes = 2 * PAGE_SIZE + (SIZE_T)Request->ring_size;
    KLOCK_QUEUE_HANDLE lockHandle;
    PKRING_RING ring = NULL;
    HANDLE userEvent = NULL;
    NTSTATUS status, mapStatus = STATUS_SUCCESS;

    /* Reserve a slot and the bytes. */
    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    if (FileObject->FsContext != NULL) {
        status = STATUS_INVALID_DEVICE_STATE;
    } else if (KRingGlobals.RingCount >= KRING_MAX_CONSUMERS) {
        status = STATUS_QUOTA_EXCEEDED;
    } else if (KRingGlobals.RingBytes + bytes > KRING_MAX_TOTAL_BYTES) {
        status = STATUS_INSUFFICIENT_RESOURCES;
    } else {
        KRingGlobals.RingCount++;
        KRingGlobals.RingBytes += bytes;
        status = STATUS_SUCCESS;
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    status = KRingRingCreate(Request, &ring);
    if (!NT_SUCCESS(status)) {
        goto Unreserve;
    }
    NT_ASSERT(ring->Bytes == bytes);
    ring->Method = KRING_METHOD_COPY;
    if ((Request->flags & KRING_ATTACH_MAP) != 0) {
        mapStatus = KRingRingMapUser(ring);
        if (NT_SUCCESS(mapStatus)) {
            ring->Method = KRING_METHOD_MAP;
        } else if ((Request->flags & KRING_ATTACH_COPY) == 0) {
            status = mapStatus;
            KRING_LOG("attach failed: mapping status 0x%08x, no copy fallback requested\n", (unsigned)mapStatus);
            goto FreeRing;
        }
    }

    /* The last step that can fail before the insertion. */
    status = KRingGrantEvent(ring->EventHandle, Requestor, &userEvent);
    if (!NT_SUCCESS(status)) {
        KRING_ERR("ring %u: cannot give the caller a handle to its event: 0x%08x\n", ring->Id, (unsigned)status);
        goto FreeRing;
    }
#if defined(KRING_TEST_BUILD)
    if (KRingGlobals.TestFailAttachLate) {
        status = STATUS_UNSUCCESSFUL;
        KRING_LOG("ring %u: test knob TestFailAttachLate: attach fails after the event handle\n", ring->Id);
        goto RevokeEvent;
    }
#endif

    RtlZeroMemory(Reply, sizeof(*Reply));
    Reply->size = sizeof(*Reply);
    Reply->version = KRING_IOCTL_VERSION;
    Reply->method = ring->Method;
    Reply->map_status = (int32_t)mapStatus;
    Reply->consumer_page = (uint64_t)(ULONG_PTR)ring->UserCons;
    Reply->producer_page = (uint64_t)(ULONG_PTR)ring->UserProd;
    Reply->data = ring->UserProd != NULL ? (uint64_t)(ULONG_PTR)ring->UserProd + KRING_PAGE_SIZE : 0;
    Reply->consumer_size = KRING_PAGE_SIZE;
    Reply->producer_size = KRING_PAGE_SIZE + ring->Capacity;
    Reply->capacity = ring->Capacity;
    Reply->events = ring->Events;
    Reply->ring_id = ring->Id;
    Reply->event_handle = (uint64_t)(ULONG_PTR)userEvent;
    RtlCopyMemory(&Reply->meta, ring->Prod, sizeof(Reply->meta));

    /* Publish: the reservation becomes the ring's share of the totals. */
    ring->FileObject = FileObject;
    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    if (FileObject->FsContext == NULL) {
        InsertTailList(&KRingGlobals.Rings, &ring->Link);
        FileObject->FsContext = ring;
        status = STATUS_SUCCESS;
    } else {
        status = STATUS_INVALID_DEVICE_STATE;
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (!NT_SUCCESS(status)) {
        KRING_LOG("attach lost a race with another attach on the same handle\n");
        RtlZeroMemory(Reply, sizeof(*Reply));
        ring->FileObject = NULL;
        goto RevokeEvent;
    }

    KRING_LOG("ring %u attached: %I64u bytes, events 0x%x, method %s (map status 0x%08x)\n",
              ring->Id, ring->Capacity, ring->Events,
              ring->Method == KRING_METHOD_MAP ? "map" : "copy", (unsigned)mapStatus);
    return STATUS_SUCCESS;

RevokeEvent:
    KRingRevokeEvent(Requestor, userEvent);
FreeRing:
    /* Still in the caller's context: the views (if any) go here. */
    KRingRingUnmapUser(ring);
    IoReleaseRemoveLock(&ring->RemoveLock, ring);
    KRingRingFree(ring);
Unreserve:
    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    KRingGlobals.RingCount--;
    KRingGlobals.RingBytes -= bytes;
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    return status;
}

_Use_decl_annotations_
NTSTATUS
KRingDetachFile(
    PFILE_OBJECT FileObject
    )
/*++

Routine Description:

    Detaches and frees the ring of a handle (IOCTL_KRING_DETACH,
    IRP_MJ_CLEANUP, IRP_MJ_CLOSE). Its views go in the owner's context
    (KRingRingUnmapUser attaches to the owner if another process closed
    the handle).

Return Value:

    STATUS_SUCCESS, or STATUS_INVALID_DEVICE_STATE when the handle has no
    ring.

--*/
{
    PKRING_RING ring;
    NTSTATUS status;

    KRingLockManage();
    ring = FileObject->FsContext;
    if (ring == NULL) {
        status = STATUS_INVALID_DEVICE_STATE;
    } else {
        KRingDetach(ring);
        status = STATUS_SUCCESS;
    }
    KRingUnlockManage();
    return status;
}

_Use_decl_annotations_
ULONG
KRingDetachAll(
    VOID
    )
/*++

Routine Description:

    DriverUnload: detaches and frees every ring still in the list
    (normally IRP_MJ_CLEANUP has freed them all) and returns their number.

--*/
{
    ULONG freed = 0;

    KRingLockManage();
    while (!IsListEmpty(&KRingGlobals.Rings)) {
        KRingDetach(CONTAINING_RECORD(KRingGlobals.Rings.Flink, KRING_RING, Link));
        freed++;
    }
    KRingUnlockManage();
    return freed;
}

_Use_decl_annotations_
PKRING_RING
KRingReferenceRing(
    PFILE_OBJECT FileObject
    )
/*++

Routine Description:

    The ring attached to a handle, with its remove lock held (release it
    with IoReleaseRemoveLock(&ring->RemoveLock, FileObject)), or NULL.

--*/
{
    KLOCK_QUEUE_HANDLE lockHandle;
    PKRING_RING ring;

    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    ring = FileObject->FsContext;
    if (ring != NULL && !NT_SUCCESS(IoAcquireRemoveLock(&ring->RemoveLock, FileObject))) {
        ring = NULL;
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    return ring;
}

_Use_decl_annotations_
VOID
KRingFanOut(
    ULONG EventKind,
    USHORT Type,
    USHORT EventFlags,
    const UCHAR *Record,
    ULONG Length
    )
/*++

Routine Description:

    Hands one record to every ring that receives EventKind. The list lock
    is held only to take a reference (remove lock) on each ring; each
    ring's own lock only for its copy; the event is set after that, at
    PASSIVE_LEVEL.

Arguments:

    EventKind - KRING_EVENTS_PROCESS or KRING_EVENTS_IMAGE.

    Type, EventFlags - the record's type and KRING_EV_* flags.

    Record, Length - the record, or NULL when it could not be built: every
        ring then counts a drop, so the loss shows as a sequence gap.

--*/
{
    PKRING_RING targets[KRING_MAX_CONSUMERS];
    KLOCK_QUEUE_HANDLE lockHandle;
    PLIST_ENTRY entry;
    ULONG count = 0, i;
    ULONG64 timeNs;

    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    for (entry = KRingGlobals.Rings.Flink; entry != &KRingGlobals.Rings && count < KRING_MAX_CONSUMERS;
         entry = entry->Flink) {
        PKRING_RING ring = CONTAINING_RECORD(entry, KRING_RING, Link);

        if ((ring->Events & EventKind) != 0 &&
            NT_SUCCESS(IoAcquireRemoveLock(&ring->RemoveLock, KRING_WRITER_TAG))) {
            targets[count++] = ring;
        }
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);

    timeNs = KRingTimeNs();
    for (i = 0; i < count; i++) {
        if (KRingRingWrite(targets[i], Type, EventFlags, timeNs, Record, Length)) {
            KRingRingSignal(targets[i]);
        }
        IoReleaseRemoveLock(&targets[i]->RemoveLock, KRING_WRITER_TAG);
    }
}

_Use_decl_annotations_
VOID
KRingUnmapRingsOf(
    PEPROCESS Process
    )
/*++

Routine Description:

    Called from the process-exit callback, in the exiting process: removes
    the views of every ring that process still has mapped. Normally its
    handles' IRP_MJ_CLEANUP did this already; a handle it duplicated into
    another process would otherwise keep views alive past the address space.

    Every process exit on the system comes here, so the decision is made
    under RingListLock: only when a ring in the list is mapped into this
    process (Owner and Method, fixed before the ring enters the list) does
    it take ManageLock, which a detach holds while it waits for writers.
    A ring of this process cannot be in the making now: it is mapped in
    its owner's context, by a thread of it in ATTACH, and this is the
    process's last thread.

--*/
{
    KLOCK_QUEUE_HANDLE lockHandle;
    PLIST_ENTRY entry;
    BOOLEAN owns = FALSE;

    KeAcquireInStackQueuedSpinLock(&KRingGlobals.RingListLock, &lockHandle);
    for (entry = KRingGlobals.Rings.Flink; entry != &KRingGlobals.Rings; entry = entry->Flink) {
        PKRING_RING ring = CONTAINING_RECORD(entry, KRING_RING, Link);

        if (ring->Owner == Process && ring->Method == KRING_METHOD_MAP) {
            owns = TRUE;
            break;
        }
    }
    KeReleaseInStackQueuedSpinLock(&lockHandle);
    if (!owns) {
        return;
    }
    KRingLockManage();
    for (entry = KRingGlobals.Rings.Flink; entry != &KRingGlobals.Rings; entry = entry->Flink) {
        PKRING_RING ring = CONTAINING_RECORD(entry, KRING_RING, Link);

        if (ring->Owner == Process) {
            KRingRingUnmapUser(ring);
        }
    }
    KRingUnlockManage();
}
