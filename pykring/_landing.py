"""Where a read's records land: the rows that read() and read_batch() drain
into (fresh landing rows made before the wait, or the caller's ``out``
arrays, checked once), the drain of a backlog that did not fit, and the
arrays a read returns from them. :class:`Landing` is a part of
:class:`~pykring.Ring`, which gives it the consumer and its ``kring_out``
array (the protocol of a read: ``Ring._read``)."""
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

import numpy as np

from ._lib import ffi, lib
from .batch import Batch
from .schema import record_span

#: read() and read_batch() without out= drain into fresh zeroed rows made
#: before the wait, twice as many per type as the last batch of that type had
#: (rounded up to a power of two: room to spare, so a batch that fits needs
#: no look at what is still pending), at most this many bytes' worth (and at
#: least one row); the rows become the result. A batch that does not fit is
#: drained into rows for all of it (counted by kring_census, or, for one
#: type, as many as the pending bytes can hold).
LANDING_BYTES = 64 << 10
LANDING_ROWS_MAX = 1024
#: What self._outs points at (Ring._landed), besides a read() `out` array.
_LANDING, _BATCH_OUT = "landing", "batch out"
#: The `count` of a struct kring_out (kring_user.h), as numpy sees it.
_OUT_DTYPE = np.dtype({"names": ["count"], "formats": [np.uint64],
                       "offsets": [ffi.offsetof("struct kring_out", "count")],
                       "itemsize": ffi.sizeof("struct kring_out")})


def _empty_rows(dt: np.dtype) -> np.ndarray:
    """No rows of `dt`, read-only: one such array serves every batch."""
    rows = np.empty(0, dtype=dt)
    rows.flags.writeable = False
    return rows


