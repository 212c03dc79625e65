/*
 * kring_event_probe.c - what other processes can do to a client's ring
 * event; run under Wine against the test build of kring.sys by
 * tests/windows/test_win_event_security.py.
 *
 * A client gets its event as a handle in the ATTACH reply (SYNCHRONIZE
 * access only); the event lives in a directory of the driver's that has no
 * name. The modes below attack that from the outside:
 *
 *   kring_event_probe.exe rights     the handle a client gets: its granted
 *                                    access, SetEvent/ResetEvent refused,
 *                                    no duplicate with more access
 *   kring_event_probe.exe squat      a non-administrator process (a token
 *                                    whose Administrators group is deny-only)
 *                                    creates every name it can think of; then
 *                                    every ring still attaches, each is woken
 *                                    through its handle, and no event anyone
 *                                    can reach by a name is a ring's event
 *   kring_event_probe.exe other      another client (an administrator, then
 *                                    a non-administrator) tries to open, set
 *                                    and reset this client's events, by every
 *                                    name it can list and through the
 *                                    client's handle values
 *   kring_event_probe.exe hold       attach, close the device, keep the event
 *                                    handle until stdin closes (the driver is
 *                                    reloaded meanwhile)
 *   kring_event_probe.exe late       against a driver whose ATTACH fails after
 *                                    it made the event handle (test knob
 *                                    TestFailAttachLate): no handle is left
 *                                    in this process, no ring in the driver
 *
 * Internal: "squatter <ready> <go>" and "attacker <pid> <handleA> <handleB>
 * <out-file> <admin>" are the children of squat and other.
 *
 * Prints "ok <check>" or "FAIL <check>: <why>" per check, "info ..." lines,
 * and a last line "RESULT <failures>"; exits with the number of failures.
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <winternl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include <kring/kring_events.h>
#include <kring/kring_ioctl.h>

#include "wintest.h"

#define STATUS_OK ((LONG)0)
#define PROBE_EVENT_MODIFY_STATE 0x0002
#define PROBE_DIRECTORY_QUERY 0x0001
#define PROBE_DIRECTORY_TRAVERSE 0x0002
#define PROBE_MAX_PATHS 4096
#define PROBE_RINGS KRING_MAX_CONSUMERS

/* ---- ntdll ------------------------------------------------------------- */

typedef struct {
    UNICODE_STRING Name;
    UNICODE_STRING TypeName;
} PROBE_DIRECTORY_INFORMATION;

typedef struct {
    ULONG Attributes;
    ACCESS_MASK GrantedAccess;
    ULONG HandleCount;
    ULONG PointerCount;
    ULONG Reserved[10];
} PROBE_BASIC_INFORMATION;

static struct {
    NTSTATUS (NTAPI *OpenDirectoryObject)(PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES);
    NTSTATUS (NTAPI *CreateDirectoryObject)(PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES);
    NTSTATUS (NTAPI *QueryDirectoryObject)(HANDLE, PVOID, ULONG, BOOLEAN, BOOLEAN, PULONG, PULONG);
    NTSTATUS (NTAPI *OpenEvent)(PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES);
    NTSTATUS (NTAPI *CreateEvent)(PHANDLE, ACCESS_MASK, POBJECT_ATTRIBUTES, ULONG, BOOLEAN);
    NTSTATUS (NTAPI *QueryObject)(HANDLE, ULONG, PVOID, ULONG, PULONG);
    NTSTATUS (NTAPI *CompareObjects)(HANDLE, HANDLE);
} nt;

static void nt_init(void)
{
    HMODULE m = GetModuleHandleW(L"ntdll.dll");

#define NT_GET(field, name) nt.field = (__typeof__(nt.field))(void (*)(void))GetProcAddress(m, name)
    NT_GET(OpenDirectoryObject, "NtOpenDirectoryObject");
    NT_GET(CreateDirectoryObject, "NtCreateDirectoryObject");
    NT_GET(QueryDirectoryObject, "NtQueryDirectoryObject");
    NT_GET(OpenEvent, "NtOpenEvent");
    NT_GET(CreateEvent, "NtCreateEvent");
    NT_GET(QueryObject, "NtQueryObject");
    NT_GET(CompareObjects, "NtCompareObjects");
#undef NT_GET
}

