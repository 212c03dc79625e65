"""Recordings: what a Recorder writes, open_recording reads back as the same
records, in every format; a file cut anywhere reads up to its last complete
frame; damaged or foreign files get a RecordingError naming the problem."""
import errno
import json
import os
import subprocess
import sys
import threading

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import pykring
from pykring import events, recording
from pykring.recording import Layout, Recorder, RecordingError, open_recording
from pykring.ring import Batch
from tests.test_arrow import DT, ROWS

FORMATS = (".arrows", ".parquet", ".jsonl")
SMALL = np.dtype([("pid", "<u4"), ("ok", "?"), ("note", "S3")])
SMALL_RECORD = pykring.record_dtype(SMALL)
HOST = {"hostname": "host-a", "boot_id": "0e6c1d7a-0000-4000-8000-000000000001", "timezone": "Europe/Paris"}


def same_batch(a, b):
    """Every type, every row, byte for byte (user-ring rows have no
    uncovered bytes that are not zero)."""
    assert set(a) == set(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert a[name].tobytes() == b[name].tobytes(), name


@pytest.fixture
def batches(ring_name):
    """Three drained batches of a two-type ring with every field kind."""
    out = []
    with pykring.create(ring_name, 1 << 16, {"rec": DT, "small": SMALL}) as ring, \
            pykring.Producer(ring_name) as p:
        for i in range(3):
            p.write(ROWS[: i + 1], type="rec")
            p.write([(i, bool(i % 2), b"x%d" % i)] * (i + 1), type="small")
            out.append(ring.read_batch())
        layout = Layout.of(ring, HOST)
        stats = ring.stats
    return layout, out, stats


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_field_kind_comes_back_identical(tmp_path, batches, fmt):
    layout, got, stats = batches
    path = str(tmp_path / ("r" + fmt))
    with Recorder(layout, path, facts={"note": "start"}) as rec:
        for i, b in enumerate(got):
            rec.write(b, {"written": 10 * i, "dropped": i, "lost": i, "read": 10 * i}, facts={"i": i})
    r = open_recording(path)
    frames = list(r.frames())
    assert len(frames) == 3
    for i, (f, b) in enumerate(zip(frames, got)):
        same_batch(f.batch, b)
        assert f.stats == {"written": 10 * i, "dropped": i, "lost": i, "read": 10 * i}
        assert f.facts == {"i": i}
    assert r.host == HOST and r.header["facts"] == {"note": "start"}
    assert r.dtypes == layout.dtypes and not r.truncated
    # Iterating gives the Batches, as a live ring does.
    again = list(open_recording(path))
    assert all(isinstance(b, Batch) for b in again) and len(again) == 3
    same_batch(again[2], got[2])


def test_rows_are_columns_others_read(tmp_path, batches):
    """Plain pyarrow reads an .arrows recording: one table, a type column,
    ts in UTC, strings as their exact bytes, rows in seq order."""
    layout, got, _ = batches
    path = str(tmp_path / "r.arrows")
    with Recorder(layout, path) as rec:
        for b in got:
            rec.write(b, {"lost": 0})
    table = pa.ipc.open_stream(path).read_all()
    assert table.num_rows == sum(b.count for b in got)
    assert table.schema.field("ts").type == pa.timestamp("ns", tz="UTC")
    seqs = table.column("seq").to_pylist()
    assert seqs == sorted(seqs)
    assert table.column("type").to_pylist().count("small") == 6
    names = [v for v, t in zip(table.column("name").to_pylist(), table.column("type").to_pylist()) if t == "rec"]
    assert names[:3] == [b"8 bytes!", b"8 bytes!", b"\xc3\xa9t\xc3\xa9"]
    assert table.schema.field("vec").type == pa.list_(pa.uint16(), 3)


def kernel_batch():
    """process_start rows packed as the eBPF program writes them (path,
    argv with a non-UTF-8 byte and an empty argument, cwd, parent path; one
    without cwd), and other types."""
    types = events.linux_event_types(256)
    dts = {n: d for _, n, d in types}
    st = np.zeros(3, dts["process_start"])
    off = dts["process_start"].fields["path"][1]
    raw = st.view(np.uint8).reshape(3, -1)
    strings = [(b"/usr/bin/x", b"x\0-c\0\xff\0", b"/tmp/\xfe", b"/bin/sh"),
               (b"/a", b"", b"", b""),
               (b"/bin/" + b"p" * 60, b"a" * 100, b"/" + b"c" * 40, b"/usr/bin/parent")]
    for i, (path, cmd, cwd, pp) in enumerate(strings):
        tail = path + b"\0" + cmd + b"\0" + cwd + b"\0" + pp
        raw[i, off:off + len(tail)] = np.frombuffer(tail, np.uint8)
        st[i]["path_len"], st[i]["cmdline_len"] = len(path), len(cmd)
        st[i]["cwd_len"], st[i]["parent_path_len"] = len(cwd), len(pp)
    st["detail"] = events.D_PACKED | events.D_EXEC
    st["seq"], st["pid"], st["type"] = [1, 4, 5], [10, 11, 12], events.PROCESS_START
    st["comm"], st["tty"], st["euid"] = b"x\xff", b"pts3", [0, 1000, 65534]
    im = np.zeros(2, dts["image_load"])
    im["seq"], im["type"], im["path"], im["base"] = [2, 3], events.IMAGE_LOAD, b"/lib/libc.so.6", [1 << 40, 7]
    im["ts"] = np.datetime64(1764594000123456789, "ns")
    arrays = {n: np.zeros(0, d) for n, d in dts.items()}
    arrays.update(process_start=st, image_load=im)
    return types, Batch(arrays)


@pytest.mark.parametrize("fmt", FORMATS)
def test_kernel_records_round_trip_with_their_packed_strings(tmp_path, fmt):
    types, b = kernel_batch()
    layout = Layout(types, HOST)
    path = str(tmp_path / ("k" + fmt))
    with Recorder(layout, path) as rec:
        rec.write(b, {"lost": 0})
    back = next(iter(open_recording(path)))
    same_batch(back, b)
    st = back["process_start"]
    assert events.start_strings(st)[0] == (b"/usr/bin/x", b"x\0-c\0\xff\0")
    assert events.start_context(st)[0] == (b"/tmp/\xfe", b"/bin/sh")
    # The columns: argv a list, cwd null where a start has none.
    table = layout.encode(b)
    assert table.column(table.schema.get_field_index("argv")).to_pylist()[0] == [b"x", b"-c", b"\xff", b""]
    assert table.column(table.schema.get_field_index("cwd")).to_pylist()[3] is None


def test_frame_bytes_is_a_plain_arrow_stream(batches):
    layout, got, stats = batches
    data = recording.frame_bytes(layout, got[1], stats, t=1.5, facts={"a": 1}, extra={"host": "h"})
    table = pa.ipc.open_stream(data).read_all()
    assert table.num_rows == got[1].count
    lay, frame = recording.read_frame_bytes(data)
    same_batch(frame.batch, got[1])
    assert frame.t == 1.5 and frame.facts == {"a": 1} and frame.meta["host"] == "h"
    assert frame.stats["read"] == stats.read and lay.host == HOST
    with pytest.raises(RecordingError, match="not a pykring frame"):
        recording.read_frame_bytes(b"garbage")


def frame_ends(layout, path, got):
    """Write the batches, noting the file size after each frame; the
    recorder is left open (as a crash leaves it)."""
    rec = Recorder(layout, path)
    ends = []
    for b in got:
        rec.write(b, {"lost": 0})
        ends.append(rec._file.size())
    return rec, ends


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_recording_cut_anywhere_reads_up_to_its_last_complete_frame(tmp_path, batches, fmt):
    layout, got, _ = batches
    path = str(tmp_path / ("r" + fmt))
    rec, ends = frame_ends(layout, path, got * 2)
    live = path + recording._JOURNAL if fmt == ".parquet" else path     # Parquet records into its journal
    data = open(live, "rb").read()
    assert len(data) == ends[-1]
    start = ends[0] - 200
    cuts = sorted(set(list(range(start, len(data), max(1, (len(data) - start) // 60))) + ends + [e - 1 for e in ends]))
    for cut in cuts:
        d = tmp_path / ("cut%d" % cut)
        d.mkdir()
        target = str(d / ("r" + fmt))
        with open(target + (recording._JOURNAL if fmt == ".parquet" else ""), "wb") as f:
            f.write(data[:cut])
        r = open_recording(target)
        frames = list(r.frames())
        complete = sum(1 for e in ends if e <= cut)
        assert len(frames) == complete, cut
        assert r.truncated
        for f, b in zip(frames, got * 2):
            same_batch(f.batch, b)
    rec.close()
    assert not os.path.exists(path + recording._JOURNAL)


@pytest.mark.parametrize("fmt", FORMATS)
def test_rotation_makes_a_series_read_in_order(tmp_path, batches, fmt):
    layout, got, _ = batches
    path = str(tmp_path / ("r" + fmt))
    with Recorder(layout, path, rotate=1) as rec:
        for b in got * 2:
            rec.write(b, {"lost": 0})
    assert len(rec.files) == 7 and rec.files[0].endswith(".000001" + fmt)
    assert not os.path.exists(path)
    back = list(open_recording(path))
    assert len(back) == 6
    for a, b in zip(back, got * 2):
        same_batch(a, b)
    one = list(open_recording(rec.files[3]))        # each file on its own
    same_batch(one[0], got[0])
    with pytest.raises(RecordingError, match="series of that name exists"):
        Recorder(layout, path, rotate=1)


def test_damaged_and_foreign_files_are_named(tmp_path, batches):
    layout, got, _ = batches
    bad = tmp_path / "x.arrows"
    bad.write_bytes(b"\x00" * 64)
    with pytest.raises(RecordingError, match="not an Arrow IPC stream"):
        open_recording(str(bad))
    with pytest.raises(RecordingError, match="cannot tell the recording format"):
        Recorder(layout, str(tmp_path / "x.csv"))
    with pytest.raises(RecordingError, match="no recording"):
        open_recording(str(tmp_path / "none.parquet"))
    plain = tmp_path / "plain.arrows"
    with pa.ipc.new_stream(str(plain), pa.schema([("a", pa.int64())])) as w:
        w.write_table(pa.table({"a": [1]}))
    with pytest.raises(RecordingError, match="not a pykring recording"):
        open_recording(str(plain))
    # A newer format, and a value longer than its field: said, not truncated.
    path = str(tmp_path / "r.jsonl")
    with Recorder(layout, path) as rec:
        rec.write(got[0], {"lost": 0})
    lines = open(path).read().splitlines()
    head = json.loads(lines[0])
    head["pykring_recording"]["version"] = 99
    (tmp_path / "new.jsonl").write_text("\n".join([json.dumps(head)] + lines[1:]) + "\n")
    with pytest.raises(RecordingError, match="version 99 is newer"):
        open_recording(str(tmp_path / "new.jsonl"))
    rows = [json.loads(x) for x in lines[2:]]
    small = next(i for i, r in enumerate(rows) if r["type"] == "small")
    rows[small]["note"] = "much too long"
    (tmp_path / "long.jsonl").write_text("\n".join(lines[:2] + [json.dumps(r) for r in rows]) + "\n")
    with pytest.raises(RecordingError, match="small.note is 13 bytes, its field holds 3"):
        list(open_recording(str(tmp_path / "long.jsonl")))
    rows[small]["note"] = "ok"
    rows[small]["type"] = "smal"
    (tmp_path / "typo.jsonl").write_text("\n".join(lines[:2] + [json.dumps(r) for r in rows]) + "\n")
    with pytest.raises(RecordingError, match="a record line of no type this recording has"):
        list(open_recording(str(tmp_path / "typo.jsonl")))


def test_a_directory_of_recordings_reads_every_file(tmp_path, batches):
    layout, got, _ = batches
    for i, fmt in enumerate(FORMATS):
        with Recorder(layout, str(tmp_path / ("part%d%s" % (i, fmt)))) as rec:
            rec.write(got[i], {"lost": 0})
    back = list(open_recording(str(tmp_path)))
    for a, b in zip(back, got):
        same_batch(a, b)
    # Another ring's recording beside them (one type): each file read with
    # its own layout, its batches as arrays.
    with Recorder(Layout([(1, "record", SMALL_RECORD)], HOST), str(tmp_path / "zz-other.arrows")) as rec:
        rec.write(np.zeros(2, SMALL_RECORD), {"lost": 0})
    back = list(open_recording(str(tmp_path)))
    assert len(back) == 4 and isinstance(back[3], np.ndarray) and back[3].dtype == SMALL_RECORD
    same_batch(back[0], got[0])


def test_a_live_ring_recorded_while_a_producer_writes(tmp_path, ring_name):
    """A producer process floods a single-type ring; every array the
    consumer drained comes back, as arrays, in order, with the stats."""
    import subprocess
    import sys

    n = 200_000
    code = ("import numpy as np, pykring\n"
            "with pykring.Producer(%r, block=True) as p:\n"
            "    b = np.zeros(5000, dtype=[('i', '<u8'), ('x', '<f4'), ('tag', 'S5')])\n"
            "    for k in range(0, %d, 5000):\n"
            "        b['i'] = np.arange(k, k + 5000); b['x'] = b['i'] / 2; b['tag'] = b'ok'\n"
            "        p.write(b)\n" % (ring_name, n))
    path = str(tmp_path / "flood.parquet")
    with pykring.create(ring_name, 1 << 20, np.dtype([("i", "<u8"), ("x", "<f4"), ("tag", "S5")])) as ring:
        proc = subprocess.Popen([sys.executable, "-c", code])
        drained = []
        with Recorder(ring, path) as rec:
            for arr in ring:            # ends when the producer closes the ring
                rec.write(arr)
                drained.append(arr)
        assert proc.wait() == 0
    back = list(open_recording(path))
    assert len(back) == len(drained) and all(isinstance(a, np.ndarray) for a in back)
    for a, b in zip(back, drained):
        assert a.tobytes() == b.tobytes()
    allrec = np.concatenate(back)
    assert allrec["i"].tolist() == list(range(n)) and allrec["seq"].tolist() == list(range(n))
    r = open_recording(path)
    list(r.frames())
    assert r.stats["read"] == n and r.stats["lost"] == 0


from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """One small recording per format, as bytes."""
    d = tmp_path_factory.mktemp("fuzz")
    types, b = kernel_batch()
    layout = Layout(types, HOST)
    class Recorded(dict):
        def __repr__(self):         # hypothesis prints it with each failing example
            return "<%d recordings>" % len(self)

    out = Recorded()
    for fmt in FORMATS:
        path = str(d / ("r" + fmt))
        with Recorder(layout, path) as rec:
            rec.write(b, {"lost": 0})
            rec.write(b, {"lost": 1})
        out[fmt] = open(path, "rb").read()
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fmt=st.sampled_from(FORMATS), edits=st.lists(st.tuples(st.integers(0, 1 << 20), st.integers(0, 255)),
                                                      min_size=1, max_size=8),
       cut=st.one_of(st.none(), st.integers(0, 1 << 20)))
def test_damaged_bytes_give_a_recording_error_or_records(tmp_path_factory, recorded, fmt, edits, cut):
    """Bytes changed anywhere (and the file cut): the reader returns records
    or raises RecordingError, never another exception or a crash."""
    data = bytearray(recorded[fmt])
    for at, value in edits:
        data[at % len(data)] = value
    if cut is not None:
        data = data[:cut % (len(data) + 1)]
    path = str(tmp_path_factory.mktemp("bad") / ("r" + fmt))
    with open(path, "wb") as f:
        f.write(bytes(data))
    try:
        for frame in open_recording(path).frames():
            assert frame.batch.count >= 0
    except RecordingError:
        pass


def replay_peak(layout, path, frames, rows):
    """Record `frames` frames of `rows` rows to `path`; replay it in a fresh
    process (so the Arrow pool's peak is the replay's alone), checking every
    record; return that peak."""
    dt = layout.dtypes["v"]
    with Recorder(layout, path) as rec:
        for i in range(frames):
            a = np.zeros(rows, dt)
            a["seq"] = a["val"] = np.arange(i * rows, (i + 1) * rows)
            rec.write(Batch({"v": a}), {"lost": 0})
    out = subprocess.run([sys.executable, "-c", (
        "import sys, pyarrow as pa, pykring\n"
        "n = 0; last = -1\n"
        "for f in pykring.open_recording(sys.argv[1]).frames():\n"
        "    v = f.batch['v']['val']\n"
        "    assert len(v) == %d and v[0] == last + 1, (len(v), v[0], last)\n"
        "    last = int(v[-1]); n += len(v)\n"
        "print(n, pa.default_memory_pool().max_memory())\n") % rows, path],
        capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    n, peak = map(int, out.stdout.split())
    assert n == rows * frames
    return peak


def test_a_parquet_recording_replays_in_memory_that_does_not_grow_with_it(tmp_path):
    """A long Parquet recording is streamed a row group at a time, not
    loaded: replaying 8 times as many records takes no more memory."""
    layout = Layout([(1, "v", pykring.record_dtype(np.dtype([("val", "<u8"), ("n", "<u4")])))], HOST)
    short = replay_peak(layout, str(tmp_path / "short.parquet"), 50, 10_000)
    long = replay_peak(layout, str(tmp_path / "long.parquet"), 400, 10_000)      # 4M records
    assert long < 1.5 * short, "replaying 500k records peaked at %d bytes, 4M at %d" % (short, long)


def test_a_parquet_recording_goes_on_in_a_next_file_before_its_footer_is_too_big(tmp_path, monkeypatch):
    """A Parquet file keeps its frame list in the footer, which readers
    refuse past 100 MB: a long recording goes on in STEM.000002.parquet,
    ... before that, and a reader of STEM.parquet reads them all."""
    monkeypatch.setattr(recording.parquet, "PARQUET_FRAME_BYTES", 4000)
    dt = pykring.record_dtype(np.dtype([("val", "<u8")]))
    layout = Layout([(1, "v", dt)], HOST)
    path = str(tmp_path / "long.parquet")
    stats = []
    with Recorder(layout, path) as rec:
        for i in range(300):
            a = np.zeros(i % 3, dt)         # empty frames too
            a["val"] = i
            stats.append({"written": i, "dropped": i // 7, "lost": i // 11, "read": i})
            rec.write(Batch({"v": a}), stats[-1], facts={"i": i} if i % 50 == 0 else None)
    assert len(rec.files) > 3 and rec.files[0] == path
    assert rec.files[1:] == [str(tmp_path / ("long.%06d.parquet" % n)) for n in range(2, len(rec.files) + 1)]
    for f in rec.files:
        frame_list = pq.ParquetFile(f).metadata.metadata[b"pykring.frames"]
        assert len(frame_list) < 4000 + 100, f     # the bound, and the frame that reached it
    r = open_recording(path)
    frames = list(r.frames())
    assert [f.stats for f in frames] == stats
    assert [f.facts for f in frames if f.facts] == [{"i": i} for i in range(0, 300, 50)]
    assert [int(v) for f in frames for v in f.batch["v"]["val"]] == [i for i in range(300) for _ in range(i % 3)]
    assert r.stats["written"] == 299
    # In a directory too: STEM.parquet first, then its continuations.
    assert [f.stats for f in open_recording(str(tmp_path)).frames()] == stats
    # A new recording of that name is refused while the old one's files are there.
    with pytest.raises(RecordingError, match="series of that name exists"):
        Recorder(layout, path)


def test_a_rotated_parquet_file_is_converted_while_the_recording_goes_on(tmp_path, monkeypatch):
    """Turning a full journal into Parquet takes seconds for a big file (a
    watch's reader stalled that long at each rotation): it runs in a thread,
    readers read the journal until the file is in place, and close() waits
    for it."""
    gate, order = threading.Event(), []
    convert = recording.journal_to_parquet

    def held(journal, path, *a):
        gate.wait(10)                       # without the thread: the write itself waits here
        order.append("converted " + os.path.basename(path))
        convert(journal, path, *a)

    monkeypatch.setattr(recording.parquet, "journal_to_parquet", held)
    dt = pykring.record_dtype(np.dtype([("val", "<u8")]))
    path = str(tmp_path / "r.parquet")
    rec = Recorder(Layout([(1, "v", dt)], HOST), path, rotate=1)
    a = np.zeros(3, dt)
    a["val"] = [1, 2, 3]
    rec.write(Batch({"v": a}), {"lost": 0})
    order.append("written")
    assert rec.files == [str(tmp_path / "r.000001.parquet"), str(tmp_path / "r.000002.parquet")]
    # Meanwhile the first file reads as its journal.
    assert [f.batch["v"]["val"].tolist() for f in open_recording(path).frames()] == [[1, 2, 3]]
    gate.set()
    rec.close()
    assert order[0] == "written" and sorted(order[1:]) == ["converted r.000001.parquet", "converted r.000002.parquet"]
    assert sorted(os.listdir(tmp_path)) == ["r.000001.parquet", "r.000002.parquet"]
    assert [f.batch["v"]["val"].tolist() for f in open_recording(path).frames()] == [[1, 2, 3]]


def test_a_failed_background_conversion_is_raised_and_its_journal_kept(tmp_path, monkeypatch):
    def full(journal, path, *a):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(recording.parquet, "journal_to_parquet", full)
    dt = pykring.record_dtype(np.dtype([("val", "<u8")]))
    path = str(tmp_path / "r.parquet")
    rec = Recorder(Layout([(1, "v", dt)], HOST), path, rotate=1)
    a = np.zeros(2, dt)
    a["val"] = [7, 8]
    with pytest.raises(OSError, match="No space left"):
        rec.write(Batch({"v": a}), {"lost": 0})
        rec.close()                         # at the latest
    monkeypatch.undo()
    assert [f.batch["v"]["val"].tolist() for f in open_recording(str(tmp_path / "r.000001.parquet")).frames()] == [[7, 8]]


@pytest.mark.parametrize("name", ["r.arrows", "r.parquet.journal.arrows"])
def test_a_recording_given_no_batch_yet_says_so(tmp_path, name):
    (tmp_path / name).write_bytes(b"")
    with pytest.raises(RecordingError, match="is empty: a recording opened but given no batch yet"):
        open_recording(str(tmp_path / name.replace(".journal.arrows", "")))
