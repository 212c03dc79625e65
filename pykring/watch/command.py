"""The ``watch`` and ``replay`` commands (run, replay) and their options
(add_arguments, add_replay_arguments); what they print is described in
:mod:`pykring.watch`."""
import argparse
import os
import sys
import time
from typing import Any, List, Optional, TextIO, Tuple

from .. import events as ev
from .._args import parse_regex, parse_seconds, parse_size, parse_wake_interval
from ..batch import Batch
from ..recording.recorder import Recorder
from .printer import Watch
from .stop_signals import _sigterm_stops, _stops_held
from .table import ProcessTable


#: Reads of what is pending when a watch is told to stop.
_LAST_READS = 4


def _lost_line(who: str, n: int) -> str:
    return "pykring %s: %d events lost (the kernel ring was full)\n" % (who, n)


def _open_outputs(args, ring, w: "Watch", t0: float) -> List[Any]:
    """The --output recorder and the --sink, in that order (KringError or
    OSError saying what is wrong)."""
    outputs: List[Any] = []
    host = None
    if getattr(args, "output", None) or getattr(args, "sink", None):
        from ..recording.host import host_identity

        host = host_identity()
    try:
        if getattr(args, "output", None):
            facts: dict = {"proc": {str(pid): list(v) for pid, v in w.table.snapshot.items()}}
            if w.hasher is not None:
                facts["hashes"] = True          # a replay waits for each exec's hash
            outputs.append(Recorder(ring, args.output, rotate=args.rotate, host=host, facts=facts, t0=t0))
        if getattr(args, "sink", None):
            from ..recording.rows import Layout
            from ..sinks.urls import open_sink

            outputs.append(open_sink(args.sink, Layout.of(ring, host)))
    except BaseException:
        for o in outputs:
            o.close()
        raise
    return outputs


