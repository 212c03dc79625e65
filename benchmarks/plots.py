"""plots: the PNG figures of a run, drawn from its Report (matplotlib, Agg).

Every figure is a ratio against a baseline measured in the same run:
drain vs memcpy, pykring vs each peer, wake latency vs the eventfd floor,
throughput vs the 16 MiB ring / the 65536-row read, peak RSS vs the
shortest stream. Medians are the points or bars; whiskers are min .. max
over the rounds. Figures whose numbers are missing from the run are
skipped.
"""
import math
import os
import re
from typing import Dict, List, Optional, Tuple

from ._common import Metric, Report

DPI = 110
PYKRING = "#1f5fa8"
PEER = "#c0504d"
GREY = "#777777"

#: peers in plot order, with their labels
PEER_LABELS = [
    ("pipe", "pipe + np.frombuffer\n(OS floor)"),
    ("iceoryx2", "iceoryx2\n(slice per batch)"),
    ("zmq", "pyzmq PUSH/PULL ipc://\n(batched buffers)"),
    ("mp_queue_list", "multiprocessing.Queue\n(lists of records)"),
    ("iceoryx2_sample", "iceoryx2\n(sample per record)"),
    ("faster_fifo", "faster-fifo\n(put_many / get_many)"),
    ("faster_fifo_put", "faster-fifo\n(put / get_many)"),
    ("mp_queue", "multiprocessing.Queue\n(per record)"),
]


def _plt():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams.update({"font.size": 9, "axes.titlesize": 10, "axes.grid": True, "grid.alpha": 0.3})
    return plt


def _get(m: Dict[str, Metric], key: str) -> Optional[Metric]:
    x = m.get(key)
    return x if x is not None and isinstance(x.value, (int, float)) and not isinstance(x.value, bool) else None


def _err(x: Metric) -> Tuple[float, float]:
    """(below, above) the median: min .. max of the samples, or nothing."""
    if x.spread is None or x.spread.n < 2:
        return 0.0, 0.0
    return max(0.0, x.value - x.spread.min), max(0.0, x.spread.max - x.value)


def _footer(fig, report: Report) -> None:
    meta = report.meta
    fig.text(0.005, 0.005, "%s  |  %s, %s CPUs, Linux %s, Python %s  |  %s" % (
        meta.get("command", ""), meta.get("cpu", ""), meta.get("cpus", ""), meta.get("kernel", ""),
        meta.get("python", ""), meta.get("date", "")), fontsize=6.5, color=GREY, ha="left", va="bottom")


