/*
 * kring_user.h - the public API of the user-mode library: consumer (drain,
 * wait), user-mode producer, shared-memory rings, and consumers over memory
 * that a kernel source maps.
 *
 * Everything here is private to one process; only the include/kring/ headers
 * describe shared memory. Functions return KRING_OK (0) or a negative
 * KRING_E_* code; kring_strerror() owns the messages. The parts between the
 * cdef markers are read by the cffi builder verbatim: an untagged part on
 * every platform, a part tagged [linux] or [win32] only there (the same
 * platform the #if around it selects). The library's internals (the
 * platform layer and helpers of the portable files) are in kring_plat.h.
 */
#ifndef KRING_USER_H
#define KRING_USER_H

#include <kring/kring.h>

/* @cdef-begin */

enum {
    KRING_OK = 0,
    KRING_E_INVAL = -1,         /* bad argument */
    KRING_E_NOMEM = -2,         /* out of memory */
    KRING_E_OS = -3,            /* a system call failed: os_error has errno / GetLastError */
    KRING_E_NOTFOUND = -4,      /* no such ring */
    KRING_E_PERM = -5,          /* permission denied */
    KRING_E_VERSION = -6,       /* not a ring, or another ABI major version */
    KRING_E_CORRUPT = -7,       /* ring memory violates the protocol: see err_* */
    KRING_E_CLOSED = -8,        /* the producer closed the ring and it is drained */
    KRING_E_TIMEOUT = -9,       /* nothing happened before the timeout */
    KRING_E_INTR = -10,         /* a signal interrupted the wait */
    KRING_E_BUSY = -11,         /* the ring already has a consumer (or a producer) */
    KRING_E_EXISTS = -12,       /* a ring of that name exists already */
    KRING_E_BROKEN = -13,       /* the producer stopped: the consumer position was nonsense */
    KRING_E_TOOBIG = -14        /* a record does not fit in the ring */
};

/* What a KRING_E_CORRUPT found (err_reason). */
enum {
    KRING_BAD_NONE = 0,
    KRING_BAD_PRODUCER_POS = 1, /* producer_pos behind the consumer, unaligned or > capacity ahead */
    KRING_BAD_CONSUMER_POS = 2, /* consumer_pos unaligned, ahead of producer_pos or > capacity behind */
    KRING_BAD_LENGTH = 3,       /* record runs past producer_pos */
    KRING_BAD_STRADDLE = 4,     /* record crosses the end of a singly mapped data area */
    KRING_BAD_SHORT = 5,        /* payload shorter than the event header */
    KRING_BAD_TYPE = 6,         /* record type id not in the schema */
    KRING_BAD_SIZE = 7,         /* payload length outside [min_size, size] of its type */
    KRING_BAD_META = 8,         /* producer page description invalid (magic, capacity, schema) */
    KRING_BAD_TRUNCATED = 9     /* the ring file shrank under the mapping (the access faulted) */
};

/* Ways to wait (kring_map.wait_kind). */
enum {
    KRING_WAIT_NONE = 0,        /* poll only */
    KRING_WAIT_FUTEX = 1,       /* Linux shared-memory ring: futex words in the pages */
    KRING_WAIT_EPOLL = 2,       /* Linux fd-based source (BPF ring buffer map): epoll */
    KRING_WAIT_EVENT = 3        /* Windows: named events */
};

/* Full-ring policy of a producer. */
enum {
    KRING_DROP = 0,             /* drop the new record and count it (what a kernel does) */
    KRING_BLOCK = 1,            /* wait until the consumer makes room (lossless IPC) */
    KRING_ANY_OWNER = 0x100     /* or'ed into kring_producer_open's policy: accept a ring
                                   file owned by a user other than this one and root */
};

/* One process's mapping of a ring. */
/* The spin before a sleep (kring_spin_until, kring_plat.h): after a spin
 * that saw nothing come, the next 2^fails - 1 waits sleep at once. */
