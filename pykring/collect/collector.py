"""The collector's store: :class:`Collector` writes the sinks' frames to
Parquet files by host and hour, one :class:`StreamState` per sink stream
(which sequence numbers it holds, its gaps and drops), and the per-host
report of those (:func:`summarize` of a directory, :func:`report_lines`).
"""
import bisect
import json
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

from ..errors import KringError
from ..recording.parquet import fsync_dir, write_parquet

_FRAME_KEY = b"pykring.frame"
_FRAMES_KEY = b"pykring.frames"
_TMP = ".tmp"


class CollectError(KringError, RuntimeError):
    """The collector cannot run: its server, its directory or its options."""


@dataclass
class StreamState:
    """What the files (and the buffers) hold of one sink's stream."""

    host: str
    boot_id: str
    ring: str
    origin: Optional[int] = None
    seq_to: int = 0
    rows: int = 0
    ring_lost: int = 0
    sink_dropped: int = 0
    ended: bool = False
    #: Sorted, disjoint [start, end) ranges of sequence numbers held (merged when adjacent).
    starts: List[int] = field(default_factory=list)
    ends: List[int] = field(default_factory=list)

    def add_range(self, a: int, b: int) -> None:
        if b <= a:
            return
        i = bisect.bisect_left(self.ends, a)            # first range that ends at or after a
        j = bisect.bisect_right(self.starts, b)         # ranges from i to j-1 touch [a, b)
        if i < j:
            a = min(a, self.starts[i])
            b = max(b, self.ends[j - 1])
        self.starts[i:j] = [a]
        self.ends[i:j] = [b]

    def covers(self, a: int, b: int) -> bool:
        """Whether [a, b) lies inside one held range."""
        i = bisect.bisect_right(self.starts, a) - 1
        return i >= 0 and self.ends[i] >= b

    def held(self, seqs: np.ndarray) -> np.ndarray:
        """Which of `seqs` fall in held ranges."""
        if not self.starts:
            return np.zeros(len(seqs), bool)
        starts = np.asarray(self.starts, np.uint64)
        ends = np.asarray(self.ends, np.uint64)
        i = np.searchsorted(starts, seqs, side="right").astype(np.int64) - 1
        ok = i >= 0
        out = np.zeros(len(seqs), bool)
        out[ok] = seqs[ok] < ends[i[ok]]
        return out

    def account(self, meta: dict, rows: int) -> None:
        if self.origin is None or int(meta.get("origin", meta["seq_from"])) < self.origin:
            self.origin = int(meta.get("origin", meta["seq_from"]))
        self.seq_to = max(self.seq_to, int(meta["seq_to"]))
        self.rows += rows
        self.ring_lost = max(self.ring_lost, int(meta.get("ring_lost", 0)))
        self.sink_dropped = max(self.sink_dropped, int(meta.get("sink_dropped", 0)))
        self.ended = self.ended or bool(meta.get("end"))
        self.add_range(int(meta["seq_from"]), int(meta["seq_to"]))

    @property
    def gaps(self) -> int:
        return 0 if self.origin is None else (self.seq_to - self.origin) - self.rows

    @property
    def dropped(self) -> int:
        return self.ring_lost + self.sink_dropped


def _key(meta: dict) -> Tuple[str, str, str]:
    return (str(meta["host"]), str(meta.get("boot_id", "")), str(meta["stream"]))


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"


def _makedirs(path: str) -> None:
    """mkdir -p, each new directory's entry fsynced in its parent."""
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        return
    _makedirs(parent)
    try:
        os.mkdir(path)
    except FileExistsError:
        return
    fsync_dir(parent)


def _file_frames(path: str) -> Optional[List[dict]]:
    import pyarrow.parquet as pq

    kv = pq.read_metadata(path).metadata or {}
    raw = kv.get(_FRAMES_KEY)
    if raw is None:
        return None
    frames = json.loads(raw)
    if not isinstance(frames, list):
        return None
    return [f for f in frames if isinstance(f, dict) and "stream" in f and "seq_from" in f]


