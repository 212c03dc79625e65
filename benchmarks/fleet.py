"""fleet: ring -> Parquet through a local NATS JetStream, beside the direct recording.

A producer process (``pykring.Producer(block=True)``, numpy batches of 64-byte
records) writes N records into a 4 MiB ring. Two consumers, one after the
other, each in this process:

- ``local``: the drained batches go to a ``pykring.Recorder`` writing a
  ``.parquet`` file (what ``watch --output FILE.parquet`` does); the clock
  stops when the recorder closed the file.
- ``fleet``: the drained batches go to a ``NatsSink`` publishing to a local
  ``nats-server -js`` (tests/natsserver.py: the Debian package, a free
  loopback port, the store in a temporary directory) while ``python -m
  pykring collect`` (``--flush-seconds 0.5``) writes them to Parquet; the
  clock stops when the collector's files hold all N records (their footers,
  polled every 50 ms).

The clock starts when the producer starts writing. events/s = N / that
time. The CPU per event is this process's CPU time (user + system: the
drain, the encoding and the sink's or recorder's threads; not the producer,
the server or the collector) over the run, divided by N. ``fleet_vs_local``
is fleet events/s over local events/s; ``fleet_cpu_vs_local`` the ratio of
the CPU per event.

Keys: ``fleet_events_per_s``, ``local_events_per_s``, ``fleet_vs_local``,
``fleet_sink_cpu_ns_per_event``, ``local_recorder_cpu_ns_per_event``,
``fleet_cpu_vs_local``, ``fleet_exact`` (every record stored once, in both).

Child entry point (used by the harness)::

    python -m benchmarks.fleet --producer RING N
"""
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from typing import Dict, List

import numpy as np

from pykring._common import remove_ring, unique_ring_name

from ._common import ROOT, Report, log

#: 24-byte event header + 40 bytes = 64-byte records (as the demo's)
BODY = np.dtype([("pid", "<u4"), ("phase", "<u4"), ("value", "<f8"), ("name", "S24")])
RING_BYTES = 4 << 20
CHUNK = 16384
PLAN = {"quick": (200_000, 3), "full": (2_000_000, 3)}   # (records, rounds)
TIMEOUT_S = 600.0


def producer_main(name: str, n: int) -> int:
    import pykring

    rows = np.zeros(CHUNK, BODY)
    rows["pid"] = os.getpid()
    rows["name"] = b"fleet-benchmark"
    with pykring.Producer(name, block=True) as p:
        at = 0
        while at < n:
            m = min(CHUNK, n - at)
            rows["value"][:m] = np.arange(at, at + m)
            p.write(rows[:m])
            at += m
    return 0


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _drain(n: int, out_factory) -> Dict[str, float]:
    """Create the ring, start the producer, drain n records into out_factory(ring)."""
    import pykring

    name = unique_ring_name("bench-fleet")
    try:
        with pykring.create(name, RING_BYTES, BODY) as ring:
            out = out_factory(ring)
            cpu0, t0 = _cpu(), time.perf_counter()
            proc = subprocess.Popen([sys.executable, "-m", "benchmarks.fleet", "--producer", name, str(n)], cwd=ROOT)
            got = 0
            try:
                while got < n:
                    b = ring.read(timeout=30.0)
                    if len(b):
                        got += len(b)
                        out.write(b)
            finally:
                if proc.wait(60) != 0:
                    raise RuntimeError("the producer exited with status %s" % proc.returncode)
            return {"out": out, "t0": t0, "cpu0": cpu0, "got": got}
    finally:
        remove_ring(name)


def _local(n: int, tmp: str) -> Dict[str, float]:
    import pykring

    path = os.path.join(tmp, "local-%d.parquet" % time.monotonic_ns())
    r = _drain(n, lambda ring: pykring.Recorder(ring, path))
    r["out"].close()
    t, cpu = time.perf_counter() - r["t0"], _cpu() - r["cpu0"]
    stored = sum(len(b) for b in pykring.open_recording(path))
    os.unlink(path)
    return {"events_per_s": n / t, "cpu_ns_per_event": cpu / n * 1e9, "exact": stored == n}


