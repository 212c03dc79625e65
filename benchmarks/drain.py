"""drain: Ring.read(out=...) throughput against memcpy of the same bytes.

For each record size (the full record, 24-byte event header included) a
32 MiB ring is filled by an in-process Producer, then either drained by
``Ring.read(out=preallocated)`` or copied by ``np.copyto`` into a
preallocated uint8 array, each timed. Both consume the same ring bytes:
records x span (span = 8-byte record header + record, rounded up to 8). They
do not write the same amount: memcpy writes all of those bytes, the drain
writes records x record size into numpy (it leaves out the 8-byte record
header and the padding), 8 to 15 bytes less per record. The ratio and the
GB/s figures count ring bytes consumed, so a ratio above 1 at a size means
the drain got through the ring faster than memcpy, partly by writing less.
Rounds alternate which of the two goes first; the first round warms up and
is discarded.

Every drain is checked, outside the timed window: the count, every seq
consecutive from where the previous fill started, and every record's body
bytes equal to what the producer wrote in that round (the body carries the
round number, so a stale buffer from an earlier round does not pass).

The memcpy reads the ring's own data area (a read-only mapping of the ring
file), freshly written by the producer exactly as the drain's input is, so
both start from the same cache and TLB state. A memcpy between two plain
anonymous arrays (``memcpy_anon_gbps_*``) is reported beside it for
reference: its source was last touched a round earlier (colder), so it is
usually a little slower and would flatter the ratio.

Then the same measurement on a 1 MiB ring (``drain_vs_memcpy_1mib_<size>``:
64-byte records in every run, 1024-byte ones too in the full run): there the
data stays in cache, memcpy runs at cache speed and the drain's per-record
work (and the ~8 us of Python per Ring.read call) shows. Small records of
one type are the drain's fast path (runs of one type and length, copied
without per-record dispatch); ``drain_vs_memcpy_1mib_64`` is how close it
comes to memcpy. Its drains are checked as above.

Keys: ``drain_vs_memcpy_<size>`` (memcpy time / drain time for the same
ring bytes, i.e. drain ring-bytes/s over memcpy ring-bytes/s, median over
rounds, with _min/_max), ``drain_gbps_<size>``, ``memcpy_gbps_<size>``,
``memcpy_anon_gbps_<size>`` (GB/s = 1e9 ring bytes consumed per second),
``drain_records_per_s_<size>``, ``drain_checked`` (every drained record's
seq and body were as written).
"""
import mmap
import os
import time
from typing import Iterable, Optional

import numpy as np

from pykring._common import remove_ring, unique_ring_name
from pykring.schema import record_span

from ._common import EVENT_HEADER, MiB, Report, log

SIZES_QUICK = (32, 64, 256, 1024)
SIZES_FULL = (32, 64, 256, 1024, 4096)
RING_CAPACITY = 32 * MiB
#: a ring that stays in cache (L2 is 1 MiB per core here)
SMALL_RING_CAPACITY = 1 * MiB
SMALL_RING_SIZES_QUICK = (64,)
SMALL_RING_SIZES = (64, 1024)
ROUNDS_QUICK = 9
ROUNDS_FULL = 15


def body_dtype_for(record_size: int) -> np.dtype:
    """The body (fields after the event header) of a `record_size`-byte record."""
    return np.dtype([("payload", "V%d" % (record_size - EVENT_HEADER))])


def _ring_view(path: str, capacity: int, nbytes: int):
    """A read-only uint8 view of the first `nbytes` of a ring's data area."""
    from pykring._lib import lib

    fd = os.open(path, os.O_RDONLY)
    try:
        mm = mmap.mmap(fd, capacity, mmap.MAP_SHARED, mmap.PROT_READ, offset=lib.KRING_DATA_OFFSET)
    finally:
        os.close(fd)
    return mm, np.frombuffer(mm, dtype=np.uint8, count=nbytes)


