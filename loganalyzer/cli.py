"""The ``loganalyzer`` command: parses options, calls the library, renders the result.

The command contract (README): results on stdout, messages on stderr; exit 0 on success, 1
when nothing was found or problems were found, 2 for a usage or input error, with one line
naming the wrong value; never a traceback unless ``loganalyzer --debug``. Every error meets
``_Contract.main``, the one place that prints it.
"""

from __future__ import annotations

import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from typer.core import TyperGroup

import eventcodes
from loganalyzer.errors import BadInput, LogAnalyzerError, NothingFound
from loganalyzer.fate import VERDICTS
from loganalyzer.pages import json_text
from loganalyzer.terminal.common import clean, print_json, print_values

# click's exceptions, as this typer names them (typer 0.28 carries its own copy of click)
_clicks = sys.modules[typer.BadParameter.__module__]
_NoArgsIsHelp = getattr(_clicks, "NoArgsIsHelpError", ())  # click 8.2 and later


class _Contract(TyperGroup):
    """The root command: every error becomes one line on stderr and its exit code."""

    debug = False  # set by ``--debug``, read when an error arrives
    last_error = ""  # the line of the last error, for `watch --once`'s status line

    def invoke(self, ctx):
        # Typer makes a Ctrl-C a silent exit 130: said here, in the contract's one line
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted(_interrupted(ctx)) from None
        except Exception as exc:
            if str(exc).strip().splitlines() == ["Query interrupted"]:  # DuckDB's word for it
                raise _Interrupted(_interrupted(ctx)) from None
            raise

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # a caller that handles errors itself
            return super().main(args, prog_name, complete_var, False, **extra)
        _Contract.debug = False
        argv = sys.argv[1:] if args is None else list(args)
        plugin = "watch" in argv and "--once" in argv  # monitoring plugins: 3 is UNKNOWN
        failed = True  # until the command returns or exits by itself
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
            failed = False
        except _NoArgsIsHelp as exc:  # bare `loganalyzer`: the help
            exc.show()
            code = exc.exit_code
        except _clicks.ClickException as exc:
            code = _fail(_usage_line(exc), exc.exit_code)
        except typer.Abort:
            code = _fail("aborted", 1)
        except LogAnalyzerError as exc:  # a Ctrl-C too (``invoke``)
            code = _fail(str(exc), exc.exit_code)
        except OSError as exc:  # a path the user gave: missing, unreadable, unwritable
            where = f"{exc.filename}: " if exc.filename else ""
            code = _fail(f"{where}{exc.strerror or exc}", 2)
        except Exception as exc:
            from loganalyzer.store.duck import part_gone

            reason = str(exc).strip().splitlines()
            if part_gone(exc):  # a compaction or prune committed under this reader
                code = _fail(STORE_CHANGED, 1)
            else:
                code = _fail(
                    f"unexpected {type(exc).__name__}: {reason[0] if reason else ''} "
                    "(`loganalyzer --debug ...` shows where)",
                    1,
                )
        code = code if isinstance(code, int) else 0
        if plugin and failed:
            typer.echo(f"WATCH UNKNOWN - {_Contract.last_error}")
            code = 3
        sys.exit(code)


#: What a Ctrl-C ends a command with (exit 130, as a shell says of SIGINT), by command (the
#: others: "interrupted (Ctrl-C)"): every write to a store is whole or not made, so running
#: the command again finishes its work; synth removes the logs it had begun.
_IN_STORE = "interrupted (Ctrl-C): the store holds what was finished; run the command again"
INTERRUPTED = {
    **dict.fromkeys(("ingest", "store", "watch", "demo"), _IN_STORE),
    "synth": "interrupted (Ctrl-C): the logs begun were removed; run the command again",
}


#: What a command says when a part the manifest lists was not there to read (``part_gone``).
STORE_CHANGED = (
    "a part of the store was gone when this command read it: a compaction or prune that ran "
    "meanwhile (run the command again), or damage (`loganalyzer store check` names it)"
)


def _interrupted(ctx: typer.Context) -> str:
    """What a Ctrl-C of the command ``ctx`` invoked is said with (``INTERRUPTED``)."""
    return INTERRUPTED.get(ctx.invoked_subcommand or "", "interrupted (Ctrl-C)")


class _Interrupted(LogAnalyzerError):
    exit_code = 130


def _fail(message: str, code: int) -> int:
    """Print ``error: message`` as one line on stderr (and the traceback with --debug)."""
    if _Contract.debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    line = _Contract.last_error = " ".join(message.split())
    typer.echo(f"{typer.style('error:', fg='red')} {line}", err=True)
    return code


