/*
 * kring_copy.h - the short-copy helpers of the drain and the user-mode
 * producer. Records are tens to hundreds of bytes: a libc memcpy call per
 * record costs as much as the bytes, so copy 32-, 16- and 8-byte chunks
 * inline, never reading or writing past len.
 */
#ifndef KRING_COPY_H
#define KRING_COPY_H

#include <string.h>

#include <kring/kring.h>

static inline void kring_copy_bytes(uint8_t *dst, const uint8_t *src, uint32_t len)
{
    uint32_t i = 0;

    for (; i + 32 <= len; i += 32) {
        uint64_t w[4];

        memcpy(w, src + i, 32);
        memcpy(dst + i, w, 32);
    }
    for (; i + 8 <= len; i += 8) {
        uint64_t w;

        memcpy(&w, src + i, 8);
        memcpy(dst + i, &w, 8);
    }
    if (i < len)
        memcpy(dst + i, src + i, len - i);
}

/* The same for len >= 16 (a data record, at least its 24-byte event
 * header): a short tail is one 16-byte copy ending at len that overlaps
 * bytes already copied, instead of an 8-byte loop and a call. Copies
 * straight from src to dst (no bounce through a local: GCC kept that in a
 * stack slot inside the drain's loop). */
static inline void kring_copy_record(uint8_t *dst, const uint8_t *src, uint32_t len)
{
    uint32_t i = 0;

    for (; i + 32 <= len; i += 32)
        memcpy(dst + i, src + i, 32);
    if (i + 16 <= len) {
        memcpy(dst + i, src + i, 16);
        i += 16;
    }
    if (i < len)
        memcpy(dst + len - 16, src + len - 16, 16);
}

#endif /* KRING_COPY_H */
