"""The report's "TLS per connector and direction" and "SMTP clients and relays" sections: every
figure of `loganalyzer report daily --json` on a `synth --clients` store against the same
figure computed from synth's sessions.jsonl alone; and synth's default output unchanged."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import subprocess
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import LOGANALYZER

from loganalyzer.ingest import ingest
from loganalyzer.report.redact import pseudonym, redact
from loganalyzer.synth import generate

DAY = "2026-03-03"  # the report's day; the store holds 2026-03-01 (below) to 2026-03-03
ACCEPTED = ("contoso.com", "fabrikam.com")
LEGACY = ("SSL 2.0", "SSL 3.0", "TLS 1.0", "TLS 1.1")
#: One hand-written session two days before the report's day, whose EHLO name is markup:
#: a client of the whole store (not of the day) that the page must show as text.
HOSTILE_EHLO = "<script>alert(1)</script>"
HOSTILE_LOG = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
    "#Log-type: SMTP Receive Protocol Log\r\n#Date: 2026-03-01T10:00:00.000Z\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
    "event,data,context\r\n"
    + "".join(
        f"2026-03-01T10:00:0{i}.000Z,EX09\\Anonymous Relay EX09,08DE5C0000000001,{i},"
        f"10.0.0.19:25,10.0.66.6:50000,{event},{data},\r\n"
        for i, (event, data) in enumerate(
            [
                ("+", ""),
                ("<", f"EHLO {HOSTILE_EHLO}"),
                ("<", "MAIL FROM:<x@contoso.com>"),
                (">", "250 2.1.0 Sender OK"),
                ("<", "RCPT TO:<y@outside.example>"),
                (">", "250 2.1.5 Recipient OK"),
                (">", '"250 2.6.0 <h1@x> [InternalId=1, Hostname=ex09] Queued mail for delivery"'),
                ("-", ""),
            ]
        )
    )
)
HOSTILE = {
    "server": "EX09",
    "log": "RECV",
    "connector": "EX09\\Anonymous Relay EX09",
    "session_id": "08DE5C0000000001",
    "remote_ip": "10.0.66.6",
    "connected_at": "2026-03-01T10:00:00.000Z",
    "host": HOSTILE_EHLO,
    "tls": None,
    "cipher": None,
    "tls_error": None,
    "user": None,
    "situation": None,
    "messages": [
        {
            "message_id": "<h1@x>",
            "at": "2026-03-01T10:00:06.000Z",
            "recipients": ["y@outside.example"],
        }
    ],
}


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(the report's JSON, its page, the sessions of sessions.jsonl and the hand-written one,
    the store)."""
    base = tmp_path_factory.mktemp("tls-clients")
    logs, store, page = base / "logs", base / "store", base / "page.html"
    done = run(
        "synth", "--out", logs, "--servers", 2, "--days", 2, "--messages", 100, "--seed", 5,
        "--clients", "--agent-logs", "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    hostile = logs / "EX09" / "ProtocolLog" / "SmtpReceive" / "RECV2026030110-1.LOG"
    hostile.parent.mkdir(parents=True)
    hostile.write_bytes(HOSTILE_LOG.encode())
    summary = ingest([logs], store)
    assert summary.exit_code == 0 and summary.quarantined == 0
    accepted = [a for d in ACCEPTED for a in ("--accepted-domain", d)]
    done = run(
        "report", "daily", "--store", store, "--date", DAY, "--json", "--out", page, *accepted
    )
    assert done.returncode == 0, done.stderr
    sessions = [json.loads(x) for x in (logs / "sessions.jsonl").open(encoding="utf-8")]
    return json.loads(done.stdout), page.read_text("utf-8"), sessions + [HOSTILE], store


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


def _in_day(s: dict) -> bool:
    start = dt.datetime.fromisoformat(DAY + "T00:00:00+00:00")
    return s["connected_at"] is not None and start <= _t(s["connected_at"]) < start + dt.timedelta(
        days=1
    )


def _version(s: dict) -> str:
    return s["tls"] or ("failed" if s["tls_error"] else "none")


def _rows(got: dict, table: str, keys: tuple[str, ...]) -> list[tuple]:
    out = []
    for r in got["tables"][table]:
        out.append(tuple(_t(r[k]) if k in ("first_seen", "last_seen") else r[k] for k in keys))
    return sorted(out, key=repr)


# TLS ----------------------------------------------------------------------------------------
def test_tls_versions_and_ciphers_per_connector(built):
    got, _, sessions, _ = built
    day = [s for s in sessions if _in_day(s)]
    counts: dict[tuple, int] = defaultdict(int)
    per_connector: dict[tuple, int] = defaultdict(int)
    for s in day:
        d = "receive" if s["log"] == "RECV" else "send"
        counts[(d, s["connector"], _version(s), s["cipher"])] += 1
        per_connector[(d, s["connector"])] += 1
    want = sorted(
        ((*k, n, round(n / per_connector[k[:2]], 4)) for k, n in counts.items()), key=repr
    )
    keys = ("direction", "connector", "version", "cipher", "sessions", "share")
    assert _rows(got, "tls_versions", keys) == want
    # the situations are there: TLS 1.0 and 1.1, no TLS and failures in both directions
    versions = {(r["direction"], r["version"]) for r in got["tables"]["tls_versions"]}
    assert {("receive", "TLS 1.0"), ("receive", "TLS 1.1"), ("receive", "TLS 1.2")} <= versions
    assert {("receive", "none"), ("send", "none"), ("receive", "failed"), ("send", "failed")} <= (
        versions
    )


def _peers(sessions: list[dict], keep, extra) -> list[tuple]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for s in sessions:
        if _in_day(s) and keep(s):
            d = "receive" if s["log"] == "RECV" else "send"
            groups[(d, s["connector"], s["remote_ip"], *extra(s))].append(s)
    out = []
    for k, g in groups.items():
        hosts = ", ".join(sorted({s["host"] for s in g if s["host"]})) or None
        times = [_t(s["connected_at"]) for s in g]
        out.append((*k[:3], hosts, *k[3:], len(g), min(times), max(times)))
    return sorted(out, key=repr)


@pytest.mark.parametrize(
    ("table", "keep", "extra"),
    [
        ("tls_legacy", lambda s: s["tls"] in LEGACY, lambda s: (s["tls"],)),
        ("tls_failures", lambda s: _version(s) == "failed", lambda s: (s["tls_error"],)),
        ("tls_plain", lambda s: _version(s) == "none", lambda s: ()),
    ],
)
def test_tls_peers(built, table, keep, extra):
    got, _, sessions, _ = built
    extra_key = {"tls_legacy": ("version",), "tls_failures": ("error",), "tls_plain": ()}[table]
    keys = ("direction", "connector", "remote_ip", "hosts", *extra_key, "sessions")
    want = _peers(sessions, keep, extra)
    assert want, table
    assert _rows(got, table, (*keys, "first_seen", "last_seen")) == want


def test_tls_attention(built):
    got, _, sessions, _ = built
    legacy = {s["remote_ip"] for s in sessions if _in_day(s) and s["tls"] in LEGACY}
    n = sum(1 for s in sessions if _in_day(s) and s["tls"] in LEGACY)
    failed = [s for s in sessions if _in_day(s) and _version(s) == "failed"]
    lines = got["attention"]
    assert any(
        x.startswith(f"{len(legacy):,} peers still on TLS 1.0/1.1 ({n:,} sessions)") for x in lines
    )
    assert any(x.startswith(f"{len(failed):,} failed TLS negotiations (") for x in lines)
    assert "tls" in got["rules"] and "clients" in got["rules"]


# SMTP clients --------------------------------------------------------------------------------
def _clients(sessions: list[dict]) -> list[tuple]:
    groups: dict[tuple, list[tuple[dict, dict]]] = defaultdict(list)
    for s in sessions:
        if s["log"] != "RECV" or (s["user"] or "").endswith("$"):
            continue
        for m in s["messages"]:
            groups[(s["connector"], s["remote_ip"])].append((s, m))
    out = []
    for (connector, ip), g in groups.items():

        def relay(m: dict) -> bool:
            return any(a.rsplit("@", 1)[1].lower() not in ACCEPTED for a in m["recipients"])

        ehlo = ", ".join(sorted({s["host"] for s, _ in g if s["host"]})) or None
        users = ", ".join(sorted({s["user"] for s, _ in g if s["user"]})) or None
        tls = ", ".join(sorted({s["tls"] or "none" for s, _ in g}))
        times = [_t(m["at"]) for _, m in g]
        out.append(
            (
                connector, ip, ehlo, users, any(s["user"] is None for s, _ in g), tls, len(g),
                sum(relay(m) for _, m in g), any(relay(m) and s["user"] is None for s, m in g),
                min(times), max(times),
            )
        )  # fmt: skip
    return sorted(out, key=repr)


def test_clients_over_the_whole_store(built):
    got, _, sessions, _ = built
    keys = (
        "connector", "remote_ip", "ehlo", "users", "anonymous", "tls", "messages",
        "relay_messages", "anonymous_relay", "first_seen", "last_seen",
    )  # fmt: skip
    rows = _rows(got, "smtp_clients", keys)
    assert rows == _clients(sessions)
    # days before the report's day count too: the hand-written client of 2026-03-01
    assert min(r[9] for r in rows).date() == dt.date(2026, 3, 1)
    assert any(r[9].date() == dt.date(2026, 3, 2) for r in rows)
    # the situations: two anonymous relays, an authenticated app, no Exchange server
    relays = {(r[1], r[2]) for r in rows if r[8]}
    assert {("10.0.20.31", "KM-C458-3F"), ("10.0.30.12", "ERP01")} <= relays
    assert any(r[1] == "10.0.30.40" and r[3] == "svc-crm@contoso.com" and not r[8] for r in rows)
    assert not any(r[3] and "$" in r[3] for r in rows)
    # refused outside recipients (550 5.7.54) make no relay: replies are matched to the RCPTs
    denied = [r for r in rows if r[2] == "SHAREPOINT01"]
    assert denied and all(r[4] and r[6] > 0 and r[7] == 0 for r in denied)
    # the anonymous relays first
    flags = [r["anonymous_relay"] for r in got["tables"]["smtp_clients"]]
    assert flags == sorted(flags, reverse=True)


def test_clients_attention_and_page(built):
    got, page, sessions, _ = built
    open_ips = {r[1] for r in _clients(sessions) if r[8]}
    line = next(x for x in got["attention"] if "relay anonymously" in x)
    assert line.startswith(f"{len(open_ips):,} clients relay anonymously to outside domains: ")
    assert HOSTILE_EHLO in line  # in the JSON as it was logged
    # on the page: both sections, the markup as text only
    assert "TLS per connector and direction" in page and "SMTP clients and relays" in page
    assert "Sessions by TLS version per connector" in page
    assert HOSTILE_EHLO not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_a_day_without_the_relays_names_none(built):
    """The clients table is the whole store's: a report of a day the anonymous relays sent
    nothing (here one without mail) said "2 clients relay anonymously" all the same."""
    got, _, _, store = built
    assert any("relay anonymously" in x for x in got["attention"])
    empty = run("report", "daily", "--store", store, "--date", "2026-03-20", "--json")
    assert empty.returncode == 0, empty.stderr
    later = json.loads(empty.stdout)
    assert later["tables"]["smtp_clients"]  # the table still lists them
    assert not any("relay anonymously" in x for x in later["attention"]), later["attention"]


def test_redact_hides_the_clients_users(built):
    got, _, _, _ = built
    df = pd.DataFrame(got["tables"]["smtp_clients"])
    app = df["remote_ip"] == "10.0.30.40"
    report = SimpleNamespace(metrics={"smtp_clients": df.copy()}, redacted=False)
    redact(report, b"k")
    users = report.metrics["smtp_clients"]["users"]
    assert set(users[app]) == {pseudonym("svc-crm@contoso.com", b"k")}
    assert not any("svc-crm" in u for u in users if isinstance(u, str))


# synth ------------------------------------------------------------------------------------------
def _digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != "truth.jsonl":  # truth gains keys; the logs must not move
            h.update(p.relative_to(root).as_posix().encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_synth_default_output_unchanged_and_clients_only_add_lines(tmp_path):
    # the digests of these runs' logs before --clients existed: the same arguments give the
    # same bytes (if synth's logs change on purpose, these change with them: the agent logs'
    # did when a Sender ID refusal's P1FromAddress became its session's MAIL FROM)
    generate(tmp_path / "default", servers=2, messages=60, seed=3)
    generate(tmp_path / "agent", servers=2, messages=60, seed=3, agent_logs=True)
    assert _digest(tmp_path / "default") == (
        "cf43db26bf4e8bd39ca9a324688c83e3330940083920df11a75387bdc5944f67"
    )
    assert _digest(tmp_path / "agent") == (
        "d53d23d4b3cd6f6624248f22710fc8fb19029a3fc9ccf736952577e27cbb9b96"
    )
    # --clients adds sessions, their messages and sessions.jsonl; every other line stays, in
    # order, and so does every other truth row
    generate(tmp_path / "clients", servers=2, messages=60, seed=3, agent_logs=True, clients=True)
    a, c = tmp_path / "agent", tmp_path / "clients"
    mine = (a / "truth.jsonl").read_bytes().splitlines()
    theirs = (c / "truth.jsonl").read_bytes().splitlines()
    rest = iter(theirs)
    assert all(any(x == y for y in rest) for x in mine)
    added = [json.loads(x) for x in set(theirs) - set(mine)]
    accepted = {
        (m["message_id"], r)
        for s in map(json.loads, (c / "sessions.jsonl").open(encoding="utf-8"))
        if s["situation"]
        for m in s["messages"]
        for r in m["recipients"]
    }
    assert len(added) == len(theirs) - len(mine)
    assert {(t["message_id"], t["recipient"]) for t in added if "stage" not in t} == accepted
    assert {(t["verdict"], t["stage"], t["remote_ip"]) for t in added if "stage" in t} == {
        ("rejected", "rcpt", "10.0.30.25")
    }
    added = 0
    for p in a.rglob("*.LOG"):
        mine, theirs = p.read_bytes().splitlines(), (c / p.relative_to(a)).read_bytes().splitlines()
        rest = iter(theirs)
        assert all(any(x == y for y in rest) for x in mine if not x.startswith(b"#Date")), p
        added += len(theirs) - len(mine)
    assert added > 0 and (c / "sessions.jsonl").exists() and not (a / "sessions.jsonl").exists()