def _usage_line(exc: Exception) -> str:
    """A usage error as one line, with where to read the command's options."""
    text = exc.format_message()
    ctx = getattr(exc, "ctx", None)
    if isinstance(exc, _clicks.UsageError) and ctx is not None:
        text += f" (see `{ctx.command_path} --help`)"
    return text


app = typer.Typer(
    cls=_Contract,
    help="Trace messages and report mail flow from Exchange and IIS SMTP logs, offline.",
    epilog="Exit codes: 0 success, 1 nothing found or problems found, 2 a usage or input "
    "error (one line on stderr names it), 130 interrupted (Ctrl-C).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console()
err = Console(stderr=True)


#: What ``watch`` says when Ctrl-C twice stopped it in the middle of a round.
CUT_SHORT = "watch stopped in the middle of a round; the next ingest or watch finishes it"
#: What it says when Ctrl-C twice stopped it bringing the per-day aggregates up to date.
CUT_REFRESH = (
    "watch stopped before the store's per-day aggregates were up to date; reports read the "
    "rows meanwhile; the next ingest brings them up to date"
)


def _say(message: str) -> None:
    """A message on stderr, one line however long (rich would wrap it)."""
    typer.echo(message, err=True)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _not_blank(value: str | None) -> str | None:
    """An option given as an empty text is a mistake (``--store ""`` from an unset variable),
    not its default."""
    if value is not None and not value.strip():
        raise typer.BadParameter("empty; leave the option out for its default")
    return value


StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="Store folder or URL (s3://bucket/mailstore) "
        "[default: $LOGANALYZER_STORE or ./loganalyzer-store]",
        show_default=False,
        callback=_not_blank,
    ),
]
TIME_FORMS = "an ISO date or time, now, today, yesterday, or an offset (-2h, -7d)"
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
    debug: Annotated[
        bool, typer.Option("--debug", help="On an error, also print the Python traceback.")
    ] = False,
) -> None:
    """Trace messages and report mail flow from Exchange and IIS SMTP logs, offline."""
    _Contract.debug = debug


