"""Every registered format reads its own sample lines; a mixed folder goes to the right tables."""

from __future__ import annotations

import shutil

import pytest
from conftest import CORPUS
from test_ingest_tracking import quarantine_of, rows_of

from loganalyzer.formats import FORMATS, get
from loganalyzer.ingest import ingest


@pytest.mark.parametrize("name", list(FORMATS))
def test_each_format_reads_its_sample(name, tmp_path):
    module = get(name)
    assert name == module.NAME and module.TABLE in ("tracking", "smtp")
    assert module.DESCRIPTION and module.FILE_NAMES
    sample = tmp_path / "EX01" / f"sample-{name}.log"
    sample.parent.mkdir()
    sample.write_text(module.SAMPLE, encoding="utf-8")
    summary = ingest([sample], tmp_path / "store", final=True)
    [report] = summary.files
    assert (report.status, report.format) == ("ingested", name)
    assert summary.rows > 0 and summary.quarantined == 0
    assert rows_of(tmp_path / "store", module.TABLE)


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
