"""A fork child of a process with a kernel ring: whatever the child does with
the ring it inherited (closes it, drops it, exits through the interpreter's
exit handlers), the parent's ring keeps what was pending at the fork and goes
on receiving. The child shares the parent's links, maps and ring pages: a
close there must neither detach programs (with perf-event attachment,
detaching disables the event for both) nor consume or discard records.

Needs Linux and root; under KRING_REQUIRE_ALL=1 a skip is a failure.
"""
import os
import subprocess
import sys

import pytest

IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")

PROGRAM = r"""
import gc, os, subprocess, sys, time
import pykring

ring = pykring.kernel(events="process")
while ring.read_batch().count:
    pass
before = subprocess.Popen(["/bin/true"])     # pending in the ring at the fork
before.wait()
pid = os.fork()
if pid == 0:
    what = sys.argv[1]
    if what == "close":
        ring.close()
        os._exit(0)
    if what == "del":
        del ring
        gc.collect()
        os._exit(0)
    sys.exit(0)                 # "exit": the interpreter's exit handlers run
_, status = os.waitpid(pid, 0)
assert status == 0, status
child = subprocess.Popen(["/bin/true"])
child.wait()
want = {before.pid, child.pid}
deadline = time.monotonic() + 20
while want and time.monotonic() < deadline:
    want -= set(ring.read_batch(timeout=0.5)["process_start"]["pid"].tolist())
print("not seen: %s; %s" % (sorted(want), ring.stats) if want else "seen")
ring.close()
"""


@needs_root
@pytest.mark.parametrize("what", ["close", "del", "exit"])
def test_what_a_fork_child_does_with_its_kernel_ring_leaves_the_parents_receiving(what):
    r = subprocess.run([sys.executable, "-c", PROGRAM, what], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split() == ["seen"], (r.stdout, r.stderr[-3000:])
