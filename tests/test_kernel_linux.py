"""The Linux kernel event source on the real kernel: eBPF programs -> BPF ring
buffer -> pykring drain -> numpy, and ``python -m pykring watch``.

Needs Linux and root (CAP_BPF + CAP_PERFMON + tracefs): elsewhere these tests
skip, and under KRING_REQUIRE_ALL=1 (run.sh test as root, CI) a skip is a
failure, so a kernel that will not load the programs fails the suite. The
helper programs are tests/procs/kern_*.c, compiled here with gcc.
"""
import json
import os
import re
import resource
import shutil
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import pytest

import pykring
from pykring import events as ev

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROCS = os.path.join(ROOT, "tests", "procs")
IS_LINUX = sys.platform.startswith("linux")
IS_ROOT = IS_LINUX and os.geteuid() == 0

needs_root = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")

MS = 1_000_000


# ---- helpers ---------------------------------------------------------------

@pytest.fixture(scope="module")
def bins(tmp_path_factory):
    """The helper programs, compiled into a temporary directory."""
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to build the helper programs")
    d = tmp_path_factory.mktemp("kern")
    out = {}
    for name, extra in (("kern_exit", []), ("kern_dlopen", ["-ldl"]), ("kern_threads", ["-pthread"]),
                        ("kern_forkstorm", [])):
        exe = str(d / name)
        subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", os.path.join(PROCS, name + ".c"),
                        "-o", exe, *extra], check=True)
        out[name] = exe
    lib = str(d / "libkern_probe.so")
    subprocess.run(["gcc", "-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC",
                    os.path.join(PROCS, "kern_probe_lib.c"), "-o", lib], check=True)
    out["lib"] = lib
    out["dir"] = str(d)
    return out


class Collector:
    """Drains a kernel ring (in a thread, so the ring never fills while a test
    runs its workload) and keeps the records, all types."""

    def __init__(self, ring, keep=lambda name, arr: arr):
        self.ring = ring
        self.keep = keep
        self.parts = {name: [] for name in ring.dtypes}
        self._stop = threading.Event()
        self._error = None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        try:
            while not self._stop.is_set():
                b = self.ring.read_batch(timeout=0.05)
                for name in b:
                    if len(b[name]):
                        kept = self.keep(name, b[name])
                        if len(kept):
                            self.parts[name].append(kept)
                if b:
                    # Let records gather (the ring holds seconds of them): big
                    # batches leave the CPUs to the workload.
                    time.sleep(0.005)
        except BaseException as exc:       # pragma: no cover - reported by stop()
            self._error = exc

    def records(self, name):
        parts = self.parts[name]
        return np.concatenate(parts) if parts else np.empty(0, dtype=self.ring.dtypes[name])

    def wait_for(self, pred, timeout=10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if pred(self):
                return True
            time.sleep(0.02)
        return pred(self)

    def stop(self):
        self._stop.set()
        self._t.join(10)
        if self._error is not None:
            raise self._error


def _argv_bytes(argv):
    return b"\0".join(os.fsencode(a) for a in argv)


def _elf_interpreter(path):
    """PT_INTERP of a 64-bit little-endian ELF file."""
    with open(path, "rb") as f:
        data = f.read()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1
    phoff, = struct.unpack_from("<Q", data, 0x20)
    phentsize, phnum = struct.unpack_from("<HH", data, 0x36)
    for i in range(phnum):
        p_type, _, p_offset, _, _, p_filesz = struct.unpack_from("<IIQQQQ", data, phoff + i * phentsize)
        if p_type == 3:
            return data[p_offset:p_offset + p_filesz].rstrip(b"\0").decode()
    return None


def _bpf_ids(kind):
    out = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True, check=True).stdout
    return {p["id"] for p in json.loads(out or "[]")}


def _fds():
    return sorted(os.listdir("/proc/self/fd"))


def _bpf_mappings():
    with open("/proc/self/maps") as f:
        return [line for line in f if "bpf" in line]


# ---- no privileges needed -------------------------------------------------

