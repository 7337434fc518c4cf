"""Mail an IIS SMTP service sent on itself (its OutboundConnection lines), listed and traced
through the command: each recipient's verdict is the remote server's reply, with the
session's conversation; the inbound session that brought the message in stays a message of
its own (the outbound lines name no Message-ID)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from conftest import LOGANALYZER

CORPUS = Path(__file__).parent / "corpus" / "iis-smtp"


def _run(*args, code: int = 0) -> str:
    wide = {**os.environ, "COLUMNS": "400"}  # a verdict's words on one line of the table
    done = subprocess.run([LOGANALYZER, *map(str, args)], capture_output=True, text=True, env=wide)
    assert done.returncode == code, done.stderr
    return done.stdout


def _json(*args) -> dict:
    return json.loads(_run("trace", *args, "--json"))


def _store(tmp_path: Path, name: str, *options: str) -> Path:
    store = tmp_path / "store"
    _run("ingest", "--store", store, *options, CORPUS / name)
    return store


def test_a_message_aol_accepted_from_an_ncsa_log_is_sent_external_with_its_reply(tmp_path):
    store = _store(tmp_path, "ossec-docs-exchange2000-ncsa.log", "--tz", "America/Chicago")
    args = ("--recipient", "*@aol.com", "--since", "2006-10-01", "--store", store)
    found = _json(*args)
    [listed] = found["candidates"]
    assert listed["sender"] == "pbourque@meelift.com"
    assert listed["recipients"] == ["kbee923@aol.com"]
    assert [v["verdict"] for v in listed["verdicts"]] == ["sent_external"]
    [message] = found["messages"]
    [verdict] = message["recipients"]
    assert (verdict["address"], verdict["verdict"], verdict["status"]) == (
        "kbee923@aol.com",
        "sent_external",
        "250 OK",
    )
    assert "rly-yi06.mx.aol.com (205.188.158.121)" in verdict["summary"]
    [event] = message["events"]
    said = [(x["event"], x["data"]) for x in event["conversation"]]
    assert said[3:] == [
        (">", "MAIL FROM:<pbourque@meelift.com>"),
        ("<", "250 OK"),
        (">", "RCPT TO:<kbee923@aol.com>"),
        ("<", "250 OK"),
        (">", "DATA"),
        ("<", '354 START MAIL INPUT, END WITH "." ON A LINE BY ITSELF'),
        ("<", "250 OK"),
        (">", "QUIT"),
        ("<", "221 SERVICE CLOSING CHANNEL"),
    ]
    assert said[1] == (">", "EHLO mee-pdc.meelift.com")  # the session from its greeting on
    shown = _run("trace", *args)
    row = next(ln for ln in shown.splitlines() if "kbee923@aol.com" in ln)
    assert "sent external" in row and "250 OK" in row
    assert "> RCPT TO:<kbee923@aol.com>" in shown


def test_the_ncsa_list_shows_the_outbound_message_beside_the_inbound_ones(tmp_path):
    store = _store(tmp_path, "ossec-docs-exchange2000-ncsa.log", "--tz", "America/Chicago")
    listed = _json("--since", "2006-10-01", "--store", store)["candidates"]
    got = [(c["sender"], [v["verdict"] for v in c["verdicts"]]) for c in listed]
    assert got == [
        ("penwine@1stallied.com", ["last_seen"]),
        ("Keith@boardermail.com", ["last_seen"] * 6),
        ("sshambeau@meelift.com", ["last_seen"]),
        ("pbourque@meelift.com", ["sent_external"]),
    ]
    table = _run("trace", "--since", "2006-10-01", "--store", store)
    row = next(ln for ln in table.splitlines() if ln.startswith("│ 4 "))
    assert "pbourque@meelift.com" in row and "sent external" in row


def test_yahoos_421_at_mail_defers_the_message_with_the_reply_explained(tmp_path):
    store = _store(tmp_path, "lichty-2017-open-relay-yahoo-421-deferral.log", "-f", "iis-smtp")
    args = ("--sender", "MillionairesBlueprint@earthlink.com", "--since", "2017-01-01")
    found = _json(*args, "--store", store)
    [listed] = found["candidates"]
    assert listed["recipients"] == []  # Yahoo answered MAIL: no RCPT was sent
    assert [v["verdict"] for v in listed["verdicts"]] == ["deferred"]
    [message] = found["messages"]
    assert message["sender"] == "MillionairesBlueprint@earthlink.com"
    [verdict] = message["recipients"]
    assert verdict["verdict"] == "deferred" and verdict["stage"] == "mail"
    assert verdict["status"].startswith("421 4.7.0 [TSS04] Messages from 192.223.13.201")
    assert verdict["enhanced_status"] == "4.7.0"
    assert verdict["status_meaning"].startswith("Temporary failure")
    assert [x["data"] for x in message["events"][0]["conversation"]] == [
        "MAIL FROM:<MillionairesBlueprint@earthlink.com> SIZE=1722",
        verdict["status"],
    ]
    shown = _run("trace", *args, "--store", store)
    assert "still deferred at VSERVER14541" in shown
    assert "66.196.118.34 answered the MAIL command" in shown
    assert "temporarily deferred due to user complaints" in shown


_HEAD = """\
#Software: Microsoft Internet Information Services 6.0
#Version: 1.0
#Date: 2026-03-06 09:00:00
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method \
cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version
"""
_IN = "{t} 10.0.0.50 app01 SMTPSVC1 RELAY02 10.0.0.251 25 {verb} - {arg} 250 0 50 30 0 SMTP"
_OUT = "{t} {ip} OutboundConnection{who} SMTPSVC1 RELAY02 - 25 {verb} - {arg} 0 0 50 0 0 SMTP"


def _out(t: str, ip: str, talk: list[tuple[str, str]]) -> list[str]:
    """An outbound session: (verb, argument) of our commands, ("-", reply) of the remote's."""
    return [
        _OUT.format(t=t, ip=ip, who="Response" if v == "-" else "Command", verb=v, arg=a)
        for v, a in talk
    ]


