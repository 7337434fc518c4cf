"""Tracing messages: verdicts against synth's ground truth, real samples, outputs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from conftest import CORPUS, LOGANALYZER, built_once
from logfiles import header, line, row, write_log

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate
from loganalyzer.trace import VERDICTS, trace

VARIANTS = {
    "plain": {"days": 2, "messages": 1200},
    "omit-mailbox-server": {"days": 1, "messages": 900, "omit_server": "EX02"},
    "relay-omit-hub": {"days": 1, "messages": 900, "relay": True, "omit_server": "EX01"},
}


@pytest.fixture(scope="module")
def synth_store(tmp_path_factory):
    made = {}

    def build(root, name):
        generate(root / "logs", servers=4, seed=11, **VARIANTS[name])
        summary = ingest([root / "logs"], root / "store")
        assert summary.exit_code == 0 and summary.quarantined == 0

    def get(name):
        if name not in made:
            root = built_once(tmp_path_factory, f"trace-{name}", lambda r: build(r, name))
            truth = [json.loads(x) for x in (root / "logs" / "truth.jsonl").open()]
            made[name] = (root / "store", truth)
        return made[name]

    return get


def _iso(t):
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z") if t else None


#: The plain variant traced in four windows of its two days (by the time each message was
#: received), so that the workers share the work; the others whole.
WINDOWS = ["2026-03-02T00:00", "2026-03-02T12:00", "2026-03-03T00:00", "2026-03-03T12:00", None]
SHARDS = [("plain", since, until) for since, until in pairwise(WINDOWS)] + [
    (name, None, None) for name in VARIANTS if name != "plain"
]


@pytest.mark.parametrize(
    ("variant", "since", "until"), SHARDS, ids=[f"{v}-{s or ''}" for v, s, _ in SHARDS]
)
def test_every_recipient_verdict_equals_the_truth(synth_store, variant, since, until):
    store, truth = synth_store(variant)
    if since:  # the messages received in the window (times in ISO: they sort as text)
        truth = [t for t in truth if since <= t["received_at"] < (until or "9")]
    result = trace(store, since=since or "2000-01-01", until=until, all=True, limit=10**6)
    got = {
        (m.message_id, v.address.lower()): v
        for m in result.messages
        for r in m.recipients
        for v in r.flatten()
    }
    wrong = Counter()
    for t in truth:
        v = got.get((t["message_id"], t["recipient"].lower()))
        same = v is not None and (v.verdict, v.server, _iso(v.date_time)) == (
            t["verdict"],
            t["server"],
            t["at"],
        )
        if v is not None and t["verdict"] == "failed":
            same = (
                same
                and v.ndr_message_id == t["ndr_message_id"]
                and v.enhanced_status == t["enhanced_status"]
            )
        if v is not None and t["verdict"] == "deferred":  # waiting since its first deferral
            first = t["deferrals"][0][:19].replace("T", " ")
            same = same and f"still deferred at {t['server']} since {first} UTC" in v.summary
        if v is not None and t["expanded_from"]:
            same = same and (v.expanded_from or "").lower() == t["expanded_from"].lower()
        if not same:
            wrong[(t["verdict"], v.verdict if v else None)] += 1
    accuracy = 1 - sum(wrong.values()) / len(truth)
    print(f"{variant}: {len(truth)} recipients, accuracy {accuracy:.2%}, wrong {dict(wrong)}")
    assert accuracy == 1.0, dict(wrong)
    kinds = Counter(t["verdict"] for t in truth)
    if variant != "plain":
        assert kinds["last_seen"] > 0


def test_last_seen_names_the_server_whose_logs_are_missing(synth_store):
    """A recipient handed to a server without logs in the store says which, in the times of
    the rest of the summary."""
    store, truth = synth_store("omit-mailbox-server")
    t = next(x for x in truth if x["verdict"] == "last_seen" and not x["expanded_from"])
    got = json.loads(_loganalyzer("trace", t["message_id"], "--store", store, "--json").stdout)
    [v] = [v for m in got["messages"] for v in m["recipients"] if v["address"] == t["recipient"]]
    assert v["summary"] == (
        f"last seen at {t['server']} at {t['at'][:10]} {t['at'][11:19]} UTC; handed to EX02, "
        "whose logs are not in the store"
    )
    done = _loganalyzer("trace", t["message_id"], "--store", store)
    assert f"missing logs: EX02 after {t['at'][:10]} {t['at'][11:19]}" in done.stdout


@pytest.mark.parametrize(
    ("ex02", "says", "missing"),
    [
        # EX02's log of that time holds another message only: look at EX02, not for files
        (
            ("2026-03-02T10:00:00.000Z", "2026-03-02T10:30:00.000Z"),
            "whose logs of that time are in the store and hold no record of the message",
            False,
        ),
        # EX02's log of the store starts two hours later: that time's file is missing
        (
            ("2026-03-02T12:00:00.000Z", "2026-03-02T12:30:00.000Z"),
            "whose logs of that time are not in the store",
            True,
        ),
        # EX02's log ends an hour and a half before: a gap in its files (the next is missing)
        (
            ("2026-03-02T08:00:00.000Z", "2026-03-02T08:30:00.000Z"),
            "whose logs of that time are not in the store",
            True,
        ),
        # one file of EX02 runs across the time, quiet for hours around it: its log is there
        (
            ("2026-03-02T07:00:00.000Z", "2026-03-02T07:10:00.000Z", "2026-03-02T13:00:00.000Z"),
            "whose logs of that time are in the store and hold no record of the message",
            False,
        ),
        (None, "whose logs are not in the store", True),
    ],
)
def test_a_hand_off_says_whether_the_next_servers_logs_of_that_time_are_in_the_store(
    tmp_path, ex02, says, missing
):
    mid = "<hop-1@contoso.com>"
    sent = {"message_id": mid, "client_hostname": "EX01", "server_hostname": "EX01"}
    write_log(
        tmp_path / "logs" / "EX01" / "MSGTRK2026030210-1.LOG",
        [
            row(0, **sent, connector_id="EX01\\Default EX01"),
            row(
                1,
                **{**sent, "server_hostname": "EX02.contoso.com"},
                event_id="SEND",
                connector_id="Intra-Organization SMTP Send Connector",
                recipient_status="250 2.1.5 Recipient OK",
            ),
        ],
    )
    if ex02:
        start, *others = ex02
        log = tmp_path / "logs" / "EX02" / "MSGTRK2026030210-1.LOG"
        log.parent.mkdir(parents=True)
        rows = "".join(line(row(2 + i, date_time=t)) for i, t in enumerate(others))
        log.write_text(header(date=start) + rows, encoding="utf-8")
    store = tmp_path / "store"
    assert _loganalyzer("ingest", tmp_path / "logs", "--store", store).returncode == 0
    traced = json.loads(_loganalyzer("trace", mid, "--store", store, "--json").stdout)
    [message] = traced["messages"]
    [v] = message["recipients"]
    assert v["summary"] == f"last seen at EX01 at 2026-03-02 10:00:01 UTC; handed to EX02, {says}"
    assert bool(message["missing_logs"]) is missing
    done = _loganalyzer("trace", mid, "--store", store)
    assert done.returncode == 0, done.stderr
    assert ("missing logs: EX02 after 2026-03-02 10:00:01" in done.stdout) is missing
    page = tmp_path / "trace.html"
    assert _loganalyzer("trace", mid, "--store", store, "--html", page).returncode == 0
    # in the page's zone, as its other times (it showed the raw ISO time in UTC)
    said = re.search(r"EX02 \(after 2026-03-02 10:00:01\.\d{3} UTC\)", page.read_text("utf-8"))
    assert bool(said) is missing


def test_the_plain_days_have_every_verdict_and_the_windows_every_message(synth_store):
    _, truth = synth_store("plain")
    # synth writes no refused attempts yet (the verdict ``rejected``)
    assert {t["verdict"] for t in truth} == set(VERDICTS) - {"last_seen", "rejected"}
    windows = Counter(sum(t["received_at"] >= w for w in WINDOWS[:-1]) for t in truth)
    assert sorted(windows) == [1, 2, 3, 4] and min(windows.values()) > 100  # none before


def _message(truth, verdict):
    return next(t for t in truth if t["verdict"] == verdict and not t["expanded_from"])


def test_every_kind_of_id_finds_the_message(synth_store):
    store, truth = synth_store("plain")
    t = _message(truth, "delivered")
    by_mid = trace(store, t["message_id"].strip("<>"))
    assert len(by_mid.messages) == 1
    m = by_mid.messages[0]
    assert trace(store, t["network_message_id"].upper()).messages[0].message_id == m.message_id
    event = next(e for e in m.events if e.internal_message_id)
    by_iid = trace(store, event.internal_message_id, server=event.server)
    assert by_iid.messages[0].message_id == m.message_id
    changes = [e for e in m.events if e.internal_id_changed]
    assert len({e.server for e in m.events if not e.is_ndr}) == 1 or changes


def test_filters_list_candidates_and_pick_traces_one(synth_store):
    store, truth = synth_store("plain")
    sender = _message(truth, "sent_external")["sender"]
    domain = "*@" + sender.split("@")[1]
    listed = trace(store, sender=domain)
    assert len(listed.candidates) > 1 and listed.messages == []
    assert all(c["sender"].lower().endswith(domain[1:].lower()) for c in listed.candidates)
    picked = trace(store, sender=domain, pick=2)
    assert picked.messages[0].message_id == listed.candidates[1]["message_id"]


def test_failure_links_the_ndr_and_explains_the_code(synth_store):
    store, truth = synth_store("plain")
    t = next(x for x in truth if x["verdict"] == "failed" and x["ndr_message_id"])
    m = trace(store, t["message_id"]).messages[0]
    v = next(
        v for r in m.recipients for v in r.flatten() if v.address.lower() == t["recipient"].lower()
    )
    assert v.ndr_message_id == t["ndr_message_id"] in m.ndr_message_ids
    assert v.status_meaning and v.enhanced_status == t["enhanced_status"]
    assert any(e.is_ndr for e in m.events)
    assert "failed" in v.summary and t["enhanced_status"] in (v.status or "")


def test_list_members_are_nested_under_the_list(synth_store):
    store, truth = synth_store("plain")
    t = _message(truth, "expanded")
    m = trace(store, t["message_id"]).messages[0]
    dl = next(v for v in m.recipients if v.verdict == "expanded")
    members = {
        x["recipient"].lower()
        for x in truth
        if x["message_id"] == t["message_id"]
        and (x["expanded_from"] or "").lower() == dl.address.lower()
    }
    assert {v.address.lower() for v in dl.members} == members


def test_smtp_conversation_is_shown_under_the_hop(synth_store):
    store, truth = synth_store("plain")
    m = trace(store, _message(truth, "sent_external")["message_id"]).messages[0]
    send = next(e for e in m.events if e.event_id == "SEND" and e.conversation)
    text = " ".join(c.data or "" for c in send.conversation)
    assert "EHLO" in text and "MAIL FROM" in text and "RCPT TO" in text


def test_the_command_shows_what_each_session_line_says_in_its_context(synth_store, tmp_path):
    """A ``*`` line of a protocol log is told by its context (the TLS negotiation, the
    session's permissions, the login): the terminal showed its data alone ("* None", an empty
    "*"), the page showed both; both show both now."""
    store, truth = synth_store("plain")
    mid = _message(truth, "sent_external")["message_id"]
    page = tmp_path / "trace.html"
    done = subprocess.run(
        [LOGANALYZER, "trace", mid, "--store", str(store), "--html", str(page)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "250"},
    )
    assert done.returncode == 0, done.stderr
    shown = " ".join(done.stdout.split())
    assert re.search(r"\* None \[Set Session Permissions\]", shown), shown
    assert re.search(r"\[TLS protocol SP_PROT_TLS1_\d_(CLIENT|SERVER) negotiation succeeded", shown)
    html = page.read_text(encoding="utf-8")
    assert "* None [Set Session Permissions]" in html


def test_relay_session_is_part_of_the_timeline(synth_store):
    store, truth = synth_store("relay-omit-hub")
    t = next(x for x in truth if x["verdict"] == "last_seen" and x["server"] == "RELAY01")
    m = trace(store, t["message_id"]).messages[0]
    relay = [e for e in m.events if e.server == "RELAY01"]
    assert {e.event_id for e in relay} == {"RECEIVE", "SEND"}
    assert any((c.data or "").upper().startswith("MAIL FROM:") for c in relay[0].conversation)
    assert m.missing_logs


def test_json_output_equals_the_library_result(cli, synth_store):
    store, truth = synth_store("plain")
    mid = _message(truth, "delivered")["message_id"]
    out = cli("trace", mid, "--store", str(store), "--json")
    assert out.exit_code == 0
    assert json.loads(out.stdout) == trace(store, mid, verdicts=True).to_dict()
    text = cli("trace", mid, "--store", str(store), "--tz", "Europe/Berlin")
    assert "delivered" in text.stdout and "Timeline (Europe/Berlin)" in text.stdout
    assert cli("trace", "<nothing@nowhere>", "--store", str(store)).exit_code == 1


def test_trace_command_reads_the_store_without_pyarrow(synth_store):
    # what keeps the command under a second: pyarrow, numpy and pandas take half a second to
    # import, pydantic (typer 0.29) a sixth; a trace reads Parquet through DuckDB alone
    store, truth = synth_store("plain")
    mid = _message(truth, "failed")["message_id"]
    code = (
        "import json, sys\n"
        "from loganalyzer.cli import app\n"
        "try:\n"
        f"    app(['trace', {mid!r}, '--store', {str(store)!r}, '--json'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('pyarrow', 'numpy', 'pandas', 'pydantic')\n"
        "print(json.dumps(sorted(m for m in heavy if m in sys.modules)), file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert json.loads(done.stdout)["messages"][0]["message_id"] == mid
    assert json.loads(done.stderr.strip().splitlines()[-1]) == []


def test_hostile_values_are_inert_in_html(store_dir, tmp_path, cli):
    hostile = {
        "message_subject": "<script>alert(1)</script>",
        "sender_address": '"><script>x()</script>@evil.example',
        "connector_id": "<img src=x onerror=alert(1)>",
        "recipient_status": "550 5.1.1 <b onmouseover=alert(1)>bad</b>",
    }
    log = write_log(
        tmp_path / "EX01" / "MSGTRK2026030210-1.LOG",
        [row(0, **{**hostile, "recipient_status": ""}), row(0, event_id="FAIL", **hostile)],
    )
    ingest([log], store_dir)
    page = tmp_path / "trace.html"
    out = cli("trace", "<msg0@contoso.com>", "--store", str(store_dir), "--html", str(page))
    assert out.exit_code == 0
    html = page.read_text()
    assert "<script>" not in html and "<img" not in html and "<b " not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "Content-Security-Policy" in html
    assert "\x1b" not in out.stdout


def test_real_samples(store_dir):
    ingest([CORPUS / "exchange2007plus"], store_dir)
    ingest([CORPUS / "exchange2007plus"], store_dir, format="exchange-tracking")
    ingest([CORPUS / "iis-smtp"], store_dir, format="iis-smtp")
    haredirect = trace(
        store_dir,
        "1028007174.22872.1495474412586.JavaMail.apollo@apollo-adaws-"
        "onebox-acc-1a-4c722f6e.us-east-1.amazon.com",
    ).messages[0]
    assert [e.event_id for e in haredirect.events] == ["AGENTINFO", "HAREDIRECT"]
    assert {v.address for v in haredirect.recipients} == {
        "abannert@amazon.com",
        "bryanson@amazon.com",
        "zihoncao@amazon.com",
    }
    received = trace(store_dir, "<20240123200014.123F425E28@host01.my.domain.com>").messages[0]
    assert received.events[0].event_id == "RECEIVE" and received.sender.startswith("root@")
    assert received.recipients[0].verdict == "last_seen"
    iis = trace(store_dir, "<4F5002F2.860022@web.de>").messages[0]
    [hop] = iis.events
    assert hop.server == "MEE-PDC" and hop.client == "24.118.118.106"
    assert [c.data for c in hop.conversation][:1] == ["HELO 36A42160"]
    assert [v.address for v in iis.recipients] == ["pamb@meelift.com"]


def _loganalyzer(*args) -> subprocess.CompletedProcess:
    """The installed command, in a fresh process, as a user runs it."""
    exe = LOGANALYZER
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=120)


def _to_fabrikam(truth) -> set[str]:
    return {t["message_id"] for t in truth if t["recipient"].lower().endswith("@fabrikam.com")}


def test_a_capped_list_says_its_true_total(synth_store):
    store, truth = synth_store("plain")
    total = len(_to_fabrikam(truth))
    assert total > 250  # more than the list shows, and than the pick below
    listed = trace(store, recipient="*@fabrikam.com")
    assert (listed.total, len(listed.candidates), listed.cut) == (total, 200, True)
    assert listed.to_dict()["total"] == total
    every = trace(store, recipient="*@fabrikam.com", limit=None)
    assert (every.total, len(every.candidates)) == (total, total)
    assert {c["message_id"] for c in every.candidates} == _to_fabrikam(truth)
    ids = [c["message_id"] for c in every.candidates]
    assert ids[:200] == [c["message_id"] for c in listed.candidates]  # the first 200
    five = trace(store, recipient="*@fabrikam.com", limit=5)
    assert five.total == total and [c["message_id"] for c in five.candidates] == ids[:5]
    page = listed.to_html()
    assert f"{total:,} messages match (the first 200 are listed;" in page


def test_cli_says_the_true_total_and_picks_beyond_the_list(synth_store):
    store, truth = synth_store("plain")
    total = len(_to_fabrikam(truth))
    out = _loganalyzer("trace", "--recipient", "*@fabrikam.com", "--store", store)
    assert out.returncode == 0, out.stderr
    assert f"{total:,} messages match" in out.stdout
    assert f"showing the first 200 of {total:,}; --limit N or --all to see more" in out.stdout
    assert "Traceback" not in out.stderr
    out = _loganalyzer("trace", "--recipient", "*@fabrikam.com", "--store", store, "--limit", 3)
    assert f"showing the first 3 of {total:,};" in out.stdout
    every = trace(store, recipient="*@fabrikam.com", limit=None).candidates
    out = _loganalyzer(
        "trace", "--recipient", "*@fabrikam.com", "--store", store, "--pick", 250, "--json"
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert [m["message_id"] for m in got["messages"]] == [every[249]["message_id"]]
    assert got["total"] == total and len(got["candidates"]) == 200
    out = _loganalyzer(
        "trace", "--recipient", "*@fabrikam.com", "--store", store, "--pick", total + 1
    )
    assert out.returncode == 2 and out.stdout == ""
    assert f"--pick {total + 1}: give 1 to {total:,} (the matching messages)" in out.stderr
    assert "Traceback" not in out.stderr
    for bad in (0, 2**63):
        out = _loganalyzer("trace", "--recipient", "*@fabrikam.com", "--store", store,
                           "--limit", bad)  # fmt: skip
        assert (out.returncode, out.stderr) == (
            2,
            f"error: --limit {bad}: give 1 to 2,147,483,647\n",
        )


def test_a_query_that_cannot_match_is_a_usage_error(synth_store):
    """Blanks, an empty <>, a reversed time range, an event no table knows: exit 2 and one
    line naming the value (they were 'nothing found', exit 1)."""
    store, truth = synth_store("plain")
    bad = {
        ("   ",): "give a Message-ID",
        ("<>",): "give a Message-ID",
        ("--since", "2026-03-03", "--until", "2026-03-02"): "is not before --until",
        ("--event-id", "NOPE"): "--event-id 'NOPE': not a tracking event",
    }
    for args, words in bad.items():
        done = _loganalyzer("trace", *args, "--store", store)
        assert done.returncode == 2 and done.stderr.count("\n") == 1, (args, done.stderr)
        assert words in done.stderr and "Traceback" not in done.stderr
    t = _message(truth, "failed")
    pasted = _loganalyzer("trace", f"Message-ID: {t['message_id']}", "--store", store, "--json")
    assert [m["message_id"] for m in json.loads(pasted.stdout)["messages"]] == [t["message_id"]]
    events = _loganalyzer("trace", "--event-id", "fail", "--since", "2026-03-02", "--store",
                          store, "--json")  # fmt: skip
    assert events.returncode == 0 and json.loads(events.stdout)["total"] > 0


def test_the_list_gives_each_messages_verdicts_in_the_zone_asked(synth_store):
    """A listed message shows its recipients' verdicts (not its last event: a bounce's
    notification, a partly failed message's delivery) and its first time in --tz."""
    store, truth = synth_store("plain")
    t = next(
        x for x in truth
        if x["verdict"] == "failed" and x["received_at"] >= "2026-03-02T00:30"
        and not x["expanded_from"]
    )  # fmt: skip
    fates = Counter(x["verdict"] for x in truth if x["message_id"] == t["message_id"])
    ranked = sorted(fates.items(), key=lambda x: (-x[1], x[0]))
    want = ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in ranked)
    want = want if len(fates) > 1 else next(iter(fates)).replace("_", " ")
    at = datetime.fromisoformat(t["received_at"].replace("Z", "+00:00"))
    berlin = at.astimezone(ZoneInfo("Europe/Berlin")).strftime("%Y-%m-%d %H:%M:%S")
    args = ["trace", "--store", store, "--sender", t["sender"], "--tz", "Europe/Berlin",
            "--since", berlin[:16], "--until", berlin[:11] + "23:59"]  # fmt: skip
    got = json.loads(_loganalyzer(*args, "--json").stdout)
    [n] = [i for i, c in enumerate(got["candidates"], 1) if c["message_id"] == t["message_id"]]
    listed = got["candidates"][n - 1]["verdicts"]
    assert Counter(v["verdict"] for v in listed) == fates
    wide = {**os.environ, "COLUMNS": "300"}
    out = subprocess.run([LOGANALYZER, *map(str, args)], capture_output=True, text=True,
                         timeout=120, env=wide)  # fmt: skip
    assert out.returncode == 0, out.stderr
    [line] = [x for x in out.stdout.splitlines() if x.startswith(f"│ {n} ")]
    cells = [x.strip() for x in line.split("│")]
    assert (cells[2], cells[6]) == (berlin, want), cells
    assert "(times in Europe/Berlin)" in out.stdout
    page = store.parent / "list.html"
    assert _loganalyzer(*args, "--html", page).returncode == 0
    html = page.read_text(encoding="utf-8")
    assert f"<tr><td>{n}</td><td>{berlin}</td>" in html and f"<td>{want}</td></tr>" in html


