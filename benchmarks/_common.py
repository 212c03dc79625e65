"""What every benchmark shares: the report, statistics, the machine
description and the build of the C producer. Ring names come from
pykring._common (unique_ring_name, remove_ring), as in the tests."""
import datetime
import hashlib
import math
import os
import platform
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(ROOT, "csrc")
INCLUDE = os.path.join(ROOT, "include", "kring")
BUILD_DIR = os.path.join(HERE, ".build")

MiB = 1 << 20
EVENT_HEADER = 24     #: event header at the start of every payload (seq, ts, type, flags)


def log(msg: str) -> None:
    """Progress and diagnostics: stderr, so that ``--json`` keeps stdout clean."""
    print(msg, file=sys.stderr, flush=True)


# -- statistics --------------------------------------------------------------
def quantile(xs: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile (numpy's default), without numpy."""
    s = sorted(xs)
    if not s:
        return math.nan
    pos = (len(s) - 1) * q
    lo = int(math.floor(pos))
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


@dataclass
class Summary:
    median: float
    p25: float
    p75: float
    min: float
    max: float
    n: int

    @classmethod
    def of(cls, xs: Sequence[float]) -> "Summary":
        return cls(quantile(xs, 0.5), quantile(xs, 0.25), quantile(xs, 0.75),
                   min(xs) if xs else math.nan, max(xs) if xs else math.nan, len(xs))


# -- the report --------------------------------------------------------------
@dataclass
class Metric:
    key: str
    value: object                     #: a number, or a bool for checks
    unit: str = ""
    spread: Optional[Summary] = None  #: repeated measurements behind a median
    note: str = ""


@dataclass
class Report:
    """Numbers from one invocation, in the order they were measured."""

    metrics: Dict[str, Metric] = field(default_factory=dict)
    meta: Dict[str, object] = field(default_factory=dict)
    failures: List[str] = field(default_factory=list)

    def add(self, key: str, value: object, unit: str = "", note: str = "",
            samples: Optional[Sequence[float]] = None) -> None:
        """Add a number; with `samples`, the value is their median and the
        spread (min, max, quartiles) is kept beside it."""
        spread = None
        if samples is not None:
            spread = Summary.of(list(samples))
            value = spread.median
        self.metrics[key] = Metric(key, value, unit, spread, note)

    def fail(self, what: str) -> None:
        """A check failed (records lost, a process crashed): reported, and the
        command exits non-zero."""
        log("FAILED: " + what)
        self.failures.append(what)

    def as_json(self) -> Dict[str, object]:
        out: Dict[str, object] = {}
        for m in self.metrics.values():
            out[m.key] = _round(m.value)
            if m.spread is not None and m.spread.n > 1:
                out[m.key + "_min"] = _round(m.spread.min)
                out[m.key + "_max"] = _round(m.spread.max)
        out["failures"] = list(self.failures)
        out["meta"] = dict(self.meta)
        return out

    def table(self) -> str:
        rows: List[Tuple[str, ...]] = [("metric", "median", "unit", "IQR", "min .. max", "n", "note")]
        for m in self.metrics.values():
            s = m.spread
            rows.append((
                m.key, _fmt(m.value), m.unit,
                "%s .. %s" % (_fmt(s.p25), _fmt(s.p75)) if s and s.n > 1 else "",
                "%s .. %s" % (_fmt(s.min), _fmt(s.max)) if s and s.n > 1 else "",
                str(s.n) if s else "", m.note))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = []
        for j, r in enumerate(rows):
            cells = [c.rjust(w) if 0 < i < 6 else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths))]
            lines.append("  ".join(cells).rstrip())
            if j == 0:
                lines.append("  ".join("-" * w for w in widths))
        if self.failures:
            lines.append("")
            lines.extend("FAILED: " + f for f in self.failures)
        return "\n".join(lines)


def _round(v: object) -> object:
    if isinstance(v, float) and math.isfinite(v):
        return float("%.4g" % v) if abs(v) < 1e4 else round(v)
    return v


def _fmt(v: object) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        if abs(v) >= 1e6:
            return "%.1fM" % (v / 1e6)
        if abs(v) >= 1e4:
            return "%.0f" % v
        return "%.3g" % v
    return str(v)


# -- the machine -------------------------------------------------------------
def machine() -> Dict[str, object]:
    """What RESULTS.md records about the machine a run came from."""
    info: Dict[str, object] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            k, _, v = line.partition(":")
            if k.strip() == "Model name":
                info["cpu"] = v.strip()
            elif k.strip() in ("L2 cache", "L3 cache", "Hypervisor vendor"):
                info[k.strip().lower().replace(" ", "_")] = v.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        import numpy
        info["numpy"] = numpy.__version__
    except ImportError:
        pass
    try:
        import pykring
        info["pykring"] = pykring.__version__
    except ImportError:
        pass
    return info


# -- the C producer ----------------------------------------------------------
#: The project's own sources the benchmark producer links (no cffi, no Python):
#: the Linux library without the kernel event schema.
PRODUCER_SOURCES = ["kring_producer.c", "kring_consumer.c", "kring_wait.c", "kring_meta.c", "kring_linux.c",
                    "kring_guard.c", "kring_bpf_map.c"]
CFLAGS = ["-O2", "-std=c11", "-Wall", "-Wextra"]


def build_producer() -> str:
    """Compile benchmarks/producer.c with the project's csrc files into
    benchmarks/.build/ (once per content of the sources) and return its path."""
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if not cc:
        raise RuntimeError("the e2e benchmark needs a C compiler (cc): apt-get install gcc")
    srcs = [os.path.join(HERE, "producer.c")] + [os.path.join(CSRC, s) for s in PRODUCER_SOURCES]
    h = hashlib.sha256(" ".join([cc] + CFLAGS).encode())
    headers = [os.path.join(d, n) for d in (CSRC, INCLUDE) for n in sorted(os.listdir(d)) if n.endswith(".h")]
    for path in srcs + headers:
        with open(path, "rb") as f:
            h.update(path.encode() + b"\0" + f.read())
    exe = os.path.join(BUILD_DIR, "producer-%s" % h.hexdigest()[:16])
    if os.path.exists(exe):
        return exe
    os.makedirs(BUILD_DIR, exist_ok=True)
    tmp = "%s.tmp%d" % (exe, os.getpid())
    cmd = [cc] + CFLAGS + ["-Iinclude", "-I" + os.path.relpath(CSRC, ROOT)] + \
          [os.path.relpath(s, ROOT) for s in srcs] + ["-o", os.path.relpath(tmp, ROOT)]
    log("building the C producer: " + " ".join(cmd))
    res = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    if res.stderr:
        log(res.stderr.rstrip())
    if res.returncode != 0:
        raise RuntimeError("building benchmarks/producer.c failed (exit %d)" % res.returncode)
    os.replace(tmp, exe)
    return exe
