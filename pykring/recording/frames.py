"""Frames: one drained batch with the ring's stats after it, its time and
facts, as a recording's files and the fleet's messages carry it
(:func:`frame_bytes` is one frame as a complete Arrow IPC stream)."""
import dataclasses
import json
from typing import Any, Dict, Optional, Tuple

from .format import _FRAME_KEY, RecordingError, _json, _pyarrow
from .rows import Layout


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
