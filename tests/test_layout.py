"""Known-answer layout tests: include/kring/kring.h as compiled == the numbers in its
static asserts == the table below == the tables in docs/PROTOCOL.md == the
numpy dtypes; constants; schema round trips; bad schemas rejected."""
import os
import re
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import pykring
from pykring._lib import ffi, lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HEADER = os.path.join(ROOT, "include", "kring", "kring.h")
PROTOCOL = os.path.join(ROOT, "docs", "PROTOCOL.md")

# struct -> (size, [(field, offset, size), ...]); every byte accounted for.
LAYOUT = {
    "kring_record_header": (8, [
        ("len", 0, 4), ("pg_off", 4, 4)]),
    "kring_event_header": (24, [
        ("seq", 0, 8), ("ts_ns", 8, 8), ("type", 16, 2), ("flags", 18, 2), ("reserved", 20, 4)]),
    "kring_consumer_page": (4096, [
        ("consumer_pos", 0, 8), ("reserved0", 8, 56), ("waiting", 64, 4), ("consumer_flags", 68, 4),
        ("reserved2", 72, 4024)]),
    "kring_field": (48, [
        ("name", 0, 24), ("format", 24, 16), ("offset", 40, 4), ("reserved", 44, 4)]),
    "kring_type": (40, [
        ("name", 0, 24), ("id", 24, 2), ("nfields", 26, 2), ("first_field", 28, 2),
        ("reserved", 30, 2), ("size", 32, 4), ("min_size", 36, 4)]),
    "kring_producer_page": (4096, [
        ("producer_pos", 0, 8), ("wake_seq", 8, 4), ("producer_waiting", 12, 4),
        ("reserved0", 16, 48),
        ("magic", 64, 4), ("abi_major", 68, 2), ("abi_minor", 70, 2), ("page_size", 72, 4),
        ("ntypes", 76, 4), ("capacity", 80, 8), ("data_offset", 88, 8), ("nfields", 96, 4),
        ("flags", 100, 4), ("producer_pid", 104, 4), ("reserved1", 108, 4), ("reserved2", 112, 16),
        ("written", 128, 8), ("dropped", 136, 8), ("reserved3", 144, 48),
        ("types", 192, 640), ("fields", 832, 3072), ("reserved4", 3904, 192)]),
}


def c_layout(struct_name):
    """(size, [(field, offset, size)]) of a struct as the C compiler laid it out."""
    ctype = ffi.typeof("struct " + struct_name)
    fields = [(name, ffi.offsetof(ctype, name), ffi.sizeof(f.type)) for name, f in ctype.fields]
    return ffi.sizeof(ctype), fields


def header_structs():
    """Names of the structs kring.h declares in its cdef section."""
    with open(HEADER) as f:
        text = f.read()
    section = re.search(r"@cdef-begin.*?@cdef-end", text, re.S).group(0)
    return sorted(set(re.findall(r"^struct (kring_\w+) \{", section, re.M)))


# -- the table, the compiler, the static asserts ------------------------------

def test_table_covers_every_struct_in_the_header():
    assert sorted(LAYOUT) == header_structs()


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_c_layout_equals_table(name):
    assert c_layout(name) == LAYOUT[name]


@pytest.mark.parametrize("name", sorted(LAYOUT))
def test_table_has_no_holes(name):
    size, fields = LAYOUT[name]
    end = 0
    for field, off, fsize in fields:
        assert off == end, "%s.%s starts at %d, the previous field ends at %d" % (name, field, off, end)
        end = off + fsize
    assert end == size


def _eval_const(expr):
    """Evaluate the right side of a static assert: integers, KRING_* constants, * and +."""
    expr = expr.strip()
    assert re.fullmatch(r"[\w\s*+()]+", expr), expr
    names = {n: getattr(lib, n) for n in re.findall(r"\bKRING_\w+\b", expr)}
    return eval(expr, {"__builtins__": {}}, names)


