"""The wheel: tagged abi3 from the lowest supported Python, carrying the
CO-RE eBPF object and the license files, with license metadata that agrees
with the eBPF program's own license string; installed into a clean virtual
environment on a PATH without clang, pykring.kernel() works (as root). A
build without clang says, in a banner, that kernel events will be
unavailable."""
import os
import re
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def _pip(*args, env=None, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "pip", "--disable-pip-version-check", *args],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=900)


def _path_without_clang(tmp: Path) -> str:
    """A PATH of links to every tool on this PATH except clang."""
    bin_dir = tmp / "bin-no-clang"
    bin_dir.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not os.path.isdir(d):
            continue
        for name in os.listdir(d):
            if name.startswith("clang") or (bin_dir / name).exists():
                continue
            os.symlink(os.path.join(d, name), bin_dir / name)
    return str(bin_dir)


@pytest.fixture(scope="module")
def wheel_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheels")
    r = _pip("wheel", ".", "-w", str(out))
    assert r.returncode == 0, r.stderr[-4000:]
    return out


def _our_wheel(d: Path) -> Path:
    (whl,) = [p for p in d.iterdir() if p.name.startswith("pykring-")]
    return whl


def test_wheel_is_abi3_and_carries_the_ebpf_object_and_licenses(wheel_dir):
    whl = _our_wheel(wheel_dir)
    assert whl.name.endswith("-cp39-abi3-linux_%s.whl" % os.uname().machine), whl.name
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta = z.read([n for n in names if n.endswith(".dist-info/METADATA")][0]).decode()
        tag = z.read([n for n in names if n.endswith(".dist-info/WHEEL")][0]).decode()
    assert "Tag: cp39-abi3-linux_%s" % os.uname().machine in tag
    assert "pykring/bpf/kring_events.bpf.o" in names
    assert [n for n in names if n.startswith("pykring/_kring.") and n.endswith(".abi3.so")]
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert any(n.endswith("licenses/LICENSES/GPL-2.0-only.txt") for n in names)
    expr = re.search(r"^License-Expression: (.*)$", meta, re.M).group(1)
    # The kernel reads the program's license string; "Dual MIT/GPL" is MIT or GPL-2.0.
    src = (ROOT / "csrc" / "bpf" / "kring_events.bpf.c").read_text()
    declared = re.search(r'SEC\("license"\)\s*=\s*"([^"]*)"', src).group(1)
    assert {"Dual MIT/GPL": "MIT OR GPL-2.0-only"}[declared] in expr
    assert "Classifier: Typing :: Typed" in meta and "Requires-Python: >=3.9" in meta
    assert 'Provides-Extra: arrow' in meta and 'Provides-Extra: pandas' in meta


def test_wheel_in_a_clean_venv_without_clang_gives_kernel_events(wheel_dir, tmp_path):
    if os.geteuid() != 0:
        pytest.skip("pykring.kernel() needs root")
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = str(env_dir / "bin" / "python")
    path = _path_without_clang(tmp_path)
    env = {"PATH": path, "HOME": str(tmp_path)}
    r = subprocess.run([py, "-m", "pip", "install", "-q", "--no-index", "--find-links", str(wheel_dir),
                        "pykring"], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-4000:]
    code = ("import shutil, subprocess, pykring\n"
            "assert shutil.which('clang') is None\n"
            "with pykring.kernel(events='process') as ring:\n"
            "    p = subprocess.Popen(['/bin/true']); p.wait()\n"
            "    seen = set()\n"
            "    while p.pid not in seen:\n"
            "        b = ring.read_batch(timeout=30)\n"
            "        assert b.count\n"
            "        seen.update(b['process_start']['pid'].tolist())\n"
            "print('kernel ok', pykring.__file__)\n")
    r = subprocess.run([py, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-4000:]
    assert "kernel ok" in r.stdout and str(env_dir) in r.stdout


def test_build_without_clang_warns_in_a_banner(tmp_path):
    env = dict(os.environ)
    env.pop("CLANG", None)
    env.pop("KRING_BPF_REQUIRED", None)
    env.pop("KRING_WERROR", None)
    env["PATH"] = _path_without_clang(tmp_path)
    out = tmp_path / "w"
    r = _pip("wheel", ".", "--no-deps", "-v", "-w", str(out), env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    text = r.stdout + r.stderr
    assert "WARNING (pykring): kernel events will be unavailable" in text
    assert "missing: clang" in text
    with zipfile.ZipFile(_our_wheel(out)) as z:
        assert "pykring/bpf/kring_events.bpf.o" not in z.namelist()
