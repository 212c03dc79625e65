"""Zero-copy reads and writes (Ring.view, Producer.reserve) as a user meets
them: rows that are the ring's own bytes, consumed or published when the
block ends; rows kept past the block; close, fork, threads, and processes
killed inside a block. The model tests (tests/test_model.py) compare every
byte and position of both paths with the reference model."""
import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import pykring
from pykring._lib import ffi

from tests.ringutil import shm

BODY = np.dtype([("x", "<u8"), ("y", "<f8")])
HANG_S = 60


def consumer_pos(name):
    """consumer_pos, as the producer sees it (the consumer page at offset 0)."""
    with open(shm(name), "rb") as f:
        return int.from_bytes(f.read(8), "little")


def records(n, start=0):
    a = np.zeros(n, BODY)
    a["x"] = np.arange(start, start + n)
    a["y"] = a["x"] * 0.5
    return a


def in_ring(owner, rows):
    """True when `rows` lie inside the data area of the mapping of `owner`,
    a Ring or a Producer (no copy)."""
    m = owner._c.m if isinstance(owner, pykring.Ring) else owner._p.m
    base = int(ffi.cast("uintptr_t", m.data))
    addr = rows.__array_interface__["data"][0]
    return base <= addr < base + 2 * m.capacity


def mapped(path):
    with open("/proc/self/maps") as f:
        return path in f.read()


