/*++

Module Name:

    kring_notify.c

Abstract:

    The event sources of kring.sys: the process-creation callback
    (PsSetCreateProcessNotifyRoutineEx2, resolved at run time, or ...Ex)
    and the load-image callback (PsSetLoadImageNotifyRoutine). Each
    callback builds one record of include/kring/kring_events.h (strings as bounded
    UTF-8 with truncation flags; no kernel address ever), then has the ring
    registry hand it to every attached ring that asked for that kind of
    event (KRingFanOut, kring_rings.c). The process-exit callback also has
    the registry unmap the rings of the exiting process.

    Test builds (KRING_TEST_BUILD) add KRingInject, which builds synthetic
    records with the same routines and fans them out the same way.

Environment:

    Kernel mode. The callbacks run at PASSIVE_LEVEL: process creation in the
    creating thread, process exit in the last thread of the exiting process,
    image loads in the thread that maps the image.

--*/

#include "kring_drv.h"

static PVOID
KRingAllocateRecord(
    _In_ SIZE_T Bytes
    )
{
    PVOID record = ExAllocatePoolWithTag(NonPagedPoolNx, Bytes, KRING_POOL_TAG);

    if (record != NULL) {
        RtlZeroMemory(record, Bytes);
    } else {
        InterlockedIncrement64(&KRingGlobals.LostNoMemory);
    }
    return record;
}

static ULONG
KRingUnicodeChars(
    _In_opt_ PCUNICODE_STRING String
    )
{
    return (String != NULL && String->Buffer != NULL) ? String->Length / sizeof(WCHAR) : 0;
}

/* 100 ns units from 1601 (Windows system time) to 1970 (the Unix epoch). */
#define KRING_UNIX_EPOCH_100NS 116444736000000000ULL

static ULONG64
KRingProcessStartNs(
    _In_ HANDLE Process
    )
/*++

Routine Description:

    The creation time of a process, in ns since the Unix epoch: the start
    time of its records (start_time, parent_start_time). With the pid it is
    a key of the process that no later process of this boot shares (pids
    are reused, creation times of the same pid are not), and every record of
    the process gets the same value (read, never computed from the clock).

Arguments:

    Process - a handle with PROCESS_QUERY_LIMITED_INFORMATION.

Return Value:

    The time, or 0 when it cannot be read.

--*/
{
    KERNEL_USER_TIMES times;

    if (!NT_SUCCESS(ZwQueryInformationProcess(Process, ProcessTimes, &times, sizeof(times), NULL)) ||
        (ULONG64)times.CreateTime.QuadPart < KRING_UNIX_EPOCH_100NS) {
        return 0;
    }
    return ((ULONG64)times.CreateTime.QuadPart - KRING_UNIX_EPOCH_100NS) * 100;
}

static VOID
KRingFillTokenFields(
    _Inout_ struct kring_process_start *Record,
    _In_ HANDLE Process
    )
