"""Rings in an event loop and in select: Ring.fileno(), Ring.aread(),
``async for batch in ring``, pykring.wait_any(), and closing a ring while
something waits on it.

The consumers here are fed by real producers: a producer process over shared
memory, and the kernel (pykring.kernel(), as root). A 10 ms ticker task
shares the loop with the consumer: a consumer that blocked the loop while
it waits would make the ticker miss every tick of that wait (the producers
stay silent for at least half a second first), so the ticker's longest run
of missed ticks tells a responsive loop from a blocked one.
"""
import asyncio
import os
import selectors
import select
import subprocess
import sys
import threading

import numpy as np
import pytest

import pykring
from pykring import _notify

DT = np.dtype([("val", "<u4")])
GUARD = 30.0
TICK = 0.01
#: A few ticks: a loop blocked in a ring's wait would miss 50 and more.
FEW_TICKS = 10

@pytest.fixture
def require_root():
    """The kernel ring needs root (KRING_REQUIRE_ALL makes the skip a failure)."""
    if not sys.platform.startswith("linux") or os.geteuid() != 0:
        pytest.skip("pykring.kernel() needs root on Linux")


PRODUCER = r"""
import sys, time
import pykring
name, count, pause = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
with pykring.Producer(name, block=True) as p:
    print("ready", flush=True)
    sys.stdin.readline()
    time.sleep(pause)               # the consumer waits, idle, meanwhile
    for i in range(count):
        p.write((i,))
        time.sleep(0.02)
"""


