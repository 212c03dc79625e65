"""The C sources build warning-free: natively with -Wall -Wextra -Wpedantic
-Werror (C11 and C99 headers), and the Windows files with mingw-w64."""
import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
INCLUDE = os.path.join(ROOT, "include")
FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I" + INCLUDE, "-I" + CSRC, "-c"]
PORTABLE = ["kring_consumer.c", "kring_producer.c", "kring_meta.c", "kring_events.c"]


def _compile(cc, files, tmp_path, extra=()):
    for f in files:
        out = tmp_path / (f + ".o")
        r = subprocess.run([cc, *FLAGS, *extra, os.path.join(CSRC, f), "-o", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr, "%s %s:\n%s" % (cc, f, r.stderr)
        assert out.stat().st_size > 0


def test_linux_sources_are_warning_free(tmp_path):
    _compile("gcc", PORTABLE + ["kring_linux.c"], tmp_path)


def test_headers_alone_compile_as_c99_and_cxx(tmp_path):
    src = tmp_path / "hdr.c"
    src.write_text('#include <kring/kring.h>\n#include <kring/kring_events.h>\n#include <kring/kring_atomic.h>\n'
                   "int main(void) { return (int)sizeof(struct kring_producer_page) - 4096; }\n")
    r = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-I" + INCLUDE, str(src),
                        "-o", str(tmp_path / "hdr")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert subprocess.run([str(tmp_path / "hdr")]).returncode == 0
    if shutil.which("g++"):
        cpp = tmp_path / "hdr.cpp"
        cpp.write_text(src.read_text())
        r = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-I" + INCLUDE, "-c",
                            str(cpp), "-o", str(tmp_path / "hdr_cpp.o")], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_windows_sources_are_warning_free_with_mingw(tmp_path):
    cc = shutil.which("x86_64-w64-mingw32-gcc")
    if cc is None:
        pytest.skip("x86_64-w64-mingw32-gcc not installed (Debian: gcc-mingw-w64-x86-64)")
    _compile(cc, PORTABLE + ["kring_win.c"], tmp_path)
