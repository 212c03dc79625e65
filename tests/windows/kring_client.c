/*
 * kring_client.c - drives kring.sys from user mode and checks what it
 * delivers; run under Wine by tests/windows/test_win_wine_driver.py.
 *
 * The attach sequence is the one of pykring/kernel_windows.py: open
 * \\.\KRing, IOCTL_KRING_ATTACH (the reply hands over a SYNCHRONIZE-only
 * handle to the ring's event), then kring_consumer_map_driver (csrc/kring_driver_map.c): a
 * private, checked copy of the producer page, the consumer over the ring,
 * the record types from that copy, and the event handle as the consumer's
 * data event (KRING_WAIT_EVENT). A mapped ring (KRING_METHOD_MAP) is then
 * drained and waited on with the csrc consumer as it is. A copy-mode ring
 * (KRING_METHOD_COPY: Wine cannot map) is replicated into a private ring of
 * the same capacity with IOCTL_KRING_READ, attached with the same call
 * (the reply's addresses replaced by the replica's) and drained with the
 * same consumer code.
 *
 * Usage:
 *   kring_client.exe release     checks against the release driver
 *   kring_client.exe full        every check against the test driver
 *   kring_client.exe notadmin    re-runs itself with Administrators
 *                                disabled in its token: the open must fail
 *   kring_client.exe open        open only (used by notadmin's child)
 *   kring_client.exe poke DELTA...  consumer_pos := producer_pos + DELTA on
 *                                a fresh ring each, against the test driver
 *   kring_client.exe armwindow   a record written in each window of the
 *                                copy-mode wait (READ, READ with ARM, event)
 *
 * Prints "ok <check>" or "FAIL <check>: <why>" per check and a last line
 * "RESULT <failures>"; exits with the number of failures.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kring/kring_atomic.h>
#include <kring/kring_events.h>
#include "kring_user.h"
#include <kring/kring_ioctl.h>

#include "wintest.h"

#define STATUS_OK ((LONG)0)
#define STATUS_INVALID_PARAMETER_ ((LONG)0xC000000DUL)
#define STATUS_INVALID_DEVICE_REQUEST_ ((LONG)0xC0000010UL)
#define STATUS_BUFFER_TOO_SMALL_ ((LONG)0xC0000023UL)
#define STATUS_INFO_LENGTH_MISMATCH_ ((LONG)0xC0000004UL)
#define STATUS_INSUFFICIENT_RESOURCES_ ((LONG)0xC000009AUL)
#define STATUS_QUOTA_EXCEEDED_ ((LONG)0xC0000044UL)
#define STATUS_INVALID_DEVICE_STATE_ ((LONG)0xC0000184UL)
#define STATUS_REVISION_MISMATCH_ ((LONG)0xC0000059UL)

/* DeviceIoControl returning the NTSTATUS (0 on success). */
static LONG ioctl(HANDLE dev, DWORD code, const void *in, DWORD inlen, void *out, DWORD outlen, DWORD *ret)
{
    DWORD got = 0;

    if (DeviceIoControl(dev, code, (void *)in, inlen, out, outlen, &got, NULL)) {
        if (ret)
            *ret = got;
        return STATUS_OK;
    }
    if (ret)
        *ret = 0;
    return last_status();
}

