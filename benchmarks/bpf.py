"""bpf: the Linux kernel source. pykring's Python consumer of a BPF ring buffer
against libbpf's own C consumer on the same synthetic BPF producer (a stream
and a drain of a full ring), the fork rate with and without pykring's programs
attached, and loss in a spawn storm.

Synthetic producer (benchmarks/bpf/synth.bpf.c, compiled here with clang
against a vmlinux.h that bpftool dumps from this kernel's BTF): a raw_tp
program that, per BPF_PROG_TEST_RUN, writes RUN_RECORDS (4096) records of 64
bytes (pykring's 24-byte event header: seq from a counter, ts_ns, type 1;
then 40 body bytes) into a BPF_MAP_TYPE_RINGBUF with bpf_loop() and
bpf_ringbuf_reserve/submit: BPF_RB_NO_WAKEUP except a forced wakeup every
RUN_RECORDS records (288 KiB of ring), or the kernel's adaptive wakeups
(``*_adaptive``, full run only). A failed reserve is counted and takes a
sequence number, so a consumer's gaps must equal the drops. The harness loads
it (libbpf through pykring._libbpf: cffi, ABI mode) with a 16 MiB ring
(pykring.kernel()'s default size) and resets its counters before each
measurement; consumers inherit the map and program fds.

Two consumers, each the ring's only consumer, alternating round by round
(which goes first alternates too; stream round 0 is a discarded warm-up):

- libbpf: benchmarks/bpf/libbpf_consumer.c (cc -O2, -lbpf): ring_buffer__new
  and ring_buffer__poll / ring_buffer__consume, a callback that checks the
  length, memcpy's the record into the next row of a 4 MiB buffer and checks
  seq continuity on the copy.
- pykring: ``pykring.kernel_linux.bpf_ring(map_fd, capacity, types)`` in this Python
  process, ``Ring.read(out=<4 MiB preallocated array>, timeout=...)`` in a
  loop; count, the last seq of every batch, ``stats.lost`` against the drops.

Two measurements of them:

- stream (the headline, ``pykring_vs_libbpf``): a trigger process
  (benchmarks/bpf/synth_trigger.c) runs the producer back to back pinned to
  one CPU while the consumer, pinned to another, drains concurrently (without
  pinning the scheduler tends to run both on one CPU, in turns: see
  RESULTS.md). records/s = records / (the consumer's clock after the batch
  with the last record - the producer's stamp in the first record). Also each
  consumer's CPU ns per record over the same window, and the producer's wall
  ns per record while that consumer drains (a consumer slows the producer
  through the cache lines they share: consumer_pos, record headers). The
  stream is producer-bound: both consumers keep up (no drops), so records/s
  is the producer's rate and the ratio says how much less one consumer slows
  the producer than the other, not which drains faster; that is the drain
  measurement's question.
- drain (``pykring_vs_libbpf_drain``): the consumer fills an empty ring itself
  with BPF_PROG_TEST_RUN (16 MiB ring: 56 runs, 229,376 records, 16.5 MB;
  ``_1mib``: a 1 MiB ring, 12,288 records, in cache), then times one
  ``Ring.read(out=)`` / one ``ring_buffer__consume()`` of it all, as
  benchmarks/drain.py does for pykring's own rings: the consumers' own cost
  with no producer running. Per session a warm-up fill + drain (page faults
  of the fresh mapping), then DRAIN_REPEATS timed ones, median.

Fork overhead (``fork_overhead`` = 1 - with / without): benchmarks/bpf/
forkstorm.c does fork() + _exit(0) + waitpid() N times, one at a time
(N = 20,000 quick, 100,000 full), in a chain A B A B A B A: A without any
program, B with ``pykring.kernel(events=("process", "image"))`` open and a
thread of this process draining it with ``read_batch(timeout=0.05)`` (woken
by the programs). Each B is compared with the mean of the A on either side;
median over the Bs. The rate depends on how much CPU the rest of the
machine leaves (the drainer needs some too), so CPU per fork is reported
beside it, which other load disturbs less: the storm process and its
children (getrusage, the programs' work in their context included) and the
drainer thread (``fork_cpu_overhead`` = (storm + drainer) CPU per fork with /
the storm's without - 1). Also the records the drainer received, loss
(sequence gaps + the programs' drop count), the drainer thread's CPU time per
record and records per read. The full run adds C phases (A B C A B C ...):
the same with a drainer that calls ``read_batch()`` every 10 ms instead of
waiting for wakeups (``*_polling``), which shows what batched wakeups would
cost. Every run adds F phases (A B F A B F ...): B with the programs filtered
in the kernel to this process (``pids=``), so that each of the storm's forks
is outside the filter and costs the programs' check only
(``fork_cpu_overhead_filtered_out`` and the other keys with
``_filtered_out``).

Spawn storm (``spawn_*``): forkstorm.c starts /bin/true (vfork + execv) from
SPAWN_WORKERS processes paced together at SPAWN_TARGET (10,000) per second,
with pykring.kernel() (the default 16 MiB ring) and a blocking drainer as
above. Reported: the start rate reached (this machine may not reach the
target), loss, and a check that every child has its fork and exec
process_start and its process_exit record; the ring bytes one start takes
and how long a stalled consumer could fall behind at 10,000 starts/s before
the default ring drops. Then ``kernel_drain_*``: starts as fast as they go
with nobody draining, then how fast ``read_batch()`` empties that backlog of
real kernel records, in records/s and in process starts/s.

Latency (``event_latency_*``): /bin/true started LATENCY_STARTS times, 2 to
20 ms apart (uniform), with pykring.kernel() at its default wake interval and
a blocking drainer; per record, time.time_ns() after the read_batch() that
returned it minus the record's ts_ns (the same clock, PROTOCOL.md 5.7). The
spawn storm reports the same under load (``spawn_event_latency_p99_ms``).

The wake interval's trade-off: ``python -m benchmarks.bpf --sweep 0,0.001,0.005,0.02 [--plot PNG]
[--quick] [--json]`` runs the fork, spawn and latency phases once per
interval (keys suffixed ``_wi<ms>``); ``--wake-interval S`` runs the whole
benchmark at another interval.

Needs Linux, root, clang, bpftool, cc, libbpf-dev and libbpf1, kernel BTF,
and pykring's eBPF object; without them the ``all`` command skips this
benchmark (with a note) and the ``bpf`` command fails saying what is missing.

Keys: ``pykring_vs_libbpf`` (median over rounds of pykring records/s /
libbpf records/s in the same round, with _min/_max),
``pykring_records_per_s``, ``libbpf_records_per_s``,
``pykring_cpu_ns_per_record``, ``libbpf_cpu_ns_per_record``,
``pykring_producer_ns_per_record``, ``libbpf_producer_ns_per_record``,
``synth_dropped``, ``synth_lossless``; ``pykring_vs_libbpf_drain``,
``pykring_drain_records_per_s``, ``libbpf_drain_records_per_s`` (and
``_1mib``); ``fork_overhead``, ``forks_per_s_without``, ``forks_per_s_with``,
``fork_cpu_overhead``, ``fork_cpu_overhead_filtered_out``, ``fork_cpu_us_without``, ``fork_cpu_us_with``,
``fork_drainer_cpu_us_per_fork``, ``fork_storm_records``, ``fork_storm_lost``,
``fork_storm_drainer_us_per_record``, ``fork_storm_records_per_read``;
``spawn_target_per_s``, ``spawn_per_s``, ``spawn_lost``, ``spawn_complete``,
``spawn_ring_bytes_per_start``, ``spawn_ring_stall_s_at_10k``,
``spawn_drainer_us_per_record``, ``spawn_records_per_read``,
``spawn_event_latency_p99_ms``, ``kernel_drain_records_per_s``,
``kernel_drain_starts_per_s``; ``event_latency_p99_ms``,
``event_latency_p50_ms``, ``event_records_per_read``,
``event_drainer_us_per_record``; full run also the ``*_adaptive`` stream keys
and the ``*_polling`` fork keys.
"""
import hashlib
import os
import platform
import resource
import shutil
import struct
import subprocess
import threading
import time
from collections import Counter
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from numpy.lib.recfunctions import repack_fields

