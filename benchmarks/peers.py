"""peers: end to end and lossless, one producer process -> one Python consumer,
pykring against the transports people would pick instead.

Every transport moves the same records: ``size`` bytes each (64 and 1024),
an 8-byte little-endian sequence number and a fixed body pattern (pykring's
records are its 24-byte event header, which carries ``seq``, then the
body). The producer is a Python process forked from the consumer process
(the way multiprocessing users start one); it builds its records before the
clock starts, and sends them as fast as the transport takes them, in the
transport's idiomatic form:

``pykring``          ``pykring.Producer(block=True).write(<array of BATCH bodies>)``;
                     consumer ``Ring.read(timeout=1, out=<reused array>)``
``pykring_zero_copy`` ``with Producer(block=True).reserve(BATCH) as rows:`` fills the
                     bodies in the ring; consumer ``with Ring.view(timeout=1) as rows:``
                     checks the ``seq`` of every record in place (no copy); on a ring
                     of ``pykring.DEFAULT_CAPACITY`` (2 MiB, what the sweep below chose)
``mp_queue``         ``multiprocessing.Queue``: one ``put(bytes)`` / ``get()`` per record
``mp_queue_list``    ``multiprocessing.Queue``: ``put(list of BATCH bytes)`` / ``get()``
``faster_fifo``      ``faster_fifo.Queue``: ``put_many(list of BATCH bytes)`` /
                     ``get_many()``
``faster_fifo_put``  ``faster_fifo.Queue``: one ``put(bytes)`` per record / ``get_many()``
``zmq``              pyzmq PUSH/PULL over ``ipc://``, one message of BATCH records
                     (a numpy buffer) per send; consumer ``recv_into(<reused array>)``
``iceoryx2``         iceoryx2 publish/subscribe, one ``Slice[c_uint8]`` sample of BATCH
                     records per send (loan, memmove, send); consumer copies each
                     sample into a reused array
``iceoryx2_sample``  iceoryx2 publish/subscribe, one fixed-size sample per record
``pipe``             the OS floor: ``os.write`` of BATCH records into a pipe (1 MiB
                     pipe buffer); consumer ``readv`` into a reused buffer and
                     ``np.frombuffer`` of the whole records read

BATCH is e2e's batch (16384 records of 64 B, 1049 of 1 KiB), at most a quarter
of pykring's ring. Buffering is
about 16 MiB where the transport lets it be set (pykring's copying ring, faster-fifo
``max_size_bytes``, zmq high-water marks of 8 MiB each side, iceoryx2's
subscriber buffer of 16 MiB of batches, or 4096 samples per record);
multiprocessing.Queue is unbounded and a pipe holds 1 MiB. Every transport
is lossless here: blocking sends (iceoryx2: ``enable_safe_overflow(False)``
and ``RetryUntilDelivered``).

The consumer process starts the producer, waits until it is connected and
has built its records, starts the clock and says "go"; it stops the clock
when it holds all ``count`` records. A run counts only if the consumer got
exactly ``count`` records, batched transports delivered them in order (the
first seq of every batch), the last record is byte for byte the producer's
last one, and the producer exited 0. Per-record transports get fewer
records (records/s is the measure). Each round runs every transport once,
in a fresh consumer process each; ``vs_<peer>_<size>`` is the median over
rounds of pykring's rate / the peer's rate in the same round.

A transport whose package is not installed is reported as not installed
(its keys null under --json), never an error.

The zero-copy path also runs with rings of 256 KiB to 16 MiB (the sweep), each batch at most
a quarter of the ring: ``zero_copy_ring_<KiB>k_records_per_s_<size>`` and
``zero_copy_ring_<KiB>k_vs_16m_<size>`` (to the 16 MiB ring, same round). A ring that
stays in one core's L2 cache is fastest for both sizes; that is ``DEFAULT_CAPACITY``,
and the ring of ``pykring_zero_copy`` above. iceoryx2 keeps its working set in cache
its own way: its publisher loans again the few samples the subscriber gave back,
while a ring's producer moves on through all of it.

Each round also runs benchmarks/ring_floor.c: pykring's record layout on the zero-copy ring
in C, both sides spinning, no checks, in one pass per record (as ``write`` writes) and in two
(every body, then every header: as a reservation is filled, then stamped):
``c_floor_<one|two>_pass_records_per_s_<size>``, ``c_floor_two_pass_vs_iceoryx2_<size>`` (what
any reservation stamped after its fill can reach against iceoryx2) and
``zero_copy_vs_c_floor_two_pass_<size>`` (how near pykring's comes), same round.

Keys: ``peer_<peer>_records_per_s_<size>``, ``vs_<peer>_<size>``, ``vs_<peer>_zero_copy_<size>``,
``peer_<peer>_consumer_busy_<size>``, ``peers_lossless``, ``drain_checked``.

Child entry point (used by the harness)::

    python -m benchmarks.peers --consumer JSON
"""
import ctypes
import importlib.util
import json
import multiprocessing as mp
import os
import signal
import subprocess
import sys
import time
from typing import Dict, List, Optional

