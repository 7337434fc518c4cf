"""``DailyReport``: the metrics of a report as DataFrames, with its renderings."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from loganalyzer.errors import BadInput
from loganalyzer.report import sections as registry
from loganalyzer.report.charts import Chart
from loganalyzer.report.period import Period
from loganalyzer.report.sections import SectionResult
from loganalyzer.report.sections.base import LISTED_OF
from loganalyzer.result import Result, plain, records

if TYPE_CHECKING:
    import plotly.graph_objects as go


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
    #: The delivered recipients the inferred accepted domains come from (None: given).
    accepted_delivered: int | None = None
    top: int = 10
    limit: int = 200
    problems_first: bool = False
    redacted: bool = False
    #: Why the figures are not compared with the previous period's (``previous`` None):
    #: the store holds none of its tracking rows, or holds it in part (its logs begin within
    #: it); None when compared, or not asked to.
    not_compared: str | None = None
    #: Days of the period without a single log row, and per server the hours of the other
    #: days in which it logged nothing (``2026-03-02 03:00-05:59``).
    empty_days: list[dt.date] = field(default_factory=list)
    quiet_hours: dict[str, list[str]] = field(default_factory=dict)
    #: The first and last (UTC) day of the store's rows; None for a store without any.
    store_days: tuple[dt.date, dt.date] | None = None
    #: The message expiration timeout the queues section measures against (seconds); the
    #: VIP section's latency (seconds), None without a VIP list.
    expiration_s: float = 172_800.0
    vip_latency_s: float | None = None
    #: Days without mail after which the history section calls an address quiet (reports
    #: of several days from rollups); None where it has no such table.
    quiet_days: int | None = None
    #: Days of a report from rollups counted (wholly or in part: the TLS or SMTP session
    #: tables) from their rows instead, for want of a current rollup or aggregate.
    rows_days: list[str] = field(default_factory=list)
    #: The hours of the period whose rows ``store prune`` removed, not counted: all of them
    #: in a report from rows, in one from rollups those of UTC days cut at the zone's
    #: midnight (``2026-03-31 00:00-19:59``, in the period's zone).
    pruned_hours: list[str] = field(default_factory=list)
    #: The hours of a report from rows of UTC days ``store prune`` removed rows of that have
    #: rows of logs ingested after it: counted from those rows alone.
    regrown_hours: list[str] = field(default_factory=list)
    #: The UTC days of a report from rollups counted from the rollup ``store prune`` kept
    #: while the store holds rows of logs of them ingested after it: those rows not counted.
    late_days: list[str] = field(default_factory=list)
    #: The period's tracking rows (the message figures' source); None where not known.
    tracking_rows: int | None = None
    #: The period's days with SMTP lines but no tracking row (a report from rows).
    untracked_days: list[str] = field(default_factory=list)
    #: The length without its limit of each list cut at ``top`` or ``limit`` rows, cut or
    #: not: taken out of its table's ``LISTED_OF`` column, or given (the lists a report from
    #: rollups leaves out).
    lengths: dict[str, int] = field(default_factory=dict)
    #: The tables a report from rollups does not count (per-message and per-session tables):
    #: empty, and said so, not "None.".
    left_out: list[str] = field(default_factory=list)
    #: Files not written by loganalyzer found in the trace folder by the last ``save``, kept.
    kept_files: list[Path] = field(default_factory=list, init=False, repr=False, compare=False)
    _figures: dict[str, dict[str, Chart | go.Figure]] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for name, df in list(self.metrics.items()):
            if LISTED_OF in df.columns:  # the same on every row: the list's length
                self.lengths.setdefault(name, int(df[LISTED_OF].iloc[0]) if len(df) else 0)
                self.metrics[name] = df = df.drop(columns=LISTED_OF)
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
        return {
            name: f.figure() if isinstance(f, Chart) else f
            for figs in self._section_figures().values()
            for name, f in figs.items()
        }

    def _section_figures(self) -> dict[str, dict[str, Chart | go.Figure]]:
        if self._figures is None:
            self._figures = registry.figures(self)
        return self._figures

    def results(self, figures: bool = True) -> list[SectionResult]:
        """Each section's tables, note and (with ``figures``) charts, in the order the page
        shows them."""
        charts = self._section_figures() if figures else {}
        return [
            SectionResult(
                s,
                {
                    t.name: self.metrics[t.name]
                    for t in s.tables
                    if t.name in self.metrics and (t.shown is None or t.shown(self))
                },
                s.note(self) if s.note else None,
                charts.get(s.id, {}),
            )
            for s in registry.ordered(self.problems_first)
            if any(t.name in self.metrics for t in s.tables)  # a section left out (VIP)
            and (s.shown is None or s.shown(self))
        ]

    def sections(self) -> list[tuple[str, str, list[str]]]:
        """(id, title, table names) in the order the page shows them."""
        return [(r.id, r.title, list(r.tables)) for r in self.results(figures=False)]

    @property
    def smtp_messages(self) -> dict[str, int]:
        """The messages the SMTP logs show accepted from clients and handed on, apart from
        the headline's (tracking logs') message figures."""
        from loganalyzer.report.sections.smtp import message_counts

        return message_counts(self.metrics["smtp_summary"])

    def no_tracking(self) -> str | None:
        """What the SMTP logs show of a period without tracking rows (its message figures
        are then zero), in plain words; None for a period with tracking rows or no SMTP
        lines."""
        from loganalyzer.report.sections.smtp import no_tracking

        return no_tracking(self)

    def attention(self) -> list[str]:
        """What needs a look, in plain words (also at the top of the page)."""
        return registry.attention(self)

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
        if self.pruned_hours:
            gone = _hour_runs(self.pruned_hours)
            if "long_period" in self.rules:  # from rollups: those of whole UTC days
                out.append(
                    f"Not counted: {gone} ({self.period.tz}), whose rows `store prune` "
                    "removed; their UTC days' rollups hold whole UTC days (the SMTP session "
                    "tables count their hours). `--tz UTC` counts whole days."
                )
            else:
                out.append(
                    f"Not counted: {gone} ({self.period.tz}), whose rows `store prune` "
                    "removed. `--rollups` counts pruned days from their rollups."
                )
        if self.regrown_hours:
            out.append(
                f"Counted in part: {_hour_runs(self.regrown_hours)} ({self.period.tz}), whose "
                "rows `store prune` removed: only the rows of logs ingested after the prune are "
                "counted."
            )
        if self.late_days:
            out.append(
                f"Not counted: the rows of {', '.join(self.late_days)} (UTC) ingested after "
                "`store prune` removed those days' rows; their kept rollups count them as they "
                "were. `--from-rows` counts those rows alone."
            )
        pending = int(self.headline.get("still_deferred_recipients") or 0)
        listed = self.total_of("pending")
        if listed is not None and pending > listed and "pending" not in self.left_out:
            who = f"{pending - listed:,} of the {pending:,}" if listed else f"The {pending:,}"
            one = pending - listed == 1
            out.append(
                f"{who} {'recipient' if pending == 1 else 'recipients'} still deferred "
                f"{'is' if one else 'are'} not listed: `store prune` removed "
                f"{'its' if one else 'their'} rows (the count is their day's rollup's)."
            )
        if self.rows_days:
            out.append(
                f"{len(self.rows_days):,} days counted from their rows, their rollups or "
                "aggregates missing or out of date (a killed ingest, or written by an earlier "
                "version): "
                "`loganalyzer store compact` or the next ingest rebuilds them."
            )
        failed = self._failed_messages()
        if trace_pages is not None and 0 < trace_pages < failed:
            listed = self.metrics["failed"]["message_id"].dropna().nunique()
            # the pages stop at --traces, or with the list of failed recipients at --limit
            more = "--traces N" if trace_pages < listed else "--limit N"
            out.append(
                f"Trace pages for the first {trace_pages:,} of {failed:,} failed messages "
                f"({more} for more)."
            )
        return out

    def cut(self) -> dict[str, dict[str, int]]:
        """The lists cut at their limit (``limit`` recipients, ``top`` senders...): their
        rows and true totals (of a table cut by keys, ``Table.cut_by``: its keys)."""
        return {name: cut for name in registry.TABLES if (cut := self._cut_of(name))}

    def _cut_of(self, name: str) -> dict[str, int] | None:
        total = self.total_of(name)
        if total is None:
            return None
        df, by = self.metrics[name], list(registry.TABLES[name].cut_by)
        listed = len(df.drop_duplicates(by)) if by and len(df) else len(df)
        # (a list left out of a report from rollups is empty: not cut, not listed)
        return {"listed": listed, "total": total} if total > listed > 0 else None

    def cut_line(self, name: str) -> str | None:
        """What the page says of the table ``name`` when it is cut: listed of how many."""
        cut = self._cut_of(name)
        return registry.TABLES[name].cut_line.format(**cut) if cut else None

    def total_of(self, name: str) -> int | None:
        """How many rows the list ``name`` has without its limit, where that is known
        (``lengths``)."""
        return self.lengths.get(name) if name in self.metrics else None

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
            "accepted_domains_delivered": self.accepted_delivered,
            "redacted": self.redacted,
            "rules": dict(self.rules),
            "expiration_s": self.expiration_s,
            "vip_latency_s": self.vip_latency_s,
            "quiet_days": self.quiet_days,
            "rows_days": list(self.rows_days),
            "pruned_hours": list(self.pruned_hours),
            "regrown_hours": list(self.regrown_hours),
            "late_days": list(self.late_days),
            "left_out": list(self.left_out),
            "tracking_rows": self.tracking_rows,
            "untracked_days": list(self.untracked_days),
            "smtp_messages": self.smtp_messages,
            "headline": {k: plain(v) for k, v in self.headline.items()},
            "previous": (
                {k: plain(v) for k, v in self.previous.items()} if self.previous else None
            ),
            "not_compared": self.not_compared,
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
        failed messages into ``<name>_traces/`` beside it; returns the files written.

        The trace pages an earlier report wrote in that folder are removed (a redacted report
        leaves none with real addresses beside it); other files there are kept and listed in
        ``kept_files``. BadInput naming the path when it cannot be written, before anything
        is written."""
        from loganalyzer.pages import check_page_path, replace_pages, staging_folder, write_page
        from loganalyzer.report.html import TRACE_PAGE, trace_folder, write_traces

        path = check_page_path(path)
        folder = trace_folder(path)
        links: dict[str, str] = {}
        names: list[str] = []
        staging = None
        try:
            if traces and not self.redacted and len(self.metrics["failed"]):
                staging = staging_folder(folder)
                try:
                    links, names = write_traces(self, staging, traces, folder.name)
                except OSError as exc:
                    raise BadInput(f"cannot write {folder}: {exc.strerror or exc}") from None
            html = self.to_html(traces=links)  # before the swap: the page follows it at once
            self.kept_files = replace_pages(folder, staging, TRACE_PAGE)
            staging = None
        finally:
            if staging is not None:  # failed before the swap: the old pages stay as they were
                shutil.rmtree(staging, ignore_errors=True)
        write_page(path, html)
        return [path, *(folder / n for n in names)]


def _day_runs(days: list[dt.date]) -> str:
    """Days as runs of consecutive days: ``2026-03-04 to 2026-03-08, 2026-03-10``."""
    runs: list[list[dt.date]] = []
    for d in sorted(days):
        if runs and d - runs[-1][1] == dt.timedelta(days=1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return ", ".join(f"{a} to {b}" if a != b else f"{a}" for a, b in runs)


def _hour_runs(ranges: list[str]) -> str:
    """Ranges of hours (``2026-03-31 00:00-19:59``) in words, whole days as runs of days."""
    whole = [dt.date.fromisoformat(r[:10]) for r in ranges if r.endswith(" 00:00-23:59")]
    parts = [r for r in ranges if not r.endswith(" 00:00-23:59")]
    return ", ".join(([_day_runs(whole)] if whole else []) + parts)
