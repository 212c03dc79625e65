"""The row model of a recording (and of a fleet message): a :class:`Layout`
maps the records of a ring's types to one Arrow schema and back, record
dtypes to JSON and back, numpy fields to Arrow types (``S`` fields as
binary, ``ts`` as a UTC timestamp, a kernel process_start's packed strings
as their own columns)."""
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..arrow import _START_FIELDS
from .format import VERSION, _META_KEY, RecordingError, _json, _pyarrow
from .host import host_identity

#: The largest record dtype a header may describe (a ring's records are far smaller).
_MAX_RECORD = 1 << 20


# ---- dtypes as JSON ----------------------------------------------------------

def _dtype_json(dt: np.dtype) -> dict:
    names = list(dt.names or ())
    fields: Mapping[str, Any] = dt.fields or {}
    formats = []
    for n in names:
        f = fields[n][0]
        formats.append([f.subdtype[0].str, list(f.subdtype[1])] if f.subdtype else f.str)
    return {"names": names, "formats": formats, "offsets": [fields[n][1] for n in names],
            "itemsize": dt.itemsize}


def _dtype_from_json(d: dict) -> np.dtype:
    try:
        formats = [np.dtype((f[0], tuple(f[1]))) if isinstance(f, list) else np.dtype(f) for f in d["formats"]]
        dt = np.dtype({"names": d["names"], "formats": formats, "offsets": d["offsets"],
                       "itemsize": d["itemsize"]})
    except (KeyError, TypeError, ValueError) as exc:
        raise RecordingError("recording header: a record dtype it cannot rebuild (%s)" % exc) from None
    if dt.hasobject:
        raise RecordingError("recording header: object fields are not record fields")
    if dt.itemsize > _MAX_RECORD:
        raise RecordingError("recording header: a record of %d bytes (a ring's are at most %d)"
                             % (dt.itemsize, _MAX_RECORD))
    return dt


# ---- the row model -------------------------------------------------------------

_PACKED_COLUMNS = ("path", "argv", "cwd", "parent_path")


def _is_start(name: str, dt: np.dtype) -> bool:
    return name == "process_start" and _START_FIELDS <= set(dt.names or ())


def _arrow_type(pa, name: str, f: np.dtype):
    if f.subdtype is not None:
        base, shape = f.subdtype
        t = _arrow_type(pa, name, base)
        for d in reversed(shape):
            t = pa.list_(t, d)
        return t
    kind = f.kind
    if kind in "SV":
        return pa.binary()
    if kind == "M":
        return pa.timestamp(np.datetime_data(f)[0], tz="UTC" if name == "ts" else None)
    if kind == "m":
        return pa.duration(np.datetime_data(f)[0])
    return pa.from_numpy_dtype(f)


def _binary_from_s(pa, col: np.ndarray, raw: Optional[np.ndarray] = None):
    """An S column as an Arrow binary array, without a Python loop: the
    bytes up to each value's last non-NUL byte (what numpy's bytes are).
    `raw`: the column's bytes as an (n, width) uint8 view, if at hand (a
    field of wide rows is then not copied whole)."""
    n, w = len(col), col.dtype.itemsize
    lens = np.char.str_len(col) if n else np.zeros(0, np.int64)
    offsets = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(lens, out=offsets[1:])
    longest = int(lens.max()) if n else 0
    if raw is None:
        raw = np.ascontiguousarray(col).view(np.uint8).reshape(n, w)
    # The used columns contiguous first: a mask over them gathers fastest.
    data = np.ascontiguousarray(raw[:, :longest])[np.arange(longest) < lens[:, None]]
    if offsets[-1] < 1 << 31:
        return pa.Array.from_buffers(pa.binary(), n, [None, pa.py_buffer(offsets.astype(np.int32)),
                                                       pa.py_buffer(data)])
    return pa.Array.from_buffers(pa.large_binary(), n, [None, pa.py_buffer(offsets), pa.py_buffer(data)]) \
        .cast(pa.binary())


def _s_from_binary(col, n: int, width: int, what: str, into: Optional[np.ndarray] = None) -> np.ndarray:
    """Arrow binary values as (n, width) zero-padded bytes, vectorized;
    `into`: an (n, width) uint8 view of zeros to write them to instead."""
    out = np.zeros((n, width), dtype=np.uint8) if into is None else into
    if not n:
        return out
    if col.null_count:
        raise RecordingError("recording: %s has nulls in rows of its own type" % what)
    bufs = col.buffers()
    offsets = np.frombuffer(bufs[1], dtype=np.int32 if col.type.equals(_pyarrow().binary()) else np.int64)
    offsets = offsets[col.offset:col.offset + n + 1]
    lens = np.diff(offsets)
    if len(lens) and int(lens.max()) > width:
        raise RecordingError("recording: a value of %s is %d bytes, its field holds %d"
                             % (what, int(lens.max()), width))
    data = np.frombuffer(bufs[2], dtype=np.uint8)[offsets[0]:offsets[-1]] if bufs[2] is not None \
        else np.zeros(0, np.uint8)
    longest = int(lens.max()) if len(lens) else 0
    out[:, :longest][np.arange(longest) < lens[:, None]] = data
    return out