def start_producer(name, count, pause=0.5):
    p = subprocess.Popen([sys.executable, "-c", PRODUCER, name, str(count), str(pause)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "ready"
    return p


class Ticker:
    """A task ticking every TICK seconds on a fixed schedule; `worst` is the
    longest run of ticks it missed (woken more than a tick late)."""

    def __init__(self):
        self.ticks = 0
        self.worst = 0
        self.due = 0.0

    def _late(self, now):
        late = int((now - self.due) / TICK)
        self.worst = max(self.worst, late)
        return late

    async def run(self):
        loop = asyncio.get_running_loop()
        self.due = loop.time()
        while True:
            self.due += TICK
            await asyncio.sleep(max(0.0, self.due - loop.time()))
            self.due += self._late(loop.time()) * TICK      # skip the missed ones
            self.ticks += 1

    def stop(self, task):
        # The tick due now counts too: a consumer that blocked the loop up
        # to its very end never let the ticker wake to see it.
        self._late(asyncio.get_running_loop().time())
        task.cancel()


async def consume_with_ticker(consume):
    ticker = Ticker()
    task = asyncio.ensure_future(ticker.run())
    await asyncio.sleep(5 * TICK)           # the ticker is going before the consumer starts
    try:
        result = await asyncio.wait_for(consume(), GUARD)
    finally:
        ticker.stop(task)
    return result, ticker


def test_async_for_user_ring_real_producer_loop_stays_responsive(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring:
        prod = start_producer(ring_name, 40)

        async def consume():
            got = []
            prod.stdin.write("go\n")
            prod.stdin.flush()
            async for batch in ring:        # ends when the producer closes the ring
                got.extend(batch["val"].tolist())
            return got

        got, ticker = asyncio.run(consume_with_ticker(consume))
        assert prod.wait(GUARD) == 0
    assert got == list(range(40))
    assert ticker.ticks > 0
    assert ticker.worst <= FEW_TICKS, "the loop missed %d ticks in a row" % ticker.worst


def test_aread_user_ring_waits_without_blocking_and_times_out(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring:
        prod = start_producer(ring_name, 3)

        async def consume():
            assert len(await ring.aread(timeout=0.05)) == 0     # nothing yet: empty after the timeout
            prod.stdin.write("go\n")
            prod.stdin.flush()
            rows = []
            while len(rows) < 3:
                rows.extend((await ring.aread())["val"].tolist())
            return rows

        rows, ticker = asyncio.run(consume_with_ticker(consume))
        assert prod.wait(GUARD) == 0
    assert rows == [0, 1, 2]
    assert ticker.ticks > 0
    assert ticker.worst <= FEW_TICKS


def test_async_for_kernel_ring_sees_spawned_processes(require_root):
    with pykring.kernel(events="process") as ring:

        pids = set()

        async def spawn():
            await asyncio.sleep(0.5)        # the consumer awaits meanwhile
            for _ in range(3):
                child = await asyncio.create_subprocess_exec("/bin/true")
                await child.wait()
                pids.add(child.pid)

        async def consume():
            while ring.read_batch().count:  # what came before: the consumer then awaits
                pass
            seen = set()

            async def read_all():
                async for batch in ring:    # until cancelled below
                    seen.update(batch["process_start"]["pid"].tolist())

            reader = asyncio.ensure_future(read_all())
            await spawn()
            # The last start may be read before spawn() returns, and a quiet
            # machine sends nothing after it: wait for the set, not a batch.
            deadline = asyncio.get_running_loop().time() + GUARD / 2
            while not pids <= seen and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(TICK)
            assert pids <= seen, "not seen: %s; %s" % (sorted(pids - seen), ring.stats)
            reader.cancel()                 # (closing a kernel ring blocks ~0.3 s: not on the loop)
            with pytest.raises(asyncio.CancelledError):
                await reader
            return pids, seen

        (pids, seen), ticker = asyncio.run(consume_with_ticker(consume))
    assert pids <= seen
    assert ticker.worst <= FEW_TICKS, "the loop missed %d ticks in a row" % ticker.worst


def test_kernel_ring_fileno_is_its_epoll_fd_readable_with_records(require_root):
    with pykring.kernel(events="process") as ring:
        fd = ring.fileno()
        assert os.readlink("/proc/self/fd/%d" % fd) == "anon_inode:[eventpoll]"
        ring.read_batch()                   # whatever started before
        subprocess.run(["/bin/true"], check=True)
        r, _, _ = select.select([fd], [], [], GUARD)
        assert r == [fd]
        while ring.read_batch().count:
            pass


def test_select_and_selectors_follow_pending_records(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        assert select.select([ring], [], [], 0) == ([], [], [])
        with selectors.DefaultSelector() as sel:
            sel.register(ring, selectors.EVENT_READ)
            assert sel.select(0) == []
            p.write([(1,), (2,)])
            events = sel.select(GUARD)
            assert [k.fileobj for k, _ in events] == [ring]
            # Readable until drained: one record read, one still pending.
            assert ring.read(max_records=1)["val"].tolist() == [1]
            assert [k.fileobj for k, _ in sel.select(0)] == [ring]
            assert ring.read()["val"].tolist() == [2]
            assert sel.select(0) == []
            sel.unregister(ring)
        p.write((3,))
        assert select.select([ring], [], [], GUARD)[0] == [ring]


def test_loop_add_reader_on_a_ring(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:

        async def main():
            loop = asyncio.get_running_loop()
            fut = loop.create_future()
            loop.add_reader(ring, lambda: fut.done() or fut.set_result(ring.read()))
            loop.call_later(0.05, p.write, (7,))
            try:
                return await asyncio.wait_for(fut, GUARD)
            finally:
                loop.remove_reader(ring)

        assert asyncio.run(main())["val"].tolist() == [7]


def test_a_call_from_another_thread_does_not_sit_behind_the_waiter(ring_name, monkeypatch):
    # Slices of an hour: a call that waited for the waiter's slice to end
    # would hang; it must interrupt the wait instead.
    monkeypatch.setattr(_notify, "WAIT_SLICE_S", 3600.0)
    monkeypatch.setattr(_notify, "WAIT_SLICE_MAX_S", 3600.0)
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        ring.fileno()                       # the waiter now sleeps in the ring's wait
        results = []
        t = threading.Thread(target=lambda: results.append((ring.stats.read, len(ring.read()))))
        t.start()
        t.join(GUARD)
        assert not t.is_alive(), "a call sat behind the waiter's wait"
        assert results == [(0, 0)]
        # And the waiter still reports the next record after being interrupted.
        p.write((5,))
        assert select.select([ring], [], [], GUARD)[0] == [ring]
        assert ring.read()["val"].tolist() == [5]


def test_wait_any(ring_name):
    other = ring_name + "-b"
    with pykring.create(ring_name, 1 << 16, DT) as a, pykring.create(other, 1 << 16, DT) as b, \
            pykring.Producer(other) as pb:
        assert pykring.wait_any([a, b], timeout=0.05) == []
        threading.Timer(0.1, pb.write, args=((9,),)).start()
        assert pykring.wait_any([a, b], timeout=GUARD) == [b]
        assert b.read()["val"].tolist() == [9]
        # Pending already: no wait at all.
        pb.write((10,))
        assert pykring.wait_any([a, b, b], timeout=0) == [b]
        b.read()
        # Closed from another thread while waiting: reported ready.
        threading.Timer(0.1, a.close).start()
        assert pykring.wait_any([a, b], timeout=GUARD) == [a]
        assert a.closed
        with pytest.raises(ValueError):
            pykring.wait_any([])


def test_wait_any_kernel_and_user_ring(ring_name, require_root):
    with pykring.kernel(events="process") as k, pykring.create(ring_name, 1 << 16, DT) as u:
        while k.read_batch().count:
            pass
        subprocess.run(["/bin/true"], check=True)
        assert k in pykring.wait_any([u, k], timeout=GUARD)


def test_close_from_another_thread_ends_async_for(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        p.write((1,))

        async def consume():
            got = []
            threading.Timer(0.2, ring.close).start()
            async for batch in ring:
                got.extend(batch["val"].tolist())
            return got

        assert asyncio.run(asyncio.wait_for(consume(), GUARD)) == [1]
        assert ring.closed


def test_close_from_the_loop_ends_async_for_and_aread_raises(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring:

        async def main():
            loop = asyncio.get_running_loop()
            loop.call_later(0.1, ring.close)
            with pytest.raises(pykring.RingClosedError):
                await asyncio.wait_for(ring.aread(), GUARD)
            return [b async for b in ring]

        assert asyncio.run(main()) == []


def test_close_of_a_kernel_ring_ends_async_for(require_root):
    ring = pykring.kernel(events="process")

    async def consume():
        # Read until quiet, then close from another thread while awaiting.
        n = 0
        threading.Timer(0.5, ring.close).start()
        async for batch in ring:
            n += batch.count
        return n

    asyncio.run(asyncio.wait_for(consume(), GUARD))
    assert ring.closed


def test_producer_killed_aread_raises_producer_gone(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring:
        child = subprocess.Popen([sys.executable, "-c", (
            "import os, signal, pykring\n"
            "p = pykring.Producer(%r)\n"
            "p.write((4,))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n") % ring_name])
        assert child.wait(GUARD) == -9

        async def consume():
            rows = (await ring.aread())["val"].tolist()
            with pytest.raises(pykring.ProducerGoneError):
                await asyncio.wait_for(ring.aread(), GUARD)
            return rows

        assert asyncio.run(consume()) == [4]


def test_fork_child_cannot_use_fileno_parent_keeps_waiting(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:
        ring.fileno()                       # the waiter thread runs (not in the child)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                ring.fileno()
            except pykring.KringError as exc:
                code = 0 if "fork" in str(exc) else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        p.write((8,))
        assert select.select([ring], [], [], GUARD)[0] == [ring]
        assert ring.read()["val"].tolist() == [8]


def test_unreferenced_ring_with_a_waiter_is_collected(ring_name):
    import gc
    import weakref

    ring = pykring.create(ring_name, 1 << 16, DT)
    ring.fileno()
    ref = weakref.ref(ring)
    del ring
    for _ in range(100):
        gc.collect()
        if ref() is None:
            break
        threading.Event().wait(0.05)        # the waiter lets go at the end of its slice
    assert ref() is None
    assert not os.path.exists("/dev/shm/" + ring_name)


# ---- the waiter's wait, stopped inside the wake protocol's windows ----------

NOTIFY_CHILD = r'''
import json, os, select, subprocess, sys
import pykring
from pykring import _lib, _notify

# Slices of an hour: a waiter that slept through the record would sleep on
# long after the select below gave up (and the hook counts such a sleep).
_notify.WAIT_SLICE_S = _notify.WAIT_SLICE_MAX_S = 3600.0
PRODUCER = """
import os, sys
import pykring
p = pykring.Producer(sys.argv[1])
os.write(1, b"r")
if os.read(0, 1):                       # the waiter is stopped at its hook point
    p.write((42,))
    os.write(1, b"p")                   # published: resume it
    os.read(0, 1)
p.close()
"""
point, name = int(sys.argv[1]), sys.argv[2]
ring = pykring.create(name, 1 << 16, [("val", "<u4")], replace=True)
prod = subprocess.Popen([sys.executable, "-c", PRODUCER, name], stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE, bufsize=0)
assert os.read(prod.stdout.fileno(), 1) == b"r"
_lib.lib.kring_test_wait_pause(point, prod.stdin.fileno(), prod.stdout.fileno())
fd = ring.fileno()                      # the waiter thread starts and waits
readable = select.select([fd], [], [], 60)[0] == [fd]
timeouts = _lib.lib.kring_test_wait_timeouts()
_lib.lib.kring_test_wait_pause(0, -1, -1)
prod.stdin.close()
published = prod.wait(timeout=60) == 0
got = ring.read()["val"].tolist()
ring.close()
print(json.dumps({"readable": readable, "timeouts": timeouts, "published": published, "values": got}))
'''


@pytest.fixture(scope="module")
def hooked_build(tmp_path_factory):
    from tests import hooked

    return hooked.build(str(tmp_path_factory.mktemp("hooked")))


@pytest.mark.parametrize("point", [1, 2, 3])
def test_record_published_inside_the_waiters_wait_makes_the_fd_readable(hooked_build, ring_name, tmp_path, point):
    import json

    from tests import hooked

    script = tmp_path / "notify_window.py"
    script.write_text(NOTIFY_CHILD)
    r = hooked.run(hooked_build, str(script), [str(point), ring_name])
    assert r.returncode == 0, r.stderr[-4000:]
    res = json.loads(r.stdout.strip().splitlines()[-1])
    assert res["published"], "the waiter never reached hook point %d: %r" % (point, res)
    assert res["timeouts"] == 0 and res["readable"], "a lost wakeup: %r" % res
    assert res["values"] == [42]


def test_cancelled_aread_consumes_nothing_and_leaves_no_reader(ring_name):
    with pykring.create(ring_name, 1 << 16, DT) as ring, pykring.Producer(ring_name) as p:

        async def main():
            loop = asyncio.get_running_loop()
            task = asyncio.ensure_future(ring.aread())
            await asyncio.sleep(0.05)           # awaiting the fd now
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            p.write((3,))
            # The loop watches no fd of the ring any more; the record is still there.
            return len(loop._selector.get_map()), (await ring.aread(timeout=GUARD))["val"].tolist()

        readers, rows = asyncio.run(main())
        assert rows == [3]
        assert readers == 1                     # the loop's own self-pipe only
