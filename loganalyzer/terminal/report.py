"""The report in a terminal: where it was written, its headline figures, what needs a look."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console

from loganalyzer.report.sections.changes import headline_figure
from loganalyzer.terminal.common import clean, safe

if TYPE_CHECKING:
    from loganalyzer.report.model import DailyReport


def print_report_summary(console: Console, report: DailyReport, files: list[Path]) -> None:
    h = report.headline
    instead = report.no_tracking()
    if instead:  # a bare "0 messages received" would say the relay took nothing
        console.print(
            f"[bold]Mail flow {report.period.label()}[/bold] ({safe(report.period.tz)}): "
            f"{safe(instead)}",
            highlight=False,
        )
    else:
        received = h["received_messages"]
        console.print(
            f"[bold]Mail flow {report.period.label()}[/bold] ({safe(report.period.tz)}): "
            f"{received:,} {headline_figure('received_messages', received)}; recipients: "
            f"{h['delivered_recipients']:,} delivered, {h['sent_out_recipients']:,} sent out, "
            f"{h['failed_recipients']:,} failed, {h['still_deferred_recipients']:,} still "
            "deferred",
            highlight=False,
        )
    for line in report.attention():
        if line != instead:  # said above
            console.print(f"[yellow]![/yellow] {safe(line)}", highlight=False)
    if report.not_compared:  # why no change is flagged
        console.print(report.not_compared, highlight=False, markup=False)
    if files:
        pages = f" and {len(files) - 1} trace pages" if len(files) > 1 else ""
        console.print(f"report: {clean(files[0])}{pages}", highlight=False, markup=False)


def print_mailed(console: Console, mailed_to: list[str]) -> None:
    """To whom the report was mailed (stderr with --json: stdout is the JSON alone)."""
    if mailed_to:
        console.print(f"mailed to {clean(', '.join(mailed_to))}", highlight=False, markup=False)


def print_report_notices(console: Console, report: DailyReport, files: list[Path]) -> None:
    """What the report lacks or leaves out (days and hours without data, failed messages
    without a trace page), one warning a line: for stderr, where cron sees it."""
    pages = len(files) - 1 if files else None
    lines = report.notices(pages)
    if files and report.kept_files:
        kept = report.kept_files
        names = ", ".join(p.name for p in kept[:5]) + (", ..." if len(kept) > 5 else "")
        lines.append(
            f"{kept[0].parent} holds {len(kept):,} other "
            f"{'file' if len(kept) == 1 else 'files'}, not written by loganalyzer, left as "
            f"{'it was' if len(kept) == 1 else 'they were'}: {names}"
        )
    for line in lines:
        console.print(f"warning: {clean(line)}", soft_wrap=True, highlight=False, markup=False)


def print_report_empty(console: Console, report: DailyReport) -> None:
    """Why an empty period wrote and mailed nothing (``--fail-if-empty``): for stderr."""
    console.print(f"error: {report.notices()[0]}", soft_wrap=True, highlight=False, markup=False)
