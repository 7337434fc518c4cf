"""Exchange Online message trace exports (FORMATS.md section I).

No public CSV export exists. The CSV files here are built in the tests from section I: the
column orders of I.1, I.2 and I.4 and the real record values TK-HS pasted (quoted in I.1 and
I.2; the sanitised client IP replaced by a documentation address). The JSON samples are real:
tests/corpus/o365-trace/ (Elastic's NDJSON test log and the record inside SEKOIA's test case).

Golden cases (tests/golden/exo-message-trace/): api-ndjson-empty-odata-envelope.log is Elastic's
sample unchanged and api-sekoia-record-epoch-dates.ndjson the record inside SEKOIA's test case;
the three CSVs were built like the CSVs here, from ``SUMMARY``, ``DETAIL`` and ``PS_COLUMNS``
(UTF-16 LE with and without BOM, UTF-8 with BOM, a #TYPE line and ';').
graph-exchangemessagetrace-camelcase-status.ndjson is built from the documented properties of
Microsoft Graph's exchangeMessageTrace (``GRAPH_RECORDS`` below).
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
from datetime import UTC, datetime
from functools import partial

import pyarrow as pa
import pytest
from conftest import CORPUS, LOGANALYZER
from hypothesis import given, settings
from hypothesis import strategies as st
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.errors import BadInput
from loganalyzer.formats import NotALog, base, detect
from loganalyzer.formats import exo_message_trace as exo
from loganalyzer.formats.base import ReadState
from loganalyzer.formats.common import Context
from loganalyzer.formats.exo_message_trace.normalise import parse_time, split_recipient_status
from loganalyzer.ingest import ingest

NDJSON = CORPUS / "o365-trace" / "elastic-exo-message-trace-test-log.log"
SEKOIA = CORPUS / "o365-trace" / "sekoia-messagetrace.json"
STATUS = (
    'Fname.Lname@domain.com##Receive, Deliver;"Fname LName<fname.lname"@domain.com##Receive, Fail'
)
SUMMARY = {  # I.1, TK-HS's record
    "origin_timestamp_utc": "2021-03-23T10:00:09.3284899Z",
    "sender_address": "Fname.Lname@domain.com",
    "recipient_status": STATUS,
    "message_subject": "AW: Fwd: SOME SUBJECT",
    "total_bytes": "49790",
    "message_id": "<PH0PR04MB7365ABC@PH0PR04MB7365.namprd04.prod.outlook.com>",
    "network_message_id": "81945af2-cab7-45ad-ba23-08d8ede2715d",
    "original_client_ip": "192.0.2.12",
    "directionality": "Originating",
    "connector_id": "To_DefaultOpportunisticTLS",
    "delivery_priority": "Normal",
}
DETAIL = {  # I.2, TK-HS's record (message_info and custom_data shortened)
    "date_time_utc": "2021-11-23T19:49:37.6050000Z",
    "client_ip": "",
    "client_hostname": "CH0PR04MB8081.namprd04.prod.outlook.com",
    "server_ip": "",
    "server_hostname": "BY5PR04MB6279.namprd04.prod.outlook.com",
    "source_context": (
        "08D9AE1AA4FEA27C;2021-11-23T19:49:37.215Z;ClientSubmitTime:2021-11-23T19:49:36.380Z"
    ),
    "connector_id": "",
    "source": "STOREDRIVER",
    "event_id": "DELIVER",
    "internal_message_id": "132697",
    "message_id": "<CH0PR04MB8114ABC@CH0PR04MB8114.namprd04.prod.outlook.com>",
    "network_message_id": "f955f718-d5ff-40a7-137f-08d9aeba6116",
    "recipient_address": "recip@domain.com",
    "recipient_status": "",
    "total_bytes": "89464",
    "recipient_count": "1",
    "related_recipient_address": "",
    "reference": "",
    "message_subject": "SENDER Last Day Details - List",
    "sender_address": "SENDER@domain.com",
    "return_path": "SENDER@domain.com",
    "message_info": (
        "2021-11-23T19:49:36.395Z;SRV=CH0PR04MB8114.namprd04.prod.outlook.com:"
        "TOTAL-SUB=0.218|SA=0.021"
    ),
    "directionality": "Originating",
    "tenant_id": "549366ae-e80a-44b9-8adc-52d0c29ba08b",
    "original_client_ip": "192.168.1.251",
    "original_server_ip": "2603:10b6:610:f9::20",
    "custom_data": (
        "S:IncludeInSla=True;S:BCL=0;S:DeliveryPriority=Normal;"
        "S:AccountForest=NAMPR04A008.PROD.OUTLOOK.COM"
    ),
}
PS_COLUMNS = (  # I.4, POLIM's Export-Csv column order
    "PSComputerName,RunspaceId,PSShowComputerName,Organization,MessageId,Received,SenderAddress,"
    "RecipientAddress,Subject,Status,ToIP,FromIP,Size,MessageTraceId,StartDate,EndDate,Index"
).split(",")


def csv_text(rows: list[dict], columns=None, delimiter=",", quote_all=True) -> str:
    """A CSV as Export-Csv and the admin center write it: every field quoted, CRLF."""
    buf = io.StringIO()
    quoting = csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
    writer = csv.writer(buf, delimiter=delimiter, quoting=quoting, lineterminator="\r\n")
    columns = columns or list(rows[0])
    writer.writerow(columns)
    for r in rows:
        writer.writerow([r.get(c, "") for c in columns])
    return buf.getvalue()


ENCODINGS = {
    "utf16le-bom": lambda t: b"\xff\xfe" + t.encode("utf-16-le"),
    "utf16le-no-bom": lambda t: t.encode("utf-16-le"),
    "utf8-bom": lambda t: b"\xef\xbb\xbf" + t.encode("utf-8"),
    "utf8-resaved": lambda t: t.encode("utf-8"),
}


def write(tmp_path, name: str, data: str | bytes, encoding: str = "utf16le-bom"):
    path = tmp_path / "exports" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(ENCODINGS[encoding](data) if isinstance(data, str) else data)
    return path


def one_row(store_dir) -> dict:
    [r] = rows_of(store_dir)
    return r


@pytest.mark.parametrize("encoding", list(ENCODINGS))
def test_summary_csv_in_every_encoding(store_dir, tmp_path, encoding):
    path = write(tmp_path, "MTSummary_Report.csv", csv_text([SUMMARY]), encoding)
    summary = ingest([path], store_dir)
    assert summary.files[0].format == "exo-message-trace" and summary.quarantined == 0
    first, r = sorted(rows_of(store_dir), key=lambda x: x["event_id"])  # one a recipient
    assert (first["recipient_address"], first["recipient_status"]) == (
        ["Fname.Lname@domain.com"],
        ["Receive, Deliver"],
    )
    assert (first["event_id"], first["outcome"]) == ("Deliver", "delivered")
    assert r["date_time"] == datetime(2021, 3, 23, 10, 0, 9, 328000, tzinfo=UTC)
    assert r["recipient_address"] == ['"Fname LName<fname.lname"@domain.com']
    assert r["recipient_status"] == ["Receive, Fail"]
    assert (r["event_id"], r["outcome"], r["source"]) == ("Fail", "failed", "EXO")
    assert r["message_id"] == SUMMARY["message_id"]
    assert r["network_message_id"] == SUMMARY["network_message_id"]
    assert (r["total_bytes"], r["sender_domain"]) == (49790, "domain.com")
    assert (r["directionality"], r["connector_id"]) == ("Originating", "To_DefaultOpportunisticTLS")
    assert r["original_client_ip"] == "192.0.2.12"
    assert r["custom_data"] == "S:DeliveryPriority=Normal"
    assert (r["log_type"], r["server"], r["line"]) == ("EXO-SUMMARY", "EXCHANGE-ONLINE", 2)


def test_summary_header_quirks_alias_case_quotes_and_numeric_direction(store_dir, tmp_path):
    # Built: the doc's names (origin_timestamp, Recipient_status), upper case, a BOM character
    # inside the first name, the documented 1/2 directionality and an unquoted file.
    rows = [
        {**SUMMARY, "directionality": "1"},
        {**SUMMARY, "directionality": "2", "recipient_status": "a@x.com##Receive, Deliver"},
    ]
    text = csv_text(rows, quote_all=False).replace("origin_timestamp_utc", "\ufeffOrigin_Timestamp")
    text = text.replace("recipient_status", "Recipient_status").replace(
        "sender_address", "SENDER_ADDRESS"
    )
    ingest([write(tmp_path, "summary.csv", text, "utf8-resaved")], store_dir)
    got = {r["line"]: r for r in rows_of(store_dir) if r["event_id"] != "Fail"}
    assert [got[n]["directionality"] for n in (2, 3)] == ["Incoming", "Originating"]
    assert got[3]["recipient_address"] == ["a@x.com"] and got[3]["event_id"] == "Deliver"
    assert got[3]["outcome"] == "delivered" and got[3]["sender_address"] == "Fname.Lname@domain.com"


@pytest.mark.parametrize(
    "value,addresses,chains",
    [
        (
            STATUS,
            ["Fname.Lname@domain.com", '"Fname LName<fname.lname"@domain.com'],
            ["Receive, Deliver", "Receive, Fail"],
        ),
        (
            '"Last; First<first"@x.com##Receive, Send;b@y.com##Receive, Deliver',
            ['"Last; First<first"@x.com', "b@y.com"],
            ["Receive, Send", "Receive, Deliver"],
        ),
        ("a@x.com##Receive, Resolve, Deliver;", ["a@x.com"], ["Receive, Resolve, Deliver"]),
        ("a@x.com##Receive##Fail", ["a@x.com"], ["Receive##Fail"]),
        ("a@x.com", ["a@x.com"], [None]),
        ("", [], []),
        (None, [], []),
    ],
)
def test_recipient_status_grammar(value, addresses, chains):
    got_addresses, got_chains = split_recipient_status(pa.array([value], pa.string()))
    assert got_addresses.to_pylist() == [addresses]
    assert got_chains.to_pylist() == [chains]


_local = st.from_regex(r"[a-z0-9._+-]{1,10}", fullmatch=True)
_quoted = st.from_regex(r'"[A-Za-z ,;<.]{1,12}"', fullmatch=True)
_address = st.builds(
    "{}@{}.com".format, st.one_of(_local, _quoted), st.from_regex(r"[a-z]{1,8}", fullmatch=True)
)
_chain = st.lists(
    st.sampled_from(["Receive", "Resolve", "Deliver", "Send external", "Fail", "Defer"]),
    min_size=1,
    max_size=4,
).map(", ".join)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(_address, _chain), max_size=5))
def test_recipient_status_round_trip(entries):
    value = ";".join(f"{a}##{c}" for a, c in entries)
    addresses, chains = split_recipient_status(pa.array([value], pa.string()))
    assert addresses.to_pylist() == [[a for a, _ in entries]]
    assert chains.to_pylist() == [[c for _, c in entries]]


def test_summary_rows_are_one_a_recipient_with_its_own_last_event(store_dir, tmp_path):
    statuses = [
        "a@x.com##Receive, Deliver;b@x.com##Receive, Send external",
        "a@x.com##Receive, Fail;b@x.com##Receive, Deliver",
        "a@x.com##Receive, Deliver;b@x.com##receive, defer",
        "a@x.com##Receive",
        "",
    ]
    rows = [{**SUMMARY, "recipient_status": s} for s in statuses]
    ingest([write(tmp_path, "summary.csv", csv_text(rows))], store_dir)
    got = sorted(rows_of(store_dir), key=lambda r: (r["line"], r["recipient_address"]))
    assert [
        (r["line"], r["recipient_address"], r["recipient_status"], r["event_id"], r["outcome"])
        for r in got
    ] == [
        (2, ["a@x.com"], ["Receive, Deliver"], "Deliver", "delivered"),
        (2, ["b@x.com"], ["Receive, Send external"], "Send external", "transferred"),
        (3, ["a@x.com"], ["Receive, Fail"], "Fail", "failed"),
        (3, ["b@x.com"], ["Receive, Deliver"], "Deliver", "delivered"),
        (4, ["a@x.com"], ["Receive, Deliver"], "Deliver", "delivered"),
        (4, ["b@x.com"], ["receive, defer"], "Defer", "deferred"),
        (5, ["a@x.com"], ["Receive"], "Receive", "received"),
        (6, [], [], None, None),
    ]
    assert {r["message_id"] for r in got} == {SUMMARY["message_id"]}


def test_summary_line_with_a_bad_time_is_quarantined_once(store_dir, tmp_path):
    status = "a@x.com##Receive, Deliver;b@x.com##Receive, Fail"
    rows = [{**SUMMARY, "recipient_status": status, "origin_timestamp_utc": "soon"}]
    summary = ingest([write(tmp_path, "summary.csv", csv_text(rows))], store_dir)
    assert (summary.rows, summary.quarantined) == (0, 1)


def test_each_recipient_of_a_summary_row_has_its_own_verdict(tmp_path):
    """An Enhanced summary row gave every recipient its worst event: each has its own chain
    (FORMATS.md I.1), whose last event decides its verdict; the row is the message's receipt."""
    row = {
        **SUMMARY,
        "origin_timestamp_utc": "2026-03-29T01:30:09.3284899Z",
        "recipient_status": "a@fabrikam.com##Receive, Deliver;b@fabrikam.com##Receive, Fail;"
        "c@example.com##Receive, Send external;d@example.com##Receive, Send;"
        "grp@contoso.com##Receive, Expand;e@example.com##Receive, Defer",
        "message_id": "<sum1@contoso.com>",
    }
    write(tmp_path, "MTSummary_x.csv", csv_text([row]), "utf8-resaved")
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", store],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    trace = subprocess.run([LOGANALYZER, "trace", "<sum1@contoso.com>", "--store", store, "--json"],
                           capture_output=True, text=True, timeout=300)  # fmt: skip
    assert trace.returncode == 0, trace.stderr
    [m] = json.loads(trace.stdout)["messages"]
    assert {v["address"]: v["verdict"] for v in m["recipients"]} == {
        "a@fabrikam.com": "delivered",
        "b@fabrikam.com": "failed",
        "c@example.com": "sent_external",
        "d@example.com": "sent_external",  # Exchange Online's Send: the last hop's
        "grp@contoso.com": "expanded",
        "e@example.com": "deferred",
    }
    # the chain is what happened to the recipient, not its error or reply
    words = {v["address"]: v["summary"] for v in m["recipients"]}
    assert words["e@example.com"].endswith("last error: unknown")
    assert "Receive" not in words["d@example.com"]
    report = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", store, "--date", "2026-03-29", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    headline = json.loads(report.stdout)["headline"]
    assert (
        headline["received_messages"],
        headline["delivered_recipients"],
        headline["failed_recipients"],
        headline["sent_out_recipients"],
        headline["still_deferred_recipients"],
    ) == (1, 1, 1, 2, 1)