def measure(record_size: int, rounds: int, capacity: int = RING_CAPACITY):
    """(drain_ns, memcpy_ns, memcpy_anon_ns, records, ring_bytes) for one record size."""
    import pykring

    sp = record_span(record_size)
    n = (capacity - sp) // sp          # fits however the free space wraps (padding < one span)
    nbytes = n * sp
    name = unique_ring_name("bench-drain%d" % record_size)
    ring = pykring.create(name, capacity, body_dtype_for(record_size))
    prod = mm = ring_bytes = None
    try:
        prod = pykring.Producer(name, block=False)
        body = np.zeros(n, dtype=pykring.body_dtype(ring.dtype))
        raw = body.view(np.uint8)
        raw[:] = (np.arange(raw.size, dtype=np.uint32) * 131 + 7).astype(np.uint8)
        out = np.empty(n, dtype=ring.dtype)
        out.view(np.uint8).fill(1)                 # fault the pages in before timing
        dst = np.ones(nbytes, dtype=np.uint8)
        anon_src = np.ones(nbytes, dtype=np.uint8)
        anon_dst = np.ones(nbytes, dtype=np.uint8)
        mm, ring_bytes = _ring_view(ring.path, capacity, nbytes)

        rows = raw.reshape(n, -1)
        out_body = out.view(np.uint8).reshape(n, ring.dtype.itemsize)[:, EVENT_HEADER:]
        written = [0]                              # records written so far = seq of the next fill's first

        def fill(r: int) -> int:
            rows[:, 0] = r & 0xFF                  # this round's mark in every body: a stale out fails the check
            first = written[0]
            if prod.write(body) != n:
                raise RuntimeError("the ring did not take %d records (dropped %d)" % (n, prod.dropped))
            written[0] += n
            return first

        def check(got: int, first: int) -> None:
            # Content, not only the count: what the drain delivered is what
            # the producer wrote, record by record (outside the timed window).
            if got != n:
                raise RuntimeError("drained %d of %d records" % (got, n))
            seq = out["seq"]
            if seq[0] != first or not (np.diff(seq) == 1).all():
                raise RuntimeError("drained seqs are not %d.. consecutive (first %d)" % (first, seq[0]))
            if not np.array_equal(out_body, rows):
                bad = int(np.flatnonzero((out_body != rows).any(axis=1))[0])
                raise RuntimeError("drained record %d (seq %d) differs from what the producer wrote"
                                   % (bad, seq[bad]))

        def drain(r: int) -> int:
            first = fill(r)
            t0 = time.perf_counter_ns()
            got = len(ring.read(out=out))
            t1 = time.perf_counter_ns()
            check(got, first)
            return t1 - t0

        def copy(r: int) -> int:
            first = fill(r)
            t0 = time.perf_counter_ns()
            np.copyto(dst, ring_bytes)
            t1 = time.perf_counter_ns()
            check(len(ring.read(out=out)), first)  # empty the ring for the next fill
            return t1 - t0

        def copy_anon() -> int:
            t0 = time.perf_counter_ns()
            np.copyto(anon_dst, anon_src)
            return time.perf_counter_ns() - t0

        d_ns, m_ns, a_ns = [], [], []
        for r in range(rounds + 1):                # round 0: warm-up, discarded
            if r % 2:
                m, d = copy(r), drain(r)
            else:
                d, m = drain(r), copy(r)
            a = copy_anon()
            if r:
                d_ns.append(d)
                m_ns.append(m)
                a_ns.append(a)
        st = ring.stats
        if st.dropped or st.lost:
            raise RuntimeError("records lost in the drain benchmark: %s" % (st,))
        return d_ns, m_ns, a_ns, n, nbytes
    finally:
        del ring_bytes
        if mm is not None:
            mm.close()
        if prod is not None:
            prod.close()
        ring.close()
        remove_ring(name)


def run(report: Report, quick: bool, sizes: Optional[Iterable[int]] = None,
        rounds: Optional[int] = None) -> None:
    sizes = tuple(sizes or (SIZES_QUICK if quick else SIZES_FULL))
    rounds = rounds or (ROUNDS_QUICK if quick else ROUNDS_FULL)
    report.meta["drain"] = {"ring_bytes": RING_CAPACITY, "rounds": rounds, "sizes": list(sizes),
                            "small_ring_bytes": SMALL_RING_CAPACITY,
                            "small_ring_sizes": list(SMALL_RING_SIZES_QUICK if quick else SMALL_RING_SIZES),
                            "bytes": "GB/s and ratios count ring bytes consumed (records x span)"}
    for size in sizes:
        log("drain: %d-byte records, %d rounds, %d MiB ring" % (size, rounds, RING_CAPACITY // MiB))
        d_ns, m_ns, a_ns, n, nbytes = measure(size, rounds)
        ratios = [m / d for d, m in zip(d_ns, m_ns)]       # same ring bytes: bw ratio = time ratio inverted
        report.add("drain_vs_memcpy_%d" % size, None, "x", samples=ratios,
                   note="memcpy time / drain time of the same %d ring bytes (%d records of %d B); the drain "
                        "writes %d of them into numpy, memcpy all" % (nbytes, n, size, n * size))
        report.add("drain_gbps_%d" % size, None, "GB/s", samples=[nbytes / d for d in d_ns],
                   note="ring bytes consumed per second")
        report.add("memcpy_gbps_%d" % size, None, "GB/s", samples=[nbytes / m for m in m_ns],
                   note="np.copyto from the ring's data area")
        report.add("memcpy_anon_gbps_%d" % size, None, "GB/s", samples=[nbytes / a for a in a_ns],
                   note="np.copyto between anonymous arrays (reference)")
        report.add("drain_records_per_s_%d" % size, None, "rec/s", samples=[n * 1e9 / d for d in d_ns])
    small = SMALL_RING_SIZES_QUICK if quick else SMALL_RING_SIZES
    for size in small:
        log("drain: %d-byte records, %d rounds, 1 MiB ring (cache-resident)" % (size, rounds))
        d_ns, m_ns, _, n, nbytes = measure(size, rounds, SMALL_RING_CAPACITY)
        report.add("drain_vs_memcpy_1mib_%d" % size, None, "x", samples=[m / d for d, m in zip(d_ns, m_ns)],
                   note="1 MiB ring, %d records/round, cache-resident: memcpy time / drain time of the same "
                        "ring bytes" % n)
        report.add("drain_gbps_1mib_%d" % size, None, "GB/s", samples=[nbytes / d for d in d_ns])
        report.add("memcpy_gbps_1mib_%d" % size, None, "GB/s", samples=[nbytes / m for m in m_ns])
    report.add("drain_checked", True, note="every drain: count, seqs consecutive, every body as the producer "
                                           "wrote it that round")
