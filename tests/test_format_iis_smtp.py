"""IIS SMTP logs (W3C, IIS log format, NCSA): every sample line for line, times, odd lines."""

from __future__ import annotations

import io
import json
import re
import subprocess
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pyarrow as pa
import pytest
from conftest import CORPUS, LOGANALYZER
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.errors import BadInput
from loganalyzer.formats import base, iis_smtp
from loganalyzer.formats.base import ReadState
from loganalyzer.formats.common import Context
from loganalyzer.formats.iis_smtp import decode_plus
from loganalyzer.ingest import ingest
from loganalyzer.times import parse_time

SAMPLES = CORPUS / "iis-smtp"
FORMAT = "iis-smtp"
W3C = SAMPLES / "ossec-docs-exchange2000-w3c.log"
NCSA = SAMPLES / "ossec-docs-exchange2000-ncsa.log"
IISLOG = SAMPLES / "msdoc-ex2007-smtp-iislogformat-example.log"
LICHTY = SAMPLES / "lichty-2017-open-relay-yahoo-421-deferral.log"
W3C_21 = (
    "date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
    "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
    "cs(User-Agent) cs(Cookie) cs(Referer)"
).split()
OUTBOUND = ("OutboundConnectionCommand", "OutboundConnectionResponse")


def smtp_rows(store: Path) -> dict[int, dict]:
    return {r["line"]: r for r in rows_of(store, "smtp")}


def plain(value: str | None) -> str | None:
    """IIS argument text as the samples write it: no `+` inside <...> there."""
    if value in (None, "", "-"):
        return None
    return value.removeprefix("+").replace("+", " ") or None


def number(value: str) -> int | None:
    return None if value in ("-", "0") else int(value)


def w3c_lines(path: Path) -> list[tuple[int, dict]]:
    fields, out = W3C_21, []
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        if text.startswith("#Fields:"):
            fields = text[8:].split()
        elif text and not text.startswith("#"):
            out.append((n, dict(zip(fields, text.split(" "), strict=True))))
    return out


def ncsa_lines(path: Path) -> list[tuple[int, dict]]:
    out = []
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        host, _, user, rest = text.split(" ", 3)
        when, _, rest = rest[1:].partition("] ")
        request, _, tail = rest[1:].rpartition('" ')
        method, _, target_query = request[: request.rindex(" SMTP")].partition(" ")
        target, _, query = target_query.partition("?")
        status, size = tail.split()
        out.append(
            (
                n,
                {
                    "c-ip": host,
                    "cs-username": user,
                    "when": when,
                    "cs-method": method,
                    "cs-uri-stem": target,
                    "cs-uri-query": query or "-",
                    "sc-status": status,
                    "sc-bytes": size,
                },
            )
        )
    return out


def iislog_lines(path: Path) -> list[tuple[int, dict]]:
    names = (
        "c-ip cs-username date time s-sitename s-computername s-ip time-taken cs-bytes sc-bytes "
        "sc-status sc-win32-status cs-method cs-uri-stem cs-uri-query"
    ).split()
    out = []
    for n, text in enumerate(path.read_text().splitlines(), start=1):
        values = [v.strip() for v in text.split(",")]
        assert values[-1] == "" and len(values) == 16
        out.append((n, dict(zip(names, values[:15], strict=True))))
    return out


SAMPLE_READERS = {W3C: w3c_lines, LICHTY: w3c_lines, NCSA: ncsa_lines, IISLOG: iislog_lines}


