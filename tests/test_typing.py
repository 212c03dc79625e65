"""The package ships py.typed: mypy must find no errors in it (settings in
pyproject.toml's [tool.mypy])."""
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_mypy_clean():
    pytest.importorskip("mypy", reason="mypy is not installed (pip install .[test])")
    proc = subprocess.run([sys.executable, "-m", "mypy", "pykring"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)
    assert proc.returncode == 0, "mypy pykring exited %d:\n%s" % (proc.returncode, proc.stdout)
