"""``python -m pykring watch``: kernel events live, one line per event.

Text (default)::

    TIME             EVENT  PID      PPID     PATH / COMMAND LINE
    20:40:33.002486  exec   14967    14965    /usr/bin/ls  /bin/ls -l /tmp
    20:40:33.002495  image  14967    14965    /usr/bin/ls  0x55ba3c2e4000 +0x16000 main
    20:40:33.004426  exit   14967    14965    /usr/bin/ls  exit 0

Events: ``fork`` (a new process: it still runs its parent's program, whose
path and command line are shown), ``exec`` (a process starts a program),
``exit`` (the whole process has gone: exit code or signal), ``image`` (an
executable file mapped into a process: the program, its loader, libraries).

``--json`` prints JSON Lines instead, one object per event with keys
``type`` (process_start, process_exit, image_load), ``ts`` (ns since the
Unix epoch), ``pid``, ``ppid`` (null when unknown), ``path``, and where they
apply ``exit_code``, ``cmdline``, ``address``, ``length`` (and a few more).
A summary goes to stderr at the end. On Ctrl-C or SIGTERM (or at
``--duration``) the events the kernel had written by then are shown, and a
recording closed, before it stops.
"""
import argparse
import contextlib
import os
import re
import signal
import sys
import threading
import time
from typing import Any, Dict, Iterator, List, Mapping, Optional, TextIO, Tuple

from . import events as ev
from ._args import parse_regex, parse_seconds, parse_size, parse_wake_interval
from .recording import Recorder


class ProcessTable:
    """pid -> (ppid, path) for lines that need what their record lacks (the
    parent of an image load, the program of an exit). Filled from the
    process records and, for processes older than the watch, from /proc.

    What it learns from /proc is kept for a recording: ``snapshot`` (the
    processes running at prime()) and ``take_learned()`` (the lookups since
    the last call). A replay's table (``recorded=``) answers from those
    instead, never from this host."""

    def __init__(self, proc: str = "/proc", recorded: Optional[Mapping[str, Any]] = None):
        self._proc = proc
        self._known: Dict[int, Tuple[Optional[int], Optional[str]]] = {}
        #: pid -> (ppid, path) of the processes running at prime().
        self.snapshot: Dict[int, Tuple[Optional[int], Optional[str]]] = {}
        self._learned: Dict[int, Tuple[Optional[int], Optional[str]]] = {}
        self._recorded: Optional[Dict[int, Tuple[Optional[int], Optional[str]]]] = None
        if recorded is not None:
            self._recorded = {}
            self.snapshot = _proc_facts(recorded)

    def _from_proc(self, pid: int) -> Tuple[Optional[int], Optional[str]]:
        if self._recorded is not None:
            return self._recorded.get(pid, (None, None))
        ppid = path = None
        try:
            with open("%s/%d/stat" % (self._proc, pid), "rb") as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        except (OSError, ValueError, IndexError):
            pass
        try:
            path = os.readlink("%s/%d/exe" % (self._proc, pid))
        except OSError:
            pass
        return ppid, path

    def prime(self) -> None:
        """Remember the processes that exist now (their exits come later)."""
        if self._recorded is None:
            try:
                names = os.listdir(self._proc)
            except OSError:
                names = []
            self.snapshot = {int(n): self._from_proc(int(n)) for n in names if n.isdigit()}
        self._known.update(self.snapshot)

    def get(self, pid: int) -> Tuple[Optional[int], Optional[str]]:
        got = self._known.get(pid)
        if got is None:
            got = self._known[pid] = self._from_proc(pid)
            if self._recorded is None:
                self._learned[pid] = got
        return got

    def started(self, pid: int, ppid: int, path: Optional[str]) -> None:
        self._known[pid] = (ppid, path)

    def gone(self, pid: int) -> None:
        self._known.pop(pid, None)

    def take_learned(self) -> Dict[str, list]:
        """The /proc lookups since the last call, as recording facts."""
        got, self._learned = self._learned, {}
        return {str(pid): list(v) for pid, v in got.items()}

    def add_recorded(self, facts: Mapping[str, Any]) -> None:
        """A replay: what the live table learned from /proc for a batch."""
        if self._recorded is not None:
            self._recorded.update(_proc_facts(facts))


def _proc_facts(facts: Mapping[str, Any]) -> Dict[int, Tuple[Optional[int], Optional[str]]]:
    out: Dict[int, Tuple[Optional[int], Optional[str]]] = {}
    for pid, v in facts.items():
        try:
            out[int(pid)] = (None if v[0] is None else int(v[0]), None if v[1] is None else str(v[1]))
        except (TypeError, ValueError, IndexError):
            continue        # a damaged entry: as if nothing was known
    return out


