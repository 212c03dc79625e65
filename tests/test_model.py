"""The C producer and drain against the pure-Python reference model
(tests/model.py): known-answer byte layouts, then a hypothesis state machine
that runs both side by side and compares bytes, records, counters and
positions after every step."""
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition,
                                 rule)

import pykring
from pykring._lib import ffi, lib
from pykring.schema import make_meta, normalize_types

from tests import model
from tests.ringutil import remove_ring, shm, unique_ring_name

DATA = 8192




def raw_view(name):
    """A read-only live view of the whole ring file."""
    return np.memmap(shm(name), dtype=np.uint8, mode="r")


def u64(view, offset):
    return int(view[offset:offset + 8].view("<u8")[0])


# -- known answers ------------------------------------------------------------------

BODY = np.dtype([("x", "<u4"), ("tag", "S3")])          # 7 bytes: payload 31, span 40


def test_three_records_known_bytes(ring_name):
    with pykring.create(ring_name, 4096, BODY) as ring, pykring.Producer(ring_name) as p:
        t0 = time.time_ns()
        assert p.write([(0x11223344, b"abc"), (5, b"d"), (0xFFFFFFFF, b"xyz")], flags=0x8001) == 3
        t1 = time.time_ns()
        raw = raw_view(ring_name)
        data = bytes(raw[DATA:DATA + 4096])
        assert u64(raw, 4096) == 3 * 40                       # producer_pos
        assert u64(raw, 0) == 0                               # consumer_pos: nothing read yet
        assert struct.unpack_from("<QQ", bytes(raw[4096 + 128:4096 + 144])) == (3, 0)
        ts = struct.unpack_from("<Q", data, 16)[0]
        assert t0 <= ts <= t1
        bodies = [struct.pack("<I3s", 0x11223344, b"abc"), struct.pack("<I3s", 5, b"d"),
                  struct.pack("<I3s", 0xFFFFFFFF, b"xyz")]
        for i, body in enumerate(bodies):
            rec = data[40 * i:40 * (i + 1)]
            assert struct.unpack_from("<II", rec) == (31, 0)            # len, pg_off
            assert struct.unpack_from("<QQHHI", rec, 8) == (i, ts, 1, 0x8001, 0)
            assert rec[32:39] == body
            assert rec[39:40] == b"\0"                                 # alignment padding untouched
        assert data[120:] == bytes(4096 - 120)
        # The same bytes from the model.
        m = model.RingModel(4096, {1: (31, 31)})
        m.stamp(m.write(1, bodies, flags=0x8001), ts)
        assert bytes(m.data) == data
        # And what the consumer delivers.
        got = ring.read()
        assert got["seq"].tolist() == [0, 1, 2]
        assert (got["ts"].astype("<i8") == ts).all()
        assert got["type"].tolist() == [1, 1, 1] and got["flags"].tolist() == [0x8001] * 3
        assert got["x"].tolist() == [0x11223344, 5, 0xFFFFFFFF]
        assert got["tag"].tolist() == [b"abc", b"d", b"xyz"]
        assert u64(raw, 0) == 120                             # published once per batch
        del raw


def test_discard_padding_known_bytes(ring_name):
    # span = round_up(8 + 24 + 1312, 8) = 1344: three fit (4032), a fourth needs
    # the 64 bytes to the end as padding plus 1344 bytes at offset 0.
    body = np.dtype([("b", "V1312")])
    with pykring.create(ring_name, 4096, body) as ring, pykring.Producer(ring_name) as p:
        recs = np.zeros(4, dtype=body)
        assert p.write(recs) == 3
        assert p.dropped == 1                                 # 64 bytes left: full
        raw = raw_view(ring_name)
        assert u64(raw, 4096) == 4032
        assert bytes(raw[DATA + 4032:DATA + 4096]) == bytes(64)   # no padding written when full
        assert len(ring.read(max_records=1)) == 1                 # frees 1344 bytes
        assert p.write(np.frombuffer(b"\x01" * 1312, dtype=body)) == 1
        assert u64(raw, 4096) == 4096 + 1344
        pad = struct.unpack_from("<II", bytes(raw[DATA + 4032:DATA + 4040]))
        assert pad == (56 | lib.KRING_DISCARD_BIT, 0)
        assert struct.unpack_from("<IIQ", bytes(raw[DATA:DATA + 16])) == (1336, 0, 4)   # seq 4: 3 was dropped
        got = ring.read()
        assert got["seq"].tolist() == [1, 2, 4]
        assert got[2:3].tobytes()[24:] == b"\x01" * 1312
        st_ = ring.stats
        assert (st_.written, st_.dropped, st_.lost, st_.read, st_.pending_bytes) == (4, 1, 1, 4, 0)
        assert u64(raw, 0) == 4096 + 1344
        del raw


