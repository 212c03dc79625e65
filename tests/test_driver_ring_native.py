"""kring.sys's own ring code (drv/kring_ring.c: KRingRingCreate, KRingRingFree;
drv/kring_ring_write.c: KRingRingWrite with KRingWakeDecision; drv/kring_ring_read.c:
KRingRingRead) built natively on Linux against a
user-mode shim of the kernel calls it makes (drv/shim/: spin locks as pthread
mutexes, pool as page-aligned malloc, events that count), and tested where Wine
cannot: on several CPUs at once.

- drv/shim/stress.c: several threads write one ring through KRingRingWrite while
  csrc's consumer (the C code pykring runs) drains the shared pages as a mapped
  client, or a reader thread copies out with KRingRingRead; every record arrives
  at most once and in order per writer, seq gaps add up to the drops, received +
  dropped = written. A hostile thread rewriting the consumer page while the
  writers run: nothing is written outside the ring, every record is counted.
  Each runs plain, under ASan+UBSan and under TSan (the runtimes linked in, a
  report stops the run).
- A hypothesis model of the copy-out path: random writes of random lengths and
  READs with random buffer sizes, against a pure-Python model of the driver's
  producer (drop when full, padding at the end) and of READ (whole records, at
  most the buffer, nothing below the minimum buffer).
- The range check of consumer_pos, one half at a time: values that fail only
  the alignment half or only the `producer_pos - consumer_pos <= capacity`
  half each break the ring; the boundaries (caught up, exactly full) do not
  (the same pokes run under Wine in tests/windows/test_win_ring_checks.py).
- The wake protocol between the driver and a mapped Windows consumer, one
  window at a time (drv/shim/wake_window.c): under Wine the driver cannot map
  a ring, so this path runs only here.

tests/mutants.txt names these tests as the killers of the drv-* and
*-event-path mutants (`bash run.sh mutants --only NAME`).
"""
import ctypes
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pykring._lib import ffi, lib

ROOT = Path(__file__).resolve().parents[1]
DRV = ROOT / "drv"
SHIM = DRV / "shim"
CFLAGS = ["-std=gnu11", "-fshort-wchar", "-Wall", "-Wextra", "-Werror", "-Wno-multichar", "-Wno-clobbered",
          "-O1", "-g", "-pthread", "-I" + str(SHIM), "-I" + str(DRV), "-I" + str(ROOT / "include"),
          "-I" + str(ROOT / "csrc")]
# The driver's ring code: its memory, its producer, its copy-out path.
RING_SOURCES = [DRV / f for f in ("kring_ring.c", "kring_ring_write.c", "kring_ring_read.c")]
RING = [SHIM / "shim.c", SHIM / "ring_api.c", *RING_SOURCES, ROOT / "csrc" / "kring_events.c"]
CONSUMER = [ROOT / "csrc" / f for f in ("kring_consumer.c", "kring_drain.c", "kring_meta.c", "kring_guard.c",
                                         "kring_linux.c", "kring_wait.c")]
SANITIZE = {"plain": [], "asan": ["-fsanitize=address,undefined", "-fno-sanitize-recover=all"],
            "tsan": ["-fsanitize=thread", "-Wno-tsan"]}
KINDS = ["plain", pytest.param("asan", marks=pytest.mark.asan), pytest.param("tsan", marks=pytest.mark.tsan)]
REPORTS = ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer", "ERROR: ThreadSanitizer")

STATUS_BUFFER_TOO_SMALL = 0xC0000023
READ_OUT = struct.Struct("<IIQQQQ24x")          # struct kring_read_out: the fields this test reads
assert READ_OUT.size == ffi.sizeof("struct kring_read_out")
# The ABI's numbers, from the headers through the extension's cdef (never copied here).
READ_MIN_BYTES = lib.KRING_READ_MIN_BYTES
READ_MAX_BYTES = lib.KRING_READ_MAX_BYTES
PS_MIN = ffi.offsetof("struct kring_process_start", "cmdline")    # the driver's min_size (no argv)
PS_SIZE = ffi.sizeof("struct kring_process_start")


