"""Kernel bytes (paths, arguments, comm) as str: exactly, for event dicts
(fsdecode: os.fsencode gives the bytes back), and escaped, for lines
(escape: one line, no control sequence, reversible)."""
from typing import Dict, List


def _text(b: bytes) -> str:
    return b.decode("utf-8", "backslashreplace")


def fsdecode(b: bytes) -> str:
    """Kernel bytes (a path, an argument) as str, the way os.fsdecode does
    it (UTF-8, other bytes as lone surrogates): os.fsencode() gives the exact
    bytes back, and a byte 0xff never reads like the text "\\xff"."""
    return b.decode("utf-8", "surrogateescape")


def argv_list(cmdline: bytes) -> List[str]:
    """A NUL-separated command line as a list of str (fsdecode'd)."""
    return [fsdecode(a) for a in cmdline.split(b"\0")] if cmdline else []


def _argv(cmdline: bytes) -> List[str]:
    return argv_list(cmdline)


def _escapes() -> Dict[int, str]:
    table = {c: "\\x%02x" % c for c in range(0x20)}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t", ord("\\"): "\\\\", 0x7F: "\\x7f"})
    # C1 controls (U+009B is a CSI on some terminals); line and paragraph
    # separators; the bidirectional controls that reorder what a line shows.
    for c in list(range(0x80, 0xA0)) + [0x200E, 0x200F, 0x2028, 0x2029] + list(range(0x202A, 0x202F)) + \
            list(range(0x2066, 0x206A)):
        table[c] = "\\u%04x" % c
    # Bytes that are not UTF-8 (fsdecode's lone surrogates U+DC80..U+DCFF).
    for b in range(0x80, 0x100):
        table[0xDC00 + b] = "\\x%02x" % b
    return table


_ESCAPES = _escapes()


def escape(t: str) -> str:
    """Text a process controls (fsdecode'd: a path, an argument, comm), for
    a line: every control byte, DEL, C1 control, line separator, bidi
    control and byte that is not UTF-8 as an escape (``\\n``, ``\\r``,
    ``\\t``, ``\\x1b``, ``\\xff``, ``\\u009b``), a backslash as ``\\\\``.
    The result is one line that moves no cursor and changes no colour, and
    says exactly which bytes the process gave: read as a Python string
    literal's escapes it gives them back (\\xNN above 0x7f: that byte)."""
    if t.isprintable() and "\\" not in t:
        return t
    return t.translate(_ESCAPES)