from pykring import DEFAULT_CAPACITY
from pykring._common import remove_ring, unique_ring_name

from ._common import EVENT_HEADER, MiB, ROOT, Report, log

SEQ = 8                    #: bytes of the sequence number at the start of a peer's record
BUFFER_BYTES = 16 * MiB    #: buffering given to every transport that lets it be set
ZERO_COPY_RING = DEFAULT_CAPACITY     #: the ring of the zero-copy peer (2 MiB)
PIPE_BYTES = 1 * MiB       #: the largest pipe buffer an unprivileged process may ask for
CHILD_TIMEOUT_S = 300
STALL_S = 30               #: a consumer that gets nothing for this long gives up

#: peer -> (module that must be importable, kind, what it is)
#: kind: "buffer" moves arrays of records, "list" lists of bytes, "record" one record at a time
PEERS: Dict[str, tuple] = {
    "pykring": ("pykring", "buffer", "pykring.Producer(block=True).write(array) -> Ring.read(out=)"),
    "pykring_zero_copy": ("pykring", "buffer", "pykring.Producer(block=True).reserve(n) -> Ring.view()"),
    "pipe": (None, "buffer", "os.write into a pipe -> readv + np.frombuffer (the OS floor)"),
    "zmq": ("zmq", "buffer", "pyzmq PUSH/PULL ipc://, one message per batch -> recv_into"),
    "iceoryx2": ("iceoryx2", "buffer", "iceoryx2 pub/sub, one Slice sample per batch"),
    "faster_fifo": ("faster_fifo", "list", "faster-fifo put_many(list) -> get_many()"),
    "mp_queue_list": (None, "list", "multiprocessing.Queue put(list) -> get()"),
    "faster_fifo_put": ("faster_fifo", "record", "faster-fifo put(record) -> get_many()"),
    "iceoryx2_sample": ("iceoryx2", "record", "iceoryx2 pub/sub, one sample per record"),
    "mp_queue": (None, "record", "multiprocessing.Queue put(record) -> get()"),
}

#: records per run (64 B, 1024 B) in the full run, about 0.5-2 s each here;
#: --quick divides by QUICK_DIV. Records/s is the measure.
COUNTS = {
    "pykring": (20_000_000, 2_500_000),
    "pykring_zero_copy": (20_000_000, 2_500_000),
    "pipe": (10_000_000, 1_250_000),
    "zmq": (10_000_000, 1_250_000),
    "iceoryx2": (10_000_000, 1_250_000),
    "faster_fifo": (300_000, 100_000),
    "mp_queue_list": (4_000_000, 500_000),
    "faster_fifo_put": (200_000, 100_000),
    "iceoryx2_sample": (400_000, 200_000),
    "mp_queue": (100_000, 50_000),
}
QUICK_DIV = 4
#: The ring sizes of the zero-copy sweep (each batch at most a quarter of the ring).
SWEEP_BYTES = (256 << 10, 1 << 20, 2 << 20, 4 << 20, 16 << 20)
ROUNDS = {"quick": 3, "full": 5}
SIZES = {"quick": (64, 1024), "full": (64, 1024)}


def installed(peer: str) -> bool:
    mod = PEERS[peer][0]
    return mod is None or importlib.util.find_spec(mod) is not None


#: importable module -> distribution name (the bench extra in pyproject.toml)
DISTS = {"zmq": "pyzmq", "faster_fifo": "faster-fifo", "iceoryx2": "iceoryx2", "pykring": "pykring"}


def version(peer: str) -> Optional[str]:
    """The installed distribution's version (None for the standard library)."""
    dist = DISTS.get(PEERS[peer][0] or "")
    if not dist:
        return None
    try:
        from importlib.metadata import version as v
        return v(dist)
    except Exception:
        return None


def batch_for(size: int) -> int:
    from .e2e import batch_for as e2e_batch
    return e2e_batch(size)


def record_dtype(size: int):
    import numpy as np
    return np.dtype([("seq", "<u8"), ("body", "V%d" % (size - SEQ))])


def body_bytes(n: int) -> bytes:
    return bytes((i * 131 + 7) & 0xFF for i in range(n))


def expected_record(size: int, seq: int) -> bytes:
    """A peer's record `seq`, as the producer sends it."""
    return seq.to_bytes(SEQ, "little") + body_bytes(size - SEQ)


