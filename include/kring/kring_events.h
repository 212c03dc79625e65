/*
 * kring_events.h - the kernel event records, shared by every kernel producer
 * (the Windows driver drv/, the eBPF programs csrc/bpf/) and the consumer.
 *
 * Each record starts with struct kring_event_header. Strings are bytes as the
 * kernel has them (Linux: any bytes but NUL; Windows: UTF-8), NUL-terminated,
 * and bounded: a string that did not fit is cut and its *_TRUNCATED bit is
 * set in `detail` (and KRING_EV_TRUNCATED in the header's flags). A cut path
 * keeps its tail (the file name) on Linux, its head on Windows. The last
 * string of a record is its variable-length tail: a producer may end the
 * record after the string's NUL (the payload is then min_size .. size bytes)
 * and the consumer zero-fills the rest.
 *
 * process_start from Linux carries KRING_D_PACKED: its strings are one
 * variable-length tail starting at offset KRING_PROCESS_START_PACKED_MIN_SIZE
 * (160, where the Windows-only token fields `integrity` .. `user_sid` would
 * be: a Linux record does not carry them), each right after the previous
 * one's NUL: path, command line (at 160 + path_len + 1), cwd (after the
 * command line's NUL), the parent's executable (after cwd's NUL). A short
 * string costs its own bytes only; the lengths are in the fixed part
 * (path_len, cmdline_len, cwd_len, parent_path_len), 0 when a string is
 * missing. Without KRING_D_PACKED (Windows) every field sits at its offset
 * and there is no cwd or parent path (their lengths are 0). A Linux ring's
 * process_start is up to KRING_PROCESS_START_PACKED_MIN_SIZE +
 * 3 * KRING_PATH_BYTES + the command line's room
 * (KRING_PROCESS_START_LINUX_SIZE for KRING_ARGS_BYTES); its schema lists
 * `path` at 160 and `cmdline` at 160 + KRING_PATH_BYTES, and no token fields.
 *
 * Who fills what in process_start: both platforms the fields up to comm
 * and path, cmdline; Linux the identity and context (euid .. tty, cwd,
 * parent path), which Windows leaves 0 / empty; Windows integrity,
 * elevation and user_sid, which a Linux record has not (see above).
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
#define KRING_TYPE_EXEC_FAILED 4        /* Linux only: not in the shared schema's three types */

#define KRING_COMM_LEN 16               /* short process name (Linux comm, Windows image file name) */
#define KRING_PATH_BYTES 4096           /* room for a path, NUL included (Linux PATH_MAX) */
#define KRING_ARGS_BYTES 4096           /* room for a command line, NUL included, in the structs;
                                           a Linux ring may hold longer ones (its schema says) */
#define KRING_PATH_MAX 512              /* Windows driver: bytes of a path it writes, NUL included */
#define KRING_CMDLINE_MAX 1024          /* Windows driver: bytes of a command line it writes */

/* `detail` bits. */
#define KRING_D_PATH_TRUNCATED 0x1      /* path was cut (Linux: its tail kept) */
#define KRING_D_CMDLINE_TRUNCATED 0x2   /* cmdline was cut */
#define KRING_D_NO_PATH 0x4             /* the kernel gave no path (Windows: FullImageName NULL) */
#define KRING_D_KERNEL_IMAGE 0x8        /* image_load: a kernel-mode image (driver); base is 0 */
#define KRING_D_MAIN_IMAGE 0x10         /* image_load: the program's own executable */
#define KRING_D_NO_START 0x20           /* process_exit: no process_start was seen for it */
#define KRING_D_EXEC 0x40               /* process_start: an exec in an existing process (Linux) */
#define KRING_D_DELETED 0x80            /* the file was unlinked: path is its last name (Linux) */
#define KRING_D_MEMFD 0x100             /* the file is a memfd: path is "memfd:NAME" (Linux) */
#define KRING_D_PACKED 0x200            /* process_start: cmdline follows path's NUL (see above) */
#define KRING_D_CWD_TRUNCATED 0x400     /* process_start: cwd was cut (its tail kept) */
#define KRING_D_PARENT_PATH_TRUNCATED 0x800 /* process_start: the parent's path was cut (tail kept) */
#define KRING_D_SID_TRUNCATED 0x1000    /* process_start: user_sid was cut (Windows) */

