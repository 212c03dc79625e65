/*
 * kring_bpf_map.c - a consumer over a Linux BPF ring buffer map
 * (BPF_MAP_TYPE_RINGBUF, PROTOCOL.md 11.2): the mappings the kernel allows,
 * and epoll on the map fd to wait (PROTOCOL.md 9.3). Linux only.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "kring_plat.h"

int kring_consumer_set_epoll(struct kring_consumer *c, int fd)
{
    struct epoll_event ev;
    const char *call = "epoll_ctl";
    int ep = epoll_create1(EPOLL_CLOEXEC), wake = -1, err = 0;

    if (ep < 0)
        return kring_plat_os_fail(&c->m, "epoll_create1", errno);
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN;
    if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0)
        err = errno;
    /* An eventfd in the same set: kring_interrupt wakes a wait with it. */
    else if ((wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
        call = "eventfd", err = errno;
    else if (epoll_ctl(ep, EPOLL_CTL_ADD, wake, &ev) != 0)
        err = errno;
    if (err != 0) {
        if (wake >= 0)
            close(wake);
        close(ep);
        return kring_plat_os_fail(&c->m, call, err);
    }
    if (c->m.epoll_fd >= 0)
        close(c->m.epoll_fd);
    if (c->m.wake_fd >= 0)
        close(c->m.wake_fd);
    c->m.epoll_fd = ep;
    c->m.wake_fd = wake;
    c->m.wait_kind = KRING_WAIT_EPOLL;
    return KRING_OK;
}

int kring_consumer_map_bpf(struct kring_consumer *c, int map_fd, uint64_t capacity)
{
    const long page = sysconf(_SC_PAGESIZE);
    void *cons, *prod;
    int rc, err;

    if (!c || map_fd < 0 || page <= 0 || capacity < (uint64_t)page || (capacity & (capacity - 1)) != 0 ||
        capacity > KRING_MAX_CAPACITY)
        return KRING_E_INVAL;
    cons = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (cons == MAP_FAILED)
        return kring_plat_os_fail(&c->m, "mmap", errno);
    /* The kernel maps the data area twice back to back: a record that wraps
     * is contiguous. Only the consumer page may be mapped writable. */
    prod = mmap(NULL, (size_t)page + 2 * capacity, PROT_READ, MAP_SHARED, map_fd, (off_t)page);
    if (prod == MAP_FAILED) {
        err = errno;
        munmap(cons, (size_t)page);
        return kring_plat_os_fail(&c->m, "mmap", err);
    }
    rc = kring_consumer_init(c, cons, prod, (uint8_t *)prod + page, capacity, 1, 0);
    c->m.base_cons = cons;
    c->m.len_cons = (uint64_t)page;
    c->m.base_prod = prod;
    c->m.len_prod = (uint64_t)page + 2 * capacity;
    if (rc == KRING_OK)
        rc = kring_consumer_set_epoll(c, map_fd);
    if (rc != KRING_OK)
        kring_plat_unmap(&c->m);
    return rc;
}
