"""The result base: to_json, to_html and _repr_html_ once; plain values for JSON; layering."""

from __future__ import annotations

import ast
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loganalyzer.ingest import IngestSummary
from loganalyzer.result import Result, plain, records
from loganalyzer.store.compact import CompactSummary
from loganalyzer.times import iso
from loganalyzer.trace.model import Event, MessageTrace, TraceResult, Verdict

PACKAGE = Path(__file__).resolve().parents[1] / "loganalyzer"
T = dt.datetime(2026, 3, 2, 10, 0, 0, 123456, tzinfo=dt.UTC)


def _trace() -> TraceResult:
    verdict = Verdict("bob@contoso.com", "delivered", "EX01", T, "delivered on EX01")
    event = Event(T, "EX01", "DELIVER", "delivered", "STOREDRIVER", "delivered", *[None] * 4)
    message = MessageTrace("<a@b>", None, "Hi <b>there</b>", "al@contoso.com", T, 10, [event], [])
    message.recipients.append(verdict)
    return TraceResult({"text": "<a@b>", "kind": "message_id"}, [], [message])


def test_trace_json_page_and_fragment_come_from_the_base():
    r = _trace()
    assert isinstance(r, Result)
    assert r.to_json() == json.dumps(r.to_dict(), indent=2, ensure_ascii=False)
    assert json.loads(r.to_json(indent=None))["messages"][0]["received_at"] == (
        "2026-03-02T10:00:00.123Z"
    )
    page, fragment = r.to_html(), r._repr_html_()
    assert page.startswith("<!DOCTYPE html>") and "bob@contoso.com" in page
    assert fragment.lstrip().startswith("<style>") and "<html" not in fragment
    assert "Hi &lt;b&gt;there&lt;/b&gt;" in fragment and "<b>there" not in fragment


@pytest.mark.parametrize(
    "summary", [IngestSummary(store="st\u00f6re"), CompactSummary(store="st\u00f6re")]
)
def test_summaries_have_json_and_no_html(summary):
    assert summary.to_json() == json.dumps(summary.to_dict(), indent=2, ensure_ascii=False)
    assert '"store": "st\u00f6re"' in summary.to_json()
    assert summary._repr_html_() is None  # Jupyter then shows the plain repr
    with pytest.raises(NotImplementedError, match="has no HTML rendering"):
        summary.to_html()


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, None),
        (pd.NA, None),
        (pd.NaT, None),
        (float("nan"), None),
        (np.float64("nan"), None),
        (np.int64(7), 7),
        (np.bool_(True), True),
        (Decimal("12"), 12),
        (Decimal("1.5"), 1.5),
        (pd.Timestamp(T), "2026-03-02T10:00:00.123+00:00"),
        (dt.date(2026, 3, 2), "2026-03-02"),
        (np.array(["a", "b"], dtype=object), ["a", "b"]),
        ((np.int64(1), None), [1, None]),
        ({"k": np.int64(2)}, {"k": 2}),
        ("5.1.1", "5.1.1"),
    ],
)
def test_plain_values(value, expected):
    assert plain(value) == expected


def test_records_times_to_milliseconds_or_as_precise_as_they_are():
    df = pd.DataFrame({"t": [pd.Timestamp(T), pd.NaT], "n": pd.array([1, None], dtype="Int64")})
    assert records(df) == [
        {"t": "2026-03-02T10:00:00.123+00:00", "n": 1},
        {"t": None, "n": None},
    ]
    assert records(df, timespec="auto")[0]["t"] == "2026-03-02T10:00:00.123456+00:00"


def test_iso_is_utc_with_z_and_keeps_other_zones():
    assert iso(T) == "2026-03-02T10:00:00.123Z"
    assert iso(T.astimezone(dt.timezone(dt.timedelta(hours=1)))) == (
        "2026-03-02T11:00:00.123+01:00"
    )
    assert iso(None) is None


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
    return names


def test_only_the_cli_and_terminal_import_terminal():
    """terminal sits above the result packages: nothing below imports it, not even in a
    function."""
    offenders = [
        str(p.relative_to(PACKAGE))
        for p in PACKAGE.rglob("*.py")
        if p.name != "cli.py"
        and "terminal" not in p.relative_to(PACKAGE).parts
        and any(
            m == "loganalyzer.terminal" or m.startswith("loganalyzer.terminal.")
            for m in _imports(p)
        )
    ]
    assert offenders == []
    assert "loganalyzer.render" not in {m for p in PACKAGE.rglob("*.py") for m in _imports(p)}