#define KRING_SID_BYTES 96              /* room for user_sid, NUL included */

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
    /* Linux identity and context (Windows: 0 / empty). */
    uint32_t euid;                      /* effective uid */
    uint32_t gid;                       /* real gid */
    uint32_t egid;                      /* effective gid */
    uint32_t auid;                      /* login uid (audit); 0xffffffff: unset */
    uint32_t audit_session;             /* audit session id; 0xffffffff: unset */
    uint32_t pidns;                     /* inode number of the process's pid namespace */
    uint32_t mntns;                     /* inode number of its mount namespace */
    uint16_t cwd_len;                   /* Linux: bytes of the working directory (canonical,
                                           in the packed tail after the command line) before
                                           its NUL; 0: none (Windows) */
    uint16_t parent_path_len;           /* Linux: bytes of the parent's executable path
                                           (canonical, in the packed tail after cwd) before
                                           its NUL; 0: none (a kernel thread's child, Windows) */
    uint64_t cgroup_id;                 /* cgroup v2 id (the cgroup directory's inode number) */
    uint64_t start_time;                /* when the process started, with the pid the process
                                           key (exec_id). Linux: ns since boot (CLOCK_BOOTTIME)
                                           of its thread group leader's start (with the boot
                                           id); Windows: its creation time in ns since the
                                           Unix epoch */
    uint64_t parent_start_time;         /* the same for the parent (ppid) */
    char tty[32];                       /* controlling terminal's kernel name ("pts3"), or empty */
    /* Windows token of the new process. Not in a Linux (packed) record: its
     * tail starts here. */
    uint32_t integrity;                 /* mandatory integrity level RID (SECURITY_MANDATORY_*:
                                           0x1000 low, 0x2000 medium, 0x3000 high, 0x4000 system) */
    uint32_t elevation;                 /* TOKEN_ELEVATION_TYPE: 1 default, 2 full, 3 limited;
                                           0: unknown */
    char user_sid[KRING_SID_BYTES];     /* the token user's SID as text ("S-1-5-21-..."),
                                           NUL-terminated; cut: KRING_D_SID_TRUNCATED */
    char path[KRING_PATH_BYTES];        /* executable, canonical (the opened file). With
                                           KRING_D_PACKED the tail starts at offset 160. */
    char cmdline[KRING_ARGS_BYTES];     /* command line; Linux: arguments separated by NUL
                                           bytes, as in /proc/PID/cmdline. Variable tail;
                                           with KRING_D_PACKED it starts inside path. */
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
    uint16_t path_len;                  /* bytes of path before its NUL (Linux; Windows: 0) */
    uint16_t reserved;                  /* 0 */
    char comm[KRING_COMM_LEN];
};

/* process_exit as Linux writes it: the struct, then the process's executable
 * as a variable tail (the schema of a Linux ring describes this one). */
struct kring_process_exit_linux {
    struct kring_process_exit e;
    uint64_t start_time;                /* as in process_start: ns since boot at its start */
    uint64_t duration_ns;               /* from start_time to the exit */
    char path[KRING_PATH_BYTES];        /* canonical path, marks in e.detail. Variable tail. */
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
    uint64_t start_time;                /* the process's, as in process_start (Linux; Windows: 0) */
    char path[KRING_PATH_BYTES];        /* canonical path. Variable tail. */
};

/* An execve/execveat that failed (Linux): what the caller asked for and why. */
struct kring_exec_failed {
    struct kring_event_header h;        /* type KRING_TYPE_EXEC_FAILED */
    uint32_t pid;                       /* process id (tgid) */
    uint32_t tid;                       /* the thread that called exec */
    uint32_t uid;                       /* real uid */
    uint32_t euid;                      /* effective uid */
    int32_t error;                      /* errno, positive: 2 ENOENT, 13 EACCES, ... */
    uint32_t detail;                    /* KRING_D_* (PATH_TRUNCATED, NO_PATH) */
    char path[KRING_PATH_BYTES];        /* the path as passed to exec (not resolved: relative
                                           to the cwd or dirfd), NUL-terminated. Variable tail.
                                           (No path_len or comm: a ring's schema holds at most
                                           KRING_MAX_FIELDS fields over all its types.) */
};

/* Fill the schema (ntypes, nfields, types, fields) of a producer page with
 * the three kernel event types both platforms write. Returns the number of fields. */
uint32_t kring_events_schema(struct kring_producer_page *page);

/* The same with the Linux-only types too (exec_failed). */
uint32_t kring_events_schema_linux(struct kring_producer_page *page);

/* @cdef-end */

