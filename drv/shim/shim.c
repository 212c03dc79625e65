/*
 * The user-mode kernel of the native driver-ring tests: the calls that
 * drv/kring_ring.c, drv/kring_ring_write.c and drv/kring_ring_read.c make,
 * implemented on Linux (see ntifs.h here). The
 * tests drive the driver's ring through ring_api.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "kring_drv.h"
#include "kring_user.h"

KRING_GLOBALS KRingGlobals;
/* kring_access.c's event descriptor: only its address matters here. */
const KRING_EVENT_SD KRingEventSd;
POBJECT_TYPE PsProcessType;

static volatile LONG64 shim_events_set;
static volatile LONG64 shim_log_errors;

void KringShimInitializeSpinLock(PKSPIN_LOCK Lock) { pthread_mutex_init(&Lock->m, NULL); }
void KeAcquireInStackQueuedSpinLock(PKSPIN_LOCK Lock, PKLOCK_QUEUE_HANDLE Handle)
{
    pthread_mutex_lock(&Lock->m);
    Handle->Lock = Lock;
}
/* Set by drv/shim/wake_window.c only: runs before every lock release. */
void (*kring_shim_unlock_hook)(void);

void KeReleaseInStackQueuedSpinLock(PKLOCK_QUEUE_HANDLE Handle)
{
    if (kring_shim_unlock_hook)
        kring_shim_unlock_hook();
    pthread_mutex_unlock(&Handle->Lock->m);
}

int KringShimLog(ULONG Level, const char *Format, ...)
{
    va_list ap;

    if (Level == DPFLTR_ERROR_LEVEL)
        __atomic_add_fetch(&shim_log_errors, 1, __ATOMIC_SEQ_CST);
    if (getenv("KRING_SHIM_LOG")) {
        va_start(ap, Format);
        vfprintf(stderr, Format, ap);
        va_end(ap);
    }
    return 0;
}

/* Pool: page-aligned blocks of exactly the size asked, so that ASan sees
 * any access past the end of the ring. */
PVOID ExAllocatePoolWithTag(POOL_TYPE Type, SIZE_T Bytes, ULONG Tag)
{
    (void)Type; (void)Tag;
    if (Bytes % PAGE_SIZE == 0)
        return aligned_alloc(PAGE_SIZE, Bytes);
    return malloc(Bytes);
}
VOID ExFreePoolWithTag(PVOID P, ULONG Tag) { (void)Tag; free(P); }
VOID ExFreePool(PVOID P) { free(P); }

/* Events as Windows has them: a SynchronizationEvent (the ring's) is
 * auto-reset: a set is remembered until one wait consumes it, and sets
 * before that coalesce. */
struct shim_event {
    pthread_mutex_t m;
    pthread_cond_t cv;
    int signaled, auto_reset;
};

