/*++

Module Name:

    kring_drv.h

Abstract:

    Kernel-only declarations of kring.sys: the per-ring state, the driver's
    one global structure, and the routines its .c files share.

      kring_main.c    DriverEntry, DriverUnload, the dispatch routines (device
                      control only routes)
      kring_ioctl.c   one handler per IOCTL code: its checks and its work
      kring_notify.c  registering the process and image callbacks (test
                      builds: the test knobs, KRingInject)
      kring_process_notify.c  the process callback: process_start and
                      process_exit records, unmap at process exit
      kring_image_notify.c    the load-image callback: image_load records
                      (both build their records with kring_record.h)
      kring_rings.c   the registry of rings: the list, attach, detach,
                      fan-out, unmap at process exit
      kring_ring.c    one ring's memory: create, map into the client, unmap, free
      kring_ring_write.c      one ring's producer: reserve, copy, publish,
                      wake (consumer_pos read once and range-checked); the clock
      kring_ring_read.c       one ring's copy-out READ and its STATS counters
      kring_access.c  who may open the device and reach the events (the
                      descriptors, the access check, the events' directory,
                      the event handle given to a client)
      kring_utf8.c    bounded UTF-16 to UTF-8
      kring_sid.c     a SID as record text, a label's RID

    Calls go one way, down this list: kring_main.c calls the files below
    it, kring_ioctl.c the registry, kring_notify.c registers the two
    callbacks, which call the registry (fan-out, unmap at process exit),
    the registry calls the three kring_ring*.c files (which do not call
    each other); nothing calls back up.

    Locks, in the order they may be taken:
      ManageLock (KMUTEX, PASSIVE_LEVEL)      detach, cleanup, unmap at exit, unload
      RingListLock (queued spin lock)         the list of rings, FsContext, the
                                              ring count and bytes (attach reserves
                                              under it and builds the ring unlocked)
      KRING_RING.Lock (queued spin lock)      one ring's producer state and memory
    and two remove locks as rundown protection: CallbackLock (callbacks and
    test injections in flight) and KRING_RING.RemoveLock (writers of a ring).
    Nothing waits on a remove lock while it holds a spin lock, and no writer
    takes ManageLock while it holds a ring's remove lock (the exit callback
    takes it after its writes), so detach can wait for writers under it.

Environment:

    Kernel mode.

--*/

#ifndef KRING_DRV_H
#define KRING_DRV_H

#include <ntifs.h>

#include "kring_compat.h"
#include <kring/kring.h>
#include <kring/kring_atomic.h>
#include <kring/kring_events.h>
#include <kring/kring_ioctl.h>
#include "kring_utf8.h"
#include "kring_sid.h"

#define KRING_POOL_TAG 'gnRK'           /* "KRng" in pool dumps */

/* Debug output: DbgPrintEx with the IHV driver component id, so that the
 * default filter of Windows shows errors and a debugger/DebugView shows the
 * rest (DbgPrint alone is filtered out since Vista). */
#define KRING_LOG(...) DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_INFO_LEVEL, "kring: " __VA_ARGS__)
#define KRING_ERR(...) DbgPrintEx(DPFLTR_IHVDRIVER_ID, DPFLTR_ERROR_LEVEL, "kring: " __VA_ARGS__)

/* One consumer's ring: created by ATTACH on a handle, freed by DETACH or
 * IRP_MJ_CLEANUP of that handle (or DriverUnload). */
