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

import duckdb
import pandas as pd
import plotly.graph_objects as go

from loganalyzer.report.charts import NEUTRAL, hbar, text
from loganalyzer.report.load import frame
from loganalyzer.report.sections.base import Inputs, Report, Section, Table
from loganalyzer.report.sections.tls import TLS_OK, version_sql

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


def clients(con: duckdb.DuckDBPyConnection, accepted: list[str]) -> pd.DataFrame:
    """Per receive connector and remote IP: what it submitted, first seen first."""
    # in steps, each with short values only (in one query, the per-session windows and
    # aggregates of every receive line's strings ran out of memory under the report's
    # limit): the sessions that submitted, less those of computer accounts (most of them:
    # the organisation's servers); their lines with what is read of them (the EHLO name,
    # the RCPT domain, the TLS version); then sessions, messages and clients
    con.execute("set preserve_insertion_order = false")
    con.execute(
        f"""
        create or replace temp table client_sessions as
        select server, session_id from smtp
        where {_RECEIVE} and (({_QUEUED}) or context = 'authenticated')
        group by all
        having count(*) filter (where {_QUEUED}) > 0
           and coalesce(not ends_with(arg_min(data, sequence_number)
                                      filter (where context = 'authenticated'), '$'), true)
        """
    )
    con.execute(
        f"""
        create or replace temp table client_lines as
        select server, session_id, connector_id, remote_ip, date_time, sequence_number, event,
               command, reply_code, message_id is not null as queued_id,
               if(command in ('EHLO', 'HELO'),
                  nullif(regexp_extract(data, '^\\S+\\s+(\\S+)', 1), ''), null) as ehlo,
               if(command = 'RCPT', lower(regexp_extract(data, '@([^<>@\\s]+)>', 1)), null)
                   as domain,
               if(context = 'authenticated', data, null) as auth_user,
               if({TLS_OK}, {version_sql("context")}, null) as tls
        from smtp semi join client_sessions using (server, session_id)
        where {_RECEIVE}
          and (event = '>' or command in ('EHLO', 'HELO', 'MAIL', 'RCPT')
               or context = 'authenticated' or {TLS_OK})
        """
    )
    con.execute("reset preserve_insertion_order")
    con.execute(
        """
        create or replace temp table client_msgs as
        select server, session_id, event, command, reply_code, queued_id, domain, date_time,
               sequence_number, count(*) filter (where command = 'MAIL') over (
                   partition by server, session_id order by sequence_number, date_time
                   rows between unbounded preceding and current row) as m
        from client_lines where event = '>' or command in ('MAIL', 'RCPT')
        """
    )
    df = frame(
        con,
        """
        with sess as (
            select server, session_id, any_value(connector_id) as connector,
                   arg_min(remote_ip, sequence_number) filter (where remote_ip is not null)
                       as remote_ip,
                   arg_min(ehlo, sequence_number) filter (where command in ('EHLO', 'HELO'))
                       as ehlo,
                   arg_min(auth_user, sequence_number) as auth_user,
                   arg_min(tls, sequence_number) as tls
            from client_lines group by all
        ),
        acc as (
            select server, session_id, m,
                   min(date_time) filter (where event = '>' and reply_code = 250 and queued_id)
                       as accepted_at
            from client_msgs where m > 0 group by all
            having accepted_at is not null
        ),
        -- a RCPT's reply by order: after MAIL's, one per RCPT
        rcpt as (
            select server, session_id, m, domain,
                   row_number() over (partition by server, session_id, m
                                      order by sequence_number) as i
            from client_msgs where m > 0 and command = 'RCPT'
        ),
        reply as (
            select server, session_id, m, reply_code,
                   row_number() over (partition by server, session_id, m
                                      order by sequence_number) - 1 as i
            from client_msgs where m > 0 and event = '>'
        ),
        relayed as (
            select distinct server, session_id, m
            from rcpt join reply using (server, session_id, m, i)
            where reply_code between 250 and 251 and not list_contains($accepted, domain)
        ),
        j as (
            select s.connector, s.remote_ip, s.ehlo, s.auth_user,
                   coalesce(s.tls, 'none') as tls,
                   len($accepted) > 0 and r.m is not null as relay, a.accepted_at
            from acc a join sess s using (server, session_id)
            left join relayed r using (server, session_id, m)
        )
        select connector, remote_ip,
               nullif(array_to_string(list(distinct ehlo order by ehlo), ', '), '') as ehlo,
               nullif(array_to_string(list(distinct auth_user order by auth_user), ', '), '')
                   as users,
               bool_or(auth_user is null) as anonymous,
               array_to_string(list(distinct tls order by tls), ', ') as tls,
               count(*) as messages,
               count(*) filter (where relay) as relay_messages,
               count(*) filter (where relay and auth_user is null) > 0 as anonymous_relay,
               min(accepted_at) as first_seen, max(accepted_at) as last_seen
        from j group by all
        order by anonymous_relay desc, relay_messages desc, messages desc, connector, remote_ip
        """,
        {"accepted": [d.lower() for d in accepted]},
    )
    con.execute("drop table client_msgs")
    con.execute("drop table client_lines")
    con.execute("drop table client_sessions")
    return df


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {"smtp_clients": clients(q.con, q.ctx.accepted_domains)}


def charts(r: Report) -> dict[str, go.Figure]:
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
    return [
        f"{len(ips):,} clients relay anonymously to outside domains: {', '.join(names[:3])}"
        f"{more} (through {connectors})."
    ]


def note(r: Report) -> str:
    c = r.metrics["smtp_clients"]
    if not len(c):
        return "No client submitted mail through a receive connector in the store."
    return (
        f"Whole store, not only the period: {len(c):,} clients (connector and remote IP), "
        f"{int((c['relay_messages'] > 0).sum()):,} of them relaying."
    )


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
