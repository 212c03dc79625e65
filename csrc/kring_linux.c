/*
 * kring_linux.c - Linux platform layer: shared-memory ring files, mappings
 * with the right protections for each side, one-consumer/one-producer
 * locks, futex waits and wakes, clocks. (A BPF ring buffer map is attached
 * by kring_bpf_map.c.)
 *
 * A consumer maps page 0 read-write and page 1 + data read-only; a producer
 * the other way round. Open-file-description locks on byte 0 (consumer) and
 * byte 1 (producer) of the ring file keep one of each; the kernel releases
 * them when a process dies.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <kring/kring_atomic.h>
#include "kring_guard.h"
#include "kring_plat.h"

int kring_plat_from_errno(struct kring_map *m, int err)
{
    if (m)
        m->os_error = err;
    switch (err) {
    case ENOENT: return KRING_E_NOTFOUND;
    case EACCES:
    case EPERM:
    case EROFS: return KRING_E_PERM;
    case EEXIST: return KRING_E_EXISTS;
    case ENOMEM: return KRING_E_NOMEM;
    case EINTR: return KRING_E_INTR;
    default: return KRING_E_OS;
    }
}

int kring_plat_os_fail(struct kring_map *m, const char *call, int err)
{
    m->os_call = call;
    return kring_plat_from_errno(m, err);
}

uint64_t kring_plat_realtime_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t kring_plat_monotonic_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint32_t kring_plat_pid(void)
{
    return (uint32_t)getpid();
}

/* Create the file and give it all its blocks now: on a filesystem without
 * room that is ENOSPC here, not SIGBUS at some later write through the
 * mapping. The half-made file is removed on any failure. */
static int shm_create(struct kring_map *m, const char *path, const struct kring_producer_page *tmpl, int mode)
{
    struct kring_producer_page page;
    const char *call = "open";
    int fd, rc, err;

    if (!path || !tmpl)
        return KRING_E_INVAL;
    rc = kring_meta_initial(&page, tmpl);
    if (rc != KRING_OK)
        return rc;
    fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode ? (mode_t)mode : 0600);
    if (fd < 0)
        return kring_plat_os_fail(m, call, errno);
    /* Both zero-fill: the consumer page and the data area start zeroed. */
    err = posix_fallocate(fd, 0, (off_t)(KRING_DATA_OFFSET + page.capacity));
    if (err != 0)
        call = "posix_fallocate";
    else if (pwrite(fd, &page, sizeof page, KRING_PAGE_SIZE) != (ssize_t)sizeof page)
        call = "pwrite", err = errno ? errno : EIO;
    close(fd);
    if (err != 0) {
        unlink(path);
        return kring_plat_os_fail(m, call, err);
    }
    return KRING_OK;
}

int kring_plat_shm_create(const char *path, const struct kring_producer_page *tmpl, int mode)
{
    struct kring_map m;

    kring_map_init(&m, NULL, NULL, NULL, 0, 0, 0);
    return shm_create(&m, path, tmpl, mode);
}

int kring_plat_create(struct kring_map *m, const char *path,
                      const struct kring_producer_page *tmpl, int mode, int role)
{
    int rc;

    kring_map_init(m, NULL, NULL, NULL, 0, 0, 0);
    rc = shm_create(m, path, tmpl, mode);
    if (rc != KRING_OK)
        return rc;
    rc = kring_plat_map(m, path, role, 1);
    if (rc != KRING_OK)
        unlink(path);
    return rc;
}

int kring_plat_shm_unlink(const char *path)
{
    if (unlink(path) != 0)
        return kring_plat_from_errno(NULL, errno);
    return KRING_OK;
}

static int lock_role(struct kring_map *m, int fd, int role)
{
    struct flock fl;

    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = role;          /* byte 0: the consumer, byte 1: the producer */
    fl.l_len = 1;
    if (fcntl(fd, F_OFD_SETLK, &fl) != 0)
        return (errno == EAGAIN || errno == EACCES) ? KRING_E_BUSY : kring_plat_os_fail(m, "fcntl", errno);
    return KRING_OK;
}

int kring_plat_role_held(struct kring_map *m, int role)
{
    struct flock fl;

    if (m->fd < 0)
        return -1;
    memset(&fl, 0, sizeof fl);
    fl.l_type = F_WRLCK;
    fl.l_whence = SEEK_SET;
    fl.l_start = role;
    fl.l_len = 1;
    /* Reports locks of other open file descriptions only: ours holds the
     * other role's byte. */
    if (fcntl(m->fd, F_OFD_GETLK, &fl) != 0)
        return -1;
    return fl.l_type != F_UNLCK;
}

