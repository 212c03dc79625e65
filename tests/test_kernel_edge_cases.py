"""The edge cases of process and image events against bpftrace, which traces the
same tracepoints at the same time (an oracle nobody here wrote).

One workload (a Python driver, the root of the tree) runs them all: exec and
dlopen from a memfd, exec of an unlinked file through /proc/self/fd, a 700-byte
path, non-UTF-8 and newline arguments, a 3,000-byte command line, a setuid-root
program run as uid 65534, ENOENT and EACCES execs, ``unshare -p -f``, an exec
from a thread that is not the leader, an orphan reparented before it execs, and
exits by SIGKILL and SIGSEGV. Per process of the tree: start, exec path, argv,
exit status, ppid and failed execs agree with bpftrace, or the comparison says
per field why bpftrace reports something else. And every executable file
mapping seen in /proc/PID/maps of a workload process while it ran has an
image_load (the driver's own maps, and those of a child that dlopens a memfd
library and then waits on a pipe while the driver reads them).
"""
import os
import shutil
import subprocess
import sys
import time

import pytest

import pykring
from pykring import events as ev
from tests.test_kernel_linux import Collector, bins, needs_root   # noqa: F401 (bins: fixture)
from tests.test_kernel_oracle import _tree, wait_attached

# bpftrace cuts strings and buffers at BPFTRACE_STRLEN bytes (at most 200).
STRLEN = 200
BPFTRACE = r"""
tracepoint:sched:sched_process_fork { printf("F %d %d\n", args->parent_pid, args->child_pid); }
tracepoint:sched:sched_process_exec {
    $m = curtask->mm;
    printf("E %d %d %d %s\n", pid, args->old_pid, $m->arg_end - $m->arg_start, str(args->filename));
    printf("A %d %r\n", pid, buf(uptr($m->arg_start), 200));
}
tracepoint:syscalls:sys_exit_execve /args->ret < 0/ { printf("R %d %d %d\n", pid, tid, -args->ret); }
tracepoint:sched:sched_process_exit { printf("X %d %d %d %d\n", pid, tid, curtask->exit_code, curtask->real_parent->tgid); }
"""

DRIVER = r'''
import ctypes, os, resource, shutil, signal, subprocess, sys, threading, time
exe, lib, work, out = sys.argv[1:5]
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))          # SIGSEGV: no core file
def run(args, **kw):
    try:
        return subprocess.run(args, stdout=subprocess.DEVNULL, **kw).returncode
    except OSError as e:                                   # ENOENT, EACCES: the child exits 255
        return -e.errno
with open(exe, "rb") as f:
    data = f.read()
# memfd exec
m = os.memfd_create("edge-exe", 0); os.write(m, data)
run(["/proc/self/fd/%d" % m, "0"], pass_fds=(m,))
# unlink then exec through /proc/self/fd
p = os.path.join(work, "gone"); shutil.copy(exe, p); os.chmod(p, 0o755)
g = os.open(p, os.O_RDONLY); os.unlink(p)
run(["/proc/self/fd/%d" % g, "1"], pass_fds=(g,))
# a 700-byte path
d = work
while len(d) < 700:
    d = os.path.join(d, "d" * 60)
os.makedirs(d); long_exe = os.path.join(d, "payload"); shutil.copy(exe, long_exe)
run([long_exe, "2"])
# non-UTF-8 and newline arguments; a 3,000-byte command line
run([exe, "3", b"\xff\xfe", b"new\nline", b""])
run([exe, "4"] + ["a" * 99] * 30)
# setuid-root program run as uid 65534
sd = os.path.join(work, "suid"); os.mkdir(sd); os.chmod(sd, 0o755)
suid = os.path.join(sd, "suid-exit"); shutil.copy(exe, suid); os.chmod(suid, 0o4755)
run(["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", suid, "5"])
# ENOENT and EACCES
run([os.path.join(work, "missing")])
nox = os.path.join(work, "noexec"); shutil.copy(exe, nox); os.chmod(nox, 0o644)
run([nox])
# a new pid namespace
run(["/usr/bin/unshare", "-p", "-f", exe, "6"])
# exec from a thread that is not the leader
run([sys.executable, "-c", "import os, sys, threading\n"
     "t = threading.Thread(target=os.execv, args=(sys.argv[1], [sys.argv[1], '7']))\nt.start(); t.join()", exe])
# an orphan: its parent exits, it is reparented, then it execs (the pipe ends with it)
o = subprocess.Popen([sys.executable, "-c", "import os, sys, time\n"
                      "parent = os.getpid()\n"
                      "if os.fork() == 0:\n"
                      "    deadline = time.monotonic() + 60\n"
                      "    while os.getppid() == parent and time.monotonic() < deadline:   # reparented first\n"
                      "        time.sleep(0.01)\n"
                      "    os.execv(sys.argv[1], [sys.argv[1], '8'])\n"
                      "os._exit(0)", exe], stdout=subprocess.PIPE)
o.communicate()
# SIGKILL and SIGSEGV
run([sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"])
run([sys.executable, "-c", "import ctypes; ctypes.string_at(0)"])
# dlopen from a memfd in a process that then waits on a pipe: its maps, read while it waits
lm = os.memfd_create("edge-lib", 0)
with open(lib, "rb") as f:
    os.write(lm, f.read())
c = subprocess.Popen([sys.executable, "-c", "import ctypes, sys\nctypes.CDLL(sys.argv[1])\n"
                      "print('ready', flush=True); sys.stdin.read()", "/proc/self/fd/%d" % lm],
                     pass_fds=(lm,), stdin=subprocess.PIPE, stdout=subprocess.PIPE)
assert c.stdout.readline() == b"ready\n"
with open("/proc/%d/maps" % c.pid) as f, open(os.path.join(out, "maps.%d" % c.pid), "w") as w:
    w.write(f.read())
c.stdin.close(); c.wait()
with open("/proc/self/maps") as f, open(os.path.join(out, "maps.%d" % os.getpid()), "w") as w:
    w.write(f.read())
'''


