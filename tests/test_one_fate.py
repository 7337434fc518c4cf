"""One source, one answer: on a synth day the daily report's recipient outcomes, the
``messages`` view and a trace of every message give the same verdicts, since all three take
them from ``loganalyzer.fate``.

The report and the trace are read from the installed ``loganalyzer`` command, as a user
reads them; the view through the library. Both Exchange 2016 and Exchange 2003 logs: their
events differ, the rules are the same.
"""

from __future__ import annotations

import json
import subprocess
from collections import Counter

import pytest
from conftest import LOGANALYZER

import loganalyzer as la
from loganalyzer.synth import generate

DAY = "2026-03-02"
#: The report's totals rows and the verdict each counts.
FIGURES = {
    "delivered": "delivered",
    "sent out": "sent_external",
    "failed": "failed",
    "dropped": "dropped",
    "quarantined": "quarantined",
    "still deferred": "deferred",
    "expanded (lists)": "expanded",
}


def loganalyzer(*args: object) -> dict:
    done = subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module", params=[2016, 2003])
def day(request, tmp_path_factory):
    """(store, the trace of every message of the day, the report of the day)."""
    base = tmp_path_factory.mktemp(f"fate{request.param}")
    logs, store = base / "logs", base / "store"
    generate(logs, servers=3, days=1, messages=120, seed=5, exchange=request.param)
    assert la.ingest([logs], store).exit_code == 0
    traced = loganalyzer(
        "trace", "--store", store, "--since", DAY, "--until", "2026-03-03", "--all", "--json"
    )
    report = loganalyzer("report", "daily", "--store", store, "--date", DAY, "--json")
    return store, traced, report


def _verdicts(traced: dict) -> list[tuple[str, dict]]:
    """(Message-ID, verdict) of every recipient of every traced message, list members too."""

    def flat(v: dict) -> list[dict]:
        return [v, *(x for m in v["members"] for x in flat(m))]

    return [
        (m["message_id"], x) for m in traced["messages"] for v in m["recipients"] for x in flat(v)
    ]


def test_the_day_has_every_verdict_the_report_counts(day):
    _, traced, _ = day
    kinds = Counter(v["verdict"] for _, v in _verdicts(traced))
    assert set(FIGURES.values()) <= set(kinds)
    assert len(traced["messages"]) == traced["total"] > 100


def test_the_report_counts_what_the_trace_says(day):
    """Per verdict, the report's (messages, recipients) are the trace's: a redirected address
    counts once, by its target."""
    _, traced, report = day
    per: dict[str, tuple[set, int]] = {}
    for mid, v in _verdicts(traced):
        if v["redirected_to"] or not (v["date_time"] or "").startswith(DAY):
            continue
        ids, n = per.get(v["verdict"], (set(), 0))
        per[v["verdict"]] = (ids | {mid}, n + 1)
    totals = {r["figure"]: (r["messages"], r["recipients"]) for r in report["tables"]["totals"]}
    got = {figure: totals[figure] for figure in FIGURES}
    want = {f: (len(per[v][0]), per[v][1]) if v in per else (0, 0) for f, v in FIGURES.items()}
    assert got == want
    headline = report["headline"]
    assert headline["delivered_recipients"] == per["delivered"][1]
    assert headline["sent_out_recipients"] == per["sent_external"][1]
    assert headline["failed_recipients"] == per["failed"][1]
    assert headline["still_deferred_recipients"] == per["deferred"][1]


def test_the_messages_view_gives_each_recipient_the_trace_verdict(day):
    store, traced, _ = day
    rows = la.Store(store).sql(
        "select message_id, r.recipient, r.verdict from messages, unnest(recipients) as u(r)"
    )
    view = {
        (m, r): v
        for m, r, v in zip(rows["message_id"], rows["recipient"], rows["verdict"], strict=True)
    }
    traced_verdicts = {(mid, v["address"].lower()): v["verdict"] for mid, v in _verdicts(traced)}
    assert {k: view.get(k) for k in traced_verdicts} == traced_verdicts
    counts = la.Store(store).sql(
        "select sum(delivered) as d, sum(failed) as f, sum(deferred) as w from messages"
    )
    trace_counts = Counter(traced_verdicts.values())
    assert counts.iloc[0].tolist() == [
        trace_counts["delivered"],
        trace_counts["failed"],
        trace_counts["deferred"],
    ]