def static_asserts():
    """[(kind, struct, field or None, expected)] from KRING_STATIC_ASSERT lines of kring.h."""
    with open(HEADER) as f:
        text = f.read()
    out = []
    for cond in re.findall(r"^KRING_STATIC_ASSERT\((.*),\s*\w+\);\s*$", text, re.M):
        m = re.fullmatch(r"\s*sizeof\(struct (\w+)\)\s*==\s*(.+)", cond)
        if m:
            out.append(("sizeof", m.group(1), None, _eval_const(m.group(2))))
            continue
        m = re.fullmatch(r"\s*offsetof\(struct (\w+),\s*(\w+)\)\s*==\s*(.+)", cond)
        if m:
            out.append(("offsetof", m.group(1), m.group(2), _eval_const(m.group(3))))
            continue
        m = re.fullmatch(r"\s*(KRING_\w+)\s*==\s*(.+)", cond)
        assert m, "static assert not understood by this test: %r" % cond
        out.append(("const", m.group(1), None, _eval_const(m.group(2))))
    return out


def test_static_asserts_parsed():
    asserts = static_asserts()
    # Every struct's size is asserted, and the parse found the offsets.
    assert {s for kind, s, _, _ in asserts if kind == "sizeof"} == set(LAYOUT)
    assert sum(1 for a in asserts if a[0] == "offsetof") >= 17


def test_static_asserts_equal_compiler_and_table():
    for kind, sname, field, expected in static_asserts():
        if kind == "sizeof":
            assert ffi.sizeof("struct " + sname) == expected, sname
            assert LAYOUT[sname][0] == expected, sname
        elif kind == "offsetof":
            assert ffi.offsetof("struct " + sname, field) == expected, (sname, field)
            assert dict((f, o) for f, o, _ in LAYOUT[sname][1])[field] == expected, (sname, field)
        else:
            assert getattr(lib, sname) == expected, sname


# -- docs/PROTOCOL.md ------------------------------------------------------------

def _doc_int(cell):
    """'64', '0x40', '@64', '`64`', '16 x 40', '16 × 40' -> int, or None."""
    cell = cell.strip().strip("`*@ ").replace(",", "").replace("_", "")
    if not cell:
        return None
    try:
        return int(cell, 0)
    except ValueError:
        pass
    parts = re.split(r"\s*[x×*]\s*", cell)
    try:
        value = 1
        for p in parts:
            value *= int(p, 0)
        return value
    except ValueError:
        return None


def protocol_tables(text):
    """{struct name: [(field, offset, size)]} from markdown tables under a
    heading that names a struct of kring.h, with offset/size/field columns."""
    tables = {}
    current = None
    columns = None
    for line in text.splitlines():
        if line.lstrip().startswith("#"):
            m = re.search(r"\b(kring_\w+)\b", line)
            current = m.group(1) if m and m.group(1) in LAYOUT else None
            columns = None
            continue
        if current is None or not line.strip().startswith("|"):
            if not line.strip():
                continue
            if not line.strip().startswith("|"):
                columns = None
            continue
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        lower = [c.strip("`* ").lower() for c in cells]
        if "offset" in lower and "size" in lower and "field" in lower:
            columns = (lower.index("offset"), lower.index("size"), lower.index("field"))
            continue
        if columns is None or all(re.fullmatch(r":?-+:?", c) for c in cells if c):
            continue
        if max(columns) >= len(cells):
            continue
        off, size = _doc_int(cells[columns[0]]), _doc_int(cells[columns[1]])
        m = re.match(r"`?([A-Za-z_]\w*)", cells[columns[2]])
        if off is None or size is None or not m:
            continue
        tables.setdefault(current, []).append((m.group(1), off, size))
    return tables


