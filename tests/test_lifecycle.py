"""Rings and producers used the way people use them: closed from another
thread while a call is blocked, inherited through fork, shared between
threads, on a full tmpfs, shrunk under a live mapping, replaced under their
name, and given hostile names and files.

Scenarios that could crash the interpreter (a SIGSEGV or SIGBUS is the
defect they guard against) run in a child interpreter, so a crash fails the
test instead of killing the test run. None of them asserts a wall-clock time;
the child has a generous timeout so a hang fails instead of stalling.
"""
import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import pykring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DT = np.dtype([("x", "<u8")])
IS_ROOT = os.geteuid() == 0


def run_child(code, *args, timeout=60):
    """Run `code` in a fresh interpreter with argv[1:] = args; its last
    stdout line is JSON. Fails on a crash (negative status) or non-zero exit."""
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    if r.returncode < 0:
        pytest.fail("the child died of signal %s\nstdout:\n%s\nstderr:\n%s"
                    % (signal.Signals(-r.returncode).name, r.stdout, r.stderr))
    assert r.returncode == 0, "child exit %d\nstdout:\n%s\nstderr:\n%s" % (r.returncode, r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


# -- 1. close() while another thread is blocked in the same object -------------

CLOSE_WHILE_BLOCKED = r'''
import json, os, sys, threading, time
import numpy as np, pykring
name, what = sys.argv[1], sys.argv[2]
dt = np.dtype([("x", "<u8")])
ring = pykring.create(name, 1 << 12, dt)
prod = pykring.Producer(name, block=True)
out = {}
entered = threading.Event()

def blocked():
    entered.set()
    try:
        if what == "read":
            ring.read(timeout=None)
        elif what == "read_batch":
            ring.read_batch(timeout=None)
        elif what == "read_out":
            ring.read(timeout=None, out=np.zeros(8, ring.dtype))
        elif what == "read_batch_out":
            ring.read_batch(timeout=None, out={"record": np.zeros(8, ring.dtype)})
        elif what == "iter":
            for _ in ring:
                pass
            out["ended"] = True
        elif what == "write":
            prod.write(np.zeros(10000, dt))        # far more than fits: blocks
    except pykring.RingClosedError as exc:          # ObjectClosedError, precisely
        out["error"] = "RingClosedError"
        out["written"] = getattr(exc, "written", None)
        out["is_value_error"] = isinstance(exc, ValueError)
    except BaseException as exc:
        out["error"] = repr(exc)

def asleep():
    # The word the blocked side stores 1 into before it sleeps in the kernel
    # (include/kring/kring.h): consumer_page.waiting at 64, or
    # producer_page.producer_waiting at 4096 + 12 for the writer.
    fd = os.open(ring.path, os.O_RDONLY)
    try:
        return os.pread(fd, 4, 4096 + 12 if what == "write" else 64) == (1).to_bytes(4, "little")
    finally:
        os.close(fd)

th = threading.Thread(target=blocked)
th.start()
entered.wait()
# Close only once the call sleeps in its wait (a hang guard, no timing): a
# close before it would test a call on a closed object instead.
deadline = time.monotonic() + 30
while not asleep():
    if not th.is_alive() or time.monotonic() > deadline:
        out["never_slept"] = True
        break
    time.sleep(0.001)
(prod if what == "write" else ring).close()
th.join(30)
out["returned"] = not th.is_alive()
# The closed object refuses further use with a clear error.
try:
    (prod.write((1,)) if what == "write" else ring.read())
except pykring.RingClosedError as exc:
    out["after"] = type(exc).__name__ if isinstance(exc, ValueError) else "not a ValueError"
(ring if what == "write" else prod).close()
print(json.dumps(out))
'''


@pytest.mark.parametrize("what", ["read", "read_batch", "read_out", "read_batch_out", "iter", "write"])
def test_close_from_another_thread_ends_a_blocked_call(ring_name, what):
    out = run_child(CLOSE_WHILE_BLOCKED, ring_name, what)
    assert "never_slept" not in out, out
    assert out["returned"], out
    if what == "iter":
        assert out.get("ended") and "error" not in out, out        # the iterator just ends
    else:
        assert out["error"] == "RingClosedError", out
    if what == "write":
        assert out["written"] is not None and out["written"] > 0, out
    assert out["after"] == "ObjectClosedError", out        # a RingClosedError and a ValueError
    if what != "iter":
        assert out["is_value_error"], out


CLOSE_KERNEL_RING = r'''
import json, os, threading, time
import pykring
ring = pykring.kernel(events="process")
out = {}
# epoll_wait, epoll_pwait and epoll_pwait2 (asm/unistd.h)
waits = {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}}[os.uname().machine]

def reader():
    try:
        while True:
            ring.read_batch(timeout=None)
    except pykring.RingClosedError:
        out["error"] = "RingClosedError"
    except BaseException as exc:
        out["error"] = repr(exc)

th = threading.Thread(target=reader)
th.start()
# Close once the reader sleeps in epoll_wait (its /proc syscall; 30 s hang
# guard): a close before it would test a read of a closed ring instead.
deadline = time.monotonic() + 30
while True:
    with open("/proc/self/task/%d/syscall" % th.native_id) as f:
        if f.read().split(" ", 1)[0] in waits:
            break
    if not th.is_alive() or time.monotonic() > deadline:
        out["never_slept"] = True
        break
    time.sleep(0.001)
ring.close()
th.join(30)
out["returned"] = not th.is_alive()
print(json.dumps(out))
'''


@pytest.mark.skipif(not IS_ROOT, reason="kernel rings need root")
def test_close_from_another_thread_ends_a_blocked_kernel_read():
    out = run_child(CLOSE_KERNEL_RING)
    assert out == {"error": "RingClosedError", "returned": True}


# -- 2. fork: inherited objects are inert in the child --------------------------

FORK_CHILD_EXITS = r'''
import gc, json, os, sys
import numpy as np, pykring
name = sys.argv[1]
dt = np.dtype([("x", "<u8")])
ring = pykring.create(name, 1 << 16, dt)
prod = pykring.Producer(name)
prod.write((1,))
pid = os.fork()
if pid == 0:
    # The child uses nothing and exits the normal way: finalizers and atexit run.
    del ring, prod
    gc.collect()
    sys.exit(0)
_, status = os.waitpid(pid, 0)
out = {"child": os.waitstatus_to_exitcode(status), "exists": os.path.exists(ring.path)}
prod.write((2,))
out["flags_closed"] = bool(ring.flags & 0x1)
out["read"] = [int(v) for v in ring.read(timeout=5)["x"]]
prod.close(); ring.close()
print(json.dumps(out))
'''


def test_fork_child_exit_leaves_the_parents_ring_alone(ring_name):
    out = run_child(FORK_CHILD_EXITS, ring_name)
    assert out == {"child": 0, "exists": True, "flags_closed": False, "read": [1, 2]}


FORK_CHILD_USES = r'''
import json, os, sys
import numpy as np, pykring
name = sys.argv[1]
dt = np.dtype([("x", "<u8")])
ring = pykring.create(name, 1 << 16, dt)
prod = pykring.Producer(name)
prod.write((1,))
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    res = {}
    for label, call in (("read", lambda: ring.read()), ("write", lambda: prod.write((9,))),
                        ("stats", lambda: ring.stats)):
        try:
            call()
            res[label] = "no error"
        except pykring.KringError as exc:
            res[label] = str(exc)
    os.write(w, json.dumps(res).encode())
    os._exit(0)
os.close(w)
_, status = os.waitpid(pid, 0)
child = json.loads(os.read(r, 65536))
prod.write((2,))
out = {"child": child, "read": [int(v) for v in ring.read(timeout=5)["x"]]}
prod.close(); ring.close()
print(json.dumps(out))
'''


def test_fork_child_cannot_use_inherited_objects(ring_name):
    out = run_child(FORK_CHILD_USES, ring_name)
    assert out["read"] == [1, 2], out          # the parent's ring is untouched
    for label, msg in out["child"].items():
        assert "another process" in msg and "attach" in msg, (label, msg)


# -- 3. one Ring or Producer shared by several threads --------------------------

THREADS_READ = r'''
import json, subprocess, sys, threading
import numpy as np, pykring
name, n = sys.argv[1], int(sys.argv[2])
dt = np.dtype([("x", "<u8")])
ring = pykring.create(name, 1 << 14, dt)
code = ("import numpy as np, pykring, sys\n"
        "p = pykring.Producer(sys.argv[1], block=True)\n"
        "for i in range(0, %d, 64):\n"
        "    p.write(np.arange(i, min(i + 64, %d), dtype=np.uint64).view([('x', '<u8')]))\n"
        "p.close()\n" % (n, n))
child = subprocess.Popen([sys.executable, "-c", code, name])
got = [[] for _ in range(3)]
errors = []

def reader(k):
    try:
        while True:
            rows = ring.read(max_records=7, timeout=None)
            got[k].append((rows["seq"].copy(), rows["x"].copy()))
    except pykring.RingClosedError:
        pass
    except BaseException as exc:
        errors.append(repr(exc))

threads = [threading.Thread(target=reader, args=(k,)) for k in range(3)]
for t in threads:
    t.start()
for t in threads:
    t.join(120)
child.wait(60)
seqs = np.concatenate([s for g in got for s, _ in g]) if any(got) else np.empty(0, np.uint64)
xs = np.concatenate([x for g in got for _, x in g]) if any(got) else np.empty(0, np.uint64)
ok_pairs = bool(np.array_equal(seqs, xs))
print(json.dumps({"errors": errors, "producer": child.returncode, "count": int(len(seqs)),
                  "unique": int(len(np.unique(seqs))), "pairs": ok_pairs,
                  "all": bool(np.array_equal(np.sort(seqs), np.arange(n))),
                  "alive": [t.is_alive() for t in threads]}))
'''


def test_threads_reading_one_ring_get_every_record_once(ring_name):
    n = 200_000
    out = run_child(THREADS_READ, ring_name, n, timeout=240)
    assert out == {"errors": [], "producer": 0, "count": n, "unique": n, "pairs": True, "all": True,
                   "alive": [False, False, False]}


def test_threads_writing_one_producer_are_serialised(ring_name):
    dt = np.dtype([("t", "<u4"), ("i", "<u4")])
    per, nthreads = 20_000, 4
    with pykring.create(ring_name, 1 << 14, dt) as ring, pykring.Producer(ring_name, block=True) as p:
        errors = []

        def writer(t):
            try:
                for i in range(0, per, 50):
                    recs = np.zeros(50, dtype=[("t", "<u4"), ("i", "<u4")])
                    recs["t"], recs["i"] = t, np.arange(i, i + 50)
                    p.write(recs)
            except BaseException as exc:   # pragma: no cover - reported below
                errors.append(repr(exc))

        threads = [threading.Thread(target=writer, args=(t,)) for t in range(nthreads)]
        for t in threads:
            t.start()
        parts = []
        total = 0
        while total < per * nthreads:
            rows = ring.read(timeout=30)
            assert len(rows), "no records for 30 s (%d of %d)" % (total, per * nthreads)
            parts.append(rows.copy())
            total += len(rows)
        for t in threads:
            t.join()
        rows = np.concatenate(parts)
        assert errors == []
        assert np.array_equal(rows["seq"], np.arange(per * nthreads))     # no gap, no duplicate
        for t in range(nthreads):
            assert np.array_equal(rows["i"][rows["t"] == t], np.arange(per))


# -- 4. a full tmpfs -----------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    """A 1 MiB tmpfs mounted for the test (needs root)."""
    if not IS_ROOT:
        pytest.skip("mounting a tmpfs needs root")
    d = tmp_path / "tmpfs"
    d.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], check=True)
    try:
        yield d
    finally:
        subprocess.run(["umount", "-l", str(d)], check=False)


