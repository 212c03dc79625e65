"""The context watch --json adds to a process start: the container, pod and
systemd unit of its cgroup, the names of its uid and euid, and (--hash) the
sha256 of the file it executed; a recording keeps what was looked up, so a
replay elsewhere shows the same.

The cgroups are real directories under the cgroup2 mount, named as each
runtime names the cgroups it makes, with a process moved into each; the
names come from getent (the host's NSS) and the hashes from hashlib.
"""
import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

from pykring.events import container_context

IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEX = "0123456789abcdef" * 4


# ---- the names of the runtimes, as the path alone says them ----------------------

POD = "1d2c3b4a-5f6e-4789-8abc-0123456789ab"
NAMED = [
    ("system.slice/docker-%s.scope" % HEX, HEX, "docker", None, "docker-%s.scope" % HEX),
    ("docker/%s" % HEX, HEX, "docker", None, None),
    ("kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod%s.slice/cri-containerd-%s.scope"
     % (POD.replace("-", "_"), HEX), HEX, "containerd", POD, "cri-containerd-%s.scope" % HEX),
    ("kubepods.slice/kubepods-pod%s.slice/crio-%s.scope" % (POD.replace("-", "_"), HEX),
     HEX, "cri-o", POD, "crio-%s.scope" % HEX),
    ("kubepods/besteffort/pod%s/%s" % (POD, HEX), HEX, "kubernetes", POD, None),
    ("machine.slice/libpod-%s.scope/container" % HEX, HEX, "podman", None, "libpod-%s.scope" % HEX),
    ("machine.slice/libpod-conmon-%s.scope" % HEX, None, None, None, "libpod-conmon-%s.scope" % HEX),
    ("system.slice/crio-conmon-%s.scope" % HEX, None, None, None, "crio-conmon-%s.scope" % HEX),
    ("lxc.payload.web-1/system.slice/nginx.service", "web-1", "lxc", None, "nginx.service"),
    ("lxc.monitor.web-1", None, None, None, None),
    ("user.slice/user-1000.slice/user@1000.service/app.slice/editor.service", None, None, None,
     "editor.service"),
    ("", None, None, None, None),
]


@pytest.mark.parametrize("path, cid, runtime, pod, unit", NAMED)
def test_a_cgroup_path_names_its_container_pod_and_unit(path, cid, runtime, pod, unit):
    assert container_context("/" + path) == {"container_id": cid, "container_runtime": runtime,
                                             "pod_uid": pod, "unit": unit}


# ---- the live watch --------------------------------------------------------------

class Watched:
    """``watch --json --tree PARENT [ARGS]`` of a parent shell that waits for
    a line on stdin and then runs `script`: what it prints is the events of
    the script's processes only."""

    def __init__(self, tmp_path, script, *args):
        self.tmp = tmp_path
        self.parent = subprocess.Popen(["sh", "-c", "read go; " + script], stdin=subprocess.PIPE)
        self.out_path, self.err_path = str(tmp_path / "watch.out"), str(tmp_path / "watch.err")
        with open(self.out_path, "wb") as o, open(self.err_path, "wb") as e:
            self.watch = subprocess.Popen([sys.executable, "-m", "pykring", "watch", "--json", "--events", "process",
                                           "--tree", str(self.parent.pid), *args],
                                          stdout=o, stderr=e, cwd=ROOT)
        deadline = time.monotonic() + 180
        while b"Ctrl-C to stop" not in open(self.err_path, "rb").read():
            assert self.watch.poll() is None, open(self.err_path).read()
            assert time.monotonic() < deadline
            time.sleep(0.05)

    def run(self):
        """Run the script, then stop the watch (Ctrl-C); the events of the
        script's execs, and watch's stderr."""
        try:
            self.parent.stdin.write(b"go\n")
            self.parent.stdin.close()
            assert self.parent.wait(timeout=120) == 0
            time.sleep(0.3)
            self.watch.send_signal(signal.SIGINT)
            assert self.watch.wait(timeout=120) == 0, self.err()
        finally:
            for p in (self.parent, self.watch):
                if p.poll() is None:
                    p.kill()
                    p.wait()
        with open(self.out_path) as f:
            events = [json.loads(x) for x in f]
        return [e for e in events if e["type"] == "process_start" and e["exec"]], self.err()

    def err(self):
        return open(self.err_path).read()


def _in(cgroup_dir, argv):
    """A shell line that runs argv inside the cgroup (the shell moves itself in, then execs)."""
    return "sh -c 'echo $$ > %s/cgroup.procs && exec \"$@\"' sh %s" % (cgroup_dir, " ".join(argv))