def test_protocol_doc_tables_equal_c_layout():
    # docs/PROTOCOL.md is the normative description and a deliverable: a
    # missing document is a failure, not a skip.
    assert os.path.exists(PROTOCOL), "docs/PROTOCOL.md is missing: it must document the ring layout"
    with open(PROTOCOL, encoding="utf-8") as f:
        tables = protocol_tables(f.read())
    missing = sorted(set(LAYOUT) - set(tables))
    assert not missing, "docs/PROTOCOL.md has no offset/size/field table for %s" % missing
    for sname, rows in tables.items():
        _, fields = c_layout(sname)
        by_name = {f: (o, s) for f, o, s in fields}
        for field, off, size in rows:
            assert field in by_name, "PROTOCOL.md lists %s.%s, which kring.h does not have" % (sname, field)
            assert (off, size) == by_name[field], \
                "PROTOCOL.md: %s.%s at %d size %d, C has %s" % (sname, field, off, size, by_name[field])
        documented = {f for f, _, _ in rows}
        undocumented = [f for f, _, _ in fields if f not in documented]     # reserved space is ABI too
        assert not undocumented, "PROTOCOL.md: %s lacks rows for %s" % (sname, undocumented)


def test_protocol_table_parser():
    # The parser above must find rows in the documented shape, or the doc
    # test could pass on a document it does not understand.
    doc = """
## Pages
### struct kring_type
| offset | size | field | meaning |
|-------:|-----:|-------|---------|
| 0 | 24 | `name` | type name |
| 24 | 2 | id | id |
| 0x20 | 4 | size | bytes |
### struct kring_producer_page
| Offset | Size | Field | Writer |
|---|---|---|---|
| 192 | 16 x 40 | `types[16]` | creator |
Other text | not a row
### Something else
| 1 | 2 | len |
"""
    assert protocol_tables(doc) == {
        "kring_type": [("name", 0, 24), ("id", 24, 2), ("size", 32, 4)],
        "kring_producer_page": [("types", 192, 640)],
    }


# -- event header, dtypes ---------------------------------------------------------

def test_event_header_fields_match_c():
    assert pykring.HEADER_FIELDS == (("seq", "<u8", 0), ("ts", "<M8[ns]", 8),
                                     ("type", "<u2", 16), ("flags", "<u2", 18))
    cfields = {"seq": "seq", "ts": "ts_ns", "type": "type", "flags": "flags"}
    ctype = ffi.typeof("struct kring_event_header")
    ctypes = dict(ctype.fields)
    for name, fmt, off in pykring.HEADER_FIELDS:
        assert off == ffi.offsetof(ctype, cfields[name])
        assert np.dtype(fmt).itemsize == ffi.sizeof(ctypes[cfields[name]].type)
    assert lib.KRING_EVENT_HEADER_SIZE == ffi.sizeof(ctype) == 24


def test_ring_dtype_starts_with_event_header(ring_name):
    body = np.dtype([("x", "<f8"), ("n", "<u4")])
    with pykring.create(ring_name, 4096, body) as ring:
        dt = ring.dtype
    assert dt.names[:4] == ("seq", "ts", "type", "flags")
    for name, fmt, off in pykring.HEADER_FIELDS:
        assert dt.fields[name][0] == np.dtype(fmt)
        assert dt.fields[name][1] == off
    assert dt.fields["x"][1] == 24 and dt.fields["n"][1] == 32
    assert dt.itemsize == 24 + body.itemsize == 36


def test_record_dtype_body_dtype_round_trip():
    body = np.dtype({"names": ["p", "q", "r"], "formats": ["<u2", "<f4", "S3"],
                     "offsets": [4, 0, 8], "itemsize": 13})
    full = pykring.record_dtype(body)
    assert full.itemsize == 24 + 13
    assert [full.fields[n][1] for n in ("p", "q", "r")] == [28, 24, 32]
    assert pykring.body_dtype(full) == body
    assert pykring.record_dtype(pykring.body_dtype(full)) == full


# -- constants ---------------------------------------------------------------------