def drain_vs_memcpy(report: Report, path: str) -> bool:
    m = report.metrics
    pts = sorted((int(k.rsplit("_", 1)[1]), v) for k, v in m.items()
                 if re.fullmatch(r"drain_vs_memcpy_\d+", k) and _get(m, k))
    if not pts:
        return False
    plt = _plt()
    fig, ax = plt.subplots(figsize=(7, 4))
    xs = [p[0] for p in pts]
    ys = [p[1].value for p in pts]
    errs = list(zip(*[_err(p[1]) for p in pts]))
    ax.errorbar(xs, ys, yerr=errs, fmt="o-", color=PYKRING, capsize=3, lw=1.5,
                label="memcpy time / Ring.read(out=) time, same ring bytes (median, min..max)")
    iqr = [(p[1].spread.p25, p[1].spread.p75) for p in pts if p[1].spread]
    if len(iqr) == len(pts):
        ax.fill_between(xs, [a for a, _ in iqr], [b for _, b in iqr], color=PYKRING, alpha=0.15,
                        label="interquartile range")
    ax.axhline(1.0, color=GREY, lw=1, ls="-")
    ax.axhline(0.8, color=PEER, lw=1, ls="--", label="target 0.8x")
    ax.set_xscale("log", base=2)
    ax.set_xticks(xs)
    ax.set_xticklabels(["%d\n(%d)" % (x, x - 24) for x in xs], fontsize=7.5)
    ax.set_xlabel("record size in bytes (body bytes after the 24-byte event header)")
    ax.set_ylabel("drain / memcpy, ring bytes per second\n(the drain writes fewer bytes)")
    ax.set_ylim(0, max(1.3, max(p[1].spread.max if p[1].spread else p[1].value for p in pts) * 1.08))
    ring = report.meta.get("drain", {}).get("ring_bytes", 0) >> 20
    ax.set_title("Drain into numpy vs memcpy of the same ring bytes (%d MiB ring, %s rounds)"
                 % (ring, report.meta.get("drain", {}).get("rounds", "?")))
    ax.legend(loc="lower right", fontsize=8)
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def peers(report: Report, path: str) -> bool:
    m = report.metrics
    sizes = [s for s in (64, 1024) if any(_get(m, "vs_%s_%d" % (p, s)) for p, _ in PEER_LABELS)]
    if not sizes:
        return False
    plt = _plt()
    rows = [(p, lab) for p, lab in PEER_LABELS if any(_get(m, "vs_%s_%d" % (p, s)) for s in sizes)]
    missing = [p for p, _ in PEER_LABELS if m.get("vs_%s_64" % p) is not None and m["vs_%s_64" % p].value is None]
    fig, ax = plt.subplots(figsize=(8, 0.55 * len(rows) * len(sizes) + 1.6))
    h = 0.8 / len(sizes)
    colors = {64: PYKRING, 1024: "#6aa84f"}
    for j, s in enumerate(sizes):
        ys, vals, errs = [], [], []
        for i, (p, _) in enumerate(rows):
            x = _get(m, "vs_%s_%d" % (p, s))
            if x is None:
                continue
            ys.append(i + (j - (len(sizes) - 1) / 2) * h)
            vals.append(x.value)
            errs.append(_err(x))
        ax.barh(ys, vals, height=h * 0.9, color=colors.get(s, GREY), xerr=list(zip(*errs)) if errs else None,
                capsize=2, error_kw={"lw": 0.8}, label="%d-byte records" % s)
        for y, v, e in zip(ys, vals, errs):
            ax.text((v + e[1]) * 1.15, y, ("%.0fx" if v >= 100 else "%.3gx") % v, va="center", fontsize=7.5)
    ax.set_xscale("log")
    ax.axvline(1.0, color=GREY, lw=1)
    ax.axvline(100.0, color=PEER, lw=1, ls="--", label="target 100x (mp.Queue, faster-fifo)")
    ax.set_yticks(range(len(rows)))
    def label(p, lab):
        r = _get(m, "peer_%s_records_per_s_64" % p)
        return lab + ("\n%s rec/s at 64 B" % _rate(r.value) if r else "")
    ax.set_yticklabels([label(p, lab) for p, lab in rows], fontsize=7)
    ax.invert_yaxis()
    hi = max((x.spread.max if x.spread else x.value) for p, _ in rows for s in sizes
             for x in [_get(m, "vs_%s_%d" % (p, s))] if x)
    lo = min((x.spread.min if x.spread else x.value) for p, _ in rows for s in sizes
             for x in [_get(m, "vs_%s_%d" % (p, s))] if x)
    ax.set_xlim(min(0.5, lo / 2), hi * 6)
    ax.set_xlabel("pykring records/s / peer records/s, same round: > 1 pykring faster, < 1 the peer "
                  "(log scale; median, min..max)")
    base = _get(m, "peer_pykring_records_per_s_64")
    base1k = _get(m, "peer_pykring_records_per_s_1024")
    ax.set_title("End to end, lossless, one producer process -> one Python consumer\n"
                 "pykring: %s" % ", ".join(t for t in (
                     "%.0fM records/s at 64 B" % (base.value / 1e6) if base else "",
                     "%.1fM at 1 KiB" % (base1k.value / 1e6) if base1k else "") if t))
    ax.legend(loc="upper right", fontsize=7.5)
    if missing:
        fig.text(0.99, 0.01, "not installed: " + ", ".join(missing), ha="right", fontsize=7, color=PEER)
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def latency(report: Report, path: str, samples: Optional[Dict[str, List[int]]] = None) -> bool:
    m = report.metrics
    if not _get(m, "wake_p50_vs_floor"):
        return False
    plt = _plt()
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.5, 4.2), gridspec_kw={"width_ratios": [1.4, 1]})
    if samples and samples.get("pykring") and samples.get("floor"):
        for mode, color, label in (("floor", GREY, "eventfd floor (Python eventfd_read)"),
                                   ("pykring", PYKRING, "pykring Ring.read(timeout=None)"),
                                   ("pykring_out", "#6aa84f", "pykring Ring.read(timeout=None, out=)")):
            if not samples.get(mode):
                continue
            xs = sorted(v / 1e3 for v in samples[mode])
            n = len(xs)
            a1.plot(xs, [(i + 1) / n for i in range(n)], color=color, lw=1.5, label="%s, n=%d" % (label, n))
        a1.set_xscale("log")
        from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter
        lo = min(min(samples["pykring"]), min(samples["floor"])) / 1e3
        hi = max(max(samples["pykring"]), max(samples["floor"])) / 1e3
        ticks = [t for t in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000) if lo / 2 <= t <= hi * 2]
        a1.xaxis.set_major_locator(FixedLocator(ticks))
        a1.xaxis.set_major_formatter(ScalarFormatter())
        a1.xaxis.set_minor_formatter(NullFormatter())
        a1.set_xlabel("receive time - record timestamp (us, log scale)")
        a1.set_ylabel("fraction of records")
        a1.set_title("Wake latency of an idle consumer (CDF)")
        a1.legend(loc="lower right", fontsize=7.5)
    else:
        a1.set_visible(False)
    tags = (("p50", "p50"), ("p99", "p99"), ("p999", "p99.9"))
    series = [(pre, color, lab) for pre, color, lab in (("wake", PYKRING, "read(timeout=None)"),
                                                          ("wake_out", "#6aa84f", "read(timeout=None, out=)"))
              if _get(m, "%s_p50_vs_floor" % pre)]
    w = 0.8 / len(series)
    top = 2.0
    for j, (pre, color, lab) in enumerate(series):
        xs, vals, errs = [], [], []
        for i, (tag, _) in enumerate(tags):
            x = _get(m, "%s_%s_vs_floor" % (pre, tag))
            if x:
                xs.append(i + (j - (len(series) - 1) / 2) * w)
                vals.append(x.value)
                errs.append(_err(x))
        a2.bar(xs, vals, width=w * 0.9, color=color, yerr=list(zip(*errs)), capsize=3, label=lab)
        for x, v, e in zip(xs, vals, errs):
            a2.text(x, (v + e[1]) * 1.08, "%.2fx" % v, ha="center", fontsize=7)
            top = max(top, v + e[1])
    a2.axhline(1.0, color=GREY, lw=1)
    a2.axhline(2.0, color=PEER, lw=1, ls="--", label="target p50 <= 2x")
    a2.set_xticks(range(len(tags)))
    a2.set_xticklabels(["%s\n%s\nfloor %.0f us" % (name, " / ".join("%.0f" % m["%s_%s_us" % (pre, tag)].value
                                                                     for pre, _, _ in series),
                                                   m["floor_%s_us" % tag].value) for tag, name in tags], fontsize=7)
    a2.set_ylabel("pykring / floor (log scale)")
    a2.set_yscale("log")
    from matplotlib.ticker import FixedLocator, NullFormatter, ScalarFormatter
    a2.yaxis.set_major_locator(FixedLocator([t for t in (0.5, 1, 2, 5, 10, 20, 50, 100) if t <= top * 3]))
    a2.yaxis.set_major_formatter(ScalarFormatter())
    a2.yaxis.set_minor_formatter(NullFormatter())
    a2.set_ylim(0.5, top * 2.5)
    a2.set_title("Ratio to the floor (p50: median over blocks)")
    a2.legend(loc="upper left", fontsize=7)
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.04, 1, 1))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def scaling(report: Report, path: str) -> bool:
    m = report.metrics
    rings = sorted((_bytes(k.split("_")[2]), k) for k in m if re.fullmatch(r"scale_ring_\w+_records_per_s", k))
    rows = sorted((int(k.split("_")[2]), k) for k in m if re.fullmatch(r"scale_batch_\d+_records_per_s", k))
    rss = sorted((int(k.rsplit("_", 1)[1]), k) for k in m if re.fullmatch(r"scale_rss_kib_\d+", k))
    if not rings and not rows and not rss:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.9))

    def ratio_panel(ax, pts, ratio_key, base_label, xlabels, title, xlabel):
        xs, ys, errs, abs_ = [], [], [], []
        for x, k in pts:
            r = _get(m, ratio_key(k))
            v = _get(m, k)
            xs.append(x)
            abs_.append(v.value if v else math.nan)
            if r is None:     # the baseline itself
                ys.append(1.0)
                errs.append((0.0, 0.0))
            else:
                ys.append(r.value)
                errs.append(_err(r))
        ax.errorbar(xs, ys, yerr=list(zip(*errs)), fmt="o-", color=PYKRING, capsize=3)
        top = max(y + e[1] for y, e in zip(ys, errs))
        for x, y, a in zip(xs, ys, abs_):
            ax.annotate("%.0fM/s" % (a / 1e6), (x, y), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=6.5, color=GREY)
        ax.axhline(1.0, color=GREY, lw=1, ls="--", label=base_label)
        ax.set_xscale("log", base=2)
        ax.set_xticks(xs)
        ax.set_xticklabels([xlabels(x) for x in xs], fontsize=7, rotation=0)
        ax.set_ylim(0, max(top, 1.0) * 1.15)
        ax.set_title(title)
        ax.set_xlabel(xlabel)
        ax.legend(loc="lower right", fontsize=7)

    if rings:
        ratio_panel(axes[0], rings, lambda k: k.replace("_records_per_s", "_vs_16mib"), "16 MiB ring = 1",
                    _size_label, "Throughput vs ring size", "ring data area")
        axes[0].set_ylabel("records/s relative to the baseline")
    if rows:
        ratio_panel(axes[1], rows, lambda k: k.replace("_records_per_s", "_vs_65536"), "65536 rows = 1",
                    lambda x: "%d" % x if x < 1024 else "%dK" % (x // 1024),
                    "Throughput vs read batch", "rows of the out= array (records per read)")
    if rss:
        ax = axes[2]
        xs = [x for x, _ in rss]
        kib = [m[k].value for _, k in rss]
        ax.plot(xs, [v / kib[0] for v in kib], "o-", color=PYKRING)
        for x, v in zip(xs, kib):
            ax.annotate("%.1f MiB" % (v / 1024), (x, v / kib[0]), textcoords="offset points", xytext=(0, 7),
                        ha="center", fontsize=7, color=GREY)
        ax.axhline(1.0, color=GREY, lw=1, ls="--", label="shortest stream = 1")
        ax.set_xscale("log")
        ax.set_ylim(0, 1.5)
        ax.set_xlabel("records in the stream (64 B each)")
        ax.set_ylabel("consumer peak RSS relative")
        ax.set_title("Peak RSS vs stream length")
        ax.legend(loc="lower right", fontsize=7)
    else:
        axes[2].set_visible(False)
    fig.suptitle("Scaling: C producer -> Python consumer, 64-byte records, lossless (median, min..max)",
                 fontsize=10)
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.04, 1, 0.95))
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return True


