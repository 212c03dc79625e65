"""arrow: what Arrow conversion and recordings cost on top of the plain drain.

A ring is filled by an in-process Producer (outside the timed window), then
drained with ``Ring.read(max_records=BATCH)`` until empty, four ways, each
timed from the first read of a fill to its last (a recording's creation and
close are inside the window too):

- ``drain``: the plain drain into numpy (the reference);
- ``to_arrow``: the same, plus ``pykring.to_arrow`` on every batch;
- ``parquet``: the same, plus ``pykring.recording.Recorder(ring, FILE.parquet)``
  writing every batch and closing at the end (its journal becomes the
  zstd Parquet file then, fsynced);
- ``arrows``: the same with ``FILE.arrows`` (zstd Arrow IPC stream).

Two record types:

- *user*: a ring of one realistic user type, 100-byte records: event header
  (``seq``, ``ts``), ``pid``/``tid``/``uid`` (u4), ``bytes`` (i8), ``started``
  (datetime64[ns]), ``comm`` (S32, 4 to 28 bytes used), ``load`` (4 x f4);
- *kernel*: Linux ``process_start`` records (the dtype of
  ``pykring.events.linux_event_types(4096)``, 16.5 KB wide), rows synthesized
  in a user ring: packed strings as the eBPF program writes them (path, argv
  of 2 to 5 arguments, cwd, parent path; 100 to 300 bytes in all), so
  ``to_arrow`` and the recordings decode them into ``path``/``argv``/``cwd``/
  ``parent_path``. A user ring carries each row at its full width (the BPF
  ring carries only the used bytes), so the drain itself is slower here
  than from the kernel, and the ratios flatter the extra work a little.

The records cycle through a pool of 4096 distinct bodies, each made its
own by its seq (a hashed byte count, growing pids and start times). The
header's ``ts`` is the Producer's, one per write of a whole fill, so the
files compress somewhat better than a live stream's would.

Each round runs the four variants on the same number of records, in an
order that rotates from round to round; the first round warms up and is
discarded. Ratios are per round (the variant's records/s over the drain's
in that round), then the median. After the last round each recording is
read back (``pykring.open_recording``, outside any timing) and checked:
every record, field by field, is what the producer wrote for its seq.

Keys (``_kernel`` for kernel records): ``arrow_drain_records_per_s``,
``to_arrow_records_per_s``, ``parquet_records_per_s``,
``arrows_records_per_s`` (records/s, median over rounds, with _min/_max),
``to_arrow_vs_drain``, ``parquet_vs_drain``, ``arrows_vs_drain`` (the
variant's rate / the drain's, same round: 0.5 means half the drain's
records/s), ``parquet_bytes_per_record``, ``arrows_bytes_per_record`` (the
file's size over the records in it), ``arrow_checked``.
"""
import os
import shutil
import tempfile
import time
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np

from pykring._common import remove_ring, unique_ring_name
from pykring.schema import record_span

from ._common import MiB, Report, log

RING_CAPACITY = 32 * MiB
VARIANTS = ("drain", "to_arrow", "parquet", "arrows")
#: The realistic user type (the event header's seq and ts come first).
USER_BODY = np.dtype([("pid", "<u4"), ("tid", "<u4"), ("uid", "<u4"), ("bytes", "<i8"),
                      ("started", "<M8[ns]"), ("comm", "S32"), ("load", "<f4", (4,))])
#: Distinct rows the synthetic streams cycle through (record seq -> row seq % POOL).
POOL = 4096
KERNEL_MAX_ARGS = 4096
#: (records per round, records per read) by record kind; full and --quick.
PLAN = {
    "user": {"records": 2_000_000, "records_quick": 600_000, "batch": 4096},
    "kernel": {"records": 20_000, "records_quick": 6_000, "batch": 256},
}
ROUNDS_QUICK = 2
ROUNDS_FULL = 5


def user_pool(n: int = POOL) -> np.ndarray:
    """`n` distinct bodies of the user type."""
    rng = np.random.default_rng(1)
    body = np.zeros(n, USER_BODY)
    body["pid"] = rng.integers(1, 1 << 22, n)
    body["tid"] = body["pid"] + rng.integers(0, 64, n)
    body["uid"] = rng.choice([0, 1000, 1001, 65534], n)
    body["bytes"] = rng.integers(-1 << 40, 1 << 40, n)
    body["started"] = (np.datetime64("2026-12-01T12:00:00", "ns")
                       + rng.integers(0, 3600 * 10**9, n).astype("timedelta64[ns]"))
    words = [b"python3", b"bash", b"systemd-journald", b"kworker/u8:3-events_unbound", b"sshd", b"cc1"]
    body["comm"] = [words[i % len(words)] + b"-%d" % i for i in range(n)]
    body["load"] = rng.random((n, 4), dtype=np.float32)
    return body


