"""History: monthly trends per server, connector and recipient domain, senders by first and
last seen, and the mailboxes and distribution lists that received and sent nothing lately.
Counted from the store's rollups by reports of several days (``report.long``); a one-day
report leaves them empty. (The SMTP clients and relays by first and last seen: ``clients``.)"""

from __future__ import annotations

import pandas as pd
from plotly.colors import sample_colorscale

from loganalyzer.report.charts import COLORS, Chart, layout, text
from loganalyzer.report.sections.base import Inputs, Report, Section, Table

#: Columns of each table (what a one-day report shows empty).
COLUMNS = {
    "monthly_servers": ["month", "server", "delivered", "sent_out", "failed"],
    "monthly_connectors": ["month", "connector", "delivered", "sent_out", "failed"],
    "monthly_domains": ["month", "domain", "delivered", "sent_out", "failed"],
    "senders_seen": ["sender", "first_seen", "last_seen", "days", "messages"],
    "quiet_mailboxes": ["address", "type", "last_received", "last_sent", "received", "sent"],
}
#: An address is quiet when it received and sent nothing in this many days before the end
#: (``--quiet-days``).
QUIET_DAYS = 30
#: The most ``--quiet-days`` takes: ten years, as ``--days`` (a day that far back is a date).
QUIET_DAYS_MAX = 3660


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {name: pd.DataFrame(columns=cols) for name, cols in COLUMNS.items()}


def charts(r: Report) -> dict[str, Chart]:
    """Over two months or more: the recipients each server delivered or sent out per month
    (bars, in blues: the outcome colours mean outcomes), and those that failed (a line)."""
    m = r.metrics["monthly_servers"]
    if m["month"].nunique() < 2:
        return {}
    fig = Chart()
    groups = list(m.groupby("server", sort=True))
    blues = sample_colorscale("Blues", max(2, len(groups)), low=0.9, high=0.4)
    for (server, rows), color in zip(groups, blues, strict=False):
        fig.add_bar(
            x=list(rows["month"]),
            y=list(rows["delivered"] + rows["sent_out"]),
            name=text(server),
            marker_color=color,
        )
    failed = m.groupby("month", sort=True)["failed"].sum()
    fig.add_scatter(
        x=list(failed.index),
        y=list(failed),
        name="failed (all servers)",
        mode="lines+markers",
        line={"color": COLORS["failed"]},
    )
    fig.update_xaxes(type="category")
    return {"monthly": layout(fig, "Recipients delivered or sent out per month and server")}


def note(r: Report) -> str:
    days = r.quiet_days or QUIET_DAYS
    if days >= r.period.days:
        return (
            f"From the rollups of the period. Quiet addresses need a period longer than "
            f"--quiet-days ({days}): give --days beyond it. Senders: the newest first."
        )
    return (
        f"From the rollups of the period. Domains: the {r.top} busiest. Quiet: a mailbox or "
        f"distribution list of the organisation seen in the period, but that received and sent "
        f"nothing in its last {days} days. Senders: the newest first."
    )


SECTION = Section(
    id="history",
    title="History",
    tables=(
        Table("monthly_servers", "Recipients per month and server", half=True),
        Table("monthly_connectors", "Recipients per month and connector", half=True),
        Table(
            "monthly_domains",
            "Recipients per month and recipient domain",
            cut_by=("domain",),
            cut_line="{listed:,} of {total:,} recipient domains: the busiest (--top).",
        ),
        Table("senders_seen", "Senders by first and last seen"),
        Table("quiet_mailboxes", "Mailboxes and distribution lists quiet lately"),
    ),
    compute=compute,
    charts=charts,
    note=note,
    # a one-day report counts none of it: five tables of "None." said nothing
    shown=lambda r: r.period.days > 1,
    rules={
        "history": "History (several days): recipients delivered, sent out and failed per "
        "month, server, connector and recipient domain (the busiest, as many as the top lists); "
        "each sender's first and last day with a message received; the mailboxes (delivered to, "
        "or sending) and distribution lists (expanded) in the organisation's domains seen in "
        f"the period but not in its last N days (--quiet-days, {QUIET_DAYS} by default): last "
        "received (or expanded) and last sent, and their messages in the period. System "
        "senders (postmaster, Microsoft Exchange) are left out.",
    },
)
