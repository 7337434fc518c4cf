"""The report's plotly figures, built from its DataFrames.

Every text that comes from the logs (addresses, domains, IPs, reasons) is HTML-escaped
before it goes into a figure: plotly renders a few HTML tags (``<b>``, ``<a href>``...) in
labels and hover texts, and decodes entities, so escaped text shows as typed and stays text.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

import pandas as pd
import plotly.graph_objects as go

if TYPE_CHECKING:
    from loganalyzer.report.model import DailyReport

#: Charts of each section, in the order they are shown.
SECTION_CHARTS: dict[str, tuple[str, ...]] = {
    "totals": ("outcomes", "sides"),
    "traffic": ("hourly", "daily"),
    "failures": ("failures_by_status", "failures_by_domain"),
    "deferrals": ("deferral_reasons",),
    "latency": ("latency_hourly",),
    "top": ("top_sender_domains", "top_recipient_domains"),
    "smtp": ("smtp_hourly", "tls", "reply_codes", "auth_failures"),
}
#: The one colour of each outcome, in every chart (and no other series uses these colours).
COLORS = {
    "received": "#4c78a8",
    "delivered": "#54a24b",
    "sent out": "#72b7b2",
    "failed": "#e45756",
    "deferred": "#f58518",
    "dropped": "#9d755d",
    "quarantined": "#b279a2",
}
COLORS |= {
    "messages received": COLORS["received"],
    "deferrals": COLORS["deferred"],
    "still deferred": COLORS["deferred"],
}
#: Series that are not outcomes: shades of grey, darkest first.
NEUTRAL = ("#3b4450", "#7b8794", "#b8c0c9")


def text(value: object, width: int = 48) -> str:
    """A label from the logs: shortened, HTML-escaped (plotly shows it as typed)."""
    s = "" if value is None or value is pd.NA else str(value)
    if len(s) > width:
        s = s[: width - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return html.escape(s, quote=False)


def _layout(fig: go.Figure, title: str, height: int = 320, **kw) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        template="plotly_white",
        font={"family": "system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        **kw,
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def _hour_labels(hours: pd.Series) -> list[str]:
    """``HH:MM`` (with the date over several days); a repeated hour gets its zone name."""
    multi = hours.dt.date.nunique() > 1
    out, seen = [], set()
    for t in hours:
        label = t.strftime("%m-%d %H:%M" if multi else "%H:%M")
        if label in seen:
            label += f" {t.tzname()}"
        seen.add(label)
        out.append(label)
    return out


def _hbar(values: pd.Series, labels: list[str], title: str, color: str) -> go.Figure:
    """Horizontal bars; ``labels`` are escaped already (``text``)."""
    fig = go.Figure(go.Bar(x=list(values), y=labels, orientation="h", marker_color=color))
    fig.update_yaxes(autorange="reversed", type="category")
    return _layout(fig, title, height=120 + 24 * len(labels))


def build(report: DailyReport) -> dict[str, go.Figure]:
    """Every chart that has data, by name."""
    m = report.metrics
    figs: dict[str, go.Figure] = {}
    totals = m["totals"].set_index("figure")
    outcome = ["delivered", "sent out", "failed", "still deferred", "dropped", "quarantined"]
    values = [int(totals.loc[k, "recipients"] or 0) for k in outcome]
    if any(values):
        figs["outcomes"] = _layout(
            go.Figure(go.Bar(x=outcome, y=values, marker_color=[COLORS[k] for k in outcome])),
            "Recipients by outcome",
        )
    sides = m["sides"]
    if len(sides) and sides[["messages", "delivered", "sent_out"]].to_numpy().sum():
        fig = go.Figure()
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
        figs["sides"] = _layout(fig, "Internal and external senders", barmode="group")
    hourly = m["hourly"]
    fig = go.Figure()
    x = _hour_labels(hourly["hour"])
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
    figs["hourly"] = _layout(fig, f"Per hour ({report.period.tz})")
    if "daily" in m:
        d = m["daily"]
        fig = go.Figure()
        for col, name in (
            ("received", "received"),
            ("delivered", "delivered"),
            ("sent_out", "sent out"),
            ("failed", "failed"),
        ):
            fig.add_bar(x=d["day"], y=d[col], name=name, marker_color=COLORS[name])
        fig.update_xaxes(type="category")
        figs["daily"] = _layout(fig, "Per day", barmode="group")
    f = m["failures_by_status"]
    if len(f):
        labels = [
            f"{text(c or '(none)')} {text(d, 40)}"
            for c, d in zip(f["status"], f["meaning"], strict=True)
        ]
        figs["failures_by_status"] = _hbar(
            f["recipients"], labels, "Failed recipients by status", COLORS["failed"]
        )
    f = m["failures_by_domain"]
    if len(f):
        figs["failures_by_domain"] = _hbar(
            f["recipients"],
            [text(d) for d in f["domain"]],
            "Failed recipients by domain",
            COLORS["failed"],
        )
    f = m["deferral_reasons"]
    if len(f):
        labels = [f"{text(c)} {text(r, 60)}" for c, r in zip(f["status"], f["reason"], strict=True)]
        figs["deferral_reasons"] = _hbar(
            f["deferrals"], labels, "Deferrals by reason", COLORS["deferrals"]
        )
    lat = m["latency_hourly"]
    if len(lat):
        fig = go.Figure()
        x = _hour_labels(lat["hour"])
        for col, color in zip(("p50", "p90", "p99"), NEUTRAL, strict=True):
            fig.add_scatter(x=x, y=lat[col], name=col, mode="lines+markers", line={"color": color})
        fig.update_xaxes(type="category")
        # a log axis: p50 (seconds) stays visible beside p99 (often minutes or hours)
        fig.update_yaxes(title_text="seconds (log scale)", type="log")
        figs["latency_hourly"] = _layout(fig, "Latency per hour (seconds, log scale)")
    for name, title in (
        ("top_sender_domains", "Top sender domains"),
        ("top_recipient_domains", "Top recipient domains"),
    ):
        f = m[name]
        if len(f):
            labels = [text(d) for d in f["domain"]]
            figs[name] = _hbar(f["messages"], labels, f"{title} (messages)", NEUTRAL[1])
    s = m["smtp_hourly"]
    if s[["inbound", "outbound"]].to_numpy().sum():
        fig = go.Figure()
        x = _hour_labels(s["hour"])
        fig.add_bar(x=x, y=s["inbound"], name="inbound", marker_color=NEUTRAL[0])
        fig.add_bar(x=x, y=s["outbound"], name="outbound", marker_color=NEUTRAL[2])
        fig.update_xaxes(type="category")
        figs["smtp_hourly"] = _layout(fig, "SMTP sessions per hour", barmode="stack")
    s = m["smtp_summary"]
    if len(s) and s["sessions"].sum():
        fig = go.Figure()
        fig.add_bar(x=s["direction"], y=s["with_tls"], name="with TLS", marker_color=NEUTRAL[0])
        fig.add_bar(
            x=s["direction"],
            y=s["sessions"] - s["with_tls"],
            name="without TLS",
            marker_color=NEUTRAL[2],
        )
        figs["tls"] = _layout(fig, "Sessions with TLS", barmode="stack")
    r = m["reply_codes"]
    if len(r):
        top = r.groupby("reply_code", as_index=False)["lines"].sum()
        top = top.sort_values(["lines", "reply_code"], ascending=[False, True]).head(15)
        figs["reply_codes"] = _layout(
            go.Figure(
                go.Bar(
                    x=[str(c) for c in top["reply_code"]], y=top["lines"], marker_color=NEUTRAL[1]
                )
            ),
            "SMTP reply codes (lines)",
        )
        figs["reply_codes"].update_xaxes(type="category")
    a = m["auth_failures"]
    if len(a):
        figs["auth_failures"] = _hbar(
            a["failures"],
            [text(ip) for ip in a["remote_ip"]],
            "Failed authentications by remote IP",
            NEUTRAL[0],
        )
    return figs
