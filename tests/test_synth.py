"""The log generator: layout, file formats, every fate, and truth rows that the logs bear out."""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import LOGANALYZER
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from loganalyzer.cli import app
from loganalyzer.fate import VERDICTS as TRACE_VERDICTS
from loganalyzer.synth import generate, writers
from loganalyzer.synth.tracking import row

BOM = b"\xef\xbb\xbf"
TRACK_NAME = re.compile(r"^MSGTRK(MS|MD|MA)?\d{10}-\d+\.LOG$")
PROTO_NAME = re.compile(r"^(RECV|SEND)\d{10}-\d+\.LOG$")
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SID = re.compile(r"^([0-9A-F]{16})(;|$)")
TRUTH_KEYS = [
    "message_id",
    "network_message_id",
    "sender",
    "recipient",
    "subject",
    "size",
    "received_at",
    "verdict",
    "server",
    "at",
    "enhanced_status",
    "reply",
    "ndr_message_id",
    "expanded_from",
    "deferrals",
    "queue",
]
VERDICTS = set(TRACE_VERDICTS)


def split_statuses(text: str) -> list[str]:
    """Split recipient-status on `;` outside brackets and braces and not followed by a space."""
    out, cur, depth = [], [], 0
    for i, ch in enumerate(text):
        depth += ch in "[{"
        depth -= ch in "]}"
        if ch == ";" and depth == 0 and text[i + 1 : i + 2] != " ":
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur))
    return out


def reply_of(status: str) -> str:
    """The SMTP text of a status: the LED value of the bracketed form, else the status."""
    m = re.match(r"^\[\{LED=(.*?)\};\{MSG=", status)
    return m.group(1) if m else status


def read_log(path: Path, sep: str = ",") -> tuple[list[str], list[str], list[dict]]:
    """(header lines, field names, rows as dicts) of one Exchange log file."""
    text = path.read_bytes()
    assert text.startswith(BOM)
    lines = text[3:].decode("utf-8").split("\r\n")
    assert lines[-1] == "" and all("\n" not in ln and "\r" not in ln for ln in lines)
    head = [ln for ln in lines if ln.startswith("#")]
    fields = head[-1].removeprefix("#Fields: ").split(",")
    data = [ln for ln in lines[:-1] if not ln.startswith("#")]
    rows = []
    for rec in csv.reader(data):
        assert len(rec) == len(fields), rec
        rows.append(dict(zip(fields, rec, strict=True)))
    return head, fields, rows


class Run:
    """One generated folder, parsed."""

    def __init__(self, root: Path, result) -> None:
        self.root, self.result = root, result
        self.tracking: list[dict] = []
        self.sessions: dict[tuple[str, str, str], list[dict]] = defaultdict(list)
        for path in sorted(root.glob("*/MessageTracking/*.LOG")):
            for r in read_log(path)[2]:
                r["_server"], r["_kind"] = (
                    path.parts[-3],
                    re.match(r"MSGTRK\w*?(?=\d)", path.name)[0],
                )
                self.tracking.append(r)
        for path in sorted(root.glob("*/ProtocolLog/*/*.LOG")):
            for r in read_log(path)[2]:
                self.sessions[(path.parts[-4], path.name[:4], r["session-id"])].append(r)
        self.iis: list[dict] = []
        for path in sorted(root.glob("RELAY01/SMTPSVC1/*.log")):
            lines = path.read_bytes().decode("ascii").split("\r\n")
            fields = lines[3].removeprefix("#Fields: ").split()
            self.iis += [dict(zip(fields, ln.split(" "), strict=True)) for ln in lines[4:] if ln]
        self.truth = [
            json.loads(ln) for ln in (root / "truth.jsonl").read_text("utf-8").splitlines()
        ]
        self.by_mid: dict[str, list[dict]] = defaultdict(list)
        for r in self.tracking:
            if r["message-id"]:
                self.by_mid[r["message-id"]].append(r)

    def redirected_to(self, mid: str, rcpt: str) -> str:
        """The recipient a REDIRECT row put in place of `rcpt`, else `rcpt`."""
        for r in self.by_mid[mid]:
            if r["event-id"] == "REDIRECT" and r["related-recipient-address"] == rcpt:
                return r["recipient-address"]
        return rcpt

    def rows(self, mid: str, rcpt: str, *events: str) -> list[dict]:
        return [
            r
            for r in self.by_mid[mid]
            if r["event-id"] in events and rcpt in r["recipient-address"].split(";")
        ]


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("base")
    return Run(root, generate(root, servers=3, messages=300, seed=7))


