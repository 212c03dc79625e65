"""libbpf through cffi in ABI mode: the declarations pykring uses, the one
loaded copy of ``libbpf.so.1``, and libbpf's log captured per operation.

Used by the Linux kernel event source (:mod:`pykring.kernel_linux`) and by
the BPF benchmark. ABI mode (``dlopen``) means the package needs no libbpf
headers to build and no libbpf at all until a kernel source is opened.
"""
import os
import threading
from typing import List, Optional

from . import errors
from ._build_bpf import DEBIAN_PACKAGES

_LIBBPF_CDEF = """
struct bpf_object;
struct bpf_program;
struct bpf_map;
struct bpf_link;
typedef int (*libbpf_print_fn_t)(int level, const char *fmt, void *ap);

libbpf_print_fn_t libbpf_set_print(libbpf_print_fn_t fn);
struct bpf_object *bpf_object__open_file(const char *path, const void *opts);
int bpf_object__load(struct bpf_object *obj);
void bpf_object__close(struct bpf_object *obj);
struct bpf_program *bpf_object__find_program_by_name(const struct bpf_object *obj, const char *name);
int bpf_program__set_autoload(struct bpf_program *prog, _Bool autoload);
int bpf_program__fd(const struct bpf_program *prog);
struct bpf_link *bpf_program__attach(const struct bpf_program *prog);
int bpf_link__destroy(struct bpf_link *link);
struct bpf_map *bpf_object__find_map_by_name(const struct bpf_object *obj, const char *name);
struct bpf_map *bpf_object__next_map(const struct bpf_object *obj, const struct bpf_map *map);
int bpf_map__fd(const struct bpf_map *map);
int bpf_map__set_max_entries(struct bpf_map *map, uint32_t max_entries);
int bpf_map__set_initial_value(struct bpf_map *map, const void *data, size_t size);
int bpf_map_lookup_elem(int fd, const void *key, void *value);
int bpf_map_update_elem(int fd, const void *key, const void *value, uint64_t flags);
int bpf_obj_get_info_by_fd(int bpf_fd, void *info, uint32_t *info_len);
int libbpf_num_possible_cpus(void);
struct btf;
struct btf_type { uint32_t name_off; uint32_t info; uint32_t size_or_type; };
struct btf *btf__load_vmlinux_btf(void);
void btf__free(struct btf *btf);
int btf__find_by_name_kind(const struct btf *btf, const char *type_name, uint32_t kind);
const struct btf_type *btf__type_by_id(const struct btf *btf, uint32_t id);
int libbpf_probe_bpf_helper(int prog_type, int helper_id, const void *opts);
struct bpf_test_run_opts {
    size_t sz;
    const void *data_in;
    void *data_out;
    uint32_t data_size_in;
    uint32_t data_size_out;
    const void *ctx_in;
    void *ctx_out;
    uint32_t ctx_size_in;
    uint32_t ctx_size_out;
    uint32_t retval;
    int repeat;
    uint32_t duration;
    uint32_t flags;
    uint32_t cpu;
    uint32_t batch_size;
};
int bpf_prog_test_run_opts(int prog_fd, struct bpf_test_run_opts *opts);
"""
# libbpf hands its printer a va_list; on x86-64 and arm64 Linux that arrives
# as a pointer, which vsnprintf takes the same way.
_LIBC_CDEF = """
int vsnprintf(char *str, size_t size, const char *format, void *ap);
int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const void *data);
"""
_LIBBPF_WARN, _LIBBPF_INFO, _LIBBPF_DEBUG = 0, 1, 2
_BTF_KIND_TYPEDEF, _BTF_KIND_FUNC_PROTO = 8, 13

#: Held while an operation whose libbpf messages matter runs (see clear_log).
lock = threading.Lock()
_libs = None
_log: List[str] = []           # libbpf messages since clear_log() (under lock)
_printer = None


def load():
    """(ffi, libbpf, libc), loaded once."""
    global _libs, _printer
    if _libs is not None:
        return _libs
    from cffi import FFI

    ffi = FFI()
    ffi.cdef(_LIBBPF_CDEF)
    ffi.cdef(_LIBC_CDEF)
    try:
        bpf = ffi.dlopen("libbpf.so.1")
    except OSError as exc:
        raise errors.KringError(
            "the Linux kernel event source needs libbpf (libbpf.so.1 could not be loaded: %s); "
            "install the Debian package libbpf1 (to build the eBPF programs too: %s)"
            % (exc, DEBIAN_PACKAGES)) from None
    libc = ffi.dlopen(None)
    verbose = os.environ.get("KRING_BPF_DEBUG") == "1"

    # One buffer, big enough for a verifier log (libbpf prints it in one call).
    size = 1 << 22
    buf = ffi.new("char[]", size)

    @ffi.callback("int(int, const char *, void *)")
    def printer(level, fmt, ap):
        n = libc.vsnprintf(buf, size, fmt, ap)
        text = ffi.string(buf, min(max(n, 0), size - 1)).decode("utf-8", "replace")
        if verbose:
            os.write(2, text.encode())
        if level <= _LIBBPF_INFO:
            _log.append(text)
            del _log[:-400]
        return 0

    _printer = printer
    bpf.libbpf_set_print(printer)
    _libs = (ffi, bpf, libc)
    return _libs


def clear_log() -> None:
    """Forget earlier messages: log_tail() then shows only what follows (under lock)."""
    del _log[:]


def log_tail(lines: int = 40) -> str:
    """The last libbpf messages since clear_log(), formatted for an error message."""
    text = "".join(_log).rstrip()
    if not text:
        return ""
    tail = text.splitlines()[-lines:]
    return "\nlibbpf said:\n  " + "\n  ".join(tail)


def tracepoint_params(name: str) -> Optional[int]:
    """How many parameters the kernel's BTF gives tracepoint `name` (its
    btf_trace_<name> typedef: a pointer to a FUNC_PROTO), or None if unknown."""
    ffi, bpf, _ = load()
    btf = bpf.btf__load_vmlinux_btf()
    if btf == ffi.NULL:
        return None
    try:
        tid = bpf.btf__find_by_name_kind(btf, b"btf_trace_" + name.encode(), _BTF_KIND_TYPEDEF)
        t = bpf.btf__type_by_id(btf, tid) if tid > 0 else ffi.NULL
        ptr = bpf.btf__type_by_id(btf, t.size_or_type) if t != ffi.NULL else ffi.NULL
        proto = bpf.btf__type_by_id(btf, ptr.size_or_type) if ptr != ffi.NULL else ffi.NULL
        if proto == ffi.NULL or (proto.info >> 24) & 0x1F != _BTF_KIND_FUNC_PROTO:
            return None
        return proto.info & 0xFFFF          # vlen: the number of parameters
    finally:
        bpf.btf__free(btf)
