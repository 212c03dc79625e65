/*
 * wintest.h - what the Windows test programs share: "ok NAME" / "FAIL NAME:
 * why" lines (the Python side reads them) and the NTSTATUS of the last
 * failed call. Include it after <windows.h>.
 */
#ifndef KRING_WINTEST_H
#define KRING_WINTEST_H

#include <stdarg.h>
#include <stdio.h>

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

#endif
