"""``watch --output`` on the real kernel, then ``python -m pykring replay``:
the replay prints byte for byte what the live watch printed (text and JSON,
every format, a rotated series, filters applied at replay as a live watch
with those filters applied them), reports loss as the live run did, and a
watch killed with SIGKILL leaves a recording that replays up to its last
complete batch.

Needs Linux and root, like tests/test_kernel_linux.py (a failure under
KRING_REQUIRE_ALL=1 where they cannot run).
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from pykring import recording

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IS_ROOT = sys.platform.startswith("linux") and os.geteuid() == 0
pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the kernel event source needs Linux and root")
FORMATS = (".arrows", ".parquet", ".jsonl")


#: Watch processes a test started and has not seen end (killed after it).
_running: list = []


@pytest.fixture(autouse=True)
def _no_watch_outlives_its_test():
    """A test that fails before it stops its watches kills them: a watch of a
    busy machine left running would load every later test."""
    yield
    while _running:
        p = _running.pop()
        if p.poll() is None:
            p.kill()
            p.wait(timeout=60)


class Watch:
    """A `python -m pykring watch` process, stdout and stderr in files."""

    def __init__(self, tmp, name, *args):
        self.out_path = str(tmp / (name + ".out"))
        self.err_path = str(tmp / (name + ".err"))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.p = subprocess.Popen([sys.executable, "-m", "pykring", "watch", *args], stdout=out,
                                      stderr=err, cwd=ROOT)
        _running.append(self.p)

    def started(self, timeout=180.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if b"Ctrl-C to stop" in open(self.err_path, "rb").read():
                return
            assert self.p.poll() is None, open(self.err_path).read()
            time.sleep(0.05)
        raise AssertionError("watch did not start: " + open(self.err_path).read())

    def stop(self, sig=signal.SIGINT):
        self.p.send_signal(sig)
        # A hang guard, not a time limit: on a busy machine a watch may have
        # a long backlog of the machine's events to print and record first.
        self.p.wait(timeout=300)
        if sig == signal.SIGINT:
            assert self.p.returncode == 0, self.err
        return self.out

    @property
    def out(self):
        return open(self.out_path, "rb").read()

    @property
    def err(self):
        return open(self.err_path).read()


def replay(path, *args):
    r = subprocess.run([sys.executable, "-m", "pykring", "replay", path, *args], capture_output=True, cwd=ROOT,
                       timeout=300)
    assert r.returncode == 0, r.stderr.decode()
    return r.stdout, r.stderr.decode()


def workload(tmp, tag):
    """Processes with awkward strings: a non-UTF-8 cwd and argument, a
    newline, a failed exec, a signal death, the probe program run by name."""
    odd = tmp / ("dir-\xe9-\n".encode("utf-8", "surrogateescape") + b"\xff").decode("utf-8", "surrogateescape")
    odd.mkdir(exist_ok=True)
    probe = tmp / tag
    if not probe.exists():
        os.symlink("/bin/true", str(probe))
    subprocess.run([str(probe), "a\nb", b"\xfe\xff".decode("utf-8", "surrogateescape"), ""], cwd=str(odd))
    subprocess.run(["sh", "-c", "for i in 1 2 3 4 5; do %s $i; done; /nonexistent 2>/dev/null; "
                                "sh -c 'kill -9 $$'; true" % probe])


def assert_same(got, live, what):
    """Equal bytes, or the first line that differs (and the line counts)."""
    if got == live:
        return
    a, b = got.splitlines(), live.splitlines()
    i = next((k for k, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    raise AssertionError("%s: replay %d lines, live %d; first difference at line %d:\nreplay %r\nlive   %r"
                         % (what, len(a), len(b), i, a[i] if i < len(a) else None, b[i] if i < len(b) else None))


def summary_counts(err, who):
    m = re.search(r"pykring %s: (\d+) events.*kernel wrote (\S+), dropped (\S+); sequence gaps (\d+)" % who, err)
    assert m, err
    return m.groups()


def test_a_recording_in_each_format_replays_to_the_same_lines(tmp_path):
    tag = "probe-%d" % os.getpid()
    watches = {fmt: Watch(tmp_path, "json" + fmt, "--json", "--output", str(tmp_path / ("rec" + fmt)))
               for fmt in FORMATS}
    text = Watch(tmp_path, "text", "--output", str(tmp_path / "text.arrows"))
    filtered = Watch(tmp_path, "filtered", "--json", "--comm", tag)
    rotated = Watch(tmp_path, "rotated", "--json", "--output", str(tmp_path / "rot.jsonl"), "--rotate", "20K")
    everyone = list(watches.values()) + [text, filtered, rotated]
    for w in everyone:
        w.started()
    for _ in range(3):
        workload(tmp_path, tag)
    time.sleep(0.5)
    for w in everyone:
        w.stop()
    for fmt, w in watches.items():
        live = w.out
        assert live.count(b"\n") > 50 and tag.encode() in live
        got, err = replay(str(tmp_path / ("rec" + fmt)), "--json")
        assert_same(got, live, fmt)
        assert summary_counts(err, "replay") == summary_counts(w.err, "watch")
        assert "cut short" not in err
    got, _ = replay(str(tmp_path / "text.arrows"))
    assert_same(got, text.out, "text")
    assert text.out.startswith(b"TIME")
    # A filter at replay prints what a live watch with that filter printed
    # (another ring: its own seq numbers and times, so durations too).
    got, _ = replay(str(tmp_path / "rec.arrows"), "--json", "--comm", tag)

    def events(out):
        return [{k: v for k, v in json.loads(x).items() if k not in ("seq", "ts", "time", "start_ts", "duration_ns")}
                for x in out.splitlines()]

    assert events(got) == events(filtered.out) and got.count(b"\n") >= 3 * 7
    # A rotated series: several files, replayed as one.
    files = sorted(p for p in os.listdir(str(tmp_path)) if re.fullmatch(r"rot\.\d{6}\.jsonl", p))
    assert len(files) >= 2, files
    got, _ = replay(str(tmp_path / "rot.jsonl"), "--json")
    assert_same(got, rotated.out, "rotated")
    # The recorded strings are the kernel's bytes: the JSON says what live said.
    starts = [json.loads(x) for x in got.splitlines() if b'"process_start"' in x and tag.encode() in x]
    assert any(s["argv"][1:] == ["a\nb", "\udcfe\udcff", ""] for s in starts)


def test_loss_is_reported_by_the_replay_as_it_was_live(tmp_path):
    """A small kernel ring that a fork storm overflows: the replay's loss
    lines and counts are the live watch's."""
    w = Watch(tmp_path, "lossy", "--json", "--size", "8K", "--wake-interval", "1", "--output",
              str(tmp_path / "lossy.jsonl"))
    w.started()
    for _ in range(5):
        subprocess.run(["sh", "-c", "for i in $(seq 200); do /bin/true & done; wait"])
    time.sleep(1.5)
    w.stop()
    live_err = w.err
    lost_live = [int(n) for n in re.findall(r"pykring watch: (\d+) events lost", live_err)]
    assert lost_live, "no loss to report: " + live_err
    got, err = replay(str(tmp_path / "lossy.jsonl"), "--json")
    assert_same(got, w.out, "lossy")
    assert [int(n) for n in re.findall(r"pykring replay: (\d+) events lost", err)] == lost_live
    live = summary_counts(live_err, "watch")
    assert summary_counts(err, "replay") == live and int(live[2]) > 0


