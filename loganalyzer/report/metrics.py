"""The headline figures of a period (compared day over day), from the tables ``load`` made.

``COUNTING_RULES`` says how each figure is counted (the report shows it); the sections'
tables are computed in ``sections/``.
"""

from __future__ import annotations

import duckdb

from loganalyzer.report import load
from loganalyzer.report.load import FIN_SQL, FINAL_KINDS, Context
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
    "recipient by its new address. Of a pair's outcomes at the same instant only the one "
    "that decides counts, as its trace judges (a failure over a delivery). Bytes out: the "
    "size of each message sent out, once per message.",
    "deferred": "Still deferred: recipients whose last event in the two days before the "
    "period's end is a DEFER (pending at its end, in every report that ends there; two days: "
    "Exchange's default message expiration, whatever --expiration, which the queues section "
    "reads back from the period's start; of events at the same instant, a final status such "
    "as Delivered outranks Pending; where `store prune` removed rows of those two days, the "
    "count the rollup of the last UTC day kept, the list holding what the rows left show). "
    "Deferrals: every DEFER of a recipient (retries included).",
    "bounces": "Bounces: non-delivery reports the organisation created (DSN rows).",
    "distinct": "Distinct senders and sender domains: of the messages received; distinct "
    "recipients and recipient domains: of the recipient outcomes (delivered, sent out, "
    "failed, dropped, quarantined). Addresses compare case-insensitively.",
    "side": "Internal or external sender: the directionality column (Originating, Incoming); "
    "where it is missing, whether the sender's domain is an accepted domain.",
    "latency": "Latency: from a message's first receipt to a recipient's delivery or sending "
    "out, for recipients delivered or sent out in the period whose message was received at "
    "most a day before it.",
    "compared": "The previous period's figures are those a report of it alone gives (a UTC "
    "day's read from its rollup, written at ingest): a day's figures are the same in every "
    "report that shows them.",
    "top": "Top senders: by messages received and their bytes, system senders (Exchange's own "
    "mailboxes, postmaster, mailer-daemon) left out and counted apart. Top recipients: by "
    "messages delivered or sent out to them and their bytes (each message once). A list "
    "holds --top rows; the page says how many it would hold without.",
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
        "still_deferred_recipients": pending_counts(con)[1],
        "deferrals": deferrals,
        "distinct_senders": senders,
    }


PENDING_SQL = """
    with ev as (
        select * from rev
        where kind in ('delivered', 'sent', 'relayed', 'failed', 'deferred', 'dropped',
                       'quarantined')
          and date_time >= ? and date_time < ?),
    last as (
        select msg, rcpt, arg_max(kind, (date_time, rank)) as kind, max(date_time) as last_at,
               arg_max(server, (date_time, rank)) as server,
               arg_max(status, (date_time, rank)) as status,
               arg_max(recipient, (date_time, rank)) as recipient,
               min(date_time) filter (where kind = 'deferred') as since,
               count(*) filter (where kind = 'deferred') as deferrals
        from ev group by msg, rcpt)
    select l.last_at as date_time, l.server, l.recipient, a.sender, a.subject,
           l.since, l.deferrals, l.status as last_error, l.msg as message_id
    from last l left join attrs a using (msg)
    where l.kind = 'deferred'
"""


#: How far back from a period's end "still deferred" looks, in days: Exchange's default message
#: expiration (a recipient deferred longer ago has failed since, or its later rows are not in
#: the store). Fixed, so that a period's end gives the same figure in every report.
PENDING_DAYS = 2


def load_pending(
    con: duckdb.DuckDBPyConnection, period: Period, counts: tuple[int, int] | None = None
) -> None:
    """The temporary table ``pend`` (the rows of ``PENDING_SQL``): the recipients still
    deferred at the end of ``period``, from the rows of its last ``PENDING_DAYS`` days, and
    ``pend_counts``, their (messages, recipients), or ``counts`` where given (what a rollup
    kept of days whose rows were pruned: ``long.kept_pending``). It replaces ``load``'s
    tables (it loads the messages with a deferral): call it before the period's own
    ``load``."""
    p = Period(period.date, PENDING_DAYS, period.tz)
    ctx = load.load(con, p, deferred_only=True)
    con.execute(f"create or replace temp table pend as {PENDING_SQL}", ctx.window(p))
    if counts is None:
        sql = "select count(distinct message_id) as messages, count(*) as recipients from pend"
        con.execute(f"create or replace temp table pend_counts as {sql}")
    else:
        sql = "create or replace temp table pend_counts as select ?::bigint as messages, "
        con.execute(sql + "?::bigint as recipients", [int(counts[0]), int(counts[1])])


def pending_counts(con: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    """(messages, recipients) still deferred (``load_pending``)."""
    return con.execute("select messages, recipients from pend_counts").fetchall()[0]