/*++

Routine Description:

    The process's primary token in a process_start record: the user's SID
    as text (user_sid, KRING_D_SID_TRUNCATED when cut), the elevation type
    and the integrity level RID. A field whose query fails stays 0 / empty.

--*/
{
    HANDLE token = NULL;
    PVOID user = NULL, elevation = NULL, label = NULL;
    char labelText[40];
    uint32_t rid;
    int truncated = 0;

    if (!NT_SUCCESS(ZwOpenProcessTokenEx(Process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token))) {
        return;
    }
    if (NT_SUCCESS(KRingQueryToken(token, TokenUser, &user))) {
        PSID sid = ((PTOKEN_USER)user)->User.Sid;

        /* The SID's own length (RtlLengthSid) bounds the read. */
        kring_sid_to_text(Record->user_sid, KRING_SID_BYTES, (const uint8_t *)sid, RtlLengthSid(sid), &truncated,
                          &rid);
        if (truncated) {
            Record->detail |= KRING_D_SID_TRUNCATED;
        }
    }
    if (NT_SUCCESS(KRingQueryToken(token, TokenElevationType, &elevation))) {
        /* A TOKEN_ELEVATION_TYPE, a 4-byte enum (mingw-w64 lacks the type). */
        Record->elevation = *(const ULONG *)elevation;
    }
    if (NT_SUCCESS(KRingQueryToken(token, TokenIntegrityLevel, &label))) {
        PSID sid = ((PTOKEN_MANDATORY_LABEL)label)->Label.Sid;

        /* The label is S-1-16-<RID>: only its last RID is kept. */
        kring_sid_to_text(labelText, sizeof(labelText), (const uint8_t *)sid, RtlLengthSid(sid), &truncated,
                          &Record->integrity);
    }
    if (label != NULL) {
        ExFreePoolWithTag(label, KRING_POOL_TAG);
    }
    if (elevation != NULL) {
        ExFreePoolWithTag(elevation, KRING_POOL_TAG);
    }
    if (user != NULL) {
        ExFreePoolWithTag(user, KRING_POOL_TAG);
    }
    ZwClose(token);
}

static VOID
KRingFillProcessFacts(
    _Inout_ struct kring_process_start *Record,
    _In_ PEPROCESS Process,
    _In_ ULONG ParentPid
    )
/*++

Routine Description:

    What a process_start gets from the new process beyond the notify
    information: its start time and its token (KRingFillTokenFields), and
    the parent's start time (0 when the parent is gone): with the pids the
    inputs of exec_id and parent_exec_id. Everything is read through
    kernel handles opened for query only.

--*/
{
    HANDLE process = NULL, parent = NULL;
    OBJECT_ATTRIBUTES attributes;
    CLIENT_ID client;

    if (NT_SUCCESS(ObOpenObjectByPointer(Process, OBJ_KERNEL_HANDLE, NULL, PROCESS_QUERY_LIMITED_INFORMATION,
                                         KRING_PROCESS_OBJECT_TYPE, KernelMode, &process))) {
        Record->start_time = KRingProcessStartNs(process);
        KRingFillTokenFields(Record, process);
        ZwClose(process);
    }
    if (ParentPid != 0) {
        InitializeObjectAttributes(&attributes, NULL, OBJ_KERNEL_HANDLE, NULL, NULL);
        client.UniqueProcess = (HANDLE)(ULONG_PTR)ParentPid;
        client.UniqueThread = NULL;
        if (NT_SUCCESS(ZwOpenProcess(&parent, PROCESS_QUERY_LIMITED_INFORMATION, &attributes, &client))) {
            Record->parent_start_time = KRingProcessStartNs(parent);
            ZwClose(parent);
        }
    }
}

static VOID
KRingEmitProcessStart(
    _In_ ULONG Pid,
    _In_ ULONG ParentPid,
    _In_ ULONG CreatorPid,
    _In_ ULONG CreatorTid,
    _In_ ULONG SessionId,
    _In_opt_ PEPROCESS Process,
    _In_opt_ PCUNICODE_STRING ImageFileName,
    _In_opt_ PCUNICODE_STRING CommandLine
    )