def test_view_gives_the_records_in_place_consumed_when_the_block_ends(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring, pykring.Producer(ring_name) as p:
        p.write(records(100))
        with ring.view() as rows:
            assert in_ring(ring, rows)
            assert rows.dtype == ring.dtype and not rows.flags.writeable
            assert rows["x"].tolist() == list(range(100)) and rows["seq"].tolist() == list(range(100))
            assert consumer_pos(ring_name) == 0          # not consumed before the block ends
        assert consumer_pos(ring_name) == 100 * 48
        assert len(rows) == 0                            # the name the block bound reaches nothing
        assert ring.stats.read == 100 and ring.stats.pending_bytes == 0
        p.write(records(3, 100))
        assert ring.read()["x"].tolist() == [100, 101, 102]     # read() still copies


def test_an_exception_in_the_block_leaves_the_records_for_the_next_read(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring, pykring.Producer(ring_name) as p:
        p.write(records(10))
        with pytest.raises(KeyError):
            with ring.view(max_records=4) as rows:
                assert len(rows) == 4
                raise KeyError("in the block")
        assert consumer_pos(ring_name) == 0
        assert ring.read()["x"].tolist() == list(range(10))


def test_one_view_and_one_reservation_at_a_time(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring, pykring.Producer(ring_name) as p:
        p.write(records(4))
        with ring.view():
            with pytest.raises(RuntimeError, match="open already"):
                with ring.view():
                    pass
        with p.reserve(2) as rows:
            with pytest.raises(RuntimeError, match="reservation"):
                p.write(records(1))
            with pytest.raises(RuntimeError, match="reservation"):
                with p.reserve(1):
                    pass
            rows["x"] = [7, 8]
        assert ring.read()["x"].tolist() == [7, 8]
        with pytest.raises(ValueError, match="at most 341 at a time"):
            with p.reserve(342):
                pass


def test_a_kept_field_holds_its_bytes_until_it_is_gone(ring_name):
    """The producer (drop mode) drops rather than overwrite rows a caller
    still holds; once they are gone the next call gives the room back."""
    with pykring.create(ring_name, 4096, BODY) as ring, pykring.Producer(ring_name) as p:
        p.write(records(20))
        with ring.view() as rows:
            kept = rows["x"]                 # derived: the rows stay as they are
        assert len(rows) == 20 and consumer_pos(ring_name) == 0
        assert p.write(records(85, 1000)) == 85 - 20    # only the room the kept rows leave
        assert p.dropped == 20
        assert kept.tolist() == list(range(20))          # not overwritten
        assert len(ring.read()) == 65
        assert consumer_pos(ring_name) == 0              # still held
        del kept, rows
        gc.collect()
        ring.commit()
        assert consumer_pos(ring_name) == 85 * 48
        assert p.write(records(85, 2000)) == 85


def test_reserved_rows_fill_in_place_and_publish_at_the_end(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring, \
            pykring.Producer(ring_name, block=True, timeout=1) as p:
        with p.reserve(5, flags=3) as rows:
            assert rows.flags.writeable and in_ring(p, rows)
            rows["x"] = np.arange(5) * 10
            rows["y"] = 2.5
            assert len(ring.read()) == 0                 # not published yet
        got = ring.read()
        assert got["x"].tolist() == [0, 10, 20, 30, 40] and (got["y"] == 2.5).all()
        assert got["seq"].tolist() == list(range(5)) and (got["flags"] == 3).all()
        assert len(rows) == 0 and not rows.flags.writeable
        with pytest.raises(ZeroDivisionError):
            with p.reserve(3) as rows:
                rows["x"] = 1
                1 / 0
        assert len(ring.read()) == 0 and p.written == 5   # nothing of it published
        p.write(records(1, 99))
        assert ring.read()["seq"].tolist() == [5]


def test_reserve_waits_or_drops_as_write_does(ring_name):
    with pykring.create(ring_name, 1 << 14, BODY) as ring:      # 341 records of 48 bytes
        with pykring.Producer(ring_name, block=True) as p:
            for _ in range(4):
                with p.reserve(85):
                    pass
            with pytest.raises(pykring.RingTimeoutError, match="no room for 10"):
                with p.reserve(10, timeout=0.2):
                    pass
            assert p.written == 340
        assert len(ring.read()) == 340
        with pykring.Producer(ring_name) as p:
            for _ in range(4):
                with p.reserve(85) as rows:
                    rows["x"] = 1
            with p.reserve(10) as rows:          # no room: rows outside the ring, dropped
                assert not in_ring(p, rows)
                rows["x"] = 2
            assert (p.written, p.dropped) == (680, 10)
        assert len(ring.read()) == 340
        with pytest.raises(pykring.RingClosedError):
            ring.read()
        assert ring.stats.lost == 10            # counted when the closed ring was drained


def test_a_closed_ring_after_padding_counts_the_last_drops(ring_name):
    """A reservation that pads to the end of the data area and then finds
    no room leaves only padding behind: a read after the producer closed
    skips it and counts the drop as lost (it used to rewind over both)."""
    with pykring.create(ring_name, 4096, BODY) as ring, pykring.Producer(ring_name) as p:
        p.write(records(80))                         # 3840 of 4096 bytes
        with ring.view(max_records=10) as rows:
            kept = rows["seq"]                       # holds the ring at 0
        with p.reserve(10):                          # pads 256 bytes, then no room
            pass
        assert p.dropped == 10
        p.close()
        assert len(ring.read()) == 70
        with pytest.raises(pykring.RingClosedError):
            ring.read()
        st = ring.stats
        assert (st.lost, st.pending_bytes) == (10, 0)
        del kept


def test_a_batch_view_is_one_run_of_one_type(ring_name):
    types = {"a": BODY, "b": np.dtype([("z", "<u4")])}
    with pykring.create(ring_name, 1 << 16, types) as ring, pykring.Producer(ring_name) as p:
        p.write(records(3), type="a")
        p.write(np.zeros(2, types["b"]), type="b")
        with ring.view() as batch:
            assert isinstance(batch, pykring.Batch)
            assert (len(batch["a"]), len(batch["b"])) == (3, 0) and in_ring(ring, batch["a"])
        with ring.view() as batch:
            assert (len(batch["a"]), len(batch["b"])) == (0, 2)
        with ring.view() as batch:
            assert batch.count == 0


def test_close_keeps_the_mapping_while_rows_are_alive(ring_name):
    ring = pykring.create(ring_name, 1 << 16, BODY)
    p = pykring.Producer(ring_name)
    p.write(records(10))
    with ring.view() as rows:
        kept = rows[2:]
    ring.close()
    p.close()
    assert mapped(shm(ring_name))
    assert kept["x"].tolist() == list(range(2, 10))
    del kept, rows
    gc.collect()
    assert not mapped(shm(ring_name))


def test_close_from_another_thread_during_a_view(ring_name):
    ring = pykring.create(ring_name, 1 << 16, BODY)
    quarter = ring.capacity // 4 // 48          # records in one view at most
    with pykring.Producer(ring_name) as p:
        p.write(records(1000))
    inside, closed = threading.Event(), threading.Event()
    seen = []

    def reader():
        with ring.view() as rows:
            inside.set()
            assert closed.wait(HANG_S)
            seen.append(int(rows["x"].sum()))    # the mapping is still there

    t = threading.Thread(target=reader)
    t.start()
    assert inside.wait(HANG_S)
    ring.close()
    closed.set()
    t.join(HANG_S)
    assert not t.is_alive() and seen == [sum(range(quarter))]
    gc.collect()
    assert not mapped(shm(ring_name))


def test_threads_stream_through_reserve_and_view(ring_name):
    """A producer thread filling reservations and a consumer thread reading
    views: every record arrives once, in order, with its content."""
    total, batch = 200_000, 1000
    ring = pykring.create(ring_name, 1 << 18, BODY)
    p = pykring.Producer(ring_name, block=True, timeout=HANG_S)
    errors = []

    def produce():
        try:
            for base in range(0, total, batch):
                with p.reserve(batch) as rows:
                    rows["x"] = np.arange(base, base + batch)
                    rows["y"] = rows["x"] * 0.5
            p.close()
        except BaseException as exc:         # reported below
            errors.append(exc)

    t = threading.Thread(target=produce)
    t.start()
    n, views = 0, 0
    try:
        while True:
            with ring.view(timeout=HANG_S) as rows:
                k = len(rows)
                if k:
                    assert (rows["x"] == np.arange(n, n + k)).all() and (rows["seq"] == rows["x"]).all()
                    assert (rows["y"] == rows["x"] * 0.5).all()
                    n += k
                    views += 1
    except pykring.RingClosedError:
        pass
    t.join(HANG_S)
    assert not errors and n == total and views >= total // (ring.capacity // 4 // 48)
    ring.close()


CHILD = r"""
import os, sys, numpy as np, pykring
name, role = sys.argv[1], sys.argv[2]
if role == "consumer":
    ring = pykring.attach(name)
    with ring.view() as rows:
        print(len(rows), flush=True)
        os._exit(0)                     # killed inside the block
else:
    p = pykring.Producer(name)
    with p.reserve(50) as rows:
        rows["x"] = 12345
        print("filled", flush=True)
        os._exit(0)                     # killed inside the block
"""


def child(name, role):
    r = subprocess.run([sys.executable, "-c", CHILD, name, role], capture_output=True,
                       text=True, timeout=HANG_S)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_a_consumer_that_dies_inside_a_view_loses_nothing(ring_name):
    path = pykring.ring_path(ring_name)
    with pykring.Producer.create(ring_name, 1 << 16, BODY) as p:
        p.write(records(40))
        assert child(path, "consumer") == ["40"]
        with pykring.attach(path) as ring:          # the next consumer gets them all
            assert ring.read()["x"].tolist() == list(range(40))
    os.unlink(path)


def test_a_producer_that_dies_inside_a_reservation_publishes_nothing(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring:
        assert child(ring.path, "producer") == ["filled"]
        assert len(ring.read()) == 0 and ring.stats.written == 0
        with pykring.Producer(ring.path) as p:       # a new producer starts where it was
            p.write(records(3))
        got = ring.read()
        assert got["x"].tolist() == [0, 1, 2] and got["seq"].tolist() == [0, 1, 2]


def test_a_child_of_fork_cannot_open_a_view_but_can_read_kept_rows(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring, pykring.Producer(ring_name) as p:
        p.write(records(10))
        with ring.view() as rows:
            kept = rows["x"]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                try:
                    with ring.view():
                        pass
                except pykring.KringError as exc:
                    code = 0 if "fork" in str(exc) and kept.tolist() == list(range(10)) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert kept.tolist() == list(range(10))
        del kept


def test_view_waits_for_records(ring_name):
    with pykring.create(ring_name, 1 << 16, BODY) as ring, pykring.Producer(ring_name) as p:
        t = threading.Timer(0.2, lambda: p.write(records(5)))
        t.start()
        start = time.monotonic()
        with ring.view(timeout=HANG_S) as rows:
            assert rows["x"].tolist() == list(range(5))
        assert time.monotonic() - start < HANG_S
        t.join()
        with ring.view(timeout=0.05) as rows:
            assert len(rows) == 0


def test_a_view_ends_at_the_end_of_the_data_area(ring_name):
    """Rows are contiguous: a run that goes on at offset 0 is the next view."""
    body = np.dtype([("x", "<u8"), ("pad", "V24")])          # 56-byte records, 64 apart
    with pykring.create(ring_name, 4096, body) as ring, pykring.Producer(ring_name) as p:
        p.write(np.zeros(60, body))
        assert len(ring.read()) == 60
        p.write(np.zeros(8, body))                            # 4 up to the end, 4 from offset 0
        with ring.view() as rows:
            assert rows["seq"].tolist() == [60, 61, 62, 63]
        with ring.view() as rows:
            assert rows["seq"].tolist() == [64, 65, 66, 67]


TRUNCATE = r"""
import os, sys, numpy as np, pykring
name = sys.argv[1]
BODY = np.dtype([("x", "<u8"), ("y", "<f8")])
ring = pykring.create(name, 1 << 16, BODY)
p = pykring.Producer(ring.path)
with p.reserve(100) as rows:
    rows["x"] = np.arange(100)
    rows["y"] = 1.5
    kept_w = rows["y"]                  # kept past the block: read-only now
with ring.view() as rows:
    kept = rows["x"]                    # kept past the block
    print("before", int(kept.sum()), flush=True)
os.truncate(ring.path, 0)               # another process could do this
print("after", int(kept.sum()), float(kept_w.sum()), flush=True)     # numpy, no guard
for call in (lambda: ring.read(), lambda: p.write(np.zeros(1, BODY))):
    try:
        call()
        print("no error", flush=True)
    except pykring.KringError as exc:
        print(type(exc).__name__, "truncated" in str(exc), flush=True)
"""


def test_rows_of_a_ring_file_truncated_under_them_read_zeros_and_the_ring_says_why(ring_name):
    """Rows kept past their block are numpy memory that nothing guards: a
    ring file truncated under them (by any process that may write it) would
    end the process with SIGBUS at the first access. The pages are then
    zero pages instead, and the next call of the ring and of the producer
    raises and says the file was truncated."""
    r = subprocess.run([sys.executable, "-c", TRUNCATE, ring_name], capture_output=True, text=True,
                       timeout=HANG_S)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    assert lines[0] == "before %d" % sum(range(100)), r.stdout
    assert lines[1] == "after 0 0.0", r.stdout
    assert [l.split()[1] for l in lines[2:]] == ["True", "True"], r.stdout


def test_a_ring_given_no_capacity_has_the_default(ring_name):
    """DEFAULT_CAPACITY, the size the ring-size sweep chose (2 MiB)."""
    assert pykring.DEFAULT_CAPACITY == 2 << 20
    with pykring.create(ring_name, None, BODY) as ring:
        assert ring.capacity == pykring.DEFAULT_CAPACITY
    with pykring.Producer.create(ring_name + "p", None, BODY) as p, pykring.attach(p.path) as ring:
        assert ring.capacity == pykring.DEFAULT_CAPACITY
        os.unlink(p.path)


STREAM = r"""
import sys, numpy as np, pykring
name, total, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
with pykring.Producer(name, block=True, timeout=60) as p:
    for base in range(0, total, batch):
        with p.reserve(min(batch, total - base)) as rows:
            rows["x"] = np.arange(base, base + len(rows))
"""


def test_views_of_a_stream_that_pads_at_the_end_are_always_in_place(ring_name):
    """A producer that reserves a quarter of the ring at a time pads to the
    end of the data area every lap: a view that meets only that padding has
    nothing to give, and must give nothing, not a copy of whatever the
    producer published meanwhile (which was neither in place nor bounded by
    the quarter). Every non-empty view of the stream is rows in the ring,
    at most a quarter of it, in order."""
    total = 1_000_000
    with pykring.create(ring_name, 1 << 16, BODY) as ring:
        most = ring.capacity // 4 // (ring.dtype.itemsize + 8)    # rows a view holds at most
        prod = subprocess.Popen([sys.executable, "-c", STREAM, ring.path, str(total), str(most - 3)])
        try:
            got, copies = 0, 0
            while got < total:
                with ring.view(timeout=HANG_S) as rows:
                    k = len(rows)
                    assert k, "no record for %d s after %d" % (HANG_S, got)      # hang guard
                    copies += not in_ring(ring, rows) or k > most
                    assert rows["x"][0] == got and rows["x"][-1] == got + k - 1
                    got += k
            assert prod.wait(HANG_S) == 0
        finally:
            if prod.poll() is None:
                prod.kill()
                prod.wait()
        assert copies == 0 and got == total
