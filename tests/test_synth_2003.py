"""Exchange 2000/2003 logs from `loganalyzer synth --exchange 2003`: the files, and every
recipient's trace verdict against truth.jsonl, all through the installed command."""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from datetime import datetime

import pytest
from conftest import LOGANALYZER

from loganalyzer.synth import generate

ARGS = ["--servers", "2", "--messages", "120", "--seed", "5", "--start", "2026-03-02"]
FIELDS = (
    "Date Time Client-IP Client-hostname Partner-Name Server-hostname Server-IP "
    "Recipient-Address Event-ID MSGID Priority Recipient-Report-Status Total-bytes "
    "Number-Recipients Origination-Time Encryption Service-Version Linked-MSGID "
    "Message-Subject Sender-Address"
).split()


def loganalyzer(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """(logs, store, truth rows, trace JSON of every message), all made by the command."""
    root = tmp_path_factory.mktemp("ex2003")
    logs, store = root / "logs", root / "store"
    done = loganalyzer("synth", "--out", logs, "--exchange", "2003", *ARGS, "--json")
    assert done.returncode == 0, done.stderr
    ingested = loganalyzer("ingest", logs, "--store", store, "--json")
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout)
    traced = loganalyzer("trace", "--store", store, "--since", "2026-03-01", "--all", "--json")
    assert traced.returncode == 0, traced.stderr
    truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
    return logs, summary, truth, json.loads(traced.stdout), json.loads(done.stdout)


def _flatten(v: dict):
    yield v
    for m in v.get("members") or []:
        yield from _flatten(m)


def _verdicts(traced: dict) -> dict[tuple[str, str], dict]:
    return {
        (m["message_id"], v["address"].lower()): v
        for m in traced["messages"]
        for r in m["recipients"]
        for v in _flatten(r)
    }


def _t(s: str) -> datetime:
    return datetime.fromisoformat(s.replace("Z", "+00:00"))


def test_files_are_exchange_2003_tracking_logs(made):
    logs, summary, truth, _, result = made
    files = sorted(p.relative_to(logs).as_posix() for p in logs.rglob("*.log") if p.is_file())
    assert files == ["EX01.log/20260302.log", "EX02.log/20260302.log"]
    lines = 0
    for name in files:
        text = (logs / name).read_bytes().decode("utf-8").split("\r\n")
        assert text[:3] == [
            "# Message Tracking Log File",
            "# Exchange System Attendant Version 6.5.7638.1",
            "# " + "\t".join(FIELDS),
        ]
        for line in text[3:-1]:
            f = line.split("\t")
            assert len(f) == 21 and f[-1] == "-" and f[8].isdigit() and f[1].endswith(" GMT")
            lines += 1
        assert text[-1] == ""
    assert summary["rows"] == lines and summary["quarantined"] == 0
    assert [d["format"] for d in summary["details"] if d["status"] == "ingested"] == [
        "exchange2003-tracking"
    ] * 2
    assert result["recipients"] == len(truth) and sum(result["verdicts"].values()) == len(truth)
    assert result["messages"] == len({t["message_id"] for t in truth})


def test_every_fate_is_made(made):
    _, _, truth, _, _ = made
    keys = "message_id network_message_id sender recipient subject size received_at verdict"
    keys += " server at enhanced_status reply ndr_message_id expanded_from deferrals"
    assert {tuple(t) for t in truth} == {tuple(keys.split())}  # those of Exchange 2016's
    kinds = Counter(t["verdict"] for t in truth)
    assert set(kinds) == {
        "delivered",
        "sent_external",
        "failed",
        "deferred",
        "expanded",
        "dropped",
        "quarantined",
    }
    ndrs = {t["message_id"] for t in truth if t["sender"] == "postmaster@contoso.com"}
    failed = [t for t in truth if t["verdict"] == "failed"]
    assert {t["ndr_message_id"] for t in failed} <= ndrs and len(ndrs) >= 1
    assert all(t["ndr_message_id"] for t in failed if t["sender"] != "postmaster@contoso.com")
    retried = [t for t in truth if t["verdict"] == "delivered" and t["deferrals"]]
    assert retried and all(t["at"] > t["deferrals"][-1] for t in retried)
    assert all(t["at"] == t["deferrals"][-1] for t in truth if t["verdict"] == "deferred")


def test_every_recipient_verdict_equals_the_truth(made):
    """Verdict, server, time and latency of each (message, recipient) of truth.jsonl."""
    _, _, truth, traced, _ = made
    got = _verdicts(traced)
    assert len(got) == len(truth)
    wrong = Counter()
    for t in truth:
        v = got[(t["message_id"], t["recipient"].lower())]
        want = (t["verdict"], t["server"], t["at"], t["enhanced_status"], t["expanded_from"])
        have = (v["verdict"], v["server"], v["date_time"], v["enhanced_status"], v["expanded_from"])
        if t["verdict"] in ("delivered", "sent_external"):
            want += ((_t(t["at"]) - _t(t["received_at"])).total_seconds(),)
            have += (v["latency_s"],)
        if want != have:
            wrong[(t["verdict"], v["verdict"])] += 1
    assert not wrong, dict(wrong)