FULL_TMPFS = r'''
import errno, json, os, sys
import numpy as np, pykring
d = sys.argv[1]
dt = np.dtype([("x", "<u8")])
out = {}
# 1. A ring larger than the filesystem.
try:
    pykring.create(os.path.join(d, "big"), 4 << 20, dt)
    out["big"] = "created"
except OSError as exc:
    out["big"] = [isinstance(exc, pykring.KringError), exc.errno, str(exc)]
out["big_left"] = os.path.exists(os.path.join(d, "big"))
# 2. A small ring on a filesystem with one page free.
fd = os.open(os.path.join(d, "filler"), os.O_WRONLY | os.O_CREAT)
try:
    while True:
        os.write(fd, b"\1" * 4096)
except OSError as exc:
    assert exc.errno == errno.ENOSPC
os.ftruncate(fd, os.fstat(fd).st_size - 4096)
os.close(fd)
try:
    with pykring.create(os.path.join(d, "small"), 1 << 12, dt) as ring:
        out["small"] = "created"
except OSError as exc:
    out["small"] = [isinstance(exc, pykring.KringError), exc.errno, str(exc)]
out["small_left"] = os.path.exists(os.path.join(d, "small"))
print(json.dumps(out))
'''


def test_full_tmpfs_is_enospc_at_create(small_tmpfs):
    out = run_child(FULL_TMPFS, small_tmpfs)
    for key in ("big", "small"):
        assert out[key][:2] == [True, errno.ENOSPC], out
        assert str(small_tmpfs) in out[key][2], out
        assert out[key + "_left"] is False, out