@pytest.mark.parametrize("sample", sorted(SAMPLES.glob("*.log")), ids=lambda p: p.name)
def test_every_sample_ingests_line_for_line(sample, store_dir):
    summary = ingest([sample], store_dir, format=FORMAT if sample == LICHTY else None)
    assert summary.exit_code == 0 and summary.files[0].format == FORMAT
    assert summary.quarantined == 0
    rows = smtp_rows(store_dir)
    expected = SAMPLE_READERS[sample](sample)
    assert sorted(rows) == [n for n, _ in expected]
    for n, f in expected:
        r = rows[n]
        user = f.get("cs-username", "-")
        outbound, response = user in OUTBOUND, user == OUTBOUND[1]
        assert r["remote_ip"] == f["c-ip"] and r["log_format"] == FORMAT
        assert r["direction"] == ("send" if outbound else "receive")
        assert r["helo"] == (None if outbound or user == "-" else user)
        assert r["event"] == (">" if outbound and not response else "<")
        method = f["cs-method"].split(" ")[0]
        assert r["command"] == (None if method == "-" else method)
        assert r["data"] == plain(f["cs-uri-query"])
        assert r["context"] == (None if f["cs-uri-stem"] == "-" else f["cs-uri-stem"])
        assert r["connector_id"] == f.get("s-sitename")
        if response:
            assert r["reply_code"] == int(f["cs-uri-query"][:3])
        else:
            assert r["reply_code"] == number(f["sc-status"])
        assert r["bytes_sent"] == int(f["sc-bytes"])
        for field, column in [("cs-bytes", "bytes_received"), ("time-taken", "time_taken_ms")]:
            if field in f:
                assert r[column] == int(f[field])
        if "date" in f and sample != IISLOG:
            assert r["date_time"] == datetime.fromisoformat(f"{f['date']}T{f['time']}+00:00")
        if method == "DATA" and r["data"] and "@" in r["data"]:
            assert r["message_id"] == (r["data"] if r["data"].startswith("<") else f"<{r['data']}>")
        else:  # no DATA line, or its argument is the server's queue ID (no @)
            assert r["message_id"] is None
        assert r["session_id"] is None and r["time_approximate"] is False


def test_w3c_data_line_message_ids_and_server(store_dir):
    ingest([W3C], store_dir)
    rows = smtp_rows(store_dir)
    ids = {r["message_id"] for r in rows.values()} - {None}
    assert "<4F5002F2.860022@web.de>" in ids  # inbound: +<id>
    assert "<MEE-PDCfSDGAIXWb9DY00001e05@mee-pdc.meelift.com>" in ids  # without the +
    assert len(ids) == 5 and {r["server"] for r in rows.values()} == {"MEE-PDC"}
    assert rows[6]["data"] == "FROM: <EldonpyzWestoncusk@sbcglobal.net>"  # +FROM:+<...>
    assert rows[20]["command"] == "xxxx" and rows[20]["reply_code"] == 500
    assert rows[9]["reply_code"] == 240 and rows[9]["win32_status"] == 6219


def test_headerless_w3c_outbound_reply_is_parsed(store_dir):
    with pytest.raises(BadInput, match="--format"):
        ingest([LICHTY], store_dir)  # the only input is no log: refused, no store is made
    ingest([LICHTY], store_dir, format=FORMAT)
    command, reply = smtp_rows(store_dir)[1], smtp_rows(store_dir)[2]
    assert (command["event"], command["command"], command["reply_code"]) == (">", "MAIL", None)
    assert command["data"] == "FROM:<MillionairesBlueprint@earthlink.com> SIZE=1722"
    assert (reply["event"], reply["command"]) == ("<", None)
    assert (reply["reply_code"], reply["enhanced_status"]) == (421, "4.7.0")
    assert reply["data"].startswith("421 4.7.0 [TSS04] Messages from 192.223.13.201 temporarily")
    assert reply["data"].endswith(
        "- 4.16.55.1; see https://help.yahoo.com/kb/postmaster/SLN3434.html"
    )
    # outbound: s-port is the port the server connects to, the remote one
    assert command["local_ip"] is None and command["local_port"] is None
    assert (command["remote_ip"], command["remote_port"]) == ("66.196.118.34", 25)
    assert {command["server"], reply["server"]} == {"VSERVER14541"}
    assert {command["direction"], reply["direction"]} == {"send"}


def test_iis_log_format_local_time_without_and_with_tz(store_dir, tmp_path):
    utc = ingest([IISLOG], store_dir)
    rows = smtp_rows(store_dir)
    assert {r["date_time"] for r in rows.values()} == {
        datetime(2006, 8, 18, 13, 17, 37, tzinfo=UTC)
    }
    assert {r["tz_assumed"] for r in rows.values()} == {"UTC"}
    assert utc.warnings == [f"{IISLOG}: local times read as UTC (no --tz)"]
    berlin = ingest([IISLOG], tmp_path / "berlin", tz="Europe/Berlin")
    rows = smtp_rows(tmp_path / "berlin")
    assert {r["date_time"] for r in rows.values()} == {
        datetime(2006, 8, 18, 11, 17, 37, tzinfo=UTC)
    }
    assert {r["tz_assumed"] for r in rows.values()} == {None} and berlin.warnings == []
    # the fields of D.4: 9 = bytes the client sent, 10 = bytes the server sent
    assert (rows[1]["command"], rows[1]["data"]) == ("MAIL", "FROM:<someone@Nwtraders.com>")
    assert (rows[1]["bytes_received"], rows[1]["bytes_sent"], rows[1]["time_taken_ms"]) == (
        42,
        0,
        90,
    )
    # DATA's argument 0019E3517201287MAIL01 is the server's queue ID, not a Message-ID
    assert rows[3]["data"] == "0019E3517201287MAIL01" and rows[3]["message_id"] is None
    assert rows[4]["reply_code"] is None and rows[4]["win32_status"] == 541


