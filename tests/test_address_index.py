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
from loganalyzer.store import Store, addresses
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
        result = trace(st, limit=10_000, **query)
    finally:
        addresses.coverage = real
    return json.loads(json.dumps({"total": result.total, "candidates": result.candidates}))


def _from_index(st: Path, **query) -> dict:
    result = trace(st, limit=10_000, **query)
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
    local, _, domain = t["recipient"].partition("@")
    word = max((w for w in t["subject"].split() if w.isalpha()), key=len, default="the")
    refused = next(x for x in truth if x["verdict"] == "rejected" and x.get("stage") == "rcpt")
    return {
        "sender": {"sender": t["sender"].upper()},
        "recipient": {"recipient": f"{local[:3]}*@{domain}"},
        "subject": {"subject": word.lower()},
        "rejected": {"recipient": "*@" + refused["recipient"].partition("@")[2]},
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
            local, _, domain = query["recipient"].partition("*@")
            want = {
                t["message_id"]
                for t in truth
                if t["message_id"]
                and t["recipient"]
                and t["recipient"].startswith(local)
                and t["recipient"].endswith("@" + domain)
            }
            assert want and want <= ids
        if kind == "subject":
            want = {
                t["message_id"]
                for t in truth
                if t["message_id"] and query["subject"] in (t["subject"] or "").lower()
            }
            assert want and want <= ids
        if kind == "rejected":  # the refused recipients of that domain
            domain = query["recipient"][1:]
            want = {
                t["recipient"].lower()
                for t in truth
                if t["verdict"] == "rejected" and (t["recipient"] or "").endswith(domain)
            }
            refused = [c for c in got["candidates"] if c["outcome"] == "rejected"]
            assert want and want <= {r.lower() for c in refused for r in c["recipients"]}


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
        killed = _run(*args, env={**os.environ, FAILPOINT: stage})
        assert killed.returncode == -signal.SIGKILL, killed.stderr
        check = Store(st).check()
        assert check["missing"] == check["unreadable"] == check["row_counts"] == []
        assert all("left by a killed run" in p for p in check["problems"]), check["problems"]
        # before the index is replaced the grown day is out of date (read from its rows)
        assert check["address_index"]["stale"] == stale, (stage, check["address_index"])
        assert _from_index(st, **query) == _from_rows(st, **query), stage
        grown.write_bytes(grown.read_bytes() + data.split(b"\r\n", 5)[-1])  # it grows again
    again = _run(*args)
    assert again.returncode == 0, again.stderr
    check = Store(st).check()
    assert check["ok"], check["problems"]
    assert check["address_index"] == {"current": 2, "kept": 0, "stale": 0, "missing": 0}
    assert _from_index(st, **query) == _from_rows(st, **query)
    assert sorted(p.name for p in (st / addresses.FOLDER).rglob("*.parquet")) == sorted(
        Path(e.part).name for e in addresses.rollups.load(Store(st), addresses.KIND).values()
    )
