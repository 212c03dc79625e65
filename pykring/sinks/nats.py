"""NATS JetStream for sinks and the collector: :class:`NatsTransport` (a
:class:`~pykring.sinks.Transport` through nats-py), :class:`NatsConnection`
(one client, made again when lost), the stream a subject goes to
(:func:`stream_name`, :func:`default_stream_config`)."""
import re
import threading
from typing import Any, List, Optional, Sequence
from urllib.parse import parse_qs, unquote, urlsplit

from .transport import Message, SinkError, Transport, _describe


def stream_name(subject: str) -> str:
    """The JetStream stream a subject's messages go to unless the URL names
    one (``?stream=NAME``): the subject in capitals, tokens joined by _,
    after PYKRING_ unless it begins so (pykring.events: PYKRING_EVENTS)."""
    name = re.sub(r"[^A-Za-z0-9_-]", "_", subject).upper()
    return name if name.startswith("PYKRING") else "PYKRING_" + name


def _safe_url(parts) -> str:
    host = parts.hostname or ""
    netloc = parts.netloc.rsplit("@", 1)[-1] if host else parts.netloc
    return "%s://%s%s" % (parts.scheme, netloc, parts.path)


def default_stream_config(name: str, subject: str):
    """The stream made when none captures the subject: file storage, limits
    retention (discard old), 72 hours, a 2 minute duplicate window."""
    from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

    return StreamConfig(name=name, subjects=[subject], storage=StorageType.FILE, retention=RetentionPolicy.LIMITS,
                        discard=DiscardPolicy.OLD, max_age=72 * 3600.0, duplicate_window=120.0)


class NatsConnection:
    """One nats-py client at a time, made again when it is lost.

    nats-py's own reconnection is off: under load it was seen to stay in its
    reconnecting state after the server came back. Instead a lost (closed)
    client is dropped and :meth:`ensure` connects a new one, trying the
    servers in turn; the caller (the sink's retries, the collector's loop)
    decides how long to keep trying. ``generation`` counts the clients made,
    so that subscriptions of a lost one are made again."""

    def __init__(self, servers: Sequence[str], name: str):
        self.servers = list(servers)
        self.name = name
        self.nc: Any = None                 #: the nats-py client, None while there is none
        self.js: Any = None                 #: its JetStream context
        self.generation = 0
        self.last_error: Optional[BaseException] = None
        self._next = 0

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    @property
    def max_payload(self) -> int:
        return int(self.nc.max_payload) if self.nc is not None else 1 << 20

    async def ensure(self, timeout: float) -> bool:
        """Connected within `timeout` seconds (True), or not (last_error says why)."""
        import asyncio

        from nats.aio.client import Client

        if self.connected:
            return True
        await self.drop()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            server = self.servers[self._next % len(self.servers)]
            self._next += 1
            nc = Client()
            errors: List[BaseException] = []

            async def on_error(exc, errors=errors):
                errors.append(exc)

            left = max(0.05, deadline - loop.time())
            try:
                await asyncio.wait_for(nc.connect(
                    servers=[server], name=self.name, connect_timeout=2,
                    allow_reconnect=False, ping_interval=5, max_outstanding_pings=2, error_cb=on_error), left)
            except BaseException as exc:        # refused, timed out, cancelled: try again or give up
                self.last_error = errors[0] if errors else exc
                try:
                    await nc.close()
                except Exception:
                    pass
                if isinstance(exc, asyncio.CancelledError):
                    raise
                if loop.time() + 0.25 >= deadline:
                    return False
                await asyncio.sleep(0.25)
                continue
            self.nc = nc
            self.js = nc.jetstream(timeout=max(2.0, timeout))
            self.generation += 1
            return True

    async def drop(self) -> None:
        nc, self.nc, self.js = self.nc, None, None
        if nc is not None and not nc.is_closed:
            try:
                await nc.close()
            except Exception:
                pass


