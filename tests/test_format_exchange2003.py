"""Exchange 2000/2003 tracking logs (FORMATS.md section A).

Only one real line of this format is public: tests/corpus/exchange2003/ (from eldy/AWStats, see
PROVENANCE.md). Every other file here is built in the test from that line, the documented
field list (A.4) and the event table (A.5); each test says which variation it builds.

Golden cases (tests/golden/exchange2003-tracking/): headerless-real-awstats-1019.log is the real
line unchanged; the other two were built from it with ``real_line`` below: the header and
column-name line of A.2 over a 1019 -> 1028 event sequence, and padded, unpadded, GMT-less,
20-field, RFC 2047 and damaged copies.
"""

from __future__ import annotations

import json

import pyarrow as pa
import pytest
from conftest import CORPUS, run_cli
from test_ingest_tracking import quarantine_of, rows_of

import eventcodes
from loganalyzer.errors import BadInput
from loganalyzer.formats import exchange2003
from loganalyzer.ingest import ingest
from loganalyzer.pages import display_subject
from loganalyzer.schema import TRACKING

REAL = CORPUS / "exchange2003" / "awstats-maillogconvert-example.log"
NAME = "exchange2003-tracking"
#: The real line's 21 fields (the 20 documented ones and a trailing ``-``).
FIELDS = REAL.read_text(encoding="utf-8").rstrip("\n").split("\t")
HEADER = "# Message Tracking Log File\r\n# Exchange System Attendant Version 6.5.7638.1\r\n"
COLUMN_LINE = (
    "# Date\tTime\tClient-IP\tClient-hostname\tPartner-Name\tServer-hostname\tServer-IP\t"
    "Recipient-Address\tEvent-ID\tMSGID\tPriority\tRecipient-Report-Status\tTotal-bytes\t"
    "Number-Recipients\tOrigination-Time\tEncryption\tService-Version\tLinked-MSGID\t"
    "Message-Subject\tSender-Address\r\n"
)


def real_line(**changes: str) -> str:
    """The real line with some documented fields replaced (names as in ``exchange2003.FIELDS``)."""
    values = list(FIELDS)
    for name, value in changes.items():
        values[exchange2003.FIELDS.index(name.replace("_", "-"))] = value
    return "\t".join(values) + "\r\n"


def write(tmp_path, text: str, name: str = "20030812.log"):
    path = tmp_path / "PACKRAT.log" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))
    return path


def test_the_real_line_ingests_with_every_value(store_dir):
    summary = ingest([REAL], store_dir, format=NAME)
    assert summary.exit_code == 0 and summary.quarantined == 0
    [r] = rows_of(store_dir)
    f = dict(zip(exchange2003.FIELDS, FIELDS, strict=False))
    assert len(FIELDS) == 21 and FIELDS[20] == "-"
    assert r["date_time"].isoformat() == "2003-08-12T00:58:14+00:00"
    assert (r["client_ip"], r["client_hostname"]) == (f["client-ip"], f["client-hostname"])
    assert (r["server_hostname"], r["server_ip"]) == ("PACKRAT", f["server-ip"])
    assert r["partner_name"] is None and r["linked_msgid"] is None  # "-" in the log
    assert r["recipient_address"] == ["christina@pirnie.org"]
    assert (r["event_id"], r["outcome"]) == ("1019", "submitted")
    assert r["message_id"] == "<bh9e3f+5qvo@eGroups.com>"
    assert (r["priority"], r["recipient_report_status"], r["encryption"]) == ("0", "0", "0")
    assert (r["total_bytes"], r["recipient_count"]) == (4281, 1)
    assert r["origination_time"] == "2003-8-12 0:58:14 GMT"
    assert r["service_version"] == "Version: 6.0.3790.0"
    assert r["message_subject"] == " [SRESafeHaven] Re: More Baby Stuff"  # raw, leading space
    assert (r["sender_address"], r["sender_domain"]) == ("jtluvs2cq@wmconnect.com", "wmconnect.com")
    assert (r["log_format"], r["log_type"], r["line"]) == (NAME, "EX2003", 1)
    assert r["server"] == "PACKRAT" and r["file"] == str(REAL)


def test_headerless_file_needs_format(store_dir):
    with pytest.raises(BadInput, match="ingest it with --format exchange2003-tracking"):
        ingest([REAL], store_dir)