def test_constants():
    assert lib.KRING_MAGIC == 0x474E524B
    assert struct.pack("<I", lib.KRING_MAGIC) == b"KRNG"
    assert lib.KRING_ABI_MAJOR == 1
    assert lib.KRING_BUSY_BIT == 0x80000000
    assert lib.KRING_DISCARD_BIT == 0x40000000
    assert lib.KRING_LEN_MASK == 0x3FFFFFFF
    assert lib.KRING_BUSY_BIT & lib.KRING_DISCARD_BIT == 0
    assert (lib.KRING_BUSY_BIT | lib.KRING_DISCARD_BIT) & lib.KRING_LEN_MASK == 0
    assert lib.KRING_BUSY_BIT | lib.KRING_DISCARD_BIT | lib.KRING_LEN_MASK == 0xFFFFFFFF
    assert lib.KRING_PAGE_SIZE == 4096
    assert lib.KRING_DATA_OFFSET == 8192
    assert lib.KRING_ALIGN == 8
    assert lib.KRING_RECORD_HEADER_SIZE == 8
    assert lib.KRING_MIN_CAPACITY == 4096
    assert lib.KRING_MAX_CAPACITY == 1 << 31
    assert lib.KRING_MAX_TYPES == 16
    assert lib.KRING_MAX_FIELDS == 64
    assert lib.KRING_ABI_MINOR == 2
    assert lib.KRING_NAME_LEN == 24
    assert lib.KRING_FORMAT_LEN == 16
    flags = [lib.KRING_F_CLOSED, lib.KRING_F_BROKEN, lib.KRING_F_PRODUCER, lib.KRING_F_BLOCKING]
    assert flags == [1, 2, 4, 8]
    assert lib.KRING_C_ATTACHED == 1


def test_new_ring_file_bytes(ring_name):
    """The producer page of a freshly created ring, read from the file."""
    a = np.dtype([("x", "<u4"), ("name", "S5")])
    b = np.dtype([("v", "(3,)<f8")])
    with pykring.create(ring_name, 8192, {"alpha": a, "beta": b}):
        with open(os.path.join("/dev/shm", ring_name), "rb") as f:
            raw = f.read()
    assert len(raw) == 8192 + 8192
    # The consumer page is zeroed but for consumer_flags: KRING_C_ATTACHED (ABI 1.1).
    assert raw[:68] == bytes(68) and raw[72:4096] == bytes(4096 - 72)
    assert struct.unpack_from("<I", raw, 68) == (lib.KRING_C_ATTACHED,)
    page = raw[4096:8192]
    assert page[64:68] == b"KRNG"
    magic, major, minor, page_size, ntypes, cap, data_off, nfields, flags = \
        struct.unpack_from("<IHHIIQQII", page, 64)
    assert (magic, major, minor, page_size, ntypes, cap, data_off, nfields) == (
        0x474E524B, 1, lib.KRING_ABI_MINOR, 4096, 2, 8192, 8192, 3)
    assert struct.unpack_from("<QII", page, 0) == (0, 0, 0)        # producer_pos, wake_seq, waiting
    assert struct.unpack_from("<QQ", page, 128) == (0, 0)          # written, dropped

    def cstr(b):
        return b.split(b"\0", 1)[0]

    types = [struct.unpack_from("<24sHHHHII", page, 192 + 40 * i) for i in range(2)]
    assert [(cstr(t[0]), t[1], t[2], t[3], t[5], t[6]) for t in types] == [
        (b"alpha", 1, 2, 0, 24 + 9, 24 + 9), (b"beta", 2, 1, 2, 24 + 24, 24 + 24)]
    fields = [struct.unpack_from("<24s16sII", page, 832 + 48 * i) for i in range(3)]
    assert [(cstr(f[0]), cstr(f[1]), f[2]) for f in fields] == [
        (b"x", b"<u4", 24), (b"name", b"|S5", 28), (b"v", b"(3,)<f8", 24)]
    assert page[832 + 48 * 3:] == bytes(4096 - 832 - 48 * 3)         # unused entries and reserve
    assert raw[8192:] == bytes(8192)                                 # data area zeroed


# -- schema round trips ------------------------------------------------------------