static void object_attributes(OBJECT_ATTRIBUTES *oa, UNICODE_STRING *us, const wchar_t *path)
{
    us->Buffer = (PWSTR)path;
    us->Length = (USHORT)(wcslen(path) * sizeof(wchar_t));
    us->MaximumLength = us->Length;
    InitializeObjectAttributes(oa, us, OBJ_CASE_INSENSITIVE, NULL, NULL);
}

static HANDLE open_event_path(const wchar_t *path, ACCESS_MASK access)
{
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING us;
    HANDLE h = NULL;

    object_attributes(&oa, &us, path);
    return NT_SUCCESS(nt.OpenEvent(&h, access, &oa)) ? h : NULL;
}

/* Every Event object of the object namespace that a name reaches: the
 * directories this process may list, from the root, recursively. */
static wchar_t *paths[PROBE_MAX_PATHS];
static int npaths;

static void list_events(const wchar_t *dir, int depth)
{
    static ULONG buffer[16384];
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING us;
    HANDLE h;
    ULONG context = 0, len;
    NTSTATUS st;
    int first = 1;

    object_attributes(&oa, &us, dir);
    if (depth > 6 || !NT_SUCCESS(nt.OpenDirectoryObject(&h, PROBE_DIRECTORY_QUERY | PROBE_DIRECTORY_TRAVERSE, &oa)))
        return;
    for (;;) {
        PROBE_DIRECTORY_INFORMATION *e = (PROBE_DIRECTORY_INFORMATION *)buffer;

        st = nt.QueryDirectoryObject(h, buffer, sizeof buffer, TRUE, (BOOLEAN)first, &context, &len);
        first = 0;
        if (!NT_SUCCESS(st))       /* STATUS_NO_MORE_ENTRIES at the end */
            break;
        /* One entry per call (the buffer is shared with the recursion). */
        {
            wchar_t child[1024], type[64];
            size_t n = e->Name.Length / sizeof(wchar_t), t = e->TypeName.Length / sizeof(wchar_t);

            if (!e->Name.Buffer || t >= 64 || wcslen(dir) + n + 2 >= 1024)
                continue;
            swprintf(child, 1024, L"%ls%ls%.*ls", dir, wcscmp(dir, L"\\") == 0 ? L"" : L"\\", (int)n,
                     e->Name.Buffer);
            wmemcpy(type, e->TypeName.Buffer, t);
            type[t] = 0;
            if (wcscmp(type, L"Directory") == 0)
                list_events(child, depth + 1);
            else if (wcscmp(type, L"Event") == 0 && npaths < PROBE_MAX_PATHS)
                paths[npaths++] = _wcsdup(child);
        }
    }
    CloseHandle(h);
}

static void list_all_events(void)
{
    while (npaths > 0)
        free(paths[--npaths]);
    list_events(L"\\", 0);
}

/* ---- the driver ---------------------------------------------------------- */

static LONG ioctl(HANDLE dev, DWORD code, const void *in, DWORD inlen, void *out, DWORD outlen)
{
    DWORD got = 0;

    return DeviceIoControl(dev, code, (void *)in, inlen, out, outlen, &got, NULL) ? STATUS_OK : last_status();
}

static HANDLE open_device(void)
{
    return CreateFileW(KRING_USER_PATH, GENERIC_READ | GENERIC_WRITE, 0, NULL, OPEN_EXISTING, 0, NULL);
}

/* ATTACH a copy-mode ring (Wine cannot map) on dev; *event receives the
 * event handle of the reply. */
static LONG attach(HANDLE dev, uint32_t events, HANDLE *event)
{
    static struct kring_attach_out reply;
    struct kring_attach_in req;
    LONG st;

    req = attach_request(KRING_ATTACH_COPY, 1 << 16, events);
    *event = NULL;
    st = ioctl(dev, IOCTL_KRING_ATTACH, &req, sizeof req, &reply, sizeof reply);
    if (st == STATUS_OK)
        *event = (HANDLE)(uintptr_t)reply.event_handle;
    return st;
}

/* READ with nothing to return and KRING_READ_ARM: the next record sets the
 * ring's event. */