def test_read_batch_grows_buffers(ring_name):
    """More records of a type than 1024 rows (read_batch's old first buffer): one
    call delivers them all, and stops exactly at max_records."""
    a, b = np.dtype([("i", "<u4")]), np.dtype([("j", "<u8"), ("k", "u1")])
    with pykring.create(ring_name, 1 << 19, {"a": a, "b": b}) as ring, \
            pykring.Producer(ring_name) as p:
        m = model.RingModel(1 << 19, {1: (28, 28), 2: (33, 33)})
        for chunk in range(6):
            ra = np.zeros(700, dtype=a)
            ra["i"] = np.arange(700) + 1000 * chunk
            rb = np.zeros(300, dtype=b)
            rb["j"] = np.arange(300) + 1000 * chunk
            assert p.write(ra, type="a") == 700
            assert p.write(rb, type="b") == 300
            m.stamp(m.write(1, [r.tobytes() for r in ra]), 0)
            m.stamp(m.write(2, [r.tobytes() for r in rb]), 0)
        for max_records in (4100, None):
            got = ring.read_batch(max_records=max_records)
            expect = m.drain(max_records)
            for tid, name in ((1, "a"), (2, "b")):
                rows = got[name]
                want = np.frombuffer(b"".join(r for t, r in expect.rows if t == tid), dtype=rows.dtype)
                assert len(rows) == len(want)
                # Every field (bytes 20..23 are no field: see test_grown_rows_are_verbatim).
                for field in rows.dtype.names:
                    if field != "ts":
                        assert (rows[field] == want[field]).all(), (name, field)
        assert ring.stats.read == 6000 and ring.stats.lost == 0
        assert (len(got["a"]), len(got["b"])) == (4200 - 2900, 1800 - 1200)   # after 4100 of 6000


def test_grown_rows_are_verbatim(ring_name):
    # A body with a hole: the producer writes all 8 body bytes, no field covers 0..3.
    body = np.dtype({"names": ["p"], "formats": ["<u2"], "offsets": [4], "itemsize": 8})
    with pykring.create(ring_name, 1 << 17, body) as ring, pykring.Producer(ring_name) as p:
        junk = [np.full(1 << 16, 0x41, np.uint8) for _ in range(16)]   # dirty the heap
        del junk
        raw = np.arange(3000 * 8, dtype=np.uint32).astype(np.uint8).tobytes()
        assert p.write(np.frombuffer(raw, dtype=body)) == 3000
        got = ring.read_batch()["record"]
        assert len(got) == 3000
        rows = np.frombuffer(got.tobytes(), dtype=np.uint8).reshape(3000, 32)
        assert not rows[:, 20:24].any()                               # reserved: 0
        assert rows[:, 24:].tobytes() == raw                          # payload verbatim


def test_model_known_answers():
    """The model on its own: spans, padding, drops and sequence numbers."""
    assert [model.span(n) for n in (24, 25, 31, 32, 33)] == [32, 40, 40, 40, 48]
    m = model.RingModel(4096, {1: (1336, 1336), 2: (24, 24)})
    big = bytes(1312)
    assert m.write(1, [big] * 4) == [0, 1344, 2688]
    assert (m.written, m.dropped, m.seq, m.producer_pos) == (3, 1, 4, 4032)
    d = m.drain(max_records=1)
    assert [seq for seq in d.seqs] == [0] and m.consumer_pos == 1344
    assert m.write(2, [b""] * 3) == [4032, 4064, 0]       # small records fill the tail, then wrap
    assert struct.unpack_from("<I", m.data, 4032)[0] == 24
    assert m.write(1, [big]) == []                        # 1344 > 1312 free: dropped
    d = m.drain()
    assert d.seqs == [1, 2, 4, 5, 6]
    assert m.lost == 1                                    # seq 3; seq 7 is dropped but not seen yet
    assert m.write(1, [big]) == [32]                      # right after the last record
    assert m.drain().seqs == [8] and m.lost == 2
    m.close_producer()
    with pytest.raises(model.ClosedModel):
        m.drain()


