"""Child of tests/test_wake_window.py, run on the hooked extension (tests/hooked.py).

``python wake_window.py futex POINT NAME``: create a shared-memory ring,
start a producer process (the release extension) that publishes one record
when told to, arm the hook at POINT of the consumer's wait
(csrc/kring_wait.c), and wait once in C with a long timeout. The hook tells
the producer to publish while the consumer is stopped at POINT and resumes
the consumer once the record is published. Prints one JSON line: the wait's
return code, whether the producer published, and how many records a read
then finds. ``python wake_window.py KIND POINT NAME wait_drain``: the same
through kring_wait_drain, which must return the record it was woken for.

``python wake_window.py epoll POINT -``: the same over a BPF ring buffer map
(tests/bpfring.py, root): a first record is published and read (so the
consumer has published consumer_pos, its "waiting" word on this path), then
the producer process runs the map's program while the consumer is stopped.
"""
import json
import os
import subprocess
import sys

import numpy as np

import pykring
from pykring import _lib

#: A lost wakeup sleeps all of it (counted by the hook, never timed); a
#: correct wait never sleeps to the end of it.
WAIT_NS = 5 * 10**9

DTYPE = np.dtype([("v", "<u8")])

PRODUCER = r'''
import os, sys
import numpy as np
import pykring
p = pykring.Producer(sys.argv[1])
os.write(1, b"r")                       # attached
if os.read(0, 1):                       # the consumer is stopped at its hook point
    p.write(np.array([(42,)], dtype=[("v", "<u8")]))
    os.write(1, b"p")                   # published: resume the consumer
    os.read(0, 1)                       # closing wakes the consumer: not before its wait ended
p.close()
'''


BPF_PRODUCER = r'''
import os, sys
from tests import bpfring
os.write(1, b"r")
if os.read(0, 1):
    bpfring.publish_fd(int(sys.argv[1]), 1, 42)
    os.write(1, b"p")
    os.read(0, 1)
'''


def read_byte(fd):
    b = os.read(fd, 1)
    return b.decode() if b else ""


def futex(point, name, call):
    ring = pykring.create(name, 1 << 16, DTYPE, replace=True)
    prod = subprocess.Popen([sys.executable, "-c", PRODUCER, name], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=0)
    return window(ring, prod, point, ring.close, call)


def epoll(point, _name, call):
    from pykring import kernel_linux
    from tests import bpfring

    m = bpfring.RingbufMap(1 << 16)
    ring = kernel_linux.bpf_ring(m.map_fd, m.size, [(bpfring.TYPE_ID, "record", bpfring.DTYPE)])
    m.publish(0, 41)
    first = ring.read(timeout=0)
    assert [int(v) for v in first["v"]] == [41], first
    prod = subprocess.Popen([sys.executable, "-c", BPF_PRODUCER, str(m.prog_fd)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, bufsize=0, pass_fds=(m.prog_fd,))

    def close():
        ring.close()
        m.close()
    return window(ring, prod, point, close, call)


def window(ring, prod, point, close, call):
    try:
        assert read_byte(prod.stdout.fileno()) == "r", "the producer did not attach"
        values = []
        if call == "wait_drain":
            # The wait and its drain in one call, into rows made before it.
            tid = ring._types[0][0]
            rows = np.zeros(4, dtype=ring.dtype)
            outs = _lib.ffi.new("struct kring_out[]", _lib.lib.KRING_MAX_TYPES)
            keep = _lib.ffi.from_buffer(rows, require_writable=True)
            outs[tid].buf, outs[tid].capacity = _lib.ffi.cast("uint8_t *", keep), len(rows)
            n = _lib.ffi.new("uint64_t *")
        _lib.lib.kring_test_wait_pause(point, prod.stdin.fileno(), prod.stdout.fileno())
        if call == "wait_drain":
            rc = _lib.lib.kring_wait_drain(ring._c, outs, len(rows), WAIT_NS, n)
            values = [int(v) for v in rows["v"][:n[0]]]
            _lib.lib.kring_commit(ring._c)
        else:
            rc = _lib.lib.kring_wait(ring._c, WAIT_NS)
        timeouts = _lib.lib.kring_test_wait_timeouts()
        _lib.lib.kring_test_wait_pause(0, -1, -1)
        prod.stdin.close()                  # a producer never told to publish exits now
        published = prod.wait(timeout=120) == 0 and rc is not None
        try:
            got = ring.read(timeout=0)
        except pykring.RingClosedError:     # the call drained it, and the producer has closed
            got = np.zeros(0, dtype=ring.dtype)
        values += [int(v) for v in got["v"]]
        return {"rc": _lib.strerror(rc), "ok": rc == _lib.lib.KRING_OK, "published": published, "timeouts": timeouts,
                "records": len(values), "values": values, "drained_in_the_call": len(values) - len(got)}
    finally:
        if prod.poll() is None:
            prod.kill()
        close()


if __name__ == "__main__":
    kind, point, name = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    call = sys.argv[4] if len(sys.argv) > 4 else "wait"
    print(json.dumps({"futex": futex, "epoll": epoll}[kind](point, name, call)))
