"""The kernel event records: C structs == schema == numpy dtypes, and
variable-length tails drained with zero fill."""
import os

import numpy as np
import pytest

import pykring
from pykring import events
from pykring._lib import ffi, lib

from tests.ringutil import shm, unique_ring_name

STRUCTS = {
    "process_start": ("struct kring_process_start", lib.KRING_TYPE_PROCESS_START),
    "process_exit": ("struct kring_process_exit", lib.KRING_TYPE_PROCESS_EXIT),
    "image_load": ("struct kring_image_load", lib.KRING_TYPE_IMAGE_LOAD),
}


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_dtype_matches_c_struct(name):
    cname, tid = STRUCTS[name]
    dt = events.DTYPES[name]
    assert dt.itemsize == ffi.sizeof(cname)
    c_fields = {f for f, _ in ffi.typeof(cname).fields} - {"h", "reserved"}
    assert set(dt.names) - {"seq", "ts", "type", "flags"} == c_fields
    for field in c_fields:
        fdt, off = dt.fields[field][:2]
        assert off == ffi.offsetof(cname, field), field
        ctype = ffi.typeof(cname).fields[[f for f, _ in ffi.typeof(cname).fields].index(field)][1].type
        assert fdt.itemsize == ffi.sizeof(ctype), field
    assert [t for t in events.EVENT_TYPES if t[1] == name][0][0] == tid


def test_known_sizes_and_ids():
    assert [(t[0], t[1], t[2].itemsize) for t in events.EVENT_TYPES] == [
        (1, "process_start", 1608), (2, "process_exit", 64), (3, "image_load", 576)]
    meta = events.event_meta(1 << 20)
    assert [int(meta.types[i].min_size) for i in range(3)] == [
        ffi.offsetof("struct kring_process_start", "cmdline"), 64,
        ffi.offsetof("struct kring_image_load", "path")]
    assert lib.kring_meta_check(meta, 0) == lib.KRING_OK


def test_variable_length_tail_is_zero_filled():
    path = shm(unique_ring_name("test-events"))
    assert lib.kring_shm_create(path.encode(), events.event_meta(1 << 16), 0o600) == lib.KRING_OK
    try:
        ring = pykring.attach(path)
        p = ffi.new("struct kring_producer *")
        assert lib.kring_producer_open(p, path.encode(), lib.KRING_DROP) == lib.KRING_OK
        body = np.zeros(1, dtype=events.DTYPES["process_start"])
        body["pid"] = 42
        body["path"] = b"/usr/bin/true"
        body["cmdline"] = b"true\0--version"
        raw = body.tobytes()[24:]
        # Write the record up to the end of cmdline's text: the tail is omitted.
        length = ffi.offsetof("struct kring_process_start", "cmdline") - 24 + len(b"true\0--version")
        # Dirty the ring first so a missing zero fill would show.
        junk = np.frombuffer(b"\xff" * len(raw), dtype=np.uint8)
        done = ffi.new("uint64_t *")
        lens = ffi.new("uint32_t[]", [length])
        assert lib.kring_write(p, lib.KRING_TYPE_PROCESS_START, ffi.from_buffer(junk), 0, len(raw),
                               ffi.NULL, 1, 0, 0, done) == lib.KRING_OK
        assert lib.kring_write(p, lib.KRING_TYPE_PROCESS_START, ffi.from_buffer(raw), 0, 0,
                               lens, 1, lib.KRING_EV_TRUNCATED, 0, done) == lib.KRING_OK
        batch = ring.read_batch()
        recs = batch["process_start"]
        assert len(recs) == 2 and batch.count == 2
        rec = recs[1]
        assert rec["pid"] == 42 and rec["path"] == b"/usr/bin/true"
        assert rec["cmdline"] == b"true\0--version"
        assert rec["flags"] == lib.KRING_EV_TRUNCATED and rec["type"] == 1
        tail = recs[1:2].view(np.uint8)[24 + length:]
        assert tail.size == 1608 - 24 - length and not tail.any()
        lib.kring_producer_close(p, 1)
        ring.close()
    finally:
        os.unlink(path)


def test_short_record_of_fixed_type_is_rejected_by_the_producer():
    path = shm(unique_ring_name("test-events"))
    assert lib.kring_shm_create(path.encode(), events.event_meta(1 << 16), 0o600) == lib.KRING_OK
    try:
        p = ffi.new("struct kring_producer *")
        assert lib.kring_producer_open(p, path.encode(), lib.KRING_DROP) == lib.KRING_OK
        done = ffi.new("uint64_t *")
        buf = bytes(64)
        # process_exit is fixed-size: 64 bytes, so a 30-byte body is invalid.
        assert lib.kring_write(p, lib.KRING_TYPE_PROCESS_EXIT, buf, 0, 30, ffi.NULL, 1, 0, 0,
                               done) == lib.KRING_E_INVAL
        # An unknown type is invalid too.
        assert lib.kring_write(p, 9, buf, 0, 8, ffi.NULL, 1, 0, 0, done) == lib.KRING_E_INVAL
        lib.kring_producer_close(p, 1)
    finally:
        os.unlink(path)