# -- transports ----------------------------------------------------------------
class Transport:
    """One transport: set up in the consumer process before the fork (what
    the producer inherits), then on each side after it."""

    def __init__(self, size: int, count: int, batch: int):
        self.size, self.count, self.batch = size, count, batch
        self.tag = unique_ring_name("bench-peer")
        self.ring_bytes = BUFFER_BYTES      #: pykring's ring (the ring-size sweep sets others)

    def before_fork(self) -> None: ...
    def consumer_setup(self) -> None: ...
    def producer_setup(self) -> None: ...
    def produce(self) -> None: raise NotImplementedError
    def consume(self) -> tuple: raise NotImplementedError   # (records, last record bytes, order ok)
    def consumer_finish(self) -> Optional[str]: return None  # a problem, or None
    def cleanup(self) -> None: ...

    # Record builders used by the producers (before the clock starts).
    def batch_array(self):
        """One batch of records as an array; the producer rewrites `seq` per send."""
        import numpy as np
        a = np.zeros(self.batch, dtype=record_dtype(self.size))
        a["body"] = np.frombuffer(body_bytes(self.size - SEQ), dtype=a.dtype["body"])[0]
        return a

    def all_records(self) -> List[bytes]:
        """Every record of the stream as a bytes object."""
        import numpy as np
        a = np.zeros(self.count, dtype=record_dtype(self.size))
        a["body"] = np.frombuffer(body_bytes(self.size - SEQ), dtype=a.dtype["body"])[0]
        a["seq"] = np.arange(self.count, dtype=np.uint64)
        raw = a.tobytes()
        s = self.size
        return [raw[i:i + s] for i in range(0, len(raw), s)]

    def sends(self):
        """(first seq, records) of each batched send."""
        for base in range(0, self.count, self.batch):
            yield base, min(self.batch, self.count - base)


class PykringT(Transport):
    def before_fork(self) -> None:
        import numpy as np
        import pykring
        from .drain import body_dtype_for
        from .e2e import out_rows_for

        self.name = unique_ring_name("bench-peer%d" % self.size)
        self.ring = pykring.create(self.name, self.ring_bytes, body_dtype_for(self.size))
        self.out = np.empty(out_rows_for(self.size), dtype=self.ring.dtype)
        self.out.view(np.uint8).fill(0)

    def producer_setup(self) -> None:
        import numpy as np
        import pykring

        self.prod = pykring.Producer(self.ring.path, block=True)
        self.body = np.zeros(self.batch, dtype=pykring.body_dtype(self.prod.dtype))
        self.body.view(np.uint8)[:] = np.frombuffer(body_bytes(self.size - EVENT_HEADER) * self.batch,
                                                    dtype=np.uint8)

    def produce(self) -> None:
        write, body = self.prod.write, self.body
        for _, k in self.sends():
            write(body if k == self.batch else body[:k])
        self.prod.close()

    def consume(self) -> tuple:
        read, out, count = self.ring.read, self.out, self.count
        n, order_ok, last, stalled = 0, True, b"", time.monotonic()
        while n < count:
            a = read(timeout=1.0, out=out)
            k = len(a)
            if not k:
                if time.monotonic() - stalled > STALL_S:
                    break
                continue
            if int(a["seq"][0]) != n:
                order_ok = False
            n += k
            if n >= count:
                last = a[k - 1].tobytes()
            stalled = time.monotonic()
        self._n = n
        return n, last, order_ok

    def consumer_finish(self) -> Optional[str]:
        import pykring
        try:
            a = self.ring.read(timeout=5.0)
            return "a record after the last one" if len(a) else "the ring was not closed"
        except pykring.RingClosedError:
            pass
        st = self.ring.stats
        if st.written != self.count or st.dropped or st.lost:
            return "ring stats %s" % (st,)
        return None

    def cleanup(self) -> None:
        self.ring.close()
        remove_ring(self.name)


class PykringZeroCopyT(PykringT):
    """The zero-copy path: each batch is filled in place in the ring
    (reserve) and read in place (view); every record's seq is checked."""

    def produce(self) -> None:
        reserve, body = self.prod.reserve, self.body["payload"]
        for _, k in self.sends():
            with reserve(k) as rows:
                rows["payload"] = body if k == self.batch else body[:k]
        self.prod.close()

    def consume(self) -> tuple:
        import numpy as np
        view, count = self.ring.view, self.count
        most = self.ring.capacity // 4 // (self.size + 8) + 1      # the most rows of one view
        want = np.arange(most, dtype=np.uint64)     # the seqs the next view must hold: n, n + 1, ...
        equal = np.empty(most, dtype=bool)
        n, order_ok, last, stalled = 0, True, b"", time.monotonic()
        while n < count:
            with view(timeout=1.0) as a:
                k = len(a)
                if not k:
                    if time.monotonic() - stalled > STALL_S:
                        break
                    continue
                # Every record's sequence number, in place.
                if not np.equal(a["seq"], want[:k], out=equal[:k]).all():
                    order_ok = False
                want += np.uint64(k)
                n += k
                if n >= count:
                    last = a[k - 1].tobytes()
            stalled = time.monotonic()
        self._n = n
        return n, last, order_ok


