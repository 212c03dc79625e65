"""The filters of the Linux kernel event source, applied in the eBPF programs
(csrc/bpf/kring_filter.bpf.h) before a record is reserved: ``pids``, ``tree``,
``uids``, ``cgroup``. An event of a process outside them costs no ring space,
no wakeup and no Python work.

:func:`kernel_filter` checks the arguments and resolves the cgroup;
:class:`KernelFilter` gives the programs' configuration and writes the sets
into their maps: before the programs are attached, and for ``tree`` again
after, until /proc shows no descendant the map does not hold (from then on
the fork program adds each new child of a member itself).
"""
import os
from dataclasses import dataclass
from typing import Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple, Union

from . import _lib
from .events.context import cgroup2_mounts

Ids = Union[int, Iterable[int]]

#: Keys the tree's map holds: descendants beyond it are not followed (counted in ``tree_full``).
TREE_MAX = 65536
#: The most pids or uids one filter may name.
SET_MAX = 65536


def _ids(value: Ids, what: str, lo: int, hi: int) -> FrozenSet[int]:
    items = [value] if isinstance(value, int) else value
    try:
        out = frozenset(items)
    except TypeError:
        raise ValueError("%s must be an integer or a collection of integers, not %r" % (what, value)) from None
    if not out:
        raise ValueError("%s is empty: it would match no process (leave it out to match every one)" % what)
    for v in out:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            raise ValueError("%s: %r is not an integer from %d to %d" % (what, v, lo, hi))
    if len(out) > SET_MAX:
        raise ValueError("%s: %d values, at most %d" % (what, len(out), SET_MAX))
    return out


def resolve_cgroup(path: str, mounts: Optional[List[str]] = None) -> Tuple[str, int, int]:
    """(directory, id, level) of a cgroup v2 given as its directory
    (``/sys/fs/cgroup/app.slice``) or as /proc/PID/cgroup shows it
    (``/app.slice``, under the cgroup2 mount); ValueError saying what is wrong."""
    if not isinstance(path, str) or not path:
        raise ValueError("cgroup must be the path of a cgroup v2 directory, not %r" % (path,))
    mounts = cgroup2_mounts() if mounts is None else mounts
    if not mounts:
        raise ValueError("cgroup %s: cgroup v2 is not mounted (mount -t cgroup2 none /sys/fs/cgroup)" % path)
    candidates = [os.path.realpath(path)] if os.path.isabs(path) else []
    candidates += [os.path.realpath(os.path.join(m, path.lstrip("/"))) for m in mounts]
    for d in candidates:
        for m in sorted(mounts, key=len, reverse=True):
            rel = os.path.relpath(d, m)
            if rel == "." or not (rel == ".." or rel.startswith("../")):
                if os.path.isfile(os.path.join(d, "cgroup.procs")):
                    level = 0 if rel == "." else len(rel.split("/"))
                    return d, os.stat(d).st_ino, level
                break
    raise ValueError("cgroup %s: no such cgroup v2 directory (cgroup2 is mounted at %s; give a directory "
                     "under it, or the path /proc/PID/cgroup shows after 0::)" % (path, ", ".join(mounts)))


def proc_parents(proc: str = "/proc") -> Dict[int, int]:
    """pid -> ppid of the processes running now."""
    out: Dict[int, int] = {}
    try:
        names = os.listdir(proc)
    except OSError:
        return out
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(os.path.join(proc, name, "stat"), "rb") as f:
                stat = f.read()
        except OSError:
            continue                # gone meanwhile
        fields = stat[stat.rfind(b")") + 2:].split()
        if len(fields) > 1:
            out[int(name)] = int(fields[1])
    return out