def kernel_pool(n: int = POOL) -> Tuple[np.dtype, np.ndarray]:
    """The process_start record dtype of a Linux kernel ring, and `n`
    distinct bodies packed as the eBPF program writes them."""
    import pykring
    from pykring import events

    full = dict((name, dt) for _, name, dt in events.linux_event_types(KERNEL_MAX_ARGS))["process_start"]
    body_dt = pykring.body_dtype(full)
    body = np.zeros(n, body_dt)
    raw = body.view(np.uint8).reshape(n, body_dt.itemsize)
    off = body_dt.fields["path"][1]
    rng = np.random.default_rng(2)
    bins = [b"/usr/bin/python3.11", b"/usr/lib/git-core/git", b"/bin/sh", b"/usr/bin/gcc-14",
            b"/usr/local/bin/node", b"/usr/sbin/cron"]
    args = [b"-c", b"--quiet", b"status", b"/home/user/project/src/main.c", b"-O2", b"--porcelain=v2",
            b"run", b"--jobs=8", b"/etc/cron.d/backup", b"-Wall"]
    for i in range(n):
        path = bins[i % len(bins)]
        argv = [path.rsplit(b"/", 1)[1]] + [args[j] for j in rng.integers(0, len(args), 1 + i % 4)]
        cmd = b"\0".join(argv)
        cwd = b"/home/user/project-%d" % (i % 50)
        parent = bins[(i + 1) % len(bins)]
        tail = path + b"\0" + cmd + b"\0" + cwd + b"\0" + parent
        raw[i, off:off + len(tail)] = np.frombuffer(tail, np.uint8)
        body[i]["path_len"], body[i]["cmdline_len"] = len(path), len(cmd)
        body[i]["cwd_len"], body[i]["parent_path_len"] = len(cwd), len(parent)
    body["detail"] = events.D_PACKED | events.D_EXEC
    body["pid"] = rng.integers(1, 1 << 22, n)
    body["ppid"] = body["pid"] // 2
    body["uid"] = rng.choice([0, 1000], n)
    body["comm"] = [bins[i % len(bins)].rsplit(b"/", 1)[1][:15] for i in range(n)]
    body["cgroup_id"] = rng.integers(1, 1 << 40, n)
    body["start_time"] = rng.integers(1, 1 << 50, n)
    body["tty"] = b"pts/3"
    return body_dt, body


def vary_user(body: np.ndarray, seq: np.ndarray) -> None:
    """What makes each user record its own: a byte count hashed from its seq,
    a start time that grows with it."""
    body["bytes"] = (seq * 0x9E3779B1) % (1 << 40) - (1 << 39)
    body["started"] = np.datetime64("2026-12-01T12:00:00", "ns") + (seq * 1000).astype("timedelta64[ns]")


def vary_kernel(body: np.ndarray, seq: np.ndarray) -> None:
    """Likewise for process_start: pids and start times that grow."""
    body["pid"] = 1000 + seq % 4_000_000
    body["start_time"] = seq * 997


class Stream:
    """A ring of one type filled from a pool of bodies: the record of seq s
    carries pool[s % len(pool)], made its own by vary(body, seq)."""

    def __init__(self, type_name: str, body_dt: np.dtype, pool: np.ndarray,
                 vary: Callable[[np.ndarray, np.ndarray], None]):
        import pykring

        self.name = unique_ring_name("bench-arrow")
        self.ring = pykring.create(self.name, RING_CAPACITY, {type_name: body_dt})
        self.prod = pykring.Producer(self.name)
        self.pool = pool
        self.vary = vary
        self.seq = 0
        span = record_span(self.ring.dtypes[type_name].itemsize)
        self.per_fill = (RING_CAPACITY - span) // span      # fits however the free space wraps

    def expected(self, seq: np.ndarray) -> np.ndarray:
        """The bodies of the records of these seqs."""
        body = self.pool[seq % len(self.pool)]
        self.vary(body, seq)
        return body

    def fill(self, n: int) -> None:
        body = self.expected(self.seq + np.arange(n, dtype=np.int64))
        if self.prod.write(body) != n:
            raise RuntimeError("the ring did not take %d records (dropped %d)" % (n, self.prod.dropped))
        self.seq += n

    def close(self) -> None:
        try:
            self.prod.close()
        finally:
            self.ring.close()
            remove_ring(self.name)


def timed_pass(stream: Stream, records: int, batch: int, variant: str, path: Optional[str]) -> int:
    """Drain `records` records (filled a ring at a time, outside the clock)
    the `variant` way; the ns inside the clock."""
    import pykring
    from pykring.recording import Recorder

    ring = stream.ring
    work: Optional[Callable[[np.ndarray], object]] = None
    rec = None
    ns = got = 0
    left = records
    while left:
        n = min(left, stream.per_fill)
        stream.fill(n)
        left -= n
        t0 = time.perf_counter_ns()
        if work is None:
            if variant == "to_arrow":
                work = pykring.to_arrow
            elif variant in ("parquet", "arrows"):
                rec = Recorder(ring, path)
                work = rec.write
            else:
                work = len
        while True:
            rows = ring.read(batch)
            if not len(rows):
                break
            got += len(rows)
            work(rows)
        ns += time.perf_counter_ns() - t0
    if rec is not None:
        t0 = time.perf_counter_ns()
        rec.close()
        ns += time.perf_counter_ns() - t0
    if got != records:
        raise RuntimeError("%s: drained %d of %d records" % (variant, got, records))
    return ns


