"""``python -m pykring collect``: the command's options, and the loop that
fetches the sinks' messages from a durable JetStream consumer and
acknowledges them once their files are on disk (:mod:`pykring.collect`
describes the whole).
"""
import json
import signal
import sys
import time
from typing import Any, List, Optional

from .._args import parse_positive_seconds, parse_size
from .collector import CollectError, Collector, report_lines, summarize

DEFAULT_DURABLE = "pykring-collect"


# ---- the NATS side ----------------------------------------------------------------------

async def _collect(args, err) -> int:
    import asyncio

    from nats.errors import TimeoutError as NatsTimeout
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
    from nats.js.errors import APIError, NotFoundError, ServiceUnavailableError

    from ..sinks.nats import NatsConnection, NatsTransport, default_stream_config
    from ..sinks.transport import SinkError

    def log(text: str) -> None:
        err.write("pykring collect: %s\n" % text)
        err.flush()

    try:
        target = NatsTransport(args.url, name="pykring collect")
    except SinkError as exc:
        log(str(exc))
        return 2
    collector = Collector(args.output, log)
    log("%s: %d files of %d streams already there" % (collector.output, collector.files, len(collector.streams)))
    conn = NatsConnection(target.servers, "pykring collect")
    if not await conn.ensure(args.connect_timeout):
        why = conn.last_error
        log("%s: cannot reach a NATS server within %.0f s (%s): start one with JetStream (nats-server -js) "
            "or fix the URL; docs/FLEET.md" % (target.url, args.connect_timeout,
                                               "connection refused" if isinstance(why, ConnectionRefusedError)
                                               else why))
        return 1
    js = conn.js
    try:
        try:
            await js.stream_info(target.stream)
        except NotFoundError:
            await js.add_stream(default_stream_config(target.stream, target.subject))
        config = ConsumerConfig(durable_name=args.durable, ack_policy=AckPolicy.EXPLICIT,
                                deliver_policy=DeliverPolicy.ALL, ack_wait=args.ack_wait,
                                max_ack_pending=args.max_ack_pending, max_deliver=-1,
                                filter_subject=target.subject)
        try:
            await js.add_consumer(target.stream, config)
        except APIError as exc:         # it exists with other settings: use it as it is
            log("using the existing consumer %s (%s)" % (args.durable, exc))
    except ServiceUnavailableError:
        log("%s: the NATS server has no JetStream: start it with -js (docs/FLEET.md)" % target.url)
        await conn.drop()
        return 1
    except (asyncio.TimeoutError, APIError) as exc:
        log("%s: JetStream refused the stream or consumer: %s" % (target.url, exc))
        await conn.drop()
        return 1

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log("collecting %s (stream %s, consumer %s) into %s" % (target.url, target.stream, args.durable, collector.output))
    pending: List[Any] = []          # messages to acknowledge after the next flush
    last_report = time.monotonic()
    reported: Optional[dict] = None
    psub: Any = None
    bound = -1                        # the connection generation psub belongs to
    away = False                      # the server is unreachable (said once)
    said = ""                         # the last fetch error said

    async def flush_and_ack() -> None:
        collector.flush()
        for m in pending:
            try:
                await m.ack()
            except Exception:       # that connection is gone: JetStream delivers it again, a duplicate then
                pass
        pending.clear()
        if conn.connected:
            try:
                await conn.nc.flush(timeout=2)
            except Exception:
                pass

    rc = 0
    try:
        while not stop.is_set():
            msgs: List[Any] = []
            if not await conn.ensure(1.0):
                if not away:
                    log("lost %s (%s); connecting again" % (target.url, conn.last_error))
                    away = True
                await asyncio.sleep(0.1)        # the server is away: what is buffered waits for it
            else:
                if away:
                    log("connected to %s again" % target.url)
                    away = False
                try:
                    if bound != conn.generation:
                        psub = await conn.js.pull_subscribe_bind(durable=args.durable, stream=target.stream)
                        bound = conn.generation
                    msgs = await psub.fetch(batch=args.fetch, timeout=1.0)
                    said = ""
                except (NatsTimeout, asyncio.TimeoutError):
                    said = ""
                except Exception as exc:    # the server went away mid-call, or refuses: say so once
                    conn.last_error = exc
                    if str(exc) != said:
                        said = str(exc)
                        log("fetch failed: %s: %s" % (type(exc).__name__, exc))
                    await asyncio.sleep(0.1)
            for m in msgs:
                collector.add(m.data)
                pending.append(m)
            if pending and (collector.due(args.flush_seconds, args.flush_bytes) or collector.empty):
                await flush_and_ack()
            now = time.monotonic()
            if now - last_report >= args.report_seconds:
                rep = collector.report()
                if rep != reported:
                    for line in report_lines(rep):
                        log(line)
                    reported = rep
                last_report = now
        if pending:
            await flush_and_ack()
    except OSError as exc:
        log("cannot write %s: %s; the messages since the last file stay unacknowledged "
            "(JetStream delivers them again)" % (collector.output, exc))
        rc = 1
    finally:
        await conn.drop()
    for line in report_lines(collector.report()):
        log(line)
    log("%d files, %d duplicate and %d rejected messages" % (collector.files, collector.duplicates, collector.rejected))
    return rc