def _iis_line(when: str, command: str, argument: str) -> str:
    """A Microsoft IIS log format line (D.4's fields) at local time ``when`` (m/d/yy h:m:s)."""
    date, time = when.split()
    return (
        f"10.1.1.1, h.example, {date}, {time}, SMTPSVC1, MAIL01, 10.2.2.2, 1, 2, 3, 250, 0, "
        f"{command}, -, {argument}, \r\n"
    )


#: The night Berlin's clocks go back (2026-10-25, 03:00 CEST -> 02:00 CET): written in time
#: order, with each line's UTC time; the second pass's last time is after the first pass's.
NIGHT = [
    ("10/25/26 01:50:00", "HELO", "h", "2026-10-24T23:50:00"),
    ("10/25/26 02:10:00", "MAIL FROM", "FROM:<a@x.example>", "2026-10-25T00:10:00"),
    ("10/25/26 02:50:00", "RCPT TO", "TO:<b@y.example>", "2026-10-25T00:50:00"),
    ("10/25/26 02:10:00", "MAIL FROM", "FROM:<c@x.example>", "2026-10-25T01:10:00"),
    ("10/25/26 02:40:00", "RCPT TO", "TO:<d@y.example>", "2026-10-25T01:40:00"),
    ("10/25/26 02:55:00", "DATA", "-", "2026-10-25T01:55:00"),
    ("10/25/26 03:10:00", "QUIT", "h", "2026-10-25T02:10:00"),
]