static HANDLE open_device(void)
{
    return CreateFileW(KRING_USER_PATH, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
}

/* One attached ring, as the client sees it. */
struct client {
    HANDLE dev;
    struct kring_attach_out att;
    struct kring_consumer c;
    uint8_t *shadow;        /* METHOD_COPY: replica ring (consumer page, producer page, data) */
    uint8_t *readbuf;       /* METHOD_COPY: READ reply */
};

static LONG attach(struct client *cl, uint32_t flags, uint64_t ring_size, uint32_t events)
{
    struct kring_attach_in req;
    struct kring_attach_out ring;
    HANDLE event;
    DWORD ret;
    LONG st;
    int rc = KRING_OK;

    req = attach_request(flags, ring_size, events);
    st = ioctl(cl->dev, IOCTL_KRING_ATTACH, &req, sizeof req, &cl->att, sizeof cl->att, &ret);
    if (st != STATUS_OK)
        return st;
    /* The reply's event handle is ours from here on, whatever follows. */
    event = (HANDLE)(uintptr_t)cl->att.event_handle;
    if (ret != sizeof cl->att || cl->att.size != sizeof cl->att || cl->att.version != KRING_IOCTL_VERSION ||
        cl->att.capacity != ring_size || !event) {
        if (event)
            CloseHandle(event);
        return (LONG)0xE0000001L;
    }

    /* Where the ring is in this process: the driver's mapping, as the reply
     * says, or for a copy-mode ring a private replica of the same capacity
     * that READ keeps up to date, starting from the reply's producer page. */
    ring = cl->att;
    if (cl->att.method != KRING_METHOD_MAP) {
        cl->shadow = VirtualAlloc(NULL, KRING_DATA_OFFSET + (SIZE_T)cl->att.capacity, MEM_COMMIT | MEM_RESERVE,
                                  PAGE_READWRITE);
        cl->readbuf = VirtualAlloc(NULL, sizeof(struct kring_read_out) + KRING_READ_MAX_BYTES,
                                   MEM_COMMIT | MEM_RESERVE, PAGE_READWRITE);
        if (!cl->shadow || !cl->readbuf) {
            rc = KRING_E_NOMEM;
        } else {
            memcpy(cl->shadow + KRING_PAGE_SIZE, &cl->att.meta, sizeof cl->att.meta);
            ring.consumer_page = (uintptr_t)cl->shadow;
            ring.producer_page = (uintptr_t)(cl->shadow + KRING_PAGE_SIZE);
            ring.data = (uintptr_t)(cl->shadow + KRING_DATA_OFFSET);
        }
    }
    /* On success the consumer owns the event (kring_consumer_close closes it). */
    if (rc == KRING_OK)
        rc = kring_consumer_map_driver(&cl->c, &ring, event, NULL);
    if (rc != KRING_OK) {
        CloseHandle(event);
        return (LONG)0xE0000003L;
    }
    return STATUS_OK;
}

static void detach(struct client *cl)
{
    kring_consumer_close(&cl->c);
    if (cl->shadow)
        VirtualFree(cl->shadow, 0, MEM_RELEASE);
    if (cl->readbuf)
        VirtualFree(cl->readbuf, 0, MEM_RELEASE);
    cl->shadow = cl->readbuf = NULL;
}

/* METHOD_COPY: one READ, appended to the replica. Returns the bytes
 * received, or -1 when the reply does not fit the replica. */
static int64_t refill(struct client *cl, int arm)
{
    struct kring_read_in req = { sizeof req, arm ? KRING_READ_ARM : 0 };
    struct kring_read_out hdr;
    struct kring_producer_page *prod = (struct kring_producer_page *)(cl->shadow + KRING_PAGE_SIZE);
    uint8_t *data = cl->shadow + KRING_DATA_OFFSET;
    const uint64_t cap = cl->att.capacity, mask = cap - 1;
    uint64_t n, off, first;
    DWORD ret;
    LONG st;

    st = ioctl(cl->dev, IOCTL_KRING_READ, &req, sizeof req, cl->readbuf,
               (DWORD)(sizeof hdr + KRING_READ_MAX_BYTES), &ret);
    if (st != STATUS_OK || ret < sizeof hdr)
        return -1;
    memcpy(&hdr, cl->readbuf, sizeof hdr);
    n = hdr.end_pos - hdr.start_pos;
    /* The bytes continue our replica exactly and fit in its free space. */
    if (hdr.size != sizeof hdr || n != ret - sizeof hdr || hdr.start_pos != prod->producer_pos ||
        hdr.end_pos - cl->c.m.cons->consumer_pos > cap)
        return -1;
    off = hdr.start_pos & mask;
    first = n < cap - off ? n : cap - off;
    memcpy(data + off, cl->readbuf + sizeof hdr, (size_t)first);
    memcpy(data, cl->readbuf + sizeof hdr + first, (size_t)(n - first));
    prod->written = hdr.written;
    prod->dropped = hdr.dropped;
    kring_fetch_or_u32(&prod->flags, hdr.ring_flags);
    /* Pairs with kring_drain's acquire load of producer_pos. */
    kring_store_release_u64(&prod->producer_pos, hdr.end_pos);
    return (int64_t)n;
}

/* Wait for records: kring_wait for a mapped ring; READ, then READ with
 * ARM and the event for a copied one. KRING_OK when there is something. */
static int wait_records(struct client *cl, DWORD timeout_ms)
{
    const ULONGLONG start = GetTickCount64();

    if (cl->att.method == KRING_METHOD_MAP)
        return kring_wait(&cl->c, (int64_t)timeout_ms * 1000000);
    for (;;) {
        int64_t got;

        if (kring_pending(&cl->c) > 0 || (kring_ring_flags(&cl->c) & KRING_F_BROKEN))
            return KRING_OK;
        got = refill(cl, 0);
        if (got < 0)
            return KRING_E_CORRUPT;
        if (got == 0)
            got = refill(cl, 1);        /* arms: the next write sets the event */
        if (got < 0)
            return KRING_E_CORRUPT;
        if (got > 0 || (kring_ring_flags(&cl->c) & KRING_F_BROKEN))
            return KRING_OK;
        if (GetTickCount64() - start >= timeout_ms)
            return KRING_E_TIMEOUT;
        WaitForSingleObject(cl->c.m.h_data_event, (DWORD)(timeout_ms - (GetTickCount64() - start)));
    }
}

/* Rows drained per type. */
struct rows {
    struct kring_process_start start[6000];
    struct kring_process_exit exit[64];
    struct kring_image_load image[64];
    uint64_t n_start, n_exit, n_image;
};

static int drain_all(struct client *cl, struct rows *r, uint64_t expect, DWORD timeout_ms)
{
    struct kring_out out[KRING_MAX_TYPES];
    const ULONGLONG start = GetTickCount64();
    uint64_t n;
    int rc = KRING_OK;

    memset(out, 0, sizeof out);
    out[KRING_TYPE_PROCESS_START].buf = (uint8_t *)r->start;
    out[KRING_TYPE_PROCESS_START].capacity = sizeof r->start / sizeof r->start[0];
    out[KRING_TYPE_PROCESS_START].count = r->n_start;
    out[KRING_TYPE_PROCESS_EXIT].buf = (uint8_t *)r->exit;
    out[KRING_TYPE_PROCESS_EXIT].capacity = sizeof r->exit / sizeof r->exit[0];
    out[KRING_TYPE_PROCESS_EXIT].count = r->n_exit;
    out[KRING_TYPE_IMAGE_LOAD].buf = (uint8_t *)r->image;
    out[KRING_TYPE_IMAGE_LOAD].capacity = sizeof r->image / sizeof r->image[0];
    out[KRING_TYPE_IMAGE_LOAD].count = r->n_image;
    while (out[1].count + out[2].count + out[3].count < expect) {
        if (GetTickCount64() - start > timeout_ms) {
            rc = KRING_E_TIMEOUT;
            break;
        }
        rc = wait_records(cl, 2000);
        if (rc == KRING_E_TIMEOUT)
            continue;
        if (rc != KRING_OK)
            break;
        rc = kring_drain(&cl->c, out, UINT64_MAX, 1, &n);
        if (rc != KRING_OK)
            break;
    }
    r->n_start = out[1].count;
    r->n_exit = out[2].count;
    r->n_image = out[3].count;
    return rc;
}

static void inject_init(struct kring_inject_in *in, uint32_t type, uint32_t count, uint32_t pid)
{
    memset(in, 0, sizeof *in);
    in->size = sizeof *in;
    in->type = type;
    in->count = count;
    in->pid = pid;
}

static void set_w(uint16_t *dst, uint16_t *chars, const wchar_t *s)
{
    size_t n = wcslen(s);

    memcpy(dst, s, n * sizeof(wchar_t));
    *chars = (uint16_t)n;
}

static LONG inject(HANDLE dev, const struct kring_inject_in *in)
{
    struct kring_inject_out out;
    DWORD ret;
    LONG st = ioctl(dev, IOCTL_KRING_TEST_INJECT, in, sizeof *in, &out, sizeof out, &ret);

    if (st == STATUS_OK && (ret != sizeof out || out.count != in->count))
        return (LONG)0xE0000004L;
    return st;
}

static LONG stats(HANDLE dev, struct kring_stats_out *s)
{
    DWORD ret;

    memset(s, 0, sizeof *s);
    return ioctl(dev, IOCTL_KRING_STATS, NULL, 0, s, sizeof *s, &ret);
}

static int utf8_eq(const char *field, size_t cap, const char *expect)
{
    return strlen(expect) < cap && strncmp(field, expect, cap) == 0;
}

/* ---- checks ------------------------------------------------------------ */

static void check_bad_requests(HANDLE dev)
{
    struct kring_attach_in req;
    struct kring_attach_out *out = calloc(1, sizeof *out);
    struct kring_read_in rin = { sizeof rin, 0 };
    struct kring_read_out rout;
    LONG st;

    req = attach_request(KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_ALL);
    req.version = 0;                    /* what a version-1 client sends */

    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_REVISION_MISMATCH_, "attach_old_client_refused", "status 0x%08lx", st);
    req.version = KRING_IOCTL_VERSION;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, 8, out, sizeof *out, NULL);
    check(st == STATUS_INFO_LENGTH_MISMATCH_, "attach_short_input", "status 0x%08lx", st);
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, 100, NULL);
    check(st == STATUS_BUFFER_TOO_SMALL_, "attach_short_output", "status 0x%08lx", st);
    req.ring_size = (1 << 16) + 8;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_size_not_power_of_two", "status 0x%08lx", st);
    req.ring_size = 1 << 15;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_size_too_small", "status 0x%08lx", st);
    req.ring_size = 1u << 27;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_size_too_big", "status 0x%08lx", st);
    req.ring_size = 1 << 16;
    req.events = 0;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_no_events", "status 0x%08lx", st);
    req.events = 0x80;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_unknown_events", "status 0x%08lx", st);
    req.events = KRING_EVENTS_ALL;
    req.flags = 0;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_no_method", "status 0x%08lx", st);
    req.flags = KRING_ATTACH_COPY;
    req.size = 12;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
    check(st == STATUS_INVALID_PARAMETER_, "attach_bad_size_field", "status 0x%08lx", st);

    st = ioctl(dev, IOCTL_KRING_READ, &rin, sizeof rin, &rout, sizeof rout, NULL);
    check(st == STATUS_INVALID_DEVICE_STATE_, "read_before_attach", "status 0x%08lx", st);
    st = ioctl(dev, IOCTL_KRING_DETACH, NULL, 0, NULL, 0, NULL);
    check(st == STATUS_INVALID_DEVICE_STATE_, "detach_before_attach", "status 0x%08lx", st);
    st = ioctl(dev, KRING_CTL(0x8FF, KRING_ACCESS_RW), NULL, 0, NULL, 0, NULL);
    check(st == STATUS_INVALID_DEVICE_REQUEST_, "unknown_ioctl", "status 0x%08lx", st);
    free(out);
}