def test_detail_csv_goes_through_the_on_premises_fields(store_dir, tmp_path):
    send = {
        **DETAIL,
        "event_id": "SENDEXTERNAL",
        "source": "SMTP",
        "date_time_utc": "2021-11-23T19:49:38.0000000Z",
    }
    fail = {
        **DETAIL,
        "event_id": "FAIL",
        "source": "SMTP",
        "recipient_address": "a@x.com;b@x.com",
        "recipient_count": "2",
        "recipient_status": "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found;250 2.1.5 OK",
    }
    path = write(tmp_path, "MTDetail_Report.csv", csv_text([DETAIL, send, fail]))
    assert ingest([path], store_dir).quarantined == 0
    got = {r["line"]: r for r in rows_of(store_dir)}
    r = got[2]
    assert r["date_time"] == datetime(2021, 11, 23, 19, 49, 37, 605000, tzinfo=UTC)
    assert (r["event_id"], r["source"], r["outcome"]) == ("DELIVER", "STOREDRIVER", "delivered")
    assert (r["internal_message_id"], r["recipient_count"], r["total_bytes"]) == (
        "132697",
        1,
        89464,
    )
    assert r["recipient_address"] == ["recip@domain.com"] and r["client_ip"] is None
    assert r["source_context"] == DETAIL["source_context"]
    assert r["message_info"] == DETAIL["message_info"] and r["custom_data"] == DETAIL["custom_data"]
    assert (r["tenant_id"], r["original_server_ip"]) == (
        DETAIL["tenant_id"],
        "2603:10b6:610:f9::20",
    )
    assert (r["log_format"], r["log_type"]) == ("exo-message-trace", "EXO-DETAIL")
    assert {x["server"] for x in got.values()} == {"BY5PR04MB6279"}  # DELIVER's local host
    assert (got[3]["event_id"], got[3]["outcome"]) == ("SENDEXTERNAL", "transferred")
    assert got[4]["enhanced_status"] == ["5.1.1", "2.1.5"] and got[4]["outcome"] == "failed"


