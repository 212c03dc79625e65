"""The kernel event record types (process start, process exit, image load),
and the events they make: plain dicts, text lines and JSON lines.

Defined once in include/kring/kring_events.h and shared by the Windows driver, the
eBPF programs and this package; the dtypes here are built from the schema
the C code describes, so they cannot drift from the structs.
"""
import errno
import functools
import json
import os
import shlex
import signal
import time
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

import numpy as np

from ._lib import lib
from .schema import new_meta, types_from_meta

#: The event kinds a kernel source can deliver.
EVENT_KINDS = ("process", "image")

Events = Union[str, Iterable[str]]


def parse_events(events: Events) -> Tuple[str, ...]:
    """The event kinds asked for, from a tuple or a comma-separated string
    ("process,image", "process, image"). ValueError for a kind not in
    EVENT_KINDS or for none at all."""
    if isinstance(events, str):
        kinds = tuple(e for e in (part.strip() for part in events.split(",")) if e)
    else:
        kinds = tuple(events)
    for kind in kinds:
        if kind not in EVENT_KINDS:
            raise ValueError("unknown kernel event kind %r: choose from %s" % (kind, ", ".join(EVENT_KINDS)))
    if not kinds:
        raise ValueError("no kernel events asked for: choose from %s" % ", ".join(EVENT_KINDS))
    return kinds


def event_bits(events: Events, bits: Mapping[str, int]) -> int:
    """The events asked for (as parse_events takes them) as a mask of the
    platform's `bits` for each kind."""
    mask = 0
    for kind in parse_events(events):
        mask |= bits[kind]
    return mask



PROCESS_START = lib.KRING_TYPE_PROCESS_START
PROCESS_EXIT = lib.KRING_TYPE_PROCESS_EXIT
IMAGE_LOAD = lib.KRING_TYPE_IMAGE_LOAD
EXEC_FAILED = lib.KRING_TYPE_EXEC_FAILED

#: `detail` bits
D_PATH_TRUNCATED = lib.KRING_D_PATH_TRUNCATED
D_CMDLINE_TRUNCATED = lib.KRING_D_CMDLINE_TRUNCATED
D_NO_PATH = lib.KRING_D_NO_PATH
D_KERNEL_IMAGE = lib.KRING_D_KERNEL_IMAGE
D_MAIN_IMAGE = lib.KRING_D_MAIN_IMAGE
D_NO_START = lib.KRING_D_NO_START
D_EXEC = lib.KRING_D_EXEC
D_DELETED = lib.KRING_D_DELETED
D_MEMFD = lib.KRING_D_MEMFD
D_PACKED = lib.KRING_D_PACKED
D_CWD_TRUNCATED = lib.KRING_D_CWD_TRUNCATED
D_PARENT_PATH_TRUNCATED = lib.KRING_D_PARENT_PATH_TRUNCATED
D_SID_TRUNCATED = lib.KRING_D_SID_TRUNCATED


def event_meta(capacity: int, linux: bool = False):
    """A producer page template for a kernel event ring of `capacity` bytes
    (`linux`: with the Linux-only types too)."""
    meta = new_meta(capacity)
    (lib.kring_events_schema_linux if linux else lib.kring_events_schema)(meta)
    return meta


#: (type id, name, record dtype) of each kernel event type both platforms write.
EVENT_TYPES = types_from_meta(event_meta(1 << 20))
_LINUX_TYPES = types_from_meta(event_meta(1 << 20, linux=True))
#: Record dtype by event type name (the shared types, as the structs declare them).
DTYPES: Dict[str, np.dtype] = {name: dt for _, name, dt in EVENT_TYPES}


def _with_args(dt: np.dtype, max_args: int) -> np.dtype:
    """A Linux process_start dtype with room for `max_args` bytes of command
    line instead of KRING_ARGS_BYTES: its ``cmdline`` field that long, and
    the record longer or shorter by the difference."""
    fields = dict(dt.fields or {})
    fields["cmdline"] = (np.dtype("S%d" % max_args), fields["cmdline"][1])
    names = list(dt.names or ())
    return np.dtype({"names": names, "formats": [fields[n][0] for n in names],
                     "offsets": [fields[n][1] for n in names],
                     "itemsize": dt.itemsize - lib.KRING_ARGS_BYTES + max_args})


