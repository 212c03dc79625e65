"""Helpers of the Windows tests: mingw-w64 builds of the C test programs and
a Wine session (the fixtures in conftest.py use them).

Wine 8 (Debian ``wine64``) is the harness: it loads a .sys as a kernel
service inside winedevice.exe, dispatches IRPs, and runs mingw-built
console programs; docs/DRIVER.md lists what it does not do. Every
subprocess has a timeout, so a hang fails the test instead of stalling it.
"""
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from pykring._build import COMMON_SOURCES, PLATFORM_SOURCES

ROOT = Path(__file__).resolve().parents[2]
DRV = ROOT / "drv"
CSRC = ROOT / "csrc"
INCLUDE = ROOT / "include"
HERE = Path(__file__).resolve().parent
MINGW_CC = "x86_64-w64-mingw32-gcc"
#: The csrc files a Windows consumer or producer links (as the extension does on win32).
CSRC_WIN = [CSRC / f for f in COMMON_SOURCES + PLATFORM_SOURCES["win32"]]
#: -Werror: the Windows C code must build warning-free.
MINGW_FLAGS = ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", "-I" + str(INCLUDE), "-I" + str(CSRC), "-I" + str(DRV)]


def need(*tools: str) -> None:
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        pytest.skip("needs %s (bash run.sh test installs them)" % ", ".join(missing))


def run(cmd, timeout, **kw) -> subprocess.CompletedProcess:
    """subprocess.run with text output and a mandatory timeout."""
    return subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, **kw)


def mingw_build(out: Path, sources, libs=()) -> Path:
    """Build a console .exe with mingw-w64 (-Werror) and return its path."""
    need(MINGW_CC)
    r = run([MINGW_CC, *MINGW_FLAGS, *sources, "-o", out, *libs], timeout=300)
    assert r.returncode == 0 and not r.stderr.strip(), "mingw build of %s:\n%s" % (out.name, r.stderr)
    return out


class WineSession:
    """A private Wine prefix with a persistent wineserver.

    The driver's DbgPrintEx output goes to the stderr of the first Wine
    process of the server's session (services.exe and winedevice.exe
    inherit it): wineboot runs first, with the ``debugstr`` channel on and
    its stderr in ``log``.
    """

    def __init__(self, base: Path):
        self.prefix = base / "prefix"
        self.log = base / "wine.log"
        self.prefix.mkdir()
        self.env = dict(os.environ, WINEPREFIX=str(self.prefix), WINEDEBUG="-all",
                        WINEDLLOVERRIDES="mscoree,mshtml=", DISPLAY="")
        self.env.pop("WAYLAND_DISPLAY", None)
        self.drivers = self.prefix / "drive_c" / "windows" / "system32" / "drivers"

    def start(self) -> None:
        # Create the prefix in a session of its own: right after `wineboot -i`
        # the service database stays locked (sc start: error 1055).
        subprocess.run(["wine", "wineboot", "-i"], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=180, check=True)
        self.stop()
        # Without -p the server exits 3 s after the last process, which
        # would unload the driver between two commands. It daemonizes: give
        # it no pipes to hold open.
        subprocess.run(["wineserver", "-p"], env=self.env, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL, timeout=60, check=True)
        with open(self.log, "w") as log:
            subprocess.run(["wine", "wineboot"], env=dict(self.env, WINEDEBUG="-all,warn+debugstr"),
                           stdout=subprocess.DEVNULL, stderr=log, timeout=180, check=True)

    def stop(self) -> None:
        subprocess.run(["wineserver", "-k"], env=self.env, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        subprocess.run(["wineserver", "-w"], env=self.env, timeout=60,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def run(self, args, timeout=60) -> subprocess.CompletedProcess:
        return run(["wine", *args], timeout=timeout, env=self.env)

    def popen(self, args) -> subprocess.Popen:
        return subprocess.Popen(["wine", *[str(a) for a in args]], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def sc(self, *args, timeout=60) -> str:
        """Run sc.exe; its output and its errors (channel err:sc)."""
        r = run(["wine", "sc", *args], timeout=timeout, env=dict(self.env, WINEDEBUG="-all,err+sc"))
        return r.stdout + r.stderr

    def query(self, service: str) -> str:
        return self.sc("query", service)

    def state(self, service: str) -> str:
        out = self.query(service)
        for line in out.splitlines():
            if "STATE" in line:
                return line.split()[-1]
        return "UNKNOWN"

    def install_driver(self, service: str, image: Path) -> None:
        shutil.copy(image, self.drivers / (service + ".sys"))
        out = self.sc("create", service, "type=", "kernel",
                      "binPath=", "C:\\windows\\system32\\drivers\\%s.sys" % service)
        assert self.state(service) == "STOPPED", "sc create %s: %s" % (service, out)

    #: How long a start or a stop may take to reach its state: a hang guard,
    #: not an expectation (a busy machine has taken over 5 s for a stop).
    SERVICE_DEADLINE_S = 180.0

    def _until(self, command: str, service: str, want: str) -> str:
        self.sc(command, service)
        # sc returns once the command is accepted; DriverEntry and
        # DriverUnload run in winedevice.exe, which reports the state after.
        deadline = time.monotonic() + self.SERVICE_DEADLINE_S
        state = self.state(service)
        while state != want and time.monotonic() < deadline:
            time.sleep(0.1)
            state = self.state(service)
        return state

    def start_driver(self, service: str) -> str:
        return self._until("start", service, "RUNNING")

    def stop_driver(self, service: str) -> str:
        return self._until("stop", service, "STOPPED")

    def driver_log(self) -> str:
        """The driver's lines from the log (prefix "kring: ")."""
        text = self.log.read_text(errors="replace")
        return "\n".join(line[line.index("kring: "):] for line in text.splitlines() if "kring: " in line)


def wine_session(prefix: str):
    """A fresh Wine session in a temporary prefix, for a fixture to yield
    (``yield from wine_session("kring-wine-")``); stopped and removed after."""
    need("wine", "wineserver")
    base = Path(tempfile.mkdtemp(prefix=prefix))
    session = WineSession(base)
    try:
        session.start()
        yield session
    finally:
        session.stop()
        shutil.rmtree(base, ignore_errors=True)
