"""What `loganalyzer watch` says when an alert resolves: the recovery, not the firing text
with the figures of its last evaluation."""

from __future__ import annotations

import json
import subprocess

from conftest import LOGANALYZER
from test_watch import copy_hours, run_once


def test_a_server_that_logs_again_is_said_to(tmp_path):
    # EX01 silent from 11:00 while EX02 logs to 14:59: it fired at 61 minutes, and resolved
    # with "no log rows from EX01 since 10:58 UTC (240 minutes)", as if it got worse
    logs, watched, store = tmp_path / "all", tmp_path / "logs", str(tmp_path / "store")
    made = subprocess.run(
        [LOGANALYZER, "synth", "--out", str(logs), "--servers", "2", "--days", "1"]
        + ["--messages", "300", "--start", "2026-03-02"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    rounds = []
    for hours, servers in ((range(11), None), (range(11, 15), {"EX02"}), (range(11, 15), None)):
        copy_hours(logs, watched, hours, servers)
        done = run_once(str(watched), "--store", store, "--json")
        assert done.returncode in (0, 2), done.stdout + done.stderr
        rounds.append(json.loads(done.stdout)["notices"])
    said = [(n["status"], n["text"]) for r in rounds for n in r if n["key"] == "EX01"]
    assert [s for s, _ in said] == ["firing", "resolved"], said
    assert said[0][1].startswith("no log rows from EX01 since 2026-03-02 10:5"), said
    assert said[1][1].startswith("EX01 logs again (silent after 2026-03-02 10:5"), said
    assert said[1][1].endswith(" minutes behind the other servers)"), said
