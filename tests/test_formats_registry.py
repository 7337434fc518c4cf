"""Every registered format reads its own sample lines; a mixed folder goes to the right tables."""

from __future__ import annotations

import shutil
import subprocess

import pytest
from conftest import CORPUS, LOGANALYZER
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.formats import FORMATS, get
from loganalyzer.ingest import ingest

#: (date-time, server, line number) of each row the sample's lines give, read by eye.
SAMPLE_ROWS = {
    "exchange-tracking": [("2022-09-19T15:02:29.232+00:00", "EX02", 6)],
    "exchange-smtp-protocol": [
        ("2020-04-02T07:57:37.405+00:00", "EX01", 6),
        ("2020-04-02T07:57:37.426+00:00", "EX01", 7),
        ("2020-04-02T07:57:37.426+00:00", "EX01", 8),
    ],
    "iis-smtp": [
        ("2006-10-09T05:00:15.000+00:00", "MAIL01", 5),
        ("2006-10-09T05:00:16.000+00:00", "MAIL01", 6),
        ("2006-10-09T05:00:19.000+00:00", "MAIL01", 7),
    ],
    "exchange2003-tracking": [("2003-08-12T00:58:14.000+00:00", "PACKRAT", 4)],
    # an Enhanced summary line of two recipients: a row each (I.1)
    "exo-message-trace": [("2021-03-23T10:00:09.328+00:00", "EXCHANGE-ONLINE", 2)] * 2,
    "exchange-agent": [("2026-03-02T08:16:40.501+00:00", "EX01", 6)],
    "exchange-connectivity": [("2026-03-02T08:30:21.140+00:00", "EX01", 6)],
}


def test_every_format_has_its_sample_rows_listed():
    assert sorted(SAMPLE_ROWS) == sorted(FORMATS)


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_reads_its_sample(name, tmp_path):
    fmt = get(name)
    assert name == fmt.name and fmt.table in ("tracking", "smtp", "agent", "connectivity")
    assert fmt.description and fmt.file_names
    sample = tmp_path / "EX01" / f"sample-{name}.log"
    sample.parent.mkdir()
    sample.write_text(fmt.sample, encoding="utf-8")
    summary = ingest([sample], tmp_path / "store", final=True)
    [report] = summary.files
    assert (report.status, report.format) == ("ingested", name)
    assert summary.rows == len(SAMPLE_ROWS[name]) and summary.quarantined == 0
    rows = sorted(rows_of(tmp_path / "store", fmt.table), key=lambda r: r["line"])
    got = [
        (r["date_time"].isoformat(timespec="milliseconds"), r["server"], r["line"]) for r in rows
    ]
    assert got == SAMPLE_ROWS[name]


def test_unknown_format_lists_the_known_ones():
    with pytest.raises(ValueError, match="known: exchange-tracking"):
        get("nope")


def test_a_mixed_folder_ingests_in_one_command(tmp_path, cli):
    mixed = tmp_path / "mixed"
    for sub in (
        "exchange2007plus",
        "smtp-protocol",
        "iis-smtp",
        "exchange2003",
        "o365-trace",
        "other",
    ):
        shutil.copytree(CORPUS / sub, mixed / sub)
    store = tmp_path / "store"
    out = cli("ingest", str(mixed), "--store", str(store), "--json")
    assert out.exit_code == 0
    tracking = {r["log_format"] for r in rows_of(store, "tracking")}
    smtp = {r["log_format"] for r in rows_of(store, "smtp")}
    assert tracking == {"exchange-tracking", "exo-message-trace"}
    assert smtp == {"exchange-smtp-protocol", "iis-smtp"}
    text = out.stdout
    assert "EWS log: not a supported log kind" in text
    assert "SEKOIA" in text  # the test wrapper is refused by name
    assert all(q["reason"] for q in quarantine_of(store))


#: Real logs shared without their header lines, and the format that reads them.
HEADERLESS = {
    "exchange2007plus/elastic-integrations-messagetracking.log": "exchange-tracking",
    "smtp-protocol/postal-829-exchange2013-send-tls.log": "exchange-smtp-protocol",
    "iis-smtp/lichty-2017-open-relay-yahoo-421-deferral.log": "iis-smtp",
    "exchange2003/awstats-maillogconvert-example.log": "exchange2003-tracking",
}


def test_a_headerless_log_is_told_the_format_that_reads_it(tmp_path):
    """A log without its header is skipped with the --format that reads it (it said only "a
    header-less log needs --format"), and that option then reads it; a file of no log's
    shape is told nothing of the kind."""
    folder = tmp_path / "logs"
    folder.mkdir()
    for name in HEADERLESS:
        shutil.copy(CORPUS / name, folder / name.split("/")[1])
    shutil.copy(CORPUS / "headers" / "sisimai_lhost-postfix-57.txt", folder / "bounce.txt")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [LOGANALYZER, *args], capture_output=True, text=True, timeout=300, cwd=tmp_path
        )

    done = run("ingest", str(folder), "--store", str(tmp_path / "st"), "--json")
    assert done.returncode == 2, done.stderr  # nothing to ingest: every file skipped
    first = sorted(folder.iterdir())[0]
    assert done.stderr.startswith(f"error: nothing to ingest: {first}: "), done.stderr
    for name, fmt in HEADERLESS.items():
        path = folder / name.split("/")[1]
        alone = run("ingest", str(path), "--store", str(tmp_path / "st"))
        assert alone.returncode == 2
        assert alone.stderr.strip().endswith(f"ingest it with --format {fmt}"), alone.stderr
        read = run("ingest", str(path), "--store", str(tmp_path / "st"), "--format", fmt)
        assert read.returncode == 0, read.stderr
        assert read.stdout.startswith("1 file"), read.stdout
    other = run("ingest", str(folder / "bounce.txt"), "--store", str(tmp_path / "st"))
    assert other.returncode == 2 and "--format " not in other.stderr.replace("needs --format", "")
