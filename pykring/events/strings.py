"""Kernel bytes (paths, arguments, comm) as str: exactly, for event dicts
(fsdecode: os.fsencode gives the bytes back), and printable, for lines."""
from typing import List


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


def _shown(t: str) -> str:
    """str from fsdecode, printable on any stream: undecodable bytes as \\xNN."""
    return t.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
