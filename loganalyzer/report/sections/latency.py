"""Delivery latency: percentiles overall, per outcome and per hour; the slowest deliveries."""

from __future__ import annotations

import duckdb
import pandas as pd

from loganalyzer.report.charts import NEUTRAL, Chart, hour_labels, layout
from loganalyzer.report.load import Context, frame, hour_index, hours
from loganalyzer.report.sections.base import LENGTH, Inputs, Report, Section, Table


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return latency(q.con, q.ctx, q.top)


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
               recipient, sender, subject, first_at as received_at, msg as message_id,
               {LENGTH}
        from fin where {where} order by latency_s desc, msg, rcpt limit {int(top)}
        """,
        tz=p.tz,
    )
    return {"latency": summary, "latency_hourly": per_hour, "slowest": slowest}


def charts(r: Report) -> dict[str, Chart]:
    lat = r.metrics["latency_hourly"]
    if not len(lat):
        return {}
    fig = Chart()
    x = hour_labels(lat["hour"])
    for col, color in zip(("p50", "p90", "p99"), NEUTRAL, strict=True):
        fig.add_scatter(x=x, y=lat[col], name=col, mode="lines+markers", line={"color": color})
    fig.update_xaxes(type="category")
    # a log axis: p50 (seconds) stays visible beside p99 (often minutes or hours)
    fig.update_yaxes(title_text="seconds (log scale)", type="log")
    return {"latency_hourly": layout(fig, "Latency per hour (seconds, log scale)")}


SECTION = Section(
    id="latency",
    title="Delivery latency",
    tables=(
        Table("latency", "Latency from first receipt to delivery or sending out"),
        Table("latency_hourly", "Latency per hour of delivery"),
        Table("slowest", "Slowest deliveries"),
    ),
    compute=compute,
    charts=charts,
)
