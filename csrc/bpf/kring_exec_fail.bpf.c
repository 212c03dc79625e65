/*
 * kring_exec_fail.bpf.c - exec_failed records: the execve/execveat syscall
 * tracepoints remember the filename on entry and report an exec that failed
 * on return. One unit of kring_events.bpf.o: what the programs and records
 * are, kring_events.bpf.c.
 */
#include "kring_events.bpf.h"
#include "kring_wake.bpf.h"
#include "kring_filter.bpf.h"

/* ---- failed execs ----------------------------------------------------- */

/* The filename argument of an execve/execveat in flight, by thread (pid_tgid):
 * a user pointer, read only if the exec fails (the caller's memory is then
 * still there). */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, __u64);
} kring_execs SEC(".maps");

static __always_inline int exec_enter(__u64 filename)
{
    __u64 id = bpf_get_current_pid_tgid();

    if (!current_wanted())
        return 0;
    bpf_map_update_elem(&kring_execs, &id, &filename, BPF_ANY);
    return 0;
}

static __always_inline int exec_return(long ret)
{
    __u64 id = bpf_get_current_pid_tgid();
    __u64 *fp = bpf_map_lookup_elem(&kring_execs, &id), filename;
    struct task_struct *task;
    struct kring_exec_failed *ef;
    struct scratch *s;
    long n;
    __u32 len;

    if (!fp)
        return 0;
    filename = *fp;
    bpf_map_delete_elem(&kring_execs, &id);
    if (ret >= 0 || ret < -4095)
        return 0;                               /* the exec succeeded */
    s = get_scratch();
    if (!s)
        return 0;
    ef = &s->ef;
    task = (struct task_struct *)bpf_get_current_task();
    ef->pid = (__u32)(id >> 32);
    ef->tid = (__u32)id;
    ef->uid = (__u32)bpf_get_current_uid_gid();
    ef->euid = BPF_CORE_READ(task, cred, euid.val);
    ef->error = (__s32)-ret;
    ef->detail = 0;
    n = filename ? bpf_probe_read_user_str(ef->path, KRING_PATH_BYTES, (void *)filename) : -1;
    if (n <= 0) {
        n = 1;
        ef->path[0] = 0;
        ef->detail |= KRING_D_NO_PATH;
    } else if (n == KRING_PATH_BYTES) {
        ef->detail |= KRING_D_PATH_TRUNCATED;  /* the kernel refuses it anyway (ENAMETOOLONG) */
    }
    header(&ef->h, KRING_TYPE_EXEC_FAILED, (ef->detail & KRING_D_PATH_TRUNCATED) ? KRING_EV_TRUNCATED : 0);
    len = KRING_EXEC_FAILED_MIN_SIZE + ((__u32)n & (2 * KRING_PATH_BYTES - 1));
    if (len > sizeof(*ef))
        len = sizeof(*ef);
    submit(ef, len, 0);
    return 0;
}

SEC("tp/syscalls/sys_enter_execve")
int kring_execve_ent(struct trace_event_raw_sys_enter *ctx)
{
    return exec_enter(ctx->args[0]);
}

SEC("tp/syscalls/sys_enter_execveat")
int kring_execveat_ent(struct trace_event_raw_sys_enter *ctx)
{
    return exec_enter(ctx->args[1]);
}

SEC("tp/syscalls/sys_exit_execve")
int kring_execve_ret(struct trace_event_raw_sys_exit *ctx)
{
    return exec_return(ctx->ret);
}

SEC("tp/syscalls/sys_exit_execveat")
int kring_execveat_ret(struct trace_event_raw_sys_exit *ctx)
{
    return exec_return(ctx->ret);
}
