"""Child-process roles for tests/test_crossproc.py, and the checksummed records
both sides use.

Run as ``python roles.py ROLE JSON-ARGS``: each role is one real process (a
producer or a consumer) talking to the test through a shared-memory ring. A
role prints ``ready ...`` on stdout once it is attached, and a final
``done ...`` / ``ok ...`` line; anything unexpected is an exception (non-zero
exit status, traceback on stderr). The test imports this file too (for
``make`` / ``check``), so it must not do anything at import time.

Records carry a value and a checksum derived from their sequence number, so
the consumer can tell a record's content belongs to its seq: a torn record
(half old lap, half new) or a record delivered under the wrong seq fails
``check``. All of it is vectorised numpy: 10**7 records cost seconds.
"""
import json
import os
import signal
import sys
import time

import numpy as np

#: 48-byte records (40 + the 8-byte ring header): many per ring.
SMALL = np.dtype([("val", "<u8"), ("ck", "<u8")])
#: 1040-byte records (1032 + header): a torn record shows in `blob`.
BIG_WORDS = 124
BIG = np.dtype([("val", "<u8"), ("blob", "<u8", (BIG_WORDS,)), ("ck", "<u8")])
KINDS = {"small": SMALL, "big": BIG}

_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)
_GOLD = np.uint64(0x9E3779B97F4A7C15)


def mix(x):
    """splitmix64's finaliser, elementwise on a uint64 array (wraps mod 2**64)."""
    x = np.array(x, dtype=np.uint64, copy=True)
    x ^= x >> np.uint64(30)
    x *= _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


#: Big records repeat their content with this period (a prime, more than the
#: records of any ring lap in the tests, so the record a torn one would mix
#: with always has other content): producers write views of a prebuilt pool
#: and spend their time in the C copy, where a SIGKILL should land.
BIG_PERIOD = 1021


def _expected(seq, kind):
    seq = np.asarray(seq, dtype=np.uint64)
    if kind == "big":
        seq = seq % np.uint64(BIG_PERIOD)
    val = mix(seq ^ np.uint64(0x5EED))
    if kind == "small":
        return val, None, mix(seq * _GOLD + val)
    blob = mix(seq[:, None] * np.uint64(128) + np.arange(BIG_WORDS, dtype=np.uint64))
    ck = mix(val ^ np.bitwise_xor.reduce(blob, axis=1) ^ (seq * _GOLD))
    return val, blob, ck


def _fill(arr, seq0, kind):
    val, blob, ck = _expected(np.arange(seq0, seq0 + len(arr), dtype=np.uint64), kind)
    arr["val"] = val
    arr["ck"] = ck
    if blob is not None:
        arr["blob"] = blob
    return arr


_pools = {}


def _big_pool(dtype):
    """Two periods of big records back to back: any n <= BIG_PERIOD consecutive
    seqs are one slice of it."""
    key = dtype.descr.__repr__()
    if key not in _pools:
        _pools[key] = _fill(np.zeros(2 * BIG_PERIOD, dtype=dtype), 0, "big")
    return _pools[key]


def make(kind, seq0, n, dtype=None):
    """n records whose sequence numbers will be seq0 .. seq0 + n - 1 (body fields
    filled; the producer stamps the header). Big records: a read-only view."""
    dtype = dtype if dtype is not None else KINDS[kind]
    if kind == "big" and n <= BIG_PERIOD:
        start = seq0 % BIG_PERIOD
        return _big_pool(dtype)[start:start + n]
    return _fill(np.zeros(n, dtype=dtype), seq0, kind)


def check(batch, kind):
    """Indices of the records in `batch` whose content does not match their seq
    (an empty array when all are right)."""
    if len(batch) == 0:
        return np.empty(0, dtype=np.intp)
    if kind == "big":
        want = _big_pool(BIG)[batch["seq"] % np.uint64(BIG_PERIOD)]
        val, blob, ck = want["val"], want["blob"], want["ck"]
    else:
        val, blob, ck = _expected(batch["seq"], kind)
    bad = (batch["val"] != val) | (batch["ck"] != ck)
    if blob is not None:
        bad |= (batch["blob"] != blob).any(axis=1)
    # The event header the producer stamps: record type 1, no flags.
    bad |= (batch["type"] != 1) | (batch["flags"] != 0)
    return np.flatnonzero(bad)


def say(*words):
    print(*words, flush=True)


def set_wait_slice(seconds, setattr=setattr):
    """A blocked read (and a blocked write) wakes every WAIT_SLICE_S seconds to
    check for signals, which would hide a lost wakeup as mere latency: the
    wakeup tests raise it, in every pykring module that has one."""
    import pykring.producer
    import pykring.ring

    for mod in (pykring.ring, pykring.producer):
        if hasattr(mod, "WAIT_SLICE_S"):
            setattr(mod, "WAIT_SLICE_S", float(seconds))


def _slice(args):
    if args.get("slice") is not None:
        set_wait_slice(args["slice"])


# -- producers -------------------------------------------------------------------------

