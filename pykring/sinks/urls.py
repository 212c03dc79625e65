"""Sinks by URL: the options a sink's URL may carry
(``?backlog=16M&linger=5&connect_timeout=5``), :class:`NatsSink` (a
:class:`~pykring.sinks.Sink` through the NATS JetStream transport),
:data:`SCHEMES` (URL scheme -> sink class) and :func:`open_sink`.
"""
import argparse
from typing import Any, Dict, Optional
from urllib.parse import urlsplit

from .._args import parse_positive_seconds, parse_size
from .nats import NatsTransport
from .sink import Sink
from .transport import SinkError

__all__ = ["NatsSink", "open_sink"]


def _url_value(parse, text: str, what: str, url: str, valid: str):
    try:
        return parse(text)
    except argparse.ArgumentTypeError:
        raise SinkError("%s: invalid %s %r: %s" % (url, what, text, valid)) from None


def _options(url: str, query: Dict[str, str], kwargs: Dict[str, Any]) -> Dict[str, Any]:
    opts: Dict[str, Any] = {}
    for key, value in list(query.items()):
        if key == "backlog":
            opts["backlog"] = _url_value(parse_size, value, "backlog", url,
                                         "a number of bytes, optionally with K, M or G")
        elif key in ("linger", "connect_timeout"):
            opts[key] = _url_value(parse_positive_seconds, value, key, url, "a number of seconds > 0")
        else:
            raise SinkError("%s: unknown option %r (known: stream, backlog, linger, connect_timeout)" % (url, key))
    opts.update(kwargs)
    return opts


class NatsSink(Sink):
    """A sink to NATS JetStream: ``NatsSink("nats://HOST:PORT/SUBJECT", ring)``.
    URL options (``?backlog=16M&linger=5&connect_timeout=5&stream=NAME``) or
    keyword arguments set the backlog bytes, the seconds close() waits, the
    seconds to reach the server, the JetStream stream. Raises SinkError when
    no server answers within ``connect_timeout``."""

    def __init__(self, url: str, ring, *, host: Optional[dict] = None, **options: Any):
        transport = NatsTransport(url)
        opts = _options(transport.url, transport.options, options)
        super().__init__(transport, ring, host=host, **opts)


#: URL scheme -> sink class (a Kafka sink adds "kafka": KafkaSink).
SCHEMES = {"nats": NatsSink, "tls": NatsSink}


def open_sink(url: str, layout, host: Optional[dict] = None, **options: Any) -> Sink:
    """The sink for `url` (``nats://HOST:PORT/SUBJECT``), publishing batches
    of `layout` (a Layout or a Ring) as `host` (default: the layout's host or
    this one). SinkError when the URL is unusable or the broker cannot be
    reached within the connect timeout."""
    scheme = urlsplit(url).scheme
    cls = SCHEMES.get(scheme)
    if cls is None:
        raise SinkError("%s: unknown sink (known: %s)" % (url, ", ".join("%s://" % s for s in SCHEMES)))
    return cls(url, layout, host=host, **options)
