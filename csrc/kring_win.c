/*
 * kring_win.c - Windows platform layer for shared-memory rings: a named
 * file mapping backed by the paging file, named auto-reset events for the
 * two wake directions, named mutexes for one consumer and one producer.
 *
 * Names: a ring called NAME is the mapping "Local\NAME" (a name that already
 * has a namespace, "Global\X" or "Local\X", is used as is), its events
 * NAME.data and NAME.space, its role locks NAME.consumer and NAME.producer.
 *
 * The whole ring is mapped in one view (views start on 64 KiB boundaries,
 * so the pages cannot be mapped separately); VirtualProtect then makes the
 * pages the other side owns read-only in this process.
 *
 * A consumer of the kring.sys driver does not come through here: it
 * attaches with the driver's IOCTLs and kring_consumer_map_driver
 * (kring_driver_map.c), and waits on the driver's event (a handle from the
 * ATTACH reply) as its data event (docs/DRIVER.md).
 */
#ifndef WIN32_LEAN_AND_MEAN
#define WIN32_LEAN_AND_MEAN
#endif
#include <windows.h>
#include <winternl.h>
#include <string.h>

#include <kring/kring_atomic.h>
#include "kring_plat.h"

#define NAME_MAX_CHARS 240

static int from_win32(struct kring_map *m, DWORD err)
{
    if (m)
        m->os_error = (int)err;
    switch (err) {
    case ERROR_FILE_NOT_FOUND:
    case ERROR_PATH_NOT_FOUND: return KRING_E_NOTFOUND;
    case ERROR_ACCESS_DENIED: return KRING_E_PERM;
    case ERROR_ALREADY_EXISTS: return KRING_E_EXISTS;
    case ERROR_NOT_ENOUGH_MEMORY:
    case ERROR_COMMITMENT_LIMIT: return KRING_E_NOMEM;
    default: return KRING_E_OS;
    }
}

/* object name = (namespace\)NAME + suffix */
static int object_name(char *out, size_t cap, const char *path, const char *suffix)
{
    const char *prefix = strchr(path, '\\') ? "" : "Local\\";
    size_t lp = strlen(prefix), ln = strlen(path), ls = strlen(suffix);

    if (ln == 0 || lp + ln + ls + 1 > cap)
        return KRING_E_INVAL;
    memcpy(out, prefix, lp);
    memcpy(out + lp, path, ln);
    memcpy(out + lp + ln, suffix, ls + 1);
    return KRING_OK;
}

uint64_t kring_plat_realtime_ns(void)
{
    FILETIME ft;
    ULARGE_INTEGER t;

    GetSystemTimePreciseAsFileTime(&ft);
    t.LowPart = ft.dwLowDateTime;
    t.HighPart = ft.dwHighDateTime;
    /* 100 ns ticks since 1601-01-01 -> ns since 1970-01-01 */
    return (t.QuadPart - 116444736000000000ULL) * 100u;
}

uint64_t kring_plat_monotonic_ns(void)
{
    static LARGE_INTEGER freq;
    LARGE_INTEGER now;

    if (freq.QuadPart == 0)
        QueryPerformanceFrequency(&freq);
    QueryPerformanceCounter(&now);
    return (uint64_t)((double)now.QuadPart * 1e9 / (double)freq.QuadPart);
}

uint32_t kring_plat_pid(void)
{
    return (uint32_t)GetCurrentProcessId();
}

static DWORD to_ms(int64_t timeout_ns)
{
    if (timeout_ns < 0)
        return INFINITE;
    if (timeout_ns > (int64_t)0xFFFFFFF0ull * 1000000)
        return 0xFFFFFFF0u;
    return (DWORD)((timeout_ns + 999999) / 1000000);
}

