"""An event as one text line under TEXT_HEADER (what ``python -m pykring
watch`` prints), in local time."""
import errno
import functools
import shlex
import signal
import time
from typing import Optional

from .dicts import event_kind
from .records import D_CMDLINE_TRUNCATED, D_DELETED, D_MAIN_IMAGE, D_MEMFD, D_NO_START, D_PATH_TRUNCATED
from .strings import _argv, escape

#: The column header of text lines.
TEXT_HEADER = "%-15s  %-5s  %-7s  %-7s  %s" % ("TIME", "EVENT", "PID", "PPID", "PATH / COMMAND LINE")


def _signame(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return "signal %d" % sig


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
    command line, exit status or mapping. `kind`: event_kind(e), if known.
    What a process controls (path, comm, arguments) is escaped (strings.escape):
    one event is one line, and no byte of it reaches a terminal as a control."""
    kind = kind or event_kind(e)
    path = escape(e["path"]) if e["path"] is not None else "[%s]" % escape(e.get("comm", "?"))
    if kind in ("fork", "exec"):
        argv = e.get("argv")
        if argv is None:
            argv = _argv(e["cmdline"])
        rest = escape(shlex.join(argv)) if argv else ""
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
    if "sha256" in e:
        rest += "  sha256:" + e["sha256"]
    elif "hash_error" in e:
        rest += "  [no sha256: %s]" % escape(e["hash_error"])
    ppid = e["ppid"]
    return "%s  %-5s  %-7d  %-7s  %s  %s" % (_time(e["ts"]), kind, e["pid"],
                                             "" if ppid is None else ppid, path, rest)
