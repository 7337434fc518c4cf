"""The ``loganalyzer`` command: parses options, calls the library, renders the result."""

from __future__ import annotations

import json
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


def main() -> None:
    app()
