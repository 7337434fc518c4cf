"""SMTP sessions of a period, from the ``smtp`` table (protocol logs and IIS SMTP logs).

One scan of the period counts lines by server, direction, remote IP, hour, reply code and
kind: ``connect`` (a session starts: the ``+`` line of an Exchange protocol log; IIS SMTP logs
have no session ID nor connect line, so each ``QUIT`` line stands for a session) and ``tls``
(a ``STARTTLS`` or ``X-ANONYMOUSTLS`` command: the session goes encrypted; counted on the
connect line of an Exchange session, read until ``TLS_TAIL`` after the window, so that a
session and its TLS fall in the same hour and day) and ``auth`` (a
failed authentication, ``failed_logins``). The same counts per UTC hour make a day's
SMTP line count aggregate (``build``, ``store.rollups.SMTP_LINES``), which a report of several
days sums (``from_grain``).

Each line is also counted by the ``message`` it ends (``MESSAGE``, ``_SENT``): ``accepted``, a
message this server took (receive) or handed on (send); ``refused`` or ``deferred``, a 5xx or
4xx reply of a remote server to this server's MAIL, RCPT, DATA or BDAT. These are the SMTP
logs' own message figures: they cannot be matched to the tracking logs' messages (no
Message-ID on most lines), so the report's message figures stay those of the tracking logs.
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa

from loganalyzer.report.load import Context, frame, hour_index
from loganalyzer.report.period import Period, utc_dates
from loganalyzer.store import rollups

RULES = {
    "sessions": "SMTP sessions: the sessions that start in the period (the connect line of an "
    "Exchange protocol log; in IIS SMTP logs, which have neither session IDs nor connect "
    "lines, each QUIT). With TLS: the session issued STARTTLS or X-ANONYMOUSTLS (counted "
    "with the session, at its connect line; in IIS SMTP logs, each such line). Failed "
    'authentications: one per attempt, in each session the greater of its "Inbound AUTH ... '
    'failed" (or "Inbound Negotiate ... failed") lines (Exchange\'s protocol log, written '
    "before its tarpit: a client that disconnects then gets no reply) and its 535 replies to "
    "the client (IIS SMTP logs only "
    "those); password guessing shows as many of them from one remote IP.",
    "smtp_messages": "Messages in the SMTP logs (apart from the tracking logs' message figures, "
    "which they cannot be matched to): accepted inbound, the server's positive reply ending a "
    "client's message data (an IIS SMTP DATA or BDAT ... LAST line with a 2xx status; an Exchange "
    "Receive protocol log's '250 ... Queued mail for delivery'); sent on, the remote server's 2xx "
    "reply right after its 354 to DATA or after BDAT ... LAST; refused and deferred, the remote's "
    "5xx and 4xx replies once MAIL was sent (to MAIL, RCPT, DATA or the data, one per reply).",
}

#: A command that takes the session to TLS.
_TLS = "upper(command) in ('STARTTLS', 'X-ANONYMOUSTLS')"
_KIND = f"""
    case when event = '+' then 'connect'
         when session_id is null and upper(command) = 'QUIT' then 'connect'
         when {_TLS} then 'tls'
    end