@pytest.fixture(scope="module")
def omitted(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("omit")
    return Run(root, generate(root, servers=3, messages=300, seed=7, omit_server="ex02"))


@pytest.fixture(scope="module")
def relayed(tmp_path_factory) -> Run:
    root = tmp_path_factory.mktemp("relay")
    return Run(root, generate(root, servers=2, messages=150, seed=3, relay=True))


text = st.text(st.characters(blacklist_categories=("Cs", "Cc")), max_size=40)


@given(subject=text, context=text, statuses=st.lists(text.filter(bool), min_size=1, max_size=3))
def test_tracking_row_round_trip(subject: str, context: str, statuses: list[str]) -> None:
    rcpts = [f"user{i}@contoso.com" for i in range(len(statuses))]
    line = row(
        0,
        source="SMTP",
        event="FAIL",
        log_id="x",
        subject=subject,
        context=context,
        rcpts=rcpts,
        statuses=statuses,
    )
    assert line.endswith("\r\n") and line.count("\r\n") == 1
    (rec,) = list(csv.reader([line[:-2]]))
    fields = writers.TRACKING_FIELDS.split(",")
    assert len(rec) == len(fields) == 30
    got = dict(zip(fields, rec, strict=True))
    assert got["message-subject"] == subject and got["source-context"] == context
    assert got["recipient-status"] == ";".join(statuses)
    assert (
        got["recipient-count"] == str(len(rcpts)) and got["date-time"] == "1970-01-01T00:00:00.000Z"
    )


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    def files(root: Path) -> dict[str, bytes]:
        return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}

    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    generate(a, servers=2, messages=80, seed=5, relay=True)
    generate(b, servers=2, messages=80, seed=5, relay=True)
    generate(c, servers=2, messages=80, seed=6, relay=True)
    assert files(a) == files(b)
    assert files(a)["truth.jsonl"] != files(c)["truth.jsonl"]


def test_layout_and_names(base: Run) -> None:
    assert sorted(p.name for p in base.root.iterdir()) == ["EX01", "EX02", "EX03", "truth.jsonl"]
    for server in ("EX01", "EX02", "EX03"):
        track = [p.name for p in (base.root / server / "MessageTracking").iterdir()]
        assert track and all(TRACK_NAME.match(n) for n in track)
        for prefix in ("MSGTRK2", "MSGTRKMS", "MSGTRKMD"):
            assert any(n.startswith(prefix) for n in track), (server, prefix)
        for sub, prefix in (("SmtpReceive", "RECV"), ("SmtpSend", "SEND")):
            names = [p.name for p in (base.root / server / "ProtocolLog" / sub).iterdir()]
            assert names and all(PROTO_NAME.match(n) and n.startswith(prefix) for n in names)
    assert any(r["_kind"] == "MSGTRKMA" for r in base.tracking)


def test_rows_in_time_order_in_the_file_of_their_hour(base: Run, relayed: Run) -> None:
    paths = list(base.root.rglob("*.LOG"))
    assert len(paths) > 100
    for path in paths:
        stamp = re.search(r"(\d{10})-\d+\.LOG$", path.name).group(1)
        times = [r["date-time"] for r in read_log(path)[2]]
        assert times == sorted(times)
        assert all(t.replace("-", "").replace("T", "")[:10] == stamp for t in times), path
    w3c = (relayed.root / "RELAY01/SMTPSVC1/ex260302.log").read_text("ascii").splitlines()
    times = [ln[:19] for ln in w3c if not ln.startswith("#")]
    assert times == sorted(times) and all(t.startswith("2026-03-02 ") for t in times)


def test_headers(base: Run) -> None:
    path = next(base.root.glob("EX01/MessageTracking/MSGTRK2*.LOG"))
    head, fields, rows = read_log(path)
    assert head[:3] == [
        "#Software: Microsoft Exchange Server",
        "#Version: 15.01.2507.035",
        "#Log-type: Message Tracking Log",
    ]
    assert head[3] == f"#Date: {rows[0]['date-time']}"
    assert len(fields) == 30 and fields[-3:] == [
        "transport-traffic-type",
        "log-id",
        "schema-version",
    ]
    recv = next(base.root.glob("EX01/ProtocolLog/SmtpReceive/*.LOG"))
    head, fields, _ = read_log(recv)
    assert head[2] == "#Log-type: SMTP Receive Protocol Log" and len(fields) == 9


