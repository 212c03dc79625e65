/*
 * kring_events.c - the schema of the kernel event records, filled into a
 * producer page. Built into the Windows driver and the Python extension;
 * no libc, so it compiles for the kernel as is.
 */
#include <kring/kring_events.h>

struct field_desc {
    const char *name;
    const char *format;
    uint32_t offset;
};

#define F(t, f, fmt) { #f, fmt, (uint32_t)offsetof(struct t, f) }

/* The fields both process_start layouts share: everything before the token
 * fields (the Linux records' packed tail starts where those would be). */
#define PROCESS_START_COMMON_FIELDS \
    F(kring_process_start, pid, "<u4"), \
    F(kring_process_start, ppid, "<u4"), \
    F(kring_process_start, creator_pid, "<u4"), \
    F(kring_process_start, creator_tid, "<u4"), \
    F(kring_process_start, uid, "<u4"), \
    F(kring_process_start, session_id, "<u4"), \
    F(kring_process_start, detail, "<u4"), \
    F(kring_process_start, path_len, "<u2"), \
    F(kring_process_start, cmdline_len, "<u2"), \
    F(kring_process_start, comm, "|S16"), \
    F(kring_process_start, euid, "<u4"), \
    F(kring_process_start, gid, "<u4"), \
    F(kring_process_start, egid, "<u4"), \
    F(kring_process_start, auid, "<u4"), \
    F(kring_process_start, audit_session, "<u4"), \
    F(kring_process_start, pidns, "<u4"), \
    F(kring_process_start, mntns, "<u4"), \
    F(kring_process_start, cwd_len, "<u2"), \
    F(kring_process_start, parent_path_len, "<u2"), \
    F(kring_process_start, cgroup_id, "<u8"), \
    F(kring_process_start, start_time, "<u8"), \
    F(kring_process_start, parent_start_time, "<u8"), \
    F(kring_process_start, tty, "|S32")

static const struct field_desc process_start_fields[] = {
    PROCESS_START_COMMON_FIELDS,
    F(kring_process_start, integrity, "<u4"),
    F(kring_process_start, elevation, "<u4"),
    F(kring_process_start, user_sid, "|S96"),
    F(kring_process_start, path, "|S4096"),
    F(kring_process_start, cmdline, "|S4096"),
};

/* Linux (packed): no token fields; path and cmdline where the schema's
 * dtype reads them, the tail starting at KRING_PROCESS_START_PACKED_MIN_SIZE. */
static const struct field_desc process_start_linux_fields[] = {
    PROCESS_START_COMMON_FIELDS,
    { "path", "|S4096", KRING_PROCESS_START_PACKED_MIN_SIZE },
    { "cmdline", "|S4096", KRING_PROCESS_START_PACKED_MIN_SIZE + KRING_PATH_BYTES },
};

#define PROCESS_EXIT_FIELDS \
    F(kring_process_exit, pid, "<u4"), \
    F(kring_process_exit, ppid, "<u4"), \
    F(kring_process_exit, exit_code, "<i4"), \
    F(kring_process_exit, raw_status, "<u4"), \
    F(kring_process_exit, detail, "<u4"), \
    F(kring_process_exit, path_len, "<u2"), \
    F(kring_process_exit, comm, "|S16")

static const struct field_desc process_exit_fields[] = {
    PROCESS_EXIT_FIELDS,
};

/* Linux: the same, then the path (struct kring_process_exit_linux). */
static const struct field_desc process_exit_linux_fields[] = {
    PROCESS_EXIT_FIELDS,
    F(kring_process_exit_linux, start_time, "<u8"),
    F(kring_process_exit_linux, duration_ns, "<u8"),
    F(kring_process_exit_linux, path, "|S4096"),
};

static const struct field_desc image_load_fields[] = {
    F(kring_image_load, pid, "<u4"),
    F(kring_image_load, detail, "<u4"),
    F(kring_image_load, base, "<u8"),
    F(kring_image_load, size, "<u8"),
    F(kring_image_load, file_offset, "<u8"),
    F(kring_image_load, path_len, "<u2"),
    F(kring_image_load, start_time, "<u8"),
    F(kring_image_load, path, "|S4096"),
};

static const struct field_desc exec_failed_fields[] = {
    F(kring_exec_failed, pid, "<u4"),
    F(kring_exec_failed, tid, "<u4"),
    F(kring_exec_failed, uid, "<u4"),
    F(kring_exec_failed, euid, "<u4"),
    F(kring_exec_failed, error, "<i4"),
    F(kring_exec_failed, detail, "<u4"),
    F(kring_exec_failed, path, "|S4096"),
};

