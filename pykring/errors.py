"""The pykring exception family.

Every error pykring raises is a :class:`KringError`. The subclasses also
inherit the matching built-in, so ``except PermissionError`` or
``except FileNotFoundError`` work as expected. A failed system call is an
:class:`OSError` too (:class:`KringOSError` or the subclass for its errno),
with ``errno``, ``strerror`` and ``filename`` set; its message names the
operation, the call, the path and the reason.

A call interrupted part-way through a write (a timeout, Ctrl-C, a closed or
broken ring, a consumer that died) tells how many records it wrote in
``written`` (on the exception, KeyboardInterrupt included).
"""
import errno
import os
from typing import Optional


class KringError(Exception):
    """Base class of every pykring error."""

    def __str__(self) -> str:
        # The message as written, also for the OSError subclasses, which
        # would otherwise print "[Errno N] strerror: filename" instead.
        return str(self.args[0]) if len(self.args) == 1 else super().__str__()


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


class KringOSError(KringError, OSError):
    """A system call failed (``errno``, ``strerror``, ``filename`` set)."""


class RingClosedError(KringError, EOFError):
    """The producer closed the ring and every record has been read; or this
    object was closed (by another thread) during the call. ``written``: the
    records a write had written when it ended this way."""

    written: int = 0


class ObjectClosedError(RingClosedError, ValueError):
    """This Ring or Producer is closed: before the call (like I/O on a closed
    file, hence also a ValueError), or by another thread during it."""


class ProducerGoneError(KringError):
    """The producer exited without closing the ring (it was killed or crashed).

    Raised by blocking reads once everything it published was read. Records
    it had counted but not published show in ``Ring.stats``. A new producer
    may attach to the same ring and continue; until one does, blocking reads
    raise this again.
    """


class ConsumerGoneError(KringError):
    """The consumer exited without closing the ring (it was killed or crashed)
    while a blocking write waited for it to make room. ``written`` records of
    the write were written. A new consumer may attach (at the committed
    position) and drain; a write after that continues."""

    def __init__(self, message: str, written: int = 0):
        super().__init__(message)
        self.written = written


class RingBrokenError(KringError):
    """The producer stopped writing: the consumer position was nonsense, or
    the ring file was truncated under the mapping. ``written``: the records
    the write had written."""

    written: int = 0


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


def os_error(err: int, message: str, filename: Optional[str] = None) -> KringError:
    """The exception for a failed system call: the OSError subclass of its
    errno (FileNotFoundError, PermissionError, ...) that is also a
    KringError, with ``errno``, ``strerror`` and ``filename`` set."""
    cls = {
        errno.ENOENT: RingNotFoundError,
        errno.EEXIST: RingExistsError,
        errno.EACCES: KringPermissionError,
        errno.EPERM: KringPermissionError,
        errno.EROFS: KringPermissionError,
    }.get(err, KringOSError)
    exc = cls(message)
    exc.errno, exc.strerror, exc.filename = err, os.strerror(err), filename  # type: ignore[attr-defined]
    return exc
