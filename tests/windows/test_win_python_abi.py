"""pykring/kernel_windows.py mirrors include/kring/kring_ioctl.h: the ctypes structures,
IOCTL codes and limits are checked against the C header, compiled here for
the host (the header is fixed-width only, so the layout is the same)."""
import ctypes
import shutil
import subprocess
import sys

import pytest

from winharness import INCLUDE

from pykring import errors, kernel_windows as wk

STRUCTS = {"kring_attach_in": wk.AttachIn, "kring_attach_out": wk.AttachOut, "kring_stats_out": wk.StatsOut}
CONSTANTS = {
    "IOCTL_KRING_ATTACH": wk.IOCTL_KRING_ATTACH, "IOCTL_KRING_DETACH": wk.IOCTL_KRING_DETACH,
    "IOCTL_KRING_STATS": wk.IOCTL_KRING_STATS, "KRING_ATTACH_MAP": wk.KRING_ATTACH_MAP,
    "KRING_METHOD_MAP": wk.KRING_METHOD_MAP, "KRING_IOCTL_VERSION": wk.KRING_IOCTL_VERSION,
    "KRING_RING_SIZE_MIN": wk.RING_SIZE_MIN, "KRING_RING_SIZE_MAX": wk.RING_SIZE_MAX,
    "KRING_EVENTS_PROCESS": wk.EVENTS["process"], "KRING_EVENTS_IMAGE": wk.EVENTS["image"],
    "KRING_EVENT_NAME_CHARS": 64,
}


@pytest.fixture(scope="module")
def c_layout(tmp_path_factory):
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("abi")
    lines = ['#include <stdio.h>', '#include <stddef.h>', '#include <kring/kring_ioctl.h>', "int main(void) {"]
    for cname, py in STRUCTS.items():
        lines.append('printf("%s sizeof %%zu\\n", sizeof(struct %s));' % (cname, cname))
        for field, _ in py._fields_:
            lines.append('printf("%s %s %%zu %%zu\\n", offsetof(struct %s, %s), sizeof(((struct %s *)0)->%s));'
                         % (cname, field, cname, field, cname, field))
    for name in CONSTANTS:
        lines.append('printf("const %s %%llu\\n", (unsigned long long)(%s));' % (name, name))
    lines.append("return 0; }")
    src = d / "abi.c"
    src.write_text("\n".join(lines))
    exe = d / "abi"
    r = subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-I" + str(INCLUDE),
                        str(src), "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    out = subprocess.run([str(exe)], capture_output=True, text=True, timeout=30, check=True).stdout
    return [line.split() for line in out.splitlines()]


def test_structures_match_the_header(c_layout):
    sizes = {row[0]: int(row[2]) for row in c_layout if row[1] == "sizeof"}
    fields = {(row[0], row[1]): (int(row[2]), int(row[3])) for row in c_layout if len(row) == 4}
    for cname, py in STRUCTS.items():
        assert ctypes.sizeof(py) == sizes[cname], cname
        for field, _ in py._fields_:
            desc = getattr(py, field)
            assert (desc.offset, desc.size) == fields[(cname, field)], "%s.%s" % (cname, field)


def test_constants_match_the_header(c_layout):
    consts = {row[1]: int(row[2]) for row in c_layout if row[0] == "const"}
    for name, value in CONSTANTS.items():
        assert consts[name] == value, name


def test_event_mask_and_size_checks():
    assert wk.event_mask(("process", "image")) == 3
    assert wk.event_mask("image") == 2
    assert wk.event_mask("process, image") == 3
    for bad in ((), "network", ("process", "nope")):
        with pytest.raises(ValueError):
            wk.event_mask(bad)
    assert wk._check_size(1 << 16) == 1 << 16
    for bad in (1 << 15, (1 << 16) + 8, 1 << 27):
        with pytest.raises(ValueError):
            wk._check_size(bad)


@pytest.mark.skipif(sys.platform == "win32", reason="checks the refusal off Windows")
def test_open_driver_needs_windows():
    with pytest.raises(errors.KringError):
        wk.open_driver()
