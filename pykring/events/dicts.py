"""A kernel ring's records as events: plain dicts (event_dicts), in
sequence order, and each event's kind (KINDS, event_kind)."""
from typing import List, Optional

from .context import exec_id, exec_id_windows
from .records import (
    D_CMDLINE_TRUNCATED,
    D_CWD_TRUNCATED,
    D_DELETED,
    D_EXEC,
    D_MEMFD,
    D_NO_PATH,
    D_PARENT_PATH_TRUNCATED,
    D_PATH_TRUNCATED,
    D_SID_TRUNCATED,
    start_context,
    start_strings,
)
from .strings import _text, argv_list, fsdecode

#: What an event is, in text lines: a new process (fork), a process starting
#: a program (exec), a whole process gone (exit), an executable file mapped (image).
KINDS = ("fork", "exec", "exit", "image", "fail")


def _path_keys(detail: int) -> dict:
    return {"memfd": bool(detail & D_MEMFD), "deleted": bool(detail & D_DELETED),
            "path_truncated": bool(detail & D_PATH_TRUNCATED)}


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
