"""README's performance figures are those of one committed benchmark run.

`python -m benchmarks all` writes the generated block of benchmarks/RESULTS.md
and, from it, the block of figures in README.md's Performance section. These
tests keep the two from drifting apart and keep hand-typed figures out of the
section. They read files and render text; nothing here is timed.
"""
import re
import subprocess
from pathlib import Path

from benchmarks import readme, results
from benchmarks._common import Report

ROOT = Path(__file__).resolve().parents[1]
RESULTS_MD = ROOT / "benchmarks" / "RESULTS.md"
README_MD = ROOT / "README.md"


def _performance_section() -> str:
    text = README_MD.read_text()
    start = text.index("\n## Performance\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else len(text)]


def _readme_block() -> str:
    section = _performance_section()
    assert section.count(readme.BEGIN) == 1 and section.count(readme.END) == 1, \
        "README's Performance section must hold exactly one generated block of figures"
    return section[section.index(readme.BEGIN):section.index(readme.END) + len(readme.END)]


def _results_table() -> dict:
    """key -> median cell of RESULTS.md's table of every number, read with a
    plain regex (independent of benchmarks.readme's parser)."""
    text = RESULTS_MD.read_text()
    block = text[text.index(results.BEGIN):text.index(results.END)]
    table = block.split("### Every number of this run", 1)[1].split("```")[1]
    rows = {}
    for line in table.splitlines()[3:]:
        mo = re.match(r"^(\w+)\s+(\S+)", line)
        if mo:
            rows[mo.group(1)] = mo.group(2)
    return rows


def test_readme_block_is_the_one_rendered_from_results_md():
    run = readme.parse_results(RESULTS_MD.read_text())
    assert _readme_block() == readme.render(run), (
        "README's Performance figures are not those of RESULTS.md's generated block; "
        "regenerate them with: python -m benchmarks readme")


def test_every_readme_figure_is_its_key_in_the_results_table():
    table = _results_table()
    block = _readme_block()
    figures = []
    for mo in re.finditer(r"\*\*(.+?)\*\*(\s+\(`(\w+)`)?", block, re.S):
        if mo.group(3):
            figures.append((mo.group(1), mo.group(3)))
        else:       # bold words are fine, a bold number must name its key
            assert not re.search(r"\d", mo.group(1)), "a figure without its key in README: %r" % mo.group(1)
    assert len(figures) >= 10, figures
    for bold, key in figures:
        bold = " ".join(bold.split())
        assert key in table, "README quotes %s, which RESULTS.md's run does not have" % key
        median = table[key]
        rest = bold[len(median):]
        assert bold.startswith(median) and not re.match(r"[\d.]", rest), \
            "README says %r for %s; RESULTS.md's table says %r" % (bold, key, median)


def test_prose_around_the_block_quotes_no_figures():
    section = _performance_section()
    block = _readme_block()
    prose = section.replace(block, "")
    prose = re.sub(r"`[^`]*`", "", prose)                  # commands and names
    prose = re.sub(r"\]\([^)]*\)", "]", prose)            # link targets
    assert not re.search(r"\d", prose), \
        "README's Performance prose has a number the generated block does not show:\n" + prose


def test_results_block_names_the_commit_of_its_run():
    run = readme.parse_results(RESULTS_MD.read_text())
    assert not run.quick, "RESULTS.md's generated block is a quick run"
    assert run.commit and re.fullmatch(r"[0-9a-f]{7,40}", run.commit), run.header
    assert not run.dirty, "the run behind RESULTS.md had uncommitted changes to %s" % run.dirty
    assert "at commit `%s`" % run.commit in _readme_block()
    if (ROOT / ".git").exists():
        res = subprocess.run(["git", "cat-file", "-e", run.commit + "^{commit}"], cwd=ROOT,
                             capture_output=True, text=True)
        assert res.returncode == 0, "RESULTS.md names commit %s, which this repository lacks" % run.commit


def _synthetic_run(**values) -> readme.Run:
    """A run's RESULTS.md block rendered by the harness, then parsed back."""
    report = Report()
    report.meta.update(command="python -m benchmarks all", date="2026-12-01 12:00 UTC", cpu="cpu", cpus=2,
                       kernel="6.x", loadavg_start=0.5)
    for key, value in values.items():
        report.add(key, None, "x", samples=[value * 0.9, value, value * 1.1])
    report.fail("peers: something broke")
    text = results.replace_block("# Benchmark results\n", results.render(report, [], "", False))
    return readme.parse_results(text)


def test_a_peer_faster_than_pykring_reads_as_faster():
    # vs_<peer> is pykring's rate / the peer's: 0.45 means the peer is faster.
    run = _synthetic_run(vs_iceoryx2_64=0.45, vs_pipe_64=4.77)
    assert run.rows["vs_iceoryx2_64"].median == "0.45"
    assert (run.rows["vs_iceoryx2_64"].lo, run.rows["vs_iceoryx2_64"].hi) == ("0.405", "0.495")
    text = " ".join(readme.render(run).split())
    ice = text.split("one Slice sample per batch:", 1)[1].split(" - ", 1)[0]
    assert "**0.45x** (`vs_iceoryx2_64`, 0.405 .. 0.495) at 64 B (**the peer faster**)" in ice
    pipe = text.split("(the OS floor):", 1)[1].split(" - ", 1)[0]
    assert "**4.77x** (`vs_pipe_64`" in pipe and "(pykring faster)" in pipe


def test_a_failed_run_says_so_in_the_readme():
    run = _synthetic_run(drain_vs_memcpy_64=0.9)
    assert run.failures == ["peers: something broke"]
    assert "This run reported failures:** peers: something broke" in " ".join(readme.render(run).split())


def test_a_missing_block_is_an_error_not_an_empty_readme():
    try:
        readme.parse_results("# Benchmark results\n\nno generated block here\n")
    except ValueError as exc:
        assert "no generated block" in str(exc)
    else:
        raise AssertionError("parse_results accepted a file without a generated block")


def test_a_full_run_rewrites_both_blocks_and_nothing_else(tmp_path):
    # What `python -m benchmarks all` does at its end, on copies of the two files.
    res, rd = tmp_path / "RESULTS.md", tmp_path / "README.md"
    res.write_text(RESULTS_MD.read_text())
    rd.write_text(README_MD.read_text())
    report = Report()
    report.meta.update(command="python -m benchmarks all", date="2026-12-02 09:00 UTC", cpu="cpu", cpus=2,
                       kernel="6.x", loadavg_start=0.5)
    report.add("drain_vs_memcpy_64", None, "x", samples=[0.9, 1.0, 1.1])
    report.add("drain_checked", True)
    report.add("vs_iceoryx2_64", None, "x", samples=[0.4, 0.45, 0.5])
    results.publish(report, [], False, str(res), str(rd))
    assert not report.failures

    def outside(text, begin, end):
        return text[:text.index(begin)] + text[text.index(end):]
    assert outside(res.read_text(), results.BEGIN, results.END) == \
        outside(RESULTS_MD.read_text(), results.BEGIN, results.END)
    assert outside(rd.read_text(), readme.BEGIN, readme.END) == \
        outside(README_MD.read_text(), readme.BEGIN, readme.END)
    run = readme.parse_results(res.read_text())
    assert run.rows["drain_vs_memcpy_64"].median == "1" and run.rows["vs_iceoryx2_64"].median == "0.45"
    new_block = rd.read_text()[rd.read_text().index(readme.BEGIN):]
    assert new_block.startswith(readme.render(run))
    assert "2026-12-02 09:00 UTC" in new_block and run.commit and "at commit `%s`" % run.commit in new_block


def test_no_merge_conflict_markers_in_tracked_files():
    """A merge left half-resolved is not a document (or a program)."""
    files = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    marker = re.compile(r"^(<{7} |={7}$|>{7} )", re.M)
    bad = []
    for name in files:
        if not name.endswith((".md", ".py", ".c", ".h", ".txt", ".toml", ".sh", ".cfg")) and name != "run.sh":
            continue
        path = ROOT / name
        if not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="replace")
        bad += ["%s:%d" % (name, text.count("\n", 0, m.start()) + 1) for m in marker.finditer(text)]
    assert not bad, "merge conflict markers: %s" % ", ".join(bad)