def test_windows_kernel_source_is_the_driver(monkeypatch):
    """On Windows pykring.kernel() attaches to kring.sys (kernel_windows.open_driver),
    with the event kinds normalised from a tuple or a comma-separated string."""
    import pykring.kernel_windows as wk

    calls = []
    monkeypatch.setattr(wk, "open_driver", lambda events, size: calls.append((events, size)) or "ring")
    monkeypatch.setattr(sys, "platform", "win32")
    assert pykring.kernel(events="process, image", size=1 << 20) == "ring"
    assert pykring.kernel(events=("image",)) == "ring"
    assert calls == [(("process", "image"), 1 << 20), (("image",), 16 << 20)]


def test_other_platforms_have_no_kernel_source(monkeypatch):
    monkeypatch.setattr(sys, "platform", "darwin")
    with pytest.raises(pykring.KringError) as ei:
        pykring.kernel()
    assert isinstance(ei.value, NotImplementedError) and "darwin" in str(ei.value)


@pytest.mark.skipif(not IS_LINUX, reason="Linux only")
def test_missing_object_names_the_packages(monkeypatch, tmp_path):
    monkeypatch.setenv("KRING_BPF_OBJECT", str(tmp_path / "absent.bpf.o"))
    with pytest.raises(pykring.KringError) as ei:
        pykring.kernel()
    msg = str(ei.value)
    for pkg in ("clang", "llvm", "libbpf-dev", "bpftool", "libbpf1"):
        assert pkg in msg


@pytest.mark.skipif(not IS_LINUX, reason="Linux only")
def test_bad_arguments():
    with pytest.raises(ValueError):
        pykring.kernel(events=("process", "network"))
    with pytest.raises(ValueError):
        pykring.kernel(events=())
    with pytest.raises(ValueError):
        pykring.kernel(size=3 << 20)


@pytest.mark.skipif(not (IS_LINUX and shutil.which("clang") and os.path.exists("/sys/kernel/btf/vmlinux")
                         and os.path.exists("/usr/include/bpf/bpf_helpers.h")),
                    reason="needs clang, libbpf-dev and kernel BTF")
def test_bpf_source_builds_warning_free(tmp_path):
    bpftool = shutil.which("bpftool") or shutil.which("bpftool", path="/usr/sbin:/sbin")
    assert bpftool, "bpftool is missing (Debian package bpftool)"
    vmlinux = tmp_path / "vmlinux.h"
    with open(vmlinux, "wb") as f:
        subprocess.run([bpftool, "btf", "dump", "file", "/sys/kernel/btf/vmlinux", "format", "c"], stdout=f,
                       check=True)
    arch = {"x86_64": "x86", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)
    r = subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_" + arch, "-Wall",
                        "-Wextra", "-Wno-unused-parameter", "-Werror", "-I", str(tmp_path),
                        "-I", os.path.join(ROOT, "include"), "-c",
                        os.path.join(ROOT, "csrc", "bpf", "kring_events.bpf.c"), "-o", str(tmp_path / "k.o")],
                       capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, r.stderr


# ---- the real kernel ---------------------------------------------------------

