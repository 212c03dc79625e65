"""The wake protocol (PROTOCOL.md 9.1, 9.3), one window at a time.

A lost wakeup needs a record published in a window of nanoseconds: between
the consumer's last look at the ring and its sleep. Stress loops cannot hit
it on purpose, so these tests stop the consumer there. They run the
test-hook build of the extension (tests/hooked.py; csrc/kring_wait.c under
-DKRING_TEST_HOOKS), which stops the consumer's wait at a point and lets a
producer process (the release extension, or the kernel for a BPF map)
publish one record while it is stopped:

  1  the ring looked empty at the loop top;
  2  `waiting` stored (still held in the modelled store buffer), before the fence;
  3  the re-check after the fence found nothing, just before the sleep.

In every window the wait must end with the record, without sleeping to its
timeout (kring_wait_drain, the wait of read(timeout=None), must also return it) (the hook counts sleeps that ended by timeout; nothing here reads a
clock). Removing the re-check of producer_pos fails points 1 and 2; removing
the full fence fails point 3 (tests/mutants.txt, ``bash run.sh mutants``).
"""
import json
import os

import pytest

from tests import hooked

HERE = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(HERE, "procs", "wake_window.py")
IS_LINUX = os.uname().sysname == "Linux" if hasattr(os, "uname") else False
IS_ROOT = IS_LINUX and os.geteuid() == 0

pytestmark = pytest.mark.skipif(not IS_LINUX, reason="the test hooks are built for Linux here")


@pytest.fixture(scope="module")
def hooked_build(tmp_path_factory):
    return hooked.build(str(tmp_path_factory.mktemp("hooked")))


def run_window(b, kind, point, name, call="wait"):
    r = hooked.run(b, CHILD, [kind, str(point), name, call])
    assert r.returncode == 0, "child failed (exit %d):\n%s" % (r.returncode, r.stderr[-4000:])
    return json.loads(r.stdout.strip().splitlines()[-1])


def check_delivered(res):
    assert res["published"], "the consumer never reached the hook point: %r" % res
    assert res["timeouts"] == 0, ("the consumer slept to its timeout with a record in the ring "
                                  "(a lost wakeup): %r" % res)
    assert res["ok"], res
    assert res["values"] == [42], res


def test_release_extension_has_no_test_hooks():
    import pykring._kring as ext

    # The extension the package imports is the release build (run.sh's pip install).
    with open(ext.__file__, "rb") as f:
        data = f.read()
    assert b"kring_test_" not in data, ext.__file__
    assert not hasattr(ext.lib, "kring_test_wait_pause")


def test_hooked_extension_has_the_hooks(hooked_build):
    with open(hooked_build.extension, "rb") as f:
        assert hooked.HOOK_SYMBOL in f.read()


@pytest.mark.parametrize("point", [1, 2, 3])
def test_record_published_in_the_window_wakes_the_futex_consumer(hooked_build, ring_name, point):
    check_delivered(run_window(hooked_build, "futex", point, ring_name))


@pytest.mark.skipif(not IS_ROOT, reason="a BPF ring buffer map needs root")
def test_record_the_kernel_commits_in_the_window_wakes_the_epoll_consumer(hooked_build):
    check_delivered(run_window(hooked_build, "epoll", 1, "-"))


@pytest.mark.parametrize("point", [1, 2, 3])
def test_record_published_in_the_window_is_drained_by_the_same_futex_call(hooked_build, ring_name, point):
    # read(timeout=None) and the iterator wait and drain in one call
    # (kring_wait_drain): the same windows, and the record comes back from it.
    res = run_window(hooked_build, "futex", point, ring_name, "wait_drain")
    check_delivered(res)
    assert res["drained_in_the_call"] == 1, res


@pytest.mark.skipif(not IS_ROOT, reason="a BPF ring buffer map needs root")
def test_record_the_kernel_commits_in_the_window_is_drained_by_the_same_epoll_call(hooked_build):
    res = run_window(hooked_build, "epoll", 1, "-", "wait_drain")
    check_delivered(res)
    assert res["drained_in_the_call"] == 1, res
