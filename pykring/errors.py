"""The pykring exception family.

Every error pykring raises is a :class:`KringError`. The subclasses also
inherit the matching built-in, so ``except PermissionError`` or
``except FileNotFoundError`` work as expected.
"""
from typing import Optional


class KringError(Exception):
    """Base class of every pykring error."""


class RingCorruptError(KringError, ValueError):
    """The ring's memory violates the protocol.

    ``offset`` is the ring position (free-running byte offset) of the
    problem, ``problem`` says what is wrong and ``value`` is the offending
    value. Records before the bad one were delivered.
    """

    def __init__(self, message: str, offset: Optional[int] = None,
                 problem: Optional[str] = None, value: Optional[int] = None):
        super().__init__(message)
        self.offset = offset
        self.problem = problem
        self.value = value


class RingClosedError(KringError, EOFError):
    """The producer closed the ring and every record has been read."""


class ProducerGoneError(KringError):
    """The producer exited without closing the ring (it was killed or crashed).

    Raised by blocking reads once everything it published was read. Records
    it had counted but not published show in ``Ring.stats``. A new producer
    may attach to the same ring and continue; until one does, blocking reads
    raise this again.
    """


class RingBrokenError(KringError):
    """The producer stopped writing because the consumer position was nonsense."""


class VersionMismatchError(KringError):
    """Not a pykring ring, an incompatible ABI version, or a stale build."""


class KringPermissionError(KringError, PermissionError):
    """The operation needs privileges the process does not have."""


class RingNotFoundError(KringError, FileNotFoundError):
    """No ring (or kernel source) of that name exists."""


class RingExistsError(KringError, FileExistsError):
    """A ring of that name exists already."""


class RingBusyError(KringError, BlockingIOError):
    """The ring already has a consumer (or a producer): one of each at a time."""


class RingTimeoutError(KringError, TimeoutError):
    """A blocking write ran out of time. ``written`` records were written."""

    def __init__(self, message: str, written: int = 0):
        super().__init__(message)
        self.written = written


class RecordTooBigError(KringError, ValueError):
    """A record type does not fit in the ring."""
