"""The code tables and the Exchange 2003 field order against the documentation, written out.

Each expected value here is copied by hand from Microsoft's KB articles and protocol docs as
FORMATS.md quotes them (section A for Exchange 2000/2003: KB821905, KB311739, KB246959,
KB173364, KB174078, KB246965 and the Exchange 2000 help; section B.5 for Exchange 2007+:
MS-MT16, MS-MT13, the 2007 TechNet lists), never read from the tables or modules under test.
The outcome is the fixed vocabulary's word for what the KB text says happened.
"""

from __future__ import annotations

import pytest
from conftest import CORPUS
from logfiles import row, write_log
from test_ingest_tracking import rows_of

import eventcodes
from loganalyzer.formats import exchange2003
from loganalyzer.ingest import ingest

#: Exchange 2000/2003 tracking event ID -> (KB name, outcome). FORMATS.md A.5.
EXCHANGE_2003 = {
    # MTA / X.400 events (KB821905 rows 0-52, KB311739, KB173364, KB174078, KB246959)
    0: ("Message transfer in", "received"),
    1: ("Probe transfer in", "info"),
    2: ("Report transfer in", "notification"),
    4: ("Message submission", "submitted"),
    5: ("Probe submission", "info"),
    6: ("Probe transfer out", "info"),
    7: ("Message transfer out", "transferred"),
    8: ("Report transfer out", "notification"),
    9: ("Message delivered", "delivered"),
    10: ("Report delivered", "notification"),
    18: ("StartAssocByMTSUser", "info"),
    23: ("ReleaseAssocByMTSUser", "info"),
    26: ("Distribution list expansion", "expanded"),
    28: ("Message redirected", "redirected"),
    29: ("Message rerouted", "routed"),
    31: ("Downgrading", "info"),
    33: ("Report absorption", "dropped"),
    34: ("Report generation", "notification"),
    43: ("Unroutable report discarded", "dropped"),
    50: ("Gateway deleted message", "dropped"),
    51: ("Gateway deleted probe", "dropped"),
    52: ("Gateway deleted report", "dropped"),
    # Gateway / IMS events (KB173364; 2003 wording from KB821905)
    1000: ("Local delivery", "delivered"),
    1001: ("Backbone transfer in", "received"),
    1002: ("Backbone transfer out", "transferred"),
    1003: ("Gateway transfer out", "transferred"),
    1004: ("Gateway transfer in", "received"),
    1005: ("Gateway report transfer in", "notification"),
    1006: ("Gateway report transfer out", "notification"),
    1007: ("Gateway report generation", "notification"),
    1010: ("SMTP queued outbound", "routed"),
    1011: ("SMTP transferred outbound", "transferred"),
    1012: ("SMTP received inbound", "received"),
    1013: ("SMTP transferred inbound", "transferred"),
    1014: ("SMTP message rerouted", "redirected"),
    1015: ("SMTP report transferred in", "notification"),
    1016: ("SMTP report transferred out", "notification"),
    1017: ("SMTP report generated", "notification"),
    1018: ("SMTP report absorbed", "dropped"),
    # Exchange 2000/2003 SMTP transport events (KB821905)
    1019: ("SMTP submit message to AQ", "submitted"),
    1020: ("SMTP begin outbound transfer", "transferred"),
    1021: ("SMTP badmail", "failed"),
    1022: ("SMTP AQ failure", "failed"),
    1023: ("SMTP local delivery", "delivered"),
    1024: ("SMTP submit message to categorizer", "routed"),
    1025: ("SMTP begin submit message", "submitted"),
    1026: ("SMTP AQ failed message", "failed"),
    1027: ("SMTP submit message to SD", "submitted"),
    1028: ("SMTP SD local delivery", "delivered"),
    1029: ("SMTP SD gateway delivery", "transferred"),
    1030: ("SMTP NDR all", "failed"),
    1031: ("SMTP end outbound transfer", "transferred"),
    1032: ("SMTP message scheduled to retry categorization", "deferred"),
    1033: ("SMTP message categorized and queued for routing", "routed"),
    1034: ("SMTP message routed and queued for remote delivery", "routed"),
    1035: ("SMTP message scheduled to retry routing", "deferred"),
    1036: ("SMTP message queued for local delivery", "routed"),
    1037: ("SMTP message scheduled to retry local delivery", "deferred"),
    1038: ("SMTP message routed and queued for gateway delivery", "routed"),
    1039: ("SMTP message deleted by Intelligent Message Filter", "dropped"),
    1040: ("SMTP message rejected by Intelligent Message Filter", "failed"),
    1041: ("SMTP message archived by Intelligent Message Filter", "quarantined"),
    1042: ("Message redirected to alternate recipient", "redirected"),
}

