/*
 * kring_filter.bpf.h - which processes' events are written: the filters of
 * kring_bpf_config.filter (KRING_BPF_FILTER_*), checked by every program
 * before it reads anything else or reserves a record, so that an event of a
 * process outside the filters costs a few map lookups and nothing more: no
 * ring space, no sequence number, no wakeup, no work for the consumer.
 *
 * A process passes when it passes every filter that is on:
 *   PIDS    its tgid is a key of kring_pids (filled by the loader);
 *   TREE    its tgid is a key of kring_tree: the loader puts the root and its
 *           descendants running at attach there; kring_fork adds each child
 *           of a member (by real parent, the record's ppid) before the check,
 *           and process exit removes the member;
 *   UIDS    its real uid is a key of kring_uids;
 *   CGROUP  its cgroup (v2, the default hierarchy) is kring_cfg.cgroup_id or
 *           below it: its ancestor at kring_cfg.cgroup_level is that cgroup.
 * The process is the one the event is about: the child at fork, the current
 * process for exec, exit, exec_failed and image_load.
 * With no filter on (kring_cfg.filter 0, read-only data) the verifier removes
 * every check.
 */
#ifndef KRING_FILTER_BPF_H
#define KRING_FILTER_BPF_H

#include "kring_events.bpf.h"

/* Sizes of the filter maps (the loader rejects more keys than they hold). */
#define KRING_FILTER_PIDS_MAX 1024
#define KRING_FILTER_TREE_MAX 65536
#define KRING_FILTER_UIDS_MAX 256

struct kring_key_set_map {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, KRING_FILTER_PIDS_MAX);
    __type(key, __u32);
    __type(value, __u8);
};

struct kring_tree_map {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, KRING_FILTER_TREE_MAX);
    __type(key, __u32);
    __type(value, __u8);
};

extern struct kring_key_set_map kring_pids SEC(".maps");
extern struct kring_tree_map kring_tree SEC(".maps");
extern struct kring_key_set_map kring_uids SEC(".maps");

/* Kernels before 6.1 kept the ancestors' ids, not pointers. */
struct cgroup___ids {
    int level;
    __u64 ancestor_ids[];
} __attribute__((preserve_access_index));

/* Whether the cgroup of `p` is kring_cfg.cgroup_id or below it. */
static __always_inline int in_cgroup(struct task_struct *p)
{
    struct cgroup *cg = BPF_CORE_READ(p, cgroups, dfl_cgrp);
    __u32 want = kring_cfg.cgroup_level;
    struct cgroup *a = 0;
    __u64 id = 0;

    if (!cg || BPF_CORE_READ(cg, level) < (int)want || want > 255)
        return 0;
    if (bpf_core_field_exists(cg->ancestors)) {
        bpf_core_read(&a, sizeof(a), &cg->ancestors[want & 255]);
        id = a ? BPF_CORE_READ(a, kn, id) : 0;
    } else {
        struct cgroup___ids *old = (void *)cg;

        bpf_core_read(&id, sizeof(id), &old->ancestor_ids[want & 255]);
    }
    return id == kring_cfg.cgroup_id;
}

/* Whether the events of process `p` are written (see the top of this file). */
static __always_inline int wanted(struct task_struct *p)
{
    __u32 f = kring_cfg.filter, key;

    if (!f)
        return 1;
    key = BPF_CORE_READ(p, tgid);
    if ((f & KRING_BPF_FILTER_PIDS) && !bpf_map_lookup_elem(&kring_pids, &key))
        return 0;
    if ((f & KRING_BPF_FILTER_TREE) && !bpf_map_lookup_elem(&kring_tree, &key))
        return 0;
    if (f & KRING_BPF_FILTER_UIDS) {
        key = BPF_CORE_READ(p, real_cred, uid.val);
        if (!bpf_map_lookup_elem(&kring_uids, &key))
            return 0;
    }
    if ((f & KRING_BPF_FILTER_CGROUP) && !in_cgroup(p))
        return 0;
    return 1;
}

static __always_inline int current_wanted(void)
{
    if (!kring_cfg.filter)
        return 1;
    return wanted(bpf_get_current_task_btf());
}

/* At fork: a child of a member of the tree joins it (before its own check). */
static __always_inline void tree_fork(struct task_struct *child)
{
    __u32 parent, pid;
    __u8 one = 1;

    if (!(kring_cfg.filter & KRING_BPF_FILTER_TREE))
        return;
    parent = BPF_CORE_READ(child, real_parent, tgid);
    if (!bpf_map_lookup_elem(&kring_tree, &parent))
        return;
    pid = BPF_CORE_READ(child, tgid);
    if (bpf_map_update_elem(&kring_tree, &pid, &one, BPF_ANY) != 0) {
        __u32 zero = 0;
        struct kring_bpf_counts *c = bpf_map_lookup_elem(&kring_counts, &zero);

        if (c)
            c->tree_full++;
    }
}

/* At process exit (after its check): it leaves the tree, its pid may be reused. */
static __always_inline void tree_exit(struct task_struct *p)
{
    __u32 pid;

    if (!(kring_cfg.filter & KRING_BPF_FILTER_TREE))
        return;
    pid = BPF_CORE_READ(p, tgid);
    bpf_map_delete_elem(&kring_tree, &pid);
}

/* At process exit: whether its exit is written; it leaves the tree either way. */
static __always_inline int exit_wanted(struct task_struct *p)
{
    int w = wanted(p);

    tree_exit(p);
    return w;
}

#endif /* KRING_FILTER_BPF_H */
