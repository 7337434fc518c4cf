"""Reports over several days from the store's rollups (``rollup``): kilobytes per day read
instead of every row.

Used for a period of more than one day in a zone a whole number of hours from UTC (so that
its hours are UTC hours): the UTC days inside the period from their rollups, and in a zone
other than UTC the parts of the UTC days at its two ends built from their rows (``_pieces``,
``rollup.build_pieces``). A day whose rollup is out of date or missing is built from its rows
in memory (not written: a report does not write the store). Tables rollups give: totals
(but the deferred and expanded rows), distinct addresses, traffic per hour and per day,
failures by status, domain and server, latency, top senders, recipients and domains; the TLS
and SMTP session tables from the TLS and SMTP line count per-day aggregates
(``store.rollups.TLS``, ``SMTP_LINES``; the days without a current one and the parts of days
at the ends from their rows, ``_windowed``). The per-message lists (failed, pending, slowest,
deferrals), rejected attempts and the data-quality tables are left empty for such periods
(the page says so); the recipients still deferred at the end come from the rows of the
period's last two days, or where ``store prune`` removed some, from the last day's rollup
(``kept_pending``).
"""

from __future__ import annotations

import datetime as dt
import re

import pandas as pd
import pyarrow as pa

from loganalyzer.read.query import connect, point
from loganalyzer.report import domains, load, metrics, quality, sections, sessions
from loganalyzer.report.load import frame, hours
from loganalyzer.report.metrics import SYSTEM_SENDER_RE
from loganalyzer.report.model import DailyReport
from loganalyzer.report.period import LOOKBACK, Period
from loganalyzer.report.rollup import DAY_COUNTS, build, build_pieces, build_windows
from loganalyzer.report.sections import clients, smtp, tls, totals
from loganalyzer.report.sections.base import LENGTH, LISTED_OF
from loganalyzer.report.sections.changes import HEADLINE, NO_PREVIOUS, changes, held_in_part
from loganalyzer.report.sections.failures import status_meaning
from loganalyzer.report.sections.history import QUIET_DAYS
from loganalyzer.report.sections.traffic import daily
from loganalyzer.store import Store
from loganalyzer.store import rollups as store_rollups
from loganalyzer.store.duck import domain_sql, open_connection, parquet_columns, read_parquet

#: Tables a report over several days computes from the rollups.
FROM_ROLLUPS = (
    "totals changes distinct hourly daily failures_by_status failures_by_domain failures_by_server "
    "latency latency_hourly top_senders top_senders_by_size top_sender_domains "
    "top_sender_domains_by_size top_recipients top_recipients_by_size top_recipient_domains "
    "top_recipient_domains_by_size system_senders tls_versions tls_legacy "
    "tls_failures tls_plain "
    "smtp_summary smtp_hourly smtp_servers reply_codes remote_ips auth_failures"
).split()
#: Tables only rollups give (the section ``history``; empty in a report from rows).
ROLLUPS_ONLY = (
    "monthly_servers",
    "monthly_connectors",
    "monthly_domains",
    "senders_seen",
    "quiet_mailboxes",
)
#: Tables of the whole store, not the period: the same in every report.
WHOLE_STORE = ("smtp_clients",)
#: Tables a report over several days leaves empty, with the columns the row path gives them
#: (the page and ``--json`` show them empty; never computed).
LEFT_EMPTY = {
    name: tuple(columns.split())
    for name, columns in {
        "sides": "sender messages bytes delivered sent_out",
        "failed": "date_time server event_id sender recipient subject status reply message_id",
        "deferral_reasons": "status reason deferrals recipients messages domains",
        "pending": "date_time server recipient sender subject "
        "since deferrals last_error message_id",
        "queues": "hop server waiting waiting_recipients oldest_since oldest_age_s "
        "close_to_expiry peak peak_hour waited deferrals longest_wait_s",
        "queue_reasons": "hop server status reason deferrals recipients messages",
        "queue_hours": "hour hop server messages change grew",
        "slowest": "date_time latency_s outcome recipient sender subject received_at message_id",
        "rejections": "stage agent reason remote_ip attempts recipients first_seen last_seen",
        "agent_removed": "agent verdict reason messages recipients first_seen last_seen",
        "next_hops": "server destination attempts failed dns refused timeout tls "
        "other first_failure last_failure last_error",
        "files": "table format files lines quarantined",
        "quarantine": "reason lines files",
        "unknown_codes": "event_id log_format rows servers",
        "missing_hours": "server log missing_hours hours expected",
        "clock_skew": "from_server to_server hops median_s min_s max_s receive_before_send flagged",
    }.items()
}
#: The lists left empty whose length a headline figure gives: the page says how many there
#: were, not "None.".
LEFT_OUT_LENGTHS = {"failed": "failed_recipients", "pending": "still_deferred_recipients"}
#: The manifest columns the report reads: the files of each day, what a rollup was built
#: from, the servers (the row path's ``files`` view), the schema versions (``point``).
MANIFEST_COLUMNS = ["parts", "bytes_consumed", "server"]
RULE = (
    "Periods of several days are counted from the store's rollups (per-day aggregates written "
    "at ingest): each figure is summed over the days, distinct addresses counted over the "
    "period; the TLS tables sum each day's sessions per connector, peer, version and error, "
    "the SMTP session tables each day's lines per hour, remote IP and reply code. "
    "Per-message lists (failed, pending and slowest recipients, deferrals), rejected attempts "
    "and data quality are left out; the recipients still deferred "
    "at the end come from the rows of the last two days (where `store prune` removed some, "
    "from the last day's rollup); the SMTP clients are those of the "
    "whole store, as in every report. `--from-rows` reads every row instead."
)


