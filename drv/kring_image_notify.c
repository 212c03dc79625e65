/*++

Module Name:

    kring_image_notify.c

Abstract:

    The load-image callback of kring.sys (KRingLoadImageNotify, registered
    by kring_notify.c with PsSetLoadImageNotifyRoutine) and the image_load
    record it builds: the path as bounded UTF-8 with a truncation flag, and
    no kernel address ever (a kernel-mode image's base is reported as 0).
    Each record goes to every attached ring that asked for image events
    (KRingFanOut, kring_rings.c).

Environment:

    Kernel mode, PASSIVE_LEVEL, in the thread that maps the image.

--*/

#include "kring_drv.h"
#include "kring_record.h"

VOID
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

VOID
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
