"""One contract for every format (a ``Format`` value), and the ingest task built by name."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess

import pytest
from conftest import CORPUS, LOGANALYZER

from loganalyzer import formats
from loganalyzer.formats import FORMATS, Format, Pending, exchange_tracking
from loganalyzer.formats.base import ReadState
from loganalyzer.formats.common import Batch, Context
from loganalyzer.worker import Task

IISLOG = CORPUS / "iis-smtp" / "msdoc-ex2007-smtp-iislogformat-example.log"


def test_the_registry_holds_one_format_value_per_name():
    assert list(FORMATS) == [
        "exchange-tracking",
        "exchange-smtp-protocol",
        "iis-smtp",
        "exchange2003-tracking",
        "exo-message-trace",
        "exchange-agent",
        "exchange-connectivity",
    ]
    assert all(isinstance(f, Format) and f.name == n for n, f in FORMATS.items())
    with pytest.raises(dataclasses.FrozenInstanceError):
        FORMATS["iis-smtp"].table = "tracking"
    # a format that reads header-less files says so in its value, not by having a function
    assert [n for n, f in FORMATS.items() if f.detect_headerless is None] == ["exo-message-trace"]
    assert sorted(exchange_tracking.FORMAT.field_sets) == [21, 26, 27, 30]
    assert [n for n, f in FORMATS.items() if f.joins_files] == [
        "exchange-tracking",
        "exchange-smtp-protocol",
    ]


def test_a_file_alone_is_read_into_keyed_runs_then_parsed_run_by_run():
    fmt = exchange_tracking.FORMAT
    data = fmt.sample.encode()
    ctx = Context(path="MSGTRK2022091915-1.LOG", final=True)
    [pending] = list(fmt.read(io.BytesIO(data), ReadState(), ctx))
    assert isinstance(pending, Pending) and len(pending.key) == 30 and pending.bad == []
    [batch] = list(fmt.parse(io.BytesIO(data), ReadState(), ctx))
    assert batch.table.column("line").to_pylist() == [6]
    assert batch.servers.to_pylist() == ["EX02"]  # its RECEIVE names the server
    assert batch.tz_assumed is False


def test_local_times_read_as_utc_come_back_with_the_batch():
    fmt = formats.get("iis-smtp")
    data = IISLOG.read_bytes()

    def batches(tz):
        ctx = Context(path=IISLOG.name, log_type="iis", final=True, tz=tz)
        return [b for b in fmt.parse(io.BytesIO(data), ReadState(), ctx) if b.table is not None]

    assert [b.tz_assumed for b in batches(None)] == [True]
    assert [b.tz_assumed for b in batches("Europe/Berlin")] == [False]
    assert "options" not in {f.name for f in dataclasses.fields(Context)}
    assert {"tz_assumed", "warnings"} <= {f.name for f in dataclasses.fields(Batch)}


def test_a_task_names_everything_after_its_store():
    task = Task("a.log", "iis-smtp", "0123456789abcdef", "store", offset=10, final=True)
    assert (task.offset, task.line, task.final, task.tz) == (10, 0, True, None)
    assert task.start() == ReadState(10, 0, "")
    assert task.context().final is True
    with pytest.raises(TypeError):
        Task("a.log", "iis-smtp", "0123456789abcdef", "store", 10)


def test_formats_command_lists_every_format_value():
    done = subprocess.run(
        [LOGANALYZER, "formats", "--json"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    assert [(r["name"], r["table"]) for r in rows] == [
        ("exchange-tracking", "tracking"),
        ("exchange-smtp-protocol", "smtp"),
        ("iis-smtp", "smtp"),
        ("exchange2003-tracking", "tracking"),
        ("exo-message-trace", "tracking"),
        ("exchange-agent", "agent"),
        ("exchange-connectivity", "connectivity"),
    ]
    assert rows[2]["files"] == "SMTPSVC*\\ex*.log, in*.log, nc*.log"
    assert rows[3]["description"] == (
        "Exchange 2000/2003 message tracking logs (tab-separated, numeric event IDs)"
    )
