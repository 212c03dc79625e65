"""Arrays in place in a ring's mapping, for the zero-copy paths
(:meth:`pykring.Ring.view`, :meth:`pykring.Producer.reserve`): numpy rows
over ring memory whose lifetime the ring can see, and the holds that keep
the ring from reusing those bytes while any of the rows is alive.

Every array made here, and every array numpy derives from it (a field, a
slice, a view), keeps one :class:`_Region` object alive: numpy's base chain
ends there. A weak reference to it tells the ring when the last of them is
gone, from whatever thread drops it; the ring then lets the bytes go at its
next call (:class:`Holds`), and a closed ring unmaps only then
(:func:`unmap_when_unused`).
"""
import collections
import sys
import weakref
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple, cast

import numpy as np

from ._lib import ffi


class _Region:
    """The base of the rows of one view or reservation: it exports the
    ring's bytes to numpy (``__array_interface__``) and can be weakly
    referenced."""

    __slots__ = ("__array_interface__", "__weakref__")
    __array_interface__: Dict[str, Any]


def address(ptr: Any) -> int:
    """The address a cffi pointer holds, as an int (for :func:`rows_at`)."""
    return int(ffi.cast("uintptr_t", ptr))


def rows_at(addr: int, count: int, span: int, dtype: np.dtype, writable: bool) -> Tuple[np.ndarray, _Region]:
    """`count` rows of `dtype`, `span` bytes apart from address `addr`, in
    place (read-only unless `writable`), and their region."""
    region = _Region()
    region.__array_interface__ = {"data": (addr, not writable), "typestr": "|u1", "version": 3,
                                  "shape": ((count - 1) * span + dtype.itemsize if count else 0,)}
    return np.ndarray((count,), dtype, np.asarray(region), 0, (span,)), region


def empty_if_alone(rows: np.ndarray) -> None:
    """Make `rows`, an array of rows_at(), an empty read-only array of the
    same dtype if no other array was derived from it (its base, the bytes'
    array, is then referenced by `rows` alone): the name a ``with`` block
    bound then no longer reaches the ring, and the ring need not wait for
    it to go. A derived array (a field, a slice) keeps the rows as they
    are, and the hold with them."""
    if sys.getrefcount(rows.base) == 2:     # rows.base, and the argument of getrefcount
        rows.__setstate__(cast(Any, (1, (0,), rows.dtype, False, b"")))
    if rows.flags.writeable:
        rows.flags.writeable = False


class Holds:
    """The regions of a ring whose rows outlived their block, oldest first,
    and the hold they put on the ring: the ring position of the oldest one
    that is still alive. ``apply(pos, holding)`` gives the ring the hold;
    ``quiet(pos, holding)`` only sets it, where the owner's next call (a
    commit, a publish) follows at once and tells the other side.

    A region dying only marks the holds dirty (its weak reference's callback
    may run in any thread, inside any call); the owner settles them under its
    lock, at its next call or wait slice (:meth:`settle`)."""

    def __init__(self, apply: Callable[[int, int], None], quiet: Optional[Callable[[int, int], None]] = None):
        self._apply = apply
        self._quiet = quiet or apply
        self._kept: Deque[Tuple[int, "weakref.ref[_Region]"]] = collections.deque()
        self._dirty = [False]
        self.open: Optional[Tuple[int, "weakref.ref[_Region]"]] = None   # the block now open

    @property
    def dirty(self) -> bool:
        return self._dirty[0]

    def begin(self, pos: int, region: _Region) -> None:
        """A block opens with rows from ring position `pos`: hold them."""
        self.open = (pos, weakref.ref(region))
        if not self._kept:
            self._quiet(pos, 1)

    def end(self, given: Optional[np.ndarray] = None) -> None:
        """The open block ends. `given`, the array the block gave, is
        emptied if nothing was derived from it (empty_if_alone); the rows'
        hold stays while an array of them is still alive. The owner's
        commit or publish follows: the hold is set, not told."""
        pos, ref = self.open            # type: ignore[misc]
        self.open = None
        if given is not None:
            empty_if_alone(given)
            del given
        region = ref()
        if region is not None:
            flag = self._dirty

            def died(_ref: Any) -> None:
                flag[0] = True

            self._kept.append((pos, weakref.ref(region, died)))
            del region
        elif not self._kept:
            self._dirty[0] = False
            self._quiet(0, 0)
            return
        self.settle()

    def settle(self) -> None:
        """Drop the dead regions and give the ring the hold that is left."""
        self._dirty[0] = False
        kept = self._kept
        while kept and kept[0][1]() is None:
            kept.popleft()
        if kept:
            self._apply(kept[0][0], 1)
        elif self.open is not None:
            self._apply(self.open[0], 1)
        else:
            self._apply(0, 0)

    def alive(self) -> List[_Region]:
        """The regions whose rows are still in use (the open block's too)."""
        refs = [ref for _, ref in self._kept]
        if self.open is not None:
            refs.append(self.open[1])
        return [r for r in (ref() for ref in refs) if r is not None]


#: The weak references of closes that wait for the last rows of their ring
#: to go (a weak reference fires only while it is itself alive).
_waiting: Dict[int, List[Any]] = {}


def unmap_when_unused(regions: List[_Region], unmap: Callable[[], None]) -> None:
    """Call `unmap` now if no region is alive, else when the last one dies
    (in the thread that drops it)."""
    if not regions:
        unmap()
        return
    left = [len(regions)]
    refs: List[Any] = []

    def gone(_ref: Any) -> None:
        left[0] -= 1
        if left[0] == 0:
            _waiting.pop(id(refs), None)
            unmap()

    _waiting[id(refs)] = refs
    refs.extend(weakref.ref(r, gone) for r in regions)
    regions.clear()         # the caller's strong references: the last may fire `gone` here
