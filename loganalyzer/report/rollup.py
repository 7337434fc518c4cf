"""Building the rollup of a UTC day with the report's own queries (``load``), and keeping
the store's rollups current (``refresh``, what ingest, compaction and prune call).

A day's rollup holds, in the rows of ``store.rollups.rollup_schema`` (``measure`` below),
the figures a report over several days sums: per hour the messages received and the
recipient outcomes; per outcome recipients, messages and bytes; senders, recipients and
their domains with messages and bytes; failures by status, domain, server and connector;
the recipients of each outcome per recipient domain; the mailboxes delivered to and the
distribution lists expanded, with their messages;
the count of every latency value (exact percentiles); SMTP sessions and failed logins
(``sessions.period_counts``, by their names); the recipients and messages still deferred at the
day's end and the day's tracking rows (``DAY_COUNTS``). ``long`` reads them, and a one-day
report the day before's headline figures (``long.day_headline``). The SMTP clients', TLS and
SMTP line count per-day aggregates (``store.rollups.CLIENTS``, ``TLS``, ``SMTP_LINES``) are
other kinds, kept beside them by ``refresh`` and built by their sections' own queries.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import duckdb
import pyarrow as pa

from loganalyzer import fate
from loganalyzer.read.query import connect
from loganalyzer.report import load, metrics, sessions
from loganalyzer.report.period import Period
from loganalyzer.report.sections import clients, tls
from loganalyzer.store import Manifest, Store, addresses
from loganalyzer.store import rollups as store_rollups

_HOUR = "date_trunc('hour', {col})"

#: measure: the query of its rows over the day's loaded tables (``$a``, ``$b``: the day).
MEASURES = {
    "received": f"""
        select {_HOUR.format(col="first_at")} as hour, count(*) as n,
               coalesce(sum(size), 0)::bigint as bytes
        from msgs_of($a, $b) group by 1""",
    "outcome": f"""
        select {_HOUR.format(col="t")} as hour, kind as key, count(*) as n
        from fin group by 1, 2""",
    "deferral": f"""
        select {_HOUR.format(col="date_time")} as hour, count(*) as n from rev
        where kind = 'deferred' and date_time >= $a and date_time < $b group by 1""",
    "kind": """
        with m as (select distinct kind, msg, size from fin)
        select kind as key, (select count(*) from fin f where f.kind = m.kind) as n,
               count(*) as messages, coalesce(sum(size), 0)::bigint as bytes
        from m group by kind""",
    "bounces": """
        select count(*) as n, coalesce(sum(a.size), 0)::bigint as bytes from (
            select distinct ndr as msg from trk
            where ndr is not null and date_time >= $a and date_time < $b) x
        left join attrs a using (msg)""",
    "sender": """
        select sender_key as key, sender_domain as key2, count(distinct msg) as messages,
               coalesce(sum(size), 0)::bigint as bytes
        from msgs_of($a, $b) group by 1, 2""",
    "recipient": """
        select rcpt as key, count(distinct msg) as messages, coalesce(sum(size), 0)::bigint as bytes
        from (select distinct msg, rcpt, size from fin where kind in ('delivered', 'sent'))
        group by 1""",
    "recipient_domain": """
        select rcpt_domain as key, count(distinct msg) as messages,
               coalesce(sum(size), 0)::bigint as bytes
        from (select distinct msg, rcpt_domain, size from fin
              where kind in ('delivered', 'sent'))
        group by 1""",
    "outcome_recipient": """
        select distinct rcpt as key, rcpt_domain as key2 from fin""",
    "server_kind": """
        select server as key, kind as key2, count(*) as n from fin group by 1, 2""",
    "connector_kind": """
        select coalesce(connector, '') as key, kind as key2, count(*) as n
        from fin group by 1, 2""",
    "fail_text": """
        select coalesce(enhanced, '') as key, status as key2, count(*) as n
        from fin where kind = 'failed' group by all""",
    "fail_code": """
        select coalesce(enhanced, '') as key, count(*) as n, count(distinct msg) as messages
        from fin where kind = 'failed' group by 1""",
    "fail_domain": """
        select coalesce(rcpt_domain, '') as key, count(*) as n, count(distinct msg) as messages
        from fin where kind = 'failed' group by 1""",
    "fail_server": """
        select server as key, coalesce(connector, '') as key2, count(*) as n,
               count(distinct msg) as messages
        from fin where kind = 'failed' group by 1, 2""",
    "domain_kind": """
        select coalesce(rcpt_domain, '') as key, kind as key2, count(*) as n
        from fin group by 1, 2""",
    "delivered_to": """
        select rcpt as key, rcpt_domain as key2, count(distinct msg) as messages,
               coalesce(sum(size), 0)::bigint as bytes
        from (select distinct msg, rcpt, rcpt_domain, size from fin where kind = 'delivered')
        group by 1, 2""",
    "expanded": """
        select lower(trim(related)) as key, count(distinct msg) as messages
        from trk where list_contains($expands, event_id) and coalesce(trim(related), '') <> ''
                   and date_time >= $a and date_time < $b
        group by 1""",
    "latency": f"""
        select {_HOUR.format(col="t")} as hour, kind as key, latency_s as value, count(*) as n
        from fin where kind in ('delivered', 'sent') and latency_s is not null
        group by 1, 2, 3""",
}


#: Figures of the whole day, one row each (measure, n), written whatever their value: a rollup
#: without them was built before they were (its day's headline is then read from rows).
DAY_COUNTS = ("pending_messages", "pending_recipients", "tracking_rows")


def build_day(
    con: duckdb.DuckDBPyConnection,
    day: dt.date,
    window: tuple[dt.datetime, dt.datetime] | None = None,
) -> pa.Table:
    """The rollup of UTC day ``day``, from the store ``con`` reads (``read.query.connect``);
    with ``window`` (instants within that day), that part of it alone, without the day's
    ``DAY_COUNTS`` but its tracking rows: the ends of a period of another time zone
    (``long``)."""
    period = Period(day, 1, "UTC")
    if window is None:  # before the day's own tables: it replaces them
        metrics.load_pending(con, period)
    ctx = load.load(con, period)
    load.create_macros(con)
    a, b = window or (period.start, period.end)
    counts = sessions.window_counts(con, a, b)
    if window is None:
        pending = metrics.pending_counts(con)
        counts.update(zip(DAY_COUNTS, (*pending, load.tracking_rows(con, ctx)), strict=True))
    else:  # the outcomes of the window (the other measures take it as $a, $b)
        sql = "create or replace temp table fin as select * from fin where t >= ? and t < ?"
        con.execute(sql, [a, b])
        # whether the window holds a period's tracking rows (``long``'s previous period)
        sql = "select count(*) from trk where date_time >= ? and date_time < ?"
        counts["tracking_rows"] = con.execute(sql, [a, b]).fetchall()[0][0]
    schema = store_rollups.rollup_schema()
    parts = []
    for measure, sql in MEASURES.items():
        given = {"a": a, "b": b, "expands": sorted(fate.EXPANDS)}
        t = con.sql(sql, params={k: v for k, v in given.items() if f"${k}" in sql})
        got = t.to_arrow_table()
        n = got.num_rows
        cols = {"measure": pa.array([measure] * n, pa.string())}
        for f in schema:
            if f.name != "measure":
                cols[f.name] = (
                    got.column(f.name).cast(f.type)
                    if f.name in got.column_names
                    else pa.nulls(n, f.type)
                )
        parts.append(pa.table(cols, schema=schema))
    k = len(counts)
    extra = {f.name: pa.nulls(k, f.type) for f in schema}
    extra["measure"] = pa.array(list(counts), pa.string())
    extra["n"] = pa.array([int(v) for v in counts.values()], pa.int64())
    parts.append(pa.table(extra, schema=schema))
    return pa.concat_tables(parts)


def build(st: Store, manifest: Manifest, days: list[str]) -> dict[str, pa.Table]:
    """The rollups of ``days`` (UTC, ``YYYY-MM-DD``) from the rows ``manifest`` lists."""
    if not days:
        return {}
    only = store_rollups.files_of(manifest, store_rollups.with_day_before(days))
    con = connect(st, only=only, manifest=manifest)
    try:
        return {d: build_day(con, dt.date.fromisoformat(d)) for d in days}
    finally:
        con.close()


def build_pieces(
    st: Store, manifest: Manifest, pieces: dict[str, tuple[str, dt.datetime, dt.datetime]]
) -> dict[str, pa.Table]:
    """Rollups of parts of UTC days (``build_day``'s ``window``): ``pieces`` maps a label to
    its day (``YYYY-MM-DD``) and window; returns the tables by label."""
    if not pieces:
        return {}
    days = sorted({day for day, _, _ in pieces.values()})
    only = store_rollups.files_of(manifest, store_rollups.with_day_before(days))
    con = connect(st, only=only, manifest=manifest)
    try:
        return {
            label: build_day(con, dt.date.fromisoformat(day), (a, b))
            for label, (day, a, b) in pieces.items()
        }
    finally:
        con.close()


def refresh(st: Store, manifest: Manifest, touched: set[str] | None = None) -> list[str]:
    """Bring the store's rollups up to date (under its lock, ``manifest`` written): the days
    ``touched`` (new tracking rows) and the day after each, the days out of date, and the
    days that have none (``store.rollups.due``). Returns the days built. The address index
    (``store.addresses``), the SMTP clients' aggregates and those of ``WINDOWED`` (TLS, SMTP
    line counts) are brought up to date the same way."""
    state = store_rollups.status(st, manifest)
    have = set(store_rollups.row_days(manifest))
    # with many days missing, the days touched are built all the same, and the day after each
    after = {(dt.date.fromisoformat(d) + dt.timedelta(days=1)).isoformat() for d in touched or ()}
    todo = store_rollups.due(state, touched, also=set(touched or ()) | (after & have))
    days = sorted(todo - set(state["kept"]))
    if days:
        store_rollups.commit(st, manifest, build(st, manifest, days))
    addresses.refresh(st, manifest, touched)
    refresh_clients(st, manifest, touched)
    for kind in WINDOWED:
        refresh_windowed(st, manifest, kind, touched)
    return days


def refresh_clients(st: Store, manifest: Manifest, touched: set[str] | None = None) -> list[str]:
    """Bring the SMTP clients' per-day aggregates (``store.rollups.CLIENTS``) up to date as
    ``refresh`` does the rollups: the days out of date (a day's part is out of date when the
    rows of its day, the day before or the day after changed), and the days without one
    (``store.rollups.due``); the days whose rows are gone are taken off, but those ``store
    prune`` kept. Returns the days built."""
    return _refresh(st, manifest, touched, store_rollups.CLIENTS, clients.build)


#: The per-day aggregates counted per window of time (a UTC day, or the hours of one at the
#: end of a period of another zone), each with what builds them from the rows a connection
#: reads: windows (a label: start, end) to tables by label.
WINDOWED = {store_rollups.TLS: tls.build, store_rollups.SMTP_LINES: sessions.build}


def refresh_windowed(
    st: Store, manifest: Manifest, kind: store_rollups.Kind, touched: set[str] | None = None
) -> list[str]:
    """Bring the per-day aggregates of ``kind`` (one of ``WINDOWED``) up to date as
    ``refresh_clients`` does (a TLS part is out of date when the rows of its day or of the day
    after changed: a new day rebuilds the day before's too). Returns the days built."""
    return _refresh(st, manifest, touched, kind, lambda con, d: WINDOWED[kind](con, _whole(d)))


def _whole(days: list[str]) -> dict[str, tuple[dt.datetime, dt.datetime]]:
    """The window of each UTC day (``YYYY-MM-DD``)."""
    start = {d: dt.datetime.combine(dt.date.fromisoformat(d), dt.time(), dt.UTC) for d in days}
    return {d: (t, t + dt.timedelta(days=1)) for d, t in start.items()}


def build_windows(
    st: Store,
    manifest: Manifest,
    kind: store_rollups.Kind,
    windows: dict[str, tuple[str, dt.datetime, dt.datetime]],
) -> dict[str, pa.Table]:
    """Aggregates of ``kind`` (one of ``WINDOWED``) of whole UTC days or parts of them from
    their rows, as ``build_pieces`` builds rollups: ``windows`` maps a label to its day
    (``YYYY-MM-DD``) and window; returns the tables by label."""
    if not windows:
        return {}
    around = store_rollups.built_from({d for d, _, _ in windows.values()}, kind)
    con = connect(st, only=store_rollups.files_of(manifest, around), manifest=manifest)
    spill = load.bound(con)
    try:
        return WINDOWED[kind](con, {label: (a, b) for label, (_, a, b) in windows.items()})
    finally:
        con.close()
        spill.cleanup()


def _refresh(
    st: Store,
    manifest: Manifest,
    touched: set[str] | None,
    kind: store_rollups.Kind,
    builder: Callable[[duckdb.DuckDBPyConnection, list[str]], dict[str, pa.Table]],
) -> list[str]:
    """``refresh_clients`` of ``kind``, its parts built by ``builder``."""
    index = store_rollups.load(st, kind)
    state = store_rollups.status(st, manifest, index, kind)
    have = store_rollups.row_days(manifest)
    todo = store_rollups.due(state, touched)
    drop = sorted(
        d for d, e in index.items() if d not in have and not store_rollups.is_kept(e, have)
    )
    days = sorted(todo & set(have))
    if not days and not drop:
        return []
    around = store_rollups.built_from(days, kind)
    con = connect(st, only=store_rollups.files_of(manifest, around), manifest=manifest)
    spill = load.bound(con)
    try:
        tables = builder(con, days)
    finally:
        con.close()
        spill.cleanup()
    store_rollups.commit(st, manifest, tables, kind, drop=drop)
    return days
