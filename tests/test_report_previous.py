"""What a report holds of the store, the same from rollups and from rows: whether the
previous period is there to compare with, which days have no rows, which hours `store prune`
took; and a change against a previous value of 0 said in words."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import report_json, run_cli

from loganalyzer.synth import generate

FIRST, SECOND, LAST = "2026-03-02", "2026-03-03", "2026-03-04"
NY = "America/New_York"


def _both(store: Path, *args: str) -> tuple[dict, dict]:
    return report_json(store, *args, "--rollups")[0], report_json(store, *args, "--from-rows")[0]


def _copy(logs: Path, to: Path, keep) -> Path:
    for f in logs.rglob("*"):
        if f.is_file() and keep(f):
            (to / f.relative_to(logs)).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(f, to / f.relative_to(logs))
    return to


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    base = tmp_path_factory.mktemp("previous")
    generate(base / "logs", servers=2, days=3, messages=80, seed=5, clients=True)
    return base / "logs"


@pytest.fixture(scope="module")
def full(logs) -> Path:
    st = logs.parent / "full"
    assert run_cli("ingest", str(logs), "--store", str(st)).returncode == 0
    return st


@pytest.fixture(scope="module")
def pruned(full) -> Path:
    st = full.parent / "pruned"
    shutil.copytree(full, st)
    done = run_cli("store", "prune", "--store", str(st), "--before", SECOND)
    assert done.returncode == 0, done.stderr
    return st


def test_a_previous_period_of_smtp_lines_alone_is_not_compared_either_way(logs, tmp_path):
    """The first day holds SMTP lines but no tracking row: not a previous period to compare
    with, from rollups as from rows (rollups compared 0 messages against the period's)."""
    day = FIRST.replace("-", "")
    sub = _copy(logs, tmp_path / "logs", lambda f: "ProtocolLog" in str(f) or day not in f.name)
    st = tmp_path / "store"
    assert run_cli("ingest", str(sub), "--store", str(st)).returncode == 0
    for args in (["--date", LAST, "--days", "2"], ["--date", SECOND, "--days", "2", "--tz", NY]):
        fast, slow = _both(st, *args)
        assert fast["previous"] is None and slow["previous"] is None, args
        assert fast["empty_days"] == slow["empty_days"] == [], args
        assert not any("against" in line for line in fast["attention"] + slow["attention"])


def test_a_day_of_a_zone_with_rows_in_its_last_hours_is_not_empty_either_way(full):
    """2026-03-01 in New York ends at 05:00 UTC on the store's first day: its rows there
    make it a day with rows from rollups as from rows."""
    fast, slow = _both(full, "--date", FIRST, "--days", "2", "--tz", NY)
    assert fast["empty_days"] == slow["empty_days"] == []
    assert fast["headline"] == slow["headline"]
    assert fast["headline"]["smtp_sessions"] > 0


def test_a_previous_value_of_zero_is_said_in_words(logs, tmp_path):
    """Against a day with one hour of tracking rows, figures it had none of: "against none
    before", never a share (it was "+nan%") on stderr, the page or in --json."""
    first = sorted(
        f.name for f in (logs / "EX01" / "MessageTracking").glob(f"MSGTRK{FIRST.replace('-', '')}*")
    )[0]
    sub = _copy(
        logs,
        tmp_path / "logs",
        lambda f: (
            SECOND.replace("-", "") in f.name
            or ("ProtocolLog" in str(f) and FIRST.replace("-", "") in f.name)
            or (f.name == first and f.parent.parent.name == "EX01")
        ),
    )
    st = tmp_path / "store"
    assert run_cli("ingest", str(sub), "--store", str(st)).returncode == 0
    page = tmp_path / "r.html"
    done = run_cli("report", "daily", "--store", str(st), "--date", SECOND, "--out", str(page))
    assert done.returncode == 0, done.stderr
    report, _ = report_json(st, "--date", SECOND)
    none = [line for line in report["attention"] if "against none before" in line]
    assert none, report["attention"]
    assert report["previous"] is not None and report["previous"]["received_messages"] > 0
    said = " ".join((done.stdout + done.stderr).split())  # the terminal wraps long lines
    assert none[0] in said
    text = page.read_text(encoding="utf-8")
    assert none[0] in text and "(+nan%)" not in text  # (plotly.js names isNaN)
    for out in (said, json.dumps(report)):
        assert not re.search(r"\bnan\b", out, re.IGNORECASE), out


def test_pruned_hours_at_a_zones_end_are_named(full, pruned):
    """A day of New York starting on a pruned UTC day: its hours there are not counted and
    the report says which (--json, stderr) and what counts them whole; in UTC the rollups
    count the pruned day as before the prune."""
    args = ["--date", LAST, "--days", "3", "--rollups"]
    report, err = report_json(pruned, *args, "--tz", NY)
    assert report["pruned_hours"] == [f"{FIRST} 00:00-18:59"]
    assert "Not counted: 2026-03-02 00:00-18:59 (America/New_York)" in err
    assert "--tz UTC" in err
    before, _ = report_json(full, *args, "--tz", NY)
    assert report["headline"]["received_messages"] < before["headline"]["received_messages"]
    utc, err = report_json(pruned, *args)
    assert utc["pruned_hours"] == [] and "Not counted" not in err
    was, _ = report_json(full, *args)
    assert utc["headline"] == was["headline"]


def test_a_pruned_day_is_reported_from_its_rollup_with_rollups(full, pruned):
    """--rollups for one pruned day reads its rollup (it gave zeros, the option ignored);
    a report from rows names the pruned days and the option that counts them. The recipients
    still deferred at its end (counted from the rows of its last two days: 0 once they were
    gone) are those its rollup kept, in every report that shows the day."""
    gone, _ = report_json(pruned, "--date", FIRST, "--rollups")
    was, _ = report_json(full, "--date", FIRST, "--rollups")
    rows, _ = report_json(full, "--date", FIRST, "--from-rows")
    assert gone["headline"]["received_messages"] > 0
    for r in (was, rows):
        assert gone["headline"] == r["headline"]
    pending = "still_deferred_recipients"
    assert gone["headline"][pending] > 0
    assert f"{gone['headline'][pending]} recipients are still deferred." in gone["attention"]
    after, _ = report_json(pruned, "--date", SECOND, "--rollups")  # the day compared with
    long, _ = report_json(pruned, "--date", FIRST, "--days", "8")
    assert after["previous"][pending] == long["headline"][pending] == gone["headline"][pending]
    assert gone["empty_days"] == [] and gone["pruned_hours"] == []
    report, err = report_json(pruned, "--date", SECOND, "--days", "2")
    assert report["pruned_hours"] == [f"{FIRST} 00:00-23:59"]
    # named as pruned, not also as a day without log rows (the two contradicted each other)
    assert report["empty_days"] == [] and "No log rows" not in err
    assert "Not counted: 2026-03-02 (UTC), whose rows `store prune` removed" in err
    assert "`--rollups` counts pruned days" in err


@pytest.fixture(scope="module")
def untracked(logs) -> Path:
    """The first day's logs and the SMTP logs of the others: the second day has no tracking
    row, so its recipients still deferred at its end are those of the first day's rows."""
    day = FIRST.replace("-", "")
    sub = _copy(logs, logs.parent / "untracked", lambda f: "ProtocolLog" in str(f) or day in f.name)
    st = logs.parent / "untracked-store"
    assert run_cli("ingest", str(sub), "--store", str(st)).returncode == 0
    return st


def test_a_prune_leaves_the_first_kept_days_still_deferred_as_it_was(untracked, tmp_path):
    """Pruning the day before changed the first kept day's still deferred (its look-back
    read the pruned rows): it is the figure its rollup counted with them."""
    pending = "still_deferred_recipients"
    before, _ = report_json(untracked, "--date", SECOND)
    assert before["headline"][pending] > 0
    st = tmp_path / "store"
    shutil.copytree(untracked, st)
    assert run_cli("store", "prune", "--store", str(st), "--before", SECOND).returncode == 0
    after, _ = report_json(st, "--date", SECOND)
    assert after["headline"][pending] == before["headline"][pending]
    totals = {row["figure"]: row["recipients"] for row in after["tables"]["totals"]}
    assert totals["still deferred"] == before["headline"][pending]
    # both days pruned: a report of the second from rows counts nothing of it, and compares
    # nothing ("SMTP sessions: 0 against 330 (-100%)", every figure flagged)
    assert run_cli("store", "prune", "--store", str(st), "--before", LAST).returncode == 0
    gone, err = report_json(st, "--date", SECOND)
    assert gone["pruned_hours"] == [f"{SECOND} 00:00-23:59"], gone["pruned_hours"]
    assert "Not counted: 2026-03-03 (UTC)" in err
    assert gone["previous"] is None
    assert all(row["previous"] is None for row in gone["tables"]["changes"])
    assert not any("against" in line for line in gone["attention"]), gone["attention"]
    assert gone["headline"][pending] == before["headline"][pending]
