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

The modules: ``format`` (the format's names, RecordingError), ``host`` (the
host identity), ``rows`` (the row model: Layout), ``frames`` (Frame, one frame
as an Arrow IPC message), ``writers`` (the .arrows and .jsonl file writers),
``parquet`` (the Parquet journal and its conversion), ``series`` (the files
of one recording), ``recorder`` (Recorder), ``reader`` (open_recording).
This package keeps every name importable from ``pykring.recording``.
"""
from .format import _JOURNAL, SUFFIXES, VERSION, RecordingError
from .frames import Frame, frame_bytes, read_frame_bytes
from .host import host_identity
from .parquet import PARQUET_FRAME_BYTES, fsync_dir, journal_to_parquet, write_parquet
from .reader import Recording, open_recording
from .recorder import Recorder, layout_of
from .rows import Layout

__all__ = ["Layout", "Frame", "Recorder", "Recording", "RecordingError", "open_recording",
           "frame_bytes", "read_frame_bytes", "host_identity", "SUFFIXES"]
