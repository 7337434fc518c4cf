"""The accepted domains a report infers (the domains of delivered recipients) come from the
whole store, not the period, and a client is called a relay only when they are given or
inferred from enough deliveries: a quiet day must not turn the organisation's own relay
into an open relay alarm."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import built_once, report_json, run_cli

DAY = "2026-03-03"
FIELDS = (
    "date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,"
    "connector-id,source,event-id,internal-message-id,message-id,network-message-id,"
    "recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,"
    "reference,message-subject,sender-address,return-path,message-info,directionality,"
    "tenant-id,original-client-ip,original-server-ip,custom-data,transport-traffic-type,"
    "log-id,schema-version"
)


def _tracking(day: str, recipients: list[str]) -> str:
    """A tracking log of ``day`` delivering one message to each of ``recipients``."""
    head = (
        "#Software: Microsoft Exchange Server\r\n#Version: 15.01.2507.035\r\n"
        f"#Log-type: Message Tracking Log\r\n#Date: {day}T08:00:00.000Z\r\n#Fields: {FIELDS}\r\n"
    )
    return head + "".join(
        f"{day}T08:00:{i:02d}.000Z,,,,EX01,,,STOREDRIVER,DELIVER,{i + 1},<m{i}.{day}@x>,,{r},,"
        "1000,1,,,s,a@outside.example,a@outside.example,,Incoming,,,,,Email,,15.01.2507.035\r\n"
        for i, r in enumerate(recipients)
    )


def _receive(day: str) -> str:
    """A Receive protocol log of ``day``: the organisation's relay, anonymous, submitting one
    message to fabrikam.com (an accepted domain the day's one delivery does not show)."""
    head = (
        "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
        f"#Log-type: SMTP Receive Protocol Log\r\n#Date: {day}T10:00:00.000Z\r\n"
        "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
        "remote-endpoint,event,data,context\r\n"
    )
    steps = [
        ("+", ""),
        ("<", "EHLO relay01.contoso.com"),
        ("<", "MAIL FROM:<app@contoso.com>"),
        (">", "250 2.1.0 Sender OK"),
        ("<", "RCPT TO:<y@fabrikam.com>"),
        (">", "250 2.1.5 Recipient OK"),
        (">", '"250 2.6.0 <r1@x> [InternalId=1, Hostname=ex01] Queued mail for delivery"'),
        ("-", ""),
    ]
    return head + "".join(
        f"{day}T10:00:0{i}.000Z,EX01\\Anonymous Relay EX01,08DE5C0000000001,{i},"
        f"10.0.0.1:25,10.0.0.250:50000,{e},{d},\r\n"
        for i, (e, d) in enumerate(steps)
    )


def _store(tmp_path: Path, busy_day_before: bool) -> Path:
    """The day's logs ingested, after the busy day before's when ``busy_day_before``."""
    logs = tmp_path / "logs" / "EX01"
    logs.mkdir(parents=True)
    if busy_day_before:  # 24 deliveries, to both of the organisation's domains
        rcpts = [f"u{i}@{'contoso.com' if i % 2 else 'fabrikam.com'}" for i in range(24)]
        (logs / "MSGTRK2026030208-1.LOG").write_text(_tracking("2026-03-02", rcpts))
    (logs / "MSGTRK2026030308-1.LOG").write_text(_tracking(DAY, ["u1@contoso.com"]))
    (logs / "RECV2026030310-1.LOG").write_text(_receive(DAY))
    store = tmp_path / "store"
    done = run_cli("ingest", str(tmp_path / "logs"), "--store", str(store))
    assert done.returncode == 0, done.stderr
    return store


@pytest.fixture(scope="module")
def busy_store(tmp_path_factory) -> Path:
    """The store with the busy day before, built once per run: read only."""
    folder = built_once(tmp_path_factory, "accepted-domains", lambda f: _store(f, True))
    return folder / "store"


@pytest.mark.parametrize("source", ["--from-rows", "--rollups"])
def test_a_quiet_day_infers_the_accepted_domains_of_the_whole_store(busy_store, source):
    store = busy_store
    data, _ = report_json(store, "--date", DAY, source)
    assert data["accepted_domains"] == ["contoso.com", "fabrikam.com"]
    assert data["accepted_domains_inferred"] and data["accepted_domains_delivered"] == 25
    assert not [a for a in data["attention"] if "relay" in a]
    (client,) = data["tables"]["smtp_clients"]
    assert client["remote_ip"] == "10.0.0.250" and client["relay_messages"] == 0
    # given, the domains decide: fabrikam.com left out makes the relay an open one, and the
    # line does not call them a guess
    data, _ = report_json(store, "--date", DAY, source, "--accepted-domain", "contoso.com")
    (line,) = [a for a in data["attention"] if "relay" in a]
    assert "10.0.0.250" in line and "inferred" not in line


def test_a_guess_from_few_deliveries_raises_no_relay_alarm(tmp_path):
    store = _store(tmp_path, busy_day_before=False)
    data, _ = report_json(store, "--date", DAY)
    assert data["accepted_domains"] == ["contoso.com"]
    assert data["accepted_domains_delivered"] == 1
    assert not [a for a in data["attention"] if "relay" in a]
    page = tmp_path / "r.html"
    done = run_cli("report", "daily", "--store", str(store), "--date", DAY, "--out", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    assert "relaying not judged: the accepted domains are a guess from 1 delivered" in html
    assert "inferred from 1 delivered recipient of the store" in html