@needs_root
def test_spawned_processes_are_all_seen(bins):
    """2,000 processes with unique command lines: each one's fork, exec and
    exit, with ppid, canonical path (exec'd through a symlink), command line,
    exit code (or -signal) and a timestamp within 1 ms of time.time_ns()."""
    n = 2000
    link = os.path.join(bins["dir"], "kern_exit_link")
    if not os.path.lexists(link):
        os.symlink(bins["kern_exit"], link)
    real = os.path.realpath(bins["kern_exit"]).encode()
    tag = uuid.uuid4().hex[:12]
    me = os.getpid()
    with pykring.kernel() as ring:
        col = Collector(ring)
        runs = []
        try:
            for i in range(n):
                code = -(15 if i % 2 else 9) if i % 97 == 0 else i % 256
                argv = [link, str(code), "tag-%s-%d" % (tag, i), "x" * (i % 7), "y"]
                t0 = time.time_ns()
                p = subprocess.Popen(argv)
                p.wait()
                t1 = time.time_ns()
                assert p.returncode == code
                runs.append((p.pid, code, argv, t0, t1))
            pids = {r[0] for r in runs}
            assert col.wait_for(lambda c: pids <= set(c.records("process_exit")["pid"].tolist()))
        finally:
            col.stop()
        st = ring.stats
    starts, exits = col.records("process_start"), col.records("process_exit")
    execs = starts[(starts["detail"] & ev.D_EXEC) != 0]
    forks = starts[(starts["detail"] & ev.D_EXEC) == 0]
    by_exec = {int(r["pid"]): r for r in execs if int(r["pid"]) in pids}
    by_fork = {int(r["pid"]): r for r in forks if int(r["pid"]) in pids}
    by_exit = {int(r["pid"]): r for r in exits if int(r["pid"]) in pids}
    assert len(by_exec) == len(by_fork) == len(by_exit) == n
    for pid, code, argv, t0, t1 in runs:
        e = by_exec[pid]
        assert e["ppid"] == me and e["creator_pid"] == pid and e["uid"] == 0
        assert e["path"] == real and e["path_len"] == len(real)
        assert e["cmdline"] == _argv_bytes(argv) and e["cmdline_len"] == len(_argv_bytes(argv))
        assert e["comm"] == os.path.basename(link).encode()[:15]
        assert e["flags"] == 0 and e["detail"] == ev.D_EXEC
        ts = int(e["ts"].astype(np.int64))
        assert t0 - MS <= ts <= t1 + MS, (t0, ts, t1)
        f = by_fork[pid]
        assert f["ppid"] == me and f["creator_pid"] == me
        assert int(f["ts"].astype(np.int64)) <= ts
        x = by_exit[pid]
        assert x["ppid"] == me and x["exit_code"] == code, (argv, x)
        assert x["detail"] == 0
        assert x["raw_status"] == ((code & 0xff) << 8 if code >= 0 else -code)
        assert ts <= int(x["ts"].astype(np.int64)) <= t1 + MS
        assert x["seq"] > e["seq"] > f["seq"]
    assert st.dropped == 0 and st.lost == 0, st


@needs_root
def test_dlopen_reports_the_library_main_binary_and_loader(bins):
    """A process that dlopens a library (through a symlink): image_load for the
    library's canonical path, covering the symbol dlsym found; for the main
    binary (KRING_D_MAIN_IMAGE) and the dynamic loader from the exec."""
    lib_link = os.path.join(bins["dir"], "libkern_link.so")
    if not os.path.lexists(lib_link):
        os.symlink(bins["lib"], lib_link)
    with pykring.kernel() as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen([bins["kern_dlopen"], lib_link, "kern_probe"], stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE, text=True)
            out, err = p.communicate()
            assert p.returncode == 0, err
            pid = p.pid
            assert col.wait_for(lambda c: pid in c.records("process_exit")["pid"].tolist())
        finally:
            col.stop()
    symbol = int(out.split()[1], 16)
    starts = col.records("process_start")
    mine = starts[(starts["pid"] == pid) & ((starts["detail"] & ev.D_EXEC) != 0)]
    assert len(mine) == 1 and mine[0]["path"] == os.path.realpath(bins["kern_dlopen"]).encode()
    imgs = col.records("image_load")
    imgs = imgs[imgs["pid"] == pid]
    paths = [bytes(x) for x in imgs["path"]]
    lib = os.path.realpath(bins["lib"]).encode()
    assert lib in paths, paths
    rec = imgs[paths.index(lib)]
    assert rec["base"] <= symbol < rec["base"] + rec["size"]
    assert rec["path_len"] == len(lib) and rec["detail"] == 0
    main = imgs[(imgs["detail"] & ev.D_MAIN_IMAGE) != 0]
    assert [bytes(x) for x in main["path"]] == [os.path.realpath(bins["kern_dlopen"]).encode()]
    interp = os.path.realpath(_elf_interpreter(bins["kern_dlopen"])).encode()
    assert interp in paths
    assert any(x.endswith(b"/libc.so.6") for x in paths)
    # exec-time images come right after the process_start, before any mmap.
    order = [bytes(x) for x in imgs[np.argsort(imgs["seq"])]["path"]]
    assert order[:2] == [os.path.realpath(bins["kern_dlopen"]).encode(), interp]
    for r in imgs:
        assert r["size"] > 0 and r["size"] % os.sysconf("SC_PAGE_SIZE") == 0
        assert r["file_offset"] % os.sysconf("SC_PAGE_SIZE") == 0