static LONG arm(HANDLE dev)
{
    static uint8_t buf[sizeof(struct kring_read_out) + KRING_READ_MIN_BYTES];
    struct kring_read_in rin = { sizeof rin, KRING_READ_ARM };

    return ioctl(dev, IOCTL_KRING_READ, &rin, sizeof rin, buf, sizeof buf);
}

/* One image_load record (image events: rings attached for process events
 * only do not get it). */
static LONG inject_image(HANDLE dev, uint32_t pid)
{
    static struct kring_inject_in in;
    struct kring_inject_out out;

    memset(&in, 0, sizeof in);
    in.size = sizeof in;
    in.type = KRING_TYPE_IMAGE_LOAD;
    in.count = 1;
    in.pid = pid;
    return ioctl(dev, IOCTL_KRING_TEST_INJECT, &in, sizeof in, &out, sizeof out);
}

/* ---- processes ------------------------------------------------------------ */

/* A copy of this process's token with Administrators deny-only and, where
 * the system lets it, the medium integrity level: what UAC gives an
 * unelevated administrator. */
static HANDLE non_admin_token(void)
{
    SID_IDENTIFIER_AUTHORITY nt_auth = SECURITY_NT_AUTHORITY, label = SECURITY_MANDATORY_LABEL_AUTHORITY;
    SID_AND_ATTRIBUTES disable;
    TOKEN_MANDATORY_LABEL tml;
    HANDLE token = NULL, restricted = NULL;
    PSID admins = NULL, medium = NULL;

    if (AllocateAndInitializeSid(&nt_auth, 2, SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS, 0, 0, 0, 0, 0,
                                 0, &admins) &&
        OpenProcessToken(GetCurrentProcess(), TOKEN_ALL_ACCESS, &token)) {
        disable.Sid = admins;
        disable.Attributes = 0;
        if (!CreateRestrictedToken(token, 0, 1, &disable, 0, NULL, 0, NULL, &restricted))
            restricted = NULL;
    }
    if (restricted && AllocateAndInitializeSid(&label, 1, SECURITY_MANDATORY_MEDIUM_RID, 0, 0, 0, 0, 0, 0, 0,
                                               &medium)) {
        tml.Label.Sid = medium;
        tml.Label.Attributes = SE_GROUP_INTEGRITY;
        printf("info medium integrity label on the child token: %s (error %lu)\n",
               SetTokenInformation(restricted, TokenIntegrityLevel, &tml, sizeof tml) ? "set" : "not set",
               GetLastError());
        FreeSid(medium);
    }
    if (token)
        CloseHandle(token);
    if (admins)
        FreeSid(admins);
    return restricted;
}

static void describe_token(const char *who)
{
    TOKEN_ELEVATION_TYPE type = 0;
    TOKEN_ELEVATION elevation = { 0 };
    ULONG label[64];
    SID_IDENTIFIER_AUTHORITY nt_auth = SECURITY_NT_AUTHORITY;
    PSID admins = NULL;
    BOOL member = FALSE;
    DWORD len, integrity = 0;
    HANDLE token;

    if (!OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &token))
        return;
    GetTokenInformation(token, TokenElevationType, &type, sizeof type, &len);
    GetTokenInformation(token, TokenElevation, &elevation, sizeof elevation, &len);
    if (GetTokenInformation(token, TokenIntegrityLevel, label, sizeof label, &len)) {
        PSID sid = ((TOKEN_MANDATORY_LABEL *)label)->Label.Sid;

        integrity = *GetSidSubAuthority(sid, *GetSidSubAuthorityCount(sid) - 1);
    }
    if (AllocateAndInitializeSid(&nt_auth, 2, SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS, 0, 0, 0, 0, 0,
                                 0, &admins)) {
        CheckTokenMembership(NULL, admins, &member);
        FreeSid(admins);
    }
    printf("info token %s: elevation_type %d elevated %lu integrity 0x%lx administrators %d\n", who, (int)type,
           elevation.TokenIsElevated, integrity, member ? 1 : 0);
    CloseHandle(token);
}

