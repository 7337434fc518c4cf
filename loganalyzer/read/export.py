"""Writing query results for other programs: CSV safe for spreadsheets, and JSON."""

from __future__ import annotations

import csv
import io

import pandas as pd

from loganalyzer.pages import json_text
from loganalyzer.result import records

#: A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n")


def defuse(value: object) -> object:
    """Text that a spreadsheet would run as a formula, made inert with a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def to_csv(df: pd.DataFrame) -> str:
    """CSV with every cell defused against formula injection; lists joined with ``;``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(df.columns)
    for row in records(df, timespec="auto"):  # times as precise as they are
        cells = [";".join(map(str, v)) if isinstance(v, list) else v for v in row.values()]
        writer.writerow([defuse("" if v is None else v) for v in cells])
    return buf.getvalue()


def to_json(df: pd.DataFrame) -> str:
    """The rows as JSON; bytes (the manifest's lookup sketches) as hexadecimal text."""
    return json_text(records(df, timespec="auto"), default=_plain)


def _plain(value: object) -> str:
    return value.hex() if isinstance(value, bytes | bytearray | memoryview) else str(value)