/*++

Routine Description:

    Builds and fans out a process_start record. The record ends after the
    command line's NUL (a variable-length record, PROTOCOL.md 5.5). With
    Process (the new process), its start times and token fields are filled
    too (KRingFillProcessFacts).

--*/
{
    struct kring_process_start *r = KRingAllocateRecord(sizeof(*r));
    ULONG pathChars = KRingUnicodeChars(ImageFileName);
    ULONG cmdChars = KRingUnicodeChars(CommandLine);
    int truncated;

    if (r == NULL) {
        KRingFanOut(KRING_EVENTS_PROCESS, KRING_TYPE_PROCESS_START, 0, NULL, 0);
        return;
    }
    r->pid = Pid;
    r->ppid = ParentPid;
    r->creator_pid = CreatorPid;
    r->creator_tid = CreatorTid;
    r->uid = 0;
    r->session_id = SessionId;
    if (Process != NULL) {
        KRingFillProcessFacts(r, Process, ParentPid);
    }
    if (ImageFileName == NULL || ImageFileName->Buffer == NULL) {
        r->detail |= KRING_D_NO_PATH;
    } else {
        r->path_len = (uint16_t)kring_utf16_to_utf8(r->path, KRING_PATH_MAX, ImageFileName->Buffer,
                                                    pathChars, &truncated);
        if (truncated) {
            r->detail |= KRING_D_PATH_TRUNCATED;
        }
        kring_utf16_basename(r->comm, KRING_COMM_LEN, ImageFileName->Buffer, pathChars);
    }
    if (CommandLine != NULL && CommandLine->Buffer != NULL) {
        r->cmdline_len = (uint16_t)kring_utf16_to_utf8(r->cmdline, KRING_CMDLINE_MAX, CommandLine->Buffer,
                                                       cmdChars, &truncated);
        if (truncated) {
            r->detail |= KRING_D_CMDLINE_TRUNCATED;
        }
    }
    KRingFanOut(KRING_EVENTS_PROCESS, KRING_TYPE_PROCESS_START,
                (r->detail & (KRING_D_PATH_TRUNCATED | KRING_D_CMDLINE_TRUNCATED | KRING_D_SID_TRUNCATED)) ?
                    KRING_EV_TRUNCATED : 0,
                (const UCHAR *)r, KRING_PROCESS_START_MIN_SIZE + r->cmdline_len + 1);
    ExFreePoolWithTag(r, KRING_POOL_TAG);
}

static VOID
KRingEmitProcessExit(
    _In_ ULONG Pid,
    _In_ NTSTATUS ExitStatus,
    _In_opt_ PCUNICODE_STRING ImageFileName
    )
{
    struct kring_process_exit *r = KRingAllocateRecord(sizeof(*r));

    if (r == NULL) {
        KRingFanOut(KRING_EVENTS_PROCESS, KRING_TYPE_PROCESS_EXIT, 0, NULL, 0);
        return;
    }
    r->pid = Pid;
    r->ppid = 0;                                /* not known at exit */
    r->exit_code = (int32_t)ExitStatus;
    r->raw_status = (uint32_t)ExitStatus;
    if (ImageFileName != NULL && ImageFileName->Buffer != NULL) {
        kring_utf16_basename(r->comm, KRING_COMM_LEN, ImageFileName->Buffer, KRingUnicodeChars(ImageFileName));
    } else {
        r->detail |= KRING_D_NO_PATH;
    }
    KRingFanOut(KRING_EVENTS_PROCESS, KRING_TYPE_PROCESS_EXIT, 0, (const UCHAR *)r, sizeof(*r));
    ExFreePoolWithTag(r, KRING_POOL_TAG);
}

static VOID
KRingEmitImageLoad(
    _In_ ULONG Pid,
    _In_ ULONG64 Base,
    _In_ ULONG64 Size,
    _In_ BOOLEAN KernelImage,
    _In_opt_ PCUNICODE_STRING FullImageName
    )
