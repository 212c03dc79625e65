"""``python -m pykring collect nats://HOST:PORT/SUBJECT --output DIR``: the
messages of many hosts' sinks (:mod:`pykring.sinks`) into Parquet.

A durable JetStream pull consumer (``--durable``, default pykring-collect)
fetches the messages; each is a frame of :mod:`pykring.recording`. Their
records go to Parquet files partitioned by host and hour::

    DIR/host=web-1/hour=2026-12-01T16/<stream>-<first seq>-<end seq>.parquet

(the hour, UTC, of a message's first record: a message is never split
between files). Each file is a pykring recording of one sink's stream
(``pykring.open_recording(DIR)`` reads them all; DuckDB and pandas read
them as Parquet with hive partitioning); its footer lists its frames, with
the host, stream and sequence range of each.

Exactly once: messages are acknowledged only after every file holding their
records was written to a temporary name, fsynced, renamed and its directory
fsynced. A collector killed before that gets them again (after
``--ack-wait``) and writes them then; one killed after the rename but before
the acknowledgement gets them again too, and skips them: at start it reads
the footers of DIR's files and knows, per stream, the sequence ranges it
holds. Records are de-duplicated by host, boot id, stream and sequence
number, so a message published twice (a sink's retry after JetStream's
duplicate window) is stored once.

Per host it reports the events stored, the events dropped at the source
(the ring's own losses and the sink's drops, as the sink counted them) and
the sequence gaps: numbers between a stream's first and last that no stored
record has. When every message a sink published arrived, the two are equal.
``--summary`` prints that report of DIR as JSON and exits.
"""
from .collector import CollectError, Collector, StreamState, report_lines, summarize
from .command import DEFAULT_DURABLE, add_arguments, run

__all__ = ["Collector", "CollectError", "summarize", "add_arguments", "run"]
