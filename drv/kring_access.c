/*++

Module Name:

    kring_access.c

Abstract:

    Who may open \Device\KRing: Administrators and LocalSystem only, at
    high integrity. The policy is one security descriptor,
    D:P(A;;GA;;;SY)(A;;GA;;;BA)S:(ML;;NWNRNX;;;HI) (KRingDeviceSd), which
    DriverEntry sets on the device object in every build (KRingSecureDevice;
    the WDK build also creates the device with IoCreateDeviceSecure and the
    same DACL), so the I/O manager checks it before IRP_MJ_CREATE, and which
    IRP_MJ_CREATE checks again with SeAccessCheck (KRingCheckCaller).
    The descriptor of each ring's event (KRingEventSd, used by kring_ring.c)
    lives here too, with the events' directory (KRingCreateEventDirectory)
    and the handle to its event that a client gets (KRingGrantEvent).

    Nothing a client does with names can get in the way of its event: the
    events live in an object directory the driver creates without a name
    (nothing can look it up, list it or create in it; its descriptor lets
    only SYSTEM do so even through a handle), and the client never looks
    its event up: ATTACH duplicates the driver's handle into the calling
    process with SYNCHRONIZE access only.

Environment:

    Kernel mode, PASSIVE_LEVEL.

--*/

#include "kring_drv.h"

const KRING_SID KRingSidLocalSystem = {
    SID_REVISION, 1, SECURITY_NT_AUTHORITY, { SECURITY_LOCAL_SYSTEM_RID, 0 } };
const KRING_SID KRingSidAdministrators = {
    SID_REVISION, 2, SECURITY_NT_AUTHORITY, { SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS } };

#define KRING_SD_CONTROL_DEVICE (SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_PROTECTED | SE_SACL_PRESENT)
#define KRING_SD_CONTROL_EVENT (SE_SELF_RELATIVE | SE_DACL_PRESENT | SE_DACL_PROTECTED)
#define KRING_SID1_INIT(Authority, Rid) { SID_REVISION, 1, Authority, { Rid } }
#define KRING_SID_SYSTEM KRING_SID1_INIT(SECURITY_NT_AUTHORITY, SECURITY_LOCAL_SYSTEM_RID)
#define KRING_SID_ADMINS { SID_REVISION, 2, SECURITY_NT_AUTHORITY, \
                           { SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS } }
#define KRING_SID_HIGH KRING_SID1_INIT(SECURITY_MANDATORY_LABEL_AUTHORITY, SECURITY_MANDATORY_HIGH_RID)

const KRING_DEVICE_SD KRingDeviceSd = {
    { SECURITY_DESCRIPTOR_REVISION, 0, KRING_SD_CONTROL_DEVICE,
      0, 0, FIELD_OFFSET(KRING_DEVICE_SD, Sacl), FIELD_OFFSET(KRING_DEVICE_SD, Dacl) },
    { { ACL_REVISION, 0, sizeof(KRingDeviceSd.Sacl), 1, 0 },
      { { SYSTEM_MANDATORY_LABEL_ACE_TYPE, 0, sizeof(KRING_ACE_SID1) },
        SYSTEM_MANDATORY_LABEL_NO_WRITE_UP | SYSTEM_MANDATORY_LABEL_NO_READ_UP | SYSTEM_MANDATORY_LABEL_NO_EXECUTE_UP,
        KRING_SID_HIGH } },
    { { ACL_REVISION, 0, sizeof(KRingDeviceSd.Dacl), 2, 0 },
      { { ACCESS_ALLOWED_ACE_TYPE, 0, sizeof(KRING_ACE_SID1) }, GENERIC_ALL, KRING_SID_SYSTEM },
      { { ACCESS_ALLOWED_ACE_TYPE, 0, sizeof(KRING_ACE_SID2) }, GENERIC_ALL, KRING_SID_ADMINS } },
};

const KRING_EVENT_SD KRingEventSd = {
    { SECURITY_DESCRIPTOR_REVISION, 0, KRING_SD_CONTROL_EVENT,
      FIELD_OFFSET(KRING_EVENT_SD, Owner), 0, 0, FIELD_OFFSET(KRING_EVENT_SD, Dacl) },
    KRING_SID_SYSTEM,
    { { ACL_REVISION, 0, sizeof(KRingEventSd.Dacl), 2, 0 },
      { { ACCESS_ALLOWED_ACE_TYPE, 0, sizeof(KRING_ACE_SID1) }, EVENT_ALL_ACCESS, KRING_SID_SYSTEM },
      { { ACCESS_ALLOWED_ACE_TYPE, 0, sizeof(KRING_ACE_SID2) }, SYNCHRONIZE, KRING_SID_ADMINS } },
};

