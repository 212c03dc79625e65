/*
 * kring_facts_probe.c - the process facts of a process_start record (start
 * times, the token's user SID, elevation type and integrity level), as the
 * driver's callback fills them, checked against what user mode reads about
 * the same process with advapi32/kernel32. Run under Wine against the test
 * build of kring.sys by tests/windows/test_win_process_facts.py.
 *
 * Wine never calls the process callback, so the record comes from
 * IOCTL_KRING_TEST_INJECT with KRING_INJECT_PROCESS_FACTS: the driver fills
 * it with the callback's own routine (KRingFillProcessFacts), taking this
 * process as the new process and as its parent.
 *
 * Prints "ok <check>" or "FAIL <check>: <why>" per check, "info ..." lines,
 * and a last line "RESULT <failures>"; exits with the number of failures.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <sddl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <kring/kring_events.h>
#include <kring/kring_ioctl.h>

#include "wintest.h"

#define UNIX_EPOCH_100NS 116444736000000000ULL

static BOOL ioctl(HANDLE dev, DWORD code, const void *in, DWORD inlen, void *out, DWORD outlen, DWORD *got)
{
    return DeviceIoControl(dev, code, (void *)in, inlen, out, outlen, got, NULL);
}

/* Injects one process_start (pid, parent = this process, creating thread
 * 77) with `flags` and reads it back from the copy-mode ring into *r. */
static int inject_and_read(HANDLE dev, uint32_t pid, uint32_t flags, struct kring_process_start *r)
{
    static struct kring_inject_in in;
    static uint8_t buf[sizeof(struct kring_read_out) + KRING_READ_MAX_BYTES];
    struct kring_inject_out out;
    struct kring_read_in rin = { sizeof rin, 0 };
    struct kring_read_out head;
    struct kring_record_header h;
    uint64_t at;
    DWORD got = 0;

    memset(&in, 0, sizeof in);
    in.size = sizeof in;
    in.type = KRING_TYPE_PROCESS_START;
    in.count = 1;
    in.pid = pid;
    in.ppid = GetCurrentProcessId();
    in.tid = 77;
    in.flags = flags;
    if (!ioctl(dev, IOCTL_KRING_TEST_INJECT, &in, sizeof in, &out, sizeof out, &got))
        return 0;
    if (!ioctl(dev, IOCTL_KRING_READ, &rin, sizeof rin, buf, sizeof buf, &got) || got < sizeof head)
        return 0;
    memcpy(&head, buf, sizeof head);
    /* The bytes are whole records from start_pos on; skip DISCARD padding. */
    for (at = 0; at + KRING_RECORD_HEADER_SIZE <= head.end_pos - head.start_pos;
         at += KRING_RECORD_SPAN(h.len & KRING_LEN_MASK)) {
        memcpy(&h, buf + sizeof head + at, sizeof h);
        if (h.len & KRING_DISCARD_BIT)
            continue;
        memset(r, 0, sizeof *r);
        memcpy(r, buf + sizeof head + at + KRING_RECORD_HEADER_SIZE,
               (h.len & KRING_LEN_MASK) < sizeof *r ? (h.len & KRING_LEN_MASK) : sizeof *r);
        return r->h.type == KRING_TYPE_PROCESS_START && r->pid == pid;
    }
    return 0;
}

int main(void)
{
    static struct kring_process_start r, plain;
    struct kring_attach_in req;
    static struct kring_attach_out att;
    FILETIME created, exited, kernel, user;
    TOKEN_ELEVATION_TYPE elevation = 0;
    ULONG userbuf[64], labelbuf[64];
    char *sid_text = NULL;
    HANDLE dev, token;
    DWORD got = 0, integrity = 0;
    uint64_t start_ns;

    setvbuf(stdout, NULL, _IONBF, 0);
    /* The oracle: this process as user mode sees it. */
    GetProcessTimes(GetCurrentProcess(), &created, &exited, &kernel, &user);
    start_ns = ((((uint64_t)created.dwHighDateTime << 32) | created.dwLowDateTime) - UNIX_EPOCH_100NS) * 100;
    if (OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token)) {
        if (GetTokenInformation(token, TokenUser, userbuf, sizeof userbuf, &got))
            ConvertSidToStringSidA(((TOKEN_USER *)userbuf)->User.Sid, &sid_text);
        GetTokenInformation(token, TokenElevationType, &elevation, sizeof elevation, &got);
        if (GetTokenInformation(token, TokenIntegrityLevel, labelbuf, sizeof labelbuf, &got)) {
            PSID sid = ((TOKEN_MANDATORY_LABEL *)labelbuf)->Label.Sid;

            integrity = *GetSidSubAuthority(sid, *GetSidSubAuthorityCount(sid) - 1);
        }
        CloseHandle(token);
    }
    printf("info user mode: sid %s, elevation type %d, integrity 0x%lx, start %llu ns\n",
           sid_text ? sid_text : "?", (int)elevation, integrity, (unsigned long long)start_ns);

    dev = CreateFileW(KRING_USER_PATH, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
    req = attach_request(KRING_ATTACH_COPY, 1 << 16, KRING_EVENTS_PROCESS);
    check(dev != INVALID_HANDLE_VALUE && ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, &att, sizeof att, &got),
          "attach", "error %lu", GetLastError());
    if (att.event_handle)
        CloseHandle((HANDLE)(uintptr_t)att.event_handle);

    check(inject_and_read(dev, 5000, KRING_INJECT_PROCESS_FACTS, &r), "record_with_facts", "error %lu",
          GetLastError());
    printf("info record: sid %.*s, elevation %u, integrity 0x%x, start %llu, parent start %llu, detail 0x%x\n",
           KRING_SID_BYTES, r.user_sid, r.elevation, r.integrity, (unsigned long long)r.start_time,
           (unsigned long long)r.parent_start_time, r.detail);
    check(sid_text && strcmp(r.user_sid, sid_text) == 0 && !(r.detail & KRING_D_SID_TRUNCATED), "user_sid",
          "record %.*s, user mode %s", KRING_SID_BYTES, r.user_sid, sid_text ? sid_text : "?");
    check(r.elevation == (uint32_t)elevation && elevation != 0, "elevation", "record %u, user mode %d",
          r.elevation, (int)elevation);
    check(r.integrity == integrity && integrity != 0, "integrity", "record 0x%x, user mode 0x%lx", r.integrity,
          integrity);
    check(r.start_time == start_ns && start_ns != 0, "start_time", "record %llu, user mode %llu",
          (unsigned long long)r.start_time, (unsigned long long)start_ns);
    check(r.parent_start_time == start_ns, "parent_start_time", "record %llu, user mode %llu",
          (unsigned long long)r.parent_start_time, (unsigned long long)start_ns);
    check(r.creator_tid == 77 && r.ppid == GetCurrentProcessId(), "creator_tid", "tid %u ppid %u", r.creator_tid,
          r.ppid);
    /* Without the flag (no process to read): 0 / empty, as for Linux records. */
    check(inject_and_read(dev, 5001, 0, &plain) && plain.user_sid[0] == 0 && plain.elevation == 0 &&
          plain.integrity == 0 && plain.start_time == 0 && plain.parent_start_time == 0, "no_facts_without_process",
          "sid %.8s elevation %u", plain.user_sid, plain.elevation);
    if (sid_text)
        LocalFree(sid_text);
    if (dev != INVALID_HANDLE_VALUE)
        CloseHandle(dev);
    printf("RESULT %d\n", failures);
    return failures;
}
