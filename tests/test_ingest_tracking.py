"""Ingest of Exchange 2007-2019 tracking logs: rows, store layout, increments and bad input."""

from __future__ import annotations

import csv
import gzip
import json
import shutil
import subprocess
from pathlib import Path

import duckdb
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import CORPUS, LOGANALYZER
from logfiles import FIELD_SETS, header, line, row, write_log

import loganalyzer as la
from loganalyzer.errors import BadInput
from loganalyzer.ingest import ingest
from loganalyzer.schema import SCHEMA_VERSION, TRACKING, describe
from loganalyzer.store import Store

TRACKING_SAMPLES = CORPUS / "exchange2007plus"


def rows_of(store: Path, table: str = "tracking") -> list[dict]:
    """Rows of the parts the manifest lists, read with plain pyarrow."""
    parts = [str(store / p) for p in Store(store).listed_parts(table)]
    if not parts:
        return []
    return ds.dataset(parts, format="parquet").to_table().to_pylist()


def quarantine_of(store: Path) -> list[dict]:
    return rows_of(store, "quarantine")


def sample_lines(path: Path) -> list[tuple[int, list[str], list[str]]]:
    """(line number, fields, values) of every data line, read with the csv module."""
    out, fields = [], FIELD_SETS[30]
    for n, text in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        if text.startswith("#Fields:"):
            fields = text[8:].strip().split(",")
        elif text and not text.startswith("#"):
            out.append((n, fields, next(csv.reader([text]))))
    return out


#: The outcome of each event the samples hold, from the event's meaning (FORMATS.md B).
OUTCOMES = {
    "NOTIFYMAPI": "submitted",  # found in a mailbox's Outbox
    "RECEIVE": "received",
    "SEND": "transferred",
    "SENDEXTERNAL": "transferred",
    "AGENTINFO": "info",  # a transport agent's data
    "HAREDIRECT": "shadow",  # a shadow copy created
    "HAREDIRECTFAIL": "shadow",  # ... or not
}


@pytest.mark.parametrize("sample", sorted(TRACKING_SAMPLES.glob("*.log")), ids=lambda p: p.name)
def test_every_tracking_sample_ingests_line_for_line(sample, store_dir):
    headerless = not sample.read_text(encoding="utf-8-sig").startswith("#")
    summary = ingest([sample], store_dir, format="exchange-tracking" if headerless else None)
    assert summary.exit_code == 0 and summary.quarantined == 0
    got = {r["line"]: r for r in rows_of(store_dir)}
    expected = sample_lines(sample)
    assert sorted(got) == [n for n, _, _ in expected]
    for n, fields, values in expected:
        r = got[n]
        raw = dict(zip(fields, values, strict=True))
        assert r["file"] == str(sample)
        assert r["event_id"] == raw["event-id"]
        assert r["source"] == raw["source"]
        assert r["source_context"] == (raw["source-context"] or None)
        assert r["message_subject"] == (raw["message-subject"] or None)
        assert r["custom_data"] == (raw["custom-data"] or None)
        assert r["recipient_address"] == [a for a in raw["recipient-address"].split(";") if a]
        assert (
            len(r["recipient_address"]) == int(raw["recipient-count"] or 0)
            or not raw["recipient-count"]
        )
        assert r["date_time"].isoformat().replace("+00:00", "")[:23] == raw["date-time"][:23]
        mid = raw["message-id"]
        assert r["message_id"] == (None if not mid else mid if mid.startswith("<") else f"<{mid}>")
        assert r["outcome"] == OUTCOMES[raw["event-id"]]


def test_fields_match_elastic_ground_truth(store_dir):
    sample = TRACKING_SAMPLES / "elastic-integrations-messagetracking.log"
    expected = json.loads((TRACKING_SAMPLES / (sample.name + ".expected-4of6.json")).read_text())
    ingest([sample], store_dir, format="exchange-tracking")
    got = {r["line"]: r for r in rows_of(store_dir)}
    for n, doc in enumerate(expected["expected"], start=1):
        r = got[n]
        ms = doc["microsoft"]["exchange"]
        assert r["date_time"].strftime("%Y-%m-%dT%H:%M:%S.%f")[:23] + "Z" == doc["@timestamp"]
        assert r["event_id"] == ms["eventid"]
        assert r["network_message_id"] == ms["networkmessageid"]
        assert r["recipient_count"] == ms["recipientcount"]
        assert r["total_bytes"] == doc["network"]["bytes"]
        # we store every Message-ID with its angle brackets (DESIGN.md), Elastic as logged
        assert r["message_id"].strip("<>") == doc["email"]["message_id"].strip("<>")
        assert r["recipient_address"] == doc["email"]["to"]["address"]
        assert r["message_subject"] == doc["email"]["subject"]
        assert r["internal_message_id"] == doc["email"]["local_id"]
        assert r["directionality"] == doc["email"]["direction"]


