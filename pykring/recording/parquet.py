"""Parquet recordings: frames go to an ``.arrows`` journal beside the file,
turned into the Parquet file (the frames in its footer) at close, or in a
background thread when a full file is rotated; :func:`write_parquet`
writes a Parquet file durably (also the fleet collector's)."""
import errno
import json
import os
from typing import Any, Dict, Iterable, Iterator, List, Optional

from .format import _JOURNAL, _pyarrow
from .reader import _ArrowsReader
from .rows import Layout
from .writers import _ArrowsFile, _Later


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