PS_BASE = {  # a Get-MessageTrace row but its Received, Status, MessageId and MessageTraceId
    "PSComputerName": "outlook.office365.com",
    "RunspaceId": "5b1e7c9a-0000-4000-8000-000000000001",
    "PSShowComputerName": "False",
    "Organization": "contoso.onmicrosoft.com",
    "SenderAddress": "alice@contoso.com",
    "RecipientAddress": "bob@fabrikam.com",
    "Subject": "Q3; budget, final",
    "ToIP": "203.0.113.5",
    "FromIP": "198.51.100.7",
    "Size": "22704",
    "StartDate": "2/21/2026 12:00:00 AM",
    "EndDate": "2/23/2026 11:59:59 PM",
    "Index": "0",
}


def test_ps_trace_export_type_line_semicolons_and_us_times(store_dir, tmp_path):
    # Built: I.4's 17 columns, a #TYPE line, ';' (Export-Csv -UseCulture) and culture times.
    base = PS_BASE
    received = ["2/23/2026 11:01:02 PM", "2/23/2026 12:00:05 AM", "2026-02-23T12:30:00.1234567"]
    statuses = ["Delivered", "FilteredAsSpam", "Quarantined"]
    rows = [
        {
            **base,
            "Received": t,
            "Status": s,
            "MessageId": f"<m{i}@contoso.com>",
            "MessageTraceId": f"a6f62809-5cda-4454-0962-08dab38940d{i}",
        }
        for i, (t, s) in enumerate(zip(received, statuses, strict=True))
    ]
    text = "#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n"
    text += csv_text(rows, PS_COLUMNS, delimiter=";")
    ingest([write(tmp_path, "trace.csv", text, "utf8-bom")], store_dir)
    got = sorted(rows_of(store_dir), key=lambda r: r["line"])
    assert [r["line"] for r in got] == [3, 4, 5]
    assert [r["date_time"].isoformat() for r in got] == [
        "2026-02-23T23:01:02+00:00",
        "2026-02-23T00:00:05+00:00",
        "2026-02-23T12:30:00.123000+00:00",
    ]
    assert [(r["event_id"], r["outcome"]) for r in got] == [
        ("Delivered", "delivered"),
        ("FilteredAsSpam", "dropped"),
        ("Quarantined", "quarantined"),
    ]
    r = got[0]
    assert (r["sender_address"], r["recipient_address"]) == (
        "alice@contoso.com",
        ["bob@fabrikam.com"],
    )
    assert (r["client_ip"], r["server_ip"], r["total_bytes"]) == (
        "198.51.100.7",
        "203.0.113.5",
        22704,
    )
    assert r["message_subject"] == "Q3; budget, final" and r["message_id"] == "<m0@contoso.com>"
    assert r["network_message_id"] == "a6f62809-5cda-4454-0962-08dab38940d0"
    assert (r["tenant_id"], r["source"], r["log_type"]) == (
        "contoso.onmicrosoft.com",
        "EXO",
        "EXO-PS-TRACE",
    )


def test_a_subject_over_two_lines_is_one_record_and_a_stray_quote_is_its_line_alone(tmp_path):
    # Built: Export-Csv quotes a subject with a line break across two lines of the file (the
    # row was lost: both halves quarantined as broken quoting); a line with a stray quote
    # stays alone in the quarantine and the lines after it keep their rows and numbers.
    rows = [
        {**PS_BASE, "MessageId": f"<m{i}@contoso.com>", "Received": f"2026-02-23T1{i}:00:00"}
        for i in range(5)
    ]
    rows[1]["Subject"] = 'Quarterly "Q3"\r\nreport\r\n(final)'
    text = csv_text(rows, PS_COLUMNS)
    lines = text.split("\r\n")  # header, m0, m1 over three lines, m2, m3, m4
    lines[5] = lines[5].replace('"<m2@', '"<m2"@', 1)  # a stray quote: m2's line is broken
    store = tmp_path / "store"
    write(tmp_path, "trace.csv", "\r\n".join(lines))
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", str(store),
                           "--json"], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    got = {r["message_id"]: r for r in rows_of(store)}
    assert sorted(got) == ["<m0@contoso.com>", "<m1@contoso.com>", "<m3@contoso.com>",
                           "<m4@contoso.com>"]  # fmt: skip
    assert got["<m1@contoso.com>"]["message_subject"] == 'Quarterly "Q3" report (final)'
    assert [got[f"<m{i}@contoso.com>"]["line"] for i in (0, 1, 3, 4)] == [2, 3, 7, 8]
    [bad] = quarantine_of(store)
    assert (bad["line"], bad["reason"]) == (6, "broken quoting: unbalanced double quote")
    assert '"<m2"@contoso.com>' in bad["raw"]


@pytest.mark.parametrize("ends", ["\r", "\r\n"])
def test_classic_mac_line_ends_and_a_lone_cr_in_a_subject(tmp_path, ends):
    # Built: an export saved with CR line ends was "could not ingest" with Python's hint
    # ("open the file in universal-newline mode"); a lone CR in a subject stayed a CR.
    rows = [
        {**PS_BASE, "MessageId": f"<c{i}@contoso.com>", "Received": f"2026-02-23T1{i}:00:00"}
        for i in range(3)
    ]
    rows[1]["Subject"] = "line\rbreak" if ends == "\r\n" else "plain"
    text = csv_text(rows, PS_COLUMNS).replace("\r\n", ends)
    write(tmp_path, "trace.csv", text, "utf8-resaved")
    store = tmp_path / "store"
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", str(store)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    got = sorted((r["line"], r["message_id"], r["message_subject"]) for r in rows_of(store))
    assert [(line, mid) for line, mid, _ in got] == [
        (2 + i, f"<c{i}@contoso.com>") for i in range(3)
    ]
    assert got[1][2] == ("line break" if ends == "\r\n" else "plain")
    assert quarantine_of(store) == []


