"""What the consumer (ring.py) and the producer (producer.py) share: where a
ring named by the caller lives, removing it, and how long a blocked call
waits before it looks around again; and unique names for the scratch rings
of the tests and benchmarks."""
import os
import sys
import uuid
from typing import Union

#: A blocked wait returns to the interpreter after this long at first, then
#: after twice as long each time, up to WAIT_SLICE_MAX_S. On Linux Ctrl-C ends
#: the wait at once (the futex wait returns EINTR); the slices bound how late
#: a killed producer is noticed and what an idle consumer costs (about 10
#: wakeups per 10 s once it has waited a while). Windows waits cannot be
#: interrupted, so there every slice is short. A blocked Producer.write waits
#: in slices of WAIT_SLICE_S.
WAIT_SLICE_S = 0.05
WAIT_SLICE_MAX_S = 0.05 if sys.platform == "win32" else 1.0


def ring_path(name: Union[str, "os.PathLike[str]"]) -> str:
    """Where the ring called `name` lives: a plain name is a file in /dev/shm,
    anything with a slash is a path."""
    name = os.fspath(name)
    if not name or "\0" in name:
        raise ValueError("ring name must be a non-empty string without NUL bytes")
    if sys.platform == "win32":
        return name
    return name if "/" in name else os.path.join("/dev/shm", name)


def remove_ring(name: Union[str, "os.PathLike[str]"]) -> None:
    """Remove the ring file of `name` if there is one (Windows rings are
    named objects that go with their last handle: nothing to remove)."""
    if sys.platform == "win32":
        return
    try:
        os.unlink(ring_path(name))
    except FileNotFoundError:
        pass


def unique_ring_name(tag: str) -> str:
    """A ring name nobody else uses: pykring-<tag>-<pid>-<12 random hex digits>."""
    return "pykring-%s-%d-%s" % (tag, os.getpid(), uuid.uuid4().hex[:12])


def check_ring_size(size: int, low: int, high: int) -> int:
    """`size` as an int if it is a power of two from `low` to `high` bytes
    (the platform's limits); ValueError otherwise."""
    size = int(size)
    if not low <= size <= high or size & (size - 1):
        raise ValueError("ring size must be a power of two from %d to %d bytes, not %d" % (low, high, size))
    return size
