"""Fuzzing the parsers: valid rows with hostile values (hypothesis), and a short coverage-guided
run (atheris) on mutated real samples. The longer run: ``python tests/fuzz/fuzz_parsers.py``."""

from __future__ import annotations

import csv
import io
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORPUS
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent / "fuzz"))
from fuzz_parsers import check, parse_all  # noqa: E402

HOSTILE = st.one_of(
    st.text(
        st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n\x00"),
        min_size=1,
        max_size=60,
    ),
    st.sampled_from(
        [
            "<script>alert(1)</script>",
            '"><img src=x onerror=alert(1)>',
            "=cmd|' /C calc'!A0",
            "a,b;c{d}[e]",
            "\x1b[31mred\x1b[0m",
            "Grüße ✓ 😀",
            "\\",
            '"',
            "#Fields: x",
        ]
    ),
)


def _csv_line(values: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(values)
    return buf.getvalue()


def _replace_csv(text: str, field: str, value: str) -> tuple[str, int]:
    """The text with ``field`` of the first data line set to ``value``; that line's number."""
    lines = text.split("\n")
    names = None
    for i, ln in enumerate(lines):
        if ln.startswith("#Fields:"):
            names = ln[8:].strip().rstrip("\r").split(",")
        elif ln.strip() and not ln.startswith("#") and names:
            values = next(csv.reader([ln.rstrip("\r")]))
            values[names.index(field)] = value
            lines[i] = _csv_line(values) + ("\r" if ln.endswith("\r") else "")
            return "\n".join(lines), i + 1
    raise AssertionError("no data line")


def _replace_w3c(text: str, field: str, value: str) -> tuple[str, int]:
    lines = text.split("\n")
    names = None
    for i, ln in enumerate(lines):
        if ln.startswith("#Fields:"):
            names = ln[8:].split()
        elif ln.strip() and not ln.startswith("#") and names:
            values = ln.split(" ")
            values[names.index(field)] = value.replace(" ", "+").replace("\t", "+") or "-"
            lines[i] = " ".join(values)
            return "\n".join(lines), i + 1
    raise AssertionError("no data line")


def _replace_tsv(text: str, index: int, value: str) -> tuple[str, int]:
    values = text.rstrip("\n").split("\t")
    values[index] = value.replace("\t", " ")
    return "\t".join(values) + "\n", 1


def _replace_ndjson(text: str, key: str, value: str) -> tuple[str, int]:
    lines = text.split("\n")
    record = json.loads(lines[0])
    record[key] = value
    lines[0] = json.dumps(record)
    return "\n".join(lines), 1


CASES = {
    "exchange-tracking": (
        "exchange2007plus/kinesistap-ExchangeLogParserTest-msgtrk.log",
        lambda t, v: _replace_csv(t, "message-subject", v),
    ),
    "exchange-smtp-protocol": (
        "smtp-protocol/ipban-smtp_auth_successful.log",
        lambda t, v: _replace_csv(t, "data", v),
    ),
    "iis-smtp": (
        "iis-smtp/ossec-docs-exchange2000-w3c.log",
        lambda t, v: _replace_w3c(t, "cs-uri-query", v),
    ),
    "exchange2003-tracking": (
        "exchange2003/awstats-maillogconvert-example.log",
        lambda t, v: _replace_tsv(t, 18, v),
    ),
    "exo-message-trace": (
        "o365-trace/elastic-exo-message-trace-test-log.log",
        lambda t, v: _replace_ndjson(t, "Subject", v),
    ),
}


@pytest.mark.parametrize("fmt", list(CASES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=HOSTILE)
def test_valid_rows_with_hostile_values_stay_rows(fmt, value):
    sample, replace = CASES[fmt]
    path = CORPUS / sample
    text, changed = replace(path.read_text(encoding="utf-8-sig"), value)
    data = text.encode("utf-8")
    check(data, path.name)
    lines, bad = parse_all(data, path.name, fmt)
    before, _ = parse_all(path.read_bytes(), path.name, fmt)
    assert changed in lines and not bad, (changed, bad)
    assert sorted(lines) == sorted(before)


def test_short_coverage_guided_run(tmp_path):
    script = Path(__file__).parent / "fuzz" / "fuzz_parsers.py"
    proc = subprocess.run(
        [
            sys.executable,
            str(script),
            "-runs=800",
            "-max_len=20000",
            f"-artifact_prefix={tmp_path}/",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = re.search(r"Done (\d+) runs", proc.stderr)
    assert runs and int(runs[1]) >= 800
    assert not list(tmp_path.glob("crash-*"))
