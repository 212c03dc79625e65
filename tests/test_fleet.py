"""Fleet mode against a real NATS JetStream (tests/natsserver.py): sinks on
several hosts, ``python -m pykring collect`` into Parquet, exactly once.

The hosts are simulated: each is a process (``python -m tests.test_fleet
host ...``) with its own host identity, a user-mode producer thread writing
numpy batches into a ring whose record ``value`` is its sequence number, and
a NatsSink draining it. A fourth stream is this machine's kernel, from ``python -m pykring watch --json --sink URL``.
The NATS server is stopped while the hosts keep writing (two of them with a
backlog too small for the outage: real drops), started again, and the
collector is SIGKILLed mid-stream and started again. Then every record is
in the Parquet files once, and the drops the sinks counted are the
sequence gaps the collector sees.
"""
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
pytest.importorskip("nats")

import pykring  # noqa: E402
from pykring.collect import StreamState, summarize  # noqa: E402
from pykring.sinks import NatsSink, SinkError, open_sink  # noqa: E402
from tests.natsserver import NatsServer, free_port  # noqa: E402
from tests.ringutil import remove_ring, unique_ring_name  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: value: the record's sequence number (checked); noise: random, so that compression
#: cannot make the outage's records fit a small backlog.
BODY = np.dtype([("value", "<u8"), ("noise", "<u8"), ("src", "u1"), ("pad", "S7")])
CHUNK = 8192
#: Per simulated host: records in each phase (server up; server down; server up again;
#: the collector killed and started again).
PHASES = (117_000, 100_000, 60_000, 57_000)
OUTAGE = 1
STREAM = "PYKRING_FLEET"       # pykring.sinks.stream_name("pykring.fleet")
HOSTS = ("sim-a", "sim-b", "sim-c")
#: Backlog per host: sim-a and sim-b cannot hold the outage's records, sim-c can.
BACKLOGS = {"sim-a": 256 << 10, "sim-b": 512 << 10, "sim-c": 64 << 20}
WAIT_S = 240.0


def _wait_for(what, cond, timeout=WAIT_S, interval=0.1, on_timeout=lambda: ""):
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError("timed out after %.0f s waiting for %s %s" % (timeout, what, on_timeout()))
        time.sleep(interval)


# ---- one simulated host (a process) -------------------------------------------------------

def _host_main(argv):
    url, hostname, index, ctl, backlog = argv[0], argv[1], int(argv[2]), argv[3], int(argv[4])
    phases = [int(x) for x in argv[5].split(",")]
    ident = {"hostname": hostname, "boot_id": "boot-%s" % hostname, "timezone": "UTC"}
    name = unique_ring_name("fleet-%s" % hostname)
    total = sum(phases)
    with pykring.create(name, 1 << 18, BODY) as ring:   # a drain fits one message
        def produce():
            with pykring.Producer(name, block=True) as p:
                at = 0
                rows = np.zeros(CHUNK, BODY)
                rows["src"] = index
                rng = np.random.default_rng(index)
                for k, n in enumerate(phases):
                    _wait_for("go-%d" % k, lambda: os.path.exists(os.path.join(ctl, "go-%d" % k)))
                    end = at + n
                    while at < end:
                        m = min(CHUNK, end - at)
                        rows["value"][:m] = np.arange(at, at + m)
                        rows["noise"][:m] = rng.integers(0, 1 << 63, m)
                        p.write(rows[:m])
                        at += m

        t = threading.Thread(target=produce)
        t.start()
        with NatsSink(url, ring, host=ident, backlog=backlog, linger=60) as sink:
            got = 0
            phase_end = np.cumsum(phases)
            k = 0
            while got < total:
                b = ring.read_batch(timeout=1.0)
                if not b:
                    continue
                if k != OUTAGE:
                    # A link that keeps up with the source: with the server up
                    # the backlog is never full (drops come from the outage only).
                    _wait_for("the backlog to drain", lambda: sink.backlog_bytes <= backlog // 2,
                              interval=0.002)
                sink.write(b)
                got += b.count
                while k < len(phases) and got >= phase_end[k]:
                    _report(ctl, "%s-done-%d" % (hostname, k), sink)
                    k += 1
            t.join()
        _report(ctl, "%s-final" % hostname, sink, stream=sink.stream, lost=ring.stats.lost, total=total)
    remove_ring(name)
    return 0