def test_a_file_with_its_header_is_recognised(store_dir, tmp_path):
    # Built: the documented header lines (A.2) above the real line and two changed copies.
    lines = [real_line(), real_line(event_id="1020"), real_line(event_id="1028")]
    log = write(tmp_path, HEADER + COLUMN_LINE + "".join(lines))
    summary = ingest([log], store_dir)
    assert summary.files[0].format == NAME and summary.quarantined == 0
    got = {r["line"]: r for r in rows_of(store_dir)}
    assert sorted(got) == [4, 5, 6]
    assert [got[n]["outcome"] for n in (4, 5, 6)] == ["submitted", "transferred", "delivered"]
    assert {r["server"] for r in got.values()} == {"PACKRAT"}


@pytest.mark.parametrize(
    "date,time,expected",
    [
        ("2003-8-12", "0:58:14 GMT", "2003-08-12T00:58:14"),
        ("2003-08-12", "00:58:14 GMT", "2003-08-12T00:58:14"),
        ("2003-8-2", "7:5:9", "2003-08-02T07:05:09"),
        ("2003-12-31", "23:59:59GMT", "2003-12-31T23:59:59"),
        ("2003-1-1", " 1:02:03 gmt", "2003-01-01T01:02:03"),
    ],
)
def test_padded_and_unpadded_dates_and_times(store_dir, tmp_path, date, time, expected):
    ingest([write(tmp_path, real_line(date=date, time=time))], store_dir, format=NAME)
    [r] = rows_of(store_dir)
    assert r["date_time"].isoformat() == expected + "+00:00"


@pytest.mark.parametrize(
    "column_line",
    [
        COLUMN_LINE,
        COLUMN_LINE.replace("\t", " "),
        COLUMN_LINE.lower(),
        COLUMN_LINE.upper().replace("# DATE", "#DATE"),
        "#Fields: " + COLUMN_LINE[2:],
    ],
    ids=["tabs", "spaces", "lower", "upper", "fields-directive"],
)
def test_column_name_line_in_any_case_and_separator(store_dir, tmp_path, column_line):
    log = write(tmp_path, HEADER + column_line + real_line())
    assert ingest([log], store_dir).quarantined == 0
    [r] = rows_of(store_dir)
    assert (r["event_id"], r["total_bytes"], r["line"]) == ("1019", 4281, 4)


def test_columns_are_mapped_by_the_column_name_line(store_dir, tmp_path):
    # Built: the column line and the real line with Client-IP and Server-IP swapped.
    names = COLUMN_LINE[2:].rstrip("\r\n").split("\t")
    i, j = names.index("Client-IP"), names.index("Server-IP")
    names[i], names[j] = names[j], names[i]
    values = list(FIELDS)
    values[i], values[j] = values[j], values[i]
    log = write(tmp_path, HEADER + "# " + "\t".join(names) + "\r\n" + "\t".join(values) + "\n")
    ingest([log], store_dir)
    [r] = rows_of(store_dir)
    assert (r["client_ip"], r["server_ip"]) == ("66.218.66.69", "192.168.1.2")


@pytest.mark.parametrize("extra", [None, "", "-"], ids=["20-fields", "empty-extra", "dash-extra"])
def test_twenty_fields_or_a_trailing_empty_extra(store_dir, tmp_path, extra):
    values = FIELDS[:20] + ([] if extra is None else [extra])
    ingest([write(tmp_path, "\t".join(values) + "\n")], store_dir, format=NAME)
    assert [r["event_id"] for r in rows_of(store_dir)] == ["1019"]


@pytest.mark.parametrize("first", [20, 21])
def test_widths_may_mix_in_one_file(store_dir, tmp_path, first):
    # Built: 20- and 21-field copies of the real line in one file, and one bad extra field.
    width = {20: "\t".join(FIELDS[:20]), 21: "\t".join(FIELDS)}
    other = 41 - first
    lines = [width[first], width[other], "\t".join(FIELDS[:20] + [""]), width[first]]
    lines.append("\t".join(FIELDS[:20] + ["x"]))
    ingest([write(tmp_path, HEADER + "\n".join(lines) + "\n")], store_dir)
    assert sorted(r["line"] for r in rows_of(store_dir)) == [3, 4, 5, 6]
    assert {r["total_bytes"] for r in rows_of(store_dir)} == {4281}
    [q] = quarantine_of(store_dir)
    assert (q["line"], q["reason"]) == (7, "wrong field count: expected 20, found 21")


