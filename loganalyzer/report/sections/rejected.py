"""Rejected attempts and failing next hops of a period, as DataFrames.

- ``rejections``: refusals during SMTP Receive sessions, by stage, agent, reason and remote
  IP: each 5xx reply of a receive protocol log, its stage from the command it answered
  (none yet: connect), the agent and reason from the agent log of that session and stage;
  plus agent rejects whose session has no protocol log. A refused RCPT counts its recipient,
  a refusal at DATA every recipient accepted before it, any other refusal one attempt with no
  recipient. The common abuse shows here: relay attempts and directory harvesting at RCPT,
  password guessing at AUTH.
- ``agent_removed``: messages an anti-spam agent deleted or quarantined after their data was
  accepted (the sender was told so), that no tracking row of the period names: per agent,
  verdict (dropped, quarantined) and reason. Their recipients are in no other table: the
  tracking log never saw them.
- ``next_hops``: per server and next hop (the connectivity log's destination), the attempts,
  how many failed and how (dns, refused, timeout, tls, other), first and last failure, and
  the last error.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from loganalyzer.report.charts import NEUTRAL, Chart, hbar, text
from loganalyzer.report.period import utc_dates
from loganalyzer.report.sections.base import Inputs, Report, Section, Table
from loganalyzer.trace.rejected import REMOVED_VERDICT, REMOVES, SESSION_LOOKBACK

RULES = {
    "rejections": "Rejected attempts: 5xx replies of SMTP Receive sessions, staged by the command "
    "they answered (connect before any), with the agent log's agent and reason for that "
    "session and stage; agent rejects without a protocol log counted from the agent log.",
    "agent_removed": "Removed by an agent: agent log decisions that deleted (dropped) or "
    "quarantined a message after accepting its data, of messages no tracking row of the period "
    "names; messages counted by Message-ID, recipients as the agent log lists them.",
    "next_hops": "Next hops: connectivity log sessions per server and destination; a session "
    "failed when one of its lines names a failure.",
}

_STAGE = """
    case when cmd is null then if(begun and k = 0, 'connect', null)
         when cmd in ('HELO', 'EHLO') then 'helo'
         when cmd = 'AUTH' then 'auth'
         when cmd = 'MAIL' then 'mail'
         when cmd = 'RCPT' then 'rcpt'
         when cmd in ('DATA', 'BDAT') then 'data'
    end
"""
_DAY = """
    direction = 'receive' and log_format = 'exchange-smtp-protocol' and session_id is not null
    and date_time >= ? and date_time < ? and date between ? and ?
"""
_EVENT_STAGE = """
    case lower(event)
         when 'onconnect' then 'connect' when 'onconnectevent' then 'connect'
         when 'onhelocommand' then 'helo' when 'onehlocommand' then 'helo'
         when 'onauthcommand' then 'auth' when 'onmailcommand' then 'mail'
         when 'onrcptcommand' then 'rcpt' when 'onendofheaders' then 'data'
         when 'onendofdata' then 'data' when 'ondatacommand' then 'data'
         else 'agent'
    end
