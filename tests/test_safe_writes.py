"""Producer.write refuses values that would not arrive as written (numpy
would store 7.9 in a uint32 as 7 and cut a string to its field), naming the
field, unless casting="unsafe"; an array of the ring's own dtype is written
as it is."""
import numpy as np
import pytest

import pykring
from pykring import _casting

DT = np.dtype([("n", "<u4"), ("small", "u1"), ("i", "<i2"), ("x", "<f4"), ("ok", "?"),
               ("name", "S8"), ("vec", "<u2", (3,)), ("tags", "S4", (2,))])
GOOD = (7, 255, -3, 0.1, True, b"8 bytes!", [1, 2, 65535], [b"abcd", b""])


@pytest.fixture
def pair(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        yield ring, p


def with_field(**kw):
    rec = dict(zip(DT.names, GOOD))
    rec.update(kw)
    return rec


@pytest.mark.parametrize("field, value, why", [
    ("n", 7.9, "not an integer"),
    ("n", -1, "out of range"),
    ("n", 2 ** 32, "out of range"),
    ("small", 300, "out of range"),
    ("i", 40000, "out of range"),
    ("i", float("nan"), "not an integer"),
    ("n", 2 ** 70, "out of range"),            # beyond int64: an object column
    ("x", 1e300, "beyond the range"),
    ("ok", 2, "0 or 1"),
    ("name", b"16 bytes exactly", "longer than the field's 8 bytes"),
    ("name", "nine char", "longer than the field's 8 bytes"),
    ("name", 5, "not bytes"),
    ("n", "5", "not a number"),
    ("vec", [1, 2, 70000], "out of range"),
    ("tags", [b"ok", b"too long"], "longer than the field's 4 bytes"),
])
def test_a_value_that_does_not_fit_is_refused_naming_the_field(pair, field, value, why):
    ring, p = pair
    for records in (with_field(**{field: value}), tuple(with_field(**{field: value}).values()),
                    [dict(zip(DT.names, GOOD)), with_field(**{field: value})]):
        with pytest.raises(ValueError) as info:
            p.write(records)
        msg = str(info.value)
        assert "field %r" % field in msg and why in msg and 'casting="unsafe"' in msg
    assert p.written == 0
    assert len(ring.read()) == 0                # nothing of a refused write went in


def test_values_that_fit_arrive_unchanged(pair):
    ring, p = pair
    p.write(GOOD)
    p.write(with_field(n=7.0, small=0, i=-32768, x=3, ok=1, name="ascii", vec=np.array([0, 0, 1], "i8")))
    p.write(with_field(n=2 ** 32 - 1, name=b"ab\0\0\0\0\0\0\0"))    # trailing NULs are padding
    r = ring.read()
    assert r["n"].tolist() == [7, 7, 2 ** 32 - 1]
    assert r["small"].tolist() == [255, 0, 255]
    assert r["i"].tolist() == [-3, -32768, -3]
    assert r["x"][0] == np.float32(0.1) and r["x"][1] == 3     # a float field rounds
    assert r["ok"].tolist() == [True, True, True]
    assert r["name"].tolist() == [b"8 bytes!", b"ascii", b"ab"]
    assert r["vec"].tolist() == [[1, 2, 65535], [0, 0, 1], [1, 2, 65535]]
    assert r["tags"].tolist() == [[b"abcd", b""]] * 3


def test_unsafe_casting_stores_numpys_conversion(pair):
    ring, p = pair
    p.write(with_field(n=7.9, name=b"16 bytes exactly"), casting="unsafe")
    r = ring.read()
    assert r["n"].tolist() == [7] and r["name"].tolist() == [b"16 bytes"]


def test_arrays_of_another_dtype_are_checked_by_value(pair):
    ring, p = pair
    body = np.dtype([(n, "f8" if n == "n" else DT.fields[n][0]) for n in DT.names])
    a = np.array([GOOD, GOOD], dtype=body)
    a["n"] = [1.0, 2.5]
    with pytest.raises(ValueError, match="field 'n'.*2.5 \\(record 1\\)"):
        p.write(a)
    a["n"] = [1.0, 2.0]
    assert p.write(a) == 2
    assert ring.read()["n"].tolist() == [1, 2]
    # numpy's dtype rules on request: float64 into uint32 is never "safe".
    with pytest.raises(ValueError, match="casting='safe'"):
        p.write(a, casting="safe")
    assert p.write(a, casting="unsafe") == 2


def test_unknown_casting_name(pair):
    _, p = pair
    with pytest.raises(ValueError, match="casting must be one of"):
        p.write(GOOD, casting="lossy")


def test_array_of_the_rings_dtype_takes_the_fast_path_unchecked(pair, monkeypatch):
    ring, p = pair

    def boom(*a, **k):
        raise AssertionError("an array of the ring's dtype was converted")

    monkeypatch.setattr("pykring.producer.convert_column", boom)
    arr = np.zeros(4, dtype=pykring.body_dtype(p.dtype))       # the fields without the header
    assert p.write(arr) == 4
    full = np.zeros(2, dtype=p.dtype)
    assert p.write(full) == 2
    assert len(ring.read()) == 6


def test_casting_rules_model():
    # The column check alone, against numpy's own same_value where numpy has it.
    col = np.array([1.5, 2.0])
    with pytest.raises(ValueError):
        _casting.convert_column("f", np.dtype("i4"), col, "same_value")
    assert _casting.convert_column("f", np.dtype("i4"), np.array([2.0, -3.0]), "same_value").tolist() == [2.0, -3.0]
    if tuple(int(x) for x in np.__version__.split(".")[:2]) >= (2, 4):
        for src, dst in [(np.array([1.5]), "i4"), (np.array([-1]), "u8"), (np.array([300]), "u1"),
                         (np.array([2.0]), "i1"), (np.array([255]), "u1")]:
            try:
                src.astype(dst, casting="same_value")
                numpy_ok = True
            except ValueError:
                numpy_ok = False
            try:
                _casting.convert_column("f", np.dtype(dst), src, "same_value")
                ours_ok = True
            except ValueError:
                ours_ok = False
            assert ours_ok == numpy_ok, (src, dst)
