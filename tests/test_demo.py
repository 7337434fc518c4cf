"""The demo a new user runs first, on the bundled samples."""

from __future__ import annotations

from importlib import resources

from loganalyzer.demo import SAMPLES, make_samples, run_demo


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