SCHEMA = {
    "scalars": np.dtype([("u8", "<u8"), ("i1", "i1"), ("f2", "<f2"), ("b", "?"), ("c", "<c16")]),
    "text": np.dtype([("name", "S5"), ("path", "S17"), ("n", "<u4")]),        # unaligned: 26 bytes
    "times": np.dtype([("t", "<M8[ns]"), ("us", "<M8[us]"), ("d", "<m8[ms]"), ("s", "<M8[s]")]),
    "arrays": np.dtype([("v", "(3,)<f8"), ("m", "(2,3)<i2"), ("tag", "(4,)S2"), ("big", ">u4")]),
    "odd": np.dtype({"names": ["p", "q"], "formats": ["<u2", "<f4"], "offsets": [4, 0],
                     "itemsize": 13}),                                           # offsets out of order
    "byte": np.dtype([("x", "u1")]),
    "raw": np.dtype([("blob", "V7")]),
}


def test_schema_round_trip(ring_name):
    with pykring.create(ring_name, 1 << 16, SCHEMA, unlink=False) as ring:
        created = ring.dtypes
    expected = {name: pykring.record_dtype(dt) for name, dt in SCHEMA.items()}
    assert created == expected
    # Read back from the producer page by fresh attachments.
    with pykring.attach(ring_name) as ring:
        assert list(ring.dtypes) == list(SCHEMA)
        assert ring.dtypes == expected
        for name, dt in SCHEMA.items():
            assert pykring.body_dtype(ring.dtypes[name]) == dt
        with pykring.Producer(ring_name) as p:
            assert p.dtypes == expected
            # And the bytes of a record survive the trip.
            sent = {}
            for name, dt in SCHEMA.items():
                raw = bytes((i * 37 + len(name)) & 0xFF for i in range(dt.itemsize * 2))
                sent[name] = np.frombuffer(raw, dtype=dt)
                assert p.write(sent[name], type=name) == 2
        batch = ring.read_batch()
        for name, dt in SCHEMA.items():
            got = batch[name]
            assert got.dtype == expected[name]
            assert len(got) == 2
            assert got.tobytes()[24:24 + dt.itemsize] == sent[name][:1].tobytes()


_FORMATS = ["<u1", "<i2", ">u4", "<i8", "<f4", ">f8", "<c8", "?", "S1", "S3", "S16", "V5",
            "<M8[ns]", "<M8[us]", "<m8[s]", "(2,)<u4", "(3,2)<i1", "(5,)S3", "(2,)<M8[ms]"]


@st.composite
def body_dtypes(draw, max_fields=6):
    n = draw(st.integers(1, max_fields))
    names = draw(st.lists(st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,22}", fullmatch=True)
                          .filter(lambda s: s not in ("seq", "ts", "type", "flags")),
                          min_size=n, max_size=n, unique=True))
    formats = [np.dtype(draw(st.sampled_from(_FORMATS))) for _ in names]
    packed = draw(st.booleans())
    if packed:
        dt = np.dtype(list(zip(names, formats)))
        pad = draw(st.integers(0, 9))
        return np.dtype({"names": dt.names, "formats": [dt.fields[k][0] for k in dt.names],
                         "offsets": [dt.fields[k][1] for k in dt.names],
                         "itemsize": dt.itemsize + pad})
    order = draw(st.permutations(range(n)))
    offsets, pos = [0] * n, 0
    for i in order:
        pos += draw(st.integers(0, 3))
        offsets[i] = pos
        pos += formats[i].itemsize
    return np.dtype({"names": names, "formats": formats, "offsets": offsets,
                     "itemsize": pos + draw(st.integers(0, 5))})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(types=st.dictionaries(st.from_regex(r"[a-z][a-z0-9_]{0,22}", fullmatch=True),
                             body_dtypes(), min_size=1, max_size=6))
