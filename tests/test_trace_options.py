"""The trace command's ways to name a message and how it prints, through the command: the
width of a trace written to a pipe."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import LOGANALYZER
from logfiles import row, write_log

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate

#: Two messages whose Message-IDs differ only in case (a local part is case-sensitive).
TWINS = ("<Twin1@contoso.com>", "<twin1@contoso.com>")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    root = tmp_path_factory.mktemp("options")
    generate(root / "logs", servers=2, messages=40, seed=3)
    write_log(
        root / "logs" / "twins" / "MSGTRK2026030210-1.LOG",
        [row(i, message_id=mid) for i, mid in enumerate(TWINS)],
    )
    summary = ingest([root / "logs"], root / "store")
    assert summary.exit_code == 0 and summary.quarantined == 0
    return str(root / "store")


def _run(*args, env: dict | None = None) -> subprocess.CompletedProcess:
    """The installed command, its output piped (no terminal), as a script runs it."""
    environ = {k: v for k, v in os.environ.items() if k != "COLUMNS"} | (env or {})
    done = subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=300, env=environ
    )
    assert "Traceback" not in done.stderr
    return done


def _traced(store: str, *args) -> dict:
    done = _run("trace", *args, "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _a_message(store: str, hops: int = 1) -> dict:
    """A traced synth message of two recipients with an SMTP conversation on ``hops`` hops."""
    listed = _traced(store, "--since", "2026-03-01", "--all")["messages"]
    return next(
        m
        for m in listed
        if len(m["recipients"]) == 2
        and "@ex02.contoso.com" in m["message_id"]
        and sum(1 for e in m["events"] if e["conversation"]) >= hops
    )


def test_a_trace_written_to_a_pipe_is_as_wide_as_its_conversations_need(store):
    mid = _a_message(store, hops=2)["message_id"]
    piped = _run("trace", mid, "--store", store)
    assert piped.returncode == 0, piped.stderr
    lines = piped.stdout.splitlines()
    assert 120 <= max(map(len, lines)) <= 200
    narrow = _run("trace", mid, "--store", store, env={"COLUMNS": "80"}).stdout.splitlines()
    assert max(map(len, narrow)) <= 80  # COLUMNS is the user's: kept
    assert len(lines) < len(narrow) / 2
    # a conversation's lines are whole, not cut into a column a few characters wide
    assert any("EHLO ex02.contoso.com" in x for x in lines)
