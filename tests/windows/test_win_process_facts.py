"""The process facts of a Windows process_start record: the start times
(exec_id and parent_exec_id inputs), the token's user SID as text, its
elevation type and integrity level.

Two parts:

- drv/kring_sid.c (a SID's bytes as text, a label's last RID) built for the
  host and checked against a reference model: known answers, arbitrary SIDs,
  every field size, short and malformed input;
- under Wine, the driver's own fill routine (KRingFillProcessFacts, which
  the process callback calls with the new process) run through the test
  build's inject IOCTL on the calling process, compared field by field with
  what user mode reads about that process (GetProcessTimes,
  GetTokenInformation, ConvertSidToStringSidA: Wine's implementation, not
  ours). Wine never calls the callback itself: whether a process in creation
  already has the token and times read here is for Windows to show.
"""
import json
import re
import shutil
import struct
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from .winharness import DRV, HERE, INCLUDE, mingw_build, wine_session


@pytest.fixture(scope="module")
def lib(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    out = tmp_path_factory.mktemp("sid") / "libkring_sid.so"
    r = subprocess.run(["gcc", "-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-shared", "-fPIC",
                        "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-I" + str(INCLUDE),
                        str(DRV / "kring_sid.c"), "-o", str(out)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    # The sanitizer runtime must come first: the calls run in a child that preloads it.
    return out


def _sid(revision, authority, subs):
    return bytes([revision, len(subs)]) + authority.to_bytes(6, "big") + b"".join(struct.pack("<I", s) for s in subs)


def reference(sid: bytes, cap: int):
    """What user_sid must hold for these bytes in a field of cap bytes."""
    if len(sid) < 8 or sid[0] != 1 or len(sid) < 8 + 4 * sid[1]:
        return b"", False
    authority = int.from_bytes(sid[2:8], "big")
    text = "S-1-" + ("%d" % authority if authority <= 0xFFFFFFFF else "0x%012x" % authority)
    for i in range(sid[1]):
        text += "-%d" % struct.unpack_from("<I", sid, 8 + 4 * i)[0]
    data = text.encode()
    return data[:cap - 1], len(data) > cap - 1


def last_rid(sid: bytes) -> int:
    if len(sid) < 8 or sid[0] != 1 or len(sid) < 8 + 4 * sid[1] or sid[1] == 0:
        return 0
    return struct.unpack_from("<I", sid, 8 + 4 * (sid[1] - 1))[0]


CHECKER = r"""
import ctypes, json, sys
so = ctypes.CDLL(sys.argv[1])
so.kring_sid_to_text.restype = ctypes.c_uint32
so.kring_sid_to_text.argtypes = [ctypes.c_char_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint32,
                                 ctypes.POINTER(ctypes.c_int), ctypes.POINTER(ctypes.c_uint32)]
out = []
for sid_hex, cap in json.load(sys.stdin):
    sid = bytes.fromhex(sid_hex)
    src = ctypes.create_string_buffer(sid, len(sid) or 1)     # exactly the bytes given (ASan sees overreads)
    dst = ctypes.create_string_buffer(b"\xaa" * cap, cap)
    cut, rid = ctypes.c_int(7), ctypes.c_uint32(7)
    n = so.kring_sid_to_text(dst, cap, src, len(sid), ctypes.byref(cut), ctypes.byref(rid))
    out.append([n, dst.raw[:n + 1].hex(), cut.value, rid.value])
print(json.dumps(out))
"""


def run_cases(lib, cases):
    """kring_sid_to_text on each (sid bytes, cap), in
    a child with the ASan runtime preloaded."""
    asan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True, text=True).stdout.strip()
    r = subprocess.run([sys.executable, "-c", CHECKER, str(lib)], input=json.dumps([[s.hex(), c] for s, c in cases]),
                       capture_output=True, text=True, timeout=300,
                       env={"LD_PRELOAD": asan, "ASAN_OPTIONS": "detect_leaks=0", "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


def check(lib, cases):
    for (sid, cap), (n, raw, cut, rid) in zip(cases, run_cases(lib, cases)):
        text, truncated = reference(sid, cap)
        assert bytes.fromhex(raw) == text + b"\0" and n == len(text), (sid.hex(), cap)
        assert cut == int(truncated), (sid.hex(), cap)
        assert rid == last_rid(sid), sid.hex()


KNOWN = [
    (_sid(1, 5, [18]), "S-1-5-18"),
    (_sid(1, 5, [32, 544]), "S-1-5-32-544"),
    (_sid(1, 5, [21, 0, 0, 0, 1000]), "S-1-5-21-0-0-0-1000"),
    (_sid(1, 5, [21, 4294967295, 1, 2, 500]), "S-1-5-21-4294967295-1-2-500"),
    (_sid(1, 16, [0x3000]), "S-1-16-12288"),                  # Mandatory Label\High
    (_sid(1, 0x010000000000, [1]), "S-1-0x010000000000-1"),   # an authority beyond 32 bits
    (_sid(1, 1, []), "S-1-1"),
]


def test_sid_known_answers(lib):
    got = run_cases(lib, [(sid, 96) for sid, _ in KNOWN])
    for (sid, text), (n, raw, cut, rid) in zip(KNOWN, got):
        assert bytes.fromhex(raw) == text.encode() + b"\0" and cut == 0, text
    assert got[4][3] == 0x3000                                # the integrity RID of the label


def test_sid_malformed_or_short_gives_nothing(lib):
    good = _sid(1, 5, [21, 1, 2, 3, 1000])
    cases = [(b"", 96), (good[:7], 96), (good[:-1], 96), (bytes([2]) + good[1:], 96), (bytes([1, 15]) + good[2:], 96)]
    for n, raw, cut, rid in run_cases(lib, cases):
        assert (n, raw, cut, rid) == (0, "00", 0, 0)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2**48 - 1), st.lists(st.integers(0, 2**32 - 1), max_size=15),
                          st.integers(1, 120)), min_size=1, max_size=40))
