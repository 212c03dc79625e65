/*++

Module Name:

    kring_notify.c

Abstract:

    The event sources of kring.sys, registered and removed: the
    process-creation callback (KRingProcessNotify, kring_process_notify.c)
    with PsSetCreateProcessNotifyRoutineEx2, resolved at run time, or
    ...Ex; the load-image callback (KRingLoadImageNotify,
    kring_image_notify.c) with PsSetLoadImageNotifyRoutine. Each callback
    builds one record of include/kring/kring_events.h and has the ring
    registry hand it to every attached ring that asked for that kind of
    event (KRingFanOut, kring_rings.c).

    Test builds (KRING_TEST_BUILD) add the service key's test knobs and
    KRingInject, which builds synthetic records with the callbacks' own
    routines and fans them out the same way.

Environment:

    Kernel mode, PASSIVE_LEVEL (DriverEntry, DriverUnload, IOCTL dispatch).

--*/

#include "kring_drv.h"

_Use_decl_annotations_
#if defined(KRING_TEST_BUILD)
static BOOLEAN
KRingTestKnob(
    _In_ PCUNICODE_STRING RegistryPath,
    _In_ PCWSTR Name
    )
/*++

Routine Description:

    Test builds only: TRUE when the REG_DWORD value Name of the service key
    is nonzero. The Wine tests set such values to make a step fail that
    cannot be made to fail otherwise.

--*/
{
    OBJECT_ATTRIBUTES attributes;
    UNICODE_STRING valueName;
    HANDLE key;
    ULONG length = 0;
    BOOLEAN on = FALSE;
    union {
        KEY_VALUE_PARTIAL_INFORMATION info;
        UCHAR bytes[sizeof(KEY_VALUE_PARTIAL_INFORMATION) + sizeof(ULONG)];
    } value;

    InitializeObjectAttributes(&attributes, (PUNICODE_STRING)RegistryPath,
                               OBJ_KERNEL_HANDLE | OBJ_CASE_INSENSITIVE, NULL, NULL);
    if (!NT_SUCCESS(ZwOpenKey(&key, KEY_QUERY_VALUE, &attributes))) {
        return FALSE;
    }
    RtlInitUnicodeString(&valueName, Name);
    if (NT_SUCCESS(ZwQueryValueKey(key, &valueName, KeyValuePartialInformation, &value, sizeof(value), &length)) &&
        value.info.Type == REG_DWORD && value.info.DataLength == sizeof(ULONG)) {
        ULONG data;

        RtlCopyMemory(&data, value.info.Data, sizeof(data));
        on = data != 0;
    }
    ZwClose(key);
    return on;
}
#endif

NTSTATUS
KRingNotifyRegister(
    _In_ PCUNICODE_STRING RegistryPath
    )
/*++

Routine Description:

    Registers the callbacks: PsSetCreateProcessNotifyRoutineEx2 (all
    subsystems) when the system has it, else PsSetCreateProcessNotifyRoutineEx;
    then PsSetLoadImageNotifyRoutine. The process routines need the image to
    be linked with FORCE_INTEGRITY (else STATUS_ACCESS_DENIED); the
    load-image routine does not.

    Without the process callback the driver does not load. Without the
    load-image callback (PsSetLoadImageNotifyRoutine fails, e.g. when the
    system's limit of load-image routines is reached) it loads with process
    events only: STATS reports image_notify = 0, and rings that ask for image
    events get none.

    Test builds: the service key's REG_DWORD TestFailImageNotify = 1 makes
    the load-image registration fail with STATUS_INSUFFICIENT_RESOURCES
    without calling it (the degraded load is tested under Wine), and
    TestFailAttachLate = 1 makes every ATTACH fail as its last step (the
    unwind of the event handle made in the caller is tested under Wine).

Arguments:

    RegistryPath - the service key.

Return Value:

    STATUS_SUCCESS (possibly without the load-image callback), or the status
    of the process-callback registration that failed (nothing stays
    registered then).

--*/
{
    UNICODE_STRING ex2Name = RTL_CONSTANT_STRING(L"PsSetCreateProcessNotifyRoutineEx2");
    UNICODE_STRING preciseName = RTL_CONSTANT_STRING(L"KeQuerySystemTimePrecise");
    NTSTATUS status = STATUS_NOT_SUPPORTED;

    KRingGlobals.QuerySystemTimePrecise =
        (KRING_QUERY_SYSTEM_TIME_PRECISE)MmGetSystemRoutineAddress(&preciseName);
    KRingGlobals.SetProcessNotifyEx2 = (KRING_SET_PROCESS_NOTIFY_EX2)MmGetSystemRoutineAddress(&ex2Name);

    if (KRingGlobals.SetProcessNotifyEx2 != NULL) {
        status = KRingGlobals.SetProcessNotifyEx2(KRING_PS_NOTIFY_SUBSYSTEMS, KRingProcessNotify, FALSE);
        if (NT_SUCCESS(status)) {
            KRingGlobals.ProcessNotify = 2;
        } else {
            KRING_ERR("PsSetCreateProcessNotifyRoutineEx2 failed: 0x%08x\n", (unsigned)status);
        }
    }
    if (KRingGlobals.ProcessNotify == 0) {
        status = PsSetCreateProcessNotifyRoutineEx(KRingProcessNotify, FALSE);
        if (!NT_SUCCESS(status)) {
            KRING_ERR("PsSetCreateProcessNotifyRoutineEx failed: 0x%08x\n", (unsigned)status);
            return status;
        }
        KRingGlobals.ProcessNotify = 1;
    }

#if defined(KRING_TEST_BUILD)
    KRingGlobals.TestFailAttachLate = KRingTestKnob(RegistryPath, L"TestFailAttachLate");
    if (KRingGlobals.TestFailAttachLate) {
        KRING_ERR("test knob TestFailAttachLate: every ATTACH fails after the event handle is made\n");
    }
    if (KRingTestKnob(RegistryPath, L"TestFailImageNotify")) {
        status = STATUS_INSUFFICIENT_RESOURCES;
        KRING_ERR("test knob TestFailImageNotify: load-image registration made to fail\n");
    } else
#else
    UNREFERENCED_PARAMETER(RegistryPath);
#endif
    {
        status = PsSetLoadImageNotifyRoutine(KRingLoadImageNotify);
    }
    if (NT_SUCCESS(status)) {
        KRingGlobals.ImageNotify = TRUE;
    } else {
        KRING_ERR("PsSetLoadImageNotifyRoutine failed: 0x%08x: loading with process events only\n",
                  (unsigned)status);
    }
    KRING_LOG("callbacks registered: process notify %s, load-image notify %s\n",
              KRingGlobals.ProcessNotify == 2 ? "Ex2" : "Ex", KRingGlobals.ImageNotify ? "on" : "off");
    return STATUS_SUCCESS;
}