def test_all_traces_every_match_not_the_first_200(synth_store, cli):
    store, truth = synth_store("plain")
    out = cli("trace", "--recipient", "*@fabrikam.com", "--store", store, "--all", "--json")
    got = json.loads(out.stdout)
    want = _to_fabrikam(truth)
    assert got["total"] == len(got["candidates"]) == len(got["messages"]) == len(want)
    assert {m["message_id"] for m in got["messages"]} == want
    # traced a page at a time (memory held to a page), the same as all at once
    assert len(want) > 2 * 200
    whole = trace(store, recipient="*@fabrikam.com", all=True, limit=None, verdicts=True)
    assert got == json.loads(whole.to_json())


def test_a_listed_message_traces_its_bounce_as_by_its_id(synth_store):
    """The bounce (NDR) of a message listed by its sender is in its trace, as in a trace by
    its Message-ID, though the bounce's log files hold none of the listed messages' IDs."""
    store, truth = synth_store("plain")
    # one that failed hours after it came (its deferrals expired): the bounce is delivered
    # then, into mailbox delivery logs of another hour than the message's own rows
    t = next(
        x for x in truth
        if x["verdict"] == "failed" and x["ndr_message_id"] and x["deferrals"]
        and x["at"][:13] != x["received_at"][:13] and x["sender"].endswith("@contoso.com")
    )  # fmt: skip
    at = datetime.fromisoformat(t["received_at"].replace("Z", "+00:00"))
    window = {"since": (at - timedelta(seconds=1)).isoformat(),
              "until": (at + timedelta(seconds=1)).isoformat()}  # fmt: skip
    listed = trace(store, sender=t["sender"], all=True, **window)
    [m] = [m for m in listed.messages if m.message_id == t["message_id"]]
    [alone] = trace(store, t["message_id"]).messages
    assert any(e.is_ndr for e in m.events)
    assert [e.to_dict() for e in m.events] == [e.to_dict() for e in alone.events]