#: From this many days up a report reads rollups unless told otherwise: a week's report
#: keeps every table (its rows read in seconds), a month's reads kilobytes.
ROLLUP_DAYS = 8


def applies(period: Period, rollups: bool | None = None) -> bool:
    """Whether this period is counted from rollups: asked (``rollups`` True, one day too: a
    pruned day has nothing else), or by default from ``ROLLUP_DAYS`` days up; and rollups
    (per UTC hour and day) give it: a zone a whole number of hours from UTC throughout the
    period (``Period.offsets``: its hours are then UTC hours)."""
    if rollups is False or (rollups is None and period.days < ROLLUP_DAYS):
        return False
    return (period.days > 1 or rollups is True) and all(
        off % dt.timedelta(hours=1) == dt.timedelta(0) for _, _, off in period.offsets
    )


def _pieces(period: Period) -> tuple[list[str], dict[str, tuple[str, dt.datetime, dt.datetime]]]:
    """The period as the UTC days wholly inside it (read from their rollups) and the parts of
    the UTC days at its ends (a zone other than UTC: built from their rows), labelled
    ``YYYY-MM-DD HH:MM-HH:MM`` (UTC): (days, {label: (day, start, end)})."""
    a, b = period.start.astimezone(dt.UTC), period.end.astimezone(dt.UTC)
    days, parts = [], {}
    day = a.date()
    while (lo := dt.datetime.combine(day, dt.time(), dt.UTC)) < b:
        hi = lo + dt.timedelta(days=1)
        x, y = max(lo, a), min(hi, b)
        if (x, y) == (lo, hi):
            days.append(day.isoformat())
        else:
            parts[f"{day} {x:%H:%M}-{'24:00' if y == hi else f'{y:%H:%M}'}"] = (
                day.isoformat(),
                x,
                y,
            )
        day += dt.timedelta(days=1)
    return days, parts


def _where(labels: list[str]) -> str:
    """SQL: the rows of ``r`` of these days and parts of days."""
    if not labels:
        return "false"
    return "day in (" + ", ".join(f"'{label}'" for label in sorted(labels)) + ")"


