"""The recording format's fixed names: its version, the file name suffixes,
the metadata keys, a Parquet recording's journal suffix; the error a
recording that cannot be read raises, the pyarrow import, and the JSON
objects a header or frame carries."""
import json
from typing import Union

from ..errors import KringError

#: The recording format's version (the header's "version"); a reader refuses a newer one.
VERSION = 1
#: The file name suffixes a Recorder writes and open_recording reads.
SUFFIXES = (".arrows", ".parquet", ".jsonl")
_META_KEY = b"pykring"
_FRAME_KEY = b"pykring.frame"
_JOURNAL = ".journal.arrows"


class RecordingError(KringError, ValueError):
    """A recording that cannot be read (not a recording, a newer format,
    damaged), or a file name a Recorder cannot write."""


def _pyarrow():
    try:
        import pyarrow
    except ImportError:
        raise ImportError("pykring's recordings need pyarrow: pip install 'pykring[arrow]'") from None
    return pyarrow


def _json(raw: Union[bytes, str], what: str) -> dict:
    try:
        d = json.loads(raw)
    except ValueError as exc:
        raise RecordingError("%s is not JSON (%s)" % (what, exc)) from None
    if not isinstance(d, dict):
        raise RecordingError("%s is not a JSON object" % what)
    return d


def _suffix(path: str) -> str:
    for s in SUFFIXES:
        if path.endswith(s):
            return s
    raise RecordingError("cannot tell the recording format of %r: name it *.arrows (Arrow IPC stream), "
                         "*.parquet or *.jsonl" % path)
