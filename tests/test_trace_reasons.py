"""A verdict's words: a success is never explained as a failure, a drop says why."""

from __future__ import annotations

import json
import re
import subprocess

import pytest
from conftest import LOGANALYZER
from logfiles import row, write_log
from test_eventcodes import FAILURE_WORDS

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate
from loganalyzer.trace import trace

QUEUED = (
    "250 2.6.0 <msg1@contoso.com> [InternalId=1, Hostname=mx.fabrikam.com] Queued mail for delivery"
)
AGENT_DELETED = "550 4.3.2 QUEUE.TransportAgent; message deleted by transport agent"
SUPPRESSED_REASON = (
    "suppressed: Exchange sends no copy and no non-delivery report, as it does for an automatic"
    " reply (such as an out-of-office notice) that the remote domain settings do not allow, or"
    " for a duplicate"
)


def _installed(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    assert exe, "the loganalyzer command is not installed"
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """An out-of-office reply suppressed for an outside recipient, a message sent out."""
    root = tmp_path_factory.mktemp("reasons")

    def msg(i: int, n: int, **values) -> dict:
        ids = {
            "message_id": f"<msg{n}@contoso.com>",
            "network_message_id": f"13fad5b7-39c5-46e7-130e-{n:012x}",
            "internal_message_id": str(73014444033 + n),
            "recipient_address": "carol@fabrikam.com",
        }
        return row(i, **{**ids, **values})

    rows = [
        msg(0, 0, message_subject="Automatic reply"),
        msg(1, 0, source="ROUTING", event_id="SUPPRESSED", message_subject="Automatic reply"),
        msg(2, 1),
        msg(
            3,
            1,
            event_id="SENDEXTERNAL",
            connector_id="Internet",
            server_hostname="mx.fabrikam.com",
            recipient_status=QUEUED,
        ),
        msg(4, 2),
        msg(5, 2, source="AGENT", event_id="DROP", recipient_status=AGENT_DELETED),
    ]
    log = write_log(root / "EX02" / "MSGTRK2026030210-1.LOG", rows)
    summary = ingest([log], root / "store")
    assert summary.exit_code == 0 and summary.quarantined == 0
    return root / "store"


def test_a_suppressed_reply_says_why_it_was_dropped(store):
    [v] = trace(store, "<msg0@contoso.com>").messages[0].recipients
    assert (v.verdict, v.server, v.status) == ("dropped", "EX02", None)
    assert v.summary == f"dropped by EX02 at 2026-03-02 10:00:01 UTC: {SUPPRESSED_REASON}"


def test_a_drop_by_an_agent_says_why_and_keeps_its_status(store):
    [v] = trace(store, "<msg2@contoso.com>").messages[0].recipients
    assert (v.verdict, v.status, v.enhanced_status) == ("dropped", AGENT_DELETED, "4.3.2")
    assert v.summary.startswith(
        "dropped by EX02 at 2026-03-02 10:00:05 UTC: deleted by a transport agent (for example"
        " a transport rule) without a non-delivery report; status 550 4.3.2 QUEUE.TransportAgent;"
        " message deleted by transport agent ("
    )


def test_a_message_sent_out_is_explained_as_accepted(store):
    [v] = trace(store, "<msg1@contoso.com>").messages[0].recipients
    assert (v.verdict, v.status, v.enhanced_status) == ("sent_external", QUEUED, "2.6.0")
    assert v.status_meaning.startswith("Success: the receiving Exchange server accepted")
    assert "undeliverable" not in v.summary


def test_installed_trace_shows_both(store):
    done = _installed("trace", "<msg0@contoso.com>", "--store", str(store), "--json")
    assert done.returncode == 0, done.stderr
    [v] = json.loads(done.stdout)["messages"][0]["recipients"]
    assert v["summary"].endswith(SUPPRESSED_REASON)
    done = _installed("trace", "<msg1@contoso.com>", "--store", str(store), "--json")
    [v] = json.loads(done.stdout)["messages"][0]["recipients"]
    assert v["verdict"] == "sent_external"
    assert "Success: the receiving Exchange server accepted the message" in v["summary"]


def test_no_success_in_a_synth_trace_is_explained_as_a_failure(tmp_path):
    generate(tmp_path / "logs", servers=3, days=1, messages=150, seed=5, relay=True)
    assert ingest([tmp_path / "logs"], tmp_path / "store").exit_code == 0
    result = trace(tmp_path / "store", since="2000-01-01", all=True, limit=10**6)
    explained = [
        (x["status"], x["status_meaning"])
        for m in result.messages
        for e in m.events
        for x in e.recipients
        if x.get("status")
    ] + [(v.status, v.status_meaning) for v in result.verdicts() if v.status]
    successes = [(s, why) for s, why in explained if re.match(r"2\d\d\b", s)]
    assert len(successes) > 100
    assert {s.split()[1] for s, _ in successes} >= {"2.6.0", "2.1.5", "2.0.0"}
    wrong = [(s, why) for s, why in successes if why is None or FAILURE_WORDS.search(why)]
    assert wrong == []
    verdicts = {v.verdict for v in result.verdicts()}
    assert {"sent_external", "dropped", "failed"} <= verdicts
    drops = [v.summary for v in result.verdicts() if v.verdict == "dropped"]
    assert drops and not [d for d in drops if d.endswith("UTC")]  # each says why after the time


def test_a_codes_table_meaning_beside_the_servers_own_words_is_said_as_the_codes(tmp_path):
    """A moderator's rejection is a 550 5.7.1, whose table meaning names relaying and rules:
    beside "Message rejected by the moderator" it read as a contradicting reason; it is said
    as the code's meaning in general. A status of codes alone keeps the meaning as its words."""
    rows = [
        row(0, message_id="<mod@contoso.com>", recipient_address="all@contoso.com"),
        row(
            1,
            message_id="<mod@contoso.com>",
            recipient_address="all@contoso.com",
            event_id="FAIL",
            source="APPROVAL",
            recipient_status="550 5.7.1 Message rejected by the moderator",
        ),
        row(2, message_id="<bare@contoso.com>", recipient_address="bob@contoso.com"),
        row(
            3,
            message_id="<bare@contoso.com>",
            recipient_address="bob@contoso.com",
            event_id="FAIL",
            recipient_status="550 5.7.1",
        ),
    ]
    log = write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", rows)
    assert ingest([log], tmp_path / "store").exit_code == 0

    def said(mid: str) -> str:
        done = _installed("trace", mid, "--store", str(tmp_path / "store"), "--json")
        assert done.returncode == 0, done.stderr
        [v] = json.loads(done.stdout)["messages"][0]["recipients"]
        return v["summary"]

    moderated = said("<mod@contoso.com>")
    assert "Message rejected by the moderator (5.7.1, in general: The sender may not" in moderated
    assert ".)" not in moderated
    assert said("<bare@contoso.com>").endswith(": 550 5.7.1 (The sender may not send to this "
        "recipient: relay denied, client not authenticated, or a mail flow rule rejected the "
        "message (its default code).)")  # fmt: skip
