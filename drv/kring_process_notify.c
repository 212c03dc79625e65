/*++

Module Name:

    kring_process_notify.c

Abstract:

    The process-creation and exit callback of kring.sys (KRingProcessNotify,
    registered by kring_notify.c with PsSetCreateProcessNotifyRoutineEx2 or
    ...Ex) and the records it builds: process_start (the notify
    information, the start times of the process and its parent, the token's
    user SID, elevation type and integrity level) and process_exit. Strings
    are bounded UTF-8 with truncation flags; no kernel address ever. Each
    record goes to every attached ring that asked for process events
    (KRingFanOut, kring_rings.c); on exit the registry also unmaps the rings
    of the exiting process.

Environment:

    Kernel mode, PASSIVE_LEVEL: process creation in the creating thread,
    process exit in the last thread of the exiting process.

--*/

#include "kring_drv.h"
#include "kring_record.h"

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

VOID
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

VOID
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

VOID
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
