"""pykring: kernel events and other high-rate record streams into numpy.

A lock-free single-producer ring in shared memory (the Linux BPF ring buffer
layout), drained by C straight into numpy structured arrays::

    import numpy as np, pykring

    with pykring.create("ticks", 1 << 20, np.dtype([("price", "<f8"), ("qty", "<u4")])) as ring:
        for batch in ring:              # blocks; yields arrays of records
            print(batch["seq"], batch["ts"], batch["price"])

and in another process::

    with pykring.Producer("ticks") as p:
        p.write((101.5, 3))
"""
from ._version import __version__
from ._common import ring_path
from .errors import (
    ConsumerGoneError,
    KringError,
    KringOSError,
    KringPermissionError,
    ObjectClosedError,
    ProducerGoneError,
    RecordTooBigError,
    RingBrokenError,
    RingBusyError,
    RingClosedError,
    RingCorruptError,
    RingExistsError,
    RingNotFoundError,
    RingTimeoutError,
    VersionMismatchError,
)
from .aio import wait_any
from .arrow import to_arrow, to_pandas
from .kernel import kernel
from .producer import Producer
from .recording import Recorder, RecordingError, open_recording
from .ring import Batch, Ring, Stats, attach, create
from .schema import DEFAULT_CAPACITY, HEADER_FIELDS, body_dtype, record_dtype

__all__ = [
    "__version__", "create", "attach", "kernel", "ring_path", "Producer", "Ring", "Batch", "Stats", "wait_any",
    "to_arrow", "to_pandas", "Recorder", "open_recording", "RecordingError",
    "record_dtype", "body_dtype", "HEADER_FIELDS", "DEFAULT_CAPACITY",
    "KringError", "KringOSError", "ConsumerGoneError", "ObjectClosedError", "KringPermissionError",
    "ProducerGoneError", "RecordTooBigError", "RingBrokenError", "RingBusyError",
    "RingClosedError", "RingCorruptError", "RingExistsError", "RingNotFoundError",
    "RingTimeoutError", "VersionMismatchError",
]
