"""Reading a report's period into temporary DuckDB tables, once.

``load`` reads the period's tracking rows once into small temporary tables (and the receipts
of the day before it, where the first receipt of a message delivered after midnight is
found). A period's figures come from its own rows alone: the same in every report that
shows them (the previous period's, compared, are loaded apart or read from its rollup):

- ``trk``: the tracking rows, with the message key ``msg`` (Message-ID, else the network
  message ID, else server and internal ID) and ``ndr`` (the Message-ID of a bounce, from the
  DSN row that created it, or in Exchange 2000/2003 logs the NDR's own submission lines);
- ``firsts``: when each message was first received (its first RECEIVE row on any server, or
  for a bounce its DSN row);
- ``attrs``: sender, size, subject and side (internal, external) of each message;
- ``rev``: one row per tracking row and recipient whose event ends or delays a recipient's
  journey, with its ``kind``: delivered, sent (out of the organisation), relayed (to another
  server of the organisation), failed, deferred, dropped or quarantined, and its ``rank``
  among steps at the same instant (``fate.step_rank``: the last decides).

Then ``fin``: each recipient outcome of the period once, with its message's attributes.
`metrics` aggregates these tables into DataFrames.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass

import duckdb
import pandas as pd

from loganalyzer import fate
from loganalyzer.formats.exo_message_trace.sniff import SUMMARY as ENHANCED_SUMMARY
from loganalyzer.read.frames import to_frame
from loganalyzer.report.domains import NONE, Accepted
from loganalyzer.report.period import LOOKBACK, Period
from loganalyzer.store.duck import (
    GROUPS_PER_PASS,
    PASSES_ENV,
    domain_sql,
    parts_by_hash,
    passes,
    shared,
)

__all__ = ["GROUPS_PER_PASS", "PASSES_ENV", "in_passes", "load", "passes"]

#: DuckDB's memory for the report's tables and queries. Beyond it they spill to a temporary
#: folder: the report's peak stays flat (the interpreter, pandas and plotly about 200 MB more)
#: however many rows the day has, and only its small aggregated tables come back to Python.
MEMORY_LIMIT = "128MB"
FINAL_KINDS = ("delivered", "sent", "failed", "dropped", "quarantined")
#: The Status of an Exchange Online trace summary row (Get-MessageTrace, the reporting API,
#: Graph): one row a recipient of a message the service received, whatever became of it.
EXO_SUMMARY = (
    "Delivered", "Expanded", "Failed", "FilteredAsSpam", "GettingStatus", "None", "Pending",
    "Quarantined", "Recalled", "UnknownFutureValue",
)  # fmt: skip
#: A row that receives a message. Exchange 2000/2003 logs have no receive event: a message's
#: first line there is its submission (1019 to Advanced Queuing, 1027 from the store); an
#: Exchange Online summary names no receive event either: its row is the message's receipt
#: (an Enhanced summary's rows, one a recipient, whatever their events).
RECEIPT = (
    "(outcome = 'received' or (log_format = 'exchange2003-tracking' and outcome = 'submitted')"
    " or (log_format = 'exo-message-trace' and (event_id in ("
    + ", ".join(f"'{s}'" for s in EXO_SUMMARY)
    + f") or log_type = '{ENHANCED_SUMMARY}')))"
)
#: The report's word for each verdict a row gives its recipients (``fate``): a hand-off to
#: another server of the organisation (last seen there) is ``relayed``, a send out of it
#: ``sent``. Moderation and list expansion are counted from their own rows.
KIND = {
    "delivered": "delivered",
    "sent_external": "sent",
    "last_seen": "relayed",
    "failed": "failed",
    "deferred": "deferred",
    "dropped": "dropped",
    "quarantined": "quarantined",
}
#: A tracking row's message key, ``msg``: its Message-ID, else the network message ID, else
#: its server and internal ID.
#: The characters of a subject the report keeps (a table shows a line of it): a subject is
#: copied to each of its message's recipients, and one of 100 kB to a thousand of them held
#: 100 MB (a hostile message ran the report out of memory).
SUBJECT_CHARS = 300
MSG_SQL = "coalesce(message_id, network_message_id, server || ':' || internal_message_id)"
#: The rows of the messages with a deferral in the window (the same parameters again), and
#: the rows without a message key (which the per-message tables group together).
_DEFERRED = f"""and ({MSG_SQL} is null or {MSG_SQL} in (
    select {MSG_SQL} from tracking
    where date_time >= ? and date_time < ? and date >= ? and date <= ?
      and {fate.in_sql("event_id", fate.DEFERS)}))"""
#: A row's kind in a recipient's story and its verdict, by the rules of ``fate``.
_STEP = fate.kind_sql("$servers", connector="connector")
_VERDICT = fate.verdict_sql("event_id", "step")
#: The columns of trk that ``rev`` reads: its own and those of ``_STEP``.
_REV_COLUMNS = """date_time, server, event_id, msg, connector, log_format, server_hostname,
    recipient_address, recipient_status, enhanced_status"""
_KIND = "case verdict " + " ".join(f"when '{v}' then '{k}'" for v, k in KIND.items()) + " end"


@dataclass
class Context:
    """What ``load`` found out: the window, the organisation's servers, accepted domains."""

    period: Period
    servers: list[str]
    accepted: Accepted = NONE

    @property
    def accepted_domains(self) -> list[str]:
        return self.accepted.domains

    @property
    def accepted_inferred(self) -> bool:
        return self.accepted.inferred

    def window(self, p: Period | None = None) -> list:
        p = p or self.period
        return [p.start, p.end]


