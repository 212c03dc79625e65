"""The files of one recording: a rotated series' names (STEM.000001.EXT,
...), a Parquet file still as its journal, the files of a directory, and
the order they are read in."""
import glob
import os
import re
from typing import List, Tuple

from .format import _JOURNAL, SUFFIXES, RecordingError, _suffix


def _series_name(path: str, n: int) -> str:
    s = _suffix(path)
    return "%s.%06d%s" % (path[:-len(s)], n, s)


def _in_journal(path: str) -> bool:
    """A Parquet recording not (yet) converted: being recorded, or cut short."""
    return _suffix(path) == ".parquet" and not os.path.exists(path) and os.path.exists(path + _JOURNAL)


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
