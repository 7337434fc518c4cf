"""Plain tables in the terminal: SQL results, code tables, the formats loganalyzer reads."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import pandas as pd
from rich.console import Console
from rich.table import Column

from eventcodes import Explanation
from loganalyzer.terminal.common import clean, safe, table


def print_frame(console: Console, df: pd.DataFrame, limit: int = 100) -> None:
    """A DataFrame as a table, log values cleaned; says how many rows were left out. No rows:
    one line naming the columns (a table of dozens of empty columns reads as nothing)."""
    if df.empty:
        names = ", ".join(clean(c) for c in df.columns)
        console.print(f"0 rows (columns: {names})", highlight=False, soft_wrap=True, markup=False)
        return
    t = table(*[safe(c) for c in df.columns])
    for row in df.head(limit).itertuples(index=False):
        t.add_row(*[safe("" if v is None or v is pd.NA else v) for v in row])
    console.print(t)
    if len(df) > limit:
        console.print(
            f"showing the first {limit:,} of {len(df):,} rows; --limit N, --csv or --json "
            "to see more",
            highlight=False,
        )


def print_codes(console: Console, explained: Sequence[Explanation]) -> None:
    """Code table entries, one a row, failures in red; then what each whole reply whose codes
    disagree is as a whole, and each explanation's notes."""
    t = table(
        Column("family", no_wrap=True),
        Column("code", no_wrap=True),
        Column("name", ratio=1),
        Column("meaning", ratio=3),
        Column("outcome", no_wrap=True),
    )
    for e in (e for x in explained for e in x.entries):
        style = "red" if e.is_failure else None
        t.add_row(e.family, e.code, e.name, e.meaning, e.outcome, style=style)
    console.print(t)
    for x in explained:
        if x.as_a_whole:
            console.print(
                f"{x.asked}: as a whole a {x.as_a_whole} (its reply code {x.reply_code} "
                "decides); each row above explains one of its codes",
                markup=False,
                highlight=False,
            )
        for note in x.notes:
            console.print(note, markup=False, highlight=False)


def print_formats(console: Console, rows: Iterable[dict], unsupported: Iterable[str]) -> None:
    """The formats (name, table, files, description) and the log kinds recognised but not read."""
    # the format's name is the exact value --format takes: on one line
    t = table(
        Column("format", no_wrap=True), "table", Column("files", ratio=1), Column("what", ratio=1)
    )
    for r in rows:
        t.add_row(r["name"], r["table"], r["files"], r["description"])
    console.print(t)
    console.print(f"Recognised but not read (yet): {', '.join(unsupported)}.", highlight=False)
