"""Lifecycle scenarios with real concurrency, run by tests/test_sanitized_lifecycle.py in a
child interpreter whose pykring._kring is a sanitizer build (tests/sanitizer.py).

Run as ``python lifecycle.py SCENARIO PREFIX``: rings are named PREFIX-<n>. Only
pykring's public API is used. Prints ``ok SCENARIO ...`` at the end; anything
wrong is an exception (traceback, non-zero exit status). A hang dumps every
thread's stack and exits (faulthandler), so it shows as a failure too.

  process-one-reader   a producer process (plain interpreter, roles.py stream) and
                       one reading thread: correct with today's single-threaded objects
  thread-one-writer    one writing thread and the main thread reading: likewise
  process-3-readers    a producer process, 3 threads reading one shared Ring
  thread-4-writers     4 threads writing through one shared Producer, the main thread reads
  close-while-blocked  Ring.close() while another thread is blocked in read() or in
                       iteration; Producer.close() while another thread is blocked in write()
"""
import faulthandler
import json
import os
import subprocess
import sys
import threading
import time

import numpy as np

import pykring
from roles import SMALL, check, make

HERE = os.path.dirname(os.path.abspath(__file__))
#: A scenario takes seconds; this bounds a hang (well within the test's own timeout).
WATCHDOG_S = 180
#: How long a thread may take to block in a call (a heavily loaded machine, TSan).
BLOCK_S = 60


def say(*words):
    print(*words, flush=True)


class Worker(threading.Thread):
    """A thread whose exception is kept for the main thread (`join_checked`)."""

    def __init__(self, name, fn, *args):
        super().__init__(name=name, daemon=True)
        self.fn, self.args, self.error, self.result = fn, args, None, None

    def run(self):
        try:
            self.result = self.fn(*self.args)
        except BaseException as exc:          # noqa: B902 - reported by join_checked
            self.error = exc

    def join_checked(self, timeout=WATCHDOG_S):
        self.join(timeout)
        if self.is_alive():
            raise AssertionError("%s did not finish" % self.name)
        if self.error is not None:
            raise AssertionError("%s raised %r" % (self.name, self.error)) from self.error
        return self.result


# -- a producer process, and the ring's readers ------------------------------------------