class Layout:
    """How the records of a ring's types map to one Arrow schema (the row
    model of :mod:`pykring.recording`), both ways.

    ``types``: (type id, name, record dtype) per type, as a ring has them.
    ``host``, ``ring``: JSON-able dicts kept in the schema's metadata.
    """

    def __init__(self, types: Sequence[Tuple[int, str, np.dtype]], host: Optional[dict] = None,
                 ring: Optional[dict] = None):
        pa = _pyarrow()
        if not types:
            raise ValueError("a layout needs at least one record type")
        self.types = [(int(t), str(n), np.dtype(d)) for t, n, d in types]
        self.host = dict(host or {})
        self.ring = dict(ring or {})
        self.dtypes = {n: d for _, n, d in self.types}
        self._pa = pa
        # column name -> arrow type; per type: [(field or packed column, column)]
        cols: Dict[str, Any] = {"type": pa.dictionary(pa.int8(), pa.string())}
        self._columns: Dict[str, List[Tuple[str, str]]] = {}
        self._start: Dict[str, bool] = {}
        for _, name, dt in self.types:
            start = _is_start(name, dt)
            self._start[name] = start
            own: List[Tuple[str, str]] = []
            wanted: List[Tuple[str, Any]] = []
            fields: Mapping[str, Any] = dt.fields or {}
            for f in dt.names or ():
                if f == "type" or (start and f in ("path", "cmdline")):
                    continue
                wanted.append((f, _arrow_type(pa, f, fields[f][0])))
            if start:       # the packed strings, after the fields
                wanted += [("path", pa.binary()), ("argv", pa.list_(pa.binary()))]
                if "cwd_len" in fields:
                    wanted += [("cwd", pa.binary()), ("parent_path", pa.binary())]
            for f, t in wanted:
                col = f
                if col in cols and not cols[col].equals(t):
                    col = "%s.%s" % (name, f)       # the same name, another type: its own column
                cols.setdefault(col, t)
                own.append((f, col))
            self._columns[name] = own
        self._names = [n for _, n, _ in self.types]
        self._codes = {n: i for i, n in enumerate(self._names)}
        meta = {"version": VERSION, "types": [{"id": t, "name": n, "dtype": _dtype_json(d)} for t, n, d in self.types],
                "host": self.host, "ring": self.ring}
        self.schema = pa.schema([pa.field(c, t) for c, t in cols.items()],
                                metadata={_META_KEY: json.dumps(meta, separators=(",", ":")).encode()})
        self._index = {c: i for i, c in enumerate(cols)}
        self._dictionary = pa.array(self._names, type=pa.string())

    # -- construction -------------------------------------------------------
    @classmethod
    def of(cls, ring, host: Optional[dict] = None) -> "Layout":
        """The layout of a :class:`~pykring.Ring`'s types, with this host's
        identity (or `host`)."""
        return cls(ring._types, host if host is not None else host_identity(),
                   {"path": ring.path, "capacity": ring.capacity})

    @classmethod
    def from_schema(cls, schema) -> "Layout":
        """The layout an Arrow schema written by a Layout describes."""
        raw = (schema.metadata or {}).get(_META_KEY)
        if raw is None:
            raise RecordingError("not a pykring recording: its Arrow schema has no %r metadata" % _META_KEY.decode())
        return cls.from_header(_json(raw, "recording header"))

    @classmethod
    def from_header(cls, meta: dict) -> "Layout":
        try:
            version = int(meta["version"])
            if version > VERSION:
                raise RecordingError("recording format version %d is newer than this pykring reads (%d): "
                                     "upgrade pykring" % (version, VERSION))
            types = [(int(t["id"]), str(t["name"]), _dtype_from_json(t["dtype"])) for t in meta["types"]]
            return cls(types, meta.get("host"), meta.get("ring"))
        except RecordingError:
            raise
        except Exception as exc:        # numpy's and pyarrow's words for a header that makes no sense
            raise RecordingError("recording header is damaged (%s: %s)" % (type(exc).__name__, exc)) from None

    def header(self) -> dict:
        """The schema's pykring metadata, as a dict."""
        return json.loads(self.schema.metadata[_META_KEY])

    # -- numpy -> arrow -------------------------------------------------------
    def _field_array(self, name: str, col: np.ndarray, t, raw: Optional[np.ndarray] = None):
        pa = self._pa
        if col.ndim > 1:
            base = t
            for _ in col.shape[1:]:
                base = base.value_type
            flat = self._field_array(name, np.ascontiguousarray(col).reshape(-1), base)
            for d in reversed(col.shape[1:]):
                flat = pa.FixedSizeListArray.from_arrays(flat, d)
            return flat
        kind = col.dtype.kind
        if kind == "S":
            return _binary_from_s(pa, col, raw)
        if kind == "V":
            return pa.array([bytes(v) for v in col.tolist()], type=pa.binary())
        if kind in "Mm":
            return pa.array(np.ascontiguousarray(col).view(np.int64), type=pa.int64()).view(t)
        return pa.array(np.ascontiguousarray(col), type=t)

    def _type_arrays(self, name: str, arr: np.ndarray) -> Dict[str, Any]:
        pa = self._pa
        out: Dict[str, Any] = {}
        packed: Dict[str, Any] = {}
        if self._start[name]:
            from ..events import start_context, start_strings

            pairs = start_strings(arr)
            packed["path"] = pa.array([p for p, _ in pairs], type=pa.binary())
            packed["argv"] = pa.array([c.split(b"\0") if c else [] for _, c in pairs], type=pa.list_(pa.binary()))
            if "cwd_len" in (arr.dtype.names or ()):
                ctx = start_context(arr)
                packed["cwd"] = pa.array([c or None for c, _ in ctx], type=pa.binary())
                packed["parent_path"] = pa.array([p or None for _, p in ctx], type=pa.binary())
        rows = np.ascontiguousarray(arr)
        raw = rows.view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
        fields: Mapping[str, Any] = rows.dtype.fields or {}
        for f, col in self._columns[name]:
            if f in packed:
                out[col] = packed[f]
                continue
            dt, off = fields[f][0], fields[f][1]
            view = raw[:, off:off + dt.itemsize] if dt.kind == "S" and dt.subdtype is None else None
            out[col] = self._field_array(f, rows[f], self.schema.field(col).type, view)
        return out

    def encode(self, batch) -> Any:
        """A Batch (or {type name: records}; a single-type ring's array) as one
        ``pyarrow.RecordBatch`` of this layout, rows in seq order."""
        pa = self._pa
        if isinstance(batch, np.ndarray):
            batch = {self._names[0]: batch}
        parts = []
        for name in self._names:
            arr = batch.get(name) if hasattr(batch, "get") else None
            if arr is not None and len(arr):
                parts.append((name, arr.reshape(-1)))
        n = sum(len(a) for _, a in parts)
        if len(parts) == 1:
            name, arr = parts[0]
            got = self._type_arrays(name, arr)
            codes = np.full(len(arr), self._codes[name], dtype=np.int8)
            cols = []
            for field in self.schema:
                if field.name == "type":
                    cols.append(pa.DictionaryArray.from_arrays(pa.array(codes), self._dictionary))
                else:
                    cols.append(got.get(field.name) if field.name in got else pa.nulls(n, field.type))
            return pa.RecordBatch.from_arrays(cols, schema=self.schema)
        pieces: Dict[str, list] = {f.name: [] for f in self.schema}
        codes_l, seqs = [], []
        for name, arr in parts:
            got = self._type_arrays(name, arr)
            codes_l.append(np.full(len(arr), self._codes[name], dtype=np.int8))
            seqs.append(arr["seq"])
            for field in self.schema:
                if field.name != "type":
                    pieces[field.name].append(got[field.name] if field.name in got
                                              else pa.nulls(len(arr), field.type))
        codes = np.concatenate(codes_l) if codes_l else np.zeros(0, np.int8)
        cols = [pa.DictionaryArray.from_arrays(pa.array(codes), self._dictionary)]
        for field in self.schema:
            if field.name != "type":
                p = pieces[field.name]
                cols.append(pa.concat_arrays(p) if p else pa.nulls(0, field.type))
        rb = pa.RecordBatch.from_arrays(cols, schema=self.schema)
        if len(parts) > 1:
            order = np.argsort(np.concatenate(seqs), kind="stable")
            rb = rb.take(pa.array(order))
        return rb

    # -- arrow -> numpy -------------------------------------------------------
    def _fill(self, rows: np.ndarray, f: str, col, what: str) -> None:
        fields: Mapping[str, Any] = rows.dtype.fields or {}
        dt = fields[f][0]
        n = len(rows)
        if dt.subdtype is not None:
            base, shape = dt.subdtype
            flat = col
            for _ in shape:
                flat = flat.flatten()
            vals = self._plain(flat, base, n * int(np.prod(shape)), what)
            rows[f] = vals.reshape((n,) + tuple(shape))
            return
        if dt.kind == "S":
            # Straight into the rows' bytes (fresh zeros): a wide field of
            # short strings costs its strings, not its width.
            if len(col) != n:
                raise RecordingError("recording: %s has %d values for %d rows" % (what, len(col), n))
            off = fields[f][1]
            raw = rows.view(np.uint8).reshape(n, rows.dtype.itemsize)
            _s_from_binary(col, n, dt.itemsize, what, into=raw[:, off:off + dt.itemsize])
            return
        rows[f] = self._plain(col, dt, n, what)

    def _plain(self, col, dt: np.dtype, n: int, what: str) -> np.ndarray:
        pa = self._pa
        if len(col) != n:
            raise RecordingError("recording: %s has %d values for %d rows" % (what, len(col), n))
        if dt.kind == "S":
            return _s_from_binary(col, n, dt.itemsize, what).view(dt).reshape(n)
        if dt.kind == "V":
            return np.array([bytes(v) for v in col.to_pylist()], dtype=dt)
        if col.null_count:
            raise RecordingError("recording: %s has nulls in rows of its own type" % what)
        if dt.kind in "Mm":
            return col.view(pa.int64()).to_numpy(zero_copy_only=False).view(dt)
        return col.to_numpy(zero_copy_only=False).astype(dt, copy=False)

    def decode(self, rb) -> "Any":
        """A ``pyarrow.RecordBatch`` (or Table) of this layout as a
        :class:`~pykring.Batch` with the types' own dtypes."""
        from ..events import D_PACKED
        from ..ring import Batch

        pa = self._pa
        if hasattr(rb, "combine_chunks"):           # a Table
            rb = rb.combine_chunks().to_batches()
            rb = rb[0] if rb else pa.RecordBatch.from_pylist([], schema=self.schema)
        if not rb.schema.equals(self.schema, check_metadata=False):
            missing = [f.name for f in self.schema if rb.schema.get_field_index(f.name) < 0]
            if missing:
                raise RecordingError("recording: frame lacks the columns %s" % ", ".join(missing[:5]))
        tcol = rb.column(rb.schema.get_field_index("type"))
        if not isinstance(tcol, pa.DictionaryArray):
            tcol = tcol.dictionary_encode()
        names = tcol.dictionary.to_pylist()
        idx = tcol.indices.to_numpy(zero_copy_only=False)
        arrays: Dict[str, np.ndarray] = {}
        for tid, name, dt in self.types:
            if name in names:
                sel = np.nonzero(idx == names.index(name))[0]
            else:
                sel = np.zeros(0, np.int64)
            n = len(sel)
            rows = np.zeros(n, dtype=dt)
            if n:
                sub = rb if n == len(rb) else rb.take(pa.array(sel))
                if "type" in (dt.names or ()):
                    rows["type"] = tid
                packed: Dict[str, Any] = {}
                for f, c in self._columns[name]:
                    col = sub.column(sub.schema.get_field_index(c))
                    if self._start[name] and f in _PACKED_COLUMNS:
                        packed[f] = col
                    else:
                        self._fill(rows, f, col, "%s.%s" % (name, f))
                if self._start[name]:
                    self._pack_start(rows, packed, D_PACKED)
            arrays[name] = rows
        return Batch(arrays)

    @staticmethod
    def _pack_start(rows: np.ndarray, packed: Dict[str, Any], d_packed: int) -> None:
        """The path and command line (and cwd, parent path) of process_start
        rows back into their fields, or their packed tail."""
        fields: Mapping[str, Any] = rows.dtype.fields or {}
        off, coff = fields["path"][1], fields["cmdline"][1]
        pw, cw = fields["path"][0].itemsize, fields["cmdline"][0].itemsize
        raw = rows.view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
        paths = packed["path"].to_pylist()
        argvs = packed["argv"].to_pylist()
        cwds = packed["cwd"].to_pylist() if "cwd" in packed else [None] * len(rows)
        ppaths = packed["parent_path"].to_pylist() if "parent_path" in packed else [None] * len(rows)
        for i, (detail, path, argv, cwd, ppath) in enumerate(zip(rows["detail"].tolist(), paths, argvs, cwds, ppaths)):
            path = path or b""
            cmd = b"\0".join(argv or [])
            if detail & d_packed:
                tail = path + b"\0" + cmd + b"\0" + (cwd or b"") + b"\0" + (ppath or b"")
                if off + len(tail) > rows.dtype.itemsize:
                    raise RecordingError("recording: a process_start's strings (%d bytes) do not fit its "
                                         "record (%d bytes)" % (len(tail), rows.dtype.itemsize - off))
                raw[i, off:off + len(tail)] = np.frombuffer(tail, np.uint8)
            else:
                if len(path) > pw or len(cmd) > cw:
                    raise RecordingError("recording: a process_start's path or command line is longer "
                                         "than its field")
                raw[i, off:off + len(path)] = np.frombuffer(path, np.uint8)
                raw[i, coff:coff + len(cmd)] = np.frombuffer(cmd, np.uint8)