def linux_event_types(max_args: int) -> List[Tuple[int, str, np.dtype]]:
    """The types of a Linux ring (the Linux schema: process_exit with a path
    tail, exec_failed), its process_start records carrying up to `max_args`
    bytes of command line. Linux process_start records are packed
    (D_PACKED): the record has room for the fixed part, path, cwd, the
    parent's path and the command line at their longest; read the strings
    with start_strings() and start_context()."""
    return [(tid, name, _with_args(dt, max_args) if name == "process_start" else dt)
            for tid, name, dt in _LINUX_TYPES]


_meta = event_meta(1 << 20, linux=True)
#: Shortest valid payload of each type id in a Linux ring.
LINUX_MIN_SIZES = {int(_meta.types[i].id): int(_meta.types[i].min_size) for i in range(_meta.ntypes)}
del _meta


def start_strings(rows) -> List[Tuple[bytes, bytes]]:
    """(path, cmdline) as bytes for each process_start row of `rows` (a
    record array, or one record), packed (Linux) or not (Windows)."""
    rows = np.atleast_1d(rows)
    if not len(rows):
        return []
    fields = rows.dtype.fields or {}
    off, coff = fields["path"][1], fields["cmdline"][1]
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
    out = []
    for r, detail, plen, clen in zip(raw, rows["detail"].tolist(), rows["path_len"].tolist(),
                                     rows["cmdline_len"].tolist()):
        at = off + plen + 1 if detail & D_PACKED else coff
        out.append((r[off:off + plen].tobytes(), r[at:at + clen].tobytes()))
    return out


def start_context(rows) -> List[Tuple[bytes, bytes]]:
    """(cwd, parent_path) as bytes for each process_start row of `rows`: in a
    packed (Linux) row they follow the command line's NUL, one after the
    other; b"" where there is none (unpacked rows, a length of 0)."""
    rows = np.atleast_1d(rows)
    if not len(rows):
        return []
    fields = rows.dtype.fields or {}
    if "cwd_len" not in fields:
        return [(b"", b"")] * len(rows)
    off = fields["path"][1]
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
    out = []
    for r, detail, plen, clen, wlen, pplen in zip(
            raw, rows["detail"].tolist(), rows["path_len"].tolist(), rows["cmdline_len"].tolist(),
            rows["cwd_len"].tolist(), rows["parent_path_len"].tolist()):
        if not detail & D_PACKED:
            out.append((b"", b""))
            continue
        at = off + plen + 1 + clen + 1
        out.append((r[at:at + wlen].tobytes(), r[at + wlen + 1:at + wlen + 1 + pplen].tobytes()))
    return out


# ---- records -> events ------------------------------------------------------

#: What an event is, in text lines: a new process (fork), a process starting
#: a program (exec), a whole process gone (exit), an executable file mapped (image).
KINDS = ("fork", "exec", "exit", "image", "fail")
#: The column header of text lines.
TEXT_HEADER = "%-15s  %-5s  %-7s  %-7s  %s" % ("TIME", "EVENT", "PID", "PPID", "PATH / COMMAND LINE")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def fsdecode(b: bytes) -> str:
    """Kernel bytes (a path, an argument) as str, the way os.fsdecode does
    it (UTF-8, other bytes as lone surrogates): os.fsencode() gives the exact
    bytes back, and a byte 0xff never reads like the text "\\xff"."""
    return b.decode("utf-8", "surrogateescape")


def argv_list(cmdline: bytes) -> List[str]:
    """A NUL-separated command line as a list of str (fsdecode'd)."""
    return [fsdecode(a) for a in cmdline.split(b"\0")] if cmdline else []


def _argv(cmdline: bytes) -> List[str]:
    return argv_list(cmdline)


