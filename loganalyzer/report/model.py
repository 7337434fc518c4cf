"""``DailyReport``: the metrics of a report as DataFrames, with its renderings."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loganalyzer.report.period import Period
from loganalyzer.result import Result, plain, records

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: The report's sections in their default order: id, title, tables.
SECTIONS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("totals", "Grand totals", ("totals", "distinct", "sides")),
    ("changes", "Compared with the previous period", ("changes",)),
    ("traffic", "Traffic", ("hourly", "daily")),
    (
        "failures",
        "Failures",
        ("failures_by_status", "failures_by_domain", "failures_by_server", "failed"),
    ),
    ("deferrals", "Deferrals and pending mail", ("deferral_reasons", "pending")),
    ("latency", "Delivery latency", ("latency", "latency_hourly", "slowest")),
    (
        "top",
        "Top senders and recipients",
        tuple(
            f"top_{n}{s}"
            for n in ("senders", "sender_domains", "recipients", "recipient_domains")
            for s in ("", "_by_size")
        )
        + ("system_senders",),
    ),
    (
        "smtp",
        "SMTP sessions",
        ("smtp_summary", "smtp_hourly", "reply_codes", "remote_ips", "auth_failures"),
    ),
    (
        "quality",
        "Data quality",
        ("files", "quarantine", "unknown_codes", "missing_hours", "clock_skew"),
    ),
)
#: Section order with ``problems_first``.
PROBLEMS_FIRST = (
    "failures",
    "deferrals",
    "quality",
    "smtp",
    "changes",
    "totals",
    "traffic",
    "latency",
    "top",
)

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
#: A change is flagged when it is at least this share of the previous value ...
CHANGE_THRESHOLD = 0.5
#: ... and the larger of the two values is at least this.
CHANGE_MINIMUM = 10


@dataclass
class DailyReport(Result):
    """What ``loganalyzer.daily_report`` returns: metrics (``metrics[name]`` or
    ``report.name``), figures, and ``to_html()``, ``to_dict()``, ``to_json()``."""

    period: Period
    store: str
    metrics: dict[str, pd.DataFrame]
    headline: dict[str, int]
    previous: dict[str, int] | None
    rules: dict[str, str]
    accepted_domains: list[str]
    accepted_inferred: bool
    top: int = 10
    limit: int = 200
    problems_first: bool = False
    redacted: bool = False
    #: Days of the period without a single log row, and per server the hours of the other
    #: days in which it logged nothing (``2026-03-02 03:00-05:59``).
    empty_days: list[dt.date] = field(default_factory=list)
    quiet_hours: dict[str, list[str]] = field(default_factory=dict)
    #: The first and last (UTC) day of the store's rows; None for a store without any.
    store_days: tuple[dt.date, dt.date] | None = None
    _figures: dict[str, go.Figure] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.metrics["changes"] = changes(self.headline, self.previous)
        for df in self.metrics.values():
            for col in df.columns:
                if isinstance(df[col].dtype, pd.DatetimeTZDtype):
                    df[col] = df[col].dt.tz_convert(self.period.tz)

    def __getattr__(self, name: str) -> pd.DataFrame:
        metrics = self.__dict__.get("metrics") or {}
        if name in metrics:
            return metrics[name]
        raise AttributeError(name)

    def __repr__(self) -> str:
        h = self.headline
        return (
            f"<DailyReport {self.period.label()} ({self.period.tz}): "
            f"{h['received_messages']} messages received, {h['delivered_recipients']} "
            f"delivered, {h['sent_out_recipients']} sent out, {h['failed_recipients']} failed>"
        )

    @property
    def figures(self) -> dict[str, go.Figure]:
        """The charts, as plotly figures, by name."""
        if self._figures is None:
            from loganalyzer.report.charts import build

            self._figures = build(self)
        return self._figures

    def sections(self) -> list[tuple[str, str, list[str]]]:
        """(id, title, table names) in the order the page shows them."""
        by_id = {s[0]: s for s in SECTIONS}
        order = PROBLEMS_FIRST if self.problems_first else [s[0] for s in SECTIONS]
        return [
            (sid, by_id[sid][1], [t for t in by_id[sid][2] if t in self.metrics]) for sid in order
        ]

    def attention(self) -> list[str]:
        """What needs a look, in plain words (also at the top of the page)."""
        m, h = self.metrics, self.headline
        out = []
        if h["failed_recipients"]:
            worst = m["failures_by_status"].iloc[0]
            code = worst["status"] or "no status code"
            out.append(
                f"{h['failed_recipients']:,} recipients failed; most often {code} "
                f"({worst['recipients']:,})."
            )
        if h["still_deferred_recipients"]:
            out.append(f"{h['still_deferred_recipients']:,} recipients are still deferred.")
        for r in m["changes"][m["changes"]["flagged"]].itertuples():
            out.append(f"{r.figure}: {r.value:,} against {r.previous:,} ({r.change_pct:+.0%}).")
        for r in m["missing_hours"].itertuples():
            out.append(f"No {r.log} log rows from {r.server} in {r.hours} ({r.missing_hours} h).")
        for r in m["clock_skew"][m["clock_skew"]["flagged"]].itertuples():
            out.append(
                f"Clock skew: {r.to_server} logs RECEIVE {r.median_s:+.1f} s from "
                f"{r.from_server}'s SEND (median of {r.hops} hops)."
            )
        if len(m["unknown_codes"]):
            out.append(f"{m['unknown_codes']['rows'].sum():,} tracking rows with unknown events.")
        if len(m["quarantine"]):
            out.append(f"{m['quarantine']['lines'].sum():,} log lines quarantined.")
        auth = m["auth_failures"]
        if len(auth):
            out.append(
                f"{auth['failures'].sum():,} failed SMTP authentications from "
                f"{len(auth):,}{'+' if len(auth) >= self.top else ''} remote IPs "
                f"(most: {auth.iloc[0]['remote_ip']}, {auth.iloc[0]['failures']:,})."
            )
        return out

    @property
    def is_empty(self) -> bool:
        """True when no log has a single row in the whole period."""
        return len(self.empty_days) >= self.period.days

    def notices(self, trace_pages: int | None = None) -> list[str]:
        """What the report lacks or leaves out, in plain words: days without data, servers'
        hours without data and, given the number of trace pages written, the failed
        messages without one."""
        out = []
        if not self.store_days:
            held = "the store holds no rows"
        elif self.store_days[0] == self.store_days[1]:
            held = f"the store holds {self.store_days[0]} (UTC) only"
        else:
            held = f"the store holds {self.store_days[0]} to {self.store_days[1]} (UTC days)"

        if self.is_empty:
            out.append(
                f"No log rows for {self.period.label()} ({self.period.tz}): every figure is "
                f"zero; {held}."
            )
        elif self.empty_days:
            out.append(
                f"No log rows on {len(self.empty_days)} of {self.period.days} days: "
                f"{_day_runs(self.empty_days)}; {held}."
            )
        for server, ranges in self.quiet_hours.items():
            if self.period.days == 1:  # the day goes without saying
                ranges = [r.split(" ", 1)[-1] for r in ranges]
            out.append(f"{server} logged nothing in {', '.join(ranges)} ({self.period.tz}).")
        failed = self._failed_messages()
        if trace_pages is not None and 0 < trace_pages < failed:
            out.append(
                f"Trace pages for the first {trace_pages:,} of {failed:,} failed messages "
                "(--traces N for more)."
            )
        return out

    def cut(self) -> dict[str, dict[str, int]]:
        """The lists of recipients cut at ``limit`` rows: their rows and true totals."""
        totals = {
            "failed": self.headline["failed_recipients"],
            "pending": self.headline["still_deferred_recipients"],
        }
        return {
            name: {"listed": len(self.metrics[name]), "total": int(total)}
            for name, total in totals.items()
            if name in self.metrics and total > len(self.metrics[name])
        }

    def _failed_messages(self) -> int:
        totals = self.metrics["totals"].set_index("figure")
        return int(totals.loc["failed", "messages"]) if "failed" in totals.index else 0

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data: period, rules, headline figures and every table."""
        return {
            "period": self.period.to_dict(),
            "store": self.store,
            "accepted_domains": list(self.accepted_domains),
            "accepted_domains_inferred": self.accepted_inferred,
            "redacted": self.redacted,
            "rules": dict(self.rules),
            "headline": {k: plain(v) for k, v in self.headline.items()},
            "previous": (
                {k: plain(v) for k, v in self.previous.items()} if self.previous else None
            ),
            "attention": self.attention(),
            "cut": self.cut(),
            "empty_days": [d.isoformat() for d in self.empty_days],
            "quiet_hours": {k: list(v) for k, v in self.quiet_hours.items()},
            "store_days": (
                {"first": self.store_days[0].isoformat(), "last": self.store_days[1].isoformat()}
                if self.store_days
                else None
            ),
            "tables": {name: records(df) for name, df in self.metrics.items()},
        }

    def _html(
        self, fragment: bool = False, charts: bool = True, traces: dict[str, str] | None = None
    ) -> str:
        """One self-contained HTML page (plotly.js inlined once; ``charts=False``: no
        scripts at all, as for mail). ``traces`` maps message IDs to trace page links."""
        from loganalyzer.report.html import render

        return render(self, charts=charts, traces=traces or {}, fragment=fragment)

    def save(self, path: str | Path, traces: int = 100) -> list[Path]:
        """Write the page to ``path`` and, unless redacted, trace pages of up to ``traces``
        failed messages into ``<name>_traces/`` beside it; returns the files written."""
        from loganalyzer.pages import write_page
        from loganalyzer.report.html import write_traces

        path = Path(path)
        written = []
        links: dict[str, str] = {}
        if traces and not self.redacted and len(self.metrics["failed"]):
            links, pages = write_traces(self, path, traces)
            written += pages
        write_page(path, self.to_html(traces=links))
        return [path, *written]


def _day_runs(days: list[dt.date]) -> str:
    """Days as runs of consecutive days: ``2026-03-04 to 2026-03-08, 2026-03-10``."""
    runs: list[list[dt.date]] = []
    for d in sorted(days):
        if runs and d - runs[-1][1] == dt.timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return ", ".join(f"{a} to {b}" if a != b else f"{a}" for a, b in runs)


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
