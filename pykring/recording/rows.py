"""Recordings: batches of records saved to a file and read back as they were.

A recording is a sequence of *frames*, one per drained :class:`~pykring.Batch`:
the records, the ring's stats right after that drain (written, dropped, lost,
read), the seconds since the recording started, and ``facts``, what a live
consumer looked up on its host while handling the batch (``python -m pykring
watch`` keeps the /proc and cgroup lookups there, so that a replay prints what
the live run printed). The file's header keeps the record types with their
exact dtypes, the ring and the host identity (hostname, boot id, time zone).

Formats, by the file name's suffix:

- ``.arrows``: an Arrow IPC stream. Each frame is one record batch, its frame
  facts in the batch's custom metadata; the end is a batch of no rows with
  the final stats. Readable by any Arrow implementation.
- ``.parquet``: Parquet, the frames in the footer's key-value metadata. A
  Parquet file is readable only once closed, so while recording the frames go
  to a journal next to it (``FILE.parquet.journal.arrows``, an ``.arrows``
  recording) that becomes the Parquet file at close (or rotation).
- ``.jsonl``: JSON Lines: a header line, then per frame a frame line and one
  line per record (bytes as str, decoded as :func:`os.fsdecode` does; ``ts``
  in ns since the Unix epoch).

The rows (the same columns in every format): ``type`` (the record type's
name), then every type's fields, null where a row's type has no such field.
Numbers and bools as they are, ``ts`` as ``timestamp[ns, tz=UTC]``, ``S``
fields as binary (the exact bytes), subarrays as fixed-size lists; a kernel
``process_start`` as ``path``, ``argv`` (a list), ``cwd`` and ``parent_path``.
Rows are in ``seq`` order. Reading builds records with the dtypes they had:
every field and string compares equal to what was drained.

A recording cut short (a crash, SIGKILL, a full disk) reads up to its last
complete frame (``Recording.truncated`` is then True).

The format, for readers in other languages: docs/RECORDINGS.md. Needs pyarrow:
``pip install 'pykring[arrow]'``.
"""
import dataclasses
import errno
import glob
import json
import os
import re
import socket
import threading
import time
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from .arrow import _START_FIELDS
from .errors import KringError

__all__ = ["Layout", "Frame", "Recorder", "Recording", "RecordingError", "open_recording",
           "frame_bytes", "read_frame_bytes", "host_identity", "SUFFIXES"]

#: The recording format's version (the header's "version"); a reader refuses a newer one.
VERSION = 1
#: The file name suffixes a Recorder writes and open_recording reads.
SUFFIXES = (".arrows", ".parquet", ".jsonl")
_META_KEY = b"pykring"
_FRAME_KEY = b"pykring.frame"
_JOURNAL = ".journal.arrows"
#: The largest record dtype a header may describe (a ring's records are far smaller).
_MAX_RECORD = 1 << 20


class RecordingError(KringError, ValueError):
    """A recording that cannot be read (not a recording, a newer format,
    damaged), or a file name a Recorder cannot write."""


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ImportError("pykring's recordings need pyarrow: pip install 'pykring[arrow]'") from None
    return pyarrow


