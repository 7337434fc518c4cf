"""Mail-flow figures of a period: DuckDB queries over the tables ``load`` made, as DataFrames.

``COUNTING_RULES`` says how each figure is counted (the report shows it).
"""

from __future__ import annotations

import duckdb
import pandas as pd

import eventcodes
from loganalyzer.report.load import FIN_SQL, FINAL_KINDS, Context, frame, hour_index, hours
from loganalyzer.report.period import Period

COUNTING_RULES = {
    "messages": "A message is counted once, by its Message-ID, however many servers logged "
    "it; without one, by its network message ID.",
    "received": "Messages received: messages whose first receipt by any server (its first "
    "RECEIVE row; for a bounce, the DSN row that created it) falls in the period. Bytes in: "
    "their sizes as first received.",
    "recipients": "Recipient figures count each (message, recipient) pair once, at the time "
    "of its event: delivered (DELIVER to a mailbox), sent out (SEND to a server outside the "
    "organisation), failed (FAIL and other failure events), dropped, quarantined. A list is "
    "counted as expanded (EXPAND), its members each by their own outcome; a redirected "
    "recipient by its new address. Bytes out: the size of each message sent out, once per "
    "message.",
    "deferred": "Still deferred: recipients whose last event in the period is a DEFER (pending "
    "at its end). Deferrals: every DEFER of a recipient (retries included).",
    "bounces": "Bounces: non-delivery reports the organisation created (DSN rows).",
    "distinct": "Distinct senders and sender domains: of the messages received; distinct "
    "recipients and recipient domains: of the recipient outcomes (delivered, sent out, "
    "failed, dropped, quarantined). Addresses compare case-insensitively.",
    "side": "Internal or external sender: the directionality column (Originating, Incoming); "
    "where it is missing, whether the sender's domain is an accepted domain.",
    "latency": "Latency: from a message's first receipt to a recipient's delivery or sending "
    "out, for recipients delivered or sent out in the period whose message was received at "
    "most a day before it.",
    "top": "Top senders: by messages received and their bytes, system senders (Exchange's own "
    "mailboxes, postmaster, mailer-daemon) left out and counted apart. Top recipients: by "
    "messages delivered or sent out to them and their bytes (each message once).",
}

#: Senders that are the mail system itself (bounces, notices, probes): counted apart from
#: the top senders. A DuckDB regular expression over the lower-case address.
SYSTEM_SENDER_RE = (
    r"^(microsoftexchange[0-9a-f]*|postmaster|mailer-daemon|systemmailbox\{[^}]*\}|"
    r"healthmailbox[0-9a-f]*|federatedemail\.[0-9a-f-]+)@"
)


def headline(con: duckdb.DuckDBPyConnection, ctx: Context, p: Period) -> dict[str, int]:
    """The figures compared day over day, for period ``p``."""
    w = ctx.window(p)
    (received, bytes_in, senders) = con.execute(
        "select count(*), coalesce(sum(size), 0)::bigint, count(distinct sender_key) "
        "from msgs_of(?, ?)",
        w,
    ).fetchall()[0]
    kinds = dict.fromkeys(FINAL_KINDS, (0, 0, 0))
    for kind, recipients, messages, size in con.execute(
        f"""
        with o as ({FIN_SQL}), m as (select distinct kind, msg from o)
        select o.kind, o.n, o.m, coalesce(s.b, 0) from
            (select kind, count(*) as n, count(distinct msg) as m from o group by kind) o
            left join (select kind, sum(a.size) as b from m join attrs a using (msg)
                       group by kind) s using (kind)
        """,
        w,
    ).fetchall():
        kinds[kind] = (recipients, messages, size)
    (deferrals,) = con.execute(
        "select count(*) from rev where kind = 'deferred' and date_time >= ? and date_time < ?",
        w,
    ).fetchall()[0]
    (ndrs,) = con.execute(
        "select count(distinct ndr) from trk where ndr is not null "
        "and date_time >= ? and date_time < ?",
        w,
    ).fetchall()[0]
    return {
        "received_messages": received,
        "bytes_in": int(bytes_in),
        "delivered_recipients": kinds["delivered"][0],
        "sent_out_recipients": kinds["sent"][0],
        "bytes_out": int(kinds["sent"][2]),
        "failed_recipients": kinds["failed"][0],
        "bounces": ndrs,
        "still_deferred_recipients": pending_counts(con, ctx, p)[1],
        "deferrals": deferrals,
        "distinct_senders": senders,
    }


