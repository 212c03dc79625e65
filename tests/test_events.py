"""The kernel event records: C structs == schema == numpy dtypes, and
variable-length tails drained with zero fill."""
import json
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
    "exec_failed": ("struct kring_exec_failed", lib.KRING_TYPE_EXEC_FAILED),
}


@pytest.mark.parametrize("name", sorted(STRUCTS))
def test_dtype_matches_c_struct(name):
    cname, tid = STRUCTS[name]
    dt = events.DTYPES.get(name) or {n: d for _, n, d in events.linux_event_types(4096)}[name]
    assert dt.itemsize == ffi.sizeof(cname)
    c_fields = {f for f, _ in ffi.typeof(cname).fields} - {"h", "reserved"}
    assert set(dt.names) - {"seq", "ts", "type", "flags"} == c_fields
    for field in c_fields:
        fdt, off = dt.fields[field][:2]
        assert off == ffi.offsetof(cname, field), field
        ctype = ffi.typeof(cname).fields[[f for f, _ in ffi.typeof(cname).fields].index(field)][1].type
        assert fdt.itemsize == ffi.sizeof(ctype), field
    assert [t for t in events.linux_event_types(4096) if t[1] == name][0][0] == tid


def test_known_sizes_and_ids():
    assert [(t[0], t[1], t[2].itemsize) for t in events.EVENT_TYPES] == [
        (1, "process_start", 8456), (2, "process_exit", 64), (3, "image_load", 4168)]
    meta = events.event_meta(1 << 20)
    assert [int(meta.types[i].min_size) for i in range(3)] == [
        ffi.offsetof("struct kring_process_start", "cmdline"), 64,
        ffi.offsetof("struct kring_image_load", "path")] == [4360, 64, 72]
    assert lib.KRING_PATH_BYTES == 4096 and lib.KRING_SID_BYTES == 96
    assert [ffi.offsetof("struct kring_process_start", f) for f in
            ("cwd_len", "parent_path_len", "integrity", "elevation", "user_sid", "path")] == [
        100, 102, 160, 164, 168, 264]
    # A Linux ring: packed process_start (its tail starts at 160, where the Windows token
    # fields would be, and holds path, command line, cwd and the parent's path, the three
    # paths up to 4096 bytes each), process_exit with a path tail.
    linux = {name: dt for _, name, dt in events.linux_event_types(65536)}
    assert linux["process_start"].itemsize == 160 + 3 * 4096 + 65536
    assert {n: d for _, n, d in events.linux_event_types(4096)}["process_start"].itemsize == 16544
    assert linux["process_start"].fields["path"][1] == 160
    assert linux["process_start"].fields["cmdline"][1] == 160 + 4096
    assert not {"integrity", "elevation", "user_sid"} & set(linux["process_start"].names)
    assert linux["process_exit"].itemsize == 80 + 4096
    assert linux["process_exit"].fields["path"][1] == ffi.offsetof("struct kring_process_exit_linux", "path") == 80
    assert linux["exec_failed"].itemsize == ffi.sizeof("struct kring_exec_failed") == 4144
    assert linux["exec_failed"].fields["error"][1] == ffi.offsetof("struct kring_exec_failed", "error")
    assert events.LINUX_MIN_SIZES == {1: 160, 2: 80, 3: 72, 4: 48}
    assert lib.kring_meta_check(meta, 0) == lib.KRING_OK
    # The Linux schema lists more than the 48 fields ABI 1.1 allowed, and checks.
    linux_meta = events.event_meta(1 << 20, linux=True)
    assert int(linux_meta.nfields) == 50 and lib.kring_meta_check(linux_meta, 0) == lib.KRING_OK


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
        assert tail.size == recs.dtype.itemsize - 24 - length and not tail.any()
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
        # process_exit is at least 64 bytes (its path is the tail), so a 30-byte body is invalid.
        assert lib.kring_write(p, lib.KRING_TYPE_PROCESS_EXIT, buf, 0, 30, ffi.NULL, 1, 0, 0,
                               done) == lib.KRING_E_INVAL
        # An unknown type is invalid too.
        assert lib.kring_write(p, 9, buf, 0, 8, ffi.NULL, 1, 0, 0, done) == lib.KRING_E_INVAL
        lib.kring_producer_close(p, 1)
    finally:
        os.unlink(path)


def _packed_start(path: bytes, argv, detail=0, cwd=b"", parent=b""):
    """A Linux (packed) process_start record: cmdline right after path's NUL,
    then cwd and the parent's path, each after the previous NUL."""
    dt = events.linux_event_types(4096)[0][2]
    rec = np.zeros(1, dtype=dt)
    cmd = b"\0".join(argv)
    rec["pid"], rec["detail"] = 7, detail | events.D_PACKED | events.D_EXEC
    rec["path_len"], rec["cmdline_len"] = len(path), len(cmd)
    rec["cwd_len"], rec["parent_path_len"] = len(cwd), len(parent)
    raw = rec.view(np.uint8)
    at = dt.fields["path"][1]
    for s in (path, cmd, cwd, parent):
        raw[at:at + len(s)] = np.frombuffer(s, np.uint8)
        at += len(s) + 1
    return rec


def _dicts(starts):
    return events.event_dicts({"process_start": starts, "process_exit": np.zeros(0, events.DTYPES["process_exit"]),
                               "image_load": np.zeros(0, events.DTYPES["image_load"])})


