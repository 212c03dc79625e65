"""The exit status formula of the process_exit record, over every 16-bit wait status.

The eBPF program (csrc/bpf/kring_process.bpf.c, emit_process_exit) turns the
task's exit_code, a wait status, into ``exit_code``: the status 0..255 of
exit(), or -signal for a killed process; ``raw_status`` keeps the status
itself (core-dump bit included). The formula is taken from the program's
source (one line, so the test follows the program) and compiled with gcc
next to the C library's W* macros; the oracle is those macros and Python's
os.waitstatus_to_exitcode, neither written here.

A status whose low seven bits are 0x7f is not an exit status: low byte 0x7f
is "stopped", 0xffff "continued", and the rest no wait status at all (no
signal 127 exists). waitstatus_to_exitcode refuses those 512, the W* macros
call them neither exited nor signalled, and the test leaves them out.
"""
import os
import re
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BPF_SOURCE = os.path.join(ROOT, "csrc", "bpf", "kring_process.bpf.c")

#: e->exit_code = <formula of code>;  (the only assignment to exit_code)
_FORMULA = re.compile(r"^\s*e->exit_code\s*=\s*(.+?);\s*$", re.M)

PROGRAM = r'''
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
typedef uint32_t __u32;
typedef int32_t __s32;
int main(void)
{
    for (unsigned s = 0; s < 65536; s++) {
        __u32 code = s;
        __s32 formula = %s;
        int st = (int)s;
        printf("%%u %%d %%d %%d %%d %%d %%d\n", s, formula, WIFEXITED(st) ? 1 : 0, WEXITSTATUS(st),
               WIFSIGNALED(st) ? 1 : 0, WTERMSIG(st), WCOREDUMP(st) ? 1 : 0);
    }
    return 0;
}
'''


def formula_source():
    with open(BPF_SOURCE) as f:
        found = _FORMULA.findall(f.read())
    assert len(found) == 1, "expected one assignment to e->exit_code in %s, found %r" % (BPF_SOURCE, found)
    return found[0]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    if not shutil.which("gcc"):
        pytest.skip("gcc is needed to compile the formula")
    d = tmp_path_factory.mktemp("status")
    src, exe = d / "status.c", d / "status"
    src.write_text(PROGRAM % formula_source())
    subprocess.run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-D_DEFAULT_SOURCE", str(src), "-o",
                    str(exe)], check=True)
    out = subprocess.run([str(exe)], check=True, capture_output=True, text=True).stdout
    return [tuple(int(x) for x in line.split()) for line in out.splitlines()]


def test_formula_is_found():
    assert "code" in formula_source()


def test_every_exit_status_against_waitstatus_to_exitcode_and_the_w_macros(table):
    assert len(table) == 65536
    not_exits = []
    for s, formula, exited, exitstatus, signaled, termsig, coredump in table:
        try:
            expected = os.waitstatus_to_exitcode(s)
        except ValueError:
            not_exits.append(s)
            assert not exited and not signaled, hex(s)
            continue
        assert formula == expected, "status 0x%04x: formula %d, waitstatus_to_exitcode %d" % (s, formula, expected)
        # The same from the C macros, and from Python's own W* functions.
        assert formula == (exitstatus if exited else -termsig), hex(s)
        assert (exited, signaled) == (int(os.WIFEXITED(s)), int(os.WIFSIGNALED(s))), hex(s)
        if signaled:
            # The core-dump bit never changes the signal: SIGABRT with a core is still -6.
            assert coredump == int(os.WCOREDUMP(s)) and formula == -(s & 0x7f), hex(s)
    # Low seven bits 0x7f: stopped (0x..7f), continued (0xffff) and the other 0x..ff.
    assert sorted(not_exits) == sorted({(hi << 8) | lo for hi in range(256) for lo in (0x7f, 0xff)})


def test_core_dump_statuses_known_answers(table):
    rows = {r[0]: r for r in table}
    for sig in (6, 11, 3):                  # SIGABRT, SIGSEGV, SIGQUIT: their default action dumps core
        s = sig | 0x80
        assert rows[s][1] == -sig and rows[s][6] == 1
        assert rows[sig][1] == -sig and rows[sig][6] == 0
    assert rows[42 << 8][1] == 42 and rows[0][1] == 0 and rows[255 << 8][1] == 255
