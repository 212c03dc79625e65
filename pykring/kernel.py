"""``pykring.kernel()``: the platform's kernel event source as a :class:`~pykring.Ring`.

Linux: eBPF programs (:mod:`pykring.kernel_linux`). Windows: the kring driver
(:mod:`pykring.kernel_windows`). Both deliver the records of ``pykring.events``:
``process_start``, ``process_exit`` and ``image_load``.
"""
import sys
from typing import Optional

from .errors import KringError
# The one parser of event kinds is in events.py (and the one ring-size check in
# _common.py): the kernel sources import them from there, not from this module,
# which imports the sources.
from .events import EVENT_KINDS, Events, parse_events
from ._bpf_filter import Ids
from .ring import Batch, Ring


class KernelSourceUnavailableError(KringError, NotImplementedError):
    """This platform has no kernel event source (yet)."""


def kernel(events: Events = EVENT_KINDS, *, size: int = 16 << 20, max_args: int = 4096,
           wake_interval: Optional[float] = None, pids: Optional[Ids] = None, tree: Optional[int] = None,
           uids: Optional[Ids] = None, cgroup: Optional[str] = None) -> Ring[Batch]:
    """Open the kernel event source of this platform and return its :class:`~pykring.Ring`.

    ``events``: any of ``"process"`` (process_start at fork and exec,
    process_exit) and ``"image"`` (image_load: executable file mappings, the
    main binary and its loader included), as a tuple or a comma-separated
    string. ``size``: bytes of the kernel ring buffer, a power of two.
    ``max_args`` (Linux): bytes of a process_start's command line, NUL
    included, 64 .. 65536; a longer one is cut (``args_truncated``).
    ``wake_interval`` (Linux): seconds a record may wait before a blocked
    reader is woken for it, 0 .. 10; None: the default, 5 ms (batched
    wakeups, a few microseconds of CPU per event); 0: a wakeup per record
    (the lowest latency). A quarter of the ring unconsumed wakes it at once.

    Filters (Linux), applied in the kernel before a record is written, so
    that the events of other processes cost no ring space, no wakeup and no
    Python work: ``pids`` (a pid or a collection of pids), ``tree`` (a pid:
    that process and all its descendants, new ones included), ``uids`` (real
    uids), ``cgroup`` (a cgroup v2 directory, or the path /proc/PID/cgroup
    shows: processes in it or below it). An event passes when its process
    passes every filter given; ValueError names a filter that cannot apply.

    The ring's records come from :meth:`Ring.read_batch` (or iteration) as a
    :class:`~pykring.Batch` with all three types; ``ring.stats`` has the
    kernel's ``written`` and ``dropped`` counts and the sequence gaps
    (``lost``). Closing the ring (or interpreter exit) detaches the programs.

    Linux needs root, or CAP_BPF and CAP_PERFMON (image events also tracefs):
    otherwise :class:`~pykring.KringPermissionError`, a ``PermissionError``.
    There ``ring.source`` is the loaded programs' handle
    (:class:`pykring.kernel_linux.LinuxKernelSource`).

    Example::

        with pykring.kernel() as ring:
            for batch in ring:                      # a Batch per drain
                starts = batch["process_start"]
                print(starts["pid"], starts["path"], batch["image_load"]["path"])
    """
    if sys.platform.startswith("linux"):
        from ._bpf_filter import kernel_filter
        from .kernel_linux import open_ring

        flt = kernel_filter(pids=pids, tree=tree, uids=uids, cgroup=cgroup)
        return open_ring(parse_events(events), size, max_args, wake_interval, flt)
    if sys.platform == "win32":
        from .kernel_windows import open_driver

        if (pids, tree, uids, cgroup) != (None, None, None, None):
            raise KernelSourceUnavailableError(
                "pykring.kernel(): the Windows driver has no filters (pids, tree, uids, cgroup) yet: filter "
                "the batches in Python (python -m pykring watch --pid/--tree/--uid does)")
        return open_driver(parse_events(events), size)
    raise KernelSourceUnavailableError("pykring.kernel(): no kernel event source for platform %r" % sys.platform)
