"""pykring/kernel_windows.py takes the driver's interface from the extension
(include/kring/kring_ioctl.h through the cffi cdef), not from Python copies.
Off Windows, open_driver runs against a stand-in kernel32 up to the point
where it needs the driver's mapping (kring_consumer_map_driver, which the
Wine client exercises): the ATTACH request it sends, how it refuses an
unexpected reply, and what becomes of the event handle a reply carries."""
import ctypes
import sys
import types

import pytest

from pykring import errors, kernel_windows as wk
from pykring._lib import ffi, lib

DEVICE = 0x100      # the stand-in device handle
EVENT = 0x2a4      # the event handle the stand-in driver makes in this process
REQUEST = {"device": DEVICE, "code": lib.IOCTL_KRING_ATTACH, "flags": lib.KRING_ATTACH_MAP,
           "ring_size": 1 << 16, "events": lib.KRING_EVENTS_IMAGE, "version": lib.KRING_IOCTL_VERSION,
           # The header's request and reply: 24 and 200 + 4096 bytes (static asserts in kring_ioctl.h).
           "inlen": 24, "size": 24, "outlen": 200 + 4096}


def test_the_extension_declares_each_platforms_attach():
    assert hasattr(lib, "kring_consumer_map_driver") == (sys.platform == "win32")
    assert hasattr(lib, "kring_consumer_map_bpf") == sys.platform.startswith("linux")
    # The header's UTF-16 device path, exported by the builder.
    assert wk.DEVICE_PATH == "\\\\.\\KRing"


def fake_kernel32(monkeypatch, error=None, **reply):
    """kernel32 for open_driver on "win32": the driver answers ATTACH with
    a well-formed reply, changed by `reply` (field: value), or fails it with
    the Win32 `error`."""
    seen = {"requests": [], "closed": []}

    def CreateFileW(path, access, share, security, disposition, flags, template):
        seen["path"] = path
        return DEVICE

    def DeviceIoControl(device, code, inp, inlen, out, outlen, returned, overlapped):
        req = ffi.cast("struct kring_attach_in *", inp)
        seen["requests"].append({"device": device, "code": code, "inlen": inlen, "outlen": outlen,
                                 "size": req.size, "flags": req.flags, "ring_size": req.ring_size,
                                 "events": req.events, "version": req.version})
        if error is not None:
            monkeypatch.setattr(ctypes, "get_last_error", lambda: error, raising=False)
            return False
        rep = ffi.cast("struct kring_attach_out *", out)
        rep.size = outlen
        rep.version = lib.KRING_IOCTL_VERSION
        rep.method = lib.KRING_METHOD_MAP
        rep.capacity = req.ring_size
        rep.event_handle = EVENT
        for field, value in reply.items():
            setattr(rep, field, value)
        returned._obj.value = outlen
        return True

    def CloseHandle(handle):
        seen["closed"].append(handle)
        return True

    k = types.SimpleNamespace(CreateFileW=CreateFileW, DeviceIoControl=DeviceIoControl, CloseHandle=CloseHandle)
    monkeypatch.setattr(ctypes, "WinDLL", lambda name, use_last_error=False: k, raising=False)
    monkeypatch.setattr(sys, "platform", "win32")
    return seen


@pytest.mark.parametrize("reply", [
    {"version": lib.KRING_IOCTL_VERSION + 1}, {"method": lib.KRING_METHOD_COPY}, {"capacity": 1 << 17},
    {"size": 200},
], ids=["version", "method", "capacity", "size"])
def test_open_driver_sends_the_attach_request_and_refuses_an_unexpected_reply(monkeypatch, reply):
    """The driver made the event handle in this process before it replied:
    a reply refused still hands it over, and it is closed with the device."""
    seen = fake_kernel32(monkeypatch, **reply)
    with pytest.raises(errors.VersionMismatchError):
        wk.open_driver(events="image", ring_size=1 << 16)
    assert seen["path"] == wk.DEVICE_PATH
    assert seen["requests"] == [REQUEST]
    assert seen["closed"] == [EVENT, DEVICE]


def test_open_driver_refuses_a_reply_without_an_event_handle(monkeypatch):
    seen = fake_kernel32(monkeypatch, event_handle=0)
    with pytest.raises(errors.VersionMismatchError):
        wk.open_driver(events="image", ring_size=1 << 16)
    assert seen["closed"] == [DEVICE]


@pytest.mark.parametrize("error", [1306, 87], ids=["revision_mismatch", "older_driver"])
def test_open_driver_names_a_driver_of_another_interface_version(monkeypatch, error):
    """A driver of another interface version refuses the request itself
    (newer: STATUS_REVISION_MISMATCH; version 1: the version field was its
    reserved 0, STATUS_INVALID_PARAMETER); the error says so."""
    seen = fake_kernel32(monkeypatch, error=error)
    with pytest.raises(errors.VersionMismatchError, match="matching versions"):
        wk.open_driver(events="image", ring_size=1 << 16)
    assert seen["requests"] == [REQUEST]
    assert seen["closed"] == [DEVICE]


def test_event_mask_and_size_checks():
    assert wk.event_mask(("process", "image")) == 3
    assert wk.event_mask("image") == 2
    assert wk.event_mask("process, image") == 3
    for bad in ((), "network", ("process", "nope")):
        with pytest.raises(ValueError):
            wk.event_mask(bad)
    assert wk._check_size(1 << 16) == 1 << 16
    for bad in (1 << 15, (1 << 16) + 8, 1 << 27):
        with pytest.raises(ValueError):
            wk._check_size(bad)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the refusal off Windows")
def test_open_driver_needs_windows():
    with pytest.raises(errors.KringError):
        wk.open_driver()
