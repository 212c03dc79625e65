"""e2e: end to end and lossless, producer process -> ring -> numpy.

A producer process writes N records in block mode (lossless) into a 16 MiB
ring while a Python consumer drains it with ``Ring.read(out=reused buffer)``
until the producer closes the ring. The producer is benchmarks/producer.c,
linked with the project's own csrc files and built on first use into
benchmarks/.build/; the peer is ``pykring.Producer(block=True)`` in a Python
process.

Each consumer runs in a fresh Python process, so that its peak RSS
(``ru_maxrss``) is its own; the consumer creates the ring, starts the
producer, waits until it is attached ("ready"), starts the clock and sends
"go", and stops the clock when the read raises RingClosedError (the
producer closed the ring and every record was read). Process start-up is
outside the window; everything from the first write to the clean close is
inside. A run is lossless when the consumer read exactly N records, the last
with seq N - 1, the ring counts N written, 0 dropped and 0 lost (sequence
gaps), the producer exits 0, and the last record of every read carries the
body the producer wrote for its seq.

Keys: ``e2e_records_per_s_<size>`` (C producer; median over runs, with
_min/_max), ``e2e_py_producer_records_per_s_64``, ``e2e_lossless``,
``e2e_rss_kib_N`` / ``e2e_rss_kib_4N`` (consumer peak RSS for streams of N
and 4N records) and ``e2e_rss_ratio_4N_N``.

Child entry points (used by the harness, not meant to be run by hand)::

    python -m benchmarks.e2e --consumer JSON
    python -m benchmarks.e2e --py-producer RING_PATH COUNT RECORD_SIZE BATCH
"""
import json
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from pykring._common import remove_ring, unique_ring_name

from ._common import EVENT_HEADER, MiB, ROOT, Report, build_producer, log

RING_CAPACITY = 16 * MiB
#: records per kring_write: 16384 for small records, ~1 MiB of bodies for large ones
BATCH_BYTES = 1 * MiB
MAX_BATCH = 16384
#: consumer's reused out= buffer: about 4 MiB of rows
OUT_BYTES = 4 * MiB
CHILD_TIMEOUT_S = 600


