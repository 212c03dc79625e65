"""The readiness side of a :class:`~pykring.Ring`: its file descriptor for
``select``, :mod:`selectors` and asyncio (the waiter thread of a futex ring:
:mod:`pykring._notify`), the calls that are told when the Ring is closed,
and the async methods (:mod:`pykring.aio`)."""
import threading
from typing import Any, AsyncIterator, Callable, Dict, Generic, Optional

from . import _common
from ._common import Lifecycle
from ._lib import ffi, lib
from .batch import R


class Readiness(Lifecycle, Generic[R]):
    """The readiness side of a :class:`~pykring.Ring`, and the part of its
    lifecycle that concerns the notifier and the close watchers."""

    _c: Any     # given by Ring: the consumer

    def _start_readiness(self) -> None:
        """No notifier and no close watchers yet."""
        self._notifier: Optional[Any] = None            # fileno() of a ring that waits on a futex
        self._watch_lock = threading.Lock()
        self._close_watchers: Dict[int, Callable[[], None]] = {}

    def _enter(self) -> None:
        # A call from another thread while the notifier's waiter holds the
        # lock in its wait: interrupt that wait instead of sitting behind it
        # (the protocol: pykring/_notify.py).
        n = self._notifier
        if n is None or self._generation != _common._fork_generation or n.is_waiter():
            return Lifecycle._enter(self)
        n.call_starts(ffi.addressof(self._c, "m"))
        try:
            Lifecycle._enter(self)
        finally:
            n.call_started()

    def _stop_watching(self) -> None:
        """At close: stop the notifier, then call the close watchers."""
        if self._notifier is not None:
            self._notifier.stop()
        with self._watch_lock:
            watchers = list(self._close_watchers.values())
            self._close_watchers.clear()
        for fn in watchers:
            try:
                fn()
            except Exception:
                pass

    def fileno(self) -> int:
        """A file descriptor that is readable while records are pending (or
        the ring is closed, broken or abandoned, so that a read raises), for
        ``select``, :mod:`selectors` and ``loop.add_reader``. Reading it is
        not needed and not allowed: read the ring instead.

        A kernel ring on Linux returns the epoll fd its own wait uses (the
        kernel keeps it readable while the ring buffer holds data). A
        shared-memory ring's wait is a futex, which select cannot watch: the
        first call starts a waiter thread that sleeps in the ring's wait and
        sets an eventfd when records come. It re-arms only after a read left
        the ring empty, so the fd stays readable until you have drained what
        is pending (read until a read returns nothing, e.g. with the default
        ``timeout=0``), and no record that arrives meanwhile is missed
        (the protocol: ``pykring/_notify.py``).

        The fd belongs to the Ring: closing the Ring closes it, so
        unregister it from a selector before (:func:`pykring.wait_any` and
        the async methods handle this themselves).
        """
        self._enter()
        try:
            c = self._c
            if c.m.wait_kind == lib.KRING_WAIT_EPOLL:
                return int(c.m.epoll_fd)
            if self._notifier is None:
                from ._notify import Notifier

                n = Notifier(self)
                self._notifier = n
                pending = lib.kring_pending(c)
                if pending == 0:
                    n.arm()
                else:
                    n.fire()
            return self._notifier.fileno()
        finally:
            self._leave()

    def _drained(self) -> None:
        """After a read (the lock held): re-arm the notifier if nothing is pending."""
        n = self._notifier
        if n is not None and lib.kring_pending(self._c) == 0:
            n.arm()

    def _has_pending(self) -> bool:
        """Records pending (or an error a read would raise)."""
        self._enter()
        try:
            return lib.kring_pending(self._c) != 0
        finally:
            self._leave()

    def _watch_close(self, fn: Callable[[], None]) -> int:
        """Call `fn` (from the closing thread) when this Ring is closed; at
        once if it is closing already. Returns a key for _unwatch_close."""
        with self._watch_lock:
            if not self._closing:
                key = id(fn)
                self._close_watchers[key] = fn
                return key
        fn()
        return 0

    def _unwatch_close(self, key: int) -> None:
        with self._watch_lock:
            self._close_watchers.pop(key, None)

    async def aread(self, max_records: Optional[int] = None,
                    timeout: Optional[float] = None) -> R:
        """Await records without blocking the event loop: an array for a
        single-type ring (as :meth:`read`), a :class:`Batch` otherwise (as
        :meth:`read_batch`).

        ``timeout``: None waits for the first records without limit, a number
        of seconds at most that long (then the result is empty). Raises as
        :meth:`read` does: :class:`RingClosedError` once the producer closed
        the ring and everything was read, or when this Ring is closed
        (also from another thread) while the call awaits. Cancelling the
        awaiting task consumes nothing.
        """
        from .aio import aread

        return await aread(self, max_records, timeout)

    def __aiter__(self) -> AsyncIterator[R]:
        """``async for batch in ring``: as :meth:`__iter__`, awaiting instead
        of blocking; ends when the producer closes the ring or this Ring is
        closed (from any thread, or by the loop's body)."""
        from .aio import aiter_batches

        return aiter_batches(self)