#: Exchange 2007+ event-id -> outcome. FORMATS.md B.5 (MS-MT16, MS-MT13, TN-cc539063/4,
#: TN-bb124375); SENDEXTERNAL is observed in real logs, not in the lists.
EXCHANGE_2007 = {
    "AGENTINFO": "info",
    "BADMAIL": "failed",
    "CLIENTSUBMISSION": "submitted",
    "DEFER": "deferred",
    "DELIVER": "delivered",
    "DELIVERFAIL": "failed",
    "DROP": "dropped",
    "DSN": "notification",
    "DUPLICATEDELIVER": "info",
    "DUPLICATEEXPAND": "info",
    "DUPLICATEREDIRECT": "info",
    "EXPAND": "expanded",
    "FAIL": "failed",
    "HADISCARD": "shadow",
    "HARECEIVE": "shadow",
    "HAREDIRECT": "shadow",
    "HAREDIRECTFAIL": "shadow",
    "INITMESSAGECREATED": "moderated",
    "LOAD": "info",
    "MODERATIONEXPIRE": "failed",
    "MODERATORAPPROVE": "moderated",
    "MODERATORREJECT": "failed",
    "MODERATORSALLNDR": "failed",
    "NOTIFYMAPI": "submitted",
    "NOTIFYSHADOW": "submitted",
    "POISONMESSAGE": "quarantined",
    "PROCESS": "info",
    "PROCESSMEETINGMESSAGE": "info",
    "RECEIVE": "received",
    "REDIRECT": "redirected",
    "RESOLVE": "routed",
    "RESUBMIT": "submitted",
    "RESUBMITDEFER": "deferred",
    "RESUBMITFAIL": "failed",
    "SEND": "transferred",
    "SENDEXTERNAL": "transferred",
    "SUBMIT": "submitted",
    "SUBMITDEFER": "deferred",
    "SUBMITFAIL": "failed",
    "SUPPRESSED": "dropped",
    "THROTTLE": "deferred",
    "TRANSFER": "routed",
}

#: The header-less Exchange 2000/2003 field order: KB246965 (1-16) and the Exchange 2000
#: help's column line (FORMATS.md A.2, A.4).
EXCHANGE_2003_FIELDS = [
    "Date",
    "Time",
    "Client-IP",
    "Client-hostname",
    "Partner-name",
    "Server-hostname",
    "Server-IP",
    "Recipient-address",
    "Event-ID",
    "MSGID",
    "Priority",
    "Recipient-Report-Status",
    "Total-bytes",
    "Number-recipients",
    "Origination-time",
    "Encryption",
    "Service-version",
    "Linked-MSGID",
    "Message-Subject",
    "Sender-Address",
]


def test_exchange_2003_table_equals_the_kb_lists():
    got = {int(c.code): (c.name, c.outcome) for c in eventcodes.entries("exchange2003")}
    assert got == EXCHANGE_2003


@pytest.mark.parametrize("event", sorted(EXCHANGE_2003))
def test_exchange_2003_lookup_and_failure_flag(event):
    entry = eventcodes.lookup(event)
    assert (entry.family, entry.code, entry.outcome) == (
        "exchange2003",
        str(event),
        EXCHANGE_2003[event][1],
    )
    assert entry.is_failure == (EXCHANGE_2003[event][1] in ("failed", "deferred"))


def test_exchange_2007_table_equals_the_documented_events():
    got = {c.code: c.outcome for c in eventcodes.entries("exchange-event")}
    assert got == EXCHANGE_2007


def _line_2003(values: dict[str, str]) -> str:
    """A header-less line laid out by the documented order, from the real line's values."""
    real = (CORPUS / "exchange2003" / "awstats-maillogconvert-example.log").read_text()
    fields = real.rstrip("\n").split("\t")[:20]
    for name, value in values.items():
        fields[EXCHANGE_2003_FIELDS.index(name)] = value
    return "\t".join(fields) + "\r\n"