class Watch:
    """Turns batches of kernel records into lines (text or JSON) on `out`."""

    def __init__(self, out: TextIO, as_json: bool = False, pid: Optional[int] = None,
                 count: Optional[int] = None, table: Optional[ProcessTable] = None,
                 uid: Optional[int] = None, comm: Optional[str] = None, tree: Optional[int] = None,
                 boot: Optional[str] = None, cgroups: Optional[Mapping[str, Any]] = None):
        """``boot``: the records' boot id (default: this boot's). ``cgroups``:
        a replay's recorded cgroup paths (default: looked up on this host)."""
        self.out = out
        self.boot = boot
        self._cgroups: Dict[int, Optional[str]] = {}
        self._cgroups_learned: Dict[int, Optional[str]] = {}
        self._cgroups_recorded = cgroups is not None
        self.as_json = as_json
        self.pid = pid
        self.uid = uid
        self.comm = re.compile(comm) if comm is not None else None
        #: --tree: the pids of the tree (filled from /proc by prime_tree(), then by forks).
        self.tree: Optional[set] = {tree} if tree is not None else None
        self._uids: Dict[int, int] = {}
        self.limit = count
        self.table = table if table is not None else ProcessTable()
        if cgroups is not None:
            self.add_recorded({"cgroup": cgroups})
        self.shown = 0
        self.received = 0
        self.by_kind = {k: 0 for k in ev.KINDS}

    def prime_tree(self) -> None:
        """Add the descendants of the --tree process running at prime()."""
        if self.tree is None:
            return
        parents: Dict[int, list] = {}
        for pid, (ppid, _) in self.table.snapshot.items():
            if ppid is not None:
                parents.setdefault(ppid, []).append(pid)
        todo = list(self.tree)
        while todo:
            for child in parents.get(todo.pop(), []):
                if child not in self.tree:
                    self.tree.add(child)
                    todo.append(child)

    def _wanted(self, e: dict) -> bool:
        pid = e["pid"]
        if self.pid is not None and pid != self.pid:
            return False
        if self.tree is not None and pid not in self.tree:
            return False
        if self.uid is not None and e.get("uid", self._uids.get(pid)) != self.uid:
            return False
        if self.comm is not None and not any(
                isinstance(x, str) and self.comm.search(x) for x in (e.get("comm"), e.get("path"))):
            return False
        return True

    def cgroup(self, cgroup_id: int) -> Optional[str]:
        """A cgroup id's path (for JSON lines), looked up once per id."""
        if cgroup_id not in self._cgroups:
            path = None if self._cgroups_recorded else ev.cgroup_path(cgroup_id)
            self._cgroups[cgroup_id] = path
            if not self._cgroups_recorded:
                self._cgroups_learned[cgroup_id] = path
        return self._cgroups[cgroup_id]

    def take_facts(self) -> Dict[str, Any]:
        """What this watch looked up on the host since the last call (a
        recording's facts of the batch just fed): {} if nothing."""
        facts: Dict[str, Any] = {}
        proc = self.table.take_learned()
        if proc:
            facts["proc"] = proc
        if self._cgroups_learned:
            facts["cgroup"] = {str(k): v for k, v in self._cgroups_learned.items()}
            self._cgroups_learned = {}
        return facts

    def add_recorded(self, facts: Mapping[str, Any]) -> None:
        """A replay: the facts recorded with the batch about to be fed."""
        self.table.add_recorded(facts.get("proc") or {})
        for k, v in (facts.get("cgroup") or {}).items():
            try:
                self._cgroups[int(k)] = None if v is None else str(v)
            except ValueError:
                continue

    @property
    def done(self) -> bool:
        return self.limit is not None and self.shown >= self.limit

    def header(self) -> None:
        if not self.as_json:
            self.out.write(ev.TEXT_HEADER + "\n")

    def feed(self, batch) -> None:
        """Print the events of one batch (stops at --count)."""
        lines = []
        for e in ev.event_dicts(batch, self.boot):
            self.received += 1
            t = e["type"]
            pid = e["pid"]
            if t == "process_start":
                self.table.started(pid, e["ppid"], e["path"])
                self._uids[pid] = e["uid"]
                if self.tree is not None and e["ppid"] in self.tree:
                    self.tree.add(pid)              # follows forks live
            elif t == "process_exit":
                ppid, path = self.table.get(pid)
                if e["path"] is None:       # the record has none (Windows, older kernels)
                    e["path"] = path
                if e["ppid"] is None:
                    e["ppid"] = ppid
                self.table.gone(pid)
            else:
                e["ppid"] = self.table.get(pid)[0]
            if not self._wanted(e):
                continue
            if self.done:
                break
            kind = ev.event_kind(e)
            self.by_kind[kind] += 1
            self.shown += 1
            lines.append(ev.json_line(e, self.cgroup) if self.as_json else ev.text_line(e, kind))
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    def summary(self, seconds: float, stats, who: str = "watch") -> str:
        """The last line: events shown by kind, the kernel's counts and the
        sequence gaps. `stats`: a ring's Stats or a recording's stats dict."""
        if isinstance(stats, Mapping):
            written, dropped, lost = stats.get("written"), stats.get("dropped"), stats.get("lost") or 0
        else:
            written, dropped, lost = stats.written, stats.dropped, stats.lost
        kinds = ", ".join("%s %d" % (k, self.by_kind[k]) for k in ev.KINDS)
        shown = "%d events" % self.shown
        if self.received != self.shown:
            shown += " shown of %d received" % self.received
        return ("pykring %s: %s in %.1f s (%s); kernel wrote %s, dropped %s; sequence gaps %d"
                % (who, shown, seconds, kinds, "?" if written is None else written,
                   "?" if dropped is None else dropped, lost))


