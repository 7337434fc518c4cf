"""Each damaged-line rule of each format, with a line that breaks it: that line (and only it) is
quarantined with its reason; the good lines around it are rows. And `ingest`'s exit code, as
scripts see it from the installed command."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import LOGANALYZER
from logfiles import header, line, row
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.formats import exchange2003, exchange_smtp_protocol, iis_smtp
from loganalyzer.ingest import ingest


def loganalyzer(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)


def _tracking(bad: dict | str) -> tuple[str, str, int]:
    """(file name, text, line number of the bad line): two good rows, the bad one, a good one."""
    bad_line = bad if isinstance(bad, str) else line(row(2, **bad))
    body = line(row(0)) + line(row(1)) + bad_line + line(row(3))
    return "EX01/MSGTRK2026030210-1.LOG", header() + body, 8


def _fields(sample: str, sep: str, index: int, value: str | None) -> str:
    """The last data line of ``sample`` with field ``index`` set (None: removed)."""
    fields = sample.rstrip("\r\n").splitlines()[-1].split(sep)
    if value is None:
        del fields[index]
    else:
        fields[index] = value
    return sep.join(fields)


def _ex2003(index: int, value: str | None) -> tuple[str, str, int]:
    lines = exchange2003.FORMAT.sample.splitlines()  # 3 header lines, 1 data line of 21 fields
    bad = _fields(exchange2003.FORMAT.sample, "\t", index, value)
    if value is None:  # 20 fields are accepted too (no trailing "-"): 19
        bad = _fields(bad, "\t", index, None)
    text = "\r\n".join([*lines, bad, lines[-1], ""])
    return "PACKRAT.log/20030812.log", text, 5


def _smtp(index: int, value: str) -> tuple[str, str, int]:
    lines = exchange_smtp_protocol.FORMAT.sample.splitlines()  # 5 header lines, 3 data lines
    text = "\r\n".join(
        [*lines, _fields(exchange_smtp_protocol.FORMAT.sample, ",", index, value), ""]
    )
    return "EX01/ProtocolLog/SmtpReceive/RECV2020040207-1.LOG", text, 9


def _iis(index: int, value: str) -> tuple[str, str, int]:
    lines = iis_smtp.FORMAT.sample.splitlines()  # 4 header lines, 3 data lines
    text = "\r\n".join([*lines, _fields(iis_smtp.FORMAT.sample, " ", index, value), ""])
    return "MAIL01/SMTPSVC1/ex061009.log", text, 8


CASES = {
    "tracking: bad date-time": (_tracking({"date_time": "2026-03-02T10:61:00.000Z"}), 3),
    "tracking: no date-time": (_tracking({"date_time": ""}), 3),
    "tracking: bad total-bytes": (_tracking({"total_bytes": "7k"}), 3),
    "tracking: bad recipient-count": (_tracking({"recipient_count": "two"}), 3),
    "tracking: recipient-count past 2^31": (_tracking({"recipient_count": "5000000000"}), 3),
    "tracking: wrong field count": (_tracking(line(row(2)).replace(",Email,", ",Email,x,")), 3),
    "2003: bad date/time": (_ex2003(0, "2003-13-12"), 2),
    "2003: bad event-id": (_ex2003(8, "10x9"), 2),
    "2003: bad total-bytes": (_ex2003(12, "4 KB"), 2),
    "2003: bad number-recipients": (_ex2003(13, "one"), 2),
    "2003: number-recipients past 2^31": (_ex2003(13, "5000000000"), 2),
    "2003: wrong field count": (_ex2003(3, None), 2),
    "smtp: bad date-time": (_smtp(0, "2020-04-02T07:57:61.000Z"), 3),
    "smtp: no date-time": (_smtp(0, ""), 3),
    "smtp: bad sequence-number": (_smtp(3, "three"), 3),
    "iis: bad date/time": (_iis(1, "05:61:19"), 3),
    "iis: bad server port": (_iis(7, "smtp"), 3),
    "iis: bad status": (_iis(11, "2x0"), 3),
}
REASONS = {
    "tracking: wrong field count": "wrong field count: expected 30, found 31",
    "2003: wrong field count": "wrong field count: expected 20, found 19",
    "tracking: recipient-count past 2^31": "bad recipient-count",
    "2003: number-recipients past 2^31": "bad number-recipients",
}


@pytest.mark.parametrize("case", list(CASES))
def test_each_rule_quarantines_the_line_that_breaks_it(tmp_path, store_dir, case):
    (name, text, bad_line), good = CASES[case]
    path = tmp_path / name
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("utf-8"))
    summary = ingest([path], store_dir, final=True)
    reason = REASONS.get(case, case.split(": ", 1)[1])
    table = "smtp" if case.split(":")[0] in ("smtp", "iis") else "tracking"
    assert [(q["line"], q["reason"]) for q in quarantine_of(store_dir)] == [(bad_line, reason)]
    assert len(rows_of(store_dir, table)) == good
    assert bad_line not in {r["line"] for r in rows_of(store_dir, table)}
    assert summary.quarantined == 1 and summary.exit_code == 0


def test_ingest_exit_codes_through_the_command(tmp_path):
    """0 when every file was read; 1 when one could not be (the others still are); 2 for a
    wrong option value, with one line saying so."""
    logs = tmp_path / "logs"
    (logs / "EX01").mkdir(parents=True)
    (logs / "EX01" / "MSGTRK2026030210-1.LOG").write_text(header() + line(row(0)) + line(row(1)))
    store = tmp_path / "store"
    ok = loganalyzer("ingest", logs, "--store", store, "--json")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["rows"] == 2
    (logs / "EX02").mkdir()
    (logs / "EX02" / "MSGTRK2026030211.zip").write_bytes(b"PK\x03\x04 not really a zip")
    (logs / "EX01" / "MSGTRK2026030211-1.LOG").write_text(header() + line(row(5)))
    broken = loganalyzer("ingest", logs, "--store", store, "--json")
    assert broken.returncode == 1, broken.stderr
    summary = json.loads(broken.stdout)
    assert summary["rows"] == 1 and summary["files"]["errors"] == 1
    [bad] = [d for d in summary["details"] if d["status"] == "error"]
    assert bad["path"].endswith("MSGTRK2026030211.zip") and "could not read" in bad["reason"]
    wrong = loganalyzer("ingest", logs, "--store", store, "--format", "no-such-format")
    assert wrong.returncode == 2 and "no-such-format" in wrong.stderr
    assert "Traceback" not in wrong.stderr


def test_a_recipient_count_past_2_31_quarantines_one_line_through_the_command(tmp_path):
    """Once the whole file failed (Arrow's cast to int32 raised); now only its line is out."""
    name, text, _ = _tracking({"recipient_count": "5000000000"})
    path = tmp_path / "logs" / name
    path.parent.mkdir(parents=True)
    path.write_bytes(text.encode("utf-8"))
    done = loganalyzer("ingest", tmp_path / "logs", "--store", tmp_path / "store", "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows"], summary["quarantined"]) == (3, 1)
