"""An event as one JSON object (what ``python -m pykring watch --json``
prints, one a line)."""
import json
from typing import Callable, Optional

from .context import cgroup_path
from .dicts import _path_keys
from .records import D_CMDLINE_TRUNCATED, D_MAIN_IMAGE, D_NO_START
from .strings import _argv


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
