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
A summary goes to stderr at the end.
"""
import argparse
import os
import re
import sys
import time
from typing import Dict, Optional, TextIO, Tuple

from . import events as ev


class ProcessTable:
    """pid -> (ppid, path) for lines that need what their record lacks (the
    parent of an image load, the program of an exit). Filled from the
    process records and, for processes older than the watch, from /proc."""

    def __init__(self, proc: str = "/proc"):
        self._proc = proc
        self._known: Dict[int, Tuple[Optional[int], Optional[str]]] = {}

    def _from_proc(self, pid: int) -> Tuple[Optional[int], Optional[str]]:
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
        try:
            names = os.listdir(self._proc)
        except OSError:
            return
        for name in names:
            if name.isdigit():
                self._known[int(name)] = self._from_proc(int(name))

    def get(self, pid: int) -> Tuple[Optional[int], Optional[str]]:
        got = self._known.get(pid)
        if got is None:
            got = self._known[pid] = self._from_proc(pid)
        return got

    def started(self, pid: int, ppid: int, path: Optional[str]) -> None:
        self._known[pid] = (ppid, path)

    def gone(self, pid: int) -> None:
        self._known.pop(pid, None)


class Watch:
    """Turns batches of kernel records into lines (text or JSON) on `out`."""

    def __init__(self, out: TextIO, as_json: bool = False, pid: Optional[int] = None,
                 count: Optional[int] = None, table: Optional[ProcessTable] = None,
                 uid: Optional[int] = None, comm: Optional[str] = None, tree: Optional[int] = None):
        self.out = out
        self.as_json = as_json
        self.pid = pid
        self.uid = uid
        self.comm = re.compile(comm) if comm is not None else None
        #: --tree: the pids of the tree (filled from /proc by prime_tree(), then by forks).
        self.tree: Optional[set] = {tree} if tree is not None else None
        self._uids: Dict[int, int] = {}
        self.limit = count
        self.table = table if table is not None else ProcessTable()
        self.shown = 0
        self.received = 0
        self.by_kind = {k: 0 for k in ev.KINDS}

    def prime_tree(self, proc: str = "/proc") -> None:
        """Add the running descendants of the --tree process."""
        if self.tree is None:
            return
        parents: Dict[int, list] = {}
        for name in os.listdir(proc):
            if name.isdigit():
                ppid = self.table.get(int(name))[0]
                if ppid is not None:
                    parents.setdefault(ppid, []).append(int(name))
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

    @property
    def done(self) -> bool:
        return self.limit is not None and self.shown >= self.limit

    def header(self) -> None:
        if not self.as_json:
            self.out.write(ev.TEXT_HEADER + "\n")

    def feed(self, batch) -> None:
        """Print the events of one batch (stops at --count)."""
        lines = []
        for e in ev.event_dicts(batch):
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
            lines.append(ev.json_line(e) if self.as_json else ev.text_line(e, kind))
        if lines:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()

    def summary(self, seconds: float, stats) -> str:
        kinds = ", ".join("%s %d" % (k, self.by_kind[k]) for k in ev.KINDS)
        shown = "%d events" % self.shown
        if self.received != self.shown:
            shown += " shown of %d received" % self.received
        return ("pykring watch: %s in %.1f s (%s); kernel wrote %s, dropped %s; sequence gaps %d"
                % (shown, seconds, kinds, "?" if stats.written is None else stats.written,
                   "?" if stats.dropped is None else stats.dropped, stats.lost))


def run(args, out: Optional[TextIO] = None, err: Optional[TextIO] = None) -> int:
    """The `watch` command (arguments from pykring.__main__)."""
    import pykring

    out = out or sys.stdout
    err = err or sys.stderr
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
    with ring:
        err.write("pykring watch: %s events from the kernel, Ctrl-C to stop\n" % args.events)
        err.flush()
        try:
            w.header()
            while not w.done:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                batch = ring.read_batch(timeout=0.5 if left is None else min(left, 0.5))
                if batch:
                    w.feed(batch)
                    st = ring.stats
                    if st.lost > lost:
                        err.write("pykring watch: %d events lost (the kernel ring was full)\n" % (st.lost - lost))
                        err.flush()
                        lost = st.lost
        except KeyboardInterrupt:
            pass
        except BrokenPipeError:
            # The reader went away (| head): stop quietly.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, out.fileno())
            os.close(devnull)
        err.write(w.summary(time.monotonic() - t0, ring.stats) + "\n")
        err.flush()
    return 0


def add_arguments(p) -> None:
    """The `watch` subcommand's options."""
    p.add_argument("--json", action="store_true", help="JSON Lines instead of text")
    p.add_argument("--duration", type=_seconds, metavar="S", help="stop after S seconds (>= 0)")
    p.add_argument("--count", type=int, metavar="N", help="stop after N events")
    p.add_argument("--events", default="process,image", metavar="process,image",
                   help="which events: process, image or both (default)")
    p.add_argument("--pid", type=int, metavar="P", help="only events of process P")
    p.add_argument("--uid", type=int, metavar="U", help="only events of processes whose real uid is U")
    p.add_argument("--comm", type=_regex, metavar="REGEX", help="only events whose comm or path matches REGEX")
    p.add_argument("--tree", type=int, metavar="PID",
                   help="only events of process PID and all its descendants (new ones too)")
    from . import __version__

    p.add_argument("--version", action="version", version="pykring %s" % __version__)
    p.add_argument("--size", type=parse_size, default=16 << 20, metavar="BYTES",
                   help="kernel ring buffer size, a power of two (default 16M)")
    p.add_argument("--max-args", type=parse_size, default=4096, metavar="BYTES",
                   help="bytes of command line per process start, 64 .. 64K (default 4K); longer ones are cut")
    p.add_argument("--wake-interval", type=_interval, default=None, metavar="S",
                   help="Linux: seconds (or 5ms) an event may wait before the reader is woken, up to 10 s; "
                        "default 5ms (batched: little CPU per event); 0: woken per event (lowest latency)")


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("invalid duration %r: a number of seconds >= 0 (e.g. 10, 0.5)" % text)
    return v


def _interval(text: str) -> float:
    t = text.strip().lower()
    scale = 1e-3 if t.endswith("ms") else 1.0
    t = t[:-2] if t.endswith("ms") else t[:-1] if t.endswith("s") else t
    try:
        v = float(t) * scale
    except ValueError:
        v = -1.0
    if not 0 <= v <= 10:
        raise argparse.ArgumentTypeError("invalid wake interval %r: seconds from 0 to 10 (e.g. 0.005, 5ms, 0)" % text)
    return v


def _regex(text: str) -> str:
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError("invalid regular expression %r: %s" % (text, exc))
    return text


def parse_size(text: str) -> int:
    """Bytes from "16M", "64KiB", "4096"; argparse.ArgumentTypeError saying
    what a valid size looks like otherwise."""
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().rstrip("B").rstrip("I")
    try:
        if t and t[-1] in units:
            n = float(t[:-1]) * units[t[-1]]
        else:
            n = float(t)
    except ValueError:
        n = -1.0
    if n < 0 or n != int(n):
        raise argparse.ArgumentTypeError(
            "invalid size %r: a whole number of bytes, optionally with K, M or G (e.g. 4096, 64K, 16M)" % text)
    return int(n)