static int lock_role(struct kring_map *m, const char *path, int role)
{
    char name[NAME_MAX_CHARS];
    HANDLE h;
    DWORD w;
    int rc = object_name(name, sizeof name, path, role == 0 ? ".consumer" : ".producer");

    if (rc != KRING_OK)
        return rc;
    h = CreateMutexA(NULL, FALSE, name);
    if (!h)
        return from_win32(m, GetLastError());
    w = WaitForSingleObject(h, 0);
    if (w != WAIT_OBJECT_0 && w != WAIT_ABANDONED) {   /* abandoned: the holder died */
        CloseHandle(h);
        return KRING_E_BUSY;
    }
    m->h_lock = h;
    return KRING_OK;
}

static int open_events(struct kring_map *m, const char *path)
{
    char name[NAME_MAX_CHARS];

    if (object_name(name, sizeof name, path, ".data") != KRING_OK)
        return KRING_E_INVAL;
    m->h_data_event = CreateEventA(NULL, FALSE, FALSE, name);
    if (!m->h_data_event)
        return from_win32(m, GetLastError());
    if (object_name(name, sizeof name, path, ".space") != KRING_OK)
        return KRING_E_INVAL;
    m->h_space_event = CreateEventA(NULL, FALSE, FALSE, name);
    if (!m->h_space_event)
        return from_win32(m, GetLastError());
    return KRING_OK;
}

/* Map `mapping` (a handle this call takes over) for `role`, checking a
 * private copy of the producer page first. */
static int map_view(struct kring_map *m, HANDLE mapping, const char *path, int role)
{
    struct kring_producer_page meta;
    MEMORY_BASIC_INFORMATION mbi;
    uint8_t *base;
    DWORD old;
    uint64_t cap;
    int rc;

    base = MapViewOfFile(mapping, FILE_MAP_READ | FILE_MAP_WRITE, 0, 0, 0);
    if (!base) {
        rc = from_win32(m, GetLastError());
        goto close_mapping;
    }
    if (VirtualQuery(base, &mbi, sizeof mbi) == 0 || mbi.RegionSize < KRING_DATA_OFFSET) {
        rc = KRING_E_VERSION;
        goto unmap_view;
    }
    memcpy(&meta, base + KRING_PAGE_SIZE, sizeof meta);
    rc = kring_meta_check(&meta, (uint64_t)mbi.RegionSize);
    if (rc != KRING_OK)
        goto unmap_view;
    cap = meta.capacity;
    kring_map_init(m, (struct kring_consumer_page *)base,
                   (struct kring_producer_page *)(base + KRING_PAGE_SIZE), base + KRING_DATA_OFFSET, cap, 0, 1);
    m->wait_kind = KRING_WAIT_EVENT;
    m->role = role;
    m->h_mapping = mapping;
    m->base_cons = base;
    m->len_cons = KRING_DATA_OFFSET + cap;
    /* From here on kring_plat_unmap releases the view and the handles. */
    rc = lock_role(m, path, role);
    if (rc != KRING_OK)
        goto fail;
    rc = open_events(m, path);
    if (rc != KRING_OK)
        goto fail;
    /* The other side's pages are read-only here. */
    if (role == 0)
        rc = VirtualProtect(base + KRING_PAGE_SIZE, KRING_PAGE_SIZE + (SIZE_T)cap, PAGE_READONLY, &old)
                 ? KRING_OK : from_win32(m, GetLastError());
    else
        rc = VirtualProtect(base, KRING_PAGE_SIZE, PAGE_READONLY, &old) ? KRING_OK
                                                                       : from_win32(m, GetLastError());
    if (rc != KRING_OK)
        goto fail;
    return KRING_OK;

fail:
    kring_plat_unmap(m);
    return rc;
unmap_view:
    UnmapViewOfFile(base);
close_mapping:
    CloseHandle(mapping);
    return rc;
}