def test_a_kept_connection_sees_what_an_ingest_adds(tmp_path):
    import duckdb

    from loganalyzer.store import Store
    from loganalyzer.store.duck import connection, share

    for name, seed in (("before", 21), ("after", 22)):
        generate(tmp_path / name, servers=1, days=1, messages=30, seed=seed)
    store = tmp_path / "store"
    assert ingest([tmp_path / "before"], store).exit_code == 0
    before, after = (
        [json.loads(x) for x in (tmp_path / name / "truth.jsonl").open(encoding="utf-8")]
        for name in ("before", "after")
    )
    share(duckdb.connect())  # as the web app runs: one database, a kept cursor per thread
    try:
        for t in before[:3]:  # enough lookups for the merged sketch index
            assert trace(store, t["message_id"]).messages
        new = after[0]["message_id"]
        assert not trace(store, new).messages
        assert ingest([tmp_path / "after"], store).exit_code == 0
        assert [m.message_id for m in trace(store, new).messages] == [new]
        assert [m.message_id for m in trace(store, before[0]["message_id"]).messages] == [
            before[0]["message_id"]
        ]
        listed = trace(store, since="2026-03-01", limit=None)
        assert {new, before[0]["message_id"]} <= {c["message_id"] for c in listed.candidates}
        with connection(Store(store)) as outer, connection(Store(store)) as inner:
            assert inner is not outer  # a call within a call gets a connection of its own
    finally:
        share(None)