def test_a_killed_watch_leaves_a_recording_that_replays_up_to_its_last_batch(tmp_path):
    tag = "killed-%d" % os.getpid()
    watches = {fmt: Watch(tmp_path, "k" + fmt, "--json", "--output", str(tmp_path / ("k" + fmt)))
               for fmt in FORMATS}
    for w in watches.values():
        w.started()
    # Until each watch printed the tagged events and more after them, for 2 s
    # more at least: a watch records a batch right after printing it, so a
    # busy machine delays, but does not skip, the recording of the first.
    seen = {fmt: None for fmt in watches}
    end = time.monotonic() + 3
    give_up = time.monotonic() + 300
    while (time.monotonic() < end or
           any(n is None or len(watches[f].out) <= n[0] or time.monotonic() < n[1] for f, n in seen.items())):
        assert time.monotonic() < give_up, "the watches printed nothing after the tagged events"
        workload(tmp_path, tag)
        for fmt, w in watches.items():
            if seen[fmt] is None and tag.encode() in w.out:
                seen[fmt] = (len(w.out), time.monotonic() + 2)
    for w in watches.values():
        w.stop(signal.SIGKILL)
    assert os.path.exists(str(tmp_path / "k.parquet") + recording._JOURNAL)   # no Parquet file: killed
    for fmt, w in watches.items():
        live = w.out
        got, err = replay(str(tmp_path / ("k" + fmt)), "--json")
        assert "cut short" in err, err
        # Everything replayed was printed live, in the same order (the live
        # watch printed a batch before recording it).
        assert got and live.startswith(got), fmt
        assert got.count(b"\n") > 20
        assert all(json.loads(x)["type"] for x in got.splitlines())


