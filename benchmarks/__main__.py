"""python -m benchmarks <command> [--quick] [--json] [--records N]

Commands are lists of (benchmark, options); benchmarks are modules with a
``run(report, quick, **options)`` function. Add a benchmark: one module,
one line in BENCHMARKS, and a step in the COMMANDS that should run it.
"""
import argparse
import importlib
import inspect
import json
import os
import sys
import time
from typing import Dict, List, Tuple

from ._common import Report, log, machine

#: benchmark name -> (module, one-line description)
BENCHMARKS: Dict[str, Tuple[str, str]] = {
    "drain": ("benchmarks.drain", "Ring.read(out=) throughput vs memcpy of the same ring bytes"),
    "e2e": ("benchmarks.e2e", "producer process -> ring -> numpy, lossless; consumer RSS for N and 4N"),
    "peers": ("benchmarks.peers", "end to end vs multiprocessing.Queue, faster-fifo, zmq, iceoryx2, a pipe"),
    "latency": ("benchmarks.latency", "wake latency of an idle consumer vs an eventfd floor"),
    "idle": ("benchmarks.idle", "CPU time of a consumer blocked in read(timeout=None)"),
    "scaling": ("benchmarks.scaling", "throughput vs ring size and read batch; peak RSS vs stream length"),
    "bpf": ("benchmarks.bpf", "BPF ring: pykring vs libbpf's C consumer; fork rate with/without programs; spawn loss"),
    "fleet": ("benchmarks.fleet", "ring -> NatsSink -> local JetStream -> collect -> Parquet vs a direct Recorder"),
    "soak": ("benchmarks.soak", "10**9 checksummed records, producer process -> ring -> numpy: none lost, torn, reordered"),
    "arrow": ("benchmarks.arrow", "drain vs drain + to_arrow, + a Parquet / Arrow IPC recording; user and kernel records"),
    "results": ("benchmarks.results", "writes RESULTS.md (its generated section), the PNG plots and README's figures"),
    "readme": ("benchmarks.readme", "README's Performance figures from RESULTS.md's generated block (measures nothing)"),
}

#: command -> steps (benchmark, options for its run())
COMMANDS: Dict[str, List[Tuple[str, dict]]] = {
    # the headline pair reviewers run: drain ratio and the end-to-end rate at 64 B
    "drain": [("drain", {}), ("e2e", {"headline": True})],
    "e2e": [("e2e", {})],
    "peers": [("peers", {})],
    "latency": [("latency", {})],
    "idle": [("idle", {})],
    "scaling": [("scaling", {})],
    "bpf": [("bpf", {"required": True})],          # 'all' skips it (with a note) without root or toolchain
    # fleet mode: needs nats-server (run.sh bench installs it) and pykring[nats]
    "fleet": [("fleet", {})],
    # long runs, not part of 'all': --records N (default 10**9, 10**7 with --quick)
    "soak": [("soak", {})],
    "soak-restart": [("soak", {"restarts": 4})],
    # the Arrow bridge and recordings against the plain drain (needs pyarrow; not part of 'all':
    # its numbers are in RESULTS.md's hand-written section "Arrow and recordings")
    "arrow": [("arrow", {})],
    # README's Performance block again from the committed RESULTS.md, nothing run
    "readme": [("readme", {})],
    # everything, then RESULTS.md and the plots from this run's numbers
    "all": [("drain", {"sizes": (32, 40, 64, 128, 256, 512, 1024, 2048, 4096)}), ("e2e", {}), ("peers", {}),
            ("latency", {}), ("idle", {}), ("scaling", {})]
           + ([("bpf", {})] if "bpf" in BENCHMARKS else []) + [("results", {})],
}


def _loadavg() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return -1.0


def _count(text: str) -> int:
    """A record count: 1000000000, 1e9 or 10**9."""
    try:
        if "**" in text:
            base, _, exp = text.partition("**")
            value = int(base) ** int(exp)
        elif text.isdigit():
            value = int(text)
        else:
            f = float(text)
            if not f.is_integer():
                raise ValueError(text)
            value = int(f)
    except (ValueError, OverflowError):
        raise argparse.ArgumentTypeError("not a whole number of records: %r" % text) from None
    if value < 1:
        raise argparse.ArgumentTypeError("at least 1 record, not %d" % value)
    return value


def _takes(bench: str, option: str) -> bool:
    run = importlib.import_module(BENCHMARKS[bench][0]).run
    return option in inspect.signature(run).parameters


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    ap.add_argument("command", nargs="?", choices=sorted(COMMANDS), help="what to run")
    ap.add_argument("--quick", action="store_true", help="fewer rounds and shorter streams (< 1 min)")
    ap.add_argument("--json", action="store_true", help="print one JSON object on stdout, nothing else")
    ap.add_argument("--save", metavar="PATH", help="also write the JSON object to PATH")
    ap.add_argument("--list", action="store_true", help="list commands and benchmarks")
    ap.add_argument("--records", type=_count, metavar="N",
                    help="records per stream, for the steps that take it (soak: default 10**9, 10**7 with --quick)")
    args = ap.parse_args(argv)
    if args.list or not args.command:
        for name, steps in COMMANDS.items():
            print("%-6s %s" % (name, " + ".join(b + (" (%s)" % ",".join(o) if o else "")
                                               for b, o in steps)))
        for name, (_, desc) in BENCHMARKS.items():
            print("  %-6s %s" % (name, desc))
        return 0 if args.list else 2
    if args.records is not None and not any(_takes(b, "records") for b, _ in COMMANDS[args.command]):
        takers = [c for c, steps in COMMANDS.items() if any(_takes(b, "records") for b, _ in steps)]
        ap.error("--records does not apply to %r (%s)" % (
            args.command, "it does to: " + ", ".join(takers) if takers else "no command takes it"))

    report = Report()
    report.meta.update(machine())
    report.meta.update(command="python -m benchmarks %s%s%s%s" % (
        args.command, " --quick" if args.quick else "",
        " --records %d" % args.records if args.records is not None else "", " --json" if args.json else ""),
        quick=args.quick)
    report.meta["loadavg_start"] = _loadavg()
    t0 = time.monotonic()
    for bench, options in COMMANDS[args.command]:
        module = importlib.import_module(BENCHMARKS[bench][0])
        if args.records is not None and _takes(bench, "records"):
            options = dict(options, records=args.records)
        try:
            module.run(report, args.quick, **options)
        except Exception as exc:   # one broken benchmark must not hide the others' numbers
            report.fail("%s: %s: %s" % (bench, type(exc).__name__, exc))
    report.meta["seconds"] = round(time.monotonic() - t0, 1)
    report.meta["loadavg_end"] = _loadavg()
    log("done in %.1f s" % report.meta["seconds"])

    if args.save:
        with open(args.save, "w") as f:
            json.dump(report.as_json(), f, indent=1)
            f.write("\n")
    if args.json:
        print(json.dumps(report.as_json()))
    else:
        print("%s  (%s, %s CPUs, Linux %s, Python %s, numpy %s, %s)" % (
            report.meta["command"], report.meta.get("cpu"), report.meta.get("cpus"),
            report.meta.get("kernel"), report.meta.get("python"), report.meta.get("numpy"),
            report.meta.get("date")))
        print("load average (1 min) at start %s, at end %s: the machine is shared, other load skews"
              " the numbers" % (report.meta["loadavg_start"], report.meta["loadavg_end"]))
        print(report.table())
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
