"""The user-mode producer: writes records into a shared-memory ring."""
import os
import time
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from . import errors
from ._common import WAIT_SLICE_S, Lifecycle, remove_ring, ring_path
from ._casting import CASTINGS, SCALAR_KINDS, check_casting, convert_column, refuse_value, value_problem
from ._lib import check_open, ffi, lib, private_meta, raise_for
from ._reserve import Reservations
from .ring import Timeout
from .schema import HEADER_SIZE, Types, body_dtype, make_meta, normalize_types, types_from_meta


#: write() checks the values of up to this many records (tuples, dicts) one
#: by one in Python; more go through numpy column by column.
SCALAR_ROWS = 16


def _owner(uid: int) -> str:
    try:
        import pwd

        return "uid %d (%s)" % (uid, pwd.getpwuid(uid).pw_name)
    except (ImportError, KeyError):
        return "uid %d" % uid


class Producer(Reservations, Lifecycle):
    """The one writer of a ring.

    ``Producer(name)`` attaches to an existing ring (made by
    :func:`pykring.create`); :meth:`Producer.create` makes a new one.

    ``block=False`` (default): a full ring drops new records and counts them
    exactly, as a kernel producer does. ``block=True``: :meth:`write` waits
    for the consumer to make room (lossless IPC), up to ``timeout`` seconds
    (None: no limit) and raises :class:`RingTimeoutError` after that.

    Records written together carry the same timestamp: all of one
    :meth:`write` call, unless it had to wait for room (each part written
    after a wait is stamped when it is written).

    A ring file owned by another user (neither this one nor root) is refused
    with :class:`KringPermissionError`: in a shared directory such as
    /dev/shm anyone can put a file at a name first. ``allow_other_owner=True``
    accepts it, for rings deliberately shared between users.

    A Producer may be shared between threads (writes run one at a time);
    one producer per ring stays the rule across processes. :meth:`close`
    may come from any thread: a write blocked in another thread then raises
    :class:`RingClosedError` with ``written``. After ``os.fork()`` the child
    cannot use the parent's Producer (:class:`KringError`; open one there).
    """

    _kind = "producer"

    def __init__(self, name: str, *, block: bool = False, timeout: Timeout = None,
                 allow_other_owner: bool = False, _create: Optional[Tuple[Any, int]] = None):
        self._path = ring_path(name)
        p = ffi.new("struct kring_producer *")
        policy = lib.KRING_BLOCK if block else lib.KRING_DROP
        if _create is None:
            what = "attach producer to %s" % self._path
            rc = lib.kring_producer_open(p, self._path.encode(),
                                         policy | (lib.KRING_ANY_OWNER if allow_other_owner else 0))
            if rc == lib.KRING_E_PERM and not p.m.os_error:
                raise errors.KringPermissionError(
                    "%s: the ring file is owned by %s, neither this user (uid %d) nor root: refusing to "
                    "write into a ring someone else may have put at this name; remove it, or pass "
                    "allow_other_owner=True for a ring shared between users on purpose"
                    % (what, _owner(p.m.file_uid), os.geteuid()))
        else:
            meta, mode = _create
            what = "create ring %s" % self._path
            rc = lib.kring_producer_create(p, self._path.encode(), meta, mode, policy)
        check_open(rc, p, what, self._path)
        self._p = p
        self._timeout = timeout
        self._block = block
        self._done = ffi.new("uint64_t *")
        try:
            types = types_from_meta(private_meta(p.m, "ring %s" % self._path))
            self._types = {name: (tid, dt, body_dtype(dt)) for tid, name, dt in types}
            self._single = next(iter(self._types.values())) if len(self._types) == 1 else None
        except BaseException:
            lib.kring_producer_close(p, 0)
            raise
        self._start_reservations()
        self._start_lifecycle("pykring.Producer(%r) attaches a producer" % self._path)

    @classmethod
    def create(cls, name: str, capacity: Optional[int], dtype: Union[np.dtype, str, list, Types], *,
               block: bool = False, timeout: Timeout = None, replace: bool = False,
               mode: int = 0o600) -> "Producer":
        """Create a ring (as :func:`pykring.create` does) and attach as its producer.
        A consumer attaches with :func:`pykring.attach`. The ring file stays
        until removed (``os.unlink(producer.path)``)."""
        meta = make_meta(capacity, normalize_types(dtype))
        if replace:
            remove_ring(name)
        return cls(name, block=block, timeout=timeout, _create=(meta, mode))

    @property
    def path(self) -> str:
        """Where the ring is: the ring file's path (Linux: a plain name is
        ``/dev/shm/<name>``), or the mapping name (Windows). Never None;
        also after :meth:`close`."""
        return self._path

    # -- description ------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The full record dtype (event header fields ``seq``, ``ts``,
        ``type``, ``flags``, then the type's own) of a single-type ring; a
        ring of several types raises TypeError (use :attr:`dtypes`). Also
        after :meth:`close`."""
        if len(self._types) != 1:
            raise TypeError("this ring has %d record types: use .dtypes" % len(self._types))
        return next(iter(self._types.values()))[1]

    @property
    def dtypes(self) -> Dict[str, np.dtype]:
        """Record dtype (event header fields, then the type's own) by type
        name, as :attr:`Ring.dtypes`; the ``type=`` names :meth:`write`
        takes. Also after :meth:`close`."""
        return {name: t[1] for name, t in self._types.items()}

    @property
    def written(self) -> int:
        """Records committed into this ring since it was created (by this
        producer and any before it: the count lives in the ring), in
        records. This producer's own count, read without a system call;
        after :meth:`close`, the count at close. Never None."""
        return int(self._p.written)

    @property
    def dropped(self) -> int:
        """Records dropped since the ring was created because it was full
        (``block=False``), counted exactly, by this producer and any before
        it. As :attr:`written`: no system call, the count at close after
        :meth:`close`, never None."""
        return int(self._p.dropped)

    # -- writing ----------------------------------------------------------
    def _type(self, type: Optional[str]) -> Tuple[int, np.dtype, np.dtype]:
        if type is None:
            if self._single is not None:
                return self._single
            if len(self._types) != 1:
                raise TypeError("this ring has several record types: pass type=<name> (%s)"
                                % ", ".join(self._types))
            return next(iter(self._types.values()))
        try:
            return self._types[type]
        except KeyError:
            raise KeyError("no record type %r in this ring (it has %s)" % (type, ", ".join(self._types))) from None

    def _as_array(self, records: Any, full: np.dtype, body: np.dtype, casting: str) -> np.ndarray:
        names, fields = body.names, body.fields
        assert names is not None and fields is not None    # body_dtype() of a record type is structured
        if isinstance(records, np.ndarray):
            arr = records.reshape(-1) if records.ndim == 0 else records
            if arr.ndim != 1:
                raise ValueError("write() takes a 1-d array of records, not shape %s" % (records.shape,))
            if arr.dtype == full or arr.dtype == body:
                return arr
            if arr.dtype.names is not None and set(arr.dtype.names) - {"seq", "ts", "type", "flags"} == set(names):
                conv = np.empty(len(arr), dtype=body)
                for n in names:
                    conv[n] = convert_column(n, fields[n][0], arr[n], casting)
                return conv
            raise TypeError("records of dtype %s do not match the ring's record type %s" % (arr.dtype, body))
        if isinstance(records, np.void):
            return self._as_array(np.array([records], dtype=records.dtype), full, body, casting)
        if isinstance(records, (tuple, dict)):
            rows = [records]
        elif isinstance(records, list):
            rows = records
        else:
            raise TypeError("write() takes a numpy structured array, a record (np.void, tuple, dict) "
                            "or a list of records, not %s" % type(records).__name__)
        rows = [tuple(r[n] for n in names) if isinstance(r, dict) else tuple(r) for r in rows]
        if casting == "unsafe":
            return np.array(rows, dtype=body)
        for i, r in enumerate(rows):
            if len(r) != len(names):
                raise ValueError("write: record %d has %d values; the ring's record type has %d fields (%s)"
                                 % (i, len(r), len(names), ", ".join(names)))
        if casting == "same_value" and len(rows) <= SCALAR_ROWS:
            # A few records: each value checked in Python (cheaper than
            # building a column array per field), then numpy's conversion.
            vector = []
            for j, n in enumerate(names):
                ft = fields[n][0]
                if ft.shape or ft.kind not in SCALAR_KINDS:
                    vector.append((j, n, ft))
                    continue
                for i, r in enumerate(rows):
                    why = value_problem(ft, r[j])
                    if why:
                        raise refuse_value(n, ft, r[j], i, why)
            for j, n, ft in vector:
                convert_column(n, ft, [r[j] for r in rows], casting)
            return np.array(rows, dtype=body)
        out = np.zeros(len(rows), dtype=body)
        for j, n in enumerate(names):
            out[n] = convert_column(n, fields[n][0], [r[j] for r in rows], casting)
        return out

    def write(self, records: Any, type: Optional[str] = None, timeout: Union[Timeout, str] = "default",
              flags: int = 0, casting: str = "same_value") -> int:
        """Write records; returns how many were written.

        ``records``: an array of the ring's record dtype (its header fields
        are overwritten) or of its fields only, one record (np.void, tuple,
        dict), or a list of them. In drop mode the rest were dropped and
        counted (see :attr:`dropped`). In block mode every record is written,
        or the exception says how many were (``written``): a timeout
        (:class:`RingTimeoutError`), a consumer that died
        (:class:`ConsumerGoneError`), this producer closed by another thread
        (:class:`RingClosedError`), Ctrl-C (KeyboardInterrupt).

        ``casting``: values that are not already of the ring's dtype are
        converted, and a value the conversion would change (7.9 into an
        integer field, 300 into a uint8, 16 bytes into an ``S8``) is refused
        with a ValueError naming the field, before anything is written.
        ``casting="unsafe"`` stores numpy's conversion instead; numpy's other
        names (``"no"``, ``"equiv"``, ``"safe"``, ``"same_kind"``) check by
        dtype. The rules: :mod:`pykring._casting`. An array already of the
        ring's dtype is written as it is, unchecked and at no extra cost.
        """
        if casting != "same_value" and casting not in CASTINGS:
            check_casting(casting)
        tid, full, body = self._type(type)
        if isinstance(records, np.ndarray) and records.ndim == 1 and (
                records.dtype is body or records.dtype is full):
            arr = records                               # the common case, checked cheaply
        else:
            arr = self._as_array(records, full, body, casting)
        n = len(arr)
        if n == 0:
            return 0
        if arr.strides[0] < arr.dtype.itemsize:      # reversed or overlapping rows
            arr = np.ascontiguousarray(arr)
        limit = self._timeout if timeout == "default" else timeout
        if isinstance(limit, str):
            raise TypeError("timeout must be a number of seconds or None, not %r" % limit)
        self._enter()
        p = self._p
        before = int(p.written)
        try:
            self._refuse_if_reserving("write")
            self._settle_reservations()
            return self._write(arr, n, tid, full, body, limit, flags)
        except BaseException as exc:
            # Exact whatever line the exception came from: the C counter.
            setattr(exc, "written", int(p.written) - before)
            raise
        finally:
            self._leave()

    def _write(self, arr: np.ndarray, n: int, tid: int, full: np.dtype, body: np.dtype,
               timeout: Timeout, flags: int) -> int:
        p = self._p
        stride = arr.strides[0]
        skip = HEADER_SIZE if (arr.dtype is full or arr.dtype == full) else 0
        # Any positive stride works (a column of a larger array, a[::2]): the
        # C side reads each row at src + i * stride. `arr` (and `keep`) stay
        # alive until kring_write returns.
        keep = ffi.from_buffer(arr) if arr.flags.c_contiguous else None
        src = ffi.cast("uint8_t *", keep if keep is not None else arr.ctypes.data) + skip
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        done = 0
        while True:
            # Block mode waits in slices: Ctrl-C gets through promptly, and a
            # consumer that died is noticed within a slice.
            left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
            tns = int(max(0.0, left) * 1e9)
            rc = lib.kring_write(p, tid, src + done * stride, stride, body.itemsize, ffi.NULL, n - done,
                                 flags, tns, self._done)   # GIL released inside
            done += int(self._done[0])
            if rc not in (lib.KRING_E_TIMEOUT, lib.KRING_E_INTR) or done == n:
                break
            if self._closing:
                raise self._closed_error("write")
            self._settle_reservations()
            if lib.kring_consumer_gone(p) == 1:
                raise errors.ConsumerGoneError(
                    "write: the consumer exited without closing the ring (it was killed or crashed) "
                    "while this write waited for room; %d of %d records written. A new consumer "
                    "can attach and drain; write the rest after that" % (done, n))
            if deadline is not None and time.monotonic() >= deadline:
                break
        if rc == lib.KRING_E_TIMEOUT and done < n:
            raise_for(rc, "write", detail="the ring stayed full for %ss; %d of %d records written"
                      % (timeout, done, n))
        if rc == lib.KRING_E_BROKEN:
            why = ("the ring file was truncated under the mapping (someone shrank or replaced it)"
                   if p.m.faulted else "the consumer page holds a nonsense position (%d)" % p.bad_consumer_pos)
            raise_for(rc, "write", detail="%s; the producer stopped writing (%d of %d written, the rest %s). "
                      "Recreate the ring." % (why, done, n, "dropped and counted" if not self._block
                                              else "not written"))
        if rc == lib.KRING_E_INTR:
            rc = lib.KRING_OK
        if rc < 0:
            raise_for(rc, "write", m=p.m, path=self._path)
        return done

    def flush(self, timeout: Timeout = None) -> bool:
        """Wait until the consumer has read everything; False on timeout."""
        self._enter()
        try:
            rc = lib.kring_flush(self._p, -1 if timeout is None else int(timeout * 1e9))
            if rc == lib.KRING_E_TIMEOUT:
                return False
            if rc == lib.KRING_E_INTR and self._closing:
                raise self._closed_error("flush")
            if rc < 0 and rc != lib.KRING_E_INTR:
                raise_for(rc, "flush", m=self._p.m, path=self._path)
            return rc == lib.KRING_OK
        finally:
            self._leave()

    # -- the lifecycle (Lifecycle) ------------------------------------------
    def _interrupt(self) -> None:
        lib.kring_interrupt(ffi.addressof(self._p, "m"))

    def _release(self) -> None:
        self._unmap_after_reservations()

    def close(self) -> None:
        """Mark the ring closed (the consumer's iterator ends after the last
        record) and release the mapping. Safe from any thread."""
        super().close()

    def __repr__(self) -> str:
        return "<pykring.Producer %s %s, %s>" % (self._path, "closed" if self._closing else "open",
                                                 "block" if self._block else "drop")