@pytest.mark.parametrize("args, message", [
    (["--output", "/nonexistent-dir/x.arrows"], "cannot write the recording /nonexistent-dir/x.arrows: "
                                                 "No such file or directory"),
    (["--output", "x.csv"], "cannot tell the recording format of 'x.csv'"),
    (["--rotate", "1M"], "--rotate needs --output FILE"),
])
def test_a_recording_it_cannot_write_is_said_before_any_event(args, message):
    r = subprocess.run([sys.executable, "-m", "pykring", "watch", "--duration", "5", *args], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 2 and message in r.stderr and not r.stdout, r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_full_disk_stops_the_watch_with_a_message_and_a_readable_recording(tmp_path, fmt):
    """A recording on a 256 KiB tmpfs that fills: the watch says so and
    exits 1 (no traceback, no silent stop), and what it recorded before
    replays. The watch is filtered to this test's process tree, so that its
    batches are the workload's, not a busy machine's (whose first batch alone
    could fill the disk, leaving nothing complete to replay)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], check=True)
    try:
        path = str(mnt / ("full" + fmt))
        w = Watch(tmp_path, "full", "--json", "--duration", "60", "--tree", str(os.getpid()), "--output", path)
        w.started()
        end = time.monotonic() + 60
        while w.p.poll() is None and time.monotonic() < end:
            workload(tmp_path, "full-%d" % os.getpid())
        assert w.p.wait(timeout=60) == 1, w.err
        err = w.err
        assert "pykring watch: recording to %s failed: No space left on device; the watch stopped" % path in err, err
        assert "Traceback" not in err
        got, rerr = replay(path, "--json")
        assert got and w.out.startswith(got), rerr
    finally:
        subprocess.run(["umount", "-l", str(mnt)])


def test_ctrl_c_inside_print_and_record_waits_for_both_while_other_threads_run():
    """watch prints and records a batch, or neither. With another thread
    that does not block SIGINT (pyarrow starts some), the kernel may give
    the signal to that thread; it must still wait for the block's end."""
    program = (
        "import os, signal, threading, time\n"
        "from pykring.watch import _stops_held\n"
        "threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\n"
        "done = []\n"
        "try:\n"
        "    for i in range(20):\n"
        "        with _stops_held():\n"
        "            os.kill(os.getpid(), signal.SIGINT)\n"
        "            for _ in range(100):\n"
        "                time.sleep(0.0005)\n"
        "            done.append(i)\n"
        "except KeyboardInterrupt:\n"
        "    print(done)\n")
    r = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[0]", "the block was interrupted: %r %r" % (r.stdout, r.stderr[-2000:])


def test_what_the_kernel_wrote_before_ctrl_c_is_shown(tmp_path):
    """Ctrl-C while a burst's events are still in the ring (the watch is
    stopped, SIGSTOP, while the burst runs; wakeups batched for 10 s): they
    are shown before the watch ends, not left there."""
    tag = "stop-%d" % os.getpid()
    probe = tmp_path / tag
    os.symlink("/bin/true", str(probe))
    w = Watch(tmp_path, "stop", "--json", "--wake-interval", "10", "--comm", tag)
    w.started()
    os.kill(w.p.pid, signal.SIGSTOP)
    try:
        subprocess.run(["sh", "-c", 'for i in 1 2 3 4 5 6 7 8; do "$0"; done', str(probe)], check=True)
    finally:
        os.kill(w.p.pid, signal.SIGINT)     # pending until it runs again
        os.kill(w.p.pid, signal.SIGCONT)
    assert w.p.wait(timeout=60) == 0, w.err
    lines = [json.loads(x) for x in w.out.splitlines()]
    kinds = sorted(e["type"] for e in lines)
    assert kinds == ["process_exit"] * 8 + ["process_start"] * 8, (kinds, w.err)


def test_sigterm_stops_a_watch_as_ctrl_c_does_and_its_recording_is_closed(tmp_path):
    """kill, systemd and timeout(1) send SIGTERM: the watch stops with its
    summary, exit 0, and a Parquet recording is a Parquet file (not a
    journal left as by a crash) that replays what was printed."""
    tag = "term-%d" % os.getpid()
    w = Watch(tmp_path, "term", "--json", "--output", str(tmp_path / "t.parquet"))
    w.started()
    workload(tmp_path, tag)
    live = w.stop(signal.SIGTERM)
    assert w.p.returncode == 0, w.err
    assert "pykring watch: " in w.err and "events in" in w.err, w.err
    assert os.path.exists(str(tmp_path / "t.parquet"))
    assert not os.path.exists(str(tmp_path / "t.parquet") + recording._JOURNAL)
    assert tag.encode() in live
    got, _ = replay(str(tmp_path / "t.parquet"), "--json")
    assert_same(got, live, "sigterm")
