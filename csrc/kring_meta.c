/*
 * kring_meta.c - messages, the checks on a ring's description and schema
 * that every side runs before it trusts a producer page, the description of
 * a mapping that every attach starts from, and shared-memory rings created
 * and removed without attaching (through the platform layer).
 */
#if !defined(_WIN32) && !defined(_POSIX_C_SOURCE)
#define _POSIX_C_SOURCE 200809L     /* sigsetjmp (kring_guard.h) */
#endif
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_guard.h"
#include "kring_plat.h"

const char *kring_strerror(int code)
{
    switch (code) {
    case KRING_OK: return "success";
    case KRING_E_INVAL: return "invalid argument";
    case KRING_E_NOMEM: return "out of memory";
    case KRING_E_OS: return "system call failed";
    case KRING_E_NOTFOUND: return "no such ring";
    case KRING_E_PERM: return "permission denied";
    case KRING_E_VERSION: return "not a pykring ring, or an incompatible ABI version";
    case KRING_E_CORRUPT: return "ring memory violates the protocol";
    case KRING_E_CLOSED: return "the producer closed the ring and it is drained";
    case KRING_E_TIMEOUT: return "timed out";
    case KRING_E_INTR: return "interrupted by a signal";
    case KRING_E_BUSY: return "the ring is in use by another consumer or producer";
    case KRING_E_EXISTS: return "a ring of that name exists already";
    case KRING_E_BROKEN: return "the producer stopped writing: it read a nonsense consumer position";
    case KRING_E_TOOBIG: return "record does not fit in the ring";
    default: return "unknown error";
    }
}

const char *kring_corrupt_reason(int reason)
{
    switch (reason) {
    case KRING_BAD_PRODUCER_POS:
        return "producer_pos is unaligned, behind the consumer, or more than the capacity ahead";
    case KRING_BAD_CONSUMER_POS:
        return "consumer_pos is unaligned, ahead of producer_pos, or more than the capacity behind";
    case KRING_BAD_LENGTH: return "record length runs past producer_pos";
    case KRING_BAD_STRADDLE: return "record crosses the end of the data area";
    case KRING_BAD_SHORT: return "record payload shorter than the 24-byte event header";
    case KRING_BAD_TYPE: return "record type id is not in the ring's schema";
    case KRING_BAD_SIZE: return "record length outside the bounds of its type";
    case KRING_BAD_META: return "producer page does not describe a valid ring";
    case KRING_BAD_TRUNCATED:
        return "the ring file was truncated under the mapping (someone shrank or replaced it)";
    default: return "no problem recorded";
    }
}

static int has_nul(const char *s, size_t n)
{
    return memchr(s, 0, n) != NULL;
}

/* The first problem of a producer page, or NULL when it is valid. */
const char *kring_meta_problem(const struct kring_producer_page *m, uint64_t file_size)
{
    uint32_t t, f, seen = 0;
    uint64_t cap = m->capacity;

    if (m->magic != KRING_MAGIC)
        return "bad magic: not a pykring ring";
    if (m->abi_major != KRING_ABI_MAJOR)
        return "ABI major version differs from this library's";
    if (m->page_size != KRING_PAGE_SIZE)
        return "page_size is not 4096";
    if (m->data_offset != KRING_DATA_OFFSET)
        return "data_offset is not 8192";
    if (cap < KRING_MIN_CAPACITY || cap > KRING_MAX_CAPACITY || (cap & (cap - 1)) != 0)
        return "capacity is not a power of two from 4 KiB to 2 GiB";
    if (file_size && file_size < KRING_DATA_OFFSET + cap)
        return "capacity is larger than the ring file";
    if (m->ntypes == 0 || m->ntypes > KRING_MAX_TYPES)
        return "ntypes is 0 or more than 16";
    if (m->nfields > KRING_MAX_FIELDS)
        return m->abi_minor > KRING_ABI_MINOR
            ? "nfields is more than 64: the ring was made for a newer ABI minor than this library reads"
            : "nfields is more than 64";
    for (t = 0; t < m->ntypes; t++) {
        const struct kring_type *ty = &m->types[t];

        if (ty->id == 0 || ty->id >= KRING_MAX_TYPES || (seen & (1u << ty->id)) != 0)
            return "a type id is 0, more than 15, or repeated";
        seen |= 1u << ty->id;
        if (!has_nul(ty->name, sizeof ty->name) || ty->name[0] == 0)
            return "a type name is empty or not NUL-terminated";
        for (f = 0; f < t; f++)
            if (strcmp(m->types[f].name, ty->name) == 0)
                return "two types have the same name";
        if (ty->size < KRING_EVENT_HEADER_SIZE || ty->size > KRING_LEN_MASK ||
            ty->min_size < KRING_EVENT_HEADER_SIZE || ty->min_size > ty->size)
            return "a type's size or min_size is out of bounds";
        if (KRING_RECORD_SPAN(ty->size) > cap / 2)
            return "a type's records are larger than half the capacity";
        if ((uint32_t)ty->first_field + ty->nfields > m->nfields)
            return "a type's fields run past nfields";
        for (f = ty->first_field; f < (uint32_t)ty->first_field + ty->nfields; f++) {
            const struct kring_field *fd = &m->fields[f];

            if (!has_nul(fd->name, sizeof fd->name) || fd->name[0] == 0 ||
                !has_nul(fd->format, sizeof fd->format) || fd->format[0] == 0)
                return "a field name or format is empty or not NUL-terminated";
            if (fd->offset < KRING_EVENT_HEADER_SIZE || fd->offset >= ty->size)
                return "a field offset lies outside its record";
        }
    }
    return NULL;
}