struct kring_spin {
    uint32_t fails;                      /* spins in a row that saw nothing come */
    uint32_t skip;                       /* waits left that do not spin */
};

struct kring_map {
    struct kring_consumer_page *cons;    /* page 0 */
    struct kring_producer_page *prod;    /* page 1: producer_pos (+ metadata when meta) */
    uint8_t *data;                       /* data area */
    uint64_t capacity;                   /* data bytes, power of two */
    uint64_t mask;                       /* capacity - 1 */
    int double_mapped;                   /* data mapped twice back to back (BPF) */
    int has_meta;                        /* prod carries the kring metadata and schema */
    int wait_kind;                       /* KRING_WAIT_* */
    int fd;                              /* ring file (Linux), -1 if none */
    int epoll_fd;                        /* KRING_WAIT_EPOLL */
    int role;                            /* 0 consumer, 1 producer */
    void *base_cons;                     /* what to unmap */
    uint64_t len_cons;
    void *base_prod;
    uint64_t len_prod;
    void *h_mapping;                     /* Windows handles */
    void *h_data_event;
    void *h_space_event;
    void *h_lock;
    int os_error;                        /* errno / GetLastError of the last failed OS call */
    const char *os_call;                 /* the name of that call (a static string), or NULL */
    uint32_t file_uid;                   /* owner of the ring file (Linux), for messages */
    uint32_t interrupted;                /* set by kring_interrupt: blocked calls return
                                            KRING_E_INTR, and so does every later wait */
    int wake_fd;                         /* eventfd in the epoll set, for kring_interrupt */
    int faulted;                         /* an access faulted: the ring file was truncated;
                                            nothing is read or written through it again */
    int lent;                            /* its bytes are numpy rows (zero copy): a fault
                                            outside a guard is caught too (kring_guard.c) */
};

/* Consumer state (private). */
struct kring_consumer {
    struct kring_map m;
    uint64_t pos;                        /* private consumer position (published by commit) */
    uint64_t committed;                  /* last value stored to consumer_pos */
    uint32_t type_size[KRING_MAX_TYPES]; /* 0: unknown type */
    uint32_t type_min[KRING_MAX_TYPES];
    uint64_t records;                    /* records delivered */
    uint64_t next_seq;                   /* sequence number expected next */
    int64_t gaps;                        /* sequence numbers never seen (lost) */
    int seq_started;
    int err_reason;                      /* KRING_BAD_* of the last KRING_E_CORRUPT */
    uint64_t err_pos;                    /* ring position of the problem */
    uint64_t err_value;                  /* the offending value */
    /* What kring_mark remembered (kring_rewind goes back there). */
    uint64_t mark_pos;
    uint64_t mark_records;
    uint64_t mark_next_seq;
    int64_t mark_gaps;
    int mark_started;
    /* A zero-copy view's rows still in use (kring_view.c): while holding,
     * a commit publishes no position past hold, the start of their bytes. */
    uint64_t hold;
    int holding;
    uint64_t asked;                      /* the position the last commit asked to publish */
    struct kring_spin spin;              /* before a wait for records sleeps (kring_wait.c) */
};

/* A zero-copy view (kring_view): `count` records of type `type`, each
 * `size` bytes (the event header and the type's fields) at data + offset +
 * i * span, starting at ring position `start`; copy = 1 when the next
 * record is one only a copy can give whole (a short, variable-length one). */
struct kring_view {
    uint64_t offset;
    uint64_t start;
    uint64_t count;
    uint64_t span;
    uint32_t size;
    uint16_t type;
    int copy;
};

/* A zero-copy reservation (kring_reserve): `count` records of `size` bytes
 * (the event header and the type's fields), `span` apart from data +
 * offset, for the caller to fill before kring_publish. */