def test_model_parse_rejects():
    types = {1: (40, 32)}
    data = bytearray(4096)
    struct.pack_into("<II", data, 0, 20, 0)                                   # short
    assert model.parse(data, 4096, types, 0, 32).error == model.Corrupt(model.BAD_SHORT, 0, 20)
    struct.pack_into("<IIQQH", data, 0, 32, 0, 0, 0, 2)                       # unknown type
    assert model.parse(data, 4096, types, 0, 40).error == model.Corrupt(model.BAD_TYPE, 0, 2)
    struct.pack_into("<IIQQH", data, 0, 28, 0, 0, 0, 1)                       # below min_size
    assert model.parse(data, 4096, types, 0, 40).error == model.Corrupt(model.BAD_SIZE, 0, 28)
    assert model.parse(data, 4096, types, 0, 16).error.reason == model.BAD_LENGTH
    assert model.parse(data, 4096, types, 0, 12).error.reason == model.BAD_PRODUCER_POS
    struct.pack_into("<II", data, 4088, 8 | model.DISCARD, 0)
    assert model.parse(data, 4096, types, 4088, 4112).error.reason == model.BAD_STRADDLE
    struct.pack_into("<II", data, 0, 32 | model.BUSY, 0)
    d = model.parse(data, 4096, types, 0, 40)
    assert d.error is None and d.rows == [] and d.pos == 0


@pytest.mark.parametrize("full", [False, True])
def test_write_strided_array(ring_name, full):
    with pykring.create(ring_name, 4096, BODY) as ring, pykring.Producer(ring_name) as p:
        dt = ring.dtype if full else BODY
        arr = np.zeros(6, dtype=dt)
        arr["x"] = np.arange(6)
        arr["tag"] = [b"a", b"b", b"c", b"d", b"e", b"f"]
        assert p.write(arr[::2]) == 3
        got = ring.read()
        assert got["x"].tolist() == [0, 2, 4]
        assert got["tag"].tolist() == [b"a", b"c", b"e"]


# -- the state machine ----------------------------------------------------------------

CAPACITIES = [4096, 8192, 16384]


def make_body(size, choice):
    """A body dtype of `size` bytes: up to three fields of different kinds, then
    a bytes field for the rest (so the itemsize is anything, aligned or not)."""
    kinds = ["<u8", "<f4", "S5", "<M8[us]", "(2,)<i2", "u1", ">u2"]
    fields, pos = [], 0
    for _ in range(3):
        fmt = kinds[choice % len(kinds)]
        choice //= len(kinds)
        if pos + np.dtype(fmt).itemsize > size:
            break
        fields.append(("f%d" % len(fields), fmt))
        pos += np.dtype(fmt).itemsize
    if pos < size:
        fields.append(("rest", "S%d" % (size - pos)))
    return np.dtype(fields)


