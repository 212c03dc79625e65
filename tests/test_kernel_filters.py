"""Filters in the kernel (``pykring.kernel(pids=, tree=, uids=, cgroup=)``,
``watch --pid/--tree/--uid/--cgroup``): the eBPF programs check them before a
record is reserved, so that events of other processes are never written.

Each test starts its own processes and asserts on the kernel's ``written``
count and on the records' pids: a storm of processes outside the filter,
and whatever else the machine runs, must leave nothing in the ring. A filter
applied after the drain instead would pass the pid assertions and fail the
counts. Needs Linux and root (under KRING_REQUIRE_ALL=1 a skip is a failure).
"""
import json
import os
import random
import subprocess
import sys
import time

import pytest

import pykring
from pykring._bpf_filter import kernel_filter, resolve_cgroup
from tests.cgroup import TestCgroup

IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HANG_GUARD_S = 30
STORM = 300
#: A real uid no account of the machine has.
ODD_UID = 3_000_000 + random.randrange(1_000_000)


def _storm() -> int:
    """STORM processes started outside every filter of these tests (by the
    test process, root, in the root cgroup); returns the shell's pid."""
    p = subprocess.run(["sh", "-c", "for i in $(seq %d); do /bin/true; done; echo $$" % STORM],
                       stdout=subprocess.PIPE, text=True, check=True)
    return int(p.stdout)


def _read_until(ring, done, guard=HANG_GUARD_S):
    """Batches until done(records) is true; records as {type: [dict]}."""
    got = {name: [] for name in ring.dtypes}
    deadline = time.monotonic() + guard
    while not done(got):
        assert time.monotonic() < deadline, "the events did not arrive: %r" % {k: len(v) for k, v in got.items()}
        b = ring.read_batch(timeout=0.2)
        for name in b:
            for row in b[name]:
                got[name].append({f: row[f] for f in ("pid",) + (("ppid",) if "ppid" in row.dtype.names else ())})
    return got


def _pids(got):
    return {r["pid"] for rows in got.values() for r in rows}


def _exited(pid):
    return lambda got: any(r["pid"] == pid for r in got["process_exit"])


# ---- arguments (no kernel needed) ----------------------------------------

@pytest.mark.parametrize("kw, says", [
    ({"pids": []}, "pids is empty"),
    ({"pids": [0]}, "pids: 0 is not an integer from 1"),
    ({"pids": True}, "pids: True is not an integer"),
    ({"pids": "12"}, "is not an integer from 1 to"),
    ({"uids": [-1]}, "uids: -1 is not an integer from 0"),
    ({"uids": 3.5}, "uids must be an integer or a collection"),
    ({"tree": 0}, "tree must be a process id"),
    ({"tree": True}, "tree must be a process id"),
    ({"cgroup": ""}, "cgroup must be the path of a cgroup v2 directory"),
    ({"cgroup": "/no-such-cgroup-of-pykring"}, "no such cgroup v2 directory"),
])
def test_bad_filters_say_what_is_wrong(kw, says):
    with pytest.raises(ValueError) as exc:
        kernel_filter(**kw)
    assert says in str(exc.value), str(exc.value)


def test_a_tree_of_no_process_and_no_cgroup2_are_refused():
    dead = subprocess.Popen(["true"])
    dead.wait()
    with pytest.raises(ValueError, match="tree: no process %d is running" % dead.pid):
        kernel_filter(tree=dead.pid)
    with pytest.raises(ValueError, match="cgroup v2 is not mounted"):
        resolve_cgroup("/x", mounts=[])


def test_no_filter_is_none_and_filters_describe_themselves():
    assert kernel_filter() is None
    f = kernel_filter(pids=[7, 3], uids=5, tree=os.getpid())
    assert f.pids == {3, 7} and f.uids == {5}
    assert f.describe() == "pids 3,7, the tree of pid %d, uids 5" % os.getpid()


@needs_root
def test_a_cgroup_by_directory_or_as_proc_shows_it_is_the_same():
    with TestCgroup() as cg:
        d, cid, level = resolve_cgroup(cg.path)
        assert (d, cid, level) == resolve_cgroup(cg.name) == (cg.path, os.stat(cg.path).st_ino, 1)
        nested = os.path.join(cg.path, "inner")
        os.mkdir(nested)
        try:
            assert resolve_cgroup(cg.name + "/inner")[1:] == (os.stat(nested).st_ino, 2)
        finally:
            os.rmdir(nested)


# ---- the kernel ------------------------------------------------------------

def _idle(kind, cg):
    """A process that waits on its stdin (cat), started before the ring and
    matched by filter `kind`; and that filter's keyword arguments."""
    if kind == "uids":
        p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, user=ODD_UID)
        return p, {"uids": [ODD_UID]}
    if kind == "cgroup":
        p = cg.popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + HANG_GUARD_S
        while p.pid not in cg.pids():          # it entered the cgroup before the ring
            assert time.monotonic() < deadline
            time.sleep(0.005)
        return p, {"cgroup": cg.path}
    p = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL)
    return p, ({"pids": [p.pid]} if kind == "pids" else {"tree": p.pid})