def role_stream(a):
    """Write `total` records (None: until killed) in batches of random sizes
    bmin..bmax. Optionally flush and write one last record (so the consumer
    sees the end of every gap), then close unless told not to."""
    import pykring

    _slice(a)
    rng = np.random.default_rng(a["seed"])
    p = pykring.Producer(a["name"], block=a["block"], timeout=a.get("timeout"))
    kind, total = a["kind"], a["total"]
    start = p.written + p.dropped          # the seq of the next record
    say("ready", start)
    attempts = 0
    while total is None or attempts < total:
        k = int(rng.integers(a["bmin"], a["bmax"] + 1))
        if total is not None:
            k = min(k, total - attempts)
        seq0 = p.written + p.dropped
        recs = make(kind, seq0, k, p.dtype)
        done = 0
        while True:
            try:
                done += p.write(recs[done:])
                break
            except pykring.ConsumerGoneError as exc:
                # The consumer was killed (a test may do that on purpose) while
                # this write waited for room: wait for the next one, go on.
                done += exc.written
                time.sleep(0.01)
        attempts += k
        if a["block"] and done != k:
            raise AssertionError("block mode wrote %d of %d" % (done, k))
        if p.written + p.dropped != seq0 + k:
            raise AssertionError("counters: %d + %d after writing %d from seq %d"
                                 % (p.written, p.dropped, k, seq0))
    if a.get("sentinel"):
        if not p.flush(timeout=60):
            raise AssertionError("flush timed out")
        seq0 = p.written + p.dropped
        if p.write(make(kind, seq0, 1, p.dtype)) != 1:
            raise AssertionError("the sentinel did not fit an empty ring")
        attempts += 1
    say("done", attempts, p.written, p.dropped)
    if a.get("close", True):
        p.close()


def role_blocked_producer(a):
    """Create a ring nobody reads and write more than it holds, in block mode
    without a timeout: blocks until interrupted."""
    import pykring

    _slice(a)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    p = pykring.Producer.create(a["name"], a["capacity"], SMALL, block=True)
    say("ready")
    p.write(make("small", 0, 4 * a["capacity"] // 48, p.dtype))
    say("returned")     # never: nothing reads


# -- consumers -------------------------------------------------------------------------

def role_idle_consumer(a):
    """Create a ring and block in `for batch in ring:`; no producer comes."""
    import pykring

    _slice(a)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    ring = pykring.create(a["name"], 4096, SMALL)
    say("ready")
    for batch in ring:
        say("batch", len(batch))
    say("ended")        # never: nobody closes the ring


def role_iter_consumer(a):
    """Create a ring, iterate it to its end, then check what reading a closed
    ring does. Prints ``ok <records>``."""
    import pykring

    _slice(a)
    ring = pykring.create(a["name"], a.get("capacity", 4096), SMALL)
    say("ready")
    n = 0
    for batch in ring:
        if len(batch) == 0:
            raise AssertionError("the iterator yielded an empty batch")
        if not np.array_equal(batch["seq"], np.arange(n, n + len(batch))):
            raise AssertionError("seqs %s after %d records" % (batch["seq"][:10], n))
        bad = check(batch, "small")
        if len(bad):
            raise AssertionError("bad record seq %d" % batch["seq"][bad[0]])
        n += len(batch)
    for kw in ({}, {"timeout": None}, {"timeout": 1.0}, {"out": np.empty(4, ring.dtype)}):
        try:
            got = ring.read(**kw)
        except pykring.RingClosedError as exc:
            if not isinstance(exc, EOFError):
                raise AssertionError("RingClosedError is not an EOFError")
        else:
            raise AssertionError("read(%s) on a closed, drained ring returned %r" % (kw, got))
    if list(ring):
        raise AssertionError("iterating a closed ring again yielded records")
    st = ring.stats
    say("ok", n, st.read, st.lost, st.written, st.dropped)
    ring.close()


def role_ping_consumer(a):
    """Ping-pong: block in read(timeout=None) for exactly one record per round
    and send it back on the ack ring."""
    import pykring

    _slice(a)
    data = pykring.create(a["data"], 4096, SMALL)
    ack = pykring.Producer(a["ack"], block=True, timeout=30)
    say("ready")
    for i in range(a["rounds"]):
        got = data.read(timeout=None)
        if len(got) != 1 or int(got["seq"][0]) != i or len(check(got, "small")):
            raise AssertionError("round %d: got %r" % (i, got))
        ack.write(got)
    try:
        extra = data.read(timeout=None)
    except pykring.RingClosedError:
        pass
    else:
        raise AssertionError("after the last round: %r instead of the end of the ring" % (extra,))
    ack.close()
    say("ok", a["rounds"])


def role_log_consumer(a):
    """Read with commit=False, log each batch, commit, log the commit. The log
    (one write() per line, so a SIGKILL never leaves half a line):
    ``batch <first> <last> <count> <ok>`` then ``commit <last>``. It pauses at a
    random one of the three steps of each batch, so a kill lands anywhere."""
    import pykring

    rng = np.random.default_rng(a["seed"])
    fd = os.open(a["log"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    ring = pykring.attach(a["name"])
    say("ready")
    while True:
        try:
            b = ring.read(max_records=int(rng.integers(1, a["bmax"] + 1)), timeout=None, commit=False)
        except pykring.RingClosedError:
            break
        if len(b) == 0:
            continue
        pause = int(rng.integers(0, 3))
        first, last = int(b["seq"][0]), int(b["seq"][-1])
        ok = int(np.array_equal(b["seq"], np.arange(first, first + len(b))) and len(check(b, "small")) == 0)
        if pause == 0:
            time.sleep(a["pause"])
        os.write(fd, b"batch %d %d %d %d\n" % (first, last, len(b), ok))
        if pause == 1:
            time.sleep(a["pause"])
        ring.commit()
        if pause == 2:
            time.sleep(a["pause"])
        os.write(fd, b"commit %d\n" % last)
    say("done")


ROLES = {name[5:]: fn for name, fn in globals().items() if name.startswith("role_")}

if __name__ == "__main__":
    ROLES[sys.argv[1]](json.loads(sys.argv[2]))