def test_tracking_rows_parse_and_align(base: Run) -> None:
    assert len(base.tracking) > 2000
    for r in base.tracking:
        assert ISO.match(r["date-time"]) and r["schema-version"] == "15.01.2507.035"
        rcpts = r["recipient-address"].split(";") if r["recipient-address"] else []
        if rcpts:
            assert r["recipient-count"] == str(len(rcpts))
        if r["recipient-status"]:
            assert len(split_statuses(r["recipient-status"])) == len(rcpts), r
        if r["event-id"] in ("RECEIVE", "DELIVER", "SUBMIT"):
            assert r["server-hostname"] == r["_server"]
    subjects = {r["message-subject"] for r in base.tracking}
    for ch in (",", '"', ";", "{", "ä"):
        assert any(ch in s for s in subjects), ch
    assert any(not s.isascii() for s in subjects)


def test_every_fate_present(base: Run) -> None:
    verdicts = {t["verdict"] for t in base.truth}
    # synth writes no refused attempts yet (the verdict ``rejected``)
    assert verdicts == VERDICTS - {"last_seen", "rejected"}
    events = {(r["source"], r["event-id"]) for r in base.tracking}
    for pair in [
        ("STOREDRIVER", "NOTIFYMAPI"),
        ("STOREDRIVER", "SUBMIT"),
        ("SMTP", "HAREDIRECT"),
        ("AGENT", "AGENTINFO"),
        ("ROUTING", "EXPAND"),
        ("ROUTING", "REDIRECT"),
        ("SMTP", "DEFER"),
        ("ROUTING", "FAIL"),
        ("SMTP", "FAIL"),
        ("QUEUE", "FAIL"),
        ("DSN", "DSN"),
        ("APPROVAL", "INITMESSAGECREATED"),
        ("APPROVAL", "MODERATORAPPROVE"),
        ("APPROVAL", "MODERATORREJECT"),
        ("AGENT", "DROP"),
        ("ROUTING", "SUPPRESSED"),
        ("SAFETYNET", "RESUBMIT"),
        ("BOOTLOADER", "LOAD"),
        ("POISONMESSAGE", "POISONMESSAGE"),
    ]:
        assert pair in events, pair
    statuses = [s for r in base.tracking for s in split_statuses(r["recipient-status"])]
    for needle in (
        "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
        "550 4.4.7 QUEUE.Expired",
        "[{LED=441 4.4.1",
        "451 4.7.1 <",
        "554 5.7.1 <",
        "{LED=550 5.1.1 <",
    ):
        assert any(needle in s for s in statuses), needle
    expands = [r for r in base.tracking if r["event-id"] == "EXPAND"]
    lists = {r["related-recipient-address"] for r in expands}
    assert any(a in lists for r in expands for a in r["recipient-address"].split(";"))  # nested
    failed_ndr = [t for t in base.truth if t["verdict"] == "failed" and t["ndr_message_id"]]
    ndr_ids = {t["ndr_message_id"] for t in failed_ndr}
    ndr_rows = [t for t in base.truth if t["message_id"] in ndr_ids]
    assert {t["verdict"] for t in ndr_rows} >= {"delivered", "sent_external", "failed"}
    assert any(t["verdict"] == "failed" and t["ndr_message_id"] is None for t in ndr_rows)


def test_truth_rows_well_formed(base: Run) -> None:
    seen = set()
    for t in base.truth:
        assert list(t) == TRUTH_KEYS
        assert ISO.match(t["at"]) and ISO.match(t["received_at"])
        assert t["received_at"] <= t["at"]
        key = (t["message_id"], t["recipient"])
        assert key not in seen
        seen.add(key)
        assert (t["reply"] is None) == (
            t["verdict"] not in ("failed", "deferred", "sent_external")
            and not (t["verdict"] == "dropped" and t["reply"])
        )


