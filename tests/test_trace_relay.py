"""Traces through an IIS SMTP relay, checked against synth's truth.jsonl: the next hop the
relay handed a message to, and sessions of two messages logged among each other's lines."""

from __future__ import annotations

import json
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import LOGANALYZER

from loganalyzer.fate import host_name, server_name
from loganalyzer.synth import generate


def _run(*args) -> str:
    done = subprocess.run([LOGANALYZER, *map(str, args)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _store(root: Path, **kwargs) -> tuple[Path, dict[str, dict[str, dict]]]:
    """Logs from synth ingested by the command; the truth by message and recipient."""
    generate(root / "logs", servers=2, days=1, relay=True, **kwargs)
    _run("ingest", root / "logs", "--store", root / "store")
    truth: dict[str, dict[str, dict]] = defaultdict(dict)
    for line in (root / "logs" / "truth.jsonl").read_text("utf-8").splitlines():
        t = json.loads(line)
        truth[t["message_id"]][t["recipient"].lower()] = t
    return root / "store", truth


def _recipients(store: Path, message_id: str) -> dict[str, dict]:
    traced = json.loads(_run("trace", message_id, "--store", store, "--json"))
    [message] = traced["messages"]
    return {v["address"].lower(): v for v in message["recipients"]}, message


def test_a_message_handed_on_names_the_server_that_queued_it(tmp_path):
    # EX01's logs are missing: the relay's hand-off is the last sight of its recipients. The
    # relay talks to a frontend's IP; Exchange's 250 reply names the server that queued it.
    store, truth = _store(tmp_path, messages=120, seed=3, omit_server="EX01")
    lost = sorted(
        mid
        for mid, rcpts in truth.items()
        if any(t["verdict"] == "last_seen" and t["server"] == "RELAY01" for t in rcpts.values())
    )
    assert len(lost) >= 3
    for mid in lost[:5]:
        got, message = _recipients(store, mid)
        for address, t in truth[mid].items():
            if t["verdict"] != "last_seen":
                continue
            assert got[address]["verdict"] == "last_seen", (mid, address)
            assert got[address]["summary"].endswith(
                "handed to EX01, whose logs are not in the store"
            ), got[address]["summary"]
        assert {m["server"] for m in message["missing_logs"]} == {"EX01"}
        [send] = [
            e
            for e in message["events"]
            if e["log_format"] == "iis-smtp" and e["event_id"] == "SEND"
        ]
        assert send["server_host"].startswith("ex01.contoso.com (")


def test_interleaved_relay_sessions_keep_each_message_its_own_recipients(tmp_path):
    # Two of the relay's sessions to one frontend in the same second, their lines among each
    # other's (IIS logs name no session): each message keeps the recipients the truth gives.
    store, truth = _store(tmp_path, messages=1200, seed=77)
    sql = (
        "select list(message_id order by message_id) as ids from smtp where server = 'RELAY01' "
        "and direction = 'send' and data like '250 2.6.0%' "
        "group by date_trunc('second', date_time), remote_ip having count(*) > 1"
    )
    pairs = [p["ids"] for p in json.loads(_run("sql", sql, "--store", store, "--json"))]
    assert pairs, "the seed makes two sessions share a second"
    for mid in {m for pair in pairs for m in pair}:
        got, message = _recipients(store, mid)
        assert set(got) == set(truth[mid]), mid
        assert not message["missing_logs"], mid
        for address, t in truth[mid].items():
            assert got[address]["verdict"] == t["verdict"], (mid, address)


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("ex01.contoso.com", "EX01"),
        ("ex01.contoso.com (10.0.0.11)", "EX01"),
        ("10.0.0.12", "10.0.0.12"),
        ("[10.0.0.12]", "10.0.0.12"),
        ("2001:db8::25", "2001:db8::25"),
        ("", ""),
        (None, ""),
    ],
)
def test_server_name_keeps_an_ip_address_whole(host, name):
    assert server_name(host) == name


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("ex01.contoso.com (10.0.0.11)", "ex01.contoso.com"),
        ("mx.fabrikam.com", "mx.fabrikam.com"),
        ("10.0.0.12 (10.0.0.12)", "10.0.0.12"),
        (" ex01.contoso.com ", "ex01.contoso.com"),
        ("", ""),
        (None, ""),
    ],
)
def test_host_name_drops_the_ip_a_trace_writes_after_a_host(host, name):
    # the trace page's journeys and the server a send went to both read a host this way
    assert host_name(host) == name
    assert server_name(host) == server_name(name)