def test_sid_text_matches_the_model(lib, items):
    """Any SID (up to 15 sub-authorities, any authority) in any field size:
    the model's text, cut at the field's end with the flag, never a byte
    read or written outside (ASan)."""
    check(lib, [(_sid(1, a, subs), cap) for a, subs, cap in items])


@pytest.fixture(scope="module")
def wine():
    """A Wine session of this module's own: the driver log of the shared one
    is read by test_win_wine_driver.py, whose counts must not see this load."""
    yield from wine_session("kring-wine-facts-")


@pytest.fixture(scope="module")
def facts(wine, built_drivers, win_build_dir):
    probe = mingw_build(win_build_dir / "kring_facts_probe.exe", [HERE / "kring_facts_probe.c"],
                        libs=["-ladvapi32"])
    wine.install_driver("kringfacts", built_drivers["test"])
    states = [wine.start_driver("kringfacts")]
    r = wine.run([probe], timeout=300)
    states.append(wine.stop_driver("kringfacts"))
    return {"out": r.stdout + r.stderr, "states": states}


def test_process_facts_match_user_modes_view(facts):
    """The record's user_sid, elevation, integrity, start_time and
    parent_start_time are what advapi32 and GetProcessTimes say about the
    same process (ns since the Unix epoch of its creation; with the pid the
    process's key); without a process the fields stay 0 / empty."""
    out = facts["out"]
    assert facts["states"] == ["RUNNING", "STOPPED"], out
    assert re.search(r"^RESULT 0$", out, re.M), out
    for name in ("attach", "record_with_facts", "user_sid", "elevation", "integrity", "start_time",
                 "parent_start_time", "creator_tid", "no_facts_without_process"):
        assert "ok %s\n" % name in out, out
