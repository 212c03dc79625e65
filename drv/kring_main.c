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
    (KRingIoctl*, kring_ioctl.c) that checks its buffers and does its work,
    mostly through the ring registry (kring_rings.c).

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
