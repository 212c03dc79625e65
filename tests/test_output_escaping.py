"""What a process controls (path, argv, comm) cannot inject into watch's
output: text lines escape every control byte, DEL, C1 control, line
separator, bidi control and non-UTF-8 byte, visibly and reversibly, so one
event is one line and nothing reaches a terminal as a control sequence
(CWE-150, CWE-117); JSON stays ASCII JSON whose strings give the exact bytes
back with os.fsencode. Through the live watch, each recording format and
replay. The oracle `unescape` below is written from the documented escapes,
not from the code that makes them.
"""
import json
import os
import re
import subprocess
import sys
import time

import pytest
from hypothesis import given, settings, strategies as st

from pykring.events import escape, fsdecode, parse_iso_time, text_line

IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
needs_root = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FORMATS = (".arrows", ".parquet", ".jsonl")

_ESC = re.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4})")


def unescape(text: str) -> bytes:
    """The bytes an escaped field stands for (strings.escape's documented forms)."""
    out, at = bytearray(), 0
    for m in _ESC.finditer(text):
        out += text[at:m.start()].encode("utf-8")
        e = m.group(1)
        if e in ("\\", "n", "r", "t"):
            out += {"\\": b"\\", "n": b"\n", "r": b"\r", "t": b"\t"}[e]
        elif e[0] == "x":
            out.append(int(e[1:], 16))
        else:
            out += chr(int(e[1:], 16)).encode("utf-8")
        at = m.end()
    out += text[at:].encode("utf-8")
    return bytes(out)


def _unsafe(text: str):
    """Characters of `text` that a terminal or a log reader may act on."""
    return [c for c in text if ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 or c in "\u2028\u2029\u200e\u200f"
            or 0x202A <= ord(c) <= 0x202E or 0x2066 <= ord(c) <= 0x2069 or 0xD800 <= ord(c) < 0xE000]


HOSTILE = [b"X\x1b[2J\x1b[31mFAKE\nline2\r", b"ev\x1b[31mil", bytes(range(1, 0x20)) + b"\x7f", b"\n", b"\r",
           b"a\\nb", b"\\x1b", b"q'\"`$", b"\xff\xfe", b"\xc2\x9b31m", "\u202egnp.exe".encode(), b"ok/path"]


@pytest.mark.parametrize("raw", HOSTILE)
def test_escape_is_one_safe_line_that_gives_the_bytes_back(raw):
    shown = escape(fsdecode(raw))
    assert not _unsafe(shown), (raw, shown)
    assert unescape(shown) == raw


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=64).filter(lambda b: b"\0" not in b))
def test_escape_any_bytes(raw):
    shown = escape(fsdecode(raw))
    assert not _unsafe(shown) and unescape(shown) == raw


def _event(path: bytes, argv, comm=b"x"):
    return {"type": "process_start", "ts": 0, "pid": 1, "ppid": 0, "path": fsdecode(path), "detail": 0,
            "argv": [fsdecode(a) for a in argv], "cmdline": b"\0".join(argv), "comm": fsdecode(comm),
            "uid": 0, "euid": 0, "exec": True}


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b and b" " not in b),
       st.lists(st.binary(max_size=20).filter(lambda b: b"\0" not in b), min_size=1, max_size=4))
def test_a_text_line_is_one_line_without_controls(path, argv):
    line = text_line(_event(path, argv), "exec")
    assert not _unsafe(line), line
    # TIME(15)  EVENT(5)  PID(7)  PPID(7)  PATH  COMMAND LINE
    assert unescape(line[42:].split(" ")[0]) == path, line


def test_a_text_line_without_a_path_escapes_comm():
    e = _event(b"/x", [b"x"], comm=b"\x1b[31m")
    e["path"] = None
    assert "[\\x1b[31m]" in text_line(e, "exec")


# ---- the live watch, recordings, replay -----------------------------------------

WHY = ("/bin/sh -c true \"$(printf 'X\\033[2J\\033[31mFAKE\\nline2\\r')\"; "
       "bash -c 'exec -a \"$(printf \"ev\\033[31mil\")\" /bin/sh -c true'; "
       "\"$0\" \"$(printf 'a\\001\\177\\302\\233\\342\\200\\256\\377b')\"")