def _timezone() -> str:
    """A TZ value naming this host's local time (for a replay elsewhere)."""
    tz = os.environ.get("TZ")
    if tz:
        return tz
    try:
        with open("/etc/timezone") as f:
            name = f.read().strip()
        if name:
            return name
    except OSError:
        pass
    try:
        target = os.readlink("/etc/localtime")
        if "zoneinfo/" in target:
            return target.split("zoneinfo/", 1)[1]
    except OSError:
        pass
    east = -time.timezone
    sign = "-" if east >= 0 else "+"       # POSIX TZ offsets count west
    return "<%+03d%02d>%s%d:%02d" % (east // 3600, abs(east) % 3600 // 60, sign, abs(east) // 3600,
                                      abs(east) % 3600 // 60)


def host_identity() -> Dict[str, str]:
    """This host as a recording names it: ``hostname``, ``boot_id`` (Linux's
    /proc/sys/kernel/random/boot_id, "" elsewhere) and ``timezone`` (a TZ
    value for its local time)."""
    from .events import boot_id

    return {"hostname": socket.gethostname(), "boot_id": boot_id(), "timezone": _timezone()}


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
            from .events import start_context, start_strings

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
        from .events import D_PACKED
        from .ring import Batch

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


def _json(raw: Union[bytes, str], what: str) -> dict:
    try:
        d = json.loads(raw)
    except ValueError as exc:
        raise RecordingError("%s is not JSON (%s)" % (what, exc)) from None
    if not isinstance(d, dict):
        raise RecordingError("%s is not a JSON object" % what)
    return d


# ---- frames -------------------------------------------------------------------

def _ipc_options(pa):
    # zstd-compressed buffers: rows of mostly empty columns and repeated
    # paths shrink several times over, for a fraction of the encoding's cost;
    # every Arrow reader of the IPC format (1.0 and later) reads them.
    return pa.ipc.IpcWriteOptions(compression="zstd")


@dataclasses.dataclass
class Frame:
    """One batch of a recording and what came with it."""

    batch: Any                  #: the records (a pykring.Batch)
    stats: Dict[str, Optional[int]]   #: the ring's written, dropped, lost, read right after the drain
    t: float                    #: seconds since the recording started
    facts: Dict[str, Any]       #: host lookups made while handling the batch (watch: proc, cgroup)
    meta: Dict[str, Any]        #: the frame's whole metadata
    table: Any = None           #: the pyarrow.RecordBatch it came from


def _stats_dict(stats) -> Dict[str, Optional[int]]:
    if stats is None:
        return {}
    if isinstance(stats, dict):
        return {k: stats.get(k) for k in ("written", "dropped", "lost", "read")}
    return {"written": stats.written, "dropped": stats.dropped, "lost": stats.lost, "read": stats.read}


def _frame_meta(stats, t: float, facts: Optional[dict], extra: Optional[dict]) -> dict:
    meta: Dict[str, Any] = dict(extra or {})
    meta.update(_stats_dict(stats))
    meta["t"] = round(t, 6)
    if facts:
        meta["facts"] = facts
    return meta


def _frame_of(layout: Layout, rb, meta: dict) -> Frame:
    return Frame(batch=layout.decode(rb), stats=_stats_dict(meta), t=float(meta.get("t", 0.0)),
                 facts=meta.get("facts") or {}, meta=meta, table=rb)


def frame_bytes(layout: Layout, batch, stats=None, t: float = 0.0, facts: Optional[dict] = None,
                extra: Optional[dict] = None) -> bytes:
    """One frame as a complete Arrow IPC stream (the schema, one record
    batch with the frame's metadata): a message for any transport."""
    pa = _pyarrow()
    rb = batch if isinstance(batch, pa.RecordBatch) else layout.encode(batch)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, layout.schema, options=_ipc_options(pa)) as w:
        w.write_batch(rb, custom_metadata={_FRAME_KEY: json.dumps(_frame_meta(stats, t, facts, extra),
                                                                   separators=(",", ":")).encode()})
    return sink.getvalue().to_pybytes()


def read_frame_bytes(data: bytes) -> Tuple[Layout, Frame]:
    """The layout and frame of frame_bytes' output."""
    pa = _pyarrow()
    try:
        reader = pa.ipc.open_stream(pa.py_buffer(data))
        rb, custom = reader.read_next_batch_with_custom_metadata()
    except (pa.ArrowInvalid, StopIteration, OSError) as exc:
        raise RecordingError("not a pykring frame: %s" % exc) from None
    layout = Layout.from_schema(reader.schema)
    return layout, _frame_of(layout, rb, _json((custom or {}).get(_FRAME_KEY, b"{}"), "frame metadata"))


# ---- writers --------------------------------------------------------------------

def _suffix(path: str) -> str:
    for s in SUFFIXES:
        if path.endswith(s):
            return s
    raise RecordingError("cannot tell the recording format of %r: name it *.arrows (Arrow IPC stream), "
                         "*.parquet or *.jsonl" % path)


