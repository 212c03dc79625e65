"""The package ships py.typed: mypy must find no errors in it (settings in
pyproject.toml's [tool.mypy]), and what it tells a user's type checker must
be what the run time does: ``pykring.kernel()`` is a ``Ring[Batch]``, a ring
of one dtype a ``Ring[np.ndarray]``."""
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

import pykring

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

#: A user's program, checked (never run) by mypy: every assert_type must
#: hold, and every ``type: ignore`` must be needed (--warn-unused-ignores),
#: so a line that should be an error and is not fails the check too.
USER_CODE = '''
from typing import Any

import numpy as np
from typing_extensions import assert_type

import pykring
from pykring import Batch, Ring

kernel = pykring.kernel()
reveal_type(kernel)
assert_type(kernel, Ring[Batch])
for batch in kernel:
    assert_type(batch, Batch)
    starts = batch["process_start"]
    assert_type(starts, np.ndarray)
    print(starts["pid"], batch.count)
assert_type(kernel.read_batch(), Batch)
kernel.read()  # type: ignore[misc]

single = pykring.create("ticks", 1 << 16, np.dtype([("price", "<f8")]))
assert_type(single, Ring[np.ndarray])
for rows in single:
    assert_type(rows, np.ndarray)
    print(rows["price"].sum())
    rows.count  # type: ignore[attr-defined]
assert_type(single.read(), np.ndarray)
assert_type(single.read_batch(), Batch)

by_type = pykring.create("mixed", 1 << 16, {"a": np.dtype([("x", "<u4")]), "b": "<u8"})
assert_type(by_type, Ring[Any])
assert_type(pykring.attach("ticks"), Ring[Any])
declared: Ring[Batch] = pykring.attach("mixed")


async def consume() -> None:
    assert_type(await kernel.aread(), Batch)
    assert_type(await single.aread(), np.ndarray)
    async for b in kernel:
        assert_type(b, Batch)
    async for a in single:
        assert_type(a, np.ndarray)
'''


def _mypy(*args):
    pytest.importorskip("mypy", reason="mypy is not installed (pip install .[test])")
    return subprocess.run([sys.executable, "-m", "mypy", *args], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600)


def test_mypy_clean():
    proc = _mypy("pykring")
    assert proc.returncode == 0, "mypy pykring exited %d:\n%s" % (proc.returncode, proc.stdout)


def test_a_type_checker_knows_what_a_ring_yields(tmp_path):
    user = tmp_path / "user_code.py"
    user.write_text(textwrap.dedent(USER_CODE))
    proc = _mypy("--warn-unused-ignores", str(user))
    assert proc.returncode == 0, "mypy exited %d:\n%s" % (proc.returncode, proc.stdout)
    assert 'Revealed type is "pykring.ring.Ring[pykring.batch.Batch]"' in proc.stdout, proc.stdout


def test_the_run_time_yields_what_the_types_say(ring_name):
    # Ring[...] is subscriptable at run time (annotations without
    # `from __future__ import annotations`), and the same class.
    assert pykring.Ring[pykring.Batch].__origin__ is pykring.Ring
    with pykring.create(ring_name, 1 << 16, np.dtype([("x", "<u4")])) as ring, pykring.Producer(ring_name) as p:
        p.write((7,))
        rows = next(iter(ring))
        assert type(rows) is np.ndarray and rows["x"].tolist() == [7]
    two = {"a": np.dtype([("x", "<u4")]), "b": np.dtype([("y", "<u8")])}
    with pykring.create(ring_name, 1 << 16, two, replace=True) as ring, pykring.Producer(ring_name) as p:
        p.write((7,), type="b")
        batch = next(iter(ring))
        assert isinstance(batch, pykring.Batch) and batch["b"]["y"].tolist() == [7]