def bound(con: duckdb.DuckDBPyConnection, limit: str | None = None) -> tempfile.TemporaryDirectory:
    """Hold DuckDB to ``limit`` (default ``MEMORY_LIMIT``) of memory, spilling beyond it to
    the temporary folder returned (``cleanup()`` it once ``con`` is closed)."""
    spill = tempfile.TemporaryDirectory(prefix="loganalyzer-", ignore_cleanup_errors=True)
    if shared():
        # the web app's one database keeps its own limit and spill folder: DuckDB refuses a
        # new spill folder once one was used, and this one is removed after the report
        return spill
    con.execute(f"set memory_limit = '{limit or MEMORY_LIMIT}'")
    # the footers cache counts against the limit and is not given back: 84 MB of it for the
    # 1,500 small parts of a day left too little for the queries under 128 MB
    con.execute("set parquet_metadata_cache = false")
    con.execute("set temp_directory = " + "'" + spill.name.replace("'", "''") + "'")
    return spill


def frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None, tz=None):
    """Run ``sql``; a DataFrame with times in ``tz``."""
    return to_frame(con.sql(sql, params=params or None).to_arrow_table(), tz=tz)


def in_passes(
    con: duckdb.DuckDBPyConnection,
    table: str,
    sql: str,
    key: str,
    n: int,
    params: dict | None = None,
    by: str | None = None,
) -> None:
    """Create the temporary table ``table`` from ``sql`` run ``n`` times, once per part of the
    rows by the hash of ``key`` (``sql`` holds ``{part}``, where its rows are to be limited to
    the part): a grouping by ``key`` then holds a part of the groups at a time. ``by``: a
    column of the rows that holds each row's part already (0 to n - 1)."""
    parts = [f"({by} = {i})" for i in range(n)] if by else parts_by_hash(key, n)
    for i, part in enumerate(parts):
        head = f"create or replace temp table {table} as" if i == 0 else f"insert into {table}"
        con.execute(f"{head} {sql.replace('{part}', part)}", params or None)