struct kring_reservation {
    uint64_t offset;
    uint64_t start;                      /* the ring position of the first record */
    uint64_t count;
    uint64_t span;
    uint32_t size;
    uint16_t type;
};

/* Counters and flags of a ring's producer page, read in one guarded call. */
struct kring_ring_stats {
    uint64_t written;                    /* producer page `written` (0 without metadata) */
    uint64_t dropped;                    /* producer page `dropped` */
    uint32_t flags;                      /* KRING_F_* */
    uint32_t producer_pid;               /* the attached producer's process id */
};

/* Output of a drain: one per record type id, caller-owned rows. */
struct kring_out {
    uint8_t *buf;                        /* rows of type_size[id] bytes, or NULL: stop at this type */
    uint64_t capacity;                   /* rows available */
    uint64_t count;                      /* rows filled; the drain appends at count */
    uint64_t zeroed;                     /* non-zero: rows from count on are all zero bytes
                                            (fresh calloc'd memory), so a short record's
                                            rest is not zero-filled again (and its pages
                                            past the record are never touched) */
};

/* Producer state (private). */
struct kring_producer {
    struct kring_map m;
    uint64_t pos;                        /* private producer position: the truth, never read back */
    uint64_t seq;                        /* next sequence number */
    uint64_t written;
    uint64_t dropped;
    uint32_t type_size[KRING_MAX_TYPES];
    uint32_t type_min[KRING_MAX_TYPES];
    int policy;                          /* KRING_DROP or KRING_BLOCK */
    int broken;
    uint64_t bad_consumer_pos;           /* the nonsense value that broke it */
    uint64_t wakeups;                    /* times it woke a sleeping consumer */
    /* Rows of a zero-copy reservation still in use (kring_reserve.c): while
     * holding, the producer writes nothing at or past hold + capacity. */
    uint64_t hold;
    int holding;
    struct kring_spin spin;              /* before a wait for room sleeps (kring_producer.c) */
};

const char *kring_strerror(int code);
const char *kring_corrupt_reason(int reason);
uint64_t kring_time_ns(void);            /* CLOCK_REALTIME in ns since the epoch */

/* Schema and description checks on a producer page (no side effects). */
int kring_meta_check(const struct kring_producer_page *meta, uint64_t file_size);
/* What is wrong with a producer page (the first failed check), or NULL. */
const char *kring_meta_problem(const struct kring_producer_page *meta, uint64_t file_size);

/* Shared-memory rings. `path` is a file path (Linux) or a mapping name (Windows). */
int kring_shm_create(const char *path, const struct kring_producer_page *meta_template, int mode);
int kring_shm_unlink(const char *path);
int kring_consumer_open(struct kring_consumer *c, const char *path);
int kring_producer_open(struct kring_producer *p, const char *path, int policy);
/* Create a ring and attach to it in one step (on Windows a named mapping
 * exists only while a handle to it is open). mode: file mode on Linux. */
int kring_consumer_create(struct kring_consumer *c, const char *path,
                          const struct kring_producer_page *meta_template, int mode);
int kring_producer_create(struct kring_producer *p, const char *path,
                          const struct kring_producer_page *meta_template, int mode, int policy);

/* A consumer over memory mapped by someone else (the BPF ring buffer map,
 * the Windows driver). `prod` carries metadata iff has_meta. */
int kring_consumer_init(struct kring_consumer *c, struct kring_consumer_page *cons,
                        struct kring_producer_page *prod, uint8_t *data,
                        uint64_t capacity, int double_mapped, int has_meta);
int kring_consumer_set_type(struct kring_consumer *c, uint16_t id, uint32_t size, uint32_t min_size);

void kring_consumer_close(struct kring_consumer *c);
void kring_producer_close(struct kring_producer *p, int clean);
/* What a clean close tells the consumer (the ring is closed), without the
 * unmap: a producer whose reserved rows are still in use unmaps later. */
void kring_producer_mark_closed(struct kring_producer *p);