# -- 5. a ring file shrunk under a live mapping ---------------------------------

SHRUNK = r'''
import json, os, sys
import numpy as np, pykring
name, size = sys.argv[1], int(sys.argv[2])
dt = np.dtype([("x", "<u8")])
ring = pykring.create(name, 1 << 16, dt)
prod = pykring.Producer(name)
prod.write(np.zeros(10, dt))
os.truncate(ring.path, size)            # any process that can write the file can do this
out = {}
try:
    ring.read()
    out["read"] = "no error"
except pykring.KringError as exc:
    out["read"] = [type(exc).__name__, str(exc)]
try:
    prod.write(np.zeros(10, dt))
    out["write"] = "no error"
except pykring.KringError as exc:
    out["write"] = [type(exc).__name__, str(exc)]
prod.close(); ring.close()
print(json.dumps(out))
'''


@pytest.mark.parametrize("size", [0, 8192])
def test_file_shrunk_under_the_mapping_is_an_error_not_sigbus(ring_name, size):
    out = run_child(SHRUNK, ring_name, size)
    assert out["read"][0] == "RingCorruptError" and "truncated" in out["read"][1], out
    assert out["write"][0] == "RingBrokenError" and "truncated" in out["write"][1], out


# -- 6. close() removes only its own file --------------------------------------