/* 3 process_start records with awkward strings, then truncation. */
static void check_strings(struct client *cl, struct rows *r)
{
    struct kring_inject_in in;
    uint64_t before = r->n_start;
    wchar_t longpath[700], longcmd[1300];
    int i, rc;

    inject_init(&in, KRING_TYPE_PROCESS_START, 1, 9000);
    /* U+00DC U+00EF U+00F8 U+00E9 (2 bytes each), U+20AC (3), U+1F600 (surrogate pair, 4). */
    set_w(in.path, &in.path_chars, L"\\Device\\HarddiskVolume3\\Program Files\\\x00dc\x00ef\x00f8\x00e9\\app\x20ac\xd83d\xde00.exe");
    set_w(in.cmdline, &in.cmdline_chars, L"app.exe --flag \"x y\"");
    in.ppid = 42;
    in.tid = 43;
    check(inject(cl->dev, &in) == STATUS_OK, "inject_unicode", "inject failed");

    inject_init(&in, KRING_TYPE_PROCESS_START, 1, 9001);
    for (i = 0; i < 600; i++)
        longpath[i] = L'a' + i % 26;
    memcpy(in.path, longpath, 600 * 2);
    in.path_chars = 600;
    for (i = 0; i < 1200; i++)
        longcmd[i] = L'0' + i % 10;
    longcmd[1021] = 0x20AC;     /* a 3-byte character straddling the cut at 1023 bytes */
    memcpy(in.cmdline, longcmd, 1200 * 2);
    in.cmdline_chars = 1200;
    check(inject(cl->dev, &in) == STATUS_OK, "inject_long", "inject failed");

    inject_init(&in, KRING_TYPE_PROCESS_START, 1, 9002);
    in.path[0] = L'x';
    in.path[1] = 0xD800;        /* lone high surrogate */
    in.path[2] = L'y';
    in.path[3] = 0;             /* embedded NUL */
    in.path[4] = L'z';
    in.path_chars = 5;
    in.cmdline_chars = 0;       /* no command line */
    check(inject(cl->dev, &in) == STATUS_OK, "inject_bad_utf16", "inject failed");

    rc = drain_all(cl, r, before + 3 + r->n_exit + r->n_image, 10000);
    check(rc == KRING_OK && r->n_start == before + 3, "drain_strings", "rc %d, %llu rows", rc,
          (unsigned long long)r->n_start);
    if (r->n_start < before + 3)
        return;
    {
        const struct kring_process_start *a = &r->start[before], *b = a + 1, *c = a + 2;
        const char *want = "\\Device\\HarddiskVolume3\\Program Files\\\xc3\x9c\xc3\xaf\xc3\xb8\xc3\xa9\\app"
                           "\xe2\x82\xac\xf0\x9f\x98\x80.exe";

        check(utf8_eq(a->path, sizeof a->path, want) && a->path_len == strlen(want), "utf8_path",
              "path %.80s len %u", a->path, a->path_len);
        check(utf8_eq(a->comm, sizeof a->comm, "app\xe2\x82\xac\xf0\x9f\x98\x80.exe"), "comm_basename",
              "comm %.16s", a->comm);
        check(utf8_eq(a->cmdline, sizeof a->cmdline, "app.exe --flag \"x y\"") && a->cmdline_len == 20,
              "cmdline", "cmdline %.60s", a->cmdline);
        check(a->pid == 9000 && a->ppid == 42 && a->creator_pid == 42 && a->creator_tid == 43 && a->detail == 0 &&
              a->h.flags == 0 && a->h.type == KRING_TYPE_PROCESS_START && a->session_id == 1 && a->uid == 0,
              "process_start_fields", "pid %u ppid %u creator %u/%u session %u uid %u detail 0x%x flags 0x%x",
              a->pid, a->ppid, a->creator_pid, a->creator_tid, a->session_id, a->uid, a->detail, a->h.flags);
        check(b->path_len == KRING_PATH_MAX - 1 && (b->detail & KRING_D_PATH_TRUNCATED) &&
              (b->detail & KRING_D_CMDLINE_TRUNCATED) && (b->h.flags & KRING_EV_TRUNCATED) &&
              b->path[KRING_PATH_MAX - 1] == 0, "truncated_path",
              "path_len %u detail 0x%x flags 0x%x", b->path_len, b->detail, b->h.flags);
        /* 1021 ASCII digits, then U+20AC needs 3 bytes: 1024 > 1023, so it is cut before it. */
        check(b->cmdline_len == 1021 && b->cmdline[1021] == 0 && b->cmdline[1020] == '0' + 1020 % 10,
              "truncated_cmdline_on_character_boundary", "cmdline_len %u", b->cmdline_len);
        check(utf8_eq(c->path, sizeof c->path, "x\xef\xbf\xbdy\xef\xbf\xbdz") && c->cmdline_len == 0 &&
              c->cmdline[0] == 0, "replacement_characters", "path %.20s", c->path);
    }
}

