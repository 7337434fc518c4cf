"""Queues rebuilt from the logs: per next hop and server, the messages waiting over the
period and at its end, the oldest, the deferral reasons, those close to the message
expiration timeout, and the backlog hour by hour.

This module owns what "waiting" means (``DEFERS_SQL``, ``waits_sql``): the report reads it,
and so does watch's ``queue_backlog`` rule.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd

from loganalyzer import fate
from loganalyzer.report.charts import Chart, hour_labels, layout, text
from loganalyzer.report.load import MSG_SQL, Context, frame, hour_ends, hours
from loganalyzer.report.sections.base import (
    LENGTH,
    LISTED_OF,
    Inputs,
    Report,
    Section,
    Table,
)
from loganalyzer.report.sections.deferrals import REASON_SQL
from loganalyzer.store.duck import domain_sql

#: Exchange's default message expiration timeout (MessageExpirationTimeout).
EXPIRATION = dt.timedelta(days=2)
#: Waiting this share of the expiration timeout is "close to expiring".
CLOSE = 0.75
#: A backlog this large (messages waiting for one next hop on one server) needs a look:
#: Exchange Online's queue alert fires over 200.
LARGE_BACKLOG = 200

_ALL = fate.FINALS
#: Events that defer a recipient, and those that may take it off a queue.
_DEFERS = sorted(fate.DEFERS)
_STEPS = sorted(({*_ALL} | fate.SENDS) - fate.TRANSFER_BEGINS)
#: Verdicts of the steps that take a waiting recipient off a server's queue (last_seen: a
#: hand-off to another server of the organisation).
_LEAVES = ("delivered", "sent_external", "last_seen", "failed", "dropped", "quarantined")
_KIND = fate.kind_sql("srv.servers")
_HANDOFF = fate.handoff_sql("srv.servers", "connector_id", "server_hostname", "log_format")

#: The columns of the rows ``defers_sql`` reads.
ROW_COLUMNS = (
    "date_time",
    "server",
    "event_id",
    "connector_id",
    "server_hostname",
    "log_format",
    "msg",
    "recipient_address",
    "recipient_status",
    "enhanced_status",
)


def defers_sql(deferred: str, rows: str) -> str:
    """``DEFERS_SQL`` over other rows: ``deferred``, a query of the ``msg`` of each message
    with a DEFER row in the window; ``rows``, a query of the window's rows (``ROW_COLUMNS``,
    any event) of those messages, which may read ``deferred`` (a CTE of the query)."""
    # materialized: the deferred messages are found first (a few columns), then only their
    # rows are judged and unnested (the verdict's filter, pushed below the join, ran its
    # regexes on every step row of the window)
    return f"""
with srv as (
    select coalesce(list(distinct upper(server)) filter (where coalesce(server, '') <> ''),
                    []::varchar[]) as servers
    from files),
deferred as materialized ({deferred}),
rows as materialized ({rows}),
judged as (
    select date_time, server, msg, recipient_address, recipient_status, enhanced_status,
           {fate.verdict_sql("event_id", _KIND)} as verdict,
           case when {_HANDOFF} then coalesce(
               nullif(upper(split_part(coalesce(server_hostname, ''), '.', 1)), ''),
               nullif(connector_id, ''), '(unknown)') end as handoff_hop
    from rows, srv where {fate.in_sql("event_id", _STEPS)}),
steps as (
    select date_time, server, msg, verdict, handoff_hop,
           unnest(recipient_address) as recipient, unnest(recipient_status) as status,
           unnest(enhanced_status) as enhanced
    from judged where verdict = 'deferred' or {fate.in_sql("verdict", _LEAVES)}),
marked as (
    select date_time, server, msg, trim(recipient) as recipient,
           lower(trim(recipient)) as rcpt, verdict, handoff_hop, status, enhanced,
           min(if(verdict <> 'deferred', date_time, null)) over (
               partition by server, msg, lower(trim(recipient)) order by date_time
               range between current row and unbounded following) as until
    from steps where coalesce(trim(recipient), '') <> '')
select date_time, server,
       coalesce(handoff_hop, nullif({domain_sql("recipient")}, ''), '(unknown)')
           as hop,
       msg, recipient, rcpt, {fate.status_text_sql("status")} as reply, enhanced, until
