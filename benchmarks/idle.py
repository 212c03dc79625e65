"""idle: CPU time of a consumer that waits for records that do not come.

A consumer process creates a ring and forks its producer, which attaches
(``pykring.Producer``), writes nothing for ``seconds`` and then closes the
ring. The consumer is blocked in ``Ring.read(timeout=None)`` the whole time
(it waits in futex slices that double from ``pykring._common.WAIT_SLICE_S``
up to ``WAIT_SLICE_MAX_S`` while nothing arrives, so that a killed producer is
noticed; Ctrl-C ends a futex wait at once on Linux); the call ends
with RingClosedError when the producer closes. Its CPU time (``getrusage``
user + system) over the blocked call, scaled to 10 s, is the idle cost; the
voluntary context switches count its wakeups.

The floor is a process blocked in ``os.eventfd_read`` for the same time
(one wait, no slices), in the same run. Several pykring consumers and the
floor run at the same time: they are all asleep, so they do not disturb
each other. Full run: 10 s, 3 pykring consumers; --quick: 2 s, 2 consumers
(scaled to 10 s).

Keys: ``idle_cpu_s_per_10s`` (median over consumers, with _min/_max),
``idle_wakeups_per_10s``, ``idle_floor_cpu_s_per_10s``.

Child entry point (used by the harness)::

    python -m benchmarks.idle --child MODE SECONDS
"""
import json
import os
import resource
import subprocess
import sys
import time
from typing import Dict, List

from pykring._common import WAIT_SLICE_MAX_S, WAIT_SLICE_S, remove_ring, unique_ring_name

from ._common import ROOT, Report, log

PLAN = {"quick": (2.0, 2), "full": (10.0, 3)}   # (seconds blocked, pykring consumers)


def _usage():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime, r.ru_nvcsw, r.ru_nivcsw


def child_main(mode: str, seconds: float) -> int:
    if mode == "pykring":
        import pykring
        from .drain import body_dtype_for

        name = unique_ring_name("bench-idle")
        ring = pykring.create(name, 1 << 20, body_dtype_for(64))
        ready = os.eventfd(0)
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                with pykring.Producer(ring.path):
                    os.eventfd_write(ready, 1)
                    time.sleep(seconds)
                code = 0
            finally:
                os._exit(code)
        os.eventfd_read(ready)
        u0, t0 = _usage(), time.monotonic()
        got = None
        try:
            got = len(ring.read(timeout=None))
        except pykring.RingClosedError:
            pass
        t1, u1 = time.monotonic(), _usage()
        _, status = os.waitpid(pid, 0)
        ring.close()
        remove_ring(name)
        ok = got is None and os.waitstatus_to_exitcode(status) == 0
    else:
        fd = os.eventfd(0)
        pid = os.fork()
        if pid == 0:
            time.sleep(seconds)
            os.eventfd_write(fd, 1)
            os._exit(0)
        u0, t0 = _usage(), time.monotonic()
        os.eventfd_read(fd)
        t1, u1 = time.monotonic(), _usage()
        os.waitpid(pid, 0)
        ok = True
    print(json.dumps({"ok": ok, "cpu_s": u1[0] - u0[0], "wall_s": t1 - t0,
                      "nvcsw": u1[1] - u0[1], "nivcsw": u1[2] - u0[2]}), flush=True)
    return 0


def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def run(report: Report, quick: bool) -> None:
    seconds, consumers = PLAN["quick" if quick else "full"]
    report.meta["idle"] = {"seconds": seconds, "consumers": consumers}
    log("idle: %d pykring consumers and the eventfd floor, blocked %g s at the same time"
        % (consumers, seconds))
    modes = ["pykring"] * consumers + ["floor"]
    procs = [subprocess.Popen([sys.executable, "-m", "benchmarks.idle", "--child", m, str(seconds)],
                              cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE, text=True)
             for m in modes]
    results: Dict[str, List[dict]] = {"pykring": [], "floor": []}
    for mode, p in zip(modes, procs):
        try:
            out, _ = p.communicate(timeout=seconds + 60)
            res = json.loads(out.strip().splitlines()[-1])
        except Exception as exc:
            p.kill()
            report.fail("idle: %s consumer: %s" % (mode, exc))
            continue
        if not res.get("ok"):
            report.fail("idle: %s consumer did not end as expected: %s" % (mode, res))
            continue
        results[mode].append(res)
    scale = lambda r, k: r[k] * 10.0 / r["wall_s"]     # noqa: E731
    if results["pykring"]:
        report.add("idle_cpu_s_per_10s", None, "s", samples=[scale(r, "cpu_s") for r in results["pykring"]],
                   note="consumer blocked in read(timeout=None) %g s, CPU scaled to 10 s" % seconds)
        report.add("idle_wakeups_per_10s", None, "", samples=[scale(r, "nvcsw") for r in results["pykring"]],
                   note="voluntary context switches (wait slices growing from %g ms to %g s)" % (
                       WAIT_SLICE_S * 1e3, WAIT_SLICE_MAX_S))
    if results["floor"]:
        r = results["floor"][0]
        report.add("idle_floor_cpu_s_per_10s", scale(r, "cpu_s"), "s",
                   note="blocked in os.eventfd_read; %d wakeups" % r["nvcsw"])


def _main(argv: List[str]) -> int:
    if len(argv) == 3 and argv[0] == "--child":
        return child_main(argv[1], float(argv[2]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
