"""The Windows kernel event source: the kring.sys driver (docs/DRIVER.md).

:func:`open_driver` opens ``\\\\.\\KRing``, asks the driver for a ring of its
own (IOCTL_KRING_ATTACH), which the driver maps into this process (consumer
page writable, producer page and data read-only), and returns a
:class:`~pykring.Ring` that drains it with the package's C consumer and
sleeps on the driver's named event. Closing the ring closes the handle: the
driver unmaps and frees the ring in IRP_MJ_CLEANUP.

This module does step for step what the C client of the Wine test does
(tests/windows/kring_client.c, ``attach()`` with KRING_ATTACH_MAP), which is
where the sequence is tested; it cannot run off Windows. The structures and
codes below mirror include/kring/kring_ioctl.h, and tests/windows/test_win_python_abi.py
checks them against the C header.
"""
import ctypes
import sys
from ctypes import c_int32, c_uint8, c_uint16, c_uint32, c_uint64
from typing import Iterable, Union

from . import errors
from .kernel import check_ring_size, event_bits

DEVICE_PATH = "\\\\.\\KRing"

KRING_DEVICE_TYPE = 0x8A52
_ACCESS_READ, _ACCESS_RW = 1, 3


def _ctl(function: int, access: int) -> int:
    """CTL_CODE(KRING_DEVICE_TYPE, function, METHOD_BUFFERED, access)."""
    return (KRING_DEVICE_TYPE << 16) | (access << 14) | (function << 2)


IOCTL_KRING_ATTACH = _ctl(0x800, _ACCESS_RW)
IOCTL_KRING_DETACH = _ctl(0x801, _ACCESS_RW)
IOCTL_KRING_STATS = _ctl(0x802, _ACCESS_READ)

KRING_ATTACH_MAP = 0x1
KRING_METHOD_MAP = 1
KRING_IOCTL_VERSION = 1
RING_SIZE_MIN = 0x10000
RING_SIZE_MAX = 0x4000000
PAGE_SIZE = 4096
DATA_OFFSET = 8192
EVENTS = {"process": 0x1, "image": 0x2}


class AttachIn(ctypes.Structure):
    """struct kring_attach_in"""
    _fields_ = [("size", c_uint32), ("flags", c_uint32), ("ring_size", c_uint64),
                ("events", c_uint32), ("reserved", c_uint32)]


class AttachOut(ctypes.Structure):
    """struct kring_attach_out (meta: the producer page as created)."""
    _fields_ = [("size", c_uint32), ("version", c_uint32), ("method", c_uint32), ("map_status", c_int32),
                ("consumer_page", c_uint64), ("producer_page", c_uint64), ("data", c_uint64),
                ("consumer_size", c_uint64), ("producer_size", c_uint64), ("capacity", c_uint64),
                ("events", c_uint32), ("ring_id", c_uint32), ("event_name", c_uint16 * 64),
                ("meta", c_uint8 * PAGE_SIZE)]


class StatsOut(ctypes.Structure):
    """struct kring_stats_out"""
    _fields_ = [("size", c_uint32), ("method", c_uint32), ("capacity", c_uint64), ("producer_pos", c_uint64),
                ("consumer_pos", c_uint64), ("written", c_uint64), ("dropped", c_uint64), ("wakeups", c_uint64),
                ("ring_flags", c_uint32), ("events", c_uint32), ("consumers", c_uint32),
                ("process_notify", c_uint32), ("image_notify", c_uint32), ("test_build", c_uint32),
                ("process_events", c_uint64), ("image_events", c_uint64), ("lost_no_memory", c_uint64)]


def event_mask(events: Union[str, Iterable[str]]) -> int:
    """KRING_EVENTS_* bits for ("process", "image") or "process,image"."""
    return event_bits(events, EVENTS)


def _check_size(ring_size: int) -> int:
    return check_ring_size(ring_size, RING_SIZE_MIN, RING_SIZE_MAX)


def _kernel32():
    from ctypes import wintypes

    k = ctypes.WinDLL("kernel32", use_last_error=True)
    k.CreateFileW.argtypes = [wintypes.LPCWSTR, wintypes.DWORD, wintypes.DWORD, ctypes.c_void_p,
                              wintypes.DWORD, wintypes.DWORD, wintypes.HANDLE]
    k.CreateFileW.restype = wintypes.HANDLE
    k.DeviceIoControl.argtypes = [wintypes.HANDLE, wintypes.DWORD, ctypes.c_void_p, wintypes.DWORD,
                                  ctypes.c_void_p, wintypes.DWORD, ctypes.POINTER(wintypes.DWORD),
                                  ctypes.c_void_p]
    k.DeviceIoControl.restype = wintypes.BOOL
    k.OpenEventW.argtypes = [wintypes.DWORD, wintypes.BOOL, wintypes.LPCWSTR]
    k.OpenEventW.restype = wintypes.HANDLE
    k.CloseHandle.argtypes = [wintypes.HANDLE]
    k.CloseHandle.restype = wintypes.BOOL
    return k