static void check_exit_and_image(struct client *cl, struct rows *r)
{
    struct kring_inject_in in;
    uint64_t ns = r->n_start, ne = r->n_exit, ni = r->n_image;
    int rc;

    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 5, 7000);
    in.exit_status = (int32_t)0xC0000005L;
    set_w(in.path, &in.path_chars, L"\\Device\\HarddiskVolume3\\Windows\\System32\\notepad.exe");
    check(inject(cl->dev, &in) == STATUS_OK, "inject_exit", "inject failed");
    inject_init(&in, KRING_TYPE_IMAGE_LOAD, 4, 7100);
    in.base = 0x7ff612340000ull;
    in.image_size = 0x23000;
    set_w(in.path, &in.path_chars, L"\\Windows\\System32\\kernel32.dll");
    check(inject(cl->dev, &in) == STATUS_OK, "inject_image", "inject failed");
    inject_init(&in, KRING_TYPE_IMAGE_LOAD, 1, 0);
    in.flags = 1;                               /* a kernel-mode image */
    in.base = 0xfffff80012340000ull;
    in.image_size = 0x10000;
    set_w(in.path, &in.path_chars, L"\\SystemRoot\\system32\\drivers\\foo.sys");
    check(inject(cl->dev, &in) == STATUS_OK, "inject_kernel_image", "inject failed");

    rc = drain_all(cl, r, ns + ne + ni + 10, 10000);
    check(rc == KRING_OK && r->n_exit == ne + 5 && r->n_image == ni + 5, "drain_exit_image",
          "rc %d exit %llu image %llu", rc, (unsigned long long)r->n_exit, (unsigned long long)r->n_image);
    if (r->n_exit < ne + 5 || r->n_image < ni + 5)
        return;
    check(r->exit[ne].pid == 7000 && r->exit[ne + 4].pid == 7004 && r->exit[ne].exit_code == (int32_t)0xC0000005L &&
          r->exit[ne].raw_status == 0xC0000005u && utf8_eq(r->exit[ne].comm, sizeof r->exit[ne].comm, "notepad.exe"),
          "process_exit_fields", "pid %u code 0x%x comm %.16s", r->exit[ne].pid, r->exit[ne].exit_code,
          r->exit[ne].comm);
    check(r->image[ni].pid == 7100 && r->image[ni + 3].pid == 7103 && r->image[ni].base == 0x7ff612340000ull &&
          r->image[ni].size == 0x23000 && r->image[ni].detail == 0 &&
          utf8_eq(r->image[ni].path, sizeof r->image[ni].path, "\\Windows\\System32\\kernel32.dll"),
          "image_load_fields", "pid %u base 0x%llx size 0x%llx", r->image[ni].pid,
          (unsigned long long)r->image[ni].base, (unsigned long long)r->image[ni].size);
    check(r->image[ni + 4].base == 0 && (r->image[ni + 4].detail & KRING_D_KERNEL_IMAGE) && r->image[ni + 4].size == 0x10000,
          "kernel_image_base_hidden", "base 0x%llx detail 0x%x", (unsigned long long)r->image[ni + 4].base,
          r->image[ni + 4].detail);
}

/* Sequence numbers over everything drained so far: consecutive from 0. */
static void check_sequence(struct client *cl, const struct rows *r, const char *name)
{
    uint64_t total = r->n_start + r->n_exit + r->n_image;

    check(cl->c.gaps == 0 && cl->c.next_seq == total && cl->c.records == total, name,
          "gaps %lld next_seq %llu records %llu rows %llu", (long long)cl->c.gaps,
          (unsigned long long)cl->c.next_seq, (unsigned long long)cl->c.records, (unsigned long long)total);
}

/* More records than the ring holds: the rest are dropped and counted, and
 * the consumer sees exactly that many sequence numbers missing. */
static void check_overflow(struct client *cl, struct rows *r)
{
    struct kring_inject_in in;
    struct kring_stats_out s;
    uint64_t before = r->n_start + r->n_exit + r->n_image;
    uint64_t written0, dropped0, got;
    int rc;

    stats(cl->dev, &s);
    written0 = s.written;
    dropped0 = s.dropped;
    inject_init(&in, KRING_TYPE_PROCESS_START, 5000, 100000);
    set_w(in.path, &in.path_chars, L"\\Device\\HarddiskVolume3\\flood.exe");
    set_w(in.cmdline, &in.cmdline_chars, L"flood.exe --count 5000");
    check(inject(cl->dev, &in) == STATUS_OK, "inject_flood", "inject failed");
    check(stats(cl->dev, &s) == STATUS_OK && s.written + s.dropped == written0 + dropped0 + 5000 &&
          s.dropped > dropped0 && s.written - written0 < 5000, "flood_counted",
          "written %llu dropped %llu", (unsigned long long)(s.written - written0),
          (unsigned long long)(s.dropped - dropped0));
    rc = drain_all(cl, r, before + (s.written - written0), 10000);
    got = r->n_start + r->n_exit + r->n_image - before;
    check(rc == KRING_OK && got == s.written - written0, "flood_drained", "rc %d got %llu", rc,
          (unsigned long long)got);
    check(got > 0 && r->start[r->n_start - got].pid == 100000 &&
          r->start[r->n_start - 1].pid == 100000 + got - 1, "fifo_prefix_kept",
          "first %u last %u", r->start[r->n_start - got].pid, r->start[r->n_start - 1].pid);
    /* The drops show as a gap once the next record arrives. */
    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 1, 200000);
    check(inject(cl->dev, &in) == STATUS_OK, "inject_after_flood", "inject failed");
    rc = drain_all(cl, r, before + got + 1, 10000);
    check(rc == KRING_OK && r->exit[r->n_exit - 1].pid == 200000 &&
          r->exit[r->n_exit - 1].h.seq == written0 + dropped0 + 5000, "record_after_flood",
          "rc %d seq %llu", rc, (unsigned long long)r->exit[r->n_exit - 1].h.seq);
    check((uint64_t)cl->c.gaps == s.dropped - dropped0 && cl->c.next_seq == written0 + dropped0 + 5001,
          "drops_seen_as_gaps", "gaps %lld dropped %llu", (long long)cl->c.gaps,
          (unsigned long long)(s.dropped - dropped0));
    stats(cl->dev, &s);
    {
        struct kring_producer_page *p = cl->c.m.prod;

        check(p->written == s.written && p->dropped == s.dropped, "counters_on_producer_page",
              "page %llu/%llu stats %llu/%llu", (unsigned long long)p->written, (unsigned long long)p->dropped,
              (unsigned long long)s.written, (unsigned long long)s.dropped);
    }
}

struct waiter {
    struct client *cl;
    struct rows *r;
    uint64_t expect;
    int rc;
    ULONGLONG waited_ms;
};

static DWORD WINAPI waiter_thread(void *arg)
{
    struct waiter *w = arg;
    const ULONGLONG t0 = GetTickCount64();

    w->rc = drain_all(w->cl, w->r, w->expect, 8000);
    w->waited_ms = GetTickCount64() - t0;
    return 0;
}