@needs_root
def test_watch_json_reports_the_container_of_each_runtime_from_real_cgroups(tmp_path):
    """A process in each runtime's cgroup, as the runtime names it, and one in
    the host's own: container_id, container_runtime, pod_uid, unit."""
    from tests.cgroup import TestCgroup

    tag = uuid.uuid4().hex[:8]
    docker = "system.slice/docker-%s%s.scope" % (tag, HEX[8:])
    root = "pykring-test-%s" % tag
    cases = [(docker, tag + HEX[8:], "docker", None)] + \
            [(root + "/" + path, cid, runtime, pod) for path, cid, runtime, pod, _ in NAMED[2:7]]
    groups = []
    try:
        for path, *_ in cases:
            groups.append(TestCgroup(path=path))
        marks = ["%s-%d" % (tag, i) for i in range(len(cases))]
        script = "; ".join(_in(g.path, ["/bin/echo", m]) for g, m in zip(groups, marks))
        script += "; /bin/echo %s-host" % tag
        events, err = Watched(tmp_path, script).run()
    finally:
        for g in reversed(groups):
            g.close()
    by_mark = {e["argv"][1]: e for e in events if e["path"] == "/usr/bin/echo" and len(e["argv"]) == 2}
    for (path, cid, runtime, pod), m, g in zip(cases, marks, groups):
        e = by_mark[m]
        assert e["cgroup"] == g.name, e
        assert (e["container_id"], e["container_runtime"], e["pod_uid"]) == (cid, runtime, pod), e
    host = by_mark[tag + "-host"]
    with open("/proc/self/cgroup") as f:
        mine = [x.split(":", 2)[2].strip() for x in f if x.startswith("0::")][0]
    assert host["cgroup"] == mine and host["container_id"] is None, host


def _getent(uid):
    r = subprocess.run(["getent", "passwd", str(uid)], capture_output=True, text=True)
    return r.stdout.split(":")[0] if r.returncode == 0 else None


