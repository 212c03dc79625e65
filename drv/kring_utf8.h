/*++

Module Name:

    kring_utf8.h

Abstract:

    Bounded UTF-16 to UTF-8 conversion for the strings of kernel event
    records (include/kring/kring_events.h): image paths, command lines, short names.
    No libc and no kernel calls, so the same file builds into kring.sys and
    into the host unit test (tests/windows/test_win_utf8.py).

Environment:

    Any.

--*/

#ifndef KRING_UTF8_H
#define KRING_UTF8_H

#include <kring/kring.h>

/*
 * Convert `n` UTF-16 units at `src` to UTF-8 at `dst`, a field of `cap`
 * bytes (cap >= 1). The result is NUL-terminated and never ends inside a
 * multi-byte sequence; what does not fit is cut and *truncated is set to 1
 * (else 0). An unpaired surrogate and U+0000 become U+FFFD, so every
 * output is valid UTF-8 with no NUL before its end (a NUL inside a
 * UNICODE_STRING would otherwise hide the rest of a command line).
 * Returns the bytes written before the NUL (at most cap - 1).
 */
uint32_t kring_utf16_to_utf8(char *dst, uint32_t cap, const uint16_t *src, uint32_t n,
                             int *truncated);

/*
 * The last component of the UTF-16 path `src` (`n` units, components
 * separated by '\' or '/'), converted as above into `dst` of `cap` bytes:
 * the short name of an executable. Returns the bytes written before the NUL.
 */
uint32_t kring_utf16_basename(char *dst, uint32_t cap, const uint16_t *src, uint32_t n);

#endif /* KRING_UTF8_H */
