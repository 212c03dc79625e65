"""Unrelated work that keeps the machine busy while the tests run
(``bash run.sh test --busy``): what a user's machine does beside a watch.

    python -m tests.busy [--spawn-rate N] [--cpu-duty F] [--seconds S]

- processes started, at about ``--spawn-rate`` per second (default 300) in
  all: /bin/true, and dynamically linked programs (ls, sh) whose loader maps
  their libraries, from two spawner processes;
- libraries loaded and unloaded (dlopen/dlclose) in a loop;
- every core loaded: one process per CPU that spins ``--cpu-duty`` of each
  10 ms (default 0.6) and sleeps the rest;
- records written into a ring of its own by one process, drained by another.

It runs until SIGTERM or SIGINT (or ``--seconds``) and then stops all of
it. Its processes are its own children: the tests never start them and never
ask for their events, which is the point: a test that passes only without
them is a test of a quiet machine.
"""
import argparse
import ctypes
import ctypes.util
import multiprocessing as mp
import os
import signal
import sys
import time
import uuid

PROGRAMS = (["/bin/true"], ["/bin/ls", "/"], ["/bin/sh", "-c", ":"])


def _spawner(rate: float, stop) -> None:
    """Start PROGRAMS in turn at `rate` per second and reap them."""
    devnull = os.open(os.devnull, os.O_RDWR)
    fa = [(os.POSIX_SPAWN_DUP2, devnull, 1), (os.POSIX_SPAWN_DUP2, devnull, 2)]
    period, nxt, i, running = 1.0 / rate, time.monotonic(), 0, 0
    while not stop.is_set():
        argv = PROGRAMS[i % len(PROGRAMS)]
        i += 1
        try:
            os.posix_spawn(argv[0], argv, os.environ, file_actions=fa)
            running += 1
        except OSError:
            pass
        while running:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                running = 0
                break
            if not pid:
                break
            running -= 1
        nxt += period
        left = nxt - time.monotonic()
        if left > 0:
            time.sleep(left)
        else:
            nxt = time.monotonic()


def _loader(stop) -> None:
    """dlopen and dlclose libraries in a loop: image loads of this process."""
    import _ctypes

    names = [ctypes.util.find_library(n) for n in ("z", "m", "crypt", "bz2", "lzma", "ffi")]
    libs = [n for n in names if n]
    while not stop.is_set():
        for name in libs:
            try:
                h = ctypes.CDLL(name)
                _ctypes.dlclose(h._handle)
            except OSError:
                pass
        time.sleep(0.005)


def _spinner(duty: float, stop) -> None:
    """Spin `duty` of every 10 ms, sleep the rest."""
    while not stop.is_set():
        end = time.monotonic() + 0.01 * duty
        while time.monotonic() < end:
            pass
        time.sleep(0.01 * (1 - duty))


DTYPE = [("i", "u8"), ("pad", "u1", 56)]


def _ring_reader(name: str, ready, stop) -> None:
    """Create the ring and drain it."""
    import numpy as np

    import pykring

    with pykring.create(name, 1 << 20, np.dtype(DTYPE)) as ring:
        ready.set()
        while not stop.is_set():
            try:
                ring.read(timeout=0.05)
            except pykring.RingClosedError:     # the writer stopped first
                return


def _ring_writer(name: str, ready, stop) -> None:
    """Write batches of 64 records into the ring, about 100,000 a second."""
    import numpy as np

    import pykring

    ready.wait(30)
    rows = np.zeros(64, np.dtype(DTYPE))
    with pykring.Producer(name, block=True, timeout=1.0) as p:
        while not stop.is_set():
            p.write(rows)
            time.sleep(0.0006)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.busy", description=__doc__.split("\n\n")[0])
    ap.add_argument("--spawn-rate", type=float, default=300.0, help="processes started per second, in all")
    ap.add_argument("--cpu-duty", type=float, default=0.6, help="fraction of each CPU a spinner takes")
    ap.add_argument("--seconds", type=float, default=None, help="stop after S seconds")
    args = ap.parse_args(argv)
    ctx = mp.get_context("fork")
    stop = ctx.Event()
    ready = ctx.Event()
    name = "busy-%s" % uuid.uuid4().hex[:8]
    procs = [ctx.Process(target=_spawner, args=(args.spawn_rate / 2, stop)) for _ in range(2)]
    procs.append(ctx.Process(target=_loader, args=(stop,)))
    procs += [ctx.Process(target=_spinner, args=(args.cpu_duty, stop)) for _ in range(os.cpu_count() or 1)]
    procs.append(ctx.Process(target=_ring_reader, args=(name, ready, stop)))
    procs.append(ctx.Process(target=_ring_writer, args=(name, ready, stop)))
    for p in procs:
        p.daemon = True
        p.start()
    done = []
    signal.signal(signal.SIGTERM, lambda *a: done.append(1))
    signal.signal(signal.SIGINT, lambda *a: done.append(1))
    print("tests.busy: %d processes (spawners %g/s, a library loader, %d spinners at %g, ring %s), pid %d"
          % (len(procs), args.spawn_rate, os.cpu_count() or 1, args.cpu_duty, name, os.getpid()),
          file=sys.stderr, flush=True)
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    while not done and (deadline is None or time.monotonic() < deadline):
        if any(not p.is_alive() for p in procs):
            bad = [p for p in procs if not p.is_alive()]
            print("tests.busy: a load process stopped (exit %s)" % bad[0].exitcode, file=sys.stderr)
            stop.set()
            return 1
        time.sleep(0.2)
    stop.set()
    for p in procs:
        p.join(10)
        if p.is_alive():
            p.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
