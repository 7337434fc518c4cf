"""Headers of messages `loganalyzer synth` delivered, joined to their traces from the logs."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from logfiles import row, write_log

from loganalyzer import analyze_headers
from loganalyzer.ingest import ingest
from loganalyzer.synth import generate
from loganalyzer.synth.headers import POSTMASTER

VARIANTS = {
    "plain": {"servers": 3, "messages": 300, "seed": 7, "headers": 9},
    "relay": {"servers": 2, "messages": 150, "seed": 3, "relay": True, "headers": 6},
}
SERVERS = {f"ex{i:02d}.contoso.com" for i in range(1, 10)}


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    made = {}

    def get(name):
        if name not in made:
            root = tmp_path_factory.mktemp(name)
            generate(root / "logs", **VARIANTS[name])
            summary = ingest([root / "logs"], root / "store")
            assert summary.exit_code == 0 and summary.quarantined == 0
            truth = [json.loads(x) for x in (root / "logs" / "truth.jsonl").open()]
            emls = sorted((root / "logs" / "headers").glob("*.eml"), key=lambda p: int(p.stem))
            made[name] = (root / "logs", root / "store", truth, emls)
        return made[name]

    return get


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and p.parent.name != "headers"
    }


def test_headers_leave_the_logs_unchanged(tmp_path, synth):
    logs, *_ = synth("relay")
    generate(tmp_path / "plain", **{**VARIANTS["relay"], "headers": 0})
    assert not (tmp_path / "plain" / "headers").exists()
    assert _files(tmp_path / "plain") == _files(logs)
    generate(tmp_path / "again", **VARIANTS["relay"])
    again = sorted((tmp_path / "again" / "headers").iterdir())
    assert [p.read_bytes() for p in again] == [
        (logs / "headers" / p.name).read_bytes() for p in again
    ]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_counts_and_kinds(synth, variant):
    logs, _, truth, emls = synth(variant)
    n = VARIANTS[variant]["headers"]
    ndrs = [p for p in emls if b"X-MS-Exchange-Message-Is-Ndr" in p.read_bytes()]
    assert len(emls) - len(ndrs) == n and 1 <= len(ndrs) <= 3
    texts = [re.sub(r"\r?\n[ \t]+", " ", p.read_text("utf-8")) for p in emls]
    assert any("with mapi id" in t for t in texts)  # from a mailbox
    assert any("via Frontend Transport" in t and "compauth=" in t for t in texts)  # Internet
    if variant == "relay":
        assert any("Microsoft SMTPSVC" in t for t in texts)


def _floor(t):
    return t.replace(microsecond=0)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_delivered_headers_join_their_trace(synth, variant):
    logs, store, truth, emls = synth(variant)
    by_mid = {}
    for t in truth:
        by_mid.setdefault(t["message_id"], []).append(t)
    checked = 0
    for path in emls:
        if analyze_headers(path.read_bytes()).is_bounce:
            continue
        r = analyze_headers(path.read_bytes(), store)
        rows = by_mid[r.message_id]
        assert r.network_message_id == rows[0]["network_message_id"]
        assert r.trace is not None and r.trace_query["found_by"] == "message_id"
        [m] = r.trace.messages
        assert m.message_id == r.message_id
        got = {v.address.lower(): v for x in m.recipients for v in x.flatten()}
        for t in rows:  # the trace's verdict of every recipient equals the truth row
            v = got[t["recipient"].lower()]
            assert (v.verdict, v.server) == (t["verdict"], t["server"])
            at = v.date_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
            assert at == t["at"]
        assert not any(h.clock_skew for h in r.hops)
        # hop times agree with the log times
        receives = [e for e in m.events if e.event_id == "RECEIVE"]
        ours = [h for h in r.hops if h.by in SERVERS or h.by == "relay01.contoso.com"]
        front = [h for h in ours if h.via == "Frontend Transport"]
        for h in ours:
            server = h.by.split(".")[0].upper()
            if h in front:
                continue
            times = [_floor(e.date_time) for e in receives if e.server == server]
            assert h.date_time in times, (path.name, h.raw, times)
        for h in front:  # the frontend stamps at DATA, before the hub it proxies to
            hub = ours[ours.index(h) + 1]
            assert hub.date_time - timedelta(seconds=60) <= h.date_time <= hub.date_time
        mapi = [h for h in r.hops if h.protocol == "mapi"]
        if mapi:  # submitted from a mailbox: STOREDRIVER RECEIVE on the sender's server
            assert mapi[0].date_time in [_floor(e.date_time) for e in receives]
        if "S:FromEntity=Internet" in str([e.source for e in m.events]) or front:
            assert r.auth["spf"] is not None or "mapi" in {h.protocol for h in r.hops}
        checked += 1
    assert checked == VARIANTS[variant]["headers"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_ndr_links_the_original_trace(synth, variant):
    logs, store, truth, emls = synth(variant)
    failed = {}
    for t in truth:
        if t["ndr_message_id"]:
            failed.setdefault(t["ndr_message_id"], []).append(t)
    bounces = 0
    for path in emls:
        if not analyze_headers(path.read_bytes()).is_bounce:
            continue
        r = analyze_headers(path.read_bytes(), store)
        bounces += 1
        rows = failed[r.message_id]
        assert r.sender.endswith(f"<{POSTMASTER}>")
        assert r.original_message_id == rows[0]["message_id"]
        assert [(b.recipient, b.status, b.diagnostic) for b in r.bounce] == [
            (t["recipient"], t["enhanced_status"], t["reply"]) for t in rows
        ]
        assert all(b.meaning for b in r.bounce)
        assert r.trace_query["found_by"] == "original_message_id"
        [m] = r.trace.messages
        assert m.message_id == r.original_message_id and r.message_id in m.ndr_message_ids
        got = {v.address.lower(): v for x in m.recipients for v in x.flatten()}
        for t in rows:
            v = got[t["recipient"].lower()]
            assert (v.verdict, v.ndr_message_id, v.enhanced_status) == (
                "failed",
                r.message_id,
                t["enhanced_status"],
            )
        timeline = r.to_dict()["timeline"]
        assert {e["source"] for e in timeline} >= {"header", "original-header", "log"}
        assert [e["date_time"] for e in timeline] == sorted(e["date_time"] for e in timeline)
    assert bounces >= 1


def test_cli_json_html_and_text_with_store(cli, synth, tmp_path):
    logs, store, truth, emls = synth("plain")
    eml = emls[0]
    out = cli("headers", str(eml), "--store", str(store), "--json")
    assert out.exit_code == 0, out.stderr
    assert json.loads(out.stdout) == analyze_headers(eml.read_bytes(), store).to_dict()
    page = tmp_path / "joined.html"
    text = cli("headers", str(eml), "--store", str(store), "--html", str(page))
    assert "Timeline: headers and logs" in text.stdout and "delivered" in text.stdout
    html = page.read_text()
    assert "Trace from the logs" in html and "<svg" in html and "<script" not in html
    missing = cli("headers", str(eml), "--store", str(tmp_path / "empty-store"), "--json")
    assert missing.exit_code == 2 and missing.stdout == ""  # no such store: refused
    assert "empty-store: no such folder: give a store's folder" in missing.stderr
    # a store without this message: the headers are still the result, with no trace
    other = tmp_path / "other-store"
    write_log(tmp_path / "logs" / "EX01" / "MSGTRK2026030210-1.LOG", [row(1)])
    assert ingest([tmp_path / "logs"], other).exit_code == 0
    missing = cli("headers", str(eml), "--store", str(other), "--json")
    assert missing.exit_code == 0, missing.output
    got = json.loads(missing.stdout)
    alone = analyze_headers(eml.read_bytes()).to_dict()
    assert got["trace"] is None and got["message_id"] == alone["message_id"]
    assert got["hops"] == alone["hops"]
    tried = got["trace_query"]["tried"]
    assert [(t["by"], t["value"], t["candidates"]) for t in tried] == [
        ("message_id", alone["message_id"], 0),
        ("network_message_id", alone["network_message_id"], 0),
    ]


def test_synth_cli_headers_option(cli, tmp_path):
    out = cli(
        "synth",
        "--out",
        str(tmp_path / "s"),
        "--servers",
        "2",
        "--messages",
        "60",
        "--seed",
        "4",
        "--headers",
        "3",
    )
    assert out.exit_code == 0, out.output
    assert "header blocks:" in out.stdout
    assert len(list((tmp_path / "s" / "headers").glob("*.eml"))) >= 3
