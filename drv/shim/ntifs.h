/*
 * A user-mode stand-in for <ntifs.h>, just enough of the kernel's types and
 * calls for the driver's ring code (drv/kring_ring.c, its producer
 * drv/kring_ring_write.c and its copy-out path drv/kring_ring_read.c) to build and run
 * on Linux (tests/test_driver_ring_native.py), in the spirit of
 * microsoft/usersim. Spin locks are pthread mutexes, pool is malloc, events
 * are auto-reset or manual-reset as on Windows (and count their sets). Not
 * for the driver build.
 */
#ifndef KRING_SHIM_NTIFS_H
#define KRING_SHIM_NTIFS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#define NTAPI
#define NTKERNELAPI
#define VOID void
#define CONST const
#define TRUE 1
#define FALSE 0
#define FORCEINLINE static inline
#define DECLSPEC_ALIGN(x) __attribute__((aligned(x)))
#define UNREFERENCED_PARAMETER(p) ((void)(p))
#define NT_ASSERT(e) ((void)0)
#define FIELD_OFFSET(t, f) ((LONG)offsetof(t, f))
#define CONTAINING_RECORD(a, t, f) ((t *)((char *)(a) - offsetof(t, f)))
#define PAGE_SIZE 4096
#define DPFLTR_IHVDRIVER_ID 77
#define DPFLTR_ERROR_LEVEL 0
#define DPFLTR_INFO_LEVEL 3
#define _In_
#define _In_opt_
#define _Out_
#define _Inout_
#define _Inout_opt_
#define _Out_opt_
#define _In_reads_bytes_(n)
#define _In_reads_bytes_opt_(n)
#define _Out_writes_(n)
#define _Out_writes_bytes_(n)
#define _Use_decl_annotations_
#define _Function_class_(x)
#define _Must_inspect_result_

typedef void *PVOID, *HANDLE, **PHANDLE;
typedef unsigned char UCHAR, *PUCHAR, BOOLEAN, *PBOOLEAN;
typedef char CHAR, *PCHAR;
typedef uint16_t USHORT, WCHAR, *PWCHAR, *PWSTR;
typedef const uint16_t *PCWSTR;
typedef uint32_t ULONG, *PULONG, ACCESS_MASK;
typedef int32_t LONG, NTSTATUS, *PLONG;
typedef int64_t LONG64, LONGLONG;
typedef uint64_t ULONG64, ULONGLONG, ULONG_PTR, *PULONG_PTR, SIZE_T;
typedef int64_t LONG_PTR;
typedef union { struct { ULONG LowPart; LONG HighPart; } u; LONGLONG QuadPart; } LARGE_INTEGER, *PLARGE_INTEGER;

#define NT_SUCCESS(s) ((NTSTATUS)(s) >= 0)
#define STATUS_SUCCESS ((NTSTATUS)0)
#define STATUS_INSUFFICIENT_RESOURCES ((NTSTATUS)0xC000009AL)
#define STATUS_BUFFER_TOO_SMALL ((NTSTATUS)0xC0000023L)
#define STATUS_INVALID_DEVICE_REQUEST ((NTSTATUS)0xC0000010L)
#define STATUS_DEVICE_BUSY ((NTSTATUS)0x80000011L)
#define STATUS_OBJECT_NAME_COLLISION ((NTSTATUS)0xC0000035L)
#define STATUS_ACCESS_DENIED ((NTSTATUS)0xC0000022L)

typedef struct _LIST_ENTRY { struct _LIST_ENTRY *Flink, *Blink; } LIST_ENTRY, *PLIST_ENTRY;
typedef struct _UNICODE_STRING { USHORT Length, MaximumLength; PWCHAR Buffer; } UNICODE_STRING, *PUNICODE_STRING;
typedef const UNICODE_STRING *PCUNICODE_STRING;

/* Locks: one pthread mutex behind each spin lock. */
typedef struct { pthread_mutex_t m; } KSPIN_LOCK, *PKSPIN_LOCK;
typedef struct { PKSPIN_LOCK Lock; } KLOCK_QUEUE_HANDLE, *PKLOCK_QUEUE_HANDLE;
typedef struct { pthread_mutex_t m; } KMUTEX;
typedef struct { LONG Count; } IO_REMOVE_LOCK;
typedef struct _EPROCESS *PEPROCESS;
typedef struct _KPROCESS *PKPROCESS;
typedef struct _MDL *PMDL;
typedef struct _FILE_OBJECT { PVOID FsContext, FsContext2; } FILE_OBJECT, *PFILE_OBJECT;
typedef struct _DEVICE_OBJECT *PDEVICE_OBJECT;
typedef struct _DRIVER_OBJECT *PDRIVER_OBJECT;
typedef struct _IRP *PIRP;
typedef struct _IO_STACK_LOCATION *PIO_STACK_LOCATION;
typedef struct _PS_CREATE_NOTIFY_INFO *PPS_CREATE_NOTIFY_INFO;
typedef struct _IMAGE_INFO *PIMAGE_INFO;
typedef VOID (*PCREATE_PROCESS_NOTIFY_ROUTINE_EX)(PEPROCESS, HANDLE, PPS_CREATE_NOTIFY_INFO);
typedef struct { UCHAR Value[6]; } SID_IDENTIFIER_AUTHORITY;
typedef struct { UCHAR AceType, AceFlags; USHORT AceSize; } ACE_HEADER;
typedef struct { UCHAR AclRevision, Sbz1; USHORT AclSize, AceCount, Sbz2; } ACL;
typedef struct { UCHAR Revision, Sbz1; USHORT Control; ULONG Owner, Group, Sacl, Dacl; } SECURITY_DESCRIPTOR_RELATIVE;
typedef struct { int unused; } KAPC_STATE;

