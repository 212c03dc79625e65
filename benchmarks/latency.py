"""latency: how long an idle consumer takes to see one record, against an
eventfd floor measured the same way in the same run.

A writer process sleeps a random interval (uniform 1-5 ms), sends one
record, and waits for the reader's acknowledgement (an eventfd) before the
next interval, so every record finds the reader asleep and no two records
are ever pending together. The reader is a Python process blocked in a
receive call; right after the call returns it takes ``time.time_ns()``
(CLOCK_REALTIME). The latency of a record is that time minus the record's
timestamp:

``pykring``  the writer calls ``pykring.Producer.write(<1 record>)``, which
             stamps ``ts`` (CLOCK_REALTIME) inside ``kring_write``, publishes,
             and futex-wakes the consumer; the reader is blocked in
             ``Ring.read(timeout=None)`` (it waits in futex slices that
             grow from 50 ms to 1 s while nothing comes; a wake ends the
             slice at once).
``pykring_out``  the same with ``Ring.read(timeout=None, out=<reused array>)``,
             the allocation-free form (reported beside it, not the target).
``pykring_c``  the same writer; the reader calls the C function under
             ``Ring.read(timeout=None)``, ``kring_wait_drain`` (one call that
             waits and drains into reused rows), straight through cffi and
             commits: what the wake costs below the Python API, so
             ``wake_p50_vs_floor`` splits into the C part (``wake_c_*``) and
             the Python part (the rest).
``floor``    the writer calls ``os.eventfd_write(fd, time.time_ns())``: the
             timestamp is the eventfd's value; the reader is blocked in
             ``os.eventfd_read(fd)``. One syscall each side, nothing else: the
             cost of waking a sleeping Python process on this machine.

All use the same random intervals (the same seeds). Blocks of samples
alternate floor, pykring, pykring_out, pykring_c, floor, ... each block in a fresh pair
of processes, so that load on the shared machine falls on both alike. The first
5 samples of each block are discarded (warm-up).

Keys: ``wake_p50_us`` / ``wake_p99_us`` / ``wake_p999_us`` and
``floor_p50_us`` ... (over all samples), ``wake_p50_vs_floor`` (median over
blocks of pykring p50 / floor p50 in the same block, with _min/_max),
``wake_p99_vs_floor``, ``wake_p999_vs_floor`` (pooled); ``wake_out_*`` the
same for ``pykring_out``, ``wake_c_*`` for ``pykring_c``.

Child entry point (used by the harness)::

    python -m benchmarks.latency --child JSON
"""
import json
import os
import random
import subprocess
import sys
import time
from typing import Dict, List, Optional

from pykring._common import remove_ring, unique_ring_name

from ._common import ROOT, Report, log, quantile

INTERVAL_S = (0.001, 0.005)
WARMUP = 5
#: (samples per block, blocks per mode)
PLAN = {"quick": (300, 2), "full": (800, 5)}
CHILD_TIMEOUT_S = 120

#: raw samples (ns) of the last run() by mode, for the plots
LAST: Dict[str, List[int]] = {}


# -- child -------------------------------------------------------------------
def child_main(params: dict) -> int:
    mode, n, seed = params["mode"], params["samples"] + WARMUP, params["seed"]
    lo, hi = params["interval"]
    ack = os.eventfd(0)
    lat: List[int] = []
    if mode in ("pykring", "pykring_out", "pykring_c"):
        import numpy as np
        import pykring
        from .drain import body_dtype_for

        name = unique_ring_name("bench-lat")
        ring = pykring.create(name, 1 << 20, body_dtype_for(64))
        ready = os.eventfd(0)
        pid = os.fork()
        if pid == 0:                                       # the writer
            code = 1
            try:
                rnd = random.Random(seed)
                with pykring.Producer(ring.path) as p:
                    one = np.zeros(1, dtype=pykring.body_dtype(p.dtype))
                    write = p.write
                    os.eventfd_write(ready, 1)
                    for _ in range(n):
                        time.sleep(rnd.uniform(lo, hi))
                        write(one)
                        os.eventfd_read(ack)
                code = 0
            finally:
                os._exit(code)
        try:
            os.eventfd_read(ready)
            read, now = ring.read, time.time_ns
            out = np.zeros(1024, dtype=ring.dtype) if mode != "pykring" else None
            if mode == "pykring_c":
                wait_drain, commit, c, outs, got = _c_reader(ring, out)
            for _ in range(n):
                if mode == "pykring_c":
                    while wait_drain(c, outs, len(out), 10**9, got) != 0 or not got[0]:
                        pass
                    t = now()
                    commit(c)
                    a = out[:got[0]]
                else:
                    a = read(timeout=None) if out is None else read(timeout=None, out=out)
                    t = now()
                for ts in a["ts"].view(np.int64).tolist():
                    lat.append(t - ts)
                os.eventfd_write(ack, 1)
            try:
                ring.read(timeout=5.0)
            except pykring.RingClosedError:
                pass
        finally:
            _, status = os.waitpid(pid, 0)
            ring.close()
            remove_ring(name)
    else:
        fd = os.eventfd(0)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                rnd = random.Random(seed)
                write, now = os.eventfd_write, time.time_ns
                for _ in range(n):
                    time.sleep(rnd.uniform(lo, hi))
                    write(fd, now())
                    os.eventfd_read(ack)
                code = 0
            finally:
                os._exit(code)
        read, now = os.eventfd_read, time.time_ns
        for _ in range(n):
            v = read(fd)
            t = now()
            lat.append(t - v)
            os.eventfd_write(ack, 1)
        _, status = os.waitpid(pid, 0)
    print(json.dumps({"ok": os.waitstatus_to_exitcode(status) == 0 and len(lat) == n,
                      "lat_ns": lat[WARMUP:]}), flush=True)
    return 0