@needs_root
@pytest.mark.parametrize("exit_prog", ["auto", "kring_exit_live"])
def test_exit_only_when_the_whole_process_is_gone(bins, monkeypatch, exit_prog):
    """Threads neither start nor end processes: one process_start (exec), one
    process_exit with the code of the last thread's exit(). Also with the
    exit program for kernels without the group_dead tracepoint argument."""
    from pykring import kernel_linux

    if exit_prog != "auto":
        monkeypatch.setattr(kernel_linux, "EXIT_PROGRAM", exit_prog)
    else:
        assert kernel_linux.exit_program() == "kring_exit"     # this kernel has group_dead
    with pykring.kernel(events=("process",)) as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen([bins["kern_threads"], "6", "42"])
            assert p.wait() == 42
            others = [subprocess.Popen([bins["kern_exit"], str(i)]) for i in range(20)]
            for i, o in enumerate(others):
                assert o.wait() == i
            assert col.wait_for(lambda c: {o.pid for o in others + [p]} <= set(c.records("process_exit")["pid"]))
            time.sleep(0.05)
        finally:
            col.stop()
        assert ring.stats.lost == 0
    starts = col.records("process_start")
    exits = col.records("process_exit")
    assert len(starts[starts["pid"] == p.pid]) == 2          # fork + exec, no threads
    mine = exits[exits["pid"] == p.pid]
    assert len(mine) == 1 and mine[0]["exit_code"] == 42
    for i, o in enumerate(others):
        e = exits[exits["pid"] == o.pid]
        assert len(e) == 1 and e[0]["exit_code"] == i and e[0]["ppid"] == os.getpid()
    assert len(col.records("image_load")) == 0              # not asked for


@needs_root
def test_long_paths_and_command_lines_are_cut_and_flagged(bins, tmp_path):
    d = tmp_path
    while len(str(d)) < 600:
        d = d / ("d" * 60)
    d.mkdir(parents=True)
    exe = d / "kern_exit"
    shutil.copy(bins["kern_exit"], exe)
    args = [str(exe), "7"] + ["arg%04d" % i for i in range(200)]    # > 1 KiB
    with pykring.kernel() as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen(args)
            assert p.wait() == 7
            assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
        finally:
            col.stop()
    starts = col.records("process_start")
    e = starts[(starts["pid"] == p.pid) & ((starts["detail"] & ev.D_EXEC) != 0)][0]
    real = os.path.realpath(str(exe)).encode()
    assert e["detail"] & ev.D_PATH_TRUNCATED and e["detail"] & ev.D_CMDLINE_TRUNCATED
    assert e["flags"] & pykring.events.lib.KRING_EV_TRUNCATED
    assert e["path_len"] == 511 and e["path"] == real[:511]
    off = e.dtype.fields["cmdline"][1]
    assert e["cmdline_len"] == 1023 and e.tobytes()[off:off + 1024] == _argv_bytes(args)[:1023] + b"\0"
    imgs = col.records("image_load")
    main = imgs[(imgs["pid"] == p.pid) & ((imgs["detail"] & ev.D_MAIN_IMAGE) != 0)][0]
    assert main["detail"] & ev.D_PATH_TRUNCATED and main["flags"] & 1 and main["path"] == real[:511]


def _storm(ring, bins, n, expect_all=True):
    """Run kern_forkstorm n while draining; returns (storm pid, forks seen,
    exits seen, seconds)."""
    seen = {"fork": 0, "exit": 0}
    box = {}

    def keep(name, arr):
        pid = box.get("pid")
        if pid is None:
            return arr[:0]
        if name == "process_start":
            seen["fork"] += int(np.count_nonzero((arr["creator_pid"] == pid) & (arr["pid"] != pid)))
        elif name == "process_exit":
            seen["exit"] += int(np.count_nonzero(arr["ppid"] == pid))
        return arr[:0]

    col = Collector(ring, keep)
    try:
        p = subprocess.Popen([bins["kern_forkstorm"], str(n)], stdout=subprocess.PIPE, text=True)
        box["pid"] = p.pid
        out, _ = p.communicate()
        assert p.returncode == 0
        secs = float(out.split()[3])
        if expect_all:
            col.wait_for(lambda c: seen["exit"] >= n, timeout=20)
        time.sleep(0.1)
    finally:
        col.stop()
    return p.pid, seen["fork"], seen["exit"], secs