def test_a_message_last_received_is_on_that_server_not_with_a_next_hop(tmp_path):
    # Real: Elastic's sample holds one RECEIVE of this message on EXCHANGE-MAIL and nothing
    # after it. The verdict sent the admin to "the next hop's logs", which no row names.
    log = CORPUS / "exchange2007plus" / "elastic-integrations-messagetracking.log"
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(log), "--format", "exchange-tracking",
                           "--store", store], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    message_id = "<20240123200018.123C42553@pve-vhost01.my.domain.com>"
    traced = subprocess.run([LOGANALYZER, "trace", message_id, "--store", store, "--json"],
                            capture_output=True, text=True)  # fmt: skip
    assert traced.returncode == 0, traced.stderr
    [verdict] = json.loads(traced.stdout)["messages"][0]["recipients"]
    assert verdict["verdict"] == "last_seen"
    assert verdict["summary"] == (
        "last seen at EXCHANGE-MAIL at 2024-01-25 15:16:14 UTC; no later record of it in "
        "EXCHANGE-MAIL's logs (in a queue there, or its logs of later times are not in the store)"
    )


_DELAY_LOG = """#Software: Microsoft Exchange Server
#Version: 15.01.2507.035
#Log-type: Message Tracking Log
#Date: 2026-04-02T10:00:00.000Z
#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,\
connector-id,source,event-id,internal-message-id,message-id,network-message-id,\
recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,\
reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,\
original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version
2026-04-02T10:01:00.000Z,,EX01,,EX01,,,STOREDRIVER,RECEIVE,200,<delay-2@ex01.contoso.com>,\
22222222-0000-0000-0000-000000000002,carol@fabrikam.com,,1000,1,,,Delay test,\
alice@contoso.com,alice@contoso.com,,Originating,,,,,Email,,15.01.2507.035
2026-04-02T10:01:05.000Z,10.0.0.11,EX01,,EX01,,Internet Send Connector,SMTP,DEFER,200,\
<delay-2@ex01.contoso.com>,22222222-0000-0000-0000-000000000002,carol@fabrikam.com,\
451 4.4.0 DNS query failed,1000,1,,,Delay test,alice@contoso.com,alice@contoso.com,,\
Originating,,,,,Email,,15.01.2507.035
2026-04-02T14:01:05.000Z,,,,EX01,,,DSN,DSN,200,<delay-2@ex01.contoso.com>,\
22222222-0000-0000-0000-000000000002,carol@fabrikam.com,400 4.4.7 Message delayed,1000,1,,\
<delaydsn-2@ex01.contoso.com>,Delay test,alice@contoso.com,alice@contoso.com,,Originating,,,,,\
Email,,15.01.2507.035
2026-04-02T14:01:06.000Z,,,,EX01,,,STOREDRIVER,DELIVER,201,<delaydsn-2@ex01.contoso.com>,\
22222222-0000-0000-0000-000000000009,alice@contoso.com,250 2.1.5 Recipient OK,1000,1,,\
<delay-2@ex01.contoso.com>,Delivery delayed: Delay test,\
MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com,\
MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com,,Originating,,,,,Email,,\
15.01.2507.035
2026-04-02T15:00:00.000Z,10.0.0.11,EX01,198.51.100.5,mx.fabrikam.com,,Internet Send Connector,\
SMTP,SENDEXTERNAL,200,<delay-2@ex01.contoso.com>,22222222-0000-0000-0000-000000000002,\
carol@fabrikam.com,250 2.6.0 Queued mail for delivery,1000,1,,,Delay test,alice@contoso.com,\
alice@contoso.com,,Originating,,,,,Email,,15.01.2507.035
"""