@needs_root
@pytest.mark.parametrize("kind", ["pids", "tree", "uids", "cgroup"])
def test_a_storm_outside_the_filter_is_never_written(kind):
    """STORM processes outside the filter (and the rest of the machine)
    leave `written` at 0; the filtered process's exit is then the one record."""
    with TestCgroup() as cg:
        idle, kw = _idle(kind, cg)
        try:
            with pykring.kernel(**kw) as ring:
                assert ring.source.filter is not None
                _storm()
                time.sleep(0.05)
                assert ring.stats.written == 0, (kind, ring.stats)
                assert not ring.read_batch(timeout=0)
                idle.stdin.close()
                assert idle.wait(timeout=HANG_GUARD_S) == 0
                got = _read_until(ring, _exited(idle.pid))
                time.sleep(0.05)
                st = ring.stats
            assert _pids(got) == {idle.pid}, got
            assert st.written == 1 and st.dropped == 0 and st.lost == 0, st
        finally:
            if idle.poll() is None:
                idle.kill()
                idle.wait()


def _children(pid):
    with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
        return [int(x) for x in f.read().split()]


@needs_root
def test_a_tree_holds_the_descendants_from_before_the_ring_and_new_ones():
    """The tree's root has a child from before the ring (found in /proc);
    that child then starts /bin/true (added by the fork program). All three
    are seen, nothing else: not the storm started beside them."""
    # (A background job's stdin is /dev/null: the child reads the pipe as fd 3.)
    root = subprocess.Popen(["sh", "-c", 'exec 3<&0; sh -c "read go <&3; /bin/true; exit 3" & wait $!'],
                            stdin=subprocess.PIPE)
    try:
        deadline = time.monotonic() + HANG_GUARD_S
        while not _children(root.pid):
            assert time.monotonic() < deadline
            time.sleep(0.005)
        inner = _children(root.pid)[0]
        with pykring.kernel(events="process", tree=root.pid) as ring:
            storm = _storm()
            root.stdin.write(b"go\n")
            root.stdin.close()
            assert root.wait(timeout=HANG_GUARD_S) == 3
            got = _read_until(ring, _exited(root.pid))
            assert ring.source.tree_full() == 0
        pids = _pids(got)
        assert storm not in pids
        started = [r for r in got["process_start"] if r["ppid"] == inner]
        assert len({r["pid"] for r in started}) == 1, got      # /bin/true: fork and exec
        assert pids == {root.pid, inner, started[0]["pid"]}, got
        assert {r["pid"] for r in got["process_exit"]} == pids
    finally:
        if root.poll() is None:
            root.kill()
            root.wait()


@needs_root
def test_a_cgroup_filter_sees_what_runs_inside_and_below():
    """Processes in the test's cgroup and in a cgroup below it; the shell's
    fork (outside, before it entered) and the storm are not written."""
    with TestCgroup() as cg:
        nested = os.path.join(cg.path, "inner")
        os.mkdir(nested)
        try:
            with pykring.kernel(events="process", cgroup=cg.name) as ring:
                _storm()
                a = cg.popen(["/bin/true"])
                b = subprocess.Popen(["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec /bin/true', nested])
                assert a.wait() == 0 and b.wait() == 0
                got = _read_until(ring, lambda g: _exited(a.pid)(g) and _exited(b.pid)(g))
            assert _pids(got) == {a.pid, b.pid}, got
            # exec and exit of each: the fork came before the shell entered the cgroup.
            assert sorted(r["pid"] for r in got["process_start"]) == sorted([a.pid, b.pid])
        finally:
            os.rmdir(nested)


@needs_root
def test_watch_cgroup_prints_only_the_cgroups_events():
    with TestCgroup() as cg:
        w = subprocess.Popen([sys.executable, "-m", "pykring", "watch", "--json", "--events", "process",
                              "--cgroup", cg.path, "--count", "2", "--duration", "60"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
        try:
            fd, line = w.stderr.fileno(), b""
            while not line.endswith(b"\n"):
                c = os.read(fd, 1)
                if not c:
                    break
                line += c
            assert b"filtered in the kernel" in line and cg.path.encode() in line, line
            _storm()
            p = cg.popen(["/bin/true"])
            assert p.wait() == 0
            out, err = w.communicate(timeout=120)
        finally:
            if w.poll() is None:
                w.kill()
                w.wait()
        assert w.returncode == 0, err
        got = [json.loads(x) for x in out.decode().splitlines()]
        assert [(d["type"], d["pid"]) for d in got] == [("process_start", p.pid), ("process_exit", p.pid)], got


@needs_root
def test_no_filter_still_sees_everything():
    """Without filters the programs write every process's events (the checks
    are compiled out by the verifier, not left matching nothing)."""
    with pykring.kernel(events="process") as ring:
        assert ring.source.filter is None
        storm = _storm()
        got = _read_until(ring, _exited(storm))
    # The storm's /bin/true processes and its $(seq) (one or two processes, by shell).
    assert STORM + 1 <= sum(1 for r in got["process_exit"] if r["ppid"] == storm) <= STORM + 2
