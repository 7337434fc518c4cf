"""Rollups: a report of several days from the rollups gives the figures its rows give; they
stay right through a growing file and compaction; a store without them still reports."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import built_once
from reportdata import CAPPED
from stores import ingested_here

from loganalyzer.ingest import ingest
from loganalyzer.report import daily_report, load
from loganalyzer.report.long import (
    FROM_ROLLUPS,
    LEFT_EMPTY,
    MANIFEST_COLUMNS,
    ROLLUPS_ONLY,
    WHOLE_STORE,
)
from loganalyzer.report.rollup import refresh
from loganalyzer.store import Store
from loganalyzer.store import rollups as store_rollups
from loganalyzer.store.compact import FAILPOINT, compact
from loganalyzer.synth import generate

EXE = str(Path(sys.executable).with_name("loganalyzer"))
LAST, DAYS = "2026-03-03", 2
#: The TLS tables (from the TLS per-day aggregates): synth's clients give rows in each.
TLS_TABLES = ("tls_versions", "tls_legacy", "tls_failures", "tls_plain")
#: The SMTP session tables (from the SMTP per-day line counts).
SMTP_TABLES = ("smtp_summary", "smtp_hourly", "reply_codes", "remote_ips", "auth_failures")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


def _rounded(value):
    """Latency percentiles interpolate in floating point: equal to 12 significant digits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


def _given(rollup: dict, rows: dict) -> tuple[dict, dict]:
    """The tables and headline the rollups give, from both reports."""
    out = []
    for r in (rollup, rows):
        tables = {}
        for name in FROM_ROLLUPS:
            figures = (
                {x["figure"] for x in rollup["tables"][name]}
                if "figure" in str(rollup["tables"][name][:1])
                else None
            )
            rows_of = r["tables"][name]
            if figures is not None:
                rows_of = [x for x in rows_of if x["figure"] in figures]
            tables[name] = rows_of
        out.append(_rounded({"headline": r["headline"], "tables": tables}))
    return out[0], out[1]


def _build(folder: Path) -> None:
    generate(folder / "logs", servers=2, days=DAYS + 1, messages=80, seed=5, clients=True)
    done = _run("ingest", str(folder / "logs"), "--store", str(folder / "store"), "--json")
    assert done.returncode == 0, done.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """The synth store (its logs beside it), built once per run and shared by the workers:
    read only, a test that changes it changes a copy."""
    return built_once(tmp_path_factory, "rollups", _build) / "store"


def _once(tmp_path_factory, name: str, *args: str) -> subprocess.CompletedProcess:
    """``loganalyzer *args`` (of the shared store, which it leaves as it is) run once per run:
    the tests that run the same command share its result."""

    def build(folder: Path) -> None:
        done = _run(*args)
        assert done.returncode == 0, done.stderr
        (folder / "stdout").write_text(done.stdout, encoding="utf-8")
        (folder / "stderr").write_text(done.stderr, encoding="utf-8")

    folder = built_once(tmp_path_factory, name, build)
    out, err = ((folder / f).read_text(encoding="utf-8") for f in ("stdout", "stderr"))
    return subprocess.CompletedProcess([EXE, *args], 0, out, err)


def _period(tmp_path_factory, store: Path, source: str) -> subprocess.CompletedProcess:
    """The report of the period (``DAYS`` days to ``LAST``) of the shared store, --json, from
    ``source`` (``--rollups`` or ``--from-rows``)."""
    common = ["report", "daily", "--store", str(store), "--date", LAST, "--days", str(DAYS)]
    return _once(tmp_path_factory, f"rollups-period{source}", *common, "--json", source)


def _three_days(tmp_path_factory, store: Path) -> dict:
    """The --json report from rollups of the shared store's three days (to 2026-03-04)."""
    common = ["report", "daily", "--store", str(store), "--date", "2026-03-04", "--days", "3"]
    done = _once(tmp_path_factory, "rollups-three-days", *common, "--json", "--rollups")
    return json.loads(done.stdout)


