"""Sanitizer builds of pykring's C extension, and child interpreters that run them.

``build(kind, directory)`` compiles pykring._build's extension with
``-fsanitize=address,undefined`` (kind "asan") or ``-fsanitize=thread``
("tsan") in `directory`: cffi compiles relative to the build directory, so the
builder and the C sources are copied there and nothing is written into the
source tree. ``run(build, script, args)`` runs a Python file in a child
interpreter with the sanitizer runtime preloaded (CPython itself is not
instrumented) and the sanitized extension standing in for ``pykring._kring``:
``import pykring`` in the child gives the repository's package on top of the
sanitized C code. The child's own subprocesses start without the runtime.

A sanitizer report fails the run: the runtimes stop at the first report
(halt_on_error=1) and ``check(result)`` also looks for the report headers in
stderr, in case a report came from a path that does not stop the process.
"""
import os
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))

#: kind -> (-fsanitize= value, the runtimes to preload, in this order).
KINDS = {
    "asan": ("address,undefined", ("libasan.so", "libubsan.so")),
    "tsan": ("thread", ("libtsan.so",)),
}

#: What the runtimes print at the head of a report: ASan's errors (SEGV included), UBSan's
#: "file:line:col: runtime error: ...", TSan's races and fatal errors, and the line each
#: prints when a signal kills the process.
REPORT_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "WARNING: ThreadSanitizer",
                  "ERROR: ThreadSanitizer", "FATAL: ThreadSanitizer", "Sanitizer:DEADLYSIGNAL")

#: A symbol that only an instrumented object refers to, by kind.
INSTRUMENTED = {"asan": b"__asan_report_", "tsan": b"__tsan_func_entry"}

#: TSan's suppressions, for reports that are not about our code (see the file).
TSAN_SUPPRESSIONS = os.path.join(HERE, "tsan.supp")


def _options(kind: str) -> Dict[str, str]:
    """The sanitizer environment of a child: stop at the first report, with a stack.
    Leak checking is off: CPython keeps much of its memory until exit by design."""
    if kind == "asan":
        return {"ASAN_OPTIONS": "halt_on_error=1:detect_leaks=0",
                "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1"}
    return {"TSAN_OPTIONS": "halt_on_error=1:second_deadlock_stack=1:suppressions=" + TSAN_SUPPRESSIONS}


class Unavailable(Exception):
    """The sanitizer cannot run here (no runtime library); the message says why."""


def runtime(kind: str) -> List[str]:
    """Paths of the runtime libraries of `kind` to LD_PRELOAD, as gcc knows them.
    Raises Unavailable when they are missing (or not on Linux)."""
    if not sys.platform.startswith("linux"):
        raise Unavailable("the sanitizer builds are Linux-only")
    if shutil.which("gcc") is None:
        raise Unavailable("gcc is needed for the sanitizer builds")
    paths = []
    for name in KINDS[kind][1]:
        path = subprocess.run(["gcc", "-print-file-name=" + name], capture_output=True,
                              text=True).stdout.strip()
        # gcc prints the bare name back when it has no such file.
        if not os.path.isabs(path) or not os.path.exists(path):
            raise Unavailable("gcc has no %s (the Debian package of gcc's %s runtime)" % (name, kind))
        paths.append(os.path.realpath(path))
    return paths


#: Run in the child before the script: loads the sanitized extension as pykring._kring
#: (the name it was built under, so its PyInit__kring matches), then runs the script.
BOOT = textwrap.dedent('''\
    import importlib.util
    import os
    import runpy
    import sys

    so, script = sys.argv[1], sys.argv[2]
    spec = importlib.util.spec_from_file_location("pykring._kring", so)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    sys.modules["pykring._kring"] = mod
    import pykring
    from pykring import _lib
    assert _lib.lib is mod.lib, "pykring loaded another extension than " + so
    # Processes the script starts are plain ones.
    os.environ.pop("LD_PRELOAD", None)
    # As `python script.py` would: the script's directory first on the path.
    sys.argv = sys.argv[2:]
    sys.path[0] = os.path.dirname(os.path.abspath(script))
    runpy.run_path(script, run_name="__main__")
''')


