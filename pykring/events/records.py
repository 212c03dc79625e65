"""The kernel event record types (process start, process exit, image load,
exec failed): their type ids, `detail` bits and numpy dtypes, the event
kinds a kernel source can be asked for, and the strings of a packed
process_start row.

Defined once in include/kring/kring_events.h and shared by the Windows driver, the
eBPF programs and this package; the dtypes here are built from the schema
the C code describes, so they cannot drift from the structs.
"""
from typing import Dict, Iterable, List, Mapping, Tuple, Union

import numpy as np

from .._lib import lib
from ..schema import new_meta, types_from_meta

#: The event kinds a kernel source can deliver.
EVENT_KINDS = ("process", "image")

Events = Union[str, Iterable[str]]


def parse_events(events: Events) -> Tuple[str, ...]:
    """The event kinds asked for, from a tuple or a comma-separated string
    ("process,image", "process, image"). ValueError for a kind not in
    EVENT_KINDS or for none at all."""
    if isinstance(events, str):
        kinds = tuple(e for e in (part.strip() for part in events.split(",")) if e)
    else:
        kinds = tuple(events)
    for kind in kinds:
        if kind not in EVENT_KINDS:
            raise ValueError("unknown kernel event kind %r: choose from %s" % (kind, ", ".join(EVENT_KINDS)))
    if not kinds:
        raise ValueError("no kernel events asked for: choose from %s" % ", ".join(EVENT_KINDS))
    return kinds


def event_bits(events: Events, bits: Mapping[str, int]) -> int:
    """The events asked for (as parse_events takes them) as a mask of the
    platform's `bits` for each kind."""
    mask = 0
    for kind in parse_events(events):
        mask |= bits[kind]
    return mask


PROCESS_START = lib.KRING_TYPE_PROCESS_START
PROCESS_EXIT = lib.KRING_TYPE_PROCESS_EXIT
IMAGE_LOAD = lib.KRING_TYPE_IMAGE_LOAD
EXEC_FAILED = lib.KRING_TYPE_EXEC_FAILED

#: `detail` bits
D_PATH_TRUNCATED = lib.KRING_D_PATH_TRUNCATED
D_CMDLINE_TRUNCATED = lib.KRING_D_CMDLINE_TRUNCATED
D_NO_PATH = lib.KRING_D_NO_PATH
D_KERNEL_IMAGE = lib.KRING_D_KERNEL_IMAGE
D_MAIN_IMAGE = lib.KRING_D_MAIN_IMAGE
D_NO_START = lib.KRING_D_NO_START
D_EXEC = lib.KRING_D_EXEC
D_DELETED = lib.KRING_D_DELETED
D_MEMFD = lib.KRING_D_MEMFD
D_PACKED = lib.KRING_D_PACKED
D_CWD_TRUNCATED = lib.KRING_D_CWD_TRUNCATED
D_PARENT_PATH_TRUNCATED = lib.KRING_D_PARENT_PATH_TRUNCATED
D_SID_TRUNCATED = lib.KRING_D_SID_TRUNCATED


def event_meta(capacity: int, linux: bool = False):
    """A producer page template for a kernel event ring of `capacity` bytes
    (`linux`: with the Linux-only types too)."""
    meta = new_meta(capacity)
    (lib.kring_events_schema_linux if linux else lib.kring_events_schema)(meta)
    return meta


#: (type id, name, record dtype) of each kernel event type both platforms write.
EVENT_TYPES = types_from_meta(event_meta(1 << 20))
_LINUX_TYPES = types_from_meta(event_meta(1 << 20, linux=True))
#: Record dtype by event type name (the shared types, as the structs declare them).
DTYPES: Dict[str, np.dtype] = {name: dt for _, name, dt in EVENT_TYPES}


def _with_args(dt: np.dtype, max_args: int) -> np.dtype:
    """A Linux process_start dtype with room for `max_args` bytes of command
    line instead of KRING_ARGS_BYTES: its ``cmdline`` field that long, and
    the record longer or shorter by the difference."""
    fields = dict(dt.fields or {})
    fields["cmdline"] = (np.dtype("S%d" % max_args), fields["cmdline"][1])
    names = list(dt.names or ())
    return np.dtype({"names": names, "formats": [fields[n][0] for n in names],
                     "offsets": [fields[n][1] for n in names],
                     "itemsize": dt.itemsize - lib.KRING_ARGS_BYTES + max_args})


def linux_event_types(max_args: int) -> List[Tuple[int, str, np.dtype]]:
    """The types of a Linux ring (the Linux schema: process_exit with a path
    tail, exec_failed), its process_start records carrying up to `max_args`
    bytes of command line. Linux process_start records are packed
    (D_PACKED): the record has room for the fixed part, path, cwd, the
    parent's path and the command line at their longest; read the strings
    with start_strings() and start_context()."""
    return [(tid, name, _with_args(dt, max_args) if name == "process_start" else dt)
            for tid, name, dt in _LINUX_TYPES]


_meta = event_meta(1 << 20, linux=True)
#: Shortest valid payload of each type id in a Linux ring.
LINUX_MIN_SIZES = {int(_meta.types[i].id): int(_meta.types[i].min_size) for i in range(_meta.ntypes)}
del _meta


def start_strings(rows) -> List[Tuple[bytes, bytes]]:
    """(path, cmdline) as bytes for each process_start row of `rows` (a
    record array, or one record), packed (Linux) or not (Windows)."""
    rows = np.atleast_1d(rows)
    if not len(rows):
        return []
    fields = rows.dtype.fields or {}
    off, coff = fields["path"][1], fields["cmdline"][1]
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
    out = []
    for r, detail, plen, clen in zip(raw, rows["detail"].tolist(), rows["path_len"].tolist(),
                                     rows["cmdline_len"].tolist()):
        at = off + plen + 1 if detail & D_PACKED else coff
        out.append((r[off:off + plen].tobytes(), r[at:at + clen].tobytes()))
    return out


def start_context(rows) -> List[Tuple[bytes, bytes]]:
    """(cwd, parent_path) as bytes for each process_start row of `rows`: in a
    packed (Linux) row they follow the command line's NUL, one after the
    other; b"" where there is none (unpacked rows, a length of 0)."""
    rows = np.atleast_1d(rows)
    if not len(rows):
        return []
    fields = rows.dtype.fields or {}
    if "cwd_len" not in fields:
        return [(b"", b"")] * len(rows)
    off = fields["path"][1]
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(len(rows), rows.dtype.itemsize)
    out = []
    for r, detail, plen, clen, wlen, pplen in zip(
            raw, rows["detail"].tolist(), rows["path_len"].tolist(), rows["cmdline_len"].tolist(),
            rows["cwd_len"].tolist(), rows["parent_path_len"].tolist()):
        if not detail & D_PACKED:
            out.append((b"", b""))
            continue
        at = off + plen + 1 + clen + 1
        out.append((r[at:at + wlen].tobytes(), r[at + wlen + 1:at + wlen + 1 + pplen].tobytes()))
    return out
