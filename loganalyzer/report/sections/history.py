"""History: monthly trends per server and connector, senders by first and last seen, and
mailboxes that received nothing lately. Counted from the store's rollups by reports of several
days (``report.long``); a one-day report leaves them empty."""

from __future__ import annotations

import pandas as pd

from loganalyzer.report.sections.base import Inputs, Report, Section, Table

#: Columns of each table (what a one-day report shows empty).
COLUMNS = {
    "monthly_servers": ["month", "server", "delivered", "sent_out", "failed"],
    "monthly_connectors": ["month", "connector", "delivered", "sent_out", "failed"],
    "senders_seen": ["sender", "first_seen", "last_seen", "days", "messages"],
    "quiet_recipients": ["recipient", "last_seen", "messages"],
}
#: A recipient is quiet when nothing was delivered to it in this many days before the end.
QUIET_DAYS = 30


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {name: pd.DataFrame(columns=cols) for name, cols in COLUMNS.items()}


def note(r: Report) -> str:
    if r.period.days == 1:
        return "Counted from the store's rollups over several days (`--days N`)."
    return (
        f"From the rollups of the period. Quiet: delivered to in the period, but not in its last "
        f"{QUIET_DAYS} days. Senders: the newest first."
    )


SECTION = Section(
    id="history",
    title="History",
    tables=(
        Table("monthly_servers", "Recipients per month and server", half=True),
        Table("monthly_connectors", "Recipients per month and connector", half=True),
        Table("senders_seen", "Senders by first and last seen"),
        Table("quiet_recipients", "Mailboxes that received nothing lately"),
    ),
    compute=compute,
    note=note,
    rules={
        "history": "History (several days): recipients delivered, sent out and failed per "
        "month, server and connector; each sender's first and last day with a message received; "
        f"recipients delivered to in the period but not in its last {QUIET_DAYS} days.",
    },
)
