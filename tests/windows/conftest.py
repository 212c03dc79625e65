"""Fixtures for the Windows tests: the cross-built driver, a build
directory for mingw-w64 programs, and one Wine session shared by the Wine
tests (helpers in winharness.py)."""
from pathlib import Path

import pytest

from .winharness import DRV, MINGW_CC, need, run, wine_session


@pytest.fixture(scope="session")
def built_drivers():
    """`make -C drv`: drv/build/kring.sys (release) and kring_test.sys."""
    need("clang", MINGW_CC, "make")
    r = run(["make", "-C", DRV], timeout=600)
    assert r.returncode == 0, "make -C drv failed:\n%s\n%s" % (r.stdout[-4000:], r.stderr[-4000:])
    assert "warning" not in (r.stdout + r.stderr).lower(), r.stdout + r.stderr
    release, test = DRV / "build" / "kring.sys", DRV / "build" / "kring_test.sys"
    assert release.is_file() and test.is_file()
    return {"release": release, "test": test}


@pytest.fixture(scope="session")
def win_build_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("winbuild")


@pytest.fixture(scope="session")
def wine():
    yield from wine_session("kring-wine-")