@pytest.mark.parametrize("name", ["base", "omitted", "relayed"])
def test_truth_covers_every_recipient_in_the_logs(name: str, request) -> None:
    run = request.getfixturevalue(name)
    truth = {(t["message_id"], t["recipient"]) for t in run.truth}
    logged = {
        (r["message-id"], a)
        for r in run.tracking
        if r["message-id"]
        for a in r["recipient-address"].split(";")
        if a
    }
    assert logged <= truth
    for mid, rc in truth - logged:  # recipients only the relay's log names
        (t,) = [t for t in run.truth if (t["message_id"], t["recipient"]) == (mid, rc)]
        assert (t["verdict"], t["server"]) == ("last_seen", "RELAY01")
        assert any(r["cs-uri-query"] == f"+TO:<{rc}>" for r in run.iis)


EVENTS = {
    "delivered": ("DELIVER",),
    "sent_external": ("SEND",),
    "failed": ("FAIL", "MODERATORREJECT"),
    "deferred": ("DEFER",),
    "dropped": ("DROP", "SUPPRESSED"),
    "quarantined": ("POISONMESSAGE",),
    "moderation": ("INITMESSAGECREATED",),
    "last_seen": ("SEND",),
}


@pytest.mark.parametrize("name", ["base", "omitted", "relayed"])
def test_truth_verdicts_are_borne_out_by_the_logs(name: str, request) -> None:
    """Each verdict points at the row that decides it, and no later row names the recipient."""
    run: Run = request.getfixturevalue(name)
    by_mid = {t["message_id"] for t in run.truth}
    for t in run.truth:
        mid, rc, v, srv, at = t["message_id"], t["recipient"], t["verdict"], t["server"], t["at"]
        redirect = run.redirected_to(mid, rc) != rc
        rc = run.redirected_to(mid, rc)  # a redirected recipient has its new recipient's verdict
        if srv == "RELAY01":  # the relay handed it to a frontend whose hub left no log
            assert v == "last_seen" and not run.rows(
                mid, rc, *{r["event-id"] for r in run.by_mid[mid]}
            )
            assert any(
                r["cs-username"] == "OutboundConnectionResponse"
                and r["cs-uri-query"].startswith(f"250+2.6.0+{mid}+")
                and f"{r['date']}T{r['time']}.000Z" == at
                for r in run.iis
            )
            continue
        if v == "expanded":
            hits = [
                r
                for r in run.by_mid[mid]
                if r["event-id"] == "EXPAND" and r["related-recipient-address"] == rc
            ]
        else:
            hits = run.rows(mid, rc, *EVENTS[v])
        hits = [r for r in hits if r["date-time"] == at and r["_server"] == srv]
        assert len(hits) == 1, t
        hit = hits[0]
        later = [
            r
            for r in run.rows(mid, rc, *{r["event-id"] for r in run.by_mid[mid]})
            if r["date-time"] > at and r["event-id"] != "DSN"
        ]
        assert not later, (t, later)
        if v == "sent_external":
            assert hit["connector-id"] == "Internet Send Connector"
        if v == "last_seen":
            assert hit["connector-id"] == "Intra-Organization SMTP Send Connector"
            assert hit["server-hostname"].split(".")[0].upper() == run.result.omitted
        if t["reply"] is not None:
            rcpts = hit["recipient-address"].split(";")
            status = split_statuses(hit["recipient-status"])[rcpts.index(rc)]
            assert reply_of(status) == t["reply"]
        if t["ndr_message_id"]:
            dsn = run.rows(mid, rc, "DSN")
            assert [r["reference"] for r in dsn] == [t["ndr_message_id"]]
        if t["ndr_message_id"] and not run.result.omitted:
            assert t["ndr_message_id"] in by_mid
        if t["expanded_from"] and not redirect and not run.result.omitted:
            adders = [
                r
                for r in run.by_mid[mid]
                if r["event-id"] in ("EXPAND", "REDIRECT")
                and r["related-recipient-address"] == t["expanded_from"]
            ]
            assert any(rc in r["recipient-address"].split(";") for r in adders), t


