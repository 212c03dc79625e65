"""The driver's bounded UTF-16 -> UTF-8 conversion (drv/kring_utf8.c),
built for the host and checked against a reference model in Python: known
answers, then arbitrary UTF-16 (lone surrogates and NULs included) and
arbitrary field sizes."""
import ctypes
import shutil
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .winharness import DRV, INCLUDE

REPLACEMENT = "\ufffd"


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    out = tmp_path_factory.mktemp("utf8") / "libkring_utf8.so"
    r = subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-shared", "-fPIC",
                        "-I" + str(INCLUDE),
                        str(DRV / "kring_utf8.c"), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    so = ctypes.CDLL(str(out))
    so.kring_utf16_to_utf8.restype = ctypes.c_uint32
    so.kring_utf16_to_utf8.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint16),
                                       ctypes.c_uint32, ctypes.POINTER(ctypes.c_int)]
    so.kring_utf16_basename.restype = ctypes.c_uint32
    so.kring_utf16_basename.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.POINTER(ctypes.c_uint16),
                                        ctypes.c_uint32]
    return so


def reference(units, cap):
    """What the field must hold: code points (pairs joined, lone surrogates
    and NUL replaced), whole characters only, at most cap - 1 bytes."""
    chars, i = [], 0
    while i < len(units):
        u = units[i]
        if 0xD800 <= u <= 0xDBFF and i + 1 < len(units) and 0xDC00 <= units[i + 1] <= 0xDFFF:
            chars.append(chr(0x10000 + ((u - 0xD800) << 10) + (units[i + 1] - 0xDC00)))
            i += 2
            continue
        chars.append(REPLACEMENT if (0xD800 <= u <= 0xDFFF or u == 0) else chr(u))
        i += 1
    out, truncated = b"", False
    for ch in chars:
        b = ch.encode("utf-8")
        if len(out) + len(b) > cap - 1:
            truncated = True
            break
        out += b
    return out, truncated


def convert(lib, units, cap):
    buf = ctypes.create_string_buffer(b"\xaa" * (cap + 8), cap + 8)
    arr = (ctypes.c_uint16 * max(1, len(units)))(*units)
    trunc = ctypes.c_int(-1)
    n = lib.kring_utf16_to_utf8(buf, cap, arr, len(units), ctypes.byref(trunc))
    raw = buf.raw
    assert raw[cap:] == b"\xaa" * 8, "wrote past the field"
    assert raw[n] == 0, "not NUL-terminated"
    return raw[:n], bool(trunc.value)


def units_of(s: str):
    b = s.encode("utf-16-le", "surrogatepass")
    return [int.from_bytes(b[i:i + 2], "little") for i in range(0, len(b), 2)]


@pytest.mark.parametrize("text, cap, want, truncated", [
    ("C:\\Windows\\notepad.exe", 64, b"C:\\Windows\\notepad.exe", False),
    ("\u00dc\u00ef", 5, "\u00dc\u00ef".encode(), False),
    ("\u00dc\u00ef", 4, "\u00dc".encode(), True),          # the 2-byte character does not fit whole
    ("a\u20ac", 5, "a\u20ac".encode(), False),
    ("a\u20ac", 4, b"a", True),
    ("\U0001F600", 5, "\U0001F600".encode(), False),
    ("\U0001F600", 4, b"", True),
    ("", 1, b"", False),
    ("abc", 1, b"", True),
])
def test_known_answers(lib, text, cap, want, truncated):
    assert convert(lib, units_of(text), cap) == (want, truncated)


def test_lone_surrogates_and_nul_are_replaced(lib):
    got, trunc = convert(lib, [0x78, 0xD800, 0x79, 0x0000, 0x7A, 0xDC00], 64)
    assert got == "x\ufffdy\ufffdz\ufffd".encode() and not trunc


@settings(max_examples=400, deadline=None)
@given(units=st.lists(st.one_of(st.integers(0, 0xFFFF), st.sampled_from([0, 0xD800, 0xDBFF, 0xDC00, 0xDFFF, 0x7F,
                                                                          0x80, 0x7FF, 0x800, 0xFFFD])),
                      max_size=80),
       cap=st.integers(1, 200))
def test_matches_reference(lib, units, cap):
    got, trunc = convert(lib, units, cap)
    assert (got, trunc) == reference(units, cap)
    got.decode("utf-8")                         # always valid UTF-8
    assert b"\0" not in got


@pytest.mark.parametrize("path, want", [
    ("\\Device\\HarddiskVolume3\\Windows\\System32\\notepad.exe", b"notepad.exe"),
    ("C:/tools/a.exe", b"a.exe"),
    ("plain.exe", b"plain.exe"),
    ("\\dir\\", b""),
    ("\\x\\averyveryverylongname.exe", b"averyveryverylo"),   # 15 bytes + NUL in a comm field
])
def test_basename(lib, path, want):
    buf = ctypes.create_string_buffer(16)
    units = units_of(path)
    n = lib.kring_utf16_basename(buf, 16, (ctypes.c_uint16 * max(1, len(units)))(*units), len(units))
    assert buf.raw[:n] == want and buf.raw[n] == 0
