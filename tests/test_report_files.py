"""The files `report daily` writes: the page and its trace folder, which holds exactly the run's
trace pages (a redacted report leaves none with real addresses beside it), nothing written when
the page cannot be."""

from __future__ import annotations

import subprocess

import pytest
from conftest import LOGANALYZER
from reportdata import DAY, PREVIOUS, synth_store

from loganalyzer.report import daily_report


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return synth_store(tmp_path_factory)[1]


def _report(store, *args, cwd) -> subprocess.CompletedProcess:
    """``loganalyzer report daily`` of the store, run as a user runs it."""
    cmd = [LOGANALYZER, "report", "daily", "--store", str(store), *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=cwd)


def _write(store, out, traces: int, cwd) -> None:
    run = _report(store, "--date", DAY, "--out", out, "--traces", traces, cwd=cwd)
    assert run.returncode == 0, run.stderr


def _pages(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.fixture(scope="module")
def failed_senders(store) -> set[str]:
    """The real sender addresses of the day's failed messages (on every trace page)."""
    return set(daily_report(store, DAY).failed["sender"].dropna())


def test_a_redacted_report_over_a_full_one_leaves_no_trace_page(store, tmp_path, failed_senders):
    share = tmp_path / "out" / "share.html"
    full = _report(store, "--date", DAY, "--out", share, "--traces", "4", cwd=tmp_path)
    assert full.returncode == 0, full.stderr
    folder = tmp_path / "out" / "share_traces"
    assert _pages(folder) == ["1.html", "2.html", "3.html", "4.html"]
    assert any(s in (folder / "1.html").read_text(encoding="utf-8") for s in failed_senders)

    redacted = _report(store, "--date", DAY, "--out", share, "--redact", cwd=tmp_path)
    assert redacted.returncode == 0, redacted.stderr
    assert not folder.exists()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["share.html"]  # no leftover
    page = share.read_text(encoding="utf-8")
    assert not any(s in page for s in failed_senders)


def test_the_folder_holds_only_this_runs_pages(store, tmp_path):
    out = tmp_path / "r.html"
    _write(store, out, 5, tmp_path)
    folder = tmp_path / "r_traces"
    day = (folder / "1.html").read_text(encoding="utf-8")
    run = _report(store, "--date", PREVIOUS, "--out", out, "--traces", "2", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _pages(folder) == ["1.html", "2.html"]  # not 3 to 5 of the other day
    assert (folder / "1.html").read_text(encoding="utf-8") != day
    _write(store, out, 0, tmp_path)
    assert not folder.exists()


def test_other_files_in_the_folder_are_kept_and_named(store, tmp_path):
    out = tmp_path / "r.html"
    folder = tmp_path / "r_traces"
    _write(store, out, 3, tmp_path)
    (folder / "notes.txt").write_text("mine", encoding="utf-8")
    (folder / "1.html.bak").write_text("mine too", encoding="utf-8")
    run = _report(store, "--date", DAY, "--out", out, "--traces", "1", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert _pages(folder) == ["1.html", "1.html.bak", "notes.txt"]
    assert (folder / "notes.txt").read_text(encoding="utf-8") == "mine"
    assert (
        f"warning: {folder} holds 2 other files, not written by "
        "loganalyzer, left as they were: 1.html.bak, notes.txt"
    ) in run.stderr.splitlines()


def test_a_killed_runs_hidden_folders_are_removed(store, tmp_path):
    """What a run killed while writing leaves (its staging or set-aside folder of pages) goes
    with the next run; a folder of the same shape holding someone else's file stays."""
    left = tmp_path / ".r_traces.123-abcd.part"
    left.mkdir()
    (left / "1.html").write_text("an old trace page", encoding="utf-8")
    other = tmp_path / ".r_traces.456-ef01.old"
    other.mkdir()
    (other / "keep.txt").write_text("mine", encoding="utf-8")
    out = tmp_path / "r.html"
    _write(store, out, 1, tmp_path)
    assert not left.exists()
    assert _pages(other) == ["keep.txt"]
    assert _pages(tmp_path / "r_traces") == ["1.html"]


@pytest.mark.parametrize("out", ["adir", "", "."])
def test_an_output_that_is_a_folder_writes_nothing(store, tmp_path, out):
    (tmp_path / "adir").mkdir()
    before = sorted(p.name for p in tmp_path.rglob("*"))
    run = _report(store, "--date", DAY, "--out", out, "--traces", "3", cwd=tmp_path)
    assert run.returncode == 2
    assert run.stderr.splitlines() == [f"error: cannot write {out or '.'}: Is a directory"]
    assert sorted(p.name for p in tmp_path.rglob("*")) == before


def test_the_hint_names_the_option_that_cut_the_trace_pages(store, tmp_path):
    cut_by_limit = _report(store, "--date", DAY, "--limit", "2", "--traces", "50", cwd=tmp_path)
    assert cut_by_limit.returncode == 0, cut_by_limit.stderr
    [hint] = [line for line in cut_by_limit.stderr.splitlines() if "Trace pages" in line]
    assert hint.endswith("failed messages (--limit N for more).")
    cut_by_traces = _report(store, "--date", DAY, "--limit", "50", "--traces", "2", cwd=tmp_path)
    [hint] = [line for line in cut_by_traces.stderr.splitlines() if "Trace pages" in line]
    assert hint.startswith("warning: Trace pages for the first 2 of ")
    assert hint.endswith("(--traces N for more).")
