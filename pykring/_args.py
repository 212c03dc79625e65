"""Values the commands take on their command lines and in URLs: sizes
("16M"), durations in seconds, the wake interval ("5ms"), regular
expressions. Each parser raises argparse.ArgumentTypeError saying what a
valid value looks like; watch, replay, collect, demo and the sink URL options
all use these, and none of them imports another command for it."""
import argparse
import re

_UNITS = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes from "16M", "64KiB", "4096"; argparse.ArgumentTypeError saying
    what a valid size looks like otherwise."""
    t = text.strip().upper().rstrip("B").rstrip("I")
    try:
        if t and t[-1] in _UNITS:
            n = float(t[:-1]) * _UNITS[t[-1]]
        else:
            n = float(t)
    except ValueError:
        n = -1.0
    if n < 0 or n != int(n):
        raise argparse.ArgumentTypeError(
            "invalid size %r: a whole number of bytes, optionally with K, M or G (e.g. 4096, 64K, 16M)" % text)
    return int(n)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return -1.0


def parse_seconds(text: str) -> float:
    """A duration in seconds, >= 0 and finite (watch --duration)."""
    v = _number(text)
    if not v >= 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("invalid duration %r: a number of seconds >= 0 (e.g. 10, 0.5)" % text)
    return v


def parse_positive_seconds(text: str) -> float:
    """A number of seconds > 0 and finite (timeouts, flush and report intervals)."""
    v = _number(text)
    if not v > 0 or v == float("inf"):
        raise argparse.ArgumentTypeError("invalid number of seconds %r: a number > 0" % text)
    return v


def parse_wake_interval(text: str) -> float:
    """Seconds from 0 to 10, plain or with s / ms ("0.005", "5ms", "0")."""
    t = text.strip().lower()
    scale = 1e-3 if t.endswith("ms") else 1.0
    t = t[:-2] if t.endswith("ms") else t[:-1] if t.endswith("s") else t
    v = _number(t) * scale
    if not 0 <= v <= 10:
        raise argparse.ArgumentTypeError("invalid wake interval %r: seconds from 0 to 10 (e.g. 0.005, 5ms, 0)" % text)
    return v


def parse_regex(text: str) -> str:
    """A regular expression that compiles; returned as given."""
    try:
        re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError("invalid regular expression %r: %s" % (text, exc))
    return text
