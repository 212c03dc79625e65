/*
 * kring.h - the pykring ring ABI, shared by every producer and consumer.
 *
 * This header defines the memory layout of a ring and nothing else: the
 * pages, the record header, the common event header, the schema of record
 * types, flag bits and constants. It is valid C for the Windows kernel
 * (WDK/MSVC and clang/mingw-w64), for eBPF programs, for user-mode C, and
 * the part between the cdef markers is read by the cffi builder as-is.
 *
 * Layout (byte offsets from the start of a shared-memory ring):
 *
 *   0           consumer page   RW for the consumer, RO for the producer
 *   4096        producer page   RW for the producer, RO for the consumer
 *   8192        data area      2^n bytes, RW for the producer, RO for the consumer
 *
 * It is the Linux BPF ring buffer layout (Documentation/bpf/ringbuf.rst)
 * with ring metadata and a schema after producer_pos in the producer page.
 * docs/PROTOCOL.md is the normative description; the static asserts below
 * hold this header to it.
 *
 * Fixed-width integers only: no pointers, size_t, bool or enum-typed
 * fields, so 32- and 64-bit processes and the kernel agree.
 */
#ifndef KRING_H
#define KRING_H

#if defined(KRING_NO_STDINT)
/* The includer (an eBPF program with vmlinux.h, a kernel build) has
 * already defined uint8_t .. uint64_t. */
#elif defined(_MSC_VER) && defined(_KERNEL_MODE)
#include <stddef.h>                     /* offsetof */
typedef unsigned __int8 uint8_t;
typedef unsigned __int16 uint16_t;
typedef unsigned __int32 uint32_t;
typedef unsigned __int64 uint64_t;
typedef __int64 int64_t;
#else
#include <stdint.h>
#endif

/* @cdef-begin (read verbatim by pykring/_build.py: plain C declarations only) */

#define KRING_MAGIC 0x474E524B          /* "KRNG" as a little-endian u32 */
#define KRING_ABI_MAJOR 1               /* incompatible layout changes */
#define KRING_ABI_MINOR 2               /* compatible additions (1: consumer_flags;
                                           2: fields[] of 64 entries, was 48) */

#define KRING_PAGE_SIZE 4096            /* size of the consumer and producer pages */
#define KRING_DATA_OFFSET 8192          /* data area offset in a shared-memory ring */
#define KRING_ALIGN 8                   /* every record starts 8-byte aligned */
#define KRING_RECORD_HEADER_SIZE 8
#define KRING_EVENT_HEADER_SIZE 24
#define KRING_MIN_CAPACITY 4096         /* data area bytes, a power of two */
#define KRING_MAX_CAPACITY 0x80000000   /* 2 GiB: an advance always changes the low 32 bits of a position */

/* Record header len word: payload length in the low 30 bits, two state bits. */
#define KRING_BUSY_BIT 0x80000000       /* reserved, being written: the consumer stops here */
#define KRING_DISCARD_BIT 0x40000000    /* committed but not data (padding, cancelled): skip */
#define KRING_LEN_MASK 0x3FFFFFFF

/* Schema bounds (all of it fits in the producer page). */
#define KRING_MAX_TYPES 16              /* ids are 1 .. KRING_MAX_TYPES - 1 (so at most 15 types); 0 is never valid */
#define KRING_MAX_FIELDS 64             /* fields over all types of one ring (48 before
                                           ABI 1.2: a ring with more than 48 needs a
                                           reader of 1.2 or later) */
#define KRING_NAME_LEN 24               /* type and field names, NUL-terminated */
#define KRING_FORMAT_LEN 16             /* numpy dtype strings, NUL-terminated */

/* kring_producer_page.flags: written by the producer only. */
#define KRING_F_CLOSED 0x1              /* producer closed cleanly; nothing follows the last record */
#define KRING_F_BROKEN 0x2              /* producer read a nonsense consumer_pos and stopped writing */
#define KRING_F_PRODUCER 0x4            /* a producer is attached (cleared again by a clean close) */
#define KRING_F_BLOCKING 0x8            /* the attached producer waits for space instead of dropping */

/* kring_consumer_page.consumer_flags: written by the consumer only. */
#define KRING_C_ATTACHED 0x1            /* a consumer is attached (cleared by a clean close;
                                           a crash leaves it set) */

