"""What a report holds of the store, the same from rollups and from rows: whether the
previous period is there to compare with (wholly), which days have no rows, which hours
`store prune` took, which servers it expects rows of; a change against a previous value of 0
said in words; a day without tracking logs said so first."""

from __future__ import annotations

import datetime as dt
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from conftest import built_once, report_json, run_cli
from logfiles import row, write_log
from stores import ingested_here

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


def _build(folder: Path) -> None:
    generate(folder / "logs", servers=2, days=3, messages=80, seed=5, clients=True)
    done = run_cli("ingest", str(folder / "logs"), "--store", str(folder / "full"))
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    """The synth logs, their store ``full`` beside them: built once per run, read only."""
    return built_once(tmp_path_factory, "previous", _build) / "logs"


@pytest.fixture(scope="module")
def full(logs) -> Path:
    return logs.parent / "full"


@pytest.fixture(scope="module")
def pruned(full, tmp_path_factory) -> Path:
    """``full`` pruned before its second day, once per run: read only."""

    def build(folder: Path) -> None:
        st = folder / "pruned"
        shutil.copytree(full, st)
        done = run_cli("store", "prune", "--store", str(st), "--before", SECOND)
        assert done.returncode == 0, done.stderr

    return built_once(tmp_path_factory, "previous-pruned", build) / "pruned"


def test_a_previous_period_of_smtp_lines_alone_is_not_compared_either_way(logs, tmp_path):
    """The first day holds SMTP lines but no tracking row: not a previous period to compare
    with, from rollups as from rows (rollups compared 0 messages against the period's)."""
    day = FIRST.replace("-", "")
    sub = _copy(logs, tmp_path / "logs", lambda f: "ProtocolLog" in str(f) or day not in f.name)
    st = tmp_path / "store"
    ingested_here(sub, st)
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
    ingested_here(sub, st)
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
def untracked(logs, tmp_path_factory) -> Path:
    """The first day's logs and the SMTP logs of the others: the second day has no tracking
    row, so its recipients still deferred at its end are those of the first day's rows."""
    day = FIRST.replace("-", "")

    def build(folder: Path) -> None:
        def keep(f: Path) -> bool:
            return "ProtocolLog" in str(f) or day in f.name

        ingested_here(_copy(logs, folder / "untracked", keep), folder / "store")

    return built_once(tmp_path_factory, "previous-untracked", build) / "store"


def test_a_prune_leaves_the_first_kept_days_still_deferred_as_it_was(untracked, tmp_path):
    """Pruning the day before changed the first kept day's still deferred (its look-back
    read the pruned rows): it is the figure its rollup counted with them."""
    pending = "still_deferred_recipients"
    before, _ = report_json(untracked, "--date", SECOND)
    assert before["headline"][pending] > 0
    st = tmp_path / "store"
    shutil.copytree(untracked, st)
    assert run_cli("store", "prune", "--store", str(st), "--before", SECOND).returncode == 0
    after, err = report_json(st, "--date", SECOND)
    assert after["headline"][pending] == before["headline"][pending]
    totals = {row["figure"]: row["recipients"] for row in after["tables"]["totals"]}
    assert totals["still deferred"] == before["headline"][pending]
    # the rows of those left from the day before are gone: not listed, and said so
    n, listed = before["headline"][pending], len(after["tables"]["pending"])
    who = f"{n - listed:,} of the {n:,}" if listed else f"The {n:,}"
    assert listed < n and f"{who} recipients still deferred are not listed" in err
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


