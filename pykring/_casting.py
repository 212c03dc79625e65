"""Values into record fields without silent change: the checks behind
``Producer.write(..., casting=...)``.

numpy stores 7.9 into an integer field as 7 and cuts a string to its
field's width without a word. A producer writing events wants to hear of
that, so ``write`` checks the values it converts (never an array already of
the ring's dtype: that one is copied as it is) and refuses, naming the
field, a value that does not fit. The names follow numpy's ``casting=``:

- ``"same_value"`` (the default): any conversion whose values arrive
  unchanged: an integer within the field's range, a float with no fraction
  into an integer field, 0/1 into a bool, bytes (or ASCII text) no longer
  than an ``S`` field. A float field takes the nearest float it can hold
  (rounding, as every float store does); a finite value that would become
  infinite is refused. Numbers into ``S`` fields and text into numeric
  fields are refused.
- ``"no"``, ``"equiv"``, ``"safe"``, ``"same_kind"``: numpy's rules by dtype
  (``np.can_cast``), whatever the values; Python ints count as int64 and
  floats as float64.
- ``"unsafe"``: numpy's conversion, whatever it does to the value.
"""
from typing import Any

import numpy as np

CASTINGS = ("no", "equiv", "safe", "same_kind", "same_value", "unsafe")
DEFAULT = "same_value"


def check_casting(casting: Any) -> str:
    if casting not in CASTINGS:
        raise ValueError("casting must be one of %s, not %r" % (", ".join(map(repr, CASTINGS)), casting))
    return casting


def _refuse(name: str, dst: np.dtype, src: np.ndarray, bad: np.ndarray, why: str) -> ValueError:
    idx = np.flatnonzero(np.asarray(bad).reshape(len(src), -1).any(axis=1))
    row = int(idx[0]) if len(idx) else 0
    value = src[row]
    value = value.tolist() if hasattr(value, "tolist") else value
    return refuse_value(name, dst, value, row, why)


def _int_range_bad(src: np.ndarray, info) -> np.ndarray:
    if src.dtype.kind in "iu":
        # Only bounds the source dtype can pass are compared (each then fits
        # the source dtype: no mixed signed/unsigned comparison).
        si = np.iinfo(src.dtype)
        bad = np.zeros(src.shape, bool)
        if si.min < info.min:
            bad |= src < info.min
        if si.max > info.max:
            bad |= src > info.max
        return bad
    # float: integral and in range; info.min and info.max + 1 are exact floats.
    with np.errstate(invalid="ignore"):
        return ~(np.isfinite(src) & (src == np.trunc(src)) & (src >= float(info.min))
                 & (src < float(info.max + 1)))


#: Field kinds value_problem() judges one value at a time.
SCALAR_KINDS = "iubfS"


_LIMITS: dict = {}


def _limits(base: np.dtype):
    """(min, max) of an integer or float dtype, cached: np.iinfo is slow to make."""
    lim = _LIMITS.get(base)
    if lim is None:
        info = np.iinfo(base) if base.kind in "iu" else np.finfo(base)
        lim = _LIMITS[base] = (int(info.min), int(info.max)) if base.kind in "iu" else (
            float(info.min), float(info.max))
    return lim


def value_problem(base: np.dtype, v: Any) -> str:
    """Why the Python (or numpy scalar) value `v` does not fit a field of
    dtype `base` under "same_value", or "" when it fits."""
    kind = base.kind
    if kind in "iu":
        if isinstance(v, (float, np.floating)):
            if not float(v).is_integer():
                return "not an integer in range"
        elif not isinstance(v, (int, np.integer)):
            return "not a number"
        lo, hi = _limits(base)
        return "" if lo <= int(v) <= hi else "out of range"
    if kind == "b":
        if isinstance(v, (bool, np.bool_)):
            return ""
        if not isinstance(v, (int, float, np.integer, np.floating)):
            return "not a bool"
        return "" if v == 0 or v == 1 else "a bool field holds 0 or 1 only"
    if kind == "f":
        if not isinstance(v, (int, float, np.integer, np.floating)):
            return "not a number"
        f = float(v)
        if f != f or f in (float("inf"), float("-inf")):
            return ""
        return "" if abs(f) <= _limits(base)[1] else "beyond the range of the field"
    if kind == "S":
        if isinstance(v, str):
            try:
                v = v.encode("ascii")
            except UnicodeEncodeError:
                return "text that is not ASCII: encode it first (e.g. os.fsencode)"
        if not isinstance(v, bytes):
            return "not bytes"
        # numpy's S drops trailing NULs: what is left must fit.
        if len(v.rstrip(b"\0")) > base.itemsize:
            return "longer than the field's %d bytes" % base.itemsize
        return ""
    return "" if isinstance(v, (int, float, bool, np.generic)) else "not a number"


