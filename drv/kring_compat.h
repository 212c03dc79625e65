/*++

Module Name:

    kring_compat.h

Abstract:

    The differences between the two tool chains that build kring.sys: the
    WDK (MSVC) and clang --target=x86_64-w64-mingw32 with the mingw-w64 DDK
    headers. Everything here is either missing from one of them or spelled
    differently; the driver's .c files use only the names defined here, so
    they stay free of compiler-specific code.

    Missing from the mingw-w64 headers and import library (docs/DRIVER.md):
    PsSetCreateProcessNotifyRoutineEx2 and its enum (resolved at run time
    with MmGetSystemRoutineAddress, so they get names of our own),
    KeQuerySystemTimePrecise (ditto), the MdlMapping* priority flags,
    PsGetProcessExitStatus / PsGetProcessSessionId declarations, the
    _Dispatch_type_ SAL annotation.

Environment:

    Kernel mode.

--*/

#ifndef KRING_COMPAT_H
#define KRING_COMPAT_H

/* Page priority flags for MmMapLockedPagesSpecifyCache / MmGetSystemAddressForMdlSafe
 * (Windows 8 and later; wdm.h of recent WDKs). */
#ifndef MdlMappingNoWrite
#define MdlMappingNoWrite 0x80000000
#endif
#ifndef MdlMappingNoExecute
#define MdlMappingNoExecute 0x40000000
#endif

#ifndef SE_GROUP_ENABLED
#define SE_GROUP_ENABLED 0x00000004L
#endif
#ifndef SE_GROUP_USE_FOR_DENY_ONLY
#define SE_GROUP_USE_FOR_DENY_ONLY 0x00000010L
#endif

#ifndef PROCESS_QUERY_LIMITED_INFORMATION
#define PROCESS_QUERY_LIMITED_INFORMATION 0x1000
#endif

/* PsSetCreateProcessNotifyRoutineEx2 (Windows 10 1703): resolved with
 * MmGetSystemRoutineAddress, never imported, so a driver built with either
 * tool chain loads on older systems and falls back to ...Ex. The first
 * argument is the PSCREATEPROCESSNOTIFYTYPE enum; 0 is
 * PsCreateProcessNotifySubsystems (all subsystems, WSL/pico included). */
#define KRING_PS_NOTIFY_SUBSYSTEMS 0
typedef NTSTATUS (NTAPI *KRING_SET_PROCESS_NOTIFY_EX2)(
    _In_ ULONG NotifyType,
    _In_ PCREATE_PROCESS_NOTIFY_ROUTINE_EX NotifyInformation,  /* PVOID in the WDK prototype */
    _In_ BOOLEAN Remove);

/* KeQuerySystemTimePrecise (Windows 8): resolved at run time as well;
 * KeQuerySystemTime (a read of the shared user data page) otherwise. */
typedef VOID (NTAPI *KRING_QUERY_SYSTEM_TIME_PRECISE)(_Out_ PLARGE_INTEGER CurrentTime);

/* Exported by ntoskrnl since Windows XP (PsGetProcessExitStatus is
 * documented); mingw-w64 has them in its import library but not in its
 * headers. A redeclaration with the same signature is harmless where the
 * WDK headers declare them too. */
NTKERNELAPI NTSTATUS PsGetProcessExitStatus(_In_ PEPROCESS Process);
NTKERNELAPI ULONG PsGetProcessSessionId(_In_ PEPROCESS Process);

/* Object types are data exports. The WDK declares them `extern POBJECT_TYPE
 * *X` bound to the import address table slot, so the object type is *X;
 * mingw-w64 declares them __declspec(dllimport), so X already is the
 * object type. (Verified under Wine: *X is the type's first field there.) */
#if defined(__MINGW32__)
#define KRING_PROCESS_OBJECT_TYPE ((POBJECT_TYPE)PsProcessType)
#else
#define KRING_PROCESS_OBJECT_TYPE (*PsProcessType)
#endif

/* KeStackAttachProcess takes a PRKPROCESS in the WDK, a PKPROCESS in mingw-w64. */
#if defined(__MINGW32__)
#define KRING_KPROCESS(process) ((PKPROCESS)(process))
#else
#define KRING_KPROCESS(process) ((PRKPROCESS)(process))
#endif

/* SAL annotations the mingw-w64 headers do not define. */
#ifndef _Dispatch_type_
#define _Dispatch_type_(type)
#endif
#ifndef _IRQL_requires_max_
#define _IRQL_requires_max_(irql)
#endif
#ifndef _IRQL_requires_
#define _IRQL_requires_(irql)
#endif
#ifndef _Requires_lock_held_
#define _Requires_lock_held_(lock)
#endif
#ifndef _Requires_lock_not_held_
#define _Requires_lock_not_held_(lock)
#endif

#endif /* KRING_COMPAT_H */