_LOG = _HEAD + "\n".join(
    [
        _IN.format(t="2026-03-06 09:00:01", verb=v, arg=a)
        for v, a in [
            ("EHLO", "+app01"),
            ("MAIL", "+FROM:<app@contoso.com>"),
            ("RCPT", "+TO:<ann@fabrikam.com>"),
            ("RCPT", "+TO:<bob@fabrikam.com>"),
            ("DATA", "+<out-1@app01.contoso.com>"),
            ("QUIT", "app01"),
        ]
    ]
    + _out(
        "2026-03-06 09:02:00",
        "93.184.216.34",
        [
            ("-", "220+mx.fabrikam.com+ESMTP"),
            ("EHLO", "relay02.contoso.com"),
            ("-", "250+mx.fabrikam.com+Hello"),
            ("MAIL", "FROM:<app@contoso.com>+SIZE=2000"),
            ("-", "250+2.1.0+Sender+OK"),
            ("RCPT", "TO:<ann@fabrikam.com>"),
            ("-", "250+2.1.5+Recipient+OK"),
            ("RCPT", "TO:<bob@fabrikam.com>"),
            ("-", "550+5.1.1+User+unknown"),
            ("DATA", "<RELAY02abc0000001@relay02.contoso.com>"),
            ("-", "354+Start+mail+input"),
            ("-", "250+2.0.0+Queued+as+ABC123"),
            ("QUIT", "-"),
            ("-", "221+Bye"),
        ],
    )
    + _out(
        "2026-03-06 09:03:00",
        "10.0.0.25",
        [
            ("-", "220+ex01.contoso.com+ESMTP"),
            ("MAIL", "FROM:<app@contoso.com>"),
            ("-", "250+OK"),
            ("RCPT", "TO:<carol@contoso.com>"),
            ("-", "250+OK"),
            ("DATA", "<RELAY02abc0000002@relay02.contoso.com>"),
            ("-", "354+Go+ahead"),
            ("-", "250+2.6.0+Queued"),
            ("QUIT", "-"),
            ("-", "221+Bye"),
        ],
    )
    + _out(  # the log ends before the remote answered the data
        "2026-03-06 09:04:00",
        "93.184.216.35",
        [
            ("MAIL", "FROM:<app@contoso.com>"),
            ("-", "250+OK"),
            ("RCPT", "TO:<dan@fabrikam.com>"),
            ("-", "250+OK"),
            ("DATA", "-"),
        ],
    )
)


def _w3c_store(tmp_path: Path) -> Path:
    logs = tmp_path / "logs" / "SMTPSVC1"
    logs.mkdir(parents=True)
    (logs / "ex260306.log").write_text(_LOG + "\n", "utf-8")
    _run("ingest", tmp_path / "logs", "--store", tmp_path / "store")
    return tmp_path / "store"


def test_inbound_and_outbound_sessions_of_one_message_are_two_messages(tmp_path):
    store = _w3c_store(tmp_path)
    listed = _json("--sender", "app@contoso.com", "--store", store)["candidates"]
    got = [
        (c["message_id"], [(v["recipient"], v["verdict"]) for v in c["verdicts"]]) for c in listed
    ]
    assert got == [
        (
            "<out-1@app01.contoso.com>",
            [("ann@fabrikam.com", "last_seen"), ("bob@fabrikam.com", "last_seen")],
        ),
        (None, [("ann@fabrikam.com", "sent_external"), ("bob@fabrikam.com", "failed")]),
        (None, [("carol@contoso.com", "last_seen")]),  # to a private address: in-house
        (None, [("dan@fabrikam.com", "last_seen")]),  # offered, no answer logged
    ]


def test_each_outbound_recipient_has_the_remotes_reply(tmp_path):
    store = _w3c_store(tmp_path)
    [message] = _json("--recipient", "bob@*", "--since", "2026-03-06T09:01", "--store", store)[
        "messages"
    ]
    by = {v["address"]: v for v in message["recipients"]}
    assert by["bob@fabrikam.com"]["status"] == "550 5.1.1 User unknown"
    assert by["bob@fabrikam.com"]["stage"] == "rcpt"
    assert by["ann@fabrikam.com"]["status"] == "250 2.0.0 Queued as ABC123"
    [carol] = _json("--recipient", "carol@*", "--store", store)["messages"][0]["recipients"]
    assert carol["verdict"] == "last_seen"
    assert "handed to ex01.contoso.com (10.0.0.25)" in carol["summary"]
    [dan] = _json("--recipient", "dan@*", "--store", store)["messages"][0]["recipients"]
    assert (
        "offered to 93.184.216.35, whose answer to the message's data is not logged"
        in (dan["summary"])
    )
    shown = _run("trace", "--recipient", "bob@*", "--since", "2026-03-06T09:01", "--store", store)
    assert "failed at RELAY02" in shown and "550 5.1.1 User unknown" in shown