def fsync_dir(directory: str) -> None:
    """fsync a directory, so that the names created or renamed in it last.
    A filesystem that cannot (EINVAL, ENOTSUP) has nothing to do."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def write_parquet(path: str, schema, tables: Iterable[Any], metadata: Dict[str, str],
                  row_group_rows: int = 1 << 16) -> None:
    """The tables (an iterable, consumed as written) as the zstd Parquet file
    `path` with `metadata` in its footer, durably: written to ``path.tmp``,
    fsynced, renamed over `path`, its directory fsynced. `metadata` may be
    filled while `tables` is consumed: it is written last."""
    _pyarrow()
    import pyarrow.parquet as pq

    tmp = path + ".tmp"
    writer = pq.ParquetWriter(tmp, schema, compression="zstd")
    try:
        for table in tables:
            if table.num_rows:
                writer.write_table(table, row_group_size=row_group_rows)
        writer.add_key_value_metadata(metadata)
    finally:
        writer.close()
    with open(tmp, "rb+") as f:
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(os.path.abspath(path)))


class _ArrowsFile:
    def __init__(self, path: str, layout: Layout, header_facts: Optional[dict], started: int):
        pa = _pyarrow()
        self.path = path
        self._f = open(path, "wb")
        meta = layout.header()
        meta.update(started=started, facts=header_facts or {})
        schema = layout.schema.with_metadata({_META_KEY: json.dumps(meta, separators=(",", ":")).encode()})
        self._w = pa.ipc.new_stream(self._f, schema, options=_ipc_options(pa))
        self._schema = schema
        self._f.flush()

    def write(self, rb, meta: dict) -> int:
        """Write a frame; the length of its metadata's JSON."""
        frame = json.dumps(meta, separators=(",", ":")).encode()
        self._w.write_batch(rb.replace_schema_metadata(self._schema.metadata), custom_metadata={_FRAME_KEY: frame})
        self._f.flush()
        return len(frame)

    def size(self) -> int:
        return self._f.tell()

    def full(self) -> bool:
        return False

    def close_later(self) -> "Optional[_Later]":
        """Close it as a middle file (no end mark); nothing left to do later."""
        self.close(None)
        return None

    def close(self, end: Optional[dict]) -> None:
        pa = _pyarrow()
        if end is not None:
            empty = pa.RecordBatch.from_pylist([], schema=self._schema)
            self._w.write_batch(empty, custom_metadata={_FRAME_KEY: json.dumps(dict(end, end=True)).encode()})
        self._w.close()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


class _ParquetFile:
    """Frames go to an .arrows journal; close turns it into the Parquet file."""

    def __init__(self, path: str, layout: Layout, header_facts: Optional[dict], started: int):
        self.path = path
        self._journal = _ArrowsFile(path + _JOURNAL, layout, header_facts, started)
        self._frame_bytes = 0

    def write(self, rb, meta: dict) -> None:
        self._frame_bytes += self._journal.write(rb, meta) + 20     # + "rows" and a comma

    def size(self) -> int:
        return self._journal.size()

    def full(self) -> bool:
        # The frame list goes to the footer, whose strings Parquet readers
        # refuse past 100 MB (pyarrow's and others' thrift limit): the file
        # is closed well before and the recording goes on in the next one.
        return self._frame_bytes >= PARQUET_FRAME_BYTES

    def close(self, end: Optional[dict]) -> None:
        self._journal.close(end)
        journal_to_parquet(self.path + _JOURNAL, self.path)

    def close_later(self) -> "Optional[_Later]":
        """Close the journal now (a middle file: no end), convert it in a
        thread: seconds for a big file, which a reader of a live ring should
        not stall for. Until the Parquet file is renamed in place, readers
        read the journal."""
        self._journal.close(None)
        return _Later(self.path, lambda: journal_to_parquet(self.path + _JOURNAL, self.path))


class _Later:
    """A file's slow last step, in a thread; done() re-raises its error."""

    def __init__(self, path: str, fn: Callable[[], None]):
        self._error: Optional[BaseException] = None

        def run() -> None:
            try:
                fn()
            except BaseException as exc:     # re-raised in the recording thread
                self._error = exc

        # Not a daemon: an interpreter that exits first waits for the file.
        self._thread = threading.Thread(target=run, name="pykring-parquet %s" % os.path.basename(path))
        self._thread.start()

    def running(self) -> bool:
        return self._thread.is_alive()

    def done(self) -> None:
        self._thread.join()
        if self._error is not None:
            raise self._error


#: The most bytes of frame list a Parquet recording's file holds before the
#: recording goes on in a next file (about 400,000 frames).
PARQUET_FRAME_BYTES = 32 << 20


def journal_to_parquet(journal: str, path: str, row_group_rows: int = 1 << 16) -> None:
    """An .arrows recording (a Parquet recording's journal) as the Parquet
    file `path` (:func:`write_parquet`), then the journal removed. Its
    frames go to the footer's metadata."""
    pa = _pyarrow()
    rec = _ArrowsReader(journal)
    frames: List[dict] = []
    metadata: Dict[str, str] = {}

    def tables() -> Iterator[Any]:
        pending: list = []
        rows = 0
        for rb, meta in rec.raw_frames():
            frames.append(dict(meta, rows=len(rb)))
            if len(rb):
                pending.append(rb)
                rows += len(rb)
            if rows >= row_group_rows:
                yield pa.Table.from_batches(pending, schema=rec.schema)
                pending, rows = [], 0
        if pending:
            yield pa.Table.from_batches(pending, schema=rec.schema)
        metadata["pykring.frames"] = json.dumps(frames, separators=(",", ":"))
        metadata["pykring.end"] = json.dumps(dict(rec.end) if rec.end is not None else None)

    write_parquet(path, rec.schema, tables(), metadata, row_group_rows)
    os.unlink(journal)


_NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


def _json_value(v):
    # bytes as fsdecode'd str (json escapes the lone surrogates: exact);
    # floats that JSON has no number for as the strings proto3's JSON uses.
    if isinstance(v, bytes):
        return v.decode("utf-8", "surrogateescape")
    if isinstance(v, list):
        return [_json_value(x) for x in v]
    if isinstance(v, float) and not np.isfinite(v):
        return "NaN" if v != v else "Infinity" if v > 0 else "-Infinity"
    return v


def _json_rows(layout: Layout, rb) -> List[str]:
    """The rows of a frame as JSON lines: the type's own columns only."""
    pa = layout._pa
    cols = {}
    for i, field in enumerate(rb.schema):
        col = rb.column(i)
        if pa.types.is_timestamp(field.type) or pa.types.is_duration(field.type):
            col = col.view(pa.int64())
        cols[field.name] = col.to_pylist()
    own = {name: [c for _, c in layout._columns[name]] for name in layout.dtypes}
    lines = []
    types = cols.pop("type")
    for i, t in enumerate(types):
        d = {"type": t}
        for c in own[t]:
            d[c] = _json_value(cols[c][i])
        lines.append(json.dumps(d, separators=(",", ":")))
    return lines


class _JsonlFile:
    def __init__(self, path: str, layout: Layout, header_facts: Optional[dict], started: int):
        self.path = path
        self._layout = layout
        self._f = open(path, "w", encoding="utf-8")
        meta = layout.header()
        meta.update(started=started, facts=header_facts or {})
        self._f.write(json.dumps({"pykring_recording": meta}, separators=(",", ":")) + "\n")
        self._f.flush()

    def write(self, rb, meta: dict) -> None:
        lines = _json_rows(self._layout, rb)
        self._f.write(json.dumps({"frame": dict(meta, rows=len(lines))}, separators=(",", ":")) + "\n")
        if lines:
            self._f.write("\n".join(lines) + "\n")
        self._f.flush()

    def size(self) -> int:
        return self._f.tell()

    def full(self) -> bool:
        return False

    def close_later(self) -> "Optional[_Later]":
        """Close it as a middle file (no end mark); nothing left to do later."""
        self.close(None)
        return None

    def close(self, end: Optional[dict]) -> None:
        if end is not None:
            self._f.write(json.dumps({"end": end}, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


_WRITERS = {".arrows": _ArrowsFile, ".parquet": _ParquetFile, ".jsonl": _JsonlFile}


def layout_of(ring, host: Optional[dict] = None) -> Tuple[Layout, Any]:
    """(layout, ring) for what a Recorder or a sink is given: a Ring (its
    layout with this host's identity, or `host`), or a Layout (the ring is
    then None; `host` replaces its host)."""
    if isinstance(ring, Layout):
        return (ring if host is None else Layout(ring.types, host, ring.ring)), None
    return Layout.of(ring, host), ring


def _series_name(path: str, n: int) -> str:
    s = _suffix(path)
    return "%s.%06d%s" % (path[:-len(s)], n, s)


class Recorder:
    """Writes the batches of a ring to a recording (the format by the file
    name: ``.arrows``, ``.parquet``, ``.jsonl``).

    ``ring``: a :class:`~pykring.Ring` (or a :class:`Layout`). ``rotate``:
    bytes after which the file is closed and the next one begun; the files
    are then ``STEM.000001.EXT``, ``STEM.000002.EXT``, ... each readable on
    its own, and :func:`open_recording` of ``path`` reads them in order.
    Without ``rotate``, a Parquet recording whose frame list would make its
    footer too big for readers goes on in ``STEM.000002.parquet``, ...,
    read after ``path`` (:attr:`files` lists them).
    ``host``: the host identity to record (default: this host's).
    ``facts``: what the reader of the whole recording needs to know of the
    host at the start (``watch``: the processes running then). ``t0``: the
    :func:`time.monotonic` its frames' times count from (default: now).

    ``write(batch)`` after each read (``stats``: the ring's stats after it;
    default ``ring.stats``), ``close()`` at the end (with the final stats).
    A file is flushed after every frame, so a crash loses at most the frame
    being written.
    """

    def __init__(self, ring, path: Union[str, "os.PathLike[str]"], *, rotate: Optional[int] = None,
                 host: Optional[dict] = None, facts: Optional[dict] = None, t0: Optional[float] = None):
        path = os.fspath(path)
        self._cls = _WRITERS[_suffix(path)]
        _pyarrow()
        if rotate is not None and rotate <= 0:
            raise ValueError("rotate: a number of bytes > 0, not %r" % (rotate,))
        self.layout, self._ring = layout_of(ring, host)
        self.path = path
        self.rotate = rotate
        self.files: List[str] = []          #: the files written so far (in order)
        self.frames = 0                     #: frames written
        self.records = 0                    #: records written
        self._facts = facts
        self._t0 = time.monotonic() if t0 is None else t0
        self._started = time.time_ns()
        self._file: Optional[Any] = None
        self._later: Optional[_Later] = None
        self._last_stats: Optional[dict] = None
        self._open_next()

    def _open_next(self) -> None:
        # Without `rotate`, a file that is full (Parquet: its frame list)
        # goes on in STEM.000002.EXT, ...: readers of STEM.EXT read those too.
        first = self.rotate is None and not self.files
        name = self.path if first else _series_name(self.path, len(self.files) + 1)
        if not self.files:
            series = _series(self.path)
            if series:
                raise RecordingError("%s: a recording series of that name exists (%s); remove it or "
                                     "choose another name" % (self.path, series[0]))
        self._file = self._cls(name, self.layout, self._facts if not self.files else None, self._started)
        self.files.append(name)

    @property
    def closed(self) -> bool:
        """True once close() ran."""
        return self._file is None

    def write(self, batch, stats=None, facts: Optional[dict] = None, extra: Optional[dict] = None) -> None:
        """Record one drained batch (empty ones too, if `stats` or `facts`
        changed). ``stats``: the ring's stats after the drain (default:
        ``ring.stats``)."""
        if self._file is None:
            raise ValueError("write to a closed Recorder")
        self._finish_later(wait=False)      # a finished conversion's error, here
        if stats is None and self._ring is not None:
            stats = self._ring.stats
        rb = self.layout.encode(batch)
        meta = _frame_meta(stats, time.monotonic() - self._t0, facts, extra)
        self._last_stats = _stats_dict(stats)
        self._file.write(rb, meta)
        self.frames += 1
        self.records += len(rb)
        if (self.rotate is not None and self._file.size() >= self.rotate) or self._file.full():
            self._finish_later()
            self._later = self._file.close_later()
            self._open_next()

    def _finish_later(self, wait: bool = True) -> None:
        """The previous file's conversion: its error raised here; waited for
        if `wait` (one at a time: a recorder never falls further behind)."""
        later = self._later
        if later is not None and (wait or not later.running()):
            self._later = None
            later.done()

    def close(self, stats=None, t: Optional[float] = None) -> None:
        """Finish the recording: the final stats (default: ``ring.stats``,
        or the last frame's), and for Parquet the file itself. ``t``: the
        seconds the recording lasted (default: until now)."""
        if self._file is None:
            return
        if stats is None and self._ring is not None and not getattr(self._ring, "_closing", False):
            try:
                stats = self._ring.stats
            except KringError:
                stats = None
        end = dict(_stats_dict(stats) if stats is not None else (self._last_stats or {}),
                   t=round(time.monotonic() - self._t0 if t is None else t, 6))
        f, self._file = self._file, None
        try:
            f.close(end)
        finally:
            self._finish_later()

    def summary(self) -> str:
        """One line: what was recorded, where."""
        where = self.files[0] if len(self.files) == 1 else "%s .. %s" % (self.files[0], self.files[-1])
        return "recorded %d events in %d batches to %s" % (self.records, self.frames, where)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# ---- readers ----------------------------------------------------------------------

class _ArrowsReader:
    def __init__(self, path: str):
        pa = _pyarrow()
        self.path = path
        self.truncated = False
        self.end: Optional[dict] = None
        self._f = open(path, "rb")
        if os.fstat(self._f.fileno()).st_size == 0:
            self._f.close()
            raise RecordingError("%s is empty: a recording opened but given no batch yet (starting, or "
                                 "stopped before its first batch)" % path)
        try:
            self._r = pa.ipc.open_stream(self._f)
            self.schema = self._r.schema
            self.layout = Layout.from_schema(self.schema)
            self.header = _json(self.schema.metadata[_META_KEY], "recording header")
        except RecordingError:
            self._f.close()
            raise
        except (pa.ArrowException, OSError, ValueError) as exc:
            self._f.close()
            raise RecordingError("%s is not an Arrow IPC stream recording (%s)" % (path, exc)) from None

    def raw_frames(self) -> Iterator[Tuple[Any, dict]]:
        pa = _pyarrow()
        try:
            while True:
                try:
                    rb, custom = self._r.read_next_batch_with_custom_metadata()
                except StopIteration:
                    return
                except (pa.ArrowException, OSError):
                    self.truncated = True       # cut short (or damaged): up to the last complete frame
                    return
                meta = _json((custom or {}).get(_FRAME_KEY, b"{}"), "frame metadata in %s" % self.path)
                if meta.get("end"):
                    self.end = meta
                    continue
                yield rb, meta
        finally:
            if self.end is None and not self.truncated:
                self.truncated = True       # no end mark: the recorder never closed it
            self._f.close()


class _ParquetReader:
    def __init__(self, path: str):
        _pyarrow()
        import pyarrow.parquet as pq

        self.path = path
        self.truncated = False
        try:
            self._pf = pq.ParquetFile(path)
        except Exception as exc:         # pyarrow raises several kinds for a damaged file
            raise RecordingError("%s is not a readable Parquet file (%s): a Parquet recording is "
                                 "readable once closed; its journal %s%s holds the frames until then"
                                 % (path, exc, path, _JOURNAL)) from None
        self.schema = self._pf.schema_arrow
        kv = self._pf.metadata.metadata or {}
        self._frames: Optional[List[dict]] = None
        if b"pykring.frames" in kv:
            frames = _json(b'{"f":%s}' % kv[b"pykring.frames"], "%s's frame list" % path)["f"]
            if not isinstance(frames, list) or not all(
                    isinstance(f, dict) and isinstance(f.get("rows"), int) and f["rows"] >= 0 for f in frames):
                raise RecordingError("%s: its frame list is damaged" % path)
            if sum(f["rows"] for f in frames) != self._pf.metadata.num_rows:
                raise RecordingError("%s: its frame list counts %d rows, the file holds %d"
                                     % (path, sum(f["rows"] for f in frames), self._pf.metadata.num_rows))
            self._frames = frames
        end = _json(b'{"e":%s}' % kv[b"pykring.end"], "%s's end mark" % path)["e"] if b"pykring.end" in kv else None
        self.end = end if isinstance(end, dict) else None
        if _META_KEY not in (self.schema.metadata or {}):
            raise RecordingError("%s is a Parquet file but not a pykring recording (no %r metadata)"
                                 % (path, _META_KEY.decode()))
        self.layout = Layout.from_schema(self.schema)
        self.header = _json(self.schema.metadata[_META_KEY], "recording header")

    def _row_groups(self) -> Iterator[Any]:
        """The record batches of each row group in turn, read one row group
        at a time (iter_batches was seen holding memory in proportion to
        the file); a damaged page is a RecordingError."""
        for i in range(self._pf.num_row_groups):
            try:
                table = self._pf.read_row_group(i)
            except Exception as exc:     # pyarrow's several kinds, for damaged pages
                raise RecordingError("%s: damaged Parquet data in row group %d (%s: %s)"
                                     % (self.path, i, type(exc).__name__, exc)) from None
            yield from table.to_batches()

    def raw_frames(self) -> Iterator[Tuple[Any, dict]]:
        pa = _pyarrow()
        if self._frames is None:
            # Parquet files of other writers (a collector's): one frame per row group.
            for rb in self._row_groups():
                yield rb, {}
            return
        # Streamed a row group at a time, so a recording larger than memory
        # replays: frames are cut from the row groups as they come.
        source = self._row_groups()
        pending: List[Any] = []
        have = 0
        for meta in self._frames:
            n = int(meta.get("rows", 0))
            while have < n:
                rb = next(source, None)
                if rb is None:
                    raise RecordingError("%s: the file ended inside a frame" % self.path)
                pending.append(rb)
                have += rb.num_rows
            held = pa.Table.from_batches(pending, schema=self.schema)
            batches = held.slice(0, n).combine_chunks().to_batches()
            yield (batches[0] if batches else pa.RecordBatch.from_pylist([], schema=self.schema)), meta
            pending = held.slice(n).to_batches()
            have -= n


class _JsonlReader:
    def __init__(self, path: str):
        _pyarrow()
        self.path = path
        self.truncated = False
        self.end: Optional[dict] = None
        self._f = open(path, "r", encoding="utf-8", errors="surrogateescape")
        first = self._f.readline()
        if not first.endswith("\n"):
            self._f.close()
            raise RecordingError("%s: no complete header line: not a pykring JSON Lines recording" % path)
        head = _json(first, "%s's first line" % path).get("pykring_recording")
        if not isinstance(head, dict):
            self._f.close()
            raise RecordingError("%s: its first line is not a pykring recording header" % path)
        self.header = head
        self.layout = Layout.from_header(head)
        self.schema = self.layout.schema

    def raw_frames(self) -> Iterator[Tuple[Any, dict]]:
        try:
            while True:
                line = self._f.readline()
                if not line:
                    return
                if not line.endswith("\n"):
                    self.truncated = True
                    return
                d = _json(line, "a line of %s" % self.path)
                if "end" in d:
                    self.end = d["end"]
                    continue
                meta = d.get("frame")
                if not isinstance(meta, dict):
                    raise RecordingError("%s: expected a frame line, got %r" % (self.path, line[:80]))
                rows = []
                for _ in range(int(meta.get("rows", 0))):
                    line = self._f.readline()
                    if not line.endswith("\n"):
                        self.truncated = True
                        return
                    rows.append(_json(line, "a record line of %s" % self.path))
                yield self._table(rows), meta
        finally:
            if self.end is None and not self.truncated:
                self.truncated = True
            self._f.close()

    def _table(self, rows: List[dict]):
        pa = _pyarrow()
        schema = self.layout.schema
        for r in rows:
            if r.get("type") not in self.layout.dtypes:
                raise RecordingError("%s: a record line of no type this recording has: %.80r"
                                     % (self.path, json.dumps(r)))
        cols = []
        for field in schema:
            name, t = field.name, field.type
            vals = [r.get(name) for r in rows]
            cols.append(_from_json_column(pa, name, t, vals))
        return pa.RecordBatch.from_arrays(cols, schema=schema)


def _from_json(v, t, pa):
    if v is None:
        return None
    if pa.types.is_list(t) or pa.types.is_fixed_size_list(t):
        return [_from_json(x, t.value_type, pa) for x in v]
    if pa.types.is_binary(t) and isinstance(v, str):
        return v.encode("utf-8", "surrogateescape")
    if pa.types.is_floating(t) and isinstance(v, str):
        return _NONFINITE.get(v, v)
    return v


def _from_json_column(pa, name: str, t, vals: list):
    if name == "type":
        return pa.array(vals, type=pa.string()).dictionary_encode().cast(t)
    if pa.types.is_timestamp(t) or pa.types.is_duration(t):
        return pa.array(vals, type=pa.int64()).view(t)
    try:
        return pa.array([_from_json(v, t, pa) for v in vals], type=t)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError) as exc:
        raise RecordingError("recording: column %s holds a value that is not a %s (%s)" % (name, t, exc)) from None


_READERS = {".arrows": _ArrowsReader, ".parquet": _ParquetReader, ".jsonl": _JsonlReader}


def _in_journal(path: str) -> bool:
    """A Parquet recording not (yet) converted: being recorded, or cut short."""
    return _suffix(path) == ".parquet" and not os.path.exists(path) and os.path.exists(path + _JOURNAL)


def _reader(path: str):
    s = _suffix(path)
    if _in_journal(path):
        try:
            return _ArrowsReader(path + _JOURNAL)       # recording, or cut short: its journal
        except FileNotFoundError:
            pass                                        # turned into the Parquet file meanwhile
    return _READERS[s](path)


def _empty(path: str) -> bool:
    """A recording's file (a Parquet one's journal, while there is one) of
    no bytes yet: the .arrows writer writes its schema with the first batch."""
    if _in_journal(path):
        path += _JOURNAL
    try:
        return os.path.getsize(path) == 0
    except OSError:
        return False


def _reading_order(path: str) -> Tuple[str, int]:
    """STEM.EXT, then STEM.000002.EXT, ... (a series: STEM.000001.EXT, ...)."""
    m = re.fullmatch(r"(.*)\.(\d{6})(\.[a-z]+)", path)
    return (m.group(1) + m.group(3), int(m.group(2))) if m else (path, 0)


def _recording_files(path: str) -> List[str]:
    if os.path.isdir(path):
        found = []
        for d, _, names in os.walk(path):
            for n in names:
                if n.endswith(SUFFIXES) and not n.endswith(_JOURNAL) or n.endswith(".parquet" + _JOURNAL):
                    full = os.path.join(d, n)
                    found.append(full[:-len(_JOURNAL)] if full.endswith(".parquet" + _JOURNAL) else full)
        files = sorted(set(found), key=_reading_order)
        if not files:
            raise RecordingError("%s: a directory with no recordings (*.arrows, *.parquet, *.jsonl)" % path)
        return files
    s = _suffix(path)
    series = _series(path)
    if os.path.exists(path) or _in_journal(path):
        # and the files it went on in, when it filled one (Recorder._open_next)
        return [path] + [p for p in series if not p.endswith(".000001" + s)]
    if not series:
        raise RecordingError("no recording %s (nor a rotated series %s)" % (path, _series_name(path, 1)))
    return series


def _series(path: str) -> List[str]:
    """STEM.000001.EXT, ... of `path` (a Parquet file still as its journal
    too), in order."""
    s = _suffix(path)
    stem = path[:-len(s)]
    series = [p for p in glob.glob(glob.escape(stem) + ".*" + s) if re.fullmatch(
        re.escape(stem) + r"\.\d{6}" + re.escape(s), p)]
    series += [p[:-len(_JOURNAL)] for p in glob.glob(glob.escape(stem) + ".*" + s + _JOURNAL)
               if re.fullmatch(re.escape(stem) + r"\.\d{6}" + re.escape(s + _JOURNAL), p)
               and not os.path.exists(p[:-len(_JOURNAL)])]
    return sorted(series)


class Recording:
    """A recording opened for reading (:func:`open_recording`): iterate it
    for the batches as the live ring gave them (a Batch, or a record array
    for a single-type ring), or :meth:`frames` for the frames with their
    stats and facts."""

    def __init__(self, path: Union[str, "os.PathLike[str]"]):
        self.path = os.fspath(path)
        self.files = _recording_files(self.path)     #: the files, in reading order
        first = _reader(self.files[0])
        self.layout: Layout = first.layout            #: the first file's layout
        self.header: dict = first.header              #: the first file's header (started, facts, ...)
        self._first: Optional[Any] = first
        self.truncated = False                        #: a file ended before its end mark
        self.end: Optional[dict] = None               #: the final stats (the end mark), None if cut short
        self.last: Optional[Frame] = None             #: the last frame read

    @property
    def dtypes(self) -> Dict[str, np.dtype]:
        """Record dtype by type name, as the recorded ring had them."""
        return dict(self.layout.dtypes)

    @property
    def host(self) -> Dict[str, str]:
        """The recorded host's identity: hostname, boot_id, timezone."""
        return dict(self.layout.host)

    @property
    def stats(self) -> Dict[str, Optional[int]]:
        """The final stats (written, dropped, lost, read): the end mark's, or
        the last frame read's if the recording was cut short."""
        if self.end is not None:
            return _stats_dict(self.end)
        return dict(self.last.stats) if self.last is not None else {}

    @property
    def seconds(self) -> float:
        """Seconds from the start of the recording to its end (or last frame)."""
        if self.end is not None and "t" in self.end:
            return float(self.end["t"])
        return self.last.t if self.last is not None else 0.0

    def frames(self) -> Iterator[Frame]:
        """Every frame of every file, in order."""
        for i, path in enumerate(self.files):
            if i and i == len(self.files) - 1 and _empty(path):
                self.truncated = True   # the file being begun (rotation, or one that filled)
                return
            r = self._first if i == 0 and self._first is not None else _reader(path)
            self._first = None
            for k, (rb, meta) in enumerate(r.raw_frames()):
                try:
                    rb.validate(full=True)
                    frame = _frame_of(r.layout, rb, meta)
                except RecordingError:
                    raise
                except Exception as exc:      # what pyarrow or numpy make of damaged data
                    raise RecordingError("%s: frame %d is damaged (%s: %s)"
                                         % (path, k, type(exc).__name__, exc)) from None
                self.last = frame
                yield frame
            if r.truncated:
                self.truncated = True
            self.end = r.end

    def __iter__(self) -> Iterator[Any]:
        """The non-empty batches, as iterating the live ring gave them: a
        record array per batch for a single-type ring, a Batch otherwise."""
        for frame in self.frames():     # each with its own file's layout (a directory may mix them)
            if frame.batch.count:
                yield next(iter(frame.batch.values())) if len(frame.batch) == 1 else frame.batch


def open_recording(path: Union[str, "os.PathLike[str]"]) -> Recording:
    """Open a recording (a ``.arrows``, ``.parquet`` or ``.jsonl`` file, a
    rotated series by its base name, or a directory of recordings) for
    reading: ``for batch in open_recording(path)`` gives the Batches as the
    live ring gave them. :class:`RecordingError` names what is wrong with a
    file that is not one."""
    return Recording(path)