def run(args, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """The `watch` command (arguments from pykring.__main__)."""
    import pykring

    out = out or sys.stdout
    err = err or sys.stderr
    if getattr(args, "rotate", None) is not None and not getattr(args, "output", None):
        err.write("pykring watch: --rotate needs --output FILE\n")
        return 2
    # --pid, --tree, --uid and --cgroup apply in the kernel where it can (Linux);
    # elsewhere the first three in Watch, after the drain.
    in_kernel = sys.platform.startswith("linux")
    kfilters = {"pids": args.pid, "tree": args.tree, "uids": args.uid} if in_kernel else {}
    if getattr(args, "cgroup", None) is not None:
        if not in_kernel:
            err.write("pykring watch: --cgroup is a Linux filter\n")
            return 2
        kfilters["cgroup"] = args.cgroup
    try:
        ring = pykring.kernel(events=args.events, size=args.size, max_args=args.max_args,
                              wake_interval=getattr(args, "wake_interval", None), **kfilters)
    except ValueError as exc:
        err.write("pykring watch: %s\n" % exc)
        return 2
    except pykring.KringError as exc:
        err.write("pykring watch: %s\n" % exc)
        return 1
    hasher = ev.ExecHasher(max_size=args.hash_max_size) if getattr(args, "hash", False) else None
    if in_kernel:
        w = Watch(out, as_json=args.json, count=args.count, comm=args.comm, hasher=hasher)
    else:
        w = Watch(out, as_json=args.json, pid=args.pid, count=args.count, uid=args.uid, comm=args.comm,
                  tree=args.tree, hasher=hasher)
    w.table.prime()
    w.prime_tree()
    t0 = time.monotonic()
    deadline = None if args.duration is None else t0 + args.duration
    lost = 0
    failed: Optional[Tuple[Any, OSError]] = None     # an output whose write failed, and why
    with ring, _sigterm_stops():
        try:
            outputs = _open_outputs(args, ring, w, t0)
        except (pykring.KringError, OSError, ImportError) as exc:
            # A file it cannot write, pyarrow missing: usage (2); a sink's server: 1.
            said = str(exc)
            if isinstance(exc, OSError) and not isinstance(exc, pykring.KringError):
                said = "cannot write the recording %s: %s" % (exc.filename or args.output, exc.strerror or exc)
            err.write("pykring watch: %s\n" % said)
            return 1 if isinstance(exc, pykring.KringError) and not isinstance(exc, pykring.RecordingError) else 2
        flt = getattr(getattr(ring, "source", None), "filter", None)
        err.write("pykring watch: %s events from the kernel%s, Ctrl-C to stop\n"
                  % (args.events, " of %s (filtered in the kernel)" % flt.describe() if flt else ""))
        err.flush()

        empty: Optional[Batch] = None           # a batch of no rows: the last facts' frame

        def read_and_take() -> bool:
            """Read what is pending, print and record it, and report its loss;
            False if nothing was. All of it or none of it: Ctrl-C and SIGTERM
            wait (a batch read is gone from the ring, and a loss not said with
            its batch would be said with a later one, unlike in the replay)."""
            nonlocal failed, lost, empty
            with _stops_held():
                batch = ring.read_batch()
                if not batch:
                    return False
                if empty is None and hasher is not None:
                    empty = Batch({k: v[:0] for k, v in batch.items()})
                w.feed(batch)
                st = ring.stats
                if outputs:
                    facts = w.take_facts()
                    for o in outputs:
                        try:
                            o.write(batch, st, facts)
                        except OSError as exc:      # a full disk, a vanished directory
                            failed = (o, exc)
                            return True
                if st.lost > lost:
                    err.write(_lost_line("watch", st.lost - lost))
                    err.flush()
                    lost = st.lost
            return True

        def take_hashes(wait: bool = False) -> None:
            """Print the lines that waited for their hashes; `wait`: all of
            them, and record the hashes no frame holds yet."""
            nonlocal failed
            with _stops_held():
                w.flush(wait)
                facts = w.take_facts() if wait and empty is not None and failed is None else None
                for o in outputs if facts else ():
                    if isinstance(o, Recorder):
                        try:
                            o.write(empty, ring.stats, facts)
                        except OSError as exc:
                            failed = (o, exc)

        piped = False
        try:
            w.header()
            while not w.done and failed is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                nap = 0.5 if hasher is None else 0.05       # hashes done while no event came
                if ring.wait(timeout=nap if left is None else min(left, nap)):   # Ctrl-C ends it at once
                    read_and_take()
                elif hasher is not None:
                    take_hashes()
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            piped = True
        if not piped and failed is None:
            # Told to stop (Ctrl-C, --duration): what the kernel had written by
            # then is shown too, not left in the ring. A few reads, no waiting:
            # a busy machine does not keep it going; a second Ctrl-C ends it.
            try:
                for _ in range(_LAST_READS):
                    if w.done or failed is not None or not read_and_take():
                        break
            except KeyboardInterrupt:
                pass
            except BrokenPipeError:
                piped = True
        if hasher is not None:
            try:
                if not piped:
                    take_hashes(wait=True)
            except BrokenPipeError:
                piped = True
            finally:
                hasher.close()
        if piped:
            # The reader went away (| head): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        final = ring.stats
        elapsed = time.monotonic() - t0
        for o in outputs:
            try:
                o.close(final, t=elapsed) if isinstance(o, Recorder) else o.close(final)
            except OSError as exc:
                if failed is None:
                    failed = (o, exc)
        if failed is not None:
            bad, why = failed
            where = getattr(bad, "path", None) or getattr(bad, "url", "the output")
            err.write("pykring watch: recording to %s failed: %s; the watch stopped. What was recorded "
                      "before stays readable (python -m pykring replay reads up to the last complete "
                      "batch)\n" % (where, why.strerror or why))
        err.write(w.summary(elapsed, final) + "\n")
        if hasher is not None:
            err.write("pykring watch: %s\n" % hasher.summary())
        for o in outputs:
            err.write("pykring watch: %s\n" % o.summary())
        err.flush()
    return 1 if failed is not None else 0


def replay(args, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """The `replay` command: a recording made by ``watch --output`` printed as
    the live watch printed it (its filters may differ from the live run's):
    the same lines, the same loss reports, in the recorded host's time zone."""
    from ..errors import KringError
    from ..recording.reader import open_recording

    out = out or sys.stdout
    err = err or sys.stderr
    try:
        rec = open_recording(args.file)
    except (KringError, OSError, ImportError) as exc:
        err.write("pykring replay: %s\n" % exc)
        return 2
    if not {"process_start", "process_exit", "image_load"} <= set(rec.dtypes):
        err.write("pykring replay: %s is not a recording of kernel events (its types: %s); read it with "
                  "pykring.open_recording()\n" % (args.file, ", ".join(rec.dtypes)))
        return 2
    host = rec.host
    tz = host.get("timezone")
    if tz and not getattr(args, "local_time", False):
        os.environ["TZ"] = tz
        time.tzset()
        ev.reset_clock()
    facts = rec.header.get("facts") or {}
    w = Watch(out, as_json=args.json, pid=args.pid, count=args.count, uid=args.uid, comm=args.comm,
              tree=args.tree, table=ProcessTable(recorded=facts.get("proc") or {}),
              boot=host.get("boot_id", ""), cgroups=facts.get("cgroup") or {},
              hashes_recorded=bool(facts.get("hashes")))
    w.table.prime()
    w.prime_tree()
    err.write("pykring replay: %s, recorded on %s\n" % (", ".join(rec.files) if len(rec.files) <= 3 else
                                                       "%s .. %s" % (rec.files[0], rec.files[-1]),
                                                       host.get("hostname") or "an unnamed host"))
    lost = 0
    try:
        w.header()
        for frame in rec.frames():
            if w.done:
                break
            w.add_recorded(frame.facts)
            if frame.batch.count:
                w.feed(frame.batch)
            now = frame.stats.get("lost") or 0
            if now > lost:
                err.write(_lost_line("replay", now - lost))
                lost = now
        w.flush(wait=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except KringError as exc:
        err.write("pykring replay: %s\n" % exc)
        return 1
    if rec.truncated:
        err.write("pykring replay: the recording was cut short (a crash or a kill): replayed up to its "
                  "last complete batch\n")
    err.write(w.summary(rec.seconds, rec.stats, who="replay") + "\n")
    err.flush()
    return 0


def add_replay_arguments(p) -> None:
    """The `replay` subcommand's options."""
    p.add_argument("file", metavar="FILE",
                   help="a recording of watch --output (.arrows, .parquet, .jsonl; a rotated series by its name)")
    p.add_argument("--json", action="store_true", help="JSON Lines instead of text")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--local-time", action="store_true",
                   help="times in this host's time zone, not the recorded host's")
    _add_filters(p)


def _add_filters(p) -> None:
    p.add_argument("--pid", type=int, metavar="P", help="only events of process P")
    p.add_argument("--uid", type=int, metavar="U", help="only events of processes whose real uid is U")
    p.add_argument("--comm", type=parse_regex, metavar="REGEX", help="only events whose comm or path matches REGEX")
    p.add_argument("--tree", type=int, metavar="PID",
                   help="only events of process PID and all its descendants (new ones too)")


def add_arguments(p) -> None:
    """The `watch` subcommand's options."""
    p.add_argument("--json", action="store_true", help="JSON Lines instead of text")
    p.add_argument("--duration", type=parse_seconds, metavar="S", help="stop after S seconds (>= 0)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--events", default="process,image", metavar="process,image",
                   help="which events: process, image or both (default)")
    _add_filters(p)
    p.add_argument("--cgroup", metavar="PATH",
                   help="Linux: only events of processes in cgroup (v2) PATH or below it: its directory, "
                        "or the path /proc/PID/cgroup shows")
    p.add_argument("--output", metavar="FILE",
                   help="also record the events to FILE: .arrows (Arrow IPC stream), .parquet or .jsonl; "
                        "python -m pykring replay FILE prints them again")
    p.add_argument("--rotate", type=parse_size, metavar="BYTES",
                   help="with --output: a new file after BYTES (FILE's stem.000001.ext, .000002, ...)")
    p.add_argument("--hash", action="store_true",
                   help="Linux: the sha256 of each executed file (through /proc/PID/exe, in a worker thread, "
                        "each file once: by device, inode, size, mtime and ctime)")
    p.add_argument("--hash-max-size", type=parse_size, default=ev.hashes.MAX_SIZE, metavar="BYTES",
                   help="with --hash: larger files get hash_error, not read (default 256M)")
    p.add_argument("--sink", metavar="nats://HOST:PORT/SUBJECT",
                   help="also publish every batch to a NATS JetStream subject (docs/FLEET.md)")
    from .. import __version__

    p.add_argument("--version", action="version", version="pykring %s" % __version__)
    p.add_argument("--size", type=parse_size, default=16 << 20, metavar="BYTES",
                   help="kernel ring buffer size, a power of two (default 16M)")
    p.add_argument("--max-args", type=parse_size, default=4096, metavar="BYTES",
                   help="bytes of command line per process start, 64 .. 64K (default 4K); longer ones are cut")
    p.add_argument("--wake-interval", type=parse_wake_interval, default=None, metavar="S",
                   help="Linux: seconds (or 5ms) an event may wait before the reader is woken, up to 10 s; "
                        "default 5ms (batched: little CPU per event); 0: woken per event (lowest latency)")
