"""What other processes can do to a client's ring event, under Wine
(tests/windows/kring_event_probe.c against the test build of kring.sys).

The driver creates each ring's event in an object directory of its own that
has no name, and ATTACH hands the caller a handle to it, made in the
caller's process with SYNCHRONIZE access only: no process looks the event
up by name, so there is no name to squat or to open.

How far Wine models "not elevated": it runs every process of the prefix
with one administrator token (TokenElevationTypeFull, elevated, integrity
0x3000). A restricted copy of it (CreateRestrictedToken with Administrators
deny-only, given to CreateProcessAsUserW) is a process that is not an
administrator for access checks, and the driver refuses it the device
(test_win_wine_driver.py); Wine accepts a medium label on it but still
reports it as elevated at 0x3000 (the probe prints both). Wine checks no
access when a name is created in a directory (DIRECTORY_CREATE_OBJECT), so
under Wine any process may create names anywhere, even in the root
directory: the squatter here is stronger than on Windows. Wine also lets it
open the client's process for PROCESS_DUP_HANDLE, which integrity levels
prevent on Windows.

One scenario runs once per module and the tests check its parts: the test
driver as service "kringsec"; the probe's rights, squat and other runs; a
client that keeps its event handle while the driver is stopped and started
again; stop.
"""
import re
import subprocess

import pytest

from .winharness import HERE, mingw_build, wine_session


def _result(out: str) -> int:
    m = re.search(r"^RESULT (\d+)$", out, re.M)
    assert m, "the probe printed no RESULT line:\n" + out
    return int(m.group(1))


def _ok(out: str, *checks: str) -> None:
    assert _result(out) == 0, out
    missing = [c for c in checks if "ok %s\n" % c not in out]
    assert not missing, "checks that did not pass: %s\n%s" % (missing, out)


@pytest.fixture(scope="module")
def wine():
    """A Wine session of this module's own: the driver log of the shared one
    is read by test_win_wine_driver.py, whose counts must not see these loads."""
    yield from wine_session("kring-wine-evsec-")


