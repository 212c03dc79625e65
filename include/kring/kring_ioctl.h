/*++

Module Name:

    kring_ioctl.h

Abstract:

    The interface between kring.sys and its clients, shared by the driver
    and user mode (the C client in tests/windows/, pykring/kernel_windows.py):
    device names, IOCTL codes, limits, and the request and reply structures.

    Every structure crosses the user/kernel boundary, so it uses fixed-width
    fields only (no pointers, SIZE_T, BOOLEAN or enums): a user address
    travels as a uint64_t, and 32- and 64-bit clients see the same layout.
    Every request starts with its own size, which the driver checks against
    the buffer length before it reads anything else.

    The ring the driver fills is the one of include/kring/kring.h (docs/PROTOCOL.md),
    with the record types of include/kring/kring_events.h.

Environment:

    Kernel mode (WDK or clang/mingw-w64) and user mode (any C compiler).

--*/

#ifndef KRING_IOCTL_H
#define KRING_IOCTL_H

#include <kring/kring.h>

/* Names. User mode opens KRING_USER_PATH (\\.\KRing). UTF-16 strings stay
 * outside the cdef section (it takes integer constants only);
 * pykring/_build.py exports KRING_USER_PATH. */
#define KRING_NT_DEVICE_NAME L"\\Device\\KRing"
#define KRING_DOS_DEVICE_NAME L"\\DosDevices\\KRing"
#define KRING_USER_PATH L"\\\\.\\KRing"

/* @cdef-begin (read verbatim by pykring/_build.py: integer literals and structures only) */

/* Version of this interface. A client puts it in kring_attach_in.version
 * and the driver refuses any other value (STATUS_REVISION_MISMATCH) before
 * it creates anything; the ATTACH reply carries it back.
 *   1: the reply named the ring's event ("Global\KRing-...")
 *   2: the reply carries a handle to the event, opened in the caller's
 *      process for SYNCHRONIZE only (event_handle) */
#define KRING_IOCTL_VERSION 2

/* IOCTL codes: CTL_CODE(KRING_DEVICE_TYPE, function, METHOD_BUFFERED, access),
 * written out so that user code needs no winioctl.h, and as literals so that
 * the cdef can read them: KRING_CTL (below the structures) computes each
 * from its function and access, and a static assert checks the literal.
 * Every code is METHOD_BUFFERED: the I/O manager copies requests and
 * replies, and the driver never touches a user buffer directly. */
#define KRING_DEVICE_TYPE 0x8A52        /* vendor range (>= 0x8000) */
#define KRING_ACCESS_READ 1             /* FILE_READ_DATA */
#define KRING_ACCESS_RW 3               /* FILE_READ_DATA | FILE_WRITE_DATA */

#define IOCTL_KRING_ATTACH 0x8A52E000   /* 0x800, RW; in: kring_attach_in, out: kring_attach_out */
#define IOCTL_KRING_DETACH 0x8A52E004   /* 0x801, RW; no buffers */
#define IOCTL_KRING_STATS 0x8A526008    /* 0x802, READ; out: kring_stats_out */
#define IOCTL_KRING_READ 0x8A52E00C     /* 0x803, RW; in: kring_read_in, out: kring_read_out + bytes */
/* Test builds of the driver only (KRING_TEST_BUILD): the release driver
 * answers them with STATUS_INVALID_DEVICE_REQUEST. */
#define IOCTL_KRING_TEST_INJECT 0x8A52E3C0  /* 0x8F0, RW; in: kring_inject_in, out: kring_inject_out */
#define IOCTL_KRING_TEST_POKE 0x8A52E3C4    /* 0x8F1, RW; in: kring_poke_in */

