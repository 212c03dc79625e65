"""The kernel event record types (process start, process exit, image load).

Defined once in include/kring/kring_events.h and shared by the Windows driver, the
eBPF programs and this package; the dtypes here are built from the schema
the C code describes, so they cannot drift from the structs.
"""
from typing import Dict

import numpy as np

from ._lib import lib
from .schema import new_meta, types_from_meta

PROCESS_START = lib.KRING_TYPE_PROCESS_START
PROCESS_EXIT = lib.KRING_TYPE_PROCESS_EXIT
IMAGE_LOAD = lib.KRING_TYPE_IMAGE_LOAD

#: `detail` bits
D_PATH_TRUNCATED = lib.KRING_D_PATH_TRUNCATED
D_CMDLINE_TRUNCATED = lib.KRING_D_CMDLINE_TRUNCATED
D_NO_PATH = lib.KRING_D_NO_PATH
D_KERNEL_IMAGE = lib.KRING_D_KERNEL_IMAGE
D_MAIN_IMAGE = lib.KRING_D_MAIN_IMAGE
D_NO_START = lib.KRING_D_NO_START
D_EXEC = lib.KRING_D_EXEC


def event_meta(capacity: int):
    """A producer page template for a kernel event ring of `capacity` bytes."""
    meta = new_meta(capacity)
    lib.kring_events_schema(meta)
    return meta


#: (type id, name, record dtype) of each kernel event type.
EVENT_TYPES = types_from_meta(event_meta(1 << 20))
#: Record dtype by event type name.
DTYPES: Dict[str, np.dtype] = {name: dt for _, name, dt in EVENT_TYPES}
