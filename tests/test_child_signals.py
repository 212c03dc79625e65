"""The children the suite starts see Ctrl-C as a user's would (tests/conftest.py
restores SIGINT when the suite itself was started with it ignored, as a
background job of a non-interactive shell is)."""
import signal
import subprocess
import sys

CHILD = ("import signal, sys, time\n"
         "print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)\n"
         "time.sleep(120)\n")


def test_a_child_interpreter_stops_on_sigint():
    p = subprocess.Popen([sys.executable, "-c", CHILD], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "True", "the child started with SIGINT ignored"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)     # a hang guard: an ignored SIGINT sleeps on
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode != 0 and err.strip().splitlines()[-1] == "KeyboardInterrupt", (p.returncode, err)