"""


def rejections(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Refused attempts and recipients by stage, agent, reason and remote IP."""
    window = [start, end, *utc_dates(start, end)]
    lo = start - SESSION_LOOKBACK
    # the receive protocol lines of the sessions with a refusal in the period, from
    # SESSION_LOOKBACK before it (a session begun before midnight); a command is answered by
    # the reply of its number (a client that pipelines MAIL, RCPT, RCPT gets the three replies
    # after them): the replies that end a command (not 3xx, not a line of a multi-line reply
    # but its last), numbered from the greeting, 0, where the session begins here
    sql = f"""
        with seq as (
            select *,
                   count(*) filter (where event = '<' and command is not null) over w as kc,
                   count(*) filter (where event = '>' and reply_code is not null
                                    and not reply_code between 300 and 399 and not more)
                       over w as kr,
                   count(*) filter (where event = '<' and command = 'MAIL') over w as tx,
                   first_value(event = '+' or coalesce(sequence_number, 0) = 0) over w as begun
            from (
                -- only the sessions with a refusal: the windows need no other; found by a
                -- scan of their own (its filters read in the files), not from the lines
                -- read, which a second reference would keep in memory
                select server, session_id, date_time, sequence_number, event, reply_code,
                       remote_ip, upper(command) as command,
                       coalesce(substr(data, 4, 1) = '-', false) as more
                from smtp where {_DAY}
            ) semi join (
                select distinct server, session_id from smtp
                where {_DAY} and event = '>' and reply_code >= 500
            ) using (server, session_id)
            window w as (partition by server, session_id order by sequence_number, date_time
                         rows between unbounded preceding and current row)
        ),
        matched as (
            select r.server, r.session_id, r.date_time, r.remote_ip, r.reply_code, r.begun,
                   r.kr - if(r.begun, 1, 0) as k, c.command as cmd, c.tx
            from seq r left join seq c
              on c.server = r.server and c.session_id = r.session_id
             and c.event = '<' and c.command is not null and c.kc = r.kr - if(r.begun, 1, 0)
            where r.event = '>' and r.reply_code is not null
              and not r.reply_code between 300 and 399 and not r.more
        ),
        accepted as (
            select server, session_id, tx, count(*) as n from matched
            where cmd = 'RCPT' and reply_code < 400 group by all
        ),
        refused as (
            select m.server, m.session_id, m.remote_ip, {_STAGE} as stage,
                   case when {_STAGE} = 'data' then greatest(coalesce(a.n, 0), 1)
                        when {_STAGE} = 'rcpt' then 1 else 0 end as recipients,
                   m.date_time
            from matched m left join accepted a using (server, session_id, tx)
            where m.reply_code >= 500 and m.date_time >= ?
        ),
        agents as (
            select server, session_id, {_EVENT_STAGE} as stage,
                   any_value(agent) as agent, any_value(reason) as reason,
                   any_value(remote_ip) as remote_ip, min(date_time) as date_time,
                   sum(greatest(len(recipient_address), 0)) as recipients
            from agent
            where (action ilike 'Reject%' or action = 'Disconnect')
              and date_time >= ? and date_time < ? and date between ? and ?
            group by all
        ),
        joined as (
            select r.stage, a.agent, a.reason, r.remote_ip, r.server, r.session_id,
                   r.recipients, r.date_time
            from refused r left join agents a using (server, session_id, stage)
            where r.stage is not null
            union all
            select a.stage, a.agent, a.reason, a.remote_ip, a.server, a.session_id,
                   a.recipients, a.date_time
            from agents a
            where not exists (select 1 from refused r
                              where r.server = a.server and r.session_id = a.session_id)
        )
        select stage, agent, reason, remote_ip,
               count(distinct server || '/' || coalesce(session_id, '')) as attempts,
               sum(recipients)::bigint as recipients,
               min(date_time) as first_seen, max(date_time) as last_seen
        from joined group by all
        order by attempts desc, recipients desc, stage, remote_ip
    """
    return con.sql(sql, params=[lo, end, *utc_dates(lo, end), *window, start, *window]).df()