def test_close_does_not_unlink_a_newer_ring_of_the_same_name(ring_name):
    old = pykring.create(ring_name, 1 << 12, DT)
    os.unlink(old.path)
    with pykring.create(ring_name, 1 << 12, DT) as new:
        old.close()
        assert os.path.exists(new.path)
        with pykring.Producer(ring_name) as p:          # the new ring still works
            p.write((7,))
        assert new.read(timeout=5)["x"].tolist() == [7]
    assert not os.path.exists(os.path.join("/dev/shm", ring_name))


# -- 7. read() commits only what it hands back -----------------------------------

def test_an_error_while_building_the_result_loses_nothing(ring_name, monkeypatch):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        p.write(np.arange(5, dtype=np.uint64).view(DT))
        real_empty, real_zeros = np.empty, np.zeros

        def failing(real):
            def alloc(shape, *a, **kw):
                if shape == 5:          # the rows of the result, whichever way they are made
                    raise MemoryError("injected")
                return real(shape, *a, **kw)
            return alloc

        monkeypatch.setattr(np, "empty", failing(real_empty))
        monkeypatch.setattr(np, "zeros", failing(real_zeros))
        with pytest.raises(MemoryError):
            ring.read()
        monkeypatch.setattr(np, "empty", real_empty)
        monkeypatch.setattr(np, "zeros", real_zeros)
        rows = ring.read()
        assert rows["x"].tolist() == [0, 1, 2, 3, 4]
        assert ring.stats.read == 5 and ring.stats.lost == 0


@pytest.mark.parametrize("how", ["now", "wait", "out"])
def test_an_error_while_building_a_batch_loses_nothing(ring_name, monkeypatch, how):
    types = {"a": np.dtype([("x", "<u8")]), "b": np.dtype([("y", "<u4")])}
    with pykring.create(ring_name, 1 << 16, types) as ring, pykring.Producer(ring_name) as p:
        p.write((1,), type="a")
        p.write((2,), type="b")
        real = pykring.Batch.__init__
        out = {name: np.zeros(4, dt) for name, dt in ring.dtypes.items()}
        kw = {"now": {}, "wait": {"timeout": None}, "out": {"timeout": None, "out": out}}[how]

        def failing(self, arrays):
            raise MemoryError("injected")

        monkeypatch.setattr(pykring.Batch, "__init__", failing)
        with pytest.raises(MemoryError):
            ring.read_batch(**kw)
        monkeypatch.setattr(pykring.Batch, "__init__", real)
        batch = ring.read_batch(**kw)
        assert batch["a"]["x"].tolist() == [1] and batch["b"]["y"].tolist() == [2]
        assert ring.stats.read == 2


# -- 8. a blocking producer learns that the consumer died ------------------------