@needs_root
def test_fork_storm_default_ring_loses_nothing(bins):
    n = 100_000
    with pykring.kernel() as ring:
        pid, forks, exits, secs = _storm(ring, bins, n)
        st = ring.stats
    print("fork storm: %d forks in %.2f s (%.0f forks/s), %d records, dropped %d, gaps %d"
          % (n, secs, n / secs, st.written, st.dropped, st.lost))
    assert forks == n and exits == n
    assert st.dropped == 0 and st.lost == 0


@needs_root
def test_tiny_ring_drops_are_counted_exactly(bins):
    """A ring too small for the storm: the kernel counts every record it drops,
    and the consumer sees exactly as many sequence numbers missing."""
    with pykring.kernel(size=os.sysconf("SC_PAGE_SIZE")) as ring:
        # Nobody drains: nearly all of it is dropped ...
        subprocess.run([bins["kern_forkstorm"], "5000"], stdout=subprocess.DEVNULL, check=True)
        # ... then drops mixed with records, and numbers committed out of order.
        _storm(ring, bins, 10_000, expect_all=False)
        # Drops after the last record read are not gaps yet: a later record
        # shows them. Records are numbered before they are committed, so give
        # in-flight ones a moment too.
        for _ in range(50):
            subprocess.run(["/bin/true"])
            time.sleep(0.02)
            while ring.read_batch(timeout=0.05):
                pass
            st = ring.stats
            if st.lost == st.dropped and st.read == st.written:
                break
    print("tiny ring: written %d, dropped %d, gaps %d, read %d" % (st.written, st.dropped, st.lost, st.read))
    assert st.dropped >= 9000
    assert st.lost == st.dropped
    assert st.read == st.written


@needs_root
def test_event_selection_attaches_only_what_is_asked():
    with pykring.kernel(events=("process",)) as ring:
        assert len(ring.source.prog_ids) == 3
        subprocess.run(["/bin/true"])
        time.sleep(0.1)
        b = ring.read_batch()
        assert len(b["process_start"]) and len(b["process_exit"]) and not len(b["image_load"])
    with pykring.kernel(events="image") as ring:
        assert len(ring.source.prog_ids) == 3
        subprocess.run(["/bin/true"])
        time.sleep(0.1)
        b = ring.read_batch()
        assert not len(b["process_start"]) and not len(b["process_exit"]) and len(b["image_load"])
        assert set(b) == {"process_start", "process_exit", "image_load"}


@needs_root
def test_close_and_reopen_leaks_nothing():
    """100 open/close cycles: every program and map is gone afterwards (as
    bpftool lists them), and no fd or mapping is left in this process."""
    fds0, maps0 = _fds(), _bpf_mappings()
    progs, maps = set(), set()
    kinds = (("process", "image"), ("process",), ("image",))
    for i in range(100):
        ring = pykring.kernel(events=kinds[i % 3], size=1 << 16)
        progs.update(ring.source.prog_ids)
        maps.update(ring.source.map_ids)
        if i % 10 == 0:
            assert set(ring.source.prog_ids) <= _bpf_ids("prog")
        ring.close()
        assert ring.closed and ring.source.closed
        ring.close()                                        # idempotent
    assert len(progs) == 34 * 5 + 66 * 3 and len(maps) >= 100 * 5
    assert _fds() == fds0
    assert _bpf_mappings() == maps0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        left_p, left_m = progs & _bpf_ids("prog"), maps & _bpf_ids("map")
        if not left_p and not left_m:
            break
        time.sleep(0.1)
    assert not left_p and not left_m, (left_p, left_m)


