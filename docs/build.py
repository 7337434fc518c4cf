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
from loganalyzer.cli import app
from loganalyzer.schema import AGENT, CONNECTIVITY, MANIFEST, QUARANTINE, SMTP, TRACKING, describe

DOCS = Path(__file__).resolve().parent


def _commands(group: click.Group, prefix: str) -> list[tuple[str, click.Command]]:
    out = []
    for name in sorted(group.commands):
        cmd = group.commands[name]
        out.append((f"{prefix} {name}", cmd))
        if isinstance(cmd, click.Group):
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


def fields_page() -> str:
    parts = ["# Store columns\n", "Generated from `loganalyzer/schema.py` by `docs/build.py`.\n"]
    for title, schema in (
        ("tracking", TRACKING),
        ("smtp", SMTP),
        ("agent", AGENT),
        ("connectivity", CONNECTIVITY),
        ("quarantine", QUARANTINE),
        ("manifest", MANIFEST),
    ):
        parts.append(f"## `{title}`\n\n| column | type | description |\n|---|---|---|")
        for field, text in describe(schema).items():
            parts.append(f"| `{field}` | {schema.field(field).type} | {text} |")
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
