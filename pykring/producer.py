"""The user-mode producer: writes records into a shared-memory ring."""
import time
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np

from ._common import WAIT_SLICE_S, remove_ring, ring_path
from ._lib import check, ffi, lib, raise_for
from .ring import Timeout
from .schema import HEADER_SIZE, Types, body_dtype, make_meta, normalize_types, types_from_meta


class Producer:
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
    """

    def __init__(self, name: str, *, block: bool = False, timeout: Timeout = None,
                 _create: Optional[Tuple[Any, int]] = None):
        self._path = ring_path(name)
        p = ffi.new("struct kring_producer *")
        policy = lib.KRING_BLOCK if block else lib.KRING_DROP
        if _create is None:
            rc = lib.kring_producer_open(p, self._path.encode(), policy)
            check(rc, "attach producer to %s" % self._path, p.m.os_error)
        else:
            meta, mode = _create
            rc = lib.kring_producer_create(p, self._path.encode(), meta, mode, policy)
            check(rc, "create ring %s" % self._path, p.m.os_error)
        self._p = p
        self._closed = False
        self._timeout = timeout
        self._block = block
        self._done = ffi.new("uint64_t *")
        try:
            self._types = {name: (tid, dt, body_dtype(dt)) for tid, name, dt in types_from_meta(p.m.prod)}
            self._single = next(iter(self._types.values())) if len(self._types) == 1 else None
        except BaseException:
            lib.kring_producer_close(p, 0)
            raise

    @classmethod
    def create(cls, name: str, capacity: int, dtype: Union[np.dtype, str, list, Types], *,
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
        return self._path

    # -- description ------------------------------------------------------
    @property
    def dtype(self) -> np.dtype:
        """The full record dtype (event header + fields) of a single-type ring."""
        if len(self._types) != 1:
            raise TypeError("this ring has %d record types: use .dtypes" % len(self._types))
        return next(iter(self._types.values()))[1]

    @property
    def dtypes(self) -> Dict[str, np.dtype]:
        return {name: t[1] for name, t in self._types.items()}

    @property
    def written(self) -> int:
        return int(self._p.written)

    @property
    def dropped(self) -> int:
        return int(self._p.dropped)

    @property
    def closed(self) -> bool:
        return self._closed

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

    def _as_array(self, records: Any, full: np.dtype, body: np.dtype) -> np.ndarray:
        names = body.names
        assert names is not None        # body_dtype() of a ring's record type is structured
        if isinstance(records, np.ndarray):
            arr = records.reshape(-1) if records.ndim == 0 else records
            if arr.ndim != 1:
                raise ValueError("write() takes a 1-d array of records, not shape %s" % (records.shape,))
            if arr.dtype == full or arr.dtype == body:
                return arr
            if arr.dtype.names is not None and set(arr.dtype.names) - {"seq", "ts", "type", "flags"} == set(names):
                conv = np.empty(len(arr), dtype=body)
                for n in names:
                    conv[n] = arr[n]
                return conv
            raise TypeError("records of dtype %s do not match the ring's record type %s" % (arr.dtype, body))
        if isinstance(records, np.void):
            return self._as_array(np.array([records], dtype=records.dtype), full, body)
        if isinstance(records, dict):
            records = tuple(records[n] for n in names)
        if isinstance(records, tuple):
            return np.array([records], dtype=body)
        if isinstance(records, list):
            return np.array([tuple(r.values()) if isinstance(r, dict) else r for r in records], dtype=body)
        raise TypeError("write() takes a numpy structured array, a record (np.void, tuple, dict) "
                        "or a list of records, not %s" % type(records).__name__)

    def write(self, records: Any, type: Optional[str] = None, timeout: Union[Timeout, str] = "default",
              flags: int = 0) -> int:
        """Write records; returns how many were written.

        ``records``: an array of the ring's record dtype (its header fields
        are overwritten) or of its fields only, one record (np.void, tuple,
        dict), or a list of them. In drop mode the rest were dropped and
        counted (see :attr:`dropped`). In block mode every record is written
        or :class:`RingTimeoutError` says how many were.
        """
        p = self._live()
        tid, full, body = self._type(type)
        if isinstance(records, np.ndarray) and records.ndim == 1 and (
                records.dtype is body or records.dtype is full):
            arr = records                               # the common case, checked cheaply
        else:
            arr = self._as_array(records, full, body)
        n = len(arr)
        if n == 0:
            return 0
        if arr.strides[0] < arr.dtype.itemsize:      # reversed or overlapping rows
            arr = np.ascontiguousarray(arr)
        stride = arr.strides[0]
        skip = HEADER_SIZE if (arr.dtype is full or arr.dtype == full) else 0
        # Any positive stride works (a column of a larger array, a[::2]): the
        # C side reads each row at src + i * stride. `arr` (and `keep`) stay
        # alive until kring_write returns.
        keep = ffi.from_buffer(arr) if arr.flags.c_contiguous else None
        src = ffi.cast("uint8_t *", keep if keep is not None else arr.ctypes.data) + skip
        if timeout == "default":
            timeout = self._timeout
        deadline = None if timeout is None else time.monotonic() + max(0.0, float(timeout))
        done = 0
        while True:
            # Block mode waits in slices so that Ctrl-C gets through promptly.
            left = WAIT_SLICE_S if deadline is None else min(WAIT_SLICE_S, deadline - time.monotonic())
            tns = int(max(0.0, left) * 1e9)
            rc = lib.kring_write(p, tid, src + done * stride, stride, body.itemsize, ffi.NULL, n - done,
                                 flags, tns, self._done)   # GIL released inside
            done += int(self._done[0])
            if rc not in (lib.KRING_E_TIMEOUT, lib.KRING_E_INTR) or done == n:
                break
            if deadline is not None and time.monotonic() >= deadline:
                break
        if rc == lib.KRING_E_TIMEOUT and done < n:
            raise_for(rc, "write", detail="the ring stayed full for %ss; %d of %d records written"
                      % (timeout, done, n), written=done)
        if rc == lib.KRING_E_BROKEN:
            raise_for(rc, "write", detail="the consumer page holds a nonsense position (%d); the producer "
                      "stopped writing (%d of %d written, the rest %s). Recreate the ring." % (
                          p.bad_consumer_pos, done, n, "dropped and counted" if not self._block else "not written"))
        if rc == lib.KRING_E_INTR:
            rc = lib.KRING_OK
        check(rc, "write", p.m.os_error)
        return done

    def flush(self, timeout: Timeout = None) -> bool:
        """Wait until the consumer has read everything; False on timeout."""
        rc = lib.kring_flush(self._live(), -1 if timeout is None else int(timeout * 1e9))
        if rc == lib.KRING_E_TIMEOUT:
            return False
        check(rc, "flush", self._p.m.os_error)
        return True

    def _live(self):
        if self._closed:
            raise ValueError("I/O operation on a closed producer")
        return self._p

    def close(self) -> None:
        """Mark the ring closed (the consumer's iterator ends after the last
        record) and release the mapping."""
        if not self._closed:
            self._closed = True
            lib.kring_producer_close(self._p, 1)

    def __enter__(self) -> "Producer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return "<pykring.Producer %s %s, %s>" % (self._path, "closed" if self._closed else "open",
                                                 "block" if self._block else "drop")