class PipeT(Transport):
    def before_fork(self) -> None:
        import fcntl
        self.r, self.w = os.pipe()
        fcntl.fcntl(self.w, 1031, PIPE_BYTES)      # F_SETPIPE_SZ

    def producer_setup(self) -> None:
        os.close(self.r)
        self.arr = self.batch_array()
        self.seq0 = self.arr["seq"].copy()
        self.seq0[:] = range(self.batch)

    def consumer_setup(self) -> None:
        os.close(self.w)

    def produce(self) -> None:
        import numpy as np
        arr, seq, seq0, w = self.arr, self.arr["seq"], self.seq0, self.w
        mv = memoryview(arr).cast("B")
        s = self.size
        for base, k in self.sends():
            np.add(seq0, base, out=seq)
            view = mv[:k * s]
            while view:
                view = view[os.write(w, view):]
        os.close(w)

    def consume(self) -> tuple:
        import numpy as np
        from .e2e import out_rows_for
        dt = record_dtype(self.size)
        s, count, r = self.size, self.count, self.r
        buf = np.empty(out_rows_for(self.size) * s, dtype=np.uint8)
        buf.fill(0)
        mv = memoryview(buf)
        n, fill, order_ok, last = 0, 0, True, b""
        while n < count:
            got = os.readv(r, [mv[fill:]])
            if not got:
                break
            fill += got
            k = fill // s
            if k:
                a = np.frombuffer(buf, dtype=dt, count=k)
                if int(a["seq"][0]) != n:
                    order_ok = False
                n += k
                if n >= count:
                    last = a[k - 1].tobytes()
                rest = fill - k * s
                if rest:
                    mv[:rest] = mv[k * s:fill]
                fill = rest
        return n, last, order_ok

    def consumer_finish(self) -> Optional[str]:
        extra = os.read(self.r, 1)
        os.close(self.r)
        return "bytes after the last record" if extra else None


class ZmqT(Transport):
    def _hwm(self) -> int:
        return max(2, BUFFER_BYTES // 2 // (self.batch * self.size))

    def before_fork(self) -> None:
        self.addr = "ipc:///tmp/%s.zmq" % self.tag

    def consumer_setup(self) -> None:
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PULL)
        self.sock.setsockopt(zmq.RCVHWM, self._hwm())
        self.sock.bind(self.addr)

    def producer_setup(self) -> None:
        import zmq
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.PUSH)
        self.sock.setsockopt(zmq.SNDHWM, self._hwm())
        self.sock.setsockopt(zmq.LINGER, -1)
        self.sock.connect(self.addr)
        self.arr = self.batch_array()
        self.seq0 = self.arr["seq"].copy()
        self.seq0[:] = range(self.batch)

    def produce(self) -> None:
        import numpy as np
        arr, seq, seq0, send = self.arr, self.arr["seq"], self.seq0, self.sock.send
        for base, k in self.sends():
            np.add(seq0, base, out=seq)
            send(arr if k == self.batch else arr[:k])
        self.sock.close()          # LINGER -1: returns once everything is handed over
        self.ctx.term()

    def consume(self) -> tuple:
        import numpy as np
        import zmq
        from .e2e import out_rows_for
        dt = record_dtype(self.size)
        out = np.zeros(max(self.batch, out_rows_for(self.size)), dtype=dt)
        count, s = self.count, self.size
        recv_into = getattr(self.sock, "recv_into", None)
        if recv_into is None:                  # pyzmq < 26.4: receive a frame, copy it into `out`
            raw, recv = out.view("u1"), self.sock.recv

            def recv_into(_):
                frame = recv(copy=False)
                raw[:len(frame)] = frame.buffer
                return len(frame)
        self.sock.setsockopt(zmq.RCVTIMEO, STALL_S * 1000)
        n, order_ok, last = 0, True, b""
        try:
            while n < count:
                nbytes = recv_into(out)
                k = nbytes // s
                if int(out["seq"][0]) != n or nbytes != k * s:
                    order_ok = False
                n += k
                if n >= count:
                    last = out[k - 1].tobytes()
        except zmq.Again:
            pass
        return n, last, order_ok

    def cleanup(self) -> None:
        try:
            self.sock.close(linger=0)
            self.ctx.term()
        except Exception:
            pass
        try:
            os.unlink(self.addr[len("ipc://"):])
        except OSError:
            pass