static void check_fanout_and_wakeup(struct client *cl, struct rows *r)
{
    static struct rows r2;
    struct client cl2;
    struct kring_inject_in in;
    struct kring_stats_out s;
    struct waiter w;
    HANDLE thread;
    LONG st;

    memset(&cl2, 0, sizeof cl2);
    cl2.dev = open_device();
    st = attach(&cl2, KRING_ATTACH_COPY, 1 << 17, KRING_EVENTS_IMAGE);
    check(st == STATUS_OK && cl2.att.method == KRING_METHOD_COPY, "second_consumer_attach", "status 0x%08lx", st);
    if (st != STATUS_OK)
        return;
    check(stats(cl->dev, &s) == STATUS_OK && s.consumers == 2, "two_consumers", "consumers %u", s.consumers);

    /* Ring 1 waits (armed, asleep on its event) while handle 2 injects. */
    memset(&w, 0, sizeof w);
    w.cl = cl;
    w.r = r;
    w.expect = r->n_start + r->n_exit + r->n_image + 2;
    thread = CreateThread(NULL, 0, waiter_thread, &w, 0, NULL);
    Sleep(500);
    inject_init(&in, KRING_TYPE_IMAGE_LOAD, 1, 8000);
    set_w(in.path, &in.path_chars, L"\\Windows\\System32\\ntdll.dll");
    check(inject(cl2.dev, &in) == STATUS_OK, "inject_from_second_handle", "inject failed");
    Sleep(300);
    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 1, 8001);
    check(inject(cl2.dev, &in) == STATUS_OK, "inject_process_from_second_handle", "inject failed");
    check(WaitForSingleObject(thread, 15000) == WAIT_OBJECT_0, "waiter_finished", "waiter hung");
    CloseHandle(thread);
    check(w.rc == KRING_OK && r->image[r->n_image - 1].pid == 8000 && r->exit[r->n_exit - 1].pid == 8001,
          "woken_by_event", "rc %d after %llu ms", w.rc, (unsigned long long)w.waited_ms);
    check(stats(cl->dev, &s) == STATUS_OK && s.wakeups >= 1, "wakeups_counted", "wakeups %llu",
          (unsigned long long)s.wakeups);

    /* Ring 2 asked for image events only. */
    memset(&r2, 0, sizeof r2);
    check(drain_all(&cl2, &r2, 1, 5000) == KRING_OK && r2.n_image == 1 && r2.n_exit == 0 && r2.n_start == 0 &&
          r2.image[0].pid == 8000 && r2.image[0].h.seq == 0, "fanout_filtered_by_events",
          "image %llu exit %llu", (unsigned long long)r2.n_image, (unsigned long long)r2.n_exit);

    check(ioctl(cl2.dev, IOCTL_KRING_DETACH, NULL, 0, NULL, 0, NULL) == STATUS_OK, "detach", "detach failed");
    check(stats(cl->dev, &s) == STATUS_OK && s.consumers == 1, "detach_frees_ring", "consumers %u", s.consumers);
    {
        struct kring_read_in rin = { sizeof rin, 0 };
        struct kring_read_out rout;

        st = ioctl(cl2.dev, IOCTL_KRING_READ, &rin, sizeof rin, &rout, sizeof rout, NULL);
        check(st == STATUS_INVALID_DEVICE_STATE_, "read_after_detach", "status 0x%08lx", st);
    }
    detach(&cl2);
    CloseHandle(cl2.dev);
}

/* A nonsense consumer_pos (what a broken or hostile client could store in
 * a mapped consumer page) breaks the ring: no write, drops counted. */
static void check_broken(void)
{
    struct client cl;
    static struct rows r;
    struct kring_inject_in in;
    struct kring_poke_in poke = { sizeof poke, 0, 0x12345 };
    struct kring_stats_out s;
    uint64_t n;
    int rc;

    memset(&cl, 0, sizeof cl);
    cl.dev = open_device();
    check(attach(&cl, KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS) == STATUS_OK, "broken_attach", "attach failed");
    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 2, 500);
    inject(cl.dev, &in);
    check(ioctl(cl.dev, IOCTL_KRING_TEST_POKE, &poke, sizeof poke, NULL, 0, NULL) == STATUS_OK, "poke",
          "poke failed");
    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 3, 600);
    inject(cl.dev, &in);
    check(stats(cl.dev, &s) == STATUS_OK && (s.ring_flags & KRING_F_BROKEN) && s.written == 2 && s.dropped == 3 &&
          s.producer_pos == 2 * KRING_RECORD_SPAN(sizeof(struct kring_process_exit)) && s.consumer_pos == 0x12345,
          "nonsense_consumer_pos_breaks_ring", "flags 0x%x written %llu dropped %llu pos %llu cons 0x%llx",
          s.ring_flags, (unsigned long long)s.written, (unsigned long long)s.dropped,
          (unsigned long long)s.producer_pos, (unsigned long long)s.consumer_pos);
    memset(&r, 0, sizeof r);
    rc = wait_records(&cl, 2000);
    n = 0;
    if (rc == KRING_OK) {
        struct kring_out out[KRING_MAX_TYPES];

        memset(out, 0, sizeof out);
        out[KRING_TYPE_PROCESS_EXIT].buf = (uint8_t *)r.exit;
        out[KRING_TYPE_PROCESS_EXIT].capacity = 64;
        rc = kring_drain(&cl.c, out, UINT64_MAX, 1, &n);
    }
    check(rc == KRING_E_BROKEN && n == 0, "consumer_sees_broken", "rc %d n %llu", rc, (unsigned long long)n);
    detach(&cl);
    CloseHandle(cl.dev);
}

/* "poke DELTA...": for each DELTA a fresh 64 KiB copy-mode ring whose
 * producer has gone round the data area twice (records injected and read
 * back), then consumer_pos := producer_pos + DELTA (IOCTL_KRING_TEST_POKE)
 * and 3 more records injected. STATS is taken before any READ (READ has a
 * check of its own in copy mode), so the line shows what the write path's
 * range check did. One line per DELTA:
 *   poke DELTA value V pos P flags F written +W dropped +D cons C drain RC
 * tests/windows/test_win_ring_checks.py judges them. */