def _started(err_path, p):
    deadline = time.monotonic() + 180
    while b"Ctrl-C to stop" not in open(err_path, "rb").read():
        assert p.poll() is None, open(err_path).read()
        assert time.monotonic() < deadline
        time.sleep(0.05)


@needs_root
def test_hostile_commands_through_text_json_recordings_and_replay(tmp_path):
    """The two commands of the report and a third with every kind of hostile
    byte, watched (text, and JSON with a recording in each format) as a
    tree: text has no control byte but the line ends and one line per event;
    JSON is ASCII and os.fsencode of its strings is the exact argv; each
    recording replays to the same text lines."""
    probe = str(tmp_path / "probe")
    os.symlink("/bin/true", probe)
    parent = subprocess.Popen(["sh", "-c", "read go; " + WHY, probe], stdin=subprocess.PIPE)
    watches = []
    try:
        for name, args in [("text", []), ("json", ["--json"])] + \
                [("rec" + f, ["--output", str(tmp_path / ("rec" + f))]) for f in FORMATS]:
            out, err = str(tmp_path / (name + ".out")), str(tmp_path / (name + ".err"))
            with open(out, "wb") as o, open(err, "wb") as e:
                p = subprocess.Popen([sys.executable, "-m", "pykring", "watch", "--events", "process",
                                      "--tree", str(parent.pid), "--duration", "20", *args],
                                     stdout=o, stderr=e, cwd=ROOT)
            watches.append((name, p, out, err))
        for _, p, _, err in watches:
            _started(err, p)
        parent.stdin.write(b"go\n")
        parent.stdin.close()
        assert parent.wait(timeout=60) == 0
        for _, p, _, err in watches:
            assert p.wait(timeout=120) == 0, open(err).read()
    finally:
        for q in [parent] + [w[1] for w in watches]:
            if q.poll() is None:
                q.kill()
                q.wait()
    outs = {name: open(out, "rb").read() for name, _, out, _ in watches}
    text = outs["text"]
    assert all(b >= 0x20 or b == 0x0A for b in text), text
    lines = text.decode("utf-8").splitlines()[1:]
    events = [json.loads(x) for x in outs["json"].decode("ascii").splitlines()]
    assert len(lines) == len(events) and all(re.match(r"\d\d:\d\d:\d\d\.\d{6}  \w+ ", x) for x in lines), text
    argvs = [[os.fsencode(a) for a in e["argv"]] for e in events if e["type"] == "process_start" and e["exec"]]
    assert [b"/bin/sh", b"-c", b"true", b"X\x1b[2J\x1b[31mFAKE\nline2\r"] in argvs, argvs
    assert [b"ev\x1b[31mil", b"-c", b"true"] in argvs, argvs
    assert [probe.encode(), b"a\x01\x7f\xc2\x9b\xe2\x80\xae\xffb"] in argvs, argvs
    import base64

    odd = [e for e in events if e["type"] == "process_start" and e["exec"] and e["argv"][0] == probe]
    assert len(odd) == 1 and [base64.b64decode(a) for a in odd[0]["argv_b64"]] == \
        [probe.encode(), b"a\x01\x7f\xc2\x9b\xe2\x80\xae\xffb"], odd
    assert all("argv_b64" not in e for e in events if all(os.fsencode(a).isascii() for a in e.get("argv", []))), events
    for e in events:            # ISO-8601 UTC beside ts, the same instant
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", e["time"]), e
        assert parse_iso_time(e["time"]) == e["ts"], e
    shown = [x for x in lines if " exec " in x and probe in x]
    assert len(shown) == 1 and "a\\x01\\x7f\\u009b\\u202e\\xffb" in shown[0], shown
    for f in FORMATS:
        r = subprocess.run([sys.executable, "-m", "pykring", "replay", str(tmp_path / ("rec" + f))],
                           capture_output=True, cwd=ROOT, timeout=300)
        assert r.returncode == 0, r.stderr.decode()
        assert all(b >= 0x20 or b == 0x0A for b in r.stdout), (f, r.stdout)
        assert r.stdout == outs["rec" + f], f      # as that watch printed it live
