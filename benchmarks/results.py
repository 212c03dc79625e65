"""results: writes this run's section of RESULTS.md and its PNG plots.

The last step of ``python -m benchmarks all``. A full run rewrites only the
block of benchmarks/RESULTS.md between the two GENERATED markers (it is
appended at the end the first time), the PNGs next to it (a plot it could
not draw, without matplotlib, is removed rather than left from an earlier
run), and then the block of figures in README.md's Performance section
(benchmarks/readme.py, from the block just written). Everything else in
both files (hand-written notes, other benchmarks' sections) is kept as it
is, re-read just before writing. A --quick run writes the block as a file of
its own with its plots and the README preview into benchmarks/.build/quick/,
so that a smoke test does not overwrite the committed full run.
"""
import datetime
import os
import re
import subprocess
from typing import Dict, List, Optional, Tuple

from ._common import BUILD_DIR, HERE, README, RESULTS, ROOT, Metric, Report, _fmt, log
from ._common import RESULTS_BEGIN as BEGIN, RESULTS_END as END
QUICK_DIR = os.path.join(BUILD_DIR, "quick")
#: (heading, anchor) of the bpf benchmark's hand-written section, until RESULTS.md has one
BPF_SECTION = ("Kernel source (BPF)", "kernel-source-bpf")

#: (key, what, ">=" / "<=" / "<", threshold)
TARGETS: List[Tuple[str, str, str, float]] = [
    ("drain_vs_memcpy_64", "drain vs memcpy, 64-byte records", ">=", 0.8),
    ("vs_mp_queue_64", "vs multiprocessing.Queue, per-record put/get, 64 B", ">=", 100),
    ("vs_faster_fifo_64", "vs faster-fifo, put_many / get_many, 64 B", ">=", 100),
    ("vs_faster_fifo_put_64", "vs faster-fifo, per-record put / get_many, 64 B", ">=", 100),
    ("wake_p50_vs_floor", "wake latency p50 vs the eventfd floor", "<=", 2.0),
    ("idle_cpu_s_per_10s", "idle CPU of a blocked consumer, s per 10 s", "<", 0.01),
    ("pykring_vs_libbpf", "kernel source, producer-bound BPF stream: records/s with pykring's consumer / with "
                          "libbpf's C consumer (how much each slows the producer; the bpf step)", ">=", 1.0),
]


def _met(value: float, op: str, threshold: float) -> bool:
    return {">=": value >= threshold, "<=": value <= threshold, "<": value < threshold}[op]


def _num(m: Dict[str, Metric], key: str) -> Optional[Metric]:
    x = m.get(key)
    if x is None or isinstance(x.value, bool) or not isinstance(x.value, (int, float)):
        return None
    return x


def _cell(x: Optional[Metric], fmt: str = "%s") -> str:
    if x is None:
        return "—"
    return fmt % _fmt(x.value)


def _range(x: Optional[Metric]) -> str:
    if x is None or x.spread is None or x.spread.n < 2:
        return ""
    return "%s .. %s" % (_fmt(x.spread.min), _fmt(x.spread.max))