def _shown(b: bytes) -> str:
    """Bytes as bpftrace's %r prints a buffer: printable ASCII as is, others as \\xNN."""
    return "".join(chr(c) if 0x20 <= c < 0x7F else "\\x%02x" % c for c in b)


def _oracle(path):
    forks, execs, args, fails, exits = {}, {}, {}, {}, {}
    for line in open(path, "rb").read().splitlines():
        kind, _, rest = line.partition(b" ")
        if kind == b"F":
            parent, child = rest.split()
            forks[int(child)] = int(parent)
        elif kind == b"E":
            pid, old, n, name = rest.split(b" ", 3)
            execs.setdefault(int(pid), []).append((int(old), int(n), name))
        elif kind == b"A":
            pid, shown = rest.split(b" ", 1)
            args.setdefault(int(pid), []).append(shown.decode("latin-1"))
        elif kind == b"R":
            pid, _tid, err = rest.split()
            fails.setdefault(int(pid), []).append(int(err))
        elif kind == b"X":
            pid, tid, code, ppid = (int(x) for x in rest.split())
            if tid == pid:
                exits[pid] = (code, ppid)
    return forks, execs, args, fails, exits


def _maps(path):
    """(path as pykring names it) of each executable file mapping in a maps dump."""
    out = set()
    for line in open(path):
        parts = line.split(None, 5)
        if len(parts) < 6 or "x" not in parts[1] or not parts[5].startswith("/"):
            continue
        name = parts[5].rstrip("\n")
        if name.endswith(" (deleted)"):
            name = name[:-len(" (deleted)")]
        if name.startswith("/memfd:"):
            name = name[1:]                                # pykring: "memfd:NAME", D_MEMFD
        out.add(name)
    return out