typedef struct _KRING_RING {
    LIST_ENTRY Link;                    /* in KRING_GLOBALS.Rings (RingListLock) */
    IO_REMOVE_LOCK RemoveLock;          /* held by each writer while it uses the ring;
                                           detach waits for them to finish */
    KSPIN_LOCK Lock;                    /* one writer at a time; held only for the copy */
    volatile LONG Reading;              /* 1 while an IOCTL_KRING_READ copies out */

    /* Ring memory: nonpaged pool, zeroed, page-aligned. */
    struct kring_consumer_page *Cons;   /* page 0; the consumer writes it (METHOD_MAP):
                                           read once per write, range-checked */
    struct kring_producer_page *Prod;   /* page 1: description, schema, positions */
    UCHAR *Data;                        /* data area, right after Prod */
    PVOID ConsAlloc;                    /* pool blocks to free (Cons/Prod are inside) */
    PVOID ProdAlloc;
    SIZE_T Bytes;                       /* bytes charged to KRING_GLOBALS.RingBytes */

    /* METHOD_MAP: the user views. */
    PMDL ConsMdl;                       /* describes Cons (one page) */
    PMDL ProdMdl;                       /* describes Prod + Data */
    PVOID UserCons;                     /* user address of Cons (RW), NULL when unmapped */
    PVOID UserProd;                     /* user address of Prod + Data (RO), NULL when unmapped */
    PEPROCESS Owner;                    /* process the views live in (referenced) */

    /* Wakeups: an auto-reset event named Ring-<Id> in the driver's unnamed
     * event directory (KRingGlobals.EventDirectory); only SYSTEM may set it,
     * and its client gets a SYNCHRONIZE-only handle in the ATTACH reply. */
    HANDLE EventHandle;                 /* kernel handle (OBJ_KERNEL_HANDLE) */

    /* The producer's private state (PROTOCOL.md 7): never read back from
     * the shared pages. Guarded by Lock. */
    ULONG64 Capacity;                   /* data bytes, power of two */
    ULONG64 Mask;                       /* Capacity - 1 */
    ULONG64 Pos;                        /* producer position */
    ULONG64 Seq;                        /* next sequence number */
    ULONG64 Written;                    /* records written */
    ULONG64 Dropped;                    /* records dropped (full or broken) */
    ULONG64 Wakeups;                    /* times the event was set */
    ULONG64 LastConsumerPos;            /* consumer_pos as last read (STATS) */
    ULONG64 CopyPos;                    /* METHOD_COPY: position up to which READ handed
                                           records out (= consumer_pos unless tampered) */
    BOOLEAN Broken;                     /* consumer_pos was nonsense: write nothing more */

    ULONG Method;                       /* KRING_METHOD_* */
    ULONG Events;                       /* KRING_EVENTS_* it receives */
    ULONG Id;                           /* driver-wide ring number */
    PFILE_OBJECT FileObject;            /* the handle that owns it */
} KRING_RING, *PKRING_RING;

/* The driver's global state. */
typedef struct _KRING_GLOBALS {
    PDEVICE_OBJECT DeviceObject;        /* \Device\KRing */
    BOOLEAN SymbolicLink;               /* \DosDevices\KRing exists */

    KMUTEX ManageLock;                  /* serialises detach, unmap at process exit, unload */
    KSPIN_LOCK RingListLock;            /* guards Rings, RingCount, RingBytes and the
                                           FsContext of our file objects */
    LIST_ENTRY Rings;                   /* KRING_RING.Link */
    ULONG RingCount;                    /* rings in the list or being attached
                                           (<= KRING_MAX_CONSUMERS) */
    SIZE_T RingBytes;                   /* their memory (<= KRING_MAX_TOTAL_BYTES) */
    volatile LONG NextRingId;           /* numbers rings and event names */
    HANDLE EventDirectory;              /* kernel handle to the unnamed object directory
                                           the rings' events are created in (DriverEntry
                                           to DriverUnload; KRingCreateEventDirectory) */

    IO_REMOVE_LOCK CallbackLock;        /* callbacks and injections in flight:
                                           DriverUnload waits for them */
    ULONG ProcessNotify;                /* 0 none, 1 ...Ex registered, 2 ...Ex2 registered */
    KRING_SET_PROCESS_NOTIFY_EX2 SetProcessNotifyEx2; /* resolved at load, or NULL */
    BOOLEAN ImageNotify;                /* PsSetLoadImageNotifyRoutine registered (may
                                           be FALSE in a running driver: degraded load) */
    KRING_QUERY_SYSTEM_TIME_PRECISE QuerySystemTimePrecise; /* resolved at load, or NULL */

    volatile LONG64 ProcessEvents;      /* process callbacks seen */
    volatile LONG64 ImageEvents;        /* image callbacks seen */
    volatile LONG64 LostNoMemory;       /* events lost: no record buffer */
    volatile LONG LeakedRings;          /* rings found still mapped at free: leaked,
                                           never freed (KRingRingFree) */
#if defined(KRING_TEST_BUILD)
    BOOLEAN TestFailAttachLate;         /* test knob: ATTACH fails after the caller got its
                                           event handle, to exercise the unwind */
#endif
} KRING_GLOBALS;

