"""SMTP sessions: per direction (with TLS), per hour, reply codes, the busiest remote IPs and
failed authentications by remote IP; the messages the SMTP logs show accepted per direction,
server and hour (from the line counts ``sessions.load`` made, or in a report of several days
``sessions.from_grain``)."""

from __future__ import annotations

import duckdb
import pandas as pd

import eventcodes
from loganalyzer.report.charts import NEUTRAL, Chart, hbar, hour_labels, layout, text
from loganalyzer.report.load import frame, hours
from loganalyzer.report.period import Period
from loganalyzer.report.sections.base import LENGTH, Inputs, Report, Section, Table
from loganalyzer.report.sessions import AUTH, AUTH_KIND, RULES

_IN, _OUT, _OK = "direction = 'receive'", "direction = 'send'", "message = 'accepted'"
#: The message columns of ``summary``: per direction, the messages accepted (``sessions``).
_MESSAGES = f"""
    coalesce(sum(lines) filter (where {_OK}), 0)::bigint as messages,
    coalesce(sum(lines) filter (where message = 'refused'), 0)::bigint as refused,
    coalesce(sum(lines) filter (where message = 'deferred'), 0)::bigint as deferred
"""


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return tables(q.con, q.ctx.period, q.top)


def tables(con: duckdb.DuckDBPyConnection, p: Period, top: int) -> dict[str, pd.DataFrame]:
    """The section's tables from the line counts of period ``p`` (``cur_lines``)."""
    return {
        "smtp_summary": summary(con),
        "smtp_hourly": hourly(con, p),
        "smtp_servers": servers(con),
        "reply_codes": reply_codes(con),
        "remote_ips": remote_ips(con, top),
        "auth_failures": auth_failures(con, top),
    }


def message_counts(summary: pd.DataFrame) -> dict[str, int]:
    """The SMTP logs' message figures of the period, from ``summary``: the messages accepted
    from clients and handed on, the outbound refusals and deferrals."""
    by = summary.set_index("direction") if len(summary) else None

    def get(direction: str, col: str) -> int:
        return int(by[col].get(direction, 0)) if by is not None else 0

    return {
        "smtp_received_messages": get("receive", "messages"),
        "smtp_sent_messages": get("send", "messages"),
        "smtp_refusals": get("send", "refused"),
        "smtp_deferrals": get("send", "deferred"),
    }


