"""Record schemas: numpy dtypes <-> the schema in a ring's producer page.

A record is the 24-byte event header (``seq``, ``ts``, ``type``, ``flags``)
followed by the record type's own fields. The numpy dtype of a record maps
its bytes one to one, so a drain is a plain copy.
"""
import re
from typing import Dict, List, Mapping, NoReturn, Optional, Tuple, Union

import numpy as np

from ._lib import ffi, lib, raise_for

HEADER_SIZE = lib.KRING_EVENT_HEADER_SIZE
#: The ring's record header (length and flags, page offset) before each payload.
RECORD_HEADER_SIZE = lib.KRING_RECORD_HEADER_SIZE
_ALIGN_MASK = lib.KRING_ALIGN - 1
#: The capacity :func:`pykring.create` gives a ring when it is given None:
#: 2 MiB, the size the ring-size sweep of ``python -m benchmarks peers``
#: found fastest for 64-byte and 1 KiB records alike (benchmarks/RESULTS.md),
#: the copying and the zero-copy paths both: the data area then stays in one
#: core's L2 cache (2 MiB here) while the producer and the consumer take
#: turns on it. A larger ring absorbs longer bursts; a producer that must not
#: drop in them wants one sized for the burst, not for the cache.
DEFAULT_CAPACITY = 2 << 20

#: The common event header, as numpy fields (name, format, offset).
HEADER_FIELDS = (("seq", "<u8", 0), ("ts", "<M8[ns]", 8), ("type", "<u2", 16), ("flags", "<u2", 18))
HEADER_NAMES = frozenset(f[0] for f in HEADER_FIELDS)

_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Scalar numpy types a schema may carry: fixed-size, no objects, optionally a subarray.
_FORMAT_RE = re.compile(r"^(\((\d+,)*\d+,?\))?[<>|=]?(b1|[iu][1248]|f[248]|c(8|16)|S\d+|V\d+|[mM]8\[(ns|us|ms|s)\])$")

DtypeLike = Union[np.dtype, str, list, tuple]
Types = Mapping[str, DtypeLike]


def record_span(size: int) -> int:
    """Ring bytes a record of `size` payload bytes takes: the record header
    and the payload, rounded up to 8 (KRING_RECORD_SPAN in kring.h). Takes
    numpy integer arrays too."""
    return (size + RECORD_HEADER_SIZE + _ALIGN_MASK) & ~_ALIGN_MASK


def _format_of(dt: np.dtype) -> str:
    if dt.subdtype is not None:
        base, shape = dt.subdtype
        fmt = ("(%d,)" % shape[0] if len(shape) == 1 else "(%s)" % ",".join(str(s) for s in shape)) + base.str
    else:
        fmt = dt.str
    if dt.fields is not None or not _FORMAT_RE.match(fmt) or dt.hasobject:
        raise TypeError("field type %r is not supported in a ring record: use fixed-size "
                        "numbers, bytes (S<n>), datetimes or subarrays of those" % (dt,))
    return fmt


def record_dtype(body: np.dtype) -> np.dtype:
    """The full record dtype (event header + body) for a body dtype."""
    names: List[str] = []
    formats: List[Union[str, np.dtype]] = []
    offsets: List[int] = []
    for name, fmt, off in HEADER_FIELDS:
        names.append(name)
        formats.append(fmt)
        offsets.append(off)
    fields = body.fields
    for name in body.names or ():
        assert fields is not None       # a dtype with names has fields
        fdt, off = fields[name][:2]
        names.append(name)
        formats.append(fdt)
        offsets.append(HEADER_SIZE + off)
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": HEADER_SIZE + body.itemsize})


def body_dtype(full: np.dtype) -> np.dtype:
    """The body dtype (fields after the event header) of a full record dtype."""
    fields = full.fields
    if full.names is None or fields is None:
        raise TypeError("body_dtype() takes a structured record dtype, not %s" % (full,))
    names = [n for n in full.names if n not in HEADER_NAMES]
    return np.dtype({"names": names,
                     "formats": [fields[n][0] for n in names],
                     "offsets": [fields[n][1] - HEADER_SIZE for n in names],
                     "itemsize": full.itemsize - HEADER_SIZE})


def normalize_types(dtype: Union[DtypeLike, Types]) -> Dict[str, np.dtype]:
    """A single dtype becomes the one type ``"record"``; a mapping names several."""
    if isinstance(dtype, Mapping):
        items = list(dtype.items())
    else:
        items = [("record", dtype)]
    out: Dict[str, np.dtype] = {}
    if not 1 <= len(items) <= lib.KRING_MAX_TYPES - 1:
        raise ValueError("a ring has 1 to %d record types" % (lib.KRING_MAX_TYPES - 1))
    for name, dt in items:
        dt = np.dtype(dt)
        if not isinstance(name, str) or not _NAME_RE.match(name) or len(name) >= lib.KRING_NAME_LEN:
            raise ValueError("record type name %r: use an identifier of at most %d characters"
                             % (name, lib.KRING_NAME_LEN - 1))
        if dt.names is None:
            raise TypeError("record type %r: a structured dtype is needed, e.g. "
                            "np.dtype([('x', '<f8'), ('n', '<u4')]), not %s" % (name, dt))
        clash = HEADER_NAMES.intersection(dt.names)
        if clash:
            raise ValueError("record type %r: field names %s are taken by the event header "
                             "(seq, ts, type, flags)" % (name, sorted(clash)))
        out[name] = dt
    return out


