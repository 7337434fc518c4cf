"""TLS per connector and direction, from the Exchange protocol logs' TLS negotiation lines.

A session (server and session ID of a SMTP Receive or Send protocol log) counts in the period
of its connect line. Its TLS is read from its information lines: ``TLS protocol
SP_PROT_TLS1_2_SERVER negotiation succeeded using bulk encryption algorithm CALG_AES_256 ...``
gives the version (TLS 1.2) and the cipher (the bulk encryption algorithm); ``TLS negotiation
failed with error X`` a failure and its error; neither: the session went without TLS.

The tables are counted from ``tls_grain``, the sessions per connector, peer, version, cipher
and error: of the period's rows, or summed over the TLS per-day aggregates a report of several
days reads (``build`` makes them; ``store.rollups.TLS``).
"""

from __future__ import annotations

import datetime as dt

import duckdb
import pandas as pd
import pyarrow as pa

from loganalyzer.report.charts import NEUTRAL, Chart, layout, text
from loganalyzer.report.load import frame, in_passes, passes
from loganalyzer.report.sections.base import Inputs, Report, Section, Table
from loganalyzer.report.sessions import window_counts
from loganalyzer.store import rollups

RULES = {
    "tls": "TLS: sessions of the Exchange SMTP Receive (inbound) and Send (outbound) protocol "
    "logs, counted in the period of their connect line, per connector. A session's TLS version "
    "and cipher (the bulk encryption algorithm) come from its 'TLS protocol ... negotiation "
    "succeeded' line; a 'TLS negotiation failed with error X' line without a success is a "
    "failed negotiation (version 'failed'); neither is a session without TLS (version "
    "'none'). A peer is the session's remote IP; its host the EHLO name it gave (inbound) or "
    "the name in the remote server's 220 greeting (outbound). TLS 1.0, 1.1 and SSL are legacy.",
}
LEGACY = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1")
#: A colour per version: the current ones blue, the legacy ones warm, failures red, none grey.
VERSION_COLORS = {
    "TLS 1.3": "#1f4e79",
    "TLS 1.2": "#6b9bc8",
    "TLS 1.1": "#f2a541",
    "TLS 1.0": "#e07b39",
    "SSL 3.0": "#a0522d",
    "SSL 2.0": "#7f3b1d",
    "failed": "#b0413e",
    "none": NEUTRAL[2],
}
#: How long after the period a session's lines are still read (a session that starts just
#: before midnight negotiates after it).
TAIL = "interval 1 hour"


def version_match_sql(line: str) -> str:
    """SQL: the parts (``p``, ``a``, ``b``) of the TLS version named in a negotiation line."""
    return f"regexp_extract({line}, 'SP_PROT_(TLS|SSL)([0-9])(?:_([0-9]))?_', ['p', 'a', 'b'])"


def version_of_sql(m: str) -> str:
    """SQL: the TLS version (``TLS 1.2``, ``SSL 3.0``) from the non-null parts ``m``
    (``version_match_sql``), ``unknown`` when the line names none."""
    return (
        f"if({m}.p = '', 'unknown', "
        f"{m}.p || ' ' || {m}.a || '.' || coalesce(nullif({m}.b, ''), '0'))"
    )


def version_sql(line: str) -> str:
    """SQL: the TLS version (``TLS 1.2``, ``SSL 3.0``) of a negotiation line, null if none."""
    return f"case when {line} is null then null else {version_of_sql(version_match_sql(line))} end"


#: A negotiation line that succeeded, and one that failed.
TLS_OK = "context like 'TLS protocol %negotiation succeeded%'"
TLS_FAILED = "context like 'TLS negotiation failed%'"


def load(con: duckdb.DuckDBPyConnection, q: Inputs) -> None:
    """``tls_sessions``: one row per session connected in the period."""
    start, end = q.ctx.window()
    sessions(con, start, end, q.headline.get("smtp_sessions", 0))