def _gcc(out: Path, sources, extra) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    r = subprocess.run(["gcc", *CFLAGS, *extra, *map(str, sources), "-o", str(out)], capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    return out


@pytest.fixture(scope="module")
def stress(tmp_path_factory):
    base = tmp_path_factory.mktemp("drvshim")
    built = {}

    def get(kind):
        if kind not in built:
            built[kind] = _gcc(base / ("stress-" + kind), [SHIM / "stress.c", *RING, *CONSUMER], SANITIZE[kind])
        return built[kind]
    return get


def _run(binary, *args):
    env = {"ASAN_OPTIONS": "halt_on_error=1:detect_leaks=1", "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
           "TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1", "PATH": "/usr/bin:/bin"}
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=900, env=env)
    assert r.returncode == 0 and not any(m in r.stderr for m in REPORTS), r.stdout + r.stderr[-6000:]
    assert r.stdout.startswith("OK "), r.stdout
    return r.stdout


@pytest.mark.parametrize("kind", KINDS)
def test_writers_and_mapped_consumer(stress, kind):
    """4 writer threads, csrc's consumer draining the same pages at once."""
    out = _run(stress(kind), "map", 4, 20000 if kind != "tsan" else 5000, 65536)
    assert "written 0," not in out


@pytest.mark.parametrize("kind", KINDS)
def test_writers_and_copy_out(stress, kind):
    """4 writer threads, a reader thread copying out with KRingRingRead."""
    out = _run(stress(kind), "copy", 4, 20000 if kind != "tsan" else 5000, 65536)
    assert "written 0," not in out


@pytest.mark.parametrize("kind", KINDS)
def test_hostile_consumer_page(stress, kind):
    """The consumer page rewritten concurrently: in bounds, every record counted."""
    _run(stress(kind), "hostile", 4, 50000 if kind != "tsan" else 10000, 65536)


# ---- the copy-out path against a model --------------------------------------------

@pytest.fixture(scope="module")
def shim(tmp_path_factory):
    so = _gcc(tmp_path_factory.mktemp("drvshim-so") / "libkringdrv.so", RING, ["-shared", "-fPIC"])
    lib = ctypes.CDLL(str(so))
    lib.kring_shim_create.restype = ctypes.c_void_p
    lib.kring_shim_create.argtypes = [ctypes.c_uint64, ctypes.c_uint32]
    lib.kring_shim_free.argtypes = [ctypes.c_void_p]
    lib.kring_shim_write.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_uint32, ctypes.c_uint32]
    lib.kring_shim_read.restype = ctypes.c_int32
    lib.kring_shim_read.argtypes = [ctypes.c_void_p, ctypes.c_uint32, ctypes.c_char_p, ctypes.c_uint32,
                                    ctypes.POINTER(ctypes.c_uint32)]
    for name in ("written", "dropped", "pos", "last_consumer_pos"):
        getattr(lib, "kring_shim_" + name).restype = ctypes.c_uint64
        getattr(lib, "kring_shim_" + name).argtypes = [ctypes.c_void_p]
    for name in ("flags", "wake_seq"):
        getattr(lib, "kring_shim_" + name).restype = ctypes.c_uint32
        getattr(lib, "kring_shim_" + name).argtypes = [ctypes.c_void_p]
    lib.kring_shim_write.restype = ctypes.c_int
    lib.kring_shim_broken.argtypes = [ctypes.c_void_p]
    lib.kring_shim_data.restype = ctypes.c_void_p
    lib.kring_shim_data.argtypes = [ctypes.c_void_p]
    lib.kring_shim_poke.argtypes = [ctypes.c_void_p, ctypes.c_uint64]
    lib.kring_shim_set_waiting.argtypes = [ctypes.c_void_p, ctypes.c_uint32]
    return lib


def _span(length):
    return (length + 8 + 7) & ~7


