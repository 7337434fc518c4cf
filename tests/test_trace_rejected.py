"""Rejected attempts and next-hop evidence: synth --agent-logs against its truth, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import CORPUS, LOGANALYZER

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
    deleted = [t for t in truth if t.get("agent") and t["verdict"] != "rejected"]
    assert {t["verdict"] for t in deleted} == {"dropped", "quarantined"}
    assert all(t["message_id"] and t["reply"] is None for t in deleted)
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
                if v.stage is not None:  # an attempt: rejected, or deleted/quarantined by an agent
                    key = (m.message_id, v.address, _iso(v.date_time), v.remote_ip)
                    refused[key] = v
                else:
                    tracked[(m.message_id, v.address.lower())] = v
    wrong = Counter()
    for t in truth:
        if "stage" in t:
            v = refused.get((t["message_id"], t["recipient"], t["at"], t["remote_ip"]))
            same = v is not None and (v.verdict, v.server, v.stage, v.agent, v.status) == (
                t["verdict"],
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
    assert len(refused) == sum("stage" in t for t in truth)
    assert {t["verdict"] for t in truth if "stage" in t} == {"rejected", "dropped", "quarantined"}


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


def test_a_list_says_where_and_from_whom_an_attempt_was_refused(agent_store):
    """An attempt refused at connect names no sender, recipient or subject: its row in the
    terminal's list was blank but for its time; it says the stage and the client's IP."""
    store, truth = agent_store
    t = next(x for x in truth if x.get("stage") == "connect")
    at = datetime.fromisoformat(t["at"].replace("Z", "+00:00"))
    window = ["--since", (at - timedelta(seconds=1)).isoformat()]
    window += ["--until", (at + timedelta(seconds=1)).isoformat()]
    done = subprocess.run(
        [LOGANALYZER, "trace", "--store", str(store), "--verdict", "rejected", "--limit", "999"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr
    assert f"refused at connect from {t['remote_ip']}" in done.stdout, done.stdout
    picked = subprocess.run(
        [LOGANALYZER, "trace", "--store", str(store), *window, "--verdict", "rejected"],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "400"},
    )
    assert picked.returncode == 0 and ".; from" not in picked.stdout, picked.stdout


def test_a_sender_id_refusal_is_found_by_its_envelope_sender(agent_store):
    """The sender of an attempt is its MAIL FROM, in the protocol log, the agent log's
    P1FromAddress and the truth alike (the spoofed From: address is the agent's P2)."""
    store, truth = agent_store
    t = next(x for x in truth if (x.get("reply") or "").startswith("550 5.7.1 Sender ID"))
    at = datetime.fromisoformat(t["at"].replace("Z", "+00:00"))
    done = subprocess.run(
        [LOGANALYZER, "trace", "--store", str(store), "--sender", t["sender"], "--json",
         "--since", (at - timedelta(minutes=5)).isoformat(),
         "--until", (at + timedelta(minutes=5)).isoformat()],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)["candidates"]
    assert any(
        c["outcome"] == "rejected" and t["recipient"] in (c.get("recipients") or []) for c in found
    ), (t, found)


def test_a_spam_rejection_is_found_by_its_message_id(agent_store):
    store, truth = agent_store
    t = next(x for x in truth if x.get("agent") == "Content Filter Agent")
    result = trace(store, t["message_id"])
    [m] = result.messages
    assert m.message_id == t["message_id"]
    v = next(v for v in m.recipients if v.address == t["recipient"])
    assert (v.verdict, v.stage, v.reason) == ("rejected", "data", "SclAtOrAboveRejectThreshold")
    assert "(SclAtOrAboveRejectThreshold: SCL " in v.summary


def test_every_agent_decision_is_found_by_its_network_message_id(agent_store):
    """The Content Filter Agent logs the network message ID of what it refuses, deletes or
    quarantines at the end of DATA: a trace by that ID gives what one by the Message-ID
    gives, the SMTP session included (the protocol log does not name the ID)."""
    store, truth = agent_store
    named = [t for t in truth if t.get("network_message_id") and t.get("stage")]
    assert {t["verdict"] for t in named} == {"rejected", "dropped", "quarantined"}
    assert all(t["agent"] == "Content Filter Agent" for t in named)
    for t in named:
        [m] = trace(store, t["network_message_id"].upper().replace("-", "")).messages
        [byid] = trace(store, t["message_id"]).messages
        assert m.to_dict() == byid.to_dict()
        assert m.network_message_id == t["network_message_id"]
        v = next(v for v in m.recipients if v.address == t["recipient"])
        assert (v.verdict, v.stage, v.server) == (t["verdict"], "data", t["server"])
        assert "SMTP SESSION" in [e.event_id for e in m.events]
    t = named[0]
    done = subprocess.run(
        [LOGANALYZER, "trace", t["network_message_id"], "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["messages"]
    assert m["message_id"] == t["message_id"]
    assert [v["verdict"] for v in m["recipients"] if v["address"] == t["recipient"]] == [
        t["verdict"]
    ]
    # an ID nobody logged is still one clear line
    gone = subprocess.run(
        [LOGANALYZER, "trace", "00000000-1111-2222-3333-444444444444", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert gone.returncode == 1 and gone.stderr.count("\n") == 1, gone.stderr
    assert "00000000-1111-2222-3333-444444444444" in gone.stderr


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
    page = store.parent / "refused.html"
    text = subprocess.run(
        [*base[:-1], "--pick", str(n), "--html", str(page)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert text.returncode == 0, text.stderr
    assert "rejected at connect by" in " ".join(text.stdout.split())
    html = page.read_text(encoding="utf-8")
    assert "(no recipient yet)" in html and ">None<" not in html


def test_the_command_lists_every_rejected_attempt_by_its_verdict_alone(agent_store):
    """``trace --verdict rejected`` with no other filter lists every refused attempt (each
    recipient refused, and the sessions refused before any): it read no SMTP log without a
    sender, recipient or time, and found nothing."""
    store, truth = agent_store
    rejected = [t for t in truth if t["verdict"] == "rejected"]
    done = subprocess.run(
        [LOGANALYZER, "trace", "--verdict", "rejected", "--limit", "100000", "--json"]
        + ["--store", str(store)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    listed = json.loads(done.stdout)["candidates"]
    refused = Counter(
        ((v["recipient"] or "").lower(), c["server"])
        for c in listed
        for v in c["verdicts"]
        if v["verdict"] == "rejected"
    )
    assert refused == Counter(((t["recipient"] or "").lower(), t["server"]) for t in rejected)
    assert {c["outcome"] for c in listed} == {"rejected"}


def test_a_content_filter_delete_of_an_accepted_message_is_named(agent_store):
    store, truth = agent_store
    t = next(x for x in truth if x["verdict"] == "dropped" and x.get("agent"))
    [m] = trace(store, t["message_id"]).messages
    v = next(v for v in m.recipients if v.address == t["recipient"])
    assert (v.verdict, v.stage, v.agent, v.reason) == (
        "dropped",
        "data",
        "Content Filter Agent",
        "SclAtOrAboveDeleteThreshold",
    )
    assert v.summary.startswith(f"deleted at DATA by {t['server']}")
    assert "(SclAtOrAboveDeleteThreshold: SCL 9)" in v.summary
    assert v.summary.endswith("the sender was told it was accepted")
    session = next(e for e in m.events if e.event_id == "SMTP SESSION")
    assert any((c.data or "").startswith("250 2.6.0") for c in session.conversation)


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


def test_report_figures_equal_the_truth(agent_store):
    """The report's section of rejected attempts and failing next hops, as the command
    prints it, against the truth."""
    import json
    import subprocess

    import pandas as pd
    from conftest import LOGANALYZER

    store, truth = agent_store
    done = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", str(store), "--date", "2026-03-02"]
        + ["--tz", "UTC", "--json", "--traces", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    tables = json.loads(done.stdout)["tables"]
    refused, hops = pd.DataFrame(tables["rejections"]), pd.DataFrame(tables["next_hops"])
    by_stage = refused.groupby("stage")[["attempts", "recipients"]].sum()
    rows = Counter(t.get("stage") for t in truth if t["verdict"] == "rejected")
    for stage in ("rcpt", "data"):
        assert by_stage.loc[stage, "recipients"] == rows[stage]
    for stage in ("connect", "helo"):
        assert by_stage.loc[stage, "attempts"] == rows[stage]
    harvest = refused[refused["reason"] == "RecipientDoesNotExist"]
    assert harvest["recipients"].sum() == sum(
        t.get("agent") == "Recipient Filter Agent" for t in truth
    )
    failing = {
        (t["server"], t["recipient"].split("@")[1], t["next_hop_failure"])
        for t in truth
        if t.get("next_hop_failure")
    }
    for server, domain, kind in failing:
        row = hops[(hops["server"] == server) & (hops["destination"] == domain)]
        assert len(row) == 1 and row.iloc[0][kind] > 0, (server, domain, kind)
    # mail the Content Filter deleted or quarantined after accepting it: in no tracking row,
    # counted here, and named at the top of the page
    removed = pd.DataFrame(tables["agent_removed"])
    want = Counter(
        t["verdict"] for t in truth
        if t.get("agent") and t["verdict"] in ("dropped", "quarantined")
        and t["at"].startswith("2026-03-02")
    )  # fmt: skip
    assert set(want) == {"dropped", "quarantined"}
    assert removed.groupby("verdict")["recipients"].sum().to_dict() == dict(want)
    assert set(removed["agent"]) == {"Content Filter Agent"}
    page = store.parent / "report.html"
    subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", str(store), "--date", "2026-03-02",
         "--traces", "0", "--out", str(page)],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    html = page.read_text(encoding="utf-8")
    assert "Messages removed by anti-spam agents after the sender was told they were" in html
    assert "Accepted, then deleted or quarantined by an agent" in html


def test_an_agent_quarantine_of_an_accepted_message_is_named(tmp_path):
    from logfiles import row, write_log

    logs = tmp_path / "logs" / "EX02"
    write_log(
        logs / "MSGTRK2026030210-1.LOG",
        [
            row(1, sender_address="promo@bad.example", return_path="promo@bad.example"),
            row(
                2,
                event_id="DELIVER",
                source="STOREDRIVER",
                message_id="<msg1@contoso.com>",
                network_message_id=row(1)["network-message-id"],
            ),
        ],
    )
    agent = logs / "AgentLog" / "AgentLog20260302-1.LOG"
    agent.parent.mkdir()
    agent.write_text(
        "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n#Log-type: Agent Log\r\n"
        "#Date: 2026-03-02T10:00:00.000Z\r\n#Fields: Timestamp,SessionId,LocalEndpoint,"
        "RemoteEndpoint,EnteredOrgFromIP,MessageId,P1FromAddress,P2FromAddresses,Recipient,"
        "NumRecipients,Agent,Event,Action,SmtpResponse,Reason,ReasonData,Diagnostics,"
        "NetworkMsgID,TenantID,Directionality\r\n"
        "2026-03-02T10:00:01.500Z,08DA9A4C1D2E0001,10.0.0.6:25,203.0.113.9:40112,203.0.113.9,"
        "<msg1@contoso.com>,promo@bad.example,promo@bad.example;,bob@contoso.com,1,"
        "Content Filter Agent,OnEndOfData,QuarantineMessage,"
        "550 5.2.1 Content Filter agent quarantined this message,"
        "SclAtOrAboveQuarantineThreshold,7,,,,Incoming\r\n",
        encoding="utf-8",
    )
    store = tmp_path / "store"
    ingest([tmp_path / "logs"], store)
    done = subprocess.run(
        [LOGANALYZER, "trace", "--store", str(store), "msg1@contoso.com", "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["messages"]
    [v] = m["recipients"]
    assert v["summary"].endswith(
        "; QuarantineMessage by the Content Filter Agent (SclAtOrAboveQuarantineThreshold, SCL 7)"
    )
    assert (v["agent"], v["reason"]) == ("Content Filter Agent", "SclAtOrAboveQuarantineThreshold")
    [e] = v["evidence"]
    assert (e["log"], e["server"], e["line"], e["date_time"]) == (
        "agent",
        "EX02",
        6,
        "2026-03-02T10:00:01.500Z",
    )
    # by time, the tracked message once: the agent's quarantine is not an attempt of its own
    listed = trace(store, since="2026-03-02", until="2026-03-03")
    assert [c["message_id"] for c in listed.candidates] == ["<msg1@contoso.com>"]


RELAY_ATTEMPT = """\
#Software: Microsoft Internet Information Services 7.5
#Version: 1.0
#Date: 2026-03-02 09:00:00
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem \
cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host \
cs(User-Agent) cs(Cookie) cs(Referer)
2026-03-02 09:00:01 198.51.100.77 spambot.example SMTPSVC1 RELAY01 192.0.2.30 0 EHLO - \
+spambot.example 250 0 240 20 0 SMTP - - - -
2026-03-02 09:00:02 198.51.100.77 spambot.example SMTPSVC1 RELAY01 192.0.2.30 0 MAIL - \
+FROM:+<deals@spambot.example> 250 0 57 45 0 SMTP - - - -
2026-03-02 09:00:02 198.51.100.77 spambot.example SMTPSVC1 RELAY01 192.0.2.30 0 RCPT - \
+TO:+<victim@elsewhere.example> 550 0 40 30 0 SMTP - - - -
2026-03-02 09:00:03 198.51.100.77 spambot.example SMTPSVC1 RELAY01 192.0.2.30 0 QUIT - \
spambot.example 240 0 68 4 0 SMTP - - - -
"""


def test_a_relay_attempt_in_an_iis_log_is_listed(tmp_path):
    log = tmp_path / "RELAY01" / "SMTPSVC1" / "ex260302.log"
    log.parent.mkdir(parents=True)
    log.write_text(RELAY_ATTEMPT.replace("\n", "\r\n"), encoding="ascii")
    store = tmp_path / "store"
    ingest([log], store)
    args = ["--recipient", "victim@*", "--since", "2026-03-02", "--until", "2026-03-03"]
    done = subprocess.run(
        [LOGANALYZER, "trace", "--store", str(store), *args, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    [c] = result["candidates"]
    assert (c["outcome"], c["sender"], c["recipients"], c["remote_ip"]) == (
        "rejected",
        "deals@spambot.example",
        ["victim@elsewhere.example"],
        "198.51.100.77",
    )
    [v] = result["messages"][0]["recipients"]
    assert (v["verdict"], v["stage"], v["status"], v["helo"], v["server"]) == (
        "rejected",
        "rcpt",
        "550",
        "spambot.example",
        "RELAY01",
    )
    assert v["date_time"] == "2026-03-02T09:00:02.000Z"
    assert [(e["log"], e["line"]) for e in v["evidence"]] == [("smtp", 7)]


def test_a_pattern_of_many_stars_answers_at_once(agent_store):
    """Wildcards are matched in one pass: a pattern of many stars took minutes (each a
    regular expression's ``.*``), holding the web app's every request."""
    store, truth = agent_store
    t = next(x for x in truth if x.get("stage") == "rcpt")
    user, domain = t["recipient"].split("@")
    many = user[0] + "*" * 12 + user[-1] + "x*y" * 6 + "@" + domain
    done = subprocess.run(
        [LOGANALYZER, "trace", "--store", str(store), "--recipient", many, "--json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    spread = user[0] + "*" + "*".join(user[1:]) + "@" + domain.upper()
    got = trace(store, recipient=spread, since="2000-01-01", limit=None).candidates
    assert any(t["recipient"] in c["recipients"] for c in got if c["outcome"] == "rejected")


@pytest.mark.parametrize("seed", range(4))
def test_wildcards_match_as_the_documented_regular_expression(seed):
    import random
    import re

    from loganalyzer.trace.find import matches

    rnd = random.Random(seed)
    for _ in range(20000):
        pattern = "".join(rnd.choice("ab*?@.") for _ in range(rnd.randint(0, 7)))
        value = "".join(rnd.choice("abAB@.") for _ in range(rnd.randint(0, 9)))
        regex = "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
        assert matches(pattern, value) == bool(re.fullmatch(regex, value, re.IGNORECASE))


def test_a_session_begun_in_an_earlier_log_is_not_refused_at_connect(tmp_path):
    # Real (CORPUS smtp-protocol): a lone line 11 of a session, "504 5.7.4 Unrecognized
    # authentication type", was listed as an attempt "rejected at connect"
    log = CORPUS / "smtp-protocol" / "ipban-smtp_auth_unsuccessful.log"
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(log), "--store", store],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    window = ["--since", "2021-04-03", "--until", "2021-04-04"]
    listed = subprocess.run([LOGANALYZER, "trace", "--store", store, *window, "--json"],
                            capture_output=True, text=True)  # fmt: skip
    assert "27.255.75.110" not in listed.stdout and "connect" not in listed.stdout
    assert listed.returncode == 1 and listed.stderr.startswith("error: No message in the store")
    # and the report, which counts them with its own query, agrees
    report = subprocess.run([LOGANALYZER, "report", "daily", "--store", store, "--date",
                             "2021-04-03", "--json"], capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["tables"]["rejections"] == []


_RECV_HEAD = (
    "#Software: Microsoft Exchange Server\n#Version: 15.0.0.0\n"
    "#Log-type: SMTP Receive Protocol Log\n#Date: {day}T00:00:00.000Z\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context\n"
)


def _recv_log(path: Path, day: str, session: str, lines: list[tuple[str, str, str]],
              first: int = 0) -> None:  # fmt: skip
    """A receive protocol log of one session: (time, event, data) a line."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "".join(
        f"{day}T{t}.000Z,EXF\\Default Frontend EXF,{session},{first + i},10.0.0.7:25,"
        f"198.51.100.99:41000,{e},{d},\n"
        for i, (t, e, d) in enumerate(lines)
    )
    path.write_text(_RECV_HEAD.format(day=day) + body)


def test_a_day_east_of_utc_counts_the_refusals_of_its_first_hours(agent_store):
    """A day of a zone east of UTC begins the UTC day before: its refused attempts and next
    hops were read from the partitions of its own date on, so those of its first hours (here
    the whole logged part, 18:30 to midnight UTC of the sample day) were left out."""
    store, truth = agent_store
    done = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", str(store), "--date", "2026-03-03"]
        + ["--tz", "Asia/Kolkata", "--json", "--traces", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    tables = json.loads(done.stdout)["tables"]
    start = datetime.fromisoformat("2026-03-02T18:30:00+00:00")
    late = [
        t for t in truth if t["verdict"] == "rejected" and datetime.fromisoformat(t["at"]) >= start
    ]
    refused = Counter()
    for r in tables["rejections"]:
        refused[r["stage"]] += r["recipients"] if r["stage"] in ("rcpt", "data") else r["attempts"]
    assert late and refused["rcpt"] == sum(t.get("stage") == "rcpt" for t in late)
    assert refused["connect"] == sum(t.get("stage") == "connect" for t in late)
    assert tables["next_hops"]  # the connectivity log's evening


def _refused(store: str, *args: str, since: str) -> tuple[list, list]:
    """(trace's refused recipients from ``since`` on, the report's rejections) of the store."""
    args_ = ["--sender", "*@spam.example", "--since", since, "--all", "--json"]
    traced = subprocess.run([LOGANALYZER, "trace", "--store", store, *args_],
                            capture_output=True, text=True)  # fmt: skip
    assert traced.returncode == 0, traced.stderr
    who = [(r["address"], r["verdict"], r["stage"])
           for m in json.loads(traced.stdout)["messages"] for r in m["recipients"]]  # fmt: skip
    report = subprocess.run([LOGANALYZER, "report", "daily", "--store", store, *args, "--json"],
                            capture_output=True, text=True)  # fmt: skip
    assert report.returncode == 0, report.stderr
    rows = json.loads(report.stdout)["tables"]["rejections"]
    return who, [(r["stage"], r["attempts"], r["recipients"]) for r in rows]


def test_pipelined_recipients_refused_at_data_are_each_named_once(tmp_path):
    # MAIL, RCPT, RCPT sent at once, then their three replies: each reply answers its own
    # command; trace named the last recipient three times (once a 250) and the report 1
    log = tmp_path / "EXF" / "RECV2026091310-1.LOG"
    _recv_log(log, "2026-09-13", "08DE0000000AB001", [
        ("10:00:00", "+", ""), ("10:00:00", ">", "220 exf ready"),
        ("10:00:01", "<", "EHLO spam.example"), ("10:00:01", ">", "250 exf Hello"),
        ("10:00:02", "<", "MAIL FROM:<y@spam.example>"),
        ("10:00:02", "<", "RCPT TO:<ann@contoso.com>"),
        ("10:00:02", "<", "RCPT TO:<ben@contoso.com>"), ("10:00:02", ">", "250 2.1.0 Sender OK"),
        ("10:00:02", ">", "250 2.1.5 Recipient OK"), ("10:00:02", ">", "250 2.1.5 Recipient OK"),
        ("10:00:03", "<", "BDAT 5000 LAST"),
        ("10:00:04", ">", "550 5.7.1 Message rejected as spam by Content Filtering."),
        ("10:00:04", "-", ""),
    ])  # fmt: skip
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(log.parent), "--store", store, "--final"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    who, rows = _refused(store, "--date", "2026-09-13", since="2026-09-13")
    assert who == [("ann@contoso.com", "rejected", "data"), ("ben@contoso.com", "rejected", "data")]
    assert rows == [("data", 1, 2)]


def test_a_refusal_after_midnight_is_at_the_stage_its_session_reached_before(tmp_path):
    # the session began at 23:59:58 and was refused at DATA after midnight: read one UTC day
    # at a time, its refusal had no command before it (and was lost, or "at connect")
    first = tmp_path / "EXF" / "RECV2026091123-1.LOG"
    _recv_log(first, "2026-09-11", "08DE0000000AB002", [
        ("23:59:58", "+", ""), ("23:59:58", ">", "220 exf ready"),
        ("23:59:58", "<", "EHLO spam.example"), ("23:59:58", ">", "250 exf Hello"),
        ("23:59:59", "<", "MAIL FROM:<x@spam.example>"), ("23:59:59", ">", "250 2.1.0 Sender OK"),
        ("23:59:59", "<", "RCPT TO:<bob@contoso.com>"), ("23:59:59", ">", "250 2.1.5 Recipient OK"),
        ("23:59:59", "<", "DATA"), ("23:59:59", ">", "354 Start mail input"),
    ])  # fmt: skip
    second = tmp_path / "EXF" / "RECV2026091200-1.LOG"
    _recv_log(second, "2026-09-12", "08DE0000000AB002", [
        ("00:00:01", ">", "550 5.7.1 Message rejected as spam by Content Filtering."),
        ("00:00:01", "-", ""),
    ], first=10)  # fmt: skip
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(first.parent), "--store", store, "--final"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    who, rows = _refused(store, "--date", "2026-09-12", since="2026-09-11T23:00")
    assert who == [("bob@contoso.com", "rejected", "data")]
    assert rows == [("data", 1, 1)]
    # by sender alone, from the address index: its MAIL line is the day before the refusal
    for by in (["--sender", "x@spam.example"], ["--recipient", "bob@contoso.com"]):
        traced = subprocess.run([LOGANALYZER, "trace", "--store", store, *by, "--json"],
                                capture_output=True, text=True)  # fmt: skip
        assert traced.returncode == 0, traced.stderr
        [message] = json.loads(traced.stdout)["messages"]
        assert [(r["address"], r["stage"]) for r in message["recipients"]] == [
            ("bob@contoso.com", "data")
        ]
