"""The file writers of a recording's formats that write frames as they
come: the Arrow IPC stream (``.arrows``, also a Parquet recording's
journal) and JSON Lines (``.jsonl``); and the thread a file's slow last
step runs in. Each writes a header, frames, and an end mark at close."""
import json
import os
import threading
from typing import Any, Callable, List, Optional

import numpy as np

from .format import _FRAME_KEY, _META_KEY, _pyarrow
from .frames import _ipc_options
from .rows import Layout


class _PlainFile:
    """What the Arrow IPC and JSON Lines writers share: a file written as
    frames come, its size read from the position, never full, closed at once
    as a middle file of a series."""
    _f: "Any"

    def size(self) -> int:
        return self._f.tell()

    def full(self) -> bool:
        return False

    def close_later(self) -> "Optional[_Later]":
        """Close it as a middle file (no end mark); nothing left to do later."""
        self.close(None)
        return None

    def close(self, end: Optional[dict]) -> None:
        raise NotImplementedError


class _ArrowsFile(_PlainFile):
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

    def close(self, end: Optional[dict]) -> None:
        pa = _pyarrow()
        if end is not None:
            empty = pa.RecordBatch.from_pylist([], schema=self._schema)
            self._w.write_batch(empty, custom_metadata={_FRAME_KEY: json.dumps(dict(end, end=True)).encode()})
        self._w.close()
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()


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


class _JsonlFile(_PlainFile):
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

    def close(self, end: Optional[dict]) -> None:
        if end is not None:
            self._f.write(json.dumps({"end": end}, separators=(",", ":")) + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._f.close()