class Iceoryx2T(Transport):
    """iceoryx2 publish/subscribe; `per_record` sends one fixed-size sample per
    record, otherwise one Slice[c_uint8] sample per batch."""

    per_record = False

    def _service(self):
        import iceoryx2 as iox2
        iox2.set_log_level(iox2.LogLevel.Error)
        node = iox2.NodeBuilder.new().create(iox2.ServiceType.Ipc)
        if self.per_record:
            payload = ctypes.c_uint8 * self.size
            depth = max(16, BUFFER_BYTES // self.size)
        else:
            payload = iox2.Slice[ctypes.c_uint8]
            depth = max(2, BUFFER_BYTES // (self.batch * self.size))
        self.depth = min(depth, 4096)
        svc = (node.service_builder(iox2.ServiceName.new(self.tag))
               .publish_subscribe(payload)
               .enable_safe_overflow(False)
               .subscriber_max_buffer_size(self.depth)
               .history_size(0)
               .open_or_create())
        return iox2, node, svc

    def consumer_setup(self) -> None:
        self.iox2, self.node, self.svc = self._service()
        self.sub = self.svc.subscriber_builder().buffer_size(self.depth).create()

    def producer_setup(self) -> None:
        import numpy as np
        iox2, self.node, self.svc = self._service()
        b = self.svc.publisher_builder().backpressure_strategy(iox2.BackpressureStrategy.RetryUntilDelivered)
        if not self.per_record:
            b = b.initial_max_slice_len(self.batch * self.size)
        self.pub = b.create()
        if self.per_record:
            self.all = np.zeros(self.count, dtype=record_dtype(self.size))
            self.all["body"] = np.frombuffer(body_bytes(self.size - SEQ), dtype=self.all.dtype["body"])[0]
            self.all["seq"] = np.arange(self.count, dtype=np.uint64)
        else:
            self.arr = self.batch_array()
            self.seq0 = self.arr["seq"].copy()
            self.seq0[:] = range(self.batch)
        # Wait until the publisher sees the subscriber: samples sent before are not delivered.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            self.pub.update_connections()
            if self.svc.dynamic_config.number_of_subscribers:
                break
            time.sleep(0.01)

    def produce(self) -> None:
        import numpy as np
        pub, s, memmove = self.pub, self.size, ctypes.memmove
        if self.per_record:
            base = self.all.ctypes.data
            loan = pub.loan_uninit
            for i in range(self.count):
                sample = loan()
                memmove(sample.payload_ptr, base + i * s, s)
                sample.assume_init().send()
        else:
            arr, seq, seq0 = self.arr, self.arr["seq"], self.seq0
            src = arr.ctypes.data
            loan = pub.loan_slice_uninit
            for b0, k in self.sends():
                np.add(seq0, b0, out=seq)
                sample = loan(k * s)
                memmove(sample.payload_ptr, src, k * s)
                sample.assume_init().send()
        # Stay until the subscriber took everything: a publisher that leaves
        # takes its undelivered samples with it.
        self._ack.wait(CHILD_TIMEOUT_S)
        pub.delete()

    def consume(self) -> tuple:
        import numpy as np
        from .e2e import out_rows_for
        receive, count, s = self.sub.receive, self.count, self.size
        n, order_ok, last = 0, True, b""
        empty = 0
        t_stall = time.monotonic()
        if self.per_record:
            string_at = ctypes.string_at
            rec = b""
            while n < count:
                sample = receive()
                if sample is None:
                    empty += 1
                    if empty & 0xFFFF == 0 and time.monotonic() - t_stall > STALL_S:
                        break
                    continue
                rec = string_at(sample.payload_ptr, s)
                sample.delete()
                n += 1
                t_stall = time.monotonic() if empty else t_stall
                empty = 0
            last = rec
        else:
            dt = record_dtype(s)
            out = np.zeros(max(self.batch, out_rows_for(s)), dtype=dt)
            dst = out.ctypes.data
            memmove = ctypes.memmove
            while n < count:
                sample = receive()
                if sample is None:
                    empty += 1
                    if empty & 0xFFFF == 0 and time.monotonic() - t_stall > STALL_S:
                        break
                    continue
                nbytes = sample.header.number_of_elements
                memmove(dst, sample.payload_ptr, nbytes)
                sample.delete()
                k = nbytes // s
                if int(out["seq"][0]) != n or nbytes != k * s:
                    order_ok = False
                n += k
                if n >= count:
                    last = out[k - 1].tobytes()
                t_stall = time.monotonic()
                empty = 0
        return n, last, order_ok

    def cleanup(self) -> None:
        for a in ("sub", "svc", "node"):
            obj = getattr(self, a, None)
            if obj is not None and hasattr(obj, "delete"):
                try:
                    obj.delete()
                except Exception:
                    pass


class Iceoryx2SampleT(Iceoryx2T):
    per_record = True


class MpQueueT(Transport):
    lists = False

    def before_fork(self) -> None:
        self.q = mp.get_context("fork").Queue()

    def producer_setup(self) -> None:
        recs = self.all_records()
        if self.lists:
            self.items = [recs[b:b + k] for b, k in self.sends()]
        else:
            self.items = recs

    def produce(self) -> None:
        put = self.q.put
        for item in self.items:
            put(item)
        self.q.close()
        self.q.join_thread()       # everything handed to the pipe

    def consume(self) -> tuple:
        import queue
        get, count = self.q.get, self.count
        n, order_ok, last = 0, True, b""
        try:
            if self.lists:
                while n < count:
                    lst = get(timeout=STALL_S)
                    if int.from_bytes(lst[0][:SEQ], "little") != n:
                        order_ok = False
                    n += len(lst)
                    last = lst[-1]
            else:
                rec = b""
                while n < count:
                    rec = get(timeout=STALL_S)
                    n += 1
                last = rec
        except queue.Empty:
            pass
        return n, last, order_ok


class MpQueueListT(MpQueueT):
    lists = True


class FasterFifoT(Transport):
    per_record = False

    def before_fork(self) -> None:
        import faster_fifo
        self.q = faster_fifo.Queue(max_size_bytes=BUFFER_BYTES)

    def producer_setup(self) -> None:
        recs = self.all_records()
        self.items = recs if self.per_record else [recs[b:b + k] for b, k in self.sends()]

    def produce(self) -> None:
        if self.per_record:
            put = self.q.put
            for item in self.items:
                put(item, block=True, timeout=CHILD_TIMEOUT_S)
        else:
            put_many = self.q.put_many
            for item in self.items:
                put_many(item, block=True, timeout=CHILD_TIMEOUT_S)

    def consume(self) -> tuple:
        import queue
        get_many, count = self.q.get_many, self.count
        n, order_ok, last = 0, True, b""
        try:
            while n < count:
                lst = get_many(block=True, timeout=STALL_S)
                if int.from_bytes(lst[0][:SEQ], "little") != n:
                    order_ok = False
                n += len(lst)
                last = lst[-1]
        except queue.Empty:
            pass
        return n, last, order_ok


class FasterFifoPutT(FasterFifoT):
    per_record = True


TRANSPORTS = {
    "pykring": PykringT, "pykring_zero_copy": PykringZeroCopyT, "pipe": PipeT, "zmq": ZmqT, "iceoryx2": Iceoryx2T,
    "faster_fifo": FasterFifoT, "mp_queue_list": MpQueueListT,
    "faster_fifo_put": FasterFifoPutT, "iceoryx2_sample": Iceoryx2SampleT, "mp_queue": MpQueueT,
}


# -- the consumer process ------------------------------------------------------
def _producer_entry(t: Transport, setup_done, ready, go, result) -> None:
    try:
        setup_done.wait(60)
        t.producer_setup()
        ready.set()
        if not go.wait(120):
            raise RuntimeError("no go signal")
        c0 = time.process_time()
        t.produce()
        result.send(("ok", time.process_time() - c0))
    except BaseException as exc:       # noqa: B902 - reported to the consumer
        result.send(("error", "%s: %s" % (type(exc).__name__, exc)))
        raise


def consumer_main(params: dict) -> int:
    """One run of one transport; prints its result as one JSON line."""
    peer, size, count = params["peer"], params["size"], params["count"]
    ctx = mp.get_context("fork")
    t: Transport = TRANSPORTS[peer](size, count, params["batch"])
    t.ring_bytes = params.get("ring_bytes", BUFFER_BYTES)
    setup_done, ready, go, ack = ctx.Event(), ctx.Event(), ctx.Event(), ctx.Event()
    t._ack = ack
    res_r, res_w = ctx.Pipe(duplex=False)
    res = {"ok": False, "problems": []}
    proc = None
    try:
        t.before_fork()
        proc = ctx.Process(target=_producer_entry, args=(t, setup_done, ready, go, res_w), daemon=True)
        proc.start()
        t.consumer_setup()
        setup_done.set()
        if not ready.wait(120):
            raise RuntimeError("the producer did not get ready (exit %s)" % proc.exitcode)
        c0 = time.process_time()
        t0 = time.perf_counter()
        go.set()
        n, last, order_ok = t.consume()
        t1 = time.perf_counter()
        c1 = time.process_time()
        ack.set()
        proc.join(60)
        status = res_r.recv() if res_r.poll(5) else ("error", "no result")
        problem = t.consumer_finish()
        res.update(records=n, seconds=t1 - t0, consumer_cpu_s=c1 - c0)
        if status[0] == "ok":
            res["producer_cpu_s"] = status[1]
        else:
            res["problems"].append("producer: %s" % status[1])
        if proc.exitcode != 0:
            res["problems"].append("producer exit %s" % proc.exitcode)
        if n != count:
            res["problems"].append("received %d of %d records" % (n, count))
        ours = peer.startswith("pykring")
        want = (count - 1).to_bytes(8, "little") if ours else expected_record(size, count - 1)
        if ours:
            body = body_bytes(size - EVENT_HEADER)
            if last[:8] != want or last[EVENT_HEADER:] != body:
                res["problems"].append("the last record is not the producer's last one")
        elif last != want:
            res["problems"].append("the last record is not the producer's last one")
        if not order_ok:
            res["problems"].append("records out of order")
        if problem:
            res["problems"].append(problem)
        res["ok"] = not res["problems"]
    except Exception as exc:
        res["problems"].append("%s: %s" % (type(exc).__name__, exc))
    finally:
        ack.set()
        if proc is not None and proc.is_alive():
            proc.kill()
            proc.join()
        t.cleanup()
    print(json.dumps(res), flush=True)
    return 0


# -- the parent ----------------------------------------------------------------
def _child_env() -> Dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def one_run(peer: str, size: int, count: int, ring_bytes: int = BUFFER_BYTES) -> dict:
    """One run of `peer` in a fresh consumer process (pykring's ring of
    `ring_bytes`; a batch takes at most a quarter of it)."""
    batch = batch_for(size)
    if peer.startswith("pykring"):
        batch = min(batch, ring_bytes // 4 // (size + 8))
    params = {"peer": peer, "size": size, "count": count, "batch": batch, "ring_bytes": ring_bytes}
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.peers", "--consumer", json.dumps(params)],
                            cwd=ROOT, env=_child_env(), stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=CHILD_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return {"ok": False, "problems": ["timed out after %d s" % CHILD_TIMEOUT_S]}
    lines = out.strip().splitlines()
    if not lines:
        return {"ok": False, "problems": ["consumer process exit %s, no output" % proc.returncode]}
    return json.loads(lines[-1])


def count_for(peer: str, size: int, quick: bool) -> int:
    n = COUNTS[peer][0 if size == 64 else 1]
    return n // QUICK_DIV if quick else n


def run(report: Report, quick: bool, peers: Optional[List[str]] = None,
        sizes: Optional[List[int]] = None, rounds: Optional[int] = None) -> None:
    mode = "quick" if quick else "full"
    peers = list(peers or PEERS)
    sizes = tuple(sizes or SIZES[mode])
    rounds = rounds or ROUNDS[mode]
    missing = [p for p in peers if not installed(p)]
    present = [p for p in peers if p not in missing]
    report.meta["peers"] = {
        "rounds": rounds, "sizes": list(sizes), "buffer_bytes": BUFFER_BYTES,
        "batch": {s: batch_for(s) for s in sizes},
        "counts": {p: {s: count_for(p, s, quick) for s in sizes} for p in peers},
        "versions": {p: version(p) for p in present if version(p)},
        "not_installed": missing,
    }
    rates: Dict[tuple, List[Optional[float]]] = {}
    busy: Dict[tuple, List[float]] = {}
    lossless = zero_ok = True
    floor = _floor_program(report)
    for size in sizes:
        for r in range(rounds):
            if floor:
                _floor_round(floor, size, quick, rates)
            for peer in present:
                count = count_for(peer, size, quick)
                log("peers: %d-byte records, round %d/%d, %s, %d records" % (size, r + 1, rounds, peer, count))
                res = one_run(peer, size, count, ZERO_COPY_RING if peer == "pykring_zero_copy" else BUFFER_BYTES)
                if res.get("ok"):
                    rate = res["records"] / res["seconds"]
                    rates.setdefault((peer, size), []).append(rate)
                    busy.setdefault((peer, size), []).append(res["consumer_cpu_s"] / res["seconds"])
                    log("peers:   %.3g records/s" % rate)
                else:
                    rates.setdefault((peer, size), []).append(None)
                    lossless = False
                    zero_ok = zero_ok and peer != "pykring_zero_copy"
                    report.fail("peers %s %d B: %s" % (peer, size, "; ".join(res.get("problems", ["?"]))))
    for size in sizes:
        base = rates.get(("pykring", size), [])
        for peer in peers:
            desc = PEERS[peer][2]
            key = "peer_%s_records_per_s_%d" % (peer, size)
            if peer in missing:
                why = "%s not installed (pip install -e '.[bench]')" % DISTS.get(PEERS[peer][0], PEERS[peer][0])
                report.add(key, None, "rec/s", note=why)
                report.add("vs_%s_%d" % (peer, size), None, "x", note=why)
                continue
            got = [x for x in rates.get((peer, size), []) if x is not None]
            if not got:
                continue
            report.add(key, None, "rec/s", samples=got,
                       note="%s, %d records/run" % (desc, count_for(peer, size, quick)))
            if busy.get((peer, size)):
                report.add("peer_%s_consumer_busy_%d" % (peer, size), None, "cpu/wall",
                           samples=busy[(peer, size)])
            if peer.startswith("pykring"):
                continue
            pairs = [b / p for b, p in zip(base, rates[(peer, size)]) if b is not None and p is not None]
            if pairs:
                report.add("vs_%s_%d" % (peer, size), None, "x", samples=pairs,
                           note="pykring records/s / %s records/s, same round" % peer)
            zero = rates.get(("pykring_zero_copy", size), [])
            pairs = [z / p for z, p in zip(zero, rates[(peer, size)]) if z is not None and p is not None]
            if pairs:
                report.add("vs_%s_zero_copy_%d" % (peer, size), None, "x", samples=pairs,
                           note="pykring zero-copy (reserve -> view, a %d MiB ring) records/s / %s "
                                "records/s, same round" % (ZERO_COPY_RING >> 20, peer))
    if floor:
        _floor_report(report, sizes, rates)
    if "pykring_zero_copy" in present:
        zero_ok = _sweep(report, quick, sizes, rounds) and zero_ok
    report.add("peers_lossless", lossless and zero_ok, note="every run: count, order, last record, producer exit")
    if "pykring_zero_copy" in present:
        report.add("drain_checked", zero_ok and bool(rates.get(("pykring_zero_copy", sizes[0]))),
                   note="every zero-copy run (and the sweep's): the seq of every record, count, the last "
                        "record byte for byte, producer exit")


# -- the C floor -----------------------------------------------------------------
#: (mode of benchmarks/ring_floor.c, key part): one pass as kring_write writes, two as a
#: reservation is filled and then stamped.
FLOOR_MODES = ((1, "one_pass"), (2, "two_pass"))


def _floor_program(report: Report) -> Optional[str]:
    from ._common import build_c
    try:
        return build_c("ring_floor.c", [])
    except RuntimeError as exc:
        report.fail("peers: no C floor: %s" % exc)
        return None


def _floor_round(exe: str, size: int, quick: bool, rates: Dict[tuple, List[Optional[float]]]) -> None:
    """One round of benchmarks/ring_floor.c in both modes: pykring's record
    layout on the zero-copy peer's ring and batches, in C, spinning."""
    span = size + 8
    batch = min(batch_for(size), ZERO_COPY_RING // 4 // span)
    count = count_for("pykring_zero_copy", size, quick)
    for mode, name in FLOOR_MODES:
        r = subprocess.run([exe, str(ZERO_COPY_RING), str(span), str(batch), str(count), str(mode)],
                           capture_output=True, text=True, timeout=CHILD_TIMEOUT_S)
        res = json.loads(r.stdout) if r.returncode == 0 and r.stdout.strip() else {}
        ok = res.get("records") == count and res.get("bad") == 0
        rates.setdefault(("c_floor_" + name, size), []).append(res["records"] / res["seconds"] if ok else None)
        log("peers: C floor, %s, %d-byte records: %s" % (name, size, "%.3g records/s" % (
            res["records"] / res["seconds"]) if ok else "failed: %s %s" % (r.returncode, r.stderr.strip())))


def _floor_report(report: Report, sizes, rates: Dict[tuple, List[Optional[float]]]) -> None:
    """The floor's rates, and in each round: the two-pass floor / iceoryx2
    (what any reservation that is stamped after it is filled can reach) and
    pykring's zero copy / the two-pass floor (how near it comes)."""
    for size in sizes:
        for _, name in FLOOR_MODES:
            got = [x for x in rates.get(("c_floor_" + name, size), []) if x is not None]
            if got:
                report.add("c_floor_%s_records_per_s_%d" % (name, size), None, "rec/s", samples=got,
                           note="benchmarks/ring_floor.c: pykring's record layout in C, both sides spinning, "
                                "a %d MiB ring" % (ZERO_COPY_RING >> 20))
        two = rates.get(("c_floor_two_pass", size), [])
        for key, num, den in (("c_floor_two_pass_vs_iceoryx2_%d", two, rates.get(("iceoryx2", size), [])),
                              ("zero_copy_vs_c_floor_two_pass_%d", rates.get(("pykring_zero_copy", size), []), two)):
            pairs = [a / b for a, b in zip(num, den) if a is not None and b is not None]
            if pairs:
                report.add(key % size, None, "x", samples=pairs, note="same round")


def _sweep(report: Report, quick: bool, sizes, rounds: int) -> bool:
    """The zero-copy path with rings of SWEEP_BYTES (batches of at most a
    quarter of the ring): records/s of each, and its ratio to the 16 MiB ring
    in the same round, so a user can pick the size that stays in cache."""
    ok = True
    for size in sizes:
        count = count_for("pykring_zero_copy", size, quick)
        rates: Dict[int, List[float]] = {}
        for r in range(rounds):
            for rb in SWEEP_BYTES:
                log("peers: zero-copy ring sweep, %d-byte records, round %d/%d, %d KiB ring"
                    % (size, r + 1, rounds, rb >> 10))
                res = one_run("pykring_zero_copy", size, count, rb)
                if not res.get("ok"):
                    ok = False
                    report.fail("peers zero-copy sweep %d KiB %d B: %s"
                                % (rb >> 10, size, "; ".join(res.get("problems", ["?"]))))
                    continue
                rates.setdefault(rb, []).append(res["records"] / res["seconds"])
        base = rates.get(BUFFER_BYTES, [])
        for rb, got in sorted(rates.items()):
            report.add("zero_copy_ring_%dk_records_per_s_%d" % (rb >> 10, size), None, "rec/s", samples=got,
                       note="reserve -> view, a %d KiB ring, batches of %d" % (rb >> 10, min(batch_for(size),
                                                                                     rb // 4 // (size + 8))))
            if rb != BUFFER_BYTES and len(got) == len(base):
                report.add("zero_copy_ring_%dk_vs_16m_%d" % (rb >> 10, size), None, "x",
                           samples=[a / b for a, b in zip(got, base)],
                           note="records/s with this ring / with the 16 MiB ring, same round")
    return ok


def _main(argv: List[str]) -> int:
    if len(argv) == 2 and argv[0] == "--consumer":
        return consumer_main(json.loads(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
