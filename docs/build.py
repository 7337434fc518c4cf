"""Write the generated reference pages: the CLI from ``--help``, the store's columns from the
schema, the codes from ``eventcodes``. Run after changing any of them; a test checks that the
pages are current.

    python docs/build.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
import typer

import eventcodes
from loganalyzer import schema as schema_module
from loganalyzer.cli import app
from loganalyzer.schema import Flag, table_columns, tables

DOCS = Path(__file__).resolve().parent


def _commands(group, prefix: str) -> list[tuple[str, click.Command]]:
    out = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        out.append((f"{prefix} {name}", cmd))
        if getattr(cmd, "commands", None):  # a group (typer may bring its own click)
            out += _commands(cmd, f"{prefix} {name}")
    return out


def cli_page() -> str:
    root = typer.main.get_command(app)
    parts = ["# Command reference\n", "Generated from `--help` by `docs/build.py`.\n"]
    for path, cmd in [("loganalyzer", root), *_commands(root, "loganalyzer")]:
        with click.Context(cmd, info_name=path, terminal_width=100, max_content_width=100) as ctx:
            text = cmd.get_help(ctx)
        parts.append(f"## `{path}`\n\n```\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


#: How each storage flag reads in the page.
_FLAG_WORDS = {
    Flag.DICTIONARY: "dictionary",
    Flag.STATISTICS: "statistics",
    Flag.BLOOM: "Bloom filter",
    Flag.CATEGORY: "category",
}


def fields_page() -> str:
    parts = [
        "# Store columns\n",
        "Generated from `loganalyzer/schema.py` by `docs/build.py`. *Stored*: how a column is "
        "written and read: *dictionary* (dictionary-encoded in Parquet), *statistics* "
        "(min/max per row group, for filters), *Bloom filter* (per row group, for lookups by "
        "equality), *category* (a pandas category in DataFrames).\n",
    ]
    for title in tables():
        schema = getattr(schema_module, title.upper())
        parts.append(f"## `{title}`\n\n| column | type | stored | description |\n|---|---|---|---|")
        for column in table_columns(title):
            words = ", ".join(w for f, w in _FLAG_WORDS.items() if f in column.flags)
            kind = schema.field(column.name).type
            parts.append(f"| `{column.name}` | {kind} | {words} | {column.description} |")
        parts.append("")
    return "\n".join(parts)


def codes_page() -> str:
    parts = ["# Codes\n", "Generated from `eventcodes/data/*.csv` by `docs/build.py`.\n"]
    for family in eventcodes.FAMILIES:
        parts.append(
            f"## {family}\n\n| code | name | meaning | outcome | confidence |\n"
            "|---|---|---|---|---|"
        )
        for c in eventcodes.entries(family):
            cells = (c.code, c.name, c.meaning, c.outcome, c.confidence)
            parts.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        parts.append("")
    return "\n".join(parts)


PAGES = {"cli.md": cli_page, "fields.md": fields_page, "codes.md": codes_page}


if __name__ == "__main__":
    for name, build in PAGES.items():
        (DOCS / name).write_text(build(), encoding="utf-8")
        print(f"wrote docs/{name}", file=sys.stderr)
