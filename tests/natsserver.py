"""A real ``nats-server -js`` for the fleet tests and benchmarks.

:class:`NatsServer` runs the Debian ``nats-server`` (``bash run.sh test``
installs it) with JetStream on a free loopback port, its store in a
directory of the caller's, and stops, kills and restarts it on the same port
and store, as an operator restarting a production server would::

    with NatsServer(tmp_path / "js") as srv:
        url = srv.url("pykring.events")     # nats://127.0.0.1:PORT/pykring.events
        srv.restart()                       # graceful stop, start again
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from typing import List, Optional

#: Where Debian puts the binary (/usr/sbin is not on every user's PATH).
_SEARCH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin", "/usr/bin"])
START_TIMEOUT_S = 30.0


class NatsServerMissing(RuntimeError):
    """No nats-server binary: `bash run.sh test` installs the Debian package."""


def nats_server_binary() -> str:
    path = shutil.which("nats-server", path=_SEARCH)
    if path is None:
        raise NatsServerMissing("nats-server is not installed (Debian: apt-get install nats-server; "
                                "`bash run.sh test` installs it)")
    return path


def free_port() -> int:
    """A loopback TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_info(port: int, timeout: float) -> Optional[dict]:
    """The INFO the server greets a client with, or None (not listening yet)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            data = b""
            while not data.endswith(b"\r\n"):
                chunk = s.recv(4096)
                if not chunk:
                    return None
                data += chunk
    except OSError:
        return None
    if not data.startswith(b"INFO "):
        return None
    return json.loads(data[5:].strip())


class NatsServer:
    """One nats-server process at a time on `port`, JetStream store in `store_dir`.

    ``max_payload``: the server's limit of one message (bytes; its default is
    1 MiB). The log goes to ``store_dir/../nats-server.log`` (appended across
    restarts), which a failing test can show."""

    def __init__(self, store_dir, port: Optional[int] = None, max_payload: Optional[int] = None):
        self.store_dir = os.fspath(store_dir)
        os.makedirs(self.store_dir, exist_ok=True)
        self.port = port or free_port()
        self.max_payload = max_payload
        self.log_path = os.path.join(os.path.dirname(os.path.abspath(self.store_dir)),
                                     "nats-server-%d.log" % self.port)
        self.proc: Optional[subprocess.Popen] = None
        self.starts = 0

    def url(self, subject: str = "") -> str:
        return "nats://127.0.0.1:%d/%s" % (self.port, subject) if subject else "nats://127.0.0.1:%d" % self.port

    def command(self) -> List[str]:
        cmd = [nats_server_binary(), "-js", "-a", "127.0.0.1", "-p", str(self.port),
               "-sd", self.store_dir, "-l", self.log_path]
        if self.max_payload is not None:
            # The command line has no max_payload flag: a config file.
            conf = os.path.join(os.path.dirname(self.log_path), "nats-server-%d.conf" % self.port)
            with open(conf, "w") as f:
                f.write("max_payload: %d\n" % self.max_payload)
            cmd += ["-c", conf]
        return cmd

    def start(self) -> "NatsServer":
        """Start the server and return once it accepts clients with JetStream on."""
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("nats-server already runs (pid %d)" % self.proc.pid)
        self.proc = subprocess.Popen(self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)
        self.starts += 1
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError("nats-server exited with status %s at start; its log (%s):\n%s"
                                   % (self.proc.returncode, self.log_path, self.log_tail()))
            info = _server_info(self.port, 1.0)
            if info is not None:
                if not info.get("jetstream"):
                    raise RuntimeError("nats-server on port %d has no JetStream: %s" % (self.port, info))
                return self
            if time.monotonic() > deadline:
                self.kill()
                raise RuntimeError("nats-server did not accept clients on port %d within %.0f s; its log:\n%s"
                                   % (self.port, START_TIMEOUT_S, self.log_tail()))
            time.sleep(0.05)

    def _end(self, sig: int) -> None:
        p = self.proc
        if p is None:
            return
        if p.poll() is None:
            p.send_signal(sig)
            try:
                p.wait(timeout=START_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.proc = None

    def stop(self) -> None:
        """Graceful stop (SIGTERM): the store is flushed, clients see the connection close."""
        self._end(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL: what a crash looks like to clients."""
        self._end(signal.SIGKILL)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            with open(self.log_path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as exc:
            return "(no log: %s)" % exc

    def __enter__(self) -> "NatsServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
