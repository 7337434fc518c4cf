"""SMTP sessions of a period, from the ``smtp`` table (protocol logs and IIS SMTP logs).

One scan of the period counts lines by server, direction, remote IP, hour, reply code and
kind: ``connect`` (a session starts: the ``+`` line of an Exchange protocol log; IIS SMTP logs
have no session ID nor connect line, so each ``QUIT`` line stands for a session) and ``tls``
(a ``STARTTLS`` or ``X-ANONYMOUSTLS`` command: the session goes encrypted). A failed
authentication is a ``535`` reply to a client. The same counts per UTC hour make a day's
SMTP line count aggregate (``build``, ``store.rollups.SMTP_LINES``), which a report of several
days sums (``from_grain``).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa

from loganalyzer.report.load import Context, frame, hour_index
from loganalyzer.report.period import Period
from loganalyzer.store import rollups

RULES = {
    "sessions": "SMTP sessions: the sessions that start in the period (the connect line of an "
    "Exchange protocol log; in IIS SMTP logs, which have neither session IDs nor connect "
    "lines, each QUIT). With TLS: the session issued STARTTLS or X-ANONYMOUSTLS. Failed "
    "authentications: 535 replies to clients (password guessing shows as many of them from "
    "one remote IP).",
}

_KIND = """
    case when event = '+' then 'connect'
         when session_id is null and upper(command) = 'QUIT' then 'connect'
         when upper(command) in ('STARTTLS', 'X-ANONYMOUSTLS') then 'tls'
    end
"""
AUTH = "reply_code = 535 and direction = 'receive'"


def _lines(table: str, hour: str) -> str:
    """SQL: create ``table``, the line counts of [$1, $2) (UTC dates $3 to $4) per server,
    format, direction, remote IP, hour (``hour``: its SQL, of ``date_time``), reply code and
    kind, with the first and last line's time."""
    return f"""
        create or replace temp table {table} as
        select server, log_format, direction, remote_ip, {hour}, reply_code, {_KIND} as kind,
               count(*) as lines, min(date_time) as first_seen, max(date_time) as last_seen
        from smtp
        where date_time >= ? and date_time < ? and date >= ? and date <= ?
        group by all
    """


def load(con: duckdb.DuckDBPyConnection, ctx: Context) -> None:
    """``smtp_lines``: line counts of the period."""
    d0, d1 = ctx.period.utc_dates()
    sql = _lines("smtp_lines", f"{hour_index('date_time', ctx.period)} as i")
    con.execute(sql, [ctx.period.start, ctx.period.end, d0, d1])
    con.execute("create or replace temp view cur_lines as select * from smtp_lines where i >= 0")


def build(
    con: duckdb.DuckDBPyConnection, windows: dict[str, tuple[dt.datetime, dt.datetime]]
) -> dict[str, pa.Table]:
    """The line counts of ``load`` for each window (a label: its start and end, on UTC hours),
    per UTC hour, from the rows ``con`` reads, in the columns of
    ``store.rollups.smtp_lines_schema``: a day's aggregate, or a part of one."""
    schema = rollups.smtp_lines_schema()
    out = {}
    for label, (a, b) in windows.items():
        d0, d1 = _dates(a, b)
        con.execute(_lines("smtp_grain", "date_trunc('hour', date_time) as hour"), [a, b, d0, d1])
        got = con.sql(f"select {', '.join(schema.names)} from smtp_grain").to_arrow_table()
        out[label] = got.cast(schema)
        con.execute("drop table smtp_grain")
    return out


def from_grain(con: duckdb.DuckDBPyConnection, p: Period) -> None:
    """``smtp_lines`` (and ``cur_lines``) of ``p`` as ``load`` makes them, from ``smtp_grain``
    (dropped): the line counts per UTC hour of its days (``build``), in a zone whose hours
    are UTC hours."""
    con.execute(
        f"""
        create or replace temp table smtp_lines as
        select server, log_format, direction, remote_ip, {hour_index("hour", p)} as i,
               reply_code, kind, lines, first_seen, last_seen
        from smtp_grain
        """
    )
    con.execute("drop table smtp_grain")
    con.execute("create or replace temp view cur_lines as select * from smtp_lines where i >= 0")


def counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Sessions and failed inbound authentications of the loaded period, for the headline
    figures."""
    n, auth = con.execute(
        f"""
        select coalesce(sum(lines) filter (where kind = 'connect'), 0)::bigint,
               coalesce(sum(lines) filter (where {AUTH}), 0)::bigint
        from cur_lines
        """
    ).fetchall()[0]
    return {"smtp_sessions": n, "auth_failures": auth}


def period_counts(con: duckdb.DuckDBPyConnection, p: Period) -> dict[str, int]:
    """The figures of ``counts`` for period ``p``, straight from its rows in one pass, without
    the line counts of ``load`` (what a day's rollup keeps of its sessions)."""
    return window_counts(con, p.start, p.end)


def window_counts(con: duckdb.DuckDBPyConnection, a: dt.datetime, b: dt.datetime) -> dict[str, int]:
    """``period_counts`` of the instants [a, b)."""
    d0, d1 = _dates(a, b)
    n, auth = con.execute(
        f"""
        select coalesce(count(*) filter (where {_KIND} = 'connect'), 0)::bigint,
               coalesce(count(*) filter (where {AUTH}), 0)::bigint
        from smtp
        where date_time >= ? and date_time < ? and date >= ? and date <= ?
        """,
        [a, b, d0, d1],
    ).fetchall()[0]
    return {"smtp_sessions": n, "auth_failures": auth}


def _dates(a: dt.datetime, b: dt.datetime) -> tuple[dt.date, dt.date]:
    """The first and last UTC date of the instants [a, b) (the store's ``date`` partitions)."""
    return a.astimezone(dt.UTC).date(), (b - dt.timedelta(milliseconds=1)).astimezone(dt.UTC).date()


def server_hours(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """SMTP log lines per server and hour (for the missing-logs check)."""
    return frame(
        con,
        "select server, i, sum(lines)::bigint as lines, "
        "coalesce(sum(lines) filter (where kind = 'connect'), 0)::bigint as units "
        "from cur_lines group by all",
    )


def lines_by_format(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return frame(con, "select log_format, sum(lines)::bigint as lines from cur_lines group by all")