def test_a_delay_notice_is_not_called_a_bounce(tmp_path):
    # A DSN told the sender of a delay; the message then went out: the page called the notice
    # "Bounces" and its delivery "(the bounce)", which reads as a failure.
    log = tmp_path / "EX01" / "MSGTRK2026040210-1.LOG"
    log.parent.mkdir()
    log.write_text(_DELAY_LOG)
    store = tmp_path / "store"
    assert _loganalyzer("ingest", log, "--store", store).returncode == 0
    shown = subprocess.run([LOGANALYZER, "trace", "<delay-2@ex01.contoso.com>", "--store",
                            str(store)], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "300"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    text = " ".join(shown.stdout.split())
    assert "Notices to the sender (DSN) <delaydsn-2@ex01.contoso.com>" in text
    assert "(the notice to the sender)" in text
    assert "bounce" not in text.lower()
    as_json = _loganalyzer("trace", "<delay-2@ex01.contoso.com>", "--store", store, "--json")
    [message] = json.loads(as_json.stdout)["messages"]
    assert message["ndr_message_ids"] == ["<delaydsn-2@ex01.contoso.com>"]
    assert message["bounced"] is False
    page = tmp_path / "trace.html"
    assert _loganalyzer("trace", "<delay-2@ex01.contoso.com>", "--store", store,
                        "--html", page).returncode == 0  # fmt: skip
    html = page.read_text()
    assert "<dt>Notices to the sender (DSN)</dt>" in html and "(the bounce)" not in html
    assert "(the notice to the sender)" in html


def test_a_timeline_in_the_hour_the_clocks_go_back_says_which_one(tmp_path):
    # Berlin, 2026-10-25: 02:01 CEST (00:01 UTC) comes an hour before 02:01 CET; a timeline
    # without the offset read as time running backwards
    log = tmp_path / "EX01" / "MSGTRK2026102500-1.LOG"
    log.parent.mkdir()
    log.write_text(_DELAY_LOG.replace("2026-04-02T1", "2026-10-25T0"))
    store = tmp_path / "store"
    assert _loganalyzer("ingest", log, "--store", store).returncode == 0
    shown = subprocess.run([LOGANALYZER, "trace", "<delay-2@ex01.contoso.com>", "--store",
                            str(store), "--tz", "Europe/Berlin"], capture_output=True,
                           text=True, env={**os.environ, "COLUMNS": "300"})  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "2026-10-25 02:01:00.000 CEST" in shown.stdout  # the RECEIVE, before the change
    assert "2026-10-25 05:01:05.000 " in shown.stdout  # the DSN, after it: unambiguous
    assert "05:01:05.000 CET" not in shown.stdout