def _fleet(n: int, url: str, out_dir: str) -> Dict[str, float]:
    from pykring.collect import summarize
    from pykring.sinks import NatsSink

    host = {"hostname": "bench-%d" % time.monotonic_ns(), "boot_id": "bench"}
    r = _drain(n, lambda ring: NatsSink(url, ring, host=host, backlog=256 << 20))
    sink = r["out"]
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        rep = summarize(out_dir).get(host["hostname"], {})
        if rep.get("events", 0) >= n:
            break
        if time.monotonic() > deadline:
            raise RuntimeError("the collector stored %s of %d records in %.0f s" % (rep, n, TIMEOUT_S))
        time.sleep(0.05)
    t, cpu = time.perf_counter() - r["t0"], _cpu() - r["cpu0"]
    sink.close()
    rep = summarize(out_dir)[host["hostname"]]
    return {"events_per_s": n / t, "cpu_ns_per_event": cpu / n * 1e9,
            "exact": rep == {"events": n, "dropped": 0, "gaps": 0, "streams": 1} and sink.dropped == 0}


def run(report: Report, quick: bool) -> None:
    from tests.natsserver import NatsServer

    n, rounds = PLAN["quick" if quick else "full"]
    tmp = tempfile.mkdtemp(prefix="pykring-bench-fleet-")
    srv = NatsServer(os.path.join(tmp, "js")).start()
    out_dir = os.path.join(tmp, "parquet")
    url = srv.url("pykring.bench")
    col_log = open(os.path.join(tmp, "collector.log"), "w")
    collector = subprocess.Popen([sys.executable, "-m", "pykring", "collect", url, "--output", out_dir,
                                  "--flush-seconds", "0.5", "--ack-wait", "30"], cwd=ROOT,
                                 stdout=col_log, stderr=col_log)
    try:
        local: List[Dict[str, float]] = []
        fleet: List[Dict[str, float]] = []
        for i in range(rounds):
            local.append(_local(n, tmp))
            fleet.append(_fleet(n, url, out_dir))
            log("fleet round %d: local %.0f events/s (%.0f ns CPU/event), fleet %.0f events/s (%.0f ns CPU/event)"
                % (i + 1, local[-1]["events_per_s"], local[-1]["cpu_ns_per_event"],
                   fleet[-1]["events_per_s"], fleet[-1]["cpu_ns_per_event"]))
    finally:
        collector.send_signal(signal.SIGTERM)
        try:
            collector.wait(60)
        except subprocess.TimeoutExpired:
            collector.kill()
            collector.wait()
        srv.stop()
        col_log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    note = "%d records of 64 B per round, %d rounds" % (n, rounds)
    report.add("fleet_events_per_s", 0, "events/s", note, samples=[r["events_per_s"] for r in fleet])
    report.add("local_events_per_s", 0, "events/s", note, samples=[r["events_per_s"] for r in local])
    fe = report.metrics["fleet_events_per_s"].value
    le = report.metrics["local_events_per_s"].value
    report.add("fleet_vs_local", fe / le if le else 0.0, "x", "fleet events/s over local events/s (medians)")
    report.add("fleet_sink_cpu_ns_per_event", 0, "ns", "drain + encode + NatsSink, this process",
               samples=[r["cpu_ns_per_event"] for r in fleet])
    report.add("local_recorder_cpu_ns_per_event", 0, "ns", "drain + Recorder (.parquet), this process",
               samples=[r["cpu_ns_per_event"] for r in local])
    fc = report.metrics["fleet_sink_cpu_ns_per_event"].value
    lc = report.metrics["local_recorder_cpu_ns_per_event"].value
    report.add("fleet_cpu_vs_local", fc / lc if lc else 0.0, "x", "CPU per event, fleet over local (medians)")
    exact = all(r["exact"] for r in fleet + local)
    report.add("fleet_exact", exact, "", "every record stored once, none dropped")
    if not exact:
        report.fail("fleet: records missing or stored twice")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--producer"]:
        sys.exit(producer_main(sys.argv[2], int(sys.argv[3])))
    sys.exit("usage: python -m benchmarks.fleet --producer RING N")
