/*++

Module Name:

    kring_ioctl.c

Abstract:

    One handler per IOCTL code of kring.sys (all METHOD_BUFFERED):
    ATTACH, DETACH, STATS, READ, and in test builds TEST_INJECT and
    TEST_POKE. Each checks its code's buffers before it reads them and does
    the work, mostly through the ring registry (kring_rings.c). It sets
    *Information, the bytes to return, on success only;
    KRingDispatchDeviceControl (kring_main.c) routes to it and completes.

Environment:

    Kernel mode, PASSIVE_LEVEL, in the context of the calling process
    (IRP_MJ_DEVICE_CONTROL of a top-level driver).

--*/

#include "kring_drv.h"

NTSTATUS
KRingIoctlAttach(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    )
/*++

Routine Description:

    IOCTL_KRING_ATTACH: checks the kring_attach_in (its length, then room
    for the reply, then its fields), then has the registry create this
    handle's ring, map it or keep it for READ, and describe it in the reply
    (KRingAttach, whose statuses it returns).

--*/
{
    struct kring_attach_in request;
    NTSTATUS status;

    if (IrpSp->Parameters.DeviceIoControl.InputBufferLength != sizeof(request)) {
        return STATUS_INFO_LENGTH_MISMATCH;
    }
    /* Input and output share the system buffer: copy the request first. */
    RtlCopyMemory(&request, Irp->AssociatedIrp.SystemBuffer, sizeof(request));
    if (IrpSp->Parameters.DeviceIoControl.OutputBufferLength < sizeof(struct kring_attach_out)) {
        return STATUS_BUFFER_TOO_SMALL;
    }
    if (request.size != sizeof(request)) {
        return STATUS_INVALID_PARAMETER;
    }
    /* Before anything else is looked at: a client of another version of
     * the interface reads the reply differently (version 1 clients send 0
     * here and expect an event name where the handle is). */
    if (request.version != KRING_IOCTL_VERSION) {
        KRING_LOG("attach refused: the client speaks interface version %u, the driver %u\n",
                  request.version, KRING_IOCTL_VERSION);
        return STATUS_REVISION_MISMATCH;
    }
    if (request.flags == 0 || (request.flags & ~(uint32_t)(KRING_ATTACH_MAP | KRING_ATTACH_COPY)) != 0 ||
        request.events == 0 || (request.events & ~(uint32_t)KRING_EVENTS_ALL) != 0 ||
        request.ring_size < KRING_RING_SIZE_MIN || request.ring_size > KRING_RING_SIZE_MAX ||
        (request.ring_size & (request.ring_size - 1)) != 0) {
        return STATUS_INVALID_PARAMETER;
    }

    status = KRingAttach(IrpSp->FileObject, IoGetRequestorProcess(Irp), &request, Irp->AssociatedIrp.SystemBuffer);
    if (NT_SUCCESS(status)) {
        *Information = sizeof(struct kring_attach_out);
    }
    return status;
}

NTSTATUS
KRingIoctlDetach(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    )
/*++

Routine Description:

    IOCTL_KRING_DETACH (no buffers): frees this handle's ring, which may
    attach again; STATUS_INVALID_DEVICE_STATE without a ring.

--*/
{
    UNREFERENCED_PARAMETER(Irp);
    UNREFERENCED_PARAMETER(Information);

    return KRingDetachFile(IrpSp->FileObject);
}

NTSTATUS
KRingIoctlStats(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    )
/*++

Routine Description:

    IOCTL_KRING_STATS: a kring_stats_out with the driver's counters and,
    if this handle has a ring, the ring's.

--*/
{
    struct kring_stats_out stats;
    PKRING_RING ring;

    if (IrpSp->Parameters.DeviceIoControl.OutputBufferLength < sizeof(stats)) {
        return STATUS_BUFFER_TOO_SMALL;
    }
    RtlZeroMemory(&stats, sizeof(stats));
    stats.size = sizeof(stats);
    ring = KRingReferenceRing(IrpSp->FileObject);
    if (ring != NULL) {
        KRingRingStats(ring, &stats);
        IoReleaseRemoveLock(&ring->RemoveLock, IrpSp->FileObject);
    }
    stats.consumers = KRingGlobals.RingCount;
    stats.process_notify = KRingGlobals.ProcessNotify;
    stats.image_notify = KRingGlobals.ImageNotify ? 1 : 0;
#if defined(KRING_TEST_BUILD)
    stats.test_build = 1;
#endif
    stats.process_events = (uint64_t)KRingGlobals.ProcessEvents;
    stats.image_events = (uint64_t)KRingGlobals.ImageEvents;
    stats.lost_no_memory = (uint64_t)KRingGlobals.LostNoMemory;
    RtlCopyMemory(Irp->AssociatedIrp.SystemBuffer, &stats, sizeof(stats));
    *Information = sizeof(stats);
    return STATUS_SUCCESS;
}

