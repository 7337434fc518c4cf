"""Writing query results for other programs: CSV safe for spreadsheets, and JSON."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, datetime

import pandas as pd

#: A cell starting with one of these is a formula to a spreadsheet (OWASP "CSV injection").
_FORMULA = ("=", "+", "-", "@", "\t", "\r", "\n")


def defuse(value: object) -> object:
    """Text that a spreadsheet would run as a formula, made inert with a leading quote."""
    if isinstance(value, str) and value.startswith(_FORMULA):
        return "'" + value
    return value


def _plain(value: object) -> object:
    if isinstance(value, datetime | date | pd.Timestamp):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):  # numpy arrays from list columns
        return _plain(value.tolist())
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if value is pd.NA or (isinstance(value, float) and value != value):
        return None
    return value


def records(df: pd.DataFrame) -> list[dict]:
    """Rows as plain JSON-ready dicts."""
    return [{k: _plain(v) for k, v in row.items()} for row in df.to_dict("records")]


def to_csv(df: pd.DataFrame) -> str:
    """CSV with every cell defused against formula injection; lists joined with ``;``."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(df.columns)
    for row in records(df):
        cells = [";".join(map(str, v)) if isinstance(v, list) else v for v in row.values()]
        writer.writerow([defuse("" if v is None else v) for v in cells])
    return buf.getvalue()


def to_json(df: pd.DataFrame) -> str:
    return json.dumps(records(df), indent=2, ensure_ascii=False, default=str)
