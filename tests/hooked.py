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
import subprocess
import sys
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
    return Build(directory, sanitizer.build_extension(directory, HOOK_SYMBOL, timeout, werror=True, test_hooks=True))


def run(b: Build, script: str, args: Sequence[str] = (), timeout: float = 300,
        env: Optional[Dict[str, str]] = None) -> subprocess.CompletedProcess:
    """Run the Python file `script` with `args` on the hooked extension; text output."""
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p])
    e.update(env or {})
    cmd = [sys.executable, os.path.join(b.directory, "boot.py"), b.extension, script, *args]
    return subprocess.run(cmd, cwd=b.directory, env=e, capture_output=True, text=True, timeout=timeout)