/* Drain up to max_records into out[type id] (KRING_MAX_TYPES entries).
 * Returns KRING_OK, or KRING_E_CORRUPT with err_* set (records before the
 * bad one are delivered), or KRING_E_BROKEN / KRING_E_CLOSED when nothing
 * was delivered and nothing more will come. Publishes consumer_pos when
 * commit is non-zero; *n receives the number of records delivered. */
int kring_drain(struct kring_consumer *c, struct kring_out *out, uint64_t max_records,
                int commit, uint64_t *n);
/* Records of each type (counts[type id], KRING_MAX_TYPES entries) that a
 * drain of up to max_records would deliver now; returns their sum, or
 * KRING_E_CORRUPT if the mapping is gone. Sizes a multi-type drain. */
int64_t kring_census(struct kring_consumer *c, uint64_t max_records, uint64_t *counts);
/* Publish the private position (after a drain with commit = 0). */
void kring_commit(struct kring_consumer *c);
/* Remember the consumer's position and counters, and go back to them: a
 * caller that drains and then fails to hand the rows on rewinds, and the
 * next drain delivers the same records again. Never rewinds behind what a
 * kring_commit published (the producer may have reused that space). */
void kring_mark(struct kring_consumer *c);
void kring_rewind(struct kring_consumer *c);
/* The producer page's counters and flags (KRING_E_CORRUPT if truncated). */
int kring_consumer_stats(struct kring_consumer *c, struct kring_ring_stats *out);
/* A private copy of a mapped ring's producer page (what schemas are read from). */
int kring_copy_meta(struct kring_map *m, struct kring_producer_page *out);
/* Wake any call blocked on this mapping in another thread and make every
 * later wait return KRING_E_INTR at once: the first step of closing an
 * object that another thread may be using. */
void kring_interrupt(struct kring_map *m);
/* Bytes published and not yet drained (0 .. capacity), or a negative code. */
int64_t kring_pending(struct kring_consumer *c);
uint32_t kring_ring_flags(const struct kring_consumer *c);
/* 1 when a producer attached and exited without closing the ring (killed). */
int kring_producer_gone(struct kring_consumer *c);
/* Wait until data is pending, the ring is closed or broken, or timeout_ns
 * passes (< 0: forever). KRING_OK when there is something to drain. */
int kring_wait(struct kring_consumer *c, int64_t timeout_ns);
/* kring_mark, then kring_wait, then (if something is there) kring_drain
 * without commit, in one call: a consumer that blocks hands over its rows
 * first, so the wake costs one call. Every out[] is filled from its first
 * row (count is set to 0 first, not appended to). Returns kring_wait's code
 * when the wait ended without anything to drain (*n = 0), else
 * kring_drain's. The caller builds its result, then commits, or rewinds
 * (kring_rewind) on failure. */
int kring_wait_drain(struct kring_consumer *c, struct kring_out *out, uint64_t max_records,
                     int64_t timeout_ns, uint64_t *n);

/* Write n records of type `type`: record i's body (the bytes after the
 * event header) is lens ? lens[i] : len bytes at src + i * stride. The
 * producer stamps seq, ts_ns, type and flags (ev_flags for all). Drop
 * policy: writes what fits, drops and counts the rest. Block policy:
 * waits for room up to timeout_ns (< 0: forever). *done receives the
 * records written. */
int kring_write(struct kring_producer *p, uint16_t type, const uint8_t *src, uint64_t stride,
                uint32_t len, const uint32_t *lens, uint64_t n, uint16_t ev_flags,
                int64_t timeout_ns, uint64_t *done);
/* Zero-copy read: the run of records from the private position on that can
 * be used in place (one type, each of the type's full size, not cut by the
 * end of the data area), at most max_records; moves the private position
 * past it (publish with kring_commit). count = 0 with copy = 1: the next
 * record must be copied (kring_drain). Checks as kring_drain's. Marks the
 * position first (kring_mark), so kring_rewind gives the run back. */
