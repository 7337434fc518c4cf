"""The ``loganalyzer`` command: parses options, calls the library, renders the result.

The command contract (README): results on stdout, messages on stderr; exit 0 on success, 1
when nothing was found or problems were found, 2 for a usage or input error, with one line
naming the wrong value; never a traceback unless ``loganalyzer --debug``. Every error meets
``_Contract.main``, the one place that prints it.
"""

from __future__ import annotations

import json
import sys
import traceback
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

import eventcodes
from loganalyzer.errors import BadInput, LogAnalyzerError, NothingFound

# click's exceptions, as this typer names them (typer 0.28 carries its own copy of click)
_clicks = sys.modules[typer.BadParameter.__module__]
_NoArgsIsHelp = getattr(_clicks, "NoArgsIsHelpError", ())  # click 8.2 and later


class _Contract(TyperGroup):
    """The root command: every error becomes one line on stderr and its exit code."""

    debug = False  # set by ``--debug``, read when an error arrives

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:  # a caller that handles errors itself
            return super().main(args, prog_name, complete_var, False, **extra)
        _Contract.debug = False
        try:
            code = super().main(args, prog_name, complete_var, False, **extra)
        except _NoArgsIsHelp as exc:  # bare `loganalyzer`: the help
            exc.show()
            code = exc.exit_code
        except _clicks.ClickException as exc:
            code = _fail(_usage_line(exc), exc.exit_code)
        except typer.Abort:
            code = _fail("aborted", 1)
        except LogAnalyzerError as exc:
            code = _fail(str(exc), exc.exit_code)
        except OSError as exc:  # a path the user gave: missing, unreadable, unwritable
            where = f"{exc.filename}: " if exc.filename else ""
            code = _fail(f"{where}{exc.strerror or exc}", 2)
        except Exception as exc:
            reason = str(exc).strip().splitlines()
            code = _fail(
                f"unexpected {type(exc).__name__}: {reason[0] if reason else ''} "
                "(`loganalyzer --debug ...` shows where)",
                1,
            )
        sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> int:
    """Print ``error: message`` as one line on stderr (and the traceback with --debug)."""
    if _Contract.debug and sys.exc_info()[0] is not None:
        traceback.print_exc()
    line = " ".join(message.split())
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
    "error (one line on stderr names it).",
    no_args_is_help=True,
    rich_markup_mode=None,
)
console = Console()
err = Console(stderr=True)


def _say(message: str) -> None:
    """A message on stderr, one line however long (rich would wrap it)."""
    typer.echo(message, err=True)


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="Store folder or URL (s3://bucket/mailstore) "
        "[default: $LOGANALYZER_STORE or ./loganalyzer-store]",
        show_default=False,
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