from marked where verdict = 'deferred'
"""


def _sources(table: str, window: str, **sql: str) -> tuple[str, str]:
    """The ``deferred`` and ``rows`` queries of ``defers_sql`` over the tracking rows of
    ``table`` in ``window`` (a WHERE fragment); ``sql``: the SQL of the columns of
    ``ROW_COLUMNS`` that ``table`` has under another name, or not at all."""
    columns = ", ".join(f"{sql[c]} as {c}" if c in sql else c for c in ROW_COLUMNS)
    msg = sql.get("msg", "msg")
    return (
        f"select distinct {msg} as msg from {table} where {window} and "
        + fate.in_sql("event_id", _DEFERS),
        f"select {columns} from {table} where {window} and {msg} in (select msg from deferred)",
    )


#: Every DEFER row of a recipient (parameters ``window``: lo, hi and their first and last
#: UTC date), with its next hop and ``until``: when the recipient's next step on that server
#: took it off the queue (null: still waiting when the rows end).
DEFERS_SQL = defers_sql(
    *_sources(
        "tracking",
        "date_time >= $lo and date_time < $hi and date >= $d0 and date <= $d1",
        msg=MSG_SQL,
    )
)


def waits_sql(defers: str = f"({DEFERS_SQL})") -> str:
    """One row per wait of a recipient on a server, from the DEFER rows of ``defers`` (a
    table or a subquery): its next hop (that of its first DEFER), ``since`` (its first
    DEFER), ``until`` (null: still waiting) and its number of deferrals."""
    return f"""
        select server, arg_min(hop, date_time) as hop, msg, rcpt,
               arg_min(recipient, date_time) as recipient, min(date_time) as since,
               until, count(*) as deferrals, arg_max(reply, date_time) as last_error
        from {defers} group by server, msg, rcpt, until
    """


def window(lo: dt.datetime, hi: dt.datetime) -> dict:
    """The parameters of ``DEFERS_SQL`` for the rows in [lo, hi)."""
    return {
        "lo": lo,
        "hi": hi,
        "d0": lo.astimezone(dt.UTC).date(),
        "d1": hi.astimezone(dt.UTC).date(),
    }


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    con, p = q.con, q.ctx.period
    expiration = dt.timedelta(seconds=q.expiration)
    defer_table(con, q.ctx, p.start - expiration, p.end)
    con.execute(f"create or replace temp table qwait as {waits_sql('qdefer')}")
    # the backlog at the end of each hour (and at the period's start), per next hop and server
    idx = hours(p)
    ends = [t.to_pydatetime() for t in idx[1:]] + [p.end]
    con.execute(
        """
        create or replace temp table qhour as
        with e as (select unnest(?::timestamptz[]) as t, generate_subscripts(?::int[], 1) as i)
        select e.i - 1 as i, w.hop, w.server, count(distinct w.msg) as messages
        from qwait w join e on w.since < e.t and (w.until is null or w.until >= e.t)
        group by all
        """,
        [[p.start, *ends], list(range(len(ends) + 1))],
    )
    close = p.end - CLOSE * expiration
    queues = frame(
        con,
        """
        with pairs as (
            select hop, server,
                   count(distinct msg) filter (where until is null) as waiting,
                   count(*) filter (where until is null) as waiting_recipients,
                   min(since) filter (where until is null) as oldest_since,
                   count(distinct msg) filter (where until is null and since <= $close)
                       as close_to_expiry,
                   count(distinct msg) as waited,
                   max(epoch_ms(coalesce(until, $end)) - epoch_ms(greatest(since, $start)))
                       // 1000 as longest_wait_s
            from qwait where since < $end and (until is null or until > $start)
            group by all),
        peaks as (
            select hop, server, max(messages) as peak,
                   arg_max(i, messages * 1000000 - i) as peak_i  -- the first peak hour
            from qhour where i > 0 group by all),
        defers as (
            select hop, server, count(*) as deferrals from qdefer
            where date_time >= $start and date_time < $end group by all)
        select p.hop, p.server, p.waiting, p.waiting_recipients, p.oldest_since,
               (epoch_ms($end) - epoch_ms(p.oldest_since)) // 1000 as oldest_age_s,
               p.close_to_expiry, coalesce(k.peak, 0) as peak,
               $starts[k.peak_i] as peak_hour, p.waited,
               coalesce(d.deferrals, 0) as deferrals, p.longest_wait_s
        from pairs p left join peaks k using (hop, server) left join defers d using (hop, server)
        order by p.waiting desc, peak desc, p.hop, p.server
        """,
        {
            "start": p.start,
            "end": p.end,
            "close": close,
            "starts": [t.to_pydatetime() for t in idx],
        },
    )
    return {
        "queues": queues,
        "queue_reasons": reasons(q),
        "queue_hours": backlog(q, queues, idx),
    }


def defer_table(
    con: duckdb.DuckDBPyConnection, ctx: Context, lo: dt.datetime, hi: dt.datetime
) -> None:
    """Temporary table ``qdefer``: the rows of ``DEFERS_SQL`` in [lo, hi). Those that
    ``load`` keeps in ``trk`` (every row of the period) are read there, only the earlier
    ones from the store."""
    kept = min(max(lo, ctx.period.start), hi)
    params = {"kept": kept, "hi": hi}
    deferred, rows = _sources(
        "trk", "date_time >= $kept and date_time < $hi", connector_id="connector"
    )
    if lo < kept:
        window = "date_time >= $lo and date_time < $kept and date >= $d0 and date <= $d1"
        old_deferred, old_rows = _sources("tracking", window, msg=MSG_SQL)
        deferred, rows = f"{old_deferred} union {deferred}", f"{old_rows} union all {rows}"
        last = (kept - dt.timedelta(microseconds=1)).astimezone(dt.UTC).date()
        params |= {"lo": lo, "d0": lo.astimezone(dt.UTC).date(), "d1": last}
    con.execute(f"create or replace temp table qdefer as {defers_sql(deferred, rows)}", params)


def backlog(q: Inputs, queues: pd.DataFrame, idx: pd.DatetimeIndex) -> pd.DataFrame:
    """Per hour, for the ``top`` next hops and servers with the highest peaks: the messages
    waiting at the hour's end and the change over the hour (rows without either left out)."""
    pairs = queues[queues["peak"] > 0].sort_values(
        ["peak", "hop", "server"], ascending=[False, True, True]
    )
    total = len(pairs)
    pairs = pairs.head(q.top)[["hop", "server"]]
    cols = ["hour", "hop", "server", "messages", "change", "grew"]
    if not len(pairs):
        return pd.DataFrame({c: pd.Series(dtype=object) for c in cols})
    counts = q.con.sql("select i, hop, server, messages from qhour").df()
    out = []
    for hop, server in pairs.itertuples(index=False, name=None):
        mine = counts[(counts["hop"] == hop) & (counts["server"] == server)]
        n = mine.set_index("i")["messages"].reindex(range(len(idx) + 1), fill_value=0)
        n = n.astype("int64").to_numpy()
        for i, t in enumerate(idx):
            change = int(n[i + 1] - n[i])
            if n[i + 1] or change:
                out.append((t, hop, server, int(n[i + 1]), change, change > 0))
    df = pd.DataFrame(out, columns=cols).assign(**{LISTED_OF: total})
    return df.sort_values(["hour", "hop", "server"], kind="stable").reset_index(drop=True)


