"""Records to Arrow and pandas: every field kind arrives with its value (read
back through pyarrow's and pandas' own accessors), kernel batches with
``argv`` as a list of strings, and a clear message without the extras."""
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pandas as pd
import pytest

import pykring
from pykring import events
from pykring.events import start_strings

DT = np.dtype([("i1", "i1"), ("u1", "u1"), ("i2", "<i2"), ("u2", "<u2"), ("i4", "<i4"), ("u4", "<u4"),
               ("i8", "<i8"), ("u8", "<u8"), ("f4", "<f4"), ("f8", "<f8"), ("ok", "?"),
               ("name", "S8"), ("vec", "<u2", (3,)), ("grid", "<f8", (2, 2)), ("tags", "S4", (2,)),
               ("when", "<M8[us]")])
ROWS = [
    (-128, 255, -32768, 65535, -2 ** 31, 2 ** 32 - 1, -2 ** 63, 2 ** 64 - 1, 1.5, -np.inf, True,
     b"8 bytes!", [1, 2, 65535], [[0.5, 1], [2, 3]], [b"ab", b""], np.datetime64("2026-12-01T13:00:00.123456")),
    (127, 0, 32767, 0, 2 ** 31 - 1, 0, 2 ** 63 - 1, 0, np.nan, 1e300, False,
     b"\xc3\xa9t\xc3\xa9", [0, 0, 0], [[-1, -2], [-3, -4]], [b"abcd", b"x"], np.datetime64("1970-01-01")),
    (0, 1, 0, 1, 0, 1, 0, 1, -0.0, 2.5, True,
     b"bad\xff", [7, 8, 9], [[0, 0], [0, 0]], [b"", b"\xfe"], np.datetime64("2000-02-29T00:00:00")),
]


def text(b):
    return b.decode("utf-8", "replace")


@pytest.fixture
def records(ring_name):
    """The rows through a real ring: header fields (seq, ts) added by it."""
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        p.write(ROWS)
        out = ring.read()
    assert len(out) == len(ROWS)
    return out


def column(rb, name):
    return rb.column(rb.schema.get_field_index(name))