def test_failed_recipients_name_their_ndr(made):
    _, _, truth, traced, _ = made
    got = _verdicts(traced)
    failed = [t for t in truth if t["verdict"] == "failed" and t["ndr_message_id"]]
    assert [got[(t["message_id"], t["recipient"].lower())]["ndr_message_id"] for t in failed] == [
        t["ndr_message_id"] for t in failed
    ]
    # one message by its ID, as a user traces it (the lookup sketches narrow the files)
    t = failed[0]
    done = loganalyzer("trace", t["message_id"], "--store", made[0].parent / "store", "--json")
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["messages"]
    assert m["ndr_message_ids"] == [t["ndr_message_id"]] and m["bounced"] is True
    [v] = [v for r in m["recipients"] for v in _flatten(r) if v["address"] == t["recipient"]]
    assert (v["verdict"], v["ndr_message_id"]) == ("failed", t["ndr_message_id"])


def test_same_arguments_same_bytes_and_bad_combinations(tmp_path, made):
    logs = made[0]
    generate(tmp_path / "again", servers=2, messages=120, seed=5, exchange=2003)
    for p in logs.rglob("*"):
        if p.is_file():
            assert (tmp_path / "again" / p.relative_to(logs)).read_bytes() == p.read_bytes()
    with pytest.raises(ValueError, match="--exchange 2010: give 2016 or 2003"):
        generate(tmp_path / "x", exchange=2010)
    with pytest.raises(ValueError, match="for Exchange 2016 logs"):
        generate(tmp_path / "y", exchange=2003, relay=True)
    bad = loganalyzer("synth", "--out", tmp_path / "z", "--exchange", "2007")
    assert bad.returncode == 2 and "--exchange 2007: give 2016 or 2003" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_report_figures_equal_the_truth(made):
    """Received (a message's first line), outcomes, bounces, lists, retries, latency, distinct
    senders and the top lists of `report daily --json` on 2003 logs, against truth."""
    from test_report_truth import Truth

    logs, _, truth, _, _ = made
    store = logs.parent / "store"
    done = loganalyzer("report", "daily", "--store", store, "--date", "2026-03-02", "--json")
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    want = Truth(truth, "2026-03-02")
    totals = {
        r["figure"]: (r["messages"], r["recipients"], r["bytes"]) for r in got["tables"]["totals"]
    }
    deferrals = want.deferrals()
    ndr_ids = {t["ndr_message_id"] for t in truth if t["ndr_message_id"]}
    bounces = [m for m in want.received if m["message_id"] in ndr_ids]
    assert totals == {
        "received": (len(want.received), None, sum(m["size"] for m in want.received)),
        "delivered": want.messages_of("delivered"),
        "sent out": want.messages_of("sent_external"),
        "failed": want.messages_of("failed"),
        "dropped": want.messages_of("dropped"),
        "quarantined": want.messages_of("quarantined"),
        "still deferred": (1, 1, None),
        "deferred at least once": (
            len({r["message_id"] for r, _ in deferrals}),
            len({(r["message_id"], r["recipient"]) for r, _ in deferrals}),
            None,
        ),
        "deferrals (attempts)": (None, len(deferrals), None),
        "bounces (NDRs created)": (len(bounces), None, sum(m["size"] for m in bounces)),
        "expanded (lists)": (*want.counts("expanded")[::-1], None),
    }
    assert len(bounces) == len(ndr_ids) > 0 and want.counts("expanded")[0] > 0
    assert got["headline"]["distinct_senders"] == len({m["sender"].lower() for m in want.received})
    hourly = got["tables"]["hourly"]
    for column, verdict in (
        ("received", None),
        ("delivered", "delivered"),
        ("sent_out", "sent_external"),
        ("failed", "failed"),
    ):
        assert [h[column] for h in hourly] == want.per_hour(verdict)
    lat = [x for x, _ in want.latency_rows()]
    [all_] = [r for r in got["tables"]["latency"] if r["recipients_of"] == "all"]
    assert (all_["recipients"], all_["max"]) == (len(lat), max(lat))
    for name in ("top_senders", "top_sender_domains", "top_recipients", "top_recipient_domains"):
        assert [tuple(r.values()) for r in got["tables"][name]] == getattr(want, name)(10)


def test_an_event_of_later_versions_is_told_the_2003_numbers(made):
    """`--event-id FAIL` over Exchange 2003 logs matched nothing without a word of why: the
    line now names the 2003 events of the same outcome, and one of them finds the failures."""
    logs, _, truth, _, _ = made
    store = logs.parent / "store"
    done = loganalyzer("trace", "--event-id", "FAIL", "--store", store)
    assert done.returncode == 1
    line = done.stderr.strip()
    assert line.startswith("error: No message in the store matches event FAIL. Exchange 2000/"
                           "2003 logs number their events: failed is "), line  # fmt: skip
    numbers = re.search(r"failed is ([\d, ]+) there", line)[1].split(", ")
    assert "1030" in numbers
    found = loganalyzer("trace", "--event-id", "1030", "--store", store, "--json")
    assert found.returncode == 0, found.stderr
    failed = {t["message_id"] for t in truth if t["verdict"] == "failed"}
    got = {c["message_id"] for c in json.loads(found.stdout)["candidates"]}
    assert got and got <= failed, (got, failed)
