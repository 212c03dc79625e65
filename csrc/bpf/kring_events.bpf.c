/*
 * kring_events.bpf.c - the Linux kernel producer of pykring's kernel event
 * records (include/kring/kring_events.h, the structs the Windows driver writes too),
 * written into a BPF ring buffer map that pykring drains like any kring ring.
 *
 * Programs (each attached only when its records are wanted):
 *   kring_fork       tp_btf/sched_process_fork    process_start for a new process
 *                                                 (new threads are ignored)
 *   kring_exec       tp_btf/sched_process_exec    process_start with KRING_D_EXEC;
 *                                                 image_load of the main binary
 *                                                 (KRING_D_MAIN_IMAGE) and of the
 *                                                 program interpreter (ld.so)
 *   kring_exit       tp_btf/sched_process_exit    process_exit once the whole
 *                                                 thread group is gone (group_dead;
 *                                                 kring_exit_live on older kernels)
 *   kring_execve*_ent tp/syscalls/sys_enter_execve(at)  remembers the filename pointer
 *   kring_execve*_ret tp/syscalls/sys_exit_execve(at)   exec_failed when the exec failed
 *                                                 (with process records, where tracefs is there)
 *   kring_mmap_ent   tp/syscalls/sys_enter_mmap   remembers executable file mappings
 *   kring_mmap_ret   tp/syscalls/sys_exit_mmap    image_load when such an mmap succeeded
 *
 * Records:
 *   - Every record takes the next ring-wide sequence number (kring_seq, one
 *     atomic add) before it is written; a record that does not fit is counted
 *     in kring_counts.dropped, so the consumer's sequence gaps equal the drops.
 *     Several CPUs number and commit in their own order: the consumer counts a
 *     late number as filling an earlier gap (PROTOCOL.md 5.6).
 *   - ts_ns is ns since the Unix epoch: a kernel clock plus an offset the loader
 *     measured (kring_bpf_config).
 *   - Variable-length records end after their last string's NUL: process_start
 *     after the parent's path (path, command line, cwd, parent path packed one
 *     after the other), image_load after the path. They are built in a
 *     per-CPU scratch record and copied with bpf_ringbuf_output(), whose length
 *     (unlike bpf_ringbuf_reserve's) need not be a constant. Tracepoint programs
 *     run with preemption off and do not nest on a CPU, so one scratch area per
 *     CPU is enough.
 *   - Paths are canonical: the opened file's dentry walked up to the root of its
 *     mount namespace (through mount points), with bpf_loop. A path longer than
 *     KRING_PATH_MAX - 1 bytes is cut there (KRING_D_PATH_TRUNCATED); one longer
 *     than WALK_AREA - 1 bytes or deeper than WALK_MAX_DEPTH keeps its last part.
 *   - `detail` bits (kring_events.h): process_start from fork has none of
 *     KRING_D_EXEC; its path and command line are the parent's (the child runs
 *     the same program until it execs). From exec: KRING_D_EXEC, creator_pid =
 *     the process itself, creator_tid = the thread that called execve (its id
 *     before exec). Kernel threads have no executable: KRING_D_NO_PATH.
 *     process_exit: KRING_D_NO_START when the process started before the fork
 *     program was attached. image_load: KRING_D_MAIN_IMAGE for the program's
 *     own executable.
 *   - Fields: uid is the real uid; session_id is 0 (Windows only). process_start's
 *     cwd is the process's working directory (fs->pwd) and its parent path the
 *     executable of real_parent, both canonical and read when the record is
 *     written (a fork child's cwd is its parent's until it changes it); cut ones
 *     keep their tail (KRING_D_CWD_TRUNCATED, KRING_D_PARENT_PATH_TRUNCATED).
 *     The Windows token fields are not in these records (the packed tail starts
 *     at their offset). process_exit:
 *     exit_code is the exit status 0..255 or -signal, raw_status the wait status.
 *     image_load: base/size/file_offset describe the executable mapping: for an
 *     mmap its address, length (rounded up to pages) and offset; at exec the
 *     code mapping of the program (at mm->start_code) and of the interpreter
 *     (where the new thread starts).
 *   - Not seen: memory made executable later (mprotect), 32-bit mmap2, files
 *     mapped by the kernel other than at exec.
 *
 * The object is linked from units that each hold one family of programs
 * (bpftool gen object, libbpf's static linker; setup.py builds it):
 *   kring_events.bpf.c     this unit: the license and the maps and globals every
 *                          unit shares, defined once (kring_events.bpf.h
 *                          declares them extern for the others)
 *   kring_process.bpf.c    process_start and process_exit (fork, exec, exit)
 *   kring_exec_fail.bpf.c  exec_failed (the execve/execveat syscall tracepoints)
 *   kring_image.bpf.c      image_load from executable file mmaps
 * Their shared helpers: kring_events.bpf.h (scratch record, record header,
 * sequence and counts), kring_filter.bpf.h (which processes' events are
 * written: pids, tree, uids, cgroup, checked first), kring_wake.bpf.h (committing records, batched
 * wakeups), kring_path.bpf.h (canonical paths), kring_image.bpf.h (image_load
 * records, for exec and mmap).
 */
#include "kring_events.bpf.h"
#include "kring_wake.bpf.h"
#include "kring_filter.bpf.h"

char LICENSE[] SEC("license") = "Dual MIT/GPL";

const volatile struct kring_bpf_config kring_cfg SEC(".rodata.kring") = {};

/* Next sequence number (ring-wide). */
__u64 kring_seq = 0;

struct kring_events_map kring_events SEC(".maps");
struct kring_counts_map kring_counts SEC(".maps");

/* One scratch record per CPU (see struct scratch). */
struct kring_scratch_map kring_scratch SEC(".maps");

/* The filters' sets (kring_filter.bpf.h); the loader sizes them. */
struct kring_key_set_map kring_pids SEC(".maps");
struct kring_tree_map kring_tree SEC(".maps");
struct kring_key_set_map kring_uids SEC(".maps");

/* The wake timer and whether it is armed (kring_wake.bpf.h). */
struct kring_wake_map kring_wake SEC(".maps");
__u64 kring_wake_armed = 0;
