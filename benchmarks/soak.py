"""soak: a long lossless stream of checksummed records, checked record by record.

One producer process writes N records (``--records``, default 10**9; 10**7
with ``--quick``) of 64 bytes into a 16 MiB ring with ``pykring.Producer``
in block mode (lossless); this process is the consumer: it creates the ring,
drains it with ``Ring.read(timeout=1.0, out=<reused buffer of 16384 rows>)``
until ``RingClosedError``, and checks every record of every read, vectorised
with numpy over the whole read:

- order: the seqs are consecutive from 0 (each read continues where the last
  one ended). A read that breaks the run is classified record by record:
  a jump forward counts the skipped seqs as lost, a seq seen before as
  duplicated, a skipped seq that arrives late as out of order (and no
  longer lost);
- content: the body is a function of the seq (below), so a record torn
  between two writes, or delivered under another record's seq, does not
  match; the rest of the event header must be type 1, flags 0, reserved 0;
- at the end: records read == N, the ring's written == N, dropped == 0,
  ``ring.stats.lost`` == 0 (the library's own count of seq gaps), nothing
  lost, duplicated, torn or out of order, the producer exited 0.
Any of these failing makes the command exit 1.

Record body (40 bytes after the 24-byte event header), all uint64, from the
splitmix64 finaliser ``mix``: ``val = mix(seq ^ K_VAL)``, three ``pad`` words
``val ^ PAD[j]``, and ``ck = mix(val ^ K_CK)`` in the last word, so the
first and the last 8 bytes of the record (seq, ck) and everything between
depend on the seq. The producer computes the same function on whole
batches with numpy.

Memory: the consumer's peak RSS (VmHWM) is read once the ring has been
lapped twice (``soak_rss_peak_kib_start``: the out= buffer, the work arrays
of the checks and the whole ring mapping are resident by then) and at the
end, the ring still mapped; flat memory means the two agree.

The ``soak-restart`` command is the same stream with the producer killed
(SIGKILL) four times at evenly spaced points (every other kill right after
a read made room, the others once the ring is full again): each time a new
producer process attaches and continues at ``written + dropped`` of the dead
one, and the checks above must still hold: whatever the dead producer had
not published, its successor writes under the same seqs.

Keys: ``soak_records``, ``soak_seconds``, ``soak_records_per_s``,
``soak_bytes_per_s``, ``soak_batches``, ``soak_max_batch``,
``soak_rss_peak_kib_start`` / ``_end``, ``soak_rss_peak_ratio_end_start``,
``soak_lost``, ``soak_duplicated``, ``soak_torn``, ``soak_out_of_order``,
``soak_ring_written`` / ``_dropped`` / ``_lost`` / ``_read`` (``ring.stats``
at the end), ``soak_ok``; with restarts ``soak_restarts`` too.

Child entry point (used by the step, not meant to be run by hand)::

    python -m benchmarks.soak --producer RING_PATH TOTAL [--handshake]
"""
import bisect
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional, Tuple

import numpy as np

from pykring._common import remove_ring, unique_ring_name
from pykring.schema import record_span

from ._common import ROOT, MiB, Report, log

RECORDS_FULL = 10 ** 9
RECORDS_QUICK = 10 ** 7
RECORD_SIZE = 64
BODY = np.dtype([("val", "<u8"), ("pad", "<u8", (3,)), ("ck", "<u8")])
WORDS = RECORD_SIZE // 8             #: uint64 words per record: seq, ts, type|flags, val, pad x3, ck
RING_CAPACITY = 16 * MiB
#: the consumer's reused out= buffer: 16384 rows (1 MiB, L2-sized here) checked faster than
#: 65536 (4 MiB) in alternating runs of 3 * 10**7 records on this machine
OUT_ROWS = 1 << 14
PRODUCER_BATCH = 1 << 14             #: records per Producer.write (1 MiB)
HEADER_WORD = 1                      #: bytes 16..23 of a record: type 1, flags 0, reserved 0
STALL_S = 120.0                      #: no record for this long while the producer lives: a hang

K_VAL = np.uint64(0x243F6A8885A308D3)
K_CK = np.uint64(0x13198A2E03707344)
PAD = np.array([0xA4093822299F31D0, 0x082EFA98EC4E6C89, 0x452821E638D01377], dtype=np.uint64)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