NTSTATUS
KRingIoctlRead(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    )
/*++

Routine Description:

    IOCTL_KRING_READ: checks the kring_read_in, then copies records of this
    handle's ring (copy method) into the output buffer (KRingRingRead,
    whose statuses it returns).

--*/
{
    struct kring_read_in request;
    PVOID buffer = Irp->AssociatedIrp.SystemBuffer;
    PKRING_RING ring;
    ULONG returned;
    NTSTATUS status;

    if (IrpSp->Parameters.DeviceIoControl.InputBufferLength != sizeof(request)) {
        return STATUS_INFO_LENGTH_MISMATCH;
    }
    RtlCopyMemory(&request, buffer, sizeof(request));
    if (request.size != sizeof(request) || (request.flags & ~(uint32_t)KRING_READ_ARM) != 0) {
        return STATUS_INVALID_PARAMETER;
    }
    ring = KRingReferenceRing(IrpSp->FileObject);
    if (ring == NULL) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    status = KRingRingRead(ring, request.flags, buffer, IrpSp->Parameters.DeviceIoControl.OutputBufferLength,
                           &returned);
    IoReleaseRemoveLock(&ring->RemoveLock, IrpSp->FileObject);
    if (NT_SUCCESS(status)) {
        *Information = returned;
    }
    return status;
}

#if defined(KRING_TEST_BUILD)

NTSTATUS
KRingIoctlTestInject(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    )
/*++

Routine Description:

    IOCTL_KRING_TEST_INJECT (test builds only): checks the kring_inject_in
    and room for the reply, then has KRingInject build and fan out its
    synthetic records.

--*/
{
    const struct kring_inject_in *request = Irp->AssociatedIrp.SystemBuffer;
    struct kring_inject_out reply;
    ULONG count;
    NTSTATUS status;

    if (IrpSp->Parameters.DeviceIoControl.InputBufferLength != sizeof(*request) ||
        request->size != sizeof(*request)) {
        return STATUS_INFO_LENGTH_MISMATCH;
    }
    if (IrpSp->Parameters.DeviceIoControl.OutputBufferLength < sizeof(reply)) {
        return STATUS_BUFFER_TOO_SMALL;
    }
    status = KRingInject(request, IoGetRequestorProcess(Irp), &count);
    if (NT_SUCCESS(status)) {
        reply.size = sizeof(reply);
        reply.count = count;
        RtlCopyMemory(Irp->AssociatedIrp.SystemBuffer, &reply, sizeof(reply));
        *Information = sizeof(reply);
    }
    return status;
}

NTSTATUS
KRingIoctlTestPoke(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    )
/*++

Routine Description:

    IOCTL_KRING_TEST_POKE (test builds only): stores a consumer position
    into this handle's consumer page, as a broken client could.

--*/
{
    struct kring_poke_in request;
    PKRING_RING ring;

    UNREFERENCED_PARAMETER(Information);
    if (IrpSp->Parameters.DeviceIoControl.InputBufferLength != sizeof(request)) {
        return STATUS_INFO_LENGTH_MISMATCH;
    }
    RtlCopyMemory(&request, Irp->AssociatedIrp.SystemBuffer, sizeof(request));
    if (request.size != sizeof(request) || request.reserved != 0) {
        return STATUS_INVALID_PARAMETER;
    }
    ring = KRingReferenceRing(IrpSp->FileObject);
    if (ring == NULL) {
        return STATUS_INVALID_DEVICE_STATE;
    }
    kring_store_release_u64(&ring->Cons->consumer_pos, request.consumer_pos);
    IoReleaseRemoveLock(&ring->RemoveLock, IrpSp->FileObject);
    return STATUS_SUCCESS;
}

#endif /* KRING_TEST_BUILD */
