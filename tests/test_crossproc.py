"""Concurrency tests with real processes: a producer and a consumer in
different processes share a ring through /dev/shm.

The child processes run tests/procs/roles.py (a fresh interpreter each, like
multiprocessing's spawn). Records carry checksums of their sequence number
(roles.make / roles.check), so every test checks content, order and loss
accounting, never only counts. No assertion is about wall-clock time: every
wait has a generous limit that only turns a hang into a failure.

A blocked Ring.read (and a blocked Producer.write) wakes every WAIT_SLICE_S
(50 ms) to check for Ctrl-C, which would hide a lost futex wakeup as mere
latency. The wakeup tests raise that slice (roles.set_wait_slice, in the
children and with monkeypatch in this process) so that a lost wakeup stalls
until a hang guard fails the test.

Bugs found were xfail(strict=True) tests until fixed.
"""
import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import pykring

from tests.procs import roles
from tests.ringutil import remove_ring, unique_ring_name

PROCS = Path(__file__).resolve().parent / "procs"

SMALL, BIG = roles.SMALL, roles.BIG

# Byte offsets in the ring file (include/kring/kring.h): the consumer page at 0, the
# producer page at 4096.
OFF_CONSUMER_POS = 0
OFF_WAITING = 64
OFF_PRODUCER_POS = 4096 + 0
OFF_PRODUCER_WAITING = 4096 + 12

#: Generous hang guard for one step of a test (seconds): never a timing claim.
GUARD = 30.0


# -- helpers -----------------------------------------------------------------------------

@pytest.fixture
def names():
    """make(tag) -> a unique ring name; every /dev/shm/<name> is removed afterwards."""
    made = []

    def make(tag="x"):
        name = unique_ring_name("xproc-%s" % tag)
        made.append(name)
        return name

    yield make
    for name in made:
        remove_ring(name)


