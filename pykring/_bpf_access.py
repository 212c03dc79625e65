"""What loading the Linux kernel event source needs, checked before trying:
the capabilities, and tracefs for the syscall tracepoints (mounted here when
it is missing and this process may)."""
import errno
import os
from typing import Optional

from . import _lib, errors

WANT_IMAGE = _lib.lib.KRING_BPF_WANT_IMAGE
_TRACEFS = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
_MMAP_TRACEPOINT = "events/syscalls/sys_enter_mmap/id"
CAP_SYS_ADMIN, CAP_PERFMON, CAP_BPF = 21, 38, 39


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def _tracefs() -> Optional[str]:
    """The mounted tracefs directory that has the mmap tracepoints, if any."""
    for d in _TRACEFS:
        if os.path.exists(os.path.join(d, _MMAP_TRACEPOINT)):
            return d
    return None


def check_privileges(want: int) -> None:
    """Raise KringPermissionError unless this process can load and attach the
    programs for `want` (WANT_* bits)."""
    caps = _effective_caps()

    def has(cap: int) -> bool:
        return bool(caps >> cap & 1)

    admin = has(CAP_SYS_ADMIN)
    if not (admin or (has(CAP_BPF) and has(CAP_PERFMON))):
        raise errors.KringPermissionError(
            "permission denied: the kernel event source loads eBPF programs, which needs root or the "
            "capabilities CAP_BPF and CAP_PERFMON (this process, uid %d, has %s)%s; run it as root "
            "(sudo), or grant the capabilities (e.g. sudo setpriv --reuid=$(id -u) --regid=$(id -g) "
            "--init-groups --inh-caps=+bpf,+perfmon --ambient-caps=+bpf,+perfmon <command>)" % (
                os.geteuid(),
                "neither" if not (has(CAP_BPF) or has(CAP_PERFMON)) else "only one of them",
                "; image events also need tracefs (mounted at /sys/kernel/tracing with readable "
                "syscall events, or CAP_SYS_ADMIN to mount it)" if want & WANT_IMAGE else ""))
    if want & WANT_IMAGE and not admin:
        d = _tracefs()
        if d is None or not os.access(os.path.join(d, _MMAP_TRACEPOINT), os.R_OK):
            raise errors.KringPermissionError(
                "permission denied: image events use the syscall tracepoints, which need tracefs: "
                "mount it (as root: mount -t tracefs nodev /sys/kernel/tracing) and make its events "
                "readable, run as root (or with CAP_SYS_ADMIN), or ask for process events only "
                "(events=('process',); watch --events process)")


def ensure_tracefs(libc, ffi) -> None:
    """Mount tracefs at /sys/kernel/tracing if no tracefs is mounted (needs CAP_SYS_ADMIN)."""
    if _tracefs() is not None:
        return
    target = _TRACEFS[0]
    if not os.path.isdir(target):
        raise errors.KringError("image events need tracefs, and %s does not exist to mount it on" % target)
    if libc.mount(b"nodev", target.encode(), b"tracefs", 0, ffi.NULL) != 0:
        err = ffi.errno
        if err in (errno.EPERM, errno.EACCES):
            raise errors.KringPermissionError(
                "permission denied: image events need tracefs, which is not mounted, and mounting "
                "it at %s needs root (CAP_SYS_ADMIN); or ask for process events only "
                "(events=('process',); watch --events process)" % target)
        raise errors.KringError("mounting tracefs at %s failed: %s" % (target, os.strerror(err)))
    if _tracefs() is None:
        raise errors.KringError("tracefs is mounted at %s but has no syscall tracepoints "
                                "(%s missing): the kernel lacks CONFIG_FTRACE_SYSCALLS" % (target, _MMAP_TRACEPOINT))


def _can_trace_syscalls(libc, ffi) -> bool:
    """Whether the syscall tracepoints can be attached (tracefs mounted, or mountable here)."""
    try:
        ensure_tracefs(libc, ffi)
    except errors.KringError:
        return False
    d = _tracefs()
    return d is not None and os.access(os.path.join(d, "events/syscalls/sys_enter_execve/id"), os.R_OK)