def summary(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Sessions per direction, with TLS, failed authentications and remote IPs; the messages
    accepted (``sessions.MESSAGE``), and outbound the refusals and deferrals."""
    df = frame(
        con,
        f"""
        select direction,
               coalesce(sum(lines) filter (where kind = 'connect'), 0)::bigint as sessions,
               coalesce(sum(lines) filter (where kind = 'tls'), 0)::bigint as with_tls,
               coalesce(sum(lines) filter (where {AUTH_KIND}), 0)::bigint as auth_failures,
               count(distinct remote_ip) filter (where kind = 'connect') as remote_ips,
               {_MESSAGES}
        from cur_lines group by direction order by direction
        """,
    )
    df["tls_share"] = (df["with_tls"] / df["sessions"].where(df["sessions"] > 0)).round(4)
    return df


def hourly(con: duckdb.DuckDBPyConnection, p: Period) -> pd.DataFrame:
    """Sessions started per hour, inbound (receive) and outbound (send), and the messages
    accepted inbound and handed on outbound."""
    idx = hours(p)
    df = frame(
        con,
        f"""
        select i, coalesce(sum(lines) filter (where {_IN} and kind = 'connect'), 0)::bigint
                      as inbound,
               coalesce(sum(lines) filter (where {_OUT} and kind = 'connect'), 0)::bigint
                      as outbound,
               coalesce(sum(lines) filter (where {_IN} and {_OK}), 0)::bigint as inbound_messages,
               coalesce(sum(lines) filter (where {_OUT} and {_OK}), 0)::bigint as outbound_messages
        from cur_lines where kind = 'connect' or message = 'accepted' group by i
        """,
    ).set_index("i")
    out = pd.DataFrame({"hour": idx})
    for col in ("inbound", "outbound", "inbound_messages", "outbound_messages"):
        out[col] = df[col].reindex(range(len(idx))).fillna(0).astype("int64").to_numpy()
    return out


def servers(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Per server, the messages its SMTP logs show accepted from clients (``received``) and
    handed on (``sent``), and its outbound refusals and deferrals."""
    return frame(
        con,
        f"""
        select server,
               coalesce(sum(lines) filter (where {_IN} and {_OK}), 0)::bigint as received,
               coalesce(sum(lines) filter (where {_OUT} and {_OK}), 0)::bigint as sent,
               coalesce(sum(lines) filter (where message = 'refused'), 0)::bigint as refused,
               coalesce(sum(lines) filter (where message = 'deferred'), 0)::bigint as deferred
        from cur_lines where message is not null
        group by server order by received + sent desc, server
        """,
    )


def reply_codes(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Lines per direction, SMTP reply code and the enhanced status code that goes with it,
    with their meaning."""
    df = frame(
        con,
        """
        select direction, reply_code, enhanced, sum(lines)::bigint as lines from cur_lines
        where reply_code is not null group by all
        order by lines desc, direction, reply_code, enhanced nulls first
        """,
    )
    pairs = zip(df["reply_code"], df["enhanced"], strict=True)
    df["meaning"] = [_reply_meaning(c, e) for c, e in pairs]
    return df


def _reply_meaning(code, enhanced) -> str:
    """The enhanced status code's meaning where the reply has one (it says what the reply is
    about: ``432 4.3.2 STOREDRV.Deliver`` is Exchange's thread limit, not RFC 4954's 432),
    else the reply code's; but X.0.0, which says only its class, and a reply of AUTH (535),
    which the code tables put first, give the reply code's."""
    if isinstance(enhanced, str) and enhanced and not enhanced.endswith(".0.0"):
        found = eventcodes.explain_status(f"{code} {enhanced}")
        if found:
            return found[0].meaning
    try:
        return eventcodes.lookup(str(code), "smtp-reply").meaning
    except eventcodes.UnknownCode:
        return ""


def remote_ips(con: duckdb.DuckDBPyConnection, top: int) -> pd.DataFrame:
    """Remote IPs with the most inbound sessions."""
    return frame(
        con,
        f"""
        select remote_ip,
               coalesce(sum(lines) filter (where kind = 'connect'), 0)::bigint as sessions,
               coalesce(sum(lines) filter (where {AUTH_KIND}), 0)::bigint as auth_failures,
               coalesce(sum(lines) filter (where kind = 'tls'), 0)::bigint as with_tls,
               {LENGTH}
        from cur_lines where direction = 'receive' and remote_ip is not null
        group by 1 order by sessions desc, auth_failures desc, remote_ip limit {int(top)}
        """,
    )


def auth_failures(con: duckdb.DuckDBPyConnection, top: int) -> pd.DataFrame:
    """Failed authentications by remote IP (a password-guessing signal), inbound only; the
    ``top`` IPs with the most, each row with the failures of all of them (``all``)."""
    return frame(
        con,
        f"""
        select remote_ip, sum(lines)::bigint as failures, min(first_seen) as first_seen,
               max(last_seen) as last_seen,
               array_to_string(list(distinct server order by server), ', ') as servers,
               (sum(sum(lines)) over ())::bigint as "all", {LENGTH}
        from cur_lines where {AUTH}
        group by 1 order by failures desc, remote_ip limit {int(top)}
        """,
    )


def charts(r: Report) -> dict[str, Chart]:
    m = r.metrics
    figs: dict[str, Chart] = {}
    s = m["smtp_hourly"]
    if s[["inbound", "outbound"]].to_numpy().sum():
        fig = Chart()
        x = hour_labels(s["hour"])
        fig.add_bar(x=x, y=s["inbound"], name="inbound", marker_color=NEUTRAL[0])
        fig.add_bar(x=x, y=s["outbound"], name="outbound", marker_color=NEUTRAL[2])
        fig.update_xaxes(type="category")
        figs["smtp_hourly"] = layout(fig, "SMTP sessions per hour", barmode="stack")
    if s[["inbound_messages", "outbound_messages"]].to_numpy().sum():
        fig = Chart()
        x = hour_labels(s["hour"])
        for col, name, color in (
            ("inbound_messages", "accepted from clients", NEUTRAL[0]),
            ("outbound_messages", "handed on", NEUTRAL[2]),
        ):
            fig.add_bar(x=x, y=s[col], name=name, marker_color=color)
        fig.update_xaxes(type="category")
        figs["smtp_messages_hourly"] = layout(fig, "Messages in the SMTP logs per hour")
    s = m["smtp_summary"]
    if len(s) and s["sessions"].sum():
        fig = Chart()
        fig.add_bar(x=s["direction"], y=s["with_tls"], name="with TLS", marker_color=NEUTRAL[0])
        fig.add_bar(
            x=s["direction"],
            y=s["sessions"] - s["with_tls"],
            name="without TLS",
            marker_color=NEUTRAL[2],
        )
        figs["tls"] = layout(fig, "Sessions with TLS", barmode="stack")
    r_ = m["reply_codes"]
    if len(r_):
        top = r_.groupby("reply_code", as_index=False)["lines"].sum()
        top = top.sort_values(["lines", "reply_code"], ascending=[False, True]).head(15)
        fig = Chart().add_bar(
            x=[str(c) for c in top["reply_code"]], y=top["lines"], marker_color=NEUTRAL[1]
        )
        fig.update_xaxes(type="category")
        figs["reply_codes"] = layout(fig, "SMTP reply codes (lines)")
    a = m["auth_failures"]
    if len(a):
        figs["auth_failures"] = hbar(
            a["failures"],
            [text(ip) for ip in a["remote_ip"]],
            "Failed authentications by remote IP",
            NEUTRAL[0],
        )
    return figs


def attention(r: Report) -> list[str]:
    # (the missing tracking logs' line, ``no_tracking``, comes first of all: the registry's)
    auth = r.metrics["auth_failures"]
    if not len(auth):
        return []
    first, ips = auth.iloc[0], r.lengths["auth_failures"]
    n = int(first["all"])
    return [
        f"{n:,} failed SMTP {'authentication' if n == 1 else 'authentications'} from {ips:,} "
        f"remote {'IP' if ips == 1 else 'IPs'} (most: {first['remote_ip']}, "
        f"{first['failures']:,})."
    ]


def no_tracking(r: Report) -> str | None:
    """What a period without tracking rows but with SMTP lines shows: the message figures
    (from tracking logs) are zero, the SMTP logs' own are said instead; the days of a period
    with tracking rows that have SMTP lines alone, named; None otherwise."""
    if days := [] if r.tracking_rows == 0 else r.untracked_days:
        one = len(days) == 1
        return (
            f"No tracking logs of {', '.join(days)}: the SMTP logs hold lines of "
            f"{'it' if one else 'them'}; {'its' if one else 'their'} messages are missing "
            "from the message figures."
        )
    if r.tracking_rows != 0 or not len(r.metrics["smtp_summary"]):
        return None
    m = message_counts(r.metrics["smtp_summary"])
    received, sent = m["smtp_received_messages"], m["smtp_sent_messages"]
    return (
        f"No tracking logs of {r.period.label()}: the SMTP logs show {received:,} "
        f"{'message' if received == 1 else 'messages'} accepted, {sent:,} sent on (the "
        "message and recipient figures come from tracking logs)."
    )


SECTION = Section(
    id="smtp",
    title="SMTP sessions",
    tables=(
        Table("smtp_summary", "Sessions", half=True),
        Table("smtp_hourly", "Sessions and messages per hour", folded=True),
        Table("smtp_servers", "Messages per server (SMTP logs)", half=True),
        Table("reply_codes", "Reply codes"),
        Table("remote_ips", "Remote IPs with the most inbound sessions"),
        Table("auth_failures", "Failed authentications by remote IP", hidden=("all",)),
    ),
    compute=compute,
    charts=charts,
    attention=attention,
    attention_rank=50,
    problems=40,
    rules=RULES,
)