def add_arguments(p) -> None:
    """The `collect` subcommand's options."""
    p.add_argument("url", nargs="?", metavar="nats://HOST:PORT/SUBJECT",
                   help="the server(s) and subject the sinks publish to")
    p.add_argument("--output", "-o", metavar="DIR", required=True,
                   help="where the Parquet files go (DIR/host=H/hour=YYYY-MM-DDTHH/*.parquet)")
    p.add_argument("--durable", default=DEFAULT_DURABLE, metavar="NAME",
                   help="the durable consumer's name (collectors sharing it share the work; default %s)"
                        % DEFAULT_DURABLE)
    p.add_argument("--ack-wait", type=parse_positive_seconds, default=30.0, metavar="S",
                   help="seconds before JetStream delivers an unacknowledged message again (default 30)")
    p.add_argument("--flush-seconds", type=parse_positive_seconds, default=5.0, metavar="S",
                   help="seconds records wait in memory before their file is written (default 5)")
    p.add_argument("--flush-bytes", type=parse_size, default=64 << 20, metavar="BYTES",
                   help="bytes of messages that make the files be written sooner (default 64M)")
    p.add_argument("--max-ack-pending", type=int, default=10000, metavar="N",
                   help="messages delivered and not yet acknowledged, at most (default 10000)")
    p.add_argument("--fetch", type=int, default=64, metavar="N", help="messages per fetch (default 64)")
    p.add_argument("--connect-timeout", type=parse_positive_seconds, default=5.0, metavar="S",
                   help="seconds to reach the server at the start (default 5)")
    p.add_argument("--report-seconds", type=parse_positive_seconds, default=10.0, metavar="S",
                   help="seconds between the per-host report lines on stderr (default 10)")
    p.add_argument("--summary", action="store_true",
                   help="print DIR's per-host report (events, dropped, gaps) as JSON and exit")


def run(args, err=None) -> int:
    """The `collect` command (arguments from pykring.__main__)."""
    import asyncio

    err = err or sys.stderr
    if args.summary:
        try:
            print(json.dumps(summarize(args.output), indent=1))
        except OSError as exc:
            err.write("pykring collect: %s\n" % exc)
            return 1
        return 0
    if not args.url:
        err.write("pykring collect: the server URL is missing (nats://HOST:PORT/SUBJECT)\n")
        return 2
    if args.ack_wait <= 2 * args.flush_seconds:
        err.write("pykring collect: --ack-wait (%g s) must be more than twice --flush-seconds (%g s): records "
                  "wait that long before they are acknowledged\n" % (args.ack_wait, args.flush_seconds))
        return 2
    try:
        import nats  # noqa: F401
        import pyarrow  # noqa: F401
    except ImportError as exc:
        err.write("pykring collect: needs nats-py and pyarrow (%s): pip install 'pykring[nats]'\n" % exc)
        return 1
    try:
        return asyncio.run(_collect(args, err))
    except CollectError as exc:
        err.write("pykring collect: %s\n" % exc)
        return 1
