"""Batched wakeups of the Linux kernel event source (``wake_interval``), on the
real kernel: the eBPF programs commit records without a wakeup and wake a
sleeping reader by a timer (the interval), at once past the high-water mark,
or per record with ``wake_interval=0`` (docs/PROTOCOL.md 11.2).

Every ring here is filtered in the kernel to what the test started (its own
cgroup, or its own pid for the mmap): other processes' events, however many
the machine has, cannot wake the reader, so a wakeup the mechanism under test
failed to give shows as a reader that stays asleep.

The reader here sleeps in a single C wait of a minute (``kring_wait``), not in
``read()``'s slices of at most a second: only a kernel wakeup ends it early,
so a lost wakeup shows as a reader that never returns (the thread join is the
hang guard). The assertions are on counts: records, reads, the programs'
wakeup counters, sequence gaps.

Needs Linux and root; under KRING_REQUIRE_ALL=1 a skip is a failure.
"""
import mmap
import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import pykring
from pykring import _lib
from tests.cgroup import TestCgroup

IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = os.path.join(ROOT, "tests", "procs")
#: One sleep of the reader: far longer than any wait a test allows (HANG_GUARD_S).
SLEEP_NS = 60 * 10**9
HANG_GUARD_S = 30
#: epoll_wait, epoll_pwait and epoll_pwait2 by machine (the numbers of asm/unistd.h).
EPOLL_WAITS = {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}}.get(os.uname().machine, set())


@pytest.fixture(scope="module")
def forkstorm(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the helper programs")
    exe = str(tmp_path_factory.mktemp("wake") / "kern_forkstorm")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", os.path.join(PROCS, "kern_forkstorm.c"),
                    "-o", exe], check=True)
    return exe


class Reader:
    """Sleeps until the kernel wakes it (one kring_wait of SLEEP_NS at a
    time), then drains everything pending with read_batch(timeout=0). Counts
    its sleeps that ended with records (wakeups) and keeps the records."""

    def __init__(self, ring):
        self.ring = ring
        self.wakeups = 0
        self.reads = 0
        self.parts = {name: [] for name in ring.dtypes}
        self.asleep = threading.Event()
        self._stop = False
        self._error = None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        c = self.ring._c
        try:
            while not self._stop:
                self.asleep.set()
                rc = _lib.lib.kring_wait(c, SLEEP_NS)       # the GIL is released inside
                self.asleep.clear()
                if self._stop:
                    return
                assert rc == _lib.lib.KRING_OK, rc
                self.wakeups += 1
                while True:
                    b = self.ring.read_batch(timeout=0)
                    if not b:
                        break
                    self.reads += 1
                    for name in b:
                        if len(b[name]):
                            self.parts[name].append(b[name])
        except BaseException as exc:        # pragma: no cover - reported by stop()
            self._error = exc

    def records(self, name):
        parts = self.parts[name]
        return np.concatenate(parts) if parts else np.empty(0, dtype=self.ring.dtypes[name])

    def count(self):
        return sum(len(self.records(n)) for n in self.parts)

    def wait_asleep(self):
        """Until the reader sleeps in the kernel: its thread's /proc syscall is
        an epoll wait (the kernel's word; the asleep Event is set just before
        the call, so the records of a process started then could be pending
        before it sleeps, and it would test no wakeup)."""
        assert self.asleep.wait(HANG_GUARD_S)
        deadline = time.monotonic() + HANG_GUARD_S
        while True:
            with open("/proc/self/task/%d/syscall" % self._t.native_id) as f:
                if f.read().split(" ", 1)[0] in EPOLL_WAITS and self.asleep.is_set():
                    return
            assert self._t.is_alive(), self._error
            assert time.monotonic() < deadline, "the reader never slept in epoll_wait"
            time.sleep(0.001)

    def wait_for(self, pred):
        """Until pred() (polled; HANG_GUARD_S is the hang guard, not the assertion)."""
        deadline = time.monotonic() + HANG_GUARD_S
        while not pred():
            assert self._t.is_alive(), self._error
            assert time.monotonic() < deadline, "the records did not all arrive: a lost wakeup or dropped records"
            time.sleep(0.01)

    def stop(self):
        self._stop = True
        _lib.lib.kring_interrupt(_lib.ffi.addressof(self.ring._c, "m"))
        self._t.join(HANG_GUARD_S)
        assert not self._t.is_alive()
        if self._error is not None:
            raise self._error


