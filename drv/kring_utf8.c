/*++

Module Name:

    kring_utf8.c

Abstract:

    Bounded UTF-16 to UTF-8 conversion (see kring_utf8.h).

Environment:

    Any: no libc, no kernel calls. Callable at any IRQL.

--*/

#include "kring_utf8.h"

#define REPLACEMENT_CHAR 0xFFFDu

uint32_t kring_utf16_to_utf8(char *dst, uint32_t cap, const uint16_t *src, uint32_t n,
                             int *truncated)
{
    uint32_t in = 0, out = 0;
    uint8_t *const o = (uint8_t *)dst;

    *truncated = 0;
    if (cap == 0)
        return 0;
    while (in < n) {
        uint32_t cp = src[in], used = 1, bytes;

        if (cp >= 0xD800 && cp <= 0xDBFF) {
            if (in + 1 < n && src[in + 1] >= 0xDC00 && src[in + 1] <= 0xDFFF) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (src[in + 1] - 0xDC00u);
                used = 2;
            } else {
                cp = REPLACEMENT_CHAR;          /* high surrogate without its pair */
            }
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            cp = REPLACEMENT_CHAR;              /* low surrogate on its own */
        } else if (cp == 0) {
            cp = REPLACEMENT_CHAR;              /* embedded NUL */
        }
        bytes = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
        if (out + bytes > cap - 1) {
            *truncated = 1;                     /* the whole character, or nothing */
            break;
        }
        switch (bytes) {
        case 1:
            o[out] = (uint8_t)cp;
            break;
        case 2:
            o[out] = (uint8_t)(0xC0 | (cp >> 6));
            o[out + 1] = (uint8_t)(0x80 | (cp & 0x3F));
            break;
        case 3:
            o[out] = (uint8_t)(0xE0 | (cp >> 12));
            o[out + 1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            o[out + 2] = (uint8_t)(0x80 | (cp & 0x3F));
            break;
        default:
            o[out] = (uint8_t)(0xF0 | (cp >> 18));
            o[out + 1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
            o[out + 2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
            o[out + 3] = (uint8_t)(0x80 | (cp & 0x3F));
            break;
        }
        out += bytes;
        in += used;
    }
    o[out] = 0;
    return out;
}

uint32_t kring_utf16_basename(char *dst, uint32_t cap, const uint16_t *src, uint32_t n)
{
    uint32_t start = 0, i;
    int truncated;

    for (i = 0; i < n; i++)
        if (src[i] == '\\' || src[i] == '/')
            start = i + 1;
    return kring_utf16_to_utf8(dst, cap, src + start, n - start, &truncated);
}
