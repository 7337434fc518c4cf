"""Inputs the generator does not make: mixed-case addresses and domains, hand-offs named in odd
letter case, Received dates with negative and half-hour zone offsets, stores whose files have
old lookup sketches or none."""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, datetime

import pytest
from conftest import LOGANALYZER
from logfiles import row, write_log
from test_lookup import _v1_sketch

from loganalyzer.headers.received import chain, parse_received
from loganalyzer.ingest import ingest
from loganalyzer.read.query import connect
from loganalyzer.report import daily_report
from loganalyzer.store import Store
from loganalyzer.store.lookup import HEADER
from loganalyzer.synth import generate
from loganalyzer.trace import trace

INTERNET = "Internet Send Connector"


def loganalyzer(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=300)


def _message(i: int, sender: str, rcpt: str, size: int, last: dict) -> list[dict]:
    """RECEIVE on EX01 (recipient in lower case), then ``last`` naming ``rcpt`` as written."""
    common = {
        "message_id": f"<m{i}@example.net>",
        "sender_address": sender,
        "return_path": sender,
        "total_bytes": str(size),
    }
    return [
        row(10 * i, **common, server_hostname="EX01", recipient_address=rcpt.lower()),
        row(10 * i + 1, **common, recipient_address=rcpt, **last),
    ]


DELIVER = {"event_id": "DELIVER", "source": "STOREDRIVER", "server_hostname": "EX01"}
SEND_OUT = {"event_id": "SEND", "connector_id": INTERNET, "server_hostname": "mx.example.org"}
FAIL = {"event_id": "FAIL", "recipient_status": "550 5.1.1 User unknown"}


@pytest.fixture(scope="module")
def odd_store(tmp_path_factory):
    """Five messages whose senders and recipients differ only in letter case, and two
    hand-offs to other servers of the organisation named in odd letter case."""
    root = tmp_path_factory.mktemp("odd-case")
    rows = [
        *_message(1, "Alice@Contoso.COM", "Bob@CONTOSO.com", 1000, DELIVER),
        *_message(2, "alice@contoso.com", "bob@contoso.com", 2000, DELIVER),
        *_message(3, "Carol@FABRIKAM.com", "Dave@Example.ORG", 3000, SEND_OUT),
        *_message(4, "carol@fabrikam.com", "dave@example.org", 4000, SEND_OUT),
        *_message(5, "Eve@Fabrikam.Com", "X@EXAMPLE.org", 500, FAIL),
        # an intra-organisation connector in capitals, to a server whose logs are missing
        *_message(
            6,
            "alice@contoso.com",
            "erin@contoso.com",
            600,
            {
                "event_id": "SEND",
                "connector_id": "INTRA-ORGANIZATION SMTP SEND CONNECTOR",
                "server_hostname": "ex09.contoso.com",
            },
        ),
        # a connector of another name, to a server of the store named in mixed case
        *_message(
            7,
            "alice@contoso.com",
            "frank@contoso.com",
            700,
            {
                "event_id": "SEND",
                "connector_id": "To branch",
                "server_hostname": "Ex02.Contoso.Com",
            },
        ),
    ]
    write_log(root / "EX01" / "MSGTRK2026030210-1.LOG", rows)
    write_log(
        root / "EX02" / "MSGTRK2026030210-1.LOG",
        [row(900, server_hostname="EX02", date_time="2026-02-27T10:00:00.000Z")],
    )
    store = root / "store"
    assert ingest([root / "EX01", root / "EX02"], store).exit_code == 0
    return store


def test_stored_sender_domains_are_lower_case(odd_store):
    with connect(Store(odd_store)) as con:
        got = con.sql("select distinct sender_domain from tracking order by 1").fetchall()
    assert got == [("contoso.com",), ("fabrikam.com",)]


def test_report_counts_addresses_and_domains_in_any_case_together(odd_store):
    r = daily_report(odd_store, "2026-03-02")
    distinct = dict(zip(r.distinct["figure"], r.distinct["count"], strict=True))
    assert distinct == {
        "senders": 3,
        "sender domains": 2,
        "recipients": 3,
        "recipient domains": 2,
    }

    def rows(name):
        return [tuple(x) for x in r.metrics[name].itertuples(index=False, name=None)]

    assert rows("top_senders") == [
        ("alice@contoso.com", 4, 4300),
        ("carol@fabrikam.com", 2, 7000),
        ("eve@fabrikam.com", 1, 500),
    ]
    assert rows("top_sender_domains") == [("contoso.com", 4, 4300), ("fabrikam.com", 3, 7500)]
    assert rows("top_recipients") == [("dave@example.org", 2, 7000), ("bob@contoso.com", 2, 3000)]
    assert rows("top_recipient_domains") == [("example.org", 2, 7000), ("contoso.com", 2, 3000)]
    assert rows("failures_by_domain") == [("example.org", 1, 1)]
    # the two hand-offs are relayed inside the organisation, not sent out
    assert r.headline["sent_out_recipients"] == 2 and r.headline["delivered_recipients"] == 2