static int is_admin(void)
{
    SID_IDENTIFIER_AUTHORITY nt_auth = SECURITY_NT_AUTHORITY;
    PSID admins = NULL;
    BOOL member = FALSE;

    if (AllocateAndInitializeSid(&nt_auth, 2, SECURITY_BUILTIN_DOMAIN_RID, DOMAIN_ALIAS_RID_ADMINS, 0, 0, 0, 0, 0,
                                 0, &admins)) {
        CheckTokenMembership(NULL, admins, &member);
        FreeSid(admins);
    }
    return member != 0;
}

/* Runs this program with `args`, as a non-administrator when token is not
 * NULL, inheriting handles; returns its process handle or NULL. */
static HANDLE spawn(HANDLE token, const wchar_t *args)
{
    STARTUPINFOW si;
    PROCESS_INFORMATION pi;
    static wchar_t cmd[MAX_PATH + 512];
    BOOL ok;

    memset(&si, 0, sizeof si);
    si.cb = sizeof si;
    GetModuleFileNameW(NULL, cmd, MAX_PATH);
    wcscat(cmd, L" ");
    wcscat(cmd, args);
    ok = token ? CreateProcessAsUserW(token, NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi)
               : CreateProcessW(NULL, cmd, NULL, NULL, TRUE, 0, NULL, NULL, &si, &pi);
    if (!ok) {
        printf("info cannot start %ls: error %lu\n", args, GetLastError());
        return NULL;
    }
    CloseHandle(pi.hThread);
    return pi.hProcess;
}

static DWORD finish(HANDLE process, DWORD timeout_ms)
{
    DWORD code = 99;

    if (!process)
        return 98;
    if (WaitForSingleObject(process, timeout_ms) != WAIT_OBJECT_0)
        TerminateProcess(process, 97);
    GetExitCodeProcess(process, &code);
    CloseHandle(process);
    return code;
}

/* The first ring event among events[0..n) that the event at path is, or -1. */
static int ring_event_at(const wchar_t *path, HANDLE *events, int n)
{
    HANDLE h = open_event_path(path, SYNCHRONIZE);
    int i, found = -1;

    if (!h)
        return -1;
    for (i = 0; i < n && found < 0; i++)
        if (events[i] && nt.CompareObjects(h, events[i]) == STATUS_OK)
            found = i;
    CloseHandle(h);
    return found;
}

/* ---- rights ---------------------------------------------------------------- */

static int run_rights(void)
{
    PROBE_BASIC_INFORMATION info;
    HANDLE dev = open_device(), ev = NULL, dup = NULL;
    DWORD flags = 0;
    LONG st;

    describe_token("client");
    check(dev != INVALID_HANDLE_VALUE, "open_device", "error %lu", GetLastError());
    st = attach(dev, KRING_EVENTS_ALL, &ev);
    check(st == STATUS_OK && ev != NULL, "attach_gives_a_handle", "status 0x%08lx handle %p", st, (void *)ev);
    if (!ev)
        goto out;
    memset(&info, 0, sizeof info);
    st = nt.QueryObject(ev, 0 /* ObjectBasicInformation */, &info, sizeof info, NULL);
    printf("info event handle %p: NtQueryObject status 0x%08lx, granted access 0x%08lx, attributes 0x%lx\n",
           (void *)ev, st, info.GrantedAccess, info.Attributes);
    check(st == STATUS_OK && info.GrantedAccess == SYNCHRONIZE, "handle_granted_synchronize_only",
          "status 0x%08lx granted 0x%08lx", st, info.GrantedAccess);
    check(GetHandleInformation(ev, &flags) && (flags & HANDLE_FLAG_INHERIT) == 0, "handle_not_inheritable",
          "flags 0x%lx", flags);
    check(!SetEvent(ev) && GetLastError() == ERROR_ACCESS_DENIED, "set_event_denied", "error %lu",
          GetLastError());
    check(!ResetEvent(ev) && GetLastError() == ERROR_ACCESS_DENIED, "reset_event_denied", "error %lu",
          GetLastError());
    check(!DuplicateHandle(GetCurrentProcess(), ev, GetCurrentProcess(), &dup, PROBE_EVENT_MODIFY_STATE, FALSE, 0) &&
          GetLastError() == ERROR_ACCESS_DENIED, "no_duplicate_with_modify_state", "error %lu", GetLastError());
    if (dup)
        CloseHandle(dup);
    dup = NULL;
    check(!DuplicateHandle(GetCurrentProcess(), ev, GetCurrentProcess(), &dup, WRITE_DAC, FALSE, 0) &&
          GetLastError() == ERROR_ACCESS_DENIED, "no_duplicate_with_write_dac", "error %lu", GetLastError());
    if (dup)
        CloseHandle(dup);
    /* The handle is the ring's: armed, an injected record sets it. */
    check(arm(dev) == STATUS_OK && inject_image(dev, 7000) == STATUS_OK &&
          WaitForSingleObject(ev, 10000) == WAIT_OBJECT_0, "handle_woken_by_driver", "no wakeup");
    CloseHandle(ev);
out:
    if (dev != INVALID_HANDLE_VALUE)
        CloseHandle(dev);
    printf("RESULT %d\n", failures);
    return failures;
}