class RingMachine(RuleBasedStateMachine):
    """A ring with several record types, its producer and consumer, and the model."""

    def __init__(self):
        super().__init__()
        self.name = None
        self.ring = None
        self.prod = None
        self.raw = None
        self.model = None

    @initialize(data=st.data())
    def create(self, data):
        cap = data.draw(st.sampled_from(CAPACITIES), label="capacity")
        ntypes = data.draw(st.integers(1, 4), label="ntypes")
        max_body = cap // 2 - 8 - 24
        self.bodies, self.ids = {}, {}
        var = False
        for i in range(ntypes):
            size = data.draw(st.one_of(st.integers(1, 48), st.integers(1, min(max_body, 700))),
                             label="body size")
            self.bodies["t%d" % i] = make_body(size, data.draw(st.integers(0, 7 ** 3 - 1)))
        types = normalize_types(self.bodies)
        meta = make_meta(cap, types)
        mins = {}
        for i, name in enumerate(self.bodies):
            size = int(meta.types[i].size)
            mn = size
            if data.draw(st.booleans(), label="variable length"):
                mn = data.draw(st.integers(24, size), label="min_size")
                var = var or mn < size
            meta.types[i].min_size = mn
            self.ids[name] = int(meta.types[i].id)
            mins[self.ids[name]] = (size, mn)
        self.name = unique_ring_name("model")
        if var:
            assert lib.kring_shm_create(shm(self.name).encode(), meta, 0o600) == lib.KRING_OK
            self.ring = pykring.attach(self.name)
            started = False      # an attaching consumer takes the first number it sees
        else:
            self.ring = pykring.create(self.name, cap, self.bodies, unlink=False)
            started = True
        self.prod = pykring.Producer(self.name)
        self.raw = raw_view(self.name)
        self.model = model.RingModel(cap, mins, seq_started=started)
        self.types = mins
        self.full = {name: self.ring.dtypes[name] for name in self.bodies}

    def teardown(self):
        if self.prod is not None:
            self.prod.close()
        if self.ring is not None:
            self.ring.close()
        self.raw = None
        if self.name is not None:
            remove_ring(self.name)

    # -- writing ---------------------------------------------------------------------
    def _after_write(self, done, tid, bodies, flags, t0, t1):
        before = self.model.producer_pos
        offsets = self.model.write(tid, bodies, flags)
        assert done == len(offsets)
        if done < len(bodies):
            event("write: ring full, records dropped")
        if before // self.model.capacity != self.model.producer_pos // self.model.capacity:
            event("write: wrapped around")
        if any(24 + len(b) < self.types[tid][0] for b in bodies[:done]):
            event("write: variable-length record")
        if offsets:
            stamps = {u64(self.raw, DATA + off + 16) for off in offsets}
            assert len(stamps) == 1, "one write call, one timestamp"
            ts = stamps.pop()
            assert t0 <= ts <= t1
            self.model.stamp(offsets, ts)
        assert self.prod.written == self.model.written
        assert self.prod.dropped == self.model.dropped

    @precondition(lambda self: self.prod is not None)
    @rule(data=st.data())
    def write(self, data):
        """Producer.write with fixed-size records, as body-only or full-dtype arrays."""
        name = data.draw(st.sampled_from(sorted(self.bodies)), label="type")
        body, full = self.bodies[name], self.full[name]
        n = data.draw(st.integers(0, 40), label="n")
        flags = data.draw(st.integers(0, 0xFFFF), label="flags")
        use_full = data.draw(st.booleans(), label="full dtype")
        seed = data.draw(st.integers(0, 2 ** 32 - 1))
        dt = full if use_full else body
        # (strided arrays: see test_write_strided_array)
        raw = np.random.default_rng(seed).integers(0, 256, n * dt.itemsize, dtype=np.uint8)
        arr = raw.view(dt)
        skip = 24 if use_full else 0        # the header fields of a full-dtype array are ignored
        bodies = [raw[i * dt.itemsize + skip:i * dt.itemsize + skip + body.itemsize].tobytes()
                  for i in range(n)]
        tid = self.ids[name]
        t0 = time.time_ns()
        done = self.prod.write(arr, type=name, flags=flags)
        t1 = time.time_ns()
        self._after_write(done, tid, bodies, flags, t0, t1)

    @precondition(lambda self: self.prod is not None)
    @rule(data=st.data())
    def write_lengths(self, data):
        """kring_write with a lens array (variable-length records) or one short len."""
        name = data.draw(st.sampled_from(sorted(self.bodies)), label="type")
        tid = self.ids[name]
        size, mn = self.types[tid]
        lo, hi = mn - 24, size - 24
        n = data.draw(st.integers(0, 40), label="n")
        per_record = data.draw(st.booleans(), label="lens array")
        lens = [data.draw(st.integers(lo, hi)) for _ in range(n)] if per_record else \
            [data.draw(st.integers(lo, hi))] * n
        stride = hi + data.draw(st.integers(0, 9), label="stride slack")
        flags = data.draw(st.integers(0, 0xFFFF), label="flags")
        seed = data.draw(st.integers(0, 2 ** 32 - 1))
        src = np.random.default_rng(seed).integers(0, 256, max(1, n * stride), dtype=np.uint8)
        bodies = [src[i * stride:i * stride + lens[i]].tobytes() for i in range(n)]
        done = ffi.new("uint64_t *")
        clens = ffi.new("uint32_t[]", lens) if per_record else ffi.NULL
        t0 = time.time_ns()
        rc = lib.kring_write(self.prod._p, tid, ffi.cast("uint8_t *", ffi.from_buffer(src)), stride,
                             lens[0] if (n and not per_record) else hi, clens, n, flags, 0, done)
        t1 = time.time_ns()
        assert rc == lib.KRING_OK
        self._after_write(int(done[0]), tid, bodies, flags, t0, t1)

    @precondition(lambda self: self.prod is not None)
    @rule()
    def close_producer(self):
        self.prod.close()
        self.prod = None
        self.model.close_producer()

    @precondition(lambda self: self.model is not None and self.prod is None)
    @rule()
    def reopen_producer(self):
        self.prod = pykring.Producer(self.name)
        self.model.open_producer()

    # -- reading ---------------------------------------------------------------------
    def _expect(self, max_records, commit):
        """(rows by type name, closed?) from the model."""
        try:
            d = self.model.drain(max_records, commit)
        except model.ClosedModel:
            return None
        by_name = {name: [] for name in self.bodies}
        names = {tid: name for name, tid in self.ids.items()}
        for tid, row in d.rows:
            by_name[names[tid]].append(row)
        return by_name

    @precondition(lambda self: self.model is not None)
    @rule(data=st.data())
    def read_batch(self, data):
        max_records = data.draw(st.one_of(st.none(), st.integers(0, 30)), label="max_records")
        commit = data.draw(st.booleans(), label="commit")
        expected = self._expect(max_records, commit)
        if expected is None:
            event("read_batch: closed")
            with pytest.raises(pykring.RingClosedError):
                self.ring.read_batch(max_records, commit=commit)
            return
        if sum(len(rows) for rows in expected.values()) and self.model.pending_bytes:
            event("read_batch: partial drain")
        # The census that sizes read_batch's rows counts exactly what it delivers.
        counts = ffi.new("uint64_t[]", lib.KRING_MAX_TYPES)
        total = lib.kring_census(self.ring._c, (1 << 62) if max_records is None else max_records, counts)
        assert total == sum(len(rows) for rows in expected.values())
        assert {name: counts[self.ids[name]] for name in expected} == {n: len(r) for n, r in expected.items()}
        batch = self.ring.read_batch(max_records, commit=commit)
        assert list(batch) == list(self.bodies)
        for name, rows in expected.items():
            got = batch[name]
            assert got.dtype == self.full[name]
            assert len(got) == len(rows), name
            assert got.tobytes() == b"".join(rows), name

    @precondition(lambda self: self.model is not None and len(self.bodies) == 1)
    @rule(data=st.data())
    def read(self, data):
        """Ring.read on a single-type ring, into a new array or a caller's `out`."""
        name = next(iter(self.bodies))
        max_records = data.draw(st.one_of(st.none(), st.integers(0, 30)), label="max_records")
        commit = data.draw(st.booleans(), label="commit")
        out = None
        limit = max_records
        if data.draw(st.booleans(), label="out"):
            out = np.frombuffer(b"\xa5" * (self.full[name].itemsize * 25), dtype=self.full[name]).copy()
            limit = 25 if max_records is None else min(25, max_records)
        expected = self._expect(limit, commit)
        if expected is None:
            with pytest.raises(pykring.RingClosedError):
                self.ring.read(max_records, out=out, commit=commit)
            return
        got = self.ring.read(max_records, out=out, commit=commit)
        assert got.tobytes() == b"".join(expected[name])

    @precondition(lambda self: self.model is not None)
    @rule()
    def commit(self):
        self.ring.commit()
        self.model.commit()

    # -- after every step ------------------------------------------------------------
    @invariant()
    def agrees_with_model(self):
        if self.model is None:
            return
        m = self.model
        s = self.ring.stats
        assert (s.written, s.dropped, s.lost, s.read, s.pending_bytes, s.capacity) == (
            m.written, m.dropped, m.lost, m.records_read, m.pending_bytes, m.capacity)
        assert u64(self.raw, 4096) == m.producer_pos
        assert u64(self.raw, 0) == m.consumer_pos
        assert u64(self.raw, 4096 + 128) == m.written
        assert u64(self.raw, 4096 + 136) == m.dropped
        assert self.raw[DATA:DATA + m.capacity].tobytes() == bytes(m.data)
        flags = self.ring.flags & (lib.KRING_F_CLOSED | lib.KRING_F_PRODUCER | lib.KRING_F_BROKEN)
        assert flags == (lib.KRING_F_CLOSED if m.closed else lib.KRING_F_PRODUCER)


RingMachine.TestCase.settings = settings(
    max_examples=300, stateful_step_count=50, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
test_ring_against_model = RingMachine.TestCase