/* Limits the driver enforces. */
#define KRING_RING_SIZE_MIN 0x10000u            /* 64 KiB of data area */
#define KRING_RING_SIZE_MAX 0x4000000u          /* 64 MiB of data area */
#define KRING_MAX_CONSUMERS 8                   /* rings attached at once, all handles together */
#define KRING_MAX_TOTAL_BYTES 0x10000000u       /* 256 MiB of ring memory, all rings together */
#define KRING_READ_MAX_BYTES 0x100000u          /* record bytes one READ returns at most */
#define KRING_READ_MIN_BYTES 0x4000u            /* room for record bytes a READ needs at least
                                                   (the largest record, or the padding before it) */
#define KRING_INJECT_MAX_COUNT 1000000u         /* records one INJECT writes at most */
#define KRING_INJECT_PATH_CHARS 640             /* UTF-16 units: more than a path field holds */
#define KRING_INJECT_CMDLINE_CHARS 1280         /* UTF-16 units: more than a cmdline field holds */

/* kring_attach_in.events: which records the ring receives. */
#define KRING_EVENTS_PROCESS 0x1                /* process_start and process_exit */
#define KRING_EVENTS_IMAGE 0x2                  /* image_load */
#define KRING_EVENTS_ALL 0x3                    /* KRING_EVENTS_PROCESS | KRING_EVENTS_IMAGE */

/* kring_attach_in.flags: how the client wants to reach the ring. */
#define KRING_ATTACH_MAP 0x1    /* map the ring into the caller (MmMapLockedPagesSpecifyCache) */
#define KRING_ATTACH_COPY 0x2   /* copy records out with IOCTL_KRING_READ; with MAP: only if mapping fails */

/* kring_attach_out.method */
#define KRING_METHOD_MAP 1      /* the ring is mapped: consumer page RW, producer page + data RO */
#define KRING_METHOD_COPY 2     /* the ring stays in the kernel: read it with IOCTL_KRING_READ */

/* kring_inject_in.flags */
#define KRING_INJECT_KERNEL_IMAGE 0x1   /* image_load: a kernel-mode image */
#define KRING_INJECT_PROCESS_FACTS 0x2  /* process_start: start times, token fields as the
                                           callback fills them, from the calling process
                                           (parent start time: the process `ppid`) */

/* kring_read_in.flags */
#define KRING_READ_ARM 0x1      /* nothing to return: announce that the client will wait on the event */

/* ATTACH request (input buffer: exactly this size). */
struct kring_attach_in {
    uint32_t size;              /* sizeof(struct kring_attach_in) */
    uint32_t flags;             /* KRING_ATTACH_*, at least one */
    uint64_t ring_size;         /* data area bytes: a power of two in
                                   [KRING_RING_SIZE_MIN, KRING_RING_SIZE_MAX] */
    uint32_t events;            /* KRING_EVENTS_*, at least one */
    uint32_t version;           /* KRING_IOCTL_VERSION the client was built for
                                   (a version-1 client sends 0 here: refused) */
};

/* ATTACH reply (output buffer: at least this size). */
struct kring_attach_out {
    uint32_t size;              /* sizeof(struct kring_attach_out) */
    uint32_t version;           /* KRING_IOCTL_VERSION */
    uint32_t method;            /* KRING_METHOD_* */
    int32_t map_status;         /* NTSTATUS of the attempt to map (0: mapped or not tried);
                                   tells why a MAP | COPY attach fell back to COPY */
    uint64_t consumer_page;     /* METHOD_MAP: user address of the consumer page (RW), else 0 */
    uint64_t producer_page;     /* METHOD_MAP: user address of the producer page (RO), else 0 */
    uint64_t data;              /* METHOD_MAP: user address of the data area (RO), = producer_page + 4096 */
    uint64_t consumer_size;     /* bytes of the consumer view: KRING_PAGE_SIZE */
    uint64_t producer_size;     /* bytes of the producer view: KRING_PAGE_SIZE + capacity */
    uint64_t capacity;          /* data area bytes (the requested ring_size) */
    uint32_t events;            /* KRING_EVENTS_* the ring receives */
    uint32_t ring_id;           /* driver-wide number of this ring (logs, STATS) */
    uint64_t event_handle;      /* a HANDLE valid in the calling process, granted
                                   SYNCHRONIZE only: the ring's auto-reset event,
                                   which the driver sets when the consumer waits
                                   (PROTOCOL.md 9.1). The event lives in an object
                                   directory of the driver's that has no name, so
                                   no other process can look it up; the caller
                                   owns the handle and closes it */
    uint64_t reserved[15];      /* 0 */
    struct kring_producer_page meta; /* the producer page as created: description and
                                   schema (and zero positions and counters) */
};