@pytest.mark.parametrize("encoding", ["utf16le-bom", "utf8-resaved"])
def test_an_export_copied_in_steps_is_read_as_the_finished_file(tmp_path, encoding):
    # Built: an export caught half-way through a copy. Its last line without a line end was
    # read as a row at once: read again when the file grew (twice in the store), and after a
    # fix for that, a row cut in its last field ("No" for "Normal") was kept as it was.
    # A record whose subject runs over two lines arrives in two steps too.
    rows = [
        {**PS_BASE, "MessageId": f"<g{i}@contoso.com>", "Received": f"2026-02-23T1{i}:00:00"}
        for i in range(4)
    ]
    rows[2]["Subject"] = "two\r\nlines"
    text = "#TYPE Deserialized.Microsoft.Exchange.Management.FfoReporting.MessageTrace\r\n"
    text += csv_text(rows, PS_COLUMNS)
    g1 = text.index('"<g1@')
    cut_in_g1 = text.index("\r\n", g1) - 5  # in g1's last field
    cut_in_subject = text.index("two\r\n") + 5  # after the subject's first line
    steps = [text[:cut_in_g1], text[cut_in_g1:cut_in_subject], text[cut_in_subject:]]
    path = write(tmp_path, "trace.csv", steps[0], encoding)

    def encoded(part: str) -> bytes:  # added to the file: no byte-order mark
        return ENCODINGS[encoding](part).removeprefix(b"\xff\xfe")

    store = tmp_path / "store"
    said = []
    for added in (b"", encoded(steps[1]), encoded(steps[2]), b""):
        with path.open("ab") as fh:
            fh.write(added)
        done = subprocess.run([LOGANALYZER, "ingest", str(path), "--store", str(store)],
                              capture_output=True, text=True)  # fmt: skip
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        said.append((lines[0].split("; ")[1].split(",")[0], "held back" in done.stdout))
    # g1 waits for its line end, g2 for its subject's second line
    assert said == [("1 row", True), ("1 row", True), ("2 rows", False), ("0 rows", False)]
    got = sorted((r["line"], r["message_id"], r["message_subject"]) for r in rows_of(store))
    assert got == [
        (3, "<g0@contoso.com>", "Q3; budget, final"),
        (4, "<g1@contoso.com>", "Q3; budget, final"),
        (5, "<g2@contoso.com>", "two lines"),
        (7, "<g3@contoso.com>", "Q3; budget, final"),
    ]
    assert quarantine_of(store) == []
    assert {r["custom_data"] for r in rows_of(store)} == {rows_of(store)[0]["custom_data"]}


def test_a_finished_export_without_its_last_line_end_is_read_whole_with_final(tmp_path):
    rows = [
        {**PS_BASE, "MessageId": f"<f{i}@contoso.com>", "Received": f"2026-02-23T1{i}:00:00"}
        for i in range(2)
    ]
    path = write(tmp_path, "trace.csv", csv_text(rows, PS_COLUMNS).removesuffix("\r\n"))
    store = str(tmp_path / "store")
    waits = subprocess.run([LOGANALYZER, "ingest", str(path), "--store", store],
                           capture_output=True, text=True)  # fmt: skip
    assert "1 incomplete last line held back until its file grows or --final" in waits.stdout
    final = subprocess.run([LOGANALYZER, "ingest", str(path), "--store", store, "--final"],
                           capture_output=True, text=True)  # fmt: skip
    assert final.returncode == 0 and "1 row," in final.stdout, final.stdout + final.stderr
    assert sorted(r["message_id"] for r in rows_of(tmp_path / "store")) == [
        "<f0@contoso.com>",
        "<f1@contoso.com>",
    ]


def test_ps_detail_export(store_dir, tmp_path):
    # Built: I.4's Get-MessageTraceDetail properties; Data as RWS's <root><MEP .../></root>.
    common = {
        "MessageId": "<m@contoso.com>",
        "MessageTraceId": "a6f62809-5cda-4454-0962-08dab38940d6",
        "SenderAddress": "alice@contoso.com",
        "RecipientAddress": "bob@fabrikam.com",
        "Organization": "contoso.onmicrosoft.com",
    }
    mep = '<root><MEP Name="ServerHostName" String="BY5PR04MB6279"/></root>'
    rows = [
        {
            "Date": "2026-02-23T23:01:02.000Z",
            "Event": "Receive",
            "Action": "",
            "Detail": "Message received by: BY5PR04MB6279.namprd04.prod.outlook.com",
            "Data": mep,
        },
        {
            "Date": "2026-02-23T23:01:03.000Z",
            "Event": "Send external",
            "Action": "",
            "Detail": "Message sent to mx.fabrikam.com at 203.0.113.5 using TLS1.2",
            "Data": "",
        },
        {
            "Date": "2026-02-23T23:01:04.000Z",
            "Event": "Fail",
            "Action": "RejectMessage",
            "Detail": "Reason: [{LED=550 5.1.10 RESOLVER.ADR.RecipientNotFound; not found};{MSG=}]",
            "Data": "",
        },
    ]
    rows = [{**common, **r} for r in rows]
    ingest([write(tmp_path, "detail.csv", csv_text(rows), "utf16le-no-bom")], store_dir)
    got = sorted(rows_of(store_dir), key=lambda r: r["line"])
    assert [(r["event_id"], r["outcome"]) for r in got] == [
        ("Receive", "received"),
        ("Send external", "transferred"),
        ("Fail", "failed"),
    ]
    assert got[0]["server_hostname"] == "BY5PR04MB6279" and got[0]["custom_data"] == mep
    assert {r["server"] for r in got} == {"BY5PR04MB6279"}
    assert got[2]["source_context"] == "RejectMessage"
    assert got[2]["recipient_status"] == [rows[2]["Detail"]]
    assert got[2]["enhanced_status"] == ["5.1.10"]
    assert {r["log_type"] for r in got} == {"EXO-PS-DETAIL"}