def _c_reader(ring, rows):
    """What Ring.read(timeout=None, out=rows) calls in C, set up once:
    kring_wait_drain and kring_commit, the consumer, its kring_out array
    pointing at `rows` (the ring's one type), the count."""
    from pykring._lib import ffi, lib

    outs = ffi.new("struct kring_out[]", lib.KRING_MAX_TYPES)
    buf = ffi.from_buffer(rows, require_writable=True)
    o = outs[ring._types[0][0]]
    o.buf, o.capacity = ffi.cast("uint8_t *", buf), len(rows)
    _c_reader.keep = buf
    return lib.kring_wait_drain, lib.kring_commit, ring._c, outs, ffi.new("uint64_t *")


# -- parent ------------------------------------------------------------------
def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def block(mode: str, samples: int, seed: int) -> Optional[List[int]]:
    params = {"mode": mode, "samples": samples, "seed": seed, "interval": list(INTERVAL_S)}
    try:
        res = subprocess.run([sys.executable, "-m", "benchmarks.latency", "--child", json.dumps(params)],
                             cwd=ROOT, env=_child_env(), capture_output=True, text=True,
                             timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return None
    lines = res.stdout.strip().splitlines()
    if res.returncode != 0 or not lines:
        log(res.stderr[-2000:])
        return None
    out = json.loads(lines[-1])
    return out["lat_ns"] if out.get("ok") else None


def run(report: Report, quick: bool, samples: Optional[int] = None, blocks: Optional[int] = None) -> None:
    per_block, nblocks = PLAN["quick" if quick else "full"]
    per_block, nblocks = samples or per_block, blocks or nblocks
    report.meta["latency"] = {"samples_per_block": per_block, "blocks": nblocks,
                              "interval_s": list(INTERVAL_S), "warmup_discarded": WARMUP}
    modes = ("floor", "pykring", "pykring_out", "pykring_c")
    lat: Dict[str, List[int]] = {m: [] for m in modes}
    ratios: Dict[str, List[float]] = {m: [] for m in modes[1:]}
    for b in range(nblocks):
        p50 = {}
        for mode in modes:
            log("latency: block %d/%d, %s, %d records at random %g-%g ms intervals"
                % (b + 1, nblocks, mode, per_block, INTERVAL_S[0] * 1e3, INTERVAL_S[1] * 1e3))
            got = block(mode, per_block, seed=1000 + b)
            if got is None:
                report.fail("latency: %s block %d failed" % (mode, b + 1))
                continue
            lat[mode].extend(got)
            p50[mode] = quantile(got, 0.5)
        for mode in modes[1:]:
            if mode in p50 and p50.get("floor", 0) > 0:
                ratios[mode].append(p50[mode] / p50["floor"])
    LAST.clear()
    LAST.update(lat)
    if not lat["floor"]:
        return
    q = {(m, p): quantile(lat[m], p / 100.0) / 1e3 for m in lat if lat[m] for p in (50, 99, 99.9)}
    for p, tag in ((50, "p50"), (99, "p99"), (99.9, "p999")):
        report.add("floor_%s_us" % tag, q[("floor", p)], "us",
                   note="eventfd write -> Python eventfd_read, %d samples" % len(lat["floor"]) if p == 50 else "")
    for mode, pre, how in (("pykring", "wake", "Ring.read(timeout=None)"),
                           ("pykring_out", "wake_out", "Ring.read(timeout=None, out=)"),
                           ("pykring_c", "wake_c", "kring_wait_drain() through cffi")):
        if not lat[mode]:
            continue
        for p, tag in ((50, "p50"), (99, "p99"), (99.9, "p999")):
            report.add("%s_%s_us" % (pre, tag), q[(mode, p)], "us",
                       note="%s: receive time - record ts, %d samples" % (how, len(lat[mode])) if p == 50 else "")
        report.add("%s_p50_vs_floor" % pre, None, "x", samples=ratios[mode],
                   note="p50 / floor p50, per block of %d; pooled %.2f"
                   % (per_block, q[(mode, 50)] / q[("floor", 50)]))
        report.add("%s_p99_vs_floor" % pre, q[(mode, 99)] / q[("floor", 99)], "x", note="pooled")
        report.add("%s_p999_vs_floor" % pre, q[(mode, 99.9)] / q[("floor", 99.9)], "x", note="pooled")


def _main(argv: List[str]) -> int:
    if len(argv) == 2 and argv[0] == "--child":
        return child_main(json.loads(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