/* READ request (METHOD_COPY rings). */
struct kring_read_in {
    uint32_t size;              /* sizeof(struct kring_read_in) */
    uint32_t flags;             /* KRING_READ_* */
};

/* READ reply: this header, then end_pos - start_pos bytes of the data area:
 * whole records (DISCARD padding included) exactly as they sit in the ring
 * from position start_pos on. A client with a ring of the same capacity
 * writes them at offset (start_pos & (capacity - 1)), wrapping at the end,
 * and gets a replica of the driver's ring. The driver then counts them as
 * consumed. The output buffer must hold the header and at least
 * KRING_READ_MIN_BYTES. */
struct kring_read_out {
    uint32_t size;              /* sizeof(struct kring_read_out) */
    uint32_t ring_flags;        /* the producer page's KRING_F_* */
    uint64_t start_pos;         /* ring position of the first byte returned */
    uint64_t end_pos;           /* position after the last byte returned */
    uint64_t written;           /* records written since the ring was created */
    uint64_t dropped;           /* records dropped since the ring was created */
    uint64_t reserved[3];       /* 0 */
};

/* STATS reply. */
struct kring_stats_out {
    uint32_t size;              /* sizeof(struct kring_stats_out) */
    uint32_t method;            /* KRING_METHOD_* of this handle's ring (0: not attached) */
    uint64_t capacity;          /* data area bytes */
    uint64_t producer_pos;      /* the driver's (private) producer position */
    uint64_t consumer_pos;      /* the consumer position the driver last read */
    uint64_t written;           /* records written to this ring */
    uint64_t dropped;           /* records dropped: ring full or broken */
    uint64_t wakeups;           /* times the driver set the event */
    uint32_t ring_flags;        /* KRING_F_* */
    uint32_t events;            /* KRING_EVENTS_* */
    uint32_t consumers;         /* rings attached now, all handles */
    uint32_t process_notify;    /* 0 none, 1 PsSetCreateProcessNotifyRoutineEx, 2 ...Ex2 */
    uint32_t image_notify;      /* 1 when the load-image callback is registered */
    uint32_t test_build;        /* 1 in test builds (IOCTL_KRING_TEST_INJECT works) */
    uint64_t process_events;    /* process callbacks seen since load */
    uint64_t image_events;      /* image callbacks seen since load */
    uint64_t lost_no_memory;    /* events no ring got because a record buffer could not be allocated */
};

/* INJECT request (test builds): count synthetic records of one type, built
 * by the same code as the callbacks' records and fanned out the same way.
 * Record i has pid = pid + i. */
struct kring_inject_in {
    uint32_t size;              /* sizeof(struct kring_inject_in) */
    uint32_t type;              /* KRING_TYPE_PROCESS_START / _EXIT / IMAGE_LOAD */
    uint32_t count;             /* 1 .. KRING_INJECT_MAX_COUNT */
    uint32_t pid;               /* pid of the first record */
    uint32_t ppid;              /* process_start: parent; also the creator pid */
    uint32_t tid;               /* process_start: creating thread */
    uint32_t flags;             /* KRING_INJECT_*: image_load: KERNEL_IMAGE;
                                   process_start: PROCESS_FACTS */
    int32_t exit_status;        /* process_exit */
    uint64_t base;              /* image_load: image base */
    uint64_t image_size;        /* image_load: image size */
    uint16_t path_chars;        /* UTF-16 units in path (0: no path, as a NULL FullImageName) */
    uint16_t cmdline_chars;     /* UTF-16 units in cmdline (0: none) */
    uint32_t reserved;          /* 0 */
    uint16_t path[KRING_INJECT_PATH_CHARS];
    uint16_t cmdline[KRING_INJECT_CMDLINE_CHARS];
};