def test_ndjson_sample_equals_its_own_json_values(store_dir):
    summary = ingest([NDJSON], store_dir)
    assert summary.files[0].format == "exo-message-trace" and summary.quarantined == 0
    assert not NDJSON.read_bytes().endswith(b"\n")
    lines = NDJSON.read_text(encoding="utf-8").split("\n")
    assert json.loads(lines[-1])["value"] == []  # the empty OData envelope adds nothing
    got = {r["line"]: r for r in rows_of(store_dir)}
    assert sorted(got) == [1, 2, 3, 4]
    for n, text in enumerate(lines[:4], start=1):
        doc, r = json.loads(text), got[n]
        received = doc["Received"].rstrip("Z")
        assert r["date_time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] == received[:23]
        assert r["message_id"] == doc["MessageId"]
        assert r["network_message_id"] == doc["MessageTraceId"]
        assert r["sender_address"] == doc["SenderAddress"]
        assert r["recipient_address"] == [doc["RecipientAddress"]]
        assert r["message_subject"] == doc["Subject"]
        assert (r["event_id"], r["outcome"]) == (doc["Status"], "delivered")
        assert (r["client_ip"], r["server_ip"]) == (doc["FromIP"], doc["ToIP"])
        assert (r["total_bytes"], r["tenant_id"]) == (doc["Size"], doc["Organization"])
        assert (r["log_type"], r["source"], r["server"]) == ("EXO-API", "EXO", "EXCHANGE-ONLINE")


def sekoia_record() -> tuple[str, dict]:
    wrapper = json.loads(SEKOIA.read_text(encoding="utf-8"))
    return wrapper["input"]["message"], wrapper["expected"]


def test_sekoia_wrapper_is_refused_by_name(store_dir):
    # the only input is no log: nothing to ingest, the reason named, no store made
    with pytest.raises(BadInput, match="SEKOIA test wrapper, not a message trace export"):
        ingest([SEKOIA], store_dir)
    assert not store_dir.exists()
    with pytest.raises(NotALog, match="SEKOIA"):
        detect(SEKOIA.read_bytes(), SEKOIA.name)


def test_sekoia_record_with_epoch_dates(store_dir, tmp_path):
    record, expected = sekoia_record()
    ingest([write(tmp_path, "record.json", record, "utf8-resaved")], store_dir)
    r = one_row(store_dir)
    stamp = r["date_time"].strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    assert stamp == expected["@timestamp"] == "2022-07-25T12:26:13.240000Z"
    assert [r["sender_address"]] == expected["email"]["from"]["address"]
    assert r["recipient_address"] == expected["email"]["to"]["address"]
    assert r["message_id"] == expected["email"]["message_id"]
    assert r["message_subject"] == expected["email"]["subject"]
    assert (r["event_id"], r["outcome"]) == (expected["event"]["action"], "pending")
    assert r["total_bytes"] == expected["office365"]["message_trace"]["Size"]
    assert r["network_message_id"] == expected["office365"]["message_trace"]["MessageTraceId"]
    assert r["client_ip"] == expected["source"]["ip"]
    assert r["tenant_id"] == expected["organization"]["name"]


def test_odata_document_pretty_printed_in_utf16(store_dir, tmp_path):
    # Built: the NDJSON sample's first two records in an OData {"value": [...]} document.
    records = [json.loads(x) for x in NDJSON.read_text(encoding="utf-8").split("\n")[:2]]
    doc = {"odata.metadata": "https://reports.office365.com/ecp/...#MessageTrace", "value": records}
    text = json.dumps(doc, indent=2)
    ingest([write(tmp_path, "page1.json", text, "utf16le-bom")], store_dir)
    got = sorted(rows_of(store_dir), key=lambda r: r["line"])
    starts = [n for n, ln in enumerate(text.splitlines(), start=1) if ln == "    {"]
    assert [r["line"] for r in got] == starts
    assert [r["message_subject"] for r in got] == [x["Subject"] for x in records]


def test_a_bad_record_of_a_pretty_printed_document_is_quarantined_whole(tmp_path):
    # Built: Graph Explorer and ConvertTo-Json indent their documents; a record with a bad
    # size was quarantined as its first line alone, "{" (which message it was, lost).
    records = [GRAPH_RECORDS[0], {**GRAPH_RECORDS[1], "size": "big"}]
    text = json.dumps({"value": records}, indent=4)
    write(tmp_path, "graph.json", text, "utf8-resaved")
    store = tmp_path / "store"
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", str(store)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    [bad] = quarantine_of(store)
    starts = [n for n, ln in enumerate(text.splitlines(), start=1) if ln == "        {"]
    assert (bad["line"], bad["reason"]) == (starts[1], "bad Size")
    assert json.loads(bad["raw"]) == records[1]
    assert [r["line"] for r in rows_of(store)] == starts[:1]


def test_odata_verbose_document_and_compact_array(store_dir, tmp_path):
    record, _ = sekoia_record()
    text = json.dumps({"d": {"results": [json.loads(record)] * 2}})
    ingest([write(tmp_path, "a.json", text, "utf8-resaved")], store_dir)
    assert [r["line"] for r in rows_of(store_dir)] == [1, 1]


def test_damaged_json_lines_go_to_quarantine(store_dir, tmp_path):
    lines = NDJSON.read_text(encoding="utf-8").split("\n")
    text = "\n".join([lines[0], lines[1][:60], '{"hello": "world"}', lines[2], lines[4]]) + "\n"
    summary = ingest([write(tmp_path, "broken.log", text, "utf8-resaved")], store_dir)
    assert sorted(r["line"] for r in rows_of(store_dir)) == [1, 4]
    reasons = {q["line"]: q["reason"] for q in quarantine_of(store_dir)}
    assert reasons[2].startswith("bad JSON") and reasons[3] == "not a message trace record"
    assert summary.quarantined == 2


def test_bad_rows_of_a_csv_go_to_quarantine(store_dir, tmp_path):
    rows = [SUMMARY, {**SUMMARY, "origin_timestamp_utc": "soon"}, {**SUMMARY, "total_bytes": "big"}]
    text = csv_text(rows) + '"2021-03-23T10:00:09Z","too","few"\r\n'
    ingest([write(tmp_path, "s.csv", text)], store_dir)
    assert [r["line"] for r in rows_of(store_dir)] == [2, 2]  # its two recipients
    reasons = [(q["line"], q["reason"]) for q in quarantine_of(store_dir)]
    assert dict(reasons) == {
        3: "bad or missing time",
        4: "bad total_bytes",
        5: "wrong field count: expected 11, found 3",
    }
    assert len(reasons) == 3  # a line once, whatever its recipients


@pytest.mark.parametrize(
    "text,expected",
    [
        ("2022-09-05T18:10:13.4907658", "2022-09-05T18:10:13.490"),
        ("2022-10-21T17:25:30.6006882Z", "2022-10-21T17:25:30.600"),
        ("2022-10-21T09:40:10Z", "2022-10-21T09:40:10.000"),
        ("/Date(1658751973240)/", "2022-07-25T12:26:13.240"),
        ("/Date(1658751973240+0200)/", "2022-07-25T12:26:13.240"),
        ("2/23/2026 11:01:02 PM", "2026-02-23T23:01:02.000"),
        ("2/23/2026 12:01:02 AM", "2026-02-23T00:01:02.000"),
        ("2/23/2026 12:01:02 PM", "2026-02-23T12:01:02.000"),
        ("12/3/2025 7:50:43 PM", "2025-12-03T19:50:43.000"),  # en-US: month first
        ("12/3/2025 19:50:43", "2025-03-12T19:50:43.000"),  # a 24-hour culture: day first
        ("05.09.2022 18:10:13", "2022-09-05T18:10:13.000"),
        ("never", None),
        (None, None),
    ],
)
def test_parse_time(text, expected):
    [got] = parse_time(pa.array([text], pa.string())).to_pylist()
    assert (got.strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] if got else None) == expected


def test_slashed_dates_are_day_first_when_a_day_shows_it():
    got = parse_time(pa.array(["3/12/2025 10:00:00", "25/12/2025 10:00:00"])).to_pylist()
    assert [g.date().isoformat() for g in got] == ["2025-12-03", "2025-12-25"]


def ps_export(received: list[str], first: int = 0) -> str:
    """The data lines of a Get-MessageTrace CSV export (no header line), a message a line:
    ``<m{i}@contoso.com>`` received at ``received[i - first]``."""
    rows = [
        {**PS_BASE, "Received": t, "Status": "Delivered", "MessageId": f"<m{i}@contoso.com>"}
        for i, t in enumerate(received, first)
    ]
    return csv_text(rows, PS_COLUMNS).split("\r\n", 1)[1]