CONSUMER_GONE = r'''
import json, os, signal, subprocess, sys, time
import numpy as np, pykring
name = sys.argv[1]
dt = np.dtype([("x", "<u8")])
prod = pykring.Producer.create(name, 1 << 12, dt, block=True)
consumer = subprocess.Popen([sys.executable, "-c",
    "import pykring, sys, time\nr = pykring.attach(sys.argv[1])\nprint('ready', flush=True)\ntime.sleep(600)\n",
    name], stdout=subprocess.PIPE, text=True)
assert consumer.stdout.readline().strip() == "ready"
os.kill(consumer.pid, signal.SIGKILL)
consumer.wait()
out = {}
try:
    prod.write(np.zeros(10000, dt), timeout=60)
    out["error"] = None
except pykring.KringError as exc:
    out["error"] = type(exc).__name__
    out["written"] = getattr(exc, "written", None)
    out["msg"] = str(exc)
prod.close()
os.unlink(prod.path)
print(json.dumps(out))
'''


def test_blocked_producer_learns_the_consumer_died(ring_name):
    out = run_child(CONSUMER_GONE, ring_name, timeout=120)
    assert out["error"] == "ConsumerGoneError", out
    assert isinstance(out["written"], int) and 0 < out["written"] < 10000, out
    assert issubclass(pykring.ConsumerGoneError, pykring.KringError)


CTRL_C_WRITE = r'''
import json, os, signal, sys, threading, time
import numpy as np, pykring
name = sys.argv[1]
dt = np.dtype([("x", "<u8")])
ring = pykring.create(name, 1 << 12, dt)
prod = pykring.Producer(name, block=True)

def interrupt_when_blocked():
    # Only once the write has filled the ring (it then waits for room), and
    # its count has stood still for a moment: the signal lands in the wait.
    last, still = -1, 0
    while still < 20:
        time.sleep(0.01)
        n = prod.written
        still = still + 1 if n == last and n > 0 else 0
        last = n
    os.kill(os.getpid(), signal.SIGINT)

threading.Thread(target=interrupt_when_blocked, daemon=True).start()
out = {}
try:
    prod.write(np.zeros(10000, dt))
except KeyboardInterrupt as exc:
    out["written"] = getattr(exc, "written", None)
out["committed"] = prod.written
prod.close(); ring.close()
print(json.dumps(out))
'''


def test_interrupted_blocking_write_reports_what_it_wrote(ring_name):
    out = run_child(CTRL_C_WRITE, ring_name)
    assert out["written"] is not None and out["written"] == out["committed"] > 0, out


# -- 9. untrusted files and names ---------------------------------------------

def test_symlink_at_the_ring_path_is_refused(ring_name, tmp_path):
    with pykring.create(str(tmp_path / "real"), 1 << 12, DT):
        link = os.path.join("/dev/shm", ring_name)
        os.symlink(str(tmp_path / "real"), link)
        for call in (lambda: pykring.attach(ring_name), lambda: pykring.Producer(ring_name)):
            with pytest.raises(pykring.KringError, match="symbolic link"):
                call()


@pytest.mark.skipif(not IS_ROOT, reason="chown needs root")
def test_producer_refuses_a_ring_owned_by_another_user(ring_name):
    with pykring.create(ring_name, 1 << 12, DT) as ring:
        os.chown(ring.path, 65534, 65534)
        with pytest.raises(pykring.KringPermissionError, match="65534"):
            pykring.Producer(ring_name)
        with pykring.Producer(ring_name, allow_other_owner=True) as p:     # the explicit opt-in
            p.write((1,))
        assert ring.read(timeout=5)["x"].tolist() == [1]


@pytest.mark.parametrize("name", ["..", ".", "../x", "a/../../x"])
def test_plain_names_cannot_leave_dev_shm(name):
    # A name without a slash is a file in /dev/shm; "." and ".." are not names.
    if "/" in name:
        assert pykring.ring_path(name) == name       # documented: a name with a slash is a path
    else:
        with pytest.raises(ValueError, match="name"):
            pykring.create(name, 1 << 12, DT)


REPLACE_EPERM = r'''
import json, os, sys
import numpy as np, pykring
name = sys.argv[1]
os.setgid(65534); os.setuid(65534)
try:
    pykring.create(name, 1 << 12, np.dtype([("x", "<u8")]), replace=True)
    out = "created"
except Exception as exc:
    out = [type(exc).__name__, isinstance(exc, PermissionError), str(exc)]
print(json.dumps(out))
'''


@pytest.mark.skipif(not IS_ROOT, reason="switching users needs root")
def test_replace_denied_is_a_kring_permission_error(ring_name):
    with pykring.create(ring_name, 1 << 12, DT):
        out = run_child(REPLACE_EPERM, ring_name)
    assert out[:2] == ["KringPermissionError", True], out


