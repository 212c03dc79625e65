"""The Linux kernel event source: eBPF programs write process and image-load
records into a BPF ring buffer map, which pykring drains like any ring.

The programs (csrc/bpf/kring_events.bpf.c) are compiled with clang when the
package is built and ship as ``pykring/bpf/kring_events.bpf.o`` (CO-RE: one
object for any kernel with BTF). libbpf (:mod:`pykring._libbpf`) opens,
relocates, loads and attaches it.

Use :func:`pykring.kernel`; :class:`LinuxKernelSource` is the machinery.

- Privileges: root, or CAP_BPF + CAP_PERFMON. Image events use the syscall
  tracepoints and so need tracefs: if none is mounted, it is mounted at
  /sys/kernel/tracing (needs CAP_SYS_ADMIN) and left mounted. Otherwise
  :class:`~pykring.KringPermissionError` says what is missing.
- Timestamps: bpf_ktime_get_tai_ns() minus TAI-UTC (whole seconds, measured
  at open), so they follow steps of the wall clock; kernels before 6.1 use
  CLOCK_MONOTONIC plus the wall-clock offset measured at open.
- Wakeups: with a wake interval (``wake_interval``, default
  :data:`DEFAULT_WAKE_INTERVAL`) the programs batch their wakeups: a waiting
  reader is woken when a record has waited that long, or at once when a
  quarter of the ring is unconsumed; ``0`` wakes it for every record that
  finds it caught up (the lowest latency, the most CPU per event). How and
  why no wakeup is lost: docs/PROTOCOL.md 11.2 and kring_events.bpf.c.
- Loss: every record takes a sequence number; records that do not fit are
  counted per CPU (``ring.stats.dropped``) and show as sequence gaps
  (``ring.stats.lost``).
- Lifetime: closing the ring (or interpreter exit) destroys the links and
  closes every fd; nothing is pinned, so the kernel frees the programs and
  maps even when the process is killed.
- ``ring.source`` is the :class:`LinuxKernelSource` (``prog_ids``,
  ``map_ids``, ``counts()``).

What each record field means on Linux: csrc/bpf/kring_events.bpf.c.
"""
import atexit
import errno
import os
import time
import weakref
from typing import Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np

from . import _lib, _libbpf, errors
from ._bpf_filter import KernelFilter
from ._bpf_object import OBJECT_PATH, object_path, reinstall_command  # noqa: F401 (also importable from here)
from .events import LINUX_MIN_SIZES, linux_event_types
from ._common import check_ring_size
from ._bpf_clock import clock_config
from ._bpf_access import _can_trace_syscalls, check_privileges, ensure_tracefs
from .events import EVENT_KINDS, event_bits
from .ring import Batch, Ring

#: Default ring buffer size: 16 MiB holds ~25,000 process_start records.
DEFAULT_SIZE = 16 << 20
#: Default room for a command line (bytes, its NUL included), and the range max_args may take.
DEFAULT_MAX_ARGS = _lib.lib.KRING_BPF_ARGS_DEFAULT
MAX_ARGS_RANGE = (_lib.lib.KRING_BPF_ARGS_MIN, _lib.lib.KRING_BPF_ARGS_MAX)
#: Default wake interval (seconds): the longest a record waits before a blocked
#: reader is woken for it. From the trade-off `python -m benchmarks.bpf --sweep
#: 0,0.001,0.005,0.02` measures: on 2 vCPUs a fork storm's reader spent 64 us
#: of CPU per record at 0 (1.6 records per read), 12 us at 5 ms (17 per read),
#: 7 us at 20 ms, while the p99 latency of paced events stayed near that at 0
#: (9-11 ms of scheduling noise on a loaded machine) up to 5 ms and doubled at 20.
DEFAULT_WAKE_INTERVAL = 0.005
#: The longest wake interval accepted (seconds).
MAX_WAKE_INTERVAL = 10.0
#: The high-water mark as a fraction of the ring: a record that leaves this
#: much unconsumed wakes the reader at once, so a burst never fills the ring
#: unseen (three quarters are still free when the reader is woken).
WAKE_FRACTION = 4


