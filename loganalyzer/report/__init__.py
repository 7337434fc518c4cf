"""The daily report: mail-flow figures of one or more days as a ``DailyReport``.

``daily_report`` loads the period into DuckDB once and computes each section's tables
(``sections/``, one module per section); the report object turns them into plotly figures,
one self-contained HTML file, a dict or JSON.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterable

from loganalyzer.errors import BadInput, as_list, whole
from loganalyzer.pages import display_subject
from loganalyzer.read.query import connect
from loganalyzer.report import domains, load, long, metrics, quality, sections, sessions
from loganalyzer.report.model import DailyReport
from loganalyzer.report.period import Period, parse_date
from loganalyzer.report.redact import redact
from loganalyzer.report.sections import changes
from loganalyzer.report.sections.history import QUIET_DAYS, QUIET_DAYS_MAX
from loganalyzer.report.sections.vip import vip_list
from loganalyzer.store import Store
from loganalyzer.store import rollups as store_rollups
from loganalyzer.times import parse_duration, zone_name

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
    redact_key: bytes | str | None = None,
    compare: bool = True,
    limit: int = 200,
    expiration: str | float | dt.timedelta = "2d",
    vips: str | os.PathLike[str] | Iterable[str] | None = None,
    vip_latency: str | float | dt.timedelta = "5m",
    rollups: bool | None = None,
    quiet_days: int = QUIET_DAYS,
) -> DailyReport:
    """The report of ``days`` days ending on ``date`` (``YYYY-MM-DD``, ``today`` or
    ``yesterday``; days are those of time zone ``tz``, which also shows the times).

    ``top``: rows of the top lists. ``accepted_domains``: the organisation's domains, to tell
    internal from external senders where the logs have no directionality (default: the
    domains of delivered recipients). ``redact_addresses`` replaces the local part of every
    address by a keyed hash (``redact_key``, default random) and hides subjects. ``compare``
    adds the previous period's figures when the store has it. ``limit``: rows of the lists of
    failed and pending recipients. ``expiration``: the message expiration timeout the queues
    are measured against (``2d``, ``36h``, ``90m``, a timedelta or seconds). ``vips``: a VIP
    file (one address a line) or the addresses, for the VIP section with the failures,
    deferrals and deliveries slower than ``vip_latency`` (``90s``, ``5m``, ``1h``) of their
    mail. ``rollups``: count the period from the store's rollups (``long``: fast,
    without the per-message tables; True counts one day so too, a pruned day's figures) or,
    False, from its rows; by default
    from rollups from ``long.ROLLUP_DAYS`` days up, never with ``vips`` (VIP mail is read
    from its rows); a report of one day (UTC, or a zone whole hours from UTC) takes its TLS
    and SMTP session tables from the hours of the UTC days' aggregates where they are current
    (the same figures), but with ``rollups`` False.
    ``quiet_days``: a report from rollups lists the organisation's mailboxes and
    distribution lists that received and sent nothing in this many last days. Raises
    BadInput for a bad date, zone, number, duration or VIP file, NotAStore for a path that
    holds no store.
    """
    accepted_domains = as_list(accepted_domains)  # one domain given alone is one domain
    days, top, limit, quiet_days = (
        whole(name, value)
        for name, value in (
            ("days", days),
            ("top", top),
            ("limit", limit),
            ("quiet_days", quiet_days),
        )
    )
    for name, value in (("top", top), ("limit", limit)):
        if value < 1:
            raise BadInput(f"{name} {value}: give a number of rows of 1 or more")
    if not 1 <= quiet_days <= QUIET_DAYS_MAX:
        raise BadInput(
            f"--quiet-days {quiet_days}: give a number of days from 1 to {QUIET_DAYS_MAX:,}"
        )
    expires = parse_duration(expiration, "--expiration").total_seconds()
    if expires <= 0:
        raise BadInput(f"--expiration {expiration!r}: give a length of time above 0")
    latency = parse_duration(vip_latency, "--vip-latency").total_seconds()
    if latency < 0:
        raise BadInput(f"--vip-latency {vip_latency!r}: give a length of time of 0 or more")
    vip_addresses = vip_list(vips)
    tz = zone_name(tz)  # the name handed on (to DuckDB): without blanks around it
    period = Period(parse_date(date, tz), days, tz)
    st = (store if isinstance(store, Store) else Store(store)).require()
    if long.applies(period, rollups) and not vip_addresses:
        return _finish(
            long.long_report(
                st,
                period,
                top=top,
                limit=limit,
                accepted_domains=accepted_domains,
                compare=compare,
                problems_first=problems_first,
                quiet_days=quiet_days,
            ),
            redact_addresses,
            redact_key,
        )
    con = connect(st)
    spill = load.bound(con)
    try:
        con.execute(f"set TimeZone = '{tz}'")  # tz is a validated IANA name
        index = store_rollups.load(st, con=con)  # the days whose rows were pruned
        have = store_rollups.row_days(
            st.last_manifest or st.manifest(con, fields=long.MANIFEST_COLUMNS)
        )
        kept = [d for d, e in index.items() if store_rollups.is_kept(e, have)]
        # logs of a pruned day ingested after the prune: their rows are counted
        regrown = [d for d in kept if d in have]
        pruned_hours = quality.pruned_hours(period, kept, regrown)
        previous, not_compared = None, None
        accepted = domains.decide(st, accepted_domains)
        # a period whose every hour was pruned counts nothing: no change against the one before
        if compare and not quality.all_pruned(period, kept, regrown):
            # before the period: its tables replace the previous period's
            previous, not_compared = _previous(
                st, con, period.previous(), accepted, [*have, *index]
            )
        # before the period's tables: it replaces them
        metrics.load_pending(con, period, long.kept_pending(st, con, period))
        ctx = load.load(con, period, accepted)
        load.create_macros(con)
        # the TLS and SMTP session tables from the UTC days' aggregates when current (the
        # same figures, without reading the protocol lines again)
        aggregated = long.day_aggregates(con, st, period) if rollups is not False else frozenset()
        if store_rollups.SMTP_LINES.name in aggregated:
            sessions.from_grain(con, period)
        else:
            sessions.load(con, ctx)
        current = {**metrics.headline(con, ctx, period), **sessions.counts(con)}
        if previous is not None:  # in the order of the current figures
            previous = {k: previous[k] for k in current}
        # each server's lines per hour: read once, for the data quality table and the gaps
        smtp_hours = sessions.server_hours(con)
        hours = quality.hour_counts(con, ctx, smtp_hours)
        inputs = sections.Inputs(
            con, ctx, top, limit, current, previous, expires, vip_addresses, latency, st,
            aggregated, hours,
        )  # fmt: skip
        tables = sections.compute(inputs)
        tracking_rows = load.tracking_rows(con, ctx)
        held = quality.store_days(con)
        empty_days, quiet_hours = quality.coverage(con, ctx, hours, held)
        untracked = quality.untracked_days(con, ctx, smtp_hours)
        empty_days = quality.not_pruned(period, empty_days, kept)
    finally:
        con.close()
        spill.cleanup()  # after the connection: its files are closed
    report = DailyReport(
        period=period,
        store=str(st.root),
        metrics=tables,
        headline=current,
        previous=previous,
        not_compared=not_compared,
        rules={**metrics.COUNTING_RULES, **sections.rules(tables)},
        accepted_domains=ctx.accepted_domains,
        accepted_inferred=ctx.accepted_inferred,
        accepted_delivered=ctx.accepted.delivered,
        top=top,
        limit=limit,
        problems_first=problems_first,
        redacted=redact_addresses,
        empty_days=empty_days,
        quiet_hours=quiet_hours,
        store_days=held,
        expiration_s=expires,
        vip_latency_s=latency if vip_addresses else None,
        pruned_hours=pruned_hours,
        regrown_hours=quality.pruned_hours(period, regrown),
        tracking_rows=tracking_rows,
        untracked_days=untracked,
    )
    return _finish(report, redact_addresses, redact_key)


def _previous(
    st: Store, con, period: Period, accepted: domains.Accepted, held: Iterable[str]
) -> tuple[dict[str, int] | None, str | None]:
    """The headline figures of ``period`` (the one before the report's), or None and why:
    the store has no tracking rows in it, or its logs (the UTC days ``held``) begin after
    its first day. From its day's rollup where that can say, else from its rows (loaded on
    ``con`` as the report's own period is, and counted the same way)."""
    if first := quality.held_from(period, held):
        return None, changes.held_in_part(period, first)
    known, figures = long.day_headline(st, con, period)
    if known:
        return figures, None if figures else changes.NO_PREVIOUS
    metrics.load_pending(con, period, long.kept_pending(st, con, period))
    ctx = load.load(con, period, accepted)
    if not load.tracking_rows(con, ctx):
        return None, changes.NO_PREVIOUS
    load.create_macros(con)
    return {**metrics.headline(con, ctx, period), **sessions.period_counts(con, period)}, None


def _finish(report: DailyReport, redact_addresses: bool, key: bytes | None) -> DailyReport:
    for df in report.metrics.values():  # subjects as mail programs show them (RFC 2047)
        if "subject" in df.columns:
            df["subject"] = df["subject"].map(
                lambda v: display_subject(v) if isinstance(v, str) and "=?" in v else v
            )
    if redact_addresses:  # a key given as text is its UTF-8 bytes
        redact(report, (key.encode() if isinstance(key, str) else key) or os.urandom(16))
    return report