@pytest.mark.parametrize(
    ("i", "server"),
    [(6, "EX09"), (7, "EX02")],
    ids=["connector-in-capitals", "server-in-mixed-case"],
)
def test_hand_offs_named_in_any_case_are_hand_offs(odd_store, i, server):
    [m] = trace(odd_store, f"<m{i}@example.net>").messages
    [v] = m.recipients
    assert (v.verdict, v.server) == ("last_seen", "EX01")
    if server == "EX09":  # not in the store: its logs are reported missing
        assert [x["server"] for x in m.missing_logs] == ["EX09"]


def test_recipient_in_two_cases_is_one_recipient(odd_store):
    done = loganalyzer("trace", "<m1@example.net>", "--store", odd_store, "--json")
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["messages"]
    assert [(v["address"], v["verdict"]) for v in m["recipients"]] == [
        ("bob@contoso.com", "delivered")
    ]


# Received dates ------------------------------------------------------------------------------

RECEIVED = "from a.example.net (a.example.net [192.0.2.1]) by mx.contoso.com with ESMTP id 1; {}"


@pytest.mark.parametrize(
    ("date", "utc"),
    [
        ("Mon, 2 Mar 2026 10:00:00 -0330", "2026-03-02T13:30:00"),
        ("Mon, 2 Mar 2026 10:00:00 +0530", "2026-03-02T04:30:00"),
        ("Mon, 2 Mar 2026 01:15:00 +0545", "2026-03-01T19:30:00"),
        ("Sun, 1 Mar 2026 22:00:00 -0930", "2026-03-02T07:30:00"),
        ("2026-03-02 10:00:00.250 -03:30", "2026-03-02T13:30:00.250000"),
    ],
)
def test_zone_offsets_with_sign_and_minutes(date, utc):
    hop = parse_received(RECEIVED.format(date))
    assert hop.date_time == datetime.fromisoformat(utc).replace(tzinfo=UTC)
    assert not hop.tz_assumed


def test_delays_between_hops_in_different_zones():
    """Newfoundland (-0330) to India (+0530) to UTC: 90 s and 45 s, no clock skew."""
    hops = chain(
        [
            RECEIVED.format("Mon, 2 Mar 2026 13:32:15 +0000"),
            RECEIVED.format("Mon, 2 Mar 2026 19:01:30 +0530"),
            RECEIVED.format("Mon, 2 Mar 2026 10:00:00 -0330"),
        ]
    )
    assert [h.delay_s for h in hops] == [None, 90.0, 45.0]
    assert [h.since_first_s for h in hops] == [0.0, 90.0, 135.0]
    assert not any(h.clock_skew for h in hops)


# Old and missing lookup sketches ---------------------------------------------------------------


def test_files_with_old_or_no_sketch_are_still_read(tmp_path):
    """EX01's files keep a version 1 sketch, EX02's have none (a store written before
    sketches): every recipient of messages crossing both servers traces as the truth says."""
    generate(tmp_path / "logs", servers=2, days=1, messages=150, seed=5)
    store = Store(tmp_path / "store")
    assert ingest([tmp_path / "logs"], store).exit_code == 0
    manifest = store.manifest()
    with store.lock():
        for r in manifest.values():
            r.lookup = _v1_sketch(store, r) if r.server == "EX01" else None
        store.write_manifest(manifest)
    kept = store.manifest().values()
    assert {r.server for r in kept if r.lookup is None} == {"EX02"}
    assert not any(r.lookup.startswith(HEADER) for r in kept if r.lookup is not None)

    truth = [json.loads(x) for x in (tmp_path / "logs" / "truth.jsonl").open()]
    crossing = [
        t
        for t in truth
        if t["verdict"] == "delivered" and t["server"] == "EX02" and "@ex01." in t["message_id"]
    ][:3]
    assert len(crossing) == 3
    for t in crossing:
        found = trace(store, t["message_id"])
        got = {v.address.lower(): v for r in found.messages[0].recipients for v in r.flatten()}
        v = got[t["recipient"].lower()]
        at = v.date_time.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        assert (v.verdict, v.server, at) == ("delivered", "EX02", t["at"])
    done = loganalyzer("trace", crossing[0]["message_id"], "--store", store.root, "--json")
    assert done.returncode == 0, done.stderr
    [m] = json.loads(done.stdout)["messages"]
    assert {v["verdict"] for v in m["recipients"]} >= {"delivered"}


def test_a_message_of_a_thousand_recipients_and_a_long_subject_is_reported(tmp_path):
    """Its subject was copied to each recipient's row: 100 MB for one message, and the report
    ran out of memory (an error, no report)."""
    recipients = ";".join(f"user{i}@fabrikam.com" for i in range(1000))
    statuses = ";".join("550 5.1.1 unknown" for _ in range(1000))
    common = dict(recipient_address=recipients, message_subject="S" * 100_000)
    write_log(
        tmp_path / "logs" / "EX08" / "MSGTRK2026030609-1.LOG",
        [
            row(0, **common),
            row(1, event_id="FAIL", recipient_status=statuses, **common),
        ],
    )
    store = tmp_path / "store"
    assert loganalyzer("ingest", tmp_path / "logs", "--store", store).returncode == 0
    out = loganalyzer("report", "daily", "--date", "2026-03-02", "--store", store, "--json")
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["headline"]["failed_recipients"] == 1000
    subjects = {r["subject"] for r in report["tables"]["failed"]}
    assert len(subjects) == 1 and subjects.pop().startswith("SSS")
