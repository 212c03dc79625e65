"""The C producer and drain against the pure-Python reference model
(tests/model.py): known-answer byte layouts, then a hypothesis state machine
that runs both side by side and compares bytes, records, counters and
positions after every step."""
import ctypes
import struct
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis.errors import InvalidArgument
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

class Boom(Exception):
    """Raised inside a view or reservation block."""


def row_bytes(rows):
    """The bytes of each row in place, as a (rows, itemsize) uint8 array:
    rows are strided views into the ring, and numpy's own copies of them
    (tobytes, np.array) leave the bytes between fields (the event header's
    `reserved`) undefined."""
    if not len(rows):
        return np.zeros((0, rows.dtype.itemsize), np.uint8)
    addr = rows.__array_interface__["data"][0]
    span_, size = rows.strides[0], rows.dtype.itemsize
    whole = (ctypes.c_uint8 * ((len(rows) - 1) * span_ + size)).from_address(addr)
    return np.lib.stride_tricks.as_strided(np.ctypeslib.as_array(whole), (len(rows), size), (span_, 1))


def fill_rows(rows, bodies):
    """Write each row's body bytes (everything after the event header) in place."""
    if len(rows):
        row_bytes(rows)[:, 24:] = bodies


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
        self.kept = None            # a field of a view's rows, kept past its block

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
        self.kept = None
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

    # -- zero copy -------------------------------------------------------------------
    @precondition(lambda self: self.prod is not None)
    @rule(data=st.data())
    def reserve(self, data):
        """Producer.reserve: rows filled in place, published at the end of the
        block; an exception in the block publishes nothing."""
        name = data.draw(st.sampled_from(sorted(self.bodies)), label="type")
        tid = self.ids[name]
        size = self.types[tid][0]
        sp = model.span(size)
        most = self.model.capacity // 4 // sp
        n = data.draw(st.integers(0, most + 1), label="n")
        flags = data.draw(st.integers(0, 0xFFFF), label="flags")
        fail = data.draw(st.booleans(), label="raises in the block")
        if n > most:
            with pytest.raises(ValueError, match="at most %d" % most):
                with self.prod.reserve(n, type=name):
                    pass
            return
        seed = data.draw(st.integers(0, 2 ** 32 - 1))
        bodies = np.random.default_rng(seed).integers(0, 256, (n, size - 24), dtype=np.uint8)
        t0 = time.time_ns()
        try:
            with self.prod.reserve(n, type=name, flags=flags) as rows:
                assert rows.dtype == self.full[name] and len(rows) == n and rows.flags.writeable
                fill_rows(rows, bodies)
                if fail:
                    raise Boom()
        except Boom:
            event("reserve: raised in the block")
        t1 = time.time_ns()
        # After the block: read-only, and emptied if in the ring (nothing was derived from it).
        assert not rows.flags.writeable and (len(rows) == 0 or rows.base is None)
        offsets = self.model.reserve(tid, [b.tobytes() for b in bodies], flags, publish=not fail)
        if offsets:
            stamps = {u64(self.raw, DATA + off + 16) for off in offsets}
            assert len(stamps) == 1, "one reservation, one timestamp"
            ts = stamps.pop()
            assert t0 <= ts <= t1
            self.model.stamp(offsets, ts)
        elif n and not fail:
            event("reserve: no room, dropped")
        assert self.prod.written == self.model.written
        assert self.prod.dropped == self.model.dropped

    @precondition(lambda self: self.model is not None)
    @rule(data=st.data())
    def view(self, data):
        """Ring.view: rows in place, consumed at the end of the block unless
        it raised; rows kept past the block hold the ring."""
        max_records = data.draw(st.one_of(st.none(), st.integers(0, 30)), label="max_records")
        fail = data.draw(st.booleans(), label="raises in the block")
        keep = self.kept is None and data.draw(st.booleans(), label="keep a field past the block")
        mark = self.model.snapshot()
        try:
            expected = self.model.view(max_records)
        except model.ClosedModel:
            event("view: closed")
            with pytest.raises(pykring.RingClosedError):
                with self.ring.view(max_records):
                    pass
            return
        if expected[0] == "copy":
            mark = expected[2]                  # a copy rewinds to the drain's start
        names = {tid: name for name, tid in self.ids.items()}
        try:
            with self.ring.view(max_records) as got:
                arrays = {next(iter(self.bodies)): got} if isinstance(got, np.ndarray) else dict(got)
                assert set(arrays) == set(self.bodies)
                want = {name: b"" for name in self.bodies}
                if expected[0] == "view":
                    event("view: in place")
                    _, tid, rows, start = expected
                    want[names[tid]] = b"".join(rows)
                    assert not arrays[names[tid]].flags.writeable
                    if keep and rows:
                        self.kept = arrays[names[tid]]["seq"]
                        self.kept_seqs = self.kept.tolist()
                        self.model.hold = start
                elif expected[0] == "copy":
                    event("view: copied")
                    for tid, row in expected[1].rows:
                        want[names[tid]] += row
                for name, a in arrays.items():
                    assert a.dtype == self.full[name]
                    got_bytes = row_bytes(a).tobytes() if a.base is not None and len(a) else a.tobytes()
                    assert got_bytes == want[name], name
                if fail:
                    raise Boom()
        except Boom:
            self.model.restore(mark)
        self.model.commit()

    @precondition(lambda self: self.kept is not None)
    @rule()
    def release_kept(self):
        """The rows kept past a view go; the next call publishes past them."""
        assert self.kept.tolist() == self.kept_seqs, "kept rows were overwritten"
        self.kept = None
        self.ring.commit()
        self.model.hold = None
        self.model.commit()

    # -- after every step ------------------------------------------------------------
    @invariant()
    def agrees_with_model(self):
        if self.model is None:
            return
        if self.kept is not None:
            assert self.kept.tolist() == self.kept_seqs, "kept rows were overwritten"
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