@pytest.fixture
def cg():
    """A cgroup of the test's own (tests/cgroup.py)."""
    with TestCgroup() as c:
        yield c


def _pids(reader, name):
    return set(reader.records(name)["pid"].tolist())


def _spawn_and_wait_for_exit(reader, cg):
    """Run /bin/true in `cg` while the reader sleeps; wait until its exit was read."""
    reader.wait_asleep()
    p = cg.popen(["/bin/true"])
    assert p.wait() == 0
    reader.wait_for(lambda: p.pid in _pids(reader, "process_exit"))
    return p.pid


# ---- arguments -------------------------------------------------------------

def test_wake_interval_arguments():
    from pykring.kernel_linux import DEFAULT_WAKE_INTERVAL, check_wake_interval

    assert check_wake_interval(None) == DEFAULT_WAKE_INTERVAL
    assert check_wake_interval(0) == 0.0 and check_wake_interval(0.01) == 0.01 and check_wake_interval(10) == 10.0
    for bad in (-0.001, 10.5, float("nan"), float("inf"), "5ms", True, [1]):
        with pytest.raises(ValueError, match="wake_interval"):
            check_wake_interval(bad)
        with pytest.raises(ValueError, match="wake_interval"):
            pykring.kernel(wake_interval=bad)


def test_watch_wake_interval_option():
    from pykring._args import parse_wake_interval as _interval

    assert _interval("0") == 0.0 and _interval("5ms") == 0.005 and _interval("0.25") == 0.25
    assert _interval("2s") == 2.0
    r = subprocess.run([sys.executable, "-m", "pykring", "watch", "--wake-interval", "11"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "invalid wake interval" in r.stderr and "Traceback" not in r.stderr


# ---- the kernel ------------------------------------------------------------

@needs_root
@pytest.mark.parametrize("interval", [0.01, 0.0])
def test_a_lone_event_wakes_a_sleeping_reader(interval, cg):
    """One process while the reader sleeps: it is woken for the records (by
    the wake timer with an interval, by the kernel per record without one),
    never left asleep with records pending."""
    with pykring.kernel(events="process", wake_interval=interval, cgroup=cg.path) as ring:
        before = ring.source.wakeups()
        r = Reader(ring)
        try:
            for _ in range(3):
                pid = _spawn_and_wait_for_exit(r, cg)
                assert pid in _pids(r, "process_start")
        finally:
            r.stop()
        after = ring.source.wakeups()
        st = ring.stats
    assert st.lost == 0 and st.dropped == 0
    if interval:
        assert after["timer"] > before["timer"]
    else:
        assert after == before == {"hwm": 0, "timer": 0, "now": 0}


@needs_root
def test_an_executable_mmap_alone_wakes_a_sleeping_reader(tmp_path):
    """image_load from the mmap syscall tracepoint, whose program cannot arm
    the wake timer: it wakes the reader itself when no timer is armed."""
    lib = tmp_path / "blob.so"
    lib.write_bytes(b"\0" * 8192)
    with pykring.kernel(events="image", wake_interval=0.01, pids=[os.getpid()]) as ring:
        before = ring.source.wakeups()
        r = Reader(ring)
        try:
            r.wait_asleep()
            with open(lib, "rb") as f:
                m = mmap.mmap(f.fileno(), 8192, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_EXEC)
                m.close()
            me = os.getpid()

            def paths():
                il = r.records("image_load")
                return {bytes(p).split(b"\0")[0] for p in il[il["pid"] == me]["path"]}

            r.wait_for(lambda: os.path.realpath(lib).encode() in paths())
        finally:
            r.stop()
        after = ring.source.wakeups()
    assert after["now"] + after["timer"] > before["now"] + before["timer"]


def _storm(ring, forkstorm, n, cg):
    """kern_forkstorm N in `cg` while a Reader drains; wait until all N
    children's exits were read. Returns the Reader (stopped)."""
    r = Reader(ring)
    try:
        assert r.asleep.wait(HANG_GUARD_S)
        p = cg.popen([forkstorm, str(n)], stdout=subprocess.PIPE, text=True)
        out, _ = p.communicate()
        assert p.returncode == 0 and int(out.split()[1]) == n
        r.wait_for(lambda: int(np.count_nonzero(r.records("process_exit")["ppid"] == p.pid)) >= n)
        starts = r.records("process_start")
        assert int(np.count_nonzero((starts["creator_pid"] == p.pid) & (starts["pid"] != p.pid))) == n
    finally:
        r.stop()
    return r


@needs_root
def test_a_fork_storm_is_read_in_few_wakeups_and_loses_nothing(forkstorm, cg):
    """With a 200 ms interval, thousands of records come in far fewer wakeups
    and reads than records (per-record wakeups read a fork storm a record or
    two at a time), and every record arrives: no drops, no sequence gaps.
    The ratio depends on how fast the storm forks against the interval: on a
    loaded 2-CPU machine (~600 forks/s) a 50 ms interval gave 29 records a
    read against the 20 asserted; 200 ms leaves room for a slower storm."""
    n = 2000
    with pykring.kernel(events="process", wake_interval=0.2, cgroup=cg.path) as ring:
        r = _storm(ring, forkstorm, n, cg)
        st = ring.stats
        wakes = ring.source.wakeups()
    print("storm: %d records in %d wakeups, %d reads; programs: %s" % (r.count(), r.wakeups, r.reads, wakes))
    assert st.dropped == 0 and st.lost == 0
    assert r.count() >= 2 * n
    assert r.reads * 20 <= r.count() and r.wakeups * 20 <= r.count()
    assert wakes["timer"] >= 1


@needs_root
def test_a_burst_past_the_high_water_mark_wakes_before_the_interval(forkstorm, cg):
    """A 256 KiB ring (high-water mark 64 KiB) and a 10 s interval: a storm of
    several MiB of records wakes the reader each time a quarter of the ring is
    unconsumed, long before the interval, so the ring never fills: nothing is
    dropped. (Woken only by the interval, the ring would overflow.)"""
    n = 3000
    with pykring.kernel(events="process", size=256 << 10, wake_interval=10, cgroup=cg.path) as ring:
        assert ring.source.wake_bytes == 64 << 10
        r = _storm(ring, forkstorm, n, cg)
        st = ring.stats
        wakes = ring.source.wakeups()
    print("burst: %d records in %d wakeups; programs: %s; dropped %d" % (r.count(), r.wakeups, wakes, st.dropped))
    assert st.dropped == 0 and st.lost == 0
    assert wakes["hwm"] >= 1 and r.wakeups >= 2


@needs_root
def test_wake_interval_zero_wakes_per_record_as_before(forkstorm, cg):
    """wake_interval=0: the programs leave every wakeup to the kernel (a
    record that finds the reader caught up wakes it), so they count none, and
    a storm still arrives whole."""
    with pykring.kernel(events="process", wake_interval=0, cgroup=cg.path) as ring:
        r = _storm(ring, forkstorm, 500, cg)
        st = ring.stats
        wakes = ring.source.wakeups()
    print("interval 0: %d records in %d wakeups, %d reads" % (r.count(), r.wakeups, r.reads))
    assert wakes == {"hwm": 0, "timer": 0, "now": 0}
    assert st.dropped == 0 and st.lost == 0
