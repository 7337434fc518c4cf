"""Traffic per hour and, over several days, per day."""

from __future__ import annotations

import duckdb
import pandas as pd

from loganalyzer.report.charts import COLORS, Chart, hour_labels, layout
from loganalyzer.report.load import Context, frame, hour_index, hours
from loganalyzer.report.sections.base import Inputs, Report, Section, Table


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    out = {"hourly": hourly(q.con, q.ctx)}
    if q.ctx.period.days > 1:
        out["daily"] = daily(out["hourly"])
    return out


def hourly(con: duckdb.DuckDBPyConnection, ctx: Context) -> pd.DataFrame:
    """Per hour: messages received, recipients delivered, sent out, failed; deferrals."""
    p = ctx.period
    idx = hours(p)
    out = pd.DataFrame({"hour": idx})
    parts = [
        frame(
            con,
            f"select {hour_index('first_at', p)} as i, count(*) as received, "
            "coalesce(sum(size), 0)::bigint as bytes_in from msgs_of(?, ?) group by i",
            ctx.window(),
        ),
        frame(
            con,
            f"""
            select {hour_index("t", p)} as i,
                   count(*) filter (where kind = 'delivered') as delivered,
                   count(*) filter (where kind = 'sent') as sent_out,
                   count(*) filter (where kind = 'failed') as failed
            from fin group by i
            """,
        ),
        frame(
            con,
            f"""
            select {hour_index("date_time", p)} as i, count(*) as deferrals from rev
            where kind = 'deferred' and date_time >= ? and date_time < ? group by i
            """,
            ctx.window(),
        ),
    ]
    for part in parts:
        part = part.set_index("i")
        for col in part.columns:
            out[col] = part[col].reindex(range(len(idx))).fillna(0).astype("int64").to_numpy()
    return out[["hour", "received", "delivered", "sent_out", "failed", "deferrals", "bytes_in"]]


def daily(hourly_frame: pd.DataFrame) -> pd.DataFrame:
    """The hourly figures summed per local day."""
    df = hourly_frame.copy()
    df["day"] = df["hour"].dt.strftime("%Y-%m-%d")
    return df.drop(columns="hour").groupby("day", as_index=False, sort=True).sum()


def charts(r: Report) -> dict[str, Chart]:
    m = r.metrics
    figs: dict[str, Chart] = {}
    hourly = m["hourly"]
    fig = Chart()
    x = hour_labels(hourly["hour"])
    for col, name in (
        ("received", "received"),
        ("delivered", "delivered"),
        ("sent_out", "sent out"),
        ("failed", "failed"),
        ("deferrals", "deferrals"),
    ):
        fig.add_scatter(
            x=x, y=hourly[col], name=name, mode="lines+markers", line={"color": COLORS[name]}
        )
    fig.update_xaxes(type="category")
    figs["hourly"] = layout(fig, f"Per hour ({r.period.tz})")
    if "daily" in m:
        d = m["daily"]
        fig = Chart()
        for col, name in (
            ("received", "received"),
            ("delivered", "delivered"),
            ("sent_out", "sent out"),
            ("failed", "failed"),
        ):
            fig.add_bar(x=d["day"], y=d[col], name=name, marker_color=COLORS[name])
        fig.update_xaxes(type="category")
        figs["daily"] = layout(fig, "Per day", barmode="group")
    return figs


SECTION = Section(
    id="traffic",
    title="Traffic",
    tables=(Table("hourly", "Per hour", folded=True), Table("daily", "Per day")),
    compute=compute,
    charts=charts,
)