def load(
    con: duckdb.DuckDBPyConnection,
    period: Period,
    accepted: Accepted = NONE,
    deferred_only: bool = False,
) -> Context:
    """Create the temporary tables ``trk``, ``firsts``, ``attrs``, ``rev`` and ``fin`` for the
    period; ``accepted``: the accepted domains (``domains.decide``), which tell internal from
    external senders where the rows have no directionality (none: a rollup's day, whose
    figures leave the sides out); ``deferred_only``: of the messages with a deferral in the
    period alone (all that
    the recipients still deferred at its end are counted from)."""
    first = period.start
    lo = first - LOOKBACK
    # the period in full; the day before it only for first receipts
    columns = f"""
        date_time, server, event_id, outcome, log_format, log_type, {MSG_SQL} as msg,
        case when event_id = 'DSN' and coalesce(reference, '') <> ''
             then if(starts_with(reference, '<'), reference, '<' || reference || '>')
             -- Exchange 2000/2003: an NDR's submission names the original in Linked-MSGID
             when log_format = 'exchange2003-tracking' and outcome = 'submitted'
                  and coalesce(linked_msgid, '') <> '' then message_id
        end as ndr,
        sender_address as sender, lower(sender_domain) as sender_domain, total_bytes as size"""
    window = "date_time >= ? and date_time < ? and date >= ? and date <= ?"
    d0, d1 = period.utc_dates(since=first)
    # in the order the files come, a period of thousands of parts buffers them all and runs
    # out of memory under MEMORY_LIMIT: the table's order is never read (queries sort)
    con.execute("set preserve_insertion_order = false")
    con.execute(
        f"""
        create or replace temp table trk as
        select {columns}, left(message_subject, {SUBJECT_CHARS}) as subject, directionality,
               connector_id as connector, server_hostname, client_hostname,
               related_recipient_address as related,
               recipient_address, recipient_status, enhanced_status
        from tracking where {window} {_DEFERRED if deferred_only else ""}
        """,
        [first, period.end, d0, d1] * (2 if deferred_only else 1),
    )
    # of the day before, the receipts and bounces of the period's messages only (a few in a
    # thousand there: the others would only make the per-message tables bigger)
    con.execute(
        f"""
        insert into trk by name
        with m as (select distinct msg from trk where msg is not null)
        select * from (
            select {columns} from tracking
            where {window} and ({RECEIPT} or event_id = 'DSN'))
        where msg in (select msg from m) or ndr in (select msg from m)
        """,
        [lo, first, lo.astimezone(dt.UTC).date(), d0],
    )
    con.execute("reset preserve_insertion_order")
    servers = [s for (s,) in con.execute("select distinct upper(server) from files").fetchall()]
    servers = sorted(s for s in servers if s)
    con.execute(
        f"""
        create or replace temp table firsts as
        select msg, min(date_time) as first_at from (
            select msg, date_time from trk where {RECEIPT} and msg is not null
            union all
            select ndr, date_time from trk where ndr is not null)
        group by msg
        """
    )
    # in passes: the first sender and subject of each message, grouped at once, ran out of
    # memory under a 64 MB limit on a day of 25,000 messages (and their day before)
    (groups,) = con.execute("select count(*) from firsts").fetchone()
    in_passes(
        con,
        "attrs",
        f"""
        with a as (
            select msg,
                arg_min(sender, date_time) filter (where coalesce(sender, '') <> '') as sender,
                arg_min(sender_domain, date_time) filter (where coalesce(sender_domain, '') <> '')
                    as sender_domain,
                arg_min(size, date_time) filter (where size is not null) as size,
                arg_min(subject, date_time) filter (where subject is not null) as subject,
                arg_min(lower(directionality), date_time)
                    filter (where lower(directionality) in ('originating', 'incoming')) as dir
            from trk where event_id <> 'DSN' and msg is not null and {{part}} group by msg)
        select msg, sender, lower(sender) as sender_key,
               coalesce(sender_domain, nullif({domain_sql("sender")}, ''))
                   as sender_domain,
               size, subject,
               case when dir = 'originating' then 'internal'
                    when dir = 'incoming' then 'external'
                    when list_contains($accepted, coalesce(sender_domain,
                         {domain_sql("sender")})) then 'internal'
                    when len($accepted) > 0 and coalesce(sender, '') <> '' then 'external'
                    else 'unknown' end as side
        from a
        """,
        "msg",
        passes(groups),
        {"accepted": accepted.domains},
    )
    # a row that ends or delays a recipient's journey, or hands it on: its final events and
    # sends, a transfer's end only (its beginning is followed by its end or a failure); the
    # columns named: ``select *`` carried every column of trk (subjects, lists) through
    con.execute(
        f"""
        create or replace temp table rev as
        with s as (
            select {_REV_COLUMNS}, {_STEP} as step from trk
            where date_time >= $since and not list_contains($begins, event_id)),
        v as (select *, {_VERDICT} as verdict from s where step in ('final', 'handoff')),
        u as (
            select date_time, server, event_id, msg, connector, {_KIND} as kind,
                   {fate.step_rank_sql("step", "verdict")} as rank,
                   unnest(recipient_address) as recipient, unnest(recipient_status) as status,
                   unnest(enhanced_status) as enhanced
            from v where {_KIND} is not null)
        select date_time, server, event_id, msg, connector, trim(recipient) as recipient,
               lower(trim(recipient)) as rcpt,
               nullif({domain_sql("trim(recipient)")}, '') as rcpt_domain,
               case when kind in ('failed', 'deferred', 'dropped', 'quarantined') then
                   {fate.status_text_sql("status")} end as status,
               enhanced, kind, rank
        from u where coalesce(trim(recipient), '') <> ''
        """,
        {"since": first, "servers": servers, "begins": sorted(fate.TRANSFER_BEGINS)},
    )
    ctx = Context(period, servers, accepted)
    _final(con, ctx)
    return ctx