int kring_plat_map(struct kring_map *m, const char *path, int role, int any_owner)
{
    char name[NAME_MAX_CHARS];
    HANDLE mapping;
    int rc;

    /* A named mapping has no file to squat: its security descriptor (the
     * creator's default) decides who may open it, so any_owner has no use. */
    (void)any_owner;
    kring_map_init(m, NULL, NULL, NULL, 0, 0, 0);
    rc = object_name(name, sizeof name, path, "");
    if (rc != KRING_OK)
        return rc;
    mapping = OpenFileMappingA(FILE_MAP_READ | FILE_MAP_WRITE, FALSE, name);
    if (!mapping)
        return from_win32(m, GetLastError());
    return map_view(m, mapping, path, role);
}

int kring_plat_create(struct kring_map *m, const char *path,
                      const struct kring_producer_page *tmpl, int mode, int role)
{
    struct kring_producer_page page;
    char name[NAME_MAX_CHARS];
    HANDLE mapping;
    uint64_t size;
    uint8_t *base;
    int rc;

    (void)mode;
    kring_map_init(m, NULL, NULL, NULL, 0, 0, 0);
    rc = kring_meta_initial(&page, tmpl);
    if (rc != KRING_OK)
        return rc;
    rc = object_name(name, sizeof name, path, "");
    if (rc != KRING_OK)
        return rc;
    size = KRING_DATA_OFFSET + page.capacity;
    /* Paging-file backed, zero-filled; default security: the creator's
     * user, SYSTEM and Administrators. */
    mapping = CreateFileMappingA(INVALID_HANDLE_VALUE, NULL, PAGE_READWRITE,
                                 (DWORD)(size >> 32), (DWORD)size, name);
    if (!mapping)
        return from_win32(m, GetLastError());
    if (GetLastError() == ERROR_ALREADY_EXISTS) {
        CloseHandle(mapping);
        return KRING_E_EXISTS;
    }
    base = MapViewOfFile(mapping, FILE_MAP_WRITE, 0, 0, 0);
    if (!base) {
        rc = from_win32(m, GetLastError());
        CloseHandle(mapping);
        return rc;
    }
    memcpy(base + KRING_PAGE_SIZE, &page, sizeof page);
    UnmapViewOfFile(base);
    return map_view(m, mapping, path, role);
}

int kring_plat_shm_create(const char *path, const struct kring_producer_page *tmpl, int mode)
{
    /* A named mapping with no open handle is gone at once: there is only
     * kring_plat_create. */
    (void)path;
    (void)tmpl;
    (void)mode;
    return KRING_E_INVAL;
}

int kring_plat_shm_unlink(const char *path)
{
    (void)path;
    return KRING_OK;        /* the mapping goes with its last handle */
}

void kring_plat_unmap(struct kring_map *m)
{
    if (m->base_cons)
        UnmapViewOfFile(m->base_cons);
    if (m->h_lock) {
        ReleaseMutex(m->h_lock);
        CloseHandle(m->h_lock);
    }
    if (m->h_data_event)
        CloseHandle(m->h_data_event);
    if (m->h_space_event)
        CloseHandle(m->h_space_event);
    if (m->h_mapping)
        CloseHandle(m->h_mapping);
    m->base_cons = NULL;
    m->h_lock = m->h_data_event = m->h_space_event = m->h_mapping = NULL;
}

/* ntdll entry points for kring_plat_role_held (resolved, not linked). */
typedef LONG (WINAPI *nt_query_object_fn)(HANDLE handle, ULONG info_class, void *info, ULONG length,
                                          ULONG *returned);
typedef LONG (WINAPI *nt_open_mutant_fn)(HANDLE *handle, ACCESS_MASK access, OBJECT_ATTRIBUTES *attributes);

static void (*ntdll_proc(const char *name))(void)
{
    HMODULE ntdll = GetModuleHandleW(L"ntdll.dll");

    return ntdll ? (void (*)(void))GetProcAddress(ntdll, name) : NULL;
}

/* Is the role lock NAME.consumer / NAME.producer held? The mapping's
 * kernel name (\Sessions\N\BaseNamedObjects\NAME) gives the mutex's;
 * a mutex nobody holds either does not exist (its holder's handle keeps
 * it) or can be taken at once (abandoned: its holder died). */
