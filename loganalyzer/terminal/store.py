"""Store maintenance in the terminal: a compaction's summary, a forget's and a store check."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from loganalyzer.store.compact import CompactSummary
    from loganalyzer.store.forget import ForgetSummary


def print_compact(summary: CompactSummary) -> None:
    """One line: parts before and after, rows, time."""
    data = summary.to_dict()
    typer.echo(
        f"{summary.store}: {data['parts_before']} parts in {len(summary.partitions)} day "
        f"partitions rewritten as {data['parts_after']} ({data['rows']:,} rows) "
        f"in {summary.seconds:.1f} s"
    )


def print_check(report: dict, repaired: bool = False) -> None:
    """Each problem a line, then one line: files, parts, what was removed, damaged, left over."""
    for p in report["problems"]:
        typer.echo(p)
    for n in report.get("notices", []):
        typer.echo(n)
    damaged = len(report["missing"]) + len(report["unreadable"]) + len(report["row_counts"])
    left = len(report["unlisted"]) + len(report["temporary"])
    removed = report.get("removed") or []
    if report.get("unfinished"):  # no manifest: nothing was ever committed
        typer.echo(
            f"{report['store']}: no ingest has finished in this store yet"
            + (f"; removed {len(removed)} leftovers of an interrupted one" if repaired else "")
            + (
                f"; {left} leftovers of an interrupted one (--repair removes them; the next "
                "ingest does too)"
                if left
                else "; nothing left over"
            )
        )
        return
    typer.echo(
        f"{report['store']}: {report['files']:,} files, {report['parts']:,} parts listed"
        + (f"; removed {len(removed)} leftovers of interrupted runs" if repaired else "")
        + (f"; {damaged} damaged" if damaged else "")
        + (f"; {left} leftovers of interrupted runs (--repair removes them)" if left else "")
        + ("; consistent" if report["ok"] else "")
    )


def print_forget(summary: ForgetSummary) -> None:
    """The files (the first ten), then one line: rows, quarantined lines, days, what next."""
    for name in summary.files[:10]:
        typer.echo(f"  {name}")
    if len(summary.files) > 10:
        typer.echo(f"  ... and {len(summary.files) - 10:,} more")
    n = len(summary.files)
    if not n:
        typer.echo(f"{summary.store}: no damaged part; nothing to forget")
        return
    what = (
        f"{n:,} {'file' if n == 1 else 'files'} ({summary.rows:,} rows, "
        f"{summary.quarantined:,} quarantined lines"
        + (f", {summary.days[0]} to {summary.days[-1]}" if len(summary.days) > 1 else "")
        + (f", {summary.days[0]}" if len(summary.days) == 1 else "")
        + ")"
    )
    if summary.dry_run:
        typer.echo(f"{summary.store}: would forget {what}; nothing changed (--dry-run)")
    else:
        typer.echo(f"{summary.store}: forgot {what}; the next ingest of them reads them again")
