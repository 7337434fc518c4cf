"""The demo a new user runs first, on the bundled samples."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from importlib import resources
from pathlib import Path

from conftest import LOGANALYZER

from loganalyzer.demo import SAMPLE_DAY, SAMPLES, make_samples, run_demo


def test_bundled_samples_are_what_synth_writes(tmp_path):
    bundled = (resources.files("loganalyzer") / "samples" / SAMPLES).read_bytes()
    assert 100_000 < len(bundled) < 1_500_000
    assert make_samples(tmp_path / SAMPLES).read_bytes() == bundled


def test_demo_ingests_traces_and_says_what_next(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    out = cli("demo")
    assert out.exit_code == 0, out.stdout
    text = " ".join(out.stdout.split())
    assert "0 quarantined lines" in text and "0 unreadable" in text
    assert "Trace a failed message" in text and "Trace a delivered message" in text
    assert "failed" in text and "delivered to a mailbox" in text and "Try next" in text
    assert (tmp_path / "loganalyzer-demo" / "store" / "manifest.parquet").is_file()
    assert (tmp_path / "loganalyzer-demo" / "truth.jsonl").is_file()
    report = tmp_path / "loganalyzer-demo" / "report-2026-03-02.html"
    assert report.is_file() and "report-2026-03-02.html" in text
    assert "Failures" in report.read_text(encoding="utf-8")
    again = run_demo(tmp_path / "loganalyzer-demo")  # a second run reads nothing new
    assert again.ingest.rows == 0 and set(again.traces) == {"failed", "delivered"}


def test_demo_suggests_the_sample_day_and_no_macos_command(tmp_path):
    """The report it suggests is of the sample day (yesterday has no data), and the page is
    offered as a file URL, which any browser opens on any system (``open`` is macOS's)."""
    exe = LOGANALYZER
    # at the width of a small terminal (and of a pipe): a suggestion is never broken over two
    # lines, which the user would have to join to copy it, however deep tmp_path is
    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run(
        [exe, "demo", "--folder", "demo"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
        env=env,
    )
    assert out.returncode == 0, out.stderr
    lines = [x.strip() for x in out.stdout.splitlines()]
    # its sections numbered in turn (both traces were "2.")
    assert [x.strip("─ ") for x in lines if x.startswith("─")] == [
        "1. Ingest: a day of logs of three Exchange servers and an IIS relay",
        "2. Trace a failed message",
        "3. Trace a delivered message",
        "4. Try next",
    ]
    page = (tmp_path / "demo" / f"report-{SAMPLE_DAY}.html").resolve()
    assert page.as_uri() in lines
    store = Path("demo") / "store"
    assert f"loganalyzer report daily --date {SAMPLE_DAY} --store {store} --out day.html" in lines
    assert SAMPLE_DAY.isoformat() == "2026-03-02"
    assert not [x for x in lines if x.startswith("open ")]
    assert "Traceback" not in out.stderr
    # every command it suggests works as given (the new user's next step)
    suggested = [x for x in lines if x.startswith("loganalyzer ")]
    assert f"loganalyzer trace --verdict failed --store {store}" in suggested
    for line in suggested:
        done = subprocess.run(
            [exe, *shlex.split(line)[1:]], capture_output=True, text=True, timeout=300, cwd=tmp_path
        )
        assert done.returncode == 0, (line, done.stderr)
        assert done.stdout.strip(), line
    # the store is built as `loganalyzer ingest` builds one: its rollups and per-day
    # aggregates too (store check named five of them missing for the sample day)
    check = subprocess.run(
        [exe, "store", "check", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    found = json.loads(check.stdout)
    assert check.returncode == 0 and found["ok"] and found["notices"] == [], found["notices"]


def test_demo_refuses_a_folder_of_other_things(tmp_path):
    """A folder that holds anything else (a real store, a synth's truth) is left alone."""
    folder = tmp_path / "prod"
    (folder / "store").mkdir(parents=True)
    (folder / "truth.jsonl").write_text("my notes\n")
    out = subprocess.run([LOGANALYZER, "demo", "--folder", str(folder)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert f"--folder {folder}: not empty and not a demo's folder" in out.stderr
    assert (folder / "truth.jsonl").read_text() == "my notes\n"
    assert sorted(p.name for p in folder.iterdir()) == ["store", "truth.jsonl"]
    # a demo made before the marker existed is still the demo's own
    earlier = tmp_path / "earlier"
    run_demo(earlier)
    (earlier / ".loganalyzer-demo").unlink()
    assert run_demo(earlier).ingest.rows == 0