def ps_header() -> str:
    return csv_text([PS_BASE], PS_COLUMNS).split("\r\n", 1)[0] + "\r\n"


def test_a_file_read_in_runs_of_any_size_has_one_date_order(monkeypatch):
    """An en-AU export (day first, 12-hour times): only its last date shows the order, in the
    last run of a file read in small blocks; every run is read day first."""
    received = [f"{d}/3/2026 9:0{d % 10}:00 PM" for d in range(1, 13)] + ["25/3/2026 9:00:00 AM"]
    data = (ps_header() + ps_export(received)).encode()
    want = [datetime(2026, 3, d, 21, d % 10, tzinfo=UTC) for d in range(1, 13)]
    want.append(datetime(2026, 3, 25, 9, 0, tzinfo=UTC))
    for size in (600, 2000, len(data)):
        monkeypatch.setattr(exo, "read_runs", partial(base.read_runs, block_size=size))
        ctx = Context(path="trace.csv", log_type="EXO-PS-TRACE", final=True)
        state = ReadState()
        batches = list(exo.FORMAT.parse(io.BytesIO(data), state, ctx))
        tables = [b.table for b in batches if b.table]
        assert len(tables) > 1 or size == len(data)
        assert [t for x in tables for t in x.column("date_time").to_pylist()] == want, size
        assert "#dates: day-first" in state.header.splitlines()
        assert [w for b in batches for w in b.warnings] == []