static int run_poke(int n, char **deltas)
{
    static struct rows r;
    int i;

    for (i = 0; i < n; i++) {
        struct client cl;
        struct kring_inject_in in;
        struct kring_poke_in poke = { sizeof poke, 0, 0 };
        struct kring_stats_out s0, s1;
        struct kring_out out[KRING_MAX_TYPES];
        long long delta = strtoll(deltas[i], NULL, 0);
        uint64_t got = 0;
        int rc = KRING_OK, round;

        memset(&cl, 0, sizeof cl);
        cl.dev = open_device();
        if (attach(&cl, KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS) != STATUS_OK) {
            check(0, "poke_attach", "attach failed");
            CloseHandle(cl.dev);
            continue;
        }
        for (round = 0; round < 32 && rc == KRING_OK && stats(cl.dev, &s0) == STATUS_OK &&
                        s0.producer_pos < 2 * cl.att.capacity + 8; round++) {
            memset(&r, 0, sizeof r);
            inject_init(&in, KRING_TYPE_PROCESS_START, 8, 300 + round);
            rc = inject(cl.dev, &in) == STATUS_OK ? drain_all(&cl, &r, 8, 10000) : KRING_E_OS;
        }
        check(rc == KRING_OK && stats(cl.dev, &s0) == STATUS_OK && s0.producer_pos >= 2 * cl.att.capacity + 8 &&
              s0.dropped == 0 && !(s0.ring_flags & KRING_F_BROKEN), "poke_gone_round",
              "rc %d pos 0x%llx dropped %llu", rc, (unsigned long long)s0.producer_pos,
              (unsigned long long)s0.dropped);
        poke.consumer_pos = s0.producer_pos + (uint64_t)delta;
        check(ioctl(cl.dev, IOCTL_KRING_TEST_POKE, &poke, sizeof poke, NULL, 0, NULL) == STATUS_OK, "poke_value",
              "poke failed");
        inject_init(&in, KRING_TYPE_PROCESS_START, 3, 900);
        check(inject(cl.dev, &in) == STATUS_OK, "poke_inject", "inject failed");
        check(stats(cl.dev, &s1) == STATUS_OK, "poke_stats", "stats failed");
        /* What the consumer then sees (any READ now finds the ring broken). */
        rc = wait_records(&cl, 2000);
        if (rc == KRING_OK) {
            memset(out, 0, sizeof out);
            memset(&r, 0, sizeof r);
            out[KRING_TYPE_PROCESS_START].buf = (uint8_t *)r.start;
            out[KRING_TYPE_PROCESS_START].capacity = sizeof r.start / sizeof r.start[0];
            rc = kring_drain(&cl.c, out, UINT64_MAX, 1, &got);
        }
        printf("poke %lld value 0x%llx pos 0x%llx flags 0x%x written +%llu dropped +%llu cons 0x%llx drain %d\n",
               delta, (unsigned long long)poke.consumer_pos, (unsigned long long)s0.producer_pos, s1.ring_flags,
               (unsigned long long)(s1.written - s0.written), (unsigned long long)(s1.dropped - s0.dropped),
               (unsigned long long)s1.consumer_pos, rc);
        detach(&cl);
        CloseHandle(cl.dev);
    }
    printf("RESULT %d\n", failures);
    return failures;
}

/* "armwindow": the two windows of wait_records' copy-mode wait, entered on
 * purpose. (a) The plain READ found nothing; a record is written before the
 * arming READ, which must return it (the driver checks and arms under its
 * lock). (b) The arming READ found nothing and armed; the event is not set;
 * a record is written before the wait: the driver saw waiting = 1 and set
 * the event, which the wait finds (the auto-reset event remembers the set).
 * One line; tests/windows/test_win_ring_checks.py judges it:
 *   armwindow plain N armed N again N before W after W wakeups N */
static int run_armwindow(void)
{
    struct client cl;
    struct kring_inject_in in;
    struct kring_stats_out s;
    struct kring_out out[KRING_MAX_TYPES];
    static struct rows r;
    int64_t plain, armed, again;
    DWORD before, after;
    uint64_t n;

    memset(&cl, 0, sizeof cl);
    cl.dev = open_device();
    if (attach(&cl, KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS) != STATUS_OK) {
        check(0, "armwindow_attach", "attach failed");
        printf("RESULT %d\n", failures);
        return failures;
    }
    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 1, 1000);
    plain = refill(&cl, 0);
    check(inject(cl.dev, &in) == STATUS_OK, "armwindow_inject_a", "inject failed");
    armed = refill(&cl, 1);
    memset(out, 0, sizeof out);
    out[KRING_TYPE_PROCESS_EXIT].buf = (uint8_t *)r.exit;
    out[KRING_TYPE_PROCESS_EXIT].capacity = sizeof r.exit / sizeof r.exit[0];
    kring_drain(&cl.c, out, UINT64_MAX, 1, &n);

    again = refill(&cl, 1);
    before = WaitForSingleObject(cl.c.m.h_data_event, 0);
    inject_init(&in, KRING_TYPE_PROCESS_EXIT, 1, 1001);
    check(inject(cl.dev, &in) == STATUS_OK, "armwindow_inject_b", "inject failed");
    after = WaitForSingleObject(cl.c.m.h_data_event, 5000);
    stats(cl.dev, &s);
    printf("armwindow plain %lld armed %lld again %lld before %lu after %lu wakeups %llu\n", (long long)plain,
           (long long)armed, (long long)again, before, after, (unsigned long long)s.wakeups);
    detach(&cl);
    CloseHandle(cl.dev);
    printf("RESULT %d\n", failures);
    return failures;
}

static void check_consumer_limit(void)
{
    struct client extra[KRING_MAX_CONSUMERS + 1];
    int i, attached = 0;
    LONG st = STATUS_OK;

    /* One ring exists (the main client's): fill up to the limit, then one more. */
    memset(extra, 0, sizeof extra);
    for (i = 0; i < KRING_MAX_CONSUMERS; i++) {
        extra[i].dev = open_device();
        st = attach(&extra[i], KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS);
        if (st != STATUS_OK)
            break;
        attached++;
    }
    check(attached == KRING_MAX_CONSUMERS - 1 && st == STATUS_QUOTA_EXCEEDED_, "consumer_limit",
          "attached %d more, then status 0x%08lx", attached, st);
    for (i = 0; i <= attached && i < KRING_MAX_CONSUMERS; i++) {
        if (i < attached)
            detach(&extra[i]);
        CloseHandle(extra[i].dev);          /* IRP_MJ_CLEANUP frees the ring */
    }
}