def reasons(q: Inputs) -> pd.DataFrame:
    """The period's DEFER rows per next hop and server by enhanced status and reply (its
    addresses and IPs replaced by placeholders)."""
    return frame(
        q.con,
        f"""
        select hop, server, coalesce(enhanced, '') as status, {REASON_SQL} as reason,
               count(*) as deferrals, count(distinct (msg, rcpt)) as recipients,
               count(distinct msg) as messages, {LENGTH}
        from (select * exclude (reply), reply as status from qdefer)
        where date_time >= ? and date_time < ?
        group by all order by deferrals desc, hop, server, status, reason
        limit {int(q.limit)}
        """,
        q.ctx.window(),
    )


def charts(r: Report) -> dict[str, Chart]:
    df = r.metrics["queue_hours"]
    if not len(df):
        return {}
    idx = hours(r.period)
    x = hour_labels(pd.Series(idx))
    per_hop = df.groupby(["hop", "hour"])["messages"].sum()
    fig = Chart()
    for hop in sorted(df["hop"].unique()):
        y = per_hop[hop].reindex(idx, fill_value=0)
        fig.add_scatter(x=x, y=list(y), name=text(hop, 40), mode="lines+markers")
    fig.update_xaxes(type="category")
    fig.update_yaxes(title_text="messages waiting", rangemode="tozero")
    return {"queue_backlog": layout(fig, f"Messages waiting at each hour's end ({r.period.tz})")}


