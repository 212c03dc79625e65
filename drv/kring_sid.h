/*++

Module Name:

    kring_sid.h

Abstract:

    The token fields of a process_start record (include/kring/kring_events.h)
    from the raw bytes the kernel returns: a SID as text ("S-1-5-21-...")
    for user_sid, and the last RID of a mandatory label SID for integrity
    (one routine: a function of the image without a stack frame would have
    no unwind data). The
    input is read only within the bytes given, so a short or malformed SID
    gives an empty field, never a read past the buffer. No libc and no
    kernel calls, so the same file builds into kring.sys and into the host
    unit test (tests/windows/test_win_token_fields.py).

Environment:

    Any.

--*/

#ifndef KRING_SID_H
#define KRING_SID_H

#include <kring/kring.h>

/*
 * Writes the SID at `sid` (`bytes` readable bytes: revision, sub-authority
 * count, 6-byte big-endian identifier authority, count little-endian
 * 32-bit sub-authorities) as text into `dst`, a field of `cap` bytes
 * (cap >= 1), in the form of RtlConvertSidToUnicodeString: "S-1-" then the
 * authority in decimal (in hex as "0x" and 12 digits when it does not fit
 * 32 bits), then "-" and each sub-authority in decimal. The result is
 * NUL-terminated; what does not fit is cut (ASCII, so at any byte) and
 * *truncated is set to 1 (else 0). A SID shorter than its count says, or
 * of another revision than 1, gives "" (returns 0).
 * *last_rid receives the last sub-authority, the integrity level RID when
 * the SID is a mandatory label (0x2000 medium, 0x3000 high); 0 when the
 * SID is malformed or has none.
 * Returns the bytes written before the NUL (at most cap - 1).
 */
uint32_t kring_sid_to_text(char *dst, uint32_t cap, const uint8_t *sid, uint32_t bytes, int *truncated,
                           uint32_t *last_rid);

#endif /* KRING_SID_H */
