"""Consumers: :class:`Ring`, its batches and statistics."""
import threading
import time
from dataclasses import dataclass
from typing import (Any, AsyncIterator, Callable, Dict, Iterator, List, Mapping, Optional, Tuple, TypeVar,
                    Union)

import numpy as np

from . import _common, errors
from ._common import (WAIT_SLICE_MAX_S, WAIT_SLICE_S, Lifecycle, file_identity, remove_if_same, remove_ring,
                      ring_path)
from ._lib import check_open, ffi, lib, private_meta, raise_for
from .schema import Types, make_meta, normalize_types, record_span, types_from_meta

#: read() without out= drains batches up to this many rows through a reused buffer.
SCRATCH_ROWS = 1024

Timeout = Optional[float]
T = TypeVar("T")


@dataclass(frozen=True)
class Stats:
    """Counters of a ring, as seen by its consumer."""

    written: Optional[int]   #: records the producer committed (None: source keeps no count)
    dropped: Optional[int]   #: records the producer dropped because the ring was full (exact)
    lost: int                #: sequence numbers this consumer never saw (gaps, drops included)
    read: int                #: records this consumer delivered
    pending_bytes: int       #: bytes published and not yet drained
    capacity: int            #: data area bytes


class Batch(Mapping[str, np.ndarray]):
    """Records of one drain, by record type name. Every type of the ring is a
    key; types with no records map to empty arrays."""

    __slots__ = ("_arrays",)

    def __init__(self, arrays: Dict[str, np.ndarray]):
        self._arrays = arrays

    def __getitem__(self, name: str) -> np.ndarray:
        return self._arrays[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._arrays)

    def __len__(self) -> int:
        return len(self._arrays)

    @property
    def count(self) -> int:
        """Records in the batch, all types together."""
        return sum(len(a) for a in self._arrays.values())

    def __bool__(self) -> bool:
        return self.count > 0

    def __repr__(self) -> str:
        return "Batch(%s)" % ", ".join("%s=%d" % (k, len(v)) for k, v in self._arrays.items())

    def to_arrow(self, binary: bool = False) -> Dict[str, Any]:
        """``{type name: pyarrow.RecordBatch}``: ``ts`` as timestamp[ns, UTC],
        ``S`` fields as strings (``binary=True``: bytes), subarrays as
        fixed-size lists, a kernel process_start's command line as ``argv``
        (list<string>). The rules: :mod:`pykring.arrow`. Needs
        ``pip install 'pykring[arrow]'``."""
        from .arrow import batch_to_arrow

        return batch_to_arrow(self, binary)

    def to_pandas(self, binary: bool = False) -> Dict[str, Any]:
        """``{type name: pandas.DataFrame}``, through :meth:`to_arrow`.
        Needs ``pip install 'pykring[pandas]'``."""
        from .arrow import batch_to_pandas

        return batch_to_pandas(self, binary)