NTSTATUS ZwCreateEvent(PHANDLE Handle, ACCESS_MASK Access, OBJECT_ATTRIBUTES *Attributes, EVENT_TYPE Type,
                       BOOLEAN State)
{
    struct shim_event *e = calloc(1, sizeof *e);
    pthread_condattr_t ca;

    (void)Access; (void)Attributes;
    if (!e)
        return STATUS_INSUFFICIENT_RESOURCES;
    pthread_mutex_init(&e->m, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&e->cv, &ca);
    pthread_condattr_destroy(&ca);
    e->signaled = State;
    e->auto_reset = Type == SynchronizationEvent;
    *Handle = e;
    return STATUS_SUCCESS;
}
NTSTATUS ZwSetEvent(HANDLE Handle, PLONG Previous)
{
    struct shim_event *e = Handle;

    (void)Previous;
    __atomic_add_fetch(&shim_events_set, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_lock(&e->m);
    e->signaled = 1;
    pthread_cond_broadcast(&e->cv);
    pthread_mutex_unlock(&e->m);
    return STATUS_SUCCESS;
}
NTSTATUS ZwClose(HANDLE Handle)
{
    struct shim_event *e = Handle;

    pthread_cond_destroy(&e->cv);
    pthread_mutex_destroy(&e->m);
    free(e);
    return STATUS_SUCCESS;
}

/* WaitForSingleObject on an event: 0 when signaled (an auto-reset event is
 * reset by the wait), 1 on timeout (timeout_ns < 0: none). */
int kring_shim_wait_event(HANDLE Handle, int64_t timeout_ns)
{
    struct shim_event *e = Handle;
    struct timespec until;
    int timed_out = 0;

    clock_gettime(CLOCK_MONOTONIC, &until);
    if (timeout_ns >= 0) {
        until.tv_sec += timeout_ns / 1000000000 + (until.tv_nsec + timeout_ns % 1000000000) / 1000000000;
        until.tv_nsec = (until.tv_nsec + timeout_ns % 1000000000) % 1000000000;
    }
    pthread_mutex_lock(&e->m);
    while (!e->signaled && !timed_out)
        timed_out = (timeout_ns >= 0 ? pthread_cond_timedwait(&e->cv, &e->m, &until)
                                     : pthread_cond_wait(&e->cv, &e->m)) == ETIMEDOUT;
    if (e->signaled) {
        timed_out = 0;
        if (e->auto_reset)
            e->signaled = 0;
    }
    pthread_mutex_unlock(&e->m);
    return timed_out;
}
VOID RtlInitUnicodeString(PUNICODE_STRING String, PCWSTR Source)
{
    size_t n = 0;

    while (Source[n])
        n++;
    String->Buffer = (PWCHAR)Source;
    String->Length = (USHORT)(n * 2);
    String->MaximumLength = (USHORT)(n * 2 + 2);
}
VOID KeQuerySystemTime(PLARGE_INTEGER Time) { Time->QuadPart = 133000000000000000LL; }
NTSTATUS KringShimAcquireRemoveLock(IO_REMOVE_LOCK *Lock)
{
    __atomic_add_fetch(&Lock->Count, 1, __ATOMIC_SEQ_CST);
    return STATUS_SUCCESS;
}
VOID KringShimReleaseRemoveLock(IO_REMOVE_LOCK *Lock) { __atomic_sub_fetch(&Lock->Count, 1, __ATOMIC_SEQ_CST); }
/* The map path is not exercised here (the tests set up the method themselves). */
PMDL IoAllocateMdl(PVOID Va, ULONG Length, BOOLEAN Secondary, BOOLEAN Charge, PIRP Irp)
{
    (void)Va; (void)Length; (void)Secondary; (void)Charge; (void)Irp;
    return NULL;
}
VOID IoFreeMdl(PMDL Mdl) { (void)Mdl; }
VOID MmBuildMdlForNonPagedPool(PMDL Mdl) { (void)Mdl; }
PVOID MmMapLockedPagesSpecifyCache(PMDL Mdl, KPROCESSOR_MODE Mode, MEMORY_CACHING_TYPE Cache, PVOID Base,
                                   ULONG Bug, ULONG Priority)
{
    (void)Mdl; (void)Mode; (void)Cache; (void)Base; (void)Bug; (void)Priority;
    return NULL;
}
VOID MmUnmapLockedPages(PVOID Base, PMDL Mdl) { (void)Base; (void)Mdl; }
PEPROCESS PsGetCurrentProcess(VOID) { return NULL; }
PEPROCESS IoGetCurrentProcess(VOID) { return NULL; }
VOID ObfReferenceObject(PVOID Object) { (void)Object; }
VOID ObfDereferenceObject(PVOID Object) { (void)Object; }
VOID KeStackAttachProcess(PKPROCESS Process, KAPC_STATE *State) { (void)Process; (void)State; }
VOID KeUnstackDetachProcess(KAPC_STATE *State) { (void)State; }

/* The number of ZwSetEvent calls so far (the tests' wake count). */
int64_t kring_shim_events_set(void) { return shim_events_set; }
