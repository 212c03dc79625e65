"""The broker-independent :class:`Sink`: its backlog, its publishing window
and its retries, over any :class:`~pykring.sinks.Transport`
(:mod:`pykring.sinks` describes the whole).
"""
import collections
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Deque, Dict, List, Optional

from .transport import Message, Transport, _describe

#: Bytes of messages a sink holds while the broker is away (queued or in flight).
DEFAULT_BACKLOG = 64 << 20
#: Seconds close() waits for the backlog to reach the broker.
DEFAULT_LINGER = 10.0
#: Seconds to reach the broker at the start before giving up with SinkError.
DEFAULT_CONNECT_TIMEOUT = 5.0
#: Seconds one publish waits for the broker's confirmation before it counts as failed.
PUBLISH_TIMEOUT = 2.0
#: Room kept under the broker's message limit for the headers and the protocol line.
HEADER_ROOM = 4096
#: Messages (and bytes) handed to the transport at once: the publishing pipeline's depth.
WINDOW_MESSAGES = 64
WINDOW_BYTES = 32 << 20
#: The message id header JetStream de-duplicates by.
MSG_ID = "Nats-Msg-Id"


@dataclass
class _Counts:
    published: int = 0              #: events the broker confirmed
    published_messages: int = 0
    retried: int = 0                #: publish attempts that failed and were repeated
    dropped: int = 0                #: events given up (backlog full, or unsent at close)
    dropped_messages: int = 0
    dropped_at_close: int = 0       #: of dropped: unsent when close() gave up (the collector cannot see them)
    unsent_at_close: int = 0        #: messages unsent then (the last one, the final counts, has no events)
    too_big: int = 0                #: of dropped: single records larger than the broker's message limit


