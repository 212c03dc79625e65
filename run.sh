#!/usr/bin/env bash
# pykring's two entry points, for a fresh Debian machine (run as root):
#
#   bash run.sh watch [ARGS]  the main job: this machine's kernel events, live (ARGS go to
#                             'python -m pykring watch': --json, --duration S, --count N, ...)
#   bash run.sh test [ARGS]   the whole test suite: the mutation check, pytest, then the busy
#                             pass (with --busy: the busy pass only; with other ARGS: pytest
#                             only, with those ARGS)
#   bash run.sh demo [ARGS]   a producer process streams records into Python (no kernel needed)
#   bash run.sh bench [ARGS]  the benchmarks with their peers ('all --quick', 'drain --json', ...)
#   bash run.sh mutants [ARGS] deliberate bugs (tests/mutants.txt) the named tests must catch
#                             (tests/mutants.py; ARGS: --only NAME..., --keep, --all-failures)
#
# Both install what they need, idempotently: Debian packages (only when a
# tool is missing), a virtual environment in .venv, and this package in it
# (rebuilt when its C sources or build files change).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VENV="$ROOT/.venv"
PY="$VENV/bin/python"
cd "$ROOT"

log() { printf '[run.sh] %s\n' "$*" >&2; }

need_apt=()
want() {  # want <command> <debian package>
    command -v "$1" >/dev/null 2>&1 || need_apt+=("$2")
}

apt_install() {
    [ "${#need_apt[@]}" -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        log "missing tools: ${need_apt[*]}; install them (as root: apt-get install ${need_apt[*]})"
        exit 1
    fi
    log "installing Debian packages: ${need_apt[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
}

setup() {
    want gcc gcc
    want python3 python3
    apt_install
    if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
        need_apt+=(python3-venv python3-dev)
        apt_install
    fi
    if [ ! -x "$PY" ]; then
        log "creating virtual environment $VENV"
        python3 -m venv "$VENV"
    fi
    # Rebuild when anything that goes into the build changed.
    local stamp="$VENV/.pykring-build" sum
    sum=$(cat pyproject.toml setup.py pykring/_build.py pykring/_build_bpf.py pykring/_version.py include/kring/*.h csrc/*.h csrc/*.c csrc/bpf/* | sha256sum | cut -d' ' -f1)
    if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$sum" ] || ! "$PY" -c 'import pykring' >/dev/null 2>&1 ||
        { [ "${KRING_BPF_REQUIRED:-}" = 1 ] && [ ! -f pykring/bpf/kring_events.bpf.o ]; }; then
        log "installing pykring (editable, with test extras) into $VENV"
        # The venv's own setuptools too: the mutation check and the sanitizer
        # builds run setup.py in place, and the metadata needs PEP 639 (77).
        "$PY" -m pip install -q --disable-pip-version-check --upgrade pip "setuptools>=77" wheel >/dev/null
        KRING_WERROR=1 "$PY" -m pip install -q --disable-pip-version-check -e ".[test]"
        echo "$sum" > "$stamp"
    fi
}

# The Linux kernel event source: eBPF programs built with clang (CO-RE,
# vmlinux.h from bpftool), loaded through libbpf.so.1.
want_bpf() {
    want clang clang
    want llvm-strip llvm
    want bpftool bpftool
    want bpftrace bpftrace      # the independent oracle of tests/test_kernel_oracle.py
    [ -e /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
    ldconfig -p 2>/dev/null | grep -q 'libbpf\.so\.1 ' || need_apt+=(libbpf1)
    export KRING_BPF_REQUIRED=1
}

# The busy pass: the tests of kernel events, watch and wakeups, then the
# mutants they must catch, while tests/busy.py keeps the machine busy with
# unrelated work (processes, library loads, every core, another ring).
BUSY_TESTS=(tests/test_kernel_linux.py tests/test_kernel_filters.py tests/test_kernel_wakeups.py
            tests/test_kernel_fork.py tests/test_kernel_edge_cases.py tests/test_kernel_oracle.py
            tests/test_exit_status.py tests/test_recording_watch.py tests/test_watch_filters.py
            tests/test_wake_window.py tests/test_wait_spin.py tests/test_output_escaping.py
            tests/test_event_context.py)
busy_pass() {
    log "busy pass: ${#BUSY_TESTS[@]} test files and their mutants beside python -m tests.busy"
    "$PY" -m tests.busy &
    local busy=$! rc=0
    trap 'kill "$busy" 2>/dev/null || true' EXIT
    "$PY" -m pytest "${BUSY_TESTS[@]}" || rc=$?
    local mrc=0
    "$PY" -m tests.mutants --tests-in "${BUSY_TESTS[@]}" || mrc=$?
    kill "$busy" 2>/dev/null || true
    wait "$busy" || true
    trap - EXIT
    [ "$rc" -eq 0 ] || { log "busy pass: the tests failed (exit $rc)"; return "$rc"; }
    [ "$mrc" -eq 0 ] || { log "busy pass: a mutant survived (exit $mrc)"; return "$mrc"; }
    log "busy pass: passed"
}

cmd=${1:-}
[ $# -gt 0 ] && shift
case "$cmd" in
    watch)
        want_bpf
        setup
        exec "$PY" -m pykring watch "$@"
        ;;
    demo)
        setup
        exec "$PY" -m pykring demo "$@"
        ;;
    bench)
        want_bpf
        want nats-server nats-server    # fleet: a local JetStream
        setup
        "$PY" -m pip install -q --disable-pip-version-check -e ".[bench]"
        exec "$PY" -m benchmarks "$@"
        ;;
    test)
        want x86_64-w64-mingw32-gcc gcc-mingw-w64-x86-64
        # drv/ (kring.sys, cross-built) and its Wine tests (tests/windows/)
        want clang clang
        want make make
        want g++ g++
        want wine wine
        want wine wine64
        want_bpf
        want nats-server nats-server    # tests/test_fleet.py: a real JetStream on loopback
        setup
        # As root (and on CI) every test must run: a skip is a failure.
        if [ "$(id -u)" -eq 0 ] || [ "${CI:-}" = "true" ]; then
            export KRING_REQUIRE_ALL=1
        fi
        if [ $# -eq 0 ]; then
            # The whole suite: the mutation check (the tests must catch the
            # deliberate bugs of tests/mutants.txt), then every test. Both run;
            # either failing fails the command.
            mutants_rc=0
            "$PY" -m tests.mutants || mutants_rc=$?
            tests_rc=0
            "$PY" -m pytest || tests_rc=$?
            [ "$mutants_rc" -eq 0 ] || log "the mutation check failed (exit $mutants_rc): a mutant survived"
            busy_rc=0
            busy_pass || busy_rc=$?
            [ "$tests_rc" -ne 0 ] && exit "$tests_rc"
            [ "$mutants_rc" -ne 0 ] && exit "$mutants_rc"
            exit "$busy_rc"
        fi
        if [ "$1" = "--busy" ] && [ $# -eq 1 ]; then
            busy_pass
            exit $?
        fi
        exec "$PY" -m pytest "$@"
        ;;
    mutants)
        want_bpf
        setup
        exec "$PY" -m tests.mutants "$@"
        ;;
    *)
        echo "usage: bash run.sh watch|test|demo|bench|mutants [ARGS]" >&2
        exit 2
        ;;
esac
