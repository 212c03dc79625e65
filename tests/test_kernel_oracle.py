"""The Linux kernel event source against an oracle nobody here wrote: bpftrace
on the same scheduler tracepoints, run at the same time as pykring.kernel().

For every process of the workload's own tree (the descendants of the workload
root, as bpftrace's sched_process_fork saw them): the start, the exec path,
the exit status and the ppid agree. Where the two report different things by
design, the comparison says why (see _canonical). Needs root and bpftrace
(run.sh test installs it); under KRING_REQUIRE_ALL=1 a missing bpftrace fails.
"""
import os
import re
import shutil
import subprocess
import time

import pytest

import pykring
from pykring import events as ev
from tests.test_kernel_linux import Collector, needs_root

BPFTRACE = r"""
tracepoint:sched:sched_process_fork { printf("F %d %d\n", args->parent_pid, args->child_pid); }
tracepoint:sched:sched_process_exec { printf("E %d %s\n", pid, str(args->filename)); }
tracepoint:sched:sched_process_exit { printf("X %d %d %d\n", pid, tid, curtask->exit_code); }
"""


def wait_attached(out, bt, lines_of, timeout=60.0):
    """Return once bpftrace (process `bt`, printing to the file `out`) traces
    every probe: it prints "Attaching N probes" before it attaches them, one
    at a time and in no fixed order, so marker processes run until one has all
    of its lines (the regular expressions lines_of(pid)) in the output. A
    marker forks from this process, execs sh, fails an exec (ENOENT) and
    exits. The timeout is a hang guard, not a timing claim."""
    deadline = time.monotonic() + timeout
    markers = []
    while True:
        text = out.read_text(errors="replace")
        if any(all(re.search(r, text, re.M) for r in lines_of(pid)) for pid in markers):
            return
        assert bt.poll() is None, "bpftrace exited (status %s):\n%s" % (bt.returncode, text)
        assert time.monotonic() < deadline, "bpftrace did not trace a marker process within %.0f s:\n%s" % (
            timeout, text[-4000:])
        m = subprocess.Popen(["/bin/sh", "-c", "exec /nonexistent-kring-marker/x"], stderr=subprocess.DEVNULL)
        assert m.wait() == 127
        markers.append(m.pid)
        time.sleep(0.1)


class Oracle:
    """bpftrace in the background, its lines kept in a file."""

    def __init__(self, tmp_path):
        exe = shutil.which("bpftrace")
        if exe is None:
            pytest.skip("bpftrace is not installed (run.sh test installs it)")
        self.out = tmp_path / "bpftrace.out"
        self._f = open(self.out, "w")
        self.p = subprocess.Popen([exe, "-e", BPFTRACE], stdout=self._f, stderr=subprocess.STDOUT)
        me = os.getpid()
        wait_attached(self.out, self.p, lambda pid: [r"^F %d %d$" % (me, pid), r"^E %d /bin/sh$" % pid,
                                                     r"^X %d %d " % (pid, pid)])

    def stop(self):
        time.sleep(0.5)
        self.p.terminate()
        self.p.wait(30)
        self._f.close()
        forks, execs, exits = {}, {}, {}
        for line in self.out.read_bytes().splitlines():
            parts = line.split(b" ", 2)
            if parts[0] == b"F" and len(parts) == 3:
                forks[int(parts[2])] = int(parts[1])
            elif parts[0] == b"E" and len(parts) == 3:
                execs.setdefault(int(parts[1]), []).append(parts[2])
            elif parts[0] == b"X" and len(parts) == 3:
                pid = int(parts[1])
                tid, code = parts[2].split(b" ")
                if int(tid) == pid:             # the leader's exit_code: the process's status
                    exits[pid] = int(code)
        return forks, execs, exits


def _tree(forks, root):
    """root and its descendants by the oracle's forks (new threads are not forks of processes:
    sched_process_fork fires for threads too, with the thread id as child_pid)."""
    children = {}
    for child, parent in forks.items():
        children.setdefault(parent, []).append(child)
    out, todo = {root}, [root]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