# -- runs of one type: the drain's fast path against the model --------------------------
#
# The drain delivers a record that passed every check, then the records
# right behind it with the same header word and type without dispatching on
# each (csrc/kring_drain.c, drain_run). These tests lay out runs and
# everything that may end one: a DISCARD or BUSY record, another type with
# the same length, a record of the same type and another length, a bad
# record, the end of the data area (with padding, across it, exactly at
# it), producer_pos (at a record boundary with more of the run behind it,
# or inside a record), the rows left for the type, max_records; and
# sequence numbers that jump, arrive late or are huge in the middle of a
# run. The C drain runs over memory of this process (kring_consumer_init)
# so that the data area can also be mapped "twice" (two equal halves, as a
# BPF ring) and the bytes right after a singly mapped one can be made to
# look like more of the run; every drain is compared with model.parse, row
# bytes, positions, errors and the sequence accounting.

# 1 and 3: the same length; 4 and 5: variable length (5: longer than the run's
# loop-free row copies, which take records of up to 128 bytes)
RUN_TYPES = {1: (64, 64), 2: (40, 40), 3: (64, 64), 4: (120, 32), 5: (300, 24)}
CANARY = 0xA5


def run_record(tid, length, seq, word=None):
    """(header word, payload bytes) of a record: the event header, then a body
    that carries the sequence number (so rows of different records differ)."""
    body = struct.pack("<QQHHI", seq & model.U64, seq * 7 & model.U64, tid, 0x5A, 0)
    body += (struct.pack("<Q", seq & model.U64) * (length // 8 + 1))[:max(0, length - 24)]
    return (length if word is None else word), body[:length] if length >= 24 else b""


def lay_out(capacity, start, pieces, double_mapped):
    """The data area with `pieces` from ring position `start` on, as a producer
    would write them. A piece is (header word, payload, how): how "pad" (a
    record that does not fit before the end goes to offset 0 behind a DISCARD
    pad, the user-mode producer's way) or "cross" (it crosses the end: a BPF
    ring's way, corrupt in a singly mapped one). Stops before the ring would
    overflow. Returns (area, end position, [(position, word, final word)] of
    the records, final word: the word after a BUSY one is finished)."""
    area = bytearray(capacity)
    mask = capacity - 1
    pos, placed = start, []
    for word, payload, how, final in pieces:
        sp = model.span(word & model.LEN_MASK)
        off = pos & mask
        pad = capacity - off if off + sp > capacity and how == "pad" else 0
        if (pos + pad + sp - start) > capacity:
            break
        if pad:
            struct.pack_into("<II", area, off, (pad - 8) | model.DISCARD, 0)
            placed.append((pos, (pad - 8) | model.DISCARD, (pad - 8) | model.DISCARD))
            pos += pad
            off = 0
        rec = struct.pack("<II", word, 0) + payload
        for i, b in enumerate(rec):
            area[(off + i) & mask] = b
        placed.append((pos, word, final))
        pos += sp
    return area, pos, placed


class HeapDrain:
    """kring_consumer_init over a consumer page, a producer page and a data area
    in this process's memory. Doubly mapped: the area twice, both halves kept
    equal. Singly mapped: behind the area, a copy of its first bytes (what a
    drain reading past the end would find if the area were mapped twice)."""

    def __init__(self, capacity, types, start, double_mapped, seq=None):
        self.capacity = capacity
        self.cons = ffi.new("struct kring_consumer_page *")
        self.prod = ffi.new("struct kring_producer_page *")
        self.data = ffi.new("uint8_t[]", 2 * capacity)
        self.cons.consumer_pos = start
        self.prod.producer_pos = start
        self.c = ffi.new("struct kring_consumer *")
        assert lib.kring_consumer_init(self.c, self.cons, self.prod, self.data, capacity,
                                       int(double_mapped), 0) == lib.KRING_OK
        for tid, (size, mn) in types.items():
            assert lib.kring_consumer_set_type(self.c, tid, size, mn) == lib.KRING_OK
        if seq is not None:
            self.c.seq_started, self.c.next_seq = 1, seq

    def put(self, area, producer_pos):
        ffi.memmove(self.data, bytes(area) * 2, 2 * self.capacity)
        self.prod.producer_pos = producer_pos

    def drain(self, types, max_records, room, first, zeroed, commit, slack=300):
        """kring_drain into rows of each type: `room[tid]` rows after `first[tid]`
        rows already there (None: no rows at all, a NULL buffer), `slack` more
        rows behind them that must stay untouched (more than the records in the
        ring: a drain that overran its rows would write there, not past the
        buffer). Returns (rc, n, {tid: bytes of the new rows})."""
        outs = ffi.new("struct kring_out[]", lib.KRING_MAX_TYPES)
        bufs = {}
        for tid, (size, _) in types.items():
            if room.get(tid) is None:
                continue
            nrows = first[tid] + room[tid]
            fill = 0 if zeroed else CANARY
            bufs[tid] = ffi.new("uint8_t[]", (nrows + slack) * size)
            ffi.memmove(bufs[tid], bytes([fill]) * ((nrows + slack) * size), (nrows + slack) * size)
            outs[tid].buf, outs[tid].capacity, outs[tid].count = bufs[tid], nrows, first[tid]
            outs[tid].zeroed = int(zeroed)
        n = ffi.new("uint64_t *")
        rc = lib.kring_drain(self.c, outs, model.U64 if max_records is None else max_records, int(commit), n)
        rows = {}
        for tid, buf in bufs.items():
            size = types[tid][0]
            raw = bytes(ffi.buffer(buf))
            got = int(outs[tid].count)
            fill = bytes([0 if zeroed else CANARY])
            assert raw[:first[tid] * size] == fill * (first[tid] * size), "rows before count touched"
            assert raw[got * size:] == fill * (len(raw) - got * size), "rows past the new ones touched"
            rows[tid] = raw[first[tid] * size:got * size]
        return rc, int(n[0]), rows


def note(what):
    """hypothesis.event inside a hypothesis test; nothing in a plain one."""
    try:
        event(what)
    except InvalidArgument:
        pass


def check_runs(capacity, start, pieces, double_mapped, cut, reads, seq=None):
    """Lay out `pieces`, publish up to `cut` (None: all of it; an int: the
    position of that record; "mid": 8 bytes into the last record), then drain
    with `reads` [(max_records, room {tid: rows or None}, first rows, zeroed,
    commit)] (cycled) against model.parse until it stops; then finish every
    BUSY record and drain on. Returns the model's records delivered, by type,
    and the C consumer."""
    types = RUN_TYPES
    area, end, placed = lay_out(capacity, start, pieces, double_mapped)
    if cut is None or not placed:
        prod = end
    elif cut == "mid":
        prod = placed[-1][0] + 8
    else:
        prod = placed[min(cut, len(placed) - 1)][0]
    prod &= model.U64
    h = HeapDrain(capacity, types, start, double_mapped, seq)
    h.put(area, prod)
    acc = model.SeqState(0 if seq is None else seq, 0, seq is not None)
    pos, records, delivered = start, 0, {tid: 0 for tid in types}
    finished = False
    for i in range(4 * len(reads) + 8):
        max_records, room, first, zeroed, commit = reads[i % len(reads)]
        left = {tid: r for tid, r in room.items() if r is not None}
        d = model.parse(area, capacity, types, pos, prod, max_records, left, double_mapped)
        rc, n, rows = h.drain(types, max_records, room, first, zeroed, commit)
        assert n == len(d.rows)
        for tid in types:
            want = b"".join(r for t, r in d.rows if t == tid)
            assert rows.get(tid, b"") == want, tid
            delivered[tid] += sum(1 for t, _ in d.rows if t == tid)
        acc.account(d.seqs)
        records += n
        if d.error is not None:
            assert rc == lib.KRING_E_CORRUPT
            assert (h.c.err_reason, h.c.err_pos, h.c.err_value) == (d.error.reason, d.error.pos, d.error.value)
        else:
            assert rc == lib.KRING_OK
        pos = d.pos
        assert h.c.pos == pos and h.c.records == records
        assert (h.c.next_seq, h.c.gaps & model.U64, bool(h.c.seq_started)) == \
            (acc.next_seq, acc.gaps & model.U64, acc.started)
        if commit:
            assert h.cons.consumer_pos == pos
        if d.error is not None:
            note("runs: corrupt, reason %d" % d.error.reason)
            break
        if pos == prod:
            note("runs: drained to producer_pos")
            break
        if not d.rows and not finished:
            stuck = struct.unpack_from("<I", area, pos & (capacity - 1))[0]
            if stuck & model.BUSY:
                # The producer finishes its BUSY records (a BPF program's commit).
                for p, word, final in placed:
                    struct.pack_into("<I", area, p & (capacity - 1), final)
                h.put(area, prod)
                finished = True
                note("runs: BUSY records finished")
    return delivered, h.c


def run_piece(tid, length, seqs, how="pad"):
    return [(*run_record(tid, length, s), how, length) for s in seqs]


ALL_ROWS = ((None, {t: 300 for t in RUN_TYPES}, {t: 0 for t in RUN_TYPES}, False, True),)


def test_run_of_one_type_known_answer():
    # 100 records of 64 bytes, seqs 5..104: one drain delivers them all, in order.
    got, _ = check_runs(8192, 0, run_piece(1, 64, range(5, 105)), False, None, ALL_ROWS, seq=5)
    assert got == {1: 100, 2: 0, 3: 0, 4: 0, 5: 0}
    h = HeapDrain(8192, RUN_TYPES, 0, False, seq=5)
    area, end, _ = lay_out(8192, 0, run_piece(1, 64, range(5, 105)), False)
    h.put(area, end)
    rc, n, rows = h.drain(RUN_TYPES, None, {1: 100}, {1: 0}, False, True)
    assert (rc, n, h.c.pos, h.c.next_seq, h.c.gaps) == (lib.KRING_OK, 100, 7200, 105, 0)
    assert [struct.unpack_from("<Q", rows[1], 64 * i)[0] for i in range(100)] == list(range(5, 105))


def discard(length):
    return (length | model.DISCARD, b"", "pad", length | model.DISCARD)


def busy(tid, length, seq, final_discard=False):
    word, body = run_record(tid, length, seq)
    final = length | (model.DISCARD if final_discard else 0)
    return (length | model.BUSY, body, "pad", final)


@pytest.mark.parametrize("double_mapped", [False, True])
@pytest.mark.parametrize("case", [
    "discard", "busy", "busy-discard", "other-type", "other-length", "bad-type", "bad-size",
    "short", "gap", "late", "huge-seq", "wrap-pad", "wrap-exact", "wrap-cross", "cut-at-record",
    "cut-mid-record", "rows", "max-records", "first-rows", "zeroed"])
def test_run_ends(case, double_mapped):
    """Each way a run can end, one at a time, with a run before and after it."""
    a, b = list(range(0, 20)), list(range(21, 41))
    start, cut, reads, seq = 0, None, ALL_ROWS, 0
    mid = {
        # A cancelled record keeps its bytes (bpf_ringbuf_discard): this one
        # looks like more of the run but for its DISCARD bit.
        "discard": [(64 | model.DISCARD, run_record(1, 64, 20)[1], "pad", 64 | model.DISCARD)],
        "busy": [busy(1, 64, 20)],
        "busy-discard": [busy(1, 64, 20, final_discard=True)],
        "other-type": run_piece(3, 64, [20]),
        "other-length": [],
        "bad-type": [(*run_record(9, 64, 20), "pad", 64)],
        "bad-size": [(*run_record(1, 56, 20), "pad", 56)],
        "short": [(16, b"\1" * 16, "pad", 16)],
        "gap": run_piece(1, 64, [25]),          # then 26..45: 5 lost
        "late": run_piece(1, 64, [3]),          # then 20..39: one gap filled late
        "huge-seq": run_piece(1, 64, [model.U64 - 1]),
    }.get(case, run_piece(1, 64, [20]))
    tid, length = 1, 64
    if case == "gap":
        b = list(range(26, 46))
    if case == "late":
        b = list(range(20, 40))
    if case == "other-length":
        tid, length = 4, 64
        mid = run_piece(4, 40, [20])
    if case.startswith("wrap"):
        # The run reaches the end of the data area: 40 records of span 72 from
        # 8192 - 72 * 30 (+ 8: not a whole number of spans before the end).
        start = 8192 - 72 * 30 + (0 if case == "wrap-exact" else 8)
        how = "cross" if case == "wrap-cross" else "pad"
        pieces = run_piece(1, 64, range(41), how)
    else:
        pieces = run_piece(tid, length, a) + mid + run_piece(tid, length, b)
    if case == "cut-at-record":
        cut = 27                # the rest of the run is in memory behind producer_pos
    if case == "cut-mid-record":
        cut = "mid"
    if case == "rows":
        reads = ((None, {1: 7, 2: 0, 3: 0, 4: 0, 5: 0}, {t: 0 for t in RUN_TYPES}, False, True),)
    if case == "max-records":
        reads = ((5, {1: 100}, {1: 0}, False, False), (13, {1: 100}, {1: 0}, False, True))
    if case == "first-rows":
        reads = ((None, {1: 9, 3: 1}, {1: 4, 3: 2}, False, True),)
    if case == "zeroed":
        tid, length = 4, 40
        pieces = run_piece(4, 40, a) + run_piece(4, 64, [20]) + run_piece(4, 40, b)
        reads = ((None, {4: 100}, {4: 1}, True, True),)
    got, c = check_runs(8192, start, pieces, double_mapped, cut, reads, seq)
    total = sum(got.values())
    if case == "gap":
        assert (c.next_seq, c.gaps) == (46, 5)
    if case == "late":
        assert (c.next_seq, c.gaps) == (40, -1)
    expect = {"bad-type": 20, "bad-size": 20, "short": 20, "cut-at-record": 27, "cut-mid-record": 40,
              "discard": 40, "busy-discard": 40}.get(case, 41)
    if case == "wrap-cross" and not double_mapped:
        expect = 29             # the 30th crosses the end: corrupt in a singly mapped ring
    if case == "wrap-exact":
        expect = 41
    assert total == expect, got


@st.composite
def run_pieces(draw):
    """Runs of one type and length, and what ends them, one after another."""
    pieces = []
    last = (1, 64)
    seq = draw(st.integers(0, 1000), label="first seq")
    for _ in range(draw(st.integers(1, 8), label="pieces")):
        kind = draw(st.sampled_from(["run"] * 4 + ["discard", "busy", "bad"]), label="kind")
        tid = draw(st.sampled_from(sorted(RUN_TYPES)), label="type")
        size, mn = RUN_TYPES[tid]
        length = draw(st.integers(mn, size), label="length")
        if pieces and kind != "run" and draw(st.booleans(), label="like the run before"):
            # The type and length of the run before: only a flag bit or the type
            # tells this record from more of the run.
            tid, length = last
            size, mn = RUN_TYPES[tid]
        how = draw(st.sampled_from(["pad", "pad", "cross"]), label="at the end")
        if kind == "run":
            last = (tid, length)
            n = draw(st.integers(1, 40), label="run length")
            seqs = list(range(seq, seq + n))
            for _ in range(draw(st.integers(0, 2), label="seq jumps")):
                i = draw(st.integers(0, n - 1))
                seqs[i] = draw(st.one_of(st.integers(seqs[i] - 30, seqs[i] + 30),
                                         st.integers(0, model.U64)), label="seq") & model.U64
            pieces += run_piece(tid, length, seqs, how)
            seq += n
        elif kind == "discard":
            dlen = draw(st.one_of(st.just(length), st.integers(0, 200)), label="discard length")
            # A cancelled record keeps its bytes: maybe those of a record of this type.
            body = run_record(tid, dlen, seq)[1] if draw(st.booleans(), label="discard body") else b""
            pieces.append((dlen | model.DISCARD, body, how, dlen | model.DISCARD))
        elif kind == "busy":
            pieces.append(busy(tid, length, seq, draw(st.booleans(), label="finished as DISCARD")))
            seq += 1
        else:
            bad = draw(st.sampled_from(["type", "size", "short"]), label="bad")
            if bad == "type":
                pieces.append((*run_record(draw(st.sampled_from([0, 5, 15, 16, 0xFFFF])), length, seq), how, length))
            elif bad == "size":
                blen = draw(st.sampled_from([24, mn - 8, size + 8]))
                if mn <= blen <= size or blen < 24:
                    blen = size + 8
                pieces.append((*run_record(tid, blen, seq), how, blen))
            else:
                pieces.append((16, b"\1" * 16, how, 16))
    return pieces


RUN_READ = st.tuples(
    st.one_of(st.none(), st.integers(0, 50)),                                   # max_records
    st.fixed_dictionaries({tid: st.one_of(st.none(), st.integers(0, 60)) for tid in RUN_TYPES}),
    st.fixed_dictionaries({tid: st.integers(0, 3) for tid in RUN_TYPES}),       # rows already there
    st.booleans(),                                                              # zeroed rows
    st.booleans())                                                              # commit


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(capacity=st.sampled_from([4096, 8192]),
       start=st.one_of(st.just(0), st.integers(0, 1023).map(lambda x: x * 8),
                       st.integers(0, 2 ** 40).map(lambda x: x * 8), st.just((1 << 64) - 2048)),
       pieces=run_pieces(),
       double_mapped=st.booleans(),
       cut=st.one_of(st.none(), st.just("mid"), st.integers(0, 200)),
       reads=st.lists(RUN_READ, min_size=1, max_size=4),
       seq=st.one_of(st.none(), st.integers(0, 2000)))
def test_runs_against_model(capacity, start, pieces, double_mapped, cut, reads, seq):
    """Random runs and what ends them, drained in random batches into random
    rows, against the model (check_runs)."""
    got, _ = check_runs(capacity, start, pieces, double_mapped, cut, reads, seq)
    if max(got.values()) >= 10:
        event("runs: 10 or more records of one type delivered")


@pytest.mark.parametrize("zeroed", [False, True])
@pytest.mark.parametrize("length", [24, 25, 31, 32, 33, 40, 63, 64, 65, 100, 127, 128, 129, 200, 300])
def test_run_row_copies(length, zeroed):
    """Runs of every length around the bounds of the run's row copies (one
    for 24..32, 33..64, 65..128 bytes, a loop beyond): each row holds its
    record's bytes, zeros to the row's end and nothing else, in rows that are
    dirty (zero-filled by the drain) or zero already (left alone past len)."""
    pieces = run_piece(5, length, range(30)) + run_piece(5, 24 + (length + 7) % 277, [30]) + \
        run_piece(5, length, range(31, 60))
    reads = ((None, {5: 70}, {5: 1}, zeroed, True),)
    start = 32768 - 20 * model.span(length) + 8        # the 20th record is padded to the start
    got, c = check_runs(32768, start, pieces, False, None, reads, seq=0)
    assert got[5] == 60 and (c.next_seq, c.gaps) == (60, 0)