def ingest_cli(folder, store) -> subprocess.CompletedProcess:
    done = subprocess.run([LOGANALYZER, "ingest", str(folder), "--store", str(store)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done


def sql_cli(store, query: str) -> list[dict]:
    done = subprocess.run([LOGANALYZER, "sql", "--store", str(store), "--json", query],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_big_export_has_one_date_order_in_every_run(tmp_path):
    """An export larger than a read block, whose only date with a day above 12 is its last
    line: the dates of the first blocks (12-hour, 5/3/2026) are 5 March as well, not 3 May."""
    lines = ps_export(["5/3/2026 9:00:00 PM"] * 60_000 + ["25/3/2026 9:00:00 AM"])
    path = write(tmp_path, "trace.csv", ps_header() + lines, "utf8-resaved")
    assert path.stat().st_size > base.BLOCK_SIZE  # read in two runs or more
    store = tmp_path / "store"
    done = ingest_cli(path.parent, store)
    assert "warning" not in done.stderr + done.stdout  # the last date shows the order
    query = "select strftime(date_time, '%Y-%m-%d %H:%M') as t, count(*) as n from tracking"
    assert sql_cli(store, query + " group by t order by t") == [
        {"t": "2026-03-05 21:00", "n": 60_000},
        {"t": "2026-03-25 09:00", "n": 1},
    ]
    trace = subprocess.run([LOGANALYZER, "trace", "<m0@contoso.com>", "--store", str(store),
                            "--json"], capture_output=True, text=True, timeout=300)  # fmt: skip
    assert trace.returncode == 0, trace.stderr
    [m] = json.loads(trace.stdout)["messages"]
    assert m["received_at"] == "2026-03-05T21:00:00.000Z"


def test_dates_that_do_not_show_their_order_are_read_by_the_clock_with_a_warning(tmp_path):
    """No day above 12: 12-hour times are en-US's (month first), 24-hour ones a day-first
    culture's; the summary says how the file was read. Lines added later keep its order, and
    those that contradict it are quarantined, said once."""
    us = write(tmp_path, "us.csv", ps_header() + ps_export(["3/5/2026 9:00:00 PM"]), "utf8-bom")
    eu = write(tmp_path, "eu.csv", ps_header() + ps_export(["3/5/2026 21:00:00"], 1), "utf8-bom")
    store = tmp_path / "store"
    said = " ".join((lambda d: d.stderr + d.stdout)(ingest_cli(us.parent, store)).split())
    assert (
        f"{us.name}: no date shows its order (no number above 12): read month-first by its"
        " 12-hour times (AM/PM), as en-US writes"
    ) in said
    assert (
        f"{eu.name}: no date shows its order (no number above 12): read day-first by its"
        " 24-hour times"
    ) in said
    with open(us, "a", newline="") as fh:  # 4/5 is 5 April as 3/5 was 5 March; 25/3 is wrong
        fh.write(ps_export(["4/5/2026 9:00:00 PM", "25/3/2026 9:00:00 PM"], 2))
    said = " ".join((lambda d: d.stderr + d.stdout)(ingest_cli(us.parent, store)).split())
    assert "1 quarantined line" in said
    assert f"{us.name}: 1 added date is not month-first as the file's first ones" in said
    query = "select message_id as m, strftime(date_time, '%Y-%m-%d') as d from tracking"
    assert sql_cli(store, query + " order by m") == [
        {"m": "<m0@contoso.com>", "d": "2026-03-05"},
        {"m": "<m1@contoso.com>", "d": "2026-05-03"},
        {"m": "<m2@contoso.com>", "d": "2026-04-05"},
    ]


def test_dates_in_both_orders_read_in_the_order_most_show(store_dir, tmp_path):
    received = [
        "25/3/2026 09:00:00",
        "26/3/2026 09:00:00",
        "3/27/2026 09:00:00",
        "1/2/2026 09:00:00",
    ]
    summary = ingest([write(tmp_path, "t.csv", ps_header() + ps_export(received))], store_dir)
    assert (summary.rows, summary.quarantined) == (3, 1)
    assert [q["line"] for q in quarantine_of(store_dir)] == [4]
    got = sorted(rows_of(store_dir), key=lambda r: r["line"])
    assert [r["date_time"].date().isoformat() for r in got] == [
        "2026-03-25",
        "2026-03-26",
        "2026-02-01",
    ]
    assert any(
        "dates in both orders (2 day first, 1 month first): read day-first, the other" in w
        for w in summary.warnings
    )


@pytest.mark.parametrize(
    "head",
    [
        b"name,size\r\nx,1\r\n",
        b'{"status": "ok"}\n',
        b"#Software: Microsoft Exchange Server\r\n",
        "date,event,user\r\n".encode("utf-16-le"),
    ],
)
def test_other_files_are_not_claimed(head):
    assert exo.detect(head, "x.csv") is None


def test_detection_by_content():
    for text, kind in [
        (csv_text([SUMMARY]), "EXO-SUMMARY"),
        (csv_text([DETAIL]), "EXO-DETAIL"),
        ("#TYPE x\r\n" + ",".join(PS_COLUMNS), "EXO-PS-TRACE"),
        ("Date;Event;Action;Detail;Data", "EXO-PS-DETAIL"),
    ]:
        for encode in ENCODINGS.values():
            assert exo.detect(encode(text), "x.csv").log_type == kind
    assert exo.detect(NDJSON.read_bytes(), NDJSON.name).log_type == "EXO-API"


def test_sample_parses(store_dir, tmp_path):
    summary = ingest([write(tmp_path, "sample.csv", exo.FORMAT.sample)], store_dir)
    assert summary.rows == 2 and summary.quarantined == 0  # a row a recipient


def test_a_grown_export_is_read_on_in_its_encoding(store_dir, tmp_path):
    one = {**SUMMARY, "recipient_status": "a@x.com##Receive, Deliver"}  # a row each
    path = write(tmp_path, "s.csv", csv_text([one] * 2))
    assert ingest([path], store_dir).rows == 2
    more = csv_text([{**one, "total_bytes": "7"}]).split("\r\n", 1)[1]
    with open(path, "ab") as fh:
        fh.write(more.encode("utf-16-le"))
    second = ingest([path], store_dir)
    assert second.files[0].status == "grown" and second.rows == 1
    assert sorted((r["line"], r["total_bytes"]) for r in rows_of(store_dir)) == [
        (2, 49790),
        (3, 49790),
        (4, 7),
    ]


# Microsoft Graph exchangeMessageTrace (GET /admin/exchange/tracing/messageTraces), built
# from its documented properties: id, messageId, senderAddress, recipientAddress,
# receivedDateTime, status (camelCase enum), subject, size, fromIP, toIP.
GRAPH_RECORDS = [
    {
        "id": "4b7a5e5c-3f1c-4d0e-9f5a-08dd6b1b2c3d",
        "messageId": "<CY4PR01MB1234.5678@CY4PR01MB1234.namprd01.prod.outlook.com>",
        "senderAddress": "alice@contoso.com",
        "recipientAddress": "bob@fabrikam.com",
        "receivedDateTime": "2025-03-24T08:15:27.123Z",
        "status": "delivered",
        "subject": "Quarterly report",
        "size": 48213,
        "fromIP": "2a01:111:f403:c100::3",
        "toIP": "203.0.113.9",
    },
    {
        "id": "9c1d2e3f-4a5b-4c6d-8e7f-08dd6b1b2c3e",
        "messageId": "<promo-77@mailer.example.com>",
        "senderAddress": "news@mailer.example.com",
        "recipientAddress": "alice@contoso.com",
        "receivedDateTime": "2025-03-24T08:16:01Z",
        "status": "filteredAsSpam",
        "subject": "You won",
        "size": 9120,
        "fromIP": "198.51.100.77",
        "toIP": None,
    },
]
#: The same records as the older reporting API (and Get-MessageTrace) writes them.
OLD_NAMES = {
    "id": "MessageTraceId",
    "messageId": "MessageId",
    "senderAddress": "SenderAddress",
    "recipientAddress": "RecipientAddress",
    "receivedDateTime": "Received",
    "subject": "Subject",
    "size": "Size",
    "fromIP": "FromIP",
    "toIP": "ToIP",
}
OLD_STATUS = {"delivered": "Delivered", "filteredAsSpam": "FilteredAsSpam"}


def rows_in_time_order(store) -> list[dict]:
    """The store's tracking rows by time, without the file and line they come from."""
    got = sorted(rows_of(store), key=lambda r: r["date_time"])
    return [{k: v for k, v in r.items() if k not in ("file", "line")} for r in got]


def rows_like_the_older_api(store_dir, tmp_path, graph, old) -> list[dict]:
    """Ingests a Graph response into ``store_dir`` and the same records as the older API
    names them into a store of their own; the rows of the first, which equal the second's."""
    ingest([write(tmp_path, "graph.json", json.dumps(graph), "utf8-resaved")], store_dir)
    ingest([write(tmp_path, "old.json", json.dumps(old), "utf8-resaved")], tmp_path / "old")
    got = rows_in_time_order(store_dir)
    assert got == rows_in_time_order(tmp_path / "old")
    return got


def test_graph_message_trace_records_ingest_like_the_older_api(store_dir, tmp_path):
    graph = {
        "@odata.context": "https://graph.microsoft.com/beta/$metadata#admin/exchange/tracing/"
        "messageTraces",
        "value": GRAPH_RECORDS,
    }
    old = [
        {
            **{OLD_NAMES[k]: v for k, v in r.items() if k in OLD_NAMES},
            "Status": OLD_STATUS[r["status"]],
        }
        for r in GRAPH_RECORDS
    ]
    got = rows_like_the_older_api(store_dir, tmp_path, graph, old)
    assert [
        (r["network_message_id"], r["event_id"], r["outcome"], r["client_ip"], r["server_ip"])
        for r in got
    ] == [
        (
            "4b7a5e5c-3f1c-4d0e-9f5a-08dd6b1b2c3d",
            "Delivered",
            "delivered",
            "2a01:111:f403:c100::3",
            "203.0.113.9",
        ),
        (
            "9c1d2e3f-4a5b-4c6d-8e7f-08dd6b1b2c3e",
            "FilteredAsSpam",
            "dropped",
            "198.51.100.77",
            None,
        ),
    ]
    first = got[0]
    assert (first["message_id"], first["sender_address"], first["recipient_address"]) == (
        "<CY4PR01MB1234.5678@CY4PR01MB1234.namprd01.prod.outlook.com>",
        "alice@contoso.com",
        ["bob@fabrikam.com"],
    )
    assert (first["message_subject"], first["total_bytes"]) == ("Quarterly report", 48213)
    assert first["date_time"] == datetime(2025, 3, 24, 8, 15, 27, 123000, tzinfo=UTC)


# Microsoft Graph exchangeMessageTraceDetail (GET .../messageTraces/{id}/getDetailsByRecipient
# (recipientAddress='...')), the documentation's example response: its properties are id,
# messageId, dateTime, event, action, description, data; no sender, no recipient (the request
# names the recipient: a script that saves the responses may add it, as the second file does).
def test_a_bad_time_beside_a_time_with_an_offset_says_nothing_but_its_line(tmp_path):
    # Built: Graph records, one time with an offset, one not a time: numpy's warning about
    # the offset went to stderr as two lines of Python.
    records = [
        {**GRAPH_RECORDS[0], "receivedDateTime": "2026-03-11T09:00:00.123+01:00"},
        {**GRAPH_RECORDS[1], "receivedDateTime": "garbage"},
    ]
    write(tmp_path, "graph.json", json.dumps({"value": records}), "utf8-resaved")
    store = tmp_path / "store"
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", str(store)],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0 and done.stderr == "", done.stderr
    [r] = rows_of(store)
    assert r["date_time"] == datetime(2026, 3, 11, 8, 0, 0, 123000, tzinfo=UTC)
    assert [q["reason"] for q in quarantine_of(store)] == ["bad or missing time"]


GRAPH_DETAIL = {
    "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#Collection(microsoft.graph."
    "exchangeMessageTraceDetail)",
    "value": [
        {
            "id": "7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1",
            "messageId": "<d9683b4c-127b-413a-ae2e-fa7dfb32c69d@contoso.com>",
            "dateTime": "2025-06-13T10:30:05Z",
            "event": "Receive",
            "action": "",
            "description": "Message received by: MN2PR00MB0670.namprd00.prod.outlook.com",
            "data": '<root><MEP Name="ReturnPath" String="robert@contoso.com" /></root>',
        },
        {
            "id": "7e3b2b2e-1b5e-4b17-80cc-2af6c1d9a3b1",
            "messageId": "<d9683b4c-127b-413a-ae2e-fa7dfb32c69d@contoso.com>",
            "dateTime": "2025-06-13T10:30:10Z",
            "event": "Deliver",
            "action": "",
            "description": "The message was successfully delivered.",
            "data": '<root><MEP Name="DeliveryPriority" String="Normal" /></root>',
        },
    ],
}
#: The same details as Get-MessageTraceDetail and the older reporting API name them.
OLD_DETAIL_NAMES = {
    "messageId": "MessageId",
    "dateTime": "Date",
    "event": "Event",
    "action": "Action",
    "description": "Detail",
    "data": "Data",
    "recipientAddress": "RecipientAddress",
}


def test_graph_trace_details_ingest_like_get_messagetracedetail(store_dir, tmp_path):
    old = [
        {OLD_DETAIL_NAMES[k]: v for k, v in r.items() if k in OLD_DETAIL_NAMES}
        for r in GRAPH_DETAIL["value"]
    ]
    got = rows_like_the_older_api(store_dir, tmp_path, GRAPH_DETAIL, old)
    assert [
        (r["date_time"], r["event_id"], r["outcome"], r["message_id"], r["recipient_status"])
        for r in got
    ] == [
        (
            datetime(2025, 6, 13, 10, 30, 5, tzinfo=UTC),
            "Receive",
            "received",
            "<d9683b4c-127b-413a-ae2e-fa7dfb32c69d@contoso.com>",
            ["Message received by: MN2PR00MB0670.namprd00.prod.outlook.com"],
        ),
        (
            datetime(2025, 6, 13, 10, 30, 10, tzinfo=UTC),
            "Deliver",
            "delivered",
            "<d9683b4c-127b-413a-ae2e-fa7dfb32c69d@contoso.com>",
            ["The message was successfully delivered."],
        ),
    ]
    assert [r["recipient_address"] for r in got] == [[], []]  # the request named it


def test_graph_trace_details_through_the_command(tmp_path):
    """Saved responses of getDetailsByRecipient (one with the recipient added, one empty) are
    recognised, ingested and traced by the command."""
    named = {
        **GRAPH_DETAIL,
        "value": [{**r, "recipientAddress": "robert@contoso.com"} for r in GRAPH_DETAIL["value"]],
    }
    empty = {"@odata.context": GRAPH_DETAIL["@odata.context"], "value": []}
    write(tmp_path, "robert.json", json.dumps(named, indent=2), "utf8-resaved")
    write(tmp_path, "nobody.json", json.dumps(empty), "utf8-resaved")
    store = tmp_path / "store"
    run = [LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", str(store), "--json"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert (summary["rows"], summary["quarantined"], summary["files"]["skipped"]) == (2, 0, 0)
    trace = subprocess.run(
        [LOGANALYZER, "trace", GRAPH_DETAIL["value"][0]["messageId"], "--store", str(store),
         "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert trace.returncode == 0, trace.stderr
    [m] = json.loads(trace.stdout)["messages"]
    assert [(v["address"], v["verdict"]) for v in m["recipients"]] == [
        ("robert@contoso.com", "delivered")
    ]


#: Each status of a trace summary (Get-MessageTrace, the reporting API, Graph) and the verdict
#: a trace gives its recipient.
STATUS_VERDICTS = {
    "Delivered": "delivered",
    "Failed": "failed",
    "Pending": "deferred",
    "FilteredAsSpam": "dropped",
    "Quarantined": "quarantined",
    "Expanded": "expanded",
    "GettingStatus": "deferred",
}


def test_every_status_decides_its_recipients_verdict(tmp_path):
    """A summary's status is the recipient's fate (it was "last seen ... the next hop's logs
    are not in the store" whatever it said): traced and counted by the report through the
    command; a detail export's last event decides the same way."""
    records = [
        {
            "MessageTraceId": f"00000000-0000-0000-0000-00000000000{i}",
            "MessageId": f"<exo{i}@fabrikam.com>",
            "SenderAddress": "a@fabrikam.com",
            "RecipientAddress": f"u{i}@contoso.com",
            "Received": f"2026-03-02T10:0{i}:00Z",
            "Status": status,
            "Subject": "t",
            "Size": 100,
        }
        for i, status in enumerate(STATUS_VERDICTS)
    ]
    write(tmp_path, "trace.json", "\n".join(json.dumps(r) for r in records), "utf8-resaved")
    detail = [
        {"Date": "2026-02-23T23:01:02Z", "Event": "Receive", "Detail": "Message received"},
        {"Date": "2026-02-23T23:01:03Z", "Event": "Send external", "Detail": "Message sent"},
    ]
    common = {
        "MessageId": "<out@contoso.com>",
        "SenderAddress": "alice@contoso.com",
        "RecipientAddress": "bob@fabrikam.com",
        "MessageTraceId": records[0]["MessageTraceId"],
    }
    write(tmp_path, "detail.csv", csv_text([{**common, **r} for r in detail]), "utf8-resaved")
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", store],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [LOGANALYZER, "trace", "--since", "2026-02-01", "--all", "--store", store, "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    got = {
        v["address"]: v["verdict"]
        for m in json.loads(listed.stdout)["messages"]
        for v in m["recipients"]
    }
    want = {r["RecipientAddress"]: STATUS_VERDICTS[r["Status"]] for r in records}
    assert got == {**want, "bob@fabrikam.com": "sent_external"}
    report = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", store, "--date", "2026-03-02", "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert report.returncode == 0, report.stderr
    headline = json.loads(report.stdout)["headline"]
    assert (headline["delivered_recipients"], headline["failed_recipients"]) == (1, 1)
    assert headline["still_deferred_recipients"] == 2
    # each summary row is its message's receipt by the service (there is no receive event)
    assert (headline["received_messages"], headline["bytes_in"]) == (len(records), 100 * 7)
    assert headline["distinct_senders"] == 1


def test_graph_recalled_and_unknown_statuses_say_what_the_service_said(tmp_path):
    """Graph's ``recalled`` and ``unknownFutureValue`` (FORMATS.md N.2): Exchange Online is the
    last hop, so neither blames a next hop's missing logs; the codes command knows both."""
    records = [
        {
            "id": f"4f1f3b2a-0000-4000-8000-00000000000{i}",
            "senderAddress": "a@contoso.com",
            "recipientAddress": f"{status.lower()}@contoso.com",
            "receivedDateTime": f"2026-03-08T06:5{i}:59Z",
            "subject": "x",
            "size": 100,
            "status": status,
            "fromIP": "192.0.2.1",
            "toIP": "",
            "messageId": f"<g{i}@contoso.com>",
        }
        for i, status in enumerate(["recalled", "unknownFutureValue", "None", "Resolved"])
    ]
    document = {"@odata.context": GRAPH_DETAIL["@odata.context"], "value": records}
    write(tmp_path, "graph.json", json.dumps(document), "utf8-resaved")
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(tmp_path / "exports"), "--store", store],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    listed = subprocess.run(
        [LOGANALYZER, "trace", "--since", "2026-03-01", "--all", "--store", store, "--json"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    got = {
        v["address"]: (v["verdict"], v["summary"])
        for m in json.loads(listed.stdout)["messages"]
        for v in m["recipients"]
    }
    verdict, words = got["recalled@contoso.com"]
    assert verdict == "dropped" and "recalled by its sender" in words
    verdict, words = got["unknownfuturevalue@contoso.com"]
    assert verdict == "last_seen" and "status unknown" in words and "UnknownFutureValue" in words
    assert "logs are not in the store" not in words
    # the older statuses None and Resolved (Get-MessageTrace, the classic admin center) alike
    for address, said in [
        ("none@contoso.com", "no delivery status (the service wrote None"),
        ("resolved@contoso.com", "resolved to another address (the service wrote Resolved"),
    ]:
        verdict, words = got[address]
        assert verdict == "last_seen" and said in words and "logs are not" not in words, words
    for asked, code in [
        ("recalled", "Recalled"),
        ("unknownFutureValue", "UnknownFutureValue"),
        ("Filtered as spam", "FilteredAsSpam"),
        ("Getting status", "GettingStatus"),
    ]:
        answer = subprocess.run([LOGANALYZER, "codes", asked, "--json"],
                                capture_output=True, text=True, timeout=300)  # fmt: skip
        assert answer.returncode == 0, (asked, answer.stderr)
        assert [(e["family"], e["code"]) for e in json.loads(answer.stdout)] == [
            ("exo-status", code)
        ]