def _shown(t: str) -> str:
    """str from fsdecode, printable on any stream: undecodable bytes as \\xNN."""
    return t.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _path_keys(detail: int) -> dict:
    return {"memfd": bool(detail & D_MEMFD), "deleted": bool(detail & D_DELETED),
            "path_truncated": bool(detail & D_PATH_TRUNCATED)}


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


@functools.lru_cache(maxsize=1)
def boot_id() -> str:
    """This boot's id (/proc/sys/kernel/random/boot_id), "" where there is none."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""


def exec_id(pid: int, start_time: int, boot: Optional[str] = None) -> Optional[str]:
    """The process key: boot id, start time in clock ticks since boot (as
    /proc/PID/stat's field 22 has it) and pid. `start_time`: ns since boot
    (the records' start_time); None when it is 0 (unknown). `boot`: the
    boot id of the records' host (default: this boot's)."""
    if not start_time or not pid:
        return None
    tick = 1_000_000_000 // os.sysconf("SC_CLK_TCK")
    return "%s-%d-%d" % (boot_id() if boot is None else boot, start_time // tick, pid)


#: 100 ns intervals from 1601-01-01 (FILETIME's epoch) to 1970-01-01.
_FILETIME_1970 = 116444736000000000


def exec_id_windows(pid: int, start_time: int) -> Optional[str]:
    """The process key of a Windows record: "win-", the process's creation
    time as a FILETIME (100 ns units since 1601, what GetProcessTimes gives
    for a running process, so it can be computed again from user mode) and
    the pid. `start_time`: ns since the Unix epoch (the driver's
    start_time); None when it is 0 (unknown). Unique across boots: no two
    processes share a pid at the same creation time."""
    if not start_time or not pid:
        return None
    return "win-%d-%d" % (start_time // 100 + _FILETIME_1970, pid)


def exec_id_of(pid: int, proc: str = "/proc") -> Optional[str]:
    """exec_id of a running process, from /proc (None if it is gone)."""
    try:
        with open("%s/%d/stat" % (proc, pid), "rb") as f:
            stat = f.read()
        ticks = int(stat[stat.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError):
        return None
    return "%s-%d-%d" % (boot_id(), ticks, pid)


_cgroups: Dict[int, str] = {}


def cgroup_path(cgroup_id: int, root: str = "/sys/fs/cgroup") -> Optional[str]:
    """The cgroup v2 path ("/system.slice/x.service") of a cgroup id (its
    directory's inode number in the cgroup2 mount at `root`), or None."""
    if not cgroup_id:
        return None
    if cgroup_id not in _cgroups:
        try:
            dev = os.stat(root).st_dev
        except OSError:
            return None
        for d, subdirs, _ in os.walk(root):
            try:
                st = os.stat(d)
            except OSError:
                continue
            if st.st_dev != dev:            # another filesystem mounted inside: not cgroup2
                subdirs[:] = []
                continue
            rel = os.path.relpath(d, root)
            _cgroups[st.st_ino] = "/" if rel == "." else "/" + rel
    return _cgroups.get(cgroup_id)


def _unset(v: int) -> Optional[int]:
    return None if v == 0xFFFFFFFF else v


def _tty(name: bytes) -> Optional[str]:
    if not name:
        return None
    t = name.decode("ascii", "replace")
    return "pts/" + t[3:] if t.startswith("pts") and t[3:].isdigit() else t


def _start_extra_windows(a) -> List[dict]:
    """The keys of process_start rows in the shared layout (the Windows
    driver's): the token and process-key fields Windows fills."""
    out = []
    for pid, ppid, tid, session, st, pst, integrity, elevation, sid, detail in zip(
            a["pid"].tolist(), a["ppid"].tolist(), a["creator_tid"].tolist(), a["session_id"].tolist(),
            a["start_time"].tolist(), a["parent_start_time"].tolist(), a["integrity"].tolist(),
            a["elevation"].tolist(), a["user_sid"].tolist(), a["detail"].tolist()):
        out.append({"creator_tid": tid, "session_id": session, "start_time": st,
                    "exec_id": exec_id_windows(pid, st), "parent_exec_id": exec_id_windows(ppid, pst),
                    "user_sid": sid.decode("ascii", "replace") if sid else None,
                    "sid_truncated": bool(detail & D_SID_TRUNCATED),
                    "elevation": elevation or None, "integrity": integrity or None})
    return out


def _start_extra(a, boot: Optional[str] = None) -> List[dict]:
    """The identity and context keys of process_start rows: the Linux
    fields, or in the shared layout (Windows) the Windows ones."""
    names = a.dtype.names or ()
    if "user_sid" in names:
        return _start_extra_windows(a)
    if "euid" not in names:
        return [{} for _ in range(len(a))]
    out = []
    for pid, ppid, tid, euid, gid, egid, auid, ses, pidns, mntns, cg, st, pst, tty in zip(
            a["pid"].tolist(), a["ppid"].tolist(), a["creator_tid"].tolist(), a["euid"].tolist(),
            a["gid"].tolist(), a["egid"].tolist(), a["auid"].tolist(), a["audit_session"].tolist(),
            a["pidns"].tolist(), a["mntns"].tolist(), a["cgroup_id"].tolist(), a["start_time"].tolist(),
            a["parent_start_time"].tolist(), a["tty"].tolist()):
        out.append({"tid": tid, "euid": euid, "gid": gid, "egid": egid, "auid": _unset(auid),
                    "sessionid": _unset(ses), "tty": _tty(tty), "cgroup_id": cg, "pidns": pidns,
                    "mntns": mntns, "start_time": st, "exec_id": exec_id(pid, st, boot),
                    "parent_exec_id": exec_id(ppid, pst, boot)})
    for d, detail, (cwd, ppath) in zip(out, a["detail"].tolist(), start_context(a)):
        d.update(cwd=fsdecode(cwd) if cwd else None, parent_path=fsdecode(ppath) if ppath else None,
                 cwd_truncated=bool(detail & D_CWD_TRUNCATED),
                 parent_path_truncated=bool(detail & D_PARENT_PATH_TRUNCATED))
    return out


def event_dicts(batch, boot: Optional[str] = None) -> List[dict]:
    """The records of a kernel ring's Batch as plain dicts, in sequence order.

    Keys: ``type`` (the record type name), ``seq``, ``ts`` (ns since the Unix
    epoch), ``pid``, ``path`` (str decoded like os.fsdecode; None without
    one), ``memfd``, ``deleted``, ``path_truncated``, ``detail``, ``flags``
    and each type's own fields (``ppid``, ``argv`` (list of str, fsdecode'd),
    ``cmdline`` as raw bytes, ``args_truncated``, ``exec``, ``cwd`` and ``parent_path``
    (fsdecode'd, None without one); ``exit_code``;
    ``address``, ``length``). image_load has no ``ppid``: text_line and
    json_line need one filled in (None when unknown). ``boot``: the boot id
    of the host the records come from, for ``exec_id`` (default: this
    boot's; a replay passes the recorded one).
    """
    out: List[dict] = []
    a = batch["process_start"]
    if len(a):
        extras, first = _start_extra(a, boot), len(out)
        for seq, ts, flags, pid, ppid, cpid, uid, detail, comm, (path, cmd) in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["flags"].tolist(), a["pid"].tolist(),
                a["ppid"].tolist(), a["creator_pid"].tolist(), a["uid"].tolist(), a["detail"].tolist(),
                a["comm"].tolist(), start_strings(a)):
            extra = extras[len(out) - first]
            out.append({**extra, "type": "process_start", "seq": seq, "ts": ts, "pid": pid, "ppid": ppid,
                        "path": fsdecode(path) if not detail & D_NO_PATH else None,
                        "cmdline": cmd, "argv": argv_list(cmd), "comm": _text(comm), "uid": uid,
                        "creator_pid": cpid, "exec": bool(detail & D_EXEC),
                        "args_truncated": bool(detail & D_CMDLINE_TRUNCATED), **_path_keys(detail),
                        "detail": detail, "flags": flags})
    a = batch["process_exit"]
    if len(a):
        first = len(out)
        linux = "start_time" in (a.dtype.names or ())
        paths = a["path"].tolist() if linux else [b""] * len(a)
        starts = a["start_time"].tolist() if linux else [0] * len(a)
        durations = a["duration_ns"].tolist() if linux else [None] * len(a)
        for seq, ts, flags, pid, ppid, code, raw, detail, comm, path in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["flags"].tolist(), a["pid"].tolist(),
                a["ppid"].tolist(), a["exit_code"].tolist(), a["raw_status"].tolist(), a["detail"].tolist(),
                a["comm"].tolist(), paths):
            st, dur = starts[len(out) - first], durations[len(out) - first]
            out.append({"exec_id": exec_id(pid, st, boot), "start_ts": None if dur is None else ts - dur,
                        "duration_ns": dur, "signal": raw & 0x7F or None, "core_dumped": bool(raw & 0x80),
                        "type": "process_exit", "seq": seq, "ts": ts, "pid": pid, "ppid": ppid or None,
                        "path": fsdecode(path) if path and not detail & D_NO_PATH else None,
                        "exit_code": code, "raw_status": raw, "comm": _text(comm), **_path_keys(detail),
                        "detail": detail, "flags": flags})
    a = batch["image_load"]
    if len(a):
        first = len(out)
        starts = a["start_time"].tolist() if "start_time" in (a.dtype.names or ()) else [0] * len(a)
        for seq, ts, flags, pid, detail, base, size, off, path in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["flags"].tolist(), a["pid"].tolist(),
                a["detail"].tolist(), a["base"].tolist(), a["size"].tolist(), a["file_offset"].tolist(),
                a["path"].tolist()):
            out.append({"exec_id": exec_id(pid, starts[len(out) - first], boot), "type": "image_load", "seq": seq, "ts": ts, "pid": pid,
                        "path": fsdecode(path) if not detail & D_NO_PATH else None, **_path_keys(detail),
                        "address": base, "length": size, "offset": off, "detail": detail, "flags": flags})
    if "exec_failed" in batch and len(batch["exec_failed"]):
        a = batch["exec_failed"]
        for seq, ts, flags, pid, tid, uid, euid, err, detail, path in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["flags"].tolist(), a["pid"].tolist(),
                a["tid"].tolist(), a["uid"].tolist(), a["euid"].tolist(), a["error"].tolist(),
                a["detail"].tolist(), a["path"].tolist()):
            out.append({"type": "exec_failed", "seq": seq, "ts": ts, "pid": pid, "tid": tid, "uid": uid,
                        "euid": euid, "errno": err, "path": fsdecode(path) if not detail & D_NO_PATH else None,
                        "path_truncated": bool(detail & D_PATH_TRUNCATED),
                        "detail": detail, "flags": flags})
    out.sort(key=lambda e: e["seq"])
    return out