def totals(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Grand totals: messages, recipients and bytes per outcome."""
    w = ctx.window()
    rows = [
        con.execute(
            "select 'received', count(*), null, coalesce(sum(size), 0)::bigint from msgs_of(?, ?)",
            w,
        ).fetchall()[0]
    ]
    by_kind = {
        k: (m, n, b)
        for k, m, n, b in con.execute(
            """
            with m as (select distinct kind, msg, size from fin)
            select kind, count(*), (select count(*) from fin f where f.kind = m.kind),
                   coalesce(sum(size), 0)::bigint
            from m group by kind
            """
        ).fetchall()
    }
    labels = {
        "delivered": "delivered",
        "sent": "sent out",
        "failed": "failed",
        "dropped": "dropped",
        "quarantined": "quarantined",
    }
    for kind, label in labels.items():
        m, n, b = by_kind.get(kind, (0, 0, 0))
        rows.append((label, m, n, b))
    (ndrs, ndr_bytes) = con.execute(
        """
        select count(*), coalesce(sum(a.size), 0)::bigint from (
            select distinct ndr as msg from trk
            where ndr is not null and date_time >= ? and date_time < ?) n
        left join attrs a using (msg)
        """,
        w,
    ).fetchall()[0]
    rows.append(("bounces (NDRs created)", ndrs, None, ndr_bytes))
    rows.append(("still deferred", *pending_counts(con, ctx, ctx.period), None))
    (dm, dn, de) = con.execute(
        """
        select count(distinct msg), count(distinct (msg, rcpt)), count(*) from rev
        where kind = 'deferred' and date_time >= ? and date_time < ?
        """,
        w,
    ).fetchall()[0]
    rows.append(("deferred at least once", dm, dn, None))
    rows.append(("deferrals (attempts)", None, de, None))
    (lm, ln) = con.execute(
        """
        select count(distinct msg), count(*) from (
            select distinct msg, lower(list) from (
                select msg, date_time,
                       -- Exchange 2000/2003's event 26 names the list as its recipient
                       coalesce(nullif(related, ''), if(log_format = 'exchange2003-tracking',
                                recipient_address[1], null)) as list
                from trk where outcome = 'expanded')
            where list is not null and date_time >= ? and date_time < ?)
        """,
        w,
    ).fetchall()[0]
    rows.append(("expanded (lists)", lm, ln, None))
    df = pd.DataFrame(rows, columns=["figure", "messages", "recipients", "bytes"])
    return df.astype({"messages": "Int64", "recipients": "Int64", "bytes": "Int64"})


def distinct(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Distinct senders, recipients and their domains."""
    s, sd = con.execute(
        "select count(distinct sender_key), count(distinct sender_domain) from msgs_of(?, ?)",
        ctx.window(),
    ).fetchall()[0]
    r, rd = con.execute(
        "select count(distinct rcpt), count(distinct rcpt_domain) from fin"
    ).fetchall()[0]
    return pd.DataFrame(
        {
            "figure": ["senders", "sender domains", "recipients", "recipient domains"],
            "count": [s, sd, r, rd],
        }
    )


def sides(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Internal and external senders: messages received, recipients delivered and sent out."""
    df = frame(
        con,
        """
        with r as (select side, count(*) as messages, coalesce(sum(size), 0)::bigint as bytes
                   from msgs_of(?, ?) group by side),
             o as (select side, count(*) filter (where kind = 'delivered') as delivered,
                          count(*) filter (where kind = 'sent') as sent_out
                   from fin group by side)
        select coalesce(r.side, o.side, 'unknown') as sender, coalesce(r.messages, 0) as messages,
               coalesce(r.bytes, 0) as bytes, coalesce(o.delivered, 0) as delivered,
               coalesce(o.sent_out, 0) as sent_out
        from r full join o on r.side is not distinct from o.side
        """,
        ctx.window(),
    )
    df["sender"] = df["sender"].fillna("unknown")
    order = {"internal": 0, "external": 1, "unknown": 2}
    df = df.sort_values("sender", key=lambda s: s.map(order)).reset_index(drop=True)
    return df[
        (df["sender"] != "unknown") | (df[["messages", "delivered", "sent_out"]].sum(axis=1) > 0)
    ]


def hourly(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Per hour: messages received, recipients delivered, sent out, failed; deferrals."""
    p = ctx.period
    idx = hours(p)
    out = pd.DataFrame({"hour": idx})
    parts = [
        frame(
            con,
            f"select {hour_index('first_at', p)} as i, count(*) as received, "
            "coalesce(sum(size), 0)::bigint as bytes_in from msgs_of(?, ?) group by i",
            ctx.window(),
        ),
        frame(
            con,
            f"""
            select {hour_index("t", p)} as i,
                   count(*) filter (where kind = 'delivered') as delivered,
                   count(*) filter (where kind = 'sent') as sent_out,
                   count(*) filter (where kind = 'failed') as failed
            from fin group by i
            """,
        ),
        frame(
            con,
            f"""
            select {hour_index("date_time", p)} as i, count(*) as deferrals from rev
            where kind = 'deferred' and date_time >= ? and date_time < ? group by i
            """,
            ctx.window(),
        ),
    ]
    for part in parts:
        part = part.set_index("i")
        for col in part.columns:
            out[col] = part[col].reindex(range(len(idx))).fillna(0).astype("int64").to_numpy()
    return out[["hour", "received", "delivered", "sent_out", "failed", "deferrals", "bytes_in"]]


def daily(hourly_frame: pd.DataFrame) -> pd.DataFrame:
    """The hourly figures summed per local day."""
    df = hourly_frame.copy()
    df["day"] = df["hour"].dt.strftime("%Y-%m-%d")
    return df.drop(columns="hour").groupby("day", as_index=False, sort=True).sum()


def failures(con: duckdb.DuckDBPyConnection, top: int, limit: int) -> dict[str, pd.DataFrame]:
    """Failed recipients by enhanced status, recipient domain, server and connector; the list."""
    by_status = frame(
        con,
        """
        with texts as (
            select coalesce(enhanced, '') as code, status, count(*) as n
            from fin where kind = 'failed' group by all
        ), example as (  -- the commonest text; on a tie the first in order, for a stable page
            select code, first(status order by n desc, status) as example from texts group by 1
        )
        select code as status, count(*) as recipients, count(distinct msg) as messages,
               any_value(example) as example
        from (select coalesce(enhanced, '') as code, msg from fin where kind = 'failed')
        join example using (code)
        group by 1 order by recipients desc, status
        """,
    )
    by_domain = frame(
        con,
        f"""
        select coalesce(rcpt_domain, '') as domain, count(*) as recipients,
               count(distinct msg) as messages
        from fin where kind = 'failed' group by 1 order by recipients desc, domain
        limit {int(top)}
        """,
    )
    by_server = frame(
        con,
        """
        select server, coalesce(connector, '') as connector, count(*) as recipients,
               count(distinct msg) as messages
        from fin where kind = 'failed' group by 1, 2 order by recipients desc, server, connector
        """,
    )
    failed = frame(
        con,
        f"""
        select t as date_time, server, event_id, sender, recipient, subject,
               coalesce(enhanced, '') as status, status as reply, msg as message_id
        from fin where kind = 'failed' order by t, msg, rcpt limit {int(limit)}
        """,
    )
    by_status.insert(1, "meaning", [status_meaning(c) for c in by_status["status"]])
    return {
        "failures_by_status": by_status,
        "failures_by_domain": by_domain,
        "failures_by_server": by_server,
        "failed": failed,
    }


def status_meaning(code: str | None) -> str:
    """What an enhanced status code means (eventcodes); empty when unknown."""
    if not code:
        return ""
    try:
        return eventcodes.lookup(code).meaning
    except eventcodes.UnknownCode:
        found = eventcodes.explain_status(code)
        return found[0].meaning if found else ""


_REASON = """
    regexp_replace(regexp_replace(regexp_replace(coalesce(status, ''),
        '<?[^\\s<>@"]+@[^\\s<>"]+>?', '<address>', 'g'),
        '\\[[0-9A-Fa-f:.]+\\](:[0-9]+)?', '<ip>', 'g'),
        '\\b[0-9]{1,3}(\\.[0-9]{1,3}){3}(:[0-9]+)?', '<ip>', 'g')
"""


def deferrals(con: duckdb.DuckDBPyConnection, ctx: Context, top: int) -> pd.DataFrame:
    """Deferrals by reason (addresses and IPs of the status text replaced by placeholders)."""
    return frame(
        con,
        f"""
        select coalesce(enhanced, '') as status, {_REASON} as reason, count(*) as deferrals,
               count(distinct (msg, rcpt)) as recipients, count(distinct msg) as messages,
               array_to_string(list(distinct rcpt_domain order by rcpt_domain)[1:5], ', ')
                   as domains
        from rev where kind = 'deferred' and date_time >= ? and date_time < ?
        group by 1, 2 order by deferrals desc, status, reason limit {int(top)}
        """,
        ctx.window(),
    )


_PENDING = """
    with ev as (
        select * from rev
        where kind in ('delivered', 'sent', 'relayed', 'failed', 'deferred', 'dropped',
                       'quarantined')
          and date_time >= ? and date_time < ?),
    last as (
        select msg, rcpt, arg_max(kind, date_time) as kind, max(date_time) as last_at,
               arg_max(server, date_time) as server, arg_max(status, date_time) as status,
               arg_max(recipient, date_time) as recipient,
               min(date_time) filter (where kind = 'deferred') as since,
               count(*) filter (where kind = 'deferred') as deferrals
        from ev group by msg, rcpt)
    select l.last_at as date_time, l.server, l.recipient, a.sender, a.subject,
           l.since, l.deferrals, l.status as last_error, l.msg as message_id
    from last l left join attrs a using (msg)
    where l.kind = 'deferred'
"""


def pending(
    con: duckdb.DuckDBPyConnection, ctx: Context, p: Period, limit: int = 200
) -> pd.DataFrame:
    """Recipients whose last event in the period is a DEFER: still pending at its end."""
    sql = f"{_PENDING} order by date_time, message_id, lower(recipient) limit {int(limit)}"
    return frame(con, sql, ctx.window(p))


def pending_counts(con: duckdb.DuckDBPyConnection, ctx: Context, p: Period) -> tuple[int, int]:
    """(messages, recipients) still pending at the end of period ``p``."""
    sql = f"select count(distinct message_id), count(*) from ({_PENDING})"
    return con.execute(sql, ctx.window(p)).fetchall()[0]


def latency(con: duckdb.DuckDBPyConnection, ctx: Context, top: int) -> dict[str, pd.DataFrame]:
    """Delivery latency percentiles (seconds) overall, per kind and per hour; the slowest."""
    stats = """count(*) as recipients, quantile_cont(latency_s, 0.5) as p50,
               quantile_cont(latency_s, 0.9) as p90, quantile_cont(latency_s, 0.99) as p99,
               max(latency_s) as max"""
    where = "kind in ('delivered', 'sent') and latency_s is not null"
    summary = frame(
        con,
        f"""
        select 'all' as recipients_of, {stats} from fin where {where}
        union all
        select if(kind = 'sent', 'sent out', kind), {stats} from fin where {where} group by kind
        """,
    )
    order = {"all": 0, "delivered": 1, "sent out": 2}
    summary = summary.sort_values("recipients_of", key=lambda s: s.map(order))
    summary = summary[summary["recipients"] > 0].reset_index(drop=True)
    p = ctx.period
    per_hour = frame(
        con,
        f"select {hour_index('t', p)} as i, {stats} from fin where {where} group by i order by i",
    )
    idx = hours(p)
    per_hour.insert(0, "hour", [idx[i] if 0 <= i < len(idx) else pd.NaT for i in per_hour["i"]])
    per_hour = per_hour.drop(columns="i")
    slowest = frame(
        con,
        f"""
        select t as date_time, latency_s, if(kind = 'sent', 'sent out', kind) as outcome,
               recipient, sender, subject, first_at as received_at, msg as message_id
        from fin where {where} order by latency_s desc, msg, rcpt limit {int(top)}
        """,
        tz=p.tz,
    )
    return {"latency": summary, "latency_hourly": per_hour, "slowest": slowest}


def tops(con: duckdb.DuckDBPyConnection, ctx: Context, top: int) -> dict[str, pd.DataFrame]:
    """Top senders, recipients and their domains, by messages and by bytes."""
    n = int(top)
    out = {}
    fin = "select distinct msg, {col}, size from fin where kind in ('delivered', 'sent')"
    sources = {  # name: (column, its label, the rows: one per message and column value)
        "senders": ("sender_key", "sender", "select msg, sender_key, size from msgs_of($a, $b)"),
        "sender_domains": (
            "sender_domain",
            "domain",
            "select msg, sender_domain, size from msgs_of($a, $b)",
        ),
        "recipients": ("rcpt", "recipient", fin.format(col="rcpt")),
        "recipient_domains": ("rcpt_domain", "domain", fin.format(col="rcpt_domain")),
    }
    a, b = ctx.window()
    orders = {"": "messages desc, bytes desc", "_by_size": "bytes desc, messages desc"}

    def system(col: str) -> str:
        return f"regexp_matches({col}, '{SYSTEM_SENDER_RE}')"

    for name, (col, label, src) in sources.items():
        params = {"a": a, "b": b} if "$a" in src else {}
        people = f"and not {system(col)}" if name == "senders" else ""
        for suffix, order in orders.items():
            out[f"top_{name}{suffix}"] = frame(
                con,
                f"""
                select {col} as {label}, count(distinct msg) as messages,
                       coalesce(sum(size), 0)::bigint as bytes
                from ({src}) where {col} is not null and {col} <> '' {people}
                group by 1 order by {order}, 1 limit {n}
                """,
                params,
            )
    out["system_senders"] = frame(
        con,
        f"""
        select sender_key as sender, count(distinct msg) as messages,
               coalesce(sum(size), 0)::bigint as bytes
        from msgs_of($a, $b) where {system("sender_key")}
        group by 1 order by messages desc, bytes desc, 1 limit {n}
        """,
        {"a": a, "b": b},
    )
    return out