@needs_root
def test_user_and_euser_are_the_names_of_uid_and_euid_and_a_replay_keeps_them(tmp_path):
    """root, nobody (getent's names) and a uid with no name (null); a
    setuid file's euid is named apart from its uid. A recording keeps the
    names: its facts, changed, are what the replay shows (not this host's)."""
    nobody = 65534
    unnamed = 54321 if _getent(54321) is None else 54329
    shared = tempfile.mkdtemp(prefix="pykring-suid-")        # pytest's own is 0700: others cannot reach it
    os.chmod(shared, 0o755)
    suid = os.path.join(shared, "suid-id")
    shutil.copy("/usr/bin/id", suid)
    os.chown(suid, nobody, nobody)
    os.chmod(suid, 0o4755)
    script = ("/bin/echo u0; setpriv --reuid=%d --regid=%d --clear-groups /bin/echo u%d; "
              "setpriv --reuid=%d --regid=%d --clear-groups /bin/echo u%d; "
              "setpriv --reuid=%d --regid=%d --clear-groups %s"
              % (nobody, nobody, nobody, unnamed, unnamed, unnamed, unnamed, unnamed, suid))
    rec = str(tmp_path / "names.jsonl")
    try:
        events, err = Watched(tmp_path, script, "--output", rec).run()
    finally:
        shutil.rmtree(shared)
    echo = {e["argv"][1]: e for e in events if e["path"] == "/usr/bin/echo"}
    assert (echo["u0"]["user"], echo["u0"]["euser"]) == (_getent(0), _getent(0)) == ("root", "root")
    assert echo["u%d" % nobody]["user"] == _getent(nobody) and _getent(nobody)
    assert (echo["u%d" % unnamed]["user"], echo["u%d" % unnamed]["euser"]) == (None, None)
    (s,) = [e for e in events if e["path"] == suid]
    assert (s["uid"], s["euid"], s["user"], s["euser"]) == (unnamed, nobody, None, _getent(nobody)), s
    # The recording's names, changed: the replay shows them, not this host's.
    with open(rec) as f:
        lines = f.read().replace('"0":"root"', '"0":"recorded-root"')
    assert "recorded-root" in lines
    with open(rec, "w") as f:
        f.write(lines)
    r = subprocess.run([sys.executable, "-m", "pykring", "replay", rec, "--json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    got = [json.loads(x) for x in r.stdout.splitlines()]
    u0 = [e for e in got if e["type"] == "process_start" and e["exec"] and e["argv"] == ["/bin/echo", "u0"]]
    assert len(u0) == 1 and u0[0]["user"] == "recorded-root", u0


@needs_root
def test_watch_hash_gives_the_sha256_of_each_executed_file_once_per_file(tmp_path):
    """--hash: a copied binary run 20 times (hashed once, then from the
    cache), a program run from a memfd (only /proc/PID/exe reaches it), one
    over --hash-max-size (hash_error), each against hashlib; the recording
    replays with the same hashes."""
    prog = str(tmp_path / ("prog-" + uuid.uuid4().hex[:8]))
    shutil.copy("/usr/bin/sleep", prog)
    with open(prog, "ab") as f:          # a file of its own: bytes after the ELF image run the same
        f.write(os.urandom(64))
    big = str(tmp_path / "big")
    shutil.copy("/usr/bin/env", big)
    with open(big, "ab") as f:
        f.write(b"\0" * (4 << 20))
    with open(prog, "rb") as f:
        prog_sha = hashlib.sha256(f.read()).hexdigest()
    memfd_runner = str(tmp_path / "memfd_exec.py")
    with open(memfd_runner, "w") as f:
        f.write("import os, sys\n"
                "fd = os.memfd_create('pykring-test')\n"
                "os.write(fd, open(sys.argv[1], 'rb').read() + b'memfd')\n"
                "os.execve(fd, ['memfd-sleep', '1'], {})\n")
    with open("/usr/bin/sleep", "rb") as f:
        memfd_sha = hashlib.sha256(f.read() + b"memfd").hexdigest()
    script = ("for i in $(seq 20); do %s 0; done; %s %s /usr/bin/sleep; %s true"
              % (prog, sys.executable, memfd_runner, big))
    rec = str(tmp_path / "hashed.arrows")
    events, err = Watched(tmp_path, script, "--hash", "--hash-max-size", "1M", "--output", rec).run()
    runs = [e for e in events if e["path"] == prog]
    assert len(runs) == 20 and {e.get("sha256") for e in runs} == {prog_sha}, runs
    (m,) = [e for e in events if e["memfd"]]
    assert m["sha256"] == memfd_sha and m["hash_source"] == "exe", m
    (b,) = [e for e in events if e["path"] == big]
    assert "sha256" not in b and "over the limit of 1048576" in b["hash_error"], b
    read, again = map(int, re.search(r"sha256 of (\d+) files read, (\d+) more", err).groups())
    assert again >= 19 and read <= len({e["path"] for e in events}), err
    r = subprocess.run([sys.executable, "-m", "pykring", "replay", rec, "--json"], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    replayed = [json.loads(x) for x in r.stdout.splitlines()]
    assert [e.get("sha256") for e in replayed if e["type"] == "process_start" and e["exec"]] == \
        [e.get("sha256") for e in events], r.stdout[:2000]


@needs_root
def test_exec_hasher_over_the_batches_of_a_kernel_ring(tmp_path):
    """The library's way: ExecHasher.submit_batch on each batch of
    pykring.kernel(tree=...), a program that keeps running and one that
    exits at once, against hashlib."""
    import pykring
    from pykring.events import ExecHasher, event_dicts

    progs = {}
    for name, src in (("long", "/usr/bin/sleep"), ("short", "/usr/bin/true")):
        progs[name] = str(tmp_path / name)
        shutil.copy(src, progs[name])
        with open(progs[name], "ab") as f:
            f.write(name.encode())
    want = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in progs.values()}
    hasher = ExecHasher()
    got = {}
    parent = subprocess.Popen(["sh", "-c", "read go; %s 1; %s" % (progs["long"], progs["short"])],
                              stdin=subprocess.PIPE)
    try:
        with pykring.kernel(events="process", tree=parent.pid) as ring:
            parent.stdin.write(b"go\n")
            parent.stdin.close()
            deadline = time.monotonic() + 60
            paths = {}
            while len(got) < 2:
                assert time.monotonic() < deadline, got
                ring.wait(timeout=0.5)
                batch = ring.read_batch()
                paths.update((e["seq"], e["path"]) for e in event_dicts(batch) if e["type"] == "process_start")
                for seq, job in hasher.submit_batch(batch).items():
                    if paths.get(seq) in want:
                        got[paths[seq]] = job.result(timeout=60)
    finally:
        parent.wait(timeout=60)
        hasher.close()
    assert {p: r.get("sha256") for p, r in got.items()} == want, got
    assert got[progs["long"]]["hash_source"] == "exe", got
