"""Grand totals: messages, recipients and bytes per outcome; distinct addresses; internal and
external senders."""

from __future__ import annotations

import duckdb
import pandas as pd

from loganalyzer.report.charts import COLORS, Chart, layout
from loganalyzer.report.load import Context, frame
from loganalyzer.report.metrics import pending_counts
from loganalyzer.report.sections.base import Inputs, Report, Section, Table

#: The totals table's row for each final kind of a recipient, in its order.
LABELS = {
    "delivered": "delivered",
    "sent": "sent out",
    "failed": "failed",
    "dropped": "dropped",
    "quarantined": "quarantined",
}


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {
        "totals": totals(q.con, q.ctx),
        "distinct": distinct(q.con, q.ctx),
        "sides": sides(q.con, q.ctx),
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
    for kind, label in LABELS.items():
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
    rows.append(("still deferred", *pending_counts(con), None))
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


def charts(r: Report) -> dict[str, Chart]:
    m = r.metrics
    figs: dict[str, Chart] = {}
    totals = m["totals"].set_index("figure")
    outcome = ["delivered", "sent out", "failed", "still deferred", "dropped", "quarantined"]
    values = [int(totals.loc[k, "recipients"] or 0) for k in outcome]
    if any(values):
        figs["outcomes"] = layout(
            Chart().add_bar(x=outcome, y=values, marker_color=[COLORS[k] for k in outcome]),
            "Recipients by outcome",
        )
    sides = m["sides"]
    if len(sides) and sides[["messages", "delivered", "sent_out"]].to_numpy().sum():
        fig = Chart()
        for col, name in (
            ("messages", "messages received"),
            ("delivered", "delivered"),
            ("sent_out", "sent out"),
        ):
            fig.add_bar(
                x=[f"{s} senders" for s in sides["sender"]],
                y=list(sides[col]),
                name=name,
                marker_color=COLORS[name],
            )
        figs["sides"] = layout(fig, "Internal and external senders", barmode="group")
    return figs


def note(r: Report) -> str:
    inferred = ""
    if r.accepted_inferred:
        n = r.accepted_delivered or 0
        inferred = f" (inferred from {n:,} delivered recipient{'' if n == 1 else 's'} of the store)"
    return f"Accepted domains{inferred}: {', '.join(r.accepted_domains) or 'none known'}."


SECTION = Section(
    id="totals",
    title="Grand totals",
    tables=(
        Table("totals", "Messages, recipients and bytes"),
        Table("distinct", "Distinct addresses", half=True),
        Table("sides", "Internal and external senders", half=True),
    ),
    compute=compute,
    charts=charts,
    note=note,
)