static int run_full(void)
{
    static struct rows r;
    struct client cl;
    struct kring_stats_out s;
    LONG st;
    HANDLE ev;

    memset(&cl, 0, sizeof cl);
    cl.dev = open_device();
    check(cl.dev != INVALID_HANDLE_VALUE, "open_as_admin", "CreateFileW error %lu", GetLastError());
    if (cl.dev == INVALID_HANDLE_VALUE)
        return 1;
    check(stats(cl.dev, &s) == STATUS_OK && s.test_build == 1 && s.consumers == 0 && s.image_notify == 1 &&
          s.process_notify >= 1, "stats_test_build", "test_build %u consumers %u notify %u/%u", s.test_build,
          s.consumers, s.process_notify, s.image_notify);
    printf("info process_notify=%u (1: PsSetCreateProcessNotifyRoutineEx, 2: ...Ex2)\n", s.process_notify);
    check_bad_requests(cl.dev);

    /* Mapping: Wine's MmMapLockedPagesSpecifyCache returns NULL, so MAP
     * alone must fail with the mapping's status, and MAP | COPY falls back. */
    st = attach(&cl, KRING_ATTACH_MAP, 1 << 16, KRING_EVENTS_ALL);
    printf("info map-only attach: status 0x%08lx method %u\n", st, st == STATUS_OK ? cl.att.method : 0);
    if (st == STATUS_OK) {
        printf("info the ring was mapped: this is not Wine\n");
        detach(&cl);
        ioctl(cl.dev, IOCTL_KRING_DETACH, NULL, 0, NULL, 0, NULL);
    } else {
        check(st == STATUS_INSUFFICIENT_RESOURCES_, "map_only_attach_fails_cleanly", "status 0x%08lx", st);
    }
    check(stats(cl.dev, &s) == STATUS_OK && s.consumers == 0, "no_ring_left_after_failed_map", "consumers %u",
          s.consumers);

    st = attach(&cl, KRING_ATTACH_MAP | KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_ALL);
    check(st == STATUS_OK, "attach_map_or_copy", "status 0x%08lx", st);
    if (st != STATUS_OK)
        return 1;
    printf("info attach: method %s, map_status 0x%08lx, ring %u, event handle %#llx\n",
           cl.att.method == KRING_METHOD_MAP ? "map" : "copy", (long)cl.att.map_status, cl.att.ring_id,
           (unsigned long long)cl.att.event_handle);
    check(cl.att.method == KRING_METHOD_COPY && cl.att.map_status == STATUS_INSUFFICIENT_RESOURCES_ &&
          cl.att.consumer_page == 0 && cl.att.producer_page == 0, "copy_fallback_reports_map_status",
          "method %u map_status 0x%08lx", cl.att.method, (long)cl.att.map_status);
    check(cl.att.event_handle != 0 &&
          cl.att.events == KRING_EVENTS_ALL && cl.att.consumer_size == KRING_PAGE_SIZE &&
          cl.att.producer_size == KRING_PAGE_SIZE + (1 << 16), "attach_reply", "event handle %#llx",
          (unsigned long long)cl.att.event_handle);
    check(cl.att.meta.ntypes == 3 && cl.att.meta.types[0].size == sizeof(struct kring_process_start) &&
          cl.att.meta.types[0].min_size == KRING_PROCESS_START_MIN_SIZE && cl.att.meta.producer_pos == 0 &&
          (cl.att.meta.flags & KRING_F_PRODUCER), "schema_from_kring_events", "ntypes %u", cl.att.meta.ntypes);
    ev = NULL;
    check(!SetEvent((HANDLE)(uintptr_t)cl.att.event_handle) && GetLastError() == ERROR_ACCESS_DENIED &&
          !DuplicateHandle(GetCurrentProcess(), (HANDLE)(uintptr_t)cl.att.event_handle, GetCurrentProcess(), &ev,
                           EVENT_MODIFY_STATE, FALSE, 0) && GetLastError() == ERROR_ACCESS_DENIED,
          "event_not_settable_by_client", "SetEvent or DuplicateHandle(EVENT_MODIFY_STATE) not refused: "
          "error %lu", GetLastError());
    if (ev)
        CloseHandle(ev);
    {
        struct kring_attach_in req = { sizeof req, KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_ALL, KRING_IOCTL_VERSION };
        struct kring_attach_out *out = calloc(1, sizeof *out);

        st = ioctl(cl.dev, IOCTL_KRING_ATTACH, &req, sizeof req, out, sizeof *out, NULL);
        check(st == STATUS_INVALID_DEVICE_STATE_, "second_attach_same_handle", "status 0x%08lx", st);
        free(out);
    }

    {
        struct kring_read_in rin = { sizeof rin, 0 };
        uint8_t small[sizeof(struct kring_read_out) + 100];

        st = ioctl(cl.dev, IOCTL_KRING_READ, &rin, sizeof rin, small, sizeof small, NULL);
        check(st == STATUS_BUFFER_TOO_SMALL_, "read_buffer_too_small", "status 0x%08lx", st);
        st = ioctl(cl.dev, IOCTL_KRING_READ, &rin, 4, small, sizeof small, NULL);
        check(st == STATUS_INFO_LENGTH_MISMATCH_, "read_short_input", "status 0x%08lx", st);
    }

    memset(&r, 0, sizeof r);
    check_strings(&cl, &r);
    check_exit_and_image(&cl, &r);
    check_sequence(&cl, &r, "sequence_contiguous");
    check_overflow(&cl, &r);
    check_fanout_and_wakeup(&cl, &r);
    check_broken();
    check_consumer_limit();

    check(stats(cl.dev, &s) == STATUS_OK && s.consumers == 1, "limit_rings_freed_on_close", "consumers %u",
          s.consumers);
    detach(&cl);
    CloseHandle(cl.dev);
    printf("RESULT %d\n", failures);
    return failures;
}

/* ATTACH reserves a slot and the bytes before it builds the ring outside
 * any lock, and gives them back when it fails: after many failed attaches
 * (map only: Wine cannot map) and attaches refused on a handle that has a
 * ring, the full number of rings still attaches, and no more. */
static void check_reservations(void)
{
    struct client extra[KRING_MAX_CONSUMERS + 1];
    struct kring_stats_out s;
    int i, failed = 0, attached = 0;
    LONG st = STATUS_OK;

    memset(extra, 0, sizeof extra);
    extra[0].dev = open_device();
    for (i = 0; i < 3 * KRING_MAX_CONSUMERS; i++)
        failed += attach(&extra[0], KRING_ATTACH_MAP, 1 << 16, KRING_EVENTS_ALL) == STATUS_INSUFFICIENT_RESOURCES_;
    check(failed == 3 * KRING_MAX_CONSUMERS && stats(extra[0].dev, &s) == STATUS_OK && s.consumers == 0,
          "failed_attaches_release_reservation", "%d failed, consumers %u", failed, s.consumers);
    for (i = 0; i < KRING_MAX_CONSUMERS + 1; i++) {
        if (i > 0)
            extra[i].dev = open_device();
        st = attach(&extra[i], KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS);
        if (st != STATUS_OK)
            break;
        attached++;
        if (i == 0) {
            struct client again = extra[0];

            st = attach(&again, KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS);
            check(st == STATUS_INVALID_DEVICE_STATE_, "second_attach_releases_reservation", "status 0x%08lx", st);
        }
    }
    check(attached == KRING_MAX_CONSUMERS && st == STATUS_QUOTA_EXCEEDED_ && stats(extra[0].dev, &s) == STATUS_OK &&
          s.consumers == KRING_MAX_CONSUMERS, "reserved_limit_exact", "attached %d, status 0x%08lx, consumers %u",
          attached, st, s.consumers);
    for (i = 0; i <= attached && i < KRING_MAX_CONSUMERS + 1; i++) {
        if (i < attached)
            detach(&extra[i]);
        CloseHandle(extra[i].dev);
    }
}

