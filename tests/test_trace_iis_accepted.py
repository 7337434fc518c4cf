"""Mail an IIS SMTP service accepted, traced and listed from its lines alone: the refused
recipients stay out of the message, the session's MAIL FROM and RCPT TO drive the list and
its filters, a DATA line without a Message-ID is known by its queue ID."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections import defaultdict
from datetime import datetime
from pathlib import Path

import pytest
from conftest import LOGANALYZER, built_once

from loganalyzer.synth import generate

CORPUS = Path(__file__).parent / "corpus" / "iis-smtp"
_SESSION = """\
#Software: Microsoft Internet Information Services 7.5
#Version: 1.0
#Date: 2026-03-06 09:00:00
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method \
cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version
2026-03-06 09:00:01 192.0.2.50 app01 SMTPSVC1 RELAY02 10.0.0.251 0 EHLO - +app01 250 0 200 10 0 SMTP
2026-03-06 09:00:01 192.0.2.50 app01 SMTPSVC1 RELAY02 10.0.0.251 0 MAIL - +FROM:<app@contoso.com> \
250 0 40 30 0 SMTP
2026-03-06 09:00:01 192.0.2.50 app01 SMTPSVC1 RELAY02 10.0.0.251 0 RCPT - +TO:<someone@gmail.com> \
550 0 50 30 0 SMTP
2026-03-06 09:00:02 192.0.2.50 app01 SMTPSVC1 RELAY02 10.0.0.251 0 RCPT - +TO:<ok@contoso.com> \
250 0 30 30 0 SMTP
2026-03-06 09:00:02 192.0.2.50 app01 SMTPSVC1 RELAY02 10.0.0.251 0 DATA - +<iis-test-1@app01> \
250 0 130 2000 20 SMTP
2026-03-06 09:00:02 192.0.2.50 app01 SMTPSVC1 RELAY02 10.0.0.251 0 QUIT - app01 240 500 68 4 0 SMTP
"""


def _run(*args, code: int = 0) -> str:
    # a wide terminal: each row of a list on one line (a long value folds onto the next)
    env = {**os.environ, "COLUMNS": "200"}
    done = subprocess.run([LOGANALYZER, *map(str, args)], capture_output=True, text=True, env=env)
    assert done.returncode == code, done.stderr
    return done.stdout


def _json(*args) -> dict:
    return json.loads(_run("trace", *args, "--json"))


def _build_refused_rcpt(folder: Path) -> None:
    logs = folder / "logs" / "SMTPSVC1"
    logs.mkdir(parents=True)
    (logs / "ex260306.log").write_text(_SESSION, "utf-8")
    _run("ingest", folder / "logs", "--store", folder / "store")


@pytest.fixture(scope="module")
def refused_rcpt_store(tmp_path_factory) -> Path:
    """The store of ``_SESSION``, built once per run: read only."""
    return built_once(tmp_path_factory, "iis-refused-rcpt", _build_refused_rcpt) / "store"


def test_a_recipient_refused_at_rcpt_is_not_a_recipient_of_the_accepted_message(refused_rcpt_store):
    store = refused_rcpt_store
    [message] = _json("<iis-test-1@app01>", "--store", store)["messages"]
    assert message["sender"] == "app@contoso.com"
    assert [(r["address"], r["verdict"]) for r in message["recipients"]] == [
        ("ok@contoso.com", "last_seen")
    ]
    shown = _run("trace", "<iis-test-1@app01>", "--store", store)
    assert "someone@gmail.com" not in shown.split("Timeline")[0]
    assert "app@contoso.com" in next(ln for ln in shown.splitlines() if ln.startswith("Sender"))


def test_the_list_shows_the_sessions_sender_recipients_and_verdicts(refused_rcpt_store):
    store = refused_rcpt_store
    listed = _json("--since", "2026-03-06", "--store", store)["candidates"]
    got = {c["message_id"]: c for c in listed}
    accepted = got["<iis-test-1@app01>"]
    assert accepted["sender"] == "app@contoso.com"
    assert accepted["recipients"] == ["ok@contoso.com"]
    assert accepted["verdicts"] == [
        {"recipient": "ok@contoso.com", "verdict": "last_seen", "latency_s": None}
    ]
    [refused] = got[None]["verdicts"]  # the refused RCPT: a rejected attempt, once
    assert refused["recipient"] == "someone@gmail.com" and refused["verdict"] == "rejected"
    table = _run("trace", "--since", "2026-03-06", "--store", store)
    row = next(ln for ln in table.splitlines() if ln.startswith("│ 2 "))  # (accepted second)
    assert "app@contoso.com" in row and "ok@contoso.com" in row and "last seen" in row


def test_sender_and_recipient_filters_find_the_accepted_message(refused_rcpt_store):
    store = refused_rcpt_store
    by_rcpt = _json("--recipient", "ok@contoso.com", "--store", store)
    assert [m["message_id"] for m in by_rcpt["messages"]] == ["<iis-test-1@app01>"]
    by_sender = _json("--sender", "app@*", "--store", store)["candidates"]
    assert sorted(c["message_id"] or "" for c in by_sender) == ["", "<iis-test-1@app01>"]
    refused = _json("--recipient", "someone@gmail.com", "--store", store)["candidates"]
    assert [c["message_id"] for c in refused] == [None]  # the rejected attempt alone
    _run("trace", "--sender", "nobody@contoso.com", "--store", store, code=1)


def _build_queue_id(folder: Path) -> None:
    logs = folder / "logs"
    logs.mkdir()
    shutil.copy(CORPUS / "msdoc-ex2007-smtp-iislogformat-example.log", logs / "in060818.log")
    _run("ingest", logs, "--store", folder / "store")


@pytest.fixture(scope="module")
def queue_id_store(tmp_path_factory) -> Path:
    """The store of Microsoft's example IIS log (a DATA line without a Message-ID), built
    once per run: read only."""
    return built_once(tmp_path_factory, "iis-queue-id", _build_queue_id) / "store"


def test_a_data_line_without_a_message_id_is_listed_and_traced_by_its_queue_id(queue_id_store):
    store = queue_id_store
    listed = _json("--since", "2006-08-01", "--until", "2006-09-01", "--store", store)
    [found] = listed["candidates"]
    assert found["queue_id"] == "0019E3517201287MAIL01" and found["message_id"] is None
    assert found["sender"] == "someone@Nwtraders.com"
    assert found["recipients"] == ["someone@example.com"]
    for asked in ("0019E3517201287MAIL01", "<0019E3517201287MAIL01>"):
        [message] = _json(asked, "--store", store)["messages"]
        assert message["queue_id"] == "0019E3517201287MAIL01"
        assert [r["address"] for r in message["recipients"]] == ["someone@example.com"]
    assert "Queue ID" in _run("trace", "0019E3517201287MAIL01", "--store", store)


def test_a_queue_id_typed_in_another_case_finds_the_message(queue_id_store, tmp_path):
    # the queue ID is the server's name and hex digits: a user may type it in any case
    store = queue_id_store
    for asked in ("0019e3517201287mail01", "<0019e3517201287Mail01>"):
        [message] = _json(asked, "--store", store)["messages"]
        assert message["queue_id"] == "0019E3517201287MAIL01"
        assert [r["address"] for r in message["recipients"]] == ["someone@example.com"]
    shown = _run("trace", "0019e3517201287mail01", "--store", store)
    assert "0019E3517201287MAIL01" in next(ln for ln in shown.splitlines() if "Queue ID" in ln)
    page = tmp_path / "trace.html"
    _run("trace", "0019e3517201287mail01", "--store", store, "--html", page)
    assert "<title>Trace: 0019E3517201287MAIL01</title>" in page.read_text("utf-8")
    done = subprocess.run(
        [LOGANALYZER, "trace", "0019e35172012ffmail01", "--store", str(store)],
        capture_output=True,
        text=True,
    )
    assert (done.returncode, done.stderr) == (
        1,
        "error: No message in the store matches Message-ID or queue ID 0019e35172012ffmail01.\n",
    )


def test_relay_only_messages_list_and_filter_as_the_truth_says(tmp_path):
    # Only the relay's logs are in the store: every message is known by its IIS lines alone.
    generate(tmp_path / "logs", servers=2, days=1, messages=150, seed=5, relay=True)
    _run("ingest", tmp_path / "logs" / "RELAY01", "--store", tmp_path / "store")
    store = tmp_path / "store"
    truth: dict[str, dict] = defaultdict(dict)
    for line in (tmp_path / "logs" / "truth.jsonl").read_text("utf-8").splitlines():
        t = json.loads(line)
        if not t["expanded_from"]:  # (a list's members: Exchange's expansion, not the relay's)
            truth[t["message_id"]][t["recipient"].lower()] = t
    listed = _json("--since", "2026-03-02", "--limit", "10000", "--store", store)["candidates"]
    relayed = [c for c in listed if c["message_id"]]
    assert len(relayed) >= 10
    for c in relayed:
        want = truth[c["message_id"]]
        assert c["sender"] == next(iter(want.values()))["sender"], c["message_id"]
        assert {r.lower() for r in c["recipients"]} == set(want), c["message_id"]
        assert {v["verdict"] for v in c["verdicts"]} == {"last_seen"}
    sample = relayed[len(relayed) // 2]
    recipient = sample["recipients"][0]
    by_rcpt = _json("--recipient", recipient, "--limit", "10000", "--store", store)
    want = {m for m, rcpts in truth.items() if recipient.lower() in rcpts}
    got = {c["message_id"] for c in by_rcpt["candidates"]} or {
        m["message_id"] for m in by_rcpt["messages"]
    }
    assert sample["message_id"] in got and got <= want
    # its Message-ID with the domain in capitals, as a tracked one is found
    local, _, domain = sample["message_id"].rpartition("@")
    [message] = _json(f"{local}@{domain.upper()}", "--store", store)["messages"]
    assert message["message_id"] == sample["message_id"]
    # no tracking rows to tell the organisation's hosts: the relay's full name is the relay
    by_name = [_json("--server", s, "--since", "2026-03-02", "--store", store)["total"]
               for s in ("RELAY01", "relay01.contoso.com")]  # fmt: skip
    assert by_name[0] == by_name[1] == len(listed)


_MIXED = """\
#Software: Microsoft Internet Information Services 7.5
#Version: 1.0
#Date: 2026-03-06 09:00:00
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method \
cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version
"""
_MIXED += (
    "\n".join(
        f"2026-03-06 09:04:0{t} 192.0.2.14 app14 SMTPSVC1 RELAY02 10.0.0.251 0 {cmd} - {arg} "
        f"{code} 0 100 30 0 SMTP"
        for t, cmd, arg, code in [
            (1, "EHLO", "+app14", 250),
            (1, "MAIL", "+FROM:<sessA@contoso.com>", 250),
            (1, "EHLO", "+app14", 250),
            (1, "RCPT", "+TO:<a1@fabrikam.com>", 250),
            (1, "MAIL", "+FROM:<sessB@contoso.com>", 250),
            (1, "RCPT", "+TO:<b1@fabrikam.com>", 250),
            (2, "DATA", "+<inter-a@app14.contoso.com>", 250),
            (2, "DATA", "+<inter-b@app14.contoso.com>", 250),
            (2, "QUIT", "app14", 240),
            (2, "QUIT", "app14", 240),
        ]
    )
    + "\n"
)


def test_two_sessions_of_one_client_logged_among_each_others_lines_are_both_found(tmp_path):
    """IIS logs name no session: a client's two connections mix their lines. Each accepted
    message is found (the first vanished, even by its own Message-ID), and no sender or
    recipient of the other session is given as its own."""
    logs = tmp_path / "logs" / "SMTPSVC1"
    logs.mkdir(parents=True)
    (logs / "ex260306.log").write_text(_MIXED, "utf-8")
    store = tmp_path / "store"
    _run("ingest", tmp_path / "logs", "--store", store)
    for mid in ("<inter-a@app14.contoso.com>", "<inter-b@app14.contoso.com>"):
        [message] = _json(mid, "--store", store)["messages"]
        assert message["message_id"] == mid
        assert message["recipients"] == [] and message["sender"] is None
        [event] = message["events"]
        assert "which sender and recipients are this message's cannot be told" in event["meaning"]
    listed = _json("--since", "2026-03-06", "--store", store)["candidates"]
    assert sorted(c["message_id"] for c in listed) == [
        "<inter-a@app14.contoso.com>",
        "<inter-b@app14.contoso.com>",
    ]
    assert all(not c["recipients"] and not c["sender"] for c in listed)


def test_a_relays_messages_are_listed_by_its_server_name_though_exchange_tracked_them(tmp_path):
    """`trace --server RELAY01 --since ...` found nothing for mail the relay passed on to
    Exchange (its tracking rows name the Exchange servers, not the relay)."""
    generate(tmp_path / "logs", servers=2, days=1, messages=100, seed=11, relay=True)
    store = tmp_path / "store"
    _run("ingest", tmp_path / "logs", "--store", store)
    log = next((tmp_path / "logs" / "RELAY01").rglob("ex*.log"))
    accepted = set()
    for line in log.read_text("utf-8").splitlines():
        f = line.split(" ")
        if line.startswith("#") or len(f) < 12:
            continue
        inbound = f[3] != "OutboundConnectionCommand"  # (the relay's own sends: cs-username)
        if inbound and f[8] == "DATA" and int(f[11]) < 400:
            accepted.add(f[10].lstrip("+"))
    assert len(accepted) >= 10
    for server in ("RELAY01", "relay01.contoso.com"):
        got = _json("--server", server, "--since", "2026-03-01", "--limit", "1000",
                    "--store", store)  # fmt: skip
        assert got["total"] == len(accepted)
        assert {c["message_id"] for c in got["candidates"]} == accepted
        assert all(c["verdicts"] for c in got["candidates"])  # summed up from their rows
    # the list without --server: each first seen when its trace says it was received, at the
    # relay (the list said when Exchange first logged it, seconds later)
    listed = {c["message_id"]: c["date_time"] for c in _json(
        "--since", "2026-03-01", "--limit", "1000", "--store", store)["candidates"]}  # fmt: skip
    for mid in sorted(accepted)[:3]:
        [m] = _json(mid, "--store", store)["messages"]
        assert _time(listed[mid]) == _time(m["received_at"]), mid


def _time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


#: A recipient the relay accepted and handed on itself: no Exchange log names it.
_RELAYED_ONLY = "b.partner@example.net"


def _relay_only_recipient_store(
    tmp_path: Path, before_midnight: bool = False
) -> tuple[Path, str, dict[str, str]]:
    """A store of a relay and its Exchange servers where the relay also accepted
    ``_RELAYED_ONLY`` for one message Exchange tracked (a RCPT line added to its session):
    the store, that Message-ID and the truth's verdict of each of its other recipients.
    ``before_midnight``: the relay's lines up to that message's DATA are the day before's
    last second (Exchange logs it after midnight)."""
    logs = tmp_path / "logs"
    generate(logs, servers=2, days=1, messages=60, seed=11, relay=True)
    truth: dict[str, dict[str, str]] = defaultdict(dict)
    for line in (logs / "truth.jsonl").read_text("utf-8").splitlines():
        t = json.loads(line)
        if not t["expanded_from"]:
            truth[t["message_id"]][t["recipient"].lower()] = t["verdict"]
    log = next((logs / "RELAY01").rglob("ex*.log"))
    lines = log.read_text("utf-8").splitlines(keepends=True)
    fields = [ln.split(" ") for ln in lines]
    inbound = [
        i
        for i, f in enumerate(fields)
        if not lines[i].startswith("#") and len(f) > 11 and f[3] != "OutboundConnectionCommand"
    ]
    mid = None
    for i, j in zip(inbound, inbound[1:], strict=False):  # a RCPT right before its DATA
        if fields[i][8] == "RCPT" and fields[i][11] == "250" and fields[j][8] == "DATA":
            candidate = fields[j][10].lstrip("+")
            if "delivered" in truth.get(candidate, {}).values():
                mid = candidate
                extra = [*fields[i][:10], f"+TO:<{_RELAYED_ONLY}>", *fields[i][11:]]
                lines.insert(j, " ".join(extra))
                break
    assert mid is not None
    if before_midnight:
        for k in range(j + 2):
            if not lines[k].startswith("#"):
                lines[k] = " ".join(["2026-03-01", "23:59:58", *lines[k].split(" ")[2:]])
    log.write_text("".join(lines), "utf-8")
    _run("ingest", logs, "--store", tmp_path / "store")
    return tmp_path / "store", mid, truth[mid]


def test_a_recipient_only_the_relay_names_is_in_the_list_and_found_by_recipient(tmp_path):
    # the relay accepted A and B for a message; Exchange's logs name A only (B left through
    # the relay): the trace by Message-ID names B, the list and --recipient B did not
    store, mid, others = _relay_only_recipient_store(tmp_path)
    [message] = _json(mid, "--store", store)["messages"]
    got = {r["address"].lower(): r["verdict"] for r in message["recipients"]}
    assert got == {**others, _RELAYED_ONLY: "last_seen"}
    listed = _json("--since", "2026-03-02", "--limit", "1000", "--store", store)["candidates"]
    [c] = [c for c in listed if c["message_id"] == mid]
    assert not c.get("relay_only")  # summed up from its tracking rows, B added
    assert {r.lower() for r in c["recipients"]} == set(got)
    assert {v["recipient"].lower(): v["verdict"] for v in c["verdicts"]} == got
    assert len({c["message_id"] for c in listed}) == len(listed)  # each once
    for since in ((), ("--since", "2026-03-02")):
        by_rcpt = _json("--recipient", _RELAYED_ONLY, *since, "--store", store)
        assert by_rcpt["total"] == 1
        [traced] = by_rcpt["messages"]
        assert traced["message_id"] == mid
    shown = _run("trace", "--recipient", _RELAYED_ONLY, "--since", "2026-03-02", "--store", store)
    assert mid in shown.split("Timeline")[0]
    wider = _json("--recipient", "*@example.net", "--limit", "1000", "--store", store)
    [c] = [c for c in wider["candidates"] if c["message_id"] == mid]
    assert {v["recipient"].lower(): v["verdict"] for v in c["verdicts"]} == got


def test_a_recipient_the_relay_accepted_before_midnight_is_in_the_trace(tmp_path):
    # the relay's session on one day, Exchange's rows on the next: the trace read the relay's
    # lines of the message's tracked days only, and left out the relay's hop and recipient
    store, mid, others = _relay_only_recipient_store(tmp_path, before_midnight=True)
    want = {**others, _RELAYED_ONLY: "last_seen"}
    [message] = _json(mid, "--store", store)["messages"]
    assert {r["address"].lower(): r["verdict"] for r in message["recipients"]} == want
    assert "RELAY01" in {e["server"] for e in message["events"]}
    # the relay's lines with their verbs (an IIS line logs the verb apart from its argument)
    said = [c["data"] for e in message["events"] if e["server"] == "RELAY01"
            for c in e["conversation"]]  # fmt: skip
    assert said[0].startswith(("HELO ", "EHLO ")) and said[-1].startswith("QUIT"), said
    assert any(x.startswith("MAIL FROM:<") for x in said), said
    assert any(x == f"RCPT TO:<{_RELAYED_ONLY}>" for x in said), said
    by_rcpt = _json("--recipient", _RELAYED_ONLY, "--store", store)
    [c] = by_rcpt["candidates"]
    assert {v["recipient"].lower(): v["verdict"] for v in c["verdicts"]} == want
    [traced] = by_rcpt["messages"]
    assert {r["address"].lower() for r in traced["recipients"]} == set(want)


def test_a_refused_message_of_an_iis_session_names_its_own_recipients_only(tmp_path):
    # two messages in one session: the first accepted (x), the second refused at DATA (y);
    # trace named x refused too (the recipients of the session, not of the transaction)
    head = (
        "#Software: Microsoft Internet Information Services 7.5\n#Version: 1.0\n"
        "#Date: 2026-03-06 10:00:00\n#Fields: date time c-ip cs-username s-sitename "
        "s-computername s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status "
        "sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host cs(User-Agent) "
        "cs(Cookie) cs(Referer)\n"
    )
    lines = [
        ("00", "EHLO", "+mx.a.example", 250), ("01", "MAIL", "+FROM:<a@a.example>", 250),
        ("01", "RCPT", "+TO:<x@contoso.com>", 250), ("03", "DATA", "+<m1@a.example>", 250),
        ("04", "MAIL", "+FROM:<b@a.example>", 250), ("04", "RCPT", "+TO:<y@contoso.com>", 250),
        ("05", "DATA", "+<m2@a.example>", 552), ("06", "QUIT", "mx.a.example", 240),
    ]  # fmt: skip
    log = tmp_path / "RELAY08" / "ex260306.log"
    log.parent.mkdir()
    log.write_text(head + "".join(
        f"2026-03-06 10:00:{t} 198.51.100.50 mx.a.example SMTPSVC1 RELAY08 10.0.0.250 0 "
        f"{verb} - {arg} {code} 0 46 42 2 SMTP - - - -\n" for t, verb, arg, code in lines
    ))  # fmt: skip
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(log.parent), "--store", store, "--final"],
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stderr
    traced = subprocess.run([LOGANALYZER, "trace", "--store", store, "--sender", "b@a.example",
                             "--json"], capture_output=True, text=True)  # fmt: skip
    assert traced.returncode == 0, traced.stderr
    [message] = json.loads(traced.stdout)["messages"]
    assert [(r["address"], r["verdict"], r["stage"]) for r in message["recipients"]] == [
        ("y@contoso.com", "rejected", "data")
    ]


def _iis_file(day: str, lines: list[str]) -> str:
    head = _SESSION.split("2026-03-06 09:00:01", 1)[0].replace("2026-03-06 09:00:00", day)
    return head + "".join(
        f"{t} 192.0.2.50 mx.partner.example SMTPSVC1 RELAY09 10.0.0.251 0 {x} 0 32 28 7 SMTP\n"
        for t, x in lines
    )


def test_a_session_the_service_logged_across_two_daily_files_is_traced_whole(tmp_path):
    # IIS rolls its log over at midnight in the middle of a client's session: only the
    # second file names the message, the first holds its MAIL FROM and first recipient
    logs = tmp_path / "logs" / "SMTPSVC1"
    logs.mkdir(parents=True)
    (logs / "ex260302.log").write_text(_iis_file("2026-03-02 23:59:50", [
        ("2026-03-02 23:59:58", "EHLO - +mx.partner.example 250"),
        ("2026-03-02 23:59:59", "MAIL - +FROM:<pat@partner.example> 250"),
        ("2026-03-02 23:59:59", "RCPT - +TO:<anna@contoso.com> 250"),
        ("2026-03-02 23:59:59", "RCPT - +TO:<nobody@contoso.com> 550"),
    ]))  # fmt: skip
    (logs / "ex260303.log").write_text(_iis_file("2026-03-03 00:00:00", [
        ("2026-03-03 00:00:00", "RCPT - +TO:<bert@contoso.com> 250"),
        ("2026-03-03 00:00:01", "DATA - +<midnight-1@partner.example> 250"),
        ("2026-03-03 00:00:01", "QUIT - +mx.partner.example 240"),
    ]))  # fmt: skip
    store = tmp_path / "store"
    _run("ingest", tmp_path / "logs", "--store", store)
    want = ["anna@contoso.com", "bert@contoso.com"]
    for how in (["<midnight-1@partner.example>"], ["--recipient", "anna@contoso.com"]):
        [message] = _json(*how, "--store", store)["messages"]
        assert message["sender"] == "pat@partner.example", how
        assert [r["address"] for r in message["recipients"]] == want, how
        [said] = [[c["data"] for c in e["conversation"]] for e in message["events"]]
        assert said[0] == "EHLO mx.partner.example" and said[-1].startswith("QUIT"), said
    shown = _run("trace", "<midnight-1@partner.example>", "--store", store)
    assert "pat@partner.example" in next(ln for ln in shown.splitlines() if "Sender" in ln)