def print_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


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
    if not code and not family:
        raise BadInput("give one or more codes, or --family NAME to list a family")
    try:
        if code:
            entries, unknown = [], []
            for c in code:
                try:
                    entries += eventcodes.explain(c, family)
                except eventcodes.UnknownCode as exc:
                    unknown.append(str(exc))
        else:
            entries, unknown = eventcodes.entries(family), []
    except ValueError as exc:  # an unknown family (eventcodes has no errors of ours)
        raise BadInput(str(exc)) from exc
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
    from loganalyzer.render import ingest_progress, print_ingest_summary

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
            help="Message-ID (with or without <>), network message ID, or "
            "internal message ID (with --server)."
        ),
    ] = None,
    store: StoreOpt = None,
    server: Annotated[str | None, typer.Option(help="Server of an internal message ID.")] = None,
    sender: Annotated[str | None, typer.Option(help="Sender; wildcards: *@contoso.com")] = None,
    recipient: Annotated[str | None, typer.Option(help="A recipient; wildcards allowed.")] = None,
    subject: Annotated[str | None, typer.Option(help="Part of the subject.")] = None,
    since: Annotated[str | None, typer.Option(help=f"From this time: {TIME_FORMS}.")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (the same forms).")] = None,
    event_id: Annotated[str | None, typer.Option(help="Messages with this event: FAIL...")] = None,
    tz: Annotated[
        str, typer.Option(help="Time zone of the displayed times and of --since/--until.")
    ] = "UTC",
    all_: Annotated[bool, typer.Option("--all", help="Trace every matching message.")] = False,
    pick: Annotated[int | None, typer.Option(help="Trace the N-th of the listed messages.")] = None,
    limit: Annotated[
        int | None,
        typer.Option(help="List the first N matching messages [default: 200; all with --all]"),
    ] = None,
    html: Annotated[str | None, typer.Option(help="Also write the trace as an HTML page.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Trace a message: where it went on every server, and a verdict per recipient."""
    from loganalyzer.pages import write_page
    from loganalyzer.trace import trace

    if not any((query, sender, recipient, subject, since, until, event_id)):
        raise BadInput("give a message ID or at least one filter (--sender, --recipient, ...)")
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
        limit=limit if limit is not None or all_ else 200,
    )
    if html:
        write_page(html, result.to_html())
    if as_json:
        typer.echo(result.to_json())
    elif result.candidates:
        from loganalyzer.trace.text import print_trace

        print_trace(console, result)
    if html:
        typer.echo(f"HTML: {html}", err=True)
    if not result.candidates:
        raise NothingFound(result.not_found())


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
    import duckdb

    from loganalyzer.read.export import to_csv, to_json
    from loganalyzer.read.store import Store
    from loganalyzer.render import print_frame

    try:
        df = Store(store).sql(query)
    except duckdb.Error as exc:  # the user's SQL: its first line says what is wrong
        raise BadInput(f"SQL: {str(exc).splitlines()[0]}") from exc
    if csv_:
        typer.echo(to_csv(df), nl=False)
    elif as_json:
        typer.echo(to_json(df))
    else:
        print_frame(console, df, limit)


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
    servers: Annotated[int, typer.Option(min=1, max=99, help="Exchange servers.")] = 4,
    days: Annotated[int, typer.Option(min=1, max=3660, help="Days of logs.")] = 1,
    messages: Annotated[
        int, typer.Option(min=0, max=10_000_000, help="Messages per weekday.")
    ] = 1000,
    seed: Annotated[int, typer.Option(min=0, max=2**63 - 1)] = 0,
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
    as_json: JsonOpt = False,
) -> None:
    """Write realistic multi-server Exchange logs and their ground truth (truth.jsonl)."""
    from loganalyzer.synth import generate
    from loganalyzer.times import parse_date

    kwargs = dict(servers=servers, days=days, messages=messages, seed=seed, relay=relay)
    kwargs |= {"headers": headers} if headers else {}
    kwargs |= {"exchange": exchange} if exchange != 2016 else {}
    start_day = parse_date(start, "UTC", option="--start")
    result = generate(out, start=start_day, omit_server=omit_server, size_mb=size_mb, **kwargs)
    if as_json:
        print_json(result.to_dict())
    else:
        typer.echo(result.summary())
        if headers:
            typer.echo(f"header blocks: {out / 'headers'}")


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
    from loganalyzer.headers.text import print_headers
    from loganalyzer.pages import write_page

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


def main() -> None:
    app()


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
        str | None, typer.Option(help="SMTP login; the password: $LOGANALYZER_SMTP_PASSWORD.")
    ] = None,
    mail_from: Annotated[str | None, typer.Option(help="Sender of the mail.")] = None,
    fail_if_empty: Annotated[
        bool,
        typer.Option(
            "--fail-if-empty",
            help="Exit 1, writing and mailing nothing, when the period has no log rows (cron).",
        ),
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Write the daily mail-flow report (one HTML file with charts); optionally mail it."""
    import os

    from loganalyzer.report import daily_report
    from loganalyzer.report.mail import PASSWORD_ENV, send
    from loganalyzer.report.text import print_report_notices, print_report_summary

    options = dict(days=days, tz=tz, top=top, accepted_domains=accepted_domain)
    smtp = dict(host=smtp_host, port=smtp_port, starttls=smtp_starttls, user=smtp_user)
    report = daily_report(
        store, date, problems_first=problems_first, redact_addresses=redact, **options
    )
    empty = fail_if_empty and report.is_empty  # then cron hears of it, nothing is sent
    path = out or (None if as_json else Path(f"mail-flow-{report.period.date}.html"))
    files = report.save(path, traces=traces) if path and not empty else []
    if mail_to and not empty:
        try:
            send(report, mail_to, password=os.environ.get(PASSWORD_ENV), sender=mail_from, **smtp)
        except (ValueError, OSError) as exc:  # smtplib's errors are OSErrors without a path
            raise BadInput(
                f"cannot mail the report via {smtp_host}:{smtp_port}: {_smtp_reason(exc)}"
            ) from exc
    if empty:
        err.print(f"error: {report.notices()[0]}", soft_wrap=True, highlight=False, markup=False)
        raise typer.Exit(1)
    print_report_notices(err, report, files)
    if as_json:
        typer.echo(report.to_json())
    else:
        print_report_summary(console, report, files, mail_to or [])


def _smtp_reason(exc: Exception) -> str:
    """What the SMTP server answered (``535 5.7.8 ...``), or why it could not be reached."""
    code, text = getattr(exc, "smtp_code", None), getattr(exc, "smtp_error", None)
    if code is not None:
        text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")
        return f"{code} {text}".strip()
    return getattr(exc, "strerror", None) or str(exc)


store_app = typer.Typer(
    help="Maintain a store: compact it, check it.", no_args_is_help=True, rich_markup_mode=None
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
    from loganalyzer.compact import compact

    summary = compact(
        store,
        date=date,
        target_mb=target_mb,
        on_wait=_say,
    )
    data = summary.to_dict()
    if as_json:
        print_json(data)
        return
    typer.echo(
        f"{summary.store}: {data['parts_before']} parts in {len(summary.partitions)} day "
        f"partitions rewritten as {data['parts_after']} ({data['rows']:,} rows) "
        f"in {summary.seconds:.1f} s"
    )


@store_app.command("check")
def store_check(
    store: StoreOpt = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Remove what killed runs left (under the lock).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the store: every listed part there, readable, with the manifest's row counts;
    no leftovers of killed runs. Exit code 0 when consistent, 1 when not, 2 when not a store."""
    from loganalyzer.store import Store

    st = Store(store).require()
    removed: list[str] = []
    if repair:
        with st.lock(on_wait=_say):
            removed = st.clean()
    busy = nullcontext() if as_json else err.status("reading the parts' footers")
    with busy:
        report = {**st.check(), "removed": removed}
    if as_json:
        print_json(report)
    else:
        for p in report["problems"]:
            typer.echo(p)
        damaged = len(report["missing"]) + len(report["unreadable"]) + len(report["row_counts"])
        left = len(report["unlisted"]) + len(report["temporary"])
        typer.echo(
            f"{report['store']}: {report['files']:,} files, {report['parts']:,} parts listed"
            + (f"; removed {len(removed)} leftovers of killed runs" if repair else "")
            + (f"; {damaged} damaged" if damaged else "")
            + (f"; {left} leftovers of killed runs (--repair removes them)" if left else "")
            + ("; consistent" if report["ok"] else "")
        )
    if not report["ok"]:
        raise typer.Exit(1)
