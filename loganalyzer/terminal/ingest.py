"""An ingest in the terminal: the progress bar while it runs, then its summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Column

from loganalyzer.terminal.common import clean, safe, table


@contextmanager
def ingest_progress(enabled: bool = True) -> Iterator:
    """A progress bar of bytes done, on stderr when it is a terminal; yields the callback
    ``ingest`` takes (None without a bar)."""
    screen = Console(stderr=True)
    if not enabled or not screen.is_terminal:  # a bar in a pipe or a log is noise
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        transient=True,
        console=screen,
    ) as bar:
        task = bar.add_task("ingest", total=None)

        def update(done: int, total: int, path: str) -> None:
            bar.update(task, completed=done, total=total)

        yield update


def print_ingest_summary(console: Console, summary) -> None:
    d = summary.to_dict()
    f = d["files"]
    speed = f"{d['mb_per_s']} MB/s" if d["mb_per_s"] else "-"
    copies = f" ({f['duplicates']} of them copies of logs read once)" if f["duplicates"] else ""
    console.print(
        f"[bold]{f['ingested']}[/bold] {'file' if f['ingested'] == 1 else 'files'} ingested, "
        f"{f['unchanged']} unchanged{copies}, "
        f"{f['skipped']} skipped, {f['errors']} unreadable; "
        f"[bold]{d['rows']:,}[/bold] {'row' if d['rows'] == 1 else 'rows'}, "
        f"{d['quarantined']:,} quarantined {'line' if d['quarantined'] == 1 else 'lines'}; "
        f"{d['bytes_read'] / 1e6:,.1f} MB in {d['seconds']:.1f} s ({speed})",
        highlight=False,
    )
    if held := d["held_back"]:  # not a problem: said once, not per file
        console.print(
            f"{held} incomplete last {'line' if held == 1 else 'lines'} held back until "
            f"{'its file grows' if held == 1 else 'their files grow'} or --final",
            highlight=False,
        )
    by_reason: dict[tuple[str, str], list[str]] = {}
    for x in summary.files:
        if x.status in ("skipped", "error"):
            by_reason.setdefault((x.status, x.reason or ""), []).append(x.path)
        elif x.quarantined:
            by_reason.setdefault(("quarantined", "lines went to the quarantine"), []).append(
                f"{x.path} ({x.quarantined})"
            )
    if by_reason:
        t = table("status", Column("files", ratio=2), Column("why", ratio=1))
        for (status, why), paths in sorted(by_reason.items()):
            shown = ", ".join(safe(p) for p in paths[:5])
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            t.add_row(
                status,
                f"{len(paths)}: {shown}{more}",
                safe(why),
                style="red" if status == "error" else None,
            )
        console.print(t)
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {safe(w)}", highlight=False)
    console.print(f"store: {clean(summary.store)}", highlight=False, markup=False)