def sessions(
    con: duckdb.DuckDBPyConnection, start: dt.datetime, end: dt.datetime, expected: int
) -> None:
    """``tls_sessions``: one row per session connected in [start, end), its lines read until
    ``TAIL`` after ``end``; ``expected``: about how many (the passes it is grouped in)."""
    d0 = start.astimezone(dt.UTC).date()
    d1 = (end - dt.timedelta(milliseconds=1)).astimezone(dt.UTC).date()
    # in steps, with short values only: the lines a session's TLS is read from, each with
    # what is read of it (the connect line's connector and IP, the host, the version and
    # cipher, the error), then one row per session, in passes of GROUPS_PER_PASS sessions;
    # whole lines and one statement ran out of memory under the report's limit on a day of
    # 1,500 parts. The passes are for at most the sessions the period's connect lines start;
    # each line keeps its pass and the lines are stored in that order, so that a pass reads
    # its own row groups only (each pass hashing every line again took 9 of a 3 GB day's 21
    # CPU seconds)
    key = "server, direction, session_id"
    k = passes(expected)
    con.execute("set preserve_insertion_order = false")
    con.execute(
        f"""
        create or replace temp table tls_lines as
        select server, direction, session_id, sequence_number,
               (hash({key}) % {k})::integer as pass,
               if(event = '+', date_time, null) as connect_time,
               if(event = '+', connector_id, null) as connector_id,
               if(event = '+', remote_ip, null) as remote_ip,
               if(hostline, regexp_extract(data, '^\\S+\\s+(\\S+)', 1), null) as host,
               ok,
               if(ok, {version_of_sql("m")}, null) as version,
               if(ok, nullif(regexp_extract(context, 'bulk encryption algorithm (\\S+)', 1), ''),
                  null) as cipher,
               if(failed, coalesce(nullif(regexp_extract(context, 'failed with error (\\S+)', 1),
                                          ''), context), null) as error
        from (
            -- the version's regex once a line (its parts are read three times)
            select *, if(ok, {version_match_sql("context")}, null) as m
            from (
                select server, direction, session_id, sequence_number, event, date_time,
                       connector_id, remote_ip, data, context,
                       (direction = 'receive' and command in ('EHLO', 'HELO'))
                          or (direction = 'send' and event = '<' and reply_code = 220)
                          as hostline,
                       {TLS_OK} as ok, {TLS_FAILED} as failed
                from smtp
                where log_format = 'exchange-smtp-protocol' and session_id is not null
                  and direction in ('receive', 'send')
                  and date_time >= $start and date_time < $end + {TAIL}
                  and date >= $d0 and date <= $d1 + 1
                  and (event = '+' or (event = '*' and ({TLS_OK} or {TLS_FAILED}))
                       or command in ('EHLO', 'HELO') or reply_code = 220))
            -- a line that gives nothing (a receive 220, a send EHLO) is left out; the
            -- regexes run on the lines kept only
            where event = '+' or (hostline and data is not null) or ok or failed)
        {"order by pass" if k > 1 else ""}
        """,
        {"start": start, "end": end, "d0": d0, "d1": d1},
    )
    con.execute("reset preserve_insertion_order")
    # a session's first line of each kind (its first connect line in the period)
    sql = f"""
        with s as (
            select {key},
                   arg_min({{'connector': connector_id, 'connected_at': connect_time,
                             'remote_ip': remote_ip}}, sequence_number)
                       filter (where connect_time >= $start and connect_time < $end) as c,
                   arg_min(host, sequence_number) filter (where host is not null) as host,
                   arg_min({{'version': version, 'cipher': cipher}}, sequence_number)
                       filter (where ok) as o,
                   arg_min(error, sequence_number) filter (where error is not null) as error
            from tls_lines where {{part}} group by {key})
        select direction, c.connector, server, session_id, c.connected_at, c.remote_ip,
               nullif(host, '') as host,
               coalesce(o.version, if(error is null, 'none', 'failed')) as version,
               o.cipher, if(o is null, error, null) as error
        from s where c is not null
    """
    in_passes(con, "tls_sessions", sql, key, k, {"start": start, "end": end}, by="pass")
    con.execute("drop table tls_lines")


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    if rollups.TLS.name not in q.aggregated:  # else ``tls_grain`` is the day's aggregate
        load(q.con, q)
        grain(q.con)
    return tables(q.con)


#: The columns of ``tls_grain``: those of a day's aggregate.
_GRAIN = ", ".join(rollups.tls_schema().names)


def grain(con: duckdb.DuckDBPyConnection) -> None:
    """``tls_grain`` from ``tls_sessions`` (dropped): the sessions per UTC hour of their
    connect line, direction, connector, peer (remote IP and host), version, cipher and error,
    with the first and last connect time; what the tables are counted from, and what a day's
    aggregate keeps."""
    # the UTC hour whatever the connection's zone (a report's, half an hour from UTC maybe)
    con.execute(
        """
        create or replace temp table tls_grain as
        select to_timestamp(floor(epoch(connected_at) / 3600) * 3600) as hour,
               direction, connector, remote_ip, host, version, cipher, error,
               count(*) as sessions, min(connected_at) as first_seen,
               max(connected_at) as last_seen
        from tls_sessions group by all
        """
    )
    con.execute("drop table tls_sessions")


def build(
    con: duckdb.DuckDBPyConnection, windows: dict[str, tuple[dt.datetime, dt.datetime]]
) -> dict[str, pa.Table]:
    """``tls_grain`` of each window (a label: its start and end), from the rows ``con`` reads
    (those of the windows' UTC days and the day after each), in the columns of
    ``store.rollups.tls_schema``: a day's aggregate, or a part of one."""
    schema = rollups.tls_schema()
    out = {}
    for label, (a, b) in windows.items():
        sessions(con, a, b, window_counts(con, a, b)["smtp_sessions"])
        grain(con)
        out[label] = con.sql(f"select {_GRAIN} from tls_grain").to_arrow_table().cast(schema)
        con.execute("drop table tls_grain")
    return out


