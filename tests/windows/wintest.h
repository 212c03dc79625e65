/*
 * wintest.h - what the Windows test programs share: "ok NAME" / "FAIL NAME:
 * why" lines (the Python side reads them) and the NTSTATUS of the last
 * failed call, and an ATTACH request. Include it after <windows.h>.
 */
#ifndef KRING_WINTEST_H
#define KRING_WINTEST_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <kring/kring_ioctl.h>

static int failures;

static inline void check(int ok, const char *name, const char *fmt, ...)
{
    va_list ap;

    if (ok) {
        printf("ok %s\n", name);
    } else {
        failures++;
        printf("FAIL %s: ", name);
        va_start(ap, fmt);
        vprintf(fmt, ap);
        va_end(ap);
        printf("\n");
    }
    fflush(stdout);
}

/* The NTSTATUS of the last failed call (ntdll keeps it in the TEB). */
static inline LONG last_status(void)
{
    static LONG (WINAPI *get)(void);

    if (!get)
        get = (LONG (WINAPI *)(void))(void (*)(void))GetProcAddress(GetModuleHandleW(L"ntdll.dll"), "RtlGetLastNtStatus");
    return get ? get() : (LONG)0xC0000001L;
}

/* An ATTACH request of this interface version. */
static inline struct kring_attach_in attach_request(uint32_t flags, uint64_t ring_size, uint32_t events)
{
    struct kring_attach_in req;

    memset(&req, 0, sizeof req);
    req.size = sizeof req;
    req.flags = flags;
    req.ring_size = ring_size;
    req.events = events;
    req.version = KRING_IOCTL_VERSION;
    return req;
}

#endif