def _report(ctl, name, sink, **more):
    c = sink.counts
    d = dict(published=c.published, dropped=c.dropped, retried=c.retried, dropped_at_close=c.dropped_at_close,
             unsent_at_close=c.unsent_at_close, summary=sink.summary(), **more)
    tmp = os.path.join(ctl, name + ".tmp")
    with open(tmp, "w") as f:
        json.dump(d, f)
    os.replace(tmp, os.path.join(ctl, name + ".json"))


def _read(ctl, name):
    try:
        with open(os.path.join(ctl, name + ".json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


# ---- the collector and the kernel stream ---------------------------------------------------

def _collector(url, out, log, flush=0.5):
    return subprocess.Popen([sys.executable, "-m", "pykring", "collect", url, "--output", out,
                             "--flush-seconds", str(flush), "--ack-wait", str(2 * flush + 3), "--report-seconds", "1",
                             "--max-ack-pending", "2000"],
                            cwd=ROOT, stdout=log, stderr=log)


class KernelWatch:
    """``python -m pykring watch --json --sink URL --tree PID``: the kernel
    events of this test's process tree, printed and published, until
    stopped with Ctrl-C (SIGINT). The rest of the machine is filtered out in
    the kernel: a busy host does not flood the stream the test checks."""

    def __init__(self, url, tmp):
        self.out_path, self.err_path = os.path.join(tmp, "watch.out"), os.path.join(tmp, "watch.err")
        self._out, self._err = open(self.out_path, "w"), open(self.err_path, "w")
        self.proc = subprocess.Popen([sys.executable, "-m", "pykring", "watch", "--json", "--sink", url,
                                      "--tree", str(os.getpid())],
                                     cwd=ROOT, stdout=self._out, stderr=self._err)
        self.hostname = socket.gethostname()
        _wait_for("the watch to start", lambda: "Ctrl-C to stop" in self.stderr() or self.proc.poll() is not None)
        assert self.proc.poll() is None, self.stderr()

    def stderr(self):
        with open(self.err_path) as f:
            return f.read()

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        rc = self.proc.wait(120)
        self._out.close()
        self._err.close()
        assert rc == 0, self.stderr()
        with open(self.out_path) as f:
            self.events = [json.loads(line) for line in f]
        mo = re.search(r"sink .*: published (\d+) events in \d+ messages, retried (\d+), dropped (\d+) events",
                       self.stderr())
        assert mo, self.stderr()
        self.published, self.retried, self.dropped = map(int, mo.groups())
        assert "unsent at close" not in self.stderr(), self.stderr()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def _spawn(n):
    pids = []
    for _ in range(n):
        p = subprocess.Popen(["/bin/true"])
        p.wait()
        pids.append(p.pid)
    return pids


def _files(out):
    for d, _, names in os.walk(out):
        for n in names:
            if n.endswith(".parquet"):
                yield os.path.join(d, n)


# ---- the test ------------------------------------------------------------------------------

@pytest.mark.slow
def test_fleet_exactly_once_through_server_restart_and_collector_kill(tmp_path):
    srv = NatsServer(tmp_path / "js").start()
    out = str(tmp_path / "parquet")
    ctl = str(tmp_path / "ctl")
    os.makedirs(ctl)
    url = srv.url("pykring.fleet")
    log = open(tmp_path / "collector.log", "w")
    # Files every 3 s: at the SIGKILL it holds records it has not acknowledged.
    collector = _collector(url, out, log, flush=3)
    hosts = []
    kernel = None
    try:
        kernel = KernelWatch(url, str(tmp_path))
        for i, h in enumerate(HOSTS):
            hosts.append(subprocess.Popen(
                [sys.executable, "-m", "tests.test_fleet", "host", url, h, str(i), ctl, str(BACKLOGS[h]),
                 ",".join(map(str, PHASES))], cwd=ROOT))

        def all_hosts(name):
            for p in hosts:
                assert p.poll() is None or p.returncode == 0, "a host exited with status %s" % p.returncode
            got = [_read(ctl, "%s-%s" % (h, name)) for h in HOSTS]
            return got if all(g is not None for g in got) else None

        # Phase 0: everything up.
        open(os.path.join(ctl, "go-0"), "w").close()
        spawned = _spawn(100)
        up = _wait_for("phase 0", lambda: all_hosts("done-0"))
        assert [r["dropped"] for r in up] == [0, 0, 0], up

        # Phase 1: the server is down; the hosts keep writing.
        srv.stop()
        open(os.path.join(ctl, "go-1"), "w").close()
        during = _wait_for("phase 1", lambda: all_hosts("done-1"))
        assert during[0]["dropped"] > 0 and during[1]["dropped"] > 0, during     # small backlogs overflowed
        assert during[2]["dropped"] == 0, during                                # the large one held all

        # Phase 2: the server is back (same port, same store); the collector
        # is SIGKILLed and started again.
        srv.start()
        open(os.path.join(ctl, "go-2"), "w").close()
        spawned += _spawn(100)
        _wait_for("phase 2", lambda: all_hosts("done-2"))
        # Everything so far delivered and acknowledged (the messages the
        # collector held unacknowledged at the outage come again after
        # --ack-wait): its buffers are empty now.
        _wait_for("the collector to catch up", lambda: _consumer_done(url, STREAM, "pykring-collect"))
        delivered = _js_info(url, STREAM, "pykring-collect")[1].delivered.stream_seq

        # Phase 3: SIGKILLed 1 s after it was first given messages of this
        # phase. Its buffers were empty, so it writes its next file 3 s after
        # the first of them: at the kill it has taken in a second of messages
        # it must not have acknowledged yet (JetStream gives them again to the
        # next collector). Killed as they arrive instead, the collector would
        # not have read them yet, and one that acknowledges on receipt would pass.
        open(os.path.join(ctl, "go-3"), "w").close()
        _wait_for("the collector to be given messages of phase 3",
                  lambda: _js_info(url, STREAM, "pykring-collect")[1].delivered.stream_seq > delivered,
                  interval=0.02)
        time.sleep(1.0)
        _, ci = _js_info(url, STREAM, "pykring-collect")
        assert ci.num_ack_pending > 0, ("the collector acknowledged every message of phase 3 within 1 s, "
                                        "before the file holding them was written (flush every 3 s)")
        collector.send_signal(signal.SIGKILL)
        collector.wait()
        collector = _collector(url, out, log)
        finals = _wait_for("the hosts' final reports", lambda: all_hosts("final"))
        # Drops come from the outage only: the backlogs hold what a server that is up takes.
        assert [f["dropped"] for f in finals] == [r["dropped"] for r in during], (finals, during)
        for p in hosts:
            assert p.wait(60) == 0
        kernel.stop()

        # Everything published reaches the files.
        expect = {h: f["published"] for h, f in zip(HOSTS, finals)}
        expect[kernel.hostname] = kernel.published

        settled = {"rep": None, "since": 0.0}

        def complete():
            rep = summarize(out)
            if all(rep.get(h, {}).get("events") == n for h, n in expect.items()):
                return rep
            # Nothing left to deliver, and the files unchanged for a while:
            # what is missing now never comes (fail at once, not at WAIT_S).
            now = time.monotonic()
            if rep != settled["rep"]:
                settled.update(rep=rep, since=now)
            elif now - settled["since"] > 5 and _consumer_done(url, STREAM, "pykring-collect"):
                raise AssertionError("the collector stored all JetStream delivered and acknowledged, but "
                                     "not every published event: have %s, want %s" % (rep, expect))
            return None

        report = _wait_for("the collector to store every published event", complete,
                           on_timeout=lambda: "(have %s, want %s)" % (summarize(out), expect))
        collector.send_signal(signal.SIGTERM)
        assert collector.wait(60) == 0
    finally:
        for p in hosts:
            if p.poll() is None:
                p.kill()
                p.wait()
        if collector.poll() is None:
            collector.kill()
            collector.wait()
        if kernel is not None:
            kernel.kill()
        srv.stop()
        log.close()

    # The files, read here without pykring.collect: one stream per file.
    by_stream = {}
    for path in _files(out):
        frames = json.loads(pq.read_metadata(path).metadata[b"pykring.frames"])
        streams = {f["stream"] for f in frames}
        assert len(streams) == 1, path
        t = pq.read_table(path)
        part = by_stream.setdefault(streams.pop(), {"host": frames[0]["host"], "tables": []})
        assert part["host"] == frames[0]["host"]
        assert "/host=%s/hour=" % part["host"] in path
        part["tables"].append(t)
    total = 0
    sims = {}
    for stream, part in by_stream.items():
        t = pa.concat_tables(part["tables"])
        seq = t.column("seq").to_numpy()
        assert len(np.unique(seq)) == len(seq), "duplicate records in stream %s" % stream
        total += len(seq)
        if part["host"] in HOSTS:
            assert part["host"] not in sims, "one stream per simulated host"
            np.testing.assert_array_equal(t.column("value").to_numpy(), seq)   # the records' own content
            sims[part["host"]] = seq
    produced = sum(f["total"] for f in finals) + len(kernel.events)
    assert produced >= 10 ** 6, produced
    assert total == produced - sum(f["dropped"] for f in finals) - (len(kernel.events) - kernel.published)
    for h, f in zip(HOSTS, finals):
        seq = sims[h]
        # Every record was written with block=True: seq 0 .. total-1 exist at the source.
        gaps = f["total"] - len(seq)
        assert f["lost"] == 0 and f["unsent_at_close"] == 0, f
        assert gaps == f["dropped"], (h, gaps, f)          # the sink's drops are exactly the gaps
        assert report[h] == {"events": len(seq), "dropped": f["dropped"], "gaps": gaps, "streams": 1}, report[h]
    assert sum(f["dropped"] for f in finals) > 0
    assert finals[2]["retried"] > 0             # sim-c kept its outage's records and sent them after it

    # The kernel stream: every event the watch printed, every spawned process among them.
    kh = kernel.hostname
    assert kernel.dropped == 0
    assert report[kh]["events"] == kernel.published
    # watch prints a batch, then publishes it: Ctrl-C between the two leaves
    # the last batch printed and not published (never the other way round).
    assert 0 <= len(kernel.events) - kernel.published
    assert report[kh]["dropped"] == report[kh]["gaps"], report[kh]
    kernel_pids = set()
    rec = pykring.open_recording(os.path.join(out, "host=%s" % kh))
    for batch in rec:
        if "process_start" in batch:
            kernel_pids.update(batch["process_start"]["pid"].tolist())
    assert set(spawned) <= kernel_pids, sorted(set(spawned) - kernel_pids)[:10]

    # pandas reads a host's files as one hive-partitioned Parquet dataset.
    import pandas as pd

    df = pd.read_parquet(os.path.join(out, "host=sim-a"))
    assert len(df) == len(sims["sim-a"]) and "hour" in df.columns
    np.testing.assert_array_equal(np.sort(df["seq"].to_numpy()), np.sort(sims["sim-a"]))

    # pykring.open_recording reads the whole directory: the same records.
    assert sum(f.batch.count for f in pykring.open_recording(out).frames()) == total


def _js_info(url, stream, durable):
    """(the stream's last sequence, the consumer's info or None), asked of the server."""
    import asyncio

    import nats

    async def ask():
        nc = await nats.connect(url.rsplit("/", 1)[0])
        try:
            js = nc.jetstream()
            si = await js.stream_info(stream)
            try:
                ci = await js.consumer_info(stream, durable)
            except Exception:
                ci = None
            return si.state.last_seq, ci
        finally:
            await nc.close()

    return asyncio.run(ask())


def _consumer_done(url, stream, durable):
    """Whether the durable consumer has every message of the stream delivered and acknowledged."""
    last, ci = _js_info(url, stream, durable)
    return ci is not None and ci.num_pending == 0 and ci.num_ack_pending == 0 and ci.ack_floor.stream_seq == last


def test_collector_with_a_fresh_consumer_stores_nothing_twice(tmp_path, ring_name):
    """A second collector (another durable: JetStream delivers every message
    again, as after a lost acknowledgement) finds every record in the files'
    footers already and writes nothing."""
    from pykring.sinks import stream_name

    n = 60_000
    out = str(tmp_path / "parquet")
    with NatsServer(tmp_path / "js") as srv:
        url = srv.url("pykring.again")
        with pykring.create(ring_name, 1 << 18, BODY) as ring:
            with pykring.Producer(ring_name, block=True) as p, \
                    NatsSink(url, ring, host={"hostname": "again", "boot_id": "b"}) as sink:
                rows = np.zeros(n, BODY)
                rows["value"] = np.arange(n)
                t = threading.Thread(target=p.write, args=(rows,))
                t.start()
                got = 0
                while got < n:
                    b = ring.read_batch(timeout=1.0)
                    got += b.count
                    sink.write(b)
                t.join()
        assert sink.published == n and sink.dropped == 0
        runs = []
        for durable in ("first", "second"):
            log = tmp_path / ("%s.log" % durable)
            with open(log, "w") as f:
                c = subprocess.Popen([sys.executable, "-m", "pykring", "collect", url, "--output", out,
                                      "--durable", durable, "--flush-seconds", "0.2", "--ack-wait", "5"],
                                     cwd=ROOT, stdout=f, stderr=f)
                try:
                    _wait_for("the %s collector" % durable,
                              lambda: _consumer_done(url, stream_name("pykring.again"), durable), interval=0.3)
                finally:
                    c.send_signal(signal.SIGTERM)
                    assert c.wait(60) == 0
            runs.append((sorted(_files(out)), summarize(out), log.read_text()))
    (files1, rep1, _), (files2, rep2, log2) = runs
    assert rep1 == {"again": {"events": n, "dropped": 0, "gaps": 0, "streams": 1}}
    assert files2 == files1 and rep2 == rep1, log2
    assert "0 files" not in log2 and " duplicate" in log2
    assert sum(f.batch.count for f in pykring.open_recording(out).frames()) == n


def test_sink_close_always_publishes_the_final_counts(tmp_path):
    """close() right after a write: the last message (the final counts, no
    records) goes out every time, also when the sender is just finishing
    the write's message."""
    layout = pykring.recording.Layout([(1, "record", pykring.record_dtype(BODY))],
                                      {"hostname": "closer", "boot_id": "b"})
    rows = np.zeros(100, pykring.record_dtype(BODY))
    with NatsServer(tmp_path / "js") as srv:
        for i in range(40):
            rows["seq"] = np.arange(100)
            sink = open_sink(srv.url("pykring.close"), layout, linger=5)
            sink.write({"record": rows}, {"written": 100, "dropped": 0, "lost": 0, "read": 100})
            sink.close()
            c = sink.counts
            assert (c.published, c.published_messages, c.unsent_at_close) == (100, 2, 0), (i, sink.summary())


def _rows(seq0, n, rng):
    rows = np.zeros(n, pykring.record_dtype(BODY))
    rows["seq"] = np.arange(seq0, seq0 + n)
    rows["value"] = rows["seq"]
    rows["noise"] = rng.integers(0, 1 << 63, n)
    return {"record": rows}


def test_sink_backlog_stays_bounded_while_the_server_is_away(tmp_path):
    """With the server stopped, writes queue up to the backlog and then drop,
    counted; after the restart the queued messages go out; published +
    dropped is every record written."""
    layout = pykring.recording.Layout([(1, "record", pykring.record_dtype(BODY))],
                                      {"hostname": "bounded", "boot_id": "b"})
    rng = np.random.default_rng(1)
    limit = 300 << 10
    with NatsServer(tmp_path / "js") as srv:
        sink = open_sink(srv.url("pykring.bounded"), layout, backlog=limit, linger=60)
        srv.stop()
        for i in range(60):
            sink.write(_rows(i * 2000, 2000, rng))
            assert sink.backlog_bytes <= limit
        assert sink.dropped > 0 and sink.published == 0
        held = sink.backlog_bytes
        assert held > limit // 2
        srv.start()
        sink.close()
    c = sink.counts
    assert c.published + c.dropped == 120_000 and c.unsent_at_close == 0, sink.summary()
    assert c.retried > 0
    line = sink.summary()
    assert "published %d events" % c.published in line and "dropped %d events" % c.dropped in line
    assert "retried %d" % c.retried in line


def test_batches_above_the_servers_max_payload_are_split_by_rows(tmp_path, ring_name):
    """A server with a 64 KiB message limit: a 40,000-record batch (a few MB
    encoded) becomes many messages, each under the limit, whose ranges tile
    the batch; the collector stores every record once."""
    n = 40_000
    out = str(tmp_path / "parquet")
    rng = np.random.default_rng(2)
    with NatsServer(tmp_path / "js", max_payload=64 << 10) as srv:
        url = srv.url("pykring.split")
        layout = pykring.recording.Layout([(1, "record", pykring.record_dtype(BODY))],
                                          {"hostname": "splitter", "boot_id": "b"})
        with open_sink(url, layout) as sink:
            sink.write(_rows(0, n, rng))
        # 8 random bytes a record cannot be compressed: at least that many 64 KiB messages
        assert sink.published == n and sink.counts.published_messages - 1 >= n * 8 // (64 << 10)
        with open(tmp_path / "c.log", "w") as log:
            c = _collector(url, out, log)
            try:
                _wait_for("the records", lambda: summarize(out).get("splitter", {}).get("events") == n)
            finally:
                c.send_signal(signal.SIGTERM)
                assert c.wait(60) == 0
    frames = []
    seqs = []
    for path in _files(out):
        frames += json.loads(pq.read_metadata(path).metadata[b"pykring.frames"])
        seqs.append(pq.read_table(path).column("seq").to_numpy())
    data = sorted((f["seq_from"], f["seq_to"]) for f in frames if f["rows"])
    assert len(data) == sink.counts.published_messages - 1      # all but the end message hold records
    assert data[0][0] == 0 and data[-1][1] == n
    assert all(a[1] == b[0] for a, b in zip(data, data[1:]))   # the ranges tile the batch
    np.testing.assert_array_equal(np.sort(np.concatenate(seqs)), np.arange(n))


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 200), st.integers(0, 30)), max_size=30),
       st.lists(st.tuples(st.integers(0, 240), st.integers(0, 40)), max_size=20))