/* ---- squat ------------------------------------------------------------------- */

/* The squatter: creates, as a non-administrator, every name it can think
 * of where the driver might put its events or their directory, then holds
 * them until told to go. */
static int run_squatter(HANDLE ready, HANDLE go)
{
    static const wchar_t *dirs[] = {
        L"\\KRing", L"\\KernelObjects\\KRing", L"\\BaseNamedObjects\\KRing", L"\\BaseNamedObjects\\KRingEvents",
        L"\\Device\\KRingEvents", L"\\KRingEvents",
    };
    static const wchar_t *patterns[] = {
        L"\\BaseNamedObjects\\KRing-%08x", L"\\BaseNamedObjects\\KRing-%08x-0000000000000000",
        L"\\BaseNamedObjects\\KRing-%u", L"\\BaseNamedObjects\\Ring-%08x", L"\\KRing\\Ring-%08x",
        L"\\KRing\\KRing-%08x", L"\\KRingEvents\\Ring-%08x", L"\\KernelObjects\\KRing\\Ring-%08x",
        L"\\BaseNamedObjects\\KRing\\Ring-%08x", L"\\Ring-%08x", L"\\KRing-%08x", L"\\KernelObjects\\Ring-%08x",
    };
    OBJECT_ATTRIBUTES oa;
    UNICODE_STRING us;
    wchar_t name[256];
    HANDLE h;
    unsigned i, id, created = 0, refused = 0;

    describe_token("squatter");
    check(!is_admin(), "squatter_is_not_administrator", "the squatter's token has Administrators");
    for (i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        object_attributes(&oa, &us, dirs[i]);
        if (NT_SUCCESS(nt.CreateDirectoryObject(&h, 0xF000F /* DIRECTORY_ALL_ACCESS */, &oa)))
            created++;
        else
            refused++;
    }
    /* Ring ids count from 1; the driver never has more than
     * KRING_MAX_CONSUMERS rings, but failed attaches use ids too. */
    for (id = 0; id <= 4 * KRING_MAX_CONSUMERS + 8; id++) {
        for (i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
            swprintf(name, 256, patterns[i], id);
            object_attributes(&oa, &us, name);
            if (NT_SUCCESS(nt.CreateEvent(&h, EVENT_ALL_ACCESS, &oa, 0, FALSE)))
                created++;
            else
                refused++;
        }
    }
    printf("info squatter created %u names (%u refused)\n", created, refused);
    check(created > 0, "squatter_created_names", "it created none");
    SetEvent(ready);
    WaitForSingleObject(go, 120000);
    printf("RESULT %d\n", failures);
    return failures;
}

