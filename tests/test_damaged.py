"""Damaged, odd and compressed input: each case with the outcome an admin should get.

| case | expected outcome |
|---|---|
| truncated mid-line, file still growing | the partial line waits; every complete line is a row |
| truncated mid-line, stopped growing | partial line quarantined ("incomplete last line") |
| truncated mid-quote, stopped growing | quarantined as an incomplete last line |
| unbalanced quote inside the file | that line quarantined ("broken quoting"), next lines rows |
| NUL padding at the end (crashed server) | quarantined once the file stopped growing |
| NUL bytes inside a line | that line quarantined ("NUL bytes") |
| a BOM in the middle (files concatenated) | the header repeats, every data line is a row |
| mixed CRLF and LF line ends | every line is a row |
| a 10 MB single line | quarantined ("wrong field count"), the other lines are rows |
| UTF-16 file (re-saved as "Unicode") | read as text: every line is a row |
| cp1252 bytes in a subject | the row is kept, the subject read as cp1252 |
| #Fields changes mid-file | later lines are read with the new field list |
| #Fields without date-time (found by fuzzing) | its lines quarantined with that reason |
| empty file | skipped: "empty file" |
| a folder named like a log | searched as a folder: nothing to read, no error |
| an unreadable file | reported "could not read", exit code 1, the others ingested |
| .gz, .zip (several logs), .7z | every log inside is read; archived logs are final |
| a server's folder inside an archive | the rows are that server's, as if it were unpacked |
| a zip bomb | refused by name before anything is expanded |
| a corrupt archive | reported "could not read", the others ingested |
"""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys
import tarfile
import zipfile

import duckdb
import py7zr
import pytest
from conftest import CORPUS, LOGANALYZER
from logfiles import FIELD_SETS, header, line, row
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.errors import BadInput
from loganalyzer.ingest import ingest
from loganalyzer.store import StoreError
from loganalyzer.synth import generate

LOG = "MSGTRK2026030210-1.LOG"


def _write(tmp_path, text: bytes, name: str = LOG, folder: str = "EX01"):
    path = tmp_path / folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text)
    return path


def good(n: int = 3, start: int = 0) -> bytes:
    return (header() + "".join(line(row(i)) for i in range(start, start + n))).encode()


def _lines(store):
    return sorted(r["line"] for r in rows_of(store))


def _reasons(store):
    return [(q["line"], q["reason"]) for q in sorted(quarantine_of(store), key=lambda q: q["line"])]


def test_truncated_mid_line(tmp_path, store_dir):
    log = _write(tmp_path, good() + line(row(3)).encode()[:30])
    assert ingest([log], store_dir).quarantined == 0
    assert _lines(store_dir) == [6, 7, 8]
    ingest([log], store_dir, final=True)
    assert [r for _, r in _reasons(store_dir)] == ["incomplete last line (file stopped growing)"]


def test_the_summary_says_an_incomplete_last_line_waits(tmp_path):
    log = _write(tmp_path, good() + line(row(3)).encode()[:30])
    _write(tmp_path, good(2, 5), folder="EX02")  # complete: says nothing
    store = str(tmp_path / "s")
    said = "1 incomplete last line held back until its file grows or --final"
    wide = {**os.environ, "COLUMNS": "200"}
    run = subprocess.run([LOGANALYZER, "ingest", str(tmp_path), "--store", store],
                         capture_output=True, text=True, env=wide)  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert run.stdout.count("held back") == 1 and said in run.stdout
    assert _ingest_json(str(tmp_path), "--store", store)["held_back"] == 1  # still waiting
    assert _ingest_json(str(log), "--store", store, "--final")["held_back"] == 0


def test_truncated_mid_quote(tmp_path, store_dir):
    tail = line(row(3, message_subject="a, b")).encode()
    log = _write(tmp_path, good() + tail[: tail.index(b'"a') + 3])
    ingest([log], store_dir, final=True)
    assert _lines(store_dir) == [6, 7, 8]
    assert _reasons(store_dir) == [(9, "incomplete last line (file stopped growing)")]


def test_unbalanced_quote_inside(tmp_path, store_dir):
    bad = line(row(9)).replace("Subject 9", 'Subject "9').encode()
    log = _write(tmp_path, good(2) + bad + b"".join(line(row(i)).encode() for i in (2, 3)))
    ingest([log], store_dir)
    assert _lines(store_dir) == [6, 7, 9, 10]
    assert [r for _, r in _reasons(store_dir)] == ["broken quoting: unbalanced double quote"]


