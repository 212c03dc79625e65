"""``python -m benchmarks arrow``: a small run measures every variant and
checks every recording it wrote, and that check catches a recording that
differs from what the producer wrote. Nothing here is timed."""
import numpy as np
import pytest

pytest.importorskip("pyarrow", reason="the arrow benchmark needs pyarrow (pip install .[test])")

from benchmarks import __main__ as bench_main  # noqa: E402
from benchmarks import arrow  # noqa: E402
from pykring.recording import Recorder  # noqa: E402


def test_it_is_a_command():
    assert bench_main.COMMANDS["arrow"] == [("arrow", {})]
    assert bench_main.BENCHMARKS["arrow"][0] == "benchmarks.arrow"


@pytest.mark.parametrize("kind, records, batch", [("user", 3000, 512), ("kernel", 300, 64)])
def test_a_small_run_measures_every_variant_and_checks_its_recordings(tmp_path, kind, records, batch):
    got = arrow.measure(kind, records, batch, rounds=1, tmp=str(tmp_path))
    for v in arrow.VARIANTS:
        assert len(got[v]) == 1 and got[v][0] > 0, (v, got[v])
    for v in ("parquet", "arrows"):
        assert got[v + "_bytes_per_record"][0] > 0
    assert list(tmp_path.iterdir()) == []           # the files are removed


def test_the_check_catches_a_record_that_differs(tmp_path):
    stream = arrow.Stream("sample", arrow.USER_BODY, arrow.user_pool(64), arrow.vary_user)
    try:
        stream.fill(1000)
        path = str(tmp_path / "r.arrows")
        with Recorder(stream.ring, path) as rec:
            rows = stream.ring.read(400)
            rec.write(rows)
            rows = stream.ring.read()
            rows["uid"][7] ^= 1
            rec.write(rows)
        with pytest.raises(RuntimeError, match="field 'uid' differs"):
            arrow.check_recording(path, stream, 0, 1000)
    finally:
        stream.close()
    # The same records unaltered pass.
    stream = arrow.Stream("sample", arrow.USER_BODY, arrow.user_pool(64), arrow.vary_user)
    try:
        stream.fill(1000)
        path = str(tmp_path / "ok.arrows")
        with Recorder(stream.ring, path) as rec:
            rec.write(stream.ring.read())
        arrow.check_recording(path, stream, 0, 1000)
        with pytest.raises(RuntimeError, match="1000 records, not 1001"):
            arrow.check_recording(path, stream, 0, 1001)
    finally:
        stream.close()
    assert np.dtype(arrow.USER_BODY).itemsize + 24 == 100
