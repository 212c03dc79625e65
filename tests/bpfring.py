"""A BPF ring buffer map that a test writes records into (Linux, root).

``RingbufMap(size)`` creates a BPF_MAP_TYPE_RINGBUF map and loads a
seven-instruction socket-filter program that calls bpf_ringbuf_output() with
one 32-byte pykring record: the event header (seq, ts 0, type 1, flags 0)
and one u64 value. ``publish(seq, value)`` runs the program once
(BPF_PROG_TEST_RUN), so the kernel itself commits the record, with its own
wake decision (PROTOCOL.md 9.3). Raw bpf(2) through ctypes: no compiler, no
libbpf, so the test exercises only pykring's side of the ring.
``publish_fd(prog_fd, seq, value)`` does the same from another process that
inherited the program's fd.
"""
import ctypes
import os
import struct

import numpy as np

from pykring import schema

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long

SYS_BPF = 321                   # x86_64
BPF_MAP_CREATE, BPF_PROG_LOAD, BPF_PROG_TEST_RUN = 0, 5, 10
BPF_MAP_TYPE_RINGBUF = 27
BPF_PROG_TYPE_SOCKET_FILTER = 1
BPF_FUNC_ringbuf_output = 130
BPF_PSEUDO_MAP_FD = 1

#: The record the program writes: the event header and one value.
DTYPE = schema.record_dtype(np.dtype([("v", "<u8")]))
TYPE_ID = 1
PAYLOAD = 32


def _bpf(cmd: int, attr: bytes) -> int:
    buf = ctypes.create_string_buffer(attr, 256)
    r = _libc.syscall(SYS_BPF, cmd, buf, ctypes.c_uint(256))
    if r < 0:
        err = ctypes.get_errno()
        raise OSError(err, "bpf(%d): %s" % (cmd, os.strerror(err)))
    return int(r)


def _insn(code, dst=0, src=0, off=0, imm=0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _program(map_fd: int) -> bytes:
    """The record is built on the stack: the header with type 1, then seq and
    the value copied from the packet (after its 14-byte Ethernet header, which
    the test run strips) with bpf_skb_load_bytes()."""
    return b"".join([
        _insn(0xbf, dst=6, src=1),                          # r6 = r1
        _insn(0x7a, dst=10, off=-32, imm=0),                # *(u64 *)(r10 - 32) = 0   seq
        _insn(0x7a, dst=10, off=-24, imm=0),                # *(u64 *)(r10 - 24) = 0   ts
        _insn(0x7a, dst=10, off=-16, imm=TYPE_ID),          # type 1, flags 0, reserved 0
        _insn(0x7a, dst=10, off=-8, imm=0),                 # value
        # bpf_skb_load_bytes(skb, 0, r10 - 32, 8): seq from the packet
        _insn(0xbf, dst=1, src=6), _insn(0xb7, dst=2, imm=0),
        _insn(0xbf, dst=3, src=10), _insn(0x07, dst=3, imm=-32),
        _insn(0xb7, dst=4, imm=8), _insn(0x85, imm=26),
        # bpf_skb_load_bytes(skb, 8, r10 - 8, 8): the value
        _insn(0xbf, dst=1, src=6), _insn(0xb7, dst=2, imm=8),
        _insn(0xbf, dst=3, src=10), _insn(0x07, dst=3, imm=-8),
        _insn(0xb7, dst=4, imm=8), _insn(0x85, imm=26),
        # bpf_ringbuf_output(map, r10 - 32, 32, 0)
        _insn(0x18, dst=1, src=BPF_PSEUDO_MAP_FD, imm=map_fd), _insn(0),
        _insn(0xbf, dst=2, src=10), _insn(0x07, dst=2, imm=-32),
        _insn(0xb7, dst=3, imm=PAYLOAD), _insn(0xb7, dst=4, imm=0),
        _insn(0x85, imm=BPF_FUNC_ringbuf_output),
        _insn(0xb7, dst=0, imm=0), _insn(0x95),
    ])


def publish_fd(prog_fd: int, seq: int, value: int) -> None:
    """Run the program once: the kernel commits one record (seq, value)."""
    data = ctypes.create_string_buffer(b"\0" * 14 + struct.pack("<QQ", seq, value) + b"\0" * 34, 64)
    attr = struct.pack("<IIIIQQII", prog_fd, 0, 64, 0, ctypes.addressof(data), 0, 1, 0)
    _bpf(BPF_PROG_TEST_RUN, attr)


class RingbufMap:
    def __init__(self, size: int = 1 << 16):
        self.size = size
        self.map_fd = _bpf(BPF_MAP_CREATE, struct.pack("<IIIII", BPF_MAP_TYPE_RINGBUF, 0, 0, size, 0))
        insns = _program(self.map_fd)
        lic = ctypes.create_string_buffer(b"GPL")
        code = ctypes.create_string_buffer(insns, len(insns))
        log = ctypes.create_string_buffer(65536)
        attr = struct.pack("<IIQQIIQ", BPF_PROG_TYPE_SOCKET_FILTER, len(insns) // 8, ctypes.addressof(code),
                           ctypes.addressof(lic), 1, len(log), ctypes.addressof(log))
        try:
            self.prog_fd = _bpf(BPF_PROG_LOAD, attr)
        except OSError as e:
            os.close(self.map_fd)
            raise OSError(e.errno, "%s\n%s" % (e.strerror, log.value.decode(errors="replace")))

    def publish(self, seq: int, value: int) -> None:
        publish_fd(self.prog_fd, seq, value)

    def close(self) -> None:
        os.close(self.prog_fd)
        os.close(self.map_fd)