from ._common import BUILD_DIR, HERE, MiB, ROOT, Report, log

SRC = os.path.join(HERE, "bpf")

RING_CAPACITY = 16 * MiB            #: pykring.kernel()'s default size too
RECORD_SIZE = 64                    #: event header (24) + body (40): synth.bpf.c SYNTH_BODY_WORDS = 5
RUN_RECORDS = 4096                  #: records per BPF_PROG_TEST_RUN; also the forced-wakeup period
OUT_ROWS = 4 * MiB // RECORD_SIZE   #: both consumers' reused row buffer in the stream
STREAM_RUNS = {True: 512, False: 2048}        #: 2 Mi / 8 Mi records per stream
STREAM_ROUNDS = {True: 5, False: 9}
ADAPTIVE_RUNS = 256                 #: full run only: 1 Mi records with the kernel's own wakeups
ADAPTIVE_ROUNDS = 5
#: ring sizes of the drain: 16 MiB (as the stream; memory-bound) and 1 MiB (in cache)
DRAIN_CAPACITIES = (RING_CAPACITY, 1 * MiB)
DRAIN_ROUNDS = {True: 5, False: 15}
DRAIN_REPEATS = 5                   #: timed fill + drain per consumer session (median)
IDLE_S = 1.0                        #: a consumer gives up this long after the last record
FORKS = {True: 20000, False: 100000}
FORK_ROUNDS = 3                     #: B phases in the chain A B A B A B A
POLL_S = 0.01                       #: full run: also a drainer that polls every 10 ms (C phases)
SPAWN_TARGET = 10000                #: process starts per second asked for
SPAWNS = {True: 10000, False: 50000}
SPAWN_BACKLOG = {True: 2000, False: 4000}     #: starts whose records pile up undrained (< 16 MiB)
SPAWN_WORKERS = 2
SPAWN_PATH = "/bin/true"

_CONFIG = struct.Struct("<II")      # synth.bpf.c struct synth_config
_COUNTERS = struct.Struct("<QQQ")   # synth.bpf.c struct synth_counters


# -- preconditions and the build ------------------------------------------------
def missing() -> List[str]:
    """What this machine lacks for the benchmark (empty: it can run)."""
    out = []
    if not platform.system() == "Linux":
        return ["Linux"]
    if os.geteuid() != 0:
        out.append("root (loading BPF programs)")
    if not shutil.which("cc"):
        out.append("cc")
    try:
        from pykring import _build_bpf
        from pykring._bpf_object import OBJECT_PATH
    except ImportError as exc:
        return out + ["pykring (%s)" % exc]
    out += _build_bpf.missing()
    if not os.path.exists("/usr/include/bpf/libbpf.h") and not any(m.startswith("libbpf-dev") for m in out):
        out.append("libbpf-dev")
    if not os.path.exists(os.environ.get("KRING_BPF_OBJECT") or OBJECT_PATH):
        out.append("pykring's eBPF object (reinstall pykring with clang and bpftool)")
    return out


def _run(cmd: List[str], **kw) -> None:
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, **kw)
    if res.returncode != 0:
        raise RuntimeError("%s failed (exit %d): %s" % (cmd[0], res.returncode, res.stderr.strip()[-2000:]))
    if res.stderr.strip():
        log(res.stderr.rstrip())


def build() -> Dict[str, str]:
    """Compile benchmarks/bpf/* into benchmarks/.build/bpf-<hash>/ (once per
    content of the sources, the compilers and the kernel's BTF) and return
    the paths of synth.bpf.o, libbpf_consumer, synth_trigger and forkstorm."""
    from pykring import _build_bpf

    clang, cc = _build_bpf.tool("clang"), shutil.which("cc") or "cc"
    c_flags = ["-O2", "-Wall", "-Wextra"]
    btf = _build_bpf.BTF
    h = hashlib.sha256(repr((clang, cc, _build_bpf.flags(), c_flags, platform.release(),
                             os.path.getsize(btf) if os.path.exists(btf) else 0)).encode())
    names = sorted(n for n in os.listdir(SRC) if n.endswith(".c"))
    for n in names:
        with open(os.path.join(SRC, n), "rb") as f:
            h.update(n.encode() + b"\0" + f.read())
    out = os.path.join(BUILD_DIR, "bpf-%s" % h.hexdigest()[:16])
    paths = {"synth": os.path.join(out, "synth.bpf.o"), "libbpf_consumer": os.path.join(out, "libbpf_consumer"),
             "trigger": os.path.join(out, "synth_trigger"), "forkstorm": os.path.join(out, "forkstorm")}
    if all(os.path.exists(p) for p in paths.values()):
        return paths
    tmp = out + ".tmp%d" % os.getpid()
    os.makedirs(tmp, exist_ok=True)
    log("bpf: building into %s" % os.path.relpath(out, ROOT))
    _build_bpf.compile_object(os.path.join(SRC, "synth.bpf.c"), os.path.join(tmp, "synth.bpf.o"),
                              _build_bpf.dump_vmlinux_h(tmp))
    for name, libs in (("libbpf_consumer", ["-lbpf"]), ("synth_trigger", ["-lbpf"]), ("forkstorm", [])):
        _run([cc] + c_flags + [os.path.join(SRC, name + ".c"), "-o", os.path.join(tmp, name)] + libs)
    if os.path.exists(out):
        shutil.rmtree(out)
    os.replace(tmp, out)
    return paths


# -- the synthetic producer -----------------------------------------------------
def _lib():
    """(ffi, libbpf): pykring's declarations and its one loaded libbpf."""
    from pykring import _libbpf

    ffi, bpf, _ = _libbpf.load()
    return ffi, bpf