@pytest.fixture(scope="module")
def scenario(wine, built_drivers, win_build_dir):
    probe = mingw_build(win_build_dir / "kring_event_probe.exe", [HERE / "kring_event_probe.c"],
                        libs=["-ladvapi32", "-municode"])
    out = {"states": []}
    states = out["states"]
    wine.install_driver("kringsec", built_drivers["test"])
    states.append(("start", wine.start_driver("kringsec")))
    for mode in ("rights", "squat", "other"):
        out[mode] = wine.run([probe, mode], timeout=300)

    # A client keeps its event handle (its ring is gone) across a stop and a
    # start of the driver: the next load creates its directory and attaches.
    hold = subprocess.Popen(["wine", str(probe), "hold"], env=wine.env, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        out["hold_start"] = ""
        for line in hold.stdout:        # "ok hold_attached", then "holding"
            out["hold_start"] += line
            if line.strip() == "holding":
                break
        states.append(("stop while held", wine.stop_driver("kringsec")))
        states.append(("start while held", wine.start_driver("kringsec")))
        out["rights_again"] = wine.run([probe, "rights"], timeout=300)
        hold.stdin.close()
        out["hold"] = hold.stdout.read() + hold.stderr.read()
        hold.wait(timeout=60)
    finally:
        if hold.poll() is None:
            hold.kill()
            hold.wait()
    states.append(("stop", wine.stop_driver("kringsec")))

    # ATTACH failing after the caller got its event handle (test knob).
    wine.install_driver("kringlate", built_drivers["test"])
    r = wine.run(["reg", "add", "HKLM\\System\\CurrentControlSet\\Services\\kringlate", "/v", "TestFailAttachLate",
                  "/t", "REG_DWORD", "/d", "1", "/f"], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    out["late_states"] = [wine.start_driver("kringlate")]
    out["late"] = wine.run([probe, "late"], timeout=300)
    out["late_states"].append(wine.stop_driver("kringlate"))
    out["log"] = wine.driver_log()
    return out


def test_handle_from_attach_has_synchronize_only(scenario):
    """The reply's handle is valid in the caller, granted SYNCHRONIZE and
    nothing else (NtQueryObject), so SetEvent and ResetEvent fail with access
    denied, and it cannot be duplicated with more access; it is the ring's
    (the driver's wake reaches it)."""
    out = scenario["rights"].stdout
    _ok(out, "attach_gives_a_handle", "handle_granted_synchronize_only", "handle_not_inheritable",
        "set_event_denied", "reset_event_denied", "no_duplicate_with_modify_state", "no_duplicate_with_write_dac",
        "handle_woken_by_driver")
    assert re.search(r"granted access 0x00100000,", out), out


def test_squatter_cannot_stop_attach(scenario):
    """A process without Administrators holds every name it can think of
    where the events or their directory might be (ring ids up to 40 in a
    dozen patterns, old and new, and the directories); with all of them held,
    every one of the KRING_MAX_CONSUMERS rings attaches and is woken through
    the handle its reply carries."""
    out = scenario["squat"].stdout
    # The squatter's lines come first (it inherits the console), then the client's.
    _ok(out, "non_admin_token", "squatter_is_not_administrator", "squatter_created_names", "squatter_ready",
        "every_attach_despite_squatter", "every_ring_woken_through_its_handle", "squatter_finished")
    created = re.search(r"info squatter created (\d+) names \((\d+) refused\)", out)
    assert created and int(created.group(1)) >= 400, out


def test_no_ring_event_has_a_name_anyone_can_look_up(scenario):
    """Every Event object that the object namespace lists, from the root
    down through every directory, opened by its name, is none of the rings'
    events: the name of an event cannot be squatted or opened because no
    directory anyone can reach holds it."""
    out = scenario["squat"].stdout
    _ok(out, "no_ring_event_reachable_by_name")
    listed = re.search(r"info (\d+) event names listed in the namespace", out)
    assert listed and int(listed.group(1)) > 0, out


def test_other_processes_cannot_open_set_or_reset_a_clients_event(scenario):
    """Another client (an administrator with a ring of its own) and a process
    without Administrators try every listed event name (open; set and reset
    where they may) and the client's handle values (duplicate with more than
    SYNCHRONIZE): nothing they open is the client's event, the set event is
    still set and the other one still clear."""
    out = scenario["other"].stdout
    _ok(out, "client_attached", "ring_a_signalled", "other_client_finished", "non_admin_finished",
        "no_other_process_opened_the_event", "event_not_reset_by_others", "event_not_set_by_others")


def test_an_event_held_across_an_unload_does_not_block_the_next_load(scenario):
    """The directory has no name, so an event a client still holds (which
    keeps its directory alive) cannot collide with the next load's."""
    assert scenario["hold_start"] == "ok hold_attached\nholding\n", scenario["hold_start"]
    assert scenario["states"] == [("start", "RUNNING"), ("stop while held", "STOPPED"),
                                  ("start while held", "RUNNING"), ("stop", "STOPPED")], scenario["log"]
    _ok(scenario["rights_again"].stdout, "attach_gives_a_handle", "handle_woken_by_driver")
    assert _result(scenario["hold"]) == 0, scenario["hold"]
    assert "cannot create the events' directory" not in scenario["log"]


def test_attach_failing_late_takes_the_event_handle_back(scenario):
    """An ATTACH that fails after the driver made the caller's event handle
    (the test knob TestFailAttachLate, as a lost race with another ATTACH on
    the handle would) closes that handle in the caller again and frees the
    ring: 20 such attaches leave no handle and no ring behind."""
    assert scenario["late_states"] == ["RUNNING", "STOPPED"], scenario["log"]
    _ok(scenario["late"].stdout, "late_failure_refused", "failed_attach_leaves_no_handle",
        "failed_attach_leaves_no_ring")
    assert "test knob TestFailAttachLate: every ATTACH fails after the event handle is made" in scenario["log"]
    assert scenario["log"].count("test knob TestFailAttachLate: attach fails after the event handle") == 20
