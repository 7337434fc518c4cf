"""What `loganalyzer watch` prints: a round's notices, or its JSON, and the --once line."""

from __future__ import annotations

import datetime as dt
import json
from typing import TYPE_CHECKING

import typer

from loganalyzer.terminal.common import clean

if TYPE_CHECKING:
    from loganalyzer.watch import Check


def print_round(result: Check, as_json: bool = False) -> None:
    """One line per notice (or the round as one JSON line); errors on stderr."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
    if as_json:
        typer.echo(json.dumps(result.to_dict()))
    else:
        for n in result.resent:
            typer.echo(f"{stamp} {clean(n.line())} (not sent in an earlier round)")
        for n in result.notices:
            typer.echo(f"{stamp} {clean(n.line())}")  # its key and text come from logs
    for e in result.errors:
        typer.echo(f"{stamp} warning: {e}", err=True)


def print_once(result: Check, as_json: bool = False) -> None:
    """The monitoring plugin's one status line (or the JSON); errors on stderr."""
    for e in result.errors:
        typer.echo(f"warning: {e}", err=True)
    typer.echo(result.to_json() if as_json else clean(result.status_line()))
