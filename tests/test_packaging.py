"""The wheel: tagged abi3 from the lowest supported Python, carrying the
CO-RE eBPF object and the license files, with license metadata that agrees
with the eBPF program's own license string and the project's URLs;
installed into a clean virtual environment on a PATH without clang,
pykring.kernel() works (as root). A build without clang says, in a banner,
that kernel events will be unavailable: in the build log, and on the
terminal of a plain ``pip install .`` (which hides the build's output);
pykring.kernel() then names the Debian packages and the command that
rebuilds it, and that command works. The sdist carries every source the
build needs: a wheel built from it offline works."""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: A program for an installed pykring, as root: the kernel ring sees a process start.
KERNEL_SEES_A_PROCESS = ("import subprocess, pykring\n"
                         "with pykring.kernel(events='process') as ring:\n"
                         "    p = subprocess.Popen(['/bin/true']); p.wait()\n"
                         "    seen = set()\n"
                         "    while p.pid not in seen:\n"
                         "        b = ring.read_batch(timeout=30)\n"
                         "        assert b.count\n"
                         "        seen.update(b['process_start']['pid'].tolist())\n")
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
    base = "https://github.com/pykring/pykring"
    urls = dict(re.findall(r"^Project-URL: ([^,]+), (.*)$", meta, re.M))
    assert urls == {"Homepage": base, "Documentation": base + "#readme", "Source": base,
                    "Issues": base + "/issues", "Protocol": base + "/blob/main/docs/PROTOCOL.md",
                    "Driver": base + "/blob/main/docs/DRIVER.md"}, urls
    for label in ("Protocol", "Driver"):
        assert (ROOT / urls[label][len(base + "/blob/main/"):]).is_file(), urls[label]


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
    code = ("import shutil\n"
            "assert shutil.which('clang') is None\n" + KERNEL_SEES_A_PROCESS +
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


def test_plain_pip_wheel_without_clang_shows_the_warning(tmp_path):
    # pip forwards the Python warnings of a build backend's hooks (through
    # pyproject_hooks) and shows them for a local directory without -v.
    from pip._vendor import pyproject_hooks

    if not hasattr(pyproject_hooks, "BuildBackendWarning"):
        pytest.skip("this pip (%s) does not forward build backend warnings" % pip_version())
    env = dict(os.environ)
    for name in ("CLANG", "KRING_BPF_REQUIRED", "KRING_WERROR"):
        env.pop(name, None)
    env["PATH"] = _path_without_clang(tmp_path)
    r = _pip("wheel", ".", "--no-deps", "-w", str(tmp_path / "w"), env=env)
    assert r.returncode == 0, r.stderr[-4000:]
    text = r.stdout + r.stderr
    assert "Running command" not in text            # not verbose: the build's own output is hidden
    assert ("BuildBackendWarning: pykring: kernel events will be unavailable: not building the eBPF "
            "object (missing: clang)") in text, text[-4000:]


def pip_version() -> str:
    import pip

    return pip.__version__


def _clean_venv(tmp_path: Path) -> str:
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    return str(env_dir / "bin" / "python")


def _pip_env(tmp_path: Path, path: str) -> dict:
    """A user's environment: this machine's pip settings (index, find-links),
    a fresh HOME (no pip cache), and `path`."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    env.update(PATH=path, HOME=str(tmp_path / "home"), TERM="dumb", LANG="C.UTF-8")
    return env


def _on_a_terminal(command: str, env: dict, tmp_path: Path) -> str:
    """What a user at a terminal sees of `command`: it runs on a
    pseudo-terminal (util-linux script), whose output this returns."""
    script = shutil.which("script")
    if script is None:
        pytest.skip("util-linux 'script' is missing (apt-get install bsdutils)")
    log = tmp_path / "terminal.txt"
    r = subprocess.run([script, "-qec", command, str(log)], env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, timeout=900)
    seen = log.read_bytes().decode(errors="replace")
    assert r.returncode == 0, seen[-4000:]
    return seen


def test_plain_pip_install_without_clang_warns_on_the_terminal_and_kernel_says_how_to_rebuild(tmp_path):
    no_clang = _path_without_clang(tmp_path)
    env = _pip_env(tmp_path, no_clang)
    py = _clean_venv(tmp_path)
    seen = _on_a_terminal("%s -m pip install %s" % (shlex.quote(py), shlex.quote(str(ROOT))), env, tmp_path)
    assert "Successfully installed" in seen and "pykring-" in seen, seen[-4000:]
    # pip hid the build's output (no -v): the banner reached the terminal itself.
    assert "Running command" not in seen
    banner = re.search(r"\*{78}\s+WARNING \(pykring\): (.*?)\s+\*{78}", seen, re.S)
    assert banner, seen[-4000:]
    text = " ".join(banner.group(1).split())
    assert text.startswith("kernel events will be unavailable: not building the eBPF object (missing: clang)"), text
    assert "apt-get install clang llvm libbpf-dev bpftool libbpf1" in text, text
    assert "--force-reinstall --no-deps --no-cache-dir" in text, text

    # The installed package says the same, with the exact command, when asked for kernel events.
    code = ("import pykring\n"
            "try:\n"
            "    pykring.kernel(events='process')\n"
            "except pykring.KringError as exc:\n"
            "    print(exc)\n"
            "else:\n"
            "    raise SystemExit('kernel() worked without its eBPF object')\n")
    r = subprocess.run([py, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0, r.stdout + r.stderr
    msg = r.stdout.strip()
    assert "eBPF object of the Linux kernel event source is missing" in msg, msg
    assert "apt-get install clang llvm libbpf-dev bpftool libbpf1" in msg, msg
    command = msg.rsplit("then rebuild pykring: ", 1)[1]
    assert command == "%s -m pip install --force-reinstall --no-deps --no-cache-dir %s" % (py, ROOT), command

    # That command, once clang is there, gives kernel events.
    if os.geteuid() != 0:
        pytest.skip("pykring.kernel() needs root")
    env["PATH"] = os.environ["PATH"]
    r = subprocess.run(shlex.split(command), env=env, capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert r.returncode == 0, r.stderr[-4000:]
    code = KERNEL_SEES_A_PROCESS + "print('kernel ok')\n"
    r = subprocess.run([py, "-c", code], env=env, capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0 and "kernel ok" in r.stdout, r.stderr[-4000:]


#: What the build reads from the source tree: the sdist must carry all of it.
BUILD_INPUTS = ("include", "csrc", "LICENSES", "pykring")
BUILD_FILES = ("setup.py", "pyproject.toml", "MANIFEST.in", "README.md", "LICENSE")


def _build_inputs():
    out = set(BUILD_FILES)
    for top in BUILD_INPUTS:
        for dirpath, dirnames, filenames in os.walk(ROOT / top):
            dirnames[:] = [d for d in dirnames if d not in ("__pycache__", "bpf")] if top == "pykring" else dirnames
            for name in filenames:
                rel = os.path.relpath(os.path.join(dirpath, name), ROOT)
                if top == "pykring" and not (name.endswith(".py") or name == "py.typed"):
                    continue        # the build's own outputs (_kring.c, the extension)
                out.add(rel.replace(os.sep, "/"))
    return out


def test_a_wheel_built_offline_from_the_sdist_works(tmp_path):
    dist = tmp_path / "dist"
    r = subprocess.run([sys.executable, "-m", "build", "--sdist", "-o", str(dist), str(ROOT)],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    (sdist,) = dist.glob("pykring-*.tar.gz")
    with tarfile.open(sdist) as tar:
        top = tar.getnames()[0].split("/")[0]
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
        if hasattr(tarfile, "data_filter"):
            tar.extractall(tmp_path / "src", filter="data")
        else:
            tar.extractall(tmp_path / "src")
    missing = _build_inputs() - names
    assert not missing, "not in the sdist: %s" % sorted(missing)
    # The suite needs the repository (run.sh, drv/, a kernel, root): half of
    # it in the sdist would only fail there.
    assert not [n for n in names if n.startswith("tests/")], "the sdist carries part of tests/"

    # Offline: no index, no build isolation (this environment's setuptools
    # and cffi), and as root in a network namespace of its own.
    cmd = [sys.executable, "-m", "pip", "wheel", "--disable-pip-version-check", "--no-build-isolation",
           "--no-index", "--no-deps", "-w", str(tmp_path / "wheel"), str(tmp_path / "src" / top)]
    if os.geteuid() == 0 and shutil.which("unshare"):
        cmd = ["unshare", "--net"] + cmd
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
    whl = _our_wheel(tmp_path / "wheel")
    with zipfile.ZipFile(whl) as z:
        wheel_names = z.namelist()
        z.extractall(tmp_path / "site")
    assert [n for n in wheel_names if n.startswith("pykring/_kring.") and n.endswith(".abi3.so")]
    assert "pykring/py.typed" in wheel_names
    if sys.platform.startswith("linux"):
        assert "pykring/bpf/kring_events.bpf.o" in wheel_names

    # The wheel's pykring, not this checkout's: a ring round trip.
    code = ("import sys; sys.path.insert(0, %r)\n"
            "import numpy as np, pykring\n"
            "assert pykring.__file__.startswith(%r), pykring.__file__\n"
            "name = 'sdist-check-%%d' %% __import__('os').getpid()\n"
            "with pykring.create(name, 1 << 16, np.dtype([('x', '<u4')])) as r, pykring.Producer(name) as p:\n"
            "    p.write([(1,), (2,)])\n"
            "    assert r.read()['x'].tolist() == [1, 2]\n"
            "print('ok')\n") % (str(tmp_path / "site"), str(tmp_path / "site"))
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0 and "ok" in r.stdout, r.stderr[-4000:]
