"""Messages that `synth --clients` sessions hand in are traced like any other message: by the
Message-ID of their `250 2.6.0` reply, with the verdicts truth.jsonl gives them."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import LOGANALYZER

from loganalyzer.trace import trace

QUEUED = re.compile(r"250 2\.6\.0 (<[^>]+>) \[InternalId=(\d+), Hostname=([^\]]+)\]")
ACCEPTING = ("scanner", "lob_app", "auth_app", "mfp_tls_fail", "relay_denied", "legacy_peer")


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path, list[dict], list[dict]]:
    """(logs, store, truth rows, the client sessions of sessions.jsonl)."""
    base = tmp_path_factory.mktemp("trace-clients")
    logs, store = base / "logs", base / "store"
    done = run("synth", "--out", logs, "--servers", 3, "--messages", 40, "--seed", 8, "--clients")
    assert done.returncode == 0, done.stderr
    done = run("ingest", logs, "--store", store)
    assert done.returncode == 0, done.stderr
    truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
    sessions = [json.loads(x) for x in (logs / "sessions.jsonl").open(encoding="utf-8")]
    return logs, store, truth, [s for s in sessions if s["situation"]]


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else None


def test_a_client_message_of_each_situation_traces_as_the_truth_says(built):
    _, store, truth, sessions = built
    accepted = [(s, m) for s in sessions for m in s["messages"]]
    assert {s["situation"] for s, _ in accepted} == set(ACCEPTING)
    seen = set()
    for s, msg in accepted:
        if s["situation"] in seen:
            continue
        seen.add(s["situation"])
        done = run("trace", msg["message_id"], "--store", store, "--json")
        assert done.returncode == 0, (s["situation"], done.stderr)
        [m] = json.loads(done.stdout)["messages"]
        got = {v["address"]: (v["verdict"], v["server"], v["date_time"]) for v in m["recipients"]}
        want = {
            t["recipient"]: (t["verdict"], t["server"], t["at"])
            for t in truth
            if t["message_id"] == msg["message_id"]
        }
        # the accepted recipients only, each with its true verdict, where and when
        assert got == want and set(want) == set(msg["recipients"]), s["situation"]
        assert {v for v, _, _ in want.values()} <= {"delivered", "sent_external"}
        # the accepting server's RECEIVE: the client, its connector, the reply's InternalId
        # (the first: the later ones are the mailbox servers' receipts from the hub)
        receive = next(e for e in m["events"] if e["event_id"] == "RECEIVE")
        assert receive["server"] == s["server"] and receive["connector"] == s["connector"]
        assert receive["client"] == f"{s['host']} ({s['remote_ip']})"
        reply = next(
            QUEUED.search(c["data"])
            for c in receive["conversation"]
            if QUEUED.search(c.get("data") or "")
        )
        assert reply[1] == msg["message_id"] and reply[2] == receive["internal_message_id"]
    assert seen == set(ACCEPTING)


def test_every_client_message_and_refusal_equals_the_truth(built):
    logs, store, truth, sessions = built
    mids = {m["message_id"] for s in sessions for m in s["messages"]}
    result = trace(store, since="2000-01-01", all=True, limit=10**6)
    tracked, refused = {}, {}
    for m in result.messages:
        for v in (v for r in m.recipients for v in r.flatten()):
            if v.stage is not None:
                refused[(v.address, _iso(v.date_time), v.remote_ip)] = (v, m.sender)
            else:
                tracked[(m.message_id, v.address)] = v
    wrong = Counter()
    rows = [t for t in truth if t["message_id"] in mids or "stage" in t]
    for t in rows:
        if "stage" in t:
            v, sender = refused.get((t["recipient"], t["at"], t["remote_ip"]), (None, None))
            same = v is not None and (v.verdict, v.server, v.stage, v.status, sender) == (
                t["verdict"],
                t["server"],
                t["stage"],
                t["reply"],
                t["sender"],
            )
            same = same and t["reply"].startswith("550 5.7.54 ")
        else:
            v = tracked.get((t["message_id"], t["recipient"]))
            same = v is not None and (v.verdict, v.server, _iso(v.date_time)) == (
                t["verdict"],
                t["server"],
                t["at"],
            )
        if not same:
            wrong[t["verdict"]] += 1
    assert not wrong, dict(wrong)
    # a row for each accepted recipient, and one per outside address refused (two a day)
    assert sum(t["message_id"] in mids for t in truth) == sum(
        len(m["recipients"]) for s in sessions for m in s["messages"]
    )
    assert [t["remote_ip"] for t in rows if "stage" in t] == ["10.0.30.25"] * 2
    assert len(refused) == 2


def test_the_refused_outside_recipient_is_listed_as_rejected(built):
    _, store, truth, _ = built
    t = next(x for x in truth if x.get("stage") == "rcpt")
    at = datetime.fromisoformat(t["at"].replace("Z", "+00:00"))
    window = ["--since", (at - timedelta(minutes=1)).isoformat()]
    window += ["--until", (at + timedelta(minutes=1)).isoformat()]
    done = run("trace", "--store", store, "--sender", t["sender"], *window, "--json", "--all")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    outcomes = sorted(c["outcome"] for c in got["candidates"])
    assert outcomes == ["delivered", "rejected"], outcomes
    [v] = [v for m in got["messages"] for v in m["recipients"] if v["address"] == t["recipient"]]
    assert (v["verdict"], v["stage"], v["server"]) == ("rejected", "rcpt", t["server"])