def _git_commit() -> str:
    try:
        rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                             text=True, timeout=10).stdout.strip()
        # Only what the numbers depend on: the results and plots themselves do not count.
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "csrc", "include",
                                "pykring", "setup.py", "pyproject.toml", "benchmarks/*.py", "benchmarks/*.c"], cwd=ROOT,
                               capture_output=True, text=True, timeout=10).stdout.splitlines()
        paths = sorted({ln[3:] for ln in dirty if len(ln) > 3})
        return rev + (" (with uncommitted changes to %s)" % ", ".join(paths) if paths else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def _elapsed_s() -> Optional[float]:
    """Seconds since this process started (the harness: the whole command)."""
    try:
        with open("/proc/self/stat") as f:
            start = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as f:
            up = float(f.read().split()[0])
        return up - start / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _versions(report: Report) -> str:
    v = ["Python %s" % report.meta.get("python"), "numpy %s" % report.meta.get("numpy"),
         "pykring %s at %s" % (report.meta.get("pykring"), _git_commit())]
    peers = report.meta.get("peers", {})
    names = {"zmq": "pyzmq", "faster_fifo": "faster-fifo", "iceoryx2": "iceoryx2"}
    for peer, ver in sorted(peers.get("versions", {}).items()):
        if peer in names:
            extra = ""
            if peer == "zmq":
                try:
                    import zmq
                    extra = " (libzmq %s)" % zmq.zmq_version()
                except ImportError:
                    pass
            v.append("%s %s%s" % (names[peer], ver, extra))
    for peer in peers.get("not_installed", []):
        if peer in names:
            v.append("%s not installed" % names[peer])
    try:
        import matplotlib
        v.append("matplotlib %s" % matplotlib.__version__)
    except ImportError:
        v.append("matplotlib not installed (no plots)")
    return ", ".join(dict.fromkeys(v))


def _bpf_anchor(text: str) -> Optional[Tuple[str, str]]:
    """(heading, anchor) of the bpf benchmark's section, if RESULTS.md has one."""
    for line in text.splitlines():
        mo = re.match(r"^(#{2,3})\s+(.*(?:BPF|[Kk]ernel source).*)$", line)
        if mo and "GENERATED" not in line:
            title = mo.group(2).strip()
            anchor = re.sub(r"[^\w\- ]", "", title.lower()).replace(" ", "-")
            return title, anchor
    return None


def render(report: Report, figures: List[str], existing: str, quick: bool) -> str:
    m, meta = report.metrics, report.meta
    out: List[str] = [BEGIN, ""]
    out.append("## %s run of `python -m benchmarks all%s`, %s" % (
        "Quick (smoke test)" if quick else "Full", " --quick" if quick else "", meta.get("date")))
    out.append("")
    out.append("Written by the harness from the numbers of that one run; ratios are medians over rounds "
               "of numbers measured in the same round, `min .. max` their spread.")
    out.append("")
    el = _elapsed_s()
    try:
        load_end = round(os.getloadavg()[0], 2)
    except OSError:
        load_end = "?"
    out += ["| | |", "| --- | --- |",
            "| command | `%s` (from the repository root, with the venv's Python) |" % meta.get("command"),
            "| commit | %s |" % _git_commit(),
            "| date | %s%s |" % (meta.get("date"), ", %.0f s" % el if el else ""),
            "| machine | %s, %s CPUs%s, Linux %s |" % (meta.get("cpu"), meta.get("cpus"),
                                                    ", %s guest" % meta["hypervisor_vendor"]
                                                    if meta.get("hypervisor_vendor") else "", meta.get("kernel")),
            "| versions | %s |" % _versions(report),
            "| load average (1 min) | %s at start, %s at the end (%s CPUs; on a shared machine other load "
            "skews single runs) |" % (meta.get("loadavg_start"), load_end, meta.get("cpus"))]
    if report.failures:
        out += ["", "**Failures in this run:**", ""] + ["- %s" % f for f in report.failures]
    # Targets
    out += ["", "### Targets", "", "| target | this run | min .. max | goal | |", "| --- | --- | --- | --- | --- |"]
    for key, what, op, thr in TARGETS:
        x = _num(m, key)
        if key in m and m[key].value is None:
            out.append("| %s (`%s`) | %s | | %s %s | not measured |" % (what, key, m[key].note or "n/a", op, thr))
            continue
        if x is None:
            continue
        out.append("| %s (`%s`) | %s | %s | %s %s | %s |" % (
            what, key, _fmt(x.value), _range(x), op, _fmt(float(thr)),
            "**met**" if _met(x.value, op, thr) else "**missed**"))
    bpf = _bpf_anchor(existing)
    out += ["", "Kernel source (pykring vs libbpf's C consumer on the same BPF producer, spawn storm): "
            "[%s](#%s), the `bpf` benchmark's own section of this file." % (bpf or BPF_SECTION)]
    # Figures
    if figures:
        out += ["", "### Plots", ""]
        for f in figures:
            name = os.path.basename(f)
            out.append("![%s](%s)" % (name[:-4].replace("_", " "), name))
            out.append("")
    # Peers
    peer_keys = sorted({k.split("_records_per_s_")[0][5:] for k in m if k.startswith("peer_") and "_records_per_s_" in k})
    if peer_keys:
        from .peers import PEERS
        pm = meta.get("peers", {})
        sizes = pm.get("sizes", [64])
        out += ["", "### End to end vs the peers", "",
                "One producer process -> one Python consumer, lossless; records/s (median of %s rounds) and "
                "pykring's rate / the peer's in the same round. Batch %s records per send where the "
                "transport takes batches." % (pm.get("rounds"), ", ".join("%s at %d B" % (pm.get("batch", {}).get(s, pm.get("batch", {}).get(str(s))), s) for s in sizes)),
                ""]
        head = "| transport | how |" + "".join(" %d B records/s | pykring / it (min .. max) |" % s for s in sizes)
        out += [head, "| --- | --- |" + " --- | --- |" * len(sizes)]
        for peer in PEERS:
            if peer not in peer_keys:
                continue
            row = "| %s | %s |" % (peer, PEERS[peer][2].replace("|", "/"))
            for s in sizes:
                r = m.get("peer_%s_records_per_s_%d" % (peer, s))
                v = _num(m, "vs_%s_%d" % (peer, s))
                if r is not None and r.value is None:
                    row += " not installed | |"
                    continue
                row += " %s | %s |" % (_cell(_num(m, "peer_%s_records_per_s_%d" % (peer, s))),
                                       "1" if peer == "pykring" else
                                       ("%s (%s)" % (_fmt(v.value), _range(v)) if v else "—"))
            out.append(row)
    # Latency
    if _num(m, "wake_p50_us"):
        out += ["", "### Wake latency", "",
                "| | p50 | p99 | p99.9 |", "| --- | --- | --- | --- |",
                "| pykring `Ring.read(timeout=None)` (us) | %s | %s | %s |" % tuple(
                    _cell(_num(m, "wake_%s_us" % t)) for t in ("p50", "p99", "p999")),
                "| eventfd floor (us) | %s | %s | %s |" % tuple(
                    _cell(_num(m, "floor_%s_us" % t)) for t in ("p50", "p99", "p999")),
                "| pykring / floor | %s | %s | %s |" % tuple(
                    _cell(_num(m, "wake_%s_vs_floor" % t)) for t in ("p50", "p99", "p999"))]
    # Idle
    if _num(m, "idle_cpu_s_per_10s"):
        out += ["", "### Idle cost", "",
                "A consumer blocked in `Ring.read(timeout=None)` for %s s: **%s s of CPU per 10 s** (%s), "
                "%s wakeups per 10 s; a process blocked in `os.eventfd_read` for the same time: %s s per 10 s."
                % (meta.get("idle", {}).get("seconds"), _fmt(m["idle_cpu_s_per_10s"].value),
                   _range(m["idle_cpu_s_per_10s"]), _cell(_num(m, "idle_wakeups_per_10s")),
                   _cell(_num(m, "idle_floor_cpu_s_per_10s")))]
    # Scaling
    rings = sorted((k for k in m if re.fullmatch(r"scale_ring_\w+_records_per_s", k)),
                   key=lambda k: int(k.split("_")[2][:-3]) << (20 if "mib" in k else 10))
    if rings:
        out += ["", "### Scaling", "", "| ring | records/s | vs 16 MiB ring |", "| --- | --- | --- |"]
        for k in rings:
            lab = k.split("_")[2]
            r = _num(m, "scale_ring_%s_vs_16mib" % lab)
            out.append("| %s | %s | %s |" % (lab.replace("mib", " MiB").replace("kib", " KiB"), _cell(_num(m, k)),
                                             "%s (%s)" % (_fmt(r.value), _range(r)) if r else "1"))
    rows = sorted((k for k in m if re.fullmatch(r"scale_batch_\d+_records_per_s", k)), key=lambda k: int(k.split("_")[2]))
    if rows:
        out += ["", "| read batch (rows of out=) | records/s | vs 65536 rows |", "| --- | --- | --- |"]
        for k in rows:
            n = k.split("_")[2]
            r = _num(m, "scale_batch_%s_vs_65536" % n)
            out.append("| %s | %s | %s |" % (n, _cell(_num(m, k)), "%s (%s)" % (_fmt(r.value), _range(r)) if r else "1"))
    rss = sorted((k for k in m if re.fullmatch(r"scale_rss_kib_\d+", k)), key=lambda k: int(k.rsplit("_", 1)[1]))
    if rss:
        out += ["", "| stream (64-byte records) | consumer peak RSS |", "| --- | --- |"]
        for k in rss:
            out.append("| %s | %.1f MiB |" % (_fmt(float(k.rsplit("_", 1)[1])), m[k].value / 1024))
    # Everything
    out += ["", "### Every number of this run", "", "```", report.table(), "```", "", END]
    return "\n".join(out)


def replace_block(text: str, block: str) -> str:
    """`text` with its generated block replaced by `block` (appended if absent)."""
    i, j = text.find(BEGIN), text.find(END)
    if i >= 0 and j > i:
        return text[:i] + block + text[j + len(END):]
    return text.rstrip("\n") + "\n\n" + block + "\n"


def publish(report: Report, figures: List[str], quick: bool, results_path: str,
            readme_path: Optional[str]) -> None:
    """Write the run's block into `results_path` (keeping everything else in
    it) and then, with `readme_path`, README's figures from that block."""
    try:
        with open(results_path) as f:    # re-read now: others may have added their sections
            existing = f.read()
    except FileNotFoundError:
        existing = "# Benchmark results\n"
    text = replace_block(existing, render(report, figures, existing, quick))
    tmp = results_path + ".tmp%d" % os.getpid()
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, results_path)
    log("results: wrote %s%s" % (os.path.relpath(results_path, ROOT), "".join(
        ", " + os.path.relpath(p, ROOT) for p in figures)))
    if readme_path is None:
        return
    # README's figures, from the block just written (read back from the file,
    # so that both show the same characters).
    from . import readme
    try:
        readme.write(results_path, readme_path)
        log("results: wrote the Performance block of %s" % os.path.relpath(readme_path, ROOT))
    except (OSError, ValueError) as exc:
        report.fail("results: README's Performance block not written: %s" % exc)