"""
#: How long after a window a session that connected in it is looked for its TLS command (a
#: session that starts just before midnight goes TLS after it), as the TLS section does.
TLS_TAIL = "interval 1 hour"
#: A failed authentication as the server logs it: Exchange's ``*`` line ``Inbound AUTH LOGIN
#: failed because of LogonDenied`` (any mechanism and reason; ``Inbound Negotiate failed ...``
#: for NTLM and Kerberos; written before the tarpit), or a 535 reply (Exchange's after the
#: tarpit; IIS SMTP logs only these).
_FAILED = "event = '*' and context ilike 'Inbound % failed because of %'"
_REFUSED = "reply_code = 535"
#: The rows that may be failed authentications (never null: rows outside are counted apart).
_CANDIDATE = f"coalesce(({_FAILED}) or {_REFUSED}, false)"
#: How far before a window a session's earlier failed lines and 535 replies are read: an
#: attempt whose line falls before the window and whose 535 within it is counted once.
AUTH_LOOKBACK = dt.timedelta(hours=1)
#: A failed authentication in the line counts (``kind``, in either direction).
AUTH_KIND = "kind = 'auth'"
#: One of a client (inbound): what the report counts.
AUTH = f"{AUTH_KIND} and direction = 'receive'"


def _marked(cols: str) -> str:
    """SQL: the candidate rows of [$auth_lo, $auth_hi) (``auth_window``) with ``cols`` and
    ``counted``: whether the row counts as a failed authentication. One per attempt: per
    session (Exchange: server, connector, session ID), the greater of its failed lines and
    its 535 replies; a row counts when it makes that greater so far (Exchange's failed line,
    not the 535 that follows it; the 535 of a server that logs no such line), so that the rows
    of any window hold its count. A 535 without a session (IIS SMTP) is one attempt. Only the
    candidates are sorted (few rows); those before $auth_lo0 only count the ones after."""
    return f"""
        select {cols}, date_time >= $auth_lo0
               and (session_id is null or case when failed_ then f_ > r_ else r_ > f_ end)
               as counted
        from (
            select *, count(*) filter (where failed_) over w as f_,
                   count(*) filter (where not failed_) over w as r_
            from (
                select *, coalesce({_FAILED}, false) as failed_ from smtp
                where {_CANDIDATE} and date_time >= $auth_lo and date_time < $auth_hi
                  and date >= $auth_d0 and date <= $auth_d1)
            window w as (
                partition by server, direction, connector_id, session_id
                order by sequence_number, date_time
                rows between unbounded preceding and current row))
    """


def failed_logins(cols: str = "server, remote_ip, date_time") -> str:
    """SQL: the failed authentications of clients in the window of ``auth_window`` (its named
    parameters), one row each with ``cols``: the one rule every count of them follows."""
    return f"""
        select {cols} from ({_marked(f"{cols}, direction")})
        where counted and direction = 'receive'
    """


def auth_window(a: dt.datetime, b: dt.datetime) -> dict:
    """The named parameters of ``failed_logins`` for the instants [a, b)."""
    lo = a - AUTH_LOOKBACK
    d0, d1 = utc_dates(lo, b)
    return {"auth_lo0": a, "auth_lo": lo, "auth_hi": b, "auth_d0": d0, "auth_d1": d1}


#: The message a receive line ends: in an IIS SMTP log each line is a command with its final
#: status, so a DATA (or BDAT ... LAST) line with a 2xx status is a message taken; in an
#: Exchange Receive protocol log the server's ``250 2.6.0 <id> ... Queued mail for delivery``
#: reply ends the data (after DATA and 354, or BDAT ... LAST). One line, no session window.
MESSAGE = """
    case when direction = 'receive' and reply_code between 200 and 299 and (
              (log_format = 'iis-smtp' and (upper(command) = 'DATA'
               or (upper(command) = 'BDAT' and upper(data) like '%LAST%')))
              or (event = '>' and reply_code = 250
                  and data ilike '%queued mail for delivery%'))
         then 'accepted'
    end
"""
#: The send lines judged in the order of their session (``_SENT``): the remote's replies and
#: this server's MAIL, RCPT, DATA and BDAT; the remote's reply ending the data can say
#: anything ("250 OK"), so it is known by what comes before it. Read from ``AUTH_LOOKBACK``
#: before the window (a reply ending the data a moment after midnight: a day's aggregate and
#: a report of several days count the same replies). A 535 (a candidate failed login) is
#: counted with those, never a message.
_SEND_STEP = f"""
    direction = 'send' and ((event = '<' and reply_code is not null)
                            or upper(command) in ('MAIL', 'RCPT', 'DATA', 'BDAT'))
    and not {_CANDIDATE}
"""
#: The message a send reply ends (over ``_SEND_STEP`` lines, each with ``prev_code`` and
#: ``prev_step``, the reply code and command of the line before it in its session, and
#: ``last_step``, the session's last command so far): a 2xx reply right after the 354 to DATA
#: or after BDAT ... LAST is a message handed on; a 4xx/5xx reply once MAIL was sent a
#: deferral or refusal (of the sender, a recipient or the data).
_SENT = """
    case when event = '<' and reply_code between 200 and 299
              and (prev_code = 354 or prev_step = 'BDAT LAST') then 'accepted'
         when event = '<' and reply_code between 400 and 499 and last_step is not null
              then 'deferred'
         when event = '<' and reply_code between 500 and 599 and last_step is not null
              then 'refused'
    end