extern KRING_GLOBALS KRingGlobals;     /* defined in kring_rings.c */

/* A READ buffer of KRING_READ_MIN_BYTES holds any record (or the padding
 * before one, which is shorter). */
KRING_STATIC_ASSERT(KRING_RECORD_SPAN(sizeof(struct kring_process_start)) <= KRING_READ_MIN_BYTES, read_min);
KRING_STATIC_ASSERT(KRING_RECORD_SPAN(sizeof(struct kring_image_load)) <= KRING_READ_MIN_BYTES, read_min_il);

/* kring_ring.c */
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingRingCreate(_In_ const struct kring_attach_in *Request, _Out_ PKRING_RING *Ring);

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingRingMapUser(_Inout_ PKRING_RING Ring);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingRingUnmapUser(_Inout_ PKRING_RING Ring);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingRingFree(_In_ PKRING_RING Ring);

/* kring_ring_write.c */
_IRQL_requires_max_(DISPATCH_LEVEL)
BOOLEAN KRingRingWrite(_Inout_ PKRING_RING Ring, _In_ USHORT Type, _In_ USHORT EventFlags,
                       _In_ ULONG64 TimeNs, _In_reads_bytes_opt_(Length) const UCHAR *Record,
                       _In_ ULONG Length);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingRingSignal(_In_ PKRING_RING Ring);

_IRQL_requires_max_(DISPATCH_LEVEL)
ULONG64 KRingTimeNs(VOID);

/* kring_ring_read.c */
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingRingRead(_Inout_ PKRING_RING Ring, _In_ ULONG Flags,
                       _Out_writes_bytes_(OutputLength) UCHAR *Output, _In_ ULONG OutputLength,
                       _Out_ PULONG Returned);

_IRQL_requires_max_(DISPATCH_LEVEL)
VOID KRingRingStats(_In_ PKRING_RING Ring, _Out_ struct kring_stats_out *Stats);

/* kring_access.c */

/* A SID with up to two sub-authorities (the layout of SID). */
typedef struct _KRING_SID {
    UCHAR Revision;
    UCHAR SubAuthorityCount;
    SID_IDENTIFIER_AUTHORITY IdentifierAuthority;
    ULONG SubAuthority[2];
} KRING_SID;

extern const KRING_SID KRingSidLocalSystem;        /* S-1-5-18 */
extern const KRING_SID KRingSidAdministrators;     /* S-1-5-32-544 */

/* Security descriptors as typed structures: self-relative descriptors
 * (SECURITY_DESCRIPTOR_RELATIVE, offsets instead of pointers) whose SIDs,
 * ACLs and ACEs have their exact sizes, so the layout is the one the
 * kernel parses, aligned as a SECURITY_DESCRIPTOR, with no byte buffer
 * cast to a descriptor. */
typedef struct _KRING_SID1 {            /* a SID with one sub-authority */
    UCHAR Revision;
    UCHAR SubAuthorityCount;
    SID_IDENTIFIER_AUTHORITY IdentifierAuthority;
    ULONG SubAuthority[1];
} KRING_SID1;

