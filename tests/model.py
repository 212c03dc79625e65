"""A pure-Python reference model of a pykring ring (docs/PROTOCOL.md 5, 7, 8).

It models the bytes, not just the records: :class:`RingModel` keeps its own
copy of the data area and writes into it exactly what the protocol says a
user-mode producer writes (record header, event header, body; DISCARD
padding at the end; nothing else), and its consumer parses those bytes back
with the protocol's validation rules. Tests run the C producer and drain
side by side with it and compare bytes, records, counters and positions.

:func:`parse` is the consumer half on its own, usable on arbitrary bytes.
"""
import struct
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

RECORD_HEADER = 8
EVENT_HEADER = 24
ALIGN = 8
BUSY = 0x80000000
DISCARD = 0x40000000
LEN_MASK = 0x3FFFFFFF
MAX_TYPES = 16
U64 = (1 << 64) - 1

# Corruption reasons (KRING_BAD_*).
BAD_PRODUCER_POS = 1
BAD_LENGTH = 3
BAD_STRADDLE = 4
BAD_SHORT = 5
BAD_TYPE = 6
BAD_SIZE = 7


def span(payload_len: int) -> int:
    """Bytes a record with `payload_len` payload bytes occupies: round_up(8 + len, 8)."""
    return (payload_len + RECORD_HEADER + ALIGN - 1) & ~(ALIGN - 1)


@dataclass
class Corrupt:
    reason: int
    pos: int        # ring position of the bad record (or the consumer position)
    value: int      # the offending value


@dataclass
class Drained:
    rows: List[Tuple[int, bytes]]   # (type id, row bytes zero-filled to the type's size), ring order
    pos: int                        # consumer position after the drain
    error: Optional[Corrupt]        # stopped at a corrupt record (rows before it delivered)
    seqs: List[int]


def parse(data: bytes, capacity: int, types: Dict[int, Tuple[int, int]], pos: int, prod: int,
          max_records: Optional[int] = None, room: Optional[Dict[int, int]] = None,
          double_mapped: bool = False) -> Drained:
    """Drain the records in ring positions [pos, prod) of a data area.

    `types` maps type id -> (size, min_size). Follows docs/PROTOCOL.md 8, step 2-3.
    `room`: rows the caller has for each type id (missing: none); the drain
    stops, without error, at a valid record whose type has no row left.
    None: rows without limit. `double_mapped`: the data area is mapped twice
    back to back (a BPF ring), so a record may cross its end and is read on
    from its start.
    """
    mask = capacity - 1
    if double_mapped:
        data = bytes(data[:capacity]) * 2
    left = None if room is None else dict(room)
    rows: List[Tuple[int, bytes]] = []
    seqs: List[int] = []
    if (prod - pos) & U64 > capacity or prod % ALIGN:
        return Drained(rows, pos, Corrupt(BAD_PRODUCER_POS, pos, prod), seqs)
    error = None
    while pos != prod and (max_records is None or len(rows) < max_records):
        off = pos & mask
        (hlen,) = struct.unpack_from("<I", data, off)
        length = hlen & LEN_MASK
        sp = span(length)
        if hlen & BUSY:
            break
        if sp > (prod - pos) & U64:
            error = Corrupt(BAD_LENGTH, pos, length)
            break
        if not double_mapped and off + sp > capacity:
            error = Corrupt(BAD_STRADDLE, pos, length)
            break
        if not hlen & DISCARD:
            if length < EVENT_HEADER:
                error = Corrupt(BAD_SHORT, pos, length)
                break
            payload = bytes(data[off + RECORD_HEADER:off + RECORD_HEADER + length])
            seq, _ts, tid = struct.unpack_from("<QQH", payload, 0)
            if tid not in types:
                error = Corrupt(BAD_TYPE, pos, tid)
                break
            size, min_size = types[tid]
            if length > size or length < min_size:
                error = Corrupt(BAD_SIZE, pos, length)
                break
            if left is not None:
                if left.get(tid, 0) <= 0:
                    break
                left[tid] -= 1
            rows.append((tid, payload + bytes(size - length)))
            seqs.append(seq)
        pos = (pos + sp) & U64
    return Drained(rows, pos, error, seqs)


@dataclass
class SeqState:
    """A consumer's sequence accounting (docs/PROTOCOL.md 5.6)."""
    next_seq: int = 0
    gaps: int = 0           # numbers never seen; late arrivals make it go down (may go below 0)
    started: bool = True    # False: an attaching consumer takes the first number it sees

    def account(self, seqs: Sequence[int]) -> None:
        for seq in seqs:
            if seq >= self.next_seq or not self.started:
                if self.started:
                    self.gaps += seq - self.next_seq
                self.next_seq = (seq + 1) & U64
                self.started = True
            else:
                self.gaps -= 1      # a late arrival fills an earlier gap