def test_nul_padding_at_the_end(tmp_path, store_dir):
    log = _write(tmp_path, good() + b"\x00" * 8192)
    assert ingest([log], store_dir).quarantined == 0  # it could still be written
    _write(tmp_path, good(1, 10), name="MSGTRK2026030211-1.LOG")  # the server restarted
    ingest([tmp_path / "EX01"], store_dir)
    assert [r for _, r in _reasons(store_dir)] == [
        "NUL padding at the end of the file (8,192 bytes; a crashed server)"
    ]
    assert len(rows_of(store_dir)) == 4


def test_nul_inside_a_line(tmp_path, store_dir):
    bad = line(row(9)).replace("Subject", "Sub\x00ject").encode()
    log = _write(tmp_path, good(2) + bad + line(row(2)).encode())
    ingest([log], store_dir)
    assert _lines(store_dir) == [6, 7, 9] and _reasons(store_dir) == [(8, "NUL bytes in line")]


def test_bom_in_the_middle_and_mixed_line_ends(tmp_path, store_dir):
    second = good(2, 5).replace(b"\r\n", b"\n")
    log = _write(tmp_path, b"\xef\xbb\xbf" + good(2) + b"\xef\xbb\xbf" + second)
    ingest([log], store_dir)
    assert _lines(store_dir) == [6, 7, 13, 14] and _reasons(store_dir) == []
    subjects = sorted(r["message_subject"] for r in rows_of(store_dir))
    assert subjects == ["Subject 0", "Subject 1", "Subject 5", "Subject 6"]


def test_ten_megabyte_line(tmp_path, store_dir):
    log = _write(tmp_path, good(1) + b"x" * (10 << 20) + b"\r\n" + line(row(1)).encode())
    ingest([log], store_dir)
    assert _lines(store_dir) == [6, 8]
    [(n, reason)] = _reasons(store_dir)
    assert n == 7 and reason.startswith("wrong field count")


def test_utf16_file(tmp_path, store_dir):
    text = (header() + line(row(0, message_subject="Grüße ✓")) + line(row(1))).encode()
    log = _write(tmp_path, text.decode().encode("utf-16"))
    assert log.read_bytes()[:2] in (b"\xff\xfe", b"\xfe\xff")
    ingest([log], store_dir)
    assert _lines(store_dir) == [6, 7]
    assert "Grüße ✓" in {r["message_subject"] for r in rows_of(store_dir)}


