"""Readiness as a file descriptor for rings whose own wait is not one.

A kernel ring on Linux waits in epoll, and its epoll fd is what
:meth:`Ring.fileno` returns. A shared-memory ring waits on a futex word in
the ring's pages (Windows: a named event), which ``select`` cannot watch, so
its readiness is mirrored into a signal fd (an eventfd; a pipe or a socket
pair where there is none) by a waiter thread that sleeps in the ring's own
wait (``kring_wait``, the GIL released), with the lost-wakeup protocol of
docs/PROTOCOL.md section 9.

The protocol, all of it under the notifier's condition ``cv``:

- *armed*: the consumer drained the ring (a read left nothing pending) and
  wants to hear of the next record. Only then does the waiter wait; arming
  clears the signal first. So the signal is set exactly when the waiter saw
  records (or a closed, broken or abandoned ring) after the last drain, and
  since a wait re-checks the ring before it sleeps, a record published
  between the drain and the wait is seen there: no wakeup is lost.
- The waiter sets the signal and disarms itself when its wait ends with
  something to do; the fd then stays readable until a read drains the ring
  again (the Ring re-arms after every read that leaves nothing pending).
- The waiter holds the Ring's lock while it waits, as any call does. A call
  from another thread must not sit behind that wait: it counts itself in
  ``yield_req`` and, if the waiter is in its wait (``in_wait``), interrupts
  it. The waiter leaves, clears the interrupt (unless the ring is closing:
  then the interrupt is close's) and does not wait again until no call wants
  the lock. The interrupt and its clearing both happen under ``cv`` while
  ``in_wait`` is true, so a stale interrupt never reaches another wait.
- Closing the Ring stops the waiter (a wait in progress is interrupted by
  close like any call), sets the signal so select-style waiters wake, and
  closes the fd. The waiter holds the Ring only while it waits: an idle one
  does not keep an unreferenced Ring alive.
"""
import os
import socket
import threading
import weakref
from typing import Optional

from ._common import WAIT_SLICE_MAX_S, WAIT_SLICE_S, Lifecycle
from ._lib import lib
from . import errors


class Signal:
    """A level-triggered flag with a file descriptor: readable while set.
    Safe from any thread; set() after close() does nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sock: Optional[socket.socket] = None
        self._wfd = -1
        if hasattr(os, "eventfd"):
            self._fd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
            self._wfd = self._fd
        elif os.name == "posix":
            self._fd, self._wfd = os.pipe()
            os.set_blocking(self._fd, False)
            os.set_blocking(self._wfd, False)
        else:
            # Windows: select() watches sockets only.
            r, w = socket.socketpair()
            r.setblocking(False)
            w.setblocking(False)
            self._sock, self._wsock = r, w
            self._fd = r.fileno()
        self._set = False

    def fileno(self) -> int:
        return self._fd

    def set(self) -> None:
        with self._lock:
            self._set_locked()

    def _set_locked(self) -> None:
        if self._set or self._fd < 0:
            return
        self._set = True
        if self._sock is not None:
            self._wsock.send(b"\1")
        else:
            os.write(self._wfd, (1).to_bytes(8, "little") if self._wfd == self._fd else b"\1")

    def clear(self) -> None:
        with self._lock:
            self._clear_locked()

    def _clear_locked(self) -> None:
        if not self._set or self._fd < 0:
            return
        self._set = False
        try:
            if self._sock is not None:
                self._sock.recv(64)
            else:
                os.read(self._fd, 64)
        except (BlockingIOError, InterruptedError):
            pass

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        if self._fd < 0:
            return
        if self._sock is not None:
            self._sock.close()
            self._wsock.close()
        else:
            os.close(self._fd)
            if self._wfd != self._fd:
                os.close(self._wfd)
        self._fd = self._wfd = -1


class Notifier:
    """The waiter thread and signal of one Ring (see the module docstring)."""

    def __init__(self, ring) -> None:
        self._ring = weakref.ref(ring)
        self.cv = threading.Condition(threading.Lock())
        self.signal = Signal()
        self.armed = False
        self.in_wait = False
        self.yield_req = 0
        self.stopped = False
        self._thread = threading.Thread(target=self._run, name="pykring-notify", daemon=True)
        self._thread.start()

    def fileno(self) -> int:
        return self.signal.fileno()

    def is_waiter(self) -> bool:
        return threading.get_ident() == self._thread.ident

    # -- the consumer's side (its thread holds the Ring's lock) --
    def arm(self) -> None:
        """The ring was drained: clear the signal, wait for the next record."""
        with self.cv:
            if self.stopped or self.armed:
                return
            self.signal.clear()
            self.armed = True
            self.cv.notify_all()

    def fire(self) -> None:
        """Something to do already (records pending): readable now."""
        with self.cv:
            self.armed = False
            self.signal.set()

    def stop(self) -> None:
        """The ring is closing: wake select-style waiters, end the thread."""
        with self.cv:
            if self.stopped:
                return
            self.stopped = True
            self.signal.set()
            self.signal.close()
            self.cv.notify_all()

    # -- a call of another thread wants the Ring's lock --
    def call_starts(self, m) -> None:
        with self.cv:
            self.yield_req += 1
            if self.in_wait:
                # The waiter holds the lock (so the mapping lives): wake it.
                lib.kring_interrupt(m)

    def call_started(self) -> None:
        with self.cv:
            self.yield_req -= 1
            if not self.yield_req:
                self.cv.notify_all()

    # -- the waiter thread --
    def _run(self) -> None:
        slice_s = WAIT_SLICE_S
        while True:
            with self.cv:
                while not self.stopped and not (self.armed and not self.yield_req):
                    self.cv.wait()
                if self.stopped:
                    return
            ring = self._ring()
            if ring is None:
                return
            try:
                slice_s = self._wait_once(ring, slice_s)
            finally:
                # Dropped outside cv: the Ring's finalizer may run here and stop us.
                del ring
            if slice_s < 0:
                return

    def _wait_once(self, ring, slice_s: float) -> float:
        """One wait in the Ring's lock. Returns the next slice, < 0 to end."""
        try:
            Lifecycle._enter(ring)
        except errors.KringError:
            self.fire()                 # closed: readers wake and find out
            return -1.0
        try:
            c = ring._c
            with self.cv:
                if self.stopped or self.yield_req or not self.armed:
                    return slice_s
                self.in_wait = True
            rc = lib.kring_wait(c, int(slice_s * 1e9))     # GIL released inside
            with self.cv:
                self.in_wait = False
                if not ring._closing:
                    # A call's interrupt (call_starts), not close's: clear it
                    # before anyone waits again.
                    c.m.interrupted = 0
            if rc == lib.KRING_E_TIMEOUT:
                if lib.kring_producer_gone(c) == 1 and lib.kring_pending(c) == 0:
                    self.fire()         # the reader's wait raises ProducerGoneError
                    return WAIT_SLICE_S
                return min(2 * slice_s, max(WAIT_SLICE_S, WAIT_SLICE_MAX_S))
            if rc == lib.KRING_E_INTR and not ring._closing:
                return slice_s          # a call wanted the lock, or a signal came
            self.fire()                 # records, closed, or an error the next read raises
            return WAIT_SLICE_S
        finally:
            Lifecycle._leave(ring)