void KringShimInitializeSpinLock(PKSPIN_LOCK Lock);
#define KeInitializeSpinLock KringShimInitializeSpinLock
void KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK Lock, PKLOCK_QUEUE_HANDLE Handle);
void KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE Handle);

#define RtlCopyMemory(d, s, n) memcpy((d), (s), (n))
#define RtlZeroMemory(d, n) memset((d), 0, (n))
#define InterlockedIncrement(p) __atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST)
#define InterlockedIncrement64(p) __atomic_add_fetch((p), 1, __ATOMIC_SEQ_CST)
#define InterlockedCompareExchange(p, x, c) \
    __extension__({ LONG _c = (c); __atomic_compare_exchange_n((p), &_c, (x), 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST); _c; })
#define InterlockedExchange(p, v) __atomic_exchange_n((p), (v), __ATOMIC_SEQ_CST)

typedef enum { NonPagedPoolNx = 512, PagedPool = 1 } POOL_TYPE;
typedef enum { NotificationEvent, SynchronizationEvent } EVENT_TYPE;
typedef enum { KernelMode, UserMode } KPROCESSOR_MODE;
typedef enum { MmCached = 1 } MEMORY_CACHING_TYPE;
typedef enum { NormalPagePriority = 16 } MM_PAGE_PRIORITY;
typedef PVOID PSECURITY_DESCRIPTOR;
typedef struct { ULONG Length; HANDLE RootDirectory; PUNICODE_STRING ObjectName; ULONG Attributes;
                 PVOID SecurityDescriptor; PVOID SecurityQualityOfService; } OBJECT_ATTRIBUTES;
#define InitializeObjectAttributes(p, n, a, r, s) \
    do { (p)->Length = sizeof(*(p)); (p)->RootDirectory = (r); (p)->ObjectName = (n); \
         (p)->Attributes = (a); (p)->SecurityDescriptor = (s); (p)->SecurityQualityOfService = NULL; } while (0)
#define OBJ_KERNEL_HANDLE 0x200
#define OBJ_CASE_INSENSITIVE 0x40
#define EVENT_ALL_ACCESS 0x1F0003
#define SYNCHRONIZE 0x100000
#define EXCEPTION_EXECUTE_HANDLER 1
#define __try if (1)
#define __except(x) else
#define GetExceptionCode() STATUS_ACCESS_DENIED
#define RTL_CONSTANT_STRING(s) { sizeof(s) - sizeof((s)[0]), sizeof(s), (PWCHAR)(s) }
typedef struct _OBJECT_TYPE *POBJECT_TYPE;
extern POBJECT_TYPE PsProcessType;
typedef PKPROCESS PRKPROCESS;

PVOID ExAllocatePoolWithTag(POOL_TYPE Type, SIZE_T Bytes, ULONG Tag);
VOID ExFreePoolWithTag(PVOID P, ULONG Tag);
VOID ExFreePool(PVOID P);
NTSTATUS ZwCreateEvent(PHANDLE Handle, ACCESS_MASK Access, OBJECT_ATTRIBUTES *Attributes, EVENT_TYPE Type, BOOLEAN State);
NTSTATUS ZwSetEvent(HANDLE Handle, PLONG Previous);
NTSTATUS ZwClose(HANDLE Handle);
VOID RtlInitUnicodeString(PUNICODE_STRING String, PCWSTR Source);
VOID KeQuerySystemTime(PLARGE_INTEGER Time);
#define IoAcquireRemoveLock(l, t) KringShimAcquireRemoveLock(l)
#define IoReleaseRemoveLock(l, t) KringShimReleaseRemoveLock(l)
NTSTATUS KringShimAcquireRemoveLock(IO_REMOVE_LOCK *Lock);
VOID KringShimReleaseRemoveLock(IO_REMOVE_LOCK *Lock);
PMDL IoAllocateMdl(PVOID Va, ULONG Length, BOOLEAN Secondary, BOOLEAN Charge, PIRP Irp);
VOID IoFreeMdl(PMDL Mdl);
VOID MmBuildMdlForNonPagedPool(PMDL Mdl);
PVOID MmMapLockedPagesSpecifyCache(PMDL Mdl, KPROCESSOR_MODE Mode, MEMORY_CACHING_TYPE Cache, PVOID Base,
                                   ULONG Bug, ULONG Priority);
VOID MmUnmapLockedPages(PVOID Base, PMDL Mdl);
PEPROCESS PsGetCurrentProcess(VOID);
PEPROCESS IoGetCurrentProcess(VOID);
VOID ObfReferenceObject(PVOID Object);
VOID ObfDereferenceObject(PVOID Object);
#define ObReferenceObject ObfReferenceObject
#define ObDereferenceObject ObfDereferenceObject
VOID KeStackAttachProcess(PKPROCESS Process, KAPC_STATE *State);
VOID KeUnstackDetachProcess(KAPC_STATE *State);

#define InitializeListHead(l) ((l)->Flink = (l)->Blink = (l))
#define IoInitializeRemoveLock(l, tag, a, b) ((l)->Count = 0)

#define DbgPrintEx(id, level, ...) KringShimLog(level, __VA_ARGS__)
int KringShimLog(ULONG Level, const char *Format, ...);
#endif
