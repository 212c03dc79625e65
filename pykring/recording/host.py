"""This host's identity as a recording's header names it: hostname, boot
id and time zone (so that a replay elsewhere prints the recorded local time)."""
import os
import socket
import time
from typing import Dict


def _timezone() -> str:
    """A TZ value naming this host's local time (for a replay elsewhere)."""
    tz = os.environ.get("TZ")
    if tz:
        return tz
    try:
        with open("/etc/timezone") as f:
            name = f.read().strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    east = -time.timezone
    sign = "-" if east >= 0 else "+"       # POSIX TZ offsets count west
    return "<%+03d%02d>%s%d:%02d" % (east // 3600, abs(east) % 3600 // 60, sign, abs(east) // 3600,
                                      abs(east) % 3600 // 60)


def host_identity() -> Dict[str, str]:
    """This host as a recording names it: ``hostname``, ``boot_id`` (Linux's
    /proc/sys/kernel/random/boot_id, "" elsewhere) and ``timezone`` (a TZ
    value for its local time)."""
    from ..events import boot_id

    return {"hostname": socket.gethostname(), "boot_id": boot_id(), "timezone": _timezone()}