def _canonical(filename: bytes) -> bytes:
    """sched_process_exec's filename is the path as given to exec (/bin/sh may be a symlink
    to dash; relative names); pykring reports the opened file's canonical path. Equal after
    realpath when the name was absolute."""
    return os.path.realpath(filename) if filename.startswith(b"/") else filename


def _run(tmp_path, workload, cwd=None):
    oracle = Oracle(tmp_path)
    try:
        with pykring.kernel() as ring:
            col = Collector(ring)
            try:
                p = subprocess.Popen(workload, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                code = p.wait(timeout=900)
                time.sleep(1.0)
                assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist(), timeout=30)
            finally:
                col.stop()
            st = ring.stats
    finally:
        forks, execs, exits = oracle.stop()
    assert st.dropped == 0 and st.lost == 0, st
    return p.pid, code, col, forks, execs, exits


def _compare(root, col, forks, execs, exits):
    tree = _tree(forks, root)
    starts, ends = col.records("process_start"), col.records("process_exit")
    k_forks = {int(r["pid"]): int(r["ppid"]) for r in starts if not r["detail"] & ev.D_EXEC}
    k_execs = {}
    for r in starts[(starts["detail"] & ev.D_EXEC) != 0]:
        k_execs.setdefault(int(r["pid"]), []).append(ev.start_strings(r)[0][0])
    k_exits = {int(r["pid"]): int(r["raw_status"]) for r in ends}
    procs = {p for p in tree if p in exits}    # processes (thread ids have no leader exit)
    assert len(procs) > 1
    for pid in procs - {root}:
        assert pid in k_forks, "no process_start (fork) for %d" % pid
        assert k_forks[pid] == forks[pid], pid      # ppid: the forking process (no reparenting here)
    for pid in procs:
        assert pid in k_exits, "no process_exit for %d" % pid
        assert k_exits[pid] == exits[pid], (pid, k_exits[pid], exits[pid])
        want = [_canonical(f) for f in execs.get(pid, [])]
        got = k_execs.get(pid, [])
        assert len(got) == len(want), (pid, got, want)
        for g, w in zip(got, want):
            assert g == w or not w.startswith(b"/"), (pid, g, w)
    return procs


@needs_root
def test_shell_storm_agrees_with_bpftrace(tmp_path):
    """A 2,000-process shell storm: the same processes, exec paths, exit statuses, ppids."""
    root, code, col, forks, execs, exits = _run(
        tmp_path, ["sh", "-c", 'i=0; while [ $i -lt 2000 ]; do /bin/true $i; i=$((i+1)); done; exit 3'])
    assert code == 3
    procs = _compare(root, col, forks, execs, exits)
    assert len(procs) >= 2001


@needs_root
def test_parallel_build_agrees_with_bpftrace(tmp_path):
    """make -j2 over 200 generated C files: every compiler, assembler and linker process."""
    if not shutil.which("make") or not shutil.which("gcc"):
        pytest.skip("make and gcc are needed")
    src = tmp_path / "build"
    src.mkdir()
    for i in range(200):
        (src / ("f%03d.c" % i)).write_text("int f%d(int x) { return x * %d + 1; }\n" % (i, i))
    (src / "main.c").write_text("int main(void) { return 0; }\n")
    objs = " ".join("f%03d.o" % i for i in range(200))
    (src / "Makefile").write_text("prog: main.o %s\n\tgcc -o $@ $^\n%%.o: %%.c\n\tgcc -O0 -c $< -o $@\n" % objs)
    root, code, col, forks, execs, exits = _run(tmp_path, ["make", "-j2", "-s"], cwd=str(src))
    assert code == 0 and (src / "prog").exists()
    procs = _compare(root, col, forks, execs, exits)
    assert len(procs) > 400
