"""Store maintenance in the terminal: a compaction's summary, a prune's, a forget's and a store
check."""

from __future__ import annotations

from itertools import groupby
from typing import TYPE_CHECKING

import typer

from loganalyzer.pages import counted

if TYPE_CHECKING:
    from loganalyzer.store.compact import CompactSummary, PruneSummary
    from loganalyzer.store.forget import ForgetSummary


def print_compact(summary: CompactSummary) -> None:
    """One line: parts before and after, rows, time."""
    data = summary.to_dict()
    typer.echo(
        f"{summary.store}: {counted(data['parts_before'], 'part')} in "
        f"{counted(len(summary.partitions), 'day partition')} rewritten as "
        f"{data['parts_after']} ({counted(data['rows'], 'row')}) "
        f"in {summary.seconds:.1f} s"
    )


#: Lines of one kind of problem a store check shows (--json lists them all).
SHOWN_PROBLEMS = 5


def print_check(report: dict, repaired: bool = False) -> None:
    """Each problem a line (the first few of a kind: an interrupted ingest leaves hundreds of
    parts), then one line: files, parts, what was removed, damaged, left over."""
    for kind, group in groupby(report["problems"], key=lambda p: p.split(": ", 1)[0]):
        lines = list(group)
        for p in lines[:SHOWN_PROBLEMS]:
            typer.echo(p)
        if len(lines) > SHOWN_PROBLEMS:
            typer.echo(f"... and {len(lines) - SHOWN_PROBLEMS:,} more: {kind} (--json lists all)")
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
        f"{report['store']}: {counted(report['files'], 'file')}, "
        f"{counted(report['parts'], 'part')} listed"
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
        f"{counted(n, 'file')} ({counted(summary.rows, 'row')}, "
        f"{counted(summary.quarantined, 'quarantined line')}"
        + (f", {summary.days[0]} to {summary.days[-1]}" if len(summary.days) > 1 else "")
        + (f", {summary.days[0]}" if len(summary.days) == 1 else "")
        + ")"
    )
    if summary.dry_run:
        typer.echo(f"{summary.store}: would forget {what}; nothing changed (--dry-run)")
    else:
        typer.echo(f"{summary.store}: forgot {what}; the next ingest of them reads them again")


#: Days and files a prune's summary lists in the terminal (--json lists them all).
SHOWN_DAYS, SHOWN_FILES = 20, 10


def print_prune(summary: PruneSummary) -> None:
    """The files whose rows go (the first ten), a table of the days (rows by table, parts,
    MB, whether the rollup is kept), then one line: what was (or would be) removed."""
    if not summary.days:
        typer.echo(f"{summary.store}: no rows before {summary.before}")
        return
    for name in summary.files[:SHOWN_FILES]:
        typer.echo(f"  {name}")
    if len(summary.files) > SHOWN_FILES:
        typer.echo(f"  ... and {len(summary.files) - SHOWN_FILES:,} more files")
    by_table = summary.to_dict()["rows_by_table"]
    rows = [
        ("day", "tracking", "smtp", "other", "parts", "MB", "rollup"),
        *((d.date, f"{d.tracking:,}", f"{d.smtp:,}", f"{d.other:,}", f"{d.parts:,}",
           f"{d.bytes / 1e6:,.1f}", "kept" if d.rollup_kept else "none")
          for d in summary.per_day[:SHOWN_DAYS]),
        ("total", *(f"{by_table[t]:,}" for t in ("tracking", "smtp", "other")),
         f"{summary.parts:,}", f"{summary.bytes / 1e6:,.1f}", f"{len(summary.rollups_kept)} kept"),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for n, r in enumerate(rows):
        if n == len(rows) - 1 and len(summary.per_day) > SHOWN_DAYS:
            typer.echo(f"  ... and {len(summary.per_day) - SHOWN_DAYS:,} more days")
        cells = [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]
        typer.echo("  " + "  ".join([r[0].ljust(widths[0]), *cells]))
    n, kept = len(summary.days), len(summary.rollups_kept)
    what = (
        f"{counted(summary.rows, 'row')} ({counted(summary.parts, 'part')}, "
        f"{summary.bytes / 1e6:,.1f} MB) of {counted(n, 'day')}, {summary.days[0]} to "
        f"{summary.days[-1]}, from {counted(len(summary.files), 'file')}"
    )
    rollups = (
        "their rollups"
        if kept == n
        else f"the rollups of {kept} of them (the others have no tracking or SMTP rows)"
    )
    built = len(summary.rollups_built)
    first = f"the rollups of {counted(built, 'day')} out of date"
    if summary.dry_run:
        first = f"; {first} would be built first" if built else ""
        typer.echo(
            f"{summary.store}: would remove {what}; {rollups} would be kept{first}; nothing "
            "changed (--dry-run)"
        )
    else:
        first = f"; {first} built first" if built else ""
        typer.echo(f"{summary.store}: removed {what}; {rollups} kept{first}")