class Model:
    """The driver's producer and READ, as PROTOCOL.md, drv/kring_ring_write.c and drv/kring_ring_read.c say."""

    def __init__(self, capacity):
        self.capacity, self.pos, self.cpos, self.seq = capacity, 0, 0, 0
        self.entries = []           # (position, span, seq or None for padding)
        self.written = self.dropped = 0

    def write(self, length):
        seq, self.seq = self.seq, self.seq + 1
        span, offset = _span(length), self.pos % self.capacity
        pad = self.capacity - offset if offset + span > self.capacity else 0
        if pad + span > self.capacity - (self.pos - self.cpos):
            self.dropped += 1
            return
        if pad:
            self.entries.append((self.pos, pad, None))
            self.pos += pad
        self.entries.append((self.pos, span, seq))
        self.pos += span
        self.written += 1

    def read(self, buffer):
        """(start, end, [seq...]) or None for STATUS_BUFFER_TOO_SMALL."""
        if buffer < READ_OUT.size + READ_MIN_BYTES:
            return None
        limit = min(buffer - READ_OUT.size, READ_MAX_BYTES)
        start = end = self.cpos
        seqs = []
        while self.entries and end - start + self.entries[0][1] <= limit:
            at, span, seq = self.entries.pop(0)
            assert at == end
            end += span
            if seq is not None:
                seqs.append(seq)
        self.cpos = end
        return start, end, seqs


def _parse(data, start, end, capacity):
    seqs, pos, off = [], start, 0
    while pos < end:
        hlen = struct.unpack_from("<I", data, off)[0]
        length = hlen & 0x3FFFFFFF
        if not hlen & 0x40000000:
            seq, ts, typ = struct.unpack_from("<QQH", data, off + 8)
            assert typ == 1 and PS_MIN <= length <= PS_SIZE
            seqs.append(seq)
        pos += _span(length)
        off += _span(length)
    assert pos == end
    return seqs


OPS = st.lists(st.one_of(st.tuples(st.just("w"), st.integers(PS_MIN, PS_SIZE), st.integers(1, 40)),
                         st.tuples(st.just("r"), st.integers(0, 70000), st.just(0))), max_size=40)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(capacity=st.sampled_from([65536, 131072]), ops=OPS)
def test_copy_out_matches_model(shim, capacity, ops):
    ring = shim.kring_shim_create(capacity, 2)
    assert ring
    model = Model(capacity)
    try:
        for op, a, count in ops:
            if op == "w":
                for _ in range(count):
                    shim.kring_shim_write(ring, 100, 0, a)
                    model.write(a)
                continue
            buf = ctypes.create_string_buffer(max(a, 1))
            got = ctypes.c_uint32()
            status = shim.kring_shim_read(ring, 0, buf, a, ctypes.byref(got)) & 0xFFFFFFFF
            want = model.read(a)
            if want is None:
                assert status == STATUS_BUFFER_TOO_SMALL and got.value == 0
                continue
            assert status == 0
            size, flags, start, end, written, dropped = READ_OUT.unpack_from(buf.raw)
            assert (size, start, end) == (READ_OUT.size, want[0], want[1])
            assert got.value == READ_OUT.size + end - start
            assert (written, dropped) == (model.written, model.dropped)
            assert _parse(buf.raw[READ_OUT.size:got.value], start, end, capacity) == want[2]
        assert shim.kring_shim_written(ring) == model.written
        assert shim.kring_shim_dropped(ring) == model.dropped
        assert shim.kring_shim_pos(ring) == model.pos
    finally:
        shim.kring_shim_free(ring)


# ---- the consumer_pos range check, one half at a time ----------------------------

CAPACITY = 65536
U64 = (1 << 64) - 1
METHOD_MAP = 1