def test_store_layout_and_manifest(store_dir):
    ingest(sorted(TRACKING_SAMPLES.glob("*.log")), store_dir)
    st = Store(store_dir)
    manifest = st.manifest()
    assert manifest and all(r.schema_version == SCHEMA_VERSION for r in manifest.values())
    for r in manifest.values():
        assert r.format == "exchange-tracking" and r.table == "tracking"
        for part in r.parts:
            # a bundle's part is named after the first file with rows in it
            key, offset, shared = part.split("/")[-1].removesuffix(".parquet").split("-")
            assert part.startswith("tracking/date=") and key in manifest
            assert (offset, shared) == ("0", "bundle")
            assert (store_dir / part).is_file()
        assert r.bytes_consumed == r.size
    # any Parquet engine reads the hive-partitioned folders, without loganalyzer
    table = ds.dataset(store_dir / "tracking", format="parquet", partitioning="hive").to_table()
    assert table.num_rows == sum(r.rows for r in manifest.values())
    n = duckdb.sql(
        f"select count(*) from read_parquet('{store_dir}/tracking/*/*.parquet', "
        "hive_partitioning=true) where date = date '2017-05-22'"
    ).fetchall()[0][0]
    assert n == 2
    assert "date" not in pq.read_schema(store_dir / manifest[key].parts[0]).names


def test_schema_describes_every_field():
    descriptions = describe(TRACKING)
    assert set(descriptions) == set(TRACKING.names)
    assert all(len(d) > 5 for d in descriptions.values())
    assert "date" not in TRACKING.names


def test_reingest_adds_nothing_and_copies_are_one_file(store_dir, tmp_path):
    logs = sorted(TRACKING_SAMPLES.glob("*.log"))
    first = ingest(logs, store_dir)
    copy = tmp_path / "copy"
    shutil.copytree(TRACKING_SAMPLES, copy)
    second = ingest([*logs, copy], store_dir)
    assert second.rows == 0 and first.rows == len(rows_of(store_dir))
    headered = len(logs) - 1  # the header-less sample is skipped without --format
    assert second.count("unchanged") == 2 * headered
    paths = [p for r in Store(store_dir).manifest().values() for p in r.paths]
    assert any(str(copy) in p for p in paths)


def test_grown_file_is_read_on_and_the_partial_line_waits(store_dir, tmp_path):
    log = tmp_path / "EX01" / "MSGTRK2026030210-1.LOG"
    rows = [row(i) for i in range(5)]
    partial = line(row(5)).rstrip("\r\n")[:40]
    write_log(log, rows[:3], tail=partial)
    assert ingest([log], store_dir).rows == 3
    assert quarantine_of(store_dir) == []
    # the line is finished and two more are written
    rest = line(row(5))[40:] + "".join(line(r) for r in rows[3:])
    with open(log, "ab") as fh:
        fh.write(rest.encode())
    assert ingest([log], store_dir).rows == 3
    got = sorted(r["line"] for r in rows_of(store_dir))
    assert got == [6, 7, 8, 9, 10, 11]
    assert {r["message_id"] for r in rows_of(store_dir)} == {
        f"<msg{i}@contoso.com>" for i in (0, 1, 2, 5, 3, 4)
    }


def test_short_files_are_known_again_grown_past_the_head_or_copied(store_dir, tmp_path):
    """Files shorter than the 64 KiB head are matched at their own length."""
    short = tmp_path / "logs" / "EX01" / "MSGTRK2026030210-1.LOG"
    other = tmp_path / "logs" / "EX02" / "MSGTRK2026030210-1.LOG"
    write_log(short, [row(i) for i in range(3)])
    other.parent.mkdir(parents=True)
    other.write_text(
        header(date="2026-03-02T10:00:05.000Z") + "".join(line(row(i)) for i in range(5))
    )
    assert short.stat().st_size < 4096
    assert ingest([tmp_path / "logs"], store_dir).rows == 8
    with open(short, "ab") as fh:
        fh.write("".join(line(row(i)) for i in range(3, 300)).encode())
    assert short.stat().st_size > 65536
    copy = tmp_path / "copy" / "MSGTRK2026030210-1.LOG"
    copy.parent.mkdir()
    shutil.copy(other, copy)
    summary = ingest([tmp_path / "logs", copy], store_dir)
    status = {Path(f.path).parent.name: (f.status, f.rows) for f in summary.files}
    assert status == {"EX01": ("grown", 297), "EX02": ("unchanged", 0), "copy": ("unchanged", 0)}
    assert len(rows_of(store_dir)) == 305