# -- 10. OS failures keep their errno ------------------------------------------

ERRNOS = r'''
import errno, json, os, resource, sys
import numpy as np, pykring
d = sys.argv[1]
dt = np.dtype([("x", "<u8")])
out = {}

def trial(label, call):
    try:
        call()
        out[label] = "no error"
    except OSError as exc:
        out[label] = [isinstance(exc, pykring.KringError), exc.errno, str(exc)]

trial("nametoolong", lambda: pykring.create("x" * 300, 1 << 12, dt))
trial("isdir", lambda: pykring.attach(d))
trial("nodir", lambda: pykring.create(os.path.join(d, "missing", "ring"), 1 << 12, dt))
trial("nodir_attach", lambda: pykring.attach(os.path.join(d, "missing", "ring")))
rings = []
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (32, hard))
def many():
    for i in range(64):
        rings.append(pykring.create(os.path.join(d, "r%d" % i), 1 << 12, dt))
trial("emfile", many)
for r in rings:
    r.close()
print(json.dumps(out))
'''


def test_os_errors_keep_their_errno(tmp_path):
    out = run_child(ERRNOS, tmp_path)
    expect = {"nametoolong": errno.ENAMETOOLONG, "isdir": errno.EISDIR, "nodir": errno.ENOENT,
              "nodir_attach": errno.ENOENT, "emfile": errno.EMFILE}
    for label, code in expect.items():
        is_kring, got, msg = out[label]
        assert is_kring and got == code, (label, out[label])
        assert os.strerror(code) in msg, (label, msg)
    assert "directory" in out["nodir"][2] and str(tmp_path) in out["nodir"][2]
    assert "create it first" not in out["nodir_attach"][2]


# -- 11. schema validation ------------------------------------------------------

def _patch_producer_page(path, offset, data):
    with open(path, "r+b") as f:
        f.seek(4096 + offset)
        f.write(data)


def test_duplicate_type_names_are_refused_at_attach(ring_name):
    types = {"a": np.dtype([("x", "<u8")]), "b": np.dtype([("x", "<u8")])}
    ring = pykring.create(ring_name, 1 << 12, types, unlink=False)
    path = ring.path
    ring.close()
    # types[] starts at @192, 40 bytes each, the name first: rename type 2 "b" -> "a".
    _patch_producer_page(path, 192 + 40, b"a\0")
    with pytest.raises(pykring.RingCorruptError, match="name"):
        pykring.attach(ring_name)


@pytest.mark.parametrize("fmt", [b"S99999999999\0", b"(65536,65536)u8\0"])
def test_absurd_field_formats_are_corrupt_not_numpy_errors(ring_name, fmt):
    ring = pykring.create(ring_name, 1 << 12, DT, unlink=False)
    path = ring.path
    ring.close()
    # fields[] starts at @832, 48 bytes each: name (24), then format (16). Field 0 is "x"
    # (the event header's fields are implied, not listed).
    _patch_producer_page(path, 832 + 24, fmt.ljust(16, b"\0"))
    with pytest.raises(pykring.RingCorruptError):
        pykring.attach(ring_name)


FOREIGN_SIGBUS = r'''
import mmap, os, signal, sys, tempfile
import numpy as np, pykring
name, how = sys.argv[1], sys.argv[2]
ring = pykring.create(name, 1 << 12, np.dtype([("x", "<u8")]))   # installs the ring's SIGBUS guard
if how == "kill":
    os.kill(os.getpid(), signal.SIGBUS)
else:
    # A fault in memory that is not a ring's: a mapped file shrunk under its mapping.
    fd, path = tempfile.mkstemp()
    os.ftruncate(fd, 1 << 16)
    m = mmap.mmap(fd, 1 << 16)
    os.ftruncate(fd, 0)
    m[40000]
print("survived")
'''


@pytest.mark.parametrize("how", ["kill", "fault"])
def test_a_sigbus_that_is_not_the_rings_still_kills(ring_name, how):
    # The guard turns a fault in a ring's mapping into an error; every other
    # SIGBUS must keep its default action (the process dies as it would have).
    r = subprocess.run([sys.executable, "-c", FOREIGN_SIGBUS, ring_name, how], capture_output=True,
                       text=True, timeout=60, cwd=ROOT)
    assert r.returncode == -signal.SIGBUS, (r.returncode, r.stdout, r.stderr)
    assert "survived" not in r.stdout