#undef PROCESS_START_COMMON_FIELDS
#undef PROCESS_EXIT_FIELDS
#undef F

struct type_desc {
    const char *name;
    uint16_t id;
    uint32_t size;
    uint32_t min_size;
    const struct field_desc *fields;
    uint16_t nfields;
};

#define COUNT(a) ((uint16_t)(sizeof(a) / sizeof((a)[0])))

static const struct type_desc event_types[] = {
    { "process_start", KRING_TYPE_PROCESS_START, sizeof(struct kring_process_start),
      KRING_PROCESS_START_MIN_SIZE, process_start_fields, COUNT(process_start_fields) },
    { "process_exit", KRING_TYPE_PROCESS_EXIT, sizeof(struct kring_process_exit),
      KRING_PROCESS_EXIT_MIN_SIZE, process_exit_fields, COUNT(process_exit_fields) },
    { "image_load", KRING_TYPE_IMAGE_LOAD, sizeof(struct kring_image_load),
      KRING_IMAGE_LOAD_MIN_SIZE, image_load_fields, COUNT(image_load_fields) },
};

/* A Linux ring: process_start packed (its tail starts at path and holds
 * cwd and the parent's path too), process_exit with its path, exec_failed. */
static const struct type_desc linux_types[] = {
    { "process_start", KRING_TYPE_PROCESS_START, KRING_PROCESS_START_LINUX_SIZE,
      KRING_PROCESS_START_PACKED_MIN_SIZE, process_start_linux_fields, COUNT(process_start_linux_fields) },
    { "process_exit", KRING_TYPE_PROCESS_EXIT, sizeof(struct kring_process_exit_linux),
      KRING_PROCESS_EXIT_LINUX_MIN_SIZE, process_exit_linux_fields, COUNT(process_exit_linux_fields) },
    { "image_load", KRING_TYPE_IMAGE_LOAD, sizeof(struct kring_image_load),
      KRING_IMAGE_LOAD_MIN_SIZE, image_load_fields, COUNT(image_load_fields) },
    { "exec_failed", KRING_TYPE_EXEC_FAILED, sizeof(struct kring_exec_failed),
      KRING_EXEC_FAILED_MIN_SIZE, exec_failed_fields, COUNT(exec_failed_fields) },
};

/* Every type's fields go into one producer page's fields[]. */
KRING_STATIC_ASSERT(COUNT(process_start_fields) + COUNT(process_exit_fields) + COUNT(image_load_fields)
                    <= KRING_MAX_FIELDS, shared_schema_fits);
KRING_STATIC_ASSERT(COUNT(process_start_linux_fields) + COUNT(process_exit_linux_fields) + COUNT(image_load_fields) +
                    COUNT(exec_failed_fields) <= KRING_MAX_FIELDS, linux_schema_fits);

/* Bounded copy that always NUL-terminates and zero-fills (no libc). */
static void copy_name(char *dst, uint32_t cap, const char *src)
{
    uint32_t i = 0;

    for (; i + 1 < cap && src[i]; i++)
        dst[i] = src[i];
    for (; i < cap; i++)
        dst[i] = 0;
}

static uint32_t fill_schema(struct kring_producer_page *page, const struct type_desc *types, uint32_t ntypes)
{
    uint32_t t, f, nfields = 0;

    for (t = 0; t < ntypes; t++) {
        const struct type_desc *d = &types[t];
        struct kring_type *ty = &page->types[t];

        copy_name(ty->name, KRING_NAME_LEN, d->name);
        ty->id = d->id;
        ty->size = d->size;
        ty->min_size = d->min_size;
        ty->first_field = (uint16_t)nfields;
        ty->nfields = d->nfields;
        ty->reserved = 0;
        for (f = 0; f < d->nfields; f++, nfields++) {
            struct kring_field *fd = &page->fields[nfields];

            copy_name(fd->name, KRING_NAME_LEN, d->fields[f].name);
            copy_name(fd->format, KRING_FORMAT_LEN, d->fields[f].format);
            fd->offset = d->fields[f].offset;
            fd->reserved = 0;
        }
    }
    page->ntypes = ntypes;
    page->nfields = nfields;
    return nfields;
}

uint32_t kring_events_schema(struct kring_producer_page *page)
{
    return fill_schema(page, event_types, COUNT(event_types));
}

uint32_t kring_events_schema_linux(struct kring_producer_page *page)
{
    return fill_schema(page, linux_types, COUNT(linux_types));
}