typedef struct _KRING_SID2 {            /* a SID with two sub-authorities */
    UCHAR Revision;
    UCHAR SubAuthorityCount;
    SID_IDENTIFIER_AUTHORITY IdentifierAuthority;
    ULONG SubAuthority[2];
} KRING_SID2;

typedef struct _KRING_ACE_SID1 {        /* ACCESS_ALLOWED_ACE or SYSTEM_MANDATORY_LABEL_ACE */
    ACE_HEADER Header;
    ACCESS_MASK Mask;
    KRING_SID1 Sid;
} KRING_ACE_SID1;

typedef struct _KRING_ACE_SID2 {
    ACE_HEADER Header;
    ACCESS_MASK Mask;
    KRING_SID2 Sid;
} KRING_ACE_SID2;

/* The device's descriptor: D:P(A;;GA;;;SY)(A;;GA;;;BA)S:(ML;;NWNRNX;;;HI). */
typedef struct DECLSPEC_ALIGN(8) _KRING_DEVICE_SD {
    SECURITY_DESCRIPTOR_RELATIVE Header;
    struct {
        ACL Acl;
        KRING_ACE_SID1 Label;           /* mandatory label High, no write/read/execute up */
    } Sacl;
    struct {
        ACL Acl;
        KRING_ACE_SID1 System;          /* SYSTEM: all access */
        KRING_ACE_SID2 Administrators;  /* Administrators: all access */
    } Dacl;
} KRING_DEVICE_SD;

/* A ring's event: O:SYD:P(A;;EVENT_ALL_ACCESS;;;SY)(A;;SYNCHRONIZE;;;BA).
 * The explicit owner (SYSTEM) keeps the creator from being granted
 * READ_CONTROL and WRITE_DAC as owner. */
typedef struct DECLSPEC_ALIGN(8) _KRING_EVENT_SD {
    SECURITY_DESCRIPTOR_RELATIVE Header;
    KRING_SID1 Owner;
    struct {
        ACL Acl;
        KRING_ACE_SID1 System;          /* SYSTEM: EVENT_ALL_ACCESS */
        KRING_ACE_SID2 Administrators;  /* Administrators: SYNCHRONIZE only */
    } Dacl;
} KRING_EVENT_SD;

/* The events' directory: O:SYD:P(A;;DIRECTORY_ALL_ACCESS;;;SY). Only
 * SYSTEM may create objects in it, look names up or list it. */
typedef struct DECLSPEC_ALIGN(8) _KRING_DIRECTORY_SD {
    SECURITY_DESCRIPTOR_RELATIVE Header;
    KRING_SID1 Owner;
    struct {
        ACL Acl;
        KRING_ACE_SID1 System;          /* SYSTEM: DIRECTORY_ALL_ACCESS */
    } Dacl;
} KRING_DIRECTORY_SD;

extern const KRING_DEVICE_SD KRingDeviceSd;
extern const KRING_EVENT_SD KRingEventSd;
extern const KRING_DIRECTORY_SD KRingDirectorySd;

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingCreateEventDirectory(_Out_ PHANDLE Directory);

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingGrantEvent(_In_ HANDLE Event, _In_ PEPROCESS Process, _Out_ PHANDLE UserHandle);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingRevokeEvent(_In_ PEPROCESS Process, _In_ HANDLE UserHandle);

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingSecureDevice(_In_ PDEVICE_OBJECT DeviceObject);

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingQueryToken(_In_ HANDLE Token, _In_ ULONG Class, _Out_ PVOID *Buffer);  /* a TOKEN_INFORMATION_CLASS */

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingCheckCaller(_In_ PIRP Irp, _In_ PIO_STACK_LOCATION IrpSp);

/* kring_rings.c */
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingAttach(_Inout_ PFILE_OBJECT FileObject, _In_ PEPROCESS Requestor,
                     _In_ const struct kring_attach_in *Request, _Out_ struct kring_attach_out *Reply);