static int run_squat(void)
{
    SECURITY_ATTRIBUTES inherit = { sizeof inherit, NULL, TRUE };
    HANDLE ready = CreateEventW(&inherit, TRUE, FALSE, NULL), go = CreateEventW(&inherit, TRUE, FALSE, NULL);
    HANDLE token = non_admin_token(), squatter, devs[PROBE_RINGS], events[PROBE_RINGS];
    wchar_t args[128];
    int i, attached = 0, woken = 0, reachable = 0;
    LONG st = STATUS_OK;
    DWORD code;

    describe_token("client");
    check(token != NULL, "non_admin_token", "CreateRestrictedToken error %lu", GetLastError());
    swprintf(args, 128, L"squatter %llx %llx", (unsigned long long)(uintptr_t)ready,
             (unsigned long long)(uintptr_t)go);
    squatter = spawn(token, args);
    check(squatter && WaitForSingleObject(ready, 60000) == WAIT_OBJECT_0, "squatter_ready", "no squatter");

    /* With every name held: as many rings as the driver allows attach, and
     * each is woken through the handle its reply carries. */
    memset(events, 0, sizeof events);
    for (i = 0; i < PROBE_RINGS; i++) {
        devs[i] = open_device();
        st = attach(devs[i], KRING_EVENTS_ALL, &events[i]);
        if (st != STATUS_OK || !events[i])
            break;
        attached++;
    }
    check(attached == PROBE_RINGS, "every_attach_despite_squatter", "%d of %d attached, last status 0x%08lx",
          attached, PROBE_RINGS, st);
    for (i = 0; i < attached; i++)
        arm(devs[i]);
    if (attached > 0)
        inject_image(devs[0], 7100);
    for (i = 0; i < attached; i++)
        woken += WaitForSingleObject(events[i], 10000) == WAIT_OBJECT_0;
    check(attached > 0 && woken == attached, "every_ring_woken_through_its_handle", "%d of %d woken", woken,
          attached);

    /* No name leads to a ring's event: every Event object that the
     * namespace lists, opened by its name, is none of them. */
    list_all_events();
    for (i = 0; i < npaths; i++) {
        int ring = ring_event_at(paths[i], events, attached);

        if (ring >= 0) {
            reachable++;
            printf("info the event of ring %d is reachable as %ls\n", ring, paths[i]);
        }
    }
    printf("info %d event names listed in the namespace\n", npaths);
    check(npaths > 0 && reachable == 0, "no_ring_event_reachable_by_name", "%d of %d rings' events have a name "
          "anyone can look up (%d names listed)", reachable, attached, npaths);

    SetEvent(go);
    code = finish(squatter, 60000);
    check(code == 0, "squatter_finished", "exit code %lu", code);
    for (i = 0; i < attached; i++)
        CloseHandle(events[i]);
    for (i = 0; i < attached + (attached < PROBE_RINGS); i++)
        CloseHandle(devs[i]);
    printf("RESULT %d\n", failures);
    return failures;
}

/* ---- other clients ------------------------------------------------------------ */

/* The attacker: another process (with or without Administrators) that
 * wants the client's events. It writes the names of the events it could
 * open (access letter, then the path) to `out` for the client to compare. */
static int run_attacker(DWORD pid, HANDLE victim_a, HANDLE victim_b, const wchar_t *out_path, int admin)
{
    static const ACCESS_MASK more[] = { PROBE_EVENT_MODIFY_STATE, EVENT_ALL_ACCESS, WRITE_DAC, WRITE_OWNER };
    HANDLE victims[2] = { victim_a, victim_b }, process, dev = INVALID_HANDLE_VALUE, own = NULL, h;
    FILE *out = _wfopen(out_path, L"w");
    int i, j, escalated = 0, tried = 0;

    describe_token(admin ? "other client" : "other non-admin process");
    if (admin) {
        /* Another client: it has a ring (and its own event handle) too. */
        dev = open_device();
        check(dev != INVALID_HANDLE_VALUE && attach(dev, KRING_EVENTS_ALL, &own) == STATUS_OK && own,
              "other_client_attached", "error %lu", GetLastError());
        check(own && !SetEvent(own) && !ResetEvent(own), "other_client_cannot_set_its_own", "error %lu",
              GetLastError());
    }

    /* Through the client's handle values: duplicating them with more than
     * SYNCHRONIZE is an access check against the event's descriptor. */
    process = OpenProcess(PROCESS_DUP_HANDLE, FALSE, pid);
    printf("info %s the client process with PROCESS_DUP_HANDLE\n", process ? "opened" : "could not open");
    for (i = 0; process && i < 2; i++) {
        for (j = 0; j < (int)(sizeof more / sizeof more[0]); j++) {
            h = NULL;
            tried++;
            if (DuplicateHandle(process, victims[i], GetCurrentProcess(), &h, more[j], FALSE, 0)) {
                escalated++;
                printf("info duplicated the client's handle %p with access 0x%lx\n", (void *)victims[i], more[j]);
                SetEvent(h);
                ResetEvent(h);
                CloseHandle(h);
            }
        }
    }
    check(escalated == 0, "no_duplicate_with_more_access", "%d of %d duplicates with more access succeeded",
          escalated, tried);
    if (process)
        CloseHandle(process);

    /* Through every name it can list: open whatever opens; set and reset
     * whatever opens for that among names that could be a ring's (not
     * Wine's own events, which services rely on). */
    list_all_events();
    for (i = 0; i < npaths; i++) {
        wchar_t lower[1024];

        wcsncpy(lower, paths[i], 1023);
        lower[1023] = 0;
        _wcslwr(lower);
        if (wcsstr(lower, L"ring") && (h = open_event_path(paths[i], PROBE_EVENT_MODIFY_STATE)) != NULL) {
            if (out)
                fwprintf(out, L"M%ls\n", paths[i]);
            SetEvent(h);
            ResetEvent(h);
            CloseHandle(h);
        }
        if ((h = open_event_path(paths[i], SYNCHRONIZE)) != NULL) {
            if (out)
                fwprintf(out, L"S%ls\n", paths[i]);
            CloseHandle(h);
        }
    }
    printf("info %d event names listed\n", npaths);
    if (out)
        fclose(out);
    if (own)
        CloseHandle(own);
    if (dev != INVALID_HANDLE_VALUE)
        CloseHandle(dev);
    printf("RESULT %d\n", failures);
    return failures;
}