def test_schema_round_trip_property(ring_name, types):
    nfields = sum(len(dt.names) for dt in types.values())
    if nfields > lib.KRING_MAX_FIELDS:
        with pytest.raises(ValueError, match="at most 64 fields"):
            pykring.create(ring_name, 1 << 14, types)
        return
    with pykring.create(ring_name, 1 << 14, types, unlink=False) as ring:
        assert ring.dtypes == {n: pykring.record_dtype(dt) for n, dt in types.items()}
    try:
        with pykring.attach(ring_name) as ring:
            assert list(ring.dtypes) == list(types)
            for name, dt in types.items():
                assert pykring.body_dtype(ring.dtypes[name]) == dt
    finally:
        os.unlink(os.path.join("/dev/shm", ring_name))


# -- bad schemas ---------------------------------------------------------------------

OK = np.dtype([("x", "<u4")])


@pytest.mark.parametrize("types, exc, match", [
    ({"r": np.dtype([("seq", "<u4")])}, ValueError, r"taken by the event header"),
    ({"r": np.dtype([("x", "<u4"), ("ts", "<f8")])}, ValueError, r"taken by the event header"),
    ({"r": np.dtype([("o", "O")])}, TypeError, r"not supported"),
    ({"r": np.dtype([("u", "<U4")])}, TypeError, r"not supported"),
    ({"r": np.dtype([("nested", [("a", "u1")])])}, TypeError, r"not supported"),
    ({"r": np.dtype("<u4")}, TypeError, r"structured dtype"),
    ({}, ValueError, r"1 to 15 record types"),
    ({"t%d" % i: OK for i in range(16)}, ValueError, r"1 to 15 record types"),
    ({"t%d" % i: np.dtype([("f%d" % j, "u1") for j in range(13)]) for i in range(5)},
     ValueError, r"at most 64 fields"),
    ({"x" * 24: OK}, ValueError, r"type name .* at most 23 characters"),
    ({"9lives": OK}, ValueError, r"type name"),
    ({"r": np.dtype([("f" * 24, "u1")])}, ValueError, r"field name .* at most 23 characters"),
])
def test_bad_schema_rejected(ring_name, types, exc, match):
    with pytest.raises(exc, match=match):
        pykring.create(ring_name, 4096, types)
    assert not os.path.exists(os.path.join("/dev/shm", ring_name))


def test_longest_names_accepted(ring_name):
    types = {"t" * 23: np.dtype([("f" * 23, "u1")])}
    with pykring.create(ring_name, 4096, types) as ring:
        assert list(ring.dtypes) == ["t" * 23]
        assert "f" * 23 in ring.dtypes["t" * 23].names


@pytest.mark.parametrize("capacity", [0, -4096, 2048, 4095, 6000, 4097, 3 << 12, 1 << 32, 4096.0, "4096"])
def test_bad_capacity_rejected(ring_name, capacity):
    with pytest.raises(ValueError, match=r"capacity must be a power of two"):
        pykring.create(ring_name, capacity, OK)
    assert not os.path.exists(os.path.join("/dev/shm", ring_name))


def test_record_too_large_for_ring(ring_name):
    # A record's span (8 + 24 + body, 8-aligned) must fit in half the ring.
    largest = 2048 - 8 - 24
    with pykring.create(ring_name, 4096, np.dtype([("b", "V%d" % largest)])) as ring:
        assert ring.dtype.itemsize == 2048 - 8
    with pytest.raises(ValueError, match=r"does not fit .* capacity of at least 8192"):
        pykring.create(ring_name, 4096, np.dtype([("b", "V%d" % (largest + 1))]))
    assert not os.path.exists(os.path.join("/dev/shm", ring_name))
    with pykring.create(ring_name, 8192, np.dtype([("b", "V%d" % (largest + 1))])) as ring:
        assert ring.capacity == 8192


@pytest.mark.parametrize("fmt", ["(10000,)<M8[ns]", "(100,20)<M8[ns]"])
def test_longest_field_format_accepted(ring_name, fmt):
    # 15 characters + NUL fill the 16-byte format field exactly.
    assert len(fmt) == lib.KRING_FORMAT_LEN - 1
    with pykring.create(ring_name, 1 << 18, np.dtype([("t", fmt)]), unlink=False) as ring:
        assert ring.dtype.fields["t"][0] == np.dtype(fmt)
    with pykring.attach(ring_name) as ring:
        assert ring.dtype.fields["t"][0] == np.dtype(fmt)
    with open(os.path.join("/dev/shm", ring_name), "rb") as f:
        f.seek(4096 + 832 + 24)
        assert f.read(16) == fmt.encode() + b"\0"


