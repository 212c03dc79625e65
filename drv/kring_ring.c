/*++

Module Name:

    kring_ring.c

Abstract:

    One consumer's ring memory: its creation (zeroed, page-aligned pages,
    the description and schema, the event), its user views (mapped into
    the client, unmapped in the owner's context) and its teardown. The
    producer that writes into it is kring_ring_write.c, the copy-out path
    for clients that cannot map it kring_ring_read.c.

    The layout is the one of docs/PROTOCOL.md: a consumer page, a producer
    page with the description and schema (csrc/kring_events.c fills it), and
    a data area of 2^n bytes mapped once, with DISCARD padding at the wrap.
    Only the consumer page is mapped writable: the producer page and the
    data area are read-only in the client.

Environment:

    Kernel mode.

--*/

#include "kring_drv.h"

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
