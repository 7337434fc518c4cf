"""The one parser of times and dates (``loganalyzer.times``) that every option uses."""

from __future__ import annotations

import datetime as dt

import pytest

from loganalyzer.errors import BadInput
from loganalyzer.times import parse_date, parse_time, zone

NOW = dt.datetime(2026, 3, 4, 0, 30, tzinfo=dt.UTC)  # 01:30 in Berlin, still the 3rd in New York
BERLIN = "Europe/Berlin"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-03-02", "2026-03-02T00:00:00+01:00"),
        ("2026-03-02T14:30", "2026-03-02T14:30:00+01:00"),
        ("2026-03-02 14:30:05", "2026-03-02T14:30:05+01:00"),
        ("2026-03-02T14:30+05:00", "2026-03-02T14:30:00+05:00"),  # its own zone is kept
        ("2026-03-02T13:30Z", "2026-03-02T13:30:00+00:00"),
        ("now", "2026-03-04T01:30:00+01:00"),
        ("today", "2026-03-04T00:00:00+01:00"),
        (" Yesterday ", "2026-03-03T00:00:00+01:00"),
        ("-30m", "2026-03-04T01:00:00+01:00"),
        ("-2h", "2026-03-03T23:30:00+01:00"),
        ("-7d", "2026-02-25T01:30:00+01:00"),
        ("-1w", "2026-02-25T01:30:00+01:00"),
    ],
)
def test_time_forms_are_read_in_the_zone(text, want):
    assert parse_time(text, BERLIN, now=NOW).isoformat() == want


def test_dates_are_days_of_the_zone():
    assert parse_date("today", "America/New_York", now=NOW) == dt.date(2026, 3, 3)
    assert parse_date("today", BERLIN, now=NOW) == dt.date(2026, 3, 4)
    assert parse_date("-7d", "UTC", now=NOW) == dt.date(2026, 2, 25)
    assert parse_date("2026-03-02T23:30Z", BERLIN) == dt.date(2026, 3, 3)
    assert parse_date(dt.date(2026, 3, 2)) == dt.date(2026, 3, 2)
    naive = dt.datetime(2026, 3, 2, 23, 0)
    assert parse_time(naive, BERLIN).isoformat() == "2026-03-02T23:00:00+01:00"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2026-02-30", "--since '2026-02-30': no such date (day is out of range for month)"),
        ("2026-13-01", "--since '2026-13-01': no such date (month must be in 1..12)"),
        ("2026-03-02T25:00", "--since '2026-03-02T25:00': no such time (hour must be in 0..23)"),
        ("last week", "--since 'last week': not a time; give an ISO date or time"),
        ("03/02/2026", "--since '03/02/2026': not a time"),
        ("+2h", "--since '+2h': not a time"),
        ("", "--since '': not a time"),
    ],
)
def test_what_is_not_a_time_is_named(text, message):
    with pytest.raises(BadInput) as refused:
        parse_time(text, option="--since")
    assert str(refused.value).startswith(message)
    assert str(refused.value).endswith("now, today, yesterday, or an offset (-30m, -2h, -7d, -1w)")


def test_unknown_zone():
    for name in ("Nowhere/Land", "", "../etc/passwd"):
        with pytest.raises(BadInput) as refused:
            zone(name)
        assert str(refused.value) == (
            f"unknown time zone {name!r} (an IANA name: UTC, Europe/Berlin)"
        )