/* kring_event_header.flags */
#define KRING_EV_TRUNCATED 0x1          /* a bounded string field was cut short */

/* The 8-byte header in front of every record, at an 8-byte aligned position. */
struct kring_record_header {
    uint32_t len;       /* payload bytes | BUSY | DISCARD. The record occupies
                           8 + len rounded up to 8 bytes. Written by the producer;
                           the consumer acquire-loads it. */
    uint32_t pg_off;    /* producer-private (the BPF kernel stores a page offset
                           here); consumers ignore it, user-mode producers write 0. */
};

/* The first 24 bytes of every payload (a DISCARD record has no payload). */
struct kring_event_header {
    uint64_t seq;       /* ring-wide sequence number, consecutive: a dropped
                           record consumes one too, so gaps show loss. */
    uint64_t ts_ns;     /* nanoseconds since the Unix epoch (UTC) */
    uint16_t type;      /* record type id, 1 .. KRING_MAX_TYPES - 1 */
    uint16_t flags;     /* KRING_EV_* */
    uint32_t reserved;  /* 0 */
};

/* Page 0: the only page the consumer writes. */
struct kring_consumer_page {
    uint64_t consumer_pos;      /* free-running byte position of the next record to
                                   read; 8-byte aligned, never ahead of producer_pos,
                                   never more than capacity behind it. Consumer
                                   release-stores it once per batch; producers
                                   acquire-load it once per write and range-check it. */
    uint8_t reserved0[56];
    uint32_t waiting;           /* consumer stores 1 before it sleeps (then a full
                                   fence, then it re-reads producer_pos), 0 when awake.
                                   A producer that sees 1 after publishing wakes it. */
    uint32_t consumer_flags;    /* KRING_C_*, consumer-written (ABI 1.1; 0 in older rings
                                   and in BPF ring buffers): tells a blocked producer
                                   whether a consumer that should be there died */
    uint8_t reserved2[4024];    /* up to KRING_PAGE_SIZE */
};

/* One field of a record type. Offsets are from the start of the payload
 * (the event header's fields are implied and not listed). */
struct kring_field {
    char name[KRING_NAME_LEN];      /* [A-Za-z_][A-Za-z0-9_]*, NUL-terminated */
    char format[KRING_FORMAT_LEN];  /* numpy dtype string: "<u4", "|S16", "<M8[ns]", "(3,)<f8" */
    uint32_t offset;                /* >= KRING_EVENT_HEADER_SIZE and < size (C checks); the
                                   consumer that parses format checks that the field ends
                                   within size */
    uint32_t reserved;              /* 0 */
};

/* One record type. */
struct kring_type {
    char name[KRING_NAME_LEN];  /* NUL-terminated */
    uint16_t id;                /* 1 .. KRING_MAX_TYPES - 1, unique in the ring */
    uint16_t nfields;           /* its fields are fields[first_field .. first_field + nfields) */
    uint16_t first_field;
    uint16_t reserved;          /* 0 */
    uint32_t size;              /* full record size (the numpy itemsize), header included */
    uint32_t min_size;          /* shortest valid payload: records of variable length
                                   (a bounded string last) carry min_size .. size bytes
                                   and the consumer zero-fills the rest */
};

/* Page 1: producer position, ring description and schema. */
struct kring_producer_page {
    uint64_t producer_pos;      /* free-running byte position after the last committed
                                   record; producer release-stores it after the records
                                   and counters; consumers acquire-load it. */
    uint32_t wake_seq;          /* producer increments it, then futex-wakes, when it
                                   sees consumer waiting == 1 (futex word, Linux) */
    uint32_t producer_waiting;  /* a blocking producer stores 1 before it sleeps for
                                   space; the consumer wakes it after publishing */
    uint8_t reserved0[48];

    /* @64: written once when the ring is created, before it is shared. */
    uint32_t magic;             /* KRING_MAGIC */
    uint16_t abi_major;         /* KRING_ABI_MAJOR: a consumer refuses another major */
    uint16_t abi_minor;         /* KRING_ABI_MINOR: newer minors only add fields */
    uint32_t page_size;         /* KRING_PAGE_SIZE */
    uint32_t ntypes;            /* entries used in types[] */
    uint64_t capacity;          /* data area bytes: a power of two in
                                   [KRING_MIN_CAPACITY, KRING_MAX_CAPACITY] */
    uint64_t data_offset;       /* KRING_DATA_OFFSET */
    uint32_t nfields;           /* entries used in fields[] */
    uint32_t flags;             /* KRING_F_*, producer-written (atomic) */
    uint32_t producer_pid;      /* informational: the attached producer's process id */
    uint32_t reserved1;
    uint64_t reserved2[2];