def _night_times(store: Path) -> list[str]:
    done = subprocess.run(
        [LOGANALYZER, "sql", "-s", store, "--json", "select line, date_time from smtp"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    rows = sorted(json.loads(done.stdout), key=lambda r: r["line"])
    return [r["date_time"][:19] for r in rows]


def test_the_repeated_hour_of_local_times_runs_on_in_file_order(tmp_path):
    """When the clocks go back, the local times that run backwards are the second pass
    (they were read as the first, an hour early); so is the file read on after it grew."""
    folder = tmp_path / "SMTPSVC1"
    folder.mkdir()
    log = folder / "in261025.log"
    log.write_text("".join(_iis_line(w, c, a) for w, c, a, _ in NIGHT), newline="")
    ingest = [LOGANALYZER, "ingest", "--tz", "Europe/Berlin", "-s"]
    subprocess.run([*ingest, tmp_path / "whole", folder], check=True, capture_output=True)
    assert _night_times(tmp_path / "whole") == [utc for *_, utc in NIGHT]
    # written up to the step back, then the rest: the next ingest reads on
    grown = tmp_path / "grown" / "SMTPSVC1"
    grown.mkdir(parents=True)
    for part in (NIGHT[:3], NIGHT[3:]):
        with open(grown / log.name, "a", newline="") as fh:
            fh.write("".join(_iis_line(w, c, a) for w, c, a, _ in part))
        subprocess.run([*ingest, tmp_path / "st", grown], check=True, capture_output=True)
    assert _night_times(tmp_path / "st") == [utc for *_, utc in NIGHT]


def test_a_skipped_local_time_is_read_as_a_time_given_on_the_command_line_is(tmp_path):
    """Times in the hour the clocks skip (a clock or --tz set wrong) stay apart, each at the
    offset before the change, as a time given on the command line (they were all put at
    the change)."""
    spring = [("03/29/26 01:50:00", "2026-03-29T00:50:00"), ("03/29/26 02:30:00",
              "2026-03-29T01:30:00"), ("03/29/26 02:50:00", "2026-03-29T01:50:00")]  # fmt: skip
    folder = tmp_path / "SMTPSVC1"
    folder.mkdir()
    lines = [_iis_line(w, "MAIL FROM", f"FROM:<a{i}@x.example>") for i, (w, _) in enumerate(spring)]
    (folder / "in260329.log").write_text("".join(lines), newline="")
    store = tmp_path / "st"
    subprocess.run([LOGANALYZER, "ingest", "--tz", "Europe/Berlin", "-s", store, folder],
                   check=True, capture_output=True)  # fmt: skip
    assert _night_times(store) == [utc for _, utc in spring]
    # where a time given on the command line (--since) puts it
    given = parse_time("2026-03-29 02:30", "Europe/Berlin").astimezone(UTC)
    assert given.isoformat()[:19] == spring[1][1]


def test_the_repeated_hour_is_read_alike_in_blocks_of_any_size(monkeypatch):
    """A file is read in blocks (runs); the step back and the second pass may lie in
    different ones."""
    data = "".join(_iis_line(w, c, a) for w, c, a, _ in NIGHT).encode()
    want = [datetime.fromisoformat(utc).replace(tzinfo=UTC) for *_, utc in NIGHT]
    for size in (90, 200, 400, len(data)):
        monkeypatch.setattr(iis_smtp, "read_runs", partial(base.read_runs, block_size=size))
        ctx = Context(path="in261025.log", log_type="iis", tz="Europe/Berlin", final=True)
        batches = list(iis_smtp.FORMAT.parse(io.BytesIO(data), ReadState(), ctx))
        assert len(batches) > 1 or size == len(data)
        times = [t for b in batches if b.table for t in b.table.column("date_time").to_pylist()]
        assert times == want, size


def test_unknown_tz_is_refused_before_reading(store_dir):
    with pytest.raises(ValueError, match="unknown time zone"):
        ingest([IISLOG], store_dir, tz="Europe/Nowhere")


def test_ncsa_offset_gives_utc_and_outbound_replies(store_dir):
    ingest([NCSA], store_dir)
    rows = smtp_rows(store_dir)
    assert rows[1]["date_time"] == datetime(2006, 10, 11, 19, 16, 39, tzinfo=UTC)  # 13:16:39 -0600
    assert rows[1]["tz_assumed"] is None
    assert rows[1]["reply_code"] == 220 and rows[1]["direction"] == "send"
    assert (
        rows[1]["data"]
        == "220-rly-yi06.mx.aol.com ESMTP mail_relay_in-yi6.1; Wed, 11 Oct 2006 14:16:38 -0400"
    )
    assert rows[34]["data"] == '354 START MAIL INPUT, END WITH "." ON A LINE BY ITSELF'
    assert (
        rows[33]["command"] == "DATA"
        and rows[33]["data"] is None
        and rows[33]["message_id"] is None
    )
    assert rows[14]["message_id"] == "<000001c6ed61$33a7e690$97cfa8c0@edvhaov>"
    assert rows[4]["helo"] == "207.250.64.66" and rows[16]["helo"] is None


def test_http_w3c_log_is_refused_by_kind(store_dir, tmp_path):
    log = tmp_path / "W3SVC1" / "u_ex240101.log"
    log.parent.mkdir()
    log.write_text(
        "#Software: Microsoft Internet Information Services 10.0\r\n#Version: 1.0\r\n"
        "#Date: 2024-01-01 00:00:01\r\n#Fields: date time s-sitename s-ip cs-method cs-uri-stem "
        "cs-uri-query s-port cs-username c-ip cs-version sc-status time-taken\r\n"
        "2024-01-01 00:00:01 W3SVC1 10.0.0.1 GET /index.html - 443 - 192.0.2.1 HTTP/1.1 200 15\r\n"
    )
    with pytest.raises(BadInput) as refused:
        ingest([log], store_dir)
    assert str(refused.value) == (
        f"nothing to ingest: {log}: IIS web (HTTP) log: not a supported log kind"
    )


@pytest.mark.parametrize(
    "logged,decoded",
    [
        ("+FROM:+<a@b.example>", "FROM: <a@b.example>"),
        ("FROM:<a@b.example>+SIZE=1722", "FROM:<a@b.example> SIZE=1722"),
        ("+TO:<first+tag+x@b.example>", "TO:<first+tag+x@b.example>"),  # + inside <> is literal
        ("250+OK", "250 OK"),
        (None, None),
        ("+", None),
    ],
)
def test_plus_decoding(logged, decoded):
    assert decode_plus(pa.array([logged], pa.string())).to_pylist() == [decoded]


def test_bad_w3c_lines_go_to_quarantine(store_dir, tmp_path):
    good = W3C.read_text().splitlines()
    lines = good[:6] + [
        good[5].replace(" 250 0 ", " 2x0 0 "),
        " ".join(good[5].split(" ")[:10]),
        re.sub(r"^2006-10-09", "2006-13-09", good[5]),
    ]
    log = tmp_path / "SMTPSVC1" / "ex061009.log"
    log.parent.mkdir()
    log.write_text("\r\n".join(lines) + "\r\n")
    ingest([log], store_dir)
    assert sorted(smtp_rows(store_dir)) == [5, 6]
    reasons = {q["line"]: q["reason"] for q in quarantine_of(store_dir)}
    assert reasons == {
        7: "bad status",
        8: "wrong field count: expected 21, found 10",
        9: "bad date/time",
    }


def test_module_sample_is_recognised_and_read(store_dir, tmp_path):
    from loganalyzer.formats import iis_smtp as module

    log = tmp_path / "SMTPSVC1" / "ex061009.log"
    log.parent.mkdir()
    log.write_text(module.FORMAT.sample)
    summary = ingest([log], store_dir)
    assert (summary.files[0].format, summary.rows, summary.quarantined) == (FORMAT, 3, 0)
    assert smtp_rows(store_dir)[7]["message_id"] == "<4F5002F2.860022@example.com>"


W3C_HEAD = (
    "#Software: Microsoft Internet Information Services 6.0\r\n#Version: 1.0\r\n"
    "#Date: 2026-03-02 05:00:00\r\n#Fields: date time c-ip cs-username s-sitename "
    "s-computername s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status sc-win32-status "
    "sc-bytes cs-bytes time-taken cs-version\r\n"
)


@pytest.mark.parametrize(
    "argument,message_id",
    [
        ("+<RELAY01k7Qd2vX9Hf00000003>", None),  # a queue ID in brackets, no @
        ("+RELAY01k7Qd2vX9Hf00000003", None),  # a bare queue ID
        ("+<4F5002F2.860022@example.com>", "<4F5002F2.860022@example.com>"),
        ("+4F5002F2.860022@example.com", "<4F5002F2.860022@example.com>"),
    ],
)
def test_data_line_queue_id_is_not_a_message_id(argument, message_id, store_dir, tmp_path):
    log = tmp_path / "SMTPSVC1" / "ex260302.log"
    log.parent.mkdir()
    log.write_text(
        W3C_HEAD + "2026-03-02 05:00:19 192.0.2.7 mx.example.com SMTPSVC1 RELAY01 10.0.0.6 25 "
        f"DATA - {argument} 250 0 108 1399 1922 SMTP\r\n"
    )
    ingest([log], store_dir)
    [row] = smtp_rows(store_dir).values()
    assert (row["command"], row["message_id"]) == ("DATA", message_id)


def test_s_port_is_the_local_port_inbound_and_the_remote_port_outbound(store_dir, tmp_path):
    log = tmp_path / "SMTPSVC1" / "ex260302.log"
    log.parent.mkdir()
    log.write_text(
        W3C_HEAD + "2026-03-02 05:00:15 192.0.2.7 mx.example.com SMTPSVC1 RELAY01 10.0.0.6 25 "
        "HELO - +mx.example.com 250 0 48 13 0 SMTP\r\n"
        "2026-03-02 05:28:28 203.0.113.25 OutboundConnectionCommand SMTPSVC1 RELAY01 - 587 "
        "EHLO - relay01.contoso.com 0 0 4 0 0 SMTP\r\n"
        "2026-03-02 05:28:28 203.0.113.25 OutboundConnectionResponse SMTPSVC1 RELAY01 - 587 "
        "- - 250+mx.example.net+Hello 0 0 20 0 16 SMTP\r\n"
    )
    ingest([log], store_dir)
    ports = [
        (r["direction"], r["local_ip"], r["local_port"], r["remote_ip"], r["remote_port"])
        for r in smtp_rows(store_dir).values()
    ]
    assert ports == [
        ("receive", "10.0.0.6", 25, "192.0.2.7", None),
        ("send", None, None, "203.0.113.25", 587),
        ("send", None, None, "203.0.113.25", 587),
    ]