struct kring_inject_out {
    uint32_t size;              /* sizeof(struct kring_inject_out) */
    uint32_t count;             /* records built and handed to the rings */
};

/* POKE request (test builds): store `consumer_pos` into the consumer page
 * of this handle's ring, as a hostile or broken client could in a mapped
 * ring; the producer must then mark the ring broken and write nothing. */
struct kring_poke_in {
    uint32_t size;              /* sizeof(struct kring_poke_in) */
    uint32_t reserved;          /* 0 */
    uint64_t consumer_pos;      /* the value to store */
};

/* @cdef-end */

#define KRING_CTL(function, access) \
    (((uint32_t)KRING_DEVICE_TYPE << 16) | ((uint32_t)(access) << 14) | ((uint32_t)(function) << 2) | 0u)

KRING_STATIC_ASSERT(IOCTL_KRING_ATTACH == KRING_CTL(0x800, KRING_ACCESS_RW), ioctl_attach);
KRING_STATIC_ASSERT(IOCTL_KRING_DETACH == KRING_CTL(0x801, KRING_ACCESS_RW), ioctl_detach);
KRING_STATIC_ASSERT(IOCTL_KRING_STATS == KRING_CTL(0x802, KRING_ACCESS_READ), ioctl_stats);
KRING_STATIC_ASSERT(IOCTL_KRING_READ == KRING_CTL(0x803, KRING_ACCESS_RW), ioctl_read);
KRING_STATIC_ASSERT(IOCTL_KRING_TEST_INJECT == KRING_CTL(0x8F0, KRING_ACCESS_RW), ioctl_test_inject);
KRING_STATIC_ASSERT(IOCTL_KRING_TEST_POKE == KRING_CTL(0x8F1, KRING_ACCESS_RW), ioctl_test_poke);
KRING_STATIC_ASSERT(KRING_EVENTS_ALL == (KRING_EVENTS_PROCESS | KRING_EVENTS_IMAGE), events_all);

KRING_STATIC_ASSERT(sizeof(struct kring_poke_in) == 16, poke_in_size);
KRING_STATIC_ASSERT(sizeof(struct kring_attach_in) == 24, attach_in_size);
KRING_STATIC_ASSERT(offsetof(struct kring_attach_out, consumer_page) == 16, attach_out_cons);
KRING_STATIC_ASSERT(offsetof(struct kring_attach_out, event_handle) == 72, attach_out_event);
KRING_STATIC_ASSERT(offsetof(struct kring_attach_out, meta) == 200, attach_out_meta);
KRING_STATIC_ASSERT(sizeof(struct kring_attach_out) == 200 + KRING_PAGE_SIZE, attach_out_size);
KRING_STATIC_ASSERT(sizeof(struct kring_read_in) == 8, read_in_size);
KRING_STATIC_ASSERT(sizeof(struct kring_read_out) == 64, read_out_size);
KRING_STATIC_ASSERT(sizeof(struct kring_stats_out) == 104, stats_out_size);
KRING_STATIC_ASSERT(offsetof(struct kring_inject_in, path) == 56, inject_path);
KRING_STATIC_ASSERT(sizeof(struct kring_inject_in) == 56 + 2 * (KRING_INJECT_PATH_CHARS + KRING_INJECT_CMDLINE_CHARS), inject_size);
KRING_STATIC_ASSERT(sizeof(struct kring_inject_out) == 8, inject_out_size);

#endif /* KRING_IOCTL_H */