"""
_STEP = """
    case when upper(command) = 'BDAT' and upper(data) like '%LAST%' then 'BDAT LAST'
         when command is not null then upper(command)
    end
"""


def _lines(table: str, hour: str) -> str:
    """SQL: create ``table``, the line counts of [$auth_lo0, $auth_hi) (``auth_window``) per
    server, format, direction, remote IP, hour (``hour``: its SQL, of ``date_time``), reply
    code and the enhanced status code that goes with it, kind and message, with the first
    and last line's time. The rows that may be failed authentications are read apart
    (``_marked``: per session, with the lines before the window), the send lines that may
    end a message apart (a window over them alone, from ``AUTH_LOOKBACK`` before), an
    Exchange session's TLS command as its connect line (read until ``TLS_TAIL`` after the
    window), the others once."""
    cols = (
        "server, log_format, direction, remote_ip, date_time, reply_code, enhanced_status, "
        "event, session_id, command"
    )
    return f"""
        create or replace temp table {table} as
        with rows_ as (
            select {cols}, null::boolean as counted, {MESSAGE} as message from smtp
            where date_time >= $auth_lo0 and date_time < $auth_hi
              and date >= $auth_d0 and date <= $auth_d1 and not {_CANDIDATE}
              and not coalesce({_SEND_STEP}, false)
              and not (session_id is not null and coalesce({_TLS}, false))
            union all by name
            -- a session's TLS on its connect line: counted with the session, on its day
            select c.server, c.log_format, c.direction, c.remote_ip, c.date_time,
                   null::integer as reply_code, null::varchar as event, c.session_id,
                   'STARTTLS' as command, null::boolean as counted, null::varchar as message
            from smtp c semi join (
                select server, direction, session_id from smtp
                where session_id is not null and {_TLS}
                  and date_time >= $auth_lo0 and date_time < $auth_hi + {TLS_TAIL}
                  and date >= $auth_d0 and date <= $auth_d1 + 1) t
                using (server, direction, session_id)
            where c.event = '+' and c.session_id is not null
              and c.date_time >= $auth_lo0 and c.date_time < $auth_hi
              and c.date >= $auth_d0 and c.date <= $auth_d1
            union all by name
            select *, null::varchar as message from ({_marked(cols)}) where date_time >= $auth_lo0
            union all by name
            select {cols}, null::boolean as counted, {_SENT} as message
            from (
                select {cols}, lag(reply_code) over w as prev_code,
                       lag(step) over w as prev_step,
                       last_value(step ignore nulls) over (
                           w rows between unbounded preceding and current row) as last_step
                from (
                    select {cols}, sequence_number, line, {_STEP} as step from smtp
                    where date_time >= $auth_lo and date_time < $auth_hi
                      and date >= $auth_d0 and date <= $auth_d1 and {_SEND_STEP})
                -- IIS lines have no session nor sequence: their peer's, in time and file order
                window w as (partition by server, coalesce(session_id, remote_ip)
                             order by sequence_number, date_time, line))
            where date_time >= $auth_lo0)
        select server, log_format, direction, remote_ip, {hour}, reply_code,
               if(reply_code is null, null, nullif(enhanced_status, '')) as enhanced,
               case when counted then 'auth' else {_KIND} end as kind, message,
               count(*) as lines, min(date_time) as first_seen, max(date_time) as last_seen
        from rows_
        group by all
    """


def load(con: duckdb.DuckDBPyConnection, ctx: Context) -> None:
    """``smtp_lines``: line counts of the period."""
    sql = _lines("smtp_lines", f"{hour_index('date_time', ctx.period)} as i")
    con.execute(sql, auth_window(ctx.period.start, ctx.period.end))
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
        con.execute(
            _lines("smtp_grain", "date_trunc('hour', date_time) as hour"), auth_window(a, b)
        )
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
               reply_code, enhanced, kind, message, lines, first_seen, last_seen
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
    d0, d1 = utc_dates(a, b)
    (n,) = con.execute(
        f"""
        select count(*) from smtp
        where date_time >= ? and date_time < ? and date >= ? and date <= ? and {_KIND} = 'connect'
        """,
        [a, b, d0, d1],
    ).fetchall()[0]
    (auth,) = con.execute(
        f"select count(*) from ({failed_logins('date_time')})", auth_window(a, b)
    ).fetchall()[0]
    return {"smtp_sessions": n, "auth_failures": auth}


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