def test_packed_start_carries_cwd_and_parent_path():
    """cwd and the parent's path follow the command line in a packed record
    (whole paths: 4,095 bytes each beside a 4,095-byte command line fit the
    Linux row), decoded like os.fsdecode, null where there is none; unpacked
    (Windows) rows have neither."""
    path, cwd, parent = b"/bin/\xffx", b"/" + b"c" * 4094, b"/" + b"\xfe" * 4094
    argv = [b"a" * 4000, b"b" * 94]
    rec = _packed_start(path, argv, cwd=cwd, parent=parent)
    assert events.start_strings(rec) == [(path, b"\0".join(argv))]
    assert events.start_context(rec) == [(cwd, parent)]
    e = _dicts(rec)[0]
    assert os.fsencode(e["cwd"]) == cwd and os.fsencode(e["parent_path"]) == parent
    j = json.loads(events.json_line(e))
    assert os.fsencode(j["cwd"]) == cwd and os.fsencode(j["parent_path"]) == parent
    assert j["cwd_truncated"] is False and j["parent_path_truncated"] is False
    cut = _dicts(_packed_start(path, [b"x"], events.D_CWD_TRUNCATED | events.D_PARENT_PATH_TRUNCATED,
                               cwd=b"/tail", parent=b"/p"))[0]
    assert cut["cwd_truncated"] and cut["parent_path_truncated"] and cut["cwd"] == "/tail"
    none = _dicts(_packed_start(path, [b"x"]))[0]
    assert none["cwd"] is None and none["parent_path"] is None
    unpacked = np.zeros(1, events.DTYPES["process_start"])
    unpacked["path"], unpacked["cmdline"], unpacked["path_len"], unpacked["cmdline_len"] = b"/p", b"p", 2, 1
    unpacked["cwd_len"] = 5                             # no packed tail: ignored
    assert events.start_context(unpacked) == [(b"", b"")]
    assert _dicts(unpacked)[0].get("cwd") is None


def test_windows_start_has_the_token_and_a_windows_process_key():
    """A process_start in the shared layout (the Windows driver's) gives the
    token fields and a FILETIME-based exec_id, and none of the Linux identity
    keys, whose zeros would read as root (euid 0)."""
    rec = np.zeros(1, events.DTYPES["process_start"])
    rec["pid"], rec["ppid"], rec["creator_tid"], rec["session_id"] = 4242, 4, 77, 1
    rec["path"], rec["path_len"] = b"C:\\x.exe", 8
    created = 1_700_000_000_123_456_700                  # ns since 1970, a multiple of 100 ns
    rec["start_time"], rec["parent_start_time"] = created, created - 10**9
    rec["user_sid"], rec["elevation"], rec["integrity"] = b"S-1-5-21-1-2-3-1001", 3, 0x2000
    rec["detail"] = events.D_SID_TRUNCATED
    e = _dicts(rec)[0]
    filetime = created // 100 + 116444736000000000       # what GetProcessTimes reports
    assert e["exec_id"] == "win-%d-4242" % filetime
    assert e["parent_exec_id"] == "win-%d-4" % (filetime - 10**7)
    j = json.loads(events.json_line(e))
    assert (j["user_sid"], j["elevation"], j["integrity"], j["sid_truncated"]) == ("S-1-5-21-1-2-3-1001", 3, 0x2000, True)
    assert (j["creator_tid"], j["session_id"], j["exec_id"]) == (77, 1, e["exec_id"])
    assert not {"euid", "gid", "auid", "cgroup", "cwd", "pidns"} & set(j)
    unknown = _dicts(np.zeros(1, events.DTYPES["process_start"]))[0]
    assert unknown["exec_id"] is None and unknown["user_sid"] is None and unknown["integrity"] is None


def test_packed_start_decodes_path_and_argv_as_fsdecode():
    """Paths and argv are str decoded like os.fsdecode: os.fsencode gives the
    exact bytes back, a 0xff byte differs from the literal text \\xff, and
    JSON keeps the difference too."""
    path = b"/tmp/\xffbin/" + b"d" * 700 + b"/payload"
    argv = [b"prog", b"\xff", b"\\xff", b"new\nline", b""]
    rec = _packed_start(path, argv)
    assert events.start_strings(rec) == [(path, b"\0".join(argv))]
    e = events.event_dicts({"process_start": rec, "process_exit": np.zeros(0, events.DTYPES["process_exit"]),
                            "image_load": np.zeros(0, events.DTYPES["image_load"])})[0]
    e["seq"] = 0
    assert os.fsencode(e["path"]) == path and [os.fsencode(a) for a in e["argv"]] == argv
    assert e["argv"][1] != e["argv"][2]
    j = json.loads(events.json_line(e))
    assert [os.fsencode(a) for a in j["argv"]] == argv and os.fsencode(j["path"]) == path
    assert j["memfd"] is False and j["deleted"] is False and j["args_truncated"] is False
    line = events.text_line(e)
    assert "payload" in line


def test_memfd_and_deleted_are_keys_and_marks():
    for bit, key, mark in ((events.D_MEMFD, "memfd", "[memfd]"), (events.D_DELETED, "deleted", "[deleted]")):
        rec = _packed_start(b"memfd:x" if key == "memfd" else b"/tmp/gone", [b"x"], bit)
        e = events.event_dicts({"process_start": rec, "process_exit": np.zeros(0, events.DTYPES["process_exit"]),
                                "image_load": np.zeros(0, events.DTYPES["image_load"])})[0]
        assert e[key] is True and json.loads(events.json_line(e))[key] is True
        assert mark in events.text_line(e)
