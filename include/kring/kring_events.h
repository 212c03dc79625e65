/*
 * kring_events.h - the kernel event records, shared by every kernel producer
 * (the Windows driver drv/, the eBPF programs csrc/bpf/) and the consumer.
 *
 * Each record starts with struct kring_event_header. Strings are UTF-8,
 * NUL-terminated when shorter than their field, and bounded: a string that
 * did not fit is cut and its *_TRUNCATED bit is set in `detail` (and
 * KRING_EV_TRUNCATED in the header's flags). The last string of a record is
 * its variable-length tail: a producer may end the record after the string's
 * NUL (the payload is then min_size .. size bytes) and the consumer
 * zero-fills the rest.
 *
 * No field ever holds a kernel address.
 */
#ifndef KRING_EVENTS_H
#define KRING_EVENTS_H

#include <kring/kring.h>

/* @cdef-begin */

/* Record type ids of kernel event rings. */
#define KRING_TYPE_PROCESS_START 1
#define KRING_TYPE_PROCESS_EXIT 2
#define KRING_TYPE_IMAGE_LOAD 3

#define KRING_COMM_LEN 16               /* short process name (Linux comm, Windows image file name) */
#define KRING_PATH_MAX 512              /* bytes of a path, NUL included */
#define KRING_CMDLINE_MAX 1024          /* bytes of a command line, NUL included */

/* `detail` bits. */
#define KRING_D_PATH_TRUNCATED 0x1      /* path was cut at KRING_PATH_MAX - 1 bytes */
#define KRING_D_CMDLINE_TRUNCATED 0x2   /* cmdline was cut at KRING_CMDLINE_MAX - 1 bytes */
#define KRING_D_NO_PATH 0x4             /* the kernel gave no path (Windows: FullImageName NULL) */
#define KRING_D_KERNEL_IMAGE 0x8        /* image_load: a kernel-mode image (driver); base is 0 */
#define KRING_D_MAIN_IMAGE 0x10         /* image_load: the program's own executable */
#define KRING_D_NO_START 0x20           /* process_exit: no process_start was seen for it */
#define KRING_D_EXEC 0x40               /* process_start: an exec in an existing process (Linux) */

/* A new process, or (Linux, KRING_D_EXEC) an existing one running a new program. */
struct kring_process_start {
    struct kring_event_header h;        /* type KRING_TYPE_PROCESS_START */
    uint32_t pid;                       /* process id (Linux tgid) */
    uint32_t ppid;                      /* parent process id */
    uint32_t creator_pid;               /* process whose thread created it (Windows
                                           CreatingThreadId; Linux: the forking process) */
    uint32_t creator_tid;               /* that thread */
    uint32_t uid;                       /* Linux: real uid; Windows: 0 */
    uint32_t session_id;                /* Windows session id; Linux: 0 */
    uint32_t detail;                    /* KRING_D_* */
    uint16_t path_len;                  /* bytes of path before its NUL */
    uint16_t cmdline_len;               /* bytes of cmdline before its NUL */
    char comm[KRING_COMM_LEN];          /* short name */
    char path[KRING_PATH_MAX];          /* executable, canonical (the opened file) */
    char cmdline[KRING_CMDLINE_MAX];    /* command line; Linux: arguments separated by NUL
                                           bytes, as in /proc/PID/cmdline. Variable tail. */
};

/* A whole process has gone. */
struct kring_process_exit {
    struct kring_event_header h;        /* type KRING_TYPE_PROCESS_EXIT */
    uint32_t pid;
    uint32_t ppid;                      /* 0 when unknown */
    int32_t exit_code;                  /* exit code (Windows: the exit status); Linux: the
                                           exit code 0..255, or -signal when killed */
    uint32_t raw_status;                /* platform value: Linux wait status, Windows NTSTATUS */
    uint32_t detail;                    /* KRING_D_* */
    uint32_t reserved;                  /* 0 */
    char comm[KRING_COMM_LEN];
};

/* An executable image mapped into a process (Windows load-image notify;
 * Linux: executable file mappings, the main binary and the loader). */
struct kring_image_load {
    struct kring_event_header h;        /* type KRING_TYPE_IMAGE_LOAD */
    uint32_t pid;                       /* 0 for kernel-mode images */
    uint32_t detail;                    /* KRING_D_* */
    uint64_t base;                      /* user-mode address of the mapping; 0 for kernel images */
    uint64_t size;                      /* bytes mapped */
    uint64_t file_offset;               /* file offset of the mapping (Linux); 0 on Windows */
    uint16_t path_len;                  /* bytes of path before its NUL */
    uint16_t reserved[3];               /* 0 */
    char path[KRING_PATH_MAX];          /* canonical path. Variable tail. */
};

/* Fill the schema (ntypes, nfields, types, fields) of a producer page with
 * the three kernel event types. Returns the number of fields. */
uint32_t kring_events_schema(struct kring_producer_page *page);

/* @cdef-end */

KRING_STATIC_ASSERT(offsetof(struct kring_process_start, pid) == 24, ps_pid);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, detail) == 48, ps_detail);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, comm) == 56, ps_comm);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, path) == 72, ps_path);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, cmdline) == 584, ps_cmdline);
KRING_STATIC_ASSERT(sizeof(struct kring_process_start) == 1608, ps_size);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit, exit_code) == 32, pe_exit_code);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit, comm) == 48, pe_comm);
KRING_STATIC_ASSERT(sizeof(struct kring_process_exit) == 64, pe_size);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, base) == 32, il_base);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, path_len) == 56, il_path_len);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, path) == 64, il_path);
KRING_STATIC_ASSERT(sizeof(struct kring_image_load) == 576, il_size);

/* Shortest valid payloads: everything before the variable-length tail. */
#define KRING_PROCESS_START_MIN_SIZE 584
#define KRING_PROCESS_EXIT_MIN_SIZE 64
#define KRING_IMAGE_LOAD_MIN_SIZE 64
KRING_STATIC_ASSERT(KRING_PROCESS_START_MIN_SIZE == offsetof(struct kring_process_start, cmdline), ps_min);
KRING_STATIC_ASSERT(KRING_IMAGE_LOAD_MIN_SIZE == offsetof(struct kring_image_load, path), il_min);

#endif /* KRING_EVENTS_H */
