"""The verdict rules of a trace, one by one, with the verdicts and words users read.

The expected tables are written here from Microsoft's documentation (message tracking event
types of Exchange 2007-2019; Exchange 2000/2003 event numbers, KB 821905), never taken from
the module they check. The trace tests check the same rules end to end on synth logs; these
run in milliseconds, so that a mutation run (benchmarks/mutation.py) can run them per change.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loganalyzer.trace.verdict import Step, classify, explain, is_handoff, status_text, summary
from loganalyzer.trace.verdict import verdict_of as _verdict_of

SERVERS = {"EX01", "EX02"}

#: Exchange 2007-2019 final events and the verdict of the recipients they name.
EVENTS = {
    "DELIVER": "delivered",
    "DUPLICATEDELIVER": "delivered",
    "FAIL": "failed",
    "DELIVERFAIL": "failed",
    "BADMAIL": "failed",
    "SUBMITFAIL": "failed",
    "RESUBMITFAIL": "failed",
    "MODERATORREJECT": "failed",
    "MODERATIONEXPIRE": "failed",
    "MODERATORSALLNDR": "failed",
    "DEFER": "deferred",
    "SUBMITDEFER": "deferred",
    "RESUBMITDEFER": "deferred",
    "DROP": "dropped",
    "SUPPRESSED": "dropped",
    "POISONMESSAGE": "quarantined",
    "INITMESSAGECREATED": "moderation",
}
#: Exchange 2000/2003 event numbers that end a recipient's story (FORMATS.md, A.5).
EVENTS_2003 = {
    "9": "delivered",  # MTA local delivery
    "1000": "delivered",  # local delivery
    "1023": "delivered",  # SMTP store driver: message delivered locally
    "1028": "delivered",  # SMTP store driver: delivered to the store
    "1021": "failed",  # NDR: recipient ...
    "1022": "failed",
    "1026": "failed",
    "1030": "failed",  # non-delivered
    "1040": "failed",
    "1032": "deferred",  # queued for retry
    "1035": "deferred",
    "1037": "deferred",
    "1039": "dropped",  # message deleted
    "1041": "quarantined",  # badmail
}
SENDS = ["SEND", "SENDEXTERNAL", "1020", "1031", "7", "1002", "1003", "1011"]
#: Rows that are no step of a recipient's story.
IGNORED = ["DSN", "HADISCARD", "HARECEIVE"]
#: Steps that end nothing: with nothing after them, the recipient was last seen there.
PASSING = ["RECEIVE", "SUBMIT", "EXPAND", "REDIRECT", "TRANSFER", "1019", "1033", "AGENTINFO"]


def _step(event: str, **row) -> Step:
    return Step(datetime(2026, 3, 2, 10, tzinfo=UTC), "EX01", event, None, row)


def _verdict(event: str, **row) -> tuple[str, str]:
    """(kind, verdict) of a recipient whose last step is ``event``."""
    step = _step(event, **row)
    classify(step, SERVERS)
    return step.kind, _verdict_of(step)


@pytest.mark.parametrize("event", sorted(EVENTS))
def test_final_events(event):
    assert _verdict(event) == ("final", EVENTS[event])


@pytest.mark.parametrize("event", sorted(EVENTS_2003))
def test_final_events_of_exchange_2003(event):
    assert _verdict(event) == ("final", EVENTS_2003[event])


@pytest.mark.parametrize("event", SENDS)
def test_a_send_out_of_the_organisation_is_final(event):
    row = {"server_hostname": "mx.fabrikam.com", "connector_id": "EX01\\Internet"}
    assert _verdict(event, **row) == ("final", "sent_external")


@pytest.mark.parametrize("event", SENDS)
def test_a_send_to_a_server_of_the_organisation_is_a_handoff(event):
    row = {"server_hostname": "ex02.contoso.com", "connector_id": "EX01\\Internet"}
    assert _verdict(event, **row) == ("handoff", "last_seen")


@pytest.mark.parametrize("event", IGNORED)
def test_ignored_rows(event):
    assert _verdict(event) == ("ignored", "last_seen")


@pytest.mark.parametrize("event", PASSING)
def test_other_steps_pass(event):
    assert _verdict(event) == ("pass", "last_seen")


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"server_hostname": "EX02.contoso.com"}, True),  # a server of the organisation
        ({"server_hostname": "ex02"}, True),
        ({"server_hostname": "ex03.contoso.com"}, False),  # not one whose logs are read
        ({"server_hostname": "mx.ex01.example"}, False),  # only the first label counts
        ({"server_hostname": None, "connector_id": None}, False),
        ({}, False),
        ({"connector_id": "Intra-Organization SMTP Send Connector"}, True),
        ({"connector_id": "intraorganization"}, True),
        ({"connector_id": "Intra-Organisation SMTP Send Connector"}, True),
        ({"connector_id": "Mailbox Transport Submission"}, True),
        ({"connector_id": "EX01\\Default EX01"}, True),
        ({"connector_id": "EX01\\Client Frontend EX01"}, True),
        ({"connector_id": "EX01\\Internet"}, False),
        ({"connector_id": "EX01\\Defaults"}, False),
        ({"log_format": "iis-smtp", "server_hostname": "mx.fabrikam.com"}, True),  # the relay
        ({"log_format": "exchange-tracking", "server_hostname": "mx.fabrikam.com"}, False),
    ],
)
def test_which_send_is_a_handoff(row, expected):
    assert is_handoff(row, SERVERS) is expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("[{LED=550 5.1.1 User unknown};{MSG=};{FQDN=mx.fabrikam.com}]", "550 5.1.1 User unknown"),
        ("[{LED= 451 4.4.0 DNS query failed }]", "451 4.4.0 DNS query failed"),
        ("{LED=432 4.3.2 Busy}", "432 4.3.2 Busy"),
        ("  550 5.7.1 Relay denied  ", "550 5.7.1 Relay denied"),
        ("[{LED=550 5.1.1 a};{LED=other}]", "550 5.1.1 a"),
        ("{LED=not closed", "{LED=not closed"),
        ("", None),
        (None, None),
    ],
)
def test_the_error_of_a_status(status, expected):
    assert status_text(status) == expected


def test_explain_a_status():
    enhanced, meaning = explain("550 5.1.1 RESOLVER.ADR.RecipNotFound; not found")
    assert enhanced == "5.1.1"
    assert meaning.startswith("The recipient does not exist in the destination organization")
    assert explain("421 Service not available") == (
        None,
        "The service is not available and the server is closing the connection; try again later.",
    )
    assert explain("no code here") == (None, None)
    assert explain(None) == (None, None)


WORDS = {
    "delivered": "delivered to a mailbox on EX01 at 10:00",
    "sent_external": "sent out of the organisation by EX01 at 10:00: 250 2.0.0 OK (meaning)",
    "failed": "failed at EX01 at 10:00: 250 2.0.0 OK (meaning)",
    "deferred": "still deferred at EX01 since 10:00; last error: 250 2.0.0 OK (meaning)",
    "dropped": "dropped by EX01 at 10:00: 250 2.0.0 OK (meaning)",
    "quarantined": "quarantined (poison message queue) on EX01 at 10:00",
    "moderation": "awaiting a moderator's decision since 10:00 (EX01)",
    "expanded": "a distribution list, expanded on EX01 at 10:00",
    "last_seen": "last seen at EX01 at 10:00; the next hop's logs are not in the store",
}


@pytest.mark.parametrize("verdict", sorted(WORDS))
def test_the_verdict_in_plain_words(verdict):
    assert summary(verdict, "EX01", "10:00", "250 2.0.0 OK", "meaning", "!") == (
        WORDS[verdict] + "!"
    )


def test_plain_words_without_a_status_or_its_meaning():
    assert summary("failed", "EX01", "10:00", "550 5.1.1 x", None) == (
        "failed at EX01 at 10:00: 550 5.1.1 x"
    )
    assert summary("failed", "EX01", "10:00", None, "meaning") == "failed at EX01 at 10:00"
    assert summary("deferred", "EX01", "10:00", None, None) == (
        "still deferred at EX01 since 10:00; last error: unknown"
    )