class Child:
    """A child process running one role of roles.py, with line-based stdout."""

    def __init__(self, role, **args):
        self.role = role
        self.p = subprocess.Popen([sys.executable, str(PROCS / "roles.py"), role, json.dumps(args)],
                                  stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._buf = b""
        self.err = b""

    @property
    def pid(self):
        return self.p.pid

    def line(self, timeout=GUARD):
        """The next stdout line (str, without the newline)."""
        deadline = time.monotonic() + timeout
        fd = self.p.stdout.fileno()
        while b"\n" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0:
                self.kill()
                pytest.fail("%s: no output line within %ss; stderr:\n%s" % (self.role, timeout, self.stderr()))
            r, _, _ = select.select([fd], [], [], left)
            if r:
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.p.wait(timeout=GUARD)
                    pytest.fail("%s exited (status %s) before printing a line; stderr:\n%s"
                                % (self.role, self.p.returncode, self.stderr()))
                self._buf += chunk
        line, self._buf = self._buf.split(b"\n", 1)
        return line.decode()

    def expect(self, word, timeout=GUARD):
        """The next line, which must start with `word`: its other words."""
        line = self.line(timeout)
        parts = line.split()
        assert parts and parts[0] == word, "%s printed %r, expected %r; stderr:\n%s" % (
            self.role, line, word, self.stderr())
        return parts[1:]

    def finish(self, timeout=GUARD):
        """Wait for the exit: (status, rest of stdout, stderr). A hang fails the test."""
        try:
            out, err = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("%s did not exit within %ss (hang); stderr:\n%s" % (self.role, timeout, self.stderr()))
        self.err += err
        return self.p.returncode, (self._buf + out).decode(), self.err.decode(errors="replace")

    def finish_ok(self, timeout=GUARD):
        rc, out, err = self.finish(timeout)
        assert rc == 0, "%s exited with status %s; stderr:\n%s" % (self.role, rc, err)
        return out

    def stderr(self):
        if self.p.poll() is not None:
            try:
                self.err += self.p.stderr.read() or b""
            except (OSError, ValueError):
                pass
        return self.err.decode(errors="replace")

    def kill(self, sig=signal.SIGKILL):
        if self.p.poll() is None:
            self.p.send_signal(sig)
        if sig == signal.SIGKILL:
            self.p.wait(timeout=GUARD)


@pytest.fixture
def spawn():
    """spawn(role, **args) -> Child; children still running at the end are killed."""
    children = []

    def start(role, **args):
        c = Child(role, **args)
        children.append(c)
        return c

    yield start
    for c in children:
        if c.p.poll() is None:
            c.p.kill()
        try:
            c.p.communicate(timeout=GUARD)
        except (subprocess.TimeoutExpired, ValueError, OSError):
            pass


def peek(name, offset, size=4):
    """A word of the ring file, read through the file (coherent with the mappings)."""
    fd = os.open(os.path.join("/dev/shm", name), os.O_RDONLY)
    try:
        return int.from_bytes(os.pread(fd, size, offset), "little")
    finally:
        os.close(fd)


def wait_until(cond, what, timeout=GUARD):
    """Poll cond() until true; a hang guard, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail("%s: not within %ss" % (what, timeout))
        time.sleep(0.001)


def assert_records(batch, kind, first=None):
    """batch holds consecutive seqs (from `first` if given), each record's content right."""
    seq = batch["seq"]
    if first is None and len(seq):
        first = int(seq[0])
    if not np.array_equal(seq, np.arange(first, first + len(seq), dtype=np.uint64)):
        at = int(np.flatnonzero(seq != np.arange(first, first + len(seq), dtype=np.uint64))[0])
        pytest.fail("seq %d where %d was expected (FIFO order / loss)" % (seq[at], first + at))
    bad = roles.check(batch, kind)
    if len(bad):
        pytest.fail("record seq %d has wrong content (%d bad records in a batch of %d)"
                    % (seq[bad[0]], len(bad), len(batch)))


# -- 1. block mode is lossless and FIFO ---------------------------------------------------

def test_block_mode_lossless_10m_records(names, spawn):
    """10**7 records through a 1 MiB ring in block mode, in batches of 1..4096
    (so the wrap falls at many offsets and the producer blocks often), read
    with a mix of read(out=...), read() and iteration: every record arrives
    once, in order, with the right content; nothing is lost or dropped."""
    N = 10 ** 7
    name = names("lossless")
    rng = np.random.default_rng(1)
    with pykring.create(name, 1 << 20, SMALL) as ring:
        prod = spawn("stream", name=name, block=True, kind="small", total=N, bmin=1, bmax=4096, seed=11)
        assert prod.expect("ready") == ["0"]
        buf = np.empty(8192, dtype=ring.dtype)
        it = iter(ring)
        got = 0
        modes = [0, 0, 0]
        ended = False
        while not ended:
            mode = int(rng.integers(0, 3))
            try:
                if mode == 0:
                    batch = ring.read(out=buf[:int(rng.integers(1, len(buf) + 1))], timeout=GUARD)
                elif mode == 1:
                    batch = ring.read(max_records=int(rng.choice([rng.integers(1, 100), 1 << 30])),
                                      timeout=GUARD)
                else:
                    batch = next(it)
            except (pykring.RingClosedError, StopIteration):
                ended = True
                continue
            assert len(batch), "no record within %ss and the ring is not closed (hang)" % GUARD
            assert_records(batch, "small", got)
            got += len(batch)
            modes[mode] += 1
        assert got == N
        assert min(modes) > 0, modes
        with pytest.raises(pykring.RingClosedError):
            ring.read()
        with pytest.raises(EOFError):
            ring.read(timeout=None)
        st = ring.stats
        assert (st.read, st.written, st.lost, st.dropped, st.pending_bytes) == (N, N, 0, 0, 0)
    done = prod.expect("done")
    assert [int(x) for x in done] == [N, N, 0]
    prod.finish_ok()


# -- 2. drop mode accounts exactly ---------------------------------------------------------

def test_drop_mode_exact_accounting(names, spawn):
    """A fast producer that drops (no blocking) and a slow consumer on a 16 KiB
    ring: received + dropped == attempts, the gaps the consumer saw == dropped
    exactly, seqs strictly increasing, every record's content right. The
    producer ends with flush() and one last record, so that every drop lies
    before a delivered record (see test_drop_mode_trailing_drops_are_lost)."""
    N = 300_000
    name = names("drop")
    rng = np.random.default_rng(2)
    with pykring.create(name, 16384, SMALL) as ring:
        prod = spawn("stream", name=name, block=False, kind="small", total=N, bmin=1, bmax=512, seed=22,
                     sentinel=True)
        prod.expect("ready")
        received, last, batches, gaps, gap_places = 0, -1, 0, 0, 0
        while True:
            try:
                batch = ring.read(max_records=int(rng.integers(1, 65)), timeout=GUARD)
            except pykring.RingClosedError:
                break
            assert len(batch), "no record within %ss and the ring is not closed (hang)" % GUARD
            seq = batch["seq"].astype(np.int64)
            assert seq[0] > last and np.all(np.diff(seq) > 0), "seqs not strictly increasing"
            bad = roles.check(batch, "small")
            assert len(bad) == 0, "record seq %d has wrong content" % seq[bad[0]]
            holes = np.diff(seq, prepend=last) - 1     # numbers skipped before each record
            gaps += int(holes.sum())
            gap_places += int(np.count_nonzero(holes))
            last = int(seq[-1])
            received += len(batch)
            batches += 1
            if batches % 4 == 0:
                time.sleep(0.0005)      # slow consumer
        attempts, written, dropped = (int(x) for x in prod.expect("done"))
        st = ring.stats
        assert attempts == N + 1
        assert dropped > 0, "the consumer was never too slow: the test proves nothing"
        assert received == written == st.written == st.read
        assert st.dropped == dropped
        assert received + st.dropped == attempts
        assert last == attempts - 1          # the sentinel
        assert gaps == st.dropped            # the seqs this test saw skipped
        assert st.lost == st.dropped         # the gaps the C consumer counted
        assert gap_places > 0
    prod.finish_ok()


def test_drop_mode_trailing_drops_are_lost(names, spawn):
    """Records dropped at the very end (nothing delivered after them) are
    sequence numbers the consumer never saw: once the producer closed the
    ring, Stats.lost should count them (its doc: 'sequence numbers this
    consumer never saw (gaps, drops included)')."""
    name = names("taildrop")
    with pykring.create(name, 4096, SMALL) as ring:
        # Nobody reads while the producer writes 1000 records into room for 85.
        prod = spawn("stream", name=name, block=False, kind="small", total=1000, bmin=1000, bmax=1000, seed=3)
        prod.expect("ready")
        attempts, written, dropped = (int(x) for x in prod.expect("done"))
        prod.finish_ok()
        got = np.concatenate(list(ring))
        assert_records(got, "small", 0)
        st = ring.stats
        assert (attempts, written, dropped) == (1000, len(got), 1000 - len(got))
        assert (st.written, st.dropped, st.read) == (written, dropped, written)
        assert st.lost == st.dropped


# -- 3. SIGKILL of the producer ------------------------------------------------------------

def test_producer_sigkill_never_tears_records_and_successor_continues(names, spawn):
    """Kill -9 a producer of 1 KiB records at random moments while it streams
    (64 KiB ring, the consumer draining concurrently), five times, with block-
    and drop-mode producers in turn; the consumer then drains everything
    published: every record whole, in order (consecutive from a blocking
    producer). Each time a new producer attaches to the same ring and its
    first record carries written + dropped of the dead one: the only numbers
    the consumer never sees are drops and records the dead producer counted
    but never published."""
    name = names("pkill")
    rng = np.random.default_rng(3)
    rounds = [("block", 0.0), ("drop", 0.02), ("block", 0.1), ("drop", 0.3), ("block", 0.6)]
    with pykring.create(name, 1 << 16, BIG) as ring:       # holds 63 records
        state = {"next": 0, "first": True, "consecutive": True}
        received = 0

        def drain(timeout):
            nonlocal received
            batch = ring.read(timeout=timeout)
            if len(batch):
                seq = batch["seq"].astype(np.int64)
                if state["first"]:
                    # The successor's first record: the ring was empty, it fit.
                    assert seq[0] == state["next"], "first seq %d, expected %d" % (seq[0], state["next"])
                    state["first"] = False
                if state["consecutive"]:
                    assert_records(batch, "big", state["next"])
                else:
                    assert seq[0] >= state["next"] and np.all(np.diff(seq) > 0), "seqs not increasing"
                    bad = roles.check(batch, "big")
                    assert len(bad) == 0, "record seq %d is torn or wrong" % seq[bad[0]]
                state["next"] = int(seq[-1]) + 1
                received += len(batch)
            return len(batch)

        def successor(rnd, mode, **kw):
            st = ring.stats                 # the counters the dead producer left
            prod = spawn("stream", name=name, block=mode == "block", kind="big", bmin=1, bmax=64,
                         seed=30 + rnd, **kw)
            start = int(prod.expect("ready")[0])
            assert start == st.written + st.dropped
            assert start >= state["next"]
            state.update(next=start, first=True, consecutive=mode == "block")
            return prod

        prev = None
        for rnd, (mode, delay) in enumerate(rounds):
            before = state["next"]
            prod = successor(rnd, mode, total=None)
            if prev == "block":
                # A dead blocking producer drops nothing: all it left unseen is
                # what it counted and did not publish (one chunk: < 64 records).
                assert state["next"] - before < 64
            # Let it stream: until we have its first record, then a bit more.
            wait_until(lambda: drain(0.05) > 0, "first record of producer %d" % rnd)
            deadline = time.monotonic() + delay + float(rng.uniform(0, 0.01))
            while time.monotonic() < deadline:
                drain(0.01)
            prod.kill(signal.SIGKILL)
            rc, _, err = prod.finish()
            assert rc == -signal.SIGKILL, err
            # Everything published is readable, whole, in order.
            while drain(0):
                pass
            assert ring.stats.pending_bytes == 0
            prev = mode
        # A last producer writes a known number of records and closes cleanly.
        prod = successor(len(rounds), "block", total=500)
        start = state["next"]
        while True:
            try:
                assert drain(GUARD), "no record within %ss and the ring is not closed (hang)" % GUARD
            except pykring.RingClosedError:
                break
        assert state["next"] == start + 500
        st = ring.stats
        assert st.read == received
        assert st.dropped > 0, "the drop-mode producers never dropped: the test proves less"
        # Every number never seen is a gap, and is a drop or an unpublished record.
        assert st.lost == state["next"] - received
        assert 0 <= st.lost - st.dropped < 64 * len(rounds)
    prod.finish_ok()


# -- 4. SIGKILL of the consumer, re-attach -------------------------------------------------

def _parse_log(path):
    batches, commits, events = [], [], []
    for line in Path(path).read_text().splitlines():
        word, *nums = line.split()
        nums = [int(x) for x in nums]
        if word == "batch":
            batches.append(nums)
            events.append(("batch", nums))
        else:
            assert word == "commit" and len(nums) == 1, line
            commits.append(nums[0])
            events.append(("commit", nums))
    return batches, commits, events


@pytest.mark.parametrize("seed", [41, 42, 43])
def test_consumer_sigkill_reattach_resumes_at_committed_position(names, spawn, tmp_path, seed):
    """Consumer A reads with commit=False, logs each batch, commits, logs the
    commit; kill -9 A at a random point while a blocking producer streams.
    Consumer B attaches and resumes at A's last commit: every record is
    delivered at least once, the only duplicates are A's last logged batch
    if it was not yet committed, and B starts right after A's last commit."""
    N = 200_000
    name = names("ckill")
    rng = np.random.default_rng(seed)
    # Create the ring and release the consumer role (keeping the file) for A.
    pykring.create(name, 1 << 18, SMALL, unlink=False).close()
    log = tmp_path / "a.log"
    prod = spawn("stream", name=name, block=True, kind="small", total=N, bmin=1, bmax=2000, seed=seed)
    prod.expect("ready")
    a = spawn("log_consumer", name=name, log=str(log), seed=seed, bmax=3000, pause=0.0003)
    a.expect("ready")
    # Kill at a random amount of progress (not at a random time).
    target = int(rng.integers(N // 20, N // 2))

    def progress():
        text = log.read_text() if log.exists() else ""
        commits = [int(l.split()[1]) for l in text.splitlines() if l.startswith("commit")]
        return commits[-1] + 1 if commits else 0

    wait_until(lambda: progress() >= target or a.p.poll() is not None, "A reaching seq %d" % target)
    time.sleep(float(rng.uniform(0, 0.002)))
    assert a.p.poll() is None, "A ended before it was killed: %s" % a.stderr()
    a.kill(signal.SIGKILL)
    rc, _, err = a.finish()
    assert rc == -signal.SIGKILL, err

    batches, commits, events = _parse_log(log)
    assert batches, "A logged nothing"
    # A's own reads: consecutive from 0, content checked by A.
    expect = 0
    for first, last, n, ok in batches:
        assert first == expect and n == last - first + 1 and ok == 1, (first, last, n, ok)
        expect = last + 1
    # Each commit follows its batch.
    for (kind1, b), (kind2, c) in zip(events[0::2], events[1::2]):
        assert kind1 == "batch" and kind2 == "commit" and c[0] == b[1]
    committed = commits[-1] if commits else -1
    pending = batches[-1] if events[-1][0] == "batch" else None

    with pykring.attach(name) as ring:
        got = []
        for batch in ring:                  # ends when the producer closes
            got.append(batch)
        b = np.concatenate(got)
        st = ring.stats
    prod.expect("done")
    prod.finish_ok()

    b0 = int(b["seq"][0])
    assert_records(b, "small", b0)
    assert int(b["seq"][-1]) == N - 1
    if pending is None:
        # Killed after a logged commit, or after a read it had not logged yet.
        assert b0 == committed + 1
        duplicates = 0
    else:
        # Killed between logging a batch and logging its commit: committed or not.
        assert pending[0] == committed + 1
        assert b0 in (pending[0], pending[1] + 1), (b0, pending, committed)
        duplicates = pending[1] - b0 + 1 if b0 == pending[0] else 0
    # B's records at or below A's last logged seq are the ones read twice: exactly
    # the uncommitted pending batch when B restarted at its first record, else none.
    last_logged = batches[-1][1]
    overlap = int(np.count_nonzero(b["seq"] <= last_logged))
    assert overlap == duplicates, (overlap, duplicates, pending, committed, b0)
    # Nothing lost or invented: A's logged records (0 .. last_logged) and B's
    # records above them are N records, counted, not inferred from positions.
    assert (last_logged + 1) + (len(b) - overlap) == N, (last_logged, len(b), overlap)
    assert st.lost == 0 and st.dropped == 0 and st.read == len(b) == N - b0


# -- 5. wakeups ----------------------------------------------------------------------------

def test_consumer_wakeup_ping_pong(names, spawn, monkeypatch):
    """A consumer blocked in read(timeout=None) in one process is woken by a
    single record written by another process after 0..2 ms, 200 times. The
    child's wait slice is raised to 60 s, so a lost wakeup leaves it asleep
    and its ack does not arrive within the 5 s guard."""
    rounds = 200
    roles.set_wait_slice(60.0, monkeypatch.setattr)
    data, ackname = names("ping"), names("ack")
    rng = np.random.default_rng(5)
    with pykring.create(ackname, 4096, SMALL) as ack:
        child = spawn("ping_consumer", data=data, ack=ackname, rounds=rounds, slice=60.0)
        child.expect("ready")
        with pykring.Producer(data) as p:
            for i in range(rounds):
                delay = float(rng.uniform(0, 0.002))
                if delay > 0.0002:
                    time.sleep(delay)
                assert p.write(roles.make("small", i, 1, p.dtype)) == 1
                got = ack.read(timeout=5.0)
                assert len(got) == 1, "round %d: no answer within 5 s (lost wakeup?); child stderr:\n%s" % (
                    i, child.stderr())
                assert int(got["val"][0]) == int(roles.make("small", i, 1)["val"][0])
                assert int(got["seq"][0]) == i
        assert p.written == rounds and p.dropped == 0
        assert child.expect("ok") == [str(rounds)]
        child.finish_ok()


def test_blocked_producer_wakeup_round_trips(names, spawn, monkeypatch):
    """A blocking producer (no timeout) on a 4 KiB ring (85 records) writes
    100k records in calls of up to 300: it must sleep for space thousands of
    times and be woken by the consumer's commits, and this process's reads
    sleep for data and must be woken by its writes. Both sides wait in 60 s
    slices, so a lost wakeup is a stall: a lost producer wakeup makes a read
    return empty after its 10 s guard; a lost consumer wakeup makes a read
    return only when its 10 s wait expires (kring_wait re-checks then)."""
    N = 100_000
    roles.set_wait_slice(60.0, monkeypatch.setattr)
    name = names("pwake")
    rng = np.random.default_rng(6)
    with pykring.create(name, 4096, SMALL) as ring:
        prod = spawn("stream", name=name, block=True, kind="small", total=N, bmin=1, bmax=300, seed=66,
                     slice=60.0)
        prod.expect("ready")
        got, reads = 0, 0
        while True:
            try:
                small = rng.random() < 0.8      # else drain all: the consumer then sleeps too
                t0 = time.monotonic()
                batch = ring.read(max_records=int(rng.integers(1, 40)) if small else None, timeout=10.0)
                waited = time.monotonic() - t0
            except pykring.RingClosedError:
                break
            # Hang guards (10 s), not timing claims:
            assert len(batch), "no record for 10 s after %d of %d: lost producer wakeup" % (got, N)
            assert waited < 9.0, "a read slept its whole 10 s timeout with records pending: lost consumer wakeup"
            assert_records(batch, "small", got)
            got += len(batch)
            reads += 1
        assert got == N
        assert reads > 1000          # many round trips: the ring holds 85 records
        assert ring.stats.lost == 0
    prod.expect("done")
    prod.finish_ok()


# -- 6. Ctrl-C -----------------------------------------------------------------------------

def _assert_keyboard_interrupt(child):
    rc, out, err = child.finish(timeout=10)
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert rc == -signal.SIGINT and last == "KeyboardInterrupt", (
        "after SIGINT: status %s, stdout %r, stderr:\n%s" % (rc, out, err))
    # KeyboardInterrupt alone: not raised while handling another error (a
    # KringError for the interrupted wait, say).
    assert "During handling of the above exception" not in err and "KringError" not in err, err


@pytest.mark.parametrize("slice_s", [None, 3600.0], ids=["default-slice", "one-hour-slice"])
def test_ctrl_c_interrupts_blocked_iteration(names, spawn, slice_s):
    """A process blocked in `for batch in ring:` (no producer) exits with
    KeyboardInterrupt on SIGINT, promptly (10 s hang guard), also when its
    wait slice is an hour: the signal must interrupt the futex wait itself."""
    name = names("intc")
    child = spawn("idle_consumer", name=name, slice=slice_s)
    child.expect("ready")
    # Blocked in the wait: the consumer announced it sleeps.
    wait_until(lambda: peek(name, OFF_WAITING) == 1, "consumer waiting")
    child.kill(signal.SIGINT)
    _assert_keyboard_interrupt(child)


@pytest.mark.parametrize("slice_s", [None, 3600.0], ids=["default-slice", "one-hour-slice"])
def test_ctrl_c_interrupts_blocked_producer_write(names, spawn, slice_s):
    """A producer blocked in write() (block mode, no timeout, full ring, no
    consumer) exits with KeyboardInterrupt on SIGINT, also when its wait
    slice is an hour."""
    name = names("intp")
    child = spawn("blocked_producer", name=name, capacity=4096, slice=slice_s)
    child.expect("ready")
    wait_until(lambda: peek(name, OFF_PRODUCER_WAITING) == 1, "producer waiting for space")
    child.kill(signal.SIGINT)
    _assert_keyboard_interrupt(child)


# -- 7. the producer closes ----------------------------------------------------------------

def test_producer_close_ends_blocked_iterator(names, spawn):
    """The consumer (another process, wait slice an hour) iterates; the
    producer writes records in three bursts, each time after the consumer
    drained everything and went to sleep, then closes while it sleeps: the
    iterator ends after the last record (no hang) and read() on the drained,
    closed ring raises RingClosedError, an EOFError."""
    name = names("close")
    child = spawn("iter_consumer", name=name, slice=3600.0)
    child.expect("ready")
    n = 0
    with pykring.Producer(name) as p:
        for burst in (1, 50, 7):
            assert p.write(roles.make("small", n, burst, p.dtype)) == burst
            n += burst
            wait_until(lambda: peek(name, OFF_CONSUMER_POS, 8) == peek(name, OFF_PRODUCER_POS, 8)
                       and peek(name, OFF_WAITING) == 1, "consumer drained and asleep")
    # Producer closed (context exit) while the consumer sleeps.
    ok = child.expect("ok")
    assert [int(x) for x in ok] == [n, n, 0, n, 0]
    child.finish_ok()


def test_producer_close_then_read_in_this_process(names, spawn):
    """Records written before the close are all delivered first; then read()
    raises RingClosedError (an EOFError) at once, with or without a timeout."""
    name = names("close2")
    with pykring.create(name, 1 << 18, SMALL) as ring:      # holds all 5000: nobody reads yet
        prod = spawn("stream", name=name, block=True, kind="small", total=5000, bmin=1, bmax=100, seed=7)
        prod.expect("ready")
        prod.expect("done")
        prod.finish_ok()
        assert ring.flags & 0x1          # KRING_F_CLOSED
        got = np.concatenate(list(ring))
        assert_records(got, "small", 0)
        assert len(got) == 5000
        for kw in ({}, {"timeout": None}, {"timeout": 5.0}):
            with pytest.raises(pykring.RingClosedError) as exc:
                ring.read(**kw)
            assert isinstance(exc.value, EOFError)


def test_killed_producer_ends_a_blocked_read_with_producer_gone(names, spawn):
    """A producer killed without closing the ring must not leave a consumer
    blocked forever: once everything published is read, a blocking read
    raises ProducerGoneError (not RingClosedError: it was not a clean end)."""
    name = names("gone")
    with pykring.create(name, 1 << 16, SMALL) as ring:
        prod = pykring.Producer(name)
        prod.write(np.zeros(3, dtype=SMALL))
        # A real second process holds the producer role, then dies by SIGKILL.
        prod.close()
        child = subprocess.Popen([sys.executable, "-c", (
            "import sys, time, numpy as np, pykring\n"
            "p = pykring.Producer(%r)\n"
            "p.write(np.zeros(2, dtype=np.dtype(%r)))\n"
            "print('ready', flush=True)\n"
            "time.sleep(60)\n") % (name, SMALL.descr)], stdout=subprocess.PIPE, text=True)
        try:
            assert child.stdout.readline().strip() == "ready"
            assert len(ring.read(timeout=5)) == 5
            child.kill()
            child.wait(timeout=10)
            with pytest.raises(pykring.ProducerGoneError, match="exited without closing"):
                ring.read(timeout=10)
            assert not isinstance(pykring.ProducerGoneError("x"), pykring.RingClosedError)
            # A new producer may take over; the ring works again.
            with pykring.Producer(name) as again:
                again.write(np.zeros(1, dtype=SMALL))
            assert len(ring.read(timeout=5)) == 1
        finally:
            child.kill()
            child.wait()