class Synth:
    """synth.bpf.o loaded: its program fd, ring map fd, counters."""

    def __init__(self, path: str, wakeup_every: int = RUN_RECORDS, capacity: int = RING_CAPACITY,
                 run_records: int = RUN_RECORDS):
        from pykring import _libbpf

        ffi, lib = self._ffi, self._lib = _lib()
        self.capacity = capacity
        self.run_records = run_records
        with _libbpf.lock:                  # libbpf's messages, for the errors below
            _libbpf.clear_log()
            self._obj = lib.bpf_object__open_file(path.encode(), ffi.NULL)
            if self._obj == ffi.NULL:
                raise RuntimeError("opening %s failed (errno %d)%s" % (path, ffi.errno, _libbpf.log_tail()))
            try:
                ring = self._map("synth_ring")
                cfg = _CONFIG.pack(run_records, wakeup_every)
                if (lib.bpf_map__set_max_entries(ring, capacity) or
                        lib.bpf_map__set_initial_value(self._map(".rodata"), cfg, len(cfg))):
                    raise RuntimeError("configuring %s failed%s" % (path, _libbpf.log_tail()))
                rc = lib.bpf_object__load(self._obj)
                if rc:
                    raise RuntimeError("loading %s failed: %s%s" % (path, os.strerror(-rc), _libbpf.log_tail()))
                prog = lib.bpf_object__find_program_by_name(self._obj, b"synth_run")
                self.prog_fd = lib.bpf_program__fd(prog)
                self.map_fd = lib.bpf_map__fd(ring)
                self._bss_fd = lib.bpf_map__fd(self._map(".bss"))
            except BaseException:
                self.close()
                raise
        self._opts = ffi.new("struct bpf_test_run_opts *")
        self._key = ffi.new("uint32_t *", 0)
        self._val = ffi.new("uint8_t[]", _COUNTERS.size)

    def _map(self, name: str):
        m = self._lib.bpf_object__find_map_by_name(self._obj, name.encode())
        if m == self._ffi.NULL:
            raise RuntimeError("synth.bpf.o has no map %s" % name)
        return m

    def reset(self) -> None:
        """Counters to 0 (seq restarts at 0); only while no run is in progress."""
        if self._lib.bpf_map_update_elem(self._bss_fd, self._key, _COUNTERS.pack(0, 0, 0), 0):
            raise RuntimeError("resetting the synthetic producer's counters failed")

    def counters(self) -> Tuple[int, int, int]:
        """(next_seq, written, dropped)."""
        if self._lib.bpf_map_lookup_elem(self._bss_fd, self._key, self._val):
            raise RuntimeError("reading the synthetic producer's counters failed")
        return _COUNTERS.unpack(bytes(self._ffi.buffer(self._val)))

    def run(self, runs: int) -> None:
        """`runs` BPF_PROG_TEST_RUNs in this thread (run_records records each)."""
        opts, lib = self._opts, self._lib
        opts.sz = self._ffi.sizeof("struct bpf_test_run_opts")
        for _ in range(runs):
            rc = lib.bpf_prog_test_run_opts(self.prog_fd, opts)
            if rc:
                raise RuntimeError("BPF_PROG_TEST_RUN failed: %s" % os.strerror(-rc))

    def close(self) -> None:
        if self._obj is not None and self._obj != self._ffi.NULL:
            self._lib.bpf_object__close(self._obj)
        self._obj = None


