/*
 * kring_image.bpf.h - building and committing an image_load record, for the
 * images mapped at exec (kring_process.bpf.c) and by mmap (kring_image.bpf.c).
 */
#ifndef KRING_IMAGE_BPF_H
#define KRING_IMAGE_BPF_H

#include "kring_events.bpf.h"
#include "kring_wake.bpf.h"

/* ---- image_load ------------------------------------------------------- */

/* can_arm: see wake_later(). */
static __always_inline void emit_image(struct kring_image_load *il, __u32 detail, int can_arm)
{
    __u32 len = KRING_IMAGE_LOAD_MIN_SIZE + (il->path_len & (KRING_PATH_BYTES - 1)) + 1;

    il->detail |= detail;
    header(&il->h, KRING_TYPE_IMAGE_LOAD, (il->detail & KRING_D_PATH_TRUNCATED) ? KRING_EV_TRUNCATED : 0);
    if (len > sizeof(*il))
        len = sizeof(*il);
    submit(il, len, can_arm);
}

static __always_inline void image_init(struct kring_image_load *il, __u32 pid, __u64 base, __u64 size,
                                       __u64 off)
{
    il->pid = pid;
    il->detail = 0;
    il->base = base;
    il->size = size;
    il->file_offset = off;
    il->reserved[0] = 0;
    il->reserved[1] = 0;
    il->reserved[2] = 0;
    il->start_time = start_time(bpf_get_current_task_btf());
}

#endif /* KRING_IMAGE_BPF_H */
