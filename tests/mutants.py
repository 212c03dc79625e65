"""``bash run.sh mutants``: deliberate bugs that the named tests must catch.

Each mutant in tests/mutants.txt names a file, a text that occurs in it
exactly once, its replacement and the tests that must fail with it. For each
one this applies the replacement to a scratch copy of the tree (``git
archive HEAD`` plus the working tree's uncommitted changes to tracked files;
never the working tree itself), builds the extension and the eBPF object
there, and runs the named tests with that copy's package. A mutant is
killed when one of its tests fails (an error, such as a test build the
mutation broke, is not a kill); otherwise it survived. First the unmutated copy runs every named test and
must pass (with KRING_REQUIRE_ALL=1, so none of them skips): a kill then
means the mutation, not the machine.

Exit status 0 when every mutant was killed, 1 when one survived or a
baseline test failed, 2 on a bad list or a build that failed.

    python -m tests.mutants [--list FILE] [--only NAME ...] [--keep]
"""
import argparse
import configparser
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import List

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LIST = os.path.join(ROOT, "tests", "mutants.txt")
TEST_TIMEOUT = 1800


@dataclass
class Mutant:
    name: str
    file: str
    find: str
    replace: str
    tests: List[str]
    why: str


def _unescape(s: str) -> str:
    return s.replace("\\n", "\n").replace("\\t", "\t")


def load(path: str) -> List[Mutant]:
    cp = configparser.ConfigParser(interpolation=None, delimiters=("=",), comment_prefixes=("#",))
    cp.optionxform = str            # type: ignore[assignment,method-assign]
    with open(path) as f:
        cp.read_file(f)
    out = []
    for name in cp.sections():
        s = cp[name]
        missing = {"file", "find", "replace", "tests"} - set(s)
        if missing:
            raise SystemExit("mutant %s: missing %s" % (name, ", ".join(sorted(missing))))
        out.append(Mutant(name, s["file"], _unescape(s["find"]), _unescape(s["replace"]),
                          s["tests"].split(), s.get("why", "")))
    return out


def check_list(mutants: List[Mutant]) -> None:
    for m in mutants:
        with open(os.path.join(ROOT, m.file)) as f:
            n = f.read().count(m.find)
        if n != 1:
            raise SystemExit("mutant %s: the search text occurs %d times in %s (must be once)" % (m.name, n, m.file))