def run(report: Report, quick: bool, out_dir: Optional[str] = None) -> None:
    out_dir = out_dir or (QUICK_DIR if quick else HERE)
    os.makedirs(out_dir, exist_ok=True)
    figures: List[str] = []
    try:
        from . import latency, plots
        figures = plots.draw_all(report, out_dir, latency.LAST)
    except ImportError as exc:
        log("results: no plots (%s); install the bench extra: pip install -e '.[bench]'" % exc)
    # A plot this run could not draw must not stay behind from an earlier run:
    # the block would not show it, but a reader of the directory would.
    from .plots import FIGURES
    for name, _ in FIGURES:
        stale = os.path.join(out_dir, name)
        if stale not in figures and os.path.exists(stale):
            os.remove(stale)
            log("results: removed %s (not drawn in this run)" % os.path.relpath(stale, ROOT))
    if out_dir == HERE:
        path = RESULTS
        publish(report, figures, quick, RESULTS, README)
    else:
        # A smoke test: its own files, so that the committed run stays; the
        # README block as a preview beside them.
        path = os.path.join(out_dir, "RESULTS.md")
        with open(path, "w") as f:
            f.write("# Benchmark results (quick run)\n")
        preview = os.path.join(out_dir, "README-performance.md")
        with open(preview, "w") as f:
            f.write("# README preview (quick run)\n\n## Performance\n")
        publish(report, figures, quick, path, preview)
    report.meta["results"] = {"file": os.path.relpath(path, ROOT),
                              "plots": [os.path.relpath(p, ROOT) for p in figures],
                              "written": datetime.datetime.now(datetime.timezone.utc).strftime("%H:%M UTC")}