int kring_plat_map(struct kring_map *m, const char *path, int role, int any_owner)
{
    struct kring_producer_page meta;
    struct stat st;
    uint64_t cap;
    int fd, rc, err;
    void *a, *b;

    kring_map_init(m, NULL, NULL, NULL, 0, 0, 0);
    rc = kring_guard_install();
    if (rc != KRING_OK)
        return kring_plat_os_fail(m, "sigaction", errno);
    /* No symbolic link: a name in a shared directory is not to be followed. */
    fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return kring_plat_os_fail(m, "open", errno);
    if (fstat(fd, &st) != 0) {
        rc = kring_plat_os_fail(m, "fstat", errno);
        goto close_fd;
    }
    m->file_uid = (uint32_t)st.st_uid;
    if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size < KRING_DATA_OFFSET ||
        pread(fd, &meta, sizeof meta, KRING_PAGE_SIZE) != (ssize_t)sizeof meta) {
        rc = KRING_E_VERSION;
        goto close_fd;
    }
    /* A producer writes what the consumer will trust as records: not into
     * a file someone else may have put at this name. */
    if (role == 1 && !any_owner && st.st_uid != geteuid() && st.st_uid != 0) {
        m->os_error = 0;
        rc = KRING_E_PERM;
        goto close_fd;
    }
    /* Every bound used from here on comes from this private, checked copy. */
    rc = kring_meta_check(&meta, (uint64_t)st.st_size);
    if (rc != KRING_OK)
        goto close_fd;
    cap = meta.capacity;
    rc = lock_role(m, fd, role);
    if (rc != KRING_OK)
        goto close_fd;

    a = mmap(NULL, KRING_PAGE_SIZE, role == 0 ? PROT_READ | PROT_WRITE : PROT_READ,
             MAP_SHARED, fd, 0);
    if (a == MAP_FAILED) {
        rc = kring_plat_os_fail(m, "mmap", errno);
        goto close_fd;
    }
    b = mmap(NULL, KRING_PAGE_SIZE + cap, role == 1 ? PROT_READ | PROT_WRITE : PROT_READ,
             MAP_SHARED, fd, KRING_PAGE_SIZE);
    if (b == MAP_FAILED) {
        err = errno;
        munmap(a, KRING_PAGE_SIZE);
        rc = kring_plat_os_fail(m, "mmap", err);
        goto close_fd;
    }
    kring_map_init(m, a, b, (uint8_t *)b + KRING_PAGE_SIZE, cap, 0, 1);
    m->file_uid = (uint32_t)st.st_uid;
    m->wait_kind = KRING_WAIT_FUTEX;
    m->fd = fd;
    m->role = role;
    m->base_cons = a;
    m->len_cons = KRING_PAGE_SIZE;
    m->base_prod = b;
    m->len_prod = KRING_PAGE_SIZE + cap;
    return KRING_OK;

close_fd:
    close(fd);
    return rc;
}

void kring_plat_unmap(struct kring_map *m)
{
    kring_guard_unlend(m);              /* before its pages go */
    if (m->base_cons)
        munmap(m->base_cons, m->len_cons);
    if (m->base_prod)
        munmap(m->base_prod, m->len_prod);
    if (m->epoll_fd >= 0)
        close(m->epoll_fd);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    if (m->fd >= 0)
        close(m->fd);           /* releases the role lock */
    m->base_cons = m->base_prod = NULL;
    m->epoll_fd = m->fd = m->wake_fd = -1;
}

static int futex_wait(const volatile uint32_t *word, uint32_t seen, int64_t timeout_ns)
{
    struct timespec ts, *tsp = NULL;

    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    /* Shared (not FUTEX_PRIVATE): the word lives in a file mapped by two processes. */
    if (syscall(SYS_futex, word, FUTEX_WAIT, seen, tsp, NULL, 0) == 0)
        return KRING_OK;
    switch (errno) {
    case EAGAIN: return KRING_OK;       /* the word changed before we slept */
    case ETIMEDOUT: return KRING_E_TIMEOUT;
    case EINTR: return KRING_E_INTR;
    default: return KRING_E_OS;
    }
}

static void futex_wake(const volatile uint32_t *word)
{
    syscall(SYS_futex, word, FUTEX_WAKE, INT_MAX, NULL, NULL, 0);
}

/* The low 32 bits of consumer_pos, in either byte order. */
static const volatile uint32_t *consumer_pos_lo(const struct kring_map *m)
{
    const volatile uint32_t *w = (const volatile uint32_t *)&m->cons->consumer_pos;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return w + 1;
#else
    return w;
#endif
}

int kring_plat_wait_data(struct kring_consumer *c, uint32_t seen_wake_seq, int64_t timeout_ns)
{
    return futex_wait(&c->m.prod->wake_seq, seen_wake_seq, timeout_ns);
}

void kring_plat_wake_data(struct kring_map *m)
{
    futex_wake(&m->prod->wake_seq);
}

int kring_plat_wait_space(struct kring_producer *p, uint32_t seen_cons_lo, int64_t timeout_ns)
{
    return futex_wait(consumer_pos_lo(&p->m), seen_cons_lo, timeout_ns);
}

void kring_plat_wake_space(struct kring_map *m)
{
    futex_wake(consumer_pos_lo(m));
}

void kring_plat_interrupt(struct kring_map *m)
{
    const uint64_t one = 1;

    /* A waiter of this process sleeps on one of these words or in epoll;
     * a waiter of another process woken too re-checks and sleeps again. */
    if (m->wait_kind == KRING_WAIT_FUTEX) {
        futex_wake(&m->prod->wake_seq);
        futex_wake(consumer_pos_lo(m));
    }
    if (m->wake_fd >= 0 && write(m->wake_fd, &one, sizeof one) < 0) {
        /* The counter is full (EAGAIN): it is readable already. */
    }
}

int kring_plat_epoll_wait(struct kring_map *m, int64_t timeout_ns)
{
    struct epoll_event ev;
    int ms = timeout_ns < 0 ? -1 : (int)((timeout_ns + 999999) / 1000000);
    int r = epoll_wait(m->epoll_fd, &ev, 1, ms);

    if (r > 0)
        return KRING_OK;
    if (r == 0)
        return KRING_E_TIMEOUT;
    return errno == EINTR ? KRING_E_INTR : kring_plat_os_fail(m, "epoll_wait", errno);
}