@pytest.mark.parametrize("fmt", ["(100,200)<M8[ns]", "(2,3,4,5,6)<M8[ns]", "(123456,)<M8[ns]"])
def test_field_format_too_long_for_schema(ring_name, fmt):
    # Longer than 15 characters: refused with a clear error, never truncated.
    with pytest.raises(ValueError, match=r"field 't'.*format") as info:
        pykring.create(ring_name, 1 << 28, np.dtype([("t", fmt)]))
    # A bad argument, not a broken ring.
    assert not isinstance(info.value, pykring.KringError)
    assert not os.path.exists(os.path.join("/dev/shm", ring_name))


# -- ABI 1.2: 64 schema fields -------------------------------------------------------

def test_ring_with_64_fields_round_trips(ring_name):
    """ABI 1.2 raised KRING_MAX_FIELDS from 48 to 64 (entries 48..63 were reserve):
    a ring using all 64 is made and read back; one more is refused."""
    types = {"t%d" % i: np.dtype([("f%d" % j, "<u4") for j in range(16)]) for i in range(4)}
    with pykring.create(ring_name, 1 << 14, types, unlink=False) as ring:
        ring_dtypes = dict(ring.dtypes)
    try:
        with pykring.attach(ring_name) as ring:
            assert ring.dtypes == ring_dtypes and len(ring.dtypes["t3"].names) == 4 + 16
        page = open(os.path.join("/dev/shm", ring_name), "rb").read()[4096:8192]
        assert struct.unpack_from("<HI", page, 70)[0] == 2                     # abi_minor
        assert struct.unpack_from("<I", page, 96) == (64,)                     # nfields
        assert page[3904:] == bytes(192)                                        # reserved4
        last = struct.unpack_from("<24s", page, 832 + 48 * 63)[0].split(b"\0")[0]
        assert last == b"f15"
    finally:
        os.unlink(os.path.join("/dev/shm", ring_name))
    types["t4"] = np.dtype([("x", "u1")])
    with pytest.raises(ValueError, match="at most 64 fields"):
        pykring.create(ring_name, 1 << 14, types)


@pytest.mark.parametrize("minor, exc, match", [
    (2, pykring.RingCorruptError, r"nfields is more than 64$"),
    (3, pykring.VersionMismatchError, r"incompatible version"),
])
def test_more_fields_than_this_reader_knows(ring_name, minor, exc, match):
    """A ring listing more fields than this library's fields[] holds: corrupt if it
    claims this ABI minor, a version mismatch if a newer minor made it (a newer
    minor gives meaning to bytes this reader keeps as reserve)."""
    meta = lib.kring_meta_problem
    with pykring.create(ring_name, 1 << 14, {"r": np.dtype([("x", "<u4")])}, unlink=False):
        pass
    path = os.path.join("/dev/shm", ring_name)
    try:
        with open(path, "r+b") as f:
            f.seek(4096 + 70)
            f.write(struct.pack("<H", minor))
            f.seek(4096 + 96)
            f.write(struct.pack("<I", 65))
        with pytest.raises(exc, match=match):
            pykring.attach(ring_name)
        m = ffi.new("struct kring_producer_page *")
        ffi.memmove(m, open(path, "rb").read()[4096:8192], 4096)
        assert lib.kring_meta_check(m, 0) == (lib.KRING_E_VERSION if minor > 2 else lib.KRING_E_CORRUPT)
        why = ffi.string(meta(m, 0)).decode()
        assert why.startswith("nfields is more than 64") and ("newer ABI minor" in why) == (minor > 2)
    finally:
        os.unlink(path)
