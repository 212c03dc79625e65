/*
 * kring_driver_map.c - a consumer over the ring of the Windows driver
 * kring.sys (docs/DRIVER.md, PROTOCOL.md 11.3), from its ATTACH reply.
 * Windows only: built into the extension on win32 and into the mingw test
 * programs.
 *
 * The caller opens \\.\KRing, sends IOCTL_KRING_ATTACH (with
 * KRING_IOCTL_VERSION in the request), checks the reply's size, version,
 * method and capacity, and takes the reply's event_handle: a handle the
 * driver made in the caller's process, SYNCHRONIZE access only, to an event
 * that has no name anyone can look up (pykring/kernel_windows.py,
 * tests/windows/kring_client.c). It passes that handle here as
 * event_handle; this file does the rest of the attach.
 */
#include <string.h>

#include <kring/kring_ioctl.h>
#include "kring_plat.h"

int kring_consumer_map_driver(struct kring_consumer *c, const struct kring_attach_out *reply,
                              void *event_handle, struct kring_producer_page *meta)
{
    struct kring_producer_page copy;
    uint32_t t;
    int rc;

    if (!c || !reply || !event_handle || !reply->producer_page)
        return KRING_E_INVAL;
    /* Until the end the consumer owns nothing: a failed attach leaves
     * nothing to close. */
    memset(c, 0, sizeof *c);
    kring_map_init(&c->m, NULL, NULL, NULL, 0, 0, 0);
    /* Check a private copy: the page is shared (read-only here, but the
     * driver could change it), and only the copy's bounds are used. */
    memcpy(&copy, (const void *)(uintptr_t)reply->producer_page, sizeof copy);
    rc = kring_meta_check(&copy, KRING_DATA_OFFSET + reply->capacity);
    if (rc == KRING_OK && copy.capacity != reply->capacity)
        rc = KRING_E_CORRUPT;
    if (rc == KRING_E_CORRUPT)
        c->err_reason = KRING_BAD_META;
    if (rc != KRING_OK)
        return rc;
    /* On KRING_E_CORRUPT here, err_* name the position at fault. */
    rc = kring_consumer_init(c, (struct kring_consumer_page *)(uintptr_t)reply->consumer_page,
                             (struct kring_producer_page *)(uintptr_t)reply->producer_page,
                             (uint8_t *)(uintptr_t)reply->data, copy.capacity, 0, 1);
    if (rc != KRING_OK)
        return rc;
    /* Types and bounds from the checked copy. */
    for (t = 0; t < copy.ntypes; t++) {
        const struct kring_type *ty = &copy.types[t];

        if (kring_consumer_set_type(c, ty->id, ty->size, ty->min_size) != KRING_OK) {
            c->err_reason = KRING_BAD_META;
            return KRING_E_CORRUPT;
        }
    }
    /* The driver's event wakes kring_wait (PROTOCOL.md 9.3); the consumer
     * closes it in kring_consumer_close. */
    c->m.h_data_event = event_handle;
    c->m.wait_kind = KRING_WAIT_EVENT;
    c->seq_started = 1;         /* a new ring numbers its records from 0 */
    c->next_seq = 0;
    if (meta)
        memcpy(meta, &copy, sizeof copy);
    return KRING_OK;
}
