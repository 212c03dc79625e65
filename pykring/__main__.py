"""Command line: ``python -m pykring <command>``.

``watch``: kernel events (process start and exit, image loads) live, one
line per event or JSON Lines (see pykring.watch).

``demo``: a producer process streams records through a shared-memory ring
into this process, which prints them as they arrive and then measures the
lossless throughput of a flood.
"""
import argparse
import os
import subprocess
import sys
import time
from typing import List, Optional

import numpy as np

#: The demo's record: 24-byte event header + 40 bytes = 64 bytes.
DEMO_BODY = np.dtype([("pid", "<u4"), ("phase", "<u4"), ("value", "<f8"), ("name", "S24")])
FLOOD_BATCH = 16384


def _demo_producer(argv: List[str]) -> int:
    """The demo's producer process (internal)."""
    import pykring

    name, paced, interval, flood = argv[0], int(argv[1]), float(argv[2]), int(argv[3])
    with pykring.Producer(name, block=True) as p:
        pid = os.getpid()
        for i in range(paced):
            p.write((pid, 0, float(i), b"tick-%d" % i))
            time.sleep(interval)
        batch = np.zeros(FLOOD_BATCH, dtype=DEMO_BODY)
        batch["pid"] = pid
        batch["phase"] = 1
        batch["name"] = b"flood"
        left = flood
        while left > 0:
            n = min(left, FLOOD_BATCH)
            batch["value"][:n] = np.arange(flood - left, flood - left + n)
            p.write(batch[:n])
            left -= n
    return 0


def _fmt_ts(ts: np.datetime64) -> str:
    return str(ts.astype("datetime64[us]")).split("T")[1]


def demo(args: argparse.Namespace) -> int:
    import pykring

    name = "pykring-demo-%d" % os.getpid()
    from ._args import parse_size

    capacity = parse_size(args.capacity)
    out = sys.stdout
    with pykring.create(name, capacity, DEMO_BODY, replace=True) as ring:
        out.write("pykring demo: ring %s, %d KiB, %d-byte records (%s)\n" % (
            ring.path, capacity >> 10, ring.dtype.itemsize, ", ".join(ring.dtype.names or ())))
        proc = subprocess.Popen([sys.executable, "-m", "pykring", "_demo-producer", name,
                                 str(args.show), str(args.interval), str(args.records)])
        out.write("producer process %d: %d records one at a time, then a flood of %d\n"
                  % (proc.pid, args.show, args.records))
        buf = np.empty(max(1, capacity // 72), dtype=ring.dtype)
        total = flood = 0
        t_flood = t_report = None
        last_seq = -1
        try:
            while True:
                try:
                    recs = ring.read(timeout=None, out=buf)
                except pykring.RingClosedError:
                    break
                now = time.time_ns()
                total += len(recs)
                if len(recs):
                    last_seq = int(recs["seq"][-1])
                paced = recs[recs["phase"] == 0]
                for r in paced:
                    lat_us = (now - int(r["ts"].astype(np.int64))) / 1e3
                    out.write("%s  seq=%-3d pid=%d  %-8s value=%-4g arrived after %.0f us\n" % (
                        _fmt_ts(r["ts"]), r["seq"], r["pid"], r["name"].decode(), r["value"], lat_us))
                n_flood = len(recs) - len(paced)
                if n_flood:
                    if t_flood is None:
                        t_flood = t_report = time.perf_counter()
                        out.write("flood: %d records as fast as the producer writes them (lossless)\n"
                                  % args.records)
                    flood += n_flood
                    assert t_report is not None     # set with t_flood
                    if time.perf_counter() - t_report >= 1.0:
                        el = time.perf_counter() - t_flood
                        out.write("  %5.1f s  %d records  %.1f M records/s\n" % (el, flood, flood / el / 1e6))
                        t_report = time.perf_counter()
                out.flush()
        except KeyboardInterrupt:
            proc.kill()
            out.write("\ninterrupted\n")
        finally:
            proc.wait()
        el = (time.perf_counter() - t_flood) if t_flood else 0.0
        st = ring.stats
        out.write("done: %d records (last seq %d), lost %d, dropped %d" % (total, last_seq, st.lost, st.dropped or 0))
        if el > 0:
            out.write("; flood %.1f M records/s, %.2f GB/s of %d-byte records"
                      % (flood / el / 1e6, flood * ring.dtype.itemsize / el / 1e9, ring.dtype.itemsize))
        out.write("\n")
        ok = proc.returncode == 0 and st.lost == 0 and total == args.show + args.records
        return 0 if ok else 1


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["_demo-producer"]:
        return _demo_producer(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m pykring",
                                     description="pykring: high-rate record streams into numpy.")
    sub = parser.add_subparsers(dest="command", required=True)
    w = sub.add_parser("watch", help="kernel events live: process start/exit and image loads")
    from .watch.command import add_arguments, run as run_watch

    add_arguments(w)
    c = sub.add_parser("collect", help="fleet: the sinks' messages from NATS JetStream into Parquet (docs/FLEET.md)")
    from .collect.command import add_arguments as add_collect_arguments, run as run_collect

    add_collect_arguments(c)
    r = sub.add_parser("replay", help="print a recording of watch --output as the live watch printed it")
    from .watch.command import add_replay_arguments, replay

    add_replay_arguments(r)
    d = sub.add_parser("demo", help="stream records from a producer process and measure throughput")
    d.add_argument("--records", type=int, default=20_000_000, help="records in the flood (default 20M)")
    d.add_argument("--show", type=int, default=10, help="records sent one at a time and printed")
    d.add_argument("--interval", type=float, default=0.1, help="seconds between those records")
    d.add_argument("--capacity", default="16M", help="ring size (power of two, e.g. 16M)")
    args = parser.parse_args(argv)
    try:
        if args.command == "watch":
            return run_watch(args)
        if args.command == "collect":
            return run_collect(args)
        if args.command == "replay":
            return replay(args)
        return demo(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