def _os_error(what: str, err: int) -> errors.KringError:
    if err == 5:        # ERROR_ACCESS_DENIED
        return errors.KringPermissionError(
            "%s: access denied: the kring driver admits Administrators and SYSTEM only "
            "(run elevated)" % what)
    if err == 2:        # ERROR_FILE_NOT_FOUND
        return errors.RingNotFoundError(
            "%s: %s does not exist: install and start the driver (sc start kring, docs/DRIVER.md)"
            % (what, DEVICE_PATH))
    return errors.KringError("%s: %s" % (what, ctypes.FormatError(err).strip()))


def open_driver(events=("process", "image"), ring_size: int = 16 << 20):
    """Attach to kring.sys and return a :class:`~pykring.Ring` of its records
    (``process_start``, ``process_exit``, ``image_load``; docs/DRIVER.md).

    ``events``: ``"process"`` and/or ``"image"``; ``ring_size``: data bytes
    of this consumer's ring, a power of two from 64 KiB to 64 MiB.
    Needs an elevated process (Administrators or SYSTEM).
    """
    if sys.platform != "win32":
        raise errors.KringError("pykring.kernel_windows.open_driver() needs Windows")
    from ._lib import check, ffi, lib
    from .ring import Ring
    from .schema import types_from_meta

    mask = event_mask(events)
    ring_size = _check_size(ring_size)
    k = _kernel32()

    GENERIC_READ, GENERIC_WRITE, OPEN_EXISTING, SYNCHRONIZE = 0x80000000, 0x40000000, 3, 0x00100000
    device = k.CreateFileW(DEVICE_PATH, GENERIC_READ | GENERIC_WRITE, 0, None, OPEN_EXISTING, 0, None)
    if device is None or device == ctypes.c_void_p(-1).value:
        raise _os_error("open %s" % DEVICE_PATH, ctypes.get_last_error())
    event = None
    try:
        request = AttachIn(size=ctypes.sizeof(AttachIn), flags=KRING_ATTACH_MAP, ring_size=ring_size,
                           events=mask, reserved=0)
        reply = AttachOut()
        returned = ctypes.c_uint32(0)
        if not k.DeviceIoControl(device, IOCTL_KRING_ATTACH, ctypes.byref(request), ctypes.sizeof(request),
                                 ctypes.byref(reply), ctypes.sizeof(reply), ctypes.byref(returned), None):
            raise _os_error("kring driver: attach (map a %d-byte ring into this process)" % ring_size,
                            ctypes.get_last_error())
        if (returned.value != ctypes.sizeof(reply) or reply.size != ctypes.sizeof(reply)
                or reply.version != KRING_IOCTL_VERSION or reply.method != KRING_METHOD_MAP
                or reply.capacity != ring_size or reply.event_name[63] != 0):
            raise errors.VersionMismatchError("kring driver: unexpected attach reply (driver version?)")
        name = "".join(chr(ch) for ch in reply.event_name).split("\0", 1)[0]
        event = k.OpenEventW(SYNCHRONIZE, False, name)
        if not event:
            raise _os_error("kring driver: open event %s" % name, ctypes.get_last_error())

        # Check a private copy of the producer page; use only its bounds.
        meta = ffi.new("struct kring_producer_page *")
        ffi.memmove(meta, ffi.cast("void *", reply.producer_page), PAGE_SIZE)
        rc = lib.kring_meta_check(meta, DATA_OFFSET + reply.capacity)
        if rc == lib.KRING_OK and meta.capacity != reply.capacity:
            rc = lib.KRING_E_CORRUPT
        check(rc, "kring driver: ring description")
        c = ffi.new("struct kring_consumer *")
        check(lib.kring_consumer_init(c, ffi.cast("struct kring_consumer_page *", reply.consumer_page),
                                      ffi.cast("struct kring_producer_page *", reply.producer_page),
                                      ffi.cast("uint8_t *", reply.data), meta.capacity, 0, 1),
              "kring driver: attach consumer", 0, c)
        types = types_from_meta(meta)
        for i in range(int(meta.ntypes)):
            t = meta.types[i]
            check(lib.kring_consumer_set_type(c, t.id, t.size, t.min_size), "kring driver: record type")
        # The driver's event wakes kring_wait (PROTOCOL.md 9.3); the consumer
        # closes it in kring_consumer_close.
        c.m.h_data_event = ffi.cast("void *", event)
        c.m.wait_kind = lib.KRING_WAIT_EVENT
        c.seq_started = 1                   # a new ring numbers its records from 0
        c.next_seq = 0
    except BaseException:
        if event:
            k.CloseHandle(event)
        k.CloseHandle(device)              # IRP_MJ_CLEANUP unmaps and frees the ring
        raise

    def close_device() -> None:
        k.CloseHandle(device)

    return Ring(c, types, DEVICE_PATH, on_close=close_device)