def test_collector_ranges_against_a_set_model(ranges, probes):
    """The collector's held ranges of a stream (merged, sorted) answer as the
    set of the numbers added would."""
    state = StreamState(host="h", boot_id="b", ring="r")
    model = set()
    for a, n in ranges:
        state.add_range(a, a + n)
        model.update(range(a, a + n))
        assert state.starts == sorted(state.starts)
        assert all(s < e for s, e in zip(state.starts, state.ends))
        assert all(e < s for e, s in zip(state.ends, state.starts[1:]))     # disjoint, not touching
    assert sum(e - s for s, e in zip(state.starts, state.ends)) == len(model)
    for a, n in probes:
        if n:
            assert state.covers(a, a + n) == all(x in model for x in range(a, a + n)), (a, n)
    seqs = np.array(sorted({a for a, _ in probes}), dtype=np.uint64)
    np.testing.assert_array_equal(state.held(seqs), [int(x) in model for x in seqs])


@pytest.mark.parametrize("url, said", [
    ("nats://127.0.0.1:4222", "needs a subject"),
    ("nats://127.0.0.1:4222/a.*", "without wildcards"),
    ("nats://127.0.0.1:4222/a?backlog=lots", "invalid backlog 'lots'"),
    ("nats://127.0.0.1:4222/a?linger=-1", "invalid linger"),
    ("nats://127.0.0.1:4222/a?colour=red", "unknown option 'colour'"),
    ("kafka://broker:9092/topic", "unknown sink"),
    ("http://example.com/x", "unknown sink"),
])
def test_sink_url_mistakes_are_said_before_any_connection(url, said):
    layout = pykring.recording.Layout([(1, "record", pykring.record_dtype(BODY))])
    with pytest.raises(SinkError) as exc:
        open_sink(url, layout)
    assert said in str(exc.value)