int kring_plat_role_held(struct kring_map *m, int role)
{
    static const WCHAR *const suffix[2] = { L".consumer", L".producer" };
    nt_query_object_fn query = (nt_query_object_fn)ntdll_proc("NtQueryObject");
    nt_open_mutant_fn open_mutant = (nt_open_mutant_fn)ntdll_proc("NtOpenMutant");
    union {
        UNICODE_STRING name;            /* OBJECT_NAME_INFORMATION */
        WCHAR buf[2 * NAME_MAX_CHARS];
    } info;
    WCHAR path[2 * NAME_MAX_CHARS];
    UNICODE_STRING mutex_name;
    OBJECT_ATTRIBUTES attributes;
    size_t n, ns;
    HANDLE h = NULL;
    ULONG got = 0;
    LONG status;
    DWORD w;

    if (!m->h_mapping || (role != 0 && role != 1) || !query || !open_mutant)
        return -1;
    /* Class 1: ObjectNameInformation. */
    if (query(m->h_mapping, 1, &info, sizeof info - sizeof(WCHAR), &got) < 0 || !info.name.Buffer)
        return -1;
    n = info.name.Length / sizeof(WCHAR);
    ns = wcslen(suffix[role]);
    if (n == 0 || n + ns + 1 > sizeof path / sizeof path[0])
        return -1;
    memcpy(path, info.name.Buffer, n * sizeof(WCHAR));
    memcpy(path + n, suffix[role], (ns + 1) * sizeof(WCHAR));
    mutex_name.Buffer = path;
    mutex_name.Length = (USHORT)((n + ns) * sizeof(WCHAR));
    mutex_name.MaximumLength = (USHORT)(mutex_name.Length + sizeof(WCHAR));
    memset(&attributes, 0, sizeof attributes);
    attributes.Length = sizeof attributes;
    attributes.ObjectName = &mutex_name;
    status = open_mutant(&h, SYNCHRONIZE | MUTANT_QUERY_STATE, &attributes);
    if (status == (LONG)0xC0000034UL)   /* STATUS_OBJECT_NAME_NOT_FOUND: nobody holds it */
        return 0;
    if (status < 0)
        return -1;
    w = WaitForSingleObject(h, 0);
    if (w == WAIT_OBJECT_0 || w == WAIT_ABANDONED)
        ReleaseMutex(h);
    CloseHandle(h);
    return w == WAIT_TIMEOUT ? 1 : (w == WAIT_OBJECT_0 || w == WAIT_ABANDONED) ? 0 : -1;
}

static int wait_event(HANDLE h, int64_t timeout_ns)
{
    switch (WaitForSingleObject(h, to_ms(timeout_ns))) {
    case WAIT_OBJECT_0: return KRING_OK;
    case WAIT_TIMEOUT: return KRING_E_TIMEOUT;
    default: return KRING_E_OS;
    }
}

/* Auto-reset events remember a SetEvent that came before the wait, so the
 * value checks of the futex version are not needed here. */
int kring_plat_wait_data(struct kring_consumer *c, uint32_t seen_wake_seq, int64_t timeout_ns)
{
    (void)seen_wake_seq;
    return wait_event(c->m.h_data_event, timeout_ns);
}

void kring_plat_wake_data(struct kring_map *m)
{
    SetEvent(m->h_data_event);
}

int kring_plat_wait_space(struct kring_producer *p, uint32_t seen_cons_lo, int64_t timeout_ns)
{
    (void)seen_cons_lo;
    return wait_event(p->m.h_space_event, timeout_ns);
}

void kring_plat_wake_space(struct kring_map *m)
{
    SetEvent(m->h_space_event);
}

void kring_plat_interrupt(struct kring_map *m)
{
    /* Only this process's consumer waits on the data event and only its
     * producer on the space event: a spurious set is re-checked. */
    if (m->h_data_event)
        SetEvent(m->h_data_event);
    if (m->h_space_event)
        SetEvent(m->h_space_event);
}
