"""Every headline and table figure of `loganalyzer report daily --json` on a synth day, each
against the same figure computed from truth.jsonl alone."""

from __future__ import annotations

import json
import subprocess
from collections import Counter, defaultdict

import numpy as np
import pytest
from conftest import LOGANALYZER
from reportdata import ACCEPTED, DAY, NDR_SENDER, PREVIOUS, Expected, _t, synth_store

TOP = 10


def loganalyzer(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synth_store(tmp_path_factory)


@pytest.fixture(scope="module")
def got(synth):
    """The report's JSON, from the installed command."""
    done = loganalyzer("report", "daily", "--store", synth[1], "--date", DAY, "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def want(synth):
    return Truth(synth[2], DAY)


class Truth(Expected):
    """The figures `Expected` lacks: deferrals, bounces, bytes, per-kind latency, ..."""

    def deferrals(self) -> list[tuple[dict, str]]:
        """(truth row, time) of every DEFER of every recipient in the day (retries too)."""
        return [(r, at) for r in self.rows for at in r["deferrals"] if self.inside(at)]

    def bounces(self) -> list[dict]:
        """NDRs the organisation created in the day (their creation is their receipt)."""
        return [m for m in self.received if m["sender"].lower() == NDR_SENDER]

    def messages_of(self, verdict: str) -> tuple[int, int, int]:
        """(messages, recipients, bytes) of a verdict in the day."""
        n, m = self.counts(verdict)
        return m, n, self.bytes_of(verdict)

    def latency_rows(self) -> list[tuple[float, dict]]:
        return [
            ((_t(r["at"]) - _t(r["received_at"])).total_seconds(), r)
            for v in ("delivered", "sent_external")
            for r in self.outcome(v)
        ]

    def side(self, m: dict) -> str:
        return "internal" if m["sender"].lower().split("@")[1] in ACCEPTED else "external"


def _stats(values: list[float]) -> dict:
    a = np.array(values)
    return {
        "recipients": len(a),
        "p50": np.quantile(a, 0.5),
        "p90": np.quantile(a, 0.9),
        "p99": np.quantile(a, 0.99),
        "max": a.max(),
    }


def _close(got: dict, want: dict) -> None:
    assert {k: got[k] for k in want} == pytest.approx(want, abs=1e-6)


def test_headline_figures(got, want):
    deferred = want.counts("deferred")
    assert got["headline"] | {"smtp_sessions": 0, "auth_failures": 0} == {
        "received_messages": len(want.received),
        "bytes_in": sum(m["size"] for m in want.received),
        "delivered_recipients": want.counts("delivered")[0],
        "sent_out_recipients": want.counts("sent_external")[0],
        "bytes_out": want.bytes_of("sent_external"),
        "failed_recipients": want.counts("failed")[0],
        "bounces": len(want.bounces()),
        "still_deferred_recipients": deferred[0],
        "deferrals": len(want.deferrals()),
        "distinct_senders": len({m["sender"].lower() for m in want.received}),
        "smtp_sessions": 0,
        "auth_failures": 0,
    }


def test_totals_table(got, want):
    rows = {
        r["figure"]: (r["messages"], r["recipients"], r["bytes"]) for r in got["tables"]["totals"]
    }
    deferrals = want.deferrals()
    bounces = want.bounces()
    still = want.outcome("deferred")
    assert rows == {
        "received": (len(want.received), None, sum(m["size"] for m in want.received)),
        "delivered": want.messages_of("delivered"),
        "sent out": want.messages_of("sent_external"),
        "failed": want.messages_of("failed"),
        "dropped": want.messages_of("dropped"),
        "quarantined": want.messages_of("quarantined"),
        "bounces (NDRs created)": (len(bounces), None, sum(m["size"] for m in bounces)),
        "still deferred": (len({r["message_id"] for r in still}), len(still), None),
        "deferred at least once": (
            len({r["message_id"] for r, _ in deferrals}),
            len({(r["message_id"], r["recipient"].lower()) for r, _ in deferrals}),
            None,
        ),
        "deferrals (attempts)": (None, len(deferrals), None),
        "expanded (lists)": want.counts("expanded")[::-1] + (None,),
    }
    # the synth day has every kind, and retries: rows and messages differ
    assert all(v[0] or v[1] for v in rows.values())
    assert rows["deferrals (attempts)"][1] > rows["deferred at least once"][1]
    assert rows["deferred at least once"][1] > rows["deferred at least once"][0]


def test_distinct_figures(got, want):
    finals = [
        r
        for v in ("delivered", "sent_external", "failed", "dropped", "quarantined")
        for r in want.outcome(v)
    ]
    rows = {r["figure"]: r["count"] for r in got["tables"]["distinct"]}
    assert rows == {
        "senders": len({m["sender"].lower() for m in want.received}),
        "sender domains": len({m["sender"].lower().split("@")[1] for m in want.received}),
        "recipients": len({r["recipient"].lower() for r in finals}),
        "recipient domains": len({r["recipient"].lower().split("@")[1] for r in finals}),
    }


def test_sides(got, want):
    per = defaultdict(lambda: [0, 0, 0, 0])
    for m in want.received:
        per[want.side(m)][0] += 1
        per[want.side(m)][1] += m["size"]
    for verdict, i in (("delivered", 2), ("sent_external", 3)):
        for r in want.outcome(verdict):
            per[want.side(want.messages[r["message_id"]])][i] += 1
    assert [
        (r["sender"], r["messages"], r["bytes"], r["delivered"], r["sent_out"])
        for r in got["tables"]["sides"]
    ] == [(s, *per[s]) for s in ("internal", "external")]


def test_hourly(got, want):
    hourly = got["tables"]["hourly"]
    deferrals = Counter(want.hour(at) for _, at in want.deferrals())
    bytes_in = Counter()
    for m in want.received:
        bytes_in[want.hour(m["received_at"])] += m["size"]
    assert [h["deferrals"] for h in hourly] == [deferrals.get(i, 0) for i in range(24)]
    assert [h["bytes_in"] for h in hourly] == [bytes_in.get(i, 0) for i in range(24)]
    for column, verdict in (
        ("received", None),
        ("delivered", "delivered"),
        ("sent_out", "sent_external"),
        ("failed", "failed"),
    ):
        assert [h[column] for h in hourly] == want.per_hour(verdict)


def test_failures(got, want):
    failed = want.outcome("failed")
    t = got["tables"]
    texts = defaultdict(Counter)
    msgs = defaultdict(set)
    for r in failed:
        texts[r["enhanced_status"] or ""][r["reply"]] += 1
        msgs[r["enhanced_status"] or ""].add(r["message_id"])
    by_status = sorted(
        (
            (code, sum(c.values()), len(msgs[code]), min(c, key=lambda x: (-c[x], x)))
            for code, c in texts.items()
        ),
        key=lambda x: (-x[1], x[0]),
    )
    assert [
        (r["status"], r["recipients"], r["messages"], r["example"]) for r in t["failures_by_status"]
    ] == by_status
    domains = defaultdict(list)
    for r in failed:
        domains[r["recipient"].lower().split("@")[1]].append(r["message_id"])
    by_domain = sorted(
        ((d, len(v), len(set(v))) for d, v in domains.items()), key=lambda x: (-x[1], x[0])
    )
    assert [(r["domain"], r["recipients"], r["messages"]) for r in t["failures_by_domain"]] == (
        by_domain[:TOP]
    )
    per_server = Counter()
    for r in t["failures_by_server"]:
        per_server[r["server"]] += r["recipients"]
    assert per_server == Counter(r["server"] for r in failed)
    listed = sorted(
        (r["date_time"], r["server"], r["recipient"].lower(), r["status"], r["reply"])
        for r in t["failed"]
    )
    assert listed == sorted(
        (
            r["at"].replace("Z", "+00:00"),
            r["server"],
            r["recipient"].lower(),
            r["enhanced_status"] or "",
            r["reply"],
        )
        for r in failed
    )


def test_deferral_reasons_and_pending(got, want):
    t = got["tables"]
    deferrals = want.deferrals()
    assert len(t["deferral_reasons"]) < TOP  # all reasons listed: their sums are the totals
    assert sum(r["deferrals"] for r in t["deferral_reasons"]) == len(deferrals)
    assert {d for r in t["deferral_reasons"] for d in r["domains"].split(", ")} == {
        r["recipient"].lower().split("@")[1] for r, _ in deferrals
    }
    pending = {
        (p["message_id"], p["recipient"].lower()): (p["since"], p["deferrals"], p["last_error"])
        for p in t["pending"]
    }
    assert pending == {
        (r["message_id"], r["recipient"].lower()): (
            min(x for x in r["deferrals"] if want.inside(x)).replace("Z", "+00:00"),
            sum(want.inside(x) for x in r["deferrals"]),
            r["reply"],
        )
        for r in want.outcome("deferred")
    }


def test_latency(got, want):
    t = got["tables"]
    rows = want.latency_rows()
    kinds = {"all": [x for x, _ in rows]}
    for label, verdict in (("delivered", "delivered"), ("sent out", "sent_external")):
        kinds[label] = [x for x, r in rows if r["verdict"] == verdict]
    assert [r["recipients_of"] for r in t["latency"]] == list(kinds)
    for r in t["latency"]:
        _close(r, _stats(kinds[r["recipients_of"]]))
    per_hour = defaultdict(list)
    for x, r in rows:
        per_hour[want.hour(r["at"])].append(x)
    assert len(t["latency_hourly"]) == len(per_hour)
    for r in t["latency_hourly"]:
        _close(r, _stats(per_hour[want.hour(r["hour"])]))
    slowest = sorted(rows, key=lambda x: (-x[0], x[1]["message_id"], x[1]["recipient"].lower()))
    assert [(r["message_id"], r["recipient"].lower()) for r in t["slowest"]] == [
        (r["message_id"], r["recipient"].lower()) for _, r in slowest[:TOP]
    ]
    assert [r["latency_s"] for r in t["slowest"]] == pytest.approx([x for x, _ in slowest[:TOP]])


@pytest.mark.parametrize(
    "name", ["top_senders", "top_sender_domains", "top_recipients", "top_recipient_domains"]
)
def test_top_lists_by_messages_and_by_size(got, want, name):
    ranked = getattr(want, name)(10**6)
    by_size = sorted(ranked, key=lambda x: (-x[2], -x[1], x[0]))[:TOP]
    for suffix, expected in (("", ranked[:TOP]), ("_by_size", by_size)):
        assert [tuple(r.values()) for r in got["tables"][name + suffix]] == expected


def test_previous_day(got, synth):
    prev = Truth(synth[2], PREVIOUS)
    p = got["previous"]
    assert p["received_messages"] == len(prev.received)
    assert p["delivered_recipients"] == prev.counts("delivered")[0]
    assert p["failed_recipients"] == prev.counts("failed")[0]
    assert p["bounces"] == len(prev.bounces())
    assert p["deferrals"] == len(prev.deferrals())
    assert p["bytes_out"] == prev.bytes_of("sent_external")
