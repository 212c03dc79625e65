"""Hostile input: whatever the other side of the ring writes, the consumer
reports records or a clear error and the producer stays inside the data area.

a. Fuzzed data area and producer_pos -> the drain returns exactly what the
   reference parser (tests/model.py) returns, or RingCorruptError with the
   same position, reason and value; never a crash, hang or extra record.
b. Fuzzed consumer page -> Producer.write writes exactly what the protocol
   allows for that consumer_pos, or raises RingBrokenError without touching
   the data area; the consumer then sees RingBrokenError. A consumer that
   attaches to a nonsense consumer_pos gets RingCorruptError.
c. The same fuzz, in C, under AddressSanitizer + UndefinedBehaviorSanitizer.
d. Attaching to files that are not rings, to rings of another version, to
   files we may not open, and to rings that already have a consumer/producer.
"""
import json
import os
import struct
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

import pykring
from pykring._lib import ffi, lib
from pykring.schema import make_meta, normalize_types

from tests import model, sanitizer
from tests.ringutil import remove_ring, shm, unique_ring_name

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = 8192
OFF_CONSUMER_POS = 0
OFF_PRODUCER_POS = 4096 + 0
OFF_FLAGS = 4096 + 100
OFF_DROPPED = 4096 + 136
U64 = (1 << 64) - 1

HOSTILE = settings(max_examples=300, deadline=None,
                   suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])




def poke(name, offset, data):
    with open(shm(name), "r+b") as f:
        f.seek(offset)
        f.write(data)


def peek(name, offset=0, size=None):
    with open(shm(name), "rb") as f:
        f.seek(offset)
        return f.read() if size is None else f.read(size)


def peek_u64(name, offset):
    return struct.unpack("<Q", peek(name, offset, 8))[0]


def reason(code):
    return ffi.string(lib.kring_corrupt_reason(code)).decode()


# Three record types: small and fixed, big and fixed, variable length.
BODIES = {
    "small": np.dtype([("a", "<u4"), ("b", "<u2")]),                  # size 30
    "big": np.dtype([("v", "(12,)<f8"), ("tag", "S4")]),              # size 124
    "var": np.dtype([("n", "<u2"), ("text", "S40")]),                 # size 66, min 26
}
VAR_MIN = 24 + 2


def create_ring(name, capacity, single=False):
    """A ring with BODIES (or only "small"), its "var" type of variable length,
    created with kring_shm_create and attached as a consumer. Returns
    (ring, {type id: (size, min_size)}, {type id: name})."""
    bodies = {"small": BODIES["small"]} if single else BODIES
    meta = make_meta(capacity, normalize_types(bodies))
    types, names = {}, {}
    for i, tname in enumerate(bodies):
        t = meta.types[i]
        if tname == "var":
            t.min_size = VAR_MIN
        types[int(t.id)] = (int(t.size), int(t.min_size))
        names[int(t.id)] = tname
    assert lib.kring_shm_create(shm(name).encode(), meta, 0o600) == lib.KRING_OK
    ring = pykring.attach(name)
    return ring, types, names


# -- a. fuzzed data area and producer_pos --------------------------------------------------

# "run": 2 to 41 records of one type and length in a row (the drain's fast path).
CHUNK_KINDS = ["record"] * 8 + ["run"] * 2 + ["discard", "discard", "busy", "short", "badtype", "badsize",
                                              "rawword"]


@st.composite
def chunk(draw):
    return (draw(st.sampled_from(CHUNK_KINDS)), draw(st.integers(0, 2 ** 32 - 1)),
            draw(st.integers(0, 2 ** 64 - 1)))


def build_area(capacity, types, start, chunks, seed, background):
    """Data area bytes with `chunks` laid out from ring position `start`, as
    a producer would (wrapping with a DISCARD pad or not, depending on the
    chunk). Returns (bytes, position after the last chunk)."""
    rng = np.random.default_rng(seed)
    data = bytearray(rng.integers(0, 256, capacity, dtype=np.uint8).tobytes()) if background \
        else bytearray(capacity)
    mask = capacity - 1
    ids = sorted(types)
    pos = start
    seq = rng.integers(0, 1 << 20)
    expanded = []
    for kind, a, b in chunks:
        if kind == "run":
            # The same type and length each time; b + 2i keeps b's low bit (pad or straddle).
            expanded += [("record", a, (b + 2 * i) & U64) for i in range(2 + (b >> 32) % 40)]
        else:
            expanded.append((kind, a, b))
    for kind, a, b in expanded:
        if kind in ("record", "badtype", "badsize"):
            tid = ids[a % len(ids)]
            size, mn = types[tid]
            length = mn + (a >> 8) % (size - mn + 1)
            if kind == "badsize":
                length = size + 1 + (a >> 8) % 9 if a & 0x80 else max(24, mn - 1 - (a >> 8) % 4)
                if mn <= length <= size:
                    length = size + 8
            if kind == "badtype":
                tid = (a >> 4) & 0xFFFF
            word = length
            seq_value = b if a & 0x40 else int(seq)
            seq += 1
            payload = struct.pack("<QQHHI", seq_value, b, tid, a & 0xFFFF, 0)
            payload += rng.integers(0, 256, max(0, length - 24), dtype=np.uint8).tobytes()
        elif kind == "discard":
            length = a % 300
            word = length | model.DISCARD
            payload = b""
        elif kind == "busy":
            length = 24 + a % 100
            word = length | model.BUSY | (model.DISCARD if a & 1 else 0)
            payload = b""
        elif kind == "short":
            length = a % 24
            word = length
            payload = b""
        else:
            word = a
            length = a & model.LEN_MASK
            payload = b""
        sp = model.span(length)
        off = pos & mask
        if off + sp > capacity and kind == "record" and not b & 1 and sp <= capacity // 2:
            # a well-behaved producer pads to the end first
            struct.pack_into("<II", data, off, (capacity - off - 8) | model.DISCARD, 0)
            pos += capacity - off
            off = 0
        struct.pack_into("<II", data, off, word, 0)
        body = payload[:max(0, capacity - off - 8)]
        data[off + 8:off + 8 + len(body)] = body
        pos += min(sp, capacity)
    return bytes(data), pos


