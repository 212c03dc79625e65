"""The Windows C code builds warning-free: the shared driver interface
header as user-mode C11 and C++11 (host) and C11 (mingw-w64), and the Windows
platform layer and the Wine test programs with mingw-w64 -Wpedantic -Werror.
(The driver itself builds with -Werror in `make -C drv`: test_win_driver_pe.)"""
import shutil
import subprocess

import pytest

from .winharness import CSRC, CSRC_WIN, DRV, HERE, INCLUDE, MINGW_CC

STRICT = ["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I" + str(INCLUDE), "-I" + str(CSRC), "-I" + str(DRV)]
HEADER_USER = '#include <kring/kring_ioctl.h>\n#include "kring_utf8.h"\n' \
              "int main(void) { return (int)sizeof(struct kring_attach_out) - 4296; }\n"


def _cc(cmd):
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and not r.stderr.strip(), " ".join(map(str, cmd)) + "\n" + r.stderr


@pytest.mark.parametrize("compiler, std, suffix", [
    ("gcc", "-std=c11", ".c"), ("g++", "-std=c++11", ".cpp"), (MINGW_CC, "-std=c11", ".c"),
])
def test_interface_header_in_user_mode(tmp_path, compiler, std, suffix):
    if shutil.which(compiler) is None:
        pytest.skip("needs %s" % compiler)
    src = tmp_path / ("hdr" + suffix)
    src.write_text(HEADER_USER)
    _cc([compiler, std, *STRICT, "-c", src, "-o", tmp_path / "hdr.o"])


@pytest.mark.parametrize("program, extra", [("kring_client.c", CSRC_WIN), ("shm_ring.c", CSRC_WIN),
                                            ("kring_event_probe.c", ["-municode"]), ("kring_facts_probe.c", [])])
def test_wine_programs_build_with_mingw_pedantic(tmp_path, program, extra):
    if shutil.which(MINGW_CC) is None:
        pytest.skip("needs %s" % MINGW_CC)
    _cc([MINGW_CC, "-std=c11", "-O2", *STRICT, HERE / program, *extra, "-o", tmp_path / "p.exe", "-ladvapi32"])