const KRING_DIRECTORY_SD KRingDirectorySd = {
    { SECURITY_DESCRIPTOR_REVISION, 0, KRING_SD_CONTROL_EVENT,
      FIELD_OFFSET(KRING_DIRECTORY_SD, Owner), 0, 0, FIELD_OFFSET(KRING_DIRECTORY_SD, Dacl) },
    KRING_SID_SYSTEM,
    { { ACL_REVISION, 0, sizeof(KRingDirectorySd.Dacl), 1, 0 },
      { { ACCESS_ALLOWED_ACE_TYPE, 0, sizeof(KRING_ACE_SID1) }, DIRECTORY_ALL_ACCESS, KRING_SID_SYSTEM } },
};

/* The generic mapping of file objects (what IoGetFileObjectGenericMapping
 * returns; Wine does not implement that routine). */
static GENERIC_MAPPING KRingFileMapping = {
    FILE_GENERIC_READ, FILE_GENERIC_WRITE, FILE_GENERIC_EXECUTE, FILE_ALL_ACCESS };

/* KRingDeviceSd with its generic rights mapped to file rights, for
 * SeAccessCheck (which compares the ACEs' masks as they are). Written once
 * by KRingSecureDevice, in DriverEntry, before any open. */
static KRING_DEVICE_SD KRingDeviceSdMapped;

_Use_decl_annotations_
NTSTATUS
KRingSecureDevice(
    PDEVICE_OBJECT DeviceObject
    )
/*++

Routine Description:

    Sets KRingDeviceSd (DACL and mandatory label) on the device object,
    through a kernel handle to it (the object manager maps the generic
    rights with the device type's mapping), and prepares the mapped copy
    that IRP_MJ_CREATE checks against.

Return Value:

    STATUS_SUCCESS, or the status of the step that failed (DriverEntry
    then fails: the device is never left unsecured).

--*/
{
    HANDLE handle;
    NTSTATUS status;

    KRingDeviceSdMapped = KRingDeviceSd;
    KRingDeviceSdMapped.Dacl.System.Mask = KRingFileMapping.GenericAll;
    KRingDeviceSdMapped.Dacl.Administrators.Mask = KRingFileMapping.GenericAll;

    status = ObOpenObjectByPointer(DeviceObject, OBJ_KERNEL_HANDLE, NULL, WRITE_DAC | WRITE_OWNER, NULL,
                                   KernelMode, &handle);
    if (!NT_SUCCESS(status)) {
        KRING_ERR("cannot open the device object to secure it: 0x%08x\n", (unsigned)status);
        return status;
    }
    status = ZwSetSecurityObject(handle, DACL_SECURITY_INFORMATION | LABEL_SECURITY_INFORMATION,
                                 (PSECURITY_DESCRIPTOR)&KRingDeviceSd);
    ZwClose(handle);
    if (!NT_SUCCESS(status)) {
        KRING_ERR("cannot set the device's security descriptor: 0x%08x\n", (unsigned)status);
    }
    return status;
}

static BOOLEAN
KRingGroupsAdmit(
    _In_ PTOKEN_USER User,
    _In_ PTOKEN_GROUPS Groups
    )
/*++

Routine Description:

    The access policy: the token is LocalSystem's, or it has the
    Administrators group enabled (not deny-only, as in a UAC-filtered
    token or a restricted token).

--*/
{
    ULONG i;

    if (User != NULL && RtlEqualSid(User->User.Sid, (PSID)&KRingSidLocalSystem)) {
        return TRUE;
    }
    for (i = 0; Groups != NULL && i < Groups->GroupCount; i++) {
        if ((Groups->Groups[i].Attributes & SE_GROUP_ENABLED) != 0 &&
            (Groups->Groups[i].Attributes & SE_GROUP_USE_FOR_DENY_ONLY) == 0 &&
            RtlEqualSid(Groups->Groups[i].Sid, (PSID)&KRingSidAdministrators)) {
            return TRUE;
        }
    }
    return FALSE;
}

_Use_decl_annotations_
NTSTATUS
KRingQueryToken(
    HANDLE Token,
    ULONG Class,
    PVOID *Buffer
    )
