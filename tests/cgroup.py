"""A cgroup (v2) of a test's own: the processes a test starts in it, and the
kernel ring filtered to it (``pykring.kernel(cgroup=cg.path)``), so that what
the test reads is what it started, whatever else the machine runs.

    with TestCgroup() as cg:
        with pykring.kernel(cgroup=cg.path) as ring:
            cg.run(["/bin/true"])

A process enters it by writing its own pid to cgroup.procs (a shell that
then execs the program): the shell's fork is outside the cgroup, its exec
and everything after inside.
"""
import os
import subprocess
import time
import uuid
from typing import List, Optional

from pykring.events.context import cgroup2_mounts


class TestCgroup:
    __test__ = False                    # not a test class

    def __init__(self, prefix: str = "pykring-test", path: Optional[str] = None):
        """`path`: the cgroup's path below the cgroup2 mount (``a/b/c``, its
        missing parents made too, and removed at close), instead of a
        unique ``PREFIX-HEX``."""
        mounts = cgroup2_mounts()
        assert mounts, "cgroup v2 is not mounted: the kernel filter tests need it"
        rel = path.strip("/") if path else "%s-%s" % (prefix, uuid.uuid4().hex[:12])
        #: The cgroup's directory.
        self.path = os.path.join(mounts[0], rel)
        self._made: List[str] = []      # the directories made, innermost last
        d = mounts[0]
        for part in rel.split("/"):
            d = os.path.join(d, part)
            if not os.path.isdir(d):
                os.mkdir(d)
                self._made.append(d)
        assert self._made and self._made[-1] == self.path, "%s exists already" % self.path
        #: As /proc/PID/cgroup shows it (``/NAME``, ``/a/b/c``).
        self.name = "/" + rel

    def argv(self, args: List[str]) -> List[str]:
        """`args` run inside the cgroup (through sh, which enters it and execs them)."""
        return ["sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', self.path] + list(args)

    def popen(self, args: List[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(self.argv(args), **kw)

    def run(self, args: List[str], **kw) -> subprocess.CompletedProcess:
        return subprocess.run(self.argv(args), **kw)

    def pids(self) -> List[int]:
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def close(self) -> None:
        """Kill what is left inside, then remove the cgroup."""
        deadline = time.monotonic() + 30
        while True:
            left = self.pids() if os.path.isdir(self.path) else []
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            assert time.monotonic() < deadline, "processes stay in %s: %s" % (self.path, left)
            time.sleep(0.01)
        for d in reversed(self._made):
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:             # EBUSY while a killed process is being reaped
                    assert time.monotonic() < deadline, "cannot remove %s" % d
                    time.sleep(0.01)

    def __enter__(self) -> "TestCgroup":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
