"""The kernel event record types (process start, process exit, image load),
and the events they make: plain dicts, text lines and JSON lines.

Defined once in include/kring/kring_events.h and shared by the Windows driver, the
eBPF programs and this package; the dtypes here are built from the schema
the C code describes, so they cannot drift from the structs.
"""
import functools
import json
import shlex
import signal
import time
from typing import Dict, Iterable, List, Mapping, Optional, Tuple, Union

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

#: `detail` bits
D_PATH_TRUNCATED = lib.KRING_D_PATH_TRUNCATED
D_CMDLINE_TRUNCATED = lib.KRING_D_CMDLINE_TRUNCATED
D_NO_PATH = lib.KRING_D_NO_PATH
D_KERNEL_IMAGE = lib.KRING_D_KERNEL_IMAGE
D_MAIN_IMAGE = lib.KRING_D_MAIN_IMAGE
D_NO_START = lib.KRING_D_NO_START
D_EXEC = lib.KRING_D_EXEC


def event_meta(capacity: int):
    """A producer page template for a kernel event ring of `capacity` bytes."""
    meta = new_meta(capacity)
    lib.kring_events_schema(meta)
    return meta


#: (type id, name, record dtype) of each kernel event type.
EVENT_TYPES = types_from_meta(event_meta(1 << 20))
#: Record dtype by event type name.
DTYPES: Dict[str, np.dtype] = {name: dt for _, name, dt in EVENT_TYPES}


# ---- records -> events ------------------------------------------------------

#: What an event is, in text lines: a new process (fork), a process starting
#: a program (exec), a whole process gone (exit), an executable file mapped (image).
KINDS = ("fork", "exec", "exit", "image")
#: The column header of text lines.
TEXT_HEADER = "%-15s  %-5s  %-7s  %-7s  %s" % ("TIME", "EVENT", "PID", "PPID", "PATH / COMMAND LINE")


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def _argv(cmdline: bytes) -> List[str]:
    return [_text(a) for a in cmdline.split(b"\0")] if cmdline else []


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


def event_dicts(batch) -> List[dict]:
    """The records of a kernel ring's Batch as plain dicts, in sequence order.

    Keys: ``type`` (the record type name), ``seq``, ``ts`` (ns since the Unix
    epoch), ``pid``, ``path`` (None without one), ``detail``, ``flags`` and
    each type's own fields (``ppid``, ``cmdline`` as raw bytes, ``exec``;
    ``exit_code``; ``address``, ``length``). image_load has no ``ppid``:
    text_line and json_line need one filled in (None when unknown), and
    process_exit a ``path``.
    """
    out = []
    a = batch["process_start"]
    if len(a):
        for seq, ts, flags, pid, ppid, cpid, uid, detail, comm, path, cmd, cmd_len in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["flags"].tolist(), a["pid"].tolist(),
                a["ppid"].tolist(), a["creator_pid"].tolist(), a["uid"].tolist(), a["detail"].tolist(),
                a["comm"].tolist(), a["path"].tolist(), a["cmdline"].tolist(), a["cmdline_len"].tolist()):
            # numpy drops trailing NULs: empty last arguments come back from cmdline_len.
            cmd = cmd.ljust(cmd_len, b"\0")
            out.append({"type": "process_start", "seq": seq, "ts": ts, "pid": pid, "ppid": ppid,
                        "path": _text(path) if not detail & D_NO_PATH else None,
                        "cmdline": cmd, "comm": _text(comm), "uid": uid, "creator_pid": cpid,
                        "exec": bool(detail & D_EXEC), "detail": detail, "flags": flags})
    a = batch["process_exit"]
    if len(a):
        for seq, ts, pid, ppid, code, raw, detail, comm in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["pid"].tolist(), a["ppid"].tolist(),
                a["exit_code"].tolist(), a["raw_status"].tolist(), a["detail"].tolist(), a["comm"].tolist()):
            out.append({"type": "process_exit", "seq": seq, "ts": ts, "pid": pid, "ppid": ppid or None,
                        "exit_code": code, "raw_status": raw, "comm": _text(comm), "detail": detail,
                        "flags": 0})
    a = batch["image_load"]
    if len(a):
        for seq, ts, flags, pid, detail, base, size, off, path in zip(
                a["seq"].tolist(), a["ts"].view("i8").tolist(), a["flags"].tolist(), a["pid"].tolist(),
                a["detail"].tolist(), a["base"].tolist(), a["size"].tolist(), a["file_offset"].tolist(),
                a["path"].tolist()):
            out.append({"type": "image_load", "seq": seq, "ts": ts, "pid": pid,
                        "path": _text(path) if not detail & D_NO_PATH else None,
                        "address": base, "length": size, "offset": off, "detail": detail, "flags": flags})
    out.sort(key=lambda e: e["seq"])
    return out


def event_kind(e: dict) -> str:
    """The event's entry of KINDS."""
    t = e["type"]
    if t == "process_start":
        return "exec" if e["exec"] else "fork"
    return "exit" if t == "process_exit" else "image"


@functools.lru_cache(maxsize=4)
def _clock(sec: int) -> str:
    return time.strftime("%H:%M:%S", time.localtime(sec))


def _time(ts: int) -> str:
    sec, ns = divmod(ts, 1_000_000_000)
    return "%s.%06d" % (_clock(sec), ns // 1000)


def text_line(e: dict, kind: Optional[str] = None) -> str:
    """One line under TEXT_HEADER: local time, kind, pid, ppid, path, and the
    command line, exit status or mapping. `kind`: event_kind(e), if known."""
    kind = kind or event_kind(e)
    path = e["path"] if e["path"] is not None else "[%s]" % e.get("comm", "?")
    if kind in ("fork", "exec"):
        argv = _argv(e["cmdline"])
        rest = shlex.join(argv) if argv else ""
        if e["detail"] & D_CMDLINE_TRUNCATED:
            rest += " ..."
    elif kind == "exit":
        code = e["exit_code"]
        rest = "exit %d" % code if code >= 0 else "killed by %s" % _signame(-code)
        if e["detail"] & D_NO_START:
            rest += " (started before the watch)"
    else:
        rest = "0x%x +0x%x%s" % (e["address"], e["length"], " main" if e["detail"] & D_MAIN_IMAGE else "")
    if e.get("detail", 0) & D_PATH_TRUNCATED:
        path += "..."
    ppid = e["ppid"]
    return "%s  %-5s  %-7d  %-7s  %s  %s" % (_time(e["ts"]), kind, e["pid"],
                                             "" if ppid is None else ppid, path, rest)


def json_line(e: dict) -> str:
    """One JSON object (no newline): type, ts, pid, ppid, path, seq and the
    type's own keys (cmdline and argv, exit_code, address and length, ...)."""
    t = e["type"]
    d = {"type": t, "ts": e["ts"], "pid": e["pid"], "ppid": e["ppid"], "path": e["path"], "seq": e["seq"]}
    if t == "process_start":
        argv = _argv(e["cmdline"])
        d.update(cmdline=" ".join(argv), argv=argv, exec=e["exec"], comm=e["comm"], uid=e["uid"],
                 creator_pid=e["creator_pid"])
    elif t == "process_exit":
        d.update(exit_code=e["exit_code"], raw_status=e["raw_status"], comm=e["comm"],
                 started_before=bool(e["detail"] & D_NO_START))
    else:
        d.update(address=e["address"], length=e["length"], offset=e["offset"],
                 main=bool(e["detail"] & D_MAIN_IMAGE))
    if e["flags"] & 1:
        d["truncated"] = True
    return json.dumps(d, separators=(",", ":"))
