"""The headline figures against the previous period, large changes flagged."""

from __future__ import annotations

import datetime as dt

import pandas as pd

from loganalyzer.report.period import Period
from loganalyzer.report.sections.base import Inputs, Report, Section, Table

#: Figures compared with the previous period: key, label.
HEADLINE = (
    ("received_messages", "messages received"),
    ("bytes_in", "bytes in"),
    ("delivered_recipients", "recipients delivered"),
    ("sent_out_recipients", "recipients sent out"),
    ("bytes_out", "bytes out"),
    ("failed_recipients", "recipients failed"),
    ("bounces", "bounces (NDRs created)"),
    ("still_deferred_recipients", "recipients still deferred"),
    ("deferrals", "deferrals"),
    ("distinct_senders", "distinct senders"),
    ("smtp_sessions", "SMTP sessions"),
    ("auth_failures", "authentication failures"),
)
#: Which way a figure changes for the worse: -1 a drop (less mail through), +1 a rise (more
#: failures and delays). The others (sizes, distinct senders) are flagged in the table when
#: their change is large, but need no attention either way.
WORSE = {
    "received_messages": -1,
    "delivered_recipients": -1,
    "sent_out_recipients": -1,
    "failed_recipients": 1,
    "bounces": 1,
    "still_deferred_recipients": 1,
    "deferrals": 1,
    "smtp_sessions": -1,
    "auth_failures": 1,
}
#: The figures of the SMTP logs (the others are the tracking logs').
SMTP_FIGURES = ("smtp_sessions", "auth_failures")
#: The labels of one (``1 recipient still deferred``) where the plural's word differs.
_ONE = {
    "received_messages": "message received",
    "bytes_in": "byte in",
    "bytes_out": "byte out",
    "delivered_recipients": "recipient delivered",
    "sent_out_recipients": "recipient sent out",
    "failed_recipients": "recipient failed",
    "bounces": "bounce (NDR created)",
    "still_deferred_recipients": "recipient still deferred",
    "deferrals": "deferral",
    "distinct_senders": "distinct sender",
    "smtp_sessions": "SMTP session",
    "auth_failures": "authentication failure",
}
#: A change is flagged when it is at least this share of the previous value ...
CHANGE_THRESHOLD = 0.5
#: ... and the larger of the two values is at least this.
CHANGE_MINIMUM = 10


#: Why a report is not compared when the previous period has no tracking row in the store.
NO_PREVIOUS = "The previous period has no message tracking rows in the store: not compared."


def held_in_part(previous: Period, first: dt.date) -> str:
    """Why a report is not compared with ``previous`` when the store's logs of it begin on
    ``first`` (``quality.held_from``): its figures would count part of it as the whole."""
    return (
        f"Not compared with the previous period ({previous.label()}): the store's logs of it "
        f"begin on {first} (UTC), after its first day."
    )


def headline_figure(key: str, n: int) -> str:
    """The label of the headline figure ``key`` for a count of ``n``: ``recipients still
    deferred``, for 1 ``recipient still deferred``."""
    return _ONE.get(key, dict(HEADLINE)[key]) if n == 1 else dict(HEADLINE)[key]


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {"changes": changes(q.headline, q.previous)}


def changes(current: dict[str, int], previous: dict[str, int] | None) -> pd.DataFrame:
    """Each headline figure with the previous period's value and the change, flagged when
    large."""
    rows = []
    for key, label in HEADLINE:
        value = current.get(key, 0)
        if previous is None:
            rows.append((label, value, None, None, None, False))
            continue
        before = previous.get(key, 0)
        change = value - before
        pct = change / before if before else None
        big = max(value, before) >= CHANGE_MINIMUM and abs(change) >= CHANGE_THRESHOLD * max(
            before, 1
        )
        rows.append((label, value, before, change, pct, bool(big)))
    df = pd.DataFrame(
        rows, columns=["figure", "value", "previous", "change", "change_pct", "flagged"]
    )
    df = df.astype({"value": "Int64", "previous": "Int64", "change": "Int64"})
    df["change_pct"] = df["change_pct"].astype("float64").round(4)
    return df


def note(r: Report) -> str:
    if r.previous is None:
        return r.not_compared or NO_PREVIOUS
    return "Flagged: changes of at least half the previous value (and at least 10)."


def attention(r: Report) -> list[str]:
    if r.is_empty:  # no logs rather than no mail: the report's notice says so, once
        return []
    c = r.metrics["changes"]
    keys = c["figure"].map({label: key for key, label in HEADLINE})
    if r.tracking_rows == 0:  # no tracking logs: their figures' drop is the SMTP section's line
        c, keys = c[keys.isin(SMTP_FIGURES)], keys[keys.isin(SMTP_FIGURES)]
    worse = c["flagged"] & (c["change"].fillna(0) * keys.map(WORSE).fillna(0) > 0)
    return [_line(x) for x in c[worse].itertuples()]


def _line(x) -> str:
    """A flagged change in words; against a previous value of 0 a share means nothing."""
    if not x.previous:
        return f"{x.figure}: {x.value:,} against none before."
    return f"{x.figure}: {x.value:,} against {x.previous:,} ({x.change_pct:+.0%})."


SECTION = Section(
    id="changes",
    title="Compared with the previous period",
    tables=(
        Table(
            "changes",
            "Headline figures against the previous period",
            flag="flagged",
            # not compared: the note says why; the figures are the totals' (no column to fill)
            shown=lambda r: r.previous is not None,
        ),
    ),
    compute=compute,
    note=note,
    attention=attention,
    attention_rank=30,
    problems=50,
)