_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingDetachFile(_Inout_ PFILE_OBJECT FileObject);

_IRQL_requires_max_(PASSIVE_LEVEL)
ULONG KRingDetachAll(VOID);

_IRQL_requires_max_(DISPATCH_LEVEL)
PKRING_RING KRingReferenceRing(_In_ PFILE_OBJECT FileObject);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingFanOut(_In_ ULONG EventKind, _In_ USHORT Type, _In_ USHORT EventFlags,
                 _In_reads_bytes_opt_(Length) const UCHAR *Record, _In_ ULONG Length);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingUnmapRingsOf(_In_ PEPROCESS Process);

/* kring_ioctl.c: one handler per IOCTL code (all METHOD_BUFFERED). It checks
 * the code's buffers before it reads them and does the work; it sets
 * *Information, the bytes to return, on success only.
 * KRingDispatchDeviceControl (kring_main.c) routes and completes. */
typedef
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS
KRING_IOCTL_HANDLER(
    _In_ PIRP Irp,
    _In_ PIO_STACK_LOCATION IrpSp,
    _Out_ PULONG_PTR Information
    );

KRING_IOCTL_HANDLER KRingIoctlAttach;           /* IOCTL_KRING_ATTACH */
KRING_IOCTL_HANDLER KRingIoctlDetach;           /* IOCTL_KRING_DETACH */
KRING_IOCTL_HANDLER KRingIoctlStats;            /* IOCTL_KRING_STATS */
KRING_IOCTL_HANDLER KRingIoctlRead;             /* IOCTL_KRING_READ */
#if defined(KRING_TEST_BUILD)
KRING_IOCTL_HANDLER KRingIoctlTestInject;       /* IOCTL_KRING_TEST_INJECT */
KRING_IOCTL_HANDLER KRingIoctlTestPoke;         /* IOCTL_KRING_TEST_POKE */
#endif

/* kring_notify.c */
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingNotifyRegister(_In_ PCUNICODE_STRING RegistryPath);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingNotifyUnregister(VOID);

#if defined(KRING_TEST_BUILD)
_IRQL_requires_max_(PASSIVE_LEVEL)
NTSTATUS KRingInject(_In_ const struct kring_inject_in *Request, _In_ PEPROCESS Requestor, _Out_ PULONG Count);
#endif

/* kring_process_notify.c: the process callback (registered by kring_notify.c)
 * and its record builders (also called by KRingInject). */
_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingProcessNotify(_Inout_ PEPROCESS Process, _In_ HANDLE ProcessId,
                        _Inout_opt_ PPS_CREATE_NOTIFY_INFO CreateInfo);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingEmitProcessStart(_In_ ULONG Pid, _In_ ULONG ParentPid, _In_ ULONG CreatorPid, _In_ ULONG CreatorTid,
                           _In_ ULONG SessionId, _In_opt_ PEPROCESS Process,
                           _In_opt_ PCUNICODE_STRING ImageFileName, _In_opt_ PCUNICODE_STRING CommandLine);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingEmitProcessExit(_In_ ULONG Pid, _In_ NTSTATUS ExitStatus, _In_opt_ PCUNICODE_STRING ImageFileName);

/* kring_image_notify.c: the load-image callback (registered by kring_notify.c)
 * and its record builder (also called by KRingInject). */
_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingLoadImageNotify(_In_opt_ PUNICODE_STRING FullImageName, _In_ HANDLE ProcessId,
                          _In_ PIMAGE_INFO ImageInfo);

_IRQL_requires_max_(PASSIVE_LEVEL)
VOID KRingEmitImageLoad(_In_ ULONG Pid, _In_ ULONG64 Base, _In_ ULONG64 Size, _In_ BOOLEAN KernelImage,
                        _In_opt_ PCUNICODE_STRING FullImageName);

#endif /* KRING_DRV_H */
