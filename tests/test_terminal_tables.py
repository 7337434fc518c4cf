"""The command's tables in a terminal, through the command: an address, IP, host name, ID or
path longer than its column folds onto the next line, never cut with "…"."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import LOGANALYZER
from logfiles import header, line, row
from stores import shared_ingested


def _run(*args, columns: int) -> subprocess.CompletedProcess:
    """The installed command in a terminal ``columns`` wide (COLUMNS, as a shell sets it)."""
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=300, env=env
    )
    assert "Traceback" not in done.stderr
    return done


def _column(text: str, n: int) -> str:
    """The cells of the ``n``-th column of the tables in ``text``, read down and joined without
    spaces: a value folded over lines is whole again."""
    cells = [x.split("│")[n + 1] for x in text.splitlines() if x.count("│") > n + 1]
    return "".join(cells).replace(" ", "")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    return str(shared_ingested(tmp_path_factory))


def test_a_trace_and_a_list_cut_no_value(store):
    listed = _run("trace", "--verdict", "failed", "--store", store, "--json", columns=80)
    candidates = json.loads(listed.stdout)["candidates"]
    for width in (80, 150):
        shown = _run("trace", "--verdict", "failed", "--store", store, columns=width).stdout
        assert "…" not in shown
        senders = _column(shown, 2)
        assert all(c["sender"] in senders for c in candidates if c["sender"])
    for c in candidates[:3]:
        traced = _run("trace", c["message_id"], "--store", store, columns=80)
        assert traced.returncode == 0, traced.stderr
        assert "…" not in traced.stdout
        assert c["message_id"] in traced.stdout


def test_an_ingest_summary_names_each_file_whole(tmp_path):
    logs = tmp_path / "logs"
    path = logs / "EX01" / "TransportRoles" / "Logs" / "MessageTracking" / "MSGTRK2026030210-1.LOG"
    path.parent.mkdir(parents=True)
    path.write_text(header() + line(row(0)) + "2026-03-02T10:00:00.000Z,too,few,fields\r\n")
    done = _run("ingest", logs, "--store", tmp_path / "store", columns=80)
    assert done.returncode == 0, done.stderr
    assert "quarantined" in done.stdout and "…" not in done.stdout
    assert f"1:{path}(1)" in _column(done.stdout, 1)


def test_the_formats_name_their_folders_whole():
    done = _run("formats", columns=80)
    assert done.returncode == 0 and "…" not in done.stdout
    assert "(ProtocolLog\\SmtpReceive" in _column(done.stdout, 2)