def check_wake_interval(wake_interval) -> float:
    """wake_interval (seconds) as a float, or ValueError naming the valid range."""
    if wake_interval is None:
        return DEFAULT_WAKE_INTERVAL
    ok = isinstance(wake_interval, (int, float)) and not isinstance(wake_interval, bool)
    if not ok or not 0 <= wake_interval <= MAX_WAKE_INTERVAL or wake_interval != wake_interval:
        raise ValueError("wake_interval must be a number of seconds from 0 (a wakeup per record) to %g, not %r"
                         % (MAX_WAKE_INTERVAL, wake_interval))
    return float(wake_interval)


def check_max_args(max_args) -> int:
    """max_args as an int, or ValueError naming the valid range."""
    lo, hi = MAX_ARGS_RANGE
    if isinstance(max_args, bool) or not isinstance(max_args, int) or not lo <= max_args <= hi:
        raise ValueError("max_args must be an integer from %d to %d bytes (the command line a process_start "
                         "carries, its NUL included), not %r" % (lo, hi, max_args))
    return max_args

# include/kring/kring_bpf.h through the extension's cdef: the constants here,
# struct kring_bpf_config / _state / _counts as _lib.ffi types.
WANT_PROCESS, WANT_IMAGE = _lib.lib.KRING_BPF_WANT_PROCESS, _lib.lib.KRING_BPF_WANT_IMAGE
CLOCK_MONOTONIC, CLOCK_TAI = _lib.lib.KRING_BPF_CLOCK_MONOTONIC, _lib.lib.KRING_BPF_CLOCK_TAI

# Programs in attach order, and which records need them. The fork program
# goes first: the time after it is attached tells which processes started
# without a process_start record (KRING_D_NO_START).
_PROGRAMS = (
    ("kring_fork", WANT_PROCESS),
    ("kring_exec", WANT_PROCESS | WANT_IMAGE),
    ("kring_exit", WANT_PROCESS),               # or kring_exit_live: see exit_program()
    ("kring_exit_live", WANT_PROCESS),
    ("kring_execve_ret", WANT_PROCESS),         # exec_failed: only where tracefs is there
    ("kring_execveat_ret", WANT_PROCESS),
    ("kring_execve_ent", WANT_PROCESS),
    ("kring_execveat_ent", WANT_PROCESS),
    ("kring_mmap_ret", WANT_IMAGE),
    ("kring_mmap_ent", WANT_IMAGE),
)
#: Which exit program to use: None picks by the kernel's BTF (see exit_program()).
EXIT_PROGRAM: Optional[str] = None


_exit_program_cache: List[str] = []


def exit_program() -> str:
    """kring_exit where the sched_process_exit tracepoint passes group_dead
    (recent kernels), else kring_exit_live."""
    if EXIT_PROGRAM:
        return EXIT_PROGRAM
    if _exit_program_cache:
        return _exit_program_cache[0]
    # sched_process_exit passes (void *, struct task_struct *, bool group_dead): 3 parameters.
    params = _libbpf.tracepoint_params("sched_process_exit")
    name = "kring_exit" if params is not None and params >= 3 else "kring_exit_live"
    _exit_program_cache.append(name)
    return name


# ---- the source -------------------------------------------------------------

#: The WANT_* bit of each event kind.
_WANT = {"process": WANT_PROCESS, "image": WANT_IMAGE}
#: The ring buffer map's size: a power of two from a page to 2 GiB.
_SIZE_MAX = 1 << 31


_open_sources: "weakref.WeakSet[LinuxKernelSource]" = weakref.WeakSet()