def mix(x: np.ndarray, tmp: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, in place on a contiguous uint64 array (tmp: same length)."""
    np.right_shift(x, _S30, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    np.multiply(x, _M1, out=x)
    np.right_shift(x, _S27, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    np.multiply(x, _M2, out=x)
    np.right_shift(x, _S31, out=tmp)
    np.bitwise_xor(x, tmp, out=x)
    return x


class Content:
    """Work arrays for the expected body of up to `rows` records."""

    def __init__(self, rows: int):
        self.iota = np.arange(rows, dtype=np.uint64)
        self.seq = np.empty(rows, dtype=np.uint64)
        self.val = np.empty(rows, dtype=np.uint64)
        self.ck = np.empty(rows, dtype=np.uint64)
        self.tmp = np.empty(rows, dtype=np.uint64)

    def expect(self, seq: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """(val, ck) for the contiguous uint64 array `seq` (views of the work arrays)."""
        k = len(seq)
        val, ck, tmp = self.val[:k], self.ck[:k], self.tmp[:k]
        np.bitwise_xor(seq, K_VAL, out=val)
        mix(val, tmp)
        np.bitwise_xor(val, K_CK, out=ck)
        mix(ck, tmp)
        return val, ck

    def fill(self, body: np.ndarray, seq0: int) -> np.ndarray:
        """Bodies of the records seq0 .. seq0 + len(body) - 1, written into `body` (BODY)."""
        k = len(body)
        seq = self.seq[:k]
        np.add(self.iota[:k], np.uint64(seq0), out=seq)
        val, ck = self.expect(seq)
        w = body.view(np.uint64).reshape(k, 5)
        w[:, 0] = val
        for j in range(3):                      # column by column: 2-d broadcasts are slow here
            np.bitwise_xor(val, PAD[j], out=w[:, 1 + j])
        w[:, 4] = ck
        return body


# -- the producer process ------------------------------------------------------
def producer_main(path: str, total: int, handshake: bool) -> int:
    """Attach in block mode, continue at written + dropped, write up to seq
    total - 1, close the ring."""
    import pykring

    with pykring.Producer(path, block=True) as p:
        if p.dtype.itemsize != RECORD_SIZE or pykring.body_dtype(p.dtype) != BODY:
            print("the ring's records are %s, not %s" % (p.dtype, BODY), file=sys.stderr)
            return 1
        content = Content(PRODUCER_BATCH)
        body = np.zeros(PRODUCER_BATCH, dtype=BODY)
        seq = p.written + p.dropped
        print("ready %d" % seq, flush=True)
        if handshake and not sys.stdin.readline():
            return 1
        c0 = time.process_time()
        while seq < total:
            k = min(PRODUCER_BATCH, total - seq)
            content.fill(body[:k], seq)
            seq += p.write(body[:k])
            if p.written + p.dropped != seq:
                print("counters %d + %d after writing up to seq %d" % (p.written, p.dropped, seq),
                      file=sys.stderr)
                return 1
        c1 = time.process_time()
        written, dropped = p.written, p.dropped
    print("done %d %d %.3f" % (written, dropped, c1 - c0), flush=True)
    return 0


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _start_producer(path: str, total: int, handshake: bool) -> Tuple[subprocess.Popen, int]:
    cmd = [sys.executable, "-m", "benchmarks.soak", "--producer", path, str(total)]
    proc = subprocess.Popen(cmd + (["--handshake"] if handshake else []), cwd=ROOT, env=_child_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    line = proc.stdout.readline().split()
    if len(line) != 2 or line[0] != "ready":
        proc.kill()
        proc.wait()
        raise RuntimeError("the producer did not start (%r, exit %s)" % (" ".join(line), proc.returncode))
    return proc, int(line[1])


# -- the consumer's checks -----------------------------------------------------
class Checker:
    """Checks reads of the stream as they come: order against the seqs seen so
    far, content against each record's own seq."""

    #: order anomalies classified one by one; beyond this a read that breaks
    #: the order is counted whole as out of order (the run has failed anyway)
    MAX_RUNS = 100_000

    def __init__(self, rows: int):
        self.content = Content(rows)
        self.diff = np.empty(rows, dtype=np.uint64)
        self.bad = np.empty(rows, dtype=bool)
        self.bad2 = np.empty(rows, dtype=bool)
        self.next = 0                    #: one past the highest seq seen
        self.records = 0
        self.missing: List[List[int]] = []   #: sorted [lo, hi) ranges of seqs skipped so far
        self.duplicated = 0
        self.out_of_order = 0
        self.torn = 0
        self.runs = 0
        self.examples: List[str] = []

    def _note(self, what: str) -> None:
        if len(self.examples) < 5:
            self.examples.append(what)

    def check(self, a: np.ndarray) -> None:
        """One read: `a` is a contiguous array of 64-byte records."""
        k = len(a)
        if not k:
            return
        w = a.view(np.uint64).reshape(k, WORDS)
        seq = self.content.seq[:k]
        np.copyto(seq, w[:, 0])
        # Order: seq[i] - i is the same for all i, and it is where the last read ended.
        d = self.diff[:k]
        np.subtract(seq, self.content.iota[:k], out=d)
        bad = self.bad[:k]
        np.not_equal(d, np.uint64(self.next), out=bad)
        if bad.any():
            self._order(seq)
        else:
            self.next += k
        self.records += k
        # Content: val, pad, ck and the header word against the seq.
        val, ck = self.content.expect(seq)
        np.not_equal(w[:, 3], val, out=bad)
        bad2 = self.bad2[:k]
        np.not_equal(w[:, 7], ck, out=bad2)
        np.logical_or(bad, bad2, out=bad)
        np.not_equal(w[:, 2], np.uint64(HEADER_WORD), out=bad2)
        np.logical_or(bad, bad2, out=bad)
        pad = self.diff[:k]
        for j in range(3):                      # column by column: 2-d broadcasts are slow here
            np.bitwise_xor(w[:, 4 + j], val, out=pad)
            np.not_equal(pad, PAD[j], out=bad2)
            np.logical_or(bad, bad2, out=bad)
        torn = int(np.count_nonzero(bad))
        if torn:
            self.torn += torn
            i = int(np.flatnonzero(bad)[0])
            self._note("record %d of a read, seq %d: words %s, expected val %#x ck %#x"
                       % (i, int(seq[i]), [hex(int(x)) for x in w[i]], int(val[i]), int(ck[i])))

    def _order(self, seq: np.ndarray) -> None:
        """Classify a read whose seqs do not continue the stream, run by run."""
        s = seq.astype(np.int64)
        starts = np.flatnonzero(np.diff(s) != 1) + 1
        bounds = np.concatenate(([0], starts, [len(s)]))
        if self.runs + len(bounds) - 1 > self.MAX_RUNS:
            self.out_of_order += len(s)
            self._note("a read of %d records in %d runs, not classified" % (len(s), len(bounds) - 1))
            self.next = max(self.next, int(s.max()) + 1)
            return
        self.runs += len(bounds) - 1
        for b0, b1 in zip(bounds[:-1], bounds[1:]):
            lo, hi = int(s[b0]), int(s[b0]) + int(b1 - b0)
            if lo < self.next:                   # seen before, or skipped and late
                late_hi = min(hi, self.next)
                late = self._take_missing(lo, late_hi)
                self.out_of_order += late
                self.duplicated += (late_hi - lo) - late
                if late:
                    self._note("%d records of seqs %d..%d arrived after later ones" % (late, lo, late_hi - 1))
                if late_hi - lo > late:
                    self._note("seqs %d..%d delivered again (%d records)"
                               % (lo, late_hi - 1, late_hi - lo - late))
                lo = late_hi
            if lo < hi:
                if lo > self.next:               # a jump forward: seqs skipped
                    self.missing.append([self.next, lo])
                    self._note("seqs %d..%d skipped" % (self.next, lo - 1))
                self.next = hi

    def _take_missing(self, lo: int, hi: int) -> int:
        """Remove [lo, hi) from the missing ranges; how many seqs were there."""
        took = 0
        i = max(0, bisect.bisect_right([r[0] for r in self.missing], lo) - 1)
        out = self.missing[:i]
        for r0, r1 in self.missing[i:]:
            a, b = max(r0, lo), min(r1, hi)
            if a < b:
                took += b - a
                if r0 < a:
                    out.append([r0, a])
                if b < r1:
                    out.append([b, r1])
            else:
                out.append([r0, r1])
        self.missing = out
        return took

    def lost(self, total: int) -> int:
        """Seqs below `total` never delivered."""
        return sum(hi - lo for lo, hi in self.missing) + max(0, total - self.next)


# -- the consumer (this process) -----------------------------------------------
def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return -1


def stream(total: int, restarts: int = 0, seed: int = 1) -> dict:
    """One stream of `total` records through a fresh ring; with `restarts`, the
    producer is killed and replaced that many times at evenly spaced points."""
    import pykring

    dt = pykring.record_dtype(BODY)
    assert dt.itemsize == RECORD_SIZE
    out = np.zeros(OUT_ROWS, dtype=dt)          # zeroed: faulted in before the clock starts
    checker = Checker(OUT_ROWS)
    checker.check(out[:0])
    rng = np.random.default_rng(seed)
    kill_at = [total * (i + 1) // (restarts + 1) for i in range(restarts)]
    warm = 2 * RING_CAPACITY // record_span(RECORD_SIZE)    # two laps of the ring
    res: dict = {"records": 0, "restarts": 0, "problems": []}
    problems: List[str] = res["problems"]
    name = unique_ring_name("bench-soak")
    proc: Optional[subprocess.Popen] = None
    try:
        with pykring.create(name, RING_CAPACITY, BODY) as ring:
            path = str(ring.path)
            proc, start = _start_producer(path, total, handshake=True)
            if start != 0:
                problems.append("the first producer starts at seq %d" % start)
            read, closed, gone = ring.read, pykring.RingClosedError, pykring.ProducerGoneError
            batches = max_batch = 0
            rss_start = None
            step = max(1, total // 10)
            next_log = step
            t0 = time.perf_counter()
            c0 = time.process_time()
            assert proc.stdin is not None and proc.stdout is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
            last_data = t0
            while True:
                try:
                    a = read(timeout=1.0, out=out)
                except closed:
                    break
                except gone:
                    problems.append("the producer exited (%s) without closing the ring" % proc.wait())
                    break
                k = len(a)
                if k:
                    if kill_at and checker.records + k >= kill_at[0]:
                        # Before this read's checks: the producer, woken by the room the read
                        # made, is writing. Every other kill comes later, when the ring is
                        # full again and the producer waits for room.
                        kill_at.pop(0)
                        if res["restarts"] % 2:
                            time.sleep(float(rng.uniform(0.005, 0.05)))
                        proc.kill()
                        rc = proc.wait()
                        if rc != -signal.SIGKILL:
                            problems.append("producer %d ended by itself (exit %s) before the kill"
                                            % (res["restarts"], rc))
                        st = ring.stats
                        proc, start = _start_producer(path, total, handshake=False)
                        res["restarts"] += 1
                        log("soak: producer killed after %d records read, %d bytes pending; the next one"
                            " starts at seq %d (written %s, dropped %s)"
                            % (checker.records + k, st.pending_bytes, start, st.written, st.dropped))
                        if start != (st.written or 0) + (st.dropped or 0):
                            problems.append("a new producer starts at seq %d, not written + dropped (%s + %s)"
                                            % (start, st.written, st.dropped))
                    checker.check(a)
                    batches += 1
                    if k > max_batch:
                        max_batch = k
                    n = checker.records
                    if n >= next_log:
                        el = time.perf_counter() - t0
                        log("soak: %d records (%.0f%%), %.1f s, %.2fM rec/s, VmRSS %d KiB"
                            % (n, 100.0 * n / total, el, n / el / 1e6, _status_kib("VmRSS")))
                        next_log += step
                    if rss_start is None and n >= warm:
                        rss_start = _status_kib("VmHWM")
                    last_data = time.perf_counter()
                elif proc.poll() is None and time.perf_counter() - last_data > STALL_S:
                    problems.append("no record for %.0f s at %d records, the producer still running"
                                    % (STALL_S, checker.records))
                    break
            t1 = time.perf_counter()
            c1 = time.process_time()
            st = ring.stats
            rss_end, rss_now = _status_kib("VmHWM"), _status_kib("VmRSS")   # the ring still mapped
            try:
                rc = proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
                problems.append("the producer did not exit within 60 s of the end of the stream")
            assert proc.stdout is not None
            tail = proc.stdout.read().split()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait()
        remove_ring(name)
    lost = checker.lost(total)
    res.update(records=checker.records, seconds=t1 - t0, consumer_cpu_s=c1 - c0, batches=batches,
               max_batch=max_batch, rss_peak_kib_start=rss_start, rss_peak_kib_end=rss_end,
               rss_kib_end=rss_now, written=st.written, dropped=st.dropped,
               ring_lost=st.lost, ring_read=st.read, lost=lost, duplicated=checker.duplicated,
               torn=checker.torn, out_of_order=checker.out_of_order, producer_exit=rc)
    if len(tail) == 4 and tail[0] == "done":
        res["producer_cpu_s"] = float(tail[3])
    if checker.records != total or st.read != total:
        problems.append("read %d records (ring counts %d), expected %d" % (checker.records, st.read, total))
    if st.written != total or st.dropped or st.lost:
        problems.append("ring stats: written %s, dropped %s, lost %s (expected %d, 0, 0)"
                        % (st.written, st.dropped, st.lost, total))
    for what in ("lost", "duplicated", "torn", "out_of_order"):
        if res[what]:
            problems.append("%d records %s" % (res[what], what.replace("_", " ")))
    if rc != 0 or len(tail) != 4:
        problems.append("last producer: exit %s, output %r" % (rc, " ".join(tail)))
    problems.extend(checker.examples)
    res["ok"] = not problems
    return res


def run(report: Report, quick: bool, records: Optional[int] = None, restarts: int = 0) -> None:
    total = int(records) if records is not None else (RECORDS_QUICK if quick else RECORDS_FULL)
    if total < 1:
        raise ValueError("--records must be at least 1")
    report.meta["soak"] = {"records": total, "record_bytes": RECORD_SIZE, "ring_bytes": RING_CAPACITY,
                           "out_rows": OUT_ROWS, "producer_batch": PRODUCER_BATCH, "restarts": restarts,
                           "producer": "pykring.Producer(block=True) in a Python process"}
    log("soak: %d records of %d B through a %d MiB ring%s" % (
        total, RECORD_SIZE, RING_CAPACITY // MiB,
        ", the producer killed and replaced %d times" % restarts if restarts else ""))
    r = stream(total, restarts)
    sec = r.get("seconds") or float("nan")
    report.add("soak_records", r["records"], "records", note="read and checked, of %d written" % total)
    report.add("soak_seconds", sec, "s", note="first write to the clean close%s"
               % (", %d producer restarts included" % r["restarts"] if restarts else ""))
    report.add("soak_records_per_s", r["records"] / sec, "rec/s",
               note="Python producer process, block mode; every record checked")
    report.add("soak_bytes_per_s", r["records"] * RECORD_SIZE / sec, "B/s",
               note="%d-byte records" % RECORD_SIZE)
    report.add("soak_batches", r["batches"], "reads", note="non-empty Ring.read(out=%d rows)" % OUT_ROWS)
    report.add("soak_max_batch", r["max_batch"], "records")
    report.add("soak_rss_peak_kib_start", r["rss_peak_kib_start"], "KiB",
               note="consumer VmHWM after two laps of the ring")
    report.add("soak_rss_peak_kib_end", r["rss_peak_kib_end"], "KiB",
               note="consumer VmHWM at the end, the ring still mapped (VmRSS %s KiB)" % r["rss_kib_end"])
    if r["rss_peak_kib_start"]:
        report.add("soak_rss_peak_ratio_end_start", r["rss_peak_kib_end"] / r["rss_peak_kib_start"], "x",
                   note="1.0 = flat")
    if "producer_cpu_s" in r and r["restarts"] == 0:
        report.add("soak_producer_busy", r["producer_cpu_s"] / sec, "cpu/wall", note="producer process")
    report.add("soak_consumer_busy", r["consumer_cpu_s"] / sec, "cpu/wall",
               note="this process: read + checks")
    if restarts:
        report.add("soak_restarts", r["restarts"], "kills",
                   note="SIGKILL, then a new producer at written + dropped")
    for what in ("lost", "duplicated", "torn", "out_of_order"):
        report.add("soak_" + what, r[what], "records", note="must be 0")
    for what in ("written", "dropped", "lost", "read"):
        report.add("soak_ring_" + what, r["ring_" + what if what in ("lost", "read") else what], "records",
                   note="ring.stats.%s at the end" % what)
    report.add("soak_ok", r["ok"], note="every check of the step")
    if not r["ok"]:
        report.fail("soak: " + "; ".join(r["problems"]))


def _main(argv: List[str]) -> int:
    if len(argv) in (3, 4) and argv[0] == "--producer" and argv[3:] in ([], ["--handshake"]):
        return producer_main(argv[1], int(argv[2]), handshake=len(argv) == 4)
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