@app.command()
def codes(
    code: Annotated[
        list[str] | None,
        typer.Argument(
            help='Codes (1020, DELIVER, 5.1.1, 550...) or whole replies ("250 2.6.0 ...").'
        ),
    ] = None,
    family: Annotated[
        str | None,
        typer.Option(help=f"Look up in, or list, one family: {', '.join(eventcodes.FAMILIES)}."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Explain tracking event IDs, sources, status codes and reply codes."""
    from loganalyzer.terminal.tables import print_codes

    if not code and not family:
        raise BadInput("give one or more codes, or --family NAME to list a family")
    if any(not c.strip() for c in code or ()):  # an unset variable: a mistake, not a code
        raise BadInput("an empty code: give a code (1020, DELIVER, 5.1.1, 550...) or a reply")
    try:
        if code:
            found, unknown = [], []
            for c in code:
                try:
                    found.append(eventcodes.explain_reply(c, family))
                except eventcodes.UnknownCode as exc:
                    unknown.append(str(exc))
        else:
            found = [eventcodes.Explanation(str(family), tuple(eventcodes.entries(family)))]
            unknown = []
    except ValueError as exc:  # an unknown family (eventcodes has no errors of ours)
        raise BadInput(str(exc)) from exc
    if as_json:
        print_json([row for f in found for row in f.rows()])
    elif any(f.entries for f in found):
        print_codes(console, found)
    for u in unknown:
        _say(f"error: {u}")
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
            callback=_not_blank,
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
    workers: Annotated[
        int | None, typer.Option(min=1, max=1024, help="Parallel worker processes.")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Parse on this Dask cluster (tcp://host:8786); its workers must reach the "
            "logs at the same paths, and the store."
        ),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read log files into the store (incremental: only new lines are read)."""
    from loganalyzer.ingest import ingest
    from loganalyzer.report.rollup import refresh
    from loganalyzer.terminal.ingest import ingest_progress, print_ingest_summary

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
            on_wait=_say,
            scheduler=scheduler,
            rollups=refresh,
        )
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
            help="Message-ID (with or without <>), network message ID, IIS SMTP queue ID, "
            "or internal message ID (with --server)."
        ),
    ] = None,
    store: StoreOpt = None,
    server: Annotated[
        str | None,
        typer.Option(
            help="Server of an internal message ID (with another ID: the server searched): "
            "EX02 or ex02.contoso.com.",
            callback=_not_blank,
        ),
    ] = None,
    sender: Annotated[
        str | None, typer.Option(help="Sender; wildcards: *@contoso.com", callback=_not_blank)
    ] = None,
    recipient: Annotated[
        str | None, typer.Option(help="A recipient; wildcards allowed.", callback=_not_blank)
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="Part of the subject.", callback=_not_blank)
    ] = None,
    since: Annotated[str | None, typer.Option(help=f"From this time: {TIME_FORMS}.")] = None,
    until: Annotated[
        str | None,
        typer.Option(
            help="Before this time (the same forms); a day (2026-03-02, yesterday) to its end."
        ),
    ] = None,
    event_id: Annotated[
        str | None, typer.Option(help="Messages with this event: FAIL...", callback=_not_blank)
    ] = None,
    verdict: Annotated[
        str | None,
        typer.Option(
            help=f"Messages with a recipient of this verdict: {', '.join(VERDICTS)}.",
            callback=_not_blank,
        ),
    ] = None,
    tz: Annotated[
        str, typer.Option(help="Time zone of the displayed times and of --since/--until.")
    ] = "UTC",
    all_: Annotated[bool, typer.Option("--all", help="Trace every matching message.")] = False,
    pick: Annotated[
        int | None, typer.Option(help="Trace the N-th of the listed messages (not with --all).")
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="List the first N matching messages [default: 200; all with --all]"),
    ] = None,
    html: Annotated[str | None, typer.Option(help="Also write the trace as an HTML page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trace a message: where it went on every server, and a verdict per recipient.

    A sender, recipient or time filter also lists the attempts refused during the SMTP
    session (protocol, IIS and agent logs), with verdict rejected.
    """
    from loganalyzer.trace import trace, trace_pages

    if not any((query, sender, recipient, subject, since, until, event_id, verdict)):
        raise BadInput("give a message ID or at least one filter (--sender, --recipient, ...)")
    filters = dict(server=server, sender=sender, recipient=recipient, subject=subject)
    filters |= dict(since=since, until=until, event_id=event_id, verdict=verdict, tz=tz)
    filters |= dict(verdicts=True)  # a listed message's verdicts, not its last event
    if all_ and pick is None:  # a page at a time, as it comes (the HTML page too)
        return _print_pages(trace_pages(store, query, most=limit, **filters), as_json, html, limit)
    result = trace(
        store,
        query,
        all=all_,
        pick=pick,
        limit=limit if limit is not None or all_ else 200,
        **filters,
    )
    if html:
        from loganalyzer.pages import write_page  # Jinja2: only for the page (a tenth of a second)

        write_page(html, result.to_html())
    if as_json:
        typer.echo(result.to_json())
    elif result.candidates:
        from loganalyzer.terminal.trace import print_trace

        print_trace(console, result)
    if html:
        typer.echo(f"HTML: {html}", err=True)
    for note in result.notes():
        typer.echo(f"note: {clean(note)}", err=True)
    if not result.candidates:
        raise NothingFound(result.not_found())


def _print_pages(pages, as_json: bool, html: str | None = None, most: int | None = None) -> None:
    """``trace --all``: each page of traces printed as it is made (JSON: the messages as they
    come, then the list of them) and added to the ``html`` page, memory held to a page; the
    text numbered ("1 of 26") and closed by how many of the matches were traced (the first
    ``most``, when given)."""
    from loganalyzer.terminal.trace import print_trace

    def dumps(value) -> str:
        return json_text(value)

    listed: list[dict] = []
    written = 0
    total = 0
    notes: list[str] = []
    unmatched: list[str] = []

    def printed():
        nonlocal written, listed, total
        for result in pages:  # (at least one: the first says what matched)
            if not result.total:  # (the page says so too, as a trace of one ID does)
                if as_json:
                    typer.echo(result.to_json())
                unmatched.append(result.not_found())
                yield result
                return
            if as_json and not written:
                head = dumps({"query": result.query, "total": result.total})
                typer.echo(head[: head.rindex("}")].rstrip() + ',\n  "messages": [', nl=False)
            first, total = written + 1, result.total
            for m in result.messages:
                if as_json:
                    typer.echo(("," if written else "") + "\n" + dumps(m.to_dict()), nl=False)
                written += 1
            listed += result.candidates
            if not as_json:
                of = total if most is None else min(total, most)
                print_trace(console, result, first=first, of=of)
            if not notes:
                notes.extend(result.notes())
            yield result

    if html:
        from loganalyzer.pages import write_page
        from loganalyzer.trace.html import render_pages

        write_page(html, render_pages(printed()))
    else:
        for _ in printed():
            pass
    if as_json and not unmatched:
        typer.echo('\n  ],\n  "candidates": ' + dumps(listed) + "\n}")
    elif written < total:
        console.print(
            f"traced {written:,} of {total:,} matching messages (--limit N for more)",
            highlight=False,
        )
    elif written > 1:
        console.print(f"traced {written:,} matching messages", highlight=False)
    if html:
        typer.echo(f"HTML: {html}", err=True)
    for note in notes:
        typer.echo(f"note: {clean(note)}", err=True)
    if unmatched:
        raise NothingFound(unmatched[0])


@app.command("demo")
def demo_cmd(
    folder: Annotated[
        Path, typer.Option(help="Where to put the sample logs and the store.")
    ] = Path("loganalyzer-demo"),
) -> None:
    """Ingest the bundled sample logs, trace a failed and a delivered message, show what next."""
    from loganalyzer.demo import run_demo
    from loganalyzer.terminal.demo import print_demo
    from loganalyzer.terminal.ingest import ingest_progress

    with ingest_progress() as progress:
        result = run_demo(folder, progress=progress)
    print_demo(console, result)


@app.command("sql")
def sql_cmd(
    query: Annotated[
        str,
        typer.Argument(
            help="SQL over the views tracking, smtp, recipients, messages, quarantine and files."
        ),
    ],
    store: StoreOpt = None,
    csv_: Annotated[
        bool, typer.Option("--csv", help="CSV, safe to open in a spreadsheet.")
    ] = False,
    as_json: JsonOpt = False,
    limit: Annotated[
        int, typer.Option(min=1, help="Rows shown in the table (not in CSV/JSON).")
    ] = 100,
) -> None:
    """Run SQL (DuckDB) over the store and print the result."""
    from loganalyzer.read.export import to_csv, to_json
    from loganalyzer.read.store import Store
    from loganalyzer.terminal.tables import print_frame

    df = Store(store).sql(query)  # BadInput for SQL DuckDB refuses
    if csv_:
        print_values(to_csv(df))
    elif as_json:
        typer.echo(to_json(df))
    else:
        print_frame(console, df, limit)


@app.command("formats")
def formats_cmd(as_json: JsonOpt = False) -> None:
    """List the log formats loganalyzer reads, with the files it recognises."""
    from loganalyzer.formats import FORMATS, UNSUPPORTED_KINDS
    from loganalyzer.terminal.tables import print_formats

    rows = [
        {"name": f.name, "table": f.table, "files": f.file_names, "description": f.description}
        for f in FORMATS.values()
    ]
    if as_json:
        print_json(rows)
        return
    print_formats(console, rows, sorted(set(UNSUPPORTED_KINDS.values())))


@app.command()
def synth(
    out: Annotated[Path, typer.Option(help="Empty or new folder for the logs.")],
    servers: Annotated[int, typer.Option(min=1, max=99, help="Exchange servers.")] = 4,
    days: Annotated[int, typer.Option(min=1, max=3660, help="Days of logs.")] = 1,
    messages: Annotated[
        int, typer.Option(min=0, max=10_000_000, help="Messages per weekday.")
    ] = 1000,
    seed: Annotated[
        int,
        typer.Option(
            min=0, max=2**63 - 1, help="Random seed: the same seed and options write the same logs."
        ),
    ] = 0,
    start: Annotated[str, typer.Option(help="First day (UTC): a date or today, -7d...")] = (
        "2026-03-02"
    ),
    relay: Annotated[bool, typer.Option(help="The IIS SMTP relay RELAY01 in front.")] = False,
    omit_server: Annotated[str | None, typer.Option(help="Write no logs of it.")] = None,
    size_mb: Annotated[
        float | None, typer.Option(max=1_000_000, help="Add days up to ~MB of logs.")
    ] = None,
    headers: Annotated[
        int,
        typer.Option(
            min=0,
            max=100_000,
            help="Also write OUT/headers/<n>.eml: N delivered messages, a few NDRs.",
        ),
    ] = 0,
    exchange: Annotated[
        int, typer.Option(help="Exchange version of the logs: 2016, or 2003 (2000/2003 format).")
    ] = 2016,
    incidents: Annotated[
        bool,
        typer.Option(
            "--incidents",
            help="Add to the first day a next hop down for 3 hours and a password-guessing burst.",
        ),
    ] = False,
    agent_logs: Annotated[
        bool,
        typer.Option(
            help="Also write anti-spam agent and connectivity logs: sessions refused at each "
            "SMTP stage, next hops that fail (DNS, refused, timeout, TLS)."
        ),
    ] = False,
    clients: Annotated[
        bool,
        typer.Option(
            "--clients",
            help="Add SMTP relay clients (anonymous and authenticated), TLS 1.0/1.1 peers, peers "
            "without TLS and failed TLS negotiations every day, with their messages' journeys "
            "and truth rows; write OUT/sessions.jsonl.",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write realistic multi-server Exchange logs and their ground truth (truth.jsonl)."""
    from loganalyzer.synth import generate
    from loganalyzer.terminal.demo import print_synth
    from loganalyzer.times import parse_date

    kwargs = dict(servers=servers, days=days, messages=messages, seed=seed, relay=relay)
    kwargs |= {"headers": headers} if headers else {}
    kwargs |= {"exchange": exchange} if exchange != 2016 else {}
    kwargs |= {"incidents": True} if incidents else {}
    kwargs |= {"agent_logs": True} if agent_logs else {}
    kwargs |= {"clients": True} if clients else {}
    start_day = parse_date(start, "UTC", option="--start")
    result = generate(out, start=start_day, omit_server=omit_server, size_mb=size_mb, **kwargs)
    if as_json:
        print_json(result.to_dict())
    else:
        print_synth(result, out / "headers" if headers else None)


@app.command("headers")
def headers_cmd(
    file: Annotated[str, typer.Argument(help="A .eml file, a saved bounce (NDR), or - for stdin.")],
    store: Annotated[
        str | None,
        typer.Option(
            "--store", "-s", help="Join the trace from this store [default: $LOGANALYZER_STORE]"
        ),
    ] = None,
    tz: Annotated[str, typer.Option(help="Time zone of the displayed times.")] = "UTC",
    html: Annotated[str | None, typer.Option(help="Also write it as an HTML page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Read a message's headers: hops and delays, SPF/DKIM/DMARC, antispam verdicts, a bounce's
    failed recipients; with a store, the same message's trace from the logs."""
    import os

    from loganalyzer.headers import analyze_headers
    from loganalyzer.pages import write_page
    from loganalyzer.terminal.headers import print_headers

    store = store or os.environ.get("LOGANALYZER_STORE") or None
    data = typer.get_binary_stream("stdin").read() if file == "-" else Path(file).read_bytes()
    result = analyze_headers(data, store, tz=tz, source="stdin" if file == "-" else file)
    if html:
        write_page(html, result.to_html())
    if as_json:
        typer.echo(result.to_json())
    else:
        print_headers(console, result)
    if html:
        typer.echo(f"HTML: {html}", err=True)


@app.command("serve")
def serve_cmd(
    store: StoreOpt = None,
    host: Annotated[
        str,
        typer.Option(
            help="Address to listen on; other than loopback needs $LOGANALYZER_WEB_TOKEN."
        ),
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8025,
    redact: Annotated[
        bool, typer.Option("--redact", help="Show addresses as keyed hashes, hide subjects.")
    ] = False,
) -> None:
    """Serve the web app for the help desk: search, trace, paste a header, reports, status."""
    from loganalyzer.web import serve

    serve(store, host, port, redact=redact)


def main() -> None:
    app()


#: What --smtp-user needs: report.mail.check_login.
_LOGIN_HELP = (
    "SMTP login, with --smtp-starttls (or to a relay on loopback: localhost); the password: "
    "$LOGANALYZER_SMTP_PASSWORD."
)

report_app = typer.Typer(
    help="Reports on the mail flow.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(report_app, name="report")


@report_app.command("daily")
def report_daily(
    store: StoreOpt = None,
    date: Annotated[
        str, typer.Option(help="The (last) day: YYYY-MM-DD, today, yesterday, -7d... (in --tz).")
    ] = "yesterday",
    days: Annotated[
        int, typer.Option(min=1, max=3660, help="Number of days, ending on --date.")
    ] = 1,
    tz: Annotated[str, typer.Option(help="Time zone of the days and of the times.")] = "UTC",
    out: Annotated[
        Path | None, typer.Option(help="HTML file [default: mail-flow-DATE.html; none with --json]")
    ] = None,
    top: Annotated[int, typer.Option(min=1, max=100_000, help="Rows of the top lists.")] = 10,
    limit: Annotated[
        int,
        typer.Option(
            min=1, max=100_000, help="Rows of the per-message lists (failed, pending recipients)."
        ),
    ] = 200,
    problems_first: Annotated[
        bool, typer.Option("--problems-first", help="Failures, deferrals, data quality first.")
    ] = False,
    redact: Annotated[
        bool, typer.Option("--redact", help="Hash addresses, hide subjects, no trace pages.")
    ] = False,
    accepted_domain: Annotated[
        list[str] | None,
        typer.Option(
            help="An accepted domain (repeatable): internal senders where the logs "
            "have no directionality [default: domains of delivered recipients]"
        ),
    ] = None,
    traces: Annotated[
        int, typer.Option(min=0, max=100_000, help="Trace pages of up to N failed messages.")
    ] = 100,
    mail_to: Annotated[list[str] | None, typer.Option(help="Mail it to ADDR (repeatable).")] = None,
    smtp_host: Annotated[str, typer.Option(help="SMTP server.")] = "localhost",
    smtp_port: Annotated[int, typer.Option(min=1, max=65535, help="SMTP port.")] = 25,
    smtp_starttls: Annotated[bool, typer.Option("--smtp-starttls", help="Use STARTTLS.")] = False,
    smtp_user: Annotated[
        str | None,
        typer.Option(help=_LOGIN_HELP),
    ] = None,
    mail_from: Annotated[str | None, typer.Option(help="Sender of the mail.")] = None,
    fail_if_empty: Annotated[
        bool,
        typer.Option(
            "--fail-if-empty",
            help="Exit 1, writing and mailing nothing, when the period has no log rows (cron).",
        ),
    ] = False,
    expiration: Annotated[
        str,
        typer.Option(
            help="Message expiration timeout the queues are measured against: 2d, 36h, 90m."
        ),
    ] = "2d",
    vip: Annotated[
        Path | None,
        typer.Option(
            help="VIP addresses, one a line: their failures, deferrals and slow deliveries "
            "at the top."
        ),
    ] = None,
    vip_latency: Annotated[
        str, typer.Option(help="With --vip: list deliveries slower than this: 90s, 5m, 1h.")
    ] = "5m",
    rollups: Annotated[
        bool | None,
        typer.Option(
            "--rollups/--from-rows",
            help="Count the period from the store's rollups (fast; no per-message tables; "
            "one day too: a pruned day's figures) or from every row [default: rollups from "
            "8 days up; a day's TLS and SMTP "
            "session tables from the UTC days' aggregates]",  # report.long.ROLLUP_DAYS
        ),
    ] = None,
    quiet_days: Annotated[
        int,
        typer.Option(
            help="Reports of several days from rollups: list the mailboxes and distribution "
            "lists that received and sent nothing in this many last days (1 to 3660)."
        ),
    ] = 30,  # report.sections.history.QUIET_DAYS
    as_json: JsonOpt = False,
) -> None:
    """Write the daily mail-flow report (one HTML file with charts); optionally mail it."""
    import os

    from loganalyzer.report import daily_report
    from loganalyzer.report.mail import (
        PASSWORD_ENV,
        accepted,
        check_addresses,
        check_login,
        send,
        smtp_reason,
    )
    from loganalyzer.terminal.report import (
        print_mailed,
        print_report_empty,
        print_report_notices,
        print_report_summary,
    )

    check_addresses("--mail-to", mail_to)  # before the work, not after it
    check_addresses("--mail-from", mail_from)
    if mail_to:
        check_login(smtp_host, smtp_starttls, smtp_user)
    for domain in accepted_domain or []:
        if not domain.strip().lstrip("@") or any(c in domain for c in " ,;<>"):
            raise BadInput(f"--accepted-domain {domain!r}: give a domain (contoso.com)")
    options = dict(days=days, tz=tz, top=top, limit=limit, accepted_domains=accepted_domain)
    options |= dict(expiration=expiration, vips=vip, vip_latency=vip_latency)
    options |= dict(quiet_days=quiet_days)
    smtp = dict(host=smtp_host, port=smtp_port, starttls=smtp_starttls, user=smtp_user)
    report = daily_report(
        store,
        date,
        problems_first=problems_first,
        redact_addresses=redact,
        rollups=rollups,
        **options,
    )
    empty = fail_if_empty and report.is_empty  # then cron hears of it, nothing is sent
    path = out or (None if as_json else Path(f"mail-flow-{report.period.date}.html"))
    files = report.save(path, traces=traces) if path and not empty else []
    if mail_to and not empty:
        try:
            send(report, mail_to, password=os.environ.get(PASSWORD_ENV), sender=mail_from, **smtp)
        except (ValueError, OSError) as exc:  # smtplib's errors are OSErrors without a path
            mailed = ", ".join(accepted(exc, mail_to))
            notes = [f"mailed to {mailed}"] if mailed else []
            notes += [f"the report is written: {files[0]}"] if files else []
            reason = smtp_reason(exc) + (f" ({'; '.join(notes)})" if notes else "")
            raise BadInput(f"cannot mail the report via {smtp_host}:{smtp_port}: {reason}") from exc
    if empty:
        print_report_empty(err, report)
        raise typer.Exit(1)
    print_report_notices(err, report, files)
    if as_json:
        typer.echo(report.to_json())
        print_mailed(err, mail_to or [])  # stdout is the JSON alone
    else:
        print_report_summary(console, report, files)
        print_mailed(console, mail_to or [])


store_app = typer.Typer(
    help="Maintain a store: compact it, prune old rows, forget files, check it.",
    no_args_is_help=True,
    rich_markup_mode=None,
)
app.add_typer(store_app, name="store")


@store_app.command("compact")
def store_compact(
    store: StoreOpt = None,
    date: Annotated[str | None, typer.Option(help="Only this UTC day (YYYY-MM-DD).")] = None,
    target_mb: Annotated[
        float, typer.Option(max=1_000_000, help="Size a compacted part grows to (above 0).")
    ] = 128,
    as_json: JsonOpt = False,
) -> None:
    """Rewrite the many small part files of each day into few large, sorted ones."""
    from loganalyzer.report.rollup import refresh
    from loganalyzer.store.compact import compact
    from loganalyzer.terminal.store import print_compact

    summary = compact(
        store,
        date=date,
        target_mb=target_mb,
        on_wait=_say,
        rollups=refresh,
    )
    if as_json:
        print_json(summary.to_dict())
    else:
        print_compact(summary)


@store_app.command("prune")
def store_prune(
    before: Annotated[
        str,
        typer.Option(
            help="Remove the rows of the UTC days before this day (a date, today, -90d...).",
            show_default=False,
        ),
    ],
    store: StoreOpt = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Only say what would be removed: the days, their rows, the files and bytes; "
            "changes nothing and takes no lock (a read-only store too).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Remove old rows (retention), keeping their days' rollups for long reports. Atomic: a
    kill leaves the store as before or pruned. Exit code 0 when done (also when nothing is
    that old), 2 for a bad date or a path that holds no store."""
    from loganalyzer.report.rollup import refresh
    from loganalyzer.store.compact import prune
    from loganalyzer.terminal.store import print_prune

    summary = prune(store, before, dry_run=dry_run, rollups=refresh, on_wait=_say)
    if as_json:
        print_json(summary.to_dict())
    else:
        print_prune(summary)


@store_app.command("forget")
def store_forget(
    paths: Annotated[
        list[str] | None,
        typer.Argument(
            help="Ingested log files, the folders or archives they were read from, or glob "
            "patterns, as ingest was given them.",
            show_default=False,
        ),
    ] = None,
    store: StoreOpt = None,
    damaged: Annotated[
        bool,
        typer.Option(
            "--damaged", help="Also the files whose rows missing or unreadable parts held."
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Only say what would be forgotten.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Take ingested files out of the store (their rows and quarantined lines) so that the
    next ingest reads them again: after ingesting with a wrong --tz, --server or --format, or
    (--damaged) to mend parts store check finds damaged. Atomic: a kill leaves the store as
    before or without them. Exit code 0 when done, 2 for a path that matches no ingested file
    or a path that holds no store."""
    from loganalyzer.ingest import forget
    from loganalyzer.report.rollup import refresh
    from loganalyzer.terminal.store import print_forget

    summary = forget(
        paths or [], store, dry_run=dry_run, damaged=damaged, rollups=refresh, on_wait=_say
    )
    if as_json:
        print_json(summary.to_dict())
    else:
        print_forget(summary)


@store_app.command("check")
def store_check(
    store: StoreOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove what interrupted runs left (under the lock).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the store: every listed part there, readable, with the manifest's row counts;
    no leftovers of interrupted runs. Exit code 0 when consistent, 1 when not, 2 when not a
    store."""
    from loganalyzer.store import Store
    from loganalyzer.terminal.common import status
    from loganalyzer.terminal.store import print_check

    st = Store(store)
    if not st.begun():
        st.require()
    removed: list[str] = []
    if repair:
        with st.lock(on_wait=_say):
            removed = st.clean()
    with status(err, "reading the parts' footers", enabled=not as_json):
        report = {**st.check(), "removed": removed}
    if as_json:
        print_json(report)
    else:
        print_check(report, repaired=repair)
    if not report["ok"]:
        raise typer.Exit(1)


@app.command("watch")
def watch_cmd(
    logs: Annotated[
        list[str] | None,
        typer.Argument(help="Log files, folders and glob patterns to ingest every interval."),
    ] = None,
    store: StoreOpt = None,
    rules: Annotated[
        Path | None,
        typer.Option(help="Rules file (TOML) [default: the shipped rules, see --show-rules]."),
    ] = None,
    show_rules: Annotated[
        bool, typer.Option("--show-rules", help="Print the default rules file and exit.")
    ] = False,
    interval: Annotated[float, typer.Option(min=1, max=86400, help="Seconds between rounds.")] = 60,
    refresh_every: Annotated[
        str,
        typer.Option(
            help="While today's rows come in, bring the store's per-day aggregates (rollups, "
            "address index) up to date at most this often (90s, 15m, 1h; 0s: every round); "
            "rows of an earlier day do it at once."
        ),
    ] = "15m",
    once: Annotated[
        bool,
        typer.Option(
            "--once",
            help="One round, then exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN with one "
            "status line (Nagios, Icinga, Zabbix, Task Scheduler); notifying takes 5 s at "
            "most (what is not sent by then goes out next round).",  # watch.ONCE_NOTIFY_SECONDS
        ),
    ] = False,
    vip: Annotated[
        Path | None, typer.Option(help="VIP addresses, one per line (the vip rule).")
    ] = None,
    textfile: Annotated[
        Path | None,
        typer.Option(help="Write alerts as a Prometheus textfile (node_exporter) here."),
    ] = None,
    webhook: Annotated[
        list[str] | None, typer.Option(help="POST each alert as JSON to URL (repeatable).")
    ] = None,
    mail_to: Annotated[
        list[str] | None, typer.Option(help="Mail alerts to ADDR (repeatable).")
    ] = None,
    smtp_host: Annotated[str, typer.Option(help="SMTP server.")] = "localhost",
    smtp_port: Annotated[int, typer.Option(min=1, max=65535, help="SMTP port.")] = 25,
    smtp_starttls: Annotated[bool, typer.Option("--smtp-starttls", help="Use STARTTLS.")] = False,
    smtp_user: Annotated[
        str | None,
        typer.Option(help=_LOGIN_HELP),
    ] = None,
    mail_from: Annotated[str | None, typer.Option(help="Sender of the mail.")] = None,
    server: Annotated[
        str | None, typer.Option(help="Server name for the logs (default: read from them).")
    ] = None,
    tz: TzOpt = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print each round as JSON instead of lines.")
    ] = False,
) -> None:
    """Keep the store current and raise alerts: ingest every interval, evaluate the rules,
    notify by mail, webhook or Prometheus textfile when an alert fires, repeats or resolves."""
    import os
    import signal
    import threading

    from loganalyzer import watch as w
    from loganalyzer.report.mail import PASSWORD_ENV
    from loganalyzer.terminal.watch import print_once, print_round
    from loganalyzer.times import parse_duration

    if show_rules:
        typer.echo(w.rules.default_rules_text(), nl=False)
        return
    from loganalyzer.report.mail import check_addresses, check_login

    check_addresses("--mail-to", mail_to)
    check_addresses("--mail-from", mail_from)
    notifiers: list = [w.Webhook(url) for url in webhook or []]
    w.check_textfile(textfile)
    if mail_to:
        check_login(smtp_host, smtp_starttls, smtp_user)
        password = os.environ.get(PASSWORD_ENV)
        notifiers.append(
            w.Mail(mail_to, smtp_host, smtp_port, smtp_starttls, smtp_user, password, mail_from)
        )
    options = dict(
        logs=logs or [],
        rules=w.load_rules(rules),
        vips=w.load_vips(vip),
        notifiers=notifiers,
        textfile=textfile,
        ingest_options=dict(server=server, tz=tz),
        refresh_every=parse_duration(refresh_every, "--refresh-every"),
    )
    if once:
        result = w.check(store, notify_seconds=w.ONCE_NOTIFY_SECONDS, **options)
        print_once(result, as_json)
        raise typer.Exit(result.status)

    stop = threading.Event()
    forced: list[int] = []

    def on_signal(signum: int, _frame: object) -> None:
        # Ctrl-C as SIGTERM: the round goes on to its end (an interrupted ingest or query
        # left unfinished parts and stale aggregates); a second Ctrl-C stops at once, and a
        # third does not wait for the second's clean-up: the store is safe from a kill
        if signum == signal.SIGINT and forced:
            _say(CUT_SHORT)
            sys.stdout.flush()
            os._exit(1)
        if signum == signal.SIGINT and stop.is_set():
            forced.append(signum)
            raise KeyboardInterrupt
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    _say(
        f"watching {len(logs or [])} log paths every {interval:g} s; "
        "Ctrl-C stops after the round (twice: at once)"
    )
    refreshing: list[bool] = []

    def on_refresh() -> None:
        refreshing.append(True)
        _say("bringing the store's per-day aggregates up to date (Ctrl-C: stop at once)")

    try:
        w.watch(
            store,
            interval=interval,
            stop=stop,
            on_check=lambda r: print_round(r, as_json),
            on_refresh=on_refresh,
            **options,
        )
    except BaseException:
        if not forced:
            raise
        # whatever the interruption became (DuckDB makes it a RuntimeError): ingest's commit
        # protocol keeps the store as before the round, as after a kill; each aggregate is
        # replaced whole
        _say(CUT_REFRESH if refreshing else CUT_SHORT)
        raise typer.Exit(1) from None
    finally:  # the watch is over: a Ctrl-C now would only cut its exit short (code -2)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    _say("watch stopped")
