"""Zero-copy writes: :meth:`Producer.reserve <pykring.Producer.reserve>`,
rows in the ring itself that the caller fills, published when the ``with``
block ends. :class:`Reservations` is a part of :class:`~pykring.Producer`.

The rows of a reservation are contiguous in the data area (a DISCARD
record pads to its end first if they would not fit before it) and take at
most a quarter of it; nothing of them is visible to the consumer before
the block ends. csrc/kring_reserve.c is the C side.
"""
import time
from typing import Any, Optional, Union

import numpy as np

from . import errors
from ._common import WAIT_SLICE_S
from ._inplace import Holds, address, rows_at, unmap_when_unused
from ._lib import ffi, lib, raise_for

Timeout = Optional[float]


class Reservations:
    """The zero-copy side of a :class:`~pykring.Producer`."""

    # Given by Producer.
    _p: Any
    _path: str
    _block: bool
    _timeout: Timeout
    _closing: bool

    def _start_reservations(self) -> None:
        p = self._p

        def quiet(pos: int, on: int) -> None:
            p.hold, p.holding = pos, on     # what kring_producer_hold sets, without a call

        self._holds = Holds(lambda pos, on: lib.kring_producer_hold(p, pos, on), quiet)
        self._reservation = ffi.new("struct kring_reservation *")
        self._reserving = False
        self._data_addr = address(p.m.data)     # the data area (mapped at open, never moved)

    def reserve(self, n: int, type: Optional[str] = None, timeout: Union[Timeout, str] = "default",
                flags: int = 0) -> "_ReserveBlock":
        """Room for `n` records in the ring itself: ``with producer.reserve(n)
        as rows:`` gives a writable array of `n` records of the ring's dtype
        (of `type`, for a ring of several) to fill in place, published
        when the block ends; the producer sets ``seq``, ``ts``, ``type`` and
        ``flags`` then. Like ``np.empty``: a field not set holds old bytes.

        When the ring has no room: drop mode gives rows that are not in the
        ring and counts the `n` records as dropped at the end of the block
        (as :meth:`write` drops); block mode waits for room up to `timeout`
        (:class:`RingTimeoutError`). An exception in the block publishes
        nothing. At most a quarter of the ring's data area per reservation
        (ValueError beyond). One reservation at a time, and no :meth:`write`
        while one is open (RuntimeError).

        After the block the rows are read-only. An array derived from them
        (a field, a slice) that outlives the block keeps the producer from
        writing over their bytes until it is gone.
        """
        return _ReserveBlock(self, n, type, timeout, flags)

    def _settle_reservations(self) -> None:
        """Apply the holds of rows that died since the last call (locked)."""
        if self._holds.dirty:
            self._holds.settle()

    def _refuse_if_reserving(self, what: str) -> None:
        if self._reserving:
            raise RuntimeError("%s: a reservation of this producer is open: end its with block first" % what)

    def _unmap_after_reservations(self) -> None:
        """Tell the consumer the ring is closed now; unmap once the last
        reserved rows are gone."""
        p = self._p
        lib.kring_producer_mark_closed(p)
        unmap_when_unused(self._holds.alive(), lambda: lib.kring_producer_close(p, 0))


class _ReserveBlock:
    """What :meth:`Reservations.reserve` returns: the ``with`` block of one
    reservation."""

    __slots__ = ("_prod", "_n", "_type", "_timeout", "_flags", "_rows", "_dropped")

    def __init__(self, producer: Any, n: int, type: Optional[str], timeout: Union[Timeout, str], flags: int):
        n = int(n)
        if n < 0:
            raise ValueError("reserve: n must be >= 0, not %d" % n)
        if isinstance(timeout, str) and timeout != "default":
            raise TypeError("timeout must be a number of seconds or None, not %r" % timeout)
        self._prod, self._n, self._type, self._flags = producer, n, type, int(flags)
        self._timeout: Timeout = producer._timeout if timeout == "default" else timeout  # type: ignore[assignment]
        self._rows: Optional[np.ndarray] = None
        self._dropped = False

    def __enter__(self) -> np.ndarray:
        prod = self._prod
        tid, full, _ = prod._type(self._type)
        prod._enter()
        try:
            if prod._reserving:
                prod._refuse_if_reserving("reserve")
            holds = prod._holds
            if holds.dirty:
                holds.settle()
            r, n = prod._reservation, self._n
            if lib.kring_reserve(prod._p, tid, n, 0, r) != lib.KRING_OK or not (r.count or n == 0 or
                                                                                 not prod._block):
                self._wait_for_room(tid, r)     # no room at once, or an error to raise
            if r.count < n:
                # Drop mode, no room: rows outside the ring, dropped at the end.
                self._rows, self._dropped = np.empty(n, dtype=full), True
            else:
                self._rows, region = rows_at(prod._data_addr + r.offset, n, r.span, full, True)
                holds.begin(r.start, region)
            prod._reserving = True
            return self._rows
        finally:
            prod._leave()

    def _wait_for_room(self, tid: int, r: Any) -> None:
        prod, n, timeout = self._prod, self._n, self._timeout
        p = prod._p
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        while True:
            # In slices, as write() waits: Ctrl-C, a dead consumer and rows
            # that died in another thread are noticed within a slice.
            left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
            rc = lib.kring_reserve(p, tid, n, int(max(0.0, left) * 1e9), r)    # GIL released inside
            if rc == lib.KRING_OK:
                return
            if rc == lib.KRING_E_TOOBIG:
                most = p.m.capacity // 4 // r.span
                raise ValueError("reserve: %d records of %d bytes take more than a quarter of the ring's %d "
                                 "data bytes; reserve at most %d at a time" % (n, r.span, p.m.capacity, most))
            if rc == lib.KRING_E_BROKEN:
                why = ("the ring file was truncated under the mapping" if p.m.faulted else
                       "the consumer page holds a nonsense position (%d)" % p.bad_consumer_pos)
                raise_for(rc, "reserve", detail="%s; the producer stopped writing. Recreate the ring." % why)
            if rc not in (lib.KRING_E_TIMEOUT, lib.KRING_E_INTR):
                raise_for(rc, "reserve", m=p.m, path=prod._path)
            if prod._closing:
                raise prod._closed_error("reserve")
            prod._settle_reservations()
            if lib.kring_consumer_gone(p) == 1:
                raise errors.ConsumerGoneError(
                    "reserve: the consumer exited without closing the ring (it was killed or crashed) "
                    "while this reservation waited for room. A new consumer can attach and drain")
            if deadline is not None and time.monotonic() >= deadline:
                raise_for(lib.KRING_E_TIMEOUT, "reserve",
                          detail="the ring stayed full for %ss: no room for %d records" % (timeout, n))

    def __exit__(self, exc_type, exc, tb) -> None:
        prod, rows = self._prod, self._rows
        assert rows is not None
        self._rows = None
        rows.flags.writeable = False
        try:
            prod._enter()
        except errors.ObjectClosedError:
            return                      # closed in the block: nothing published
        try:
            prod._reserving = False
            p = prod._p
            if self._dropped:
                if exc_type is None:
                    lib.kring_count_dropped(p, self._n)
                return
            try:
                if exc_type is None:
                    rc = lib.kring_publish(p, prod._reservation, self._n, self._flags)
                    if rc < 0:
                        raise_for(rc, "reserve: publish", m=p.m, path=prod._path)
            finally:
                prod._holds.end(rows)
        finally:
            prod._leave()
