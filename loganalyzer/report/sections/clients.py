"""SMTP clients and relays: every remote IP that submitted mail through a receive connector,
over the whole store (not just the period), from the Exchange SMTP Receive protocol logs.

In steps over the ``smtp`` table's receive lines that matter, with short values only: the
sessions that submitted mail (a ``250 2.6.0 ... Queued mail for delivery`` reply) and did not
authenticate as a computer account; their EHLO, MAIL, RCPT, reply, ``authenticated`` and TLS
lines; then who each session authenticated as and its TLS version, the messages it submitted
and their accepted recipients (a RCPT's reply is found by order: after MAIL, one reply per
RCPT); then per connector and remote IP.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa

from loganalyzer.report.charts import NEUTRAL, Chart, hbar, text
from loganalyzer.report.domains import Accepted
from loganalyzer.report.load import frame
from loganalyzer.report.sections.base import Inputs, Report, Section, Table
from loganalyzer.report.sections.tls import TLS_OK, version_sql
from loganalyzer.store import rollups
from loganalyzer.store.duck import read_parquet

RULES = {
    "clients": "SMTP clients: over the whole store, per receive connector and remote IP, the "
    "messages submitted in Exchange SMTP Receive protocol log sessions (each 250 2.6.0 reply "
    "to the data). Sessions authenticated as a computer account (DOMAIN\\NAME$: Exchange "
    "servers of the organisation) are left out. EHLO names, users and TLS versions are those "
    "of the sessions that submitted; anonymous: a message came in a session that did not "
    "authenticate. Relay: a message with a recipient outside the accepted domains whose RCPT "
    "got a 250 or 251 reply (the replies are matched to the commands in order); an anonymous "
    "relay needs a look (an open relay, or a device to move to an authenticated connector).",
}


#: The receive lines of Exchange SMTP Receive protocol log sessions.
_RECEIVE = """direction = 'receive' and log_format = 'exchange-smtp-protocol'
              and session_id is not null"""
#: A reply that queued a submitted message (250 2.6.0 ... Queued mail for delivery).
_QUEUED = "event = '>' and reply_code = 250 and message_id is not null"


def _dates(days) -> str:
    """A SQL list of dates (``YYYY-MM-DD`` strings, as the manifest's partitions name them)."""
    return ", ".join(f"date '{dt.date.fromisoformat(d).isoformat()}'" for d in sorted(days))


def grain(con: duckdb.DuckDBPyConnection, days: list[str] | None = None) -> None:
    """Create the temporary table ``client_grain`` (the columns of
    ``store.rollups.clients_schema`` and ``day``): per UTC day of a session's first
    submission or authentication line, per client and what its sessions showed, the messages
    accepted and their first and last time. ``days``: only the sessions of those days, read
    from their rows and those of the day before and after (a session across midnight);
    None: every day's."""
    _lines(con, days)
    _grain(con)
    con.execute("drop table client_lines")


def _lines(con: duckdb.DuckDBPyConnection, days: list[str] | None, apart: bool = False) -> None:
    """Create ``client_lines``: the lines ``_grain`` reads of the sessions of ``days`` (see
    ``grain``), each with its session's ``day``. ``apart``: each day's sessions as if read
    alone, from the rows of that day and the day before and after (what ``build`` makes a
    day's part of), the rows of all of them read once."""
    if days is None:
        window = keep = "true"
    else:
        window = f"date in ({_dates(rollups.built_from(days, rollups.CLIENTS))})"
        keep = f"first in ({_dates(days)})"
    # in steps, each with short values only (in one query, the per-session windows and
    # aggregates of every receive line's strings ran out of memory under the report's
    # limit): the sessions that submitted, less those of computer accounts (most of them:
    # the organisation's servers); their lines with what is read of them (the EHLO name, the
    # RCPT domain, the TLS version)
    con.execute("set preserve_insertion_order = false")
    auth = "context = 'authenticated' and data is not null"
    seen = f"""
        select server, session_id, min(date) as first,
               count(*) filter (where {_QUEUED}) as queued,
               min(sequence_number) filter (where {auth}) as auth_seq,
               arg_min(ends_with(data, '$'), sequence_number) filter (where {auth}) as computer
        from smtp
        where {_RECEIVE} and {window} and (({_QUEUED}) or context = 'authenticated')
        group by server, session_id{", date" if apart else ""}"""
    near = "true"
    if apart:  # read once per session and date, then each day's from the dates of its window
        con.execute(f"create or replace temp table client_seen as {seen}")
        pairs = ", ".join(
            f"({_dates([d])}, {_dates([x])})"
            for d in sorted(days or ())
            for x in sorted(rollups.built_from([d], rollups.CLIENTS))
        )
        seen = f"""
            select w.day, server, session_id, min(first) as first, sum(queued) as queued,
                   arg_min(computer, auth_seq) as computer
            from client_seen join (values {pairs}) as w(day, date) on first = w.date
            group by w.day, server, session_id"""
        keep, near = "first = day", "date between c.day - 1 and c.day + 1"
    con.execute(
        f"""
        create or replace temp table client_sessions as
        select server, session_id, first as day from ({seen})
        where queued > 0 and coalesce(not computer, true) and {keep}
        """
    )
    con.execute(
        f"""
        create or replace temp table client_lines as
        select server, session_id, c.day, connector_id, remote_ip, date_time, sequence_number,
               event, command, reply_code, message_id is not null as queued_id,
               if(command in ('EHLO', 'HELO'),
                  nullif(regexp_extract(data, '^\\S+\\s+(\\S+)', 1), ''), null) as ehlo,
               if(command = 'RCPT', lower(regexp_extract(data, '@([^<>@\\s]+)>', 1)), null)
                   as domain,
               if(context = 'authenticated', data, null) as auth_user,
               if({TLS_OK}, {version_sql("context")}, null) as tls
        from smtp join client_sessions c using (server, session_id)
        where {_RECEIVE} and {window} and {near}
          and (event = '>' or command in ('EHLO', 'HELO', 'MAIL', 'RCPT')
               or context = 'authenticated' or {TLS_OK})
        """
    )
    con.execute("reset preserve_insertion_order")
    con.execute("drop table client_sessions")
    if apart:
        con.execute("drop table client_seen")


def _grain(con: duckdb.DuckDBPyConnection, day: str | None = None) -> None:
    """Create ``client_grain`` from ``client_lines`` (those of the sessions of ``day`` alone,
    when given): per session, its messages and their accepted recipients' domains, then per
    day and client."""
    only = "true" if day is None else f"day = {_dates([day])}"
    con.execute(
        f"""
        create or replace temp table client_msgs as
        select server, session_id, day, event, command, reply_code, queued_id, domain, date_time,
               sequence_number, count(*) filter (where command = 'MAIL') over (
                   partition by server, session_id, day order by sequence_number, date_time
                   rows between unbounded preceding and current row) as m
        from client_lines where {only} and (event = '>' or command in ('MAIL', 'RCPT'))
        """
    )
    con.execute(
        f"""
        create or replace temp table client_grain as
        with sess as (
            select server, session_id, day, any_value(connector_id) as connector,
                   arg_min(remote_ip, sequence_number) filter (where remote_ip is not null)
                       as remote_ip,
                   arg_min(ehlo, sequence_number) filter (where command in ('EHLO', 'HELO'))
                       as ehlo,
                   arg_min(auth_user, sequence_number) as auth_user,
                   arg_min(tls, sequence_number) as tls
            from client_lines where {only} group by all
        ),
        acc as (
            select server, session_id, day, m,
                   min(date_time) filter (where event = '>' and reply_code = 250 and queued_id)
                       as accepted_at
            from client_msgs where m > 0 group by all
            having accepted_at is not null
        ),
        -- a RCPT's reply by order: after MAIL's, one per RCPT
        rcpt as (
            select server, session_id, day, m, domain,
                   row_number() over (partition by server, session_id, day, m
                                      order by sequence_number) as i
            from client_msgs where m > 0 and command = 'RCPT'
        ),
        reply as (
            select server, session_id, day, m, reply_code,
                   row_number() over (partition by server, session_id, day, m
                                      order by sequence_number) - 1 as i
            from client_msgs where m > 0 and event = '>'
        ),
        -- the domains a message's accepted recipients are in: whether it relayed depends
        -- on the accepted domains, which the report decides
        domains as (
            select server, session_id, day, m, list(distinct domain order by domain) as domains
            from rcpt join reply using (server, session_id, day, m, i)
            where reply_code between 250 and 251 and domain is not null
            group by all
        )
        select s.day, s.connector, s.remote_ip, s.ehlo, s.auth_user,
               coalesce(s.tls, 'none') as tls, coalesce(d.domains, []) as domains,
               count(*) as messages, min(a.accepted_at) as first_seen,
               max(a.accepted_at) as last_seen
        from acc a join sess s using (server, session_id, day)
        left join domains d using (server, session_id, day, m)
        group by all
        """
    )
    con.execute("drop table client_msgs")


#: The days ``build`` reads the lines of at once (with the day before and after): each of
#: them is then read from their temporary table, which grows with them.
_DAYS_READ_TOGETHER = 4
#: The columns of ``client_grain`` kept in a day's part.
_GRAIN = "connector, remote_ip, ehlo, auth_user, tls, domains, messages, first_seen, last_seen"


def build(con: duckdb.DuckDBPyConnection, days: list[str]) -> dict[str, pa.Table]:
    """The per-day aggregates of ``days`` from the rows ``con`` reads (``read.query.connect``
    on those days' files and their neighbours'), in the columns of
    ``store.rollups.clients_schema``."""
    schema = rollups.clients_schema()
    out = {}
    days = sorted(days)
    for i in range(0, len(days), _DAYS_READ_TOGETHER):
        chunk = days[i : i + _DAYS_READ_TOGETHER]
        _lines(con, chunk, apart=True)
        for d in chunk:  # a day at a time: the groupings per session hold one day's sessions
            _grain(con, d)
            # in an order of their own (a grouping's is not), so that a rebuilt part is the same
            got = con.sql(f"select {_GRAIN} from client_grain order by all").to_arrow_table()
            out[d] = got.cast(schema)
            con.execute("drop table client_grain")
        con.execute("drop table client_lines")
    return out


def _from_parts(con: duckdb.DuckDBPyConnection, store, state: dict | None = None) -> None:
    """``client_grain`` from the store's current per-day aggregates (and those of pruned
    days), and from the rows of the days that have none (never built, or out of date)."""
    manifest = store.last_manifest or store.manifest(con)
    index = rollups.load(store, rollups.CLIENTS, con)
    if state is None:
        state = rollups.status(store, manifest, index, rollups.CLIENTS)
    current = set(state["current"]) | set(state["kept"])  # kept: the rows were pruned
    have = sorted(rollups.row_days(manifest))
    parts = [store.uri(index[d].part) for d in sorted(set(have) | current) if d in current]
    rows = [d for d in have if d not in current]
    if not parts:
        grain(con)
        return
    if rows:
        grain(con, rows)
        con.execute(f"insert into client_grain by name select {_GRAIN} from {read_parquet(parts)}")
    else:
        con.execute(
            f"create or replace temp table client_grain as "
            f"select {_GRAIN} from {read_parquet(parts)}"
        )


def clients(
    con: duckdb.DuckDBPyConnection, accepted: list[str], store=None, state: dict | None = None
) -> pd.DataFrame:
    """Per receive connector and remote IP: what it submitted, first seen first; from the
    store's per-day aggregates where they are current when ``store`` is given (``state``:
    their ``store.rollups.status``, when the caller has it)."""
    if store is None:
        grain(con)
    else:
        _from_parts(con, store, state)
    df = frame(
        con,
        """
        with j as (
            select *, len($accepted) > 0 and not list_has_all($accepted, domains) as relay
            from client_grain
        )
        select connector, remote_ip,
               nullif(array_to_string(list(distinct ehlo order by ehlo), ', '), '') as ehlo,
               nullif(array_to_string(list(distinct auth_user order by auth_user), ', '), '')
                   as users,
               bool_or(auth_user is null) as anonymous,
               array_to_string(list(distinct tls order by tls), ', ') as tls,
               sum(messages)::bigint as messages,
               coalesce(sum(messages) filter (where relay), 0)::bigint as relay_messages,
               coalesce(sum(messages) filter (where relay and auth_user is null), 0) > 0
                   as anonymous_relay,
               min(first_seen) as first_seen, max(last_seen) as last_seen
        from j group by all
        order by anonymous_relay desc, relay_messages desc, messages desc, connector, remote_ip
        """,
        {"accepted": [d.lower() for d in accepted]},
    )
    con.execute("drop table client_grain")
    return df


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {"smtp_clients": clients(q.con, q.ctx.accepted.relay_domains, q.store)}


def charts(r: Report) -> dict[str, Chart]:
    c = r.metrics["smtp_clients"]
    if not len(c) or not c["relay_messages"].sum():
        return {}
    by = (
        c.assign(
            who=[
                f"{ip} ({e})" if e else str(ip)
                for ip, e in zip(c["remote_ip"], c["ehlo"], strict=True)
            ]
        )
        .groupby("who")["relay_messages"]
        .sum()
    )
    by = by[by > 0].sort_values(ascending=False, kind="stable").head(r.top)
    labels = [text(w) for w in by.index]
    return {"smtp_relays": hbar(by, labels, "Relayed messages by client (whole store)", NEUTRAL[0])}


def attention(r: Report) -> list[str]:
    if r.is_empty:  # no logs in the period: the whole store's finding is not its news
        return []
    c = r.metrics["smtp_clients"]
    open_ = c[c["anonymous_relay"]] if len(c) else c
    if not len(open_):
        return []
    ips = open_.drop_duplicates("remote_ip")
    names = [
        f"{ip} ({e})" if e else str(ip) for ip, e in zip(ips["remote_ip"], ips["ehlo"], strict=True)
    ]
    more = f" and {len(names) - 3:,} more" if len(names) > 3 else ""
    connectors = ", ".join(sorted(set(open_["connector"])))
    # a guess may miss a domain of the organisation: its own servers would be the relays
    guess = (
        f"; accepted domains inferred: {', '.join(r.accepted_domains)}, give --accepted-domain"
        if r.accepted_inferred
        else ""
    )
    return [
        f"{len(ips):,} clients relay anonymously to outside domains: {', '.join(names[:3])}"
        f"{more} (through {connectors}{guess})."
    ]


def note(r: Report) -> str:
    c = r.metrics["smtp_clients"]
    if not len(c):
        return "No client submitted mail through a receive connector in the store."
    whole = f"Whole store, not only the period: {len(c):,} clients (connector and remote IP), "
    if Accepted(r.accepted_domains, r.accepted_inferred, r.accepted_delivered).thin:
        n = r.accepted_delivered or 0
        return (
            f"{whole}relaying not judged: the accepted domains are a guess from {n:,} "
            f"delivered recipient{'' if n == 1 else 's'} (give --accepted-domain)."
        )
    return f"{whole}{int((c['relay_messages'] > 0).sum()):,} of them relaying."


SECTION = Section(
    id="clients",
    title="SMTP clients and relays",
    tables=(
        Table("smtp_clients", "Clients by receive connector and remote IP", flag="anonymous_relay"),
    ),
    compute=compute,
    charts=charts,
    note=note,
    attention=attention,
    attention_rank=45,
    problems=48,
    rules=RULES,
)