int kring_view(struct kring_consumer *c, uint64_t max_records, struct kring_view *v);
/* Keep a commit from publishing past `pos` (hold = 1) or not (hold = 0),
 * and publish what may be published now. */
void kring_hold(struct kring_consumer *c, uint64_t pos, int hold);

/* Zero-copy write: room for n records of type `type`, contiguous in the
 * data area, waiting as kring_write does (drop policy: count = 0 when there
 * is no room, nothing counted yet); KRING_E_TOOBIG when n records take more
 * than a quarter of the data area. Nothing is visible to the consumer until
 * kring_publish; kring_cancel gives the room back. */
int kring_reserve(struct kring_producer *p, uint16_t type, uint64_t n, int64_t timeout_ns,
                  struct kring_reservation *r);
/* Stamp the first `n` reserved records (length, seq, ts, type, ev_flags)
 * and publish them; the rest of the reservation is given back. */
int kring_publish(struct kring_producer *p, const struct kring_reservation *r, uint64_t n,
                  uint16_t ev_flags);
/* Keep the producer from reusing the bytes from ring position `pos` on
 * (hold = 1: it writes nothing at or past pos + capacity), or not (0). */
void kring_producer_hold(struct kring_producer *p, uint64_t pos, int hold);
/* Count n records as dropped (a reservation refused under the drop policy). */
void kring_count_dropped(struct kring_producer *p, uint64_t n);

/* Waits until the consumer drained everything, or timeout. */
int kring_flush(struct kring_producer *p, int64_t timeout_ns);
/* 1 when a consumer attached and exited without closing the ring (killed),
 * 0 otherwise (also when no consumer ever attached), -1 unknown. */
int kring_consumer_gone(struct kring_producer *p);

/* @cdef-end */

#if defined(__linux__)
/* @cdef-begin [linux] (kring_bpf_map.c) */

/* A consumer over a Linux BPF ring buffer map (BPF_MAP_TYPE_RINGBUF fd,
 * data `capacity` bytes): maps its consumer page read-write and its producer
 * page and twice-mapped data read-only, and waits with epoll on the fd.
 * The fd stays the caller's. Set the record types with kring_consumer_set_type. */
int kring_consumer_map_bpf(struct kring_consumer *c, int map_fd, uint64_t capacity);
/* Wait with epoll for `fd` to become readable (KRING_WAIT_EPOLL). */
int kring_consumer_set_epoll(struct kring_consumer *c, int fd);

/* @cdef-end */
#endif

#if defined(_WIN32)
struct kring_attach_out;                 /* <kring/kring_ioctl.h> */
/* @cdef-begin [win32] (kring_driver_map.c) */

/* A consumer over the ring of the kring.sys driver, after IOCTL_KRING_ATTACH.
 * The caller has checked the reply (size, version, method, capacity) and
 * passes its event_handle (SYNCHRONIZE access only). reply->consumer_page,
 * producer_page and data give where the ring is in this process: the
 * driver's mapping (KRING_METHOD_MAP), or a replica ring the caller keeps
 * of a KRING_METHOD_COPY ring. Checks a private copy of the producer page
 * (KRING_E_VERSION; KRING_E_CORRUPT with err_reason KRING_BAD_META, also
 * when its capacity is not reply->capacity), then attaches with that
 * copy's capacity and record types, waits on event_handle (KRING_WAIT_EVENT)
 * and expects sequence number 0 first. On success the consumer owns
 * event_handle (kring_consumer_close closes it) and *meta, if meta is not
 * NULL, receives the checked copy; on failure the caller keeps the handle
 * and the consumer owns nothing. */
int kring_consumer_map_driver(struct kring_consumer *c, const struct kring_attach_out *reply,
                              void *event_handle, struct kring_producer_page *meta);

/* @cdef-end */
#endif

#endif /* KRING_USER_H */