/*++

Routine Description:

    Reads one class of information of a token into a new paged pool buffer
    (KRING_POOL_TAG) that the caller frees; *Buffer is NULL when nothing was
    allocated.

--*/
{
    ULONG length = 0;
    NTSTATUS status = ZwQueryInformationToken(Token, (TOKEN_INFORMATION_CLASS)Class, NULL, 0, &length);

    *Buffer = NULL;
    if (status == STATUS_BUFFER_TOO_SMALL && length != 0) {
        *Buffer = ExAllocatePoolWithTag(PagedPool, length, KRING_POOL_TAG);
        status = *Buffer ? ZwQueryInformationToken(Token, (TOKEN_INFORMATION_CLASS)Class, *Buffer, length, &length)
                         : STATUS_INSUFFICIENT_RESOURCES;
    }
    return status;
}

static NTSTATUS
KRingCheckProcessToken(
    _In_ PEPROCESS Process
    )
/*++

Routine Description:

    KRingCheckCaller for an open without a security context (only Wine's
    I/O manager sends those): applies the policy to the primary token of
    the requesting process, read through handles.

--*/
{
    HANDLE process = NULL, token = NULL;
    PVOID userBuffer = NULL, groupsBuffer = NULL;
    NTSTATUS status;

    status = ObOpenObjectByPointer(Process, OBJ_KERNEL_HANDLE, NULL, PROCESS_QUERY_LIMITED_INFORMATION,
                                   KRING_PROCESS_OBJECT_TYPE, KernelMode, &process);
    if (NT_SUCCESS(status)) {
        status = ZwOpenProcessTokenEx(process, TOKEN_QUERY, OBJ_KERNEL_HANDLE, &token);
    }
    if (NT_SUCCESS(status)) {
        status = KRingQueryToken(token, TokenUser, &userBuffer);
    }
    if (NT_SUCCESS(status)) {
        status = KRingQueryToken(token, TokenGroups, &groupsBuffer);
    }
    if (NT_SUCCESS(status)) {
        status = KRingGroupsAdmit(userBuffer, groupsBuffer) ? STATUS_SUCCESS : STATUS_ACCESS_DENIED;
    } else {
        status = STATUS_ACCESS_DENIED;          /* cannot tell: refuse */
    }
    if (groupsBuffer != NULL) {
        ExFreePoolWithTag(groupsBuffer, KRING_POOL_TAG);
    }
    if (userBuffer != NULL) {
        ExFreePoolWithTag(userBuffer, KRING_POOL_TAG);
    }
    if (token != NULL) {
        ZwClose(token);
    }
    if (process != NULL) {
        ZwClose(process);
    }
    return status;
}

_Use_decl_annotations_
NTSTATUS
KRingCheckCaller(
    PIRP Irp,
    PIO_STACK_LOCATION IrpSp
    )
/*++

Routine Description:

    Checks the open against the device's descriptor (KRingDeviceSd, its
    generic rights mapped) with SeAccessCheck: the opener's subject context
    (impersonation token if the opening thread impersonates, else its
    primary token), the access it asked for, the file generic mapping. The
    I/O manager has made the same check against the object's descriptor;
    this one does not depend on the descriptor having been applied.

    An open without a security context (only Wine's I/O manager sends
    those, and Wine has no SeCaptureSubjectContext) gets the same policy
    from the requesting process's primary token: LocalSystem, or
    Administrators enabled.

--*/
{
    PIO_SECURITY_CONTEXT context = IrpSp->Parameters.Create.SecurityContext;
    PSECURITY_SUBJECT_CONTEXT subject;
    ACCESS_MASK desired, granted = 0;
    NTSTATUS status = STATUS_ACCESS_DENIED;
    BOOLEAN allowed;

    if (context == NULL || context->AccessState == NULL) {
        return KRingCheckProcessToken(IoGetRequestorProcess(Irp));
    }
    subject = &context->AccessState->SubjectSecurityContext;
    desired = context->DesiredAccess;
    RtlMapGenericMask(&desired, &KRingFileMapping);
    SeLockSubjectContext(subject);
    allowed = SeAccessCheck((PSECURITY_DESCRIPTOR)&KRingDeviceSdMapped, subject, TRUE, desired, 0, NULL,
                            &KRingFileMapping, Irp->RequestorMode, &granted, &status);
    SeUnlockSubjectContext(subject);
    return allowed ? STATUS_SUCCESS : (NT_SUCCESS(status) ? STATUS_ACCESS_DENIED : status);
}

_Use_decl_annotations_
NTSTATUS
KRingCreateEventDirectory(
    PHANDLE Directory
    )
