"""Hours and days of zones whose clocks change by half an hour (Lord Howe), and a local day
that runs past the store's last logged day (a zone behind UTC)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import report_json, run_cli
from reportdata import Expected

from loganalyzer.report.long import applies
from loganalyzer.report.period import Period
from loganalyzer.synth import generate

LH = "Australia/Lord_Howe"
#: (synth start, the day the clocks change, the day after): back half an hour on 5 April
#: (24.5 hours), forward on 4 October (23.5 hours).
CHANGES = {
    "april": ("2026-04-04", "2026-04-05", "2026-04-06"),
    "october": ("2026-10-03", "2026-10-04", "2026-10-05"),
}


_STORES: dict[str, tuple[Path, list[dict], str, str]] = {}


def _around(name: str, tmp_path_factory) -> tuple[Path, list[dict], str, str]:
    """(store, truth rows, day of the change, day after) of two synth days around it."""
    if name not in _STORES:
        start, day, after = CHANGES[name]
        base = tmp_path_factory.mktemp(name)
        start = dt.date.fromisoformat(start)
        generate(base / "logs", servers=2, days=2, messages=600, seed=5, start=start)
        done = run_cli("ingest", str(base / "logs"), "--store", str(base / "store"))
        assert done.returncode == 0, done.stderr
        truth = [json.loads(x) for x in (base / "logs" / "truth.jsonl").open(encoding="utf-8")]
        _STORES[name] = (base / "store", truth, day, after)
    return _STORES[name]


@pytest.fixture(scope="module", params=sorted(CHANGES))
def change(request, tmp_path_factory):
    return _around(request.param, tmp_path_factory)


@pytest.fixture(scope="module")
def april(tmp_path_factory):
    return _around("april", tmp_path_factory)


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_hours_follow_local_hours_across_a_half_hour_change(change):
    """Every row falls in one hour of the table, each hour within one local hour: the hours
    sum to the day's totals, and each holds the truth's rows of its span."""
    store, truth, day, _ = change
    got, _ = report_json(store, "--date", day, "--tz", LH)
    hourly = got["tables"]["hourly"]
    want = Expected(truth, day, LH)
    assert sum(h["received"] for h in hourly) == got["headline"]["received_messages"]
    assert sum(h["delivered"] for h in hourly) == got["headline"]["delivered_recipients"]
    assert got["headline"]["received_messages"] == len(want.received)
    starts = [_t(h["hour"]) for h in hourly]
    ends = [*starts[1:], _t(got["period"]["end"])]
    for a, b in zip(starts, ends, strict=True):
        first, last = (t.astimezone(ZoneInfo(LH)) for t in (a, b - dt.timedelta(seconds=1)))
        assert (first.date(), first.hour) == (last.date(), last.hour), (a, b)
    for h, a, b in zip(hourly, starts, ends, strict=True):
        received = sum(a <= _t(m["received_at"]) < b for m in want.received)
        delivered = sum(a <= _t(r["at"]) < b for r in want.outcome("delivered"))
        assert (h["received"], h["delivered"]) == (received, delivered), h["hour"]
    labels = [h["hour"][11:16] + h["hour"][-6:] for h in hourly[:4]]
    if day.endswith("04-05"):  # back: 01:30-01:59 twice, the second time half an hour
        assert len(hourly) == 25 and labels[1:3] == ["01:00+11:00", "01:30+10:30"]
    else:  # forward: 02:00-02:29 never happens, 02:30-02:59 is the hour of 2 o'clock
        assert len(hourly) == 24 and labels[1:3] == ["01:00+10:30", "02:30+11:00"]
    assert all(h["hour"] for h in got["tables"]["latency_hourly"])


def test_a_days_figures_are_the_same_in_every_report(change):
    """The per-day table of a report of two days gives each day the figures of its own
    report, from rows and when rollups are asked for (a half-hour zone is counted from rows)."""
    store, _, day, after = change
    alone = {d: report_json(store, "--date", d, "--tz", LH)[0]["headline"] for d in (day, after)}
    for how in ("--from-rows", "--rollups"):
        both, _ = report_json(store, "--date", after, "--days", "2", "--tz", LH, how)
        daily = {d["day"]: (d["received"], d["delivered"]) for d in both["tables"]["daily"]}
        assert daily == {
            d: (h["received_messages"], h["delivered_recipients"]) for d, h in alone.items()
        }, how


def test_rollups_only_for_a_zone_whole_hours_from_utc_throughout():
    """Rollups count UTC hours: Lord Howe's summer (UTC+11) can be read from them, not a
    period over its change to UTC+10:30, nor Kathmandu (UTC+5:45)."""
    assert applies(Period(dt.date(2026, 3, 3), 2, LH), True)
    assert applies(Period(dt.date(2026, 3, 3), 2, "America/New_York"), True)
    assert not applies(Period(dt.date(2026, 4, 6), 2, LH), True)
    assert not applies(Period(dt.date(2026, 3, 3), 2, "Asia/Kathmandu"), True)


@pytest.mark.parametrize(
    ("tz", "hours"), [("Pacific/Pago_Pago", "13:00-23:59"), ("America/New_York", "20:00-23:59")]
)
def test_the_hours_of_a_day_past_the_last_logs_are_named(april, tz, hours):
    """The logs end with a UTC day; a zone behind UTC runs its last local day on into the
    next UTC day, which holds no rows: those hours are named as any hours without rows."""
    store, _, day, _ = april
    got, err = report_json(store, "--date", day, "--tz", tz)
    assert got["store_days"]["last"] == day
    # (a server's own gaps earlier in the day are named too)
    assert {s: h[-1] for s, h in got["quiet_hours"].items()} == {
        s: f"{day} {hours}" for s in ("EX01", "EX02")
    }
    assert f"EX01 logged nothing in {hours} ({tz})" in err
