/*++

Module Name:

    kring_record.h

Abstract:

    What the two event sources share while they build a record: the record
    buffer (zeroed nonpaged pool; a failed allocation counts as an event
    lost for want of memory) and the length in characters of a
    UNICODE_STRING that may be NULL or have no buffer. Included by
    kring_process_notify.c and kring_image_notify.c only.

Environment:

    Kernel mode.

--*/

#ifndef KRING_RECORD_H
#define KRING_RECORD_H

#include "kring_drv.h"

static __inline PVOID
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

static __inline ULONG
KRingUnicodeChars(
    _In_opt_ PCUNICODE_STRING String
    )
{
    return (String != NULL && String->Buffer != NULL) ? String->Length / sizeof(WCHAR) : 0;
}

#endif /* KRING_RECORD_H */