def test_rfc2047_subject_is_stored_raw_and_decoded_for_display(store_dir, tmp_path):
    # Built: an RFC 2047 subject as A.3b reports (=?iso-8859-9?Q?...?=).
    subject = "=?iso-8859-9?Q?G=FCnayd=FDn_d=FCnya?="
    ingest([write(tmp_path, real_line(message_subject=subject))], store_dir, format=NAME)
    [r] = rows_of(store_dir)
    assert r["message_subject"] == subject
    assert display_subject(r["message_subject"]) == "Günaydın dünya"


@pytest.mark.parametrize(
    "raw,shown",
    [
        ("Re: =?utf-8?B?R3LDvMOfZQ==?= und =?iso-8859-1?q?caf=E9?=", "Re: Grüße und café"),
        (" [SRESafeHaven] Re: More Baby Stuff", " [SRESafeHaven] Re: More Baby Stuff"),
        ("=?x-unknown?Q?abc?=", "=?x-unknown?Q?abc?="),
        ("", ""),
        (None, ""),
    ],
)
def test_display_subject(raw, shown):
    assert display_subject(raw) == shown


def test_every_event_id_gets_its_exchange2003_outcome(store_dir, tmp_path):
    # Built: one copy of the real line per code of the exchange2003 table (A.5).
    codes = [e.code for e in eventcodes.entries("exchange2003")]
    log = write(tmp_path, HEADER + "".join(real_line(event_id=c) for c in codes))
    assert ingest([log], store_dir).quarantined == 0
    got = {r["event_id"]: r["outcome"] for r in rows_of(store_dir)}
    assert got == {c: eventcodes.lookup(c, "exchange2003").outcome for c in codes}


def test_unknown_event_id_is_kept_without_outcome(store_dir, tmp_path):
    ingest([write(tmp_path, real_line(event_id="19"))], store_dir, format=NAME)
    [r] = rows_of(store_dir)
    assert (r["event_id"], r["outcome"]) == ("19", None)


@pytest.mark.parametrize(
    "damage,reason",
    [
        ("\t".join(FIELDS[:19]) + "\n", "wrong field count: expected 20, found 19"),
        ("\t".join(FIELDS[:20] + ["x"]) + "\n", "wrong field count: expected 20, found 21"),
        (real_line(date="2003-13-45"), "bad date/time"),
        (real_line(time="yesterday"), "bad date/time"),
        (real_line(event_id="SUBMIT"), "bad event-id"),
        (real_line(total_bytes="4 KB"), "bad total-bytes"),
        (real_line(number_recipients="one"), "bad number-recipients"),
    ],
)
def test_bad_lines_go_to_quarantine(store_dir, tmp_path, damage, reason):
    text = HEADER + real_line() + damage + real_line(event_id="1020")
    summary = ingest([write(tmp_path, text)], store_dir)
    assert sorted(r["line"] for r in rows_of(store_dir)) == [3, 5]
    [q] = quarantine_of(store_dir)
    assert (q["line"], q["reason"]) == (4, reason) and summary.quarantined == 1


def test_quotes_are_plain_text_in_a_tab_separated_log(store_dir, tmp_path):
    subject = 'He said "hi, there; and'
    ingest([write(tmp_path, real_line(message_subject=subject))], store_dir, format=NAME)
    assert [r["message_subject"] for r in rows_of(store_dir)] == [subject]


def test_detection():
    head = (HEADER + COLUMN_LINE + real_line()).encode()
    assert exchange2003.detect(head, "20030812.log").format == NAME
    assert exchange2003.detect(real_line().encode(), "20030812.log") is None
    assert exchange2003.detect_headerless(real_line().encode(), "x.log").log_type == "EX2003"
    assert exchange2003.detect_headerless(real_line(event_id="X").encode(), "x.log") is None
    csv_2007 = b"2022-09-19T15:02:29.232Z,10.0.0.5,EX01,,EX02,,,SMTP,RECEIVE\r\n"
    assert exchange2003.detect_headerless(csv_2007, "MSGTRK.LOG") is None
    exchange_2000_5x = b"# Message Tracking Log File\r\n# Exchange System Attendant Version 5.5\r\n"
    assert exchange2003.detect(exchange_2000_5x, "x.log") is None


def test_sample_parses(store_dir, tmp_path):
    summary = ingest([write(tmp_path, exchange2003.FORMAT.sample)], store_dir)
    assert summary.rows == 1 and summary.quarantined == 0


def test_mapping_is_data_and_covers_the_documented_fields():
    assert list(exchange2003.COLUMNS) == exchange2003.FIELDS
    assert len(exchange2003.FIELDS) == 20
    assert set(exchange2003.COLUMNS.values()) <= set(TRACKING.names)


