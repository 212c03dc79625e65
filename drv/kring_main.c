/*++

Module Name:

    kring_main.c

Abstract:

    kring.sys hands every process-creation and image-load callback to user
    mode through lock-free single-producer rings (docs/PROTOCOL.md), one
    per attached client, each mapped into its client (or, where mapping is
    not possible, copied out on request) and signalled through a named
    event. This file holds the driver's entry points: DriverEntry,
    DriverUnload, and the dispatch routines for create, cleanup, close and
    device control, which only routes: each IOCTL code has a handler
    (KRingIoctl*) that checks its buffers and does its work, mostly through
    the ring registry (kring_rings.c).

    Only Administrators and LocalSystem may open \Device\KRing: the WDK
    build creates it with IoCreateDeviceSecure (SDDL_DEVOBJ_SYS_ALL_ADM_ALL),
    and every build checks the caller's token in IRP_MJ_CREATE
    (kring_access.c).

Environment:

    Kernel mode only.

--*/

#include "kring_drv.h"

#if defined(KRING_USE_WDMSEC)
#include <wdmsec.h>
/* {0fdd9a76-013c-4b61-aa61-84c9dcc6d004}: the class of \Device\KRing, so
 * that an administrator can override its security in the registry. */
static const GUID KRingDeviceClassGuid = {
    0x0fdd9a76, 0x013c, 0x4b61, { 0xaa, 0x61, 0x84, 0xc9, 0xdc, 0xc6, 0xd0, 0x04 } };
#endif

/* FsContext2 of a file object whose open KRingDispatchCreate admitted. */
#define KRING_ADMITTED ((PVOID)(ULONG_PTR)'dmRK')

DRIVER_INITIALIZE DriverEntry;

_Dispatch_type_(IRP_MJ_CREATE)
DRIVER_DISPATCH KRingDispatchCreate;

_Dispatch_type_(IRP_MJ_CLEANUP)
_Dispatch_type_(IRP_MJ_CLOSE)
DRIVER_DISPATCH KRingDispatchCleanupClose;

_Dispatch_type_(IRP_MJ_DEVICE_CONTROL)
DRIVER_DISPATCH KRingDispatchDeviceControl;

DRIVER_UNLOAD KRingUnload;

_Use_decl_annotations_
NTSTATUS
DriverEntry(
    PDRIVER_OBJECT DriverObject,
    PUNICODE_STRING RegistryPath
    )