int kring_meta_check(const struct kring_producer_page *m, uint64_t file_size)
{
    if (m->magic != KRING_MAGIC || m->abi_major != KRING_ABI_MAJOR)
        return KRING_E_VERSION;
    /* A newer minor only gives meaning to reserved bytes; a schema larger
     * than this library's fields[] is one such meaning it cannot read. */
    if (m->nfields > KRING_MAX_FIELDS && m->abi_minor > KRING_ABI_MINOR)
        return KRING_E_VERSION;
    return kring_meta_problem(m, file_size) ? KRING_E_CORRUPT : KRING_OK;
}

void kring_map_init(struct kring_map *m, struct kring_consumer_page *cons,
                    struct kring_producer_page *prod, uint8_t *data, uint64_t capacity,
                    int double_mapped, int has_meta)
{
    memset(m, 0, sizeof *m);
    m->cons = cons;
    m->prod = prod;
    m->data = data;
    m->capacity = capacity;
    m->mask = capacity ? capacity - 1 : 0;
    m->double_mapped = double_mapped != 0;
    m->has_meta = has_meta != 0;
    m->wait_kind = KRING_WAIT_NONE;
    m->fd = -1;
    m->epoll_fd = -1;
    m->wake_fd = -1;
}

int kring_load_types(const struct kring_map *m, uint32_t *size, uint32_t *min_size)
{
    const struct kring_producer_page *meta = m->prod;
    uint32_t t, ntypes = meta->ntypes;

    /* The page is shared and may have changed since it was checked: copy
     * each bound once and check the copy. */
    memset(size, 0, KRING_MAX_TYPES * sizeof *size);
    memset(min_size, 0, KRING_MAX_TYPES * sizeof *min_size);
    if (ntypes == 0 || ntypes > KRING_MAX_TYPES)
        return KRING_E_CORRUPT;
    for (t = 0; t < ntypes; t++) {
        const uint16_t id = meta->types[t].id;
        const uint32_t sz = meta->types[t].size;
        const uint32_t mn = meta->types[t].min_size;

        if (id == 0 || id >= KRING_MAX_TYPES || size[id] != 0 ||
            sz < KRING_EVENT_HEADER_SIZE || sz > KRING_LEN_MASK ||
            mn < KRING_EVENT_HEADER_SIZE || mn > sz || KRING_RECORD_SPAN(sz) > m->capacity / 2)
            return KRING_E_CORRUPT;
        size[id] = sz;
        min_size[id] = mn;
    }
    return KRING_OK;
}

int kring_meta_initial(struct kring_producer_page *page, const struct kring_producer_page *tmpl)
{
    int rc = kring_meta_check(tmpl, 0);

    if (rc != KRING_OK)
        return rc == KRING_E_VERSION ? KRING_E_INVAL : rc;
    memcpy(page, tmpl, sizeof *page);
    page->producer_pos = 0;
    page->wake_seq = 0;
    page->producer_waiting = 0;
    page->flags = 0;
    page->producer_pid = 0;
    page->written = 0;
    page->dropped = 0;
    return KRING_OK;
}

int kring_shm_create(const char *path, const struct kring_producer_page *meta_template, int mode)
{
    return kring_plat_shm_create(path, meta_template, mode);
}

int kring_shm_unlink(const char *path)
{
    return kring_plat_shm_unlink(path);
}

int kring_copy_meta(struct kring_map *m, struct kring_producer_page *out)
{
    int rc = KRING_OK;

    if (!m->prod || !m->has_meta)
        return KRING_E_INVAL;
    if (m->faulted)
        return KRING_E_CORRUPT;
    KRING_GUARDED(m, (m->faulted = 1, rc = KRING_E_CORRUPT), memcpy(out, m->prod, sizeof *out));
    return rc;
}

void kring_interrupt(struct kring_map *m)
{
    /* Pairs with the acquire loads of interrupted in the waits. */
    kring_store_release_u32(&m->interrupted, 1);
    kring_fence_full();
    kring_plat_interrupt(m);
}
