"""The daily report: mail-flow figures of one or more days as a ``DailyReport``.

``daily_report`` loads the period into DuckDB once and computes each section's tables
(``sections/``, one module per section); the report object turns them into plotly figures,
one self-contained HTML file, a dict or JSON.
"""

from __future__ import annotations

import datetime as dt
import os

from loganalyzer.errors import BadInput
from loganalyzer.read.query import connect
from loganalyzer.report import load, long, metrics, quality, sections, sessions
from loganalyzer.report.model import DailyReport
from loganalyzer.report.period import Period, parse_date
from loganalyzer.report.redact import redact
from loganalyzer.store import Store

__all__ = ["DailyReport", "Period", "daily_report"]


def daily_report(
    store: str | os.PathLike[str] | Store | None = None,
    date: str | dt.date = "yesterday",
    *,
    days: int = 1,
    tz: str = "UTC",
    top: int = 10,
    accepted_domains: list[str] | None = None,
    problems_first: bool = False,
    redact_addresses: bool = False,
    redact_key: bytes | None = None,
    compare: bool = True,
    limit: int = 200,
    from_rows: bool = False,
) -> DailyReport:
    """The report of ``days`` days ending on ``date`` (``YYYY-MM-DD``, ``today`` or
    ``yesterday``; days are those of time zone ``tz``, which also shows the times).

    ``top``: rows of the top lists. ``accepted_domains``: the organisation's domains, to tell
    internal from external senders where the logs have no directionality (default: the
    domains of delivered recipients). ``redact_addresses`` replaces the local part of every
    address by a keyed hash (``redact_key``, default random) and hides subjects. ``compare``
    adds the previous period's figures when the store has it. ``limit``: rows of the lists of
    failed and pending recipients. A period of several UTC days is counted from the store's
    rollups (``long``) unless ``from_rows``. Raises BadInput for a bad date, zone or number,
    NotAStore for a path that holds no store.
    """
    for name, value in (("top", top), ("limit", limit)):
        if value < 1:
            raise BadInput(f"{name} {value}: give a number of rows of 1 or more")
    period = Period(parse_date(date, tz), days, tz)
    st = (store if isinstance(store, Store) else Store(store)).require()
    if not from_rows and long.applies(period):
        return _finish(
            long.long_report(
                st,
                period,
                top=top,
                limit=limit,
                accepted_domains=accepted_domains,
                compare=compare,
                problems_first=problems_first,
            ),
            redact_addresses,
            redact_key,
        )
    con = connect(st)
    try:
        con.execute(f"set TimeZone = '{tz}'")  # tz is a validated IANA name
        ctx = load.load(con, period, accepted_domains, compare)
        load.create_macros(con)
        sessions.load(con, ctx)
        previous = None
        if ctx.previous is not None and ctx.has_previous:
            previous = {
                **metrics.headline(con, ctx, ctx.previous),
                **sessions.counts(con, ctx, ctx.previous),
            }
        current = {
            **metrics.headline(con, ctx, period),
            **sessions.counts(con, ctx, period),
        }
        tables = sections.compute(sections.Inputs(con, ctx, top, limit, current, previous))
        empty_days, quiet_hours = quality.coverage(con, ctx, sessions.server_hours(con))
        held = quality.store_days(con)
    finally:
        con.close()
    report = DailyReport(
        period=period,
        store=str(st.root),
        metrics=tables,
        headline=current,
        previous=previous,
        rules={**metrics.COUNTING_RULES, **sections.rules()},
        accepted_domains=ctx.accepted_domains,
        accepted_inferred=ctx.accepted_inferred,
        top=top,
        limit=limit,
        problems_first=problems_first,
        redacted=redact_addresses,
        empty_days=empty_days,
        quiet_hours=quiet_hours,
        store_days=held,
    )
    return _finish(report, redact_addresses, redact_key)


def _finish(report: DailyReport, redact_addresses: bool, key: bytes | None) -> DailyReport:
    if redact_addresses:
        redact(report, key or os.urandom(16))
    return report
