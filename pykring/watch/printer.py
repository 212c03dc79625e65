"""Watch: a watch's filters (--pid, --uid, --comm, --tree, --count), its
format (text or JSON lines) and counts, and the host facts it looked up (for
a recording); batches of kernel records in, lines out."""
import collections
import re
from typing import Any, Callable, Deque, Dict, Mapping, Optional, TextIO, Tuple

from .. import events as ev
from ..events.hashes import HASH_KEYS
from .table import ProcessTable


class _HostLookup:
    """A host lookup by integer key (a cgroup id's path, a uid's name), made
    once per key; what was looked up since the last take() goes into a
    recording, and a replay uses what was recorded, never this host's."""

    def __init__(self, look: Callable[[int], Optional[str]], recorded: bool):
        self._look = look
        self._recorded = recorded
        self._known: Dict[int, Optional[str]] = {}
        self._learned: Dict[int, Optional[str]] = {}

    def get(self, key: int) -> Optional[str]:
        if key not in self._known:
            value = None if self._recorded else self._look(key)
            self._known[key] = value
            if not self._recorded:
                self._learned[key] = value
        return self._known[key]

    def take(self) -> Dict[str, Optional[str]]:
        learned, self._learned = self._learned, {}
        return {str(k): v for k, v in learned.items()}

    def add(self, recorded: Mapping[str, Any]) -> None:
        for k, v in recorded.items():
            try:
                self._known[int(k)] = None if v is None else str(v)
            except ValueError:
                continue


class Watch:
    """Turns batches of kernel records into lines (text or JSON) on `out`."""

    def __init__(self, out: TextIO, as_json: bool = False, pid: Optional[int] = None,
                 count: Optional[int] = None, table: Optional[ProcessTable] = None,
                 uid: Optional[int] = None, comm: Optional[str] = None, tree: Optional[int] = None,
                 boot: Optional[str] = None, cgroups: Optional[Mapping[str, Any]] = None,
                 hasher: Optional[ev.ExecHasher] = None, hashes_recorded: bool = False):
        """``boot``: the records' boot id (default: this boot's). ``cgroups``:
        a replay's recorded cgroup paths (default: looked up on this host);
        a replay also takes the recorded user names (never this host's).
        ``hasher``: sha256 of each exec (the line waits for it, later lines
        with it: the order stays); ``hashes_recorded``: a replay of a
        recording made with hashes (they come with the frames)."""
        self.out = out
        self.boot = boot
        self._cgroups = _HostLookup(ev.cgroup_path, recorded=cgroups is not None)
        self._users = _HostLookup(ev.user_name, recorded=cgroups is not None)
        self.hasher = hasher
        self._hashes: Optional[Dict[int, dict]] = {} if hashes_recorded else None
        self._hashes_learned: Dict[str, dict] = {}
        #: Events taken, not yet printed: (the hash job or None, event, kind).
        self._pending: Deque[Tuple[Any, dict, str]] = collections.deque()
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
        return self._cgroups.get(cgroup_id)

    def user(self, uid: Optional[int]) -> Optional[str]:
        """A uid's name (for JSON lines), looked up once per uid."""
        return None if uid is None else self._users.get(uid)

    def take_facts(self) -> Dict[str, Any]:
        """What this watch looked up on the host since the last call (a
        recording's facts of the batch just fed): {} if nothing."""
        facts: Dict[str, Any] = {}
        proc = self.table.take_learned()
        if proc:
            facts["proc"] = proc
        for name, lookup in (("cgroup", self._cgroups), ("user", self._users)):
            learned = lookup.take()
            if learned:
                facts[name] = learned
        if self._hashes_learned:
            facts["hash"], self._hashes_learned = self._hashes_learned, {}
        return facts

    def add_recorded(self, facts: Mapping[str, Any]) -> None:
        """A replay: the facts recorded with the batch about to be fed."""
        self.table.add_recorded(facts.get("proc") or {})
        self._cgroups.add(facts.get("cgroup") or {})
        self._users.add(facts.get("user") or {})
        if self._hashes is not None:
            for k, v in (facts.get("hash") or {}).items():
                if isinstance(v, dict):
                    try:
                        self._hashes[int(k)] = {h: str(v[h]) for h in HASH_KEYS if v.get(h) is not None}
                    except ValueError:
                        continue

    @property
    def done(self) -> bool:
        return self.limit is not None and self.shown >= self.limit

    def header(self) -> None:
        if not self.as_json:
            self.out.write(ev.TEXT_HEADER + "\n")

    def feed(self, batch) -> None:
        """Print the events of one batch (stops at --count); with hashes,
        those up to the first exec whose hash is not done yet (flush prints
        the rest)."""
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
            job = None
            if kind == "exec" and self.hasher is not None:
                job = self.hasher.submit_event(e)
            elif kind == "exec" and self._hashes is not None:
                job = e["seq"]          # its hash comes with this frame or a later one
            self._pending.append((job, e, kind))
        self.flush()

    def flush(self, wait: bool = False) -> None:
        """Print the events taken whose hashes are done, in order; `wait`:
        all of them (waiting for the hashes; a replay: without the hashes a
        recording does not hold)."""
        lines = []
        pending = self._pending
        while pending:
            job, e, kind = pending[0]
            if isinstance(job, int):
                got = self._hashes.get(job) if self._hashes is not None else None
                if got is None and not wait:
                    break
                e.update(got or {})
            elif job is not None:
                if not wait and not job.done():
                    break
                e.update(job.result())
                self._hashes_learned[str(e["seq"])] = job.result()
            pending.popleft()
            lines.append(ev.json_line(e, self.cgroup, self.user) if self.as_json else ev.text_line(e, kind))
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
