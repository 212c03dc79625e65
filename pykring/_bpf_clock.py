"""The clock behind the Linux kernel records' ts_ns (ns since the Unix epoch):
what the loader writes into kring_bpf_config before it loads the programs."""
import time
from typing import Optional, Tuple

from . import _lib, _libbpf

CLOCK_MONOTONIC, CLOCK_TAI = _lib.lib.KRING_BPF_CLOCK_MONOTONIC, _lib.lib.KRING_BPF_CLOCK_TAI
_BPF_PROG_TYPE_TRACEPOINT = 5
_BPF_FUNC_KTIME_GET_TAI_NS = 208


def clock_config(bpf) -> Tuple[int, int]:
    """(clock, offset) for kring_bpf_config: ts_ns = clock + offset is ns since
    the Unix epoch. CLOCK_TAI where the kernel has bpf_ktime_get_tai_ns (it
    follows steps of the wall clock); else CLOCK_MONOTONIC plus the offset of
    the wall clock measured now."""
    if hasattr(time, "CLOCK_TAI") and bpf.libbpf_probe_bpf_helper(
            _BPF_PROG_TYPE_TRACEPOINT, _BPF_FUNC_KTIME_GET_TAI_NS, _libbpf.load()[0].NULL) == 1:
        diffs = []
        for _ in range(3):
            r = time.time_ns()
            t = time.clock_gettime_ns(time.CLOCK_TAI)
            diffs.append(t - r)
        # TAI - UTC is a whole number of seconds (0 when nobody set it).
        sec = round(min(diffs) / 1e9)
        return CLOCK_TAI, -sec * 1_000_000_000
    return CLOCK_MONOTONIC, realtime_offset()


def realtime_offset(samples: int = 9) -> int:
    """CLOCK_REALTIME - CLOCK_MONOTONIC in ns, from the tightest of a few reads."""
    best: Optional[Tuple[int, int]] = None
    for _ in range(samples):
        m0 = time.monotonic_ns()
        r = time.time_ns()
        m1 = time.monotonic_ns()
        if best is None or m1 - m0 < best[0]:
            best = (m1 - m0, r - (m0 + m1) // 2)
    assert best is not None, "samples must be >= 1"
    return best[1]
