/*++

Module Name:

    kring_sid.c

Abstract:

    SIDs as record fields (kring_sid.h): text for user_sid, the last RID for
    integrity. Bounded, no allocation, no libc.

Environment:

    Any (kernel mode in kring.sys, user mode in the host unit test).

--*/

#include "kring_sid.h"

#define KRING_SID_HEADER 8              /* revision, count, 6-byte authority */

/* Appends `len` bytes of `text` at *at (within cap - 1), noting a cut. */
static void kring_sid_put(char *dst, uint32_t cap, uint32_t *at, const char *text, uint32_t len, int *truncated)
{
    uint32_t i;

    for (i = 0; i < len; i++) {
        if (*at + 1 >= cap) {
            *truncated = 1;
            return;
        }
        dst[(*at)++] = text[i];
    }
}

/* `value` in decimal, or as "0x" and `hex_digits` hex digits when hex_digits != 0. */
static void kring_sid_number(char *dst, uint32_t cap, uint32_t *at, uint64_t value, uint32_t hex_digits,
                             int *truncated)
{
    static const char digits[] = "0123456789abcdef";
    char text[24];
    uint32_t n = 0, i;

    if (hex_digits != 0) {
        text[n++] = '0';
        text[n++] = 'x';
        for (i = 0; i < hex_digits; i++)
            text[n + i] = digits[(value >> (4 * (hex_digits - 1 - i))) & 0xF];
        n += hex_digits;
    } else {
        char rev[24];
        uint32_t r = 0;

        do {
            rev[r++] = (char)('0' + value % 10);
            value /= 10;
        } while (value != 0);
        while (r > 0)
            text[n++] = rev[--r];
    }
    kring_sid_put(dst, cap, at, text, n, truncated);
}

static int kring_sid_valid(const uint8_t *sid, uint32_t bytes)
{
    return sid != 0 && bytes >= KRING_SID_HEADER && sid[0] == 1 &&
           bytes >= KRING_SID_HEADER + 4u * sid[1];
}

static uint32_t kring_sid_rid(const uint8_t *sid, uint32_t i)
{
    const uint8_t *p = sid + KRING_SID_HEADER + 4 * i;

    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

uint32_t kring_sid_to_text(char *dst, uint32_t cap, const uint8_t *sid, uint32_t bytes, int *truncated,
                           uint32_t *last_rid)
{
    uint64_t authority = 0;
    uint32_t at = 0, i;

    *truncated = 0;
    *last_rid = 0;
    dst[0] = 0;
    if (!kring_sid_valid(sid, bytes))
        return 0;
    if (sid[1] != 0)
        *last_rid = kring_sid_rid(sid, sid[1] - 1u);
    for (i = 0; i < 6; i++)
        authority = (authority << 8) | sid[2 + i];
    kring_sid_put(dst, cap, &at, "S-", 2, truncated);
    kring_sid_number(dst, cap, &at, sid[0], 0, truncated);
    kring_sid_put(dst, cap, &at, "-", 1, truncated);
    kring_sid_number(dst, cap, &at, authority, authority > 0xFFFFFFFFu ? 12 : 0, truncated);
    for (i = 0; i < sid[1]; i++) {
        kring_sid_put(dst, cap, &at, "-", 1, truncated);
        kring_sid_number(dst, cap, &at, kring_sid_rid(sid, i), 0, truncated);
    }
    dst[at] = 0;
    return at;
}