def test_rollup_figures_equal_row_figures_through_the_command(store, tmp_path_factory):
    fast = _period(tmp_path_factory, store, "--rollups")
    slow = _period(tmp_path_factory, store, "--from-rows")
    assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
    a, b = _given(json.loads(fast.stdout), json.loads(slow.stdout))
    assert a["headline"] == b["headline"]
    for name in FROM_ROLLUPS:
        assert a["tables"][name] == b["tables"][name], name
    assert a["headline"]["received_messages"] > 100  # the period holds mail
    _has_every_kind(b)
    # failed logins of one remote IP on both days and servers: summed, servers joined
    assert any(
        x["failures"] > 1 and x["first_seen"][:10] < x["last_seen"][:10] and ", " in x["servers"]
        for x in b["tables"]["auth_failures"]
    )
    full = json.loads(fast.stdout)
    assert "long_period" in full["rules"]
    # history (rollups only): the months' recipients add up to the period's
    monthly = full["tables"]["monthly_servers"]
    assert {m["month"] for m in monthly} == {"2026-03"}
    assert {m["server"] for m in monthly} == {"EX01", "EX02"}
    for col, figure in (
        ("delivered", "delivered_recipients"),
        ("sent_out", "sent_out_recipients"),
        ("failed", "failed_recipients"),
    ):
        assert sum(m[col] for m in monthly) == a["headline"][figure]
        by_connector = full["tables"]["monthly_connectors"]
        assert sum(m[col] for m in by_connector) == a["headline"][figure]
    seen = full["tables"]["senders_seen"]
    senders = next(d["count"] for d in full["tables"]["distinct"] if d["figure"] == "senders")
    system = {s["sender"] for s in full["tables"]["system_senders"]}
    assert system and not system & {s["sender"] for s in seen}
    assert len(seen) == min(200, senders - len(system))
    assert all("2026-03-02" <= s["first_seen"] <= s["last_seen"] <= LAST for s in seen)
    assert [s["first_seen"] for s in seen] == sorted((s["first_seen"] for s in seen), reverse=True)
    assert full["tables"]["quiet_mailboxes"] == []  # a short period: none quiet for 30 days
    # the tables left empty are those declared so, never computed; the row path fills some
    left = {name for name, rows in full["tables"].items() if not rows}
    assert left - {"quiet_mailboxes"} == set(LEFT_EMPTY)
    assert set(full["tables"]) == (
        set(LEFT_EMPTY) | set(FROM_ROLLUPS) | set(ROLLUPS_ONLY) | set(WHOLE_STORE)
    )
    from_rows = json.loads(slow.stdout)["tables"]
    assert [name for name in LEFT_EMPTY if from_rows[name]], "the rows fill none of them"
    assert full["rows_days"] == []  # every day from its rollup and TLS aggregate
    check = _run("store", "check", "--store", str(store), "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["rollups"]["current"] == DAYS + 1
    assert json.loads(check.stdout)["tls_aggregates"]["current"] == DAYS + 1
    assert json.loads(check.stdout)["smtp_line_aggregates"]["current"] == DAYS + 1


def _has_every_kind(figures: dict) -> None:
    """The TLS tables compared hold sessions of every kind: TLS 1.2, legacy TLS 1.0 and 1.1,
    failed negotiations and sessions without TLS, inbound and outbound; the SMTP session
    tables rows of each."""
    t = figures["tables"]
    assert {"TLS 1.2", "TLS 1.0", "TLS 1.1", "failed", "none"} <= {
        v["version"] for v in t["tls_versions"]
    }
    assert {"TLS 1.0", "TLS 1.1"} == {p["version"] for p in t["tls_legacy"]}
    assert {p["direction"] for p in t["tls_failures"]} == {"receive", "send"}
    assert {p["direction"] for p in t["tls_plain"]} == {"receive", "send"}
    # peers seen on several days: first and last seen and the sessions summed over days
    assert any(p["sessions"] > 1 and p["first_seen"] < p["last_seen"] for p in t["tls_legacy"])
    # the SMTP session tables (from the SMTP line counts): both directions, every table
    assert {s["direction"] for s in t["smtp_summary"]} == {"receive", "send"}
    assert all(t[name] for name in SMTP_TABLES)
    assert any(h["inbound"] and h["outbound"] for h in t["smtp_hourly"])


def _both_ways(store: Path, date: str, days: int, tz: str) -> tuple[dict, dict, dict]:
    """The period's report from rollups and from rows, as ``report daily --json`` prints
    them (in this process: the command's path is the first test's)."""
    fast, slow = (
        json.loads(daily_report(store, date, days=days, tz=tz, rollups=way).to_json())
        for way in (True, False)
    )
    a, b = _given(fast, slow)
    return a, b, fast


@pytest.mark.parametrize(
    ("tz", "offset"),
    [
        ("Europe/Berlin", "+01:00"),
        ("America/New_York", "-05:00"),
        ("Australia/Lord_Howe", "+11:00"),
    ],
)
def test_rollups_count_a_period_of_another_zone_as_its_rows(store, tz, offset):
    """In a zone hours from UTC, the UTC days inside the period come from their rollups and
    the parts of the UTC days at its ends from their rows: the same figures as the rows (Lord
    Howe in its summer, UTC+11; UTC+10:30 in its winter)."""
    a, b, full = _both_ways(store, LAST, DAYS, tz)
    assert "long_period" in full["rules"] and full["period"]["tz"] == tz
    assert a == b
    assert a["headline"]["received_messages"] > 100
    _has_every_kind(b)
    assert b["tables"]["tls_legacy"][0]["first_seen"].endswith(offset)


def test_rollups_over_a_change_of_the_clocks_and_a_half_hour_zone(tmp_path):
    generate(
        tmp_path / "logs", servers=2, days=3, messages=40, seed=9, start=dt.date(2026, 3, 28),
        clients=True,
    )  # fmt: skip
    st = tmp_path / "store"
    ingested_here(tmp_path / "logs", st)
    a, b, full = _both_ways(st, "2026-03-30", 2, "Europe/Berlin")  # 03-29 has 23 hours
    assert "long_period" in full["rules"] and len(full["tables"]["hourly"]) == 47
    assert a == b
    _has_every_kind(b)
    # India is UTC+5:30: its hours are not UTC hours, the rows are read
    a, b, full = _both_ways(st, "2026-03-30", 2, "Asia/Kolkata")
    assert "long_period" not in full["rules"] and a == b


def test_tables_left_empty_have_the_row_paths_columns(store):
    fast = daily_report(store, LAST, days=DAYS, rollups=True)
    slow = daily_report(store, LAST, days=DAYS, rollups=False)
    for name, columns in LEFT_EMPTY.items():
        assert list(fast.metrics[name].columns) == list(slow.metrics[name].columns), name
        assert len(fast.metrics[name]) == 0 and list(columns) == list(fast.metrics[name].columns)


def test_manifest_read_positionally_equals_the_file(store):
    import pyarrow.parquet as pq

    from loganalyzer.store.manifest import FIELDS

    expected = {r["file_key"]: r for r in pq.read_table(store / "manifest.parquet").to_pylist()}
    full = Store(store).manifest()
    assert len(full) == len(expected) > 10
    for key, row in full.items():
        for name in FIELDS:
            want = expected[key][name]
            assert getattr(row, name) == (want or [] if name in ("paths", "parts") else want)
    # the long report's columns alone: the same values, the others empty
    few = Store(store).manifest(fields=MANIFEST_COLUMNS)
    kept = {"file_key", "schema_version", *MANIFEST_COLUMNS}
    for key, row in few.items():
        for name in FIELDS:
            got, whole = getattr(row, name), getattr(full[key], name)
            empty = [] if name in ("paths", "parts") else None
            assert got == (whole if name in kept else empty), name
    assert any(r.paths for r in full.values()) and any(r.ingested_at for r in full.values())


def _figures(st) -> tuple[dict, dict]:
    a = daily_report(st, LAST, days=DAYS, rollups=True).to_dict()
    b = daily_report(st, LAST, days=DAYS, rollups=False).to_dict()
    return _given(a, b)


def test_growing_file_then_compaction_keep_rollups_equal(store, tmp_path):
    st = tmp_path / "store"
    shutil.copytree(store, st)
    logs = tmp_path / "logs"
    shutil.copytree(store.parent / "logs", logs)
    before = _figures(st)
    assert before[0] == before[1]
    parts = {d: e.part for d, e in store_rollups.load(Store(st)).items()}
    # a tracking log of the last day grows: its lines again at its end (rows are never
    # de-duplicated, so each counts twice)
    log = sorted(p for p in logs.rglob("MSGTRK*.LOG") if LAST.replace("-", "") in p.name)[0]
    data = log.read_bytes()
    body = [x for x in data.split(b"\r\n")[1:] if x and not x.startswith(b"#")]
    log.write_bytes(data + b"\r\n".join(body) + b"\r\n")
    summary = ingest([logs], st, rollups=refresh)
    assert [(f.status, f.rows) for f in summary.files if f.status == "grown"] == [
        ("grown", len(body))
    ]
    assert summary.days == {LAST}
    grown = _figures(st)
    assert grown[0] == grown[1]
    rebuilt = {d for d, e in store_rollups.load(Store(st)).items() if e.part != parts[d]}
    assert rebuilt == {LAST, "2026-03-04"}  # that day and the next (its lookback)
    compact(st, target_mb=64, rollups=refresh)
    check = Store(st).check()
    assert check["ok"] and check["rollups"]["current"] == DAYS + 1  # none out of date
    assert _figures(st) == grown


def test_store_without_rollups_reports_from_rows_and_compact_builds_them(store, tmp_path):
    st = tmp_path / "store"
    shutil.copytree(store, st)
    (st / store_rollups.INDEX_FILE).unlink()
    shutil.rmtree(st / store_rollups.FOLDER)
    check = Store(st).check()
    assert check["ok"] and check["rollups"]["missing"] == DAYS + 1
    assert any(f"no rollups for {DAYS + 1} days" in n for n in check["notices"])
    a, b = _figures(st)  # the missing days are counted from their rows
    assert a == b
    args = ["report", "daily", "--store", str(st), "--date", LAST, "--days", str(DAYS)]
    said = _run(*args, "--rollups", "--json")
    assert said.returncode == 0
    assert f"warning: {DAYS} days counted from their rows" in said.stderr
    assert json.loads(said.stdout)["rows_days"] == ["2026-03-02", LAST]
    compact(st, rollups=refresh)
    assert "counted from their rows" not in _run(*args, "--rollups", "--json").stderr
    assert Store(st).check()["rollups"]["current"] == DAYS + 1
    assert _figures(st) == (a, b)


def test_a_first_ingest_killed_before_its_rollups_is_named_without_a_cause(store, tmp_path):
    """Killed after its manifest, before its rollup index: `store check` says the days lack
    rollups without claiming the store is older than rollups; the next ingest builds them."""
    st = tmp_path / "store"
    args = ["ingest", str(store.parent / "logs"), "--store", str(st)]
    env = {**os.environ, FAILPOINT: "rollups-renamed"}
    killed = subprocess.run([EXE, *args], env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    check = _run("store", "check", "--store", str(st), "--repair")
    assert check.returncode == 0, check.stdout + check.stderr
    said = f"no rollups for {DAYS + 1} days (first 2026-03-02): an interrupted run, a store"
    assert said in check.stdout and "the next ingest or `store compact` builds" in check.stdout
    assert _run(*args).returncode == 0
    assert "no rollups" not in _run("store", "check", "--store", str(st)).stdout


def test_one_day_report_compares_with_the_day_before_from_its_rollup(store, tmp_path, monkeypatch):
    """The day before's headline figures, read from its rollup, equal those its rows give (a
    copy without rollups), and those of that day's own report; the day's own figures do not
    depend on the comparison."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    (st / store_rollups.INDEX_FILE).unlink()
    shutil.rmtree(st / store_rollups.FOLDER)
    day = ["report", "daily", "--date", LAST, "--json", "--store"]
    fast, slow = _run(*day, str(store)), _run(*day, str(st))
    before = _run("report", "daily", "--date", "2026-03-02", "--json", "--store", str(store))
    assert fast.returncode == slow.returncode == before.returncode == 0, fast.stderr + slow.stderr
    a, b = json.loads(fast.stdout), json.loads(slow.stdout)
    assert a["previous"] == b["previous"] == json.loads(before.stdout)["headline"]
    assert a["previous"]["received_messages"] > 50 and a["previous"]["smtp_sessions"] > 0
    assert a["headline"] == b["headline"] and a["tables"] == b["tables"]
    # with its rollup the day before is not read from rows: only the day itself is loaded
    # (and, before it, the messages with a deferral of the days its still deferred look back)
    loaded = []
    real = load.load

    def counted(con, p, *a, **k):
        if not k.get("deferred_only"):
            loaded.append(p.first)
        return real(con, p, *a, **k)

    monkeypatch.setattr(load, "load", counted)
    alone = daily_report(store, LAST, compare=False)
    assert alone.headline == a["headline"] and loaded == [alone.period.first]
    daily_report(store, LAST)
    assert loaded == [alone.period.first] * 2
    daily_report(st, LAST)  # no rollup: the day before from its rows, then the day
    assert [d.isoformat() for d in loaded[2:]] == ["2026-03-02", LAST]
    # a rollup built from other rows than the store holds is not read either
    stale = tmp_path / "stale"
    shutil.copytree(store, stale)
    index = store_rollups.load(Store(stale))
    index["2026-03-02"].source = "0" * 16
    store_rollups.save(Store(stale), index)
    assert daily_report(stale, LAST).previous == a["previous"]
    assert [d.isoformat() for d in loaded[4:]] == ["2026-03-02", LAST]


def test_one_day_report_takes_its_tls_and_smtp_tables_from_the_days_aggregates(store, monkeypatch):
    """A report of one UTC day whose TLS and SMTP line aggregates are current counts those
    tables from them: the same report, byte for byte, as from its rows (``--from-rows``);
    so does a day in a zone whole hours from UTC, from the hours of the UTC days' aggregates,
    and in a zone of half hours its TLS tables; a day whose aggregate is out of date reads its
    rows."""
    for tz in ("UTC", "Europe/Berlin", "Asia/Kolkata"):
        day = ["report", "daily", "--date", LAST, "--tz", tz, "--json", "--store", str(store)]
        fast, slow = _run(*day), _run(*day, "--from-rows")
        assert fast.returncode == slow.returncode == 0, fast.stderr + slow.stderr
        assert fast.stdout == slow.stdout, tz
    got = json.loads(fast.stdout)["tables"]
    for name in ("tls_versions", "tls_legacy", "tls_failures", "tls_plain", "smtp_hourly"):
        assert got[name], name  # (synth --clients: every kind of TLS peer)
    from loganalyzer.report import sessions
    from loganalyzer.report.sections import tls

    read: list[str] = []

    def reading(module):
        real = module.load
        return lambda con, q: read.append(module.__name__) or real(con, q)

    for module in (tls, sessions):
        monkeypatch.setattr(module, "load", reading(module))
    daily_report(store, LAST)
    assert read == []  # neither read from rows
    daily_report(store, LAST, rollups=False)
    assert read == [sessions.__name__, tls.__name__]
    daily_report(store, LAST, tz="Europe/Berlin")  # the UTC hours of two days' aggregates
    assert read[2:] == []
    # half hours: the SMTP tables (per local hour) from rows, the TLS tables from the whole
    # UTC hours of the parts and from the rows of the half hours at the ends
    daily_report(store, LAST, tz="Asia/Kolkata")
    assert read[2:] == [sessions.__name__]
    # every part out of date (built from other rows than the store holds): from rows
    monkeypatch.setattr(store_rollups, "source", lambda *a, **k: "0" * 16)
    daily_report(store, LAST)
    assert len(read) == 5


def _consistent_after_kill(st: Path) -> None:
    """No damage; at most leftovers of the killed run, which the next run removes."""
    check = Store(st).check()
    assert check["missing"] == check["unreadable"] == check["row_counts"] == []
    assert all("left by an interrupted run" in p for p in check["problems"]), check["problems"]


@pytest.mark.parametrize("stage", ["rollups-renamed", "tls-renamed", "smtp-lines-renamed"])
def test_a_kill_while_rollups_are_written_leaves_the_store_whole(store, tmp_path, stage):
    st = tmp_path / "store"
    shutil.copytree(store, st)
    log = sorted((store.parent / "logs").rglob("MSGTRK*.LOG"))[-1]
    grown = tmp_path / "logs" / "EX99" / log.name
    grown.parent.mkdir(parents=True)
    data = log.read_bytes()
    grown.write_bytes(data + data.split(b"\r\n", 5)[-1])  # a new copy: its lines twice
    env = {**os.environ, FAILPOINT: stage}
    args = [EXE, "ingest", str(grown), "--store", str(st), "--server", "EX99"]
    killed = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    _consistent_after_kill(st)
    # before the index is replaced the rows are in and their day's rollup out of date; after,
    # it is current and the replaced part a leftover
    assert Store(st).check()["rollups"]["stale"] == (1 if stage == "rollups-renamed" else 0)
    a, b = _figures(st)  # a day out of date is counted from its rows
    assert a == b
    again = _run(*args[1:])  # the file is known: nothing to read, its days rebuilt
    assert again.returncode == 0, again.stderr
    check = Store(st).check()
    assert check["ok"] and check["rollups"]["stale"] == check["rollups"]["missing"] == 0
    for kind in ("tls_aggregates", "smtp_line_aggregates"):
        assert check[kind]["stale"] == check[kind]["missing"] == 0
    assert _figures(st) == (a, b)


def test_prune_keeps_the_long_report_and_a_kill_leaves_it_whole(store, tmp_path, tmp_path_factory):
    st = tmp_path / "store"
    shutil.copytree(store, st)
    # the whole store; the recipients still deferred come from the last two days' rows
    common = ["report", "daily", "--store", str(st), "--date", "2026-03-04", "--days", "3"]
    common.append("--rollups")
    before = _three_days(tmp_path_factory, store)  # (the copy's: the same)
    env = {**os.environ, FAILPOINT: "removing"}
    args = [EXE, "store", "prune", "--store", str(st), "--before", "2026-03-03", "--json"]
    killed = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    _consistent_after_kill(st)
    done = _run(*args[1:])
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["days"] == [] or summary["days"] == ["2026-03-02"]
    check = Store(st).check()
    assert check["ok"] and check["rollups"]["kept"] == check["tls_aggregates"]["kept"] == 1
    assert all(before["tables"][name] for name in TLS_TABLES + SMTP_TABLES)  # kept too
    assert check["smtp_line_aggregates"]["kept"] == 1
    assert not list(st.glob("tracking/date=2026-03-02/*"))
    after = json.loads(_run(*common, "--json").stdout)
    assert after["headline"] == before["headline"]
    assert after["tables"] == before["tables"]
    # the pruned day is gone from the rows: the row path no longer sees it
    rows = json.loads(_run(*common, "--json", "--from-rows").stdout)
    assert rows["headline"]["received_messages"] < before["headline"]["received_messages"]
    # nor does a report of that day alone, its kept TLS and SMTP aggregates included
    gone = json.loads(_run("report", "daily", "--store", str(st), "--date", "2026-03-02",
                           "--json").stdout)  # fmt: skip
    assert gone["empty_days"] == []  # named as pruned, not as a day without rows
    assert gone["pruned_hours"] == ["2026-03-02 00:00-23:59"]
    hourly = gone["tables"]["smtp_hourly"]  # every hour of the day, with nothing in it
    assert not any(r["inbound"] or r["outbound"] for r in hourly)
    assert not any(gone["tables"][n] for n in TLS_TABLES + SMTP_TABLES if n != "smtp_hourly")
    bad = _run("store", "prune", "--store", str(st), "--before", "soon")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--before" in bad.stderr
    # a typo of a year (2030 for 2020) removed every row
    future = _run("store", "prune", "--store", str(st), "--before", "2030-01-01")
    assert future.returncode == 2 and future.stderr.count("\n") == 1, future.stderr
    assert "--before 2030-01-01: 2030-01-01 is after today (" in future.stderr
    # a TLS part an earlier version kept (no hours, version 1): read by name, not rebuilt
    part = st / store_rollups.load(Store(st), store_rollups.TLS)["2026-03-02"].part
    pq.write_table(pq.read_table(part).drop_columns(["hour"]), part)
    assert json.loads(_run(*common, "--json").stdout)["tables"] == before["tables"]
    berlin = _run(*common, "--tz", "Europe/Berlin", "--json")  # its end not cut at an hour
    assert berlin.returncode == 0 and json.loads(berlin.stdout)["tables"]["tls_versions"]


def _grown_copy(store: Path, day: str, folder: Path) -> None:
    """A tracking log of ``day`` copied into ``folder`` with one more message received at its
    end: ingested, the copy is the known file grown by that line."""
    log = sorted(p for p in (store.parent / "logs").rglob("MSGTRK*.LOG") if day in p.name)[0]
    data = log.read_bytes()
    line = next(x for x in data.split(b"\r\n") if b",RECEIVE," in x and b",SMTP," in x)
    copy = folder / "EX01" / "MessageTracking" / log.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(
        data + re.sub(rb"<[^<>,]+@[^<>,]+>", b"<grown-1@test>", line, count=1) + b"\r\n"
    )


def test_a_prune_killed_before_its_manifest_leaves_the_store_as_before(
    store, tmp_path, tmp_path_factory
):
    """Killed after the rollup indexes mark the days to prune, before the manifest drops their
    rows: the store is as before the prune, `store check` names the marks, and a log of a
    marked day that grows reaches the rollups as its rows (the marks are not kept ones)."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    common = ["report", "daily", "--store", str(st), "--date", "2026-03-04", "--days", "3"]
    before = _three_days(tmp_path_factory, store)  # (the copy's: the same)
    env = {**os.environ, FAILPOINT: "prune-indexed"}
    args = [EXE, "store", "prune", "--store", str(st), "--before", "2026-03-03", "--json"]
    killed = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    _consistent_after_kill(st)
    check = _run("store", "check", "--store", str(st))
    assert check.returncode == 0, check.stdout + check.stderr
    assert "marked by a stopped `store prune` for 1 day whose rows are still" in check.stdout
    same = json.loads(_run(*common, "--json", "--rollups").stdout)
    assert same["headline"] == before["headline"] and same["tables"] == before["tables"]
    _grown_copy(store, "20260302", tmp_path / "grown")
    grown = ingested_here(tmp_path / "grown", st)
    assert [(f.status, f.rows) for f in grown.files] == [("grown", 1)]
    rollup = json.loads(_run(*common, "--json", "--rollups").stdout)
    rows = json.loads(_run(*common, "--json", "--from-rows").stdout)
    received = before["headline"]["received_messages"] + 1
    assert rollup["headline"]["received_messages"] == rows["headline"]["received_messages"]
    assert rollup["headline"]["received_messages"] == received
    a, b = _given(rollup, rows)
    assert a == b
    check = _run("store", "check", "--store", str(st))
    assert check.returncode == 0 and "store prune" not in check.stdout, check.stdout
    assert Store(st).check()["rollups"]["stale"] == 0  # the grown day rebuilt by the ingest
    # the prune run again removes the day, its rollup (with the grown line) kept
    done = _run(*args[1:])
    assert done.returncode == 0 and json.loads(done.stdout)["days"] == ["2026-03-02"], done
    after = json.loads(_run(*common, "--json", "--rollups").stdout)
    assert after["headline"]["received_messages"] == received
    assert Store(st).check()["rollups"]["kept"] == 1


def test_a_prune_killed_before_its_manifest_leaves_the_next_day_current(store, tmp_path):
    """The day after the pruned ones was given its source without their rows before the
    manifest: a kill there left it out of date (its rows read) until a rebuild. It reads
    current, and `store check --repair` settles it as it was, the store untouched."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    before = {k: dict(e.__dict__) for k, e in store_rollups.load(Store(st)).items()}
    env = {**os.environ, FAILPOINT: "prune-indexed"}
    args = [EXE, "store", "prune", "--store", str(st), "--before", "2026-03-03"]
    killed = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    kinds = ("rollups", "client_aggregates", "tls_aggregates", "smtp_line_aggregates")
    got = Store(st).check()
    assert all(got[k]["stale"] == got[k]["missing"] == 0 for k in kinds), got
    check = _run("store", "check", "--store", str(st), "--repair")
    assert check.returncode == 0, check.stdout + check.stderr
    assert "out of date" not in check.stdout and "store prune" not in check.stdout, check.stdout
    after = {k: dict(e.__dict__) for k, e in store_rollups.load(Store(st)).items()}
    assert after == before  # the marks gone, the sources as before the prune
    got = Store(st).check()
    assert all(got[k]["stale"] == got[k]["missing"] == 0 for k in kinds), got
    # a prune run again leaves the day after current with its rows' new source
    assert _run(*args[1:]).returncode == 0
    got = Store(st).check()
    assert all(got[k]["stale"] == got[k]["missing"] == 0 for k in kinds), got
    entry = store_rollups.load(Store(st))["2026-03-03"]
    assert not entry.source.startswith(store_rollups.REKEYED)


def test_a_kept_day_with_its_rows_is_named_and_a_prune_run_again_finishes_it(
    store, tmp_path, tmp_path_factory
):
    """An earlier version's prune, stopped before its manifest, left plain kept marks on days
    whose rows are all there; late logs of a pruned day leave the same marks beside their
    rows. `store check` names them and says a stopped prune is finished by running it again;
    --repair leaves a kept rollup as it is (the day's rows may be late lines alone: a rebuild
    from them replaced the pruned day's figures)."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    common = ["report", "daily", "--store", str(st), "--date", "2026-03-04", "--days", "3"]
    before = _three_days(tmp_path_factory, store)  # (the copy's: the same)
    with Store(st).lock():  # the old version's state: kept, the rows listed
        for kind in (store_rollups.ROLLUPS, *store_rollups.AGGREGATES):
            index = store_rollups.load(Store(st), kind)
            index["2026-03-02"].source = store_rollups.KEPT
            store_rollups.save(Store(st), index, kind)
    kept = store_rollups.load(Store(st))["2026-03-02"]
    check = _run("store", "check", "--store", str(st), "--repair")
    assert "rollups kept (rows pruned) for 1 day that have rows" in check.stdout, check.stdout
    assert "run it again with the same --before" in check.stdout, check.stdout
    assert store_rollups.load(Store(st))["2026-03-02"] == kept
    assert _run("store", "prune", "--store", str(st), "--before", "2026-03-03").returncode == 0
    got = Store(st).check()
    assert got["ok"] and not got["notices"], got
    after = json.loads(_run(*common, "--json", "--rollups").stdout)
    assert after["headline"] == before["headline"] and after["tables"] == before["tables"]
    # late logs of the pruned day, more rows than it had: its kept rollup stays its record
    one = ["report", "daily", "--store", str(st), "--date", "2026-03-02", "--rollups", "--json"]
    pruned = _run(*one)
    assert json.loads(pruned.stdout)["late_days"] == [] and "Not counted: the rows" not in (
        pruned.stderr
    )
    pruned_day = json.loads(pruned.stdout)["headline"]  # still deferred too: as kept
    generate(tmp_path / "late", servers=2, days=1, messages=300, seed=9)
    ingested_here(tmp_path / "late", st)
    repaired = _run("store", "check", "--store", str(st), "--repair")
    assert "kept (rows pruned) for 1 day" in repaired.stdout, repaired.stdout
    assert store_rollups.load(Store(st))["2026-03-02"] == kept
    late = _run(*one)
    late_day = json.loads(late.stdout)
    assert {k: late_day["headline"][k] for k in pruned_day} == pruned_day
    assert late_day["late_days"] == ["2026-03-02"]
    assert "Not counted: the rows of 2026-03-02 (UTC) ingested after `store prune`" in late.stderr


def test_a_pruned_days_log_grown_is_said_counted_in_part(store, tmp_path):
    """After a prune, a log of the pruned day grown by a line and ingested: a report from rows
    counted that line while it said the day was not counted; it says the day is counted in
    part, from the rows ingested after the prune."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    assert _run("store", "prune", "--store", str(st), "--before", "2026-03-03").returncode == 0
    common = ["report", "daily", "--store", str(st), "--date", "2026-03-02", "--from-rows"]
    gone = _run(*common, "--json")
    assert json.loads(gone.stdout)["headline"]["received_messages"] == 0
    assert "Not counted: 2026-03-02" in gone.stderr, gone.stderr
    _grown_copy(store, "20260302", tmp_path / "grown")
    ingested_here(tmp_path / "grown", st)
    done = _run(*common, "--json")
    report = json.loads(done.stdout)
    assert report["headline"]["received_messages"] == 1  # the grown line
    assert report["pruned_hours"] == [] and "Not counted" not in done.stderr, done.stderr
    assert report["regrown_hours"] == ["2026-03-02 00:00-23:59"]
    assert "Counted in part: 2026-03-02 (UTC), whose rows `store prune` removed" in done.stderr


def test_a_prune_mark_resolves_by_the_days_rows():
    """A ``pruning:`` mark stands for the source it carries while the manifest lists the
    day's rows, for ``kept`` once it does not; status, is_kept and settle read it so."""
    entry = store_rollups.Entry("2026-03-02", "p", store_rollups.PRUNING + "abc")
    assert store_rollups.resolved(entry, {"2026-03-02": {"k"}}) == "abc"
    assert store_rollups.resolved(entry, {}) == store_rollups.KEPT
    assert store_rollups.is_kept(entry, {}) and not store_rollups.is_kept(
        entry, {"2026-03-02": {"k"}}
    )
    plain = store_rollups.Entry("2026-03-02", "p", "abc")
    assert store_rollups.resolved(plain, {}) == "abc"
    after = store_rollups.Entry("2026-03-03", "p", store_rollups.REKEYED + "abc:def")
    assert store_rollups.resolved(after, {"2026-03-02": {"k"}, "2026-03-03": {"k"}}) == "abc"
    assert store_rollups.resolved(after, {"2026-03-03": {"k"}}) == "def"


def test_a_prune_killed_after_its_manifest_keeps_the_days(store, tmp_path, tmp_path_factory):
    """Killed after the manifest dropped the rows, before the marks are made ``kept``: the
    marked days are kept (their rollups the record), and the next writer makes them so."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    common = ["report", "daily", "--store", str(st), "--date", "2026-03-04", "--days", "3"]
    before = _three_days(tmp_path_factory, store)  # (the copy's: the same)
    env = {**os.environ, FAILPOINT: "listed"}
    args = [EXE, "store", "prune", "--store", str(st), "--before", "2026-03-03"]
    killed = subprocess.run(args, env=env, capture_output=True, timeout=300)
    assert killed.returncode == -signal.SIGKILL
    _consistent_after_kill(st)
    check = _run("store", "check", "--store", str(st))
    assert "marked by a stopped `store prune` for 1 day whose rows it removed" in check.stdout
    got = Store(st).check()
    assert got["rollups"]["kept"] == got["tls_aggregates"]["kept"] == 1
    after = json.loads(_run(*common, "--json", "--rollups").stdout)
    assert after["headline"] == before["headline"] and after["tables"] == before["tables"]
    assert _run("store", "compact", "--store", str(st)).returncode == 0
    check = _run("store", "check", "--store", str(st))
    assert check.returncode == 0 and "store prune" not in check.stdout, check.stdout
    entry = store_rollups.load(Store(st))["2026-03-02"]
    assert entry.source == store_rollups.KEPT
    after = json.loads(_run(*common, "--json", "--rollups").stdout)
    assert after["headline"] == before["headline"] and after["tables"] == before["tables"]


def test_a_prune_leaves_the_next_days_aggregates_current(store, tmp_path, tmp_path_factory):
    """The day after the pruned ones keeps the parts built with the pruned rows (what began
    the day before is known to them, no longer to its rows): no day out of date after a
    prune, and the next ingest rebuilds nothing."""
    st = tmp_path / "store"
    shutil.copytree(store, st)
    common = ["report", "daily", "--store", str(st), "--date", LAST, "--days", str(DAYS)]
    before = json.loads(_period(tmp_path_factory, store, "--rollups").stdout)  # (the copy's)
    done = _run("store", "prune", "--store", str(st), "--before", "2026-03-03")
    assert done.returncode == 0, done.stderr
    check = _run("store", "check", "--store", str(st))
    assert check.returncode == 0 and "out of date" not in check.stdout + check.stderr, check
    got = Store(st).check()
    kinds = ("rollups", "client_aggregates", "tls_aggregates", "smtp_line_aggregates")
    assert all(got[k]["stale"] == got[k]["missing"] == 0 for k in kinds), got
    assert got["client_aggregates"]["current"] >= 1
    after = json.loads(_run(*common, "--json", "--rollups").stdout)
    assert before["tables"]["smtp_clients"]
    assert after["tables"]["smtp_clients"] == before["tables"]["smtp_clients"]
    parts = {k: store_rollups.listed(Store(st), k) for k in store_rollups.AGGREGATES}
    ingested_here(store.parent / "logs", st)
    assert {k: store_rollups.listed(Store(st), k) for k in parts} == parts  # none rebuilt


HEAD = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
    "#Log-type: SMTP Receive Protocol Log\r\n#Date: {date}\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
    "event,data,context\r\n"
)
TLS10 = (
    '"TLS protocol SP_PROT_TLS1_0_SERVER negotiation succeeded using bulk encryption algorithm '
    'CALG_AES_128 with strength 128 bits, MAC hash algorithm CALG_SHA1 with strength 160 bits"'
)


def _lines(start: str, steps: list[tuple[str, str, str]], first: int = 0) -> str:
    """Protocol log lines of one inbound session (peer 10.0.88.1), a second apart from
    ``start``: (event, data, context) each."""
    t0 = dt.datetime.fromisoformat(start)
    return "".join(
        f"{(t0 + dt.timedelta(seconds=i)):%Y-%m-%dT%H:%M:%S.000Z},EX09\\Default Frontend EX09,"
        f"08DE5C00000000C1,{first + i},10.0.0.19:25,10.0.88.1:50000,{event},{data},{context}\r\n"
        for i, (event, data, context) in enumerate(steps)
    )


def test_tls_across_midnight_is_counted_once_the_next_day_is_ingested(tmp_path):
    """A session that connects before midnight negotiates TLS after it: its day's TLS
    aggregate, built before the next day's logs came, is rebuilt when they come; a long
    report then gives what the rows give."""
    logs = tmp_path / "logs"
    generate(logs, servers=2, days=2, messages=30, seed=7, clients=True)
    folder = logs / "EX09" / "ProtocolLog" / "SmtpReceive"
    folder.mkdir(parents=True)
    (folder / "RECV2026030223-1.LOG").write_text(
        HEAD.format(date="2026-03-02T23:59:57.000Z")
        + _lines(
            "2026-03-02T23:59:57",
            [("+", "", ""), ("<", "EHLO NIGHTPEER", ""), ("<", "STARTTLS", "")],
        ),
        newline="",
    )
    (folder / "RECV2026030300-1.LOG").write_text(
        HEAD.format(date="2026-03-03T00:00:01.000Z")
        + _lines("2026-03-03T00:00:01", [("*", "", TLS10), ("-", "", "")], first=3),
        newline="",
    )
    # the first day's files, then the second day's
    days = {d: tmp_path / d for d in ("20260302", "20260303")}
    for f in logs.rglob("*.LOG"):
        d = next(d for d in days if d in f.name)
        (days[d] / f.relative_to(logs)).parent.mkdir(parents=True, exist_ok=True)
        f.rename(days[d] / f.relative_to(logs))
    st = tmp_path / "store"
    ingested_here(days["20260302"], st)
    first = store_rollups.load(Store(st), store_rollups.TLS)["2026-03-02"].part
    ingested_here(days["20260303"], st)
    index = store_rollups.load(Store(st), store_rollups.TLS)
    assert index["2026-03-02"].part != first  # rebuilt with the day after
    assert Store(st).check()["tls_aggregates"]["current"] == 2
    a, b, full = _both_ways(st, "2026-03-03", 2, "UTC")
    assert full["rows_days"] == [] and a == b
    _has_every_kind(b)
    night = [p for p in b["tables"]["tls_legacy"] if p["remote_ip"] == "10.0.88.1"]
    assert [(p["hosts"], p["version"], p["sessions"]) for p in night] == [
        ("NIGHTPEER", "TLS 1.0", 1)
    ]
    assert night[0]["first_seen"].startswith("2026-03-02T23:59:57")


def test_lists_a_report_from_rollups_leaves_out_say_so(store, tmp_path, tmp_path_factory):
    """The failed and pending recipients are per-message lists a report from rollups leaves
    empty: the page said "None." beside 60 failed recipients, and `cut` listed them as 0 of 60."""
    page = tmp_path / "period.html"
    common = ["report", "daily", "--store", str(store), "--date", LAST, "--days", str(DAYS)]
    done = _run(*common, "--rollups", "--json", "--out", str(page))
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    failed = report["headline"]["failed_recipients"]
    assert failed > 0 and report["tables"]["failed"] == []
    assert "failed" not in report["cut"] and "pending" not in report["cut"]
    html = page.read_text(encoding="utf-8")
    under = html.split('id="t-failed"', 1)[1].split('id="t-', 1)[0]
    assert f"{failed:,} in the period, not listed: a report from rollups leaves" in under
    assert "None." not in under
    # the tables it does not count said "None." beside hundreds of deferrals and rejections
    rows = json.loads(_period(tmp_path_factory, store, "--from-rows").stdout)["tables"]
    assert "deferral_reasons" in report["left_out"] and "rejections" in report["left_out"]
    for name in report["left_out"]:
        assert report["tables"][name] == []
        under = html.split(f'id="t-{name}"', 1)[1].split('id="t-', 1)[0]
        if name not in ("failed", "pending"):
            assert "Not counted: a report from rollups leaves this table out" in under, name
            assert "None." not in under
    assert rows["deferral_reasons"] and rows["rejections"]  # what --from-rows counts


def test_lists_cut_from_rollups_say_their_lengths(store, tmp_path):
    """A report from rollups cut at --top and --limit says each list's length, the length
    the rows give: failures by domain, the busiest remote IPs and failed logins by IP said
    nothing, nor the senders by first seen."""
    page = tmp_path / "period.html"
    common = ["report", "daily", "--store", str(store), "--date", LAST, "--days", str(DAYS)]
    whole = ["--top", "100000", "--limit", "100000", "--json"]
    rows, full = _run(*common, "--from-rows", *whole), _run(*common, "--rollups", *whole)
    done = _run(*common, "--rollups", "--top", "1", "--limit", "1", "--json", "--out", str(page))
    assert rows.returncode == full.returncode == done.returncode == 0, done.stderr
    rows, full, cut = json.loads(rows.stdout), json.loads(full.stdout), json.loads(done.stdout)
    assert full["cut"] == {}
    lengths = {name: len(r) for name, r in full["tables"].items()}
    # the monthly domains are cut by domain (--top 1: one domain, a row a month)
    domains = {r["domain"] for r in full["tables"]["monthly_domains"]}
    assert len(domains) > 1
    assert cut["cut"].pop("monthly_domains") == {"listed": 1, "total": len(domains)}
    assert set(cut["cut"]) == {n for n in CAPPED if lengths.get(n, 0) > 1}
    assert set(cut["cut"]) >= {"failures_by_domain", "remote_ips", "auth_failures", "senders_seen"}
    html = page.read_text(encoding="utf-8")
    under = html.split('id="t-monthly_domains"', 1)[1].split('id="t-', 1)[0]
    assert f"1 of {len(domains)} recipient domains: the busiest (--top)." in under
    for name, c in cut["cut"].items():
        assert c == {"listed": 1, "total": lengths[name]}, name
        if name in rows["tables"] and name not in LEFT_EMPTY and name not in ROLLUPS_ONLY:
            assert c["total"] == len(rows["tables"][name]), name  # as the rows count it
        under = html.split(f'id="t-{name}"', 1)[1].split('id="t-', 1)[0]
        assert f'class="note">The first 1 of {c["total"]:,}.</p>' in under, name
    distinct = {d["figure"]: d["count"] for d in cut["tables"]["distinct"]}
    # system senders (Exchange's own mailboxes) are left out, as from the top senders
    system = len(full["tables"]["system_senders"])
    assert cut["cut"]["senders_seen"]["total"] == distinct["senders"] - system
    assert cut["cut"]["top_sender_domains"]["total"] == distinct["sender domains"]
    failed_logins = _run(
        "sql", "--store", str(store), "--json",
        "select count(distinct remote_ip) as n from smtp where reply_code = 535 "
        "and direction = 'receive' and date_time >= '2026-03-02T00:00:00Z' "
        f"and date_time < '{LAST}T00:00:00Z'::timestamptz + interval 1 day",
    )  # fmt: skip
    assert cut["cut"]["auth_failures"]["total"] == json.loads(failed_logins.stdout)[0]["n"] > 1
    assert "top_totals" not in cut["tables"]
