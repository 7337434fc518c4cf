"""Steps of one recipient at the same instant: the verdict follows ``fate``'s rule (a status
that may still change before one that cannot; a failure over a delivery), never the order
in which the files were ingested or their lines came."""

from __future__ import annotations

import csv
import io
import json
import subprocess

import duckdb
import pytest
from conftest import LOGANALYZER

from loganalyzer import fate

COLUMNS = ["Organization", "MessageId", "Received", "SenderAddress", "RecipientAddress",
           "Subject", "Status", "ToIP", "FromIP", "Size", "MessageTraceId", "StartDate",
           "EndDate", "Index"]  # fmt: skip
#: Message: (status of the first export, of the second, the verdict).
PAIRS = {
    "<P1@x>": ("Delivered", "Pending", "delivered"),
    "<G1@x>": ("GettingStatus", "Delivered", "delivered"),
    "<F1@x>": ("Failed", "Delivered", "failed"),
    "<Q1@x>": ("Quarantined", "Delivered", "delivered"),  # released
}


def _export(which: int) -> str:
    """One Get-MessageTrace export (Export-Csv: every field quoted, CRLF): every message of
    ``PAIRS`` with its status in that export, at the time the message arrived."""
    buf = io.StringIO()
    out = csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    out.writerow(COLUMNS)
    for i, (mid, statuses) in enumerate(PAIRS.items()):
        out.writerow(["contoso.onmicrosoft.com", mid, "2026-03-02T10:00:00.123Z",
                      "alice@contoso.com", "dave@fabrikam.com", "S", statuses[which], "",
                      "203.0.113.5", "10", f"99999999-0000-0000-0000-00000000000{i}",
                      "2026-03-01T00:00:00Z", "2026-03-03T00:00:00Z", str(i)])  # fmt: skip
    return buf.getvalue()


def _run(*args: str) -> subprocess.CompletedProcess:
    done = subprocess.run([LOGANALYZER, *args], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    return done


@pytest.fixture(scope="module", params=["in order", "reversed"])
def store(request, tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("ties")
    files = []
    for which in (0, 1):
        path = tmp / f"export{which}.csv"
        # the second a re-export in UTF-16, as PowerShell 5's Export-Csv writes it
        path.write_bytes(
            _export(0).encode() if which == 0 else b"\xff\xfe" + _export(1).encode("utf-16-le")
        )
        files.append(path)
    if request.param == "reversed":
        files.reverse()
    for path in files:
        _run("ingest", str(path), "--store", str(tmp / "store"))
    return str(tmp / "store")


def test_a_final_status_outranks_a_transient_one_at_the_same_time(store):
    listed = json.loads(
        _run("trace", "--since", "2026-03-01", "--all", "--store", store, "--json").stdout
    )
    traced = {m["message_id"]: m["recipients"][0] for m in listed["messages"]}
    candidates = {c["message_id"]: c["verdicts"][0]["verdict"] for c in listed["candidates"]}
    want = {mid: verdict for mid, (_, _, verdict) in PAIRS.items()}
    assert {mid: v["verdict"] for mid, v in traced.items()} == want
    assert candidates == want  # the list's verdicts (SQL) read the same rule
    assert "still deferred" not in traced["<P1@x>"]["summary"]
    assert traced["<F1@x>"]["summary"].endswith(
        "; another record of the same time says delivered (failed outranks it)"
    )
    assert "another record" not in traced["<P1@x>"]["summary"]  # Pending is no record to note
    shown = _run("trace", "<P1@x>", "--store", store).stdout
    assert "delivered to a mailbox on EXCHANGE-ONLINE" in shown and "deferred" not in shown


def test_the_report_counts_by_the_same_rule(store):
    report = _run("report", "daily", "--store", store, "--date", "2026-03-02", "--json")
    headline = json.loads(report.stdout)["headline"]
    assert headline["still_deferred_recipients"] == 0


def test_step_rank_in_sql_is_step_rank():
    pairs = [(k, v) for k in fate.RANK for v in (*fate.SETTLES, "other")]
    sql = fate.step_rank_sql("k", "v")
    values = ", ".join(f"('{k}', '{v}')" for k, v in pairs)
    got = duckdb.connect().sql(f"select {sql} from (values {values}) t(k, v)").fetchall()
    assert [r for (r,) in got] == [fate.step_rank(k, v) for k, v in pairs]
    assert fate.step_rank("final", "deferred") > fate.step_rank("pass", "last_seen")
    assert max(fate.step_rank(k, v) for k, v in pairs if k != "ignored") < 8  # query.py's * 8
