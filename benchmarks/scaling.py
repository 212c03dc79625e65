"""scaling: end-to-end throughput vs ring size and vs read batch, and the
consumer's peak RSS vs stream length.

All three reuse e2e's consumer process (``python -m benchmarks.e2e
--consumer``): the C producer (benchmarks/producer.c) writes N records of
64 B in block mode, batches of 16384, and a fresh Python consumer drains
them with ``Ring.read(timeout=1, out=<reused array>)``, lossless and checked
as in e2e.

``ring size``   the ring's data area from 64 KiB to 256 MiB (read batch
                65536 rows, e2e's); the baseline is the 16 MiB ring e2e uses,
                measured in the same run. Each stream passes through the
                ring at least 4 times (15 M records for 256 MiB), so that
                the page faults of a fresh ring's first pass are amortized.
``read batch``  the ``out=`` array's rows, which bound the records per
                ``Ring.read`` call, from 16 to 262144 (16 MiB ring); baseline
                65536 rows.
``RSS``         one consumer process per stream length (N, 4N, 16N, ...);
                peak RSS (``ru_maxrss`` of the consumer, measured in a
                forked child so it is its own) should not grow with N.

Each ring size and read batch runs ``repeats`` streams in one consumer
process, alternating with the others in rounds.

Keys: ``scale_ring_<bytes>_records_per_s``, ``scale_ring_<bytes>_vs_16mib``,
``scale_batch_<rows>_records_per_s``, ``scale_batch_<rows>_vs_65536``,
``scale_rss_kib_<records>``, ``scale_rss_ratio_max_min``.
"""
from typing import Dict, List, Optional

from pykring.schema import record_span

from ._common import MiB, Report, build_producer, log
from .e2e import _rates as e2e_rates, stream as e2e_stream

KiB = 1 << 10
SIZE = 64
BASE_RING = 16 * MiB
BASE_ROWS = 65536
WRAPS = 4
PLAN = {
    "quick": {"rings": (64 * KiB, 1 * MiB, 16 * MiB, 256 * MiB), "rows": (64, 1024, 16384, 65536),
              "count": 4_000_000, "rounds": 2, "rss": (1_000_000, 4_000_000, 16_000_000)},
    "full": {"rings": (64 * KiB, 256 * KiB, 1 * MiB, 4 * MiB, 16 * MiB, 64 * MiB, 256 * MiB),
             "rows": (16, 64, 256, 1024, 4096, 16384, 65536, 262144),
             "count": 10_000_000, "rounds": 5, "rss": (2_500_000, 10_000_000, 40_000_000, 160_000_000)},
}

def stream(exe: str, count: int, capacity: int, rows: int, repeats: int = 1) -> dict:
    """`repeats` lossless streams in one fresh e2e consumer process."""
    return e2e_stream(SIZE, count, repeats, producer="c", exe=exe, capacity=capacity,
                      out_rows=rows, tag="scale")


def _rates(report: Report, res: dict, what: str) -> List[float]:
    return e2e_rates(report, res, "scaling " + what)


def _label(nbytes: int) -> str:
    return "%dmib" % (nbytes // MiB) if nbytes >= MiB else "%dkib" % (nbytes // KiB)


def run(report: Report, quick: bool, plan: Optional[dict] = None) -> None:
    plan = plan or PLAN["quick" if quick else "full"]
    exe = build_producer()
    count, rounds = plan["count"], plan["rounds"]
    report.meta["scaling"] = {"record_bytes": SIZE, "records_per_stream": count, "rounds": rounds,
                              "rings": list(plan["rings"]), "rows": list(plan["rows"]),
                              "rss_streams": list(plan["rss"])}
    ring_rates: Dict[int, List[float]] = {c: [] for c in plan["rings"]}
    row_rates: Dict[int, List[float]] = {r: [] for r in plan["rows"]}
    for rnd in range(rounds):
        for cap in plan["rings"]:
            # Steady state: the stream passes through the ring at least WRAPS times
            # (the first pass also pays the page faults of a fresh ring).
            n = max(count, WRAPS * cap // record_span(SIZE))
            log("scaling: round %d/%d, %s ring, %d records of %d B" % (rnd + 1, rounds, _label(cap), n, SIZE))
            ring_rates[cap] += _rates(report, stream(exe, n, cap, BASE_ROWS), "ring %s" % _label(cap))
        for rows in plan["rows"]:
            if rows == BASE_ROWS and BASE_RING in plan["rings"]:
                continue       # the same configuration as the 16 MiB ring above
            # Small reads are slow: fewer records keep each stream near a second.
            n = max(count // 16, min(count, rows * 2000))
            log("scaling: round %d/%d, read batch %d rows, %d records" % (rnd + 1, rounds, rows, n))
            row_rates[rows] += _rates(report, stream(exe, n, BASE_RING, rows), "read batch %d" % rows)
    if BASE_ROWS in row_rates and BASE_RING in ring_rates:
        row_rates[BASE_ROWS] = list(ring_rates[BASE_RING])
    base_ring = ring_rates.get(BASE_RING, [])
    for cap, rates in ring_rates.items():
        if not rates:
            continue
        report.add("scale_ring_%s_records_per_s" % _label(cap), None, "rec/s", samples=rates,
                   note="%d-byte records, read batch %d rows" % (SIZE, BASE_ROWS) if cap == plan["rings"][0] else "")
        if base_ring and cap != BASE_RING:
            report.add("scale_ring_%s_vs_16mib" % _label(cap), None, "x",
                       samples=[a / b for a, b in zip(rates, base_ring)], note="same round, 16 MiB ring = 1")
    base_rows = row_rates.get(BASE_ROWS, [])
    for rows, rates in row_rates.items():
        if not rates:
            continue
        report.add("scale_batch_%d_records_per_s" % rows, None, "rec/s", samples=rates,
                   note="Ring.read(out=<%d rows>), 16 MiB ring" % rows if rows == plan["rows"][0] else "")
        if base_rows and rows != BASE_ROWS:
            report.add("scale_batch_%d_vs_%d" % (rows, BASE_ROWS), None, "x",
                       samples=[a / b for a, b in zip(rates, base_rows)], note="same round")
    # Peak RSS against stream length: one consumer process per length.
    peaks = {}
    for n in plan["rss"]:
        log("scaling: consumer peak RSS, one stream of %d records of %d B" % (n, SIZE))
        res = stream(exe, n, BASE_RING, BASE_ROWS)
        rates = _rates(report, res, "RSS %d records" % n)
        if rates and res.get("rss_kib"):
            peaks[n] = res["rss_kib"]
            report.add("scale_rss_kib_%d" % n, res["rss_kib"], "KiB",
                       note="consumer ru_maxrss; %.0fM rec/s" % (rates[0] / 1e6))
    if len(peaks) > 1:
        report.add("scale_rss_ratio_max_min", max(peaks.values()) / min(peaks.values()), "x",
                   note="%d to %d records: 1.0 = flat" % (min(peaks), max(peaks)))