def test_parse_time_on_whole_columns():
    dates = pa.array(["2003-8-12", "2003-8-12", "2003-2-30", "2003-8-12", None, "2003-8-12"])
    times = pa.array(["0:58:14 GMT", "23:59:59.5 GMT", "1:00:00", "24:00:00", "1:00:00", None])
    got = exchange2003.parse_time(dates, times).to_pylist()
    assert [g.isoformat() if g else None for g in got] == [
        "2003-08-12T00:58:14+00:00",
        "2003-08-12T23:59:59.500000+00:00",
        None,
        None,
        None,
        None,
    ]


def _installed(store, *args) -> str:
    """The installed command's output on ``store``; it must succeed."""
    done = run_cli(*map(str, args), "--store", str(store))
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_an_encoded_subject_is_shown_decoded_by_trace_and_report(tmp_path):
    # Built: the real line with an RFC 2047 subject (A.3b: decode for display).
    subject = "=?iso-8859-9?Q?=DDstanbul_toplant=FDs=FD?="
    log = write(tmp_path, HEADER + COLUMN_LINE + real_line(message_subject=subject))
    store = tmp_path / "store"

    def run(*args):
        return _installed(store, *args)

    run("ingest", log)
    [row] = json.loads(run("sql", "select message_id, date from tracking", "--json"))
    traced = json.loads(run("trace", row["message_id"], "--json"))
    assert traced["messages"][0]["subject"] == "İstanbul toplantısı"
    listed = json.loads(run("trace", "--since", row["date"], "--json"))
    assert [c["subject"] for c in listed["candidates"]] == ["İstanbul toplantısı"]
    assert "İstanbul toplantısı" in run("trace", row["message_id"])
    # searched as logged (the README says so)
    found = json.loads(run("trace", "--subject", "Q?=DDstanbul", "--json"))
    assert [c["subject"] for c in found["candidates"]] == ["İstanbul toplantısı"]


def test_a_transfer_out_is_handed_on_by_the_server_that_wrote_it(tmp_path):
    # Built: the real 1019 line and a 1031 ("SMTP end outbound transfer") six seconds later.
    # Server-hostname is the server that wrote the line (A.4): no field names the next server,
    # so no next hop is named, and no logs of one are said to be missing.
    sent = real_line(time="0:58:20 GMT", event_id="1031", client_hostname="mx1.pirnie.org")
    log = write(tmp_path, HEADER + COLUMN_LINE + real_line() + sent)
    store = tmp_path / "store"

    def run(*args):
        return _installed(store, *args)

    run("ingest", log)
    [message] = json.loads(run("trace", "bh9e3f+5qvo@eGroups.com", "--json"))["messages"]
    [v] = message["recipients"]
    assert (v["verdict"], v["summary"]) == (
        "last_seen",
        "last seen at PACKRAT at 2003-08-12 00:58:20 UTC; handed on by PACKRAT (the log does "
        "not name the next server)",
    )
    assert message["missing_logs"] == []
    assert "missing logs" not in run("trace", "bh9e3f+5qvo@eGroups.com")


def test_a_transfer_to_a_server_whose_log_lacks_the_message_says_its_log_is_there(tmp_path):
    """A 1031 line whose Server-hostname is another server (as synth writes it) names that
    server as the next hop: with its log of the day in the store but none of the message's
    lines, the trace says its log holds no record (QA: it read 'not in the store')."""
    from loganalyzer.synth import generate

    logs = tmp_path / "logs"
    generate(logs, servers=2, messages=100, seed=4, exchange=2003)
    truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
    handed = next(
        t
        for t in truth
        if t["verdict"] == "delivered" and t["server"] == "EX02" and "@ex01." in t["message_id"]
    )
    mid = handed["message_id"]
    ex02 = next((logs / "EX02.log").glob("*.log"))
    kept = [x for x in ex02.read_text("utf-8").splitlines(True) if mid.strip("<>") not in x]
    ex02.write_text("".join(kept), encoding="utf-8")
    (logs / "truth.jsonl").unlink()
    store = tmp_path / "store"
    _installed(store, "ingest", logs)
    [message] = json.loads(_installed(store, "trace", mid, "--json"))["messages"]

    def every(rs):
        for r in rs:
            yield r
            yield from every(r.get("members") or [])

    said = {r["address"].lower(): r["summary"] for r in every(message["recipients"])}
    assert said[handed["recipient"].lower()].endswith(
        "handed to EX02, whose logs of that time are in the store and hold no record of the message"
    ), said
    assert message["missing_logs"] == []
