"""An event as one JSON object (what ``python -m pykring watch --json``
prints, one a line).

The output is ASCII JSON: control characters and everything outside ASCII
are JSON escapes, so no byte of it reaches a terminal as a control. A
string a process controls (path, argv, comm, cwd, parent path, tty) is the
text of its bytes as os.fsdecode gives it: ``os.fsencode(value)`` gives the
exact bytes back in Python. Bytes that are not UTF-8 show there as lone
surrogate escapes (``\\udcff``), which other JSON readers may replace; the
event then also carries ``KEY_b64`` (``argv_b64``: a list), the exact bytes
in base64.
"""
import base64
import calendar
import functools
import json
import time
from typing import Callable, Optional

from .containers import container_context
from .context import cgroup_path, user_name
from .dicts import _path_keys
from .hashes import HASH_KEYS
from .records import D_CMDLINE_TRUNCATED, D_MAIN_IMAGE, D_NO_START
from .strings import _argv


_START_KEYS = ("tid", "euid", "gid", "egid", "auid", "sessionid", "tty", "cgroup_id", "pidns", "mntns",
               "exec_id", "parent_exec_id", "cwd", "parent_path", "cwd_truncated", "parent_path_truncated")
_START_KEYS_WINDOWS = ("creator_tid", "session_id", "exec_id", "parent_exec_id", "user_sid", "sid_truncated",
                       "elevation", "integrity")
_EXIT_KEYS = ("exec_id", "start_ts", "duration_ns", "signal", "core_dumped")


_BYTES_KEYS = ("path", "comm", "cwd", "parent_path", "tty", "cmdline")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogateescape")).decode("ascii")


def _not_utf8(text) -> bool:
    if not isinstance(text, str) or text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _add_b64(d: dict) -> None:
    """KEY_b64 beside each string that is not UTF-8 (see the module)."""
    for k in _BYTES_KEYS:
        if _not_utf8(d.get(k)):
            d[k + "_b64"] = _b64(d[k])
    argv = d.get("argv")
    if argv and any(_not_utf8(a) for a in argv):
        d["argv_b64"] = [_b64(a) for a in argv]


@functools.lru_cache(maxsize=4)
def _utc_second(sec: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec))


def iso_time(ts: int) -> str:
    """ns since the Unix epoch as ISO-8601 UTC with nanoseconds:
    ``2026-12-07T13:29:00.123456789Z``."""
    sec, ns = divmod(ts, 1_000_000_000)
    return "%s.%09dZ" % (_utc_second(sec), ns)


def parse_iso_time(text: str) -> int:
    """iso_time's text back to ns since the Unix epoch."""
    whole, _, frac = text.rstrip("Z").partition(".")
    return calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) * 1_000_000_000 + int(frac.ljust(9, "0"))


def json_line(e: dict, cgroup: Callable[[int], Optional[str]] = cgroup_path,
              user: Callable[[Optional[int]], Optional[str]] = user_name) -> str:
    """One JSON object (no newline): type, ts (ns since the Unix epoch) and
    time (the same, ISO-8601 UTC), pid, ppid, path, seq and the type's own
    keys (cmdline and argv, exit_code, address and length, ...); a Linux
    process start also its cgroup and what it names (container_id,
    container_runtime, pod_uid, unit) and user and euser, the names of uid
    and euid; an exec hashed (watch --hash) sha256 and hash_source, or
    hash_error. `cgroup`: a cgroup id's path, `user`: a uid's name (default:
    looked up on this host)."""
    t = e["type"]
    d = {"type": t, "ts": e["ts"], "time": iso_time(e["ts"]), "pid": e["pid"], "ppid": e["ppid"], "path": e["path"], "seq": e["seq"]}
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
            d.update(container_context(d["cgroup"]), user=user(e["uid"]), euser=user(e.get("euid")))
        d.update({k: e[k] for k in HASH_KEYS if k in e})
    elif t == "process_exit":
        d.update(exit_code=e["exit_code"], raw_status=e["raw_status"], comm=e["comm"],
                 started_before=bool(detail & D_NO_START))
        d.update({k: e.get(k) for k in _EXIT_KEYS})
    elif t == "exec_failed":
        d.update(tid=e["tid"], uid=e["uid"], euid=e["euid"], user=user(e["uid"]), euser=user(e["euid"]),
                 errno=e["errno"], path_truncated=e["path_truncated"])
        _add_b64(d)
        return json.dumps(d, separators=(",", ":"))
    else:
        d.update(address=e["address"], length=e["length"], offset=e["offset"],
                 main=bool(detail & D_MAIN_IMAGE), exec_id=e.get("exec_id"))
    d.update(_path_keys(detail))
    if e["flags"] & 1:
        d["truncated"] = True
    _add_b64(d)
    return json.dumps(d, separators=(",", ":"))