def check_recording(path: str, stream: Stream, first_seq: int, records: int) -> None:
    """Every record of the recording at `path`, field by field, is what the
    producer wrote for its seq; seqs first_seq .. first_seq + records - 1."""
    from pykring.recording import open_recording

    expect = first_seq
    for rows in open_recording(path):
        seq = rows["seq"].astype(np.int64)
        if not np.array_equal(seq, np.arange(expect, expect + len(rows))):
            raise RuntimeError("%s: seqs from %d are not consecutive" % (path, expect))
        want = stream.expected(seq)
        for f in want.dtype.names:
            if not np.array_equal(rows[f], want[f]):
                raise RuntimeError("%s: field %r differs from what the producer wrote" % (path, f))
        expect += len(rows)
    if expect != first_seq + records:
        raise RuntimeError("%s: %d records, not %d" % (path, expect - first_seq, records))


def measure(kind: str, records: int, batch: int, rounds: int, tmp: str) -> Dict[str, List[float]]:
    """Per variant: records/s of every timed round; and the file sizes."""
    if kind == "user":
        stream = Stream("sample", USER_BODY, user_pool(), vary_user)
    else:
        body_dt, pool = kernel_pool()
        stream = Stream("process_start", body_dt, pool, vary_kernel)
    rates: Dict[str, List[float]] = {v: [] for v in VARIANTS}
    sizes: Dict[str, float] = {}
    try:
        for r in range(rounds + 1):                 # round 0: warm-up, discarded
            order = VARIANTS[r % len(VARIANTS):] + VARIANTS[:r % len(VARIANTS)]
            for variant in order:
                path = os.path.join(tmp, "%s-%d.%s" % (kind, r, variant)) if variant in ("parquet", "arrows") else None
                first = stream.seq
                ns = timed_pass(stream, records, batch, variant, path)
                if r:
                    rates[variant].append(records * 1e9 / ns)
                if path is not None:
                    if r == rounds:
                        sizes[variant] = os.path.getsize(path) / records
                        check_recording(path, stream, first, records)
                    os.unlink(path)
        st = stream.ring.stats
        if st.dropped or st.lost:
            raise RuntimeError("records lost in the arrow benchmark: %s" % (st,))
    finally:
        stream.close()
    out = dict(rates)
    out.update({v + "_bytes_per_record": [s] for v, s in sizes.items()})
    return out


def run(report: Report, quick: bool, rounds: Optional[int] = None) -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise RuntimeError("the arrow benchmark needs pyarrow: pip install 'pykring[arrow]'") from None
    rounds = rounds or (ROUNDS_QUICK if quick else ROUNDS_FULL)
    meta: Dict[str, object] = {"ring_bytes": RING_CAPACITY, "rounds": rounds, "pool": POOL,
                               "user_record_bytes": 24 + USER_BODY.itemsize}
    tmp = tempfile.mkdtemp(prefix="pykring-bench-arrow-")
    try:
        for kind, plan in PLAN.items():
            records = plan["records_quick" if quick else "records"]
            batch = plan["batch"]
            meta[kind] = {"records_per_round": records, "records_per_read": batch}
            log("arrow: %s records, %d per round in reads of %d, %d rounds (+1 warm-up), files in %s"
                % (kind, records, batch, rounds, tmp))
            got = measure(kind, records, batch, rounds, tmp)
            sfx = "" if kind == "user" else "_kernel"
            what = ("%d-byte user records" % (24 + USER_BODY.itemsize) if kind == "user"
                    else "kernel process_start records (16.5 KB rows)")
            report.add("arrow_drain_records_per_s" + sfx, None, "rec/s", samples=got["drain"],
                       note="Ring.read(%d) until empty, %s" % (batch, what))
            for v, label in (("to_arrow", "+ pykring.to_arrow per batch"),
                             ("parquet", "+ Recorder(.parquet) write per batch, close"),
                             ("arrows", "+ Recorder(.arrows) write per batch, close")):
                report.add("%s_records_per_s%s" % (v, sfx), None, "rec/s", samples=got[v], note=label)
            for v in ("to_arrow", "parquet", "arrows"):
                report.add("%s_vs_drain%s" % (v, sfx), None, "x",
                           samples=[a / d for a, d in zip(got[v], got["drain"])],
                           note="its records/s / the drain's, same round")
            for v in ("parquet", "arrows"):
                report.add("%s_bytes_per_record%s" % (v, sfx), got[v + "_bytes_per_record"][0], "B",
                           note="file size / records (%d records, zstd)" % records)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    report.meta["arrow"] = meta
    report.add("arrow_checked", True, note="every recording read back: each record's fields as the producer "
                                           "wrote them for its seq, seqs consecutive")
