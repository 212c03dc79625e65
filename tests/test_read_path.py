"""The read path: a wait and its drain in one call into reused rows.

``read(timeout=None)``, ``read_batch(timeout=None)`` and the iterator wait and
drain in one GIL-released call (kring_wait_drain) into rows made before the
wait, and build their result afterwards; ``read(out=)`` and
``read_batch(out=)`` fill the caller's arrays and allocate no rows at all.
Allocation is checked with tracemalloc (numpy reports its array memory to
it), never with a clock. The lifecycle guarantees of these calls (close
from another thread, Ctrl-C, an error while building the result) are in
test_lifecycle.py and test_crossproc.py, with these variants among them.
"""
import os
import subprocess
import sys
import threading
import time
import tracemalloc

import numpy as np
import pytest

import pykring

#: A wide record type, as the kernel's process_start: one row is more than
#: any per-call bookkeeping allocates, so "allocated less than a row" means
#: "allocated no rows".
WIDE = np.dtype([("x", "<u8"), ("pad", "V16000")])
TYPES = {"a": np.dtype([("x", "<u8")]), "wide": WIDE, "c": np.dtype([("z", "<u4")])}


def peak_during(call):
    """Bytes allocated at the peak of `call()` beyond what was allocated before it."""
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        result = call()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - before, result


def test_an_empty_read_batch_allocates_no_rows(ring_name):
    with pykring.create(ring_name, 1 << 16, TYPES) as ring:
        ring.read_batch()                   # the first call makes what it keeps
        for _ in range(3):
            grew, batch = peak_during(ring.read_batch)
            assert batch.count == 0 and set(batch) == set(TYPES)
            assert grew < WIDE.itemsize, "an empty read_batch() allocated %d bytes" % grew


def test_read_batch_out_fills_the_callers_arrays(ring_name):
    with pykring.create(ring_name, 1 << 16, TYPES) as ring, pykring.Producer(ring_name) as p:
        out = {name: np.zeros(4, dtype=dt) for name, dt in ring.dtypes.items()}
        p.write((1,), type="a")
        p.write((2,), type="c")
        p.write((3,), type="a")
        batch = ring.read_batch(out=out)
        assert batch["a"]["x"].tolist() == [1, 3] and batch["c"]["z"].tolist() == [2]
        assert len(batch["wide"]) == 0
        for name in TYPES:
            assert np.shares_memory(batch[name], out[name]) or len(batch[name]) == 0
        assert ring.stats.read == 3

        # The same arrays again: one small call allocates no rows, also with
        # a record of the wide type.
        p.write((4, b""), type="wide")
        grew, batch = peak_during(lambda: ring.read_batch(out=out))
        assert batch["wide"]["x"].tolist() == [4] and np.shares_memory(batch["wide"], out["wide"])
        assert grew < WIDE.itemsize, "read_batch(out=) allocated %d bytes" % grew
        grew, batch = peak_during(lambda: ring.read_batch(out=out))
        assert batch.count == 0 and grew < WIDE.itemsize, grew


def test_read_batch_out_keeps_the_order_when_an_array_is_full(ring_name):
    with pykring.create(ring_name, 1 << 16, TYPES) as ring, pykring.Producer(ring_name) as p:
        dts = ring.dtypes
        out = {"a": np.zeros(1, dtype=dts["a"]), "wide": np.zeros(1, dtype=dts["wide"]), "c": np.zeros(8, dtype=dts["c"])}
        p.write((1,), type="a")
        p.write((2,), type="c")
        p.write((3,), type="a")             # no room left for "a": the batch ends before it
        p.write((4,), type="c")
        first = ring.read_batch(out=out)
        assert first["a"]["x"].tolist() == [1] and first["c"]["z"].tolist() == [2]
        second = ring.read_batch(timeout=None, out=out)
        assert second["a"]["x"].tolist() == [3] and second["c"]["z"].tolist() == [4]
        assert ring.stats.read == 4 and ring.stats.lost == 0