def test_every_field_kind_to_arrow(records):
    rb = pykring.to_arrow(records)
    assert isinstance(rb, pa.RecordBatch) and rb.num_rows == len(ROWS)
    assert rb.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    assert column(rb, "ts").cast(pa.int64()).to_pylist() == records["ts"].view("i8").tolist()
    for name in ("seq", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8", "f4", "f8", "ok"):
        got = column(rb, name).to_numpy(zero_copy_only=False)
        assert got.dtype == records.dtype[name], name
        np.testing.assert_array_equal(got, records[name], err_msg=name)
    assert np.signbit(column(rb, "f4").to_numpy()[2])          # -0.0 kept
    assert rb.schema.field("name").type == pa.string()
    assert column(rb, "name").to_pylist() == ["8 bytes!", "été", "bad\ufffd"]
    assert rb.schema.field("vec").type == pa.list_(pa.uint16(), 3)
    assert column(rb, "vec").to_pylist() == records["vec"].tolist()
    assert rb.schema.field("grid").type == pa.list_(pa.list_(pa.float64(), 2), 2)
    assert column(rb, "grid").to_pylist() == records["grid"].tolist()
    assert column(rb, "tags").to_pylist() == [[text(t) for t in row] for row in records["tags"].tolist()]
    assert rb.schema.field("when").type == pa.timestamp("us")
    assert column(rb, "when").cast(pa.int64()).to_pylist() == records["when"].view("i8").tolist()


def test_binary_keeps_the_bytes(records):
    rb = pykring.to_arrow(records, binary=True)
    assert rb.schema.field("name").type == pa.binary()
    assert column(rb, "name").to_pylist() == records["name"].tolist()
    assert column(rb, "tags").to_pylist() == records["tags"].tolist()


def test_to_pandas(records):
    df = pykring.to_pandas(records)
    assert isinstance(df, pd.DataFrame) and len(df) == len(ROWS)
    assert str(df["ts"].dt.tz) == "UTC"
    assert (df["ts"].astype("int64").tolist()) == records["ts"].view("i8").tolist()
    for name in ("i8", "u8", "f8", "ok"):
        np.testing.assert_array_equal(df[name].to_numpy(), records[name])
    assert df["name"].tolist() == ["8 bytes!", "été", "bad\ufffd"]
    assert [list(v) for v in df["vec"]] == records["vec"].tolist()


def test_batch_of_a_multi_type_ring(ring_name):
    types = {"tick": np.dtype([("price", "<f8"), ("sym", "S6")]), "trade": np.dtype([("qty", "<u4")])}
    with pykring.create(ring_name, 1 << 16, types) as ring, pykring.Producer(ring_name) as p:
        p.write([(1.5, b"ABC"), (2.5, b"XYZ")], type="tick")
        p.write((7,), type="trade")
        batch = ring.read_batch()
    rbs = batch.to_arrow()
    assert set(rbs) == {"tick", "trade"}
    assert column(rbs["tick"], "sym").to_pylist() == ["ABC", "XYZ"]
    assert column(rbs["trade"], "qty").to_pylist() == [7]
    dfs = batch.to_pandas()
    assert dfs["tick"]["price"].tolist() == [1.5, 2.5]
    assert str(dfs["trade"]["ts"].dt.tz) == "UTC"


def test_empty_array():
    rb = pykring.to_arrow(np.zeros(0, DT))
    assert rb.num_rows == 0 and rb.schema.field("vec").type == pa.list_(pa.uint16(), 3)


def test_not_a_record_array():
    with pytest.raises(TypeError, match="structured numpy array"):
        pykring.to_arrow(np.zeros(3))


def test_kernel_batch_argv_and_path():
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("pykring.kernel() needs root on Linux")
    with pykring.kernel(events="process, image") as ring:
        child = subprocess.Popen(["/bin/sh", "-c", "true", "sh", "é", "b\xff".encode("latin-1").decode(
            "utf-8", "surrogateescape")])
        child.wait()
        found = None
        while found is None:
            batch = ring.read_batch(timeout=30)
            assert batch.count, "no kernel records within 30 s"
            starts = batch["process_start"]
            mine = starts[starts["pid"] == child.pid]
            if len(mine):
                found = (batch, mine)
        batch, mine = found
    rbs = batch.to_arrow()
    assert set(rbs) == set(batch)
    # Every row of the batch agrees with pykring.events' reading of it (event_dicts).
    by_seq = {e["seq"]: e for e in events.event_dicts(batch)}

    def shown(t):
        return t.encode("utf-8", "surrogateescape").decode("utf-8", "replace")

    assert len(batch["image_load"]) or len(batch["process_exit"])
    for kind in ("process_start", "process_exit", "image_load"):
        rows = rbs[kind].to_pylist()
        assert len(rows) == len(batch[kind])
        for row in rows:
            e = by_seq[row["seq"]]
            if e.get("path") is not None:
                assert row["path"] == shown(e["path"]), (kind, row["seq"])
            if kind == "process_start":
                assert row["argv"] == [shown(a) for a in e["argv"]]
                for key in ("cwd", "parent_path"):     # where the records carry them
                    if key in e:
                        assert row[key] == (None if e[key] is None else shown(e[key])), (key, row["seq"])
    rb = pykring.to_arrow(mine)
    assert rb.schema.field("argv").type == pa.list_(pa.string())
    assert "cmdline" not in rb.schema.names
    path, cmdline = start_strings(mine)[-1]
    assert column(rb, "path").to_pylist()[-1] == path.decode()
    assert os.path.realpath(os.fsdecode(path)) == os.path.realpath("/bin/sh")
    assert column(rb, "argv").to_pylist()[-1] == ["/bin/sh", "-c", "true", "sh", "é", "b\ufffd"]
    assert rb.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    raw = pykring.to_arrow(mine, binary=True)
    assert column(raw, "argv").to_pylist()[-1] == cmdline.split(b"\0")
    df = pykring.to_pandas(mine)
    assert list(df["argv"].iloc[-1]) == ["/bin/sh", "-c", "true", "sh", "é", "b\ufffd"]
    assert df["comm"].iloc[-1] == "sh"


@pytest.mark.parametrize("blocked, extra", [("pyarrow", "pykring[arrow]"), ("pandas", "pykring[pandas]")])
def test_without_the_extra_the_message_says_what_to_install(blocked, extra):
    code = ("import sys; sys.modules[%r] = None\n"
            "import numpy as np, pykring\n"
            "a = np.zeros(1, [('x', 'u1')])\n"
            "try:\n"
            "    pykring.to_%s(a)\n"
            "except ImportError as e:\n"
            "    print(e)\n") % (blocked, "arrow" if blocked == "pyarrow" else "pandas")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert extra in out