def _gone_round(shim):
    """A mapped ring whose producer has gone round the data area twice, its
    consumer keeping up (consumer_pos stored after every record, as a
    mapped client publishes it), so that positions more than the capacity
    behind the producer exist."""
    ring = shim.kring_shim_create(CAPACITY, METHOD_MAP)
    assert ring
    while shim.kring_shim_pos(ring) < 2 * CAPACITY + 8:
        assert shim.kring_shim_write(ring, 7, 0, PS_SIZE) == 0
        shim.kring_shim_poke(ring, shim.kring_shim_pos(ring))
    assert not shim.kring_shim_broken(ring) and shim.kring_shim_dropped(ring) == 0
    return ring


def _poke_and_write(shim, delta):
    """Store producer_pos + delta as consumer_pos, with the consumer asleep
    (waiting = 1), then write 3 records. What the driver did, in numbers."""
    ring = _gone_round(shim)
    try:
        pos, written, dropped = (shim.kring_shim_pos(ring), shim.kring_shim_written(ring),
                                 shim.kring_shim_dropped(ring))
        wake_seq = shim.kring_shim_wake_seq(ring)
        data = ctypes.string_at(shim.kring_shim_data(ring), CAPACITY)
        value = (pos + delta) & U64
        shim.kring_shim_poke(ring, value)
        shim.kring_shim_set_waiting(ring, 1)
        wakes = [shim.kring_shim_write(ring, 9, i, PS_MIN) for i in range(3)]
        return {
            "value": value, "pos": pos,
            "broken": bool(shim.kring_shim_broken(ring)),
            "flag": bool(shim.kring_shim_flags(ring) & lib.KRING_F_BROKEN),
            "written": shim.kring_shim_written(ring) - written,
            "dropped": shim.kring_shim_dropped(ring) - dropped,
            "moved": shim.kring_shim_pos(ring) - pos,
            "data_untouched": ctypes.string_at(shim.kring_shim_data(ring), CAPACITY) == data,
            "wakes": wakes,
            "wake_seq": shim.kring_shim_wake_seq(ring) - wake_seq,
            "seen": shim.kring_shim_last_consumer_pos(ring),
        }
    finally:
        shim.kring_shim_free(ring)