def refuse_value(name: str, dst: np.dtype, value: Any, row: int, why: str) -> ValueError:
    return ValueError(
        "write: field %r (%s) cannot hold %r (record %d): %s. Pass casting=\"unsafe\" to store "
        "numpy's conversion anyway" % (name, dst, value, row, why))


def _object_column(name: str, dst: np.dtype, src: np.ndarray) -> np.ndarray:
    """An object column (Python ints beyond int64, bytes and text, mixed
    values): each value checked in Python; numpy converts it on assignment."""
    flat = src.reshape(-1)
    for i, v in enumerate(flat.tolist()):
        why = value_problem(dst.base, v)
        if why:
            bad = np.zeros(flat.shape, bool)
            bad[i] = True
            raise _refuse(name, dst, src, bad.reshape(src.shape), why)
    return src


def convert_column(name: str, dst: np.dtype, col: Any, casting: str) -> Any:
    """`col` (the values of field `name`, one per record) checked against the
    field's dtype `dst` (maybe a subarray dtype) as `casting` says; returns
    what to assign to the field. Raises ValueError naming the field."""
    if casting == "unsafe":
        return col
    base = dst.base
    if isinstance(col, np.ndarray):
        src = col
    elif base.kind == "S":
        # Each value looked at: numpy would turn a number among bytes into its digits.
        src = np.empty((len(col),) + dst.shape, dtype=object)
        src[...] = col if not dst.shape else [list(v) for v in col]
    else:
        src = np.asarray(col)
    if casting != "same_value":
        if not np.can_cast(src.dtype, base, casting):   # type: ignore[arg-type]
            raise ValueError("write: field %r (%s) cannot take values of dtype %s under casting=%r; pass "
                             "casting=\"unsafe\" to convert anyway" % (name, dst, src.dtype, casting))
        return src
    sk, dk = src.dtype.kind, base.kind
    if sk == "O":
        return _object_column(name, dst, src)
    if dk in "iu":
        if sk == "b":
            return src
        if sk not in "iuf":
            raise _refuse(name, dst, src, np.ones(src.shape, bool), "not a number")
        bad = _int_range_bad(src, np.iinfo(base))
        if bad.any():
            why = "out of range" if sk in "iu" else "not an integer in range"
            raise _refuse(name, dst, src, bad, why)
        return src
    if dk == "b":
        if sk == "b":
            return src
        if sk not in "iuf":
            raise _refuse(name, dst, src, np.ones(src.shape, bool), "not a bool")
        bad = (src != 0) & (src != 1)
        if bad.any():
            raise _refuse(name, dst, src, bad, "a bool field holds 0 or 1 only")
        return src
    if dk in "fc":
        if sk not in "biufc":
            raise _refuse(name, dst, src, np.ones(src.shape, bool), "not a number")
        with np.errstate(over="ignore", invalid="ignore"):
            conv = src.astype(base)
        bad = np.isinf(conv) & np.isfinite(src)
        if bad.any():
            raise _refuse(name, dst, src, bad, "beyond the range of the field")
        return conv
    if dk == "S":
        if sk == "S":
            # numpy's S drops trailing NULs: what is left must fit.
            lens = np.char.str_len(src)
        elif sk == "U":
            try:
                src = np.char.encode(src, "ascii")
            except UnicodeEncodeError:
                raise ValueError("write: field %r (%s) takes bytes; text that is not ASCII must be "
                                 "encoded first (e.g. os.fsencode)" % (name, dst)) from None
            lens = np.char.str_len(src)
        else:
            raise _refuse(name, dst, src, np.ones(src.shape, bool), "not bytes")
        bad = lens > base.itemsize
        if bad.any():
            raise _refuse(name, dst, src, bad, "longer than the field's %d bytes" % base.itemsize)
        return src
    # Anything else (datetimes, nested records): numpy's rules by dtype.
    if not np.can_cast(src.dtype, base, "same_kind"):
        raise ValueError("write: field %r (%s) cannot take values of dtype %s; pass casting=\"unsafe\" "
                         "to convert anyway" % (name, dst, src.dtype))
    return src
