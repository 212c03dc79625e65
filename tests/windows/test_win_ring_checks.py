"""kring.sys under Wine: the range check of the consumer position, one half
at a time.

The driver reads consumer_pos once per record from the consumer page (a
page a mapped client may write) and refuses it when it is not a multiple
of 8 or when `producer_pos - consumer_pos` (unsigned) exceeds the capacity
(PROTOCOL.md 7 step 1, drv/kring_ring_write.c KRingRingWrite). Each nonsense
value below fails exactly one of the two halves, so removing either half
lets one of them through (tests/mutants.txt). A poke of a plausible value
on the same path must leave the ring alone.

The test driver's IOCTL_KRING_TEST_POKE stores the value; the C client
(tests/windows/kring_client.c, ``poke DELTA...``) first makes the producer
go round the 64 KiB data area twice, so that a position more than the
capacity behind it is a real one, then pokes producer_pos + DELTA, injects
3 records and reads STATS before any READ. The same checks run natively
on several CPUs in tests/test_driver_ring_native.py.

Its own Wine prefix: the driver log of the shared session is counted by
test_win_wine_driver.py.
"""
import re

import pytest

from .winharness import CSRC_WIN, HERE, mingw_build, wine_session

CAPACITY = 1 << 16
#: delta from producer_pos -> which half of the check refuses it
NONSENSE = {
    8: "aligned, ahead of the producer",
    -(CAPACITY + 8): "aligned, more than the capacity behind",
    -4: "unaligned, in range",
}
#: plausible: 8-aligned and at most the capacity behind (a full ring drops, never breaks)
PLAUSIBLE = {0: 3, -CAPACITY: 0}        # delta -> records written of the 3
LINE = re.compile(r"^poke (-?\d+) value 0x([0-9a-f]+) pos 0x([0-9a-f]+) flags 0x([0-9a-f]+) written \+(\d+) "
                  r"dropped \+(\d+) cons 0x([0-9a-f]+) drain (-?\d+)$", re.M)


@pytest.fixture(scope="module")
def pokes(built_drivers, win_build_dir):
    """One Wine session, the test driver, the client's poke and armwindow runs."""
    from pykring._lib import lib

    client = mingw_build(win_build_dir / "kring_client_poke.exe", [HERE / "kring_client.c", *CSRC_WIN],
                         libs=["-ladvapi32"])
    session = wine_session("kring-wine-chk-")
    wine = next(session)
    try:
        wine.install_driver("kringchk", built_drivers["test"])
        started = wine.start_driver("kringchk")
        assert started == "RUNNING", wine.driver_log()
        deltas = [*NONSENSE, *PLAUSIBLE]
        r = wine.run([client, "poke", *map(str, deltas)], timeout=180)
        arm = wine.run([client, "armwindow"], timeout=60)
        stopped = wine.stop_driver("kringchk")
        log = wine.driver_log()
    finally:
        session.close()
    assert stopped == "STOPPED", log
    assert re.search(r"^RESULT 0$", r.stdout, re.M), r.stdout + r.stderr
    lines = {}
    for m in LINE.finditer(r.stdout):
        delta, value, pos, flags, written, dropped, cons, drain = m.groups()
        lines[int(delta)] = dict(value=int(value, 16), pos=int(pos, 16), flags=int(flags, 16), written=int(written),
                                 dropped=int(dropped), cons=int(cons, 16), drain=int(drain))
    assert sorted(lines) == sorted(deltas), r.stdout
    assert re.search(r"^RESULT 0$", arm.stdout, re.M), arm.stdout + arm.stderr
    m = re.search(r"^armwindow (.*)$", arm.stdout, re.M)
    assert m, arm.stdout
    words = m.group(1).split()
    armwindow = dict(zip(words[::2], map(int, words[1::2])))
    return {"lines": lines, "log": log, "out": r.stdout, "E_BROKEN": lib.KRING_E_BROKEN, "F_BROKEN": lib.KRING_F_BROKEN,
            "armwindow": armwindow}


@pytest.mark.parametrize("delta", sorted(NONSENSE), ids=lambda d: NONSENSE[d].replace(", ", "_").replace(" ", "_"))
def test_nonsense_consumer_pos_breaks_the_ring(pokes, delta):
    """The first write after the poke reads the value once, refuses it, marks
    the ring broken and writes nothing; all 3 records count as dropped; the
    consumer then finds the ring broken; the driver logs it."""
    got = pokes["lines"][delta]
    assert got["pos"] >= 2 * CAPACITY + 8, got                 # the producer went round twice
    assert got["value"] == (got["pos"] + delta) % (1 << 64), got
    assert got["cons"] == got["value"], got                    # the value the write path read
    assert got["flags"] & pokes["F_BROKEN"], got
    assert (got["written"], got["dropped"]) == (0, 3), got
    assert got["drain"] == pokes["E_BROKEN"], got
    assert "consumer_pos 0x%x is nonsense at producer_pos 0x%x: ring broken" % (got["value"], got["pos"]) \
        in pokes["log"], pokes["log"]


@pytest.mark.parametrize("delta", sorted(PLAUSIBLE), ids=["exactly_full", "caught_up"])
def test_plausible_consumer_pos_keeps_the_ring(pokes, delta):
    got = pokes["lines"][delta]
    assert got["cons"] == got["value"] and not got["flags"] & pokes["F_BROKEN"], got
    assert (got["written"], got["dropped"]) == (PLAUSIBLE[delta], 3 - PLAUSIBLE[delta]), got
    assert "consumer_pos 0x%x is nonsense" % got["value"] not in pokes["log"], pokes["log"]


WAIT_OBJECT_0, WAIT_TIMEOUT = 0, 0x102


def test_copy_mode_wait_windows(pokes):
    """The Windows event path as Wine can run it (copy mode: Wine cannot map
    a ring, so the client waits as wait_records does: READ, READ with ARM,
    then the event). A record written between the plain READ and the arming
    READ comes back from the arming READ; one written after the arming READ
    found nothing sets the event before the client waits on it, and the
    wait finds it set (it was not set before the write: the test can fail).
    Without the arming in KRingRingRead the second wait times out
    (tests/mutants.txt: drv-copy-arm)."""
    got = pokes["armwindow"]
    assert (got["plain"], got["again"]) == (0, 0), got
    assert got["armed"] > 0, got                           # the record, not an empty armed READ
    assert got["before"] == WAIT_TIMEOUT, got
    assert got["after"] == WAIT_OBJECT_0 and got["wakeups"] == 1, got