def tables(con: duckdb.DuckDBPyConnection) -> dict[str, pd.DataFrame]:
    """The section's tables from ``tls_grain`` (dropped): of one period's rows, or of the
    per-day aggregates of several days (the same sums)."""
    peers = """
        select direction, connector, remote_ip,
               nullif(array_to_string(list(distinct host order by host), ', '), '') as hosts,
               {extra} sum(sessions)::bigint as sessions, min(first_seen) as first_seen,
               max(last_seen) as last_seen
        from tls_grain where {where}
        group by all order by direction, connector, sessions desc, remote_ip {order}
    """
    out = {
        "tls_versions": versions(con),
        "tls_legacy": frame(
            con,
            peers.format(
                extra="version,",
                where=f"version in {LEGACY}",
                order=", version",
            ),
        ),
        "tls_failures": frame(
            con, peers.format(extra="error,", where="version = 'failed'", order=", error")
        ),
        "tls_plain": frame(con, peers.format(extra="", where="version = 'none'", order="")),
    }
    con.execute("drop table tls_grain")
    return out


def versions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Sessions per direction, connector, TLS version and cipher, with their share."""
    df = frame(
        con,
        """
        select direction, connector, version, cipher, sum(sessions)::bigint as sessions,
               round(sum(sessions) / sum(sum(sessions)) over (partition by direction, connector),
                     4) as share
        from tls_grain group by direction, connector, version, cipher
        order by direction, connector, sessions desc, version, cipher
        """,
    )
    return df


def charts(r: Report) -> dict[str, Chart]:
    v = r.metrics["tls_versions"]
    if not len(v):
        return {}
    v = v.assign(where=[f"{c} ({d})" for c, d in zip(v["connector"], v["direction"], strict=True)])
    by = v.groupby(["where", "version"], sort=False)["sessions"].sum().unstack(fill_value=0)
    fig = Chart()
    labels = [text(w, 60) for w in by.index]
    special = [n for n in ("failed", "none") if n in by.columns]
    for name in sorted((n for n in by.columns if n not in special), reverse=True) + special:
        fig.add_bar(
            y=labels,
            x=by[name],
            name="no TLS" if name == "none" else text(name),
            orientation="h",
            marker_color=VERSION_COLORS.get(name, NEUTRAL[1]),
        )
    fig.update_yaxes(autorange="reversed", type="category")
    return {
        "tls_versions": layout(
            fig, "Sessions by TLS version per connector", height=140 + 28 * len(labels),
            barmode="stack",
        )
    }  # fmt: skip


def _peers(df: pd.DataFrame, n: int = 3) -> str:
    names = [
        f"{ip} ({h})" if h else str(ip) for ip, h in zip(df["remote_ip"], df["hosts"], strict=True)
    ][:n]
    return ", ".join(names) + (f" and {len(df) - n:,} more" if len(df) > n else "")


def attention(r: Report) -> list[str]:
    out = []
    legacy = r.metrics["tls_legacy"]
    if len(legacy):
        ips = legacy.drop_duplicates("remote_ip")
        out.append(
            f"{len(ips):,} peers still on TLS 1.0/1.1 ({legacy['sessions'].sum():,} sessions): "
            f"{_peers(ips)}."
        )
    failed = r.metrics["tls_failures"]
    if len(failed):
        errors = failed.groupby("error")["sessions"].sum().sort_values(ascending=False)
        out.append(
            f"{failed['sessions'].sum():,} failed TLS negotiations ("
            + ", ".join(f"{e} {n:,}" for e, n in errors.items())
            + f"): {_peers(failed.drop_duplicates('remote_ip'))}."
        )
    return out


def note(r: Report) -> str:
    v = r.metrics["tls_versions"]
    if not len(v):
        return "No Exchange SMTP protocol log sessions in the period."
    total = int(v["sessions"].sum())
    plain = int(v.loc[v["version"] == "none", "sessions"].sum())
    return f"{total:,} sessions, {plain:,} of them without TLS."


SECTION = Section(
    id="tls",
    title="TLS per connector and direction",
    tables=(
        Table("tls_versions", "Sessions by TLS version and cipher"),
        Table("tls_legacy", "Peers on TLS 1.0/1.1"),
        Table("tls_failures", "Failed TLS negotiations"),
        Table("tls_plain", "Peers without TLS"),
    ),
    compute=compute,
    charts=charts,
    note=note,
    attention=attention,
    attention_rank=55,
    problems=45,
    rules=RULES,
)