@HOSTILE
@given(capacity=st.sampled_from([4096, 8192]),
       single=st.booleans(),
       start=st.one_of(st.just(0), st.integers(0, 2 ** 40).map(lambda x: x * 8),
                       st.just((1 << 64) - 4096)),
       chunks=st.lists(chunk(), max_size=30),
       seed=st.integers(0, 2 ** 32 - 1),
       background=st.booleans(),
       ppos_kind=st.sampled_from(["end", "end", "end", "near", "random", "any", "unaligned"]),
       ppos_arg=st.integers(0, 2 ** 64 - 1),
       reads=st.lists(st.one_of(st.none(), st.integers(0, 20)), min_size=1, max_size=30),
       use_out=st.booleans())
def test_fuzzed_data_area(ring_name, capacity, single, start, chunks, seed, background,
                          ppos_kind, ppos_arg, reads, use_out):
    # The consumer attaches at `start`; then the data area and producer_pos go bad.
    remove_ring(ring_name)          # hypothesis runs many examples with one fixture value
    ring, types, names = create_ring(ring_name, capacity, single)
    try:
        ring.close()
        poke(ring_name, OFF_CONSUMER_POS, struct.pack("<Q", start))
        poke(ring_name, OFF_PRODUCER_POS, struct.pack("<Q", start))
        ring = pykring.attach(ring_name)
        area, end = build_area(capacity, types, start, chunks, seed, background)
        ppos = {"end": end & U64,
                "near": (end + 8 * (ppos_arg % 17) - 64) & U64,
                "random": (start + 8 * (ppos_arg % (capacity // 8 + 1))) & U64,
                "any": ppos_arg,
                "unaligned": (end | 1 + ppos_arg % 7) & U64}[ppos_kind]
        poke(ring_name, DATA, area)
        poke(ring_name, OFF_PRODUCER_POS, struct.pack("<Q", ppos))

        pos, delivered = start, 0
        for max_records in reads:
            expect = model.parse(area, capacity, types, pos, ppos, max_records)
            if not expect.rows and expect.error is not None:
                with pytest.raises(pykring.RingCorruptError) as info:
                    read(ring, names, max_records, use_out)
                e = info.value
                assert isinstance(e, pykring.KringError) and isinstance(e, ValueError)
                assert (e.offset, e.problem, e.value) == (
                    expect.error.pos, reason(expect.error.reason), expect.error.value)
                assert str(expect.error.pos) in str(e) and e.problem in str(e)
                event("corrupt: %s%s" % (e.problem[:30], " after records" if delivered else ""))
                break
            got = read(ring, names, max_records, use_out)
            for tid, tname in names.items():
                rows = [r for t, r in expect.rows if t == tid]
                assert got[tname].tobytes() == b"".join(rows), tname
            delivered += len(expect.rows)
            pos = expect.pos
            assert ring.stats.read == delivered
            # never more records than the published bytes could hold
            assert delivered <= ((ppos - start) & U64) // 32
            if not expect.rows:
                event("stopped: %s" % ("caught up" if pos == ppos else "BUSY or max_records=0"))
                break
        if delivered:
            event("records delivered")
    finally:
        ring.close()


def read(ring, names, max_records, use_out):
    """Ring.read for a single-type ring (maybe into `out`), else read_batch; as {name: array}."""
    if len(names) > 1:
        return dict(ring.read_batch(max_records))
    name = next(iter(names.values()))
    if use_out and max_records is not None:
        out = np.zeros(max_records, dtype=ring.dtype)
        return {name: ring.read(out=out)}
    return {name: ring.read(max_records)}


# -- b. fuzzed consumer page --------------------------------------------------------------

@HOSTILE
@given(capacity=st.sampled_from([4096, 8192]),
       before=st.lists(st.tuples(st.sampled_from(sorted(BODIES)), st.integers(0, 30)), max_size=8),
       drain_first=st.booleans(),
       cpos_kind=st.sampled_from(["valid", "valid", "ahead", "behind", "unaligned", "any"]),
       cpos_arg=st.integers(0, 2 ** 64 - 1),
       page_rest=st.one_of(st.none(), st.binary(min_size=4088, max_size=4088)),
       n=st.integers(1, 60),
       tname=st.sampled_from(sorted(BODIES)),
       seed=st.integers(0, 2 ** 32 - 1))
def test_fuzzed_consumer_page(ring_name, capacity, before, drain_first, cpos_kind, cpos_arg,
                              page_rest, n, tname, seed):
    remove_ring(ring_name)
    ring, types, names = create_ring(ring_name, capacity)
    ids = {v: k for k, v in names.items()}
    prod = pykring.Producer(ring_name)
    try:
        rng = np.random.default_rng(seed)
        for bname, count in before:
            prod.write(np.frombuffer(rng.integers(0, 256, count * BODIES[bname].itemsize,
                                                  dtype=np.uint8).tobytes(), dtype=BODIES[bname]),
                       type=bname)
        if drain_first:
            ring.read_batch()
        ppos = peek_u64(ring_name, OFF_PRODUCER_POS)
        cpos = {"valid": (ppos - 8 * (cpos_arg % (capacity // 8 + 1))) & U64,
                "ahead": (ppos + 8 + 8 * (cpos_arg % 1000)) & U64,
                "behind": (ppos - capacity - 8 - 8 * (cpos_arg % 1000)) & U64,
                "unaligned": (ppos - 8 * (cpos_arg % 64)) & U64 | (1 + cpos_arg % 7),
                "any": cpos_arg}[cpos_kind]
        broken = cpos % 8 != 0 or (ppos - cpos) & U64 > capacity
        page = struct.pack("<Q", cpos) + (page_rest if page_rest is not None else bytes(4088))
        poke(ring_name, 0, page)

        snapshot = peek(ring_name)
        written, dropped = prod.written, prod.dropped
        m = model.RingModel(capacity, types)
        m.data[:] = snapshot[DATA:]
        m.producer_pos, m.consumer_pos = ppos, cpos
        m.written, m.dropped, m.seq = written, dropped, written + dropped

        body = BODIES[tname]
        raw = rng.integers(0, 256, n * body.itemsize, dtype=np.uint8).tobytes()
        records = np.frombuffer(raw, dtype=body)
        t0 = time.time_ns()
        event("broken" if broken else "in range")
        if broken:
            with pytest.raises(pykring.RingBrokenError, match=str(cpos)):
                prod.write(records, type=tname)
        else:
            done = prod.write(records, type=tname)
        t1 = time.time_ns()
        after = peek(ring_name)
        assert len(after) == len(snapshot) == DATA + capacity
        assert after[:4096] == page                                  # the producer never writes page 0
        # The producer page: only positions, counters, wake_seq and flags may change.
        for lo, hi in ((16, 100), (104, 128), (144, 4096)):
            assert after[4096 + lo:4096 + hi] == snapshot[4096 + lo:4096 + hi]
        flags = struct.unpack_from("<I", after, OFF_FLAGS)[0]
        if broken:
            assert flags & lib.KRING_F_BROKEN
            assert ring.flags & lib.KRING_F_BROKEN
            assert after[DATA:] == snapshot[DATA:]                   # not one byte written
            assert peek_u64(ring_name, OFF_PRODUCER_POS) == ppos
            assert (prod.written, prod.dropped) == (written, dropped + n)
            assert peek_u64(ring_name, OFF_DROPPED) == dropped + n
            # Broken stays broken until a producer re-attaches, whatever page 0 says now.
            poke(ring_name, 0, struct.pack("<Q", ppos))
            with pytest.raises(pykring.RingBrokenError):
                prod.write(records[:1], type=tname)
            assert peek(ring_name, DATA) == snapshot[DATA:]
            poke(ring_name, 0, page)
            # The consumer drains what was published before, then sees "broken".
            cons_pos = ppos if drain_first else 0
            expect = model.parse(snapshot[DATA:], capacity, types, cons_pos, ppos)
            assert expect.error is None
            if expect.rows:
                got = ring.read_batch()
                for tid, bname in names.items():
                    assert got[bname].tobytes() == b"".join(r for t, r in expect.rows if t == tid)
            with pytest.raises(pykring.RingBrokenError):
                ring.read_batch()
            with pytest.raises(pykring.RingBrokenError):
                ring.read_batch()
        else:
            offsets = m.write(ids[tname], [records[i:i + 1].tobytes() for i in range(n)])
            assert done == len(offsets)
            if offsets:
                ts = struct.unpack_from("<Q", after, DATA + offsets[0] + 16)[0]
                assert t0 <= ts <= t1
                m.stamp(offsets, ts)
            assert not flags & lib.KRING_F_BROKEN
            assert after[DATA:] == bytes(m.data)                     # exactly what the protocol allows
            assert peek_u64(ring_name, OFF_PRODUCER_POS) == m.producer_pos
            assert (prod.written, prod.dropped) == (m.written, m.dropped)
    finally:
        prod.close()
        ring.close()


def test_broken_producer_recovers_on_reattach(ring_name):
    ring, types, names = create_ring(ring_name, 4096)
    with ring:
        prod = pykring.Producer(ring_name)
        rec = np.zeros(1, dtype=BODIES["small"])
        assert prod.write(rec, type="small") == 1
        poke(ring_name, OFF_CONSUMER_POS, struct.pack("<Q", 12345))
        with pytest.raises(pykring.RingBrokenError):
            prod.write(rec, type="small")
        assert ring.flags & lib.KRING_F_BROKEN
        assert len(ring.read_batch()["small"]) == 1            # commits a sane consumer_pos
        with pytest.raises(pykring.RingBrokenError):
            ring.read_batch()
        prod.close()
        with pykring.Producer(ring_name) as prod:              # a new producer clears BROKEN
            assert not ring.flags & lib.KRING_F_BROKEN
            assert prod.write(rec, type="small") == 1
            got = ring.read_batch()["small"]
            assert got["seq"].tolist() == [2]                   # seq 1 was dropped while broken
        assert ring.stats.lost == 1 and ring.stats.dropped == 1


@pytest.mark.parametrize("ppos, cpos, bad", [
    (80, 3, "consumer"),                      # unaligned
    (80, 88, "consumer"),                     # ahead of producer_pos
    (3 * 4096, 2 * 4096 - 8, "consumer"),     # more than capacity behind
    (80, 1 << 63, "consumer"),
    (81, 0, "producer"),                      # producer_pos unaligned
])
def test_attach_to_nonsense_consumer_pos(ring_name, ppos, cpos, bad):
    ring, _, _ = create_ring(ring_name, 4096)
    ring.close()
    poke(ring_name, OFF_PRODUCER_POS, struct.pack("<Q", ppos))
    poke(ring_name, OFF_CONSUMER_POS, struct.pack("<Q", cpos))
    with pytest.raises(pykring.RingCorruptError) as info:
        pykring.attach(ring_name)
    e = info.value
    if bad == "consumer":
        assert (e.offset, e.value) == (cpos, cpos)
        assert e.problem == reason(lib.KRING_BAD_CONSUMER_POS)
        assert "consumer_pos" in str(e)
    else:
        assert e.value == ppos
        assert e.problem == reason(lib.KRING_BAD_PRODUCER_POS)
        assert "producer_pos" in str(e)
    # Sane values attach again (the lock was released by the failed attach).
    poke(ring_name, OFF_CONSUMER_POS, struct.pack("<Q", ppos & ~7))
    poke(ring_name, OFF_PRODUCER_POS, struct.pack("<Q", ppos & ~7))
    pykring.attach(ring_name).close()


def test_attach_accepts_full_ring_position(ring_name):
    ring, _, _ = create_ring(ring_name, 4096)
    ring.close()
    poke(ring_name, OFF_PRODUCER_POS, struct.pack("<Q", 3 * 4096))
    poke(ring_name, OFF_CONSUMER_POS, struct.pack("<Q", 2 * 4096))   # exactly capacity behind
    with pykring.attach(ring_name) as ring:
        assert ring.stats.pending_bytes == 4096


# -- c. the same under ASan + UBSan ---------------------------------------------------------

ASAN_FUZZ = r'''
"""Fuzz the C consumer and producer with hostile ring memory (run under ASan+UBSan)."""
import mmap
import os
import random
import struct
import sys

import json
from collections import Counter

import cffi
from pykring._kring import ffi, lib     # the sanitized build (tests/sanitizer.py)

seed, iterations, prefix = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rnd = random.Random(seed)
U64 = (1 << 64) - 1

# Buffers from libc malloc, so that ASan puts redzones right after them.
cffi_libc = cffi.FFI()
cffi_libc.cdef("void *malloc(size_t); void free(void *);")
libc = cffi_libc.dlopen(None)
live = []
seen = Counter()        # what the fuzz reached, reported on stdout


def tight(n, fill=None):
    p = libc.malloc(max(n, 1))
    assert p != cffi_libc.NULL
    live.append(p)
    ptr = ffi.cast("uint8_t *", int(cffi_libc.cast("uintptr_t", p)))
    if n:
        ffi.memmove(ptr, bytes(rnd.getrandbits(8) for _ in range(min(n, 64))) * (n // 64 + 1), n) \
            if fill is None else ffi.memmove(ptr, fill, n)
    return ptr


def free_all():
    while live:
        libc.free(live.pop())


def make_meta(cap, types):
    m = ffi.new("struct kring_producer_page *")
    m.magic = lib.KRING_MAGIC
    m.abi_major = lib.KRING_ABI_MAJOR
    m.abi_minor = lib.KRING_ABI_MINOR
    m.page_size = lib.KRING_PAGE_SIZE
    m.capacity = cap
    m.data_offset = lib.KRING_DATA_OFFSET
    nf = 0
    for i, (tid, size, mn) in enumerate(types):
        t = m.types[i]
        t.name = b"t%d" % tid
        t.id = tid
        t.size = size
        t.min_size = mn
        t.first_field = nf
        if size > 24:
            f = m.fields[nf]
            f.name = b"body"
            f.format = b"|V%d" % (size - 24)
            f.offset = 24
            nf += 1
        t.nfields = nf - t.first_field
    m.ntypes = len(types)
    m.nfields = nf
    return m


def random_types(cap):
    ids = rnd.sample(range(1, 16), rnd.randint(1, 4))
    out = []
    for tid in ids:
        size = 24 + rnd.choice([0, 1, 7, 8, 13, rnd.randint(0, 64), rnd.randint(0, cap // 2 - 32)])
        mn = size if rnd.random() < 0.5 else rnd.randint(24, size)
        out.append((tid, size, mn))
    return out


def random_u64(near, cap):
    r = rnd.random()
    if r < 0.3:
        return (near - 8 * rnd.randint(0, cap // 8)) & U64
    if r < 0.5:
        return (near + 8 * rnd.randint(1, 100)) & U64
    if r < 0.6:
        return (near - cap - 8 * rnd.randint(1, 100)) & U64
    if r < 0.75:
        return (near + rnd.randint(1, 7)) & U64
    return rnd.getrandbits(64)


def write_some(p, types, cap):
    tid, size, mn = rnd.choice(types)
    if rnd.random() < 0.05:
        tid = rnd.randint(0, 17)                            # maybe not a type of the ring
    n = rnd.randint(0, 40)
    lo, hi = mn - 24, size - 24
    bad = rnd.random() < 0.05
    if rnd.random() < 0.5:
        lens_list = [rnd.randint(lo, hi) for _ in range(n)]
        if bad and n:
            lens_list[rnd.randrange(n)] = hi + rnd.randint(1, 1 << 31)
        lens = ffi.new("uint32_t[]", lens_list)
        length = 0
    else:
        lens_list = [rnd.randint(lo, hi) if not bad else hi + 1] * n
        lens = ffi.NULL
        length = lens_list[0] if n else hi
    # kring_write checks every length before it reads: a bad one is never read.
    stride = hi + rnd.choice([0, 0, 1, 8, 33])
    need = max([i * stride + min(l, hi) for i, l in enumerate(lens_list)] + [0])
    src = tight(need)
    done = ffi.new("uint64_t *")
    before = p.pos
    rc = lib.kring_write(p, tid, src, stride, length, lens, n, rnd.getrandbits(16), 0, done)
    seen["write %s" % {0: "ok", -13: "broken", -1: "inval"}.get(rc, rc)] += 1
    assert rc in (lib.KRING_OK, lib.KRING_E_BROKEN, lib.KRING_E_INVAL), rc
    assert done[0] <= n
    assert (p.pos - before) & U64 <= cap, (p.pos, before)


def drain_some(c, types):
    outs = ffi.new("struct kring_out[]", lib.KRING_MAX_TYPES)
    rows = {}
    for tid, size, mn in types:
        if rnd.random() < 0.1:
            continue                                        # NULL: stop at this type
        nrows = rnd.randint(0, 12)
        outs[tid].buf = tight(nrows * size)
        outs[tid].capacity = nrows
        outs[tid].count = rnd.randint(0, nrows)
        rows[tid] = (nrows, outs[tid].count)
    n = ffi.new("uint64_t *")
    rc = lib.kring_drain(c, outs, rnd.choice([0, 1, 5, 1 << 62]), rnd.randint(0, 1), n)
    seen["drain %d/%d" % (rc, c.err_reason if rc == lib.KRING_E_CORRUPT else 0)] += 1
    seen["records"] += n[0]
    assert rc in (lib.KRING_OK, lib.KRING_E_CORRUPT, lib.KRING_E_BROKEN, lib.KRING_E_CLOSED), rc
    total = 0
    for tid, (nrows, first) in rows.items():
        assert first <= outs[tid].count <= nrows
        total += outs[tid].count - first
    assert total == n[0]
    lib.kring_pending(c)
    lib.kring_ring_flags(c)
    if rnd.random() < 0.3:
        lib.kring_commit(c)


def fuzz_data(put, c, types, cap):
    """Records (good, bad, padding, BUSY, junk) from the consumer's position on, and a
    producer_pos; put(file offset, bytes) writes into the ring."""
    mask = cap - 1
    pos = c.pos
    run = 0
    for _ in range(rnd.randint(0, 30)):
        off = pos & mask
        r = rnd.random()
        in_run = run > 0
        if in_run:
            run -= 1                # the same type and length as the record before
        else:
            tid, size, mn = rnd.choice(types)
            if rnd.random() < 0.15:
                # A run of records of one type and length (the drain's fast path).
                in_run, run, length = True, rnd.randint(1, 40), rnd.randint(mn, size)
        if in_run:
            word = length
        elif r < 0.45:
            length = rnd.randint(mn, size)
            word = length
        elif r < 0.5:
            length = rnd.randint(24, size + 40)
            word = length
        elif r < 0.6:
            length = rnd.randint(0, 300)
            word = length | lib.KRING_DISCARD_BIT
        elif r < 0.7:
            length = rnd.randint(0, 40)
            word = length | lib.KRING_BUSY_BIT
        else:
            word = rnd.getrandbits(32)
            length = word & lib.KRING_LEN_MASK
        if rnd.random() < 0.1 and not in_run:
            tid = rnd.getrandbits(16)
        seq = rnd.getrandbits(64) if rnd.random() < 0.3 else rnd.randint(0, 100)
        rec = struct.pack("<IIQQHHI", word, 0, seq, 0, tid, 0, 0)
        rec += bytes(rnd.getrandbits(8) for _ in range(min(max(0, length - 24), 64)))
        put(8192 + off, rec[:cap - off])
        pos += (length + 8 + 7) & ~7 if length < cap else 8
    if rnd.random() < 0.3:
        start = rnd.randrange(cap)
        put(8192 + start, bytes(rnd.getrandbits(8) for _ in range(rnd.randint(1, 256)))[:cap - start])
    ppos = pos & U64 if rnd.random() < 0.6 else random_u64(c.pos, cap)
    put(4096, struct.pack("<Q", ppos))


def fuzz_meta(path, mm, cap):
    """Flip bytes of the producer page, try to attach, put the page back."""
    saved = mm[4096:8192]
    for _ in range(rnd.randint(1, 8)):
        i = rnd.randrange(64, 4096) if rnd.random() < 0.8 else rnd.randrange(64, 192)
        mm[4096 + i] = rnd.getrandbits(8)
    if rnd.random() < 0.2:
        mm[4096 + 80:4096 + 88] = struct.pack("<Q", rnd.choice([cap * 2, cap // 2, cap + 8, 1 << 40]))
    c2 = ffi.new("struct kring_consumer *")
    rc = lib.kring_consumer_open(c2, path)
    seen["meta open %d" % rc] += 1
    if rc == lib.KRING_OK:
        drain_some(c2, [(t, int(c2.type_size[t]), int(c2.type_min[t]))
                        for t in range(1, 16) if c2.type_size[t]] or [(1, 24, 24)])
        lib.kring_consumer_close(c2)
    p2 = ffi.new("struct kring_producer *")
    rc = lib.kring_producer_open(p2, path, lib.KRING_DROP)
    if rc == lib.KRING_OK:
        lib.kring_producer_close(p2, 0)
    mm[4096:8192] = saved


def mm_put(mm):
    def put(offset, data):
        mm[offset:offset + len(data)] = data
    return put


def heap_ring():
    """A consumer (kring_consumer_init) over pages and a data area from malloc: ASan
    redzones sit right after the data area, so any read past it is caught (a file
    mapping may have another mapping right behind it)."""
    cap = rnd.choice([4096, 8192])
    types = random_types(cap)
    cons, prod, data = tight(4096, bytes(4096)), tight(4096, bytes(4096)), tight(cap)
    ffi.memmove(prod, ffi.buffer(make_meta(cap, types)), 4096)
    regions = ((0, cons), (4096, prod), (8192, data))

    def put(offset, b):
        base, ptr = [r for r in regions if r[0] <= offset][-1]
        ffi.memmove(ptr + (offset - base), b, len(b))

    for _ in range(20):
        base = rnd.getrandbits(40) * 8 if rnd.random() < 0.3 else 0
        put(0, struct.pack("<Q", base))
        put(4096, struct.pack("<Q", base))
        c = ffi.new("struct kring_consumer *")
        assert lib.kring_consumer_init(c, ffi.cast("struct kring_consumer_page *", cons),
                                       ffi.cast("struct kring_producer_page *", prod), data, cap,
                                       0, 1) == lib.KRING_OK
        for tid, size, mn in types:
            assert lib.kring_consumer_set_type(c, tid, size, mn) == lib.KRING_OK
        if rnd.random() < 0.2:
            put(4096 + 100, struct.pack("<I", rnd.getrandbits(4)))      # flags
        for _ in range(rnd.randint(1, 3)):
            fuzz_data(put, c, types, cap)
            drain_some(c, types)
    free_all()


def one_ring(k):
    cap = rnd.choice([4096, 8192, 16384])
    types = random_types(cap)
    path = ("/dev/shm/%s-%d" % (prefix, k)).encode()
    rc = lib.kring_shm_create(path, make_meta(cap, types), 0o600)
    assert rc == lib.KRING_OK, rc
    fd = os.open(path, os.O_RDWR)
    mm = mmap.mmap(fd, 8192 + cap)
    try:
        for _ in range(20):
            base = rnd.getrandbits(40) * 8 if rnd.random() < 0.3 else 0
            mm[0:8] = struct.pack("<Q", base)
            mm[4096:4104] = struct.pack("<Q", base)
            c = ffi.new("struct kring_consumer *")
            p = ffi.new("struct kring_producer *")
            assert lib.kring_consumer_open(c, path) == lib.KRING_OK
            assert lib.kring_producer_open(p, path, lib.KRING_DROP) == lib.KRING_OK
            try:
                for _ in range(rnd.randint(0, 3)):
                    write_some(p, types, cap)
                r = rnd.random()
                if r < 0.45:
                    page = bytearray(bytes(rnd.getrandbits(8) for _ in range(64)) * 64) \
                        if rnd.random() < 0.3 else bytearray(4096)
                    page[0:8] = struct.pack("<Q", random_u64(p.pos, cap))
                    mm[0:4096] = bytes(page)
                    for _ in range(rnd.randint(1, 3)):
                        write_some(p, types, cap)
                elif r < 0.9:
                    fuzz_data(mm_put(mm), c, types, cap)
                for _ in range(rnd.randint(1, 4)):
                    drain_some(c, types)
                    free_all()
            finally:
                lib.kring_producer_close(p, rnd.randint(0, 1))
                lib.kring_consumer_close(c)
                free_all()
            if rnd.random() < 0.15:
                fuzz_meta(path, mm, cap)
    finally:
        mm.close()
        os.close(fd)
        os.unlink(path)


for k in range(iterations // 20):
    one_ring(k)
    heap_ring()
print(json.dumps(seen))
'''


@pytest.fixture(scope="module")
def asan_module(sanitizer_build):
    """pykring's extension built with -fsanitize=address,undefined (tests/sanitizer.py,
    shared by the session), with the fuzz script beside it."""
    b = sanitizer_build("asan")
    with open(os.path.join(b.directory, "fuzz.py"), "w") as f:
        f.write(ASAN_FUZZ)
    return b


#: The fuzz passes sizes malloc may refuse: that is a NULL for it, not an ASan report.
FUZZ_ASAN_OPTIONS = {"ASAN_OPTIONS": "halt_on_error=1:detect_leaks=0:allocator_may_return_null=1"}


def run_asan(asan_module, seed, iterations):
    prefix = unique_ring_name("asan")
    try:
        return sanitizer.run(asan_module, os.path.join(asan_module.directory, "fuzz.py"),
                             [str(seed), str(iterations), prefix], timeout=600, env=FUZZ_ASAN_OPTIONS)
    finally:
        # A run that aborted leaves its ring behind.
        for f in os.listdir("/dev/shm"):
            if f.startswith(prefix + "-"):
                remove_ring(f)


@pytest.mark.asan
def test_sanitizer_catches_overflow(asan_module):
    """The harness itself: an out-of-bounds drain into a too-small buffer is reported,
    so a clean fuzz run means something."""
    probe = os.path.join(asan_module.directory, "probe.py")
    with open(probe, "w") as f:
        f.write(ASAN_FUZZ.split("def make_meta")[0] + textwrap.dedent('''
            buf = tight(8)
            ffi.memmove(buf, b"x" * 9, 9)        # one byte past a malloc'd block
        '''))
    r = sanitizer.run(asan_module, probe, ["0", "0", "unused"], timeout=120)
    assert r.returncode != 0
    assert "ERROR: AddressSanitizer: heap-buffer-overflow" in r.stderr


@pytest.mark.asan
@pytest.mark.parametrize("seed", [1, 2])
def test_fuzz_under_asan_ubsan(asan_module, seed):
    r = run_asan(asan_module, seed, 5000)
    assert "ERROR: AddressSanitizer" not in r.stderr, r.stderr[-6000:]
    assert "runtime error:" not in r.stderr, r.stderr[-6000:]
    assert r.returncode == 0, r.stderr[-6000:]
    seen = json.loads(r.stdout.splitlines()[-1])
    # The fuzz reached what it is meant to exercise (else a clean run means little).
    reached = {"write ok", "write broken", "write inval", "drain 0/0", "drain -13/0",
               "drain -7/1", "drain -7/3", "drain -7/6", "drain -7/7", "meta open 0", "meta open -7"}
    assert reached <= {k for k, v in seen.items() if v}, seen
    assert seen["records"] > 1000, seen


# -- d. files that are not (usable) rings ------------------------------------------------

def test_missing_file(ring_name):
    with pytest.raises(pykring.RingNotFoundError) as info:
        pykring.attach(ring_name)
    assert isinstance(info.value, FileNotFoundError)
    assert isinstance(info.value, pykring.KringError)
    assert shm(ring_name) in str(info.value)
    with pytest.raises(FileNotFoundError):
        pykring.Producer(ring_name)


@pytest.mark.parametrize("content", [b"", b"KRNG", b"\0" * 8191, b"\0" * 8192,
                                     b"\0" * (8192 + 4096)],
                         ids=["empty", "4-bytes", "short", "two-zero-pages", "zero-ring-size"])
def test_not_a_ring(ring_name, content):
    with open(shm(ring_name), "wb") as f:
        f.write(content)
    with pytest.raises(pykring.VersionMismatchError, match="not a pykring ring"):
        pykring.attach(ring_name)
    with pytest.raises(pykring.VersionMismatchError):
        pykring.Producer(ring_name)
    assert peek(ring_name) == content                  # and left alone


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=st.binary(min_size=0, max_size=3 * 4096 + 100))
def test_random_file(ring_name, content):
    assume(content[4096 + 64:4096 + 68] != b"KRNG")
    with open(shm(ring_name), "wb") as f:
        f.write(content)
    with pytest.raises(pykring.VersionMismatchError):
        pykring.attach(ring_name)


def test_random_file_with_magic(ring_name):
    """Random bytes around a right magic and version: still refused, never trusted."""
    rng = np.random.default_rng(7)
    for _ in range(200):
        content = bytearray(rng.integers(0, 256, 8192 + 4096, dtype=np.uint8).tobytes())
        struct.pack_into("<IHH", content, 4096 + 64, lib.KRING_MAGIC, 1, 0)
        with open(shm(ring_name), "wb") as f:
            f.write(content)
        with pytest.raises((pykring.RingCorruptError, pykring.VersionMismatchError)):
            pykring.attach(ring_name).close()


def test_directory(ring_name):
    os.mkdir(shm(ring_name))
    try:
        with pytest.raises(pykring.KringError):
            pykring.attach(ring_name)
    finally:
        os.rmdir(shm(ring_name))


def _ring_file(ring_name):
    ring, _, _ = create_ring(ring_name, 4096)
    ring.close()


@pytest.mark.parametrize("offset, value", [
    (4096 + 64, struct.pack("<I", 0x474E524C)),
    (4096 + 64, b"GNRK"),
    (4096 + 68, struct.pack("<H", 2)),
    (4096 + 68, struct.pack("<H", 0)),
], ids=["magic+1", "magic-big-endian", "abi-major-2", "abi-major-0"])
def test_other_version(ring_name, offset, value):
    _ring_file(ring_name)
    poke(ring_name, offset, value)
    with pytest.raises(pykring.VersionMismatchError, match="incompatible ABI version"):
        pykring.attach(ring_name)
    with pytest.raises(pykring.VersionMismatchError):
        pykring.Producer(ring_name)


def test_newer_minor_accepted(ring_name):
    _ring_file(ring_name)
    poke(ring_name, 4096 + 70, struct.pack("<H", 7))
    pykring.attach(ring_name).close()
    pykring.Producer(ring_name).close()


@pytest.mark.parametrize("capacity", [8192, 1 << 20, 1 << 31])
def test_capacity_larger_than_file(ring_name, capacity):
    _ring_file(ring_name)
    poke(ring_name, 4096 + 80, struct.pack("<Q", capacity))
    with pytest.raises((pykring.RingCorruptError, pykring.VersionMismatchError)) as info:
        pykring.attach(ring_name)
    assert shm(ring_name) in str(info.value)
    with pytest.raises((pykring.RingCorruptError, pykring.VersionMismatchError)):
        pykring.Producer(ring_name)


@pytest.mark.parametrize("offset, value", [
    (4096 + 80, struct.pack("<Q", 8192)),          # capacity larger than the file
    (4096 + 80, struct.pack("<Q", 6000)),          # capacity not a power of two
    (4096 + 72, struct.pack("<I", 8192)),          # page_size
    (4096 + 192 + 24, struct.pack("<H", 0)),       # type id 0
], ids=["capacity-beyond-file", "capacity-not-pow2", "page-size", "type-id-0"])
def test_bad_description_message(ring_name, offset, value):
    _ring_file(ring_name)
    poke(ring_name, offset, value)
    with pytest.raises(pykring.RingCorruptError) as info:
        pykring.attach(ring_name)
    assert "no problem recorded" not in str(info.value)
    assert info.value.problem != reason(lib.KRING_BAD_NONE)


# Field 0 of the ring ("small".a, <u4 at 24 of a 30-byte record) is at 4096 + 832.
FIELD0 = 4096 + 832


@pytest.mark.parametrize("offset, value, what", [
    (FIELD0, b"seq\0", "bad field name"),                        # clashes with the event header
    (FIELD0, b"a b\0", "bad field name"),
    (FIELD0 + 24, b"|O8\0", "unsupported format"),
    (FIELD0 + 24, b"<U4\0", "unsupported format"),
    (FIELD0 + 40, struct.pack("<I", 28), "outside its"),          # 4 bytes at 28 of 30
    (4096 + 192, b"bad name\0", "type name"),
], ids=["field-seq", "field-space", "object", "unicode", "field-past-end", "type-name"])
def test_hostile_schema(ring_name, offset, value, what):
    """A schema the C checks let through is checked again before numpy sees it."""
    _ring_file(ring_name)
    saved = peek(ring_name, offset, len(value))
    poke(ring_name, offset, value)
    with pytest.raises(pykring.RingCorruptError, match=what):
        pykring.attach(ring_name)
    with pytest.raises(pykring.RingCorruptError, match=what):
        pykring.Producer(ring_name)
    # The failed attachments released their locks and mappings.
    poke(ring_name, offset, saved)
    with pykring.attach(ring_name), pykring.Producer(ring_name):
        pass


def test_no_permission(ring_name):
    _ring_file(ring_name)
    os.chmod(shm(ring_name), 0o622)               # others may write but not read
    code = textwrap.dedent('''
        import os, sys
        import pykring
        if os.getuid() == 0:
            os.setgid(65534)
            os.setuid(65534)
        for what in ("consumer", "producer"):
            try:
                pykring.attach(sys.argv[1]) if what == "consumer" else pykring.Producer(sys.argv[1])
            except pykring.KringPermissionError as e:
                assert isinstance(e, PermissionError), type(e).__mro__
                assert isinstance(e, pykring.KringError)
                print(what, "denied:", e)
            else:
                print(what, "ATTACHED")
    ''')
    if os.getuid() != 0:
        os.chmod(shm(ring_name), 0o200)
    r = subprocess.run([sys.executable, "-c", code, ring_name], capture_output=True, text=True,
                       timeout=120, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert [l.split()[:2] for l in lines] == [["consumer", "denied:"], ["producer", "denied:"]], r.stdout
    assert "permission denied" in lines[0].lower()


def test_second_consumer_and_producer(ring_name):
    ring, _, _ = create_ring(ring_name, 4096)
    with ring:
        with pytest.raises(pykring.RingBusyError) as info:
            pykring.attach(ring_name)
        assert isinstance(info.value, BlockingIOError)
        with pykring.Producer(ring_name) as prod:
            with pytest.raises(pykring.RingBusyError):
                pykring.Producer(ring_name)
            # The failed attachments changed nothing.
            assert prod.write(np.zeros(2, dtype=BODIES["small"]), type="small") == 2
            assert len(ring.read_batch()["small"]) == 2
        with pytest.raises(pykring.RingBusyError):
            pykring.attach(ring_name)
    # Released when closed.
    with pykring.attach(ring_name), pykring.Producer(ring_name):
        pass
