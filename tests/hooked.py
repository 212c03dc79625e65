"""The test-hook build of pykring's C extension, and child interpreters that run it.

``build(directory)`` compiles pykring._build's extension with
``-DKRING_TEST_HOOKS`` (``make_ffibuilder(test_hooks=True)``) in `directory`,
the way tests/sanitizer.py builds its variants: the builder and the C sources
are copied there and nothing is written into the source tree. The hooks
(csrc/kring_wait.c) stop the consumer inside the windows of the wake
protocol; the release extension has none of them (test_wake_window.py checks
that). ``run(build, script, args)`` runs a Python file in a child
interpreter in which ``import pykring`` gives the repository's package on top
of the hooked extension (tests/sanitizer.py's BOOT, without a runtime to
preload). Processes the child starts import the release extension.
"""
import os
import shutil
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from typing import Dict, Optional, Sequence

from . import sanitizer

ROOT = sanitizer.ROOT

#: The symbol only a hooked extension has.
HOOK_SYMBOL = b"kring_test_wait_pause"


@dataclass(frozen=True)
class Build:
    directory: str         #: the build directory
    extension: str         #: path of the hooked pykring._kring


def build(directory: str, timeout: float = 900) -> Build:
    os.makedirs(directory, exist_ok=True)
    for sub in ("csrc", "include"):
        shutil.copytree(os.path.join(ROOT, sub), os.path.join(directory, sub), dirs_exist_ok=True)
    os.makedirs(os.path.join(directory, "pykring"), exist_ok=True)
    for f in ("_build.py", "_version.py"):
        shutil.copy(os.path.join(ROOT, "pykring", f), os.path.join(directory, "pykring", f))
    code = textwrap.dedent('''
        import importlib.util
        spec = importlib.util.spec_from_file_location("kring_build", "pykring/_build.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        print(mod.make_ffibuilder(module="pykring._kring", werror=True, test_hooks=True).compile(tmpdir="."))
    ''')
    r = subprocess.run([sys.executable, "-c", code], cwd=directory, capture_output=True, text=True,
                       timeout=timeout)
    assert r.returncode == 0, "hooked build failed:\n%s\n%s" % (r.stdout[-2000:], r.stderr[-4000:])
    extension = os.path.join(directory, r.stdout.strip().splitlines()[-1])
    with open(extension, "rb") as f:
        assert HOOK_SYMBOL in f.read(), "%s has no test hooks" % extension
    with open(os.path.join(directory, "boot.py"), "w") as f:
        f.write(sanitizer.BOOT)
    return Build(directory, extension)


def run(b: Build, script: str, args: Sequence[str] = (), timeout: float = 300,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run the Python file `script` with `args` on the hooked extension; text output."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    e.update(env or {})
    cmd = [sys.executable, os.path.join(b.directory, "boot.py"), b.extension, script, *args]
    return subprocess.run(cmd, cwd=b.directory, env=e, capture_output=True, text=True, timeout=timeout)
