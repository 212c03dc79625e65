"""The kernel event record types (process start, process exit, image load),
and the events they make: plain dicts, text lines and JSON lines.

Defined once in include/kring/kring_events.h and shared by the Windows driver, the
eBPF programs and this package; the dtypes here are built from the schema
the C code describes, so they cannot drift from the structs.

The package's face: every name is defined in a module beneath it,
:mod:`~pykring.events.records` (types, ids, `detail` bits, dtypes),
:mod:`~pykring.events.strings` (kernel bytes as str),
:mod:`~pykring.events.context` (boot id, exec ids, cgroup paths, user names),
:mod:`~pykring.events.containers` (container, pod and unit of a cgroup path),
:mod:`~pykring.events.hashes` (sha256 of executed files, in a worker thread),
:mod:`~pykring.events.dicts` (records as dicts, their kinds),
:mod:`~pykring.events.text_lines` and :mod:`~pykring.events.json_lines`
(an event as a text line, as a JSON line).
"""
from .._lib import lib
from .containers import CONTAINER_KEYS, container_context
from .context import _FILETIME_1970, _cgroups, boot_id, cgroup2_mounts, cgroup_path, exec_id, exec_id_of, exec_id_windows, user_name
from .dicts import KINDS, _path_keys, _start_extra, _start_extra_windows, _tty, _unset, event_dicts, event_kind
from .hashes import ExecHasher
from .json_lines import _EXIT_KEYS, _START_KEYS, _START_KEYS_WINDOWS, iso_time, json_line, parse_iso_time
from .records import (
    D_CMDLINE_TRUNCATED,
    D_CWD_TRUNCATED,
    D_DELETED,
    D_EXEC,
    D_KERNEL_IMAGE,
    D_MAIN_IMAGE,
    D_MEMFD,
    D_NO_PATH,
    D_NO_START,
    D_PACKED,
    D_PARENT_PATH_TRUNCATED,
    D_PATH_TRUNCATED,
    D_SID_TRUNCATED,
    DTYPES,
    EVENT_KINDS,
    EVENT_TYPES,
    EXEC_FAILED,
    IMAGE_LOAD,
    LINUX_MIN_SIZES,
    PROCESS_EXIT,
    PROCESS_START,
    _LINUX_TYPES,
    Events,
    _with_args,
    event_bits,
    event_meta,
    linux_event_types,
    parse_events,
    start_context,
    start_strings,
)
from .strings import _argv, _text, argv_list, escape, fsdecode
from .text_lines import TEXT_HEADER, _clock, _signame, _time, reset_clock, text_line
