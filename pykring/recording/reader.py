"""Reading recordings: a reader per format (the Arrow IPC stream, Parquet,
JSON Lines) giving a file's frames as stored, and :class:`Recording`
(:func:`open_recording`), which reads every file of a recording in order
and builds the records with the dtypes they had."""
import json
import os
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import numpy as np

from .format import _FRAME_KEY, _JOURNAL, _META_KEY, RecordingError, _json, _pyarrow, _suffix
from .frames import Frame, _frame_of, _stats_dict
from .rows import Layout
from .series import _in_journal, _recording_files


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


_NONFINITE = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


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