class Sink:
    """Publishes a ring's batches through a :class:`Transport` (see
    :mod:`pykring.sinks`). ``ring``: a Ring (stats then default to
    ``ring.stats``) or a :class:`~pykring.recording.Layout`. ``host``: the
    identity to publish under (hostname, boot_id; default this host's).
    ``backlog``: bytes held while the broker is away; ``linger``: seconds
    close() waits for them; ``connect_timeout``: seconds to reach the broker
    at the start (SinkError otherwise)."""

    def __init__(self, transport: Transport, ring, *, host: Optional[dict] = None,
                 backlog: int = DEFAULT_BACKLOG, linger: float = DEFAULT_LINGER,
                 connect_timeout: float = DEFAULT_CONNECT_TIMEOUT):
        from ..recording.host import host_identity
        from ..recording.recorder import layout_of

        self.layout, self._ring = layout_of(ring, host)
        if backlog < 1:
            raise ValueError("backlog: bytes > 0, not %r" % (backlog,))
        ident = self.layout.host or host_identity()
        self.hostname = str(ident.get("hostname") or host_identity()["hostname"])
        self.boot_id = str(ident.get("boot_id") or "")
        self.ring_name = str(self.layout.ring.get("path") or self.layout.ring.get("name") or "ring")
        #: This sink's stream id: its messages' sequence numbers are unique within it.
        self.stream = uuid.uuid4().hex[:16]
        self.transport = transport
        self.url = transport.url
        self.backlog_limit = int(backlog)
        self.linger = float(linger)
        self.counts = _Counts()
        self.last_error: Optional[BaseException] = None
        self._origin: Optional[int] = None          # the first sequence number seen
        self._next: Optional[int] = None            # the end of the last range
        self._ring_lost = 0                         # numbers the ring skipped, from the ranges
        self._last_lost: Optional[int] = None       # stats.lost at the last write
        self._t0 = time.monotonic()
        self._queue: Deque[Message] = collections.deque()
        self._inflight: List[Message] = []
        self._bytes = 0                             # queued + in flight
        self._cond = threading.Condition()
        self._closing = False
        self._abort = False
        self._closed = False
        transport.connect(connect_timeout)
        self._thread = threading.Thread(target=self._sender, name="pykring-sink", daemon=True)
        self._thread.start()

    # -- counters ------------------------------------------------------------
    @property
    def published(self) -> int:
        """Events the broker confirmed it stored."""
        return self.counts.published

    @property
    def retried(self) -> int:
        """Publish attempts that failed and were made again."""
        return self.counts.retried

    @property
    def dropped(self) -> int:
        """Events given up: the backlog was full, or they were unsent when close() gave up."""
        return self.counts.dropped

    @property
    def backlog_bytes(self) -> int:
        """Bytes of messages not yet confirmed by the broker."""
        with self._cond:
            return self._bytes

    # -- writing -------------------------------------------------------------
    def _ship(self, rb, stats, facts) -> None:
        """One encoded batch as messages into the backlog, split by rows to
        fit the broker's message limit. Each message is made once the ones
        before it were queued or dropped, so its counts include them."""
        from ..recording.frames import frame_bytes

        limit = max(1024, self.transport.max_message - HEADER_ROOM)
        seq = rb.column(rb.schema.get_field_index("seq"))
        t = time.monotonic() - self._t0

        def emit(a: int, b: int) -> None:
            part = rb.slice(a, b - a)
            first = int(seq[a].as_py())
            last = int(seq[b - 1].as_py()) + 1
            extra = self._extra(first, last, b - a)
            data = frame_bytes(self.layout, part, stats, t, facts, extra)
            if len(data) <= limit:
                self._advance(first, last, b - a)
                self._enqueue(self._message(data, b - a, extra["seq_from"], last), force=False)
            elif b - a > 1:
                # Too big (compressed): as many parts as the size says, and a spare.
                parts = min(b - a, -(-len(data) // limit) + 1)
                step = -(-(b - a) // parts)
                for lo in range(a, b, step):
                    emit(lo, min(b, lo + step))
            else:           # one record larger than any message: cannot go, counted
                self._advance(first, last, 1)
                with self._cond:
                    self.counts.too_big += 1
                self._drop(1, 0)

        emit(0, len(rb))

    def _extra(self, first: int, last: int, rows: int) -> Dict[str, Any]:
        origin = first if self._origin is None else self._origin
        seq_from = origin if self._next is None else self._next
        lost = self._ring_lost + (last - seq_from - rows)
        return {"host": self.hostname, "boot_id": self.boot_id, "ring": self.ring_name, "stream": self.stream,
                "origin": origin, "seq_from": seq_from, "seq_to": last, "events": rows,
                "ring_lost": lost, "sink_dropped": self.counts.dropped}

    def _advance(self, first: int, last: int, rows: int) -> None:
        if self._origin is None:
            self._origin = first
        seq_from = self._origin if self._next is None else self._next
        self._ring_lost += last - seq_from - rows
        self._next = last

    def _message(self, payload: bytes, events: int, seq_from: int, seq_to: int) -> Message:
        mid = "%s/%s/%s/%d-%d" % (self.hostname, self.boot_id, self.stream, seq_from, seq_to)
        headers = {MSG_ID: mid, "Pykring-Host": self.hostname, "Pykring-Boot": self.boot_id,
                   "Pykring-Ring": self.ring_name, "Pykring-Stream": self.stream,
                   "Pykring-Seq": "%d-%d" % (seq_from, seq_to), "Pykring-Events": str(events)}
        return Message(mid, headers, payload, events, seq_from, seq_to)

    def write(self, batch, stats=None, facts: Optional[dict] = None) -> None:
        """Publish one drained batch (``stats``: the ring's stats after the
        drain, default ``ring.stats``; ``facts``: host lookups to keep with
        it). Encodes it here and returns: the sender thread publishes."""
        if self._closed or self._closing:
            raise ValueError("write to a closed sink (%s)" % self.url)
        if stats is None and self._ring is not None:
            stats = self._ring.stats
        rb = self.layout.encode(batch)
        if len(rb) == 0:
            return
        if stats is not None:
            self._last_lost = int(stats["lost"] if isinstance(stats, dict) else stats.lost)
        self._ship(rb, stats, facts)

    def _drop(self, events: int, messages: int) -> None:
        with self._cond:
            self.counts.dropped += events
            self.counts.dropped_messages += messages

    def _enqueue(self, msg: Message, force: bool) -> bool:
        with self._cond:
            if not force and self._bytes + msg.size > self.backlog_limit:
                self.counts.dropped += msg.events
                self.counts.dropped_messages += 1
                return False
            self._queue.append(msg)
            self._bytes += msg.size
            self._cond.notify_all()
            return True

    # -- the sender thread ------------------------------------------------------
    def _sender(self) -> None:
        backoff = 0.05
        while True:
            with self._cond:
                while not self._queue and not self._closing and not self._abort:
                    self._cond.wait()
                if self._abort or (self._closing and not self._queue):
                    return
                window: List[Message] = []
                size = 0
                while self._queue and len(window) < WINDOW_MESSAGES and (not window or size < WINDOW_BYTES):
                    m = self._queue.popleft()
                    window.append(m)
                    size += m.size
                self._inflight = window
            results = self.transport.deliver(window, PUBLISH_TIMEOUT)
            failed = [m for m, err in zip(window, results) if err is not None]
            with self._cond:
                for m, err in zip(window, results):
                    if err is None:
                        self._bytes -= m.size
                        self.counts.published += m.events
                        self.counts.published_messages += 1
                    else:
                        self.counts.retried += 1
                        self.last_error = err
                self._queue.extendleft(reversed(failed))
                self._inflight = []
                self._cond.notify_all()
                if failed:
                    # The broker is away: wait before the next try (a little
                    # longer each time, at most 1 s), unless aborted.
                    self._cond.wait_for(lambda: self._abort, backoff)
                    backoff = min(1.0, backoff * 2)
                else:
                    backoff = 0.05

    # -- the end ---------------------------------------------------------------
    def close(self, stats=None) -> None:
        """Publish the final counts, wait up to ``linger`` seconds for the
        backlog to reach the broker, count what did not as dropped, and
        disconnect."""
        if self._closed:
            return
        if stats is None:
            from ..recording.recorder import final_stats

            stats = final_stats(self._ring)
        # The end message: no records, the range up to the ring's last number
        # (records the ring lost after the last one it delivered included).
        # It is queued in the same step that tells the sender the end is
        # near, which then stops once the queue is empty.
        end_msg = None
        if self._next is not None:
            tail = 0
            if stats is not None and self._last_lost is not None:
                lost = int(stats["lost"] if isinstance(stats, dict) else stats.lost)
                tail = max(0, lost - self._last_lost)
            from ..recording.frames import frame_bytes

            first = self._next
            end = self._extra(first, first + tail, 0)
            end["end"] = True
            self._ring_lost += tail
            self._next = first + tail
            with self._cond:
                end["sink_dropped"] = self.counts.dropped
            payload = frame_bytes(self.layout, self.layout.encode({}), stats, time.monotonic() - self._t0, None, end)
            end_msg = self._message(payload, 0, first, first + tail)
        with self._cond:
            if end_msg is not None:
                self._queue.append(end_msg)
                self._bytes += end_msg.size
            self._closing = True
            self._cond.notify_all()
        deadline = time.monotonic() + self.linger
        with self._cond:
            self._cond.notify_all()
            while (self._queue or self._inflight) and time.monotonic() < deadline:
                self._cond.wait(min(0.1, max(0.0, deadline - time.monotonic())))
            self._abort = True
            self._cond.notify_all()
        self._thread.join(PUBLISH_TIMEOUT + 10)
        with self._cond:
            left = list(self._queue) + list(self._inflight)
            self._queue.clear()
            self._inflight = []
            self._bytes = 0
            for m in left:
                self.counts.dropped += m.events
                self.counts.dropped_at_close += m.events
                self.counts.dropped_messages += 1
                self.counts.unsent_at_close += 1
        self.transport.close()
        self._closed = True

    def summary(self) -> str:
        """One line: published, retried, dropped."""
        c = self.counts
        line = ("sink %s: published %d events in %d messages, retried %d, dropped %d events in %d messages"
                % (self.url, c.published, c.published_messages, c.retried, c.dropped, c.dropped_messages))
        notes = []
        if c.unsent_at_close:
            notes.append("%d events in %d messages unsent at close" % (c.dropped_at_close, c.unsent_at_close))
        if c.too_big:
            notes.append("%d records larger than the broker's message limit" % c.too_big)
        if notes:
            line += " (%s)" % ", ".join(notes)
        if c.unsent_at_close and self.last_error is not None:
            line += "; last error: %s" % _describe(self.last_error)
        return line

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
