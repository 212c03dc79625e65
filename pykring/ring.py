"""The consumer: :class:`Ring` (its landing rows: :mod:`pykring._landing`;
its file descriptor, close watchers and async methods:
:mod:`pykring._readiness`), its statistics, and :func:`create` and
:func:`attach`, which open one. :class:`Batch` (:mod:`pykring.batch`) and
the landing sizes are importable from here too."""
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Generic, Iterator, List, Mapping, Optional, Tuple, TypeVar, Union, overload

import numpy as np

from . import errors
from ._common import WAIT_SLICE_MAX_S, WAIT_SLICE_S, file_identity, remove_if_same, remove_ring, ring_path
from ._landing import LANDING_BYTES, LANDING_ROWS_MAX, Landing  # noqa: F401 (the landing sizes, importable from here)
from ._lib import check_open, ffi, lib, private_meta, raise_for
from ._readiness import Readiness
from ._view import Views
from .batch import Batch, R
from .schema import Types, make_meta, normalize_types, types_from_meta

_NO_LIMIT = 1 << 62
_OK, _TIMEOUT = lib.KRING_OK, lib.KRING_E_TIMEOUT
_SLICE_NS = int(WAIT_SLICE_S * 1e9)

Timeout = Optional[float]
T = TypeVar("T")


@dataclass(frozen=True)
class Stats:
    """Counters of a ring, as seen by its consumer: a snapshot taken when
    :attr:`Ring.stats` was read (the fields never change afterwards).

    ``written``: records the producer committed since the ring was created
        (a kernel source: since its programs were loaded), summed over
        producers that came and went; None when the source keeps no count
        (a BPF ring buffer opened without counters).
    ``dropped``: records the producer discarded because the ring was full,
        counted exactly, over the same span as ``written``; None exactly
        when ``written`` is None.
    ``lost``: sequence numbers this Ring never saw since it was opened, in
        records: the drops and any other gap; never None.
    ``read``: records this Ring delivered since it was opened; never None.
    ``pending_bytes``: bytes the producer published that no read has
        drained yet (record headers and padding included), 0 .. capacity.
    ``capacity``: bytes of the ring's data area, a power of two.
    """

    written: Optional[int]
    dropped: Optional[int]
    lost: int
    read: int
    pending_bytes: int
    capacity: int