def wake_interval(report: Report, path: str) -> bool:
    """The wake interval's trade-off from ``python -m benchmarks.bpf --sweep``
    (keys suffixed _wi<ms>): the drainer's CPU per record and the fork
    storm's CPU overhead against the event latency, per interval."""
    m = report.metrics
    wis = sorted({float(k.rsplit("_wi", 1)[1]) for k in m if re.fullmatch(r"fork_storm_drainer_us_per_record_wi[\d.]+", k)})
    if not wis:
        return False
    plt = _plt()
    fig, (cpu, lat) = plt.subplots(1, 2, figsize=(9, 3.6))
    xs = [max(w, 0.1) for w in wis]           # interval 0 (per-record wakeups) drawn at 0.1 ms
    labels = ["0 (per record)" if w == 0 else "%g" % w for w in wis]

    def series(key):
        return [(_get(m, "%s_wi%g" % (key, w)).value if _get(m, "%s_wi%g" % (key, w)) else math.nan) for w in wis]

    cpu.plot(xs, series("fork_storm_drainer_us_per_record"), "o-", color=PYKRING, label="drainer CPU per record (us)")
    cpu.plot(xs, [v * 100 for v in series("fork_cpu_overhead")], "s--", color=GREY,
             label="fork storm CPU overhead (%)")
    cpu.set_title("CPU per event")
    lat.plot(xs, series("event_latency_p50_ms"), "o-", color=PYKRING, label="p50")
    lat.plot(xs, series("event_latency_p99_ms"), "s--", color=GREY, label="p99")
    lat.set_title("kernel event to Python (ms)")
    for ax in (cpu, lat):
        ax.set_xscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_xlabel("wake_interval (ms)")
        ax.legend(fontsize=7.5)
    _footer(fig, report)
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _rate(v: float) -> str:
    return "%.3gM" % (v / 1e6) if v >= 1e6 else "%.3gk" % (v / 1e3)


def _bytes(label: str) -> int:
    n = int(label[:-3])
    return n << (20 if label.endswith("mib") else 10)


def _size_label(n: int) -> str:
    return "%d MiB" % (n >> 20) if n >= 1 << 20 else "%d KiB" % (n >> 10)


#: file name -> drawing function
FIGURES = [
    ("drain_vs_memcpy.png", drain_vs_memcpy),
    ("peers.png", peers),
    ("latency.png", latency),
    ("scaling.png", scaling),
]


def draw_all(report: Report, out_dir: str, latency_samples=None) -> List[str]:
    """Draw every figure the run has numbers for; returns the files written."""
    written = []
    for name, fn in FIGURES:
        path = os.path.join(out_dir, name)
        ok = fn(report, path, latency_samples) if fn is latency else fn(report, path)
        if ok:
            written.append(path)
    return written