def _ingest_json(*args: str) -> dict:
    done = subprocess.run([LOGANALYZER, "ingest", *args, "--json"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_path_a_log_was_given_at_in_one_run_names_it_in_the_store(tmp_path):
    """Copies of one log given in the same run (a backup folder, a .gz) are read once, and
    the store lists every path it was seen at, as it does for copies given in later runs."""
    log = write_log(tmp_path / "a" / "EX01" / "MSGTRK2026030210-1.LOG", [row(i) for i in range(3)])
    copy = tmp_path / "b" / "MSGTRK2026030210-1.LOG.gz"
    copy.parent.mkdir()
    copy.write_bytes(gzip.compress(log.read_bytes()))
    store = str(tmp_path / "store")
    done = _ingest_json(str(tmp_path / "a"), str(tmp_path / "b"), "--store", store)
    assert done["rows"] == 3 and done["files"]["ingested"] == 1
    [paths] = la.Store(store).files().paths
    assert sorted(Path(p).name for p in paths) == [log.name, copy.name]


def test_a_copy_with_or_without_the_utf8_mark_is_the_same_log(tmp_path):
    """A log re-saved with (or without) the UTF-8 byte-order mark is the same log: its rows
    are not doubled, and lines it has beyond the other copy are read once, in their place."""
    pair = sorted(TRACKING_SAMPLES.glob("beats-bom8*.log"))
    store = tmp_path / "store"
    once = _ingest_json(*map(str, pair), "--store", str(store))
    assert [f["status"] for f in once["details"]].count("duplicate") == 1
    assert once["rows"] == len(rows_of(store)) == 2
    assert _ingest_json(*map(str, pair), "--store", str(store))["files"]["unchanged"] == 2
    for mark in (True, False):
        rows = [row(i) for i in range(6)]
        original = write_log(tmp_path / str(mark) / "a" / "MSGTRK2026030210-1.LOG", rows[:3],
                             bom=mark, tail=line(rows[3])[:40])  # fmt: skip
        copy = write_log(tmp_path / str(mark) / "b" / "MSGTRK2026030210-1.LOG", rows[:5],
                         bom=not mark)  # fmt: skip
        store = tmp_path / str(mark) / "store"
        assert _ingest_json(str(original), "--store", str(store))["rows"] == 3
        grown = _ingest_json(str(copy), "--store", str(store))
        assert (grown["details"][0]["status"], grown["rows"]) == ("grown", 2)
        assert sorted(r["line"] for r in rows_of(store)) == [6, 7, 8, 9, 10]
        with open(original, "ab") as fh:  # the original grows past the copy
            fh.write((line(rows[3])[40:] + line(rows[4]) + line(rows[5])).encode())
        again = _ingest_json(str(tmp_path / str(mark)), "--store", str(store))
        assert again["rows"] == 1 and again["files"]["unchanged"] == 1
        assert sorted(r["line"] for r in rows_of(store)) == [6, 7, 8, 9, 10, 11]


@pytest.mark.parametrize("longer", ["utf-8", "utf-16"])
def test_copies_with_and_without_the_mark_new_in_one_run_read_the_longer_once(tmp_path, longer):
    """A log with the UTF-8 mark planned first and a longer copy without it, both new: the
    longer copy's reading started 3 bytes before its start ('could not read: Invalid argument',
    no rows from either, for good), and a longer UTF-16 copy kept the first copy's 'not
    finished' (a last line said held back, then read twice)."""
    rows = [row(i) for i in range(5)]
    first = write_log(tmp_path / "logs" / "EX01" / "A.LOG", rows[:3], bom=True)
    other = tmp_path / "logs" / "EX01" / "B.LOG"
    text = header() + "".join(line(r) for r in rows)
    other.write_bytes(text.encode() if longer == "utf-8" else text.encode("utf-16"))
    store = tmp_path / "store"
    once = _ingest_json(str(first), str(other), "--store", str(store))
    assert once["rows"] == 5 and once["held_back"] == 0, once
    assert sorted(r["line"] for r in rows_of(store)) == [6, 7, 8, 9, 10]
    again = _ingest_json(str(first), str(other), "--store", str(store))
    assert again["rows"] == 0 and again["files"]["unchanged"] == 2, again


NCSA_LINE = (
    '205.188.158.121 - OutboundConnectionCommand [11/Oct/2006:13:16:39 -0600] "EHLO -?x.com SMTP" '
    "0 4\n"
)


@pytest.mark.parametrize("runs", ["one run", "three runs"])
def test_a_small_log_is_not_taken_for_another_that_shares_its_header(tmp_path, runs):
    """A log under the first 1 KiB rung whose header another log shares was taken for that
    log (skipped as a duplicate, its rows lost) once any file shorter than the header had
    been seen: they agreed at that file's length."""
    logs = tmp_path / "logs"
    tiny = logs / "RELAY" / "nc061011.log"
    tiny.parent.mkdir(parents=True)
    tiny.write_text(NCSA_LINE)
    big = write_log(logs / "EX01" / "MSGTRK2026030210-1.LOG", [row(i) for i in range(20)])
    small = logs / "EX01" / "MSGTRKMA2026030210-1.LOG"
    one = {"date-time": "2026-03-02T10:30:00.000Z", "event-id": "MODERATORREJECT",
           "message-id": "<mod@contoso.com>", "recipient-address": "dl@contoso.com"}  # fmt: skip
    small.write_bytes(b"\xef\xbb\xbf" + (header() + line(one)).encode())
    assert small.stat().st_size < 1024 < 4096 < big.stat().st_size
    store = str(tmp_path / "store")
    batches = [[tiny, big, small]] if runs == "one run" else [[tiny], [big], [small]]
    for batch in batches:
        done = subprocess.run(
            [LOGANALYZER, "ingest", *map(str, batch), "--store", store, "--json"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
    [got] = [f for f in json.loads(done.stdout)["details"] if f["path"] == str(small)]
    assert (got["status"], got["rows"]) == ("ingested", 1), got
    again = json.loads(
        subprocess.run([LOGANALYZER, "ingest", str(logs), "--store", store, "--json"],
                       capture_output=True, text=True, timeout=120).stdout
    )  # fmt: skip
    assert again["rows"] == 0 and again["files"]["unchanged"] == 3  # each known as itself


def test_partial_last_line_is_quarantined_once_the_file_stopped_growing(store_dir, tmp_path):
    folder = tmp_path / "EX01"
    old = write_log(folder / "MSGTRK2026030210-1.LOG", [row(0)], tail="2026-03-02T10:5")
    assert ingest([old], store_dir).quarantined == 0
    write_log(folder / "MSGTRK2026030211-1.LOG", [row(1)])  # a newer file of the series
    summary = ingest([folder], store_dir)
    assert summary.quarantined == 1
    q = quarantine_of(store_dir)
    assert [(r["line"], r["raw"]) for r in q] == [(7, "2026-03-02T10:5")]
    assert "incomplete last line" in q[0]["reason"]
    assert ingest([folder], store_dir).quarantined == 0  # and only once


@pytest.mark.parametrize("how", ["--final", "a newer file"])
def test_a_tail_quarantined_as_final_is_read_whole_when_the_file_grows_after_all(tmp_path, how):
    """A line quarantined unfinished (the file looked finished) is read whole once the file
    grows, at its own line number; the lines after it keep theirs (they were one off, and the
    line's rest quarantined as a line of its own)."""
    folder = tmp_path / "EX01"
    rows = [row(i) for i in range(6)]
    full = header() + "".join(line(r) for r in rows)
    cut = full.index(line(rows[3])) + 40
    log = folder / "MSGTRK2026030210-1.LOG"
    folder.mkdir()
    log.write_text(full[:cut], newline="")
    store = tmp_path / "store"

    def run(*args):
        done = subprocess.run([LOGANALYZER, "ingest", str(folder), "--store", str(store), *args],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done

    run()
    if how == "--final":
        run("--final")
    else:
        write_log(folder / "MSGTRK2026030211-1.LOG", [row(9)])
        run()
    assert [r["line"] for r in quarantine_of(store)] == [9]  # the tail, once
    log.write_text(full, newline="")  # it grew after all
    run()
    got = sorted((r["line"], r["message_id"]) for r in rows_of(store) if "210-1" in r["file"])
    assert got == [(6 + i, f"<msg{i}@contoso.com>") for i in range(6)]
    assert [r["line"] for r in quarantine_of(store)] == [9]  # no rest-of-a-line row


def test_final_flag_quarantines_the_tail(store_dir, tmp_path):
    log = write_log(tmp_path / "x" / "MSGTRK2026030210-1.LOG", [row(0)], tail="partial")
    assert ingest([log], store_dir, final=True).quarantined == 1


@pytest.mark.parametrize(
    "damage,reason",
    [
        ("2026-03-02T10:00:00.000Z,too,few,fields\r\n", "wrong field count"),
        ("2026-13-45T99:00:00.000Z" + line(row(9))[24:], "bad date-time"),
        ("yesterday" + line(row(9))[24:], "bad date-time"),
        (line(row(9))[24:], "no date-time"),
        (line(row(9)).replace("Subject 9", 'Sub"ject, 9'), "broken quoting"),
        (line(row(9)).replace("Subject 9", "Sub\x00ject"), "NUL bytes"),
        (line(row(9)).replace(",7009,", ",many,"), "bad total-bytes"),
    ],
)
def test_bad_lines_go_to_quarantine_and_the_rest_is_kept(store_dir, tmp_path, damage, reason):
    log = tmp_path / "EX01" / "MSGTRK2026030210-1.LOG"
    good = [row(i) for i in range(4)]
    text = header() + line(good[0]) + line(good[1]) + damage + line(good[2]) + line(good[3])
    log.parent.mkdir(parents=True)
    log.write_bytes(text.encode("utf-8"))
    summary = ingest([log], store_dir)
    assert summary.exit_code == 0
    assert sorted(r["line"] for r in rows_of(store_dir)) == [6, 7, 9, 10]
    q = quarantine_of(store_dir)
    assert len(q) == 1 and q[0]["line"] == 8 and reason in q[0]["reason"]
    assert q[0]["file"] == str(log) and q[0]["raw"]
    assert summary.quarantined == 1


def test_quoting_bom_crlf_and_repeated_header(store_dir, tmp_path):
    subject = 'Re: "Q3", budget; {draft} [v2], Grüße ✓'
    rows = [row(0, message_subject=subject), row(1, source_context='a,b,"c"')]
    text = (
        header()
        + line(rows[0])
        + header(FIELD_SETS[26])
        + line(row(2), FIELD_SETS[26])
        + "\r\n"
        + header()
        + line(rows[1])
    )
    log = tmp_path / "EX01" / "MSGTRK2026030210-1.LOG"
    log.parent.mkdir(parents=True)
    log.write_bytes(b"\xef\xbb\xbf" + text.encode("utf-8"))
    ingest([log], store_dir)
    got = {r["line"]: r for r in rows_of(store_dir)}
    assert got[6]["message_subject"] == subject
    assert got[12]["network_message_id"] is None  # the 2010 field set has no such column
    assert got[12]["message_id"] == "<msg2@contoso.com>"
    assert got[19]["source_context"] == 'a,b,"c"'
    assert len(got) == 3


def test_recipient_lists_are_split_and_aligned(store_dir, tmp_path):
    status = (
        "[{LED=550 4.4.7 QUEUE.Expired; message expired; the last endpoint attempted was "
        "[2001:db8:4::26]:25};{MSG=};{FQDN=mx.example.com};"
        "{IP=192.0.2.1};{LRT=3/2/2026 9:00:00 AM}];250 2.1.5 Recipient OK;"
        "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
    )
    r = row(
        0,
        event_id="FAIL",
        recipient_address="a@x.com;b@x.com;c@x.com",
        recipient_count="3",
        recipient_status=status,
    )
    single = row(1, event_id="FAIL", recipient_status="550 4.4.7 QUEUE.Expired;message expired")
    ingest([write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", [r, single])], store_dir)
    got = {x["line"]: x for x in rows_of(store_dir)}
    assert got[6]["recipient_address"] == ["a@x.com", "b@x.com", "c@x.com"]
    assert len(got[6]["recipient_status"]) == 3
    assert got[6]["recipient_status"][0].startswith("[{LED=550 4.4.7")
    assert got[6]["enhanced_status"] == ["4.4.7", "2.1.5", "5.1.1"]
    assert got[6]["smtp_reply"] == ["550", "250", "550"]
    assert got[6]["outcome"] == "failed"
    assert got[7]["recipient_status"] == ["550 4.4.7 QUEUE.Expired;message expired"]
    assert got[7]["sender_domain"] == "contoso.com"


def test_not_a_log_is_refused_by_name_and_others_still_ingest(store_dir, tmp_path):
    good = write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", [row(0)])
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes\n")
    ews = CORPUS / "other" / "kinesistap-ExchangeLogParserTest-ews.log"
    summary = ingest([good, notes, ews, tmp_path / "missing.log"], store_dir)
    by_path = {f.path: f for f in summary.files}
    assert by_path[str(good)].status == "ingested"
    assert by_path[str(notes)].status == "skipped" and "not a log" in by_path[str(notes)].reason
    assert by_path[str(ews)].reason == "EWS log: not a supported log kind"
    assert by_path[str(tmp_path / "missing.log")].status == "error"
    assert summary.exit_code == 1  # a path that could not be read at all


def test_a_store_inside_the_logs_folder_is_not_read_as_logs(tmp_path):
    logs = tmp_path / "logs"
    write_log(logs / "EX01" / "MSGTRK2026030210-1.LOG", [row(0)])
    store = logs / "store"
    assert ingest([logs], store).count("ingested") == 1
    again = ingest([logs], store)  # the store's parts and manifest are not candidates
    assert [(f.status, Path(f.path).name) for f in again.files] == [
        ("unchanged", "MSGTRK2026030210-1.LOG")
    ]


def test_an_empty_path_is_an_error_not_the_current_folder(store_dir, tmp_path, monkeypatch):
    good = write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", [row(0)])
    monkeypatch.chdir(tmp_path)  # holds a log: an empty path read as "." would ingest it twice
    summary = ingest(["", good], store_dir)
    assert [(f.path, f.status, f.reason) for f in summary.files if f.status == "error"] == [
        ("", "error", "empty path")
    ]
    assert summary.count("ingested") == 1 and summary.exit_code == 1


def test_headerless_file_needs_format(store_dir):
    sample = TRACKING_SAMPLES / "elastic-integrations-messagetracking.log"
    with pytest.raises(BadInput, match="elastic-integrations-messagetracking.log: .*--format"):
        ingest([sample], store_dir)  # the only input is no log: refused, no store is made
    assert not store_dir.exists()
    assert ingest([sample], store_dir, format="exchange-tracking").rows == 6


def test_server_names(store_dir, tmp_path):
    # from the local RECEIVE rows, else the folder above the log folders, else --server
    a = write_log(tmp_path / "logs" / "MSGTRK2026030210-1.LOG", [row(0, server_hostname="ex02")])
    b = write_log(
        tmp_path / "MBX9" / "MessageTracking" / "MSGTRKMD2026030210-1.LOG",
        [row(1, event_id="AGENTINFO")],
    )
    c = write_log(tmp_path / "c" / "MSGTRK2026030211-1.LOG", [row(2, event_id="AGENTINFO")])
    ingest([a, b], store_dir)
    ingest([c], store_dir, server="edge01")
    servers = {r["file"]: r["server"] for r in rows_of(store_dir)}
    logtypes = {r["file"]: r["log_type"] for r in rows_of(store_dir)}
    assert servers == {str(a): "EX02", str(b): "MBX9", str(c): "edge01"}
    assert logtypes[str(b)] == "MSGTRKMD"


def test_store_from_newer_version_is_refused(store_dir, tmp_path):
    ingest([write_log(tmp_path / "a" / "MSGTRK2026030210-1.LOG", [row(0)])], store_dir)
    st = Store(store_dir)
    manifest = st.manifest()
    for r in manifest.values():
        r.schema_version = SCHEMA_VERSION + 1
    st.write_manifest(manifest)
    with pytest.raises(RuntimeError, match="newer loganalyzer"):
        ingest([tmp_path / "a"], store_dir)


def test_ingest_cli_summary_and_json(cli, store_dir, tmp_path):
    log = write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", [row(i) for i in range(3)])
    out = cli("ingest", str(log), "--store", str(store_dir), "--json")
    assert out.exit_code == 0
    data = json.loads(out.stdout)
    assert data["rows"] == 3 and data["files"]["ingested"] == 1
    text = cli("ingest", str(tmp_path), "--store", str(store_dir))
    assert text.exit_code == 0 and "1 unchanged" in text.stdout.replace("\n", " ")