#: Reads of what is pending when a watch is told to stop.
_LAST_READS = 4


def _lost_line(who: str, n: int) -> str:
    return "pykring %s: %d events lost (the kernel ring was full)\n" % (who, n)


#: What stops a watch as Ctrl-C does: SIGINT, and SIGTERM (kill, systemd,
#: timeout(1)), so that a recording is closed, not cut short.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _stops_held() -> Iterator[None]:
    """SIGINT and SIGTERM held inside: they arrive, as KeyboardInterrupt,
    when the block is done. Handlers that note them, not a signal mask: the
    process has other threads (pyarrow's, the sink's), and the kernel gives
    a process's signal to any thread that does not block it, whose Python
    handler then runs in the main thread, inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: List[int] = []
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])     # to the handler of before, now


def _open_outputs(args, ring, w: "Watch", t0: float) -> List[Any]:
    """The --output recorder and the --sink, in that order (KringError or
    OSError saying what is wrong)."""
    outputs: List[Any] = []
    host = None
    if getattr(args, "output", None) or getattr(args, "sink", None):
        from .recording import host_identity

        host = host_identity()
    try:
        if getattr(args, "output", None):
            facts = {"proc": {str(pid): list(v) for pid, v in w.table.snapshot.items()}}
            outputs.append(Recorder(ring, args.output, rotate=args.rotate, host=host, facts=facts, t0=t0))
        if getattr(args, "sink", None):
            from .recording import Layout
            from .sinks import open_sink

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
    try:
        ring = pykring.kernel(events=args.events, size=args.size, max_args=args.max_args,
                              wake_interval=getattr(args, "wake_interval", None))
    except ValueError as exc:
        err.write("pykring watch: %s\n" % exc)
        return 2
    except pykring.KringError as exc:
        err.write("pykring watch: %s\n" % exc)
        return 1
    w = Watch(out, as_json=args.json, pid=args.pid, count=args.count, uid=args.uid, comm=args.comm,
              tree=args.tree)
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
        err.write("pykring watch: %s events from the kernel, Ctrl-C to stop\n" % args.events)
        err.flush()

        def read_and_take() -> bool:
            """Read what is pending, print and record it; False if nothing was.
            Read, printed and recorded, or none of it: Ctrl-C and SIGTERM wait
            (a batch read is gone from the ring)."""
            nonlocal failed, lost
            with _stops_held():
                batch = ring.read_batch()
                if not batch:
                    return False
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

        piped = False
        try:
            w.header()
            while not w.done and failed is None:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                if ring.wait(timeout=0.5 if left is None else min(left, 0.5)):   # Ctrl-C ends it at once
                    read_and_take()
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
        for o in outputs:
            err.write("pykring watch: %s\n" % o.summary())
        err.flush()
    return 1 if failed is not None else 0


def replay(args, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """The `replay` command: a recording made by ``watch --output`` printed as
    the live watch printed it (its filters may differ from the live run's):
    the same lines, the same loss reports, in the recorded host's time zone."""
    from .errors import KringError
    from .recording import open_recording

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
              boot=host.get("boot_id", ""), cgroups=facts.get("cgroup") or {})
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
    p.add_argument("--output", metavar="FILE",
                   help="also record the events to FILE: .arrows (Arrow IPC stream), .parquet or .jsonl; "
                        "python -m pykring replay FILE prints them again")
    p.add_argument("--rotate", type=parse_size, metavar="BYTES",
                   help="with --output: a new file after BYTES (FILE's stem.000001.ext, .000002, ...)")
    p.add_argument("--sink", metavar="nats://HOST:PORT/SUBJECT",
                   help="also publish every batch to a NATS JetStream subject (docs/FLEET.md)")
    from . import __version__

    p.add_argument("--version", action="version", version="pykring %s" % __version__)
    p.add_argument("--size", type=parse_size, default=16 << 20, metavar="BYTES",
                   help="kernel ring buffer size, a power of two (default 16M)")
    p.add_argument("--max-args", type=parse_size, default=4096, metavar="BYTES",
                   help="bytes of command line per process start, 64 .. 64K (default 4K); longer ones are cut")
    p.add_argument("--wake-interval", type=parse_wake_interval, default=None, metavar="S",
                   help="Linux: seconds (or 5ms) an event may wait before the reader is woken, up to 10 s; "
                        "default 5ms (batched: little CPU per event); 0: woken per event (lowest latency)")
