"""Data quality: what was read and quarantined, unknown event codes, servers' missing hours
of logs and clock skew between servers."""

from __future__ import annotations

import duckdb
import pandas as pd

from loganalyzer.report import quality, sessions
from loganalyzer.report.load import Context, frame, hour_ends, hours
from loganalyzer.report.quality import GAP_EXPECTED
from loganalyzer.report.sections.base import Inputs, Report, Section, Table

#: A server pair is flagged when the median of (RECEIVE - SEND) of its hops is beyond this.
SKEW_TOLERANCE_S = 2.0


RULES = {
    "quality": "Files: those with rows in the period's (UTC) date partitions; lines: their "
    "rows in the period. Unknown event codes: tracking rows whose event no code table "
    "knows. Missing logs: hours, between the period's first and last row, without any row "
    f"from a server that would be expected to log at least {GAP_EXPECTED} messages "
    "(tracking) or sessions (SMTP) then: its share of the period's ones times all servers' "
    "that hour, or as many as the hours before and after it each had. Clock skew: for each "
    "hop between two servers of the organisation, the receiving server's RECEIVE minus the "
    "sending server's SEND of the same message (receive before send: the hops where it is "
    "negative, the receiver's clock behind); a pair is flagged when the median is beyond "
    f"±{SKEW_TOLERANCE_S:g} s.",
}


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    con, ctx = q.con, q.ctx
    return {
        "files": files(con, ctx, sessions.lines_by_format(con)),
        "quarantine": quarantine(con, ctx),
        "unknown_codes": unknown_codes(con, ctx),
        "missing_hours": missing_hours(ctx, q.hours),
        "clock_skew": clock_skew(con, ctx),
    }


def _period_files(ctx: Context) -> tuple[str, list]:
    d0, d1 = ctx.period.utc_dates()
    sql = """
        select file_key, format, "table", quarantined from files
        where len(list_filter(parts, lambda p: regexp_extract(p, 'date=([0-9-]+)', 1)
                              between ? and ?)) > 0
    """
    return sql, [d0.isoformat(), d1.isoformat()]


def files(con: duckdb.DuckDBPyConnection, ctx: Context, smtp_formats: pd.DataFrame) -> pd.DataFrame:
    """Files and lines read, and lines quarantined, per table and format."""
    sql, params = _period_files(ctx)
    df = frame(
        con,
        f"""
        select "table", format, count(*) as files,
               coalesce(sum(quarantined), 0)::bigint::bigint as quarantined
        from ({sql}) group by all order by "table", format
        """,
        params,
    )
    lines = frame(
        con,
        "select log_format, count(*) as lines from trk "
        "where date_time >= ? and date_time < ? group by all",
        ctx.window(),
    )
    lines = pd.concat([lines, smtp_formats]).groupby("log_format")["lines"].sum()
    df.insert(3, "lines", [int(lines.get(f, 0)) for f in df["format"]])
    return df