_CHILD = """
import os, signal, sys, pykring
ring = pykring.kernel()
print(" ".join(map(str, ring.source.prog_ids)), flush=True)
if sys.argv[1] == "kill":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@needs_root
@pytest.mark.parametrize("how", ["exit", "kill"])
def test_programs_go_away_with_the_process(how):
    """Interpreter exit (atexit) and even SIGKILL leave no programs behind."""
    p = subprocess.run([sys.executable, "-c", _CHILD, how], capture_output=True, text=True)
    assert p.returncode == (0 if how == "exit" else -9), p.stderr
    ids = {int(x) for x in p.stdout.split()}
    assert len(ids) == 5
    deadline = time.monotonic() + 5
    while ids & _bpf_ids("prog") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not ids & _bpf_ids("prog")


# ---- permissions ---------------------------------------------------------------

def _as_nobody():
    os.setgroups([])
    os.setgid(65534)
    os.setuid(65534)


def _run_as_nobody(args, **kw):
    """Run args as uid/gid 65534 with no capabilities. setpriv (util-linux)
    drops them after resolving the program, so an interpreter under a
    directory nobody cannot search (a pyenv in /root) still starts."""
    kw.update(capture_output=True, text=True, cwd="/", env={**os.environ, "HOME": "/"}, timeout=120)
    setpriv = shutil.which("setpriv")
    if setpriv:
        return subprocess.run([setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", *args], **kw)
    return subprocess.run(args, preexec_fn=_as_nobody, **kw)


@needs_root
def test_unprivileged_user_gets_a_clear_permission_error():
    code = ("import pykring\n"
            "try:\n    pykring.kernel()\n"
            "except PermissionError as e:\n"
            "    print(type(e).__name__, isinstance(e, pykring.KringError)); print(e)\n")
    p = _run_as_nobody([sys.executable, "-c", code + "import os; print(os.getuid())\n"])
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines()[-1] == "65534"
    first, msg = p.stdout.rsplit("\n", 2)[0].split("\n", 1)
    assert first == "KringPermissionError True"
    assert "root" in msg and "CAP_BPF" in msg and "CAP_PERFMON" in msg


@needs_root
def test_unprivileged_cli_exits_nonzero_without_traceback():
    p = _run_as_nobody([sys.executable, "-m", "pykring", "watch", "--duration", "1"])
    assert p.returncode != 0
    assert "Traceback" not in p.stderr
    assert "permission denied" in p.stderr and "root" in p.stderr and "CAP_BPF" in p.stderr
    assert p.stdout == ""


# ---- the CLI -------------------------------------------------------------------

def _watch(*args, **kw):
    return subprocess.Popen([sys.executable, "-m", "pykring", "watch", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT, **kw)


def _wait_started(p):
    line = p.stderr.readline()
    assert "Ctrl-C to stop" in line, line + p.stderr.read()


@needs_root
def test_watch_json(bins):
    tag = "tag-%s" % uuid.uuid4().hex
    w = _watch("--json", "--duration", "4")
    _wait_started(w)
    r = subprocess.Popen([bins["kern_exit"], "5", tag])
    assert r.wait() == 5
    out, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert "Traceback" not in err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines and all(set(("type", "ts", "pid", "ppid", "path")) <= set(d) for d in lines)
    real = os.path.realpath(bins["kern_exit"])
    start = [d for d in lines if d["type"] == "process_start" and d["pid"] == r.pid and d["exec"]]
    assert len(start) == 1
    s = start[0]
    assert s["path"] == real and s["ppid"] == os.getpid() and s["cmdline"] == "%s 5 %s" % (bins["kern_exit"], tag)
    assert s["argv"] == [bins["kern_exit"], "5", tag]
    assert abs(s["ts"] - time.time_ns()) < 60 * 10**9
    exits = [d for d in lines if d["type"] == "process_exit" and d["pid"] == r.pid]
    assert len(exits) == 1 and exits[0]["exit_code"] == 5 and exits[0]["path"] == real
    imgs = [d for d in lines if d["type"] == "image_load" and d["pid"] == r.pid]
    assert imgs and all(isinstance(d["address"], int) and d["length"] > 0 for d in imgs)
    assert all(d["ppid"] == os.getpid() for d in imgs)
    assert re.search(r"pykring watch: \d+ events in [\d.]+ s \(fork \d+, exec \d+, exit \d+, image \d+\); "
                     r"kernel wrote \d+, dropped 0; sequence gaps 0", err), err


@needs_root
def test_watch_text_count_events_and_pid(bins):
    w = _watch("--count", "3", "--events", "process")
    _wait_started(w)
    for _ in range(5):
        subprocess.run(["/bin/true"])
    out, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "PID", "PPID", "PATH", "/", "COMMAND", "LINE"]
    assert len(lines) == 4
    for line in lines[1:]:
        assert re.match(r"\d\d:\d\d:\d\d\.\d{6}  (fork|exec|exit) ", line), line
    assert "3 events" in err
    sleeper = subprocess.Popen(["sleep", "1.5"])
    w = _watch("--json", "--pid", str(sleeper.pid), "--duration", "5")
    _wait_started(w)
    subprocess.run(["/bin/true"])
    sleeper.wait()
    out, err = w.communicate(timeout=30)
    got = [json.loads(line) for line in out.splitlines()]
    assert [(d["type"], d["pid"], d["exit_code"]) for d in got] == [("process_exit", sleeper.pid, 0)]
    assert got[0]["started_before"] is True


@needs_root
def test_watch_ctrl_c_exits_cleanly():
    w = _watch()
    _wait_started(w)
    subprocess.run(["/bin/true"])
    time.sleep(0.3)
    w.send_signal(signal.SIGINT)
    out, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "pykring watch:" in err.splitlines()[-1] and "sequence gaps" in err
    assert os.path.realpath("/bin/true") in out


@pytest.fixture
def local_core_pattern():
    """Cores go to the dumping process's working directory while the test runs:
    /proc/sys/kernel/core_pattern set to "core" (unless it already names a plain
    relative file) and restored afterwards, core_uses_pid likewise."""
    files = {"/proc/sys/kernel/core_pattern": "core", "/proc/sys/kernel/core_uses_pid": "0"}
    saved = {}
    for path in files:
        with open(path) as f:
            saved[path] = f.read().rstrip("\n")
    try:
        for path, value in files.items():
            if saved[path] != value:
                with open(path, "w") as f:
                    f.write(value)
        yield "core"
    finally:
        for path, value in saved.items():
            with open(path) as f:
                now = f.read().rstrip("\n")
            if now != value:
                with open(path, "w") as f:
                    f.write(value)


@needs_root
def test_core_dump_exit_keeps_the_signal_and_the_core_bit(bins, tmp_path, local_core_pattern):
    """A child killed by SIGABRT with RLIMIT_CORE > 0 dumps core: the wait status
    has the core bit (0x80). The process_exit record must give exit_code -6 (the
    bit does not change the signal) and raw_status equal to waitpid's status.
    The oracle is waitpid and the core file on disk."""
    def allow_core():
        resource.setrlimit(resource.RLIMIT_CORE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))

    with pykring.kernel(events=("process",)) as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen([bins["kern_exit"], "-%d" % signal.SIGABRT, "core"], cwd=str(tmp_path),
                                 preexec_fn=allow_core)
            _, status = os.waitpid(p.pid, 0)
            p.returncode = -signal.SIGABRT      # reaped here: keep Popen from waiting again
            assert col.wait_for(lambda c: p.pid in set(c.records("process_exit")["pid"].tolist()), 60)
        finally:
            col.stop()
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGABRT, hex(status)
    assert os.WCOREDUMP(status), "no core dumped (status 0x%x): the test needs a core to mean anything" % status
    assert os.path.exists(tmp_path / local_core_pattern), os.listdir(tmp_path)
    exits = col.records("process_exit")
    mine = exits[exits["pid"] == p.pid]
    assert len(mine) == 1
    assert mine[0]["exit_code"] == -signal.SIGABRT, mine
    assert mine[0]["raw_status"] == status, (hex(int(mine[0]["raw_status"])), hex(status))
    batch = {name: col.records(name)[:0] for name in col.parts}
    batch["process_exit"] = mine
    e = dict(ev.event_dicts(batch)[0], path=None)       # text_line needs a path (watch fills it in)
    assert e["exit_code"] == -signal.SIGABRT and "killed by SIGABRT" in ev.text_line(e)