    /* @128: counters, producer-written (relaxed stores). */
    uint64_t written;           /* records committed since the ring was created; stored
                                   before the producer_pos that publishes them */
    uint64_t dropped;           /* records dropped (exact): the ring was full, or broken
                                   under the drop policy; stored when they are dropped */
    uint64_t reserved3[6];

    /* @192 */
    struct kring_type types[KRING_MAX_TYPES];       /* @192,  16 x 40 */
    struct kring_field fields[KRING_MAX_FIELDS];    /* @832,  64 x 48 (entries 48..63 were
                                                       reserved4 before ABI 1.2) */
    uint8_t reserved4[192];                         /* @3904, up to KRING_PAGE_SIZE */
};

/* @cdef-end */

/* Bytes a record with `len` payload bytes occupies in the data area: the
 * record header plus the payload, rounded up to KRING_ALIGN. */
#define KRING_RECORD_SPAN(len) \
    (((uint64_t)(len) + KRING_RECORD_HEADER_SIZE + (KRING_ALIGN - 1)) & ~(uint64_t)(KRING_ALIGN - 1))

/* ---- static checks: every offset and size above is ABI ---------------- */
#if defined(__cplusplus)
#define KRING_STATIC_ASSERT(c, m) static_assert(c, #m)
#elif defined(__STDC_VERSION__) && __STDC_VERSION__ >= 201112L
#define KRING_STATIC_ASSERT(c, m) _Static_assert(c, #m)
#elif defined(_MSC_VER)
#define KRING_STATIC_ASSERT(c, m) typedef char kring_static_assert_##m[(c) ? 1 : -1]
#else
#define KRING_STATIC_ASSERT(c, m) _Static_assert(c, #m)
#endif

#ifndef offsetof
#define offsetof(t, f) __builtin_offsetof(t, f)
#endif

KRING_STATIC_ASSERT(sizeof(struct kring_record_header) == KRING_RECORD_HEADER_SIZE, record_header_size);
KRING_STATIC_ASSERT(sizeof(struct kring_event_header) == KRING_EVENT_HEADER_SIZE, event_header_size);
KRING_STATIC_ASSERT(offsetof(struct kring_event_header, seq) == 0, ev_seq);
KRING_STATIC_ASSERT(offsetof(struct kring_event_header, ts_ns) == 8, ev_ts);
KRING_STATIC_ASSERT(offsetof(struct kring_event_header, type) == 16, ev_type);
KRING_STATIC_ASSERT(offsetof(struct kring_event_header, flags) == 18, ev_flags);
KRING_STATIC_ASSERT(sizeof(struct kring_consumer_page) == KRING_PAGE_SIZE, consumer_page_size);
KRING_STATIC_ASSERT(offsetof(struct kring_consumer_page, consumer_pos) == 0, consumer_pos);
KRING_STATIC_ASSERT(offsetof(struct kring_consumer_page, waiting) == 64, consumer_waiting);
KRING_STATIC_ASSERT(sizeof(struct kring_field) == 48, field_size);
KRING_STATIC_ASSERT(sizeof(struct kring_type) == 40, type_size);
KRING_STATIC_ASSERT(sizeof(struct kring_producer_page) == KRING_PAGE_SIZE, producer_page_size);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, producer_pos) == 0, producer_pos);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, wake_seq) == 8, wake_seq);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, producer_waiting) == 12, producer_waiting);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, magic) == 64, magic);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, capacity) == 80, capacity);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, data_offset) == 88, data_offset);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, flags) == 100, flags);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, written) == 128, written);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, dropped) == 136, dropped);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, types) == 192, types);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, fields) == 832, fields);
KRING_STATIC_ASSERT(offsetof(struct kring_producer_page, reserved4) == 3904, reserved4);
KRING_STATIC_ASSERT(KRING_DATA_OFFSET == 2 * KRING_PAGE_SIZE, data_offset_value);

#endif /* KRING_H */