class Landing:
    """The landing side of a :class:`~pykring.Ring`: its rows and arrays."""

    # Given by Ring: the consumer, its types, its kring_out array and count,
    # and the check of a status.
    _c: Any
    _types: List[Tuple[int, str, np.dtype]]
    _outs: Any
    _n: Any
    _check: Callable[[int, str], None]

    def _start_landing(self, types: List[Tuple[int, str, np.dtype]]) -> None:
        """The landing state of a ring of `types` (after self._outs)."""
        self._census = ffi.new("uint64_t[]", lib.KRING_MAX_TYPES)
        # The rows self._outs points at now: _LANDING, _BATCH_OUT, the
        # `out` array of read(), or None (nothing reusable: set them again).
        self._landed: object = None
        # The counts of self._outs as one numpy view: read in one call.
        self._out_counts = np.frombuffer(ffi.buffer(self._outs), dtype=_OUT_DTYPE)["count"]
        self._out_array: Optional[np.ndarray] = None    # the last `out` of read(), checked
        self._out_ptr = ffi.NULL
        self._out_empty: np.ndarray = np.empty(0)      # out[:0] of that `out`
        # The landing rows of each type id (array, cdata, pointer), how many
        # rows to make next, and the caller's arrays of read_batch(out=) last
        # seen, checked.
        self._landing: Dict[int, tuple] = {}
        self._land_next = {tid: 1 for tid, _, _ in types}
        self._land_max = {tid: max(1, min(LANDING_ROWS_MAX, LANDING_BYTES // dt.itemsize)) for tid, _, dt in types}
        self._batch_out: Dict[int, tuple] = {tid: (None,) for tid, _, _ in types}
        self._empty = {tid: _empty_rows(dt) for tid, _, dt in types}
        self._empty_batch = {name: self._empty[tid] for tid, name, _ in types}
        self._single = len(types) == 1
        self._tid0 = types[0][0]            # the type id of a single-type ring

    def _drain(self, bufs: Dict[int, np.ndarray], fill: Dict[int, int], max_records: int, have: int) -> None:
        """Drain (without publishing the position) into bufs[type id] (every
        type) from row fill[id], and update fill. The buffers are fresh
        np.zeros arrays: the drain skips zero-filling short records, so the
        pages of a wide row past its record are never touched. ``have``:
        records this read delivered before (then an error of the ring waits
        for the next read)."""
        c, outs, n = self._c, self._outs, self._n
        keep = []
        for tid, buf in bufs.items():
            cbuf = ffi.from_buffer(buf, require_writable=True)
            keep.append(cbuf)
            self._point(tid, ffi.cast("uint8_t *", cbuf), len(buf), 1)
            outs[tid].count = fill[tid]
        self._landed = None
        rc = lib.kring_drain(c, outs, max_records, 0, n)  # GIL released
        for tid in bufs:
            fill[tid] = int(outs[tid].count)
            outs[tid].buf = ffi.NULL
        if rc < 0 and not (n[0] or have):
            # Records before it are delivered first; the next read meets the
            # same condition again (corrupt record, closed, broken) and raises.
            self._check(rc, "drain")

    def _land_rows(self, out: Optional[np.ndarray]) -> int:
        """Point the drain at `out`, or at fresh landing rows."""
        if out is None:
            return self._land_batch(None)
        if self._landed is not out:
            if out is not self._out_array:
                self._out_buf = ffi.from_buffer(out, require_writable=True)
                self._out_array, self._out_ptr, self._out_empty = out, ffi.cast("uint8_t *", self._out_buf), out[:0]
            self._point(self._tid0, self._out_ptr, len(out), 0)
            self._landed = out
        return len(out)

    def _point(self, tid: int, ptr, rows: int, zeroed: int) -> None:
        o = self._outs[tid]
        o.buf, o.capacity, o.count, o.zeroed = ptr, rows, 0, zeroed

    def _rows(self, out: Optional[np.ndarray], got: int, limit: int) -> np.ndarray:
        """read()'s result: the `got` rows drained into `out`, or the landing rows."""
        if out is not None:
            return out[:got] if got else self._out_empty
        tid = self._tid0
        if not got:
            return self._empty[tid]
        rows = self._landing[tid][0]
        if got == len(rows) or 4 * got < len(rows):
            return self._take(got, limit)[tid]      # maybe a backlog; or mostly unused
        # All records are of the one type and left room: nothing more to look at.
        del self._landing[tid]
        self._landed = None
        self._land_next[tid] = min(self._land_max[tid], 2 << (got - 1).bit_length())
        return rows[:got]

    def _land_out(self, out: Mapping[str, np.ndarray]) -> int:
        """Check the caller's arrays of read_batch(out=) and point the drain
        at them. Each array is checked once: a loop that reuses them only
        looks them up."""
        cache = self._batch_out
        same = self._landed is _BATCH_OUT
        room = 0
        for tid, name, dt in self._types:
            try:
                a = out[name]
            except (KeyError, TypeError):
                raise TypeError("out must map every record type name to an array: %r is missing" % name) from None
            entry = cache[tid]
            if entry[0] is not a:
                if (not isinstance(a, np.ndarray) or a.dtype != dt or a.ndim != 1 or
                        not a.flags.c_contiguous or not a.flags.writeable):
                    raise TypeError("out[%r] must be a writable, contiguous 1-d array of that type's dtype %s"
                                    % (name, dt))
                cbuf = ffi.from_buffer(a, require_writable=True)
                entry = cache[tid] = (a, cbuf, ffi.cast("uint8_t *", cbuf), a[:0])
                same = False
            room += len(a)
        if not same:
            for tid, entry in cache.items():
                self._point(tid, entry[2], len(entry[0]), 0)
            self._batch_out_empty = {name: cache[tid][3] for tid, name, _ in self._types}
            self._landed = _BATCH_OUT
        return room

    def _batch_out_rows(self, out, got: int, limit: int) -> Batch:
        if not got:
            return Batch(self._batch_out_empty)
        counts = self._out_counts.tolist()
        cache = self._batch_out
        return Batch({name: cache[tid][0][:counts[tid]] for tid, name, _ in self._types})

    def _land_batch(self, _) -> int:
        """Point the drain at the landing rows of each type: fresh zeros,
        made before the wait (never on the wake path) and kept until records
        land in them."""
        landing = self._landing
        if self._landed is not _LANDING:
            for tid, _, dt in self._types:
                entry = landing.get(tid)
                if entry is None:
                    rows = np.zeros(self._land_next[tid], dtype=dt)
                    cbuf = ffi.from_buffer(rows, require_writable=True)
                    entry = landing[tid] = (rows, cbuf, ffi.cast("uint8_t *", cbuf))
                self._point(tid, entry[2], len(entry[0]), 1)
            self._landed = _LANDING
            self._landing_room = sum(len(entry[0]) for entry in landing.values())
        return self._landing_room

    def _batch_rows(self, _, got: int, limit: int) -> Batch:
        """read_batch()'s result from the landing rows."""
        if not got:
            return Batch(self._empty_batch)
        arrays = self._take(got, limit)
        return Batch({name: arrays[tid] for tid, name, _ in self._types})

    def _take(self, got: int, limit: int) -> Dict[int, np.ndarray]:
        """The rows of each type id after `got` records landed: the landing
        rows themselves where they are mostly used (fresh ones are made before
        the next wait), else an exact copy; and a backlog that did not fit
        drained after them."""
        landing, c, empty = self._landing, self._c, self._empty
        counts = self._out_counts.tolist()
        arrays = {}
        pending = 0
        if got < limit and any(counts[tid] == len(landing[tid][0]) for tid in landing):
            pending = lib.kring_pending(c)
        if pending > 0:
            # A backlog: rows for all of it, one drain, no growing copies
            # (records of a kernel ring are up to 70 KB wide); the landing rows
            # go first. One type: as many rows as the pending bytes could
            # hold; several: a census of the pending headers.
            census = self._census
            if self._single:
                tid = self._tid0
                census[tid] = min(limit - got, pending // record_span(int(c.type_min[tid])))
            else:
                self._check(lib.kring_census(c, limit - got, census), "read")
            fills = {}
            for tid in landing:
                fill = fills[tid] = counts[tid]
                arrays[tid] = np.zeros(max(1, fill + int(census[tid])), dtype=landing[tid][0].dtype)
                if fill:
                    # Raw bytes: a structured copy would skip bytes no field covers.
                    arrays[tid].view(np.uint8)[:fill * arrays[tid].itemsize] = landing[tid][0][:fill].view(np.uint8)
            self._drain(arrays, fills, limit - got, have=got)
            for tid, fill in fills.items():
                arrays[tid] = arrays[tid][:fill] if fill else empty[tid]
                if counts[tid]:
                    del landing[tid]
                    self._land_next[tid] = min(self._land_max[tid], 2 << (fill - 1).bit_length())
            return arrays
        for tid, _, _ in self._types:
            fill = counts[tid]
            if not fill:
                arrays[tid] = empty[tid]
                continue
            rows = landing.pop(tid)[0]
            self._landed = None
            if fill == len(rows):
                arrays[tid] = rows
            elif 4 * fill >= len(rows):
                arrays[tid] = rows[:fill]
            else:
                # Mostly unused (a much larger batch came before): an exact
                # copy, raw bytes (a structured copy would skip bytes no field covers).
                arrays[tid] = np.empty(fill, dtype=rows.dtype)
                arrays[tid].view(np.uint8)[:] = rows[:fill].view(np.uint8)
            self._land_next[tid] = min(self._land_max[tid], 2 << (fill - 1).bit_length())
        return arrays