class Collector:
    """The files of DIR and the messages buffered for the next ones.

    ``add(payload)`` takes one message (a frame's bytes), ``flush()`` writes
    the buffered records to their files (closed and fsynced when it
    returns); the caller acknowledges the messages then."""

    def __init__(self, output: str, log=None):
        self.output = os.path.abspath(output)
        self.log = log or (lambda text: None)
        self.streams: Dict[Tuple[str, str, str], StreamState] = {}
        self.files = 0
        self.duplicates = 0            #: messages whose records were all held already
        self.rejected = 0              #: messages that are not pykring frames
        self._buffers: Dict[tuple, Dict[str, Any]] = {}
        self._buffered_bytes = 0
        self._buffered_since: Optional[float] = None
        try:
            _makedirs(self.output)
        except OSError as exc:
            raise CollectError("cannot use %s as the output directory: %s" % (output, exc)) from None
        self._load()

    # -- what DIR holds ---------------------------------------------------------------
    def _load(self) -> None:
        for d, _, names in os.walk(self.output):
            for n in sorted(names):
                path = os.path.join(d, n)
                if n.endswith(".parquet" + _TMP):
                    os.unlink(path)             # a flush cut short: its messages were never acknowledged
                    continue
                if not n.endswith(".parquet"):
                    continue
                try:
                    frames = _file_frames(path)
                except Exception as exc:        # pyarrow raises several kinds for a damaged file
                    raise CollectError("%s is not a readable Parquet file (%s): move it out of %s"
                                       % (path, exc, self.output)) from None
                if frames is None:
                    continue
                self.files += 1
                for meta in frames:
                    self._state(meta).account(meta, int(meta.get("rows", 0)))

    def _state(self, meta: dict) -> StreamState:
        k = _key(meta)
        st = self.streams.get(k)
        if st is None:
            st = self.streams[k] = StreamState(host=k[0], boot_id=k[1], ring=str(meta.get("ring", "")))
        return st

    # -- messages ---------------------------------------------------------------------
    def add(self, payload: bytes) -> str:
        """Buffer one message's records: "new", "duplicate" or "rejected"."""
        import pyarrow as pa

        try:
            reader = pa.ipc.open_stream(pa.py_buffer(payload))
            rb, custom = reader.read_next_batch_with_custom_metadata()
            meta = json.loads((custom or {})[_FRAME_KEY])
            for k in ("host", "stream", "seq_from", "seq_to"):
                meta[k]
            seq_from, seq_to = int(meta["seq_from"]), int(meta["seq_to"])
        except Exception as exc:           # anything that is not a pykring frame
            self.rejected += 1
            self.log("rejected a message that is not a pykring frame (%s: %s)" % (type(exc).__name__, exc))
            return "rejected"
        st = self._state(meta)
        if len(rb) == 0:
            if st.ended and seq_to <= st.seq_to:
                self.duplicates += 1
                return "duplicate"
        elif st.covers(seq_from, seq_to):
            self.duplicates += 1
            return "duplicate"
        elif st.starts:
            seqs = rb.column(rb.schema.get_field_index("seq")).to_numpy()
            held = st.held(seqs)
            if held.any():              # a partial overlap: keep the records not held yet
                rb = rb.filter(pa.array(~held))
        st.account(meta, len(rb))
        if len(rb):
            ts = rb.column(rb.schema.get_field_index("ts"))[0].value
            hour = time.strftime("%Y-%m-%dT%H", time.gmtime(ts // 1_000_000_000))
        else:
            # The end of a stream: with its last records if they wait here too.
            hour = next((k[2] for k in self._buffers if k[1] == meta["stream"]), None) \
                or time.strftime("%Y-%m-%dT%H", time.gmtime())
        digest = hash(rb.schema.metadata.get(b"pykring", b"") if rb.schema.metadata else b"")
        bk = (st.host, meta["stream"], hour, digest)
        buf = self._buffers.get(bk)
        if buf is None:
            buf = self._buffers[bk] = {"schema": rb.schema, "batches": [], "frames": [], "key": _key(meta)}
        if not rb.schema.equals(buf["schema"], check_metadata=False):
            rb = rb.cast(buf["schema"])
        buf["batches"].append(rb)
        buf["frames"].append(dict(meta, rows=len(rb)))
        self._buffered_bytes += len(payload)
        if self._buffered_since is None:
            self._buffered_since = time.monotonic()
        return "new"

    @property
    def buffered_bytes(self) -> int:
        return self._buffered_bytes

    @property
    def empty(self) -> bool:
        """Nothing waits to be written."""
        return not self._buffers

    def due(self, seconds: float, max_bytes: int) -> bool:
        """Whether the buffers should be written now."""
        return self._buffered_since is not None and (
            self._buffered_bytes >= max_bytes or time.monotonic() - self._buffered_since >= seconds)

    def flush(self) -> List[str]:
        """Write every buffer to its file (temporary name, fsync, rename, fsync
        of the directory): when this returns, the records are on disk."""
        import pyarrow as pa

        written = []
        for (host, stream, hour, _), buf in sorted(self._buffers.items(), key=lambda kv: kv[0][:3]):
            d = os.path.join(self.output, "host=%s" % _safe(host), "hour=%s" % hour)
            _makedirs(d)
            frames = buf["frames"]
            base = "%s-%020d-%020d" % (_safe(stream), int(frames[0]["seq_from"]), int(frames[-1]["seq_to"]))
            path = os.path.join(d, base + ".parquet")
            n = 1
            while os.path.exists(path):
                path = os.path.join(d, "%s.%d.parquet" % (base, n))
                n += 1
            table = pa.Table.from_batches(buf["batches"], schema=buf["schema"])
            write_parquet(path, buf["schema"], [table],
                          {_FRAMES_KEY.decode(): json.dumps(frames, separators=(",", ":"))}, 1 << 17)
            written.append(path)
            self.files += 1
        self._buffers.clear()
        self._buffered_bytes = 0
        self._buffered_since = None
        return written

    # -- the report ---------------------------------------------------------------------
    def report(self) -> Dict[str, Dict[str, int]]:
        """Per host: events, dropped (at the source), gaps, streams."""
        return _report(self.streams.values())


def _report(streams) -> Dict[str, Dict[str, int]]:
    out: Dict[str, Dict[str, int]] = {}
    for st in streams:
        h = out.setdefault(st.host, {"events": 0, "dropped": 0, "gaps": 0, "streams": 0})
        h["events"] += st.rows
        h["dropped"] += st.dropped
        h["gaps"] += st.gaps
        h["streams"] += 1
    return dict(sorted(out.items()))


def summarize(output: str) -> Dict[str, Dict[str, int]]:
    """The per-host report of a collector's directory, from its files'
    footers: ``{host: {"events", "dropped", "gaps", "streams"}}``."""
    streams: Dict[Tuple[str, str, str], StreamState] = {}
    for d, _, names in os.walk(output):
        for n in sorted(names):
            if n.endswith(".parquet"):
                for meta in _file_frames(os.path.join(d, n)) or ():
                    k = _key(meta)
                    st = streams.get(k)
                    if st is None:
                        st = streams[k] = StreamState(host=k[0], boot_id=k[1], ring=str(meta.get("ring", "")))
                    st.account(meta, int(meta.get("rows", 0)))
    return _report(streams.values())


def report_lines(report: Dict[str, Dict[str, int]]) -> List[str]:
    return ["host %s: %d events, %d dropped at the source, %d gaps (%d streams)"
            % (h, r["events"], r["dropped"], r["gaps"], r["streams"]) for h, r in report.items()]