_Use_decl_annotations_
VOID
KRingNotifyUnregister(
    VOID
    )
/*++

Routine Description:

    Removes whatever KRingNotifyRegister registered. Removal waits for the
    callbacks that are running; the caller then also waits on CallbackLock.

--*/
{
    if (KRingGlobals.ImageNotify) {
        PsRemoveLoadImageNotifyRoutine(KRingLoadImageNotify);
        KRingGlobals.ImageNotify = FALSE;
    }
    if (KRingGlobals.ProcessNotify == 2) {
        KRingGlobals.SetProcessNotifyEx2(KRING_PS_NOTIFY_SUBSYSTEMS, KRingProcessNotify, TRUE);
    } else if (KRingGlobals.ProcessNotify == 1) {
        PsSetCreateProcessNotifyRoutineEx(KRingProcessNotify, TRUE);
    }
    KRingGlobals.ProcessNotify = 0;
}

#if defined(KRING_TEST_BUILD)

_Use_decl_annotations_
NTSTATUS
KRingInject(
    const struct kring_inject_in *Request,
    PEPROCESS Requestor,
    PULONG Count
    )
/*++

Routine Description:

    IOCTL_KRING_TEST_INJECT (test builds only): builds Request->count
    records of one type with the callbacks' own routines and fans them out
    like callback records; record i has pid Request->pid + i. It holds
    CallbackLock like a callback, so DriverUnload waits for it as well.

Arguments:

    Request - the request, in the system buffer (a kernel copy).

    Requestor - the calling process: with KRING_INJECT_PROCESS_FACTS, the
        process whose start time and token a process_start carries, as the
        callback's new process.

    Count - receives the records handed to the rings.

Return Value:

    STATUS_SUCCESS, STATUS_INVALID_PARAMETER for a bad type, count or
    string length, STATUS_DELETE_PENDING while the driver unloads.

--*/
{
    UNICODE_STRING path, cmdline;
    ULONG i;

    *Count = 0;
    if (Request->count == 0 || Request->count > KRING_INJECT_MAX_COUNT ||
        Request->path_chars > KRING_INJECT_PATH_CHARS || Request->cmdline_chars > KRING_INJECT_CMDLINE_CHARS ||
        Request->reserved != 0 ||
        (Request->flags & ~(uint32_t)(KRING_INJECT_KERNEL_IMAGE | KRING_INJECT_PROCESS_FACTS)) != 0 ||
        (Request->type != KRING_TYPE_PROCESS_START && Request->type != KRING_TYPE_PROCESS_EXIT &&
         Request->type != KRING_TYPE_IMAGE_LOAD)) {
        return STATUS_INVALID_PARAMETER;
    }
    if (!NT_SUCCESS(IoAcquireRemoveLock(&KRingGlobals.CallbackLock, (PVOID)Request))) {
        return STATUS_DELETE_PENDING;
    }
    path.Buffer = (PWCH)Request->path;
    path.Length = path.MaximumLength = (USHORT)(Request->path_chars * sizeof(WCHAR));
    cmdline.Buffer = (PWCH)Request->cmdline;
    cmdline.Length = cmdline.MaximumLength = (USHORT)(Request->cmdline_chars * sizeof(WCHAR));

    for (i = 0; i < Request->count; i++) {
        switch (Request->type) {
        case KRING_TYPE_PROCESS_START:
            KRingEmitProcessStart(Request->pid + i, Request->ppid, Request->ppid, Request->tid, 1,
                                  (Request->flags & KRING_INJECT_PROCESS_FACTS) ? Requestor : NULL,
                                  Request->path_chars ? &path : NULL,
                                  Request->cmdline_chars ? &cmdline : NULL);
            break;
        case KRING_TYPE_PROCESS_EXIT:
            KRingEmitProcessExit(Request->pid + i, (NTSTATUS)Request->exit_status,
                                 Request->path_chars ? &path : NULL);
            break;
        default:
            KRingEmitImageLoad(Request->pid + i, Request->base, Request->image_size,
                               (BOOLEAN)((Request->flags & KRING_INJECT_KERNEL_IMAGE) != 0),
                               Request->path_chars ? &path : NULL);
            break;
        }
    }
    IoReleaseRemoveLock(&KRingGlobals.CallbackLock, (PVOID)Request);
    *Count = Request->count;
    return STATUS_SUCCESS;
}

#endif /* KRING_TEST_BUILD */
