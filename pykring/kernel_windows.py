"""The Windows kernel event source: the kring.sys driver (docs/DRIVER.md).

:func:`open_driver` opens ``\\\\.\\KRing``, asks the driver for a ring of its
own (IOCTL_KRING_ATTACH), which the driver maps into this process (consumer
page writable, producer page and data read-only), and returns a
:class:`~pykring.Ring` that drains it with the package's C consumer and
sleeps on the ring's event, whose handle the driver makes in this process
(SYNCHRONIZE access only) and hands over in the reply: no name is looked
up, so no other process can get in the way. Closing the ring closes both
handles: the driver unmaps and frees the ring in IRP_MJ_CLEANUP.

The structures and codes of the interface come from include/kring/kring_ioctl.h
through the extension's cdef (``ffi``/``lib``), and the attach after the
IOCTL is one C call, kring_consumer_map_driver (csrc/kring_driver_map.c),
which the C client of the Wine test (tests/windows/kring_client.c) uses too;
the mapped ring itself cannot be tested off Windows.
"""
import ctypes
import sys
from typing import Iterable, Union

from . import errors
from ._lib import ffi, lib
from ._common import check_ring_size
from .events import event_bits

DEVICE_PATH = ffi.string(lib.KRING_USER_PATH)

RING_SIZE_MIN = lib.KRING_RING_SIZE_MIN
RING_SIZE_MAX = lib.KRING_RING_SIZE_MAX
EVENTS = {"process": lib.KRING_EVENTS_PROCESS, "image": lib.KRING_EVENTS_IMAGE}


def event_mask(events: Union[str, Iterable[str]]) -> int:
    """KRING_EVENTS_* bits for ("process", "image") or "process,image"."""
    return event_bits(events, EVENTS)


def _check_size(ring_size: int) -> int:
    return check_ring_size(ring_size, RING_SIZE_MIN, RING_SIZE_MAX)


def _address(cdata) -> int:
    """The address of an ffi buffer, for a ctypes c_void_p argument."""
    return int(ffi.cast("uintptr_t", cdata))


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
    k.CloseHandle.argtypes = [wintypes.HANDLE]
    k.CloseHandle.restype = wintypes.BOOL
    return k


def _os_error(what: str, err: int) -> errors.KringError:
    if err == 5:        # ERROR_ACCESS_DENIED
        return errors.KringPermissionError(
            "%s: access denied: the kring driver admits Administrators and SYSTEM only "
            "(run elevated)" % what)
    if err == 1306:     # ERROR_REVISION_MISMATCH: STATUS_REVISION_MISMATCH from the driver
        return errors.VersionMismatchError(
            "%s: the kring driver speaks another version of its interface than this pykring "
            "(%d): install matching versions" % (what, lib.KRING_IOCTL_VERSION))
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
    from ._lib import check
    from .ring import Ring
    from .schema import types_from_meta

    mask = event_mask(events)
    ring_size = _check_size(ring_size)
    k = _kernel32()

    GENERIC_READ, GENERIC_WRITE, OPEN_EXISTING = 0x80000000, 0x40000000, 3
    device = k.CreateFileW(DEVICE_PATH, GENERIC_READ | GENERIC_WRITE, 0, None, OPEN_EXISTING, 0, None)
    if device is None or device == ctypes.c_void_p(-1).value:
        raise _os_error("open %s" % DEVICE_PATH, ctypes.get_last_error())
    event = None
    try:
        request = ffi.new("struct kring_attach_in *", {
            "size": ffi.sizeof("struct kring_attach_in"), "flags": lib.KRING_ATTACH_MAP,
            "ring_size": ring_size, "events": mask, "version": lib.KRING_IOCTL_VERSION})
        reply = ffi.new("struct kring_attach_out *")
        returned = ctypes.c_uint32(0)
        if not k.DeviceIoControl(device, lib.IOCTL_KRING_ATTACH, _address(request), ffi.sizeof(request[0]),
                                 _address(reply), ffi.sizeof(reply[0]), ctypes.byref(returned), None):
            err = ctypes.get_last_error()
            if err == 87:   # ERROR_INVALID_PARAMETER: the request was checked above
                raise errors.VersionMismatchError(
                    "kring driver: attach refused as malformed: is the driver older than this pykring "
                    "(interface version %d)? Install matching versions" % lib.KRING_IOCTL_VERSION)
            raise _os_error("kring driver: attach (map a %d-byte ring into this process)" % ring_size, err)
        # The event handle is this process's from here on, whatever follows.
        event = reply.event_handle or None
        if (returned.value != ffi.sizeof(reply[0]) or reply.size != ffi.sizeof(reply[0])
                or reply.version != lib.KRING_IOCTL_VERSION or reply.method != lib.KRING_METHOD_MAP
                or reply.capacity != ring_size or not event):
            raise errors.VersionMismatchError("kring driver: unexpected attach reply (driver version?)")

        # A checked private copy of the producer page (meta), the consumer
        # over the mapping, and the event as its wake-up (PROTOCOL.md 9.3).
        c = ffi.new("struct kring_consumer *")
        meta = ffi.new("struct kring_producer_page *")
        check(lib.kring_consumer_map_driver(c, reply, ffi.cast("void *", event), meta),
              "kring driver: attach consumer", 0, c)
        event = None                        # the consumer's now: kring_consumer_close closes it
        try:
            types = types_from_meta(meta)
        except BaseException:
            lib.kring_consumer_close(c)
            raise
    except BaseException:
        if event:
            k.CloseHandle(event)
        k.CloseHandle(device)              # IRP_MJ_CLEANUP unmaps and frees the ring
        raise

    def close_device() -> None:
        k.CloseHandle(device)

    return Ring(c, types, DEVICE_PATH, on_close=close_device)
