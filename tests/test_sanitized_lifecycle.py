"""The C drain and producer under ASan+UBSan and under TSan, driven through pykring's
public API with real concurrency: threads in the sanitized process and a producer
process beside it (tests/procs/lifecycle.py, run by tests/sanitizer.py with a
sanitizer build of pykring._kring).

Every scenario runs once per sanitizer; a sanitizer report, a crash, a hang or a
wrong result fails it:

a. a producer process writes 200k records in block mode while 3 threads drain ONE
   Ring with read(max_records=16, timeout=None): every seq arrives exactly once;
b. 4 threads write through ONE Producer (block mode) while the main thread drains:
   gapless seqs, each writer's records in its order;
c. Ring.close() while another thread is blocked in read(timeout=None) (which raises
   RingClosedError) or in iteration (which ends), and Producer.close() while another
   thread is blocked in a write() of more records than fit (RingClosedError).

The controls use each object from one thread only (a producer process and one
reading thread; one writing thread and the main thread reading), as the library
has always allowed: they show that the harness runs clean when the code is right.
test_reports_fail_the_run shows that it does not when a sanitizer reports.
"""
import os
import textwrap

import pytest

from tests import sanitizer
from tests.ringutil import remove_ring, unique_ring_name

LIFECYCLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "procs", "lifecycle.py")

KINDS = [pytest.param("asan", marks=pytest.mark.asan), pytest.param("tsan", marks=pytest.mark.tsan)]


def run_scenario(build, scenario):
    prefix = unique_ring_name("san")
    try:
        r = sanitizer.run(build, LIFECYCLE, [scenario, prefix], timeout=300)
    finally:
        # A child that crashed leaves its rings behind.
        for f in os.listdir("/dev/shm"):
            if f.startswith(prefix + "-"):
                remove_ring(f)
    sanitizer.check(r)
    assert r.stdout.splitlines()[-1].startswith("ok "), r.stdout
    return r


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("scenario", ["process-one-reader", "thread-one-writer"])
def test_control_one_thread_per_object(sanitizer_build, kind, scenario):
    run_scenario(sanitizer_build(kind), scenario)


@pytest.mark.parametrize("kind", KINDS)
def test_three_threads_drain_one_ring_from_a_producer_process(sanitizer_build, kind):
    run_scenario(sanitizer_build(kind), "process-3-readers")


@pytest.mark.parametrize("kind", KINDS)
def test_four_threads_write_through_one_producer(sanitizer_build, kind):
    run_scenario(sanitizer_build(kind), "thread-4-writers")


@pytest.mark.parametrize("kind", KINDS)
def test_close_from_another_thread_ends_the_blocked_call(sanitizer_build, kind):
    run_scenario(sanitizer_build(kind), "close-while-blocked")


#: A bug of each kind outside pykring (libc's memset through ctypes, which the runtime
#: intercepts): the report must fail the run, else a clean run would mean nothing.
BUGS = {
    # one byte past a malloc'd block
    "asan": '''
        import ctypes
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        p = libc.malloc(8)
        ctypes.memset(p, 0, 9)
        print("not reported")
    ''',
    # two threads writing one buffer at once (ctypes releases the GIL around the call)
    "tsan": '''
        import ctypes, threading
        libc = ctypes.CDLL(None)
        libc.malloc.restype = ctypes.c_void_p
        p = libc.malloc(1 << 16)
        go = threading.Barrier(2)

        def fill(v):
            go.wait()
            for _ in range(2000):
                ctypes.memset(p, v, 1 << 16)

        ts = [threading.Thread(target=fill, args=(v,)) for v in (1, 2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        print("not reported")
    ''',
}


@pytest.mark.parametrize("kind", KINDS)
def test_reports_fail_the_run(sanitizer_build, kind, tmp_path):
    b = sanitizer_build(kind)
    script = tmp_path / "bug.py"
    script.write_text(textwrap.dedent(BUGS[kind]))
    r = sanitizer.run(b, str(script), timeout=300)
    assert r.returncode != 0, r.stderr[-4000:]
    assert sanitizer.reports(r), r.stderr[-4000:]
    assert "not reported" not in r.stdout
    with pytest.raises(AssertionError, match="sanitizer report"):
        sanitizer.check(r)
