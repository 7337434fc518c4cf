"""The address index: lists by sender, recipient wildcard and subject, and rejected attempts,
answer from it as they answer from the rows (and as the truth says); a grown file puts its day
out of date until the next ingest rebuilds it; a kill while it is written leaves the store
consistent and the answers right."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import LOGANALYZER

from loganalyzer import trace
from loganalyzer.report.rollup import refresh
from loganalyzer.store import Store, addresses
from loganalyzer.store.compact import prune
from loganalyzer.store.parts import FAILPOINT


def _run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("addresses")
    logs, st = root / "logs", root / "store"
    # (with agent logs: refused recipients, listed beside the messages)
    made = _run("synth", "--out", str(logs), "--servers", "2", "--days", "2",
                "--messages", "30", "--seed", "5", "--agent-logs")  # fmt: skip
    assert made.returncode == 0, made.stderr
    done = _run("ingest", str(logs), "--store", str(st))
    assert done.returncode == 0, done.stderr
    truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
    return st, truth


def _from_rows(st: Path, **query) -> dict:
    """What the rows answer: the same trace with the address index out of the way."""
    real = addresses.coverage
    addresses.coverage = lambda *a, **k: None
    try:
        result = trace(st, limit=10_000, verdicts=True, **query)  # as the command lists
    finally:
        addresses.coverage = real
    return json.loads(json.dumps({"total": result.total, "candidates": result.candidates}))


def _from_index(st: Path, **query) -> dict:
    result = trace(st, limit=10_000, verdicts=True, **query)
    return json.loads(json.dumps({"total": result.total, "candidates": result.candidates}))


def _listed(st: Path, *args: str) -> dict:
    done = _run("trace", "--store", str(st), "--json", "--limit", "10000", *args)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    return {"total": got["total"], "candidates": got["candidates"]}


def _queries(truth: list[dict]) -> dict[str, dict]:
    """A sender, a recipient wildcard, a subject word and a refused recipient's domain."""
    tracked = [t for t in truth if t["message_id"] and t["subject"] and t["recipient"]]
    t = tracked[len(tracked) // 2]
    word = max((w for w in t["subject"].split() if w.isalpha()), key=len, default="the")
    # a refused recipient's first letter and domain: tracked messages and refused attempts
    refused = next(x for x in truth if x["verdict"] == "rejected" and x.get("stage") == "rcpt")
    local, _, domain = refused["recipient"].partition("@")
    return {
        "sender": {"sender": t["sender"].upper()},
        "recipient": {"recipient": f"{local[:1]}*@{domain}"},
        "subject": {"subject": word.lower()},
    }


def _args(query: dict) -> list[str]:
    return [x for k, v in query.items() for x in (f"--{k}", v)]


def test_lists_from_the_index_equal_the_rows_and_the_truth(built):
    st, truth = built
    check = Store(st).check()
    assert check["ok"] and check["address_index"]["current"] == 2, check
    queries = _queries(truth)
    for kind, query in queries.items():
        got = _listed(st, *_args(query))
        assert got == _from_rows(st, **query), kind
        assert got["total"] == len(got["candidates"]) > 0, kind
        ids = {c["message_id"] for c in got["candidates"] if c["outcome"] != "rejected"}
        if kind == "sender":
            want = {t["message_id"] for t in truth if t["sender"] == query["sender"].lower()}
            assert want and want <= ids
        if kind == "recipient":
            local, _, domain = query["recipient"].lower().partition("*@")
            named = [
                t
                for t in truth
                if (t["recipient"] or "").lower().startswith(local)
                and (t["recipient"] or "").lower().endswith("@" + domain)
            ]
            assert {t["message_id"] for t in named if t["message_id"]} <= ids
            refused = [c for c in got["candidates"] if c["outcome"] == "rejected"]
            want = {t["recipient"].lower() for t in named if t["verdict"] == "rejected"}
            assert want and want <= {r.lower() for c in refused for r in c["recipients"]}
        if kind == "subject":
            want = {
                t["message_id"]
                for t in truth
                if t["message_id"] and query["subject"] in (t["subject"] or "").lower()
            }
            assert want and want <= ids


def test_a_grown_file_and_a_kill_while_the_index_is_written(built, tmp_path):
    st = tmp_path / "store"
    shutil.copytree(built[0], st)
    log = sorted((built[0].parent / "logs").rglob("MSGTRK*.LOG"))[-1]
    grown = tmp_path / "logs" / "EX99" / log.name
    grown.parent.mkdir(parents=True)
    data = log.read_bytes()
    grown.write_bytes(data + data.split(b"\r\n", 5)[-1])  # a new server's log: its lines twice
    query = {"recipient": "a*@*"}
    args = ["ingest", str(grown), "--store", str(st), "--server", "EX99"]
    for stage, stale in (("addresses-renamed", 1), ("addresses-indexed", 0)):
        if stage == "addresses-indexed":  # the file grows: its day is rebuilt, then the kill
            grown.write_bytes(grown.read_bytes() + data.split(b"\r\n", 5)[-1])
        killed = _run(*args, env={**os.environ, FAILPOINT: stage})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        check = Store(st).check()
        assert check["missing"] == check["unreadable"] == check["row_counts"] == []
        assert all("left by an interrupted run" in p for p in check["problems"]), check["problems"]
        # before the index is replaced the grown day is out of date (read from its rows)
        assert check["address_index"]["stale"] == stale, (stage, check["address_index"])
        assert _from_index(st, **query) == _from_rows(st, **query), stage
    # the second run rebuilt the grown day before it was killed: only its leftovers remain
    st_ = Store(st)
    with st_.lock():
        assert st_.clean()
    check = st_.check()
    assert check["ok"], check["problems"]
    assert check["address_index"] == {"current": 2, "kept": 0, "stale": 0, "missing": 0}
    assert _from_index(st, **query) == _from_rows(st, **query)
    # prune: the pruned day's index goes with its rows
    prune(st, "2026-03-03", rollups=refresh)
    check = Store(st).check()
    assert check["ok"] and check["address_index"]["current"] == 1, check
    index = addresses.rollups.load(Store(st), addresses.KIND)
    assert list(index) == ["2026-03-03"]
    assert [p.relative_to(st).as_posix() for p in (st / addresses.FOLDER).rglob("*.parquet")] == [
        index["2026-03-03"].part
    ]
    assert _from_index(st, **query) == _from_rows(st, **query)


def test_built_in_passes_the_index_is_the_same(built, tmp_path):
    """Each message's row grouped in passes (as on a day of 100,000 messages, where one
    grouping ran out of memory): the same parts, row for row."""
    import pyarrow.parquet as pq

    st, _ = built
    copy = tmp_path / "store"
    shutil.copytree(st, copy)
    (copy / addresses.INDEX_FILE).unlink()
    shutil.rmtree(copy / addresses.FOLDER)
    env = {**os.environ, "LOGANALYZER_REPORT_PASSES": "3"}
    done = _run("ingest", str(st.parent / "logs"), "--store", str(copy), env=env)
    assert done.returncode == 0, done.stderr

    def days(store: Path) -> dict:
        index = addresses.rollups.load(Store(store), addresses.KIND)
        return {d: pq.read_table(store / e.part).to_pylist() for d, e in index.items()}

    want = days(st)
    assert days(copy) == want and len(want) == 2
    assert any(r["role"] == "message" for rows in want.values() for r in rows)