/*++

Routine Description:

    Builds and fans out an image_load record. A kernel-mode image's base is
    a kernel address: it is never reported (0, with KRING_D_KERNEL_IMAGE).

--*/
{
    struct kring_image_load *r = KRingAllocateRecord(sizeof(*r));
    int truncated = 0;

    if (r == NULL) {
        KRingFanOut(KRING_EVENTS_IMAGE, KRING_TYPE_IMAGE_LOAD, 0, NULL, 0);
        return;
    }
    r->pid = Pid;
    r->base = KernelImage ? 0 : Base;
    r->size = Size;
    r->file_offset = 0;
    if (KernelImage) {
        r->detail |= KRING_D_KERNEL_IMAGE;
    }
    if (FullImageName == NULL || FullImageName->Buffer == NULL) {
        r->detail |= KRING_D_NO_PATH;
    } else {
        r->path_len = (uint16_t)kring_utf16_to_utf8(r->path, KRING_PATH_MAX, FullImageName->Buffer,
                                                    KRingUnicodeChars(FullImageName), &truncated);
        if (truncated) {
            r->detail |= KRING_D_PATH_TRUNCATED;
        }
    }
    KRingFanOut(KRING_EVENTS_IMAGE, KRING_TYPE_IMAGE_LOAD, truncated ? KRING_EV_TRUNCATED : 0,
                (const UCHAR *)r, KRING_IMAGE_LOAD_MIN_SIZE + r->path_len + 1);
    ExFreePoolWithTag(r, KRING_POOL_TAG);
}

static VOID
KRingProcessNotify(
    _Inout_ PEPROCESS Process,
    _In_ HANDLE ProcessId,
    _Inout_opt_ PPS_CREATE_NOTIFY_INFO CreateInfo
    )
/*++

Routine Description:

    Process creation and exit callback (PCREATE_PROCESS_NOTIFY_ROUTINE_EX).
    On exit it also removes the views of rings that the exiting process
    still has mapped (a handle it duplicated elsewhere keeps the ring
    alive): this runs in that process's last thread, before its address
    space goes.

--*/
{
    PUNICODE_STRING imageName = NULL;

    if (!NT_SUCCESS(IoAcquireRemoveLock(&KRingGlobals.CallbackLock, Process))) {
        return;
    }
    InterlockedIncrement64(&KRingGlobals.ProcessEvents);
    if (CreateInfo != NULL) {
        KRingEmitProcessStart((ULONG)(ULONG_PTR)ProcessId,
                              (ULONG)(ULONG_PTR)CreateInfo->ParentProcessId,
                              (ULONG)(ULONG_PTR)CreateInfo->CreatingThreadId.UniqueProcess,
                              (ULONG)(ULONG_PTR)CreateInfo->CreatingThreadId.UniqueThread,
                              PsGetProcessSessionId(Process),
                              Process,
                              CreateInfo->ImageFileName,
                              CreateInfo->CommandLine);
    } else {
        if (!NT_SUCCESS(SeLocateProcessImageName(Process, &imageName))) {
            imageName = NULL;
        }
        KRingEmitProcessExit((ULONG)(ULONG_PTR)ProcessId, PsGetProcessExitStatus(Process), imageName);
        if (imageName != NULL) {
            ExFreePool(imageName);
        }
        KRingUnmapRingsOf(Process);
    }
    IoReleaseRemoveLock(&KRingGlobals.CallbackLock, Process);
}

static VOID
KRingLoadImageNotify(
    _In_opt_ PUNICODE_STRING FullImageName,
    _In_ HANDLE ProcessId,
    _In_ PIMAGE_INFO ImageInfo
    )
/*++

Routine Description:

    Load-image callback (PLOAD_IMAGE_NOTIFY_ROUTINE). FullImageName may be
    NULL; ProcessId is 0 for drivers.

--*/
{
    if (!NT_SUCCESS(IoAcquireRemoveLock(&KRingGlobals.CallbackLock, ImageInfo))) {
        return;
    }
    InterlockedIncrement64(&KRingGlobals.ImageEvents);
    KRingEmitImageLoad((ULONG)(ULONG_PTR)ProcessId,
                       (ULONG64)(ULONG_PTR)ImageInfo->ImageBase,
                       (ULONG64)ImageInfo->ImageSize,
                       (BOOLEAN)(ImageInfo->SystemModeImage || ProcessId == NULL),
                       FullImageName);
    IoReleaseRemoveLock(&KRingGlobals.CallbackLock, ImageInfo);
}

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