static int run_release(void)
{
    struct client cl;
    struct kring_stats_out s;
    struct kring_inject_in in;
    LONG st;

    memset(&cl, 0, sizeof cl);
    cl.dev = open_device();
    check(cl.dev != INVALID_HANDLE_VALUE, "open_as_admin", "CreateFileW error %lu", GetLastError());
    if (cl.dev == INVALID_HANDLE_VALUE)
        return 1;
    check(stats(cl.dev, &s) == STATUS_OK && s.test_build == 0, "stats_release_build", "test_build %u", s.test_build);
    st = attach(&cl, KRING_ATTACH_MAP | KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_ALL);
    check(st == STATUS_OK, "release_attach", "status 0x%08lx", st);
    inject_init(&in, KRING_TYPE_PROCESS_START, 1, 1);
    st = inject(cl.dev, &in);
    check(st == STATUS_INVALID_DEVICE_REQUEST_, "release_has_no_inject_ioctl", "status 0x%08lx", st);
    {
        struct kring_poke_in poke = { sizeof poke, 0, 8 };

        st = ioctl(cl.dev, IOCTL_KRING_TEST_POKE, &poke, sizeof poke, NULL, 0, NULL);
        check(st == STATUS_INVALID_DEVICE_REQUEST_, "release_has_no_poke_ioctl", "status 0x%08lx", st);
    }
    check(wait_records(&cl, 200) == KRING_E_TIMEOUT, "release_ring_empty", "records appeared");
    detach(&cl);
    check(ioctl(cl.dev, IOCTL_KRING_DETACH, NULL, 0, NULL, 0, NULL) == STATUS_OK, "release_detach", "detach failed");
    CloseHandle(cl.dev);
    check_reservations();
    printf("RESULT %d\n", failures);
    return failures;
}

/* The test driver loaded with TestFailImageNotify = 1: the load-image
 * registration failed, the driver runs with process events only and STATS
 * says which callbacks are active; process records still flow. */
static int run_degraded(void)
{
    static struct rows r;
    struct client cl;
    struct kring_stats_out s;
    struct kring_inject_in in;
    LONG st;

    memset(&cl, 0, sizeof cl);
    cl.dev = open_device();
    check(cl.dev != INVALID_HANDLE_VALUE, "open_degraded", "CreateFileW error %lu", GetLastError());
    if (cl.dev == INVALID_HANDLE_VALUE)
        return 1;
    check(stats(cl.dev, &s) == STATUS_OK && s.test_build == 1 && s.process_notify >= 1 && s.image_notify == 0,
          "stats_degraded", "test_build %u notify %u/%u", s.test_build, s.process_notify, s.image_notify);
    st = attach(&cl, KRING_ATTACH_MAP | KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_ALL);
    check(st == STATUS_OK, "degraded_attach", "status 0x%08lx", st);
    if (st == STATUS_OK) {
        inject_init(&in, KRING_TYPE_PROCESS_START, 3, 4000);
        st = inject(cl.dev, &in);
        check(st == STATUS_OK, "degraded_inject", "status 0x%08lx", st);
        memset(&r, 0, sizeof r);
        check(drain_all(&cl, &r, 3, 10000) == KRING_OK && r.n_start == 3 && r.start[0].pid == 4000,
              "degraded_process_events", "%llu records", (unsigned long long)r.n_start);
        detach(&cl);
    }
    CloseHandle(cl.dev);
    printf("RESULT %d\n", failures);
    return failures;
}

/* Re-run this program as "open" with a token whose Administrators group is
 * deny-only (what UAC gives an unelevated administrator). */
static int run_notadmin(void)
{
    SID_IDENTIFIER_AUTHORITY nt = SECURITY_NT_AUTHORITY;
    SID_AND_ATTRIBUTES disable;
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    HANDLE token, restricted;
    PSID admins;
    WCHAR cmd[MAX_PATH + 16];
    DWORD code = 99;

    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    if (!AllocateAndInitializeSid(&nt, 2, SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS, 0, 0, 0, 0, 0, 0,
                                  &admins) ||
        !OpenProcessToken(GetCurrentProcess(), TOKEN_ALL_ACCESS, &token)) {
        check(0, "restricted_token", "error %lu", GetLastError());
        return 1;
    }
    disable.Sid = admins;
    disable.Attributes = 0;
    check(CreateRestrictedToken(token, 0, 1, &disable, 0, NULL, 0, NULL, &restricted), "restricted_token",
          "CreateRestrictedToken error %lu", GetLastError());
    GetModuleFileNameW(NULL, cmd, MAX_PATH);
    wcscat(cmd, L" open");
    if (CreateProcessAsUserW(restricted, NULL, cmd, NULL, NULL, FALSE, 0, NULL, NULL, &si, &pi)) {
        WaitForSingleObject(pi.hProcess, 20000);
        GetExitCodeProcess(pi.hProcess, &code);
        CloseHandle(pi.hProcess);
        CloseHandle(pi.hThread);
    }
    check(code == ERROR_ACCESS_DENIED, "open_refused_without_admin", "child exit code %lu", code);
    printf("RESULT %d\n", failures);
    return failures;
}

/* The child of run_notadmin. Windows fails the open itself; Wine hands
 * out the handle whatever IRP_MJ_CREATE returned, so the driver refuses
 * every request on it instead. Exits with ERROR_ACCESS_DENIED when refused. */
static int run_open(void)
{
    struct kring_stats_out s;
    HANDLE dev = open_device();
    DWORD err = GetLastError();
    LONG st;

    if (dev == INVALID_HANDLE_VALUE) {
        printf("info open refused: error %lu\n", err);
        return (int)err;
    }
    st = stats(dev, &s);
    printf("info open returned a handle (Wine does not fail CreateFileW when the driver refuses "
           "IRP_MJ_CREATE); STATS on it: status 0x%08lx\n", st);
    CloseHandle(dev);
    return st == (LONG)0xC0000022UL ? ERROR_ACCESS_DENIED : st == STATUS_OK ? 0 : 98;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    if (argc == 2 && strcmp(argv[1], "full") == 0)
        return run_full();
    if (argc == 2 && strcmp(argv[1], "release") == 0)
        return run_release();
    if (argc == 2 && strcmp(argv[1], "degraded") == 0)
        return run_degraded();
    if (argc == 2 && strcmp(argv[1], "notadmin") == 0)
        return run_notadmin();
    if (argc == 2 && strcmp(argv[1], "open") == 0)
        return run_open();
    if (argc >= 3 && strcmp(argv[1], "poke") == 0)
        return run_poke(argc - 2, argv + 2);
    if (argc == 2 && strcmp(argv[1], "armwindow") == 0)
        return run_armwindow();
    fprintf(stderr, "usage: kring_client.exe full|release|degraded|notadmin|open|poke DELTA...|armwindow\n");
    return 2;
}
