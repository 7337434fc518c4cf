"""The one parser of times and dates (``loganalyzer.times``) that every option uses."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import pytest
from conftest import CORPUS, LOGANALYZER
from logfiles import row, write_log

from loganalyzer.errors import BadInput
from loganalyzer.times import clock, parse_date, parse_time, parse_window, zone, zone_name

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


@pytest.mark.parametrize(
    ("since", "until", "message"),
    [
        ("0001-01-01", None, "--since '0001-01-01': out of range; give a time from 0100-01-01"),
        ("0099-12-31T23:00", None, "--since '0099-12-31T23:00': out of range"),
        (None, "9999-12-31T23:59+00:00", "--until '9999-12-31T23:59+00:00': out of range"),
        (None, "9900-01-01T01:00", "--until '9900-01-01T01:00': out of range"),
        ("-999999w", None, "--since '-999999w': out of range"),
        ("2026-03-03", "2026-03-02", "--since 2026-03-03T00:00:00+00:00 is not before --until"),
    ],
)
def test_a_window_beyond_the_calendar_is_refused(since, until, message):
    """Searches read a day beyond their window: a time near year 1 or 9999 was an
    OverflowError deep in a search; now it is refused, naming the value and the limits."""
    with pytest.raises(BadInput) as refused:
        parse_window(since, until, now=NOW)
    assert str(refused.value).startswith(message)
    assert "out of range" not in message or str(refused.value).endswith("9899-12-31")


def test_a_window_is_read_in_the_zone():
    assert parse_window(None, None) == (None, None)
    start, end = parse_window("0100-01-01", "9899-12-31T23:59")
    assert (start.isoformat(), end.isoformat()) == (
        "0100-01-01T00:00:00+00:00",
        "9899-12-31T23:59:00+00:00",
    )
    start, end = parse_window("today", "now", BERLIN, now=NOW, names=("since", "until"))
    assert (start.isoformat(), end) == ("2026-03-04T00:00:00+01:00", NOW)


@pytest.mark.parametrize(
    ("until", "tz", "end"),
    [
        ("2026-03-02", "UTC", "2026-03-03T00:00:00+00:00"),
        (dt.date(2026, 3, 2), "UTC", "2026-03-03T00:00:00+00:00"),
        ("2026-03-29", BERLIN, "2026-03-30T00:00:00+02:00"),  # a day of 23 hours
        ("yesterday", BERLIN, "2026-03-04T00:00:00+01:00"),
        ("today", BERLIN, "2026-03-05T00:00:00+01:00"),
        # a time is itself
        ("2026-03-02T00:00", "UTC", "2026-03-02T00:00:00+00:00"),
        ("-1d", "UTC", "2026-03-03T00:30:00+00:00"),
    ],
)
def test_until_a_day_is_to_the_end_of_that_day(until, tz, end):
    """``--since 2026-03-02 --until 2026-03-02`` was refused (until that day's midnight)."""
    assert parse_window(None, until, tz, now=NOW)[1].isoformat() == end
    start, _ = parse_window("2026-03-02", "2026-03-02")
    assert start.isoformat() == "2026-03-02T00:00:00+00:00"


def test_unknown_zone():
    # the zone database's files that are no zones (DuckDB's ICU knows none of them)
    for name in ("Nowhere/Land", "", "../etc/passwd", "localtime", "posixrules", "right/UTC",
                 "posix/Europe/Berlin"):  # fmt: skip
        with pytest.raises(BadInput) as refused:
            zone(name)
        assert str(refused.value) == (
            f"unknown time zone {name!r} (an IANA name: UTC, Europe/Berlin)"
        )


def test_a_zone_name_is_read_without_blanks_around_it():
    assert zone_name(" Europe/Berlin\t") == BERLIN and zone_name(None) == "UTC"
    assert parse_time("2026-03-02", "Europe/Berlin ").isoformat() == "2026-03-02T00:00:00+01:00"


def test_every_command_takes_a_zone_name_with_blanks_as_the_name(tmp_path):
    """A --tz with blanks around it does what the name does in every command that takes one
    (it was let through by the check and failed later, where the raw name was handed on)."""
    iis = CORPUS / "iis-smtp" / "msdoc-ex2007-smtp-iislogformat-example.log"
    eml = CORPUS / "headers" / "sisimai_lhost-exchange2007-01.txt"

    def run(folder, *args) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [LOGANALYZER, *map(str, args)], capture_output=True, text=True, cwd=folder
        )
        assert "unexpected" not in done.stderr and "Traceback" not in done.stderr, done.stderr
        return done

    outputs = []
    for tz in ("Europe/Berlin ", BERLIN):
        folder = tmp_path / f"run{len(outputs)}"
        folder.mkdir()
        ingest = run(folder, "ingest", "-s", "st", "--tz", tz, iis)
        assert ingest.returncode == 0 and "could not ingest" not in ingest.stderr, ingest.stderr
        done = [
            run(folder, "sql", "-s", "st", "--json", "select line, date_time from smtp"),
            run(folder, "trace", "-s", "st", "--since", "2006-08-18", "--tz", tz, "--json"),
            run(folder, "report", "daily", "-s", "st", "--date", "2006-08-18", "--tz", tz),
            run(folder, "headers", eml, "--tz", tz, "--json"),
            run(folder, "watch", "-s", "watched", "--once", "--tz", tz, "--json", iis),
        ]
        assert "could not ingest" not in done[-1].stdout + done[-1].stderr
        outputs.append([(d.returncode, d.stdout.replace(str(folder), "")) for d in done])
    assert outputs[0] == outputs[1], "a zone name with blanks is read as another zone"
    assert '"date_time": "2006-08-18T11:17:37' in outputs[0][0][1]  # 13:17:37 CEST


def test_a_timeline_time_in_the_hour_that_comes_twice_names_its_offset():
    berlin = zone("Europe/Berlin")
    first, second = (dt.datetime(2026, 10, 25, h, 30, tzinfo=dt.UTC) for h in (0, 1))
    assert clock(first, berlin) == "2026-10-25 02:30:00.000 CEST"
    assert clock(second, berlin) == "2026-10-25 02:30:00.000 CET"
    assert clock(dt.datetime(2026, 10, 25, 2, 30, tzinfo=dt.UTC), berlin) == (
        "2026-10-25 03:30:00.000"
    )
    assert clock(None, berlin) == ""


def test_a_list_of_messages_in_the_hour_that_comes_twice_names_each_ones_offset(tmp_path):
    # two messages at 02:30 Berlin time an hour apart: the list read as out of order
    rows = [row(i, **{"date-time": f"2026-10-25T0{i}:30:00.000Z"}) for i in (0, 1)]
    write_log(tmp_path / "logs" / "EX01" / "MSGTRK2026102500-1.LOG", rows)
    store = str(tmp_path / "store")
    subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "logs"), "-s", store], check=True,
                   capture_output=True)  # fmt: skip
    shown = subprocess.run(
        [LOGANALYZER, "trace", "--since", "2026-10-25", "--tz", "Europe/Berlin", "-s", store],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    firsts = [ln.split("│")[2].strip() for ln in shown.stdout.splitlines() if "@" in ln]
    assert firsts == ["2026-10-25 02:30:00 CEST", "2026-10-25 02:30:00 CET"], shown.stdout