def batch_for(size: int) -> int:
    return max(256, min(MAX_BATCH, BATCH_BYTES // max(1, size - EVENT_HEADER)))


def out_rows_for(size: int) -> int:
    return max(1024, OUT_BYTES // size)


def pattern(n: int) -> bytes:
    """The body bytes of one batch, as both producers write them."""
    import numpy as np

    return ((np.arange(n, dtype=np.uint64) * 131 + 7) & 0xFF).astype(np.uint8).tobytes()


# -- children ----------------------------------------------------------------
def py_producer_main(path: str, count: int, size: int, batch: int) -> int:
    """A Python producer process: pykring.Producer in block mode."""
    import numpy as np
    import pykring

    with pykring.Producer(path, block=True) as p:
        body = np.zeros(batch, dtype=pykring.body_dtype(p.dtype))
        if body.dtype.itemsize != size - EVENT_HEADER:
            print("ring records are %d bytes, not %d" % (p.dtype.itemsize, size), file=sys.stderr)
            return 1
        body.view(np.uint8)[:] = np.frombuffer(pattern(body.nbytes), dtype=np.uint8)
        print("ready", flush=True)
        if not sys.stdin.readline():
            return 1
        t0 = time.monotonic_ns()
        c0 = time.process_time_ns()
        left = count
        while left:
            k = min(left, batch)
            left -= p.write(body if k == batch else body[:k])
        c1 = time.process_time_ns()
    t1 = time.monotonic_ns()
    print("done %d %d 0 %d" % (count, t1 - t0, c1 - c0), flush=True)
    return 0


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def _one_stream(ring_name: str, p: dict, out, expect: bytes) -> dict:
    """Create a ring, run one producer process into it, drain it, check it."""
    import pykring
    from .drain import body_dtype_for

    size, count, batch = p["size"], p["count"], p["batch"]
    body_len = size - EVENT_HEADER
    res = {"records": 0, "ok": False}
    with pykring.create(ring_name, p["capacity"], body_dtype_for(size)) as ring:
        if p["producer"] == "c":
            cmd = [p["exe"], ring.path, str(count), str(size), str(batch), "--handshake"]
        else:
            cmd = [sys.executable, "-m", "benchmarks.e2e", "--py-producer", ring.path,
                   str(count), str(size), str(batch)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=_child_env(), stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            line = proc.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError("producer did not start (%r, exit %s)" % (line, proc.poll()))
            n = reads = 0
            last = -1
            bad_body = 0
            read = ring.read
            closed = pykring.RingClosedError
            c0 = time.process_time()
            t0 = time.perf_counter()
            proc.stdin.write("go\n")
            proc.stdin.flush()
            while True:
                try:
                    a = read(timeout=1.0, out=out)
                except closed:
                    break
                k = len(a)
                if not k and proc.poll() is not None:
                    raise RuntimeError("the producer exited (%s) without closing the ring" % proc.returncode)
                if k:
                    reads += 1
                    n += k
                    row = a[k - 1].tobytes()
                    last = int.from_bytes(row[:8], "little")
                    off = (last % batch) * body_len
                    if row[EVENT_HEADER:] != expect[off:off + body_len]:
                        bad_body += 1
            t1 = time.perf_counter()
            c1 = time.process_time()
            rc = proc.wait(timeout=60)
            tail = proc.stdout.read().split()
            st = ring.stats
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    res.update(records=n, seconds=t1 - t0, consumer_cpu_s=c1 - c0, reads=reads, last_seq=last,
               written=st.written, dropped=st.dropped, lost=st.lost, bad_bodies=bad_body,
               producer_exit=rc)
    if len(tail) == 5 and tail[0] == "done":
        res.update(producer_records=int(tail[1]), producer_ns=int(tail[2]), wakeups=int(tail[3]),
                   producer_cpu_s=int(tail[4]) / 1e9)
    problems = []
    if n != count or last != count - 1:
        problems.append("read %d records, last seq %d (expected %d, %d)" % (n, last, count, count - 1))
    if st.written != count or st.dropped or st.lost:
        problems.append("ring stats %s" % (st,))
    if bad_body:
        problems.append("%d reads ended with a record whose body was wrong" % bad_body)
    if rc != 0 or res.get("producer_records") != count:
        problems.append("producer exit %s, output %r" % (rc, " ".join(tail)))
    res["ok"] = not problems
    res["problems"] = problems
    return res


def _vm_hwm_kib() -> int:
    """Peak RSS of this process image (VmHWM), a cross-check of ru_maxrss."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


def _own_rusage() -> None:
    """Continue in a forked child, so that ru_maxrss is this consumer's own.

    Linux carries the peak RSS of a process across fork + execve into
    ru_maxrss of the new image (signal->maxrss, set when execve drops the
    old mm): a consumer started by the harness after the drain benchmark
    would report the harness's peak. A forked child gets a fresh signal
    struct, and its copied mm's peak is this small interpreter's. The
    parent only relays the exit status.
    """
    pid = os.fork()
    if pid:
        _, status = os.waitpid(pid, 0)
        os._exit(os.waitstatus_to_exitcode(status) & 0xFF)


def consumer_main(params: dict) -> int:
    """A consumer process: one or more streams, then its own peak RSS, as JSON."""
    _own_rusage()
    import resource

    import numpy as np
    import pykring
    from .drain import body_dtype_for

    dt = pykring.record_dtype(body_dtype_for(params["size"]))
    out = np.empty(params["out_rows"], dtype=dt)
    out.view(np.uint8).fill(0)                 # fault the buffer in: it is reused by every read
    expect = pattern(params["batch"] * (params["size"] - EVENT_HEADER))
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    runs = []
    for name in params["rings"]:
        try:
            runs.append(_one_stream(name, params, out, expect))
        except Exception as exc:               # reported, not raised: the parent decides
            runs.append({"ok": False, "problems": ["%s: %s" % (type(exc).__name__, exc)]})
        finally:
            remove_ring(name)
    print(json.dumps({"runs": runs, "rss_kib_start": rss_start,
                      "rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "vm_hwm_kib": _vm_hwm_kib()}), flush=True)
    return 0


# -- the parent --------------------------------------------------------------
def stream(size: int, count: int, repeats: int, producer: str = "c",
           exe: Optional[str] = None, capacity: int = RING_CAPACITY,
           out_rows: Optional[int] = None, tag: str = "e2e", timeout_s: int = CHILD_TIMEOUT_S) -> dict:
    """Run `repeats` streams of `count` records in one fresh consumer process
    (ring of `capacity` bytes, reads of `out_rows` rows)."""
    rings = [unique_ring_name("bench-%s%d" % (tag, size)) for _ in range(repeats)]
    params = {"size": size, "count": count, "batch": batch_for(size), "capacity": capacity,
              "out_rows": out_rows_for(size) if out_rows is None else out_rows,
              "producer": producer, "exe": exe, "rings": rings}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.e2e", "--consumer", json.dumps(params)],
                            cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE, text=True,
                            start_new_session=True)    # its own group: a hang is killed whole
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"runs": [{"ok": False, "problems": ["timed out after %d s" % timeout_s]}]}
    finally:
        for name in rings:
            remove_ring(name)
    lines = out.strip().splitlines()
    if proc.returncode != 0 or not lines:
        return {"runs": [{"ok": False, "problems": ["consumer process exit %s" % proc.returncode]}]}
    return json.loads(lines[-1])


def _rates(report: Report, res: dict, what: str) -> List[float]:
    """Records/s of the lossless runs; a run that lost anything is a failure."""
    rates = []
    for r in res["runs"]:
        if r.get("ok"):
            rates.append(r["records"] / r["seconds"])
        else:
            report.fail("%s: %s" % (what, "; ".join(r.get("problems", ["?"]))))
    return rates


def _busy(report: Report, key: str, res: dict) -> None:
    """Who was the bottleneck: CPU time / wall time of each side over the stream."""
    runs = [r for r in res["runs"] if r.get("ok")]
    if runs:
        report.add(key.replace("*", "consumer"), None, "cpu/wall",
                   samples=[r["consumer_cpu_s"] / r["seconds"] for r in runs],
                   note="Python consumer process busy fraction")
    runs = [r for r in runs if "producer_cpu_s" in r]
    if runs:
        report.add(key.replace("*", "producer"), None, "cpu/wall",
                   samples=[r["producer_cpu_s"] / r["seconds"] for r in runs],
                   note="producer process busy fraction")


#: (N records per stream at 64 B, repeats) by mode; 1024-byte streams carry N/8 records
PLAN = {
    "quick": {"n64": 10_000_000, "repeats": 3, "py_repeats": 1, "sizes": (64,)},
    "full": {"n64": 40_000_000, "repeats": 5, "py_repeats": 3, "sizes": (64, 1024)},
}


def run(report: Report, quick: bool, headline: bool = False) -> None:
    """All of e2e, or with `headline` only the 64-byte C producer rate."""
    plan = PLAN["quick" if quick else "full"]
    exe = build_producer()
    n64 = plan["n64"]
    lossless = True
    sizes = (64,) if headline else plan["sizes"]
    report.meta["e2e"] = {"ring_bytes": RING_CAPACITY, "records_64": n64, "repeats": plan["repeats"],
                          "batch": {s: batch_for(s) for s in sizes},
                          "out_rows": {s: out_rows_for(s) for s in sizes},
                          "producer": os.path.relpath(exe, ROOT)}
    for size in sizes:
        count = n64 if size == 64 else n64 // 8
        log("e2e: C producer, %d records of %d B, %d runs" % (count, size, plan["repeats"]))
        res = stream(size, count, plan["repeats"], "c", exe)
        rates = _rates(report, res, "e2e %d B" % size)
        lossless &= len(rates) == plan["repeats"]
        if rates:
            report.add("e2e_records_per_s_%d" % size, None, "rec/s", samples=rates,
                       note="C producer process, block mode, %d records/run" % count)
            report.add("e2e_gbps_%d" % size, None, "GB/s", samples=[r * size / 1e9 for r in rates],
                       note="record bytes delivered into numpy")
            _busy(report, "e2e_*_busy_%d" % size, res)
    if not headline:
        # Memory flat in stream length: peak RSS of a consumer for N and 4N records.
        n_rss = n64 // 2
        peaks = {}
        for label, count in (("N", n_rss), ("4N", 4 * n_rss)):
            log("e2e: consumer peak RSS, one stream of %d records of 64 B" % count)
            res = stream(64, count, 1, "c", exe)
            rates = _rates(report, res, "e2e RSS %s" % label)
            lossless &= len(rates) == 1
            peaks[label] = res.get("rss_kib")
            report.add("e2e_rss_kib_%s" % label, res.get("rss_kib"), "KiB",
                       note="consumer ru_maxrss, %d records (%.0fM rec/s); VmHWM %s KiB"
                       % (count, (rates or [0])[0] / 1e6, res.get("vm_hwm_kib")))
            if label == "N":
                report.add("e2e_rss_kib_before_stream", res.get("rss_kib_start"), "KiB",
                           note="ru_maxrss after imports and the out= buffer, before the ring")
        if peaks.get("N") and peaks.get("4N"):
            report.add("e2e_rss_ratio_4N_N", peaks["4N"] / peaks["N"], "x", note="1.0 = flat")
        # The Python producer as a peer.
        log("e2e: Python producer (pykring.Producer, block mode), %d records of 64 B, %d runs"
            % (n64, plan["py_repeats"]))
        res = stream(64, n64, plan["py_repeats"], "py")
        rates = _rates(report, res, "e2e Python producer 64 B")
        lossless &= len(rates) == plan["py_repeats"]
        if rates:
            report.add("e2e_py_producer_records_per_s_64", None, "rec/s", samples=rates,
                       note="pykring.Producer in a Python process, block mode")
            _busy(report, "e2e_py_producer_*_busy_64", res)
    report.add("e2e_lossless", lossless, note="every run: count, last seq, written/dropped/lost, bodies")


def _main(argv: List[str]) -> int:
    if len(argv) == 2 and argv[0] == "--consumer":
        return consumer_main(json.loads(argv[1]))
    if len(argv) == 5 and argv[0] == "--py-producer":
        return py_producer_main(argv[1], int(argv[2]), int(argv[3]), int(argv[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
