"""Golden files: ``tests/golden/<format>/<case>.<ext>`` beside ``<case>.expected.json``.

Each case is ingested with its folder's format named (so header-less cases work too); the rows
and quarantined lines must equal the expected JSON. Cases are named after the code or the edge
case they pin down. After a deliberate change, regenerate and review the diff:

    python tests/test_golden.py --regenerate
"""

from __future__ import annotations

import json
import sys
from datetime import datetime
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"


def cases() -> list[Path]:
    return sorted(
        p
        for p in GOLDEN.glob("*/*")
        if p.is_file() and not p.name.endswith(".json") and not p.name.startswith(".")
    )


def _plain(value):
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def result_of(case: Path, tmp: Path) -> dict:
    """Rows and quarantine of one case, without the machine-specific file path."""
    import pyarrow.dataset as ds

    from loganalyzer.ingest import ingest
    from loganalyzer.store import Store

    store = tmp / "store"
    summary = ingest([case], store, format=case.parent.name, final=True)
    out: dict = {"status": [f.status for f in summary.files]}
    for table in ("tracking", "smtp", "agent", "connectivity", "quarantine"):
        parts = [str(store / p) for p in Store(store).listed_parts(table)]
        rows = ds.dataset(parts, format="parquet").to_table().to_pylist() if parts else []
        rows = [
            {k: _plain(v) for k, v in r.items() if k != "file" and v not in (None, [])}
            for r in sorted(rows, key=lambda r: r["line"])
        ]
        if rows:
            out[table] = rows
    return out


def expected_path(case: Path) -> Path:
    return case.with_name(case.name.rsplit(".", 1)[0] + ".expected.json")


@pytest.mark.parametrize("case", cases(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_golden(case, tmp_path):
    expected = json.loads(expected_path(case).read_text(encoding="utf-8"))
    assert result_of(case, tmp_path) == expected


def regenerate() -> None:
    import tempfile

    for case in cases():
        with tempfile.TemporaryDirectory() as tmp:
            result = result_of(case, Path(tmp))
        expected_path(case).write_text(
            json.dumps(result, indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
        )
        print(f"wrote {expected_path(case).relative_to(GOLDEN)}")


if __name__ == "__main__" and "--regenerate" in sys.argv:
    regenerate()