class Ring(Readiness[R], Landing, Views, Generic[R]):
    """The consumer of a ring: owns the mapping, drains records into numpy.

    Generic in what iteration yields, for type checkers: ``Ring[np.ndarray]``
    for a ring of one record type (:func:`create` with one dtype),
    ``Ring[Batch]`` for several (:func:`pykring.kernel`); :meth:`read_batch`
    works on both and always gives a :class:`Batch`.

    Use :func:`create` or :func:`attach` (or a kernel source) to get one, and
    close it (or use it as a context manager) to release the mapping; a ring
    this consumer created is removed then, if its name still names that file.
    Arrays it returns are copies, owned by the caller: they stay valid after
    the ring is closed; :meth:`view` gives the records in place instead.

    A Ring may be shared between threads: calls run one at a time, and every
    record is delivered once, to one of them. :meth:`close` may come from any
    thread; a read blocked in another thread then raises
    :class:`RingClosedError` (an iterator just ends). After ``os.fork()`` the
    child cannot use the parent's Ring (it raises :class:`KringError`; attach
    again there), and the child's exit leaves the parent's ring alone.

    ``source``: what feeds a kernel ring (on Linux the loaded programs'
    :class:`~pykring.kernel_linux.LinuxKernelSource`); None for any other ring.
    """

    _kind = "ring"
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
        self._stats = ffi.new("struct kring_ring_stats *")
        self._start_landing(types)
        self._start_views()
        self._start_readiness()
        self._start_lifecycle(reopen or ("pykring.attach(%r)" % path if path else "open the source again"))

    # -- description ------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The record dtype of a single-type ring: the event header fields
        (``seq``, ``ts``, ``type``, ``flags``), then the type's own. A ring
        of several types raises TypeError (use :attr:`dtypes`). Known from
        the schema, so also after :meth:`close`."""
        if len(self._types) != 1:
            raise TypeError("this ring has %d record types: use .dtypes" % len(self._types))
        return self._types[0][2]

    @property
    def dtypes(self) -> Dict[str, np.dtype]:
        """Record dtype (event header fields, then the type's own) by type
        name, in type id order: every key a :class:`Batch` of this ring has.
        A new dict at each access; also after :meth:`close`."""
        return {name: dt for _, name, dt in self._types}

    @property
    def capacity(self) -> int:
        """Bytes of the ring's data area, a power of two (a record takes
        its size plus an 8-byte header, rounded up to 8). 0 once the ring
        is closed."""
        return int(self._c.m.capacity)

    @property
    def path(self) -> Optional[str]:
        """Where the ring is: the ring file's path (Linux, e.g.
        ``/dev/shm/<name>``), the mapping name (Windows), the driver's
        device path (the Windows kernel source), or the source's name
        (``"kernel:linux-bpf"``). None for a ring given no name (a BPF
        ring buffer opened without one). Also after :meth:`close`."""
        return self._path

    # -- the lifecycle (Lifecycle) ------------------------------------------
    def _interrupt(self) -> None:
        lib.kring_interrupt(ffi.addressof(self._c, "m"))

    def _release(self) -> None:
        self._stop_watching()
        self._unmap_after_views()
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
            self._settle_views()
            self._raise_if_producer_gone("wait")
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _raise_if_producer_gone(self, what: str) -> None:
        """ProducerGoneError once a killed producer's records were all read."""
        c = self._c
        if lib.kring_producer_gone(c) == 1 and lib.kring_pending(c) == 0:
            self._check(lib.kring_consumer_stats(c, self._stats), what)
            raise errors.ProducerGoneError(
                "wait: the producer (pid %d) exited without closing the ring; everything it "
                "published was read" % self._stats.producer_pid)

    def _wait_more(self, rc: int, limit: int, deadline: Optional[float]) -> int:
        """_read()'s wait after its first call did not end with records:
        deliver what came before an error, raise for the ring's state, or wait
        on in growing slices until `deadline` (None: no limit; 0: none)."""
        c, n = self._c, self._n
        slice_s, slice_max = WAIT_SLICE_S, max(WAIT_SLICE_S, WAIT_SLICE_MAX_S)
        while True:
            got = n[0]
            if rc == _OK or got:
                # An error after some records (corrupt, say): deliver them; the
                # next read meets the same condition again and raises.
                return got
            if self._closing:
                raise self._closed_error("read")
            if rc != lib.KRING_E_TIMEOUT and rc != lib.KRING_E_INTR:
                self._check(rc, "read")     # closed by the producer, broken, corrupt, OS error
            if deadline == 0:
                return 0
            # Back in the interpreter: a pending KeyboardInterrupt is raised here.
            self._settle_views()
            self._raise_if_producer_gone("read")
            slice_s = min(2 * slice_s, slice_max)
            left = slice_s
            if deadline is not None:
                left = min(slice_s, deadline - time.monotonic())
                if left <= 0:
                    return 0
            rc = lib.kring_wait_drain(c, self._outs, limit, int(left * 1e9), n)   # GIL released inside

    def _read(self, max_records: Optional[int], timeout: Timeout, commit: bool,
              land: Callable[[Any], int], build: Callable[[Any, int, int], T], arg: Any) -> T:
        """The protocol of read() and read_batch(): ``land(arg)`` points the
        drain at reused rows (self._outs) and returns how many fit; one
        GIL-released call (kring_wait_drain) waits as `timeout` says and
        drains into them, so a wake costs one call and allocates nothing (a
        long wait goes on in slices: _wait_more); ``build(arg, got, limit)``
        makes the result from them (draining more if a backlog did not fit),
        and only then is the position published. The call marks the position
        first: if anything raises on the way, what was drained goes back (the
        next read delivers it); an error of the ring itself (closed, corrupt)
        delivered nothing in this call, and what earlier reads returned is
        published as asked."""
        limit = _NO_LIMIT if max_records is None else int(max_records)
        if limit < 0:
            raise ValueError("max_records must be >= 0")
        if timeout is None:
            deadline, ns = None, _SLICE_NS
        elif timeout > 0:
            deadline, ns = time.monotonic() + timeout, int(min(WAIT_SLICE_S, timeout) * 1e9)
        else:
            deadline, ns = 0.0, 0
        self._enter()
        c = self._c
        try:
            room = land(arg)        # before the mark: nothing to rewind if this fails
            if room > limit:
                room = limit
            try:
                n = self._n
                rc = lib.kring_wait_drain(c, self._outs, room, ns, n)   # GIL released inside
                if rc == _OK:
                    got = n[0]
                elif rc == _TIMEOUT and deadline == 0 and not self._closing:
                    got = 0         # a poll of an empty ring
                else:
                    got = self._wait_more(rc, room, deadline)
                result = build(arg, got, limit)
            except BaseException as exc:
                # What was drained goes back; a read that found the ring closed
                # drained nothing, and keeps what it skipped and counted lost.
                if not (isinstance(exc, errors.RingClosedError) and not self._n[0]):
                    lib.kring_rewind(c)
                if commit and isinstance(exc, errors.KringError):
                    lib.kring_commit(c)
                raise
            # Nothing read and nothing of earlier reads to publish: no call.
            if commit and (got or c.pos != c.committed):
                self._settle_views()
                lib.kring_commit(c)
            self._drained()
            return result
        finally:
            self._leave()

    def read(self: "Ring[np.ndarray]", max_records: Optional[int] = None, timeout: Timeout = 0,
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
        if not self._single:
            raise TypeError("this ring has %d record types: use read_batch()" % len(self._types))
        if out is not None and out is not self._out_array:
            # Checked once per buffer: a loop that reuses `out` skips this.
            dt = self._types[0][2]
            if (not isinstance(out, np.ndarray) or out.dtype != dt or out.ndim != 1 or
                    not out.flags.c_contiguous or not out.flags.writeable):
                raise TypeError("out must be a writable, contiguous 1-d array of the ring's dtype %s" % (dt,))
        return self._read(max_records, timeout, commit, self._land_rows, self._rows, out)

    def read_batch(self, max_records: Optional[int] = None, timeout: Timeout = 0,
                   commit: bool = True, *, out: Optional[Mapping[str, np.ndarray]] = None) -> Batch:
        """Records of every type, as a :class:`Batch` (type name -> array).
        Arguments as for :meth:`read`; ``out``: an array to fill for every
        type name (of that type's dtype, 1-d, contiguous, writable), reused
        from call to call: the batch then holds views of their first rows
        (valid until you reuse them), and a call allocates no rows. Records
        keep their order across types: a record whose type's array is full
        ends the batch, and a later read delivers it."""
        if out is not None:
            return self._read(max_records, timeout, commit, self._land_out, self._batch_out_rows, out)
        return self._read(max_records, timeout, commit, self._land_batch, self._batch_rows, None)

    def commit(self) -> None:
        """Publish the position after reads with ``commit=False``."""
        self._enter()
        try:
            self._settle_views()
            lib.kring_commit(self._c)
        finally:
            self._leave()

    def __iter__(self) -> Iterator[R]:
        """Blocks and yields non-empty batches: arrays for a single-type ring,
        :class:`Batch` objects otherwise. Ends when the producer closes the
        ring, or when this Ring is closed (from another thread, or by the
        loop's body)."""
        single = len(self._types) == 1
        while not self._closing:
            try:
                # An array exactly when R is np.ndarray (a single-type ring).
                batch: Any = self.read(timeout=None) if single else self.read_batch(timeout=None)  # type: ignore[misc]
            except errors.RingClosedError:      # ObjectClosedError too: closed meanwhile
                return
            if len(batch) if isinstance(batch, np.ndarray) else batch.count:
                yield batch

    # -- state ------------------------------------------------------------
    @property
    def stats(self) -> Stats:
        """A :class:`Stats` snapshot of the counters, read at each access:
        ``written``, ``dropped`` (None when the source keeps no count),
        ``lost``, ``read`` (records), ``pending_bytes``, ``capacity``
        (bytes). Raises :class:`ObjectClosedError` once the ring is closed."""
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
        """The producer's ``KRING_F_*`` bits as they are now (docs/PROTOCOL.md):
        0x1 closed cleanly, 0x2 broken (stopped writing), 0x4 a producer is
        attached, 0x8 it blocks instead of dropping. 0 for sources without
        a producer page (a BPF ring buffer); 0x2 when the ring file was
        truncated under the mapping. Raises :class:`ObjectClosedError` once
        the ring is closed."""
        self._enter()
        try:
            return int(lib.kring_ring_flags(self._c))
        finally:
            self._leave()

    def __repr__(self) -> str:
        state = "closed" if self._closing else "open"
        return "<pykring.Ring %s %s, %d bytes, types %s>" % (
            self._path or "", state, self.capacity, ", ".join(n for _, n, _ in self._types))


def _wrap_consumer(c, path: str, unlink: bool = False) -> "Ring[Any]":
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


# What type checkers know of create()'s ring: one dtype makes a single-type
# ring (Ring[np.ndarray]). A mapping makes a Batch ring only if it names two
# types or more, which its type does not say, so that ring is Ring[Any]:
# annotate it (``ring: pykring.Ring[pykring.Batch] = pykring.create(...)``).
@overload
def create(name: str, capacity: Optional[int], dtype: Union[np.dtype, str, list, tuple], *,
           replace: bool = ..., unlink: bool = ..., mode: int = ...) -> "Ring[np.ndarray]": ...
@overload
def create(name: str, capacity: Optional[int], dtype: Types, *,
           replace: bool = ..., unlink: bool = ..., mode: int = ...) -> "Ring[Any]": ...
def create(name: str, capacity: Optional[int], dtype: Union[np.dtype, str, list, tuple, Types], *,
           replace: bool = False, unlink: bool = True, mode: int = 0o600) -> "Ring[Any]":
    """Create a shared-memory ring and return its consumer.

    ``dtype``: a structured numpy dtype (the ring's one record type, named
    ``"record"``) or a mapping of type names to dtypes (up to 15 types).
    The records read back carry the event header fields ``seq``, ``ts``
    (datetime64[ns]), ``type`` and ``flags`` first. ``capacity``: data bytes,
    a power of two from 4 KiB to 2 GiB, or None for
    :data:`~pykring.DEFAULT_CAPACITY` (2 MiB, sized for the cache). The file is removed when the ring is
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


def attach(name: str) -> "Ring[Any]":
    """Become the consumer of an existing ring, at its persisted position.

    What it yields (arrays or :class:`Batch` objects) depends on the ring
    file's schema, which only the run time knows: type checkers see
    ``Ring[Any]``; annotate the variable to say which it is."""
    path = ring_path(name)
    c = ffi.new("struct kring_consumer *")
    check_open(lib.kring_consumer_open(c, path.encode()), c, "attach ring %s" % path, path)
    return _wrap_consumer(c, path)
