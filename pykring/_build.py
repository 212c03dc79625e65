"""cffi builder for pykring._kring (API mode, out of line).

Reads the cdef sections of the ABI headers (the ring, the kernel event
records, the eBPF programs' configuration, the driver's IOCTL interface) and
of the user-mode library header verbatim, and compiles the project's own C
files: Python declares no struct or constant of those headers itself. setup.py runs it
through ``cffi_modules``; tests run it directly to make sanitizer builds.

Environment: KRING_WERROR=1 adds -Werror; KRING_SANITIZE=address,undefined
builds with those sanitizers (load libasan first when importing it).
``make_ffibuilder(test_hooks=True)`` (tests/hooked.py only) compiles the
test hooks of csrc/kring_wait.c in (-DKRING_TEST_HOOKS); the release build
never does.
"""
import os
import re
import sys

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CSRC = os.path.join(ROOT, "csrc")
#: The ABI headers (<kring/...>): the one include path of every C layer.
INCLUDE = os.path.join(ROOT, "include")

COMMON_SOURCES = ["kring_consumer.c", "kring_drain.c", "kring_view.c", "kring_wait.c", "kring_producer.c",
                  "kring_reserve.c", "kring_meta.c", "kring_events.c"]
#: The platform layer, and the attach code of that platform's kernel source.
PLATFORM_SOURCES = {"linux": ["kring_linux.c", "kring_guard.c", "kring_bpf_map.c"], "win32": ["kring_win.c", "kring_driver_map.c"]}
#: A cdef section: "@cdef-begin", an optional platform tag "[linux]" or
#: "[win32]", the rest of the line, then the declarations up to "@cdef-end".
_SECTION = re.compile(r"@cdef-begin(?: \[(\w+)\])?[^\n]*\n(.*?)/\* @cdef-end \*/", re.S)


def _version():
    ns = {}
    with open(os.path.join(HERE, "_version.py")) as f:
        exec(f.read(), ns)
    return ns["__version__"]


def cdef_section(name, plat=None):
    """The text between the @cdef-begin and @cdef-end markers of a header:
    every untagged section, and those tagged with `plat` ("linux", "win32").
    ``kring/<x>.h`` is an ABI header under include/, anything else is in csrc/."""
    path = os.path.join(INCLUDE if name.startswith("kring/") else CSRC, name)
    with open(path) as f:
        text = f.read()
    sections = _SECTION.findall(text)
    if not sections:
        raise RuntimeError("%s has no cdef section" % os.path.relpath(path, ROOT))
    return "".join(body for tag, body in sections if not tag or tag == plat)


def make_ffibuilder(module="pykring._kring", sanitize=None, werror=None, test_hooks=False):
    if werror is None:
        werror = os.environ.get("KRING_WERROR") == "1"
    if sanitize is None:
        sanitize = os.environ.get("KRING_SANITIZE") or None
    plat = "win32" if sys.platform == "win32" else "linux"
    sources = [os.path.relpath(os.path.join(CSRC, s)) for s in COMMON_SOURCES + PLATFORM_SOURCES[plat]]

    ffi = FFI()
    for header in ("kring/kring.h", "kring/kring_events.h", "kring/kring_bpf.h", "kring/kring_ioctl.h"):
        ffi.cdef(cdef_section(header))
    ffi.cdef(cdef_section("kring_user.h", plat))
    # cffi reads integer #defines only: the device path of kring_ioctl.h, a
    # UTF-16 string, is declared here and takes its value from the header.
    ffi.cdef("static const wchar_t *const KRING_USER_PATH;")
    ffi.cdef("const char *kring_pkg_version(void);")
    cflags, ldflags, hooks = [], [], ""
    if test_hooks:
        hooks = ("void kring_test_wait_pause(int point, int notify_fd, int resume_fd);\n"
                 "int kring_test_wait_timeouts(void);\n")
        ffi.cdef(hooks)
        cflags.append("-DKRING_TEST_HOOKS")
    if plat == "linux":
        cflags += ["-std=c11", "-O3", "-Wall", "-Wextra", "-fvisibility=hidden"]
        if werror:
            cflags.append("-Werror")
        if sanitize:
            cflags += ["-fsanitize=" + sanitize, "-fno-omit-frame-pointer", "-g", "-O1"]
            ldflags += ["-fsanitize=" + sanitize]
    ffi.set_source(
        module,
        '#include "kring_user.h"\n#include <kring/kring_events.h>\n'
        '#include <kring/kring_bpf.h>\n#include <kring/kring_ioctl.h>\n'
        'const char *kring_pkg_version(void) { return "%s"; }\n' % _version() + hooks,
        sources=sources,
        include_dirs=[os.path.relpath(INCLUDE), os.path.relpath(CSRC)],
        extra_compile_args=cflags,
        extra_link_args=ldflags,
    )
    return ffi


ffibuilder = make_ffibuilder()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