class Ring(Lifecycle):
    """The consumer of a ring: owns the mapping, drains records into numpy.

    Use :func:`create` or :func:`attach` (or a kernel source) to get one, and
    close it (or use it as a context manager) to release the mapping; a ring
    this consumer created is removed then, if its name still names that file.
    Arrays it returns are copies, owned by the caller: they stay valid after
    the ring is closed.

    A Ring may be shared between threads: calls run one at a time, and every
    record is delivered once, to one of them. :meth:`close` may come from any
    thread; a read blocked in another thread then raises
    :class:`RingClosedError` (an iterator just ends). After ``os.fork()`` the
    child cannot use the parent's Ring (it raises :class:`KringError`; attach
    again there), and the child's exit leaves the parent's ring alone.
    """

    _kind = "ring"
    #: What feeds a kernel ring (e.g. the LinuxKernelSource); None otherwise.
    source: Optional[object] = None

    def __init__(self, c, types: List[Tuple[int, str, np.dtype]], path: Optional[str] = None,
                 unlink: Optional[Tuple[int, int]] = None, on_close: Optional[Callable[[], None]] = None,
                 written: Optional[Callable[[], Tuple[int, int]]] = None, reopen: Optional[str] = None):
        """``unlink``: (st_dev, st_ino) of a ring file to remove at close if
        `path` still names it; ``reopen``: how to open the ring again."""
        self._c = c
        self._types = types
        self._by_name = {name: (tid, dt) for tid, name, dt in types}
        self._path = path
        self._unlink = unlink
        self._on_close = on_close
        self._counts = written
        self._outs = ffi.new("struct kring_out[]", lib.KRING_MAX_TYPES)
        self._n = ffi.new("uint64_t *")
        self._census = ffi.new("uint64_t[]", lib.KRING_MAX_TYPES)
        self._stats = ffi.new("struct kring_ring_stats *")
        self._out_array: Optional[np.ndarray] = None    # the last `out` of read(), checked
        self._out_ptr = ffi.NULL
        self._scratch: Optional[np.ndarray] = None      # read()'s buffer for small batches
        self._notifier: Optional[Any] = None            # fileno() of a ring that waits on a futex
        self._watch_lock = threading.Lock()
        self._close_watchers: Dict[int, Callable[[], None]] = {}
        self._start_lifecycle(reopen or ("pykring.attach(%r)" % path if path else "open the source again"))

    # -- description ------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The record dtype of a single-type ring."""
        if len(self._types) != 1:
            raise TypeError("this ring has %d record types: use .dtypes" % len(self._types))
        return self._types[0][2]

    @property
    def dtypes(self) -> Dict[str, np.dtype]:
        """Record dtype by type name."""
        return {name: dt for _, name, dt in self._types}

    @property
    def capacity(self) -> int:
        """Bytes of the data area."""
        return int(self._c.m.capacity)

    @property
    def path(self) -> Optional[str]:
        """The ring file (Linux), mapping name (Windows), or the source's name."""
        return self._path

    # -- the lifecycle (Lifecycle) ------------------------------------------
    def _interrupt(self) -> None:
        lib.kring_interrupt(ffi.addressof(self._c, "m"))

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

    def _release(self) -> None:
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
        lib.kring_consumer_close(self._c)
        if self._on_close is not None:
            self._on_close()
        if self._path and self._unlink is not None:
            remove_if_same(self._path, self._unlink)

    def _check(self, rc: int, what: str) -> None:
        """Raise for a negative status of a call on this ring."""
        if rc < 0:
            if rc == lib.KRING_E_INTR and self._closing:
                raise self._closed_error(what)
            raise_for(rc, what, 0, self._c, m=self._c.m, path=self._path)

    # -- reading ----------------------------------------------------------
    def wait(self, timeout: Timeout = None) -> bool:
        """Block until records are pending or the ring is closed; False on timeout.

        ``timeout`` in seconds, None for no limit. Interruptible (Ctrl-C).
        Raises :class:`ProducerGoneError` when the producer was killed."""
        self._enter()
        try:
            return self._wait(timeout)
        finally:
            self._leave()

    def _wait(self, timeout: Timeout) -> bool:
        c = self._c
        deadline = None if timeout is None else time.monotonic() + max(0.0, timeout)
        slice_s, slice_max = WAIT_SLICE_S, max(WAIT_SLICE_S, WAIT_SLICE_MAX_S)
        while True:
            left = slice_s if deadline is None else min(slice_s, deadline - time.monotonic())
            slice_s = min(2 * slice_s, slice_max)
            rc = lib.kring_wait(c, int(max(0.0, left) * 1e9))   # GIL released inside
            if rc == lib.KRING_OK:
                return True
            if self._closing:
                raise self._closed_error("wait")
            if rc not in (lib.KRING_E_TIMEOUT, lib.KRING_E_INTR):
                self._check(rc, "wait")
            # Back in the interpreter: a pending KeyboardInterrupt is raised here.
            if lib.kring_producer_gone(c) == 1 and lib.kring_pending(c) == 0:
                self._check(lib.kring_consumer_stats(c, self._stats), "wait")
                raise errors.ProducerGoneError(
                    "wait: the producer (pid %d) exited without closing the ring; everything it "
                    "published was read" % self._stats.producer_pid)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _drain(self, bufs: Dict[int, np.ndarray], fill: Dict[int, int], max_records: int, grow: bool) -> int:
        """Drain (without publishing the position) into bufs[type id] from row
        fill[id]; grow full buffers if asked. The buffers are fresh np.zeros
        arrays: the drain skips zero-filling short records, so the pages of
        a wide row past its record are never touched."""
        c, outs, n = self._c, self._outs, self._n
        total = 0
        keep = []
        while True:
            for tid, buf in bufs.items():
                o = outs[tid]
                cbuf = ffi.from_buffer(buf, require_writable=True)
                keep.append(cbuf)
                o.buf = ffi.cast("uint8_t *", cbuf)
                o.capacity = len(buf)
                o.count = fill[tid]
                o.zeroed = 1
            rc = lib.kring_drain(c, outs, max_records - total, 0, n)  # GIL released
            got = int(n[0])
            total += got
            for tid in bufs:
                fill[tid] = int(outs[tid].count)
                outs[tid].buf = ffi.NULL
            keep.clear()
            if rc < 0:
                if total:
                    # Deliver what came before; the next read meets the same
                    # condition again (corrupt record, closed, broken) and raises.
                    return total
                self._check(rc, "drain")
            full = [tid for tid, buf in bufs.items() if fill[tid] == len(buf)]
            if not (grow and full and total < max_records and lib.kring_pending(c) > 0):
                return total
            for tid in full:
                old = bufs[tid]
                bufs[tid] = np.zeros(max(2 * len(old), 64), dtype=old.dtype)
                # Raw bytes: a field-wise copy would skip bytes no field covers.
                bufs[tid].view(np.uint8)[:old.nbytes] = old.view(np.uint8)

    def _estimate(self, tid: int, max_records: int) -> int:
        pending = lib.kring_pending(self._c)
        if pending < 0:
            self._check(pending, "read")
        size = int(self._c.type_min[tid])
        return max(1, min(max_records, pending // record_span(size) if pending else 1))

    def _read(self, max_records: Optional[int], timeout: Timeout, commit: bool,
              take: Callable[[int], T], empty: Callable[[], T]) -> T:
        """The protocol of read() and read_batch(): wait as `timeout` says
        (``empty()`` if nothing came), ``take(limit)`` drains and builds the
        result, and only then is the position published. If anything raises
        on the way, what was drained goes back (the next read delivers it);
        an error of the ring itself (closed, corrupt) delivered nothing in
        this call, and what earlier reads returned is published as asked."""
        limit = (1 << 62) if max_records is None else int(max_records)
        if limit < 0:
            raise ValueError("max_records must be >= 0")
        self._enter()
        c = self._c
        try:
            if timeout != 0 and lib.kring_pending(c) == 0 and not self._wait(timeout):
                self._drained()
                return empty()
            lib.kring_mark(c)
            try:
                result = take(limit)
            except BaseException as exc:
                lib.kring_rewind(c)
                if commit and isinstance(exc, errors.KringError):
                    lib.kring_commit(c)
                raise
            if commit:
                lib.kring_commit(c)
            self._drained()
            return result
        finally:
            self._leave()

    def read(self, max_records: Optional[int] = None, timeout: Timeout = 0,
             out: Optional[np.ndarray] = None, commit: bool = True) -> np.ndarray:
        """Records of a single-type ring, as a structured array.

        Drains what is pending now, up to `max_records` (and ``len(out)``).
        ``timeout``: 0 returns at once (maybe an empty array), None waits for
        the first record without limit, a number of seconds waits that long.
        ``out``: an array of :attr:`dtype` to fill; the result is then a view
        of its first rows (valid until you reuse `out`).
        ``commit=False`` leaves the records in the ring until :meth:`commit`
        (redelivered to the next consumer if this one dies first).
        Records are consumed only when the call returns them: if it raises
        (a MemoryError, Ctrl-C), the next read delivers them again.
        Raises :class:`RingClosedError` once the producer closed the ring and
        everything was read, or when another thread closes this Ring.
        """
        if len(self._types) != 1:
            raise TypeError("this ring has %d record types: use read_batch()" % len(self._types))
        tid, _, dt = self._types[0]
        if out is not None and out is not self._out_array:
            # Checked once per buffer: a loop that reuses `out` skips this.
            if out.dtype != dt or out.ndim != 1 or not out.flags.c_contiguous or not out.flags.writeable:
                raise TypeError("out must be a writable, contiguous 1-d array of the ring's dtype %s" % (dt,))
        return self._read(max_records, timeout, commit, lambda limit: self._read_rows(tid, dt, limit, out),
                          lambda: out[:0] if out is not None else np.empty(0, dtype=dt))

    def _read_rows(self, tid: int, dt: np.dtype, limit: int, out: Optional[np.ndarray]) -> np.ndarray:
        if out is not None:
            if out is not self._out_array:
                self._out_buf = ffi.from_buffer(out, require_writable=True)
                self._out_array, self._out_ptr = out, ffi.cast("uint8_t *", self._out_buf)
            return out[:self._drain_rows(tid, out, self._out_ptr, min(limit, len(out)))]
        rows = self._estimate(tid, limit)
        if rows <= SCRATCH_ROWS:
            # A small batch: drain into a reused buffer and copy out what came,
            # instead of allocating and filling a fresh array of the estimate.
            if self._scratch is None:
                self._scratch = np.empty(SCRATCH_ROWS, dtype=dt)
                self._scratch_buf = ffi.from_buffer(self._scratch, require_writable=True)
            got = self._drain_rows(tid, self._scratch, ffi.cast("uint8_t *", self._scratch_buf),
                                   min(limit, SCRATCH_ROWS))
            rows_out = np.empty(got, dtype=dt)
            # Raw bytes: a structured copy would skip bytes no field covers.
            rows_out.view(np.uint8)[:] = self._scratch[:got].view(np.uint8)
            return rows_out
        bufs = {tid: np.zeros(rows, dtype=dt)}
        fill = {tid: 0}
        self._drain(bufs, fill, limit, grow=True)
        return bufs[tid][:fill[tid]]

    def _drain_rows(self, tid: int, rows: np.ndarray, ptr, limit: int) -> int:
        """Drain up to `limit` records of a single-type ring into `rows` (at `ptr`)."""
        c = self._c
        o = self._outs[tid]
        o.buf, o.capacity, o.count, o.zeroed = ptr, len(rows), 0, 0
        rc = lib.kring_drain(c, self._outs, limit, 0, self._n)  # GIL released
        o.buf = ffi.NULL
        got = int(self._n[0])
        if rc < 0 and not got:
            self._check(rc, "drain")
        return got

    def read_batch(self, max_records: Optional[int] = None, timeout: Timeout = 0,
                   commit: bool = True) -> Batch:
        """Records of every type, as a :class:`Batch` (type name -> array).
        Arguments as for :meth:`read`."""
        return self._read(max_records, timeout, commit, self._read_batch,
                          lambda: Batch({name: np.empty(0, dtype=dt) for _, name, dt in self._types}))

    def _read_batch(self, limit: int) -> Batch:
        # Rows sized by a census of the pending headers: one drain, no
        # growing copies (records of a kernel ring are up to 70 KB wide).
        counts = self._census
        self._check(lib.kring_census(self._c, limit, counts), "read")
        bufs = {tid: np.zeros(max(1, int(counts[tid])), dtype=dt) for tid, _, dt in self._types}
        fill = {tid: 0 for tid in bufs}
        self._drain(bufs, fill, limit, grow=False)
        return Batch({name: bufs[tid][:fill[tid]] for tid, name, _ in self._types})

    def commit(self) -> None:
        """Publish the position after reads with ``commit=False``."""
        self._enter()
        try:
            lib.kring_commit(self._c)
        finally:
            self._leave()

    def __iter__(self) -> Iterator[Union[np.ndarray, Batch]]:
        """Blocks and yields non-empty batches: arrays for a single-type ring,
        :class:`Batch` objects otherwise. Ends when the producer closes the
        ring, or when this Ring is closed (from another thread, or by the
        loop's body)."""
        single = len(self._types) == 1
        while not self._closing:
            try:
                batch = self.read(timeout=None) if single else self.read_batch(timeout=None)
            except errors.RingClosedError:      # ObjectClosedError too: closed meanwhile
                return
            if len(batch) if isinstance(batch, np.ndarray) else batch.count:
                yield batch

    # -- readiness: select, selectors, asyncio ------------------------------
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
                    timeout: Timeout = None) -> Union[np.ndarray, Batch]:
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

    def __aiter__(self) -> AsyncIterator[Union[np.ndarray, Batch]]:
        """``async for batch in ring``: as :meth:`__iter__`, awaiting instead
        of blocking; ends when the producer closes the ring or this Ring is
        closed (from any thread, or by the loop's body)."""
        from .aio import aiter_batches

        return aiter_batches(self)

    # -- state ------------------------------------------------------------
    @property
    def stats(self) -> Stats:
        """Counters: written, dropped, lost, read, pending_bytes, capacity."""
        self._enter()
        try:
            c = self._c
            pending = lib.kring_pending(c)
            if pending < 0:
                self._check(pending, "stats")
            written = dropped = None
            if self._counts is not None:
                written, dropped = self._counts()
            elif c.m.has_meta:
                self._check(lib.kring_consumer_stats(c, self._stats), "stats")
                written, dropped = int(self._stats.written), int(self._stats.dropped)
            return Stats(written=written, dropped=dropped, lost=max(0, int(c.gaps)), read=int(c.records),
                         pending_bytes=max(0, int(pending)), capacity=int(c.m.capacity))
        finally:
            self._leave()

    @property
    def flags(self) -> int:
        """The producer's KRING_F_* flags (0 for sources without metadata)."""
        self._enter()
        try:
            return int(lib.kring_ring_flags(self._c))
        finally:
            self._leave()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        return "<pykring.Ring %s %s, %d bytes, types %s>" % (
            self._path or "", state, self.capacity, ", ".join(n for _, n, _ in self._types))


def _wrap_consumer(c, path: str, unlink: bool = False) -> Ring:
    try:
        types = types_from_meta(private_meta(c.m, "ring %s" % path))
        for tid, name, dt in types:
            if int(c.type_size[tid]) != dt.itemsize:
                raise_for(lib.KRING_E_CORRUPT, "ring %s" % path, detail="schema of %r changed while attaching" % name)
        identity = file_identity(c.m.fd) if unlink else None
    except BaseException:
        lib.kring_consumer_close(c)
        raise
    return Ring(c, types, path, unlink=identity)


def create(name: str, capacity: int, dtype: Union[np.dtype, str, list, Types], *,
           replace: bool = False, unlink: bool = True, mode: int = 0o600) -> Ring:
    """Create a shared-memory ring and return its consumer.

    ``dtype``: a structured numpy dtype (the ring's one record type, named
    ``"record"``) or a mapping of type names to dtypes (up to 15 types).
    The records read back carry the event header fields ``seq``, ``ts``
    (datetime64[ns]), ``type`` and ``flags`` first. ``capacity``: data bytes,
    a power of two from 4 KiB to 2 GiB. The file is removed when the ring is
    closed unless ``unlink=False`` (only if the name still names this ring's
    file). ``name``: a plain name is a file in /dev/shm; a name with a slash
    is a path. The file's blocks are reserved now: a full filesystem is an
    OSError (ENOSPC) here, never a crash later.
    """
    path = ring_path(name)
    meta = make_meta(capacity, normalize_types(dtype))
    if replace:
        remove_ring(path)
    c = ffi.new("struct kring_consumer *")
    check_open(lib.kring_consumer_create(c, path.encode(), meta, mode), c, "create ring %s" % path, path)
    return _wrap_consumer(c, path, unlink=unlink)


def attach(name: str) -> Ring:
    """Become the consumer of an existing ring, at its persisted position."""
    path = ring_path(name)
    c = ffi.new("struct kring_consumer *")
    check_open(lib.kring_consumer_open(c, path.encode()), c, "attach ring %s" % path, path)
    return _wrap_consumer(c, path)
