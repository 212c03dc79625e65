/*
 * kring_image.bpf.c - image_load records from mmap: sys_enter_mmap remembers
 * an executable file mapping, sys_exit_mmap reports it once the mmap
 * succeeded. One unit of kring_events.bpf.o: what the programs and records
 * are, kring_events.bpf.c.
 */
#include "kring_events.bpf.h"
#include "kring_wake.bpf.h"
#include "kring_filter.bpf.h"
#include "kring_path.bpf.h"
#include "kring_image.bpf.h"

#define PROT_EXEC 0x4
#define MAP_ANONYMOUS 0x20

/* An executable file mmap() in flight, by thread (pid_tgid). */
struct mmap_args {
    __u64 len;
    __u64 off;
    __s64 fd;
};

struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, 8192);
    __type(key, __u64);
    __type(value, struct mmap_args);
} kring_mmaps SEC(".maps");

/* ---- mmap ------------------------------------------------------------- */

SEC("tp/syscalls/sys_enter_mmap")
int kring_mmap_ent(struct trace_event_raw_sys_enter *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct mmap_args a;
    __s64 fd = (int)ctx->args[4];

    if (!(ctx->args[2] & PROT_EXEC) || (ctx->args[3] & MAP_ANONYMOUS) || fd < 0 || !current_wanted())
        return 0;
    a.len = ctx->args[1];
    a.off = ctx->args[5];
    a.fd = fd;
    bpf_map_update_elem(&kring_mmaps, &id, &a, BPF_ANY);
    return 0;
}

SEC("tp/syscalls/sys_exit_mmap")
int kring_mmap_ret(struct trace_event_raw_sys_exit *ctx)
{
    __u64 id = bpf_get_current_pid_tgid();
    struct mmap_args *a = bpf_map_lookup_elem(&kring_mmaps, &id);
    struct task_struct *task;
    struct fdtable *fdt;
    struct file **fds, *f = 0;
    struct scratch *s;
    __u64 len, off, page;
    __s64 fd;
    long ret = ctx->ret;

    if (!a)
        return 0;
    len = a->len;
    off = a->off;
    fd = a->fd;
    bpf_map_delete_elem(&kring_mmaps, &id);
    if (ret < 0 && ret > -4096)
        return 0;                               /* the mmap failed */
    s = get_scratch();
    if (!s)
        return 0;
    task = (struct task_struct *)bpf_get_current_task();
    fdt = BPF_CORE_READ(task, files, fdt);
    if (fdt && fd < BPF_CORE_READ(fdt, max_fds)) {
        fds = BPF_CORE_READ(fdt, fd);
        bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
    }
    page = 1ULL << (kring_cfg.page_shift & 63);
    image_init(&s->il, (__u32)(id >> 32), (__u64)ret, (len + page - 1) & ~(page - 1), off);
    s->il.detail = file_path(s, f, s->il.path, &s->il.path_len);
    emit_image(&s->il, 0, 0);
    return 0;
}