def test_every_2003_event_ingests_with_its_documented_outcome(store_dir, tmp_path):
    log = tmp_path / "PACKRAT.log" / "20030812.log"
    log.parent.mkdir(parents=True)
    log.write_text("".join(_line_2003({"Event-ID": str(e)}) for e in EXCHANGE_2003))
    summary = ingest([log], store_dir, format="exchange2003-tracking")
    assert summary.exit_code == 0 and summary.quarantined == 0
    got = {int(r["event_id"]): r["outcome"] for r in rows_of(store_dir)}
    assert got == {e: outcome for e, (_, outcome) in EXCHANGE_2003.items()}


def test_every_2007_event_ingests_with_its_documented_outcome(store_dir, tmp_path):
    rows = [row(i, event_id=e) for i, e in enumerate(EXCHANGE_2007)]
    log = write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", rows)
    assert ingest([log], store_dir).quarantined == 0
    got = {r["event_id"]: r["outcome"] for r in rows_of(store_dir)}
    assert got == EXCHANGE_2007


def test_headerless_2003_field_order_is_the_documented_one():
    assert [f.lower() for f in EXCHANGE_2003_FIELDS] == exchange2003.FIELDS


def test_headerless_2003_line_puts_each_value_in_its_documented_column(store_dir, tmp_path):
    """Every field holds a value no other field holds, so a swap shows."""
    values = {
        "Date": "2003-8-13",
        "Time": "1:2:3 GMT",
        "Client-IP": "10.1.1.1",
        "Client-hostname": "client.example.org",
        "Partner-name": "SMTP",
        "Server-hostname": "PACKRAT",
        "Server-IP": "10.2.2.2",
        "Recipient-address": "rcpt@example.org",
        "Event-ID": "1030",
        "MSGID": "id-1@example.org",
        "Priority": "1",
        "Recipient-Report-Status": "0",
        "Total-bytes": "4242",
        "Number-recipients": "3",
        "Origination-time": "2003-8-13 1:2:0 GMT",
        "Encryption": "2",
        "Service-version": "Version: 6.5.7638.1",
        "Linked-MSGID": "linked@example.org",
        "Message-Subject": "Quarterly figures",
        "Sender-Address": "sender@example.net",
    }
    log = tmp_path / "PACKRAT.log" / "20030813.log"
    log.parent.mkdir(parents=True)
    log.write_text(_line_2003(values))
    assert ingest([log], store_dir, format="exchange2003-tracking").quarantined == 0
    [r] = rows_of(store_dir)
    got = {
        "date_time": r["date_time"].isoformat(),
        "client_ip": r["client_ip"],
        "client_hostname": r["client_hostname"],
        "partner_name": r["partner_name"],
        "server_hostname": r["server_hostname"],
        "server_ip": r["server_ip"],
        "recipient_address": r["recipient_address"],
        "event_id": r["event_id"],
        "outcome": r["outcome"],
        "message_id": r["message_id"],
        "priority": r["priority"],
        "recipient_report_status": r["recipient_report_status"],
        "total_bytes": r["total_bytes"],
        "recipient_count": r["recipient_count"],
        "origination_time": r["origination_time"],
        "encryption": r["encryption"],
        "service_version": r["service_version"],
        "linked_msgid": r["linked_msgid"],
        "message_subject": r["message_subject"],
        "sender_address": r["sender_address"],
    }
    assert got == {
        "date_time": "2003-08-13T01:02:03+00:00",
        "client_ip": "10.1.1.1",
        "client_hostname": "client.example.org",
        "partner_name": "SMTP",
        "server_hostname": "PACKRAT",
        "server_ip": "10.2.2.2",
        "recipient_address": ["rcpt@example.org"],
        "event_id": "1030",
        "outcome": "failed",
        "message_id": "<id-1@example.org>",
        "priority": "1",
        "recipient_report_status": "0",
        "total_bytes": 4242,
        "recipient_count": 3,
        "origination_time": "2003-8-13 1:2:0 GMT",
        "encryption": "2",
        "service_version": "Version: 6.5.7638.1",
        "linked_msgid": "linked@example.org",
        "message_subject": "Quarterly figures",
        "sender_address": "sender@example.net",
    }