def start_producer_process(name, total, seed):
    """roles.py's stream role in a plain interpreter: `total` SMALL records in block
    mode, batches of 1..500, then close."""
    args = {"name": name, "block": True, "kind": "small", "total": total, "seed": seed,
            "bmin": 1, "bmax": 500}
    return subprocess.Popen([sys.executable, os.path.join(HERE, "roles.py"), "stream", json.dumps(args)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish_producer_process(proc, total):
    out, err = proc.communicate(timeout=WATCHDOG_S)
    if proc.returncode != 0:
        raise AssertionError("the producer process exited with %d:\n%s" % (proc.returncode, err.decode()))
    last = out.decode().split("\n")[-2].split()
    if last[:3] != ["done", str(total), str(total)]:
        raise AssertionError("the producer process said %r" % last)


def reader(ring, max_records):
    """read(max_records, timeout=None) until the ring ends; the batches read."""
    batches = []
    while True:
        try:
            batch = ring.read(max_records=max_records, timeout=None)
        except pykring.RingClosedError:
            return batches
        if len(batch) > max_records:
            raise AssertionError("read(max_records=%d) returned %d records" % (max_records, len(batch)))
        batches.append(batch)


def check_all_once(batches, total, what):
    """Every seq 0..total-1 exactly once over `batches`, each record's content its own."""
    got = np.concatenate([b for b in batches if len(b)]) if any(len(b) for b in batches) \
        else np.empty(0, dtype=pykring.record_dtype(SMALL))
    seqs = np.sort(got["seq"])
    if not np.array_equal(seqs, np.arange(total, dtype=seqs.dtype)):
        dup = int(np.count_nonzero(seqs[1:] == seqs[:-1]))
        missing = total - len(np.unique(seqs))
        raise AssertionError("%s: %d records for %d seqs, %d duplicates, %d missing"
                             % (what, len(seqs), total, dup, missing))
    bad = check(got, "small")
    if len(bad):
        raise AssertionError("%s: record seq %d has another record's content" % (what, got["seq"][bad[0]]))


def from_process(prefix, readers, total, max_records):
    name = prefix + "-0"
    with pykring.create(name, 1 << 16, SMALL) as ring:
        proc = start_producer_process(name, total, seed=readers)
        workers = [Worker("reader-%d" % i, reader, ring, max_records) for i in range(readers)]
        for w in workers:
            w.start()
        batches = [b for w in workers for b in w.join_checked()]
        finish_producer_process(proc, total)
        check_all_once(batches, total, "%d readers" % readers)
        # Each reader saw the end, once everything was read.
        st = ring.stats
        if (st.read, st.lost, st.written, st.dropped) != (total, 0, total, 0):
            raise AssertionError("stats after the end: %s" % (st,))
        say("ok", "from-process", readers, total, sum(len(b) for b in batches),
            "batches per reader", [len(w.result) for w in workers])


def scenario_process_one_reader(prefix):
    from_process(prefix, readers=1, total=100_000, max_records=16)


def scenario_process_3_readers(prefix):
    from_process(prefix, readers=3, total=200_000, max_records=16)


# -- writing threads ----------------------------------------------------------------------

#: A writer's records: its number and a counter, so each writer's order shows.
TAGGED = np.dtype([("writer", "<u4"), ("i", "<u4")])


def writer(prod, k, count, seed):
    """Write `count` TAGGED records of writer `k` in block mode, in batches of 1..64
    (many calls: many chances for two to meet) and now and then of up to 1000 (more
    than the ring's 400 or so: the call waits for room inside C, so the writing and
    the draining C code run at the same time, which is when TSan can see a race)."""
    rng = np.random.default_rng(seed)
    i = 0
    while i < count:
        n = min(int(rng.integers(1, 65) if rng.random() < 0.8 else rng.integers(65, 1001)), count - i)
        recs = np.zeros(n, dtype=TAGGED)
        recs["writer"] = k
        recs["i"] = np.arange(i, i + n)
        done = prod.write(recs)
        if done != n:
            raise AssertionError("block mode wrote %d of %d" % (done, n))
        i += n


def from_threads(prefix, writers, count):
    name = prefix + "-0"
    total = writers * count
    with pykring.create(name, 1 << 14, TAGGED) as ring:
        prod = pykring.Producer(name, block=True)
        workers = [Worker("writer-%d" % k, writer, prod, k, count, k) for k in range(writers)]
        for w in workers:
            w.start()
        parts, n = [], 0
        deadline = time.monotonic() + WATCHDOG_S
        while n < total and time.monotonic() < deadline:
            batch = ring.read(max_records=256, timeout=0.5)
            parts.append(batch)
            n += len(batch)
            if not len(batch) and not any(w.is_alive() for w in workers):
                break                           # a writer died: its error is raised below
        for w in workers:
            w.join_checked()
        if prod.written != total or prod.dropped != 0:
            raise AssertionError("producer counters %d written, %d dropped" % (prod.written, prod.dropped))
        prod.close()
        got = np.concatenate(parts)
        # One producer: seqs in ring order, gapless; each writer's records in its order.
        if not np.array_equal(got["seq"], np.arange(total, dtype=got["seq"].dtype)):
            raise AssertionError("%d records, seqs not 0..%d in order" % (len(got), total - 1))
        for k in range(writers):
            mine = got["i"][got["writer"] == k]
            if not np.array_equal(mine, np.arange(count, dtype=mine.dtype)):
                raise AssertionError("writer %d: %d records, not 0..%d in order" % (k, len(mine), count - 1))
        try:
            extra = ring.read(timeout=None)
        except pykring.RingClosedError:
            pass
        else:
            raise AssertionError("after Producer.close(): %d records instead of the end" % len(extra))
        say("ok", "from-threads", writers, total)


def scenario_thread_one_writer(prefix):
    from_threads(prefix, writers=1, count=50_000)


def scenario_thread_4_writers(prefix):
    from_threads(prefix, writers=4, count=100_000)


# -- close from another thread ------------------------------------------------------------

def _state(thread):
    """The kernel's scheduling state of `thread` ("R" running, "S" sleeping, ...)."""
    with open("/proc/self/task/%d/stat" % thread.native_id) as f:
        return f.read().rsplit(")", 1)[1].split()[0]


def _inside(thread, module_file):
    """Whether `thread` is executing a function of pykring's `module_file` (ring.py...)."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None:
        if os.path.basename(frame.f_code.co_filename) == module_file and \
                os.path.basename(os.path.dirname(frame.f_code.co_filename)) == "pykring":
            return True
        frame = frame.f_back
    return False


def wait_blocked(thread, module_file):
    """Return once `thread` sleeps inside a call of pykring/`module_file`, seen on three
    polls in a row while this thread slept (so it was not waiting for the GIL).
    The /proc state is the kernel's word, not a guess from elapsed time."""
    deadline = time.monotonic() + BLOCK_S
    seen = 0
    while seen < 3:
        if not thread.is_alive():
            raise AssertionError("%s ended before it blocked: %r" % (thread.name, thread.error))
        if time.monotonic() > deadline:
            raise AssertionError("%s never blocked in pykring/%s" % (thread.name, module_file))
        time.sleep(0.02)
        seen = seen + 1 if _inside(thread, module_file) and _state(thread) == "S" else 0


def expect_closed(fn, *args):
    """Call fn; it must raise RingClosedError. Returns what it said."""
    try:
        got = fn(*args)
    except pykring.RingClosedError as exc:
        return "RingClosedError: %s" % exc
    raise AssertionError("%s returned %r instead of raising RingClosedError" % (fn.__name__, got))


def blocked_read(ring):
    return expect_closed(ring.read, None, None)          # read(max_records=None, timeout=None)


def blocked_iteration(ring):
    batches = list(ring)                                 # the iterator ends, no exception
    if batches:
        raise AssertionError("iterating an empty ring yielded %d batches" % len(batches))
    return "iteration ended"


def blocked_write(prod, n):
    return expect_closed(prod.write, make("small", 0, n, prod.dtype))


def close_ring_while_blocked(name, how):
    ring = pykring.create(name, 4096, SMALL)
    prod = pykring.Producer(name, block=True)            # attached, writes nothing
    try:
        w = Worker("blocked-" + how, blocked_read if how == "read" else blocked_iteration, ring)
        w.start()
        wait_blocked(w, "ring.py")
        ring.close()
        w.join_checked()
        if not ring.closed:
            raise AssertionError("Ring.closed is False after close()")
    finally:
        prod.close()
        ring.close()


def close_producer_while_blocked(name):
    ring = pykring.create(name, 4096, SMALL)
    try:
        prod = pykring.Producer(name, block=True)
        w = Worker("blocked-write", blocked_write, prod, 1000)   # 4 KiB hold 85 of them
        w.start()
        wait_blocked(w, "producer.py")
        prod.close()
        w.join_checked()
        # The consumer gets what was written before the close, then the end of the ring.
        got = [b for b in ring]
        got = np.concatenate(got) if got else np.empty(0, dtype=ring.dtype)
        if not 0 < len(got) < 1000 or not np.array_equal(got["seq"], np.arange(len(got))) or len(check(got, "small")):
            raise AssertionError("after the producer closed: %d records, seqs %s" % (len(got), got["seq"][:8]))
        expect_closed(ring.read)
    finally:
        ring.close()


def scenario_close_while_blocked(prefix, rounds=10):
    k = 0
    for _ in range(rounds):
        for how in ("read", "iterate", "write"):
            name = "%s-%d" % (prefix, k)
            k += 1
            if how == "write":
                close_producer_while_blocked(name)
            else:
                close_ring_while_blocked(name, how)
    say("ok", "close-while-blocked", rounds)


SCENARIOS = {name[9:].replace("_", "-"): fn for name, fn in globals().items()
             if name.startswith("scenario_")}

if __name__ == "__main__":
    faulthandler.dump_traceback_later(WATCHDOG_S, exit=True)
    SCENARIOS[sys.argv[1]](sys.argv[2])
