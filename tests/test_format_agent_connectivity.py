"""Exchange anti-spam agent logs and transport connectivity logs: the documented examples
(FORMATS.md L.7 and M.5) and the real sample field for field, detection, incremental reads."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import CORPUS, LOGANALYZER, ROOT
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.formats import NotALog, detect
from loganalyzer.ingest import ingest

GOLDEN = ROOT / "tests" / "golden"
AGENT_EXAMPLE = GOLDEN / "exchange-agent" / "formats-md-L7-examples.LOG"
CONNECTIVITY_EXAMPLE = GOLDEN / "exchange-connectivity" / "formats-md-M5-example.LOG"
REAL_AGENT = CORPUS / "agent-log" / "qazeer-AgentLog20220913-1.LOG"


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def by_line(store: Path, table: str) -> dict[int, dict]:
    return {r["line"]: r for r in rows_of(store, table)}


def test_agent_examples_ingest_field_for_field(tmp_path):
    log = tmp_path / "EX01" / "AgentLog20260302-1.LOG"
    log.parent.mkdir()
    log.write_bytes(AGENT_EXAMPLE.read_bytes())
    summary = ingest([log], tmp_path / "store")
    assert summary.files[0].format == "exchange-agent" and summary.exit_code == 0
    rows = by_line(tmp_path / "store", "agent")
    assert sorted(rows) == [6, 7, 8, 9] and quarantine_of(tmp_path / "store") == []
    first = rows[6]
    assert first == {
        "date_time": at("2026-03-02T08:15:02.114Z"),
        "server": "EX01",
        "log_format": "exchange-agent",
        "session_id": "08DE5A1B2C3D4E5F",
        "local_ip": "192.0.2.10",
        "local_port": 25,
        "remote_ip": "203.0.113.5",
        "remote_port": 51234,
        "entered_org_from_ip": "203.0.113.5",
        "message_id": None,
        "p1_from_address": "bulk@bad.example",
        "p2_from_addresses": [],
        "recipient_address": ["alice@contoso.com"],
        "num_recipients": 1,
        "agent": "Connection Filtering Agent",
        "event": "OnRcptCommand",
        "action": "RejectCommand",
        "smtp_response": "550 5.7.1 Recipient not authorized, your IP has been found on a "
        "block list",
        "reason": "BlockListProvider",
        "reason_data": "ExampleRBL",
        "diagnostics": None,
        "network_message_id": None,
        "tenant_id": None,
        "directionality": "Incoming",
        "file": str(log),
        "line": 6,
    }
    assert (rows[7]["agent"], rows[7]["reason"], rows[7]["smtp_response"]) == (
        "Recipient Filter Agent",
        "RecipientDoesNotExist",
        "550 5.1.1 User unknown",
    )
    spam = rows[8]
    assert spam["message_id"] == "<a1b2@bad.example>"
    assert spam["p2_from_addresses"] == ["promo@bad.example"]
    assert spam["recipient_address"] == ["alice@contoso.com", "bob@contoso.com"]
    assert (spam["num_recipients"], spam["reason"], spam["reason_data"]) == (
        2,
        "SclAtOrAboveRejectThreshold",
        "9",
    )
    assert spam["diagnostics"] == "<filter diagnostics>"
    assert spam["network_message_id"] == "6f1c2b9e-8a7d-4e21-9c3b-08de5a1b2c3d"
    assert (rows[9]["agent"], rows[9]["event"], rows[9]["reason"], rows[9]["reason_data"]) == (
        "Sender Id Agent",
        "OnEndOfHeaders",
        "Fail_NotPermitted",
        "ceo@contoso.com",
    )


def test_real_agent_log_ingests_field_for_field(tmp_path):
    summary = ingest([REAL_AGENT], tmp_path / "store", server="EX16")
    assert summary.files[0].format == "exchange-agent"
    rows = by_line(tmp_path / "store", "agent")
    assert sorted(rows) == [6, 7]
    r = rows[6]
    assert (r["date_time"], r["session_id"], r["local_ip"], r["local_port"]) == (
        at("2022-09-13T14:38:59.177Z"),
        "1234DADADA795F2",
        "10.10.10.10",
        None,  # the sanitised LocalEndpoint has no port
    )
    assert (r["remote_ip"], r["remote_port"], r["entered_org_from_ip"]) == (
        "95.11.22.33",
        46904,
        "95.11.22.33",
    )
    assert (r["p1_from_address"], r["p2_from_addresses"], r["recipient_address"]) == (
        "user.name@domain.com",
        ["user.name@domain.com"],
        ["user.name2@domain2.com"],
    )
    assert (r["agent"], r["event"], r["action"]) == (
        "Inbound Trust Agent",
        "OnEndOfHeaders",
        "ModifyHeaders",
    )
    assert (r["smtp_response"], r["reason"], r["reason_data"], r["message_id"]) == (None,) * 4
    assert (r["diagnostics"], r["network_message_id"], r["directionality"]) == (
        "Cross premises headers filtered",
        "12345678-3232-2323-1111-12345679987",
        "Incoming",
    )
    assert rows[7]["network_message_id"] == "12345678-3232-2323-1111-98765465465"


def test_connectivity_example_ingests_field_for_field(tmp_path):
    store = tmp_path / "store"
    summary = ingest([CONNECTIVITY_EXAMPLE], store, server="EX01")
    assert summary.files[0].format == "exchange-connectivity" and summary.exit_code == 0
    rows = by_line(store, "connectivity")
    assert sorted(rows) == list(range(6, 14))
    got = [
        (
            r["session_id"],
            r["source"],
            r["destination"],
            r["direction"],
            r["remote_ip"],
            r["remote_port"],
            r["error"],
        )
        for _, r in sorted(rows.items())
    ]
    s70, s71 = "08DE5A1B2C3D4E70", "08DE5A1B2C3D4E71"
    assert got == [
        (None, "Transport", None, "*", None, None, None),
        (s70, "SMTP", "fabrikam.com", "+", None, None, None),
        (s70, "SMTP", "fabrikam.com", ">", None, None, None),
        (s70, "SMTP", "fabrikam.com", ">", "203.0.113.5", 25, "TimedOut"),
        (s70, "SMTP", "fabrikam.com", ">", "203.0.113.6", None, None),
        (s70, "SMTP", "fabrikam.com", "-", None, None, None),
        (s71, "SMTP", "nosuch.example", ">", None, None, "Non-existent domain"),
        (
            s71,
            "SMTP",
            "nosuch.example",
            "-",
            None,
            None,
            "The domain name does not exist. Please correct the address and try again.",
        ),
    ]
    assert [rows[n]["failure"] for n in range(6, 14)] == [None] * 3 + ["timeout"] + [None] * 2 + [
        "dns",
        "dns",
    ]
    assert rows[8]["description"] == (
        "mx1.fabrikam.com[203.0.113.5], mx2.fabrikam.com[203.0.113.6]"
    )
    assert rows[9]["date_time"] == at("2026-03-02T08:30:21.140Z")
    assert rows[6]["description"].startswith("service started; MaxConcurrentSubmissions=20;")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("#Software: Microsoft Exchange Server\n#Log-type: Agent Log\n", "exchange-agent"),
        (
            "#Software: Microsoft Exchange Server\n#Log-type: Transport Connectivity Log\n",
            "exchange-connectivity",
        ),
        ("#Log-Type: Transport Connectivity Log\n", "exchange-connectivity"),
        (
            "#Fields: date-time,session,source,Destination,direction,description\n",
            "exchange-connectivity",
        ),
        (
            "#Fields: Timestamp,SessionId,LocalEndpoint,RemoteEndpoint,EnteredOrgFromIP,"
            "MessageId,P1FromAddress,P2FromAddresses,Recipient,NumRecipients,Agent,Event,"
            "Action,SmtpResponse,Reason,ReasonData\n",
            "exchange-agent",
        ),
    ],
)
def test_detected_from_the_header(header, expected):
    _, found = detect(header.encode() + b"2026-03-02T08:15:02.114Z,x\n", "x.LOG")
    assert found.format == expected


def test_other_log_kinds_are_still_refused_by_name():
    with pytest.raises(NotALog, match="routing table log: not a supported log kind"):
        detect(b"#Software: Microsoft Exchange Server\n#Log-type: Routing Table Log\n", "x")


def test_server_is_the_folder_above_the_agent_log_folder(tmp_path):
    log = tmp_path / "EX07" / "TransportRoles" / "Logs" / "FrontEnd" / "AgentLog" / "a.LOG"
    log.parent.mkdir(parents=True)
    log.write_bytes(AGENT_EXAMPLE.read_bytes())
    ingest([log], tmp_path / "store")
    assert {r["server"] for r in rows_of(tmp_path / "store", "agent")} == {"EX07"}


def test_grown_agent_log_is_read_on(tmp_path):
    lines = AGENT_EXAMPLE.read_bytes().splitlines(keepends=True)
    log = tmp_path / "EX01" / "AgentLog20260302-1.LOG"
    log.parent.mkdir()
    log.write_bytes(b"".join(lines[:7]))
    store = tmp_path / "store"
    ingest([log], store)
    assert sorted(by_line(store, "agent")) == [6, 7]
    log.write_bytes(b"".join(lines))
    summary = ingest([log], store)
    assert summary.files[0].status == "grown"
    assert sorted(by_line(store, "agent")) == [6, 7, 8, 9]


def test_cli_ingests_both_and_sql_reads_them(tmp_path):
    folder = tmp_path / "logs" / "EX01"
    folder.mkdir(parents=True)
    (folder / "AgentLog20260302-1.LOG").write_bytes(AGENT_EXAMPLE.read_bytes())
    (folder / "CONNECTLOG20260302-1.LOG").write_bytes(CONNECTIVITY_EXAMPLE.read_bytes())
    store = tmp_path / "store"
    done = subprocess.run(
        [LOGANALYZER, "ingest", str(tmp_path / "logs"), "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "2 files ingested" in done.stderr + done.stdout
    query = (
        "select (select count(*) from agent) as agent_rows, "
        "(select string_agg(error, '|' order by line) from connectivity) as errors"
    )
    done = subprocess.run(
        [LOGANALYZER, "sql", "--store", str(store), "--json", query],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {
            "agent_rows": 4,
            "errors": "TimedOut|Non-existent domain|The domain name does not exist. "
            "Please correct the address and try again.",
        }
    ]
    listing = subprocess.run(
        [LOGANALYZER, "formats", "--json"], capture_output=True, text=True, timeout=120
    ).stdout
    tables = {f["name"]: f["table"] for f in json.loads(listing)}
    assert (tables["exchange-agent"], tables["exchange-connectivity"]) == ("agent", "connectivity")
