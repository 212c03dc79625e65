"""Zero-copy reads: :meth:`Ring.view <pykring.Ring.view>`, rows that are
the records in the mapped ring, consumed when the ``with`` block ends.

A view is a run of records of one type, each of that type's full size, in
ring order: numpy then sees them as rows ``span`` bytes apart (the record
header between two rows is not part of any row). A record of another type,
a shorter one (the variable-length records of a kernel source), the end of
the data area (rings mapped once) or a quarter of the data area end the
run; the next view starts there. When the very first record is one only a
copy can give whole, the view is a copy (as :meth:`read_batch` makes),
consumed the same way. :class:`Views` is a part of :class:`~pykring.Ring`.
"""
import time
from typing import Any, Dict, Optional

import numpy as np

from . import errors
from ._inplace import Holds, address, rows_at, unmap_when_unused
from ._lib import ffi, lib
from .batch import Batch

_NO_LIMIT = 1 << 62
_ENDED = lib.KRING_F_CLOSED | lib.KRING_F_BROKEN


class Views:
    """The zero-copy side of a :class:`~pykring.Ring`."""

    # Given by Ring (and its other parts).
    _c: Any
    _types: Any
    _single: bool
    _closing: bool
    _empty: Dict[int, np.ndarray]

    def _start_views(self) -> None:
        c = self._c

        def quiet(pos: int, on: int) -> None:
            c.hold, c.holding = pos, on

        self._holds = Holds(lambda pos, on: lib.kring_hold(c, pos, on), quiet)
        self._view_out = ffi.new("struct kring_view *")
        self._dtype_of = {tid: (name, dt) for tid, name, dt in self._types}
        self._data_addr = 0     # of the data area, once a view has rows (the mapping never moves)

    def view(self, max_records: Optional[int] = None, timeout: Optional[float] = 0) -> "_ViewBlock":
        """Records without a copy: ``with ring.view() as rows:`` gives what
        :meth:`read` gives (an array; a :class:`Batch` for a ring of several
        types, via :meth:`read_batch`), read-only, but as views of the
        records in the ring itself. They are consumed when the block ends
        without an exception (an exception leaves them in the ring for the
        next read); a view is a run of one record type, so it may end
        before what is pending does (module :mod:`pykring._view`).

        ``max_records`` and ``timeout`` as for :meth:`read`. One view at a
        time per Ring (a second ``view()`` inside the block raises
        RuntimeError); :meth:`read` and iteration still copy.

        Rows kept past the block stay valid: the ring does not reuse their
        bytes while any array of them (a field, a slice) is alive, and the
        mapping stays until then, also after :meth:`close`. The producer
        meanwhile has that much less room: keep ``np.array(rows)`` (a copy)
        rather than the rows themselves for long.
        """
        return _ViewBlock(self, max_records, timeout)

    def _find_data(self) -> int:
        self._data_addr = address(self._c.m.data)
        return self._data_addr

    def _settle_views(self) -> None:
        """Apply the holds of rows that died since the last call (locked)."""
        if self._holds.dirty:
            self._holds.settle()

    def _unmap_after_views(self) -> None:
        """Close the consumer now, or once the last rows in it are gone."""
        c = self._c
        unmap_when_unused(self._holds.alive(), lambda: lib.kring_consumer_close(c))


class _ViewBlock:
    """What :meth:`Views.view` returns: the ``with`` block of one view."""

    __slots__ = ("_ring", "_max", "_timeout", "_end", "_in_place", "_rows")

    def __init__(self, ring: Any, max_records: Optional[int], timeout: Optional[float]):
        if max_records is not None and max_records < 0:
            raise ValueError("max_records must be >= 0")
        self._ring, self._max, self._timeout = ring, max_records, timeout
        self._end: Optional[int] = None     # the position after the rows, if any were taken
        self._in_place = False              # rows in the ring, held until they are gone
        self._rows: Optional[np.ndarray] = None    # those rows, as the block got them

    def __enter__(self) -> Any:
        ring = self._ring
        holds = ring._holds
        if holds.open is not None:
            raise RuntimeError("a view of this ring is open already: end its with block first "
                               "(one view at a time per Ring)")
        limit = _NO_LIMIT if self._max is None else self._max
        ring._enter()
        try:
            if holds.dirty:
                holds.settle()
            c, v = ring._c, ring._view_out
            timeout = self._timeout
            waits = timeout != 0 and limit
            deadline = None if timeout is None or not waits else time.monotonic() + max(0.0, timeout)
            while True:
                if waits and lib.kring_pending(c) == 0:
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    if not ring._wait(left):
                        return self._empty()
                rc = lib.kring_view(c, limit, v)        # marks the position for kring_rewind
                if rc < 0:
                    ring._check(rc, "view")
                count = v.count
                if count:
                    break
                # A record only a copy gives whole, or nothing: the drain then
                # says why when the ring is closed or broken.
                if v.copy or lib.kring_ring_flags(c) & _ENDED:
                    return self._copy(limit)
                # Only the padding before the end of the data area was there:
                # the view skipped it (the position moved), and a view that
                # waits waits on for records. A record still being written
                # (BUSY) moved nothing: empty, as a read gives.
                if not waits or c.pos == c.mark_pos:
                    return self._empty()
            name, dt = ring._dtype_of[v.type]
            if dt.itemsize != v.size:
                lib.kring_rewind(c)
                return self._copy(limit)
            base = ring._data_addr or ring._find_data()
            rows, region = rows_at(base + v.offset, count, v.span, dt, False)
            self._end, self._in_place, self._rows = c.pos, True, rows
            holds.begin(v.start, region)
            if ring._single:
                return rows
            arrays = {n: ring._empty[tid] for tid, n, _ in ring._types}
            arrays[name] = rows
            return Batch(arrays)
        finally:
            ring._leave()

    def _empty(self) -> Any:
        ring = self._ring
        if ring._single:
            return ring._empty[ring._tid0]
        return Batch(ring._empty_batch)

    def _copy(self, limit: int) -> Any:
        """A record only a copy can give whole: the rows of a copying read,
        consumed when the block ends as a view's are."""
        ring = self._ring
        if ring._single:
            out = ring.read(limit, 0, commit=False)
        else:
            out = ring.read_batch(limit, 0, commit=False)
        self._end = int(ring._c.pos)
        return out

    def __exit__(self, exc_type, exc, tb) -> None:
        ring = self._ring
        holds = ring._holds
        try:
            ring._enter()
        except errors.ObjectClosedError:
            return                      # closed in the block: the close unmaps after the rows
        try:
            c = ring._c
            if exc_type is not None and self._end is not None and c.pos == self._end:
                lib.kring_rewind(c)     # not consumed: the next read gets them again
            if self._in_place:
                rows, self._rows = self._rows, None
                holds.end(rows)             # gives the ring the hold that is left
            lib.kring_commit(c)
            ring._drained()
        finally:
            ring._leave()
