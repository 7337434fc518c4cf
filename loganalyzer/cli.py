"""The ``loganalyzer`` command: parses options, calls the library, renders the result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

import eventcodes

app = typer.Typer(
    help="Trace messages and report mail flow from Exchange and IIS SMTP logs, offline.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console()
err = Console(stderr=True)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="Store folder [default: $LOGANALYZER_STORE or ./loganalyzer-store]",
        show_default=False,
    ),
]
TzOpt = Annotated[
    str | None,
    typer.Option("--tz", help="IANA time zone (Europe/Berlin) of local-time logs."),
]


def _version(value: bool) -> None:
    if value:
        from loganalyzer import __version__

        typer.echo(f"loganalyzer {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
) -> None:
    """Trace messages and report mail flow from Exchange and IIS SMTP logs, offline."""


def fail(message: str, code: int = 1) -> typer.Exit:
    """Print an error to stderr and return the exit to raise."""
    err.print(f"[red]error:[/red] {message}", highlight=False, markup=True)
    return typer.Exit(code)


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@app.command()
def codes(
    code: Annotated[
        list[str] | None, typer.Argument(help="Codes: 1020, DELIVER, 5.1.1, 550...")
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(help=f"Look up in, or list, one family: {', '.join(eventcodes.FAMILIES)}."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Explain tracking event IDs, sources, status codes and reply codes."""
    if not code and not family:
        raise fail("give one or more codes, or --family NAME to list a family", 2)
    try:
        if code:
            entries, unknown = [], []
            for c in code:
                try:
                    entries.append(eventcodes.lookup(c, family))
                except eventcodes.UnknownCode as exc:
                    unknown.append(str(exc))
        else:
            entries, unknown = eventcodes.entries(family), []
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json([e.to_dict() for e in entries])
    elif entries:
        t = Table(header_style="bold", expand=True)
        t.add_column("family", no_wrap=True)
        t.add_column("code", no_wrap=True)
        t.add_column("name", ratio=1)
        t.add_column("meaning", ratio=3)
        t.add_column("outcome", no_wrap=True)
        for e in entries:
            style = "red" if e.is_failure else None
            t.add_row(e.family, e.code, e.name, e.meaning, e.outcome, style=style)
        console.print(t)
    for u in unknown:
        err.print(f"error: {u}", highlight=False, markup=False)
    if unknown:
        raise typer.Exit(1)