@dataclass(frozen=True)
class Build:
    kind: str              #: "asan" or "tsan"
    directory: str         #: the temporary build directory
    extension: str         #: path of the sanitized pykring._kring
    preload: List[str]     #: runtime libraries to LD_PRELOAD
    seconds: float         #: how long the build took (reported, never asserted)


def build_extension(directory: str, marker: bytes, timeout: float = 900, **builder) -> str:
    """Build pykring._build's extension in `directory` (made if missing) with
    make_ffibuilder(**builder), from copies of the builder and the C sources
    (nothing is written into the source tree), check that it contains
    `marker`, write boot.py beside it, and return the module's path."""
    os.makedirs(directory, exist_ok=True)
    for sub in ("csrc", "include"):
        shutil.copytree(os.path.join(ROOT, sub), os.path.join(directory, sub), dirs_exist_ok=True)
    os.makedirs(os.path.join(directory, "pykring"), exist_ok=True)
    for f in ("_build.py", "_version.py"):
        shutil.copy(os.path.join(ROOT, "pykring", f), os.path.join(directory, "pykring", f))
    # By path (importing pykring._build would import pykring, which needs an extension).
    code = textwrap.dedent('''
        import importlib.util
        spec = importlib.util.spec_from_file_location("kring_build", "pykring/_build.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(mod.make_ffibuilder(module="pykring._kring", **%r).compile(tmpdir="."))
    ''' % (builder,))
    r = subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, "extension build %r failed:\n%s\n%s" % (builder, r.stdout[-2000:], r.stderr[-4000:])
    extension = os.path.join(directory, r.stdout.strip().splitlines()[-1])
    assert os.path.exists(extension), r.stdout
    with open(extension, "rb") as f:
        assert marker in f.read(), "%s lacks %r: not built as asked (%r)" % (extension, marker, builder)
    with open(os.path.join(directory, "boot.py"), "w") as f:
        f.write(BOOT)
    return extension


def build(kind: str, directory: str, timeout: float = 900) -> Build:
    """Build the extension with the sanitizer `kind` in `directory` (made if missing).
    Raises Unavailable when the runtime is missing; a failed build is an AssertionError."""
    preload = runtime(kind)
    start = time.monotonic()
    extension = build_extension(directory, INSTRUMENTED[kind], timeout, sanitize=KINDS[kind][0], werror=False)
    return Build(kind, directory, extension, preload, time.monotonic() - start)


def environment(b: Build, extra: Optional[Dict[str, str]] = None) -> Dict[str, str]:
    env = dict(os.environ)
    env.update(_options(b.kind))
    env.update(LD_PRELOAD=" ".join(b.preload),
               # Python objects from malloc, so the sanitizers see each one
               # (pymalloc's arenas hide overflows and reuse between threads).
               PYTHONMALLOC="malloc",
               PYTHONPATH=os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))
    env.update(extra or {})
    return env


def run(b: Build, script: str, args: Sequence[str] = (), timeout: float = 600,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run the Python file `script` with `args` under the sanitizer of `b`
    (`env`: variables to add or override, e.g. ASAN_OPTIONS). The result has
    stdout and stderr as text."""
    cmd = [sys.executable, os.path.join(b.directory, "boot.py"), b.extension, script, *args]
    return subprocess.run(cmd, cwd=b.directory, env=environment(b, env), capture_output=True,
                          text=True, timeout=timeout)


def reports(result: subprocess.CompletedProcess) -> List[str]:
    """The sanitizer report headers in a child's stderr."""
    return [line for line in result.stderr.splitlines() if any(m in line for m in REPORT_MARKERS)]


def check(result: subprocess.CompletedProcess) -> None:
    """Assert that a child exited 0 with no sanitizer report; the message has its stderr."""
    tail = "exit status %d\n--- stderr (tail) ---\n%s\n--- stdout (tail) ---\n%s" % (
        result.returncode, result.stderr[-12000:], result.stdout[-3000:])
    assert not reports(result), "sanitizer report: " + tail
    assert result.returncode == 0, tail
