"""The per-process context an event's keys are looked up from: this boot's
id, the process keys (exec ids: Linux, Windows, of a running process) and a
cgroup id's path and a user id's name."""
import functools
import os
from typing import Dict, List, Optional


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


def cgroup2_mounts(mountinfo: str = "/proc/self/mountinfo") -> List[str]:
    """Where cgroup v2 is mounted, as this process sees it."""
    out = []
    try:
        with open(mountinfo) as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if right.split()[:1] == ["cgroup2"] and len(fields) > 4:
                    out.append(fields[4].replace("\\040", " "))
    except OSError:
        pass
    return out


_cgroups: Dict[int, str] = {}


def cgroup_path(cgroup_id: int, root: Optional[str] = None) -> Optional[str]:
    """The cgroup v2 path ("/system.slice/x.service") of a cgroup id (its
    directory's inode number in the cgroup2 mount at `root`; default: this
    host's, /sys/fs/cgroup or, on a hybrid host, /sys/fs/cgroup/unified),
    or None."""
    if not cgroup_id:
        return None
    if cgroup_id not in _cgroups:
        if root is None:
            mounts = cgroup2_mounts()
            root = mounts[0] if mounts else "/sys/fs/cgroup"
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


def user_name(uid: Optional[int]) -> Optional[str]:
    """The name of user id `uid` on this host (its passwd database, through
    NSS: files, LDAP, sssd, ...), or None when it has none."""
    if uid is None or uid < 0:
        return None
    import pwd

    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None