#: Each recipient outcome of a window once (its first row of each kind). Of a recipient's
#: outcomes at the same instant only those that decide count, by ``fate.SETTLES`` as a
#: trace judges them (a failure and a delivery at one instant: failed, not both).
FIN_SQL = """
    select kind, msg, rcpt, min(date_time) as t, arg_min(server, date_time) as server,
           arg_min(recipient, date_time) as recipient, any_value(rcpt_domain) as rcpt_domain,
           arg_min(status, date_time) as status, arg_min(enhanced, date_time) as enhanced,
           arg_min(connector, date_time) as connector, arg_min(event_id, date_time) as event_id
    from (
        select * from rev
        where kind in ('delivered', 'sent', 'failed', 'dropped', 'quarantined')
          and date_time >= ? and date_time < ?
        qualify rank = max(rank) over (partition by msg, rcpt, date_time))
    group by kind, msg, rcpt
"""


def _final(con: duckdb.DuckDBPyConnection, ctx: Context) -> None:
    """``fin``: each recipient outcome of the period once, with its message's attributes."""
    # two statements: the grouping and the joins in one query do not spill (DuckDB runs out
    # of memory under MEMORY_LIMIT on a day of a million rows), each alone does
    con.execute(f"create or replace temp table outcomes as {FIN_SQL}", ctx.window())
    con.execute(
        """
        create or replace temp table fin as
        select o.*, a.sender, a.sender_key, a.size, a.subject, a.side, f.first_at,
               (epoch_ms(o.t) - epoch_ms(f.first_at)) / 1000.0 as latency_s
        from outcomes o left join attrs a using (msg) left join firsts f using (msg)
        """
    )
    con.execute("drop table outcomes")


def tracking_rows(con: duckdb.DuckDBPyConnection, ctx: Context) -> int:
    """The loaded period's tracking rows (the day before's receipts left out)."""
    sql = "select count(*) from trk where date_time >= ? and date_time < ?"
    return con.execute(sql, ctx.window()).fetchall()[0][0]


def hour_index(column: str, p: Period) -> str:
    """SQL for the number of the period's hour (``Period.hour_starts``) that holds ``column``:
    negative before the period, from ``p.hours`` on after it (whole hours from its ends)."""
    h = 3600000
    ms = f"epoch_ms({column})"
    start, end = (int(t.timestamp() * 1000) for t in (p.start, p.end))
    cases = [f"when {ms} < {start} then floor(({ms} - {start}) / {h})"]
    base = 0
    for a, b, off in p.offsets:
        # within one offset the hours are the whole hours of local time, the first one
        # started at ``a`` (where the clocks changed, not always on a whole hour)
        shift = int(off.total_seconds() * 1000)
        first = (int(a.timestamp() * 1000) + shift) // h
        until = int(b.timestamp() * 1000)
        cases.append(f"when {ms} < {until} then {base - first} + floor(({ms} + {shift}) / {h})")
        base += (until - 1 + shift) // h - first + 1
    cases.append(f"else {base} + floor(({ms} - {end}) / {h})")
    return f"cast(case {' '.join(cases)} end as integer)"


def hours(p: Period) -> pd.DatetimeIndex:
    """The start of every hour of the period (``Period.hour_starts``), in its zone."""
    return pd.to_datetime(p.hour_starts, utc=True).tz_convert(p.tz)


def hour_ends(p: Period) -> pd.DatetimeIndex:
    """The end of every hour of ``hours``: the next one's start, the period's end."""
    return pd.to_datetime([*p.hour_starts[1:], p.end], utc=True).tz_convert(p.tz)


def create_macros(con: duckdb.DuckDBPyConnection) -> None:
    """``msgs_of(a, b)``: the messages first received in [a, b), with their attributes."""
    con.execute(
        """
        create or replace temp macro msgs_of(a, b) as table
        select f.msg, f.first_at, t.* exclude (msg)
        from firsts f left join attrs t using (msg)
        where f.first_at >= a and f.first_at < b
        """
    )