def long_report(
    st: Store,
    period: Period,
    *,
    top: int,
    limit: int,
    accepted_domains: list[str] | None,
    compare: bool,
    problems_first: bool,
    quiet_days: int = QUIET_DAYS,
) -> DailyReport:
    """The report of ``period`` (``applies``) from the rollups; see the module docstring."""
    con = open_connection(st)  # the one connection: manifest, rollup parts, rows
    spill = load.bound(con)  # held to the report's memory, as a report of one day
    accepted = domains.decide(st, accepted_domains)
    try:
        manifest = st.manifest(con, fields=MANIFEST_COLUMNS)
        index = store_rollups.load(st)
        days = store_rollups.row_days(manifest)  # once: every kind's state reads it
        state = store_rollups.status(st, manifest, index, days=days)
        usable = set(state["current"]) | set(state["kept"])
        have = set(days) | set(index)
        previous, not_compared = period.previous() if compare else None, None
        if previous is not None and (first := quality.held_from(previous, have)):
            # held in part: not read at all
            previous, not_compared = None, held_in_part(previous, first)
        whole, pieces = _pieces(period)
        labels = {"current": whole + list(pieces)}
        if previous is not None:
            before, before_pieces = _pieces(previous)
            labels["previous"] = before + list(before_pieces)
            whole, pieces = sorted(set(whole) | set(before)), {**pieces, **before_pieces}
        parts = [(d, index[d].part) for d in whole if d in usable]
        from_rows = [d for d in whole if d in have and d not in usable]
        rebuilt = build(st, manifest, from_rows)
        rebuilt |= build_pieces(st, manifest, {k: v for k, v in pieces.items() if v[0] in have})
        selects = []
        if parts:  # one scan of every part; the day from its folder name
            source = read_parquet([st.uri(p) for _, p in parts], partitioned=True)
            selects.append(
                f"select strftime(date, '%Y-%m-%d') as day, * exclude (date) from {source}"
            )
        for i, (d, t) in enumerate(rebuilt.items()):
            con.register(f"_built{i}", t)
            selects.append(f"select '{d}' as day, * from _built{i}")
        if selects:
            con.execute(f"create temp table r as {' union all '.join(selects)}")
        else:
            con.execute(
                "create temp table r as select ''::varchar as day, * from "
                f"{read_parquet([st.uri(index[next(iter(index))].part)])} limit 0"
                if index
                else "create temp table r (day varchar, measure varchar, hour timestamptz, "
                "key varchar, key2 varchar, value double, n bigint, messages bigint, "
                "bytes bigint)"
            )
        where = _where(labels["current"])
        current = _Figures(con, period, where, top, limit, accepted.domains, quiet_days)
        tables = current.tables()
        headline = current.headline()
        prev = None
        if previous is not None:
            where = _where(labels["previous"])
            if holds(con, where):
                prev = _Figures(con, previous, where, top).headline()
            else:
                not_compared = NO_PREVIOUS
        # the recipients still deferred at the end, from rows: on this connection
        con.execute(f"set TimeZone = '{period.tz}'")
        servers = sorted({row.server for row in manifest.values() if row.server})
        con.register("_servers", pa.table({"server": pa.array(servers, pa.string())}))
        con.execute("create or replace temp view files as select server from _servers")
        pending = _pending(con, st, manifest, period)
        if prev is not None:
            prev["still_deferred_recipients"] = _pending(con, st, manifest, previous)[1]
        relay = accepted.relay_domains
        tables["smtp_clients"] = _clients(con, st, manifest, days, relay)  # WHOLE_STORE
        aggregated = _windowed(con, st, manifest, days, period, store_rollups.TLS)
        tables.update(tls.tables(con))
        aggregated += _windowed(con, st, manifest, days, period, store_rollups.SMTP_LINES)
        sessions.from_grain(con, period)
        tables.update(smtp.tables(con, period, top))
        (tracking_rows,) = current.one(
            "select coalesce(sum(n), 0) from r where measure = 'tracking_rows' and $w"
        )
        busy = _busy(con, period, _where(labels["current"]))
    finally:
        con.close()
        spill.cleanup()  # after the connection: its files are closed
    headline["still_deferred_recipients"] = pending[1]
    at = tables["totals"].index[tables["totals"]["figure"] == "deferrals (attempts)"][0]
    tables["totals"] = pd.concat(
        [
            tables["totals"].iloc[:at],
            pd.DataFrame([("still deferred", *pending, None)], columns=tables["totals"].columns),
            tables["totals"].iloc[at:],
        ],
        ignore_index=True,
    ).astype({"messages": "Int64", "recipients": "Int64", "bytes": "Int64"})
    ch = changes(headline, prev)
    tables["changes"] = ch[ch["figure"].isin([label for k, label in HEADLINE if k in headline])]
    tables["changes"] = tables["changes"].reset_index(drop=True)
    for name, columns in LEFT_EMPTY.items():
        tables[name] = pd.DataFrame(columns=list(columns))
    held = sorted(have)
    return DailyReport(
        period=period,
        store=str(st.root),
        metrics={name: tables[name] for name in sections.TABLES if name in tables},
        headline=headline,
        previous=prev,
        not_compared=not_compared,
        rules={**metrics.COUNTING_RULES, **sections.rules(), "long_period": RULE},
        accepted_domains=accepted.domains,
        accepted_inferred=accepted.inferred,
        accepted_delivered=accepted.delivered,
        top=top,
        limit=limit,
        problems_first=problems_first,
        empty_days=quality.empty_days(period, busy),
        store_days=(dt.date.fromisoformat(held[0]), dt.date.fromisoformat(held[-1]))
        if held
        else None,
        quiet_days=quiet_days,
        pruned_hours=quality.pruned_hours(
            period, state["kept"], [d for d in labels["current"] if d in usable]
        ),
        rows_days=sorted({d for d in from_rows if d in labels["current"]} | set(aggregated)),
        late_days=sorted(d for d in state["kept"] if d in days and d in labels["current"]),
        lengths={name: int(headline[key]) for name, key in LEFT_OUT_LENGTHS.items()},
        left_out=sorted(LEFT_EMPTY),
        tracking_rows=int(tracking_rows),
    )


def _busy(con, period: Period, where: str) -> list[pd.Timestamp]:
    """The hours of ``period`` that hold rows, as a report from rows finds them
    (``quality.coverage``): SMTP lines (``smtp_lines``), tracking rows from the hourly
    figures of ``r`` (``where``: the period's days and parts of days)."""
    idx = hours(period)
    sql = f"""
        select distinct i from (
            select {load.hour_index("hour", period)} as i from r
            where {where} and hour is not null
            union all select i from smtp_lines)
        where i >= 0 and i < {len(idx)}"""
    return [idx[i] for (i,) in con.execute(sql).fetchall()]


def holds(con, where: str) -> bool:
    """Whether the days and parts of days ``where`` of ``r`` hold tracking rows: the rule of a
    report from rows (``load.tracking_rows``), so that a previous period of a few SMTP lines
    alone is not compared as a whole one. From their count, or where a rollup written before
    it lacks it, from the hourly figures only tracking rows give."""
    sql = (
        f"select count(*) from r where {where} and ((measure = 'tracking_rows' and n > 0) "
        "or measure in ('received', 'outcome', 'deferral'))"
    )
    return con.execute(sql).fetchall()[0][0] > 0