def _span(seconds: float) -> str:
    s = int(seconds)
    if s % 86400 == 0:
        return f"{s // 86400} d"
    if s % 3600 == 0:
        return f"{s // 3600} h"
    return f"{s // 3600} h {s % 3600 // 60} min" if s >= 3600 else f"{s // 60} min"


def note(r: Report) -> str:
    exp = r.expiration_s
    return (
        f"Message expiration timeout: {_span(exp)}; close to it: waiting {_span(CLOSE * exp)} "
        "or longer at the period's end."
    )


def attention(r: Report) -> list[str]:
    df = r.metrics["queues"]
    out = []
    close = df[df["close_to_expiry"] > 0]
    if len(close):
        where = ", ".join(
            f"{n:,} for {hop} on {server}"
            for hop, server, n in close[["hop", "server", "close_to_expiry"]].itertuples(
                index=False, name=None
            )
        )
        oldest = int(close["oldest_age_s"].max())
        # past the timeout Exchange expires a message (a FAIL row): still waiting, the logs
        # that would say so are not in the store, or the server's timeout is longer
        past = (
            f" or past the {_span(r.expiration_s)} expiration timeout (the oldest has waited "
            f"{_span(oldest)}: a log of its expiry may be missing, or --expiration is shorter "
            "than the server's)"
            if oldest >= r.expiration_s
            else f" the {_span(r.expiration_s)} expiration timeout"
        )
        n = int(close["close_to_expiry"].sum())
        said = f"{n:,} messages are" if n != 1 else "1 message is"
        out.append(f"{said} close to{past}: {where}.")
    idx, ends = hours(r.period), hour_ends(r.period)
    for row in df[df["peak"] >= LARGE_BACKLOG].itertuples(index=False):
        at = ends[idx.get_loc(row.peak_hour)]  # the peak hour's end (half an hour, Lord Howe)
        out.append(
            f"Backlog for {row.hop} on {row.server}: up to {row.peak:,} messages waiting "
            f"(at {at:%Y-%m-%d %H:%M}), {row.waiting:,} at the period's end."
        )
    return out


RULES = {
    "queues": "Queues rebuilt from the logs: a recipient waits on a server from a DEFER there "
    "until its next step there that hands it on or ends it (sent out, relayed to another "
    "server, delivered, failed, dropped, quarantined), or the period's end; DEFER rows up "
    "to the expiration timeout before the period are read. Its next hop: the recipient's "
    "domain for mail leaving the organisation, else the next server (the first label of "
    "server-hostname), else the connector. Messages count once per next hop and server "
    "however many of their recipients wait. Waiting and the oldest: at the period's end; "
    "close to expiry: waiting three quarters of the message expiration timeout (--expiration, "
    "2 days by default) or longer; waited: messages that waited at some time in the period; "
    "backlog: messages waiting at the end of each hour (peak: the largest, at the end of "
    "peak hour); longest wait: within the period. Reasons: the period's DEFER rows by "
    "enhanced status and reply (addresses and IPs replaced).",
}

SECTION = Section(
    id="queues",
    title="Queues rebuilt from the logs",
    tables=(
        Table("queues", "Per next hop and server"),
        Table("queue_reasons", "Deferral reasons per next hop and server"),
        Table(
            "queue_hours",
            "Backlog per hour (growing hours marked)",
            flag="grew",
            cut_by=("hop", "server"),
            cut_line="{listed:,} of {total:,} next hops and servers: those with the highest "
            "peaks (the first table lists them all).",
        ),
    ),
    compute=compute,
    charts=charts,
    note=note,
    attention=attention,
    attention_rank=25,
    problems=25,
    rules=RULES,
)
