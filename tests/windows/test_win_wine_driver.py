"""kring.sys under Wine: loaded as a kernel service, driven by the mingw-built
C client (tests/windows/kring_client.c) that uses the csrc consumer.

One scenario runs once per session (about 10 s) and the tests below check
its parts:

1. the release driver: loads, refuses a caller without Administrators,
   has no test IOCTLs, attaches in copy mode, stops (DriverUnload), and
   survives a second start/stop cycle;
2. the test driver: the client's full run (bad requests, the mapping path
   failing cleanly as Wine's MmMapLockedPagesSpecifyCache returns NULL,
   the copy fallback, injected records checked field by field, sequence
   numbers and drop counts with more records than the ring holds, fan-out
   to two consumers, wakeup through the event handle, a broken ring, the
   consumer limit), then stop;
3. the test driver again, as another service whose key has
   TestFailImageNotify = 1: the load-image registration fails, the driver
   loads with process events only and STATS says so.

Wine never calls the process and image callbacks (they register, but Wine
has no process creation in a kernel), which is why the test build's inject
IOCTL exists: it builds records with the callbacks' own routines.
"""
import re

import pytest

from .winharness import CSRC_WIN, HERE, mingw_build

FULL_CHECKS = [
    "open_as_admin", "stats_test_build", "attach_old_client_refused", "attach_short_input", "attach_short_output",
    "attach_size_not_power_of_two", "attach_size_too_small", "attach_size_too_big", "attach_no_events",
    "attach_unknown_events", "attach_no_method", "attach_bad_size_field", "read_before_attach",
    "detach_before_attach", "unknown_ioctl", "map_only_attach_fails_cleanly", "no_ring_left_after_failed_map",
    "attach_map_or_copy", "copy_fallback_reports_map_status", "attach_reply", "schema_from_kring_events",
    "event_not_settable_by_client", "second_attach_same_handle", "read_buffer_too_small", "read_short_input", "drain_strings", "utf8_path", "comm_basename",
    "cmdline", "process_start_fields", "truncated_path", "truncated_cmdline_on_character_boundary",
    "replacement_characters", "drain_exit_image", "process_exit_fields", "image_load_fields",
    "kernel_image_base_hidden", "sequence_contiguous", "flood_counted", "flood_drained", "fifo_prefix_kept",
    "record_after_flood", "drops_seen_as_gaps", "counters_on_producer_page", "second_consumer_attach",
    "two_consumers", "waiter_finished", "woken_by_event", "wakeups_counted", "fanout_filtered_by_events",
    "detach", "detach_frees_ring", "read_after_detach", "poke", "nonsense_consumer_pos_breaks_ring",
    "consumer_sees_broken", "consumer_limit", "limit_rings_freed_on_close",
]


def _result(out: str) -> int:
    m = re.search(r"^RESULT (\d+)$", out, re.M)
    assert m, "client printed no RESULT line:\n" + out
    return int(m.group(1))


