"""The sample logs in the terminal: the demo's story, and what ``synth`` wrote."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from loganalyzer.terminal.common import clean, safe
from loganalyzer.terminal.ingest import print_ingest_summary
from loganalyzer.terminal.trace import print_trace


def print_demo(console: Console, result) -> None:
    """The demo's story: what was read, two traces, and the commands to try next."""
    # (short enough for an 80-column rule, which would cut it with "…")
    console.rule("[bold]1. Ingest[/bold]: a day of logs of three Exchange servers and an IIS relay")
    console.print(f"logs: {clean(result.logs)}", highlight=False, markup=False)
    print_ingest_summary(console, result.ingest)
    n = 1
    for n, (label, res) in enumerate(result.traces.items(), 2):
        console.rule(f"[bold]{n}. Trace a {label} message[/bold]")
        print_trace(console, res, conversation=False)
    store = safe(result.store)
    mid = next((t.messages[0].message_id for t in result.traces.values() if t.messages), "")
    console.rule(f"[bold]{n + 1}. Try next[/bold]")
    tips = [
        (
            f"loganalyzer trace '{safe(mid)}' --store {store}",
            "the full timeline with the SMTP conversations",
        ),
        (
            f"loganalyzer trace --recipient '*@example.com' --store {store}",
            "list the messages to one domain, then --pick N",
        ),
        (
            f"loganalyzer trace --verdict failed --store {store}",
            "list the messages with a failed recipient",
        ),
        (
            f"loganalyzer trace '{safe(mid)}' --store {store} --html trace.html",
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
        page = safe(Path(result.report).resolve().as_uri())
        tips.insert(0, (page, "the sample day's report, with charts: open it in a web browser"))
    for cmd, why in tips:
        # never broken over lines: the terminal wraps it, a copy keeps it whole
        console.print(f"  [bold]{cmd}[/bold]", highlight=False, soft_wrap=True)
        console.print(f"      {why}", highlight=False)


def print_synth(result, headers: Path | None = None) -> None:
    """What ``synth`` wrote (``SynthResult.summary()``), and where the header blocks are."""
    typer.echo(result.summary())
    if headers:
        typer.echo(f"header blocks: {headers}")