static int run_other(void)
{
    HANDLE devs[2], events[2] = { NULL, NULL }, token = non_admin_token();
    wchar_t out_path[MAX_PATH], args[MAX_PATH + 128], line[1100];
    const wchar_t *who[2] = { L"1", L"0" };
    int i, k, opened = 0, matched = 0;
    FILE *f;

    describe_token("client");
    GetTempPathW(MAX_PATH - 32, out_path);
    wcscat(out_path, L"kring_probe_opened.txt");
    for (i = 0; i < 2; i++) {
        devs[i] = open_device();
        check(attach(devs[i], KRING_EVENTS_ALL, &events[i]) == STATUS_OK && events[i], "client_attached",
              "error %lu", GetLastError());
    }
    if (!events[0] || !events[1]) {
        printf("RESULT %d\n", failures);
        return failures;
    }
    /* Ring A's event is set (armed, then a record): a reset would show.
     * Ring B's is not: a set would show. */
    check(arm(devs[0]) == STATUS_OK && inject_image(devs[0], 7200) == STATUS_OK, "ring_a_signalled", "failed");

    for (k = 0; k < 2; k++) {
        DWORD code;

        swprintf(args, MAX_PATH + 128, L"attacker %lu %llx %llx \"%ls\" %ls", GetCurrentProcessId(),
                 (unsigned long long)(uintptr_t)events[0], (unsigned long long)(uintptr_t)events[1], out_path,
                 who[k]);
        code = finish(spawn(k == 0 ? NULL : token, args), 120000);
        check(code == 0, k == 0 ? "other_client_finished" : "non_admin_finished", "exit code %lu", code);
        /* Whatever it opened by name: none is one of this client's events. */
        f = _wfopen(out_path, L"r");
        while (f && fgetws(line, 1100, f)) {
            line[wcscspn(line, L"\r\n")] = 0;
            opened++;
            if (ring_event_at(line + 1, events, 2) >= 0) {
                matched++;
                printf("info %ls opened this client's event by the name %ls (%s)\n",
                       k == 0 ? L"the other client" : L"the non-administrator", line + 1,
                       line[0] == L'M' ? "modify" : "synchronize");
            }
        }
        if (f)
            fclose(f);
        DeleteFileW(out_path);
    }
    printf("info the other processes opened %d events by name\n", opened);
    check(matched == 0, "no_other_process_opened_the_event", "%d opens reached this client's events", matched);
    check(WaitForSingleObject(events[0], 0) == WAIT_OBJECT_0, "event_not_reset_by_others",
          "ring A's event was reset (or never set)");
    check(WaitForSingleObject(events[1], 0) == WAIT_TIMEOUT, "event_not_set_by_others", "ring B's event was set");
    for (i = 0; i < 2; i++) {
        CloseHandle(events[i]);
        CloseHandle(devs[i]);
    }
    printf("RESULT %d\n", failures);
    return failures;
}

