"""`python -m pykring watch` options: filters (--uid, --comm, --tree), --version,
and the errors for invalid values. The filters are checked on synthetic
records (no kernel needed); test_kernel_linux.py runs watch on the real one."""
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from pykring import events as ev
from pykring.watch import ProcessTable, Watch


def _batch(starts):
    """A Batch-like dict of Linux records: process_start rows (pid, ppid, uid, comm, path, exec)."""
    types = {name: dt for _, name, dt in ev.linux_event_types(4096)}
    a = np.zeros(len(starts), dtype=types["process_start"])
    off = types["process_start"].fields["path"][1]
    for i, (pid, ppid, uid, comm, path, is_exec) in enumerate(starts):
        a[i]["seq"], a[i]["pid"], a[i]["ppid"], a[i]["uid"], a[i]["euid"] = i, pid, ppid, uid, uid
        a[i]["comm"] = comm
        a[i]["detail"] = ev.D_PACKED | (ev.D_EXEC if is_exec else 0)
        a[i]["path_len"] = len(path)
        row = a[i:i + 1].view(np.uint8)
        row[off:off + len(path)] = np.frombuffer(path, np.uint8)
    out = {name: np.zeros(0, dtype=dt) for name, dt in types.items()}
    out["process_start"] = a
    return out


class _Table(ProcessTable):
    def _from_proc(self, pid):
        return None, None


def _shown(**kw):
    out = io.StringIO()
    w = Watch(out, as_json=True, table=_Table(), **kw)
    w.feed(_batch([
        (100, 1, 0, b"sh", b"/usr/bin/dash", True),
        (101, 100, 0, b"sh", b"/usr/bin/dash", False),       # fork in the tree
        (101, 100, 1000, b"payload", b"/tmp/payload", True),
        (102, 101, 1000, b"payload", b"/tmp/payload", False),  # grandchild
        (200, 1, 1000, b"other", b"/usr/bin/other", True),
    ]))
    return [(json.loads(line)["pid"], json.loads(line)["exec"]) for line in out.getvalue().splitlines()]


def test_uid_filter():
    assert _shown(uid=1000) == [(101, True), (102, False), (200, True)]


def test_comm_filter_matches_comm_and_path():
    assert _shown(comm="^pay") == [(101, True), (102, False)]
    assert _shown(comm="bin/oth") == [(200, True)]


def test_tree_follows_forks():
    assert _shown(tree=100) == [(100, True), (101, False), (101, True), (102, False)]
    assert _shown(tree=101) == [(101, False), (101, True), (102, False)]


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "pykring", "watch", *args], capture_output=True, text=True,
                          timeout=120)


def test_version():
    import pykring

    r = _cli("--version")
    assert r.returncode == 0 and r.stdout.strip() == "pykring %s" % pykring.__version__


@pytest.mark.parametrize("args, says", [
    (("--duration", "-1"), "a number of seconds >= 0"),
    (("--duration", "nan"), "a number of seconds >= 0"),
    (("--size", "abc"), "e.g. 4096, 64K, 16M"),
    (("--max-args", "lots"), "e.g. 4096, 64K, 16M"),
    (("--comm", "("), "invalid regular expression"),
])
def test_invalid_values_say_what_is_valid(args, says):
    r = _cli(*args)
    assert r.returncode == 2 and says in r.stderr and "Traceback" not in r.stderr, r.stderr
