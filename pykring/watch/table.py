"""The process table of a watch: pid -> (ppid, path) for the lines whose
record lacks them, learned from the process records and /proc (or, in a
replay, from the recording's facts)."""
import os
from typing import Any, Dict, Mapping, Optional, Tuple


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