class LinuxKernelSource:
    """The loaded and attached eBPF programs and their maps. Closing it
    detaches every program and closes every fd (the kernel then frees the
    programs and maps; nothing is pinned, so a killed process leaves nothing
    behind either)."""

    def __init__(self, events=EVENT_KINDS, size: int = DEFAULT_SIZE, max_args: int = DEFAULT_MAX_ARGS,
                 wake_interval: Optional[float] = None, filter: Optional[KernelFilter] = None):
        self.want = event_bits(events, _WANT)
        #: Which processes' events the programs write (None: every process's).
        self.filter = filter
        self.max_args = check_max_args(max_args)
        self.capacity = check_ring_size(size, os.sysconf("SC_PAGE_SIZE"), _SIZE_MAX)
        #: Seconds a record may wait before a blocked reader is woken (0: per record).
        self.wake_interval = check_wake_interval(wake_interval)
        #: Unconsumed bytes that wake the reader at once (with a wake interval).
        self.wake_bytes = self.capacity // WAKE_FRACTION
        self._obj = None
        self._links: list = []
        self._filter_fds: Dict[str, int] = {}
        self._tree_held: set = set()
        self._closed = False
        self._pid = os.getpid()
        path = object_path()
        check_privileges(self.want)
        ffi, bpf, libc = _libbpf.load()
        self._ffi, self._bpf = ffi, bpf
        with _libbpf.lock:
            _libbpf.clear_log()
            try:
                if self.want & WANT_IMAGE:
                    ensure_tracefs(libc, ffi)
                # exec_failed uses syscall tracepoints: attached where tracefs is there (or can
                # be mounted); process records without them need no tracefs.
                self.exec_failed = bool(self.want & WANT_PROCESS) and _can_trace_syscalls(libc, ffi)
                self._open(path)
            except BaseException:
                self._release()
                raise
        _open_sources.add(self)

    # -- set-up --
    def _fail(self, what: str, err: int, verifier: bool = False):
        err = abs(err)
        # The verifier rejects a program with EACCES; only EPERM means privileges there.
        if err == errno.EPERM or (err == errno.EACCES and not verifier):
            raise errors.KringPermissionError(
                "permission denied while %s (%s): the kernel event source needs root, or CAP_BPF and "
                "CAP_PERFMON (kernel lockdown or a seccomp/LSM policy can also forbid BPF)%s"
                % (what, os.strerror(err), _libbpf.log_tail()))
        raise errors.KringError("%s failed: %s%s" % (what, os.strerror(err) if err else "unknown error",
                                                    _libbpf.log_tail()))

    def _open(self, path: str) -> None:
        ffi, bpf = self._ffi, self._bpf
        obj = bpf.bpf_object__open_file(path.encode(), ffi.NULL)
        if obj == ffi.NULL:
            self._fail("opening the eBPF object %s" % path, ffi.errno)
        self._obj = obj
        self._progs = {}
        exit_prog = exit_program()
        for name, needs in _PROGRAMS:
            prog = bpf.bpf_object__find_program_by_name(obj, name.encode())
            if prog == ffi.NULL:
                raise errors.KringError("the eBPF object %s has no program %s: rebuild pykring" % (path, name))
            wanted = bool(needs & self.want)
            if name.startswith("kring_exit"):
                wanted = wanted and name == exit_prog
            if name.startswith("kring_execve"):
                wanted = wanted and self.exec_failed
            bpf.bpf_program__set_autoload(prog, wanted)
            if wanted:
                self._progs[name] = prog
        ring = self._map("kring_events")
        rc = bpf.bpf_map__set_max_entries(ring, self.capacity)
        if rc:
            self._fail("sizing the ring buffer map", rc)
        ncpus = bpf.libbpf_num_possible_cpus()
        if ncpus <= 0:
            self._fail("counting the possible CPUs", ncpus)
        rc = bpf.bpf_map__set_max_entries(self._map("kring_scratch"), ncpus)
        if rc:
            self._fail("sizing the scratch map", rc)
        flt = self.filter or KernelFilter()
        for name, entries in flt.map_sizes().items():
            rc = bpf.bpf_map__set_max_entries(self._map(name), entries)
            if rc:
                self._fail("sizing the filter map %s" % name, rc)
        clock, offset = clock_config(bpf)
        self.clock = clock
        page_shift = os.sysconf("SC_PAGE_SIZE").bit_length() - 1
        cfg = _lib.ffi.new("struct kring_bpf_config *", {
            "want": self.want, "clock": clock, "clock_offset": offset, "page_shift": page_shift,
            "args_max": self.max_args, "wake_interval_ns": int(round(self.wake_interval * 1e9)),
            "wake_bytes": self.wake_bytes, **flt.config()})
        rc = bpf.bpf_map__set_initial_value(self._map(".rodata.kring"), cfg, _lib.ffi.sizeof(cfg[0]))
        if rc:
            self._fail("configuring the eBPF programs", rc)
        rc = bpf.bpf_object__load(obj)
        if rc:
            self._fail("loading the eBPF programs (%s)" % path, rc, verifier=True)
        self.ring_fd = bpf.bpf_map__fd(ring)
        self._counts_fd = bpf.bpf_map__fd(self._map("kring_counts"))
        self._state_fd = bpf.bpf_map__fd(self._map("kring_state"))
        put = self._put_key
        flt.fill(put)
        self._ncpus = bpf.libbpf_num_possible_cpus()
        if self._ncpus <= 0:
            self._fail("counting the possible CPUs", self._ncpus)
        for name, _ in _PROGRAMS:
            prog = self._progs.get(name)
            if prog is None:
                continue
            link = bpf.bpf_program__attach(prog)
            if link == ffi.NULL:
                self._fail("attaching %s" % name, ffi.errno)
            self._links.append(link)
            if name == "kring_fork":
                self._set_attached(time.monotonic_ns())
        if not self.want & WANT_PROCESS:
            self._set_attached(time.monotonic_ns())
        # Children forked before the fork program was attached.
        flt.follow_tree(put, self._tree_held)

    def _put_key(self, name: str, key: int) -> None:
        """Add `key` to the filter set `name` (kring_pids, kring_uids, kring_tree)."""
        fd = self._filter_fds.get(name)
        if fd is None:
            fd = self._filter_fds[name] = self._bpf.bpf_map__fd(self._map(name))
        if name == "kring_tree":
            self._tree_held.add(key)
        k = self._ffi.new("uint32_t *", key)
        one = self._ffi.new("uint8_t *", 1)
        rc = self._bpf.bpf_map_update_elem(fd, k, one, 0)
        if rc:
            self._fail("writing the filter map %s" % name, rc)

    def _map(self, name: str):
        m = self._bpf.bpf_object__find_map_by_name(self._obj, name.encode())
        if m == self._ffi.NULL:
            raise errors.KringError("the eBPF object has no map %s: rebuild pykring" % name)
        return m

    def _set_attached(self, ns: int) -> None:
        key = self._ffi.new("uint32_t *", 0)
        val = _lib.ffi.new("struct kring_bpf_state *", {"attached_ns": ns})
        rc = self._bpf.bpf_map_update_elem(self._state_fd, key, val, 0)
        if rc:
            self._fail("writing the eBPF programs' state", rc)

    # -- use --
    def _counters(self):
        if self._closed:
            raise ValueError("the kernel event source is closed")
        ffi = self._ffi
        key = ffi.new("uint32_t *", 0)
        per_cpu = _lib.ffi.new("struct kring_bpf_counts[]", self._ncpus)
        rc = self._bpf.bpf_map_lookup_elem(self._counts_fd, key, per_cpu)
        if rc:
            self._fail("reading the counters", rc)
        return per_cpu

    def counts(self) -> Tuple[int, int]:
        """(written, dropped) records, summed over the CPUs."""
        per_cpu = self._counters()
        return sum(c.written for c in per_cpu), sum(c.dropped for c in per_cpu)

    def wakeups(self) -> Dict[str, int]:
        """The wakeups the programs asked for with a wake interval, by cause:
        ``hwm`` (a record past the high-water mark), ``timer`` (the wake
        timer found unconsumed records), ``now`` (a syscall tracepoint
        program found no timer armed, or the timer was late).
        With wake_interval 0 the kernel decides per record and none are counted."""
        per_cpu = self._counters()
        return {"hwm": sum(c.wakes_hwm for c in per_cpu), "timer": sum(c.wakes_timer for c in per_cpu),
                "now": sum(c.wakes_now for c in per_cpu)}

    def tree_full(self) -> int:
        """With a tree filter: new members of the tree its full map could not
        hold (their events were not written)."""
        return sum(c.tree_full for c in self._counters())

    def _ids(self, fds: Iterable[int]) -> List[int]:
        ffi = self._ffi
        out = []
        for fd in fds:
            info = ffi.new("uint32_t[2]")      # bpf_prog_info / bpf_map_info start: type, id
            n = ffi.new("uint32_t *", 8)
            if self._bpf.bpf_obj_get_info_by_fd(fd, info, n) == 0:
                out.append(int(info[1]))
        return out

    @property
    def prog_ids(self) -> List[int]:
        """Kernel ids of the loaded programs (as `bpftool prog list` shows them)."""
        return self._ids(self._bpf.bpf_program__fd(p) for p in self._progs.values())

    @property
    def map_ids(self) -> List[int]:
        """Kernel ids of the maps (libbpf's internal ones for global data included)."""
        fds: List[int] = []
        m = self._ffi.NULL
        while True:
            m = self._bpf.bpf_object__next_map(self._obj, m)
            if m == self._ffi.NULL:
                return self._ids(fds)
            fds.append(self._bpf.bpf_map__fd(m))

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Detach every program and close every fd. Idempotent. Nothing in a fork
        child: the links are the parent's (detaching one disables it there too)."""
        if self._closed:
            return
        self._closed = True
        _open_sources.discard(self)
        if os.getpid() == self._pid:
            self._release()

    def _release(self) -> None:
        bpf = getattr(self, "_bpf", None)
        if bpf is None:         # failed before libbpf was loaded: nothing opened or attached
            return
        for link in reversed(self._links):
            bpf.bpf_link__destroy(link)
        self._links = []
        if self._obj is not None:
            bpf.bpf_object__close(self._obj)
            self._obj = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def bpf_ring(map_fd: int, capacity: int, types: List[Tuple[int, str, np.dtype]], *,
             min_sizes: Optional[Dict[int, int]] = None,
             counts: Optional[Callable[[], Tuple[int, int]]] = None,
             on_close: Optional[Callable[[], None]] = None, name: Optional[str] = None) -> Ring:
    """A Ring over a Linux BPF ring buffer map (its fd and data size).

    ``types``: (id, name, record dtype) of the records the BPF programs
    write; ``min_sizes``: shortest valid payload per type id (default: the
    full size); ``counts()``: (written, dropped) as the programs count them;
    ``on_close``: called after the mapping is released (detach programs,
    close fds). Used by the Linux kernel event source and the BPF benchmark.
    """
    ffi, lib = _lib.ffi, _lib.lib
    c = ffi.new("struct kring_consumer *")
    _lib.check(lib.kring_consumer_map_bpf(c, map_fd, capacity), "map BPF ring buffer", c.m.os_error, c)
    for tid, tname, dt in types:
        size = dt.itemsize
        rc = lib.kring_consumer_set_type(c, tid, size, (min_sizes or {}).get(tid, size))
        if rc != lib.KRING_OK:
            lib.kring_consumer_close(c)
            _lib.check(rc, "record type %s" % tname)
    c.seq_started = 1            # programs number records from 0 when loaded
    c.next_seq = 0
    return Ring(c, list(types), name, on_close=on_close, written=counts, reopen="pykring.kernel()")


def open_ring(events=EVENT_KINDS, size: int = DEFAULT_SIZE, max_args: int = DEFAULT_MAX_ARGS,
              wake_interval: Optional[float] = None, filter: Optional[KernelFilter] = None) -> Ring[Batch]:
    """Load and attach the programs; return a :class:`pykring.Ring` over their
    ring buffer that detaches them when it is closed."""
    src = LinuxKernelSource(events, size, max_args, wake_interval, filter)
    try:
        ring = bpf_ring(src.ring_fd, src.capacity, linux_event_types(src.max_args), min_sizes=LINUX_MIN_SIZES,
                        counts=src.counts,
                        on_close=src.close, name="kernel:linux-bpf")
    except BaseException:
        src.close()
        raise
    ring.source = src
    _open_rings.add(ring)
    return ring


_open_rings: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At interpreter exit: close every kernel ring (and source) still open."""
    for obj in list(_open_rings) + list(_open_sources):
        try:
            obj.close()
        except Exception:
            pass
