"""What every terminal renderer uses: text from logs made safe, JSON output, a status line."""

from __future__ import annotations

import re
import sys
from contextlib import AbstractContextManager, nullcontext

import typer
from rich.console import Console
from rich.markup import escape

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
