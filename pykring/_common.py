"""What the consumer (ring.py) and the producer (producer.py) share: where a
ring named by the caller lives, removing it, how long a blocked call waits
before it looks around again, and the lifecycle of an object that owns a
mapping (threads, close from another thread, fork); and unique names for the
scratch rings of the tests and benchmarks."""
import os
import sys
import threading
import uuid
from typing import Optional, Tuple, Union

from . import errors

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
    if "/" in name:
        return name
    if name in (".", ".."):
        # The only plain names that would leave /dev/shm (or name it).
        raise ValueError("ring name %r is not a file name: use a plain name, or a path with a slash" % name)
    return os.path.join("/dev/shm", name)


def remove_ring(name: Union[str, "os.PathLike[str]"]) -> None:
    """Remove the ring file of `name` if there is one (Windows rings are
    named objects that go with their last handle: nothing to remove)."""
    if sys.platform == "win32":
        return
    path = ring_path(name)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise errors.os_error(exc.errno or 0, "remove ring %s: unlink failed: %s" % (path, exc.strerror),
                              path) from None


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


# -- the lifecycle of an object that owns a mapping -------------------------------

#: Bumped in the child after every fork: an object made before sees its
#: generation differ and refuses use (it belongs to the parent).
_fork_generation = 0


def _after_fork_in_child() -> None:
    global _fork_generation
    _fork_generation += 1


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)

#: How often close() wakes a call that another thread has blocked in C, until
#: that call has left (a wake can land just before the call goes to sleep).
_CLOSE_WAKE_S = 0.02


class Lifecycle:
    """What a Ring and a Producer share: an object that owns a mapping.

    - Safe to share between threads: every call holds the object's lock, so
      calls run one at a time (a call blocked waiting holds it too).
    - :meth:`close` may come from any thread, also while another thread is
      blocked in a call: it wakes that call, which raises
      :class:`RingClosedError`, and frees the mapping only after the last
      call has left C (a close from inside a call, e.g. a signal handler,
      is finished when that call returns).
    - Inert after fork: in a child, the objects the parent made refuse every
      use with a :class:`KringError` that says how to open the ring again,
      and closing them (or collecting them) does nothing, so the parent's
      ring is untouched.

    Subclasses call :meth:`_start_lifecycle`, bracket every use of the
    mapping with :meth:`_enter` / :meth:`_leave`, and implement
    :meth:`_interrupt` (wake a blocked call) and :meth:`_release` (free).
    """

    _kind = "object"            #: "ring" or "producer", for messages
    _closing = True             # until _start_lifecycle: a half-made object is closed
    _closed = True

    def _start_lifecycle(self, reopen: str) -> None:
        """``reopen``: how to open the ring again in another process."""
        self._lock = threading.RLock()
        self._pid = os.getpid()
        self._generation = _fork_generation
        self._reopen = reopen
        self._depth = 0
        self._release_on_leave = False      # close() came from inside a call of this thread
        self._closing = False
        self._closed = False

    def _foreign(self) -> bool:
        """True in a child made by fork after this object was made."""
        return self._generation != _fork_generation

    def _enter(self) -> None:
        """Start a call: raises unless the object is usable from here."""
        if self._generation != _fork_generation:
            raise errors.KringError(
                "this %s was opened by another process (pid %d; this is pid %d, a child made by "
                "fork): pykring objects do not cross fork, and using the parent's would corrupt "
                "its positions. Open the ring again in this process: %s"
                % (self._kind, self._pid, os.getpid(), self._reopen))
        if self._closing:
            raise errors.ObjectClosedError("I/O operation on a closed %s" % self._kind)
        self._lock.acquire()
        if self._closing and self._depth == 0:
            self._lock.release()            # closed while this call waited for the lock
            raise errors.ObjectClosedError("I/O operation on a closed %s" % self._kind)
        self._depth += 1

    def _leave(self) -> None:
        """End a call; the outermost call finishes a close that came from
        inside it (a close from another thread finishes there, once this
        call has left: only the closing thread ever frees)."""
        self._depth -= 1
        try:
            if self._depth == 0 and self._release_on_leave and not self._closed:
                self._closed = True
                self._release()
        finally:
            self._lock.release()

    def _closed_error(self, what: str, **attrs) -> errors.RingClosedError:
        exc = errors.ObjectClosedError("%s: the %s was closed (by another thread) during the call"
                                     % (what, self._kind))
        for k, v in attrs.items():
            setattr(exc, k, v)
        return exc

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called on this object (from any
        thread), already while that close waits for a call in another thread
        to leave."""
        return self._closing

    def close(self) -> None:
        """Release the mapping. Safe from any thread and more than once; a
        call blocked in another thread raises :class:`RingClosedError`."""
        if self._closing:
            return
        self._closing = True
        if self._generation != _fork_generation:
            self._closed = True             # the parent's mapping: leave it alone
            return
        if not self._lock.acquire(blocking=False):
            # Another thread is in a call: wake it until it has left.
            while True:
                self._interrupt()
                if self._lock.acquire(timeout=_CLOSE_WAKE_S):
                    break
        try:
            if self._depth == 0:
                if not self._closed:
                    self._closed = True
                    self._release()
            else:
                # This thread is inside a call (a signal handler or a finalizer
                # ran during it): the call finishes the close when it returns.
                self._release_on_leave = True
        finally:
            self._lock.release()

    def _interrupt(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def file_identity(fd: int) -> Optional[Tuple[int, int]]:
    """(st_dev, st_ino) of an open file, or None where there is none."""
    if fd < 0:
        return None
    st = os.fstat(fd)
    return st.st_dev, st.st_ino


def remove_if_same(path: str, identity: Optional[Tuple[int, int]]) -> None:
    """Remove `path` if it still names the file of `identity`: a newer ring
    created under the same name after ours was removed stays. (Between the
    check and the unlink another process could still swap the name: the
    window is one system call, and only the name's own directory's writers
    can use it.)"""
    if identity is None:
        return
    try:
        st = os.stat(path, follow_symlinks=False)
    except FileNotFoundError:
        return
    if (st.st_dev, st.st_ino) == identity:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
