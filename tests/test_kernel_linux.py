"""The Linux kernel event source on the real kernel: eBPF programs -> BPF ring
buffer -> pykring drain -> numpy, and ``python -m pykring watch``.

Needs Linux and root (CAP_BPF + CAP_PERFMON + tracefs): elsewhere these tests
skip, and under KRING_REQUIRE_ALL=1 (run.sh test as root, CI) a skip is a
failure, so a kernel that will not load the programs fails the suite. The
helper programs are tests/procs/kern_*.c, compiled here with gcc.
"""
import glob
import json
import os
import re
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
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


def _strings(rec):
    """(path, cmdline) bytes of one process_start record (packed on Linux)."""
    return ev.start_strings(rec)[0]


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
    assert "then rebuild pykring: %s -m pip install " % sys.executable in msg, msg


@pytest.mark.skipif(not IS_LINUX, reason="Linux only")
@pytest.mark.parametrize("direct_url, command", [
    (None, "--force-reinstall --no-deps --no-cache-dir --no-binary pykring pykring"),
    ({"url": "file:///src/py%20kring", "dir_info": {"editable": True}}, "-e '/src/py kring'"),
    ({"url": "file:///src/pykring", "dir_info": {}}, "--force-reinstall --no-deps --no-cache-dir /src/pykring"),
    ({"url": "file:///dl/pykring-0.1.0.tar.gz", "archive_info": {}},
     "--force-reinstall --no-deps --no-cache-dir /dl/pykring-0.1.0.tar.gz"),
    ({"url": "https://example.org/pykring-0.1.0.tar.gz", "archive_info": {"hashes": {}}},
     "--force-reinstall --no-deps --no-cache-dir https://example.org/pykring-0.1.0.tar.gz"),
    ({"url": "https://github.com/pykring/pykring", "vcs_info": {"vcs": "git", "commit_id": "0123abc"}},
     "--force-reinstall --no-deps --no-cache-dir git+https://github.com/pykring/pykring@0123abc"),
])
def test_the_rebuild_command_follows_where_pykring_was_installed_from(tmp_path, direct_url, command):
    # An installed distribution's record of its origin (direct_url.json,
    # PEP 610), first on sys.path; none: installed from an index.
    info = tmp_path / "pykring-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: pykring\nVersion: 0.1.0\n")
    (info / "INSTALLER").write_text("pip\n")
    if direct_url is not None:
        (info / "direct_url.json").write_text(json.dumps(direct_url))
    # Beside it, a checkout's build metadata (no installer): not an install.
    (tmp_path / "checkout").mkdir()
    egg = tmp_path / "checkout" / "pykring.egg-info"
    egg.mkdir()
    (egg / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: pykring\nVersion: 0.1.0\n")
    code = ("import sys; sys.path[:0] = [%r, %r]\n"
            "from pykring._bpf_object import reinstall_command\n"
            "print(reinstall_command())\n") % (str(tmp_path / "checkout"), str(tmp_path))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=str(tmp_path), timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "%s -m pip install %s" % (sys.executable, command)


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
    # Every unit of the object (setup.py links them): each compiles alone.
    units = sorted(glob.glob(os.path.join(ROOT, "csrc", "bpf", "*.bpf.c")))
    assert len(units) > 1, units
    for unit in units:
        r = subprocess.run(["clang", "-O2", "-g", "-target", "bpf", "-mcpu=v3", "-D__TARGET_ARCH_" + arch, "-Wall",
                            "-Wextra", "-Wno-unused-parameter", "-Werror", "-I", str(tmp_path),
                            "-I", os.path.join(ROOT, "include"), "-c",
                            unit, "-o", str(tmp_path / "k.o")],
                           capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr, (unit, r.stderr)


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
        assert _strings(e) == (real, _argv_bytes(argv)) and e["path_len"] == len(real)
        assert e["cmdline_len"] == len(_argv_bytes(argv))
        assert e["comm"] == os.path.basename(link).encode()[:15]
        assert e["flags"] == 0 and e["detail"] == ev.D_EXEC | ev.D_PACKED
        ts = int(e["ts"].astype(np.int64))
        assert t0 - MS <= ts <= t1 + MS, (t0, ts, t1)
        f = by_fork[pid]
        assert f["ppid"] == me and f["creator_pid"] == me
        assert int(f["ts"].astype(np.int64)) <= ts
        x = by_exit[pid]
        assert x["ppid"] == me and x["exit_code"] == code, (argv, x)
        assert x["detail"] == 0 and x["path"] == real
        assert x["raw_status"] == ((code & 0xff) << 8 if code >= 0 else -code)
        assert ts <= int(x["ts"].astype(np.int64)) <= t1 + MS
        assert x["seq"] > e["seq"] > f["seq"]
    assert st.dropped == 0 and st.lost == 0, st


@needs_root
def test_a_view_of_the_kernel_ring_gives_its_records_as_a_read_does(bins):
    """Kernel records are variable-length (a process_start as long as its
    strings): Ring.view on the kernel ring copies them, as a Batch,
    consumed at the end of the block; every process this test started is
    seen once (the ring filtered in the kernel to this test's process tree)."""
    me = os.getpid()
    with pykring.kernel(events=("process",), tree=me) as ring:
        procs = [subprocess.Popen([bins["kern_exit"], "0", "view-%d" % i]) for i in range(20)]
        for p in procs:
            assert p.wait(timeout=60) == 0
        pids = {p.pid for p in procs}
        exits = []
        deadline = time.monotonic() + 60
        while not pids <= set(exits) and time.monotonic() < deadline:
            with ring.view(timeout=1) as batch:
                assert isinstance(batch, pykring.Batch) and set(batch) == set(ring.dtypes)
                exits += [pid for pid in batch["process_exit"]["pid"].tolist() if pid in pids]
        assert sorted(exits) == sorted(pids)          # each once: consumed at the end of each block
        assert ring.stats.lost == 0


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
    assert len(mine) == 1 and _strings(mine[0])[0] == os.path.realpath(bins["kern_dlopen"]).encode()
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
def test_long_paths_are_whole_and_long_command_lines_are_cut(bins, tmp_path):
    """A 700-byte path comes whole (PATH_MAX, not 511 bytes) on process_start,
    image_load and process_exit; a command line over the default 4 KiB is cut
    at 4,095 bytes and flagged."""
    d = tmp_path
    while len(str(d)) < 700:
        d = d / ("d" * 60)
    d.mkdir(parents=True)
    exe = d / "payload"
    shutil.copy(bins["kern_exit"], exe)
    args = [str(exe), "7"] + ["arg%04d" % i for i in range(600)]    # > 4 KiB
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
    assert len(real) > 700
    assert not e["detail"] & ev.D_PATH_TRUNCATED and e["detail"] & ev.D_CMDLINE_TRUNCATED
    assert e["flags"] & pykring.events.lib.KRING_EV_TRUNCATED
    assert e["path_len"] == len(real) and e["cmdline_len"] == 4095
    assert _strings(e) == (real, _argv_bytes(args)[:4095])
    imgs = col.records("image_load")
    main = imgs[(imgs["pid"] == p.pid) & ((imgs["detail"] & ev.D_MAIN_IMAGE) != 0)][0]
    assert not main["detail"] & ev.D_PATH_TRUNCATED and main["path"] == real
    x = col.records("process_exit")
    x = x[x["pid"] == p.pid][0]
    assert x["path"] == real and x["path_len"] == len(real)


@needs_root
def test_path_over_path_max_keeps_its_tail(bins, tmp_path):
    """A path longer than PATH_MAX (made with relative mkdirs) is cut from the
    front: the file name stays, D_PATH_TRUNCATED is set."""
    top = str(tmp_path)
    fd = os.open(top, os.O_RDONLY)
    comp = "e" * 200
    depth = 0
    try:
        while len(top) + depth * 201 < 4400:
            os.mkdir(comp, dir_fd=fd)
            nfd = os.open(comp, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = nfd
            depth += 1
        with open(bins["kern_exit"], "rb") as src:
            data = src.read()
        out = os.open("payload", os.O_WRONLY | os.O_CREAT, 0o755, dir_fd=fd)
        os.write(out, data)
        os.close(out)
        with pykring.kernel() as ring:
            col = Collector(ring)
            try:
                # exec through the directory fd: the child gets it as fd 3.
                p = subprocess.Popen(["/proc/self/fd/3/payload", "5"], pass_fds=(fd,)) if fd == 3 else \
                    subprocess.Popen(["sh", "-c", 'cd /proc/self/fd/%d && exec ./payload 5' % fd], pass_fds=(fd,))
                assert p.wait() == 5
                assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
            finally:
                col.stop()
    finally:
        os.close(fd)
    starts = col.records("process_start")
    e = starts[(starts["pid"] == p.pid) & ((starts["detail"] & ev.D_EXEC) != 0)][-1]
    path, _ = _strings(e)
    assert e["detail"] & ev.D_PATH_TRUNCATED and e["flags"] & 1
    assert path.endswith(b"/" + comp.encode() + b"/payload") and 4000 < len(path) <= 4095, len(path)
    assert e["path_len"] == len(path)


@needs_root
def test_memfd_and_unlinked_images_are_marked(bins, tmp_path):
    """exec and dlopen from a memfd: path "memfd:NAME" with D_MEMFD; exec of
    an unlinked file (through /proc/self/fd): its last path with D_DELETED,
    on process_start, image_load and process_exit."""
    mfd = os.memfd_create("kring-exe", 0)
    lfd = os.memfd_create("kring-lib", 0)
    for fd, src in ((mfd, bins["kern_exit"]), (lfd, bins["lib"])):
        with open(src, "rb") as f:
            os.write(fd, f.read())
    gone = tmp_path / "gone-exe"
    shutil.copy(bins["kern_exit"], gone)
    gfd = os.open(str(gone), os.O_RDONLY)
    gone_real = os.path.realpath(str(gone)).encode()
    os.unlink(gone)
    try:
        with pykring.kernel() as ring:
            col = Collector(ring)
            try:
                p1 = subprocess.Popen(["/proc/self/fd/%d" % mfd, "3"], pass_fds=(mfd,))
                p2 = subprocess.Popen([bins["kern_dlopen"], "/proc/self/fd/%d" % lfd, "kern_probe"],
                                      pass_fds=(lfd,), stdout=subprocess.DEVNULL)
                p3 = subprocess.Popen(["/proc/self/fd/%d" % gfd, "4"], pass_fds=(gfd,))
                assert (p1.wait(), p2.wait(), p3.wait()) == (3, 0, 4)
                pids = {p1.pid, p2.pid, p3.pid}
                assert col.wait_for(lambda c: pids <= set(c.records("process_exit")["pid"].tolist()))
            finally:
                col.stop()
    finally:
        for fd in (mfd, lfd, gfd):
            os.close(fd)
    starts, imgs, exits = col.records("process_start"), col.records("image_load"), col.records("process_exit")

    def start(pid):
        return starts[(starts["pid"] == pid) & ((starts["detail"] & ev.D_EXEC) != 0)][-1]

    def main(pid):
        return imgs[(imgs["pid"] == pid) & ((imgs["detail"] & ev.D_MAIN_IMAGE) != 0)][-1]

    def exit_(pid):
        return exits[exits["pid"] == pid][-1]

    e, m, x = start(p1.pid), main(p1.pid), exit_(p1.pid)
    assert _strings(e)[0] == b"memfd:kring-exe" and e["detail"] & ev.D_MEMFD and not e["detail"] & ev.D_DELETED
    assert m["path"] == b"memfd:kring-exe" and m["detail"] & ev.D_MEMFD
    assert x["path"] == b"memfd:kring-exe" and x["detail"] & ev.D_MEMFD
    lib = imgs[(imgs["pid"] == p2.pid) & (imgs["path"] == b"memfd:kring-lib")]
    assert len(lib) >= 1 and lib[0]["detail"] & ev.D_MEMFD
    e, m, x = start(p3.pid), main(p3.pid), exit_(p3.pid)
    assert _strings(e)[0] == gone_real and e["detail"] & ev.D_DELETED and not e["detail"] & ev.D_MEMFD
    assert m["path"] == gone_real and m["detail"] & ev.D_DELETED
    assert x["path"] == gone_real and x["detail"] & ev.D_DELETED
    # Ordinary files carry neither mark.
    e = start(p2.pid)
    assert not e["detail"] & (ev.D_DELETED | ev.D_MEMFD)
    for key, rec in (("exec", e), ("main", main(p2.pid))):
        assert not rec["detail"] & (ev.D_DELETED | ev.D_MEMFD), key


@needs_root
def test_command_line_up_to_64_kib_with_max_args(bins):
    """max_args=65536: a 60 KB command line comes whole; max_args out of range is a ValueError."""
    args = [bins["kern_exit"], "0"] + ["%05d" % i + "z" * 94 for i in range(600)]      # 60 KB
    want = _argv_bytes(args)
    assert 60000 < len(want) < 65535
    with pykring.kernel(events="process", max_args=65536) as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen(args)
            assert p.wait() == 0
            assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
        finally:
            col.stop()
        # Room for the worst case: the fixed part, three whole paths and the command line.
        assert ring.dtypes["process_start"].itemsize == 160 + 3 * 4096 + 65536
    starts = col.records("process_start")
    e = starts[(starts["pid"] == p.pid) & ((starts["detail"] & ev.D_EXEC) != 0)][0]
    assert not e["detail"] & ev.D_CMDLINE_TRUNCATED and _strings(e)[1] == want
    # cwd and the parent's path follow the 60 KB command line in the packed tail.
    assert ev.start_context(e)[0] == (os.fsencode(os.path.realpath(os.getcwd())),
                                      os.fsencode(os.readlink("/proc/self/exe")))
    for bad in (0, 63, 65537, "4096", 4096.0):
        with pytest.raises(ValueError, match="max_args"):
            pykring.kernel(events="process", max_args=bad)


@needs_root
def test_failed_execs_are_recorded_with_errno(tmp_path):
    """execve of a missing file (ENOENT) and of a file without the x bit
    (EACCES): an exec_failed record each, with pid, tid, uid, euid, the path
    as asked for and errno, which the calling process saw too."""
    noexec = tmp_path / "not-executable"
    noexec.write_bytes(b"#!/bin/sh\n")
    noexec.chmod(0o644)
    missing = str(tmp_path / "missing" / "prog")
    code = ("import os, sys\n"
            "for p in sys.argv[1:]:\n"
            "    try:\n"
            "        os.execv(p, [p])\n"
            "    except OSError as e:\n"
            "        print(e.errno)\n")
    with pykring.kernel(events="process") as ring:
        col = Collector(ring)
        try:
            r = subprocess.run([sys.executable, "-c", code, missing, str(noexec)], capture_output=True,
                               text=True, check=True)
            pid = None
            assert col.wait_for(lambda c: len(c.records("exec_failed")[
                c.records("exec_failed")["path"] == str(noexec).encode()]) > 0)
        finally:
            col.stop()
    assert r.stdout.split() == ["2", "13"]
    fails = col.records("exec_failed")
    mine = fails[np.isin(fails["path"], [missing.encode(), str(noexec).encode()])]
    assert [(bytes(m["path"]), int(m["error"])) for m in mine] == [(missing.encode(), 2), (str(noexec).encode(), 13)]
    pid = int(mine[0]["pid"])
    for m in mine:
        assert m["pid"] == pid and m["tid"] == pid and m["uid"] == 0 and m["euid"] == 0
        assert m["detail"] == 0
    e = ev.event_dicts({"exec_failed": mine, "process_start": col.records("process_start")[:0],
                        "process_exit": col.records("process_exit")[:0], "image_load": col.records("image_load")[:0]})
    assert [(x["type"], x["errno"], x["path"]) for x in e] == [("exec_failed", 2, missing),
                                                               ("exec_failed", 13, str(noexec))]
    j = json.loads(ev.json_line(dict(e[0], ppid=None)))
    assert j["errno"] == 2 and j["tid"] == pid and j["euid"] == 0 and j["path"] == missing


def _kept_dicts(col):
    return ev.event_dicts({name: col.records(name) for name in col.parts})


@needs_root
def test_identity_context_and_process_key(bins):
    """process_start carries euid/gid/egid, auid/sessionid (as /proc/self/loginuid
    and sessionid say), pid and mount namespaces and the cgroup id (as /proc
    and /sys/fs/cgroup say), exec_id equal to the one computed from /proc while
    the process runs, parent_exec_id equal to ours; its image_load and
    process_exit carry the same exec_id; the exit has start_ts, duration_ns,
    signal 9 for a SIGKILL."""
    with pykring.kernel() as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen(["sleep", "30"])
            assert col.wait_for(lambda c: any(d["pid"] == p.pid and d["type"] == "process_start" and d["exec"]
                                              for d in _kept_dicts(c)))
            from_proc = ev.exec_id_of(p.pid)
            p.kill()
            p.wait()
            assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
        finally:
            col.stop()
    ds = [d for d in _kept_dicts(col) if d["pid"] == p.pid]
    start = [d for d in ds if d["type"] == "process_start" and d["exec"]][0]
    exit_ = [d for d in ds if d["type"] == "process_exit"][0]
    imgs = [d for d in ds if d["type"] == "image_load"]

    def read(path):
        with open(path) as f:
            return int(f.read())

    assert start["uid"] == start["euid"] == os.geteuid() and start["gid"] == start["egid"] == os.getegid()
    assert start["auid"] == (None if read("/proc/self/loginuid") == 0xFFFFFFFF else read("/proc/self/loginuid"))
    assert start["sessionid"] == (None if read("/proc/self/sessionid") == 0xFFFFFFFF else read("/proc/self/sessionid"))
    assert start["pidns"] == os.stat("/proc/self/ns/pid").st_ino
    assert start["mntns"] == os.stat("/proc/self/ns/mnt").st_ino
    with open("/proc/self/cgroup") as f:
        cg = [line.split(":", 2)[2].strip() for line in f if line.startswith("0::")][0]
    assert start["cgroup_id"] == os.stat("/sys/fs/cgroup" + cg).st_ino
    assert json.loads(ev.json_line(start))["cgroup"] == cg
    assert start["exec_id"] == from_proc and start["exec_id"].startswith(ev.boot_id())
    assert start["parent_exec_id"] == ev.exec_id_of(os.getpid())
    assert imgs and all(d["exec_id"] == from_proc for d in imgs)
    assert exit_["exec_id"] == from_proc and exit_["signal"] == 9 and exit_["core_dumped"] is False
    assert exit_["duration_ns"] > 0 and exit_["start_ts"] == exit_["ts"] - exit_["duration_ns"]
    assert exit_["start_ts"] <= start["ts"]
    j = json.loads(ev.json_line(dict(exit_, ppid=None)))
    assert j["exec_id"] == from_proc and j["signal"] == 9 and "duration_ns" in j


@needs_root
def test_cwd_and_parent_path_on_fork_and_exec(bins, tmp_path):
    """process_start carries the working directory and the parent's executable,
    whole and as bytes: a child started in a 600-byte directory whose name holds
    a non-UTF-8 byte and a newline has that cwd on its exec record (its fork
    record, written before the child's chdir, has ours); both records' parent
    path is our /proc/PID/exe. JSON keeps the bytes (fsdecode'd)."""
    d = os.fsencode(str(tmp_path))
    while len(d) < 600:
        d = os.path.join(d, b"cwd\xff\n" + b"c" * 90)
    os.makedirs(d)
    ours = os.fsencode(os.readlink("/proc/self/exe"))
    with pykring.kernel(events="process") as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen([bins["kern_exit"], "3"], cwd=d)
            assert p.wait() == 3
            assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
        finally:
            col.stop()
    starts = col.records("process_start")
    mine = starts[starts["pid"] == p.pid]
    fork = mine[(mine["detail"] & ev.D_EXEC) == 0][0]
    exe = mine[(mine["detail"] & ev.D_EXEC) != 0][0]
    assert ev.start_context(exe)[0] == (os.path.realpath(d), ours)
    assert ev.start_context(fork)[0] == (os.fsencode(os.path.realpath(os.getcwd())), ours)
    assert exe["cwd_len"] == len(os.path.realpath(d)) > 600 and exe["parent_path_len"] == len(ours)
    assert not exe["detail"] & (ev.D_CWD_TRUNCATED | ev.D_PARENT_PATH_TRUNCATED)
    # The command line and path in front of them are intact.
    assert _strings(exe) == (os.fsencode(os.path.realpath(bins["kern_exit"])), _argv_bytes([bins["kern_exit"], "3"]))
    e = [x for x in _kept_dicts(col) if x["pid"] == p.pid and x["type"] == "process_start" and x["exec"]][0]
    assert os.fsencode(e["cwd"]) == os.path.realpath(d) and os.fsencode(e["parent_path"]) == ours
    j = json.loads(ev.json_line(e))
    assert os.fsencode(j["cwd"]) == os.path.realpath(d) and j["parent_path"] == os.fsdecode(ours)
    assert j["cwd_truncated"] is False and j["parent_path_truncated"] is False


@needs_root
def test_cwd_over_path_max_keeps_its_tail(bins, tmp_path):
    """A working directory deeper than PATH_MAX (reached with relative cds) is
    cut from the front: its last components stay, D_CWD_TRUNCATED is set, and
    the parent path after it is still whole."""
    comp = "w" * 200
    # Relative mkdir and chdir one level at a time: no call sees a path over PATH_MAX.
    script = ("import os, sys\nos.chdir(sys.argv[1])\nfor _ in range(22):\n"
              "    os.mkdir(%r)\n    os.chdir(%r)\nos.execv(sys.argv[2], [sys.argv[2], '4'])\n" % (comp, comp))
    with pykring.kernel(events="process") as ring:
        col = Collector(ring)
        try:
            p = subprocess.Popen([sys.executable, "-c", script, str(tmp_path), bins["kern_exit"]])
            assert p.wait() == 4
            assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
        finally:
            col.stop()
    starts = col.records("process_start")
    e = starts[(starts["pid"] == p.pid) & ((starts["detail"] & ev.D_EXEC) != 0)][-1]
    cwd, parent = ev.start_context(e)[0]
    assert e["detail"] & ev.D_CWD_TRUNCATED and e["flags"] & 1
    assert cwd.endswith(("/" + comp) .encode() * 3) and 4000 < len(cwd) <= 4095, len(cwd)
    assert parent == os.fsencode(os.readlink("/proc/self/exe"))
    assert ev.event_dicts({"process_start": e[None], "process_exit": col.records("process_exit")[:0],
                           "image_load": col.records("image_load")[:0]})[0]["cwd_truncated"]


@needs_root
def test_setuid_exec_shows_uid_and_euid(bins):
    """A setuid-root program run as uid 65534: uid 65534, euid 0, marked [setuid]."""
    d = tempfile.mkdtemp(dir="/tmp")
    try:
        os.chmod(d, 0o755)
        exe = os.path.join(d, "suid-exit")
        shutil.copy(bins["kern_exit"], exe)
        os.chmod(exe, 0o4755)
        with pykring.kernel(events="process") as ring:
            col = Collector(ring)
            try:
                p = subprocess.Popen(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", exe, "0"])
                assert p.wait() == 0
                assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist())
            finally:
                col.stop()
    finally:
        shutil.rmtree(d)
    start = [x for x in _kept_dicts(col) if x["pid"] == p.pid and x["type"] == "process_start"
             and x["exec"] and x["path"] == exe][0]
    assert (start["uid"], start["euid"], start["gid"], start["egid"]) == (65534, 0, 65534, 65534)
    assert "[setuid]" in ev.text_line(start)
    j = json.loads(ev.json_line(start))
    assert j["uid"] == 65534 and j["euid"] == 0


def _storm(ring, bins, n, expect_all=True):
    """Run kern_forkstorm n while draining; returns (storm pid, forks seen,
    exits seen, seconds)."""
    seen = {"fork": 0, "exit": 0}
    box = {}
    # Records read before Popen() returned the storm's pid (the storm forks as
    # soon as it has exec'd): the columns it is counted by, counted later.
    early = []

    def tally(name, cols, pid):
        if name == "process_start":
            seen["fork"] += int(np.count_nonzero((cols["creator_pid"] == pid) & (cols["pid"] != pid)))
        else:
            seen["exit"] += int(np.count_nonzero(cols["ppid"] == pid))

    def keep(name, arr):
        if name not in ("process_start", "process_exit"):
            return arr[:0]
        cols = {f: arr[f].copy() for f in (("creator_pid", "pid") if name == "process_start" else ("ppid",))}
        pid = box.get("pid")
        if pid is None:
            early.append((name, cols))
            return arr[:0]
        while early:
            tally(*early.pop(0), pid)
        tally(name, cols, pid)
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
        assert len(ring.source.prog_ids) == 7        # fork, exec, exit; execve(at) enter/exit
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
        assert set(b) == {"process_start", "process_exit", "image_load", "exec_failed"}


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
    assert len(progs) == 34 * 9 + 33 * 7 + 33 * 3 and len(maps) >= 100 * 5
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
    assert len(ids) == 9
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
    """The watch's first stderr line, read from the pipe a byte at a time:
    a buffered readline() would keep what follows it (the summary of a short
    watch) where communicate(), which reads the pipe, never sees it."""
    fd, got = p.stderr.fileno(), b""
    while not got.endswith(b"\n"):
        c = os.read(fd, 1)
        if not c:
            break
        got += c
    line = got.decode(errors="replace")
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
    assert s["cwd"] == os.path.realpath(os.getcwd()) and s["parent_path"] == os.readlink("/proc/self/exe")
    assert s["cwd_truncated"] is False and s["parent_path_truncated"] is False
    assert abs(s["ts"] - time.time_ns()) < 60 * 10**9
    exits = [d for d in lines if d["type"] == "process_exit" and d["pid"] == r.pid]
    assert len(exits) == 1 and exits[0]["exit_code"] == 5 and exits[0]["path"] == real
    imgs = [d for d in lines if d["type"] == "image_load" and d["pid"] == r.pid]
    assert imgs and all(isinstance(d["address"], int) and d["length"] > 0 for d in imgs)
    assert all(d["ppid"] == os.getpid() for d in imgs)
    assert re.search(r"pykring watch: \d+ events in [\d.]+ s \(fork \d+, exec \d+, exit \d+, image \d+, fail \d+\); "
                     r"kernel wrote \d+, dropped 0; sequence gaps 0", err), err


@needs_root
def test_watch_text_count_events_and_pid(bins):
    # --count counts the events shown: those of a shell the test started
    # (--tree), which runs /bin/true five times once the watch is attached.
    # Other processes' events, however many, are not shown and not counted.
    parent = subprocess.Popen(["sh", "-c", "read go; for i in 1 2 3 4 5; do /bin/true; done"],
                              stdin=subprocess.PIPE)
    try:
        w = _watch("--count", "3", "--events", "process", "--tree", str(parent.pid), "--duration", "60")
        _wait_started(w)
        parent.stdin.write(b"go\n")
        parent.stdin.close()
        assert parent.wait(timeout=30) == 0
        out, err = w.communicate(timeout=120)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
    assert w.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["TIME", "EVENT", "PID", "PPID", "PATH", "/", "COMMAND", "LINE"]
    assert len(lines) == 4, out
    for line in lines[1:]:
        assert re.match(r"\d\d:\d\d:\d\d\.\d{6}  (fork|exec|exit) ", line), line
        pid, ppid = line.split()[2:4]
        assert str(parent.pid) in (pid, ppid), line
    assert "3 events" in err, err
    # A process started before the watch, which exits (status 0) only when
    # told to, after the watch has attached: however long the watch takes to
    # start, its exit comes while the watch runs. --count 1 ends the watch
    # at the first event shown; /bin/true runs before it, so an unfiltered
    # event would be that one. --duration is the hang guard.
    sleeper = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    w = None
    try:
        w = _watch("--json", "--pid", str(sleeper.pid), "--count", "1", "--duration", "60")
        _wait_started(w)
        subprocess.run(["/bin/true"])
        sleeper.stdin.close()
        assert sleeper.wait(timeout=30) == 0
        out, err = w.communicate(timeout=120)
    finally:
        for q in (sleeper, w):
            if q is not None and q.poll() is None:
                q.kill()
                q.wait()
    assert w.returncode == 0, err
    got = [json.loads(line) for line in out.splitlines()]
    assert [(d["type"], d["pid"], d["exit_code"]) for d in got] == [("process_exit", sleeper.pid, 0)], (got, err)
    assert got[0]["started_before"] is True


def _read_until(p, text, timeout=30.0):
    """p's stdout up to the first appearance of `text` (the watch flushes each
    batch it prints). The timeout is a hang guard, not a timing claim."""
    fd = p.stdout.fileno()
    got = b""
    deadline = time.monotonic() + timeout
    while text.encode() not in got:
        left = deadline - time.monotonic()
        chunk = os.read(fd, 65536) if left > 0 and select.select([fd], [], [], left)[0] else None
        if not chunk:
            p.kill()
            out, err = p.communicate()
            raise AssertionError("the watch printed no %r (%s); stdout:\n%s\nstderr:\n%s" % (
                text, "it exited" if chunk == b"" else "%.0f s" % timeout, got.decode(errors="replace") + out, err))
        got += chunk
    return got.decode(errors="replace")


@needs_root
def test_watch_ctrl_c_exits_cleanly():
    w = _watch()
    _wait_started(w)
    subprocess.run(["/bin/true"])
    # Ctrl-C once the watch has printed the process: it stops without
    # draining, so an earlier signal could leave the line unprinted.
    _read_until(w, os.path.realpath("/bin/true"))
    w.send_signal(signal.SIGINT)
    out, err = w.communicate(timeout=30)
    assert w.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    assert "pykring watch:" in err.splitlines()[-1] and "sequence gaps" in err


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