def _ingest_json(*args: str) -> dict:
    run = subprocess.run([LOGANALYZER, "ingest", *args, "--json"], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def test_a_growing_utf16_log_is_read_on_and_unchanged_once_read(tmp_path):
    """Non-ASCII text takes more bytes in UTF-8 than in UTF-16, ASCII fewer (and the BOM):
    how far a UTF-16 log was read and its size are counted in the same bytes."""
    subject = "日本語の件名テスト" * 20
    text = header() + "".join(line(row(i, message_subject=subject)) for i in range(10))
    log = _write(tmp_path, text.encode("utf-16"))
    store = tmp_path / "s"
    assert _ingest_json(str(log), "--store", str(store))["rows"] == 10
    with open(log, "ab") as fh:  # a line appended, in the file's encoding (no second BOM)
        fh.write(line(row(10, message_subject=subject)).encode("utf-16-le"))
    grown = _ingest_json(str(log), "--store", str(store))
    assert (grown["rows"], grown["files"]["ingested"]) == (1, 1)
    again = _ingest_json(str(log), "--store", str(store), "--final")
    assert (again["rows"], again["files"]["unchanged"]) == (0, 1)
    assert _lines(store) == list(range(6, 17))
    ascii_only = _write(tmp_path, good().decode().encode("utf-16"), folder="EX02")
    assert _ingest_json(str(ascii_only), "--store", str(store))["rows"] == 3
    again = _ingest_json(str(ascii_only), "--store", str(store))
    assert (again["files"]["ingested"], again["files"]["unchanged"]) == (0, 1)


def test_a_utf16_log_caught_mid_line_waits_for_its_line(tmp_path):
    """A UTF-16 log was read as a finished file: a last line being written was quarantined
    as 'incomplete last line (file stopped growing)', still listed after the line was read
    whole, and watch warned of it at every round that caught the log mid-line."""
    subject = "Grüße 日本"
    rows = [line(row(i, message_subject=subject)) for i in range(4)]
    log = _write(tmp_path, (header() + "".join(rows[:3]) + rows[3][:30]).encode("utf-16"))
    store = tmp_path / "s"
    first = _ingest_json(str(log), "--store", str(store))
    assert (first["rows"], first["quarantined"], first["held_back"]) == (3, 0, 1)
    with open(log, "ab") as fh:
        fh.write(rows[3][30:].encode("utf-16-le"))
    done = _ingest_json(str(log), "--store", str(store))
    assert (done["rows"], done["quarantined"], done["held_back"]) == (1, 0, 0)
    assert _lines(store) == [6, 7, 8, 9]


def test_cp1252_subject(tmp_path, store_dir):
    raw = line(row(0, message_subject="Grüße €")).encode("cp1252")
    log = _write(tmp_path, header().encode() + raw)
    ingest([log], store_dir)
    assert [r["message_subject"] for r in rows_of(store_dir)] == ["Grüße €"]


def test_fields_change_mid_file(tmp_path, store_dir):
    text = header() + line(row(0)) + header(FIELD_SETS[26]) + line(row(1), FIELD_SETS[26])
    ingest([_write(tmp_path, text.encode())], store_dir)
    got = {r["line"]: r for r in rows_of(store_dir)}
    assert got[6]["network_message_id"] and got[12]["network_message_id"] is None


def test_empty_file_and_folder_named_like_a_log(tmp_path, store_dir):
    empty = _write(tmp_path, b"")
    folder = tmp_path / "EX02" / LOG
    folder.mkdir(parents=True)
    with pytest.raises(BadInput, match=re.escape(f"nothing to ingest: {empty}: empty file")):
        ingest([empty, folder], store_dir)  # no input holds a log: refused, no store is made
    assert not store_dir.exists()


def test_unreadable_file(tmp_path, store_dir, monkeypatch):
    readable = _write(tmp_path, good(), folder="EX01")
    secret = _write(tmp_path, good(1, 5), folder="EX02")
    secret.chmod(0)
    if os.geteuid() == 0:  # root reads anything: make the read fail as it would for a user
        ingest_module = sys.modules["loganalyzer.ingest"]

        real = ingest_module.read_head

        def denied(name, n):
            if name == str(secret):
                raise PermissionError(13, "Permission denied")
            return real(name, n)

        monkeypatch.setattr(ingest_module, "read_head", denied)
    summary = ingest([readable, secret], store_dir)
    assert summary.exit_code == 1
    [bad] = [f for f in summary.files if f.status == "error"]
    assert bad.path == str(secret) and bad.reason == "could not read: Permission denied"
    assert len(rows_of(store_dir)) == 3


def test_archives(tmp_path, store_dir):
    logs = [good(2, 0), good(2, 10), good(2, 20)]
    gz = tmp_path / "a" / (LOG + ".gz")
    gz.parent.mkdir()
    gz.write_bytes(gzip.compress(logs[0]))
    zp = tmp_path / "b.zip"
    with zipfile.ZipFile(zp, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("EX02/MSGTRK2026030210-1.LOG", logs[1])
        zf.writestr("EX03/MSGTRK2026030210-1.LOG", logs[2])
    sz = tmp_path / "c.7z"
    plain = _write(tmp_path, logs[2].replace(b"Subject", b"Topic"), folder="EX04")
    with py7zr.SevenZipFile(sz, "w") as archive:
        archive.write(plain, "EX04/MSGTRK2026030210-1.LOG")
    summary = ingest([gz, zp, sz], store_dir)
    assert summary.count("ingested") == 4 and summary.quarantined == 0
    files = {r["file"] for r in rows_of(store_dir)}
    assert f"{zp}!EX02/MSGTRK2026030210-1.LOG" in files and str(gz) in files
    assert len(rows_of(store_dir)) == 8
    # the same logs as plain files are known by their content
    assert ingest([plain], store_dir).count("unchanged") == 1


def _servers(store: str) -> dict[str, int]:
    """Rows per server of a store's tracking and smtp tables."""
    got = subprocess.run(
        [LOGANALYZER, "sql", "--store", store, "--json",
         "select server, count(*) as n from (select server from tracking "
         "union all select server from smtp) group by server order by server"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert got.returncode == 0, got.stderr
    return {r["server"]: r["n"] for r in json.loads(got.stdout)}


def test_an_archived_log_is_of_its_folder_server_as_if_unpacked(tmp_path):
    """A log in a server folder inside an archive was named after the archive as well
    ("EX13-LOGS.ZIP!EX13"); its server is its folder's now. A flat archive in a server folder
    is that server's; the live log and its zipped copy are one file of one server."""
    tracking = CORPUS / "exchange2007plus" / "kinesistap-ExchangeLogParserTest-msgtrk.log"
    zp = tmp_path / "ex13-logs.zip"
    with zipfile.ZipFile(zp, "w") as zf:
        zf.write(tracking, "EX13/MessageTracking/MSGTRK2017052217-1.LOG")
        smtp = CORPUS / "iis-smtp" / "ossec-docs-exchange2000-ncsa.log"
        zf.write(smtp, "MAILGW1/SMTPSVC1/nc1.log")
    flat = tmp_path / "SRV9" / "MessageTracking" / "backup.tar.gz"
    flat.parent.mkdir(parents=True)
    with tarfile.open(flat, "w:gz") as tf:
        tf.add(CORPUS / "exchange2007plus" / "beats-bom8-ex2010-msgtrk.log", "MSGTRK2017-1.LOG")
    live = _write(tmp_path / "live", tracking.read_bytes(), "MSGTRK2017052217-1.LOG", "EX13")
    store = str(tmp_path / "store")
    run = [LOGANALYZER, "ingest", "--store", store, "--json"]
    done = subprocess.run([*run, zp, flat], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    servers = {f["path"]: f["server"] for f in json.loads(done.stdout)["details"]}
    assert sorted(servers.values()) == ["EX13", "MAILGW1", "SRV9"], servers
    before = _servers(store)
    assert set(before) == {"EX13", "MAILGW1", "SRV9"}
    again = subprocess.run([*run, live], capture_output=True, text=True, timeout=300)
    assert [f["status"] for f in json.loads(again.stdout)["details"]] == ["unchanged"]
    assert _servers(store) == before  # the live log's rows are not there twice
    found = subprocess.run(
        [LOGANALYZER, "trace", "--store", store, "64712272257894", "--server", "EX13"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert found.returncode == 0, found.stderr
    assert "EX13" in found.stdout and "!" not in found.stdout


@pytest.mark.parametrize("name", ["logs.tar", "logs.tar.gz", "logs.tgz"])
def test_tar_archives_are_read_member_by_member(tmp_path, name):
    """A tar archive's logs are read one by one, each as its kind (a .tar.gz was read as one
    log: protocol lines went into the tracking table), and known again as plain files."""
    import tarfile

    logs = tmp_path / "logs"
    generate(logs, servers=1, messages=60, seed=3)
    members = [
        next(logs.glob("EX01/MessageTracking/MSGTRK*.LOG")),
        next(logs.glob("EX01/ProtocolLog/SmtpReceive/RECV*.LOG")),
    ]
    archive = tmp_path / "in" / name
    archive.parent.mkdir()
    with tarfile.open(archive, "w:gz" if name != "logs.tar" else "w") as tf:
        for m in members:
            tf.add(m, arcname=str(m.relative_to(logs)))
    store = str(tmp_path / "store")
    run = [LOGANALYZER, "ingest", str(archive.parent), "--store", store, "--json"]
    done = subprocess.run(run, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert [f["status"] for f in got["details"]] == ["ingested", "ingested"]
    assert got["quarantined"] == 0
    plain = ingest(members, tmp_path / "plain")
    assert got["rows"] == plain.rows
    con = duckdb.connect()
    counts = con.execute(
        f"select count(*), count(*) filter (where event_id is null) "
        f"from read_parquet('{tmp_path}/store/tracking/**/*.parquet')"
    ).fetchone()
    assert counts[0] > 0 and counts[1] == 0
    files = {r[0] for r in con.execute(
        f"select distinct file from read_parquet('{tmp_path}/store/smtp/**/*.parquet')"
    ).fetchall()}  # fmt: skip
    assert files == {f"{archive}!EX01/ProtocolLog/SmtpReceive/{members[1].name}"}
    again = ingest(members, store)  # the same logs as plain files: known by their content
    assert again.count("unchanged") == 2 and again.rows == 0
    broken = tmp_path / "broken" / name
    broken.parent.mkdir()
    broken.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    cut = subprocess.run([LOGANALYZER, "ingest", str(broken), "--store", store],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert cut.returncode in (1, 2) and "Traceback" not in cut.stderr, cut.stderr
    assert str(broken) in cut.stdout + cut.stderr


def test_zip_bomb_and_corrupt_archive(tmp_path, store_dir):
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(LOG, b"\x00" * (256 << 20))
    corrupt = tmp_path / "broken.zip"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    ok = _write(tmp_path, good())
    summary = ingest([bomb, corrupt, ok], store_dir)
    by = {os.path.basename(f.path): f for f in summary.files}
    assert by["bomb.zip"].status == "skipped" and "decompression bomb" in by["bomb.zip"].reason
    assert by["broken.zip"].status == "error" and "could not read" in by["broken.zip"].reason
    assert by[LOG].status == "ingested" and summary.exit_code == 1


@pytest.mark.parametrize(
    "limit", [0, 1]
)  # the part of the three new files' bundle fails, or the manifest
def test_disk_full_leaves_the_store_unchanged_then_complete(
    tmp_path, store_dir, monkeypatch, limit
):
    import pyarrow.parquet as pq

    logs = [_write(tmp_path, good(3, 10 * i), folder=f"EX0{i}") for i in range(4)]
    ingest(logs[:1], store_dir)
    before = sorted((r["file"], r["line"]) for r in rows_of(store_dir))
    calls = {"n": 0}
    real = pq.ParquetWriter.write_table

    def full(self, *a, **k):
        calls["n"] += 1
        if calls["n"] > limit:
            raise OSError(28, "No space left on device")
        return real(self, *a, **k)

    monkeypatch.setattr(pq.ParquetWriter, "write_table", full)
    try:  # the parts or the manifest cannot be written: a clear error, nothing half-written
        summary = ingest(logs, store_dir, workers=1)
        assert summary.exit_code == 1
        assert any(
            "could not write to the store: No space left" in (f.reason or "") for f in summary.files
        )
    except StoreError as exc:
        assert "could not write the manifest" in str(exc) and "No space left" in str(exc)
    after = sorted((r["file"], r["line"]) for r in rows_of(store_dir))
    assert set(before) <= set(after) and len(after) == len(set(after))
    assert len(after) % 3 == 0  # whole files only
    monkeypatch.setattr(pq.ParquetWriter, "write_table", real)
    ingest(logs, store_dir)
    assert len(rows_of(store_dir)) == 12
    assert not list(store_dir.rglob("*.tmp"))


def test_fields_header_without_date_time(tmp_path, store_dir):
    fields = [f for f in FIELD_SETS[30] if f != "date-time"]
    text = header(fields) + line(row(0), fields) + header() + line(row(1))
    ingest([_write(tmp_path, text.encode())], store_dir)
    assert _reasons(store_dir) == [(6, "the #Fields header names no date-time")]
    assert _lines(store_dir) == [12]


# A damaged FIRST data line: detection rests on the header and on most lines, so the file is
# read and only the damaged line goes to the quarantine.
def _headerless(first: str) -> bytes:
    return (first + "".join(line(row(i)) for i in range(1, 4))).encode()


DAMAGED_FIRST = {
    "stray leading quote": ('"' + line(row(0)), "broken quoting: unbalanced double quote"),
    "truncated mid-field": (line(row(0))[:70] + "\r\n", "wrong field count: expected 30, found 6"),
}


@pytest.mark.parametrize("case", DAMAGED_FIRST, ids=list(DAMAGED_FIRST))
def test_headerless_log_with_a_damaged_first_line_is_read_with_format(case, tmp_path, store_dir):
    first, reason = DAMAGED_FIRST[case]
    log = _write(tmp_path, _headerless(first))
    summary = ingest([log], store_dir, format="exchange-tracking", final=True)
    assert [(f.status, f.format) for f in summary.files] == [("ingested", "exchange-tracking")]
    assert _lines(store_dir) == [2, 3, 4]
    assert _reasons(store_dir) == [(1, reason)]
    assert [r["message_id"] for r in sorted(rows_of(store_dir), key=lambda r: r["line"])] == [
        "<msg1@contoso.com>",
        "<msg2@contoso.com>",
        "<msg3@contoso.com>",
    ]


def test_format_is_for_the_header_less_files_of_a_mixed_folder(tmp_path):
    """--format names the format of the files without a header; the others are read as their
    header says (a protocol log beside header-less tracking logs was skipped as "not a
    supported log kind")."""
    folder = _write(tmp_path, _headerless(line(row(0))), folder="mixed").parent
    logs = tmp_path / "logs"
    generate(logs, servers=1, messages=30, seed=3)
    recv = next(logs.glob("EX01/ProtocolLog/SmtpReceive/RECV*.LOG"))
    (folder / recv.name).write_bytes(recv.read_bytes())
    store = str(tmp_path / "store")
    run = [LOGANALYZER, "ingest", str(folder), "--format", "exchange-tracking", "--store", store]
    done = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    got = {os.path.basename(f["path"]): (f["status"], f["format"])
           for f in json.loads(done.stdout)["details"]}  # fmt: skip
    assert got == {
        LOG: ("ingested", "exchange-tracking"),
        recv.name: ("ingested", "exchange-smtp-protocol"),
    }


def test_fields_header_names_the_format_without_software_or_log_type(tmp_path, store_dir):
    text = f"#Fields: {','.join(FIELD_SETS[30])}\r\n".encode() + _headerless('"' + line(row(0)))
    summary = ingest([_write(tmp_path, text)], store_dir, final=True)
    assert [(f.status, f.format) for f in summary.files] == [("ingested", "exchange-tracking")]
    assert _lines(store_dir) == [3, 4, 5]
    assert _reasons(store_dir) == [(2, "broken quoting: unbalanced double quote")]


def test_a_file_that_is_no_tracking_log_is_refused_with_the_format_and_its_article(
    tmp_path, store_dir
):
    log = _write(tmp_path, b"hello\r\nworld\r\n")
    with pytest.raises(
        BadInput, match=r": does not look like an exchange-tracking log \(no header"
    ):
        ingest([log], store_dir, format="exchange-tracking")


def test_damaged_first_line_through_the_installed_command(tmp_path):
    import json
    import subprocess

    exe = LOGANALYZER
    log = _write(tmp_path, _headerless('"' + line(row(0))))
    done = subprocess.run(
        [
            exe,
            "ingest",
            str(log),
            "--store",
            str(tmp_path / "s"),
            "--format",
            "exchange-tracking",
            "--final",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["rows"], out["quarantined"]) == (3, 1)
    assert [(d["status"], d["format"], d["quarantined"]) for d in out["details"]] == [
        ("ingested", "exchange-tracking", 1)
    ]


def test_cut_or_damaged_gzip_is_named_as_such_not_as_a_bomb(tmp_path):
    """A gzip file cut short (a copy interrupted) ends in any 4 bytes, which gzip reads as
    the content's size: it was refused as a decompression bomb. A real bomb still is."""
    import subprocess

    packed = gzip.compress(good(400), mtime=0)
    cut = tmp_path / "cut.LOG.gz"
    cut.write_bytes(packed[: len(packed) // 2])
    damaged = tmp_path / "damaged.LOG.gz"
    damaged.write_bytes(packed[:10] + b"\xff" * 64 + packed[74:])
    bomb = tmp_path / "bomb.LOG.gz"
    bomb.write_bytes(gzip.compress(b"\x00" * (64 << 20), mtime=0))
    found = {}
    for path in (cut, damaged, bomb):
        done = subprocess.run(
            [LOGANALYZER, "ingest", str(path), "--store", str(tmp_path / "s")],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        found[path.name] = done.stderr.strip()
    assert "cut.LOG.gz: truncated archive" in found["cut.LOG.gz"]
    assert "damaged.LOG.gz: damaged archive" in found["damaged.LOG.gz"]
    assert "bomb" not in found["cut.LOG.gz"] + found["damaged.LOG.gz"]
    assert "decompression bomb" in found["bomb.LOG.gz"]
    assert not (tmp_path / "s").exists()
