"""Records as Arrow record batches and pandas DataFrames.

:func:`to_arrow` turns a structured array of records (what a ring's read
returns) into a ``pyarrow.RecordBatch``; :meth:`Batch.to_arrow` does it per
record type. :func:`to_pandas` / :meth:`Batch.to_pandas` are built on it.

Columns, by field kind:

- ``ts`` (the event header's time) -> ``timestamp[ns, tz=UTC]``; other
  datetime64 fields -> timestamps of their unit, without a time zone.
- integers, floats, bools -> the same Arrow types.
- ``S`` fields -> ``string``, decoded as :func:`os.fsdecode` does for
  UTF-8; Arrow strings cannot hold the lone surrogates fsdecode makes of
  other bytes, so those become U+FFFD (numpy's padding NULs are not part of
  the value); with ``binary=True`` -> ``binary``, the exact bytes.
- subarray fields -> ``fixed_size_list`` of the element type (nested for
  more than one dimension).
- kernel ``process_start`` records (the packed Linux layout too): ``path``
  read as :func:`pykring.events.start_strings` reads it, and ``cmdline``
  (NUL-separated) as ``argv``, a ``list<string>`` (``list<binary>`` with
  ``binary=True``); where the records carry them, ``cwd`` and
  ``parent_path`` as ``events.start_context`` reads them (null where a row
  has none).

Copies: a record array is row-major and Arrow is columnar, so every column
is copied once (numeric ones by numpy, in C); strings are decoded in Python.
Nothing refers back to the array afterwards.

pyarrow and pandas are optional: ``pip install 'pykring[arrow]'`` or
``'pykring[pandas]'``.
"""
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from . import events
from .events import start_strings

__all__ = ["to_arrow", "to_pandas", "batch_to_arrow", "batch_to_pandas"]

_START_FIELDS = {"path", "cmdline", "path_len", "cmdline_len", "detail"}


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ImportError("pykring's Arrow conversion needs pyarrow: pip install 'pykring[arrow]'") from None
    return pyarrow


def _pandas():
    try:
        import pandas
    except ImportError:
        raise ImportError("pykring's pandas conversion needs pandas and pyarrow: "
                          "pip install 'pykring[pandas]'") from None
    return pandas


def _text(b: bytes) -> str:
    # os.fsdecode's reading, except where Arrow cannot follow: its strings
    # are UTF-8, which has no lone surrogates, so bytes that are not UTF-8
    # become U+FFFD (binary=True keeps the exact bytes).
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        return b.decode("utf-8", "replace")


def _strings(pa, values: List[bytes], binary: bool):
    if binary:
        return pa.array(values, type=pa.binary())
    return pa.array([_text(v) for v in values], type=pa.string())


def _scalar_column(pa, name: str, col: np.ndarray, binary: bool):
    """A 1-d column of one field (no subarray) as an Arrow array."""
    kind = col.dtype.kind
    if kind == "S":
        return _strings(pa, col.tolist(), binary)
    if kind == "U":
        return pa.array(col.tolist(), type=pa.string())
    if kind == "M":
        unit = np.datetime_data(col.dtype)[0]
        tz = "UTC" if name == "ts" else None
        ints = np.ascontiguousarray(col).view(np.int64)
        return pa.array(ints, type=pa.int64()).view(pa.timestamp(unit, tz=tz))
    if kind == "m":
        unit = np.datetime_data(col.dtype)[0]
        ints = np.ascontiguousarray(col).view(np.int64)
        return pa.array(ints, type=pa.int64()).view(pa.duration(unit))
    if kind == "V":
        return pa.array([bytes(v) for v in col.tolist()], type=pa.binary())
    return pa.array(np.ascontiguousarray(col))


def _column(pa, name: str, col: np.ndarray, binary: bool):
    if col.ndim == 1:
        return _scalar_column(pa, name, col, binary)
    # A subarray field: (rows, d1, d2, ...) -> nested fixed-size lists.
    shape = col.shape[1:]
    flat = _scalar_column(pa, name, np.ascontiguousarray(col).reshape(-1), binary)
    for d in reversed(shape):
        flat = pa.FixedSizeListArray.from_arrays(flat, d)
    return flat


def _start_columns(pa, arr: np.ndarray, binary: bool) -> Dict[str, Any]:
    """path and argv of process_start rows (packed or not), and cwd and
    parent_path where the records carry them (null where a row has none,
    as events.event_dicts says None)."""
    pairs: List[Tuple[bytes, bytes]] = start_strings(arr) if len(arr) else []
    paths = [p for p, _ in pairs]
    if binary:
        argv = pa.array([c.split(b"\0") if c else [] for _, c in pairs], type=pa.list_(pa.binary()))
    else:
        argv = pa.array([[_text(a) for a in c.split(b"\0")] if c else [] for _, c in pairs],
                        type=pa.list_(pa.string()))
    cols = {"path": _strings(pa, paths, binary), "argv": argv}
    context = getattr(events, "start_context", None)
    if context is not None and "cwd_len" in (arr.dtype.names or ()):
        pairs = context(arr) if len(arr) else []
        for i, name in enumerate(("cwd", "parent_path")):
            values = [p[i] or None for p in pairs]
            if binary:
                cols[name] = pa.array(values, type=pa.binary())
            else:
                cols[name] = pa.array([None if v is None else _text(v) for v in values], type=pa.string())
    return cols


def to_arrow(array: np.ndarray, binary: bool = False, *, kernel_start: Optional[bool] = None):
    """A structured array of records as a ``pyarrow.RecordBatch`` (the rules:
    :mod:`pykring.arrow`). ``binary=True`` keeps ``S`` fields as bytes.
    ``kernel_start``: read the array as kernel process_start records (path
    and argv); None decides by its fields."""
    pa = _pyarrow()
    if not isinstance(array, np.ndarray) or array.dtype.names is None:
        raise TypeError("to_arrow takes a structured numpy array of records, not %r" % type(array).__name__)
    arr = array.reshape(-1)
    names = arr.dtype.names
    assert names is not None
    start = _START_FIELDS <= set(names) if kernel_start is None else kernel_start
    special = _start_columns(pa, arr, binary) if start else {}
    cols, fields = [], []
    for name in names:
        if start and name == "cmdline":
            col = special["argv"]
            name = "argv"
        elif name in special:
            col = special[name]
        else:
            col = _column(pa, name, arr[name], binary)
        cols.append(col)
        fields.append(pa.field(name, col.type))
    for name in ("cwd", "parent_path"):
        # Packed after the command line (no fields of their own): appended.
        if name in special and name not in names:
            cols.append(special[name])
            fields.append(pa.field(name, special[name].type))
    return pa.RecordBatch.from_arrays(cols, schema=pa.schema(fields))


def to_pandas(array: np.ndarray, binary: bool = False):
    """A structured array of records as a ``pandas.DataFrame``, through
    :func:`to_arrow` (same rules: ``ts`` tz-aware UTC, strings decoded,
    subarrays and argv as arrays/lists per cell)."""
    _pandas()
    return to_arrow(array, binary).to_pandas()


def batch_to_arrow(batch, binary: bool = False) -> Dict[str, Any]:
    """A :class:`~pykring.Batch` as ``{type name: pyarrow.RecordBatch}``."""
    return {name: to_arrow(arr, binary) for name, arr in batch.items()}


def batch_to_pandas(batch, binary: bool = False) -> Dict[str, Any]:
    """A :class:`~pykring.Batch` as ``{type name: pandas.DataFrame}``."""
    _pandas()
    return {name: rb.to_pandas() for name, rb in batch_to_arrow(batch, binary).items()}
