"""The C sources build warning-free: natively with -Wall -Wextra -Wpedantic
-Werror (C11 and C99 headers), and the Windows files with mingw-w64. Each
platform's file list links into a library with no undefined symbol: the
platform layer needs no stubs of the other platform's entry points."""
import os
import shutil
import subprocess

import pytest

from pykring._build import COMMON_SOURCES, PLATFORM_SOURCES

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CSRC = os.path.join(ROOT, "csrc")
INCLUDE = os.path.join(ROOT, "include")
FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Wpedantic", "-Werror", "-I" + INCLUDE, "-I" + CSRC]
#: As pykring/_build.py compiles them per platform.
PORTABLE = COMMON_SOURCES
LINUX = PORTABLE + PLATFORM_SOURCES["linux"]
WINDOWS = PORTABLE + PLATFORM_SOURCES["win32"]


def _compile(cc, files, tmp_path, extra=()):
    for f in files:
        out = tmp_path / (f + ".o")
        r = subprocess.run([cc, *FLAGS, *extra, "-c", os.path.join(CSRC, f), "-o", str(out)],
                           capture_output=True, text=True)
        assert r.returncode == 0 and not r.stderr, "%s %s:\n%s" % (cc, f, r.stderr)
        assert out.stat().st_size > 0


def _link(cc, files, out, extra=()):
    r = subprocess.run([cc, *FLAGS, "-shared", *extra, *(os.path.join(CSRC, f) for f in files),
                        "-o", str(out)], capture_output=True, text=True)
    assert r.returncode == 0 and not r.stderr, "%s -shared:\n%s" % (cc, r.stderr)


def _mingw():
    cc = shutil.which("x86_64-w64-mingw32-gcc")
    if cc is None:
        pytest.skip("x86_64-w64-mingw32-gcc not installed (Debian: gcc-mingw-w64-x86-64)")
    return cc


def test_linux_sources_are_warning_free(tmp_path):
    _compile("gcc", LINUX, tmp_path)


def test_linux_library_links_without_undefined_symbols(tmp_path):
    _link("gcc", LINUX, tmp_path / "libkring.so", ["-fPIC", "-Wl,--no-undefined"])


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
    _compile(_mingw(), WINDOWS, tmp_path)


def test_windows_library_links_with_mingw(tmp_path):
    # A PE DLL link fails on any undefined symbol.
    _link(_mingw(), WINDOWS, tmp_path / "kring.dll")