/* ---- late ---------------------------------------------------------------------- */

/* Handles open in this process: the valid values among the first 16384
 * (Wine and Windows hand out small multiples of 4). */
static int count_handles(void)
{
    DWORD flags;
    uintptr_t v;
    int n = 0;

    for (v = 4; v < 0x10000; v += 4)
        n += GetHandleInformation((HANDLE)v, &flags) != 0;
    return n;
}

static int run_late(void)
{
    struct kring_stats_out s;
    HANDLE dev, ev;
    int before, after, i, refused = 0;
    LONG st = STATUS_OK;

    before = count_handles();
    dev = open_device();
    check(dev != INVALID_HANDLE_VALUE, "open_device", "error %lu", GetLastError());
    for (i = 0; i < 20; i++) {
        st = attach(dev, KRING_EVENTS_ALL, &ev);
        refused += st == (LONG)0xC0000001L;     /* STATUS_UNSUCCESSFUL, the knob's */
        if (ev)
            CloseHandle(ev);
    }
    check(refused == 20, "late_failure_refused", "%d of 20 refused, last status 0x%08lx", refused, st);
    after = count_handles();
    printf("info handles: %d before, %d after 20 failed attaches (the device handle is one)\n", before, after);
    check(after == before + 1, "failed_attach_leaves_no_handle", "%d handles more than before", after - before);
    memset(&s, 0, sizeof s);
    check(DeviceIoControl(dev, IOCTL_KRING_STATS, NULL, 0, &s, sizeof s, (DWORD[1]){ 0 }, NULL) && s.consumers == 0,
          "failed_attach_leaves_no_ring", "consumers %u", s.consumers);
    CloseHandle(dev);
    printf("RESULT %d\n", failures);
    return failures;
}

/* ---- hold ---------------------------------------------------------------------- */

static int run_hold(void)
{
    HANDLE dev = open_device(), ev = NULL;
    char buf[16];

    check(attach(dev, KRING_EVENTS_ALL, &ev) == STATUS_OK && ev, "hold_attached", "error %lu", GetLastError());
    if (dev != INVALID_HANDLE_VALUE)
        CloseHandle(dev);           /* the ring goes; the event handle stays */
    printf("holding\n");
    fflush(stdout);
    while (fgets(buf, sizeof buf, stdin))
        ;
    if (ev)
        CloseHandle(ev);
    printf("RESULT %d\n", failures);
    return failures;
}

int wmain(int argc, wchar_t **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    nt_init();
    if (!nt.OpenDirectoryObject || !nt.QueryDirectoryObject || !nt.OpenEvent || !nt.CreateEvent ||
        !nt.CreateDirectoryObject || !nt.QueryObject || !nt.CompareObjects) {
        printf("FAIL ntdll: a routine is missing\nRESULT 1\n");
        return 1;
    }
    if (argc == 2 && wcscmp(argv[1], L"rights") == 0)
        return run_rights();
    if (argc == 2 && wcscmp(argv[1], L"squat") == 0)
        return run_squat();
    if (argc == 2 && wcscmp(argv[1], L"other") == 0)
        return run_other();
    if (argc == 2 && wcscmp(argv[1], L"hold") == 0)
        return run_hold();
    if (argc == 2 && wcscmp(argv[1], L"late") == 0)
        return run_late();
    if (argc == 4 && wcscmp(argv[1], L"squatter") == 0)
        return run_squatter((HANDLE)(uintptr_t)wcstoull(argv[2], NULL, 16),
                            (HANDLE)(uintptr_t)wcstoull(argv[3], NULL, 16));
    if (argc == 7 && wcscmp(argv[1], L"attacker") == 0)
        return run_attacker((DWORD)wcstoul(argv[2], NULL, 10), (HANDLE)(uintptr_t)wcstoull(argv[3], NULL, 16),
                            (HANDLE)(uintptr_t)wcstoull(argv[4], NULL, 16), argv[5], argv[6][0] == L'1');
    fprintf(stderr, "usage: kring_event_probe.exe rights|squat|other|hold|late\n");
    return 2;
}
