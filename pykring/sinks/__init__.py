"""Sinks: a ring's batches shipped off the host, for a collector to store.

A sink takes the batches a consumer drains, as a :class:`~pykring.Recorder`
does (``write(batch, stats, facts)``, ``close(stats)``, ``summary()``), and
publishes each as one message to a broker: a frame of
:mod:`pykring.recording` (a self-contained Arrow IPC stream), split by rows
when it would exceed the broker's largest message::

    with pykring.attach("ticks") as ring, NatsSink("nats://127.0.0.1:4222/fleet", ring) as sink:
        for batch in ring:
            sink.write(batch)

or ``python -m pykring watch --sink nats://HOST:PORT/SUBJECT``. The
collector (``python -m pykring collect``, :mod:`pykring.collect`) writes the
messages to Parquet. docs/FLEET.md describes the whole path.

What a message carries (headers, and the frame's metadata, so the Arrow
stream alone says it too): the host (``Pykring-Host``, ``Pykring-Boot``),
the ring (``Pykring-Ring``), the sink's stream id (``Pykring-Stream``: random,
one per sink, so two runs on one ring never share sequence numbers) and the
sequence range ``[seq_from, seq_to)`` (``Pykring-Seq``). The ranges of one
stream tile the sequence numbers without overlap from the first record on,
so a collector counts what never arrived: numbers the ring lost (its own
drops, which the frame counts as ``ring_lost``) and whole messages the sink
dropped (``sink_dropped``). The message id (``Nats-Msg-Id``) is derived from
host, boot, stream and range, so a message published twice (a retry after a
reconnect) is stored once by JetStream, and de-duplicated by the collector
after JetStream's window.

``write()`` never waits for the network: it encodes the batch on the
caller's thread and appends the messages to an in-memory backlog, bounded in
bytes (``backlog``); a sender thread publishes them and keeps each until the
broker confirmed it stored it, retrying through disconnects and server
restarts. A write that finds the backlog full drops its messages and counts
them (``dropped``); the next message's range starts after them, so they
reach the collector as a sequence gap, never as silence. ``close()`` sends a
last message (the final counts) and waits up to ``linger`` seconds for the
backlog to empty; what is still unsent then is dropped, counted in
``summary()``, and invisible to the collector: the delivery guarantee ends
at the host's memory.

A second broker is a second :class:`Transport` (connect, the largest
message, deliver a list of messages, close): everything above is shared.
"""
from .nats import NatsConnection, NatsTransport, default_stream_config, stream_name
from .sink import (DEFAULT_BACKLOG, DEFAULT_CONNECT_TIMEOUT, DEFAULT_LINGER, HEADER_ROOM, MSG_ID, PUBLISH_TIMEOUT,
                   WINDOW_BYTES, WINDOW_MESSAGES, Sink)
from .transport import Message, SinkError, Transport
from .urls import SCHEMES, NatsSink, open_sink

__all__ = ["SinkError", "Sink", "NatsSink", "Transport", "NatsTransport", "Message", "open_sink",
           "DEFAULT_BACKLOG", "DEFAULT_LINGER", "DEFAULT_CONNECT_TIMEOUT", "stream_name"]