class RingModel:
    """One ring, one drop-policy producer and one consumer, in Python."""

    def __init__(self, capacity: int, types: Dict[int, Tuple[int, int]], seq_started: bool = True):
        assert capacity & (capacity - 1) == 0
        self.capacity = capacity
        self.mask = capacity - 1
        self.types = dict(types)            # id -> (size, min_size)
        self.data = bytearray(capacity)     # a new ring's data area is zero
        # Shared words.
        self.producer_pos = 0
        self.consumer_pos = 0               # published by commit
        self.written = 0
        self.dropped = 0
        self.closed = False                 # KRING_F_CLOSED
        # Producer private.
        self.seq = 0
        # Consumer private.
        self.read_pos = 0
        self.records_read = 0
        self.next_seq = 0
        self.gaps = 0
        self.seq_started = seq_started
        self.hold: Optional[int] = None     # a zero-copy view's rows in use: commits stop there

    # -- producer ----------------------------------------------------------------
    def write(self, tid: int, bodies: Sequence[bytes], flags: int = 0, ts: int = 0) -> List[int]:
        """Write records of type `tid` (drop policy). Returns the data offsets of
        the records written (their count is what kring_write reports as done);
        the rest are dropped and counted."""
        size, min_size = self.types[tid]
        room = self.capacity - ((self.producer_pos - self.consumer_pos) & U64)   # free-running u64
        pos = self.producer_pos
        offsets = []
        for body in bodies:
            plen = EVENT_HEADER + len(body)
            assert min_size <= plen <= size
            sp = span(plen)
            off = pos & self.mask
            pad = self.capacity - off if off + sp > self.capacity else 0
            if pad + sp > room:
                break
            if pad:
                struct.pack_into("<II", self.data, off, (pad - RECORD_HEADER) | DISCARD, 0)
                pos += pad
                room -= pad
                off = 0
            struct.pack_into("<IIQQHHI", self.data, off, plen, 0, self.seq, ts, tid, flags, 0)
            self.data[off + RECORD_HEADER + EVENT_HEADER:off + RECORD_HEADER + plen] = body
            offsets.append(off)
            self.seq += 1
            pos += sp
            room -= sp
        done = len(offsets)
        self.written += done
        self.dropped += len(bodies) - done
        self.seq += len(bodies) - done
        self.producer_pos = pos & U64
        return offsets

    def reserve(self, tid: int, bodies: Sequence[bytes], flags: int = 0, publish: bool = True) -> List[int]:
        """A zero-copy reservation of len(bodies) full-size records of `tid`
        (csrc/kring_reserve.c, drop policy): contiguous, so a DISCARD record
        pads to the end of the data area first (published at once) when they
        would not fit before it; with no room, all of them are dropped.
        `publish` False: the block raised, nothing but the padding is
        published. Returns the data offsets of the records published."""
        size, _ = self.types[tid]
        sp = span(size)
        n = len(bodies)
        need = n * sp
        assert n <= self.capacity // 4 // sp
        if n == 0:
            return []
        while True:
            room = self.capacity - ((self.producer_pos - self.consumer_pos) & U64)
            off = self.producer_pos & self.mask
            pad = self.capacity - off if off + need > self.capacity else 0
            if pad and pad <= room:
                struct.pack_into("<II", self.data, off, (pad - RECORD_HEADER) | DISCARD, 0)
                self.producer_pos = (self.producer_pos + pad) & U64
                continue
            if not pad and need <= room:
                break
            if publish:                     # the drop counted at the end of the block
                self.dropped += n
                self.seq += n
            return []
        if not publish:
            for body in bodies:             # filled in place, never published
                self.data[off + RECORD_HEADER + EVENT_HEADER:off + RECORD_HEADER + size] = body
                off += sp
            return []
        offsets = []
        for body in bodies:
            assert EVENT_HEADER + len(body) == size
            struct.pack_into("<IIQQHHI", self.data, off, size, 0, self.seq, 0, tid, flags, 0)
            self.data[off + RECORD_HEADER + EVENT_HEADER:off + RECORD_HEADER + size] = body
            offsets.append(off)
            self.seq += 1
            off += sp
        self.written += n
        self.producer_pos = (self.producer_pos + need) & U64
        return offsets

    def stamp(self, offsets: Sequence[int], ts: int) -> None:
        """Set the timestamp of records written at `offsets` (the C producer takes it
        from the clock when the call starts; tests read it back and check it)."""
        for off in offsets:
            struct.pack_into("<Q", self.data, off + RECORD_HEADER + 8, ts)

    def close_producer(self) -> None:
        self.closed = True

    def open_producer(self) -> None:
        """A producer re-attaches: next sequence number = written + dropped."""
        self.closed = False
        self.seq = self.written + self.dropped

    # -- consumer ----------------------------------------------------------------
    def drain(self, max_records: Optional[int] = None, commit: bool = True) -> Drained:
        """One read: the rows delivered. Raises ClosedModel when the C consumer
        must report "closed" (nothing delivered, nothing pending, producer closed)."""
        d = parse(self.data, self.capacity, self.types, self.read_pos, self.producer_pos, max_records)
        assert d.error is None, d.error            # the model's producer writes valid records
        acc = SeqState(self.next_seq, self.gaps, self.seq_started)
        acc.account(d.seqs)
        self.next_seq, self.gaps, self.seq_started = acc.next_seq, acc.gaps, acc.started
        self.read_pos = d.pos
        self.records_read += len(d.rows)
        if commit:
            self.commit()
        if not d.rows and self.read_pos == self.producer_pos and self.closed:
            # The counters are final once the producer closed: sequence numbers
            # dropped after the last delivered record are lost too.
            end = self.written + self.dropped
            if self.seq_started and end > self.next_seq:
                self.gaps += end - self.next_seq
                self.next_seq = end
            raise ClosedModel()
        return d

    def view(self, max_records: Optional[int] = None):
        """One zero-copy view (csrc/kring_view.c): ("view", tid, rows, start)
        for a run of full-size records of one type from ring position start,
        at most max_records and a quarter of the data area (the first record
        always); ("copy", Drained, state before it) when the first record is
        a short one or nothing is pending (the view is then a drain without
        commit); ("empty",) when max_records is 0. Padding before the run is skipped. Raises ClosedModel as
        drain() does. Nothing is committed."""
        pos, prod = self.read_pos, self.producer_pos
        while pos != prod and (max_records is None or max_records > 0):
            off = pos & self.mask
            (hlen,) = struct.unpack_from("<I", self.data, off)
            length = hlen & LEN_MASK
            sp = span(length)
            if hlen & DISCARD:
                pos = (pos + sp) & U64
                continue
            tid = struct.unpack_from("<H", self.data, off + RECORD_HEADER + 16)[0]
            if length != self.types[tid][0]:
                self.read_pos = pos
                mark = self.snapshot()
                return ("copy", self.drain(max_records, commit=False), mark)
            most = self.capacity // 4 // sp
            if max_records is not None:
                most = min(most, max_records)
            most = max(1, most)
            rows, seqs, start = [], [], pos
            while len(rows) < most and pos != prod:
                off = pos & self.mask
                if rows and off == 0:
                    break                   # the rows are contiguous: never across the end
                if off + sp > self.capacity or struct.unpack_from("<I", self.data, off)[0] != hlen or \
                        struct.unpack_from("<H", self.data, off + RECORD_HEADER + 16)[0] != tid:
                    break
                rows.append(bytes(self.data[off + RECORD_HEADER:off + RECORD_HEADER + length]))
                seqs.append(struct.unpack_from("<Q", self.data, off + RECORD_HEADER)[0])
                pos = (pos + sp) & U64
            acc = SeqState(self.next_seq, self.gaps, self.seq_started)
            acc.account(seqs)
            self.next_seq, self.gaps, self.seq_started = acc.next_seq, acc.gaps, acc.started
            self.read_pos = pos
            self.records_read += len(rows)
            return ("view", tid, rows, start)
        self.read_pos = pos
        if pos == prod:
            mark = self.snapshot()          # nothing there: a drain says whether it is closed
            return ("copy", self.drain(max_records, commit=False), mark)
        return ("empty",)

    def snapshot(self) -> tuple:
        """The consumer's private state (what kring_mark keeps)."""
        return (self.read_pos, self.records_read, self.next_seq, self.gaps, self.seq_started)

    def restore(self, state: tuple) -> None:
        """Back to a snapshot (kring_rewind)."""
        self.read_pos, self.records_read, self.next_seq, self.gaps, self.seq_started = state

    def commit(self) -> None:
        """Publish the read position, but not past a view's rows in use."""
        to = self.read_pos
        if self.hold is not None and (self.hold - self.consumer_pos) & U64 < (to - self.consumer_pos) & U64:
            to = self.hold
        self.consumer_pos = to

    @property
    def pending_bytes(self) -> int:
        return (self.producer_pos - self.read_pos) & U64

    @property
    def lost(self) -> int:
        return max(0, self.gaps)


class ClosedModel(Exception):
    """The model's consumer reports "closed"."""