def agent_removed(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Messages an agent deleted or quarantined after accepting them, untracked, by agent,
    verdict and reason."""
    window = "date_time >= ? and date_time < ? and date between ? and ?"
    sql = f"""
        with found as (
            select server, session_id, message_id, agent, reason, date_time,
                   {REMOVED_VERDICT} as verdict,
                   coalesce(len(recipient_address), 0) as recipients
            from agent
            where {REMOVES} and {window}
        ),
        tracked as (
            select distinct message_id from tracking
            where message_id in (select message_id from found) and {window}
        )
        select agent, verdict, reason,
               count(distinct coalesce(message_id, server || '/' || session_id)) as messages,
               sum(recipients)::bigint as recipients,
               min(date_time) as first_seen, max(date_time) as last_seen
        from found
        where message_id is null or message_id not in (select message_id from tracked)
        group by all
        order by messages desc, agent, verdict, reason
    """
    window_params = [start, end, *utc_dates(start, end)]
    return con.sql(sql, params=window_params * 2).df()


def next_hops(con: duckdb.DuckDBPyConnection, start: datetime, end: datetime) -> pd.DataFrame:
    """Attempts and failures per server and next hop, the failing ones first."""
    sql = """
        with sessions as (
            select server, destination, session_id,
                   arg_min(failure, date_time) filter (where failure is not null) as failure,
                   max(date_time) filter (where failure is not null) as failed_at,
                   min(date_time) filter (where failure is not null) as first_failed_at,
                   arg_max(error, date_time) filter (where failure is not null) as error
            from connectivity
            where source = 'SMTP' and destination is not null and session_id is not null
              and date_time >= ? and date_time < ? and date between ? and ?
            group by all
        )
        select server, destination,
               count(*) as attempts,
               count(failure) as failed,
               count(*) filter (where failure = 'dns') as dns,
               count(*) filter (where failure = 'refused') as refused,
               count(*) filter (where failure = 'timeout') as timeout,
               count(*) filter (where failure = 'tls') as tls,
               count(*) filter (where failure = 'other') as other,
               min(first_failed_at) as first_failure,
               max(failed_at) as last_failure,
               arg_max(error, failed_at) as last_error
        from sessions group by all
        having count(failure) > 0
        order by failed desc, server, destination
    """
    return con.sql(sql, params=[start, end, *utc_dates(start, end)]).df()


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    start, end = q.ctx.window()
    return {
        "rejections": rejections(q.con, start, end),
        "agent_removed": agent_removed(q.con, start, end),
        "next_hops": next_hops(q.con, start, end),
    }


def charts(r: Report) -> dict[str, Chart]:
    f = r.metrics["rejections"]
    if not len(f):
        return {}
    by_stage = f.groupby("stage", sort=False)["attempts"].sum().sort_values(ascending=False)
    labels = [text(s) for s in by_stage.index]
    return {"rejections": hbar(by_stage, labels, "Rejected attempts by stage", NEUTRAL[0])}


def attention(r: Report) -> list[str]:
    out = []
    removed = r.metrics.get("agent_removed")
    if removed is not None and len(removed):
        by = removed.groupby("verdict")["messages"].sum()
        words = {"quarantined": "quarantined", "dropped": "deleted"}
        said = [f"{int(by[v]):,} {w}" for v, w in words.items() if v in by.index]
        out.append(
            f"Messages removed by anti-spam agents after the sender was told they were accepted:"
            f" {', '.join(said)} (no tracking row shows them)."
        )
    hops = r.metrics["next_hops"]
    failing = hops[hops["failed"] > 0] if len(hops) else hops
    if len(failing):
        places = list(dict.fromkeys(failing["destination"]))
        servers = failing["server"].nunique()
        out.append(
            f"{len(places):,} next {'hop' if len(places) == 1 else 'hops'} failed to connect from "
            f"{servers:,} {'server' if servers == 1 else 'servers'} ({', '.join(places[:3])}"
            f"{', ...' if len(places) > 3 else ''})."
        )
    return out


SECTION = Section(
    id="rejected",
    title="Rejected attempts and failing next hops",
    tables=(
        Table("rejections", "Rejected attempts by stage, agent, reason and remote IP"),
        Table("agent_removed", "Accepted, then deleted or quarantined by an agent (untracked)"),
        Table("next_hops", "Next hops with connection failures"),
    ),
    compute=compute,
    charts=charts,
    attention=attention,
    attention_rank=30,
    problems=30,
    rules=RULES,
)