@pytest.fixture(scope="module")
def scenario(wine, built_drivers, win_build_dir):
    client = mingw_build(win_build_dir / "kring_client.exe", [HERE / "kring_client.c", *CSRC_WIN],
                         libs=["-ladvapi32"])
    out = {"states": []}
    states = out["states"]

    wine.install_driver("kring", built_drivers["release"])
    states.append(("start release", wine.start_driver("kring")))
    out["release"] = wine.run([client, "release"], timeout=60)
    out["notadmin"] = wine.run([client, "notadmin"], timeout=60)
    states.append(("stop release", wine.stop_driver("kring")))
    states.append(("start release again", wine.start_driver("kring")))
    out["release2"] = wine.run([client, "release"], timeout=60)
    states.append(("stop release again", wine.stop_driver("kring")))

    wine.install_driver("kringtest", built_drivers["test"])
    states.append(("start test", wine.start_driver("kringtest")))
    out["full"] = wine.run([client, "full"], timeout=120)
    states.append(("stop test", wine.stop_driver("kringtest")))

    wine.install_driver("kringdeg", built_drivers["test"])
    r = wine.run(["reg", "add", "HKLM\\System\\CurrentControlSet\\Services\\kringdeg", "/v", "TestFailImageNotify",
                  "/t", "REG_DWORD", "/d", "1", "/f"], timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    states.append(("start degraded", wine.start_driver("kringdeg")))
    out["degraded"] = wine.run([client, "degraded"], timeout=60)
    states.append(("stop degraded", wine.stop_driver("kringdeg")))
    out["log"] = wine.driver_log()
    return out


def test_services_start_and_stop(scenario):
    assert scenario["states"] == [
        ("start release", "RUNNING"), ("stop release", "STOPPED"),
        ("start release again", "RUNNING"), ("stop release again", "STOPPED"),
        ("start test", "RUNNING"), ("stop test", "STOPPED"),
        ("start degraded", "RUNNING"), ("stop degraded", "STOPPED"),
    ], scenario["log"]


def test_release_driver(scenario):
    for key in ("release", "release2"):
        out = scenario[key].stdout
        assert _result(out) == 0, out
        for check in ("stats_release_build", "release_attach", "release_has_no_inject_ioctl",
                      "release_has_no_poke_ioctl", "release_ring_empty", "release_detach",
                      "failed_attaches_release_reservation", "second_attach_releases_reservation",
                      "reserved_limit_exact"):
            assert "ok %s\n" % check in out, out


def test_open_refused_without_administrators(scenario):
    out = scenario["notadmin"].stdout
    assert _result(out) == 0, out
    assert "ok open_refused_without_admin" in out, out
    assert "open refused: 0xc0000022" in scenario["log"]


def test_full_client_run(scenario):
    r = scenario["full"]
    failed = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
    assert not failed and _result(r.stdout) == 0, r.stdout + r.stderr
    missing = [c for c in FULL_CHECKS if "ok %s\n" % c not in r.stdout]
    assert not missing, "checks that did not run: %s\n%s" % (missing, r.stdout)
    # A version-1 client (0 where the version goes) is refused before anything is made.
    assert "attach refused: the client speaks interface version 0, the driver 2" in scenario["log"]


def test_mapping_fails_cleanly_and_copy_fallback_is_reported(scenario):
    out, log = scenario["full"].stdout, scenario["log"]
    # MAP alone: the precise status of the failed mapping, no ring left behind.
    assert "info map-only attach: status 0xc000009a" in out
    assert "MmMapLockedPagesSpecifyCache(UserMode) returned NULL" in log
    assert "attach failed: mapping status 0xc000009a, no copy fallback requested" in log
    # MAP | COPY: the reply says which method was used and why.
    assert re.search(r"info attach: method copy, map_status 0xc000009a, ring \d+, event handle 0x[0-9a-f]+\n", out), out
    assert re.search(r"ring \d+ attached: 65536 bytes, events 0x3, method copy \(map status 0xc000009a\)", log), log


def test_drops_are_counted_and_logged(scenario):
    log = scenario["log"].split("DriverEntry: TEST BUILD", 1)[-1]    # the test driver's part
    # The main ring took the 5000-record flood into 64 KiB: most were dropped.
    ring = re.search(r"ring (\d+) attached: 65536 bytes, events 0x3, method copy \(map status 0xc000009a\)", log)
    assert ring, log
    m = re.search(r"ring %s detached: (\d+) written, (\d+) dropped, (\d+) wakeups" % ring.group(1), log)
    assert m, log
    written, dropped, wakeups = map(int, m.groups())
    assert written > 0 and dropped > 4000 and wakeups >= 1, m.group(0)
    assert re.search(r"consumer_pos 0x12345 is nonsense at producer_pos 0x90: ring broken", log), log


def test_image_registration_failure_degrades(scenario):
    """A failed PsSetLoadImageNotifyRoutine no longer fails the load: the
    driver runs with process events only and STATS reports image_notify 0."""
    out, log = scenario["degraded"].stdout, scenario["log"]
    assert _result(out) == 0, out + scenario["degraded"].stderr
    for check in ("open_degraded", "stats_degraded", "degraded_attach", "degraded_inject", "degraded_process_events"):
        assert "ok %s\n" % check in out, out
    assert "test knob TestFailImageNotify: load-image registration made to fail" in log
    assert "PsSetLoadImageNotifyRoutine failed: 0xc000009a: loading with process events only" in log
    assert log.count("load-image notify off") == 1, log


def test_driver_unload_runs(scenario):
    log = scenario["log"]
    starts = log.count("DriverEntry: \\Device\\KRing ready")
    assert starts == 4, log
    assert log.count("DriverUnload: callbacks unregistered, none in flight") == 4, log
    # Every ring was freed by its handle's close before the unload.
    assert log.count("DriverUnload: done (0 rings freed here;") == 4, log
    assert log.count("DriverEntry: TEST BUILD") == 2, log
    assert log.count("callbacks registered: process notify Ex, load-image notify on") == 3, log