def quarantine(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Quarantined lines of the period's files, by reason."""
    sql, params = _period_files(ctx)
    return frame(
        con,
        f"""
        select reason, count(*) as lines, count(distinct file_key) as files from quarantine
        where file_key in (select file_key from ({sql})) group by reason
        order by lines desc, reason
        """,
        params,
    )


def unknown_codes(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Tracking events that no code table knows (outcome null)."""
    return frame(
        con,
        """
        select coalesce(event_id, '') as event_id, log_format, count(*) as rows,
               array_to_string(list(distinct server order by server), ', ') as servers
        from trk where outcome is null and date_time >= ? and date_time < ?
        group by 1, 2 order by rows desc, event_id
        """,
        ctx.window(),
    )


def missing_hours(ctx: Context, both: pd.DataFrame) -> pd.DataFrame:
    """Hours between the period's first and last row in which a server logged nothing in a
    log though it would be expected to (``quality.gaps``), of the hour counts ``both``
    (``quality.hour_counts``)."""
    columns = ["server", "log", "missing_hours", "hours", "expected"]
    if both.empty:
        return pd.DataFrame(columns=columns)
    found = quality.gaps(both, int(both["i"].min()), int(both["i"].max()))
    rows = [
        (server, log, len(i), _ranges(i, ctx), round(expected))
        for (log, server), (i, expected) in found.items()
    ]
    return pd.DataFrame(rows, columns=columns)


def _ranges(gaps: list[int], ctx: Context) -> str:
    """Hour numbers as local time ranges: ``03:00-05:59, 11:00-11:59``."""
    idx, ends = hours(ctx.period), hour_ends(ctx.period) - pd.Timedelta(minutes=1)
    runs: list[list[int]] = []
    for i in gaps:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    fmt = "%H:%M" if len({t.date() for t in idx}) == 1 else "%m-%d %H:%M"
    out = []
    for a, b in runs:
        out.append(f"{idx[a].strftime(fmt)}-{ends[b].strftime('%H:%M')}")
    return ", ".join(out)


def clock_skew(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """RECEIVE minus SEND of the same message between two servers of the organisation."""
    df = frame(
        con,
        """
        with s as (
            select msg, upper(server) as a, upper(split_part(server_hostname, '.', 1)) as b,
                   date_time as sent
            from trk where event_id = 'SEND' and coalesce(server_hostname, '') <> ''),
        r as (
            select msg, upper(split_part(client_hostname, '.', 1)) as a, upper(server) as b,
                   date_time as received
            from trk where event_id = 'RECEIVE' and coalesce(client_hostname, '') <> ''
              and date_time >= ? and date_time < ?),
        hops as (
            select r.a, r.b, r.msg, r.received,
                   arg_min(s.sent, abs(epoch_ms(r.received) - epoch_ms(s.sent))) as sent
            from r join s on r.msg = s.msg and r.a = s.a and r.b = s.b
            where r.a <> r.b and list_contains(?, r.a) and list_contains(?, r.b)
            group by all)
        select a as from_server, b as to_server, count(*) as hops,
               round(median((epoch_ms(received) - epoch_ms(sent)) / 1000.0), 3) as median_s,
               round(min((epoch_ms(received) - epoch_ms(sent)) / 1000.0), 3) as min_s,
               round(max((epoch_ms(received) - epoch_ms(sent)) / 1000.0), 3) as max_s,
               count(*) filter (where received < sent) as receive_before_send
        from hops group by all order by from_server, to_server
        """,
        [*ctx.window(), ctx.servers, ctx.servers],
    )
    df["flagged"] = df["median_s"].abs() > SKEW_TOLERANCE_S
    return df


def attention(r: Report) -> list[str]:
    m = r.metrics
    out = [
        f"No {x.log} log rows from {x.server} in {x.hours} ({x.missing_hours} h)."
        for x in m["missing_hours"].itertuples()
    ]
    for x in m["clock_skew"][m["clock_skew"]["flagged"]].itertuples():
        out.append(
            f"Clock skew: {x.to_server} logs RECEIVE {x.median_s:+.1f} s from "
            f"{x.from_server}'s SEND (median of {x.hops} hops)."
        )
    if len(m["unknown_codes"]):
        n = m["unknown_codes"]["rows"].sum()
        out.append(f"{n:,} tracking {'row' if n == 1 else 'rows'} with unknown events.")
    if len(m["quarantine"]):
        n = m["quarantine"]["lines"].sum()
        out.append(f"{n:,} log {'line' if n == 1 else 'lines'} quarantined.")
    return out


SECTION = Section(
    id="quality",
    title="Data quality",
    tables=(
        Table("files", "Files and lines read"),
        Table("quarantine", "Quarantined lines by reason"),
        Table("unknown_codes", "Unknown event codes"),
        Table("missing_hours", "Servers with hours missing"),
        Table("clock_skew", "Clock skew between servers", flag="flagged"),
    ),
    compute=compute,
    attention=attention,
    attention_rank=40,
    problems=30,
    rules=RULES,
)