class NatsTransport(Transport):
    """NATS JetStream through nats-py (``pip install 'pykring[nats]'``), on an
    asyncio loop in a thread of its own.

    URL: ``nats://[USER:PASSWORD@]HOST:PORT[,HOST:PORT...]/SUBJECT[?stream=NAME]``.
    The stream must capture SUBJECT; a missing one is created (file storage,
    limits retention, 2 minutes of duplicate window, at most 72 hours of
    messages: production creates its own, docs/FLEET.md)."""

    def __init__(self, url: str, name: str = "pykring sink"):
        parts = urlsplit(url)
        if parts.scheme not in ("nats", "tls"):
            raise SinkError("%s: not a NATS URL (nats://HOST:PORT/SUBJECT)" % url)
        self.url = _safe_url(parts)
        self.subject = unquote(parts.path.lstrip("/"))
        if not self.subject or any(c in self.subject for c in " \t\r\n*>") or ".." in self.subject:
            raise SinkError("%s: the URL needs a subject without wildcards after the server "
                            "(nats://HOST:PORT/SUBJECT, e.g. nats://127.0.0.1:4222/pykring.events)" % self.url)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        self.stream = query.pop("stream", "") or stream_name(self.subject)
        self.options = query
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        self.servers = ["%s://%s%s" % ("tls" if parts.scheme == "tls" else "nats", userinfo, hp)
                        for hp in parts.netloc.rsplit("@", 1)[-1].split(",") if hp]
        if not self.servers:
            raise SinkError("%s: no server in the URL (nats://HOST:PORT/SUBJECT)" % self.url)
        self.name = name
        self.last_error: Optional[BaseException] = None
        self.conn: Optional["NatsConnection"] = None
        self._loop: Optional[Any] = None
        self._thread: Optional[threading.Thread] = None

    # -- the loop thread ------------------------------------------------------
    def _run(self, coro, timeout: float):
        import asyncio
        import concurrent.futures

        assert self._loop is not None
        fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return fut.result(timeout)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise TimeoutError("no answer within %.1f s" % timeout) from None

    def _start_loop(self) -> None:
        import asyncio

        loop = asyncio.new_event_loop()
        self._loop = loop
        self._thread = threading.Thread(target=loop.run_forever, name="pykring-nats", daemon=True)
        self._thread.start()

    def _stop_loop(self) -> None:
        loop, t = self._loop, self._thread
        if loop is None or t is None:
            return
        loop.call_soon_threadsafe(loop.stop)
        t.join(10)
        if not t.is_alive():
            loop.close()
        self._loop = self._thread = None

    # -- Transport ----------------------------------------------------------
    def connect(self, timeout: float) -> None:
        try:
            import nats  # noqa: F401
        except ImportError:
            raise SinkError("%s: the NATS sink needs nats-py: pip install 'pykring[nats]'" % self.url) from None
        self._start_loop()
        try:
            self._run(self._connect(timeout), timeout + 5)
        except BaseException:
            try:
                self._run(self._close(), 5)
            except BaseException:
                pass
            self._stop_loop()
            raise

    async def _connect(self, timeout: float) -> None:
        import asyncio

        from nats.js.errors import NotFoundError, ServiceUnavailableError

        conn = self.conn = NatsConnection(self.servers, self.name)
        if not await conn.ensure(timeout):
            raise SinkError("%s: cannot reach a NATS server within %.0f s (%s): start one with JetStream "
                            "(nats-server -js) or fix the URL; docs/FLEET.md"
                            % (self.url, timeout, _describe(conn.last_error or TimeoutError("no answer"))))
        js = conn.js
        assert js is not None
        try:
            try:
                info = await js.stream_info(self.stream)
                subjects = info.config.subjects or []
                if not any(_subject_matches(s, self.subject) for s in subjects):
                    raise SinkError("%s: the JetStream stream %s captures %s, not %s: publish to one of those "
                                    "or name another stream (?stream=NAME)"
                                    % (self.url, self.stream, ", ".join(subjects) or "nothing", self.subject))
            except NotFoundError:
                await js.add_stream(default_stream_config(self.stream, self.subject))
        except ServiceUnavailableError:
            raise SinkError("%s: the NATS server has no JetStream: start it with -js (docs/FLEET.md)"
                            % self.url) from None
        except asyncio.TimeoutError:
            raise SinkError("%s: the NATS server does not answer JetStream requests within %.0f s: start it "
                            "with -js (docs/FLEET.md)" % (self.url, timeout)) from None

    @property
    def max_message(self) -> int:
        conn = self.conn
        return conn.max_payload if conn is not None else 1 << 20

    def deliver(self, messages: Sequence[Message], timeout: float) -> List[Optional[BaseException]]:
        try:
            return self._run(self._deliver(messages, timeout), timeout + 5)
        except BaseException as exc:
            return [exc] * len(messages)

    async def _deliver(self, messages: Sequence[Message], timeout: float) -> List[Optional[BaseException]]:
        import asyncio

        conn = self.conn
        if conn is None or not await conn.ensure(min(timeout, 1.0)):
            err = ConnectionError("not connected to %s (%s)" % (
                self.url, _describe(conn.last_error) if conn and conn.last_error else "no server answers"))
            return [err] * len(messages)
        js = conn.js
        got = await asyncio.gather(*(js.publish(self.subject, m.payload, timeout=timeout, headers=m.headers)
                                     for m in messages), return_exceptions=True)
        out: List[Optional[BaseException]] = []
        for r in got:
            out.append(r if isinstance(r, BaseException) else None)
            if isinstance(r, BaseException):
                self.last_error = r
        return out

    async def _close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            await conn.drop()

    def close(self) -> None:
        if self._loop is None:
            return
        try:
            self._run(self._close(), 10)
        except BaseException:
            pass
        self._stop_loop()


def _subject_matches(pattern: str, subject: str) -> bool:
    p, s = pattern.split("."), subject.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s) or (tok != "*" and tok != s[i]):
            return False
    return len(p) == len(s)