/*++

Routine Description:

    Creates the rings' event directory (unnamed, SYSTEM only), \Device\KRing
    (Administrators and SYSTEM only, FILE_DEVICE_SECURE_OPEN) and its
    symbolic link, registers the process and image callbacks, and fills in
    the entry points. DriverUnload undoes this in reverse order.

Arguments:

    DriverObject - the driver object.

    RegistryPath - the service key (read by test builds only: the
        TestFailImageNotify knob, KRingNotifyRegister).

Return Value:

    STATUS_SUCCESS, or the status of the step that failed (everything done
    before it is undone).

--*/
{
    UNICODE_STRING deviceName = RTL_CONSTANT_STRING(KRING_NT_DEVICE_NAME);
    UNICODE_STRING linkName = RTL_CONSTANT_STRING(KRING_DOS_DEVICE_NAME);
    NTSTATUS status;

    RtlZeroMemory(&KRingGlobals, sizeof(KRingGlobals));
    KeInitializeMutex(&KRingGlobals.ManageLock, 0);
    KeInitializeSpinLock(&KRingGlobals.RingListLock);
    InitializeListHead(&KRingGlobals.Rings);
    IoInitializeRemoveLock(&KRingGlobals.CallbackLock, KRING_POOL_TAG, 0, 0);
    /* DriverUnload releases this reference and waits for the callbacks. */
    status = IoAcquireRemoveLock(&KRingGlobals.CallbackLock, DriverObject);
    if (!NT_SUCCESS(status)) {
        return status;
    }

    /* Where ATTACH creates the rings' events: before the device exists. */
    status = KRingCreateEventDirectory(&KRingGlobals.EventDirectory);
    if (!NT_SUCCESS(status)) {
        KRING_ERR("cannot create the events' directory: 0x%08x\n", (unsigned)status);
        KRingGlobals.EventDirectory = NULL;
        return status;
    }

#if defined(KRING_USE_WDMSEC)
    /* SDDL_DEVOBJ_SYS_ALL_ADM_ALL is D:P(A;;GA;;;SY)(A;;GA;;;BA), the DACL
     * of KRingDeviceSd; KRingSecureDevice below adds the label. */
    status = IoCreateDeviceSecure(DriverObject, 0, &deviceName, FILE_DEVICE_UNKNOWN,
                                  FILE_DEVICE_SECURE_OPEN, FALSE, &SDDL_DEVOBJ_SYS_ALL_ADM_ALL,
                                  &KRingDeviceClassGuid, &KRingGlobals.DeviceObject);
#else
    /* No wdmsec.lib (clang/mingw-w64): KRingSecureDevice below sets the
     * descriptor. */
    status = IoCreateDevice(DriverObject, 0, &deviceName, FILE_DEVICE_UNKNOWN,
                            FILE_DEVICE_SECURE_OPEN, FALSE, &KRingGlobals.DeviceObject);
#endif
    if (!NT_SUCCESS(status)) {
        KRING_ERR("cannot create the device: 0x%08x\n", (unsigned)status);
        KRingGlobals.DeviceObject = NULL;
        goto CloseDirectory;
    }

    /* Both builds: D:P(A;;GA;;;SY)(A;;GA;;;BA) and a high mandatory label,
     * before the symbolic link makes the device reachable. */
    status = KRingSecureDevice(KRingGlobals.DeviceObject);
    if (!NT_SUCCESS(status)) {
        goto DeleteDevice;
    }

    status = IoCreateSymbolicLink(&linkName, &deviceName);
    if (!NT_SUCCESS(status)) {
        KRING_ERR("cannot create the symbolic link: 0x%08x\n", (unsigned)status);
        goto DeleteDevice;
    }
    KRingGlobals.SymbolicLink = TRUE;

    status = KRingNotifyRegister(RegistryPath);
    if (!NT_SUCCESS(status)) {
        goto DeleteSymbolicLink;
    }

    DriverObject->MajorFunction[IRP_MJ_CREATE] = KRingDispatchCreate;
    DriverObject->MajorFunction[IRP_MJ_CLOSE] = KRingDispatchCleanupClose;
    DriverObject->MajorFunction[IRP_MJ_CLEANUP] = KRingDispatchCleanupClose;
    DriverObject->MajorFunction[IRP_MJ_DEVICE_CONTROL] = KRingDispatchDeviceControl;
    DriverObject->DriverUnload = KRingUnload;

#if defined(KRING_TEST_BUILD)
    KRING_LOG("DriverEntry: TEST BUILD, IOCTL_KRING_TEST_INJECT enabled\n");
#endif
    KRING_LOG("DriverEntry: \\Device\\KRing ready (ring %u..%u bytes, %u consumers)\n",
              KRING_RING_SIZE_MIN, KRING_RING_SIZE_MAX, KRING_MAX_CONSUMERS);
    return STATUS_SUCCESS;

DeleteSymbolicLink:
    IoDeleteSymbolicLink(&linkName);
    KRingGlobals.SymbolicLink = FALSE;
DeleteDevice:
    IoDeleteDevice(KRingGlobals.DeviceObject);
    KRingGlobals.DeviceObject = NULL;
CloseDirectory:
    ZwClose(KRingGlobals.EventDirectory);
    KRingGlobals.EventDirectory = NULL;
    return status;
}

_Use_decl_annotations_
VOID
KRingUnload(
    PDRIVER_OBJECT DriverObject
    )
/*++

Routine Description:

    Undoes DriverEntry in reverse order: unregisters the callbacks, waits
    for the callbacks (and test injections) still running, frees any ring
    left (normally IRP_MJ_CLEANUP has freed them all), deletes the link and
    the device, and closes the events' directory.

--*/
{
    UNICODE_STRING linkName = RTL_CONSTANT_STRING(KRING_DOS_DEVICE_NAME);
    ULONG freed;

    KRingNotifyUnregister();
    IoReleaseRemoveLockAndWait(&KRingGlobals.CallbackLock, DriverObject);
    KRING_LOG("DriverUnload: callbacks unregistered, none in flight\n");

    freed = KRingDetachAll();

    if (KRingGlobals.SymbolicLink) {
        IoDeleteSymbolicLink(&linkName);
    }
    if (DriverObject->DeviceObject != NULL) {
        IoDeleteDevice(DriverObject->DeviceObject);
    }
    /* Every ring's event handle is closed (KRingDetachAll); events that
     * clients still hold keep the (nameless) directory alive until they
     * close them, which no later load can collide with. */
    ZwClose(KRingGlobals.EventDirectory);
    KRingGlobals.EventDirectory = NULL;
    if (KRingGlobals.LeakedRings != 0) {
        KRING_ERR("DriverUnload: %ld rings were leaked because they were still mapped\n",
                  KRingGlobals.LeakedRings);
    }
    KRING_LOG("DriverUnload: done (%u rings freed here; %I64d process and %I64d image events seen)\n",
              freed, KRingGlobals.ProcessEvents, KRingGlobals.ImageEvents);
}

