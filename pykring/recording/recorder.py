"""The Recorder: writes a ring's batches to a recording in the format its
file name says, closing a file and beginning the next one when it is
full (``rotate``, or a Parquet file's footer limit)."""
import os
import time
from typing import Any, List, Optional, Tuple, Union

from ..errors import KringError
from .format import RecordingError, _pyarrow, _suffix
from .frames import _frame_meta, _stats_dict
from .parquet import _ParquetFile
from .rows import Layout
from .series import _series, _series_name
from .writers import _ArrowsFile, _JsonlFile, _Later


_WRITERS = {".arrows": _ArrowsFile, ".parquet": _ParquetFile, ".jsonl": _JsonlFile}


def layout_of(ring, host: Optional[dict] = None) -> Tuple[Layout, Any]:
    """(layout, ring) for what a Recorder or a sink is given: a Ring (its
    layout with this host's identity, or `host`), or a Layout (the ring is
    then None; `host` replaces its host)."""
    if isinstance(ring, Layout):
        return (ring if host is None else Layout(ring.types, host, ring.ring)), None
    return Layout.of(ring, host), ring


def final_stats(ring):
    """The counts of `ring` at the end of a recording or a stream: its stats
    now, or None when there is no ring, it is being closed, or they cannot
    be read."""
    if ring is None or getattr(ring, "_closing", False):
        return None
    try:
        return ring.stats
    except KringError:
        return None


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
        if stats is None:
            stats = final_stats(self._ring)
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
