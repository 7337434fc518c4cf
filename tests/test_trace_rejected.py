"""Rejected attempts and next-hop evidence: synth --agent-logs against its truth, and the CLI."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import LOGANALYZER

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate
from loganalyzer.trace import trace

STAGES = {"connect", "helo", "rcpt", "data"}


@pytest.fixture(scope="module")
def agent_store(tmp_path_factory) -> tuple[Path, list[dict]]:
    root = tmp_path_factory.mktemp("agentlogs")
    generate(root / "logs", messages=250, seed=5, agent_logs=True)
    ingest([root / "logs"], root / "store")
    truth = [json.loads(x) for x in (root / "logs" / "truth.jsonl").open(encoding="utf-8")]
    return root / "store", truth


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else None


def test_synth_writes_both_logs_and_every_stage(agent_store, tmp_path):
    store, truth = agent_store
    rejected = [t for t in truth if t["verdict"] == "rejected"]
    assert {t["stage"] for t in rejected} == STAGES
    assert {t["agent"] for t in rejected} == {
        None,
        "Connection Filtering Agent",
        "Recipient Filter Agent",
        "Sender Id Agent",
        "Content Filter Agent",
    }
    # a session that never reached DATA has no Message-ID; one that did has it
    assert all((t["message_id"] is None) == (t["stage"] != "data") for t in rejected)
    named = Counter(t["next_hop_failure"] for t in truth if t.get("next_hop_failure"))
    assert set(named) <= {"dns", "refused", "timeout", "tls"} and named
    done = subprocess.run(
        [LOGANALYZER, "synth", "--out", str(tmp_path / "o"), "--messages", "20", "--agent-logs"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "rejected" in done.stdout
    assert list((tmp_path / "o").glob("EX0*/AgentLog/AgentLog*.LOG"))
    assert list((tmp_path / "o").glob("EX0*/Connectivity/CONNECTLOG*.LOG"))


def test_every_truth_row_equals_the_trace(agent_store):
    """Tracked recipients by Message-ID, rejected ones as listed by time; the next-hop
    failure of every deferred or failed recipient named as the truth names it."""
    store, truth = agent_store
    result = trace(store, since="2000-01-01", all=True, limit=10**6)
    tracked, refused = {}, {}
    for m in result.messages:
        for r in m.recipients:
            for v in r.flatten():
                if v.verdict == "rejected":
                    key = (m.message_id, v.address, _iso(v.date_time), v.remote_ip)
                    refused[key] = v
                else:
                    tracked[(m.message_id, v.address.lower())] = v
    wrong = Counter()
    for t in truth:
        if t["verdict"] == "rejected":
            v = refused.get((t["message_id"], t["recipient"], t["at"], t["remote_ip"]))
            same = v is not None and (v.server, v.stage, v.agent, v.status) == (
                t["server"],
                t["stage"],
                t["agent"],
                t["reply"],
            )
        else:
            v = tracked.get((t["message_id"], t["recipient"].lower()))
            same = v is not None and (v.verdict, v.server, _iso(v.date_time)) == (
                t["verdict"],
                t["server"],
                t["at"],
            )
            same = same and v.next_hop_failure == t["next_hop_failure"]
        if not same:
            wrong[(t["verdict"], v.verdict if v else None)] += 1
    assert not wrong, dict(wrong)
    # and the trace lists no refusal the truth does not have
    assert len(refused) == sum(t["verdict"] == "rejected" for t in truth)


def test_a_rejected_recipient_is_found_by_who_and_when(agent_store):
    store, truth = agent_store
    t = next(
        x for x in truth if x.get("stage") == "rcpt" and x.get("agent") == "Recipient Filter Agent"
    )
    at = datetime.fromisoformat(t["at"].replace("Z", "+00:00"))
    result = trace(
        store,
        sender=t["sender"],
        recipient=t["recipient"].upper(),
        since=(at - timedelta(minutes=5)).isoformat(),
        until=(at + timedelta(minutes=5)).isoformat(),
    )
    assert [c["outcome"] for c in result.candidates] == ["rejected"]
    [m] = result.messages  # one match is traced
    [v] = [v for v in m.recipients if v.address == t["recipient"]]
    assert (v.verdict, v.stage, v.reason, v.status) == (
        "rejected",
        "rcpt",
        "RecipientDoesNotExist",
        "550 5.1.1 User unknown",
    )
    assert [e["log"] for e in v.to_dict()["evidence"]] == ["smtp", "agent"]
    assert v.summary.startswith(f"rejected at RCPT by {t['server']}")
    assert "by the Recipient Filter Agent (RecipientDoesNotExist)" in v.summary


def test_a_spam_rejection_is_found_by_its_message_id(agent_store):
    store, truth = agent_store
    t = next(x for x in truth if x.get("agent") == "Content Filter Agent")
    result = trace(store, t["message_id"])
    [m] = result.messages
    assert m.message_id == t["message_id"]
    v = next(v for v in m.recipients if v.address == t["recipient"])
    assert (v.verdict, v.stage, v.reason) == ("rejected", "data", "SclAtOrAboveRejectThreshold")
    assert "(SclAtOrAboveRejectThreshold: SCL " in v.summary


def test_cli_picks_a_rejected_attempt_as_its_session(agent_store):
    store, truth = agent_store
    t = next(x for x in truth if x.get("stage") == "connect")
    at = datetime.fromisoformat(t["at"].replace("Z", "+00:00"))
    window = ["--since", (at - timedelta(seconds=1)).isoformat()]
    window += ["--until", (at + timedelta(seconds=1)).isoformat()]
    base = [LOGANALYZER, "trace", "--store", str(store), *window, "--json"]
    listing = json.loads(subprocess.run(base, capture_output=True, text=True, timeout=300).stdout)
    n = next(
        i
        for i, c in enumerate(listing["candidates"], 1)
        if c["outcome"] == "rejected" and c["remote_ip"] == t["remote_ip"]
    )
    done = subprocess.run([*base, "--pick", str(n)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["messages"]
    [v] = m["recipients"]
    assert (v["address"], v["verdict"], v["stage"], v["agent"], v["remote_ip"]) == (
        None,
        "rejected",
        "connect",
        "Connection Filtering Agent",
        t["remote_ip"],
    )
    assert v["status"] == t["reply"] and v["date_time"] == t["at"]
    session = next(e for e in m["events"] if e["event_id"] == "SMTP SESSION")
    assert [c["event"] for c in session["conversation"]] == ["+", ">", "-"]
    text = subprocess.run(
        [*base[:-1], "--pick", str(n)], capture_output=True, text=True, timeout=300
    )
    assert "rejected at connect by" in " ".join(text.stdout.split())


def test_a_failed_next_hop_is_named_in_the_verdict(agent_store):
    store, truth = agent_store
    t = next(x for x in truth if x["verdict"] == "failed" and x.get("next_hop_failure"))
    [m] = trace(store, t["message_id"]).messages
    v = next(v for v in m.recipients if v.address == t["recipient"])
    words = {
        "dns": "DNS query failed",
        "refused": "connection refused",
        "timeout": "connection timed out",
        "tls": "TLS negotiation failed",
    }[t["next_hop_failure"]]
    domain = t["recipient"].split("@")[1]
    assert f"next hop {domain}: {words}" in v.summary
    assert v.evidence and {e["log"] for e in v.evidence} == {"connectivity"}
    assert all(e["server"] == t["server"] and e["file"] and e["line"] for e in v.evidence)