def _clients(con, st: Store, manifest, days, accepted: list[str]) -> pd.DataFrame:
    """The SMTP clients and relays of the whole store, as a one-day report shows them: from
    the per-day client aggregates on ``con``; when some days have no current one, on a
    connection of their own that reads those days' rows (and the days around them, as
    ``rollup.refresh_clients`` does), held to the report's memory limit."""
    kind = store_rollups.CLIENTS
    state = store_rollups.status(st, manifest, store_rollups.load(st, kind, con), kind, days)
    lacking = state["stale"] + state["missing"]
    if not lacking:
        return clients.clients(con, accepted, st, state)
    around = store_rollups.built_from(lacking, kind)
    rows = connect(st, only=store_rollups.files_of(st.manifest(), around))
    spill = load.bound(rows)
    try:
        return clients.clients(rows, accepted, st)
    finally:
        rows.close()
        spill.cleanup()


#: The temporary table each kind of ``rollup.WINDOWED`` gives its section (``_windowed``).
GRAINS = {store_rollups.TLS: "tls_grain", store_rollups.SMTP_LINES: "smtp_grain"}


def _windowed(con, st: Store, manifest, days, period: Period, kind) -> list[str]:
    """The temporary table ``GRAINS[kind]`` on ``con``: the per-day aggregates of ``kind``
    (one of ``rollup.WINDOWED``) of ``period``, from their parts (current, or kept by prune);
    the days with rows but no current part, and the parts of UTC days at the period's ends,
    built from their rows (``rollup.build_windows``), but those of a kind counted per UTC
    hour, which its part's hours give (``_hours_of``: the whole hours of those parts of days,
    for some kinds the parts of hours at their ends from rows). Returns the whole days built
    from rows."""
    index = store_rollups.load(st, kind, con)
    state = store_rollups.status(st, manifest, index, kind, days)
    usable = set(state["current"]) | set(state["kept"])
    rows = set(days)
    whole, pieces = _pieces(period)
    lacking = [d for d in whole if d in rows and d not in usable]
    older = _older(con, st, index, kind, [d for d in state["kept"] if d in period_days(period)])
    cut, windows = {}, {}
    for label, piece in pieces.items():
        cuttable = piece[0] in usable and piece[0] not in older
        hours, ends = _hours_of(kind, piece) if cuttable else (None, [piece])
        if hours is not None:
            cut[label] = hours
        for d, a, b in ends:
            if d in rows:
                windows[f"{d} {a:%H:%M}-{b:%H:%M}"] = (d, a, b)
    for d in lacking:
        start = dt.datetime.combine(dt.date.fromisoformat(d), dt.time(), dt.UTC)
        windows[d] = (d, start, start + dt.timedelta(days=1))
    table = GRAINS[kind]
    schema = kind.schema()
    columns = ", ".join(schema.names)
    con.register(f"_{table}_none", schema.empty_table())
    selects = [f"select {columns} from _{table}_none"]
    parts = [st.uri(index[d].part) for d in whole if d in usable]
    if parts:  # by name where a kept part lacks a column (null there)
        selects.append(f"select {columns} from {read_parquet(parts, mixed=bool(older))}")
    for d, a, b in cut.values():
        selects.append(
            f"select {columns} from {read_parquet([st.uri(index[d].part)])} "
            f"where hour >= timestamptz '{a.isoformat()}' and hour < timestamptz '{b.isoformat()}'"
        )
    for i, t in enumerate(build_windows(st, manifest, kind, windows).values()):
        con.register(f"_{table}{i}", t)
        selects.append(f"select {columns} from _{table}{i}")
    con.execute(f"create or replace temp table {table} as {' union all '.join(selects)}")
    return lacking


def period_days(period: Period) -> set[str]:
    """The UTC days ``period`` touches (``YYYY-MM-DD``)."""
    whole, pieces = _pieces(period)
    return set(whole) | {d for d, _, _ in pieces.values()}


def _older(con, st: Store, index, kind, kept: list[str]) -> set[str]:
    """Of the ``kept`` days (rows pruned), those whose part lacks some of ``kind``'s columns:
    kept by an earlier version (the TLS aggregates had no hours before version 2); their
    rows gone, they cannot be built again. Read by column name; never cut at an hour."""
    if not kept:
        return set()
    found = parquet_columns(con, [st.uri(index[d].part) for d in kept])
    need = set(kind.schema().names)
    return {  # the day from the part's folder, whatever form the file name takes
        m.group(1)
        for name, columns in found.items()
        if not need <= columns and (m := re.search(r"date=(\d{4}-\d{2}-\d{2})", name))
    }


#: Kinds whose tables show no hours: a day of a zone of half or quarter hours takes the
#: whole UTC hours of their parts, its ends (parts of hours) from rows (``_hours_of``).
SPLIT = frozenset({store_rollups.TLS.name})