# Each value fails exactly one half of the check (PROTOCOL.md 7 step 1:
# `C % 8 != 0` or `pos - C > capacity`), so removing either half lets one of
# them through.
NONSENSE = {
    "aligned_ahead_of_producer": 8,                       # pos - C wraps: > capacity
    "aligned_more_than_capacity_behind": -(CAPACITY + 8),  # pos - C = capacity + 8
    "unaligned_in_range": -4,                            # pos - C = 4
    "unaligned_mid_ring": -(CAPACITY // 2) + 4,
}


@pytest.mark.parametrize("case", sorted(NONSENSE))
def test_nonsense_consumer_pos_breaks_the_ring(shim, case):
    """One poke, one half of the check: the first write after it marks the
    ring broken (flag on the producer page), writes nothing (data area and
    position unchanged), counts the record and the later ones as dropped,
    and wakes the sleeping consumer once (wake_seq, then the event), as
    PROTOCOL.md 7 step 1 says."""
    got = _poke_and_write(shim, NONSENSE[case])
    assert got["seen"] == got["value"], got
    assert got["broken"] and got["flag"], got
    assert (got["written"], got["dropped"], got["moved"]) == (0, 3, 0), got
    assert got["data_untouched"], got
    assert got["wakes"] == [1, 0, 0] and got["wake_seq"] == 1, got


@pytest.mark.parametrize("delta, written", [(0, 3), (-8, 3), (-(CAPACITY - 8), 0), (-CAPACITY, 0)],
                         ids=["caught_up", "eight_bytes_behind", "almost_full", "exactly_full"])
def test_plausible_consumer_pos_keeps_the_ring(shim, delta, written):
    """The boundaries of the same check: 8-aligned values from the producer's
    position down to exactly the capacity behind it (a full ring) are
    accepted; a full ring drops without breaking."""
    got = _poke_and_write(shim, delta)
    assert not got["broken"] and not got["flag"], got
    assert (got["written"], got["dropped"]) == (written, 3 - written), got
    # Every record written finds the consumer asleep (nobody clears waiting here): one wake each.
    assert got["wakes"] == [1] * written + [0] * (3 - written) and got["wake_seq"] == written, got


# ---- the wake protocol with the driver, one window at a time --------------------

@pytest.fixture(scope="module")
def wake_window(tmp_path_factory):
    """drv/shim/wake_window.c: the driver's producer with a model of its store
    buffer (drv/shim/ring_hooks.h forced into the kring_ring*.c files), and the Windows
    consumer (kring_consumer_map_driver, kring_wait with -DKRING_TEST_HOOKS,
    the event wait of kring_win.c in place of kring_linux.c's futex)."""
    base = tmp_path_factory.mktemp("drvshim-wake")
    hooks = ["-c", "-include", str(SHIM / "ring_hooks.h")]
    objs = [
        *(_gcc(base / (src.stem + ".o"), [src], hooks) for src in RING_SOURCES),
        _gcc(base / "wait.o", [ROOT / "csrc" / "kring_wait.c"], ["-c", "-DKRING_TEST_HOOKS"]),
        _gcc(base / "linux.o", [ROOT / "csrc" / "kring_linux.c"],
             ["-c", "-Dkring_plat_wait_data=kring_linux_plat_wait_data"]),
    ]
    others = [ROOT / "csrc" / f for f in ("kring_consumer.c", "kring_drain.c", "kring_meta.c", "kring_guard.c",
                                          "kring_driver_map.c", "kring_events.c")]
    return _gcc(base / "wake_window", [SHIM / "wake_window.c", SHIM / "shim.c", SHIM / "ring_api.c", *others, *objs], [])


def _window(binary, *args):
    r = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)
    line = r.stdout.strip().splitlines()[-1] if r.stdout.strip() else ""
    fields = dict(zip(line.split()[2::2], map(int, line.split()[3::2]))) if line[:2] in ("OK", "FA") else {}
    return r, line, fields


@pytest.mark.parametrize("point", [1, 2, 3])
def test_driver_record_in_the_consumer_window_ends_the_event_wait(wake_window, point):
    """The consumer stopped at POINT of its wait (1: ring empty at the loop
    top; 2: `waiting` stored, not yet visible, before the full fence; 3: the
    re-check after the fence found nothing, just before the sleep), the
    driver writes one record (KRingRingWrite, KRingWakeDecision,
    KRingRingSignal): the wait ends with it and never sleeps to its timeout.
    Without the consumer's re-check points 1 and 2 sleep through the record;
    without its full fence, point 3 does (the driver reads waiting = 0 and
    does not set the event)."""
    r, line, got = _window(wake_window, "consumer", str(point))
    assert got.get("reached") == 1 and got.get("published") == 1, r.stdout + r.stderr
    assert got["timeouts"] == 0, "the consumer slept to its timeout with a record in the ring: " + line
    assert r.returncode == 0 and line.startswith("OK "), r.stdout + r.stderr
    # Only at point 3 is `waiting` visible when the driver decides: exactly then it sets the event.
    assert got["wakeups"] == (1 if point == 3 else 0), line


def test_driver_fence_makes_the_record_visible_before_it_reads_waiting(wake_window):
    """The driver stopped after its wake decision, before its lock release,
    with the store of producer_pos held in the modelled store buffer unless
    its full fence (KRingWakeDecision) drained it: the consumer that waits
    then finds the record at once (it cannot have been seen asleep, so no
    event is set). Without the fence the driver read waiting = 0 with its
    record still invisible, the consumer sleeps past it to the timeout."""
    r, line, got = _window(wake_window, "driver")
    assert got.get("published") == 1, r.stdout + r.stderr
    assert got["timeouts"] == 0, "the consumer slept to its timeout with a record in the ring: " + line
    assert r.returncode == 0 and line.startswith("OK ") and got["reached"] == 0, r.stdout + r.stderr
