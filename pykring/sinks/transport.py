"""What a sink needs of a broker: :class:`SinkError`, the :class:`Message`
on its way, and the :class:`Transport` a broker client implements
(:mod:`pykring.sinks` describes the whole)."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

from ..errors import KringError


class SinkError(KringError, ConnectionError):
    """A sink cannot reach its broker, or was given a URL or option it cannot
    use. The message names the URL and what to do."""


@dataclass
class Message:
    """One frame on its way to the broker."""

    id: str                         #: the de-duplication id (host/boot/stream/seq_from-seq_to)
    headers: Dict[str, str]
    payload: bytes
    events: int                     #: records in it
    seq_from: int
    seq_to: int

    @property
    def size(self) -> int:
        return len(self.payload) + sum(len(k) + len(v) + 4 for k, v in self.headers.items())


class Transport:
    """What a broker client implements for :class:`Sink` (NATS JetStream:
    :class:`NatsTransport`; a Kafka one would produce to a topic with
    ``enable.idempotence`` and report the delivery callbacks)."""

    #: The URL without credentials, for messages.
    url: str = ""

    def connect(self, timeout: float) -> None:
        """Reach the broker and check it can store the messages, within
        `timeout` seconds, or raise SinkError saying why and what to do."""
        raise NotImplementedError

    @property
    def max_message(self) -> int:
        """The broker's largest message in bytes (headers included)."""
        raise NotImplementedError

    def deliver(self, messages: Sequence[Message], timeout: float) -> List[Optional[BaseException]]:
        """Publish `messages` and wait (at most about `timeout` s) until the
        broker confirms each is stored: per message None (stored, or a
        duplicate of a stored one), or the error (it may or may not have been
        stored: the sink sends it again, with the same id)."""
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError



def _describe(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or type(exc).__name__