def _record_dtype() -> np.dtype:
    import pykring

    dt = pykring.record_dtype(np.dtype([("body", "<u8", ((RECORD_SIZE - 24) // 8,))]))
    assert dt.itemsize == RECORD_SIZE
    return dt


def _pykring_ring(synth: Synth):
    from pykring.kernel_linux import bpf_ring

    return bpf_ring(synth.map_fd, synth.capacity, [(1, "synth", _record_dtype())], name="bench:synth")


# -- CPU placement ------------------------------------------------------------------
_cpu_pair: List[Tuple[Optional[int], Optional[int]]] = []


def _cpus() -> Tuple[Optional[int], Optional[int]]:
    """(producer CPU, consumer CPU): two different CPUs of this process's
    affinity when first asked (before any pinning), or (None, None) on a
    one-CPU machine (no pinning)."""
    if not _cpu_pair:
        cpus = sorted(os.sched_getaffinity(0))
        _cpu_pair.append((cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None))
    return _cpu_pair[0]


class _Pinned:
    """Pin this process to `cpu` for a block (restores the old affinity)."""

    def __init__(self, cpu: Optional[int]):
        self.cpu = cpu
        self.old = os.sched_getaffinity(0)

    def __enter__(self) -> None:
        if self.cpu is not None:
            os.sched_setaffinity(0, {self.cpu})

    def __exit__(self, *exc) -> None:
        os.sched_setaffinity(0, self.old)


def _pin(pid: int, cpu: Optional[int]) -> None:
    if cpu is not None:
        os.sched_setaffinity(pid, {cpu})


# -- stream: producer and consumer concurrently ----------------------------------
def _start_trigger(exe: Dict[str, str], synth: Synth, runs: int) -> subprocess.Popen:
    proc = subprocess.Popen([exe["trigger"], str(synth.prog_fd), str(runs)], pass_fds=(synth.prog_fd,),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    _pin(proc.pid, _cpus()[0])
    line = _readline(proc)
    if line != "ready":
        proc.kill()
        raise RuntimeError("synth_trigger did not start (%r, exit %s)" % (line, proc.wait()))
    return proc


def _readline(proc: subprocess.Popen) -> str:
    assert proc.stdout is not None
    return proc.stdout.readline().strip()


def _go(proc: subprocess.Popen) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def _finish_trigger(proc: subprocess.Popen) -> int:
    """The trigger's wall time in ns, from the first run to the end of the last."""
    out, _ = proc.communicate(timeout=300)
    f = out.split()
    if proc.returncode != 0 or len(f) != 4 or f[0] != "done":
        raise RuntimeError("synth_trigger failed (exit %s, %r)" % (proc.returncode, out))
    return int(f[2])


def _kill(*procs: Optional[subprocess.Popen]) -> None:
    for p in procs:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()


def _stream_pykring(exe: Dict[str, str], synth: Synth, runs: int) -> dict:
    total = runs * RUN_RECORDS
    synth.reset()
    out = np.empty(OUT_ROWS, dtype=_record_dtype())
    out.view(np.uint8).fill(1)                          # fault the pages in before timing
    trig = None
    with _Pinned(_cpus()[1]), _pykring_ring(synth) as ring:
        try:
            trig = _start_trigger(exe, synth, runs)
            read = ring.read
            n = batches = bad = 0
            first_ts = last_ns = last_cpu = 0
            c0 = time.thread_time_ns()
            idle_since = time.monotonic_ns()
            _go(trig)
            while n < total:
                a = read(out=out, timeout=0.05)
                k = len(a)
                if k:
                    if not n:
                        first_ts = int(a["ts"][:1].view(np.int64)[0])
                    n += k
                    batches += 1
                    if int(a["seq"][k - 1]) < n - 1:    # seq only ever runs ahead (drops)
                        bad += 1
                    last_ns = idle_since = time.monotonic_ns()
                    last_cpu = time.thread_time_ns()
                elif trig.poll() is not None and time.monotonic_ns() - idle_since > IDLE_S * 1e9:
                    break
            prod_ns = _finish_trigger(trig)
        finally:
            _kill(trig)
        st = ring.stats
    _, written, dropped = synth.counters()
    return {"records": n, "lost": st.lost, "bad": bad, "written": written, "dropped": dropped,
            "ns": last_ns - first_ts, "cpu_ns": last_cpu - c0, "batches": batches, "total": total,
            "prod_ns": prod_ns}


def _stream_libbpf(exe: Dict[str, str], synth: Synth, runs: int) -> dict:
    total = runs * RUN_RECORDS
    synth.reset()
    cons = subprocess.Popen([exe["libbpf_consumer"], "stream", str(synth.map_fd), str(RECORD_SIZE), str(total),
                             str(OUT_ROWS), str(int(IDLE_S * 1000))], pass_fds=(synth.map_fd,),
                            stdout=subprocess.PIPE, text=True)
    trig = None
    try:
        _pin(cons.pid, _cpus()[1])
        line = _readline(cons)
        if line != "ready":
            raise RuntimeError("libbpf_consumer did not start (%r, exit %s)" % (line, cons.wait()))
        trig = _start_trigger(exe, synth, runs)
        _go(trig)
        prod_ns = _finish_trigger(trig)
        out, _ = cons.communicate(timeout=300)
    finally:
        _kill(trig, cons)
    f = out.split()
    if cons.returncode != 0 or len(f) != 8 or f[0] != "done":
        raise RuntimeError("libbpf_consumer failed (exit %s, %r)" % (cons.returncode, out))
    records, gaps, bad, first_ts, last_ns, cpu_ns, polls = (int(x) for x in f[1:])
    _, written, dropped = synth.counters()
    return {"records": records, "lost": gaps, "bad": bad, "written": written, "dropped": dropped,
            "ns": last_ns - first_ts, "cpu_ns": cpu_ns, "batches": polls, "total": total,
            "prod_ns": prod_ns}


def _check(report: Report, what: str, r: dict) -> None:
    """Consistent: the consumer got every record the producer wrote, and its
    sequence gaps are exactly the producer's drops."""
    if r["written"] + r["dropped"] != r["total"] or r["records"] != r["written"] or \
            r["lost"] != r["dropped"] or r["bad"]:
        report.fail("%s: inconsistent run: %s" % (what, r))


def _median(xs: Sequence[float]) -> float:
    s = sorted(xs)
    return s[len(s) // 2] if len(s) % 2 else (s[len(s) // 2 - 1] + s[len(s) // 2]) / 2


def _stream(report: Report, exe: Dict[str, str], wakeup_every: int, runs: int, rounds: int,
            suffix: str = "") -> None:
    synth = Synth(exe["synth"], wakeup_every)
    py: List[dict] = []
    c: List[dict] = []
    try:
        for r in range(rounds + 1):                # round 0: warm-up, discarded
            if r % 2:
                a, b = _stream_libbpf(exe, synth, runs), _stream_pykring(exe, synth, runs)
            else:
                b, a = _stream_pykring(exe, synth, runs), _stream_libbpf(exe, synth, runs)
            if r:
                c.append(a)
                py.append(b)
    finally:
        synth.close()
    dropped = 0
    for name, rs in (("pykring", py), ("libbpf", c)):
        for x in rs:
            _check(report, "bpf stream%s %s" % (suffix, name), x)
            dropped += x["dropped"]
    rate = {name: [x["records"] * 1e9 / x["ns"] for x in rs] for name, rs in (("pykring", py), ("libbpf", c))}
    how = ("BPF_RB_NO_WAKEUP, forced wakeup every %d records" % wakeup_every if wakeup_every
           else "the kernel's adaptive wakeups (flags 0)")
    prod, cons = _cpus()
    report.add("pykring_vs_libbpf" + suffix, None, "x",
               samples=[p / q for p, q in zip(rate["pykring"], rate["libbpf"])],
               note="records/s ratio, same round, of a producer-bound stream (how much each consumer slows "
                    "the producer); %d records of %d B per stream, %s; producer on CPU %s, "
                    "consumer on CPU %s" % (runs * RUN_RECORDS, RECORD_SIZE, how, prod, cons))
    for name, rs in (("pykring", py), ("libbpf", c)):
        report.add("%s_records_per_s%s" % (name, suffix), None, "rec/s", samples=rate[name],
                   note="Ring.read(out=, timeout=) in a loop: first record written -> last consumed"
                   if name == "pykring" else "libbpf_consumer.c: ring_buffer__poll, memcpy callback")
        report.add("%s_cpu_ns_per_record%s" % (name, suffix), None, "ns",
                   samples=[x["cpu_ns"] / max(1, x["records"]) for x in rs],
                   note="consumer CPU time / records; median %d records per %s" % (
                       _median([x["records"] / max(1, x["batches"]) for x in rs]),
                       "non-empty read" if name == "pykring" else "ring_buffer__poll"))
        report.add("%s_producer_ns_per_record%s" % (name, suffix), None, "ns",
                   samples=[x["prod_ns"] / max(1, x["total"]) for x in rs],
                   note="the producer's wall time per record while this consumer drains")
    report.add("synth_dropped" + suffix, dropped, "records",
               note="reserves that failed (ring full) over %d streams" % (2 * rounds))
    report.add("synth_lossless" + suffix, dropped == 0,
               note="every stream: 0 drops; count, seq gaps and the producer's counters checked")


# -- drain: a full ring, the consumer's own cost ---------------------------------
def _drain_runs(synth: Synth) -> int:
    """Runs that fit in the synthetic producer's empty ring."""
    from pykring.schema import record_span

    return synth.capacity // (synth.run_records * record_span(RECORD_SIZE))


def _drain_pykring(synth: Synth, repeats: int) -> List[float]:
    from pykring.schema import record_span

    runs = _drain_runs(synth)
    total = runs * synth.run_records
    synth.reset()
    out = np.empty(synth.capacity // record_span(RECORD_SIZE) + 1, dtype=_record_dtype())
    out.view(np.uint8).fill(1)
    ns: List[float] = []
    with _Pinned(_cpus()[1]), _pykring_ring(synth) as ring:
        for i in range(repeats + 1):               # the first: warm-up (faults of the fresh mapping)
            synth.run(runs)
            t0 = time.perf_counter_ns()
            got = len(ring.read(out=out))
            t1 = time.perf_counter_ns()
            if got != total:
                raise RuntimeError("pykring drained %d of %d records" % (got, total))
            if i:
                ns.append(t1 - t0)
        st = ring.stats
        last = int(out["seq"][got - 1])
    if st.lost or last != (repeats + 1) * total - 1 or synth.counters()[2]:
        raise RuntimeError("pykring drain: seq gaps %d, last seq %d, counters %s" % (
            st.lost, last, synth.counters()))
    return ns


def _drain_libbpf(exe: Dict[str, str], synth: Synth, repeats: int) -> List[float]:
    runs = _drain_runs(synth)
    total = runs * synth.run_records
    synth.reset()
    proc = subprocess.Popen([exe["libbpf_consumer"], "drain", str(synth.map_fd), str(synth.prog_fd),
                             str(RECORD_SIZE), str(runs), str(repeats)], pass_fds=(synth.map_fd, synth.prog_fd),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _pin(proc.pid, _cpus()[1])
        out, err = proc.communicate(timeout=300)
    finally:
        _kill(proc)
    lines = out.split("\n")
    done = [ln.split() for ln in lines if ln.startswith("done")]
    rounds = [ln.split() for ln in lines if ln.startswith("round")]
    if proc.returncode != 0 or not done or len(rounds) != repeats:
        raise RuntimeError("libbpf_consumer drain failed (exit %s): %s %s" % (proc.returncode, out, err))
    if any(int(r[2]) != total for r in rounds) or int(done[0][1]) != (repeats + 1) * total or \
            int(done[0][2]) or synth.counters()[2]:
        raise RuntimeError("libbpf drain: %s, counters %s" % (out, synth.counters()))
    return [float(r[1]) for r in rounds]


def _drain(report: Report, exe: Dict[str, str], capacity: int, run_records: int, rounds: int) -> None:
    synth = Synth(exe["synth"], capacity=capacity, run_records=run_records)
    total = _drain_runs(synth) * run_records
    py, c = [], []
    try:
        for r in range(rounds):
            if r % 2:
                a, b = _drain_libbpf(exe, synth, DRAIN_REPEATS), _drain_pykring(synth, DRAIN_REPEATS)
            else:
                b, a = _drain_pykring(synth, DRAIN_REPEATS), _drain_libbpf(exe, synth, DRAIN_REPEATS)
            py.append(_median(b))
            c.append(_median(a))
    finally:
        synth.close()
    suffix = "" if capacity == RING_CAPACITY else "_%dmib" % (capacity // MiB)
    report.add("pykring_vs_libbpf_drain" + suffix, None, "x", samples=[q / p for p, q in zip(py, c)],
               note="records/s ratio, same round: %d records of %d B (%d MiB ring, %s) drained by one "
                    "Ring.read(out=) vs one ring_buffer__consume(), no producer running" % (
                        total, RECORD_SIZE, capacity // MiB,
                        "cache-resident" if capacity <= MiB else "memory-bound"))
    for name, xs in (("pykring", py), ("libbpf", c)):
        report.add("%s_drain_records_per_s%s" % (name, suffix), None, "rec/s",
                   samples=[total * 1e9 / x for x in xs], note="median of %d per round" % DRAIN_REPEATS)


# -- the kernel source: fork overhead and the spawn storm ---------------------------
class _Drainer(threading.Thread):
    """Drains a pykring.kernel() ring with read_batch() in a thread of this
    process until stopped, as lean as a real consumer: counts records per
    type and non-empty reads, and its own CPU time. With `keep` it also keeps
    the columns the spawn check needs (copies; the batches are dropped)."""

    def __init__(self, ring, keep: bool = False, poll_s: Optional[float] = None, latency: bool = False):
        super().__init__(daemon=True)
        self.latency = latency                   # keep time.time_ns() at receipt - ts_ns per record
        self.delays: List[np.ndarray] = []
        self.ring = ring
        self.keep = keep
        self.poll_s = poll_s                     # None: block in read_batch(timeout=); else poll
        self.counts: Dict[str, int] = {name: 0 for name in ring.dtypes}
        self.reads = 0                           # non-empty read_batch() calls
        self.cpu_ns = 0
        self.kept: Dict[str, List[np.ndarray]] = {name: [] for name in ring.dtypes}
        self.error: Optional[BaseException] = None
        self._stop_event = threading.Event()

    @property
    def records(self) -> int:
        return sum(self.counts.values())

    def stop(self) -> None:
        self._stop_event.set()
        self.join(60)

    def take(self, batch) -> int:
        n = 0
        now = time.time_ns() if self.latency else 0
        for name, a in batch.items():
            k = len(a)
            if k:
                n += k
                if self.latency:
                    self.delays.append(now - a["ts"].astype(np.int64))
                self.counts[name] += k
                if self.keep:
                    self.kept[name].append(repack_fields(a[_KEEP[name]]))   # a compact copy
        if n:
            self.reads += 1
        return n

    def run(self) -> None:
        c0 = time.thread_time_ns()
        try:
            while not self._stop_event.is_set():
                if self.poll_s is None:
                    self.take(self.ring.read_batch(timeout=0.05))
                else:
                    self.take(self.ring.read_batch())
                    self._stop_event.wait(self.poll_s)
            while self.take(self.ring.read_batch()):
                pass
        except BaseException as exc:          # reported by the harness thread
            self.error = exc
        self.cpu_ns = time.thread_time_ns() - c0

    def column(self, name: str, field: str) -> np.ndarray:
        parts = self.kept[name]
        return np.concatenate([p[field] for p in parts]).astype(np.int64) if parts else np.empty(0, np.int64)

    def ring_bytes(self) -> int:
        """Ring bytes of the kept records: 8-byte header + payload (a string
        tail ends after its NUL: csrc/bpf/kring_events.bpf.c), 8-aligned."""
        from pykring.events import LINUX_MIN_SIZES, PROCESS_EXIT, PROCESS_START, IMAGE_LOAD
        from pykring.schema import record_span

        # process_start is packed: fixed part, then path, command line, cwd and
        # parent path, each + NUL (kring_events.h, KRING_D_PACKED).
        ps = sum(self.column("process_start", f) + 1 for f in ("path_len", "cmdline_len", "cwd_len",
                                                                 "parent_path_len"))
        lens = {"process_start": LINUX_MIN_SIZES[PROCESS_START] + ps,
                "process_exit": LINUX_MIN_SIZES[PROCESS_EXIT] + self.column("process_exit", "path_len") + 1,
                "image_load": LINUX_MIN_SIZES[IMAGE_LOAD] + self.column("image_load", "path_len") + 1}
        return sum(int(record_span(v).sum()) for v in lens.values())


#: the columns _Drainer(keep=True) keeps of each record type
_KEEP = {"process_start": ["pid", "ppid", "detail", "path_len", "cmdline_len", "cwd_len", "parent_path_len"],
         "process_exit": ["pid", "ppid", "path_len"],
         "image_load": ["path_len"], "exec_failed": ["pid"]}


def _tool(cmd: List[str]) -> List[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    f = res.stdout.split()
    if res.returncode != 0 or not f or f[0] != "done":
        raise RuntimeError("%s failed (exit %d): %s %s" % (" ".join(cmd), res.returncode, res.stdout, res.stderr))
    return f


#: pykring.kernel()'s wake_interval in the kernel phases (None: its default);
#: ``python -m benchmarks.bpf --wake-interval S`` sets it.
WAKE_INTERVAL: Optional[float] = None
#: Paced process starts of the latency phase, and their spacing (ms, uniform:
#: not in step with the programs' wake timer).
LATENCY_STARTS = {True: 300, False: 1000}
LATENCY_GAP_MS = (2.0, 20.0)


def _kernel_ring(wake_interval: Optional[float] = None, **filters):
    import pykring

    wi = WAKE_INTERVAL if wake_interval is None else wake_interval
    return pykring.kernel(events=("process", "image"), wake_interval=wi, **filters)


def _wake_interval_ms(wake_interval: Optional[float] = None) -> float:
    from pykring.kernel_linux import DEFAULT_WAKE_INTERVAL

    wi = WAKE_INTERVAL if wake_interval is None else wake_interval
    return (DEFAULT_WAKE_INTERVAL if wi is None else wi) * 1e3


def _loss(before, after) -> Tuple[int, int]:
    return after.lost - before.lost, (after.dropped or 0) - (before.dropped or 0)


def _storm(cmd: List[str]) -> Tuple[float, float]:
    """Run a fork storm: (forks/s, CPU us per fork of the storm process and its
    children, BPF programs that run in their context included)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    f = _tool(cmd)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    n = int(f[1])
    cpu_s = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return n * 1e9 / int(f[2]), cpu_s * 1e6 / n


class _BpfStats:
    """The kernel's accounting of BPF program run time (kernel.bpf_stats_enabled)
    while inside; ``run_ns(ring)``: the run time of the ring's programs so far."""

    PATH = "/proc/sys/kernel/bpf_stats_enabled"

    def __enter__(self) -> "_BpfStats":
        with open(self.PATH) as f:
            self._was = f.read().strip()
        with open(self.PATH, "w") as f:
            f.write("1")
        return self

    def __exit__(self, *exc) -> None:
        with open(self.PATH, "w") as f:
            f.write(self._was)

    @staticmethod
    def run_ns(ring) -> int:
        import json as _json

        total = 0
        for pid in ring.source.prog_ids:
            res = subprocess.run(["bpftool", "prog", "show", "id", str(pid), "-j"], capture_output=True, text=True)
            if res.returncode == 0:
                total += int(_json.loads(res.stdout).get("run_time_ns", 0))
        return total


def _forks(report: Report, exe: Dict[str, str], quick: bool, suffix: str = "") -> None:
    n = FORKS[quick]
    cmd = [exe["forkstorm"], "storm", str(n)]
    # B phases: the blocking drainer (the headline); full run also a drainer
    # that polls every POLL_S instead of waiting for the programs' wakeups.
    # Also (F) the programs filtered in the kernel to this process alone
    # (pids=): the storm's forks are outside it, so each costs the check only.
    variants = [("", None), ("_filtered_out", None)] + ([("_polling", POLL_S)] if not quick else [])
    without: List[Tuple[float, float]] = []          # (forks/s, storm CPU us per fork)
    phases: Dict[str, List[dict]] = {v: [] for v, _ in variants}
    log("bpf: fork storm, %d forks per phase, chain A (%s A) x %d (A: no programs; B: pykring.kernel() "
        "and a drainer thread; F: the same filtered in the kernel to this process (pids=)%s)"
        % (n, " ".join("BFC"[i] for i in range(len(variants))), FORK_ROUNDS,
           "; C: the same as B, polling" if len(variants) > 2 else ""))
    without.append(_storm(cmd))
    for _ in range(FORK_ROUNDS):
        for v, poll_s in variants:
            with _kernel_ring(**({"pids": [os.getpid()]} if v == "_filtered_out" else {})) as ring, \
                    _BpfStats() as bs:
                before = ring.stats
                run0 = bs.run_ns(ring)
                d = _Drainer(ring, poll_s=poll_s)
                d.start()
                try:
                    rate, cpu = _storm(cmd)
                    time.sleep(0.1)              # the last exits' records
                finally:
                    d.stop()
                lost, dropped = _loss(before, ring.stats)
                bpf_ns = (bs.run_ns(ring) - run0) / n
            if d.error is not None:
                raise RuntimeError("the kernel ring's drainer failed: %r" % (d.error,))
            phases[v].append({"rate": rate, "cpu": cpu, "drainer": d.cpu_ns / 1e3 / n, "records": d.records,
                              "lost": lost + dropped, "us_per_record": d.cpu_ns / 1e3 / max(1, d.records),
                              "per_read": d.records / max(1, d.reads), "a": len(without) - 1,
                              "bpf_ns": bpf_ns})
        without.append(_storm(cmd))
    report.add("forks_per_s_without", None, "forks/s", samples=[w[0] for w in without],
               note="forkstorm.c: fork + _exit(0) + waitpid, no BPF program attached")
    report.add("fork_cpu_us_without", None, "us", samples=[w[1] for w in without],
               note="CPU per fork of the storm process and its children (getrusage), no programs")
    for v, poll_s in variants:
        ps = phases[v]

        def around(p: dict, k: int) -> float:   # the mean of the A phases either side of p's group
            return (without[p["a"]][k] + without[p["a"] + 1][k]) / 2

        how = ("read_batch(timeout=0.05) in a loop, woken by the programs" if poll_s is None else
               "read_batch() every %g ms, not woken (what batched wakeups would cost)" % (poll_s * 1e3))
        if v == "_filtered_out":
            how += "; the programs filtered to this process (pids=), the storm's forks outside it"
        v += suffix
        report.add("fork_overhead" + v, None, "", samples=[1 - p["rate"] / around(p, 0) for p in ps],
                   note="1 - forks/s with / without (mean of the A phases around it), %d forks per phase; "
                        "drainer: %s; wake interval %g ms" % (n, how, _wake_interval_ms()))
        report.add("forks_per_s_with" + v, None, "forks/s", samples=[p["rate"] for p in ps],
                   note="pykring.kernel(events=('process', 'image')) + a drainer thread in this process")
        if v.startswith("_filtered_out"):
            # The few us of a filtered-out fork drown in the phases' noise here
            # (+-10 % between A phases); the kernel counts the programs' own time.
            report.add("fork_cpu_overhead" + v, None, "", samples=[(p["bpf_ns"] / 1e3 + p["drainer"]) / around(p, 1)
                                                                    for p in ps],
                       note="extra CPU per fork of a process outside the filter: the programs' run time "
                            "(kernel.bpf_stats_enabled, every run of them / the storm's forks) + the drainer's "
                            "CPU, / the storm's CPU per fork without programs (the A phases around it)")
            report.add("fork_cpu_overhead_rusage" + v, None, "", samples=[(p["cpu"] + p["drainer"]) / around(p, 1) - 1
                                                                           for p in ps],
                       note="the same from getrusage (storm + drainer with / without - 1): the noise of the phases")
        else:
            report.add("fork_cpu_overhead" + v, None, "", samples=[(p["cpu"] + p["drainer"]) / around(p, 1) - 1
                                                                    for p in ps],
                       note="extra CPU per fork (storm + drainer) / the storm's CPU per fork without programs")
        report.add("fork_bpf_ns_per_fork" + v, None, "ns", samples=[p["bpf_ns"] for p in ps],
                   note="the programs' run time per fork of the storm (kernel.bpf_stats_enabled)")
        report.add("fork_cpu_us_with" + v, None, "us", samples=[p["cpu"] for p in ps],
                   note="CPU per fork of the storm process and its children, the programs' work included")
        report.add("fork_drainer_cpu_us_per_fork" + v, None, "us", samples=[p["drainer"] for p in ps],
                   note="the drainer thread's CPU time (user + system) / forks")
        report.add("fork_storm_records" + v, None, "records", samples=[p["records"] for p in ps],
                   note="records the drainer received per storm (2 per fork + the rest of the machine)")
        report.add("fork_storm_lost" + v, sum(p["lost"] for p in ps), "records",
                   note="sequence gaps + dropped, over %d storms" % len(ps))
        report.add("fork_storm_drainer_us_per_record" + v, None, "us", samples=[p["us_per_record"] for p in ps],
                   note="the drainer thread's CPU time / records")
        report.add("fork_storm_records_per_read" + v, None, "records", samples=[p["per_read"] for p in ps],
                   note="records per non-empty read_batch()")


def _spawners(exe: Dict[str, str], n: int, rate: float) -> Tuple[List[subprocess.Popen], List[List[str]]]:
    per = n // SPAWN_WORKERS
    procs = [subprocess.Popen([exe["forkstorm"], "spawn", "%g" % (rate / SPAWN_WORKERS), str(per), SPAWN_PATH],
                              stdout=subprocess.PIPE, text=True) for _ in range(SPAWN_WORKERS)]
    outs = [p.communicate(timeout=900)[0].split() for p in procs]
    for p, f in zip(procs, outs):
        if p.returncode != 0 or not f or f[0] != "done":
            raise RuntimeError("forkstorm spawn failed (exit %s): %s" % (p.returncode, f))
    return procs, outs


def _spawn(report: Report, exe: Dict[str, str], quick: bool, backlog: bool = True, suffix: str = "") -> None:
    n = SPAWNS[quick]
    log("bpf: spawn storm, %d starts of %s asked at %d/s (%d workers), pykring.kernel() draining" % (
        n, SPAWN_PATH, SPAWN_TARGET, SPAWN_WORKERS))
    with _kernel_ring() as ring:
        before = ring.stats
        d = _Drainer(ring, keep=True, latency=True)
        d.start()
        try:
            procs, outs = _spawners(exe, n, SPAWN_TARGET)
            time.sleep(0.2)                      # the last exits' records
        finally:
            d.stop()
        lost, dropped = _loss(before, ring.stats)
    if d.error is not None:
        raise RuntimeError("the kernel ring's drainer failed: %r" % (d.error,))
    started = sum(int(f[1]) for f in outs)
    failed = sum(int(f[4]) for f in outs)
    span_ns = max(int(f[3]) for f in outs)       # first start .. last start of the slower worker
    # Every child: a fork and an exec process_start, and a process_exit.
    from pykring.events import D_EXEC

    # pids wrap (pid_max may be 32768): compare multisets, not sets
    workers = [p.pid for p in procs]
    pid, ppid, detail = (d.column("process_start", f) for f in ("pid", "ppid", "detail"))
    mine = np.isin(ppid, workers)
    forked = Counter(pid[mine & (detail & D_EXEC == 0)].tolist())
    execd = Counter(pid[mine & (detail & D_EXEC != 0)].tolist())
    exited = Counter(d.column("process_exit", "pid")[np.isin(d.column("process_exit", "ppid"), workers)].tolist())
    n_forked, n_execd, n_exited = (sum(c.values()) for c in (forked, execd, exited))
    complete = n_forked == started and forked == execd == exited and not failed
    bytes_per_start = d.ring_bytes() / max(1, started)
    delays = np.concatenate(d.delays) if d.delays else np.zeros(1, np.int64)
    add = _suffixed(report, suffix)
    add("spawn_target_per_s", SPAWN_TARGET, "starts/s",
               note="asked for: %d workers x %g/s" % (SPAWN_WORKERS, SPAWN_TARGET / SPAWN_WORKERS))
    add("spawn_per_s", started * 1e9 / span_ns, "starts/s",
               note="reached: %d starts of %s in %.2f s (vfork + execv, %d workers)" % (
                   started, SPAWN_PATH, span_ns / 1e9, SPAWN_WORKERS))
    add("spawn_lost", lost + dropped, "records",
               note="sequence gaps %d + dropped %d, default %d MiB ring, %d records drained" % (
                   lost, dropped, RING_CAPACITY // MiB, d.records))
    add("spawn_complete", complete,
               note="%d children with a fork start, %d with an exec start, %d exits (same pids), %d failed "
                    "execs, of %d" % (n_forked, n_execd, n_exited, failed, started))
    add("spawn_ring_bytes_per_start", bytes_per_start, "B",
               note="ring bytes of all records in the storm / starts (%s)" % ", ".join(
                   "%s %d" % kv for kv in sorted(d.counts.items())))
    add("spawn_ring_stall_s_at_10k", RING_CAPACITY / (bytes_per_start * SPAWN_TARGET), "s",
               note="how long the consumer may stall at 10,000 starts/s before the default ring drops")
    add("spawn_drainer_us_per_record", d.cpu_ns / 1e3 / max(1, d.records), "us",
               note="the drainer thread's CPU time / records; %.1f records per non-empty read" % (
                   d.records / max(1, d.reads)))
    add("spawn_records_per_read", d.records / max(1, d.reads), "records",
        note="records per non-empty read_batch() in the spawn storm")
    add("spawn_event_latency_p99_ms", float(np.percentile(delays, 99)) / 1e6, "ms",
        note="record ts_ns -> time.time_ns() after the read_batch() that returned it, during the storm "
             "(p50 %.2f ms); wake interval %g ms" % (float(np.percentile(delays, 50)) / 1e6, _wake_interval_ms()))
    if backlog:
        _backlog(report, exe, quick)


def _suffixed(report: Report, suffix: str):
    def add(key: str, *a, **kw) -> None:
        report.add(key + suffix, *a, **kw)
    return add


def _latency(report: Report, exe: Dict[str, str], quick: bool, suffix: str = "") -> None:
    """Kernel event -> Python: process starts paced LATENCY_GAP_MS apart (a
    quiet machine's rhythm: the reader sleeps between them and is woken by
    the programs), a drainer blocked in read_batch(timeout=). Per record:
    time.time_ns() after the read that returned it - its ts_ns (the same
    clock: ts_ns is CLOCK_REALTIME's ns, PROTOCOL.md 5.7)."""
    import random

    n = LATENCY_STARTS[quick]
    rng = random.Random(12)
    log("bpf: latency, %d starts of %s %g..%g ms apart, wake interval %g ms" % (
        n, SPAWN_PATH, LATENCY_GAP_MS[0], LATENCY_GAP_MS[1], _wake_interval_ms()))
    with _kernel_ring() as ring:
        d = _Drainer(ring, latency=True)
        d.start()
        try:
            for _ in range(n):
                subprocess.run([SPAWN_PATH])
                time.sleep(rng.uniform(*LATENCY_GAP_MS) / 1e3)
            time.sleep(0.2)
        finally:
            d.stop()
    if d.error is not None:
        raise RuntimeError("the kernel ring's drainer failed: %r" % (d.error,))
    delays = np.concatenate(d.delays) / 1e6 if d.delays else np.zeros(1)
    add = _suffixed(report, suffix)
    add("event_latency_p99_ms", float(np.percentile(delays, 99)), "ms",
        note="kernel event (record ts_ns) -> Python (time.time_ns() after the read_batch() that returned it), "
             "p99 over %d records of %d paced starts; wake interval %g ms" % (len(delays), n, _wake_interval_ms()))
    add("event_latency_p50_ms", float(np.percentile(delays, 50)), "ms", note="the same, median")
    add("event_records_per_read", d.records / max(1, d.reads), "records",
        note="records per non-empty read_batch() of the paced starts")
    add("event_drainer_us_per_record", d.cpu_ns / 1e3 / max(1, d.records), "us",
        note="the drainer thread's CPU time / records, paced starts")


def _backlog(report: Report, exe: Dict[str, str], quick: bool) -> None:
    """How fast read_batch() empties a ring full of real kernel records: the
    consumer's side of 10,000 starts/s, which this machine cannot spawn."""
    n = SPAWN_BACKLOG[quick]
    with _kernel_ring() as ring:
        before = ring.stats
        _spawners(exe, n, 1e9)                   # as fast as it goes, nobody draining
        time.sleep(0.2)
        pending = ring.stats.pending_bytes
        d = _Drainer(ring)
        t0 = time.perf_counter_ns()
        while d.take(ring.read_batch()):
            pass
        t1 = time.perf_counter_ns()
        lost, dropped = _loss(before, ring.stats)
    per_start = d.records / max(1, n)
    rate = d.records * 1e9 / (t1 - t0)
    report.add("kernel_drain_records_per_s", rate, "rec/s",
               note="read_batch() until empty of a backlog of %d records (%.1f MB, %d starts of %s; "
                    "lost %d, dropped %d)" % (d.records, pending / 1e6, n, SPAWN_PATH, lost, dropped))
    report.add("kernel_drain_starts_per_s", rate / per_start, "starts/s",
               note="the same in process starts (%.1f records per start): what one Python consumer can "
                    "keep up with" % per_start)


# -- entry point ------------------------------------------------------------------
def run(report: Report, quick: bool, required: bool = False) -> None:
    lacking = missing()
    if lacking:
        msg = "bpf: needs %s" % ", ".join(lacking)
        if required:
            raise RuntimeError(msg)
        log(msg + ": skipped")
        report.meta["bpf"] = {"skipped": msg}
        return
    exe = build()
    prod, cons = _cpus()
    report.meta["bpf"] = {
        "ring_bytes": RING_CAPACITY, "record_size": RECORD_SIZE, "run_records": RUN_RECORDS,
        "stream_records": STREAM_RUNS[quick] * RUN_RECORDS, "stream_rounds": STREAM_ROUNDS[quick],
        "drain_rounds": DRAIN_ROUNDS[quick], "producer_cpu": prod, "consumer_cpu": cons,
        "forks": FORKS[quick], "fork_rounds": FORK_ROUNDS, "spawns": SPAWNS[quick]}
    log("bpf: stream, %d records of %d B per stream, %d rounds (pykring vs libbpf)" % (
        STREAM_RUNS[quick] * RUN_RECORDS, RECORD_SIZE, STREAM_ROUNDS[quick]))
    _stream(report, exe, RUN_RECORDS, STREAM_RUNS[quick], STREAM_ROUNDS[quick])
    for capacity in DRAIN_CAPACITIES:
        log("bpf: drain of a full %d MiB ring, %d rounds" % (capacity // MiB, DRAIN_ROUNDS[quick]))
        _drain(report, exe, capacity, RUN_RECORDS, DRAIN_ROUNDS[quick])
    if not quick:
        log("bpf: stream with the kernel's adaptive wakeups, %d rounds" % ADAPTIVE_ROUNDS)
        _stream(report, exe, 0, ADAPTIVE_RUNS, ADAPTIVE_ROUNDS, suffix="_adaptive")
    _forks(report, exe, quick)
    _spawn(report, exe, quick)
    _latency(report, exe, quick)


def sweep(report: Report, quick: bool, intervals: Sequence[float]) -> None:
    """The fork, spawn and latency phases at each wake interval (keys
    suffixed _wi<ms>): CPU per event against latency."""
    global WAKE_INTERVAL
    lacking = missing()
    if lacking:
        raise RuntimeError("bpf: needs %s" % ", ".join(lacking))
    exe = build()
    old = WAKE_INTERVAL
    try:
        for wi in intervals:
            WAKE_INTERVAL = wi
            suffix = "_wi%g" % (wi * 1e3)
            log("bpf: wake interval %g ms" % (wi * 1e3))
            _forks(report, exe, quick, suffix=suffix)
            _spawn(report, exe, quick, backlog=False, suffix=suffix)
            _latency(report, exe, quick, suffix=suffix)
    finally:
        WAKE_INTERVAL = old


def main(argv=None) -> int:
    import argparse
    import json
    import sys

    from ._common import machine

    ap = argparse.ArgumentParser(prog="python -m benchmarks.bpf",
                                 description="the bpf benchmark at another wake interval, or a sweep of them")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--wake-interval", type=float, metavar="S", help="pykring.kernel(wake_interval=S) throughout")
    ap.add_argument("--sweep", metavar="S,S,...", help="only the fork, spawn and latency phases, at each interval")
    ap.add_argument("--plot", metavar="PNG", help="with --sweep: draw the trade-off (CPU per event, latency) there")
    args = ap.parse_args(argv)
    global WAKE_INTERVAL
    WAKE_INTERVAL = args.wake_interval
    report = Report()
    report.meta.update(machine())
    report.meta.update(command="python -m benchmarks.bpf " + " ".join(argv if argv is not None else sys.argv[1:]),
                       quick=args.quick)
    try:
        if args.sweep:
            sweep(report, args.quick, [float(x) for x in args.sweep.split(",")])
        else:
            run(report, args.quick, required=True)
    except Exception as exc:
        report.fail("bpf: %s: %s" % (type(exc).__name__, exc))
    if args.sweep and args.plot and not report.failures:
        from .plots import wake_interval
        wake_interval(report, args.plot)
    print(json.dumps(report.as_json()) if args.json else report.table())
    return 1 if report.failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
