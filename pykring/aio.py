"""Waiting without blocking: rings in an asyncio loop, several rings in one thread.

:meth:`Ring.aread` and ``async for batch in ring`` wait on the ring's
:meth:`~pykring.Ring.fileno` with ``loop.add_reader``; the reads themselves
never wait (``timeout=0``), so the loop is never blocked by a ring.
:func:`wait_any` waits for the first of several rings with a selector.

Both register a duplicate of the ring's fd (a file the Ring cannot close
under them, whose number no other file can take meanwhile) and ask the Ring
to tell them when it is closed, from whichever thread: a close then ends the
wait at once, the awaiting call raises :class:`~pykring.RingClosedError`
(``async for`` just ends) and :func:`wait_any` reports the ring as ready.
"""
import asyncio
import os
import selectors
from typing import Any, AsyncIterator, Iterable, List, Optional

import numpy as np

from . import errors
from ._notify import Signal

__all__ = ["aread", "aiter_batches", "wait_any"]


def _count(batch) -> int:
    return len(batch) if isinstance(batch, np.ndarray) else batch.count


def _read_now(ring, max_records: Optional[int]):
    # A read that never waits: what is pending now, maybe nothing.
    if len(ring._types) == 1:
        return ring.read(max_records, timeout=0)
    return ring.read_batch(max_records, timeout=0)


async def aread(ring, max_records: Optional[int] = None, timeout: Optional[float] = None):
    """The body of :meth:`pykring.Ring.aread`."""
    loop = asyncio.get_running_loop()
    deadline = None if timeout is None else loop.time() + max(0.0, timeout)
    while True:
        batch = _read_now(ring, max_records)
        if _count(batch) or max_records == 0:
            return batch
        # Nothing pending. wait(0) raises ProducerGoneError for a ring whose
        # producer was killed, and catches a record that came just now.
        if ring.wait(0):
            continue
        left = None if deadline is None else deadline - loop.time()
        if left is not None and left <= 0:
            return batch
        await _readable(ring, loop, left)


async def _readable(ring, loop: asyncio.AbstractEventLoop, timeout: Optional[float]) -> None:
    """Until the ring's fd is readable, the ring is closed, or `timeout` passed."""
    fut = loop.create_future()

    def wake() -> None:
        if not fut.done():
            fut.set_result(None)

    def on_close() -> None:
        try:
            loop.call_soon_threadsafe(wake)
        except RuntimeError:        # the loop is closed: nobody waits any more
            pass

    key = ring._watch_close(on_close)
    fd = -1
    handle = None
    try:
        fd = os.dup(ring.fileno())
        loop.add_reader(fd, wake)
        if timeout is not None:
            handle = loop.call_later(timeout, wake)
        await fut
    finally:
        if handle is not None:
            handle.cancel()
        if fd >= 0:
            loop.remove_reader(fd)
            os.close(fd)
        ring._unwatch_close(key)


async def aiter_batches(ring) -> AsyncIterator[Any]:
    """The body of ``async for batch in ring``: non-empty batches until the
    producer closes the ring or the Ring is closed."""
    while not ring.closed:
        try:
            batch = await aread(ring)
        except errors.RingClosedError:      # ObjectClosedError too: closed meanwhile
            return
        if _count(batch):
            yield batch


def wait_any(rings: Iterable, timeout: Optional[float] = None) -> List:
    """Wait until at least one of `rings` has records pending; return those
    that have (in the order given), or ``[]`` after `timeout` seconds
    (None: no limit). A ring that is closed, or whose producer closed it or
    died, counts as ready: reading it then raises (or returns the rest).
    Interruptible (Ctrl-C). For one thread serving several rings::

        while True:
            for ring in pykring.wait_any([a, b, c]):
                handle(ring.read_batch())
    """
    unique = list({id(r): r for r in rings}.values())
    if not unique:
        raise ValueError("wait_any: no rings to wait for")
    ready = [r for r in unique if r.closed or r._has_pending()]
    if ready:
        return ready
    sel = selectors.DefaultSelector()
    woken = Signal()
    watched = []
    dups: List[int] = []
    try:
        sel.register(woken.fileno(), selectors.EVENT_READ, None)
        for r in unique:
            watched.append((r, r._watch_close(woken.set)))
            try:
                fd = os.dup(r.fileno())
            except errors.RingClosedError:
                continue                    # closed meanwhile: reported below
            dups.append(fd)
            sel.register(fd, selectors.EVENT_READ, r)
        events = sel.select(timeout)
        hit = {id(key.data) for key, _ in events if key.data is not None}
        return [r for r in unique if id(r) in hit or r.closed]
    finally:
        sel.close()
        for fd in dups:
            os.close(fd)
        for r, key in watched:
            r._unwatch_close(key)
        woken.close()
