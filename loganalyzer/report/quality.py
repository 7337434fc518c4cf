"""What a period and the store hold: the days and servers' hours without any log row, and
the first and last day of the store (the data-quality section is ``sections/quality.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb
import pandas as pd

from loganalyzer.report.load import Context, frame, hour_ends, hour_index, hours
from loganalyzer.report.period import Period
from loganalyzer.store.rollups import SOURCES

#: A server that logged in this many days before a period is expected to log in it, its
#: hours without a row named: a week, so that a weekend's quiet does not hide a server.
EXPECTED_DAYS = 7

#: An hour without rows from a server is a gap when it would have logged this many messages
#: (tracking) or sessions (SMTP) then: a quiet night's hour without mail is not.
GAP_EXPECTED = 20


def hour_counts(con: duckdb.DuckDBPyConnection, ctx: Context, smtp_hours: pd.DataFrame):
    """Per log (tracking, smtp), server and hour of the period (its index ``i``): the lines
    and the messages or sessions (``units``) logged (``smtp_hours``: the SMTP ones)."""
    tracking = frame(
        con,
        f"""
        select server, {hour_index("date_time", ctx.period)} as i, count(*) as lines,
               count(distinct msg) as units
        from trk where date_time >= ? and date_time < ? group by all
        """,
        ctx.window(),
    )
    both = pd.concat(
        [tracking.assign(log="tracking"), smtp_hours.assign(log="smtp")], ignore_index=True
    )
    return both.assign(i=both["i"].astype(int)) if len(both) else both


def gaps(both: pd.DataFrame, lo: int, hi: int) -> dict[tuple[str, str], tuple[list[int], float]]:
    """Of each (log, server) of ``hour_counts``: the hours ``lo`` to ``hi`` in which it logged
    nothing though it would be expected to log at least ``GAP_EXPECTED`` messages or sessions
    (its share of all servers' that hour, or as many as the hours before and after it each
    had: rows come in bursts of a message or a session, so these are what is counted), and
    how many were expected in them. The one rule of a missing hour."""
    out = {}
    for log, of_log in both.groupby("log", sort=True):
        org = of_log.groupby("i")["units"].sum()
        for server, group in of_log.groupby("server", sort=True, observed=True):
            lines = group.groupby("i")["lines"].sum()
            mine = group.groupby("i")["units"].sum()
            share = mine.sum() / max(org.sum(), 1)
            found, expected = [], 0.0
            for i in range(lo, hi + 1):
                if lines.get(i, 0):
                    continue
                guess = max(share * org.get(i, 0), min(mine.get(i - 1, 0), mine.get(i + 1, 0)))
                if guess >= GAP_EXPECTED:
                    found.append(i)
                    expected += guess
            if found:
                out[(log, server)] = (found, expected)
    return out


def untracked_days(
    con: duckdb.DuckDBPyConnection, ctx: Context, smtp_hours: pd.DataFrame
) -> list[str]:
    """The period's days (in its zone) with SMTP lines but no tracking row: their messages
    are missing from the message figures (tracking logs not collected, or lost)."""
    idx = hours(ctx.period)
    day_of = [t.date() for t in idx]
    tracked = frame(
        con,
        f"""
        select distinct {hour_index("date_time", ctx.period)} as i
        from trk where date_time >= ? and date_time < ?
        """,
        ctx.window(),
    )

    def days(i: pd.Series) -> set[dt.date]:
        return {day_of[h] for h in i.dropna().astype(int) if 0 <= h < len(idx)}

    return sorted(d.isoformat() for d in days(smtp_hours["i"]) - days(tracked["i"]))


def coverage(
    con: duckdb.DuckDBPyConnection,
    ctx: Context,
    both: pd.DataFrame,
    held: tuple[dt.date, dt.date] | None = None,
) -> tuple[list[dt.date], dict[str, list[str]]]:
    """The period's days without any log row, and per server the hours of the other days
    in which it logged nothing (``2026-03-02 03:00-05:59``, in the period's zone): of the
    servers that logged in it or near it (``expected_servers``) every hour when it logged
    none in the period, else those the rule of a gap (``gaps``) names in one of its logs;
    with ``held`` (``store_days``), not the hours before the store's first UTC day (a zone
    ahead of UTC starts its first day before the store does). The hours after its last UTC
    day are named: a day of a zone behind UTC that runs past the logs is a day with hours
    missing. ``both``: the period's ``hour_counts``."""
    idx = hours(ctx.period)
    day_of = [t.date() for t in idx]
    busy: dict[str, set[int]] = {}
    for server, i in zip(both["server"].str.upper(), both["i"], strict=True) if len(both) else ():
        if 0 <= i < len(idx):
            busy.setdefault(server, set()).add(i)
    flagged: dict[str, set[int]] = {}
    for (_, server), (found, _) in gaps(both, 0, len(idx) - 1).items() if len(both) else ():
        flagged.setdefault(server.upper(), set()).update(found)
    any_hour = set().union(*busy.values()) if busy else set()
    empty = empty_days(ctx.period, [idx[i] for i in any_hour])
    inside = _held(ctx.period, held)
    after = _after(ctx.period, held)
    counted = [i for i in range(len(idx)) if day_of[i] not in empty and inside[i]]
    quiet = {}
    for server in sorted(set(expected_servers(con, ctx.period)) | set(busy)):
        mine, named = busy.get(server), flagged.get(server, set())
        silent = [i for i in counted if not mine or (i not in mine and (i in named or after[i]))]
        if silent:
            quiet[server] = _day_ranges(silent, ctx.period)
    return empty, quiet