@app.command("ingest")
def ingest_cmd(
    paths: Annotated[list[str], typer.Argument(help="Log files, folders and glob patterns.")],
    store: StoreOpt = None,
    format: Annotated[
        str | None,
        typer.Option(
            "--format", "-f", help="Format of header-less files (see `loganalyzer formats`)."
        ),
    ] = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Server name for the rows [default: read from the files, else their folder]",
            show_default=False,
        ),
    ] = None,
    tz: TzOpt = None,
    final: Annotated[
        bool,
        typer.Option(
            "--final",
            help="The files stopped growing: quarantine a partial "
            "last line instead of waiting for it.",
        ),
    ] = False,
    workers: Annotated[int | None, typer.Option(help="Parallel worker processes.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read log files into the store (incremental: only new lines are read)."""
    from loganalyzer.ingest import ingest
    from loganalyzer.render import ingest_progress, print_ingest_summary

    try:
        with ingest_progress(enabled=not as_json) as progress:
            summary = ingest(
                paths,
                store,
                format=format,
                server=server,
                tz=tz,
                final=final,
                workers=workers,
                progress=progress,
                on_wait=lambda m: err.print(m, highlight=False, markup=False),
            )
    except (ValueError, RuntimeError) as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(summary.to_dict())
    else:
        print_ingest_summary(console, summary)
    raise typer.Exit(summary.exit_code)


@app.command("trace")
def trace_cmd(
    query: Annotated[
        str | None,
        typer.Argument(
            help="Message-ID (with or without <>), network message ID, or "
            "internal message ID (with --server)."
        ),
    ] = None,
    store: StoreOpt = None,
    server: Annotated[str | None, typer.Option(help="Server of an internal message ID.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender; wildcards: *@contoso.com")] = None,
    recipient: Annotated[str | None, typer.Option(help="A recipient; wildcards allowed.")] = None,
    subject: Annotated[str | None, typer.Option(help="Part of the subject.")] = None,
    since: Annotated[str | None, typer.Option(help="From this time (UTC ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (UTC ISO 8601).")] = None,
    event_id: Annotated[str | None, typer.Option(help="Messages with this event: FAIL...")] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the displayed times.")] = "UTC",
    all_: Annotated[bool, typer.Option("--all", help="Trace every matching message.")] = False,
    pick: Annotated[int | None, typer.Option(help="Trace the N-th of the listed messages.")] = None,
    html: Annotated[str | None, typer.Option(help="Also write the trace as an HTML page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trace a message: where it went on every server, and a verdict per recipient."""
    from loganalyzer.trace import trace
    from loganalyzer.trace.text import print_trace

    if not any((query, sender, recipient, subject, since, until, event_id)):
        raise fail("give a message ID or at least one filter (--sender, --recipient, ...)", 2)
    try:
        result = trace(
            store,
            query,
            server=server,
            sender=sender,
            recipient=recipient,
            subject=subject,
            since=since,
            until=until,
            event_id=event_id,
            tz=tz,
            all=all_,
            pick=pick,
        )
    except (ValueError, RuntimeError, KeyError) as exc:
        raise fail(str(exc), 2) from exc
    if html:
        Path(html).write_text(result.to_html(), encoding="utf-8")
    if as_json:
        typer.echo(result.to_json())
    else:
        print_trace(console, result)
        if html:
            console.print(f"HTML: {html}", highlight=False)
    if not result.candidates:
        raise typer.Exit(1)


@app.command("demo")
def demo_cmd(
    folder: Annotated[
        Path, typer.Option(help="Where to put the sample logs and the store.")
    ] = Path("loganalyzer-demo"),
) -> None:
    """Ingest the bundled sample logs, trace a failed and a delivered message, show what next."""
    from loganalyzer.demo import run_demo
    from loganalyzer.render import ingest_progress, print_demo

    with ingest_progress() as progress:
        result = run_demo(folder, progress=progress)
    print_demo(console, result)


@app.command("formats")
def formats_cmd(as_json: JsonOpt = False) -> None:
    """List the log formats loganalyzer reads, with the files it recognises."""
    from loganalyzer.formats import FORMATS, UNSUPPORTED_KINDS

    rows = [
        {"name": m.NAME, "table": m.TABLE, "files": m.FILE_NAMES, "description": m.DESCRIPTION}
        for m in FORMATS.values()
    ]
    if as_json:
        print_json(rows)
        return
    t = Table("format", "table", "files", "what", header_style="bold", expand=True)
    for r in rows:
        t.add_row(r["name"], r["table"], r["files"], r["description"])
    console.print(t)
    kinds = sorted(set(UNSUPPORTED_KINDS.values()))
    console.print(f"Recognised but not read (yet): {', '.join(kinds)}.", highlight=False)


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Empty or new folder for the logs.")],
    servers: int = 4,
    days: int = 1,
    messages: Annotated[int, typer.Option(help="Messages per weekday.")] = 1000,
    seed: int = 0,
    start: Annotated[str, typer.Option(help="First day (UTC), YYYY-MM-DD.")] = "2026-03-02",
    relay: Annotated[bool, typer.Option(help="The IIS SMTP relay RELAY01 in front.")] = False,
    omit_server: Annotated[str | None, typer.Option(help="Write no logs of it.")] = None,
    size_mb: Annotated[float | None, typer.Option(help="Add days up to ~MB of logs.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write realistic multi-server Exchange 2016 logs and their ground truth (truth.jsonl)."""
    import datetime as dt

    from loganalyzer.synth import generate

    kwargs = dict(servers=servers, days=days, messages=messages, seed=seed, relay=relay)
    try:
        start_day = dt.date.fromisoformat(start)
        result = generate(out, start=start_day, omit_server=omit_server, size_mb=size_mb, **kwargs)
    except ValueError as exc:
        raise fail(str(exc), 2) from exc
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(result.summary())


def main() -> None:
    app()