def scratch_copy(dest: str) -> None:
    """HEAD's tracked files plus the working tree's changes to them."""
    os.makedirs(dest)
    archive = subprocess.run(["git", "archive", "HEAD"], cwd=ROOT, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", dest], input=archive, check=True)
    diff = subprocess.run(["git", "diff", "HEAD", "--binary"], cwd=ROOT, check=True, capture_output=True).stdout
    if diff:
        subprocess.run(["git", "apply", "--whitespace=nowarn"], cwd=dest, input=diff, check=True)


def build(tree: str) -> None:
    env = dict(os.environ, KRING_BPF_REQUIRED="1", KRING_WERROR="0")
    for cmd in (["build_ext", "--inplace"], ["build_py"]):
        r = subprocess.run([sys.executable, "setup.py", "-q", *cmd], cwd=tree, env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError("setup.py %s failed in %s:\n%s" % (" ".join(cmd), tree, r.stderr[-3000:]))
    objs = [os.path.join(d, f) for d, _, fs in os.walk(os.path.join(tree, "build")) for f in fs
            if f == "kring_events.bpf.o"]
    if len(objs) != 1:
        raise RuntimeError("expected one eBPF object under %s/build, found %r" % (tree, objs))
    os.makedirs(os.path.join(tree, "pykring", "bpf"), exist_ok=True)
    shutil.copy(objs[0], os.path.join(tree, "pykring", "bpf", "kring_events.bpf.o"))
    r = subprocess.run([sys.executable, "-c", "import pykring, sys; sys.stdout.write(pykring.__file__)"],
                       cwd=tree, capture_output=True, text=True)
    where = os.path.dirname(r.stdout)
    if r.returncode != 0 or os.path.realpath(where) != os.path.realpath(os.path.join(tree, "pykring")):
        raise RuntimeError("the copy in %s does not import its own pykring (%r, %s)" % (tree, r.stdout, r.stderr))


def needs_no_build(m: Mutant) -> bool:
    """A mutant of a Python module of the package (not its build scripts)
    runs in a copy of the built baseline: nothing compiled changes."""
    return (m.file.startswith("pykring/") and m.file.endswith(".py")
            and not os.path.basename(m.file).startswith("_build"))


def run_tests(tree: str, tests: List[str], require_all: bool, stop: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ, KRING_REQUIRE_ALL="1" if require_all else "0")
    env.pop("KRING_BPF_OBJECT", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-q", *(["-x"] if stop else []), "-p", "no:cacheprovider",
                           *tests],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=TEST_TIMEOUT)


def verdict(returncode: int, stdout: str):
    """(killed, failed test ids) of a mutant's pytest run. Only a test that
    ran and failed kills: an error (a fixture, a test build the mutation
    broke) says nothing about the tests."""
    failed = [l.split()[1] for l in stdout.splitlines() if l.startswith("FAILED ")]
    return returncode == 1 and bool(failed), failed


def _last_line(r: subprocess.CompletedProcess) -> str:
    lines = [l for l in r.stdout.splitlines() if l.strip()]
    return lines[-1] if lines else "(no output) " + r.stderr[-300:]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__.split("\n\n")[0])
    ap.add_argument("--list", default=LIST)
    ap.add_argument("--only", nargs="*", help="run only these mutants")
    ap.add_argument("--tests-in", nargs="*", metavar="FILE",
                    help="run only the mutants that one of these test files must catch")
    ap.add_argument("--keep", action="store_true", help="keep the scratch trees")
    ap.add_argument("--all-failures", action="store_true",
                    help="run every named test of a mutant (default: stop at the first failure)")
    args = ap.parse_args(argv)
    mutants = load(args.list)
    if args.only:
        mutants = [m for m in mutants if m.name in args.only]
    if args.tests_in:
        files = {os.path.normpath(f) for f in args.tests_in}
        mutants = [m for m in mutants if any(os.path.normpath(t.split("::")[0]) in files for t in m.tests)]
    check_list(mutants)
    start = time.monotonic()
    work = tempfile.mkdtemp(prefix="kring-mutants-")
    rows = []
    try:
        base = os.path.join(work, "baseline")
        scratch_copy(base)
        build(base)
        tests = sorted({t for m in mutants for t in m.tests})
        t0 = time.monotonic()
        r = run_tests(base, tests, require_all=os.geteuid() == 0)
        print("baseline (unmutated, %d test ids): %s [%.0f s]" % (len(tests), _last_line(r), time.monotonic() - t0),
              flush=True)
        if r.returncode != 0:
            print(r.stdout[-6000:], r.stderr[-3000:])
            return 1
        for m in mutants:
            t0 = time.monotonic()
            tree = os.path.join(work, m.name)
            python_only = needs_no_build(m)
            if python_only:
                shutil.copytree(base, tree, symlinks=True)      # the baseline's build serves
            else:
                scratch_copy(tree)
            path = os.path.join(tree, m.file)
            with open(path) as f:
                text = f.read()
            with open(path, "w") as f:
                f.write(text.replace(m.find, m.replace, 1))
            shutil.rmtree(os.path.join(os.path.dirname(path), "__pycache__"), ignore_errors=True)
            try:
                if not python_only:
                    build(tree)
            except RuntimeError as exc:
                print("mutant %s: build failed (a mutant must build):\n%s" % (m.name, exc))
                return 2
            r = run_tests(tree, m.tests, require_all=False, stop=not args.all_failures)
            killed, failed = verdict(r.returncode, r.stdout)
            if r.returncode not in (0, 1) or (r.returncode == 1 and not failed):
                print("mutant %s: pytest exit %d without a failed test (errors are not kills)\n%s\n%s"
                      % (m.name, r.returncode, r.stdout[-3000:], r.stderr[-2000:]))
            rows.append((m, killed, failed, time.monotonic() - t0))
            print("%-22s %-8s %5.0f s  %s" % (m.name, "killed" if killed else "SURVIVED", rows[-1][3],
                                               ", ".join(failed) or _last_line(r)), flush=True)
            if not args.keep:
                shutil.rmtree(tree, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("scratch trees kept in", work)
    survivors = [m.name for m, killed, _, _ in rows if not killed]
    print("\n| mutant | file | killed by (first failing test) | seconds |\n| --- | --- | --- | --- |")
    for m, killed, failed, secs in rows:
        print("| %s | %s | %s | %.0f |" % (m.name, m.file, (failed[0] if failed else "") if killed else "SURVIVED", secs))
    print("\n%d mutants, %d killed, %d survived (%s) in %.0f s"
          % (len(rows), len(rows) - len(survivors), len(survivors), ", ".join(survivors) or "none",
             time.monotonic() - start))
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
