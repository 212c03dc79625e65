/*++

Module Name:

    kring_access.c

Abstract:

    Who may open \Device\KRing: Administrators and LocalSystem only, the
    policy of SDDL_DEVOBJ_SYS_ALL_ADM_ALL. The WDK build also sets it as the
    device's security descriptor (IoCreateDeviceSecure); every build checks
    the opener's token here, from IRP_MJ_CREATE (KRingCheckCaller). The two
    SIDs of the policy also go into the DACL of each ring's event
    (kring_ring.c).

Environment:

    Kernel mode, PASSIVE_LEVEL.

--*/

#include "kring_drv.h"

const KRING_SID KRingSidLocalSystem = {
    SID_REVISION, 1, SECURITY_NT_AUTHORITY, { SECURITY_LOCAL_SYSTEM_RID, 0 } };
const KRING_SID KRingSidAdministrators = {
    SID_REVISION, 2, SECURITY_NT_AUTHORITY, { SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS } };

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

static NTSTATUS
KRingQueryToken(
    _In_ HANDLE Token,
    _In_ TOKEN_INFORMATION_CLASS Class,
    _Out_ PVOID *Buffer
    )
/*++

Routine Description:

    Reads one class of information of a token into a new paged pool buffer
    (KRING_POOL_TAG) that the caller frees; *Buffer is NULL when nothing was
    allocated.

--*/
{
    ULONG length = 0;
    NTSTATUS status = ZwQueryInformationToken(Token, Class, NULL, 0, &length);

    *Buffer = NULL;
    if (status == STATUS_BUFFER_TOO_SMALL && length != 0) {
        *Buffer = ExAllocatePoolWithTag(PagedPool, length, KRING_POOL_TAG);
        status = *Buffer ? ZwQueryInformationToken(Token, Class, *Buffer, length, &length)
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

    Admits Administrators and LocalSystem only (the policy of
    SDDL_DEVOBJ_SYS_ALL_ADM_ALL, checked here for builds without
    wdmsec.lib). The subject is the opener's effective token: the
    impersonation token if the opening thread impersonates, else its
    process's primary token.

--*/
{
    PIO_SECURITY_CONTEXT context = IrpSp->Parameters.Create.SecurityContext;
    PTOKEN_USER user = NULL;
    PTOKEN_GROUPS groups = NULL;
    PACCESS_TOKEN token;
    NTSTATUS status;

    if (context == NULL || context->AccessState == NULL) {
        return KRingCheckProcessToken(IoGetRequestorProcess(Irp));
    }
    token = SeQuerySubjectContextToken(&context->AccessState->SubjectSecurityContext);
    if (token == NULL) {
        return STATUS_ACCESS_DENIED;
    }
    status = SeQueryInformationToken(token, TokenUser, (PVOID *)&user);
    if (NT_SUCCESS(status)) {
        status = SeQueryInformationToken(token, TokenGroups, (PVOID *)&groups);
    }
    status = (NT_SUCCESS(status) && KRingGroupsAdmit(user, groups)) ? STATUS_SUCCESS : STATUS_ACCESS_DENIED;
    if (groups != NULL) {
        ExFreePool(groups);
    }
    if (user != NULL) {
        ExFreePool(user);
    }
    return status;
}