def expected_servers(con: duckdb.DuckDBPyConnection, period: Period) -> list[str]:
    """The servers (upper case) expected to log in ``period``: those with tracking or SMTP
    rows on its UTC days or the ``EXPECTED_DAYS`` before them, from the manifest's date
    partitions (the ``files`` view). A server retired before the period, or added after it,
    is not; one whose rows ``store prune`` removed is not either."""
    lo, hi = period.utc_dates()
    rows = con.execute(
        """
        select distinct upper(server) from (
            select server, unnest(list_transform(parts,
                   lambda p: regexp_extract(p, $part, 2))) as d
            from files)
        where d between $lo and $hi and server <> ''
        order by 1
        """,
        {
            "part": f"^({'|'.join(SOURCES)})/date=([0-9-]+)/",
            "lo": (lo - dt.timedelta(days=EXPECTED_DAYS)).isoformat(),
            "hi": hi.isoformat(),
        },
    ).fetchall()
    return [s for (s,) in rows]


def held_from(period: Period, days: Iterable[str]) -> dt.date | None:
    """The first of the UTC days ``days`` (``YYYY-MM-DD``: those the store holds rows or a
    rollup of) within ``period`` when it is after the period's first day: the store holds
    the period in part, its logs beginning (or resuming) within it. None when they are there
    from its first day on, or not at all. Whole days: a zone ahead of UTC whose first hours
    fall on the day before the store's first is held."""
    lo, hi = (d.isoformat() for d in period.utc_dates())
    inside = sorted(d for d in days if lo <= d <= hi)
    if inside and inside[0] > period.first.isoformat():
        return dt.date.fromisoformat(inside[0])
    return None


def empty_days(period: Period, busy: Iterable[dt.datetime]) -> list[dt.date]:
    """The period's days (of its zone) without a ``busy`` hour, one that holds a tracking or
    SMTP row: the one rule of reports from rows and from rollups."""
    seen = {pd.Timestamp(t).tz_convert(period.tz).date() for t in busy}
    days = (period.first + dt.timedelta(days=i) for i in range(period.days))
    return [d for d in days if d not in seen]


def pruned_hours(period: Period, kept: Iterable[str], counted: Iterable[str] = ()) -> list[str]:
    """The period's hours whose rows ``store prune`` removed (of the UTC days ``kept``) and
    that the report does not count from a rollup (but the UTC days ``counted``, whole from
    theirs): ``2026-03-31 00:00-19:59`` in the period's zone, as ``coverage`` names hours."""
    gone = _pruned(period, set(kept) - set(counted))
    return _day_ranges([i for i, p in enumerate(gone) if p], period)


def all_pruned(period: Period, kept: Iterable[str], counted: Iterable[str] = ()) -> bool:
    """Whether every hour of the period is one ``pruned_hours`` names: a report from rows
    counts nothing of it."""
    return all(_pruned(period, set(kept) - set(counted)))


def not_pruned(period: Period, days: Iterable[dt.date], kept: Iterable[str]) -> list[dt.date]:
    """Of ``days`` (of the period's zone), those with an hour outside the UTC days ``kept``
    (whose rows ``store prune`` removed): a wholly pruned day is named as pruned
    (``pruned_hours``), not as a day without log rows."""
    idx = hours(period)
    gone = _pruned(period, set(kept))
    open_days = {t.tz_convert(period.tz).date() for t, p in zip(idx, gone, strict=True) if not p}
    return [d for d in days if d in open_days]


def _pruned(period: Period, days: set[str]) -> list[bool]:
    """For each hour of the period, whether its UTC day is one of ``days``."""
    return [t.tz_convert("UTC").date().isoformat() in days for t in hours(period)]


def _held(period: Period, held: tuple[dt.date, dt.date] | None) -> list[bool]:
    """For each hour of the period, whether it ends after the start of the store's first
    UTC day of ``held``."""
    ends = hour_ends(period)
    if held is None:
        return [True] * len(ends)
    return list(ends > pd.Timestamp(held[0], tz="UTC"))


def _after(period: Period, held: tuple[dt.date, dt.date] | None) -> list[bool]:
    """For each hour of the period, whether it ends after the store's last UTC day of
    ``held`` (none: no hour)."""
    ends = hour_ends(period)
    if held is None:
        return [False] * len(ends)
    return list(ends > pd.Timestamp(held[1] + dt.timedelta(days=1), tz="UTC"))


def _day_ranges(gaps: list[int], period: Period) -> list[str]:
    """Hour numbers of ``period`` as local time ranges within a day: ``2026-03-02 03:00-05:59``
    (an hour ends where the next one starts: half an hour on a day of a half-hour change)."""
    idx, ends = hours(period), hour_ends(period) - pd.Timedelta(minutes=1)
    runs: list[list[int]] = []
    for i in gaps:
        if runs and i == runs[-1][1] + 1 and idx[i].date() == idx[runs[-1][0]].date():
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return [f"{idx[a]:%Y-%m-%d %H:%M}-{ends[b]:%H:%M}" for a, b in runs]


def store_days(con: duckdb.DuckDBPyConnection) -> tuple[dt.date, dt.date] | None:
    """The first and last (UTC) day the store holds rows of, from its manifest."""
    (lo, hi) = con.execute(
        """
        select min(d), max(d) from (
            select unnest(list_transform(parts,
                          lambda p: nullif(regexp_extract(p, 'date=([0-9-]+)', 1), ''))) as d
            from files)
        """
    ).fetchall()[0]
    return (dt.date.fromisoformat(lo), dt.date.fromisoformat(hi)) if lo and hi else None
