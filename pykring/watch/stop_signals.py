"""What stops a watch: SIGINT and SIGTERM as KeyboardInterrupt
(_sigterm_stops), and held while a batch is printed and recorded
(_stops_held)."""
import contextlib
import signal
import threading
from typing import Iterator, List

#: What stops a watch as Ctrl-C does: SIGINT, and SIGTERM (kill, systemd,
#: timeout(1)), so that a recording is closed, not cut short.
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt


@contextlib.contextmanager
def _sigterm_stops() -> Iterator[None]:
    """Inside, SIGTERM raises KeyboardInterrupt, as Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGTERM, _stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


@contextlib.contextmanager
def _stops_held() -> Iterator[None]:
    """SIGINT and SIGTERM held inside: they arrive, as KeyboardInterrupt,
    when the block is done. Handlers that note them, not a signal mask: the
    process has other threads (pyarrow's, the sink's), and the kernel gives
    a process's signal to any thread that does not block it, whose Python
    handler then runs in the main thread, inside the block."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: List[int] = []
    old = {s: signal.signal(s, lambda signum, frame: held.append(signum)) for s in _STOP_SIGNALS}
    try:
        yield
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
        if held:
            signal.raise_signal(held[0])     # to the handler of before, now