def test_session_ids_link_tracking_to_protocol_logs(base: Run) -> None:
    linked = 0
    for r in base.tracking:
        m = SID.match(r["source-context"])
        if r["source"] != "SMTP" or not m:
            continue
        kind = "RECV" if r["event-id"] == "RECEIVE" else "SEND"
        session = base.sessions.get((r["_server"], kind, m.group(1)))
        assert session, r
        linked += 1
        if r["event-id"] in ("DEFER", "FAIL"):
            said = {p["data"] for p in session} | {p["context"] for p in session}
            for status in split_statuses(r["recipient-status"]):
                text = reply_of(status)
                quoted = re.search(r'"(.*)\."', text)  # "... responded with: "<reply>." ..."
                if quoted:
                    assert any(s.startswith(quoted.group(1)) for s in said), (text, session)
                else:
                    assert text in said, (text, session)
        if r["event-id"] == "SEND":
            assert any(
                p["data"] and p["data"] in r["source-context"]
                for p in session
                if p["data"].startswith("250")
            )
    assert linked > 1000


def test_protocol_sessions(base: Run) -> None:
    events = defaultdict(int)
    for (_, kind, _), lines in base.sessions.items():
        assert [int(p["sequence-number"]) for p in lines] == list(range(len(lines)))
        events[kind, lines[0]["event"]] += 1
        for p in lines:
            events[p["event"], p["data"][:4]] += 1
    assert events["RECV", "+"] and events["SEND", "*"]
    assert events["<", "STAR"] and events["<", "AUTH"] and events["<", "X-AN"]
    assert events[">", "535 "] and events[">", "221 "] and events["<", "451 "]
    contexts = {p["context"] for lines in base.sessions.values() for p in lines}
    assert "Inbound AUTH LOGIN failed because of LogonDenied" in contexts


def test_omitted_server(base: Run, omitted: Run) -> None:
    assert not (omitted.root / "EX02").exists()
    assert omitted.result.omitted == "EX02" and omitted.result.servers == ["EX01", "EX03"]
    full = {(t["message_id"], t["recipient"]): t for t in base.truth}
    last_seen = [t for t in omitted.truth if t["verdict"] == "last_seen"]
    assert len(last_seen) > 20
    for t in omitted.truth:
        assert t["server"] != "EX02"
        before = full[t["message_id"], t["recipient"]]
        if before["server"] != "EX02":
            # the list a member came from is known only when its EXPAND row was written
            assert t["expanded_from"] in (before["expanded_from"], None)
            # and the retries it shows only when their DEFER rows were written
            assert set(t["deferrals"]) <= set(before["deferrals"])
            same = {"expanded_from": None, "deferrals": None, "queue": None}
            assert {**t, **same} == {**before, **same}
    for t in last_seen:
        assert full[t["message_id"], t["recipient"]]["server"] == "EX02"
        rc = omitted.redirected_to(t["message_id"], t["recipient"])
        hits = [
            r
            for r in omitted.rows(t["message_id"], rc, "SEND")
            if r["date-time"] == t["at"] and r["_server"] == t["server"]
        ]
        assert hits and hits[0]["server-hostname"] == "ex02.contoso.com"
    assert all(
        t["at"] <= r["at"] for t in last_seen for r in [full[t["message_id"], t["recipient"]]]
    )


def test_relay_w3c_log(relayed: Run) -> None:
    files = sorted((relayed.root / "RELAY01" / "SMTPSVC1").iterdir())
    assert [p.name for p in files] == ["ex260302.log"]
    lines = files[0].read_bytes().decode("ascii").split("\r\n")
    assert lines[0] == "#Software: Microsoft Internet Information Services 7.5"
    assert lines[1] == "#Version: 1.0" and lines[2].startswith("#Date: 2026-03-02 ")
    fields = lines[3].removeprefix("#Fields: ").split()
    assert len(fields) == 21 and fields[8] == "cs-method"
    rows = [dict(zip(fields, ln.split(" "), strict=True)) for ln in lines[4:] if ln]
    data = [r for r in rows if r["cs-method"] == "DATA" and not r["cs-username"].startswith("Out")]
    mids = {r["cs-uri-query"].lstrip("+") for r in data}
    assert mids and mids <= set(relayed.by_mid)
    assert any(
        r["cs-username"] == "OutboundConnectionResponse" and "250+2.6.0" in r["cs-uri-query"]
        for r in rows
    )
    received = [
        r
        for r in relayed.tracking
        if r["event-id"] == "RECEIVE" and r["original-client-ip"] == "10.0.0.250"
    ]
    assert {r["message-id"] for r in received} == mids
    inbound = {t["message_id"]: t["received_at"] for t in relayed.truth if t["message_id"] in mids}
    assert all(v.endswith(".000Z") for v in inbound.values())


