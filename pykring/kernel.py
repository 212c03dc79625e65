"""``pykring.kernel()``: the platform's kernel event source as a :class:`~pykring.Ring`.

Linux: eBPF programs (:mod:`pykring.kernel_linux`). Windows: the kring driver
(:mod:`pykring.kernel_windows`). Both deliver the records of ``pykring.events``:
``process_start``, ``process_exit`` and ``image_load``.
"""
import sys
from typing import Iterable, Mapping, Tuple, Union

from .errors import KringError

#: The event kinds a kernel source can deliver.
EVENT_KINDS = ("process", "image")

Events = Union[str, Iterable[str]]


class KernelSourceUnavailableError(KringError, NotImplementedError):
    """This platform has no kernel event source (yet)."""


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


def check_ring_size(size: int, low: int, high: int) -> int:
    """`size` as an int if it is a power of two from `low` to `high` bytes
    (the platform's limits); ValueError otherwise."""
    size = int(size)
    if not low <= size <= high or size & (size - 1):
        raise ValueError("ring size must be a power of two from %d to %d bytes, not %d" % (low, high, size))
    return size


def kernel(events: Events = EVENT_KINDS, *, size: int = 16 << 20):
    """Open the kernel event source of this platform and return its :class:`~pykring.Ring`.

    ``events``: any of ``"process"`` (process_start at fork and exec,
    process_exit) and ``"image"`` (image_load: executable file mappings, the
    main binary and its loader included), as a tuple or a comma-separated
    string. ``size``: bytes of the kernel ring buffer, a power of two.

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
        from .kernel_linux import open_ring

        return open_ring(parse_events(events), size)
    if sys.platform == "win32":
        from .kernel_windows import open_driver

        return open_driver(parse_events(events), size)
    raise KernelSourceUnavailableError("pykring.kernel(): no kernel event source for platform %r" % sys.platform)