def _hours_of(kind, piece: tuple[str, dt.datetime, dt.datetime]):
    """The part of a UTC day ``piece`` (day, start, end) its day's part of ``kind`` gives (a
    selection of its whole UTC hours, or None) and the rest, to count from rows: all of it
    unless ``_hourly``, or for a kind of ``SPLIT`` the parts of hours at its ends."""
    if _hourly(kind, piece):
        return piece, []
    d, a, b = piece
    if kind.name not in SPLIT or "hour" not in kind.schema().names:
        return None, [piece]
    first = a.replace(minute=0, second=0, microsecond=0)
    if first < a:
        first += dt.timedelta(hours=1)
    last = b.replace(minute=0, second=0, microsecond=0)
    if first >= last:  # within one hour
        return None, [piece]
    return (d, first, last), [(d, x, y) for x, y in ((a, first), (last, b)) if x < y]


def _hourly(kind, piece: tuple[str, dt.datetime, dt.datetime]) -> bool:
    """Whether the part of a UTC day ``piece`` (day, start, end) of ``kind`` is a selection of
    its day's part: a kind counted per UTC hour (an ``hour`` column), a piece on whole hours."""
    _, a, b = piece
    whole_hours = all(t == t.replace(minute=0, second=0, microsecond=0) for t in (a, b))
    return whole_hours and "hour" in kind.schema().names


def day_aggregates(con, st: Store, period: Period) -> frozenset[str]:
    """The kinds of ``rollup.WINDOWED`` (TLS, SMTP line counts) whose per-day parts give the
    whole of ``period``, their temporary tables (``GRAINS``) made on ``con`` from those parts:
    what a report of one day need not count from its rows (the same figures). Each UTC day it
    touches must have rows and a current part (a pruned day's kept part is not read, as its
    rows are not); a day of another zone needs a kind counted per UTC hour and a zone a whole
    number of hours from UTC (``_hourly``), or for a kind of ``SPLIT`` any zone (the parts of
    hours at the ends of its UTC days from their rows)."""
    _, pieces = _pieces(period)
    needed = period_days(period)
    manifest = st.last_manifest or st.manifest(con, fields=MANIFEST_COLUMNS)
    days = store_rollups.row_days(manifest)
    if not needed <= set(days):  # a day without rows: nothing to spare
        return frozenset()
    out = set()
    for kind in GRAINS:
        if not all(_hours_of(kind, piece)[0] for piece in pieces.values()):
            continue
        state = store_rollups.status(st, manifest, store_rollups.load(st, kind, con), kind, days)
        if needed <= set(state["current"]):
            _windowed(con, st, manifest, days, period, kind)  # (from parts alone)
            out.add(kind.name)
    return frozenset(out)


def day_headline(st: Store, con, period: Period) -> tuple[bool, dict[str, int] | None]:
    """The headline figures of the one-day ``period`` from its day's rollup: (True, figures),
    (True, None) when the day has no tracking rows, (False, None) when the rollup cannot say
    (not a UTC day; no rollup of it, out of date, or built before ``rollup.DAY_COUNTS``)."""
    utc = dt.timedelta(0)
    if period.days != 1 or utc != period.start.utcoffset() or utc != period.end.utcoffset():
        return False, None
    day = period.first.isoformat()
    entry = store_rollups.load(st, con=con).get(day)
    if entry is None:
        return False, None
    if entry.source != store_rollups.KEPT:  # rows pruned: the rollup is all there is
        manifest = st.manifest(con, fields=MANIFEST_COLUMNS)
        if store_rollups.state_of(manifest, day, entry) not in ("current", "kept"):
            return False, None
    source = read_parquet([st.uri(entry.part)])
    con.execute(f"create or replace temp table r as select '{day}' as day, * from {source}")
    try:
        counts = dict(
            con.execute(
                "select measure, n from r where list_contains($m, measure)",
                {"m": list(DAY_COUNTS)},
            ).fetchall()
        )
        if set(counts) != set(DAY_COUNTS):
            return False, None
        if not counts["tracking_rows"]:
            return True, None
        figures = _Figures(con, period, _where([day]), 1).headline()
    finally:
        con.execute("drop table r")
    figures["still_deferred_recipients"] = int(counts["pending_recipients"])
    return True, figures


def kept_pending(st: Store, con, period: Period, manifest=None) -> tuple[int, int] | None:
    """(messages, recipients) still deferred at the end of ``period`` as the rollup of its
    last UTC day counted them, where ``store prune`` removed rows of the days that count
    reads (``metrics.PENDING_DAYS``): the figure the report of that day gave before the
    prune. None where none were removed (the rows say) or the rollup cannot say (the period
    ends off a UTC midnight; no current or kept rollup of the day, or one built before
    ``rollup.DAY_COUNTS``)."""
    manifest = manifest or st.last_manifest or st.manifest(con, fields=MANIFEST_COLUMNS)
    days = store_rollups.row_days(manifest)
    index = store_rollups.load(st, con=con)
    lo, hi = Period(period.date, metrics.PENDING_DAYS, period.tz).utc_dates()
    window = [(lo + dt.timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)]
    if not any(d in index and store_rollups.is_kept(index[d], days) for d in window):
        return None
    end = period.end.astimezone(dt.UTC)
    if end.time() != dt.time():
        return None
    day = (end - dt.timedelta(days=1)).date().isoformat()
    entry = index.get(day)
    if entry is None or store_rollups.state_of(manifest, day, entry, days) not in (
        "current",
        "kept",
    ):
        return None
    counts = dict(
        con.execute(
            f"select measure, n from {read_parquet([st.uri(entry.part)])} "
            "where measure in ('pending_messages', 'pending_recipients')"
        ).fetchall()
    )
    if len(counts) != 2:
        return None
    return int(counts["pending_messages"]), int(counts["pending_recipients"])