/*++

Routine Description:

    Creates the object directory the rings' events are created in: unnamed,
    so no process can open it, list it or create a name in it, and with
    KRingDirectorySd (owner SYSTEM, SYSTEM only) should a handle to it ever
    leak. Being unnamed also means that a client still holding an event
    after the driver unloaded (the event keeps its directory alive) cannot
    make the next DriverEntry collide with the old directory, and that no
    one can create the directory first (administrators may create names in
    the root directory; Wine checks no access there at all).

Arguments:

    Directory - receives a kernel handle (OBJ_KERNEL_HANDLE) to it.

Return Value:

    The status of ZwCreateDirectoryObject.

--*/
{
    OBJECT_ATTRIBUTES attributes;

    InitializeObjectAttributes(&attributes, NULL, OBJ_KERNEL_HANDLE, NULL,
                               (PSECURITY_DESCRIPTOR)&KRingDirectorySd);
    /* The handle asks for no access: it only serves as the root of the
     * driver's own kernel-mode creates (ZwCreateEvent, previous mode
     * KernelMode), which reference it, and create in it, without an access
     * check. Windows would grant its creator any access; Wine checks the
     * request against the new descriptor (SYSTEM only, and winedevice.exe
     * does not run as SYSTEM there) and refuses anything but none. */
    return ZwCreateDirectoryObject(Directory, 0, &attributes);
}

_Use_decl_annotations_
NTSTATUS
KRingGrantEvent(
    HANDLE Event,
    PEPROCESS Process,
    PHANDLE UserHandle
    )
/*++

Routine Description:

    Gives Process (the caller of ATTACH) a handle to a ring's event with
    SYNCHRONIZE access only: a duplicate of the driver's kernel handle,
    made in the caller's handle table, not inheritable. Duplicating asks
    for less than the source handle has, so no access check applies; the
    event's descriptor (SYSTEM all, Administrators SYNCHRONIZE) still
    refuses any attempt to duplicate it later with more access.

    The handle is duplicated into the requesting process rather than opened
    in the current one (ObOpenObjectByPointer): on Windows the IOCTL runs in
    the caller's context and both are the same, but Wine dispatches in
    winedevice.exe.

Arguments:

    Event - the driver's kernel handle to the event.

    Process - the process that sent the ATTACH (IoGetRequestorProcess).

    UserHandle - receives the handle, valid in Process.

Return Value:

    STATUS_SUCCESS, or the status of opening the process or duplicating.

--*/
{
    HANDLE process;
    NTSTATUS status;

    *UserHandle = NULL;
    status = ObOpenObjectByPointer(Process, OBJ_KERNEL_HANDLE, NULL, PROCESS_DUP_HANDLE,
                                   KRING_PROCESS_OBJECT_TYPE, KernelMode, &process);
    if (!NT_SUCCESS(status)) {
        return status;
    }
    status = ZwDuplicateObject(ZwCurrentProcess(), Event, process, UserHandle, SYNCHRONIZE, 0, 0);
    ZwClose(process);
    if (!NT_SUCCESS(status)) {
        *UserHandle = NULL;
    }
    return status;
}

_Use_decl_annotations_
VOID
KRingRevokeEvent(
    PEPROCESS Process,
    HANDLE UserHandle
    )
/*++

Routine Description:

    Closes a handle KRingGrantEvent made in Process, for an ATTACH that
    fails after it (the reply, and with it the handle value, never reaches
    the caller). Only a thread of that same process could have closed and
    reused the value in between, by racing its own ATTACH.

--*/
{
    HANDLE process, local;
    NTSTATUS status;

    status = ObOpenObjectByPointer(Process, OBJ_KERNEL_HANDLE, NULL, PROCESS_DUP_HANDLE,
                                   KRING_PROCESS_OBJECT_TYPE, KernelMode, &process);
    if (NT_SUCCESS(status)) {
        /* Moved into a kernel handle of ours and closed here: Windows would
         * also take no target with DUPLICATE_CLOSE_SOURCE, Wine refuses
         * that (STATUS_INVALID_HANDLE). */
        status = ZwDuplicateObject(process, UserHandle, ZwCurrentProcess(), &local, 0, OBJ_KERNEL_HANDLE,
                                   DUPLICATE_CLOSE_SOURCE | DUPLICATE_SAME_ACCESS);
        if (NT_SUCCESS(status)) {
            ZwClose(local);
        }
        ZwClose(process);
    }
    if (!NT_SUCCESS(status)) {
        KRING_ERR("cannot close the event handle made for a failed attach: 0x%08x\n", (unsigned)status);
    }
}