def test_a_previous_period_the_store_holds_in_part_is_not_compared(full, tmp_path):
    """The two days before 2026-03-03 to 2026-03-04 hold the store's first day alone: compared
    as a whole period, every figure was flagged (+100% and more); not compared now, from
    rollups as from rows, and the page, the terminal and --json say why."""
    why = (
        "Not compared with the previous period (2026-03-01 to 2026-03-02): the store's logs "
        "of it begin on 2026-03-02 (UTC), after its first day."
    )
    args = ["--date", LAST, "--days", "2"]
    fast, _ = report_json(full, *args, "--rollups")
    assert fast["previous"] is None and fast["not_compared"] == why
    assert not any("against" in line for line in fast["attention"]), fast["attention"]
    page = tmp_path / "r.html"  # from rows
    done = run_cli("report", "daily", "--store", str(full), *args, "--out", str(page),
                   "--traces", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert why in said and "against" not in said
    assert why in html.unescape(page.read_text(encoding="utf-8"))
    # a zone ahead of UTC: the hour its day before starts ahead of the store's first UTC day
    # does not make that day one held in part
    berlin, _ = report_json(full, "--date", SECOND, "--tz", "Europe/Berlin")
    assert berlin["previous"]["received_messages"] > 0 and berlin["not_compared"] is None
    first, _ = report_json(full, "--date", FIRST)  # nothing before: said as before
    assert first["previous"] is None
    assert first["not_compared"].startswith("The previous period has no message tracking rows")


def test_servers_are_expected_to_log_only_near_their_logs(full, tmp_path):
    """A server whose only rows are months away (retired, or added later) was named every day
    as having "logged nothing in 00:00-23:59"; one that logged the day before still is."""
    logs = tmp_path / "logs"
    near = row(0, date_time=f"{SECOND}T10:00:00.000Z", server_hostname="EXNEAR")
    far = row(1, date_time="2026-05-02T10:00:00.000Z", server_hostname="EXFAR")
    write_log(logs / "EXNEAR" / "MessageTracking" / "MSGTRK2026030310-1.LOG", [near])
    write_log(logs / "EXFAR" / "MessageTracking" / "MSGTRK2026050210-1.LOG", [far])
    st = tmp_path / "store"
    shutil.copytree(full, st)
    ingested_here(logs, st)
    report, err = report_json(st, "--date", LAST, "--from-rows")
    assert report["quiet_hours"]["EXNEAR"] == [f"{LAST} 00:00-23:59"]
    assert "EXNEAR logged nothing in 00:00-23:59 (UTC)." in err
    assert "EXFAR" not in report["quiet_hours"] and "EXFAR" not in err


def test_a_day_without_tracking_logs_says_so_before_its_deferrals(logs, tmp_path):
    """Without the tracking logs of 2026-03-03, the recipients deferred the day before are
    still deferred at its end: said after the line that says the tracking logs are missing
    (they came first)."""
    first, second = FIRST.replace("-", ""), SECOND.replace("-", "")
    sub = _copy(
        logs,
        tmp_path / "logs",
        lambda f: first in f.name or (second in f.name and "MessageTracking" not in f.parts),
    )
    st = tmp_path / "store"
    ingested_here(sub, st)
    report, _ = report_json(st, "--date", SECOND)
    said = report["attention"]
    assert report["tracking_rows"] == 0 and report["headline"]["still_deferred_recipients"] > 0
    assert said[0].startswith(f"No tracking logs of {SECOND}: the SMTP logs show"), said
    assert any(line.endswith("still deferred.") for line in said[1:]), said


def _three_days(folder: Path) -> None:
    """An ordinary day, a day of incidents (a next hop down, a password-guessing burst),
    and an ordinary day again."""
    for i, (day, incidents) in enumerate(((FIRST, False), (SECOND, True), (LAST, False))):
        start = dt.date.fromisoformat(day)
        generate(folder / "logs" / day, servers=2, messages=80, seed=5 + i, start=start,
                 incidents=incidents)  # fmt: skip
    done = run_cli("ingest", str(folder / "logs"), "--store", str(folder / "store"))
    assert done.returncode == 0, done.stderr


def test_only_changes_for_the_worse_need_attention(tmp_path_factory, tmp_path):
    """The day after the incidents listed its fewer deferrals and authentication failures
    under "Needs attention" (``deferrals: 73 against 403 (-82%).``): the comparison table
    flags large changes either way, the list only those for the worse."""
    st = built_once(tmp_path_factory, "previous-incidents", _three_days) / "store"
    worse, _ = report_json(st, "--date", SECOND)
    better, _ = report_json(st, "--date", LAST, "--out", str(tmp_path / "r.html"))
    flagged = {c["figure"] for c in better["tables"]["changes"] if c["flagged"]}
    assert {"deferrals", "authentication failures"} <= flagged
    page = html.unescape(re.sub(r"<[^>]+>", " ", (tmp_path / "r.html").read_text()))
    for figure in ("deferrals", "authentication failures"):
        assert any(a.startswith(f"{figure}: ") for a in worse["attention"]), worse["attention"]
        assert not any(a.startswith(f"{figure}: ") for a in better["attention"])
        assert f"{figure}: " not in page