def test_sink_to_a_closed_port_fails_fast_with_the_url():
    port = free_port()
    url = "nats://127.0.0.1:%d/pykring.none" % port
    layout = pykring.recording.Layout([(1, "record", pykring.record_dtype(BODY))])
    t0 = time.monotonic()
    with pytest.raises(SinkError) as exc:
        open_sink(url, layout, connect_timeout=1)
    assert url in str(exc.value) and "nats-server -js" in str(exc.value)
    assert isinstance(exc.value, pykring.KringError)
    assert time.monotonic() - t0 < 30          # bounded, not a hang (the bound is generous: shared CPUs)


def test_watch_sink_to_a_closed_port_exits_non_zero_with_a_message():
    url = "nats://127.0.0.1:%d/pykring.none" % free_port()
    p = subprocess.run([sys.executable, "-m", "pykring", "watch", "--sink", url, "--duration", "30"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0
    assert url in p.stderr and "cannot reach a NATS server" in p.stderr, p.stderr


def test_collect_from_a_closed_port_exits_non_zero_with_a_message(tmp_path):
    url = "nats://127.0.0.1:%d/pykring.none" % free_port()
    p = subprocess.run([sys.executable, "-m", "pykring", "collect", url, "--output", str(tmp_path / "o"),
                        "--connect-timeout", "1"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 1
    assert "cannot reach a NATS server" in p.stderr and url in p.stderr, p.stderr


if __name__ == "__main__":
    if sys.argv[1:2] == ["host"]:
        sys.exit(_host_main(sys.argv[2:]))
    sys.exit("usage: python -m tests.test_fleet host URL HOSTNAME INDEX CTL_DIR BACKLOG PHASES")
