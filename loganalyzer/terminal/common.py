"""What every terminal renderer uses: text from logs made safe, tables, JSON output, a status
line."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Column, Table
from rich.text import Text

from loganalyzer.pages import BIDI, json_text

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|\x1b\[[0-9;?]*[ -/]*[@-~]")


def clean(value: object) -> str:
    """Text from a log made safe for a terminal: no control characters, ANSI escapes or
    bidirectional controls (``pages.BIDI``)."""
    if value is None:
        return ""
    return BIDI.sub(
        "\N{REPLACEMENT CHARACTER}", _CONTROL.sub("\N{REPLACEMENT CHARACTER}", str(value))
    )


def safe(value: object) -> str:
    """``clean(value)`` for text rich reads as markup (a plain string in a table cell, or in a
    line printed with markup on): its square brackets escaped, so that a log value cannot add
    styles or links ("[link=...]") or break the line ("[/b]" closes no tag)."""
    return escape(clean(value))


def table(*columns: str | Column, **options) -> Table:
    """A table as wide as the console, bold headings, whose cells are never cut: a value longer
    than its column folds onto the next line. Rich's default ends it with "…", and an address,
    IP, host name, ID or path cut short is useless. ``options`` go to ``Table``."""
    t = Table(*columns, **{"header_style": "bold", "expand": True, **options})
    for c in t.columns:
        c.overflow = "fold"
    return t


def fields(rows: Iterable[tuple[str, object]]) -> Table:
    """Labelled values, one a line (a message's head), those without a value left out; the
    values cleaned and folded like ``table``'s cells."""
    t = Table.grid(padding=(0, 2))
    t.add_column(style="bold")
    t.add_column(overflow="fold")
    for label, value in rows:
        if value:
            t.add_row(label, Text(clean(value)))
    return t


def print_values(text: str) -> None:
    """Text of log values (CSV) on stdout: exactly as stored when redirected to a file or a
    pipe, with control characters and escapes replaced on a terminal (a value could retitle,
    clear or recolour it). Click strips only some escapes when not on a terminal: never here."""
    typer.echo(text if not sys.stdout.isatty() else clean(text), nl=False, color=True)


def print_json(data: object) -> None:
    """Data as indented JSON on stdout (values JSON does not know as their text)."""
    typer.echo(json_text(data, default=str))


def status(console: Console, text: str, enabled: bool = True) -> AbstractContextManager:
    """A spinner with ``text`` on ``console`` while a slow step runs (nothing when not
    ``enabled``, as for JSON output)."""
    return console.status(text) if enabled else nullcontext()