def new_meta(capacity: int):
    """A producer page template (cffi struct) with the ring description filled
    in and no schema yet."""
    meta = ffi.new("struct kring_producer_page *")
    meta.magic = lib.KRING_MAGIC
    meta.abi_major = lib.KRING_ABI_MAJOR
    meta.abi_minor = lib.KRING_ABI_MINOR
    meta.page_size = lib.KRING_PAGE_SIZE
    meta.capacity = capacity
    meta.data_offset = lib.KRING_DATA_OFFSET
    return meta


def make_meta(capacity: Optional[int], types: Mapping[str, np.dtype]):
    """A producer page template (cffi struct) describing a new ring
    (`capacity` None: DEFAULT_CAPACITY)."""
    if capacity is None:
        capacity = DEFAULT_CAPACITY
    if not isinstance(capacity, int) or capacity < lib.KRING_MIN_CAPACITY or \
            capacity > lib.KRING_MAX_CAPACITY or capacity & (capacity - 1):
        raise ValueError("capacity must be a power of two from %d bytes to %d bytes, not %r"
                         % (lib.KRING_MIN_CAPACITY, lib.KRING_MAX_CAPACITY, capacity))
    meta = new_meta(capacity)
    nfields = 0
    for i, (name, body) in enumerate(types.items()):
        size = HEADER_SIZE + body.itemsize
        span = record_span(size)
        if span > capacity // 2:
            raise ValueError("record type %r (%d bytes) does not fit a %d-byte ring twice: use a "
                             "capacity of at least %d" % (name, size, capacity, 1 << (2 * span - 1).bit_length()))
        t = meta.types[i]
        t.name = name.encode()
        t.id = i + 1
        t.size = size
        t.min_size = size
        t.first_field = nfields
        fields = body.fields
        assert body.names is not None and fields is not None   # normalize_types() admits structured dtypes only
        for fname in body.names:
            fdt, off = fields[fname][:2]
            if nfields >= lib.KRING_MAX_FIELDS:
                raise ValueError("a ring's schema holds at most %d fields in all" % lib.KRING_MAX_FIELDS)
            if not _NAME_RE.match(fname) or len(fname) >= lib.KRING_NAME_LEN:
                raise ValueError("field name %r: use an identifier of at most %d characters"
                                 % (fname, lib.KRING_NAME_LEN - 1))
            fmt = _format_of(fdt)
            if len(fmt) >= lib.KRING_FORMAT_LEN:
                raise ValueError("field %r: its format %r is longer than the schema holds (%d characters); "
                                 "use a flatter or smaller subarray" % (fname, fmt, lib.KRING_FORMAT_LEN - 1))
            f = meta.fields[nfields]
            f.name = fname.encode()
            f.format = fmt.encode()
            f.offset = HEADER_SIZE + off
            nfields += 1
        t.nfields = nfields - t.first_field
    meta.ntypes = len(types)
    meta.nfields = nfields
    return meta


def types_from_meta(meta) -> List[Tuple[int, str, np.dtype]]:
    """(id, name, full dtype) for each type in a mapped producer page.

    The page comes from another process: every name and format is checked
    before numpy sees it, and every field must lie inside its record.
    """
    def bad(why: str) -> NoReturn:
        raise_for(lib.KRING_E_CORRUPT, "ring schema is invalid", detail=why, problem=why)

    out = []
    ntypes, nfields = int(meta.ntypes), int(meta.nfields)
    if not 1 <= ntypes <= lib.KRING_MAX_TYPES:
        bad("%d types (1 to %d)" % (ntypes, lib.KRING_MAX_TYPES - 1))
    if nfields > lib.KRING_MAX_FIELDS:
        bad("%d fields, more than the %d this pykring reads (ABI %d.%d; the ring says %d.%d)"
            % (nfields, lib.KRING_MAX_FIELDS, lib.KRING_ABI_MAJOR, lib.KRING_ABI_MINOR,
               int(meta.abi_major), int(meta.abi_minor)))
    for i in range(ntypes):
        t = meta.types[i]
        name = ffi.string(t.name, lib.KRING_NAME_LEN).decode("ascii", "replace")
        if not _NAME_RE.match(name):
            bad("type name %r" % name)
        size = int(t.size)
        names, formats, offsets = [], [], []
        for j in range(int(t.first_field), int(t.first_field) + int(t.nfields)):
            if j >= nfields:
                bad("type %r lists fields past the end of the field table" % name)
            f = meta.fields[j]
            fname = ffi.string(f.name, lib.KRING_NAME_LEN).decode("ascii", "replace")
            fmt = ffi.string(f.format, lib.KRING_FORMAT_LEN).decode("ascii", "replace")
            if not _NAME_RE.match(fname) or fname in HEADER_NAMES or fname in names:
                bad("type %r has a bad field name %r" % (name, fname))
            if not _FORMAT_RE.match(fmt):
                bad("field %s.%s has an unsupported format %r" % (name, fname, fmt))
            try:
                fdt = np.dtype(fmt)
            except (TypeError, ValueError) as exc:      # e.g. S99999999999, (65536,65536)u8
                bad("field %s.%s has a format numpy refuses, %r (%s)" % (name, fname, fmt, exc))
            off = int(f.offset)
            if off < HEADER_SIZE or off + fdt.itemsize > size:
                bad("field %s.%s (%d bytes at %d) lies outside its %d-byte record"
                          % (name, fname, fdt.itemsize, off, size))
            names.append(fname)
            formats.append(fdt)
            offsets.append(off)
        body = np.dtype({"names": names, "formats": formats,
                         "offsets": [o - HEADER_SIZE for o in offsets],
                         "itemsize": size - HEADER_SIZE})
        out.append((int(t.id), name, record_dtype(body)))
    return out
