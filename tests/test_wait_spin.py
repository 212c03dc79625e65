"""The spin before a sleep (csrc/kring_plat.h, kring_spin_until): a consumer
whose last wait was short polls producer_pos for up to KRING_SPIN_NS before
it sleeps, so a producer that writes every few microseconds finds it awake
and does not have to wake it (a wake is a system call on each side).

Counted, not timed: the producer process counts the wakes it made
(``kring_producer_notify``); a consumer that slept after every record would
need one per record. Nothing here reads a clock to decide.

The premise is two processes that run when they are ready: on a busy
machine other work preempts them for milliseconds (and a spin cannot
bridge a producer that is not running). So both run at real-time priority
(SCHED_FIFO 1, inherited by the producer), which needs root; the busy
load then waits for them, as it would for any real-time reader.
"""
import contextlib
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pykring
from tests.ringutil import remove_ring, unique_ring_name

DTYPE = np.dtype([("val", "<u8")])

PRODUCER = textwrap.dedent("""
    import json, sys, time
    import numpy as np
    import pykring

    name, count, gap = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    with pykring.Producer(name, block=True) as p:
        one = np.zeros(1, dtype=pykring.body_dtype(p.dtype))
        sys.stdout.write("ready\\n")
        sys.stdout.flush()
        sys.stdin.readline()
        clock = time.perf_counter
        for i in range(count):
            one["val"] = i
            p.write(one)
            until = clock() + gap        # a producer busy between records
            while clock() < until:
                pass
        print(json.dumps({"written": p.written, "wakeups": int(p._p.wakeups)}), flush=True)
""")


@contextlib.contextmanager
def real_time():
    """SCHED_FIFO 1 for this thread (and the processes it starts), then back."""
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(1))
    except PermissionError:
        pytest.skip("needs root (SCHED_FIFO), so that other work on the machine cannot preempt the test's "
                    "two processes for milliseconds")
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def test_a_consumer_that_keeps_up_is_not_woken_for_each_record():
    """5000 records, one every 20 microseconds, read one call at a time
    (``read(timeout=5)``): the consumer is back in its wait before the next
    record, so without the spin it sleeps and is woken for nearly every
    record; spinning, it sees them come and fewer than half need a wake."""
    count = 5000
    name = unique_ring_name("spin")
    try:
        with real_time(), pykring.create(name, 1 << 16, DTYPE) as ring:
            prod = subprocess.Popen([sys.executable, "-c", PRODUCER, ring.path, str(count), "20e-6"],
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            try:
                assert prod.stdout.readline() == "ready\n"
                prod.stdin.write("go\n")
                prod.stdin.flush()
                got = []
                while len(got) < count:
                    batch = ring.read(timeout=5.0)
                    assert len(batch), "no record for 5 s after %d of %d" % (len(got), count)  # hang guard
                    got.extend(int(v) for v in batch["val"])
                out, _ = prod.communicate(timeout=60)
            finally:
                if prod.poll() is None:
                    prod.kill()
                    prod.wait()
        assert prod.returncode == 0
        assert got == list(range(count))
        res = json.loads(out.strip().splitlines()[-1])
        assert res["written"] == count
        assert res["wakeups"] < count // 2, res
    finally:
        remove_ring(name)
