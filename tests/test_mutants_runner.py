"""The mutation check's verdict: what counts as a kill (tests/mutants.py)."""
from tests.mutants import check_list, load, verdict

FAILED = """..F
=========================== short test summary info ============================
FAILED tests/test_wake_window.py::test_point_3 - AssertionError: slept to its timeout
1 failed, 2 passed in 3.10s
"""
ERROR_ONLY = """E
=========================== short test summary info ============================
ERROR tests/test_driver_ring_native.py::test_ring - RuntimeError: shim build failed
1 error in 1.20s
"""


def test_a_failed_test_kills():
    assert verdict(1, FAILED) == (True, ["tests/test_wake_window.py::test_point_3"])


def test_an_error_alone_is_not_a_kill():
    # A mutation that breaks a test build errors the test; it proves nothing.
    assert verdict(1, ERROR_ONLY) == (False, [])


def test_passing_tests_do_not_kill():
    assert verdict(0, "3 passed in 1.00s\n") == (False, [])


def test_the_list_parses_and_names_tests():
    mutants = load("tests/mutants.txt")
    assert mutants and all(m.tests and m.find != m.replace for m in mutants)
    assert len({m.name for m in mutants}) == len(mutants)


def test_every_search_text_is_in_its_file_once():
    """A mutant whose text is gone (the code it mutates was rewritten) would
    stop the whole mutation check at its start: found here, in pytest."""
    check_list(load("tests/mutants.txt"))