@needs_root
def test_edge_cases_agree_with_bpftrace(bins, tmp_path):
    exe = shutil.which("bpftrace")
    if exe is None or not shutil.which("setpriv") or not shutil.which("unshare"):
        pytest.skip("bpftrace, setpriv and unshare are needed (run.sh test installs bpftrace)")
    work = tmp_path / "work"
    work.mkdir()
    os.chmod(str(tmp_path), 0o755)
    trace = tmp_path / "bpftrace.out"
    env = dict(os.environ, BPFTRACE_STRLEN=str(STRLEN))
    with open(trace, "w") as f:
        bt = subprocess.Popen([exe, "-e", BPFTRACE], stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        me = os.getpid()
        wait_attached(trace, bt, lambda pid: [r"^F %d %d$" % (me, pid), r"^E %d %d \d+ /bin/sh$" % (pid, pid),
                                              r"^R %d %d 2$" % (pid, pid), r"^X %d %d " % (pid, pid)])
        with pykring.kernel() as ring:
            col = Collector(ring)
            try:
                p = subprocess.Popen([sys.executable, "-c", DRIVER, bins["kern_exit"], bins["lib"], str(work),
                                      str(tmp_path)])
                assert p.wait(timeout=300) == 0
                time.sleep(1.0)
                assert col.wait_for(lambda c: p.pid in c.records("process_exit")["pid"].tolist(), timeout=30)
            finally:
                col.stop()
            st = ring.stats
    finally:
        time.sleep(0.5)
        bt.terminate()
        bt.wait(30)
    assert st.dropped == 0 and st.lost == 0, st
    forks, execs, args, fails, exits = _oracle(trace)
    tree = _tree(forks, p.pid)
    procs = {q for q in tree if q in exits}
    ds = ev.event_dicts({n: col.records(n) for n in col.parts})
    by = {}
    for d in ds:
        by.setdefault(d["pid"], []).append(d)
    checked = set()
    for pid in procs:
        mine = by.get(pid, [])
        starts = [d for d in mine if d["type"] == "process_start" and not d["exec"]]
        k_execs = [d for d in mine if d["type"] == "process_start" and d["exec"]]
        k_exit = [d for d in mine if d["type"] == "process_exit"]
        k_fails = [d["errno"] for d in mine if d["type"] == "exec_failed"]
        # start and ppid: the forking process (the oracle's parent_pid); the root's fork is ours.
        if pid != p.pid:
            assert len(starts) == 1 and starts[0]["ppid"] == forks[pid], (pid, starts)
        # exit status (wait status) and the ppid at exit (after any reparenting).
        assert len(k_exit) == 1, (pid, k_exit)
        assert (k_exit[0]["raw_status"], k_exit[0]["ppid"]) == exits[pid], (pid, k_exit[0], exits[pid])
        # failed execs: same errnos in the same order.
        assert k_fails == fails.get(pid, []), (pid, k_fails, fails.get(pid))
        # exec: count, calling thread, path, argv.
        o_execs = execs.get(pid, [])
        assert len(k_execs) == len(o_execs), (pid, k_execs, o_execs)
        for k, (old, n, name), shown in zip(k_execs, o_execs, args.get(pid, [])):
            assert k["tid"] == old, (pid, k["tid"], old)
            path = os.fsencode(k["path"])
            if name.startswith(b"/proc/self/fd/"):
                # The oracle has the name as given; pykring the opened file: a memfd
                # ("memfd:NAME") or an unlinked file (its last path), marked.
                assert k["memfd"] or k["deleted"], k
                checked.add("memfd" if k["memfd"] else "deleted")
            elif len(name) >= STRLEN - 1:
                # The oracle's string stops at BPFTRACE_STRLEN; pykring's path is whole.
                assert path.startswith(os.path.realpath(name)[:STRLEN // 2]) and len(path) > 700, (path, name)
                checked.add("long path")
            else:
                # The oracle's name as given (a symlink: /usr/bin/python3); pykring's canonical.
                assert path == os.path.realpath(name), (path, name)
            # argv: the oracle's length (arg_end - arg_start counts the final NUL) and its
            # first STRLEN bytes (it reads past argv into the environment, so compare the
            # part that is argv).
            cmd = k["cmdline"]
            assert len(cmd) + 1 == n and not k["args_truncated"], (pid, len(cmd), n)
            want = _shown(cmd + b"\0")[:len(shown)]
            assert shown.startswith(want[:len(_shown((cmd + b"\0")[:STRLEN]))]), (pid, shown, want)
            if n > 3000:
                checked.add("3000")
            if b"\xff\xfe" in cmd and b"new\nline" in cmd:
                assert k["argv"][2:] == [os.fsdecode(b"\xff\xfe"), "new\nline", ""]
                checked.add("bytes")
            if k["euid"] != k["uid"]:
                assert (k["uid"], k["euid"]) == (65534, 0)
                checked.add("setuid")
            if k["tid"] != pid:
                checked.add("thread")
            if k["pidns"] != os.stat("/proc/self/ns/pid").st_ino:
                checked.add("pidns")
        if k_exit[0]["signal"] in (9, 11):
            checked.add("signal %d" % k_exit[0]["signal"])
        if 2 in k_fails:
            checked.add("ENOENT")
        if 13 in k_fails:
            checked.add("EACCES")
        if starts and k_exit[0]["ppid"] != starts[0]["ppid"]:
            checked.add("orphan")
    assert checked >= {"memfd", "deleted", "long path", "3000", "bytes", "setuid", "thread", "pidns",
                       "signal 9", "signal 11", "ENOENT", "EACCES", "orphan"}, checked
    # Every executable file mapping seen while the process ran has an image_load.
    dumps = [f for f in os.listdir(str(tmp_path)) if f.startswith("maps.")]
    assert len(dumps) == 2
    all_seen = set()
    for f in dumps:
        pid = int(f.split(".")[1])
        seen = _maps(str(tmp_path / f))
        loads = {d["path"] for d in by.get(pid, []) if d["type"] == "image_load"}
        assert seen and not seen - loads, (pid, seen - loads)
        all_seen |= seen
    # The maps did show the memfd library and the interpreter (the driver's python).
    assert "memfd:edge-lib" in all_seen and os.path.realpath(sys.executable) in all_seen, all_seen
    lib_loads = [d for d in ds if d["type"] == "image_load" and d["memfd"] and d["path"] == "memfd:edge-lib"]
    assert lib_loads