def test_relay_with_omitted_server(tmp_path: Path) -> None:
    res = generate(tmp_path, servers=2, messages=120, seed=3, relay=True, omit_server="EX01")
    truth = [json.loads(ln) for ln in (tmp_path / "truth.jsonl").read_text("utf-8").splitlines()]
    assert {t["server"] for t in truth} <= {"EX02", "RELAY01"}
    assert any(t["verdict"] == "last_seen" and t["server"] == "RELAY01" for t in truth)
    assert res.servers == ["EX02", "RELAY01"]


def test_files_rotate_at_the_size_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(writers, "MAX_FILE_BYTES", 60_000)
    generate(tmp_path, servers=1, messages=200, seed=2)
    logs = list(tmp_path.glob("*/*/*.LOG")) + list(tmp_path.glob("*/*/*/*.LOG"))
    assert any(p.name.endswith("-3.LOG") for p in logs)
    for p in logs:
        assert p.stat().st_size <= 60_000 and p.read_bytes().startswith(BOM + b"#Software")
        if not p.name.endswith("-1.LOG"):
            assert p.with_name(
                re.sub(r"-(\d+)\.LOG$", lambda m: f"-{int(m[1]) - 1}.LOG", p.name)
            ).exists()


def test_size_mb_adds_days(tmp_path: Path) -> None:
    res = generate(tmp_path, servers=2, messages=60, size_mb=4)
    assert res.days >= 2 and 3.6e6 <= res.bytes <= 4.4e6


@pytest.mark.parametrize(
    "kwargs",
    [
        {"servers": 0},
        {"omit_server": "EX09"},
        {"size_mb": 0},
        {"servers": 1, "omit_server": "ex01"},
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict) -> None:
    with pytest.raises(ValueError):
        generate(tmp_path, **kwargs)


def test_cli_json_equals_library(tmp_path: Path) -> None:
    out = CliRunner().invoke(
        app,
        [
            "synth",
            "--out",
            str(tmp_path / "a"),
            "--servers",
            "2",
            "--messages",
            "40",
            "--seed",
            "4",
            "--json",
        ],
    )
    assert out.exit_code == 0, out.output
    lib = generate(tmp_path / "b", servers=2, messages=40, seed=4).to_dict()
    cli = json.loads(out.output)
    assert cli.pop("out") != lib.pop("out") and cli == lib


def test_summary_counts_what_the_truth_file_holds(tmp_path: Path) -> None:
    """The summary's truth rows are the file's lines (a refused attempt's rows were left out
    of the total but counted in the verdicts), and one day is "1 day"."""
    out = subprocess.run(
        [LOGANALYZER, "synth", "--out", str(tmp_path / "s"), "--servers", "2"]
        + ["--messages", "120", "--agent-logs", "--seed", "7"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = (tmp_path / "s" / "truth.jsonl").read_text(encoding="utf-8").splitlines()
    refused = [x for x in lines if json.loads(x).get("stage")]
    head, counts = out.stdout.splitlines()[1].split(": ", 1)
    assert head.endswith(f"{len(lines)} truth rows ({len(refused)} of refused attempts)"), head
    assert sum(int(x.rsplit(" ", 1)[1]) for x in counts.split(", ")) == len(lines)
    assert " 1 day from " in out.stdout


@pytest.mark.skipif(sys.platform == "win32", reason="sends SIGINT")
def test_a_ctrl_c_removes_the_logs_begun_so_the_command_runs_again(tmp_path: Path) -> None:
    """Stopped half way, synth left hundreds of files and a truth file that looked whole, and
    the same command then refused the folder as not empty."""
    out = tmp_path / "logs"
    cmd = [LOGANALYZER, "synth", "--out", str(out), "--messages", "20000", "--days", "5"]
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        # Ctrl-C's default handling (a run started in the background ignores it)
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    truth = out / "truth.jsonl"
    while time.monotonic() < deadline and not (truth.exists() and truth.stat().st_size > 1e5):
        time.sleep(0.05)
    assert proc.poll() is None, "synth ended before it was interrupted"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.splitlines() == [
        "error: interrupted (Ctrl-C): the logs begun were removed; run the command again"
    ]
    assert not out.exists()
    again = subprocess.run(cmd[:4] + ["--messages", "40"], capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
