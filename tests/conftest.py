"""Shared fixtures and the KRING_REQUIRE_ALL switch.

``KRING_REQUIRE_ALL=1`` (set by ``run.sh test`` as root and on CI) turns
every skipped test into a failure, so tests that need root, the kernel or a
sanitizer runtime cannot silently stop running; likewise a non-strict xfail
(``xfail(strict=False)`` or ``pytest.xfail()``), whose outcome says nothing
either way. A strict xfail (the default: xfail_strict in pyproject.toml)
still marks a known bug.
"""
import os
import signal

import pytest

REQUIRE_ALL = os.environ.get("KRING_REQUIRE_ALL") == "1"


@pytest.fixture
def ring_name():
    """A unique ring name; /dev/shm/<name> is removed after the test."""
    from tests.ringutil import remove_ring, unique_ring_name

    name = unique_ring_name("test")
    yield name
    remove_ring(name)


@pytest.fixture(scope="session")
def sanitizer_build(tmp_path_factory):
    """``sanitizer_build(kind)``: the extension built with that sanitizer ("asan",
    "tsan"; tests/sanitizer.py), once per session, on first use. Skips when the
    sanitizer's runtime is missing (a failure under KRING_REQUIRE_ALL=1)."""
    from tests import sanitizer

    builds = {}

    def get(kind):
        if kind not in builds:
            try:
                builds[kind] = sanitizer.build(kind, str(tmp_path_factory.mktemp(kind)))
            except (sanitizer.Unavailable, AssertionError) as exc:
                builds[kind] = exc          # not tried again by every test
        b = builds[kind]
        if isinstance(b, sanitizer.Unavailable):
            pytest.skip(str(b))
        if isinstance(b, AssertionError):
            raise b
        return b

    return get


def pytest_configure(config):
    config.addinivalue_line("markers", "tsan: builds and runs under ThreadSanitizer")
    # A suite started as a background job of a non-interactive shell (`bash
    # run.sh test &`, as CI scripts may) inherits SIGINT ignored, and so would
    # every child it starts: Python then installs no KeyboardInterrupt handler,
    # and a child sent Ctrl-C (watch, the blocked-write and fleet tests) never
    # stops. Children must start as from a terminal, with the default action.
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def _skip_reason(longrepr) -> str:
    # A skip's longrepr is (path, lineno, "Skipped: reason").
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _strict_xfail(item) -> bool:
    """True when the test carries an xfail marker that is strict (explicitly or
    by the xfail_strict setting); a pytest.xfail() call never is."""
    marker = item.get_closest_marker("xfail")
    if marker is None:
        return False
    return bool(marker.kwargs.get("strict", item.config.getini("xfail_strict")))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if not REQUIRE_ALL:
        return
    if hasattr(rep, "wasxfail"):
        if not _strict_xfail(item):
            what = "xfailed" if rep.skipped else "xpassed"
            reason = rep.wasxfail
            del rep.wasxfail
            rep.outcome = "failed"
            rep.longrepr = ("KRING_REQUIRE_ALL=1 but test %s %s without a strict xfail (%s phase): %s"
                            % (item.nodeid, what, rep.when, reason))
    elif rep.skipped:
        rep.outcome = "failed"
        rep.longrepr = ("KRING_REQUIRE_ALL=1 but test %s was skipped (%s phase): %s"
                        % (item.nodeid, rep.when, _skip_reason(rep.longrepr)))


_collection_skips = []


def pytest_collectreport(report):
    # A module-level pytest.skip() / importorskip() skips a whole file at
    # collection. Turning that report into an error would stop the whole
    # session; record it and fail the run at the end instead.
    if REQUIRE_ALL and report.skipped:
        _collection_skips.append("%s: %s" % (report.nodeid, _skip_reason(report.longrepr)))


def pytest_terminal_summary(terminalreporter):
    for line in _collection_skips:
        terminalreporter.write_line("FAILED (KRING_REQUIRE_ALL=1, skipped at collection) %s" % line,
                                    red=True, bold=True)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session, exitstatus):
    if _collection_skips and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