_Use_decl_annotations_
NTSTATUS
KRingDispatchCreate(
    PDEVICE_OBJECT DeviceObject,
    PIRP Irp
    )
/*++

Routine Description:

    IRP_MJ_CREATE: admits Administrators and SYSTEM, and only the device
    itself (no \\.\KRing\name below it). The handle starts detached and
    is marked admitted (FsContext2): device control checks the mark, since
    Wine hands out the handle even when this routine refuses the open.

--*/
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);
    NTSTATUS status;

    UNREFERENCED_PARAMETER(DeviceObject);

    if (irpSp->FileObject->FileName.Length != 0) {
        status = STATUS_OBJECT_NAME_NOT_FOUND;
    } else {
        status = KRingCheckCaller(Irp, irpSp);
    }
    if (NT_SUCCESS(status)) {
        irpSp->FileObject->FsContext = NULL;
        irpSp->FileObject->FsContext2 = KRING_ADMITTED;
    } else {
        KRING_LOG("open refused: 0x%08x\n", (unsigned)status);
    }

    Irp->IoStatus.Status = status;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}

_Use_decl_annotations_
NTSTATUS
KRingDispatchCleanupClose(
    PDEVICE_OBJECT DeviceObject,
    PIRP Irp
    )
/*++

Routine Description:

    IRP_MJ_CLEANUP: the last handle to the file object was closed; this
    runs in the context of the process that closed it, so the ring's views
    are removed here (KRingRingUnmapUser attaches to the owner if another
    process closed the handle) and the ring is freed. IRP_MJ_CLOSE: the
    last reference to the file object went away, in an arbitrary context.
    It can find a ring attached on Windows too: an ATTACH that another
    thread had in flight when the handle was closed completes after
    IRP_MJ_CLEANUP and attaches its ring then. And Wine sends no
    IRP_MJ_CLEANUP at all. The ring is freed here then (its views removed
    in the owner's context, as for a handle closed by another process).

--*/
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);

    UNREFERENCED_PARAMETER(DeviceObject);

    (VOID)KRingDetachFile(irpSp->FileObject);   /* no ring: nothing to do */

    Irp->IoStatus.Status = STATUS_SUCCESS;
    Irp->IoStatus.Information = 0;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return STATUS_SUCCESS;
}

/* One handler per IOCTL code (all METHOD_BUFFERED): it checks the code's
 * buffers before it reads them and does the work. It sets *Information, the
 * bytes to return, on success only; KRingDispatchDeviceControl completes. */

static NTSTATUS
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

static NTSTATUS
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

static NTSTATUS
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

static NTSTATUS
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

static NTSTATUS
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

static NTSTATUS
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

_Use_decl_annotations_
NTSTATUS
KRingDispatchDeviceControl(
    PDEVICE_OBJECT DeviceObject,
    PIRP Irp
    )
/*++

Routine Description:

    IRP_MJ_DEVICE_CONTROL: routes each code to its handler and completes
    the request with what the handler returned.

Return Value:

    The handler's status; STATUS_ACCESS_DENIED on a handle whose open was
    refused (Wine only); STATUS_INVALID_DEVICE_REQUEST for an unknown code
    (the test IOCTLs in a release build).

--*/
{
    PIO_STACK_LOCATION irpSp = IoGetCurrentIrpStackLocation(Irp);
    ULONG_PTR information = 0;
    NTSTATUS status;

    UNREFERENCED_PARAMETER(DeviceObject);

    if (irpSp->FileObject->FsContext2 != KRING_ADMITTED) {
        status = STATUS_ACCESS_DENIED;
        goto Complete;
    }

    switch (irpSp->Parameters.DeviceIoControl.IoControlCode) {
    case IOCTL_KRING_ATTACH:
        status = KRingIoctlAttach(Irp, irpSp, &information);
        break;
    case IOCTL_KRING_DETACH:
        status = KRingIoctlDetach(Irp, irpSp, &information);
        break;
    case IOCTL_KRING_STATS:
        status = KRingIoctlStats(Irp, irpSp, &information);
        break;
    case IOCTL_KRING_READ:
        status = KRingIoctlRead(Irp, irpSp, &information);
        break;
#if defined(KRING_TEST_BUILD)
    case IOCTL_KRING_TEST_INJECT:
        status = KRingIoctlTestInject(Irp, irpSp, &information);
        break;
    case IOCTL_KRING_TEST_POKE:
        status = KRingIoctlTestPoke(Irp, irpSp, &information);
        break;
#endif
    default:
        status = STATUS_INVALID_DEVICE_REQUEST;
        break;
    }

Complete:
    Irp->IoStatus.Status = status;
    Irp->IoStatus.Information = information;
    IoCompleteRequest(Irp, IO_NO_INCREMENT);
    return status;
}
