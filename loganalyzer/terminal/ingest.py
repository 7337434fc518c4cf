"""An ingest in the terminal: the progress bar while it runs, then its summary."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from loganalyzer.terminal.common import clean


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
    console.print(
        f"[bold]{f['ingested']}[/bold] files ingested, {f['unchanged']} unchanged, "
        f"{f['skipped']} skipped, {f['errors']} unreadable; "
        f"[bold]{d['rows']:,}[/bold] rows, {d['quarantined']:,} quarantined lines; "
        f"{d['bytes_read'] / 1e6:,.1f} MB in {d['seconds']:.1f} s ({speed})",
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
        t = Table("status", "files", "why", header_style="bold", expand=True)
        for (status, why), paths in sorted(by_reason.items()):
            shown = ", ".join(clean(p) for p in paths[:5])
            more = f" and {len(paths) - 5} more" if len(paths) > 5 else ""
            t.add_row(
                status,
                f"{len(paths)}: {shown}{more}",
                clean(why),
                style="red" if status == "error" else None,
            )
        console.print(t)
    for w in summary.warnings:
        console.print(f"[yellow]warning:[/yellow] {clean(w)}", highlight=False)
    console.print(f"store: {clean(summary.store)}", highlight=False)


def print_demo(console: Console, result) -> None:
    """The demo's story: what was read, two traces, and the commands to try next."""
    from loganalyzer.terminal.trace import print_trace

    console.rule(
        "[bold]1. Ingest[/bold]: one day of sample logs from three Exchange servers "
        "and an IIS SMTP relay"
    )
    console.print(f"logs: {clean(result.logs)}", highlight=False)
    print_ingest_summary(console, result.ingest)
    for label, res in result.traces.items():
        console.rule(f"[bold]2. Trace a {label} message[/bold]")
        print_trace(console, res, conversation=False)
    store = clean(result.store)
    mid = next((t.messages[0].message_id for t in result.traces.values() if t.messages), "")
    console.rule("[bold]Try next[/bold]")
    tips = [
        (
            f"loganalyzer trace '{clean(mid)}' --store {store}",
            "the full timeline with the SMTP conversations",
        ),
        (
            f"loganalyzer trace --recipient '*@example.com' --store {store}",
            "list the messages to one domain, then --pick N",
        ),
        (
            f"loganalyzer trace '{clean(mid)}' --store {store} --html trace.html",
            "the same as a web page",
        ),
        (
            f"loganalyzer report daily --date {result.day} --store {store} --out day.html",
            "the sample day's report (add --mail-to to send it)",
        ),
        (
            f'loganalyzer sql "select event_id, count(*) from tracking group by 1" --store {store}',
            "SQL over the store",
        ),
        ("loganalyzer codes 5.1.1 4.4.7 550", "what the codes mean"),
    ]
    if result.report:
        # a file URL opens in any browser, on any system (``open`` is macOS only)
        page = clean(Path(result.report).resolve().as_uri())
        tips.insert(0, (page, "the sample day's report, with charts: open it in a web browser"))
    for cmd, why in tips:
        console.print(f"  [bold]{cmd}[/bold]\n      {why}", highlight=False)


def print_frame(console: Console, df, limit: int = 100) -> None:
    """A DataFrame as a table, log values cleaned; says how many rows were left out."""
    t = Table(*[clean(c) for c in df.columns], header_style="bold", expand=True)
    for row in df.head(limit).itertuples(index=False):
        t.add_row(*[clean("" if v is None or v is pd_na() else v) for v in row])
    console.print(t)
    if len(df) > limit:
        console.print(
            f"showing the first {limit:,} of {len(df):,} rows; --limit N, --csv or --json "
            "to see more",
            highlight=False,
        )


def pd_na():
    import pandas as pd

    return pd.NA