def _pending(con, st: Store, manifest, period: Period) -> tuple[int, int]:
    """(messages, recipients) still deferred at the end of ``period`` (``metrics``'s rule,
    from the rows of its last days, or ``kept_pending``; ``con``: the report's connection,
    its zone and ``files`` view set)."""
    kept = kept_pending(st, con, period, manifest)
    if kept is not None:
        return kept
    p = Period(period.date, metrics.PENDING_DAYS, period.tz)
    lo, hi = p.utc_dates(since=p.start - LOOKBACK)
    days = {(lo + dt.timedelta(days=i)).isoformat() for i in range((hi - lo).days + 1)}
    point(con, st, store_rollups.files_of(manifest, days), manifest)
    metrics.load_pending(con, period)
    return metrics.pending_counts(con)


class _Figures:
    """The rollup figures of one period, from the temporary table ``r`` (all days read)."""

    def __init__(
        self,
        con,
        period: Period,
        where: str,
        top: int,
        limit: int = 200,
        accepted: list[str] | None = None,
        quiet_days: int = QUIET_DAYS,
    ) -> None:
        self.con, self.p, self.top, self.limit = con, period, int(top), int(limit)
        self.accepted, self.quiet_days = accepted or [], int(quiet_days)
        self.where = where  # the period's days and parts of days (``_where``)

    def q(self, sql: str) -> pd.DataFrame:
        return frame(self.con, sql.replace("$w", self.where))

    def one(self, sql: str):
        return self.con.execute(sql.replace("$w", self.where)).fetchall()[0]

    def headline(self) -> dict[str, int]:
        received, bytes_in = self.one(
            "select coalesce(sum(n), 0), coalesce(sum(bytes), 0) from r "
            "where measure = 'received' and $w"
        )
        kinds = {
            k: (n, b)
            for k, n, b in self.con.execute(
                "select key, sum(n), sum(bytes) from r where measure = 'kind' and "
                f"{self.where} group by key"
            ).fetchall()
        }
        (bounces,) = self.one("select coalesce(sum(n), 0) from r where measure = 'bounces' and $w")
        (deferrals,) = self.one(
            "select coalesce(sum(n), 0) from r where measure = 'deferral' and $w"
        )
        (senders,) = self.one("select count(distinct key) from r where measure = 'sender' and $w")
        smtp = dict(
            self.con.execute(
                "select measure, sum(n) from r where measure in ('smtp_sessions', "
                f"'auth_failures') and {self.where} group by 1"
            ).fetchall()
        )
        return {
            "smtp_sessions": int(smtp.get("smtp_sessions", 0)),
            "auth_failures": int(smtp.get("auth_failures", 0)),
            "received_messages": int(received),
            "bytes_in": int(bytes_in),
            "delivered_recipients": int(kinds.get("delivered", (0, 0))[0]),
            "sent_out_recipients": int(kinds.get("sent", (0, 0))[0]),
            "bytes_out": int(kinds.get("sent", (0, 0))[1]),
            "failed_recipients": int(kinds.get("failed", (0, 0))[0]),
            "bounces": int(bounces),
            "still_deferred_recipients": 0,
            "deferrals": int(deferrals),
            "distinct_senders": int(senders),
        }

    def tables(self) -> dict[str, pd.DataFrame]:
        out = {"totals": self.totals(), "distinct": self.distinct(), "hourly": self.hourly()}
        if self.p.days > 1:  # as a report from rows: a day has no per-day table
            out["daily"] = daily(out["hourly"])
        out.update(self.failures())
        out.update(self.latency())
        out.update(self.tops())
        out.update(self.history())
        return out

    def history(self) -> dict[str, pd.DataFrame]:
        """Monthly trends; senders by first and last seen; mailboxes and lists quiet lately."""
        out = {}
        for name, measure, label in (
            ("monthly_servers", "server_kind", "server"),
            ("monthly_connectors", "connector_kind", "connector"),
            ("monthly_domains", "domain_kind", "domain"),
        ):
            # domains: the period's busiest (``top``), the others are the long tail (how
            # many: ``LISTED_OF``, of the domains the table would hold without the cut)
            domains = measure == "domain_kind"
            busiest = (
                f"""and key in (select key from r where measure = '{measure}' and $w
                    and key <> '' group by key order by sum(n) desc, key limit {self.top})"""
                if domains
                else ""
            )
            of = (
                f""", (select count(distinct key) from r where measure = '{measure}' and $w
                    and key <> '')::bigint as {LISTED_OF}"""
                if domains
                else ""
            )
            out[name] = self.q(
                f"""
                select left(day, 7) as month, key as {label},
                       coalesce(sum(n) filter (where key2 = 'delivered'), 0)::bigint
                           as delivered,
                       coalesce(sum(n) filter (where key2 = 'sent'), 0)::bigint as sent_out,
                       coalesce(sum(n) filter (where key2 = 'failed'), 0)::bigint as failed
                       {of}
                from r where measure = '{measure}' and $w {busiest}
                group by 1, 2 order by 1, sum(n) desc, 2
                """
            )
        out["senders_seen"] = self.q(
            f"""
            select key as sender, min(left(day, 10)) as first_seen,
                   max(left(day, 10)) as last_seen, count(distinct left(day, 10)) as days,
                   sum(messages)::bigint as messages, {LENGTH}
            from r where measure = 'sender' and $w and coalesce(key, '') <> ''
              and not regexp_matches(key, '{SYSTEM_SENDER_RE}')
            group by 1 order by first_seen desc, messages desc, 1 limit {self.limit}
            """
        )
        out["quiet_mailboxes"] = self.quiet()
        return out

    def quiet(self) -> pd.DataFrame:
        """The organisation's mailboxes and distribution lists seen in the period (delivered
        to, sending, expanded) but not in its last ``quiet_days`` days."""
        since = (self.p.date - dt.timedelta(days=self.quiet_days - 1)).isoformat()
        inside = f"(len($accepted) = 0 or list_contains($accepted, {domain_sql('key')}))"
        return frame(
            self.con,
            f"""
            with seen as (
                select key, measure, max(left(day, 10)) as last,
                       sum(messages)::bigint as messages
                from r
                where $w and coalesce(key, '') <> '' and {inside} and (
                    measure in ('delivered_to', 'expanded')
                    or (measure = 'sender' and not regexp_matches(key, '{SYSTEM_SENDER_RE}')))
                group by 1, 2),
            a as (
                select key as address,
                       case when bool_or(measure = 'expanded') then 'distribution list'
                            else 'mailbox' end as type,
                       max(last) filter (where measure <> 'sender') as last_received,
                       max(last) filter (where measure = 'sender') as last_sent,
                       coalesce(sum(messages) filter (where measure <> 'sender'), 0)::bigint
                           as received,
                       coalesce(sum(messages) filter (where measure = 'sender'), 0)::bigint
                           as sent
                from seen group by 1)
            select *, {LENGTH} from a
            where greatest(coalesce(last_received, ''), coalesce(last_sent, '')) < '{since}'
            order by greatest(coalesce(last_received, ''), coalesce(last_sent, '')), type,
                     address
            limit {self.limit}
            """.replace("$w", self.where),
            {"accepted": self.accepted},
        )

    def totals(self) -> pd.DataFrame:
        received, bytes_in = self.one(
            "select coalesce(sum(n), 0), coalesce(sum(bytes), 0) from r "
            "where measure = 'received' and $w"
        )
        rows = [("received", received, None, bytes_in)]
        kinds = {
            k: (m, n, b)
            for k, n, m, b in self.con.execute(
                "select key, sum(n), sum(messages), sum(bytes) from r where measure = 'kind' "
                f"and {self.where} group by key"
            ).fetchall()
        }
        for kind, label in totals.LABELS.items():
            rows.append((label, *kinds.get(kind, (0, 0, 0))))
        nb, bb = self.one(
            "select coalesce(sum(n), 0), coalesce(sum(bytes), 0) from r "
            "where measure = 'bounces' and $w"
        )
        rows.append(("bounces (NDRs created)", nb, None, bb))
        (de,) = self.one("select coalesce(sum(n), 0) from r where measure = 'deferral' and $w")
        rows.append(("deferrals (attempts)", None, de, None))
        df = pd.DataFrame(rows, columns=["figure", "messages", "recipients", "bytes"])
        return df.astype({"messages": "Int64", "recipients": "Int64", "bytes": "Int64"})

    def distinct(self) -> pd.DataFrame:
        s, sd = self.one(
            "select count(distinct key), count(distinct key2) from r "
            "where measure = 'sender' and $w"
        )
        rc, rd = self.one(
            "select count(distinct key), count(distinct key2) from r "
            "where measure = 'outcome_recipient' and $w"
        )
        return pd.DataFrame(
            {
                "figure": ["senders", "sender domains", "recipients", "recipient domains"],
                "count": [s, sd, rc, rd],
            }
        )

    def hourly(self) -> pd.DataFrame:
        idx = hours(self.p)
        out = pd.DataFrame({"hour": idx})
        df = self.q(
            """
            select hour,
                   sum(n) filter (where measure = 'received') as received,
                   sum(n) filter (where measure = 'outcome' and key = 'delivered') as delivered,
                   sum(n) filter (where measure = 'outcome' and key = 'sent') as sent_out,
                   sum(n) filter (where measure = 'outcome' and key = 'failed') as failed,
                   sum(n) filter (where measure = 'deferral') as deferrals,
                   sum(bytes) filter (where measure = 'received') as bytes_in
            from r where measure in ('received', 'outcome', 'deferral') and $w group by hour
            """
        )
        df["hour"] = pd.to_datetime(df["hour"], utc=True).dt.tz_convert(self.p.tz)
        df = df.set_index("hour").reindex(idx)
        for col in ("received", "delivered", "sent_out", "failed", "deferrals", "bytes_in"):
            out[col] = df[col].fillna(0).astype("int64").to_numpy()
        return out

    def failures(self) -> dict[str, pd.DataFrame]:
        by_status = self.q(
            """
            with texts as (
                select key as code, key2 as status, sum(n) as n from r
                where measure = 'fail_text' and $w group by all),
            example as (
                select code, first(status order by n desc, status) as example
                from texts group by 1)
            select key as status, sum(n) as recipients, sum(messages) as messages,
                   any_value(example) as example
            from r join example on key = code
            where measure = 'fail_code' and $w group by 1 order by recipients desc, status
            """
        )
        by_status.insert(1, "meaning", [status_meaning(c) for c in by_status["status"]])
        by_domain = self.q(
            f"""
            select key as domain, sum(n) as recipients, sum(messages) as messages, {LENGTH}
            from r where measure = 'fail_domain' and $w group by 1
            order by recipients desc, domain limit {self.top}
            """
        )
        by_server = self.q(
            """
            select key as server, key2 as connector, sum(n) as recipients,
                   sum(messages) as messages
            from r where measure = 'fail_server' and $w group by 1, 2
            order by recipients desc, server, connector
            """
        )
        return {
            "failures_by_status": by_status,
            "failures_by_domain": by_domain,
            "failures_by_server": by_server,
        }

    def latency(self) -> dict[str, pd.DataFrame]:
        summary = self.q(
            f"""
            select * from (
                select 'all' as recipients_of, {_QUANTILES}
                from ({_ranked("'all'")}) group by 1
                union all
                select if(g = 'sent', 'sent out', g), {_QUANTILES}
                from ({_ranked("key")}) group by 1)
            """
        )
        order = {"all": 0, "delivered": 1, "sent out": 2}
        summary = summary.sort_values("recipients_of", key=lambda c: c.map(order))
        summary = summary[summary["recipients"] > 0].reset_index(drop=True)
        per_hour = self.q(
            f"select g as hour, {_QUANTILES} from ({_ranked('hour')}) group by 1 order by 1"
        )
        per_hour["hour"] = pd.to_datetime(per_hour["hour"], utc=True).dt.tz_convert(self.p.tz)
        return {"latency": summary, "latency_hourly": per_hour}

    def tops(self) -> dict[str, pd.DataFrame]:
        system = f"regexp_matches(key, '{SYSTEM_SENDER_RE}')"
        sources = {
            "senders": ("sender", "key", "sender", f"and not {system}"),
            "sender_domains": ("sender", "key2", "domain", ""),
            "recipients": ("recipient", "key", "recipient", ""),
            "recipient_domains": ("recipient_domain", "key", "domain", ""),
        }
        orders = {"": "messages desc, bytes desc", "_by_size": "bytes desc, messages desc"}
        out = {}
        for name, (measure, col, label, people) in sources.items():
            for suffix, order in orders.items():
                out[f"top_{name}{suffix}"] = self.q(
                    f"""
                    select {col} as {label}, sum(messages)::bigint as messages,
                           sum(bytes)::bigint as bytes, {LENGTH}
                    from r where measure = '{measure}' and $w
                      and {col} is not null and {col} <> '' {people}
                    group by 1 order by {order}, 1 limit {self.top}
                    """
                )
        out["system_senders"] = self.q(
            f"""
            select key as sender, sum(messages)::bigint as messages, sum(bytes)::bigint as bytes,
                   {LENGTH}
            from r where measure = 'sender' and $w and {system}
            group by 1 order by messages desc, bytes desc, 1 limit {self.top}
            """
        )
        return out


def _ranked(group: str) -> str:
    """Latency values of group ``g`` with their counts, the rank after each value's last copy
    (``cum``) and the group's ``total``."""
    return f"""
        select g, value, cum, sum(n) over (partition by g) as total from (
            select g, value, n, sum(n) over (partition by g order by value) as cum from (
                select {group} as g, value, sum(n) as n from r
                where measure = 'latency' and $w group by 1, 2))"""


def _quantile(q: float) -> str:
    """DuckDB's ``quantile_cont`` over values with counts: the values at ranks floor and ceil
    of (total - 1) * q, interpolated."""
    h = f"((total - 1) * {q})"
    a = f"min(value) filter (where cum > floor({h}))"
    b = f"min(value) filter (where cum > ceil({h}))"
    return f"{a} + (any_value({h}) - floor(any_value({h}))) * ({b} - {a})"


_QUANTILES = (
    "any_value(total)::bigint as recipients, "
    + ", ".join(f"{_quantile(q)} as p{round(q * 100)}" for q in (0.5, 0.9, 0.99))
    + ", max(value) as max"
)
