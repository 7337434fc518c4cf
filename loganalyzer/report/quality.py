"""What a period and the store hold: the days and servers' hours without any log row, and
the first and last day of the store (the data-quality section is ``sections/quality.py``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import duckdb
import pandas as pd

from loganalyzer.report.load import Context, frame, hour_ends, hour_index, hours
from loganalyzer.report.period import Period


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
    smtp_hours: pd.DataFrame,
    held: tuple[dt.date, dt.date] | None = None,
) -> tuple[list[dt.date], dict[str, list[str]]]:
    """The period's days without any log row, and per server the hours of the other days
    in which it logged nothing (``2026-03-02 03:00-05:59``, in the period's zone); with
    ``held`` (``store_days``), not the hours before the store's first UTC day (a zone ahead
    of UTC starts its first day before the store does). The hours after its last UTC day are
    named: a day of a zone behind UTC that runs past the logs is a day with hours missing."""
    tracking = frame(
        con,
        f"""
        select upper(server) as server, {hour_index("date_time", ctx.period)} as i
        from trk where date_time >= ? and date_time < ? group by all
        """,
        ctx.window(),
    )
    smtp = smtp_hours.assign(server=smtp_hours["server"].str.upper())[["server", "i"]]
    seen = pd.concat([tracking, smtp], ignore_index=True).dropna()
    idx = hours(ctx.period)
    day_of = [t.date() for t in idx]
    busy: dict[str, set[int]] = {}
    for server, i in zip(seen["server"], seen["i"].astype(int), strict=True):
        if 0 <= i < len(idx):
            busy.setdefault(server, set()).add(i)
    any_hour = set().union(*busy.values()) if busy else set()
    empty = empty_days(ctx.period, [idx[i] for i in any_hour])
    inside = _held(ctx.period, held)
    counted = [i for i in range(len(idx)) if day_of[i] not in empty and inside[i]]
    quiet = {}
    for server in sorted(set(ctx.servers) | set(busy)):
        gaps = [i for i in counted if i not in busy.get(server, set())]
        if gaps:
            quiet[server] = _day_ranges(gaps, ctx.period)
    return empty, quiet


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