@pytest.mark.parametrize("bad", ["missing", "dtype", "strided", "readonly", "2d", "list"])
def test_read_batch_out_refuses_arrays_that_do_not_fit(ring_name, bad):
    with pykring.create(ring_name, 1 << 16, TYPES) as ring, pykring.Producer(ring_name) as p:
        out = {name: np.zeros(4, dtype=dt) for name, dt in ring.dtypes.items()}
        if bad == "missing":
            del out["c"]
        elif bad == "dtype":
            out["c"] = np.zeros(4, dtype=TYPES["a"])
        elif bad == "strided":
            out["c"] = np.zeros(8, dtype=out["c"].dtype)[::2]
        elif bad == "readonly":
            out["c"].flags.writeable = False
        elif bad == "2d":
            out["c"] = np.zeros((2, 2), dtype=out["c"].dtype)
        else:
            out["c"] = [0, 0]
        p.write((5,), type="c")
        with pytest.raises(TypeError, match="'c'"):
            ring.read_batch(out=out)
        assert ring.read_batch()["c"]["z"].tolist() == [5]      # nothing was read


def test_a_backlog_larger_than_the_landing_rows_comes_whole_and_in_order(ring_name):
    with pykring.create(ring_name, 1 << 22, TYPES) as ring, pykring.Producer(ring_name) as p:
        n = 3000                            # more than the rows read_batch() lands in
        p.write(np.zeros(n, dtype=pykring.body_dtype(ring.dtypes["a"])), type="a")
        p.write(np.zeros(5, dtype=pykring.body_dtype(ring.dtypes["wide"])), type="wide")
        batch = ring.read_batch(timeout=None)
        assert len(batch["a"]) == n and len(batch["wide"]) == 5
        seqs = np.concatenate([batch["a"]["seq"], batch["wide"]["seq"]])
        assert sorted(seqs.tolist()) == list(range(n + 5))
        assert ring.stats.lost == 0 and ring.stats.read == n + 5


def test_read_of_a_backlog_past_the_landing_rows_is_whole(ring_name):
    dt = np.dtype([("x", "<u8")])
    with pykring.create(ring_name, 1 << 20, dt) as ring, pykring.Producer(ring_name) as p:
        n = 5000
        p.write(np.arange(n, dtype=np.uint64).view(pykring.body_dtype(p.dtype)))
        rows = ring.read(timeout=None)
        assert rows["x"].tolist() == list(range(n)) and ring.stats.read == n


WRITER = r'''
import os, sys, time
import numpy as np, pykring
p = pykring.Producer(sys.argv[1])
# Write once the reader sleeps: it stores 1 into its waiting word (consumer
# page, offset 64; include/kring/kring.h) before it sleeps. 30 s: a hang guard.
fd = os.open(sys.argv[1], os.O_RDONLY)
deadline = time.monotonic() + 30
while os.pread(fd, 4, 64) != (1).to_bytes(4, "little") and time.monotonic() < deadline:
    time.sleep(0.001)
print("asleep" if time.monotonic() < deadline else "never asleep", flush=True)
p.write(np.array([(42, b"")], dtype=pykring.body_dtype(p.dtype)))
p.close()
'''


def test_a_blocked_read_out_is_woken_without_allocating_rows(ring_name):
    dt = np.dtype([("x", "<u8"), ("pad", "V32000")])
    with pykring.create(ring_name, 1 << 20, dt) as ring:
        out = np.zeros(4, dtype=ring.dtype)
        ring.read(out=out)                  # out checked and remembered
        w = subprocess.Popen([sys.executable, "-c", WRITER, ring.path], stdout=subprocess.PIPE, text=True)
        try:
            grew, rows = peak_during(lambda: ring.read(timeout=None, out=out))
        finally:
            said, _ = w.communicate(timeout=60)
        assert said.strip() == "asleep", "the read returned before it slept: it tested no wakeup"
        assert rows["x"].tolist() == [42] and np.shares_memory(rows, out)
        assert grew < ring.dtype.itemsize, "a woken read(out=) allocated %d bytes" % grew


def test_a_blocked_iterator_gets_records_from_another_thread(ring_name):
    dt = np.dtype([("x", "<u8")])
    with pykring.create(ring_name, 1 << 16, dt) as ring, pykring.Producer(ring_name) as p:
        got = []

        def consume():
            for rows in ring:
                got.extend(rows["x"].tolist())

        th = threading.Thread(target=consume)
        th.start()
        for i in range(50):
            p.write((i,))
        p.close()                          # the iterator ends once everything was read
        th.join(30)
        assert not th.is_alive() and got == list(range(50))


IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0 and sys.platform.startswith("linux")

#: epoll_wait, epoll_pwait and epoll_pwait2 by machine (the numbers of asm/unistd.h).
EPOLL_WAITS = {"x86_64": {"232", "281", "441"}, "aarch64": {"22", "441"}}.get(os.uname().machine, set())


def when_asleep_in_epoll(tid, then, guard=30.0):
    """A thread that calls then() once thread `tid` of this process sleeps in
    an epoll wait (its /proc syscall, the kernel's word), or after `guard`
    seconds, so that a blocked reader is woken either way. Its .asleep
    says which."""
    def run():
        fd = os.open("/proc/self/task/%d/syscall" % tid, os.O_RDONLY)
        try:
            deadline = time.monotonic() + guard
            while time.monotonic() < deadline:
                if os.pread(fd, 16, 0).split(b" ", 1)[0].decode() in EPOLL_WAITS:
                    th.asleep = True
                    break
                time.sleep(0.001)
        finally:
            os.close(fd)
            then()
    th = threading.Thread(target=run)
    th.asleep = False
    return th


@pytest.mark.skipif(not IS_ROOT, reason="a BPF ring buffer map needs root")
@pytest.mark.parametrize("with_out", [False, True])
def test_a_kernel_ring_wakes_into_reused_rows(with_out):
    """A kernel ring (a BPF ring buffer, epoll) takes the same path: a blocked
    read_batch woken by a record the kernel commits allocates no rows with
    out=, and short records are zero-padded in either kind of row."""
    from pykring import kernel_linux, schema
    from tests import bpfring

    wide = schema.record_dtype(np.dtype([("v", "<u8"), ("pad", "V16000")]))
    m = bpfring.RingbufMap(1 << 16)
    ring = kernel_linux.bpf_ring(m.map_fd, m.size, [(bpfring.TYPE_ID, "record", wide)],
                                 min_sizes={bpfring.TYPE_ID: bpfring.PAYLOAD})
    try:
        out = {"record": np.full(4, 0xFF, dtype=np.uint8).repeat(wide.itemsize).view(wide)} if with_out else None
        ring.read_batch(out=out)
        th = when_asleep_in_epoll(threading.get_native_id(), lambda: m.publish(0, 42))
        th.start()
        grew, batch = peak_during(lambda: ring.read_batch(timeout=None, out=out))
        th.join()
        assert th.asleep, "read_batch returned before it slept in epoll_wait: it tested no wakeup"
        rows = batch["record"]
        assert rows["v"].tolist() == [42] and rows["seq"].tolist() == [0]
        assert not rows["pad"].view(np.uint8).any(), "a short record's row is not zero-padded"
        if with_out:
            assert np.shares_memory(rows, out["record"])
            assert grew < wide.itemsize, "a woken read_batch(out=) allocated %d bytes" % grew
        assert ring.stats.read == 1 and ring.stats.lost == 0
    finally:
        ring.close()
        m.close()


@pytest.mark.parametrize("timeout", [0, 0.05])
def test_an_error_in_an_empty_read_gives_back_nothing_an_earlier_read_returned(ring_name, monkeypatch, timeout):
    # Records a read with commit=False returned are delivered: a later read
    # that raises rewinds only what it drained itself (nothing here), never
    # to before them, or they would come twice.
    types = {"a": np.dtype([("x", "<u8")]), "b": np.dtype([("y", "<u4")])}
    with pykring.create(ring_name, 1 << 16, types) as ring, pykring.Producer(ring_name) as p:
        p.write((1,), type="a")
        assert ring.read_batch(commit=False)["a"]["x"].tolist() == [1]

        def failing(self, arrays):
            raise MemoryError("injected")

        real = pykring.Batch.__init__
        monkeypatch.setattr(pykring.Batch, "__init__", failing)
        with pytest.raises(MemoryError):
            ring.read_batch(timeout=timeout)
        monkeypatch.setattr(pykring.Batch, "__init__", real)
        assert ring.read_batch().count == 0
        assert ring.stats.read == 1
        p.write((2,), type="a")
        assert ring.read_batch()["a"]["x"].tolist() == [2]
