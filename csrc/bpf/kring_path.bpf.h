/*
 * kring_path.bpf.h - canonical paths: a dentry walked up to the root of its
 * mount namespace (through mount points) with bpf_loop, into the scratch
 * record's path area (dentry_path, file_path).
 */
#ifndef KRING_PATH_BPF_H
#define KRING_PATH_BPF_H

#include "kring_events.bpf.h"

/* ---- canonical paths -------------------------------------------------- */

static __always_inline struct mount *real_mount(struct vfsmount *m)
{
    return (struct mount *)((char *)m - bpf_core_field_offset(struct mount, mnt));
}

static long walk_step(__u32 i, void *ctx)
{
    __u32 len, off;
    struct scratch *s = get_scratch();
    struct walk *w;
    /* Locals: BPF_CORE_READ must not see our own struct's fields. */
    struct dentry *d, *parent, *mnt_root;
    struct vfsmount *vfsmnt;
    struct mount *mnt;
    const unsigned char *name;

    if (!s)
        return 1;
    w = &s->w;
    d = w->dentry;
    vfsmnt = w->vfsmnt;
    mnt = w->mnt;
    if (!d)
        return 1;
    parent = BPF_CORE_READ(d, d_parent);
    mnt_root = BPF_CORE_READ(vfsmnt, mnt_root);
    if (d == parent && d != mnt_root && i == 0) {
        /* A file made with no name in any directory (alloc_file_pseudo:
         * memfd_create, anonymous inodes): its dentry is its own parent and
         * its name ("memfd:NAME") is all there is. */
        w->pseudo = 1;
    } else if (d == mnt_root || d == parent) {
        struct mount *up = BPF_CORE_READ(mnt, mnt_parent);

        if (d != mnt_root || !up || up == mnt) {
            /* The root of the namespace (or of a filesystem that is not
             * mounted anywhere: pipes, memfd, a detached mount). */
            w->done = 1;
            return 1;
        }
        /* Cross to the mount point in the parent mount. */
        w->dentry = BPF_CORE_READ(mnt, mnt_mountpoint);
        w->mnt = up;
        w->vfsmnt = (struct vfsmount *)((char *)up + bpf_core_field_offset(struct mount, mnt));
        return 0;
    }
    len = BPF_CORE_READ(d, d_name.len);
    name = BPF_CORE_READ(d, d_name.name);
    if (len > NAME_MAX)
        len = NAME_MAX;
    if (len + 2 > w->pos) {            /* keep pos >= 1: at most WALK_AREA - 1 bytes */
        w->cut = 1;
        return 1;
    }
    off = w->pos - len;
    bpf_probe_read_kernel(&s->path[off & (WALK_AREA - 1)], len & NAME_MAX, name);
    if (w->pseudo) {
        w->pos = off;
        w->done = 1;
        return 1;
    }
    off -= 1;
    s->path[off & (WALK_AREA - 1)] = '/';
    w->pos = off;
    w->dentry = parent;
    return 0;
}

/* Write the canonical path of dentry `d` on mount `vfsmnt` into dst (room
 * for KRING_PATH_BYTES), NUL terminated; its length before the NUL into
 * *len. Returns KRING_D_* bits: KRING_D_PATH_TRUNCATED when the walk ran out
 * of room or depth (the tail of the path is kept), KRING_D_MEMFD for a memfd
 * ("memfd:NAME"), KRING_D_DELETED for an unlinked file (its last path),
 * KRING_D_NO_PATH (and an empty string) without a dentry. */
static __always_inline __u32 dentry_path(struct scratch *s, struct dentry *d, struct vfsmount *vfsmnt,
                                         char *dst, __u16 *len)
{
    struct walk *w = &s->w;
    __u32 pos, n, bits = 0;

    if (!d || !vfsmnt) {
        dst[0] = 0;
        *len = 0;
        return KRING_D_NO_PATH;
    }
    w->dentry = d;
    w->vfsmnt = vfsmnt;
    w->mnt = real_mount(vfsmnt);
    w->pos = WALK_AREA;
    w->done = 0;
    w->cut = 0;
    w->pseudo = 0;
    /* d_unlinked(): out of the dcache hash and not a root of its own. */
    if (!BPF_CORE_READ(d, d_hash.pprev) && BPF_CORE_READ(d, d_parent) != d)
        bits |= KRING_D_DELETED;
    bpf_loop(WALK_MAX_DEPTH, walk_step, 0, 0);
    pos = w->pos;
    if (pos >= WALK_AREA) {
        /* The root itself. */
        pos = WALK_AREA - 1;
        s->path[pos] = '/';
    }
    pos &= WALK_AREA - 1;
    n = WALK_AREA - pos;                /* 1 .. WALK_AREA - 1 */
    if (w->pseudo && n >= 6 && s->path[pos & (WALK_AREA - 1)] == 'm' &&
        s->path[(pos + 1) & (WALK_AREA - 1)] == 'e' && s->path[(pos + 2) & (WALK_AREA - 1)] == 'm' &&
        s->path[(pos + 3) & (WALK_AREA - 1)] == 'f' && s->path[(pos + 4) & (WALK_AREA - 1)] == 'd' &&
        s->path[(pos + 5) & (WALK_AREA - 1)] == ':')
        bits |= KRING_D_MEMFD;
    n &= WALK_AREA - 1;
    bpf_probe_read_kernel(dst, n, &s->path[pos]);
    dst[n] = 0;
    *len = (__u16)n;
    if (!w->done || w->cut)
        bits |= KRING_D_PATH_TRUNCATED;
    return bits;
}

/* dentry_path() of the file `f` (KRING_D_NO_PATH when there is none). */
static __always_inline __u32 file_path(struct scratch *s, struct file *f, char *dst, __u16 *len)
{
    if (!f) {
        dst[0] = 0;
        *len = 0;
        return KRING_D_NO_PATH;
    }
    return dentry_path(s, BPF_CORE_READ(f, f_path.dentry), BPF_CORE_READ(f, f_path.mnt), dst, len);
}

#endif /* KRING_PATH_BPF_H */