@dataclass(frozen=True)
class KernelFilter:
    """Which processes' events the programs write (see the module)."""

    pids: Optional[FrozenSet[int]] = None
    tree: Optional[int] = None
    uids: Optional[FrozenSet[int]] = None
    cgroup: Optional[str] = None        #: the cgroup's directory
    cgroup_id: int = 0
    cgroup_level: int = 0

    @property
    def bits(self) -> int:
        """kring_bpf_config.filter."""
        lib = _lib.lib
        return ((lib.KRING_BPF_FILTER_PIDS if self.pids is not None else 0)
                | (lib.KRING_BPF_FILTER_TREE if self.tree is not None else 0)
                | (lib.KRING_BPF_FILTER_UIDS if self.uids is not None else 0)
                | (lib.KRING_BPF_FILTER_CGROUP if self.cgroup is not None else 0))

    def config(self) -> Dict[str, int]:
        """The fields of kring_bpf_config the filters set."""
        return {"filter": self.bits, "cgroup_id": self.cgroup_id, "cgroup_level": self.cgroup_level}

    def map_sizes(self) -> Dict[str, int]:
        """max_entries of the filter maps (1 for a filter that is off)."""
        return {"kring_pids": len(self.pids) if self.pids else 1, "kring_uids": len(self.uids) if self.uids else 1,
                "kring_tree": TREE_MAX if self.tree is not None else 1}

    def fill(self, put: Callable[[str, int], None]) -> None:
        """Before attaching: put(map, key) for the pids, the uids and the tree."""
        for pid in sorted(self.pids or ()):
            put("kring_pids", pid)
        for uid in sorted(self.uids or ()):
            put("kring_uids", uid)
        self.follow_tree(put, set())

    def follow_tree(self, put: Callable[[str, int], None], held: set, proc: str = "/proc") -> None:
        """Put the tree's root and its descendants in /proc into kring_tree,
        again until a pass finds none that `held` (what was put) lacks."""
        if self.tree is None:
            return
        while True:
            children: Dict[int, List[int]] = {}
            for pid, ppid in proc_parents(proc).items():
                children.setdefault(ppid, []).append(pid)
            new = []
            todo = [self.tree]
            seen = {self.tree}
            while todo:
                pid = todo.pop()
                if pid not in held:
                    new.append(pid)
                for child in children.get(pid, ()):
                    if child not in seen:
                        seen.add(child)
                        todo.append(child)
            if not new:
                return
            for pid in new:
                if len(held) >= TREE_MAX:
                    return
                put("kring_tree", pid)
                held.add(pid)

    def describe(self) -> str:
        """The filters in words, for messages."""
        parts = []
        if self.pids is not None:
            parts.append("pids %s" % ",".join(map(str, sorted(self.pids))))
        if self.tree is not None:
            parts.append("the tree of pid %d" % self.tree)
        if self.uids is not None:
            parts.append("uids %s" % ",".join(map(str, sorted(self.uids))))
        if self.cgroup is not None:
            parts.append("cgroup %s" % self.cgroup)
        return ", ".join(parts)


def kernel_filter(pids: Optional[Ids] = None, tree: Optional[int] = None, uids: Optional[Ids] = None,
                  cgroup: Optional[str] = None, proc: str = "/proc") -> Optional[KernelFilter]:
    """The filters checked, the cgroup resolved; None when there is none. ValueError says what is wrong."""
    if pids is None and tree is None and uids is None and cgroup is None:
        return None
    if tree is not None:
        if isinstance(tree, bool) or not isinstance(tree, int) or tree <= 0:
            raise ValueError("tree must be a process id (a positive integer), not %r" % (tree,))
        if not os.path.exists(os.path.join(proc, str(tree))):
            raise ValueError("tree: no process %d is running" % tree)
    where, cid, level = resolve_cgroup(cgroup) if cgroup is not None else (None, 0, 0)
    return KernelFilter(pids=None if pids is None else _ids(pids, "pids", 1, (1 << 31) - 1), tree=tree,
                        uids=None if uids is None else _ids(uids, "uids", 0, (1 << 32) - 2),
                        cgroup=where, cgroup_id=cid, cgroup_level=level)