def event_kind(e: dict) -> str:
    """The event's entry of KINDS."""
    t = e["type"]
    if t == "process_start":
        return "exec" if e["exec"] else "fork"
    if t == "exec_failed":
        return "fail"
    return "exit" if t == "process_exit" else "image"


@functools.lru_cache(maxsize=4)
def _clock(sec: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(sec))


def reset_clock() -> None:
    """Forget the formatted clock times (after the time zone changed)."""
    _clock.cache_clear()


def _time(ts: int) -> str:
    sec, ns = divmod(ts, 1_000_000_000)
    return "%s.%06d" % (_clock(sec), ns // 1000)


def text_line(e: dict, kind: Optional[str] = None) -> str:
    """One line under TEXT_HEADER: local time, kind, pid, ppid, path, and the
    command line, exit status or mapping. `kind`: event_kind(e), if known."""
    kind = kind or event_kind(e)
    path = _shown(e["path"]) if e["path"] is not None else "[%s]" % e.get("comm", "?")
    if kind in ("fork", "exec"):
        argv = e.get("argv")
        if argv is None:
            argv = _argv(e["cmdline"])
        rest = _shown(shlex.join(argv)) if argv else ""
        if e["detail"] & D_CMDLINE_TRUNCATED:
            rest += " ..."
    elif kind == "exit":
        code = e["exit_code"]
        rest = "exit %d" % code if code >= 0 else "killed by %s" % _signame(-code)
        if e["detail"] & D_NO_START:
            rest += " (started before the watch)"
    elif kind == "fail":
        err = e["errno"]
        rest = "exec failed: %s (errno %d)" % (errno.errorcode.get(err, "?"), err)
    else:
        rest = "0x%x +0x%x%s" % (e["address"], e["length"], " main" if e["detail"] & D_MAIN_IMAGE else "")
    detail = e.get("detail", 0)
    if detail & D_PATH_TRUNCATED:
        path = "..." + path
    marks = [m for bit, m in ((D_MEMFD, "[memfd]"), (D_DELETED, "[deleted]")) if detail & bit]
    if kind in ("fork", "exec") and e.get("euid") is not None and e["euid"] != e["uid"]:
        marks.append("[setuid]")
    if marks:
        path += " " + " ".join(marks)
    ppid = e["ppid"]
    return "%s  %-5s  %-7d  %-7s  %s  %s" % (_time(e["ts"]), kind, e["pid"],
                                             "" if ppid is None else ppid, path, rest)


_START_KEYS = ("tid", "euid", "gid", "egid", "auid", "sessionid", "tty", "cgroup_id", "pidns", "mntns",
               "exec_id", "parent_exec_id", "cwd", "parent_path", "cwd_truncated", "parent_path_truncated")
_START_KEYS_WINDOWS = ("creator_tid", "session_id", "exec_id", "parent_exec_id", "user_sid", "sid_truncated",
                       "elevation", "integrity")
_EXIT_KEYS = ("exec_id", "start_ts", "duration_ns", "signal", "core_dumped")


def json_line(e: dict, cgroup: Callable[[int], Optional[str]] = cgroup_path) -> str:
    """One JSON object (no newline): type, ts, pid, ppid, path, seq and the
    type's own keys (cmdline and argv, exit_code, address and length, ...).
    `cgroup`: a cgroup id's path (default: looked up on this host)."""
    t = e["type"]
    d = {"type": t, "ts": e["ts"], "pid": e["pid"], "ppid": e["ppid"], "path": e["path"], "seq": e["seq"]}
    detail = e["detail"]
    if t == "process_start":
        argv = e.get("argv")
        if argv is None:
            argv = _argv(e["cmdline"])
        d.update(cmdline=" ".join(argv), argv=argv, exec=e["exec"], comm=e["comm"], uid=e["uid"],
                 creator_pid=e["creator_pid"], args_truncated=bool(detail & D_CMDLINE_TRUNCATED))
        if "user_sid" in e:
            d.update({k: e.get(k) for k in _START_KEYS_WINDOWS})
        else:
            d.update({k: e.get(k) for k in _START_KEYS})
            d["cgroup"] = cgroup(e["cgroup_id"]) if e.get("cgroup_id") else None
    elif t == "process_exit":
        d.update(exit_code=e["exit_code"], raw_status=e["raw_status"], comm=e["comm"],
                 started_before=bool(detail & D_NO_START))
        d.update({k: e.get(k) for k in _EXIT_KEYS})
    elif t == "exec_failed":
        d.update(tid=e["tid"], uid=e["uid"], euid=e["euid"], errno=e["errno"],
                 path_truncated=e["path_truncated"])
        return json.dumps(d, separators=(",", ":"))
    else:
        d.update(address=e["address"], length=e["length"], offset=e["offset"],
                 main=bool(detail & D_MAIN_IMAGE), exec_id=e.get("exec_id"))
    d.update(_path_keys(detail))
    if e["flags"] & 1:
        d["truncated"] = True
    return json.dumps(d, separators=(",", ":"))