KRING_STATIC_ASSERT(offsetof(struct kring_process_start, pid) == 24, ps_pid);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, detail) == 48, ps_detail);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, comm) == 56, ps_comm);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, euid) == 72, ps_euid);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, cwd_len) == 100, ps_cwd_len);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, parent_path_len) == 102, ps_parent_path_len);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, cgroup_id) == 104, ps_cgroup_id);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, start_time) == 112, ps_start_time);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, tty) == 128, ps_tty);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, integrity) == 160, ps_integrity);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, elevation) == 164, ps_elevation);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, user_sid) == 168, ps_user_sid);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, path) == 264, ps_path);
KRING_STATIC_ASSERT(offsetof(struct kring_process_start, cmdline) == 4360, ps_cmdline);
KRING_STATIC_ASSERT(sizeof(struct kring_process_start) == 8456, ps_size);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit, exit_code) == 32, pe_exit_code);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit, comm) == 48, pe_comm);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit, path_len) == 44, pe_path_len);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit_linux, start_time) == 64, pel_start_time);
KRING_STATIC_ASSERT(offsetof(struct kring_process_exit_linux, path) == 80, pel_path);
KRING_STATIC_ASSERT(sizeof(struct kring_process_exit_linux) == 4176, pel_size);
KRING_STATIC_ASSERT(sizeof(struct kring_process_exit) == 64, pe_size);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, base) == 32, il_base);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, path_len) == 56, il_path_len);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, start_time) == 64, il_start_time);
KRING_STATIC_ASSERT(offsetof(struct kring_image_load, path) == 72, il_path);
KRING_STATIC_ASSERT(sizeof(struct kring_image_load) == 4168, il_size);

KRING_STATIC_ASSERT(offsetof(struct kring_exec_failed, tid) == 28, ef_tid);
KRING_STATIC_ASSERT(offsetof(struct kring_exec_failed, error) == 40, ef_error);
KRING_STATIC_ASSERT(offsetof(struct kring_exec_failed, path) == 48, ef_path);
KRING_STATIC_ASSERT(sizeof(struct kring_exec_failed) == 4144, ef_size);

/* Shortest valid payloads: everything before the variable-length tail.
 * KRING_PROCESS_START_MIN_SIZE is that of an unpacked process_start (Windows,
 * and the shared schema's); a Linux ring's schema takes
 * KRING_PROCESS_START_PACKED_MIN_SIZE, where its packed tail starts (see the
 * top of this file). */
#define KRING_PROCESS_START_MIN_SIZE 4360
#define KRING_PROCESS_START_PACKED_MIN_SIZE 160
/* The largest packed process_start with a command line of up to
 * KRING_ARGS_BYTES (NUL included): the fixed part, then path, cwd and the
 * parent's path of up to KRING_PATH_BYTES each. The size of process_start in
 * the Linux schema; a ring with room for longer command lines adds the
 * difference (the loader's max_args). */
#define KRING_PROCESS_START_LINUX_SIZE (KRING_PROCESS_START_PACKED_MIN_SIZE + 3 * KRING_PATH_BYTES + KRING_ARGS_BYTES)
#define KRING_PROCESS_EXIT_MIN_SIZE 64
#define KRING_PROCESS_EXIT_LINUX_MIN_SIZE 80
#define KRING_IMAGE_LOAD_MIN_SIZE 72
#define KRING_EXEC_FAILED_MIN_SIZE 48
KRING_STATIC_ASSERT(KRING_EXEC_FAILED_MIN_SIZE == offsetof(struct kring_exec_failed, path), ef_min);
KRING_STATIC_ASSERT(KRING_PROCESS_START_MIN_SIZE == offsetof(struct kring_process_start, cmdline), ps_min);
KRING_STATIC_ASSERT(KRING_PROCESS_START_PACKED_MIN_SIZE == offsetof(struct kring_process_start, integrity), ps_pmin);
KRING_STATIC_ASSERT(KRING_PROCESS_START_LINUX_SIZE == 16544, ps_linux_size);
KRING_STATIC_ASSERT(KRING_PROCESS_START_LINUX_SIZE >= sizeof(struct kring_process_start), ps_linux_covers);
KRING_STATIC_ASSERT(KRING_PROCESS_EXIT_MIN_SIZE == sizeof(struct kring_process_exit), pe_min);
KRING_STATIC_ASSERT(KRING_PROCESS_EXIT_LINUX_MIN_SIZE == offsetof(struct kring_process_exit_linux, path), pel_min);
KRING_STATIC_ASSERT(KRING_IMAGE_LOAD_MIN_SIZE == offsetof(struct kring_image_load, path), il_min);

#endif /* KRING_EVENTS_H */
