"""The history of a report over several days (from rollups), through the command, against
synth's truth: monthly recipients per domain, the mailboxes and distribution lists quiet
lately, and the SMTP clients of the whole store as a one-day report shows them."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

from loganalyzer.synth import generate

EXE = str(Path(sys.executable).with_name("loganalyzer"))
FIRST, LAST = "2026-03-02", "2026-03-06"  # synth's five days
SYSTEM = re.compile(r"^(microsoftexchange[0-9a-f]*|postmaster)@")


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def logs_and_store(tmp_path_factory):
    base = tmp_path_factory.mktemp("history")
    generate(base / "logs", servers=2, days=5, messages=40, seed=2)
    done = _run("ingest", str(base / "logs"), "--store", str(base / "store"), "--json")
    assert done.returncode == 0, done.stderr
    truth = [json.loads(line) for line in (base / "logs" / "truth.jsonl").open()]
    return truth, base / "store"


def _report(store: Path, date: str, days: int, *more: str) -> dict:
    done = _run(
        "report",
        "daily",
        "--store",
        str(store),
        "--date",
        date,
        "--days",
        str(days),
        "--json",
        *more,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _quiet_from_truth(
    truth: list[dict], first: str, since: str
) -> tuple[list[str], dict[str, dict]]:
    """The organisation's domains and its addresses seen from day ``first`` on but not from
    ``since`` on, from truth."""
    lists = {r["recipient"].lower() for r in truth if r["verdict"] == "expanded"}
    # a redirected address takes its target's verdict in truth, but no row delivers to it
    redirected = {
        r["expanded_from"].lower()
        for r in truth
        if r["expanded_from"] and r["expanded_from"].lower() not in lists
    }
    accepted = sorted(
        {r["recipient"].lower().split("@")[1] for r in truth if r["verdict"] == "delivered"}
    )
    received, sent = defaultdict(set), defaultdict(set)
    for r in truth:
        address = r["recipient"].lower()
        seen = r["verdict"] == "expanded" or (
            r["verdict"] == "delivered" and address not in redirected
        )
        if seen and r["at"][:10] >= first:
            received[address].add((r["at"][:10], r["message_id"]))
        sender = (r["sender"] or "").lower()
        if r["received_at"][:10] < first:
            continue
        if sender.split("@")[-1] in accepted and not SYSTEM.match(sender):
            sent[sender].add((r["received_at"][:10], r["message_id"]))
    quiet = {}
    for address in set(received) | set(sent):
        last_received = max((d for d, _ in received[address]), default=None)
        last_sent = max((d for d, _ in sent[address]), default=None)
        if address.split("@")[1] in accepted and max(last_received or "", last_sent or "") < since:
            quiet[address] = {
                "address": address,
                "type": "distribution list" if address in lists else "mailbox",
                "last_received": last_received,
                "last_sent": last_sent,
                "received": len(received[address]),
                "sent": len(sent[address]),
            }
    return accepted, quiet


@pytest.mark.parametrize(
    ("date", "days", "quiet_days"),
    [
        (LAST, 5, 2),  # the last two days of the logs
        ("2026-03-08", 3, 2),  # the logs stopped two days before: all seen, the lists too
    ],
)
def test_quiet_mailboxes_and_lists_equal_truth(logs_and_store, date, days, quiet_days):
    truth, store = logs_and_store
    got = _report(store, date, days, "--rollups", "--quiet-days", str(quiet_days))
    since = (dt.date.fromisoformat(date) - dt.timedelta(days=quiet_days - 1)).isoformat()
    first = (dt.date.fromisoformat(date) - dt.timedelta(days=days - 1)).isoformat()
    accepted, quiet = _quiet_from_truth(truth, first, since)
    assert got["accepted_domains"] == accepted
    rows = got["tables"]["quiet_mailboxes"]
    assert len(rows) == len(quiet) < 200  # under the list's limit: all of them
    assert {r["address"]: r for r in rows} == quiet
    assert quiet, "the period has quiet addresses"
    if date > LAST:
        assert {r["type"] for r in rows} == {"mailbox", "distribution list"}
    # oldest activity first
    last = [max(r["last_received"] or "", r["last_sent"] or "") for r in rows]
    assert last == sorted(last)


def test_monthly_domains_add_up_to_truth(logs_and_store):
    truth, store = logs_and_store
    got = _report(store, LAST, 5, "--rollups", "--top", "3")
    monthly = got["tables"]["monthly_domains"]
    per_domain = defaultdict(lambda: defaultdict(int))
    for r in truth:
        verdict = {"delivered": "delivered", "sent_external": "sent_out", "failed": "failed"}.get(
            r["verdict"]
        )
        if verdict and FIRST <= r["at"][:10] <= LAST:
            per_domain[r["recipient"].lower().split("@")[1]][verdict] += 1
    busiest = sorted(per_domain, key=lambda d: (-sum(per_domain[d].values()), d))[:3]
    assert {m["domain"] for m in monthly} == set(busiest)
    # how many it leaves out: the period's recipient domains, as the distinct figures count
    distinct = {d["figure"]: d["count"] for d in got["tables"]["distinct"]}
    assert got["cut"]["monthly_domains"] == {"listed": 3, "total": distinct["recipient domains"]}
    assert distinct["recipient domains"] >= len(per_domain) > 3
    assert {m["month"] for m in monthly} == {"2026-03"}
    # the redirected addresses' rows in truth repeat their targets' outcomes
    lists = {r["recipient"].lower() for r in truth if r["verdict"] == "expanded"}
    for r in truth:
        source = (r["expanded_from"] or "").lower()
        if source and source not in lists and r["verdict"] in ("delivered", "failed"):
            key = "delivered" if r["verdict"] == "delivered" else "failed"
            per_domain[source.split("@")[1]][key] -= 1
    for m in monthly:
        want = per_domain[m["domain"]]
        assert (m["delivered"], m["sent_out"], m["failed"]) == (
            want["delivered"],
            want["sent_out"],
            want["failed"],
        ), m["domain"]


def test_long_report_lists_the_stores_smtp_clients_as_a_one_day_report(logs_and_store):
    _, store = logs_and_store
    long = _report(store, LAST, 5, "--rollups")
    one = _report(store, LAST, 1)
    assert long["tables"]["smtp_clients"] == one["tables"]["smtp_clients"]
    assert len(long["tables"]["smtp_clients"]) > 5
    assert all(c["first_seen"] <= c["last_seen"] for c in long["tables"]["smtp_clients"])


@pytest.mark.parametrize("days", ["0", "3661", "1000000", "99999999999999999999"])
def test_quiet_days_out_of_range_refused_in_one_line(logs_and_store, days):
    """Zero, and a number of days that reaches before the first date (an overflow once)."""
    _, store = logs_and_store
    args = ["report", "daily", "--store", str(store), "--days", "5", "--rollups"]
    done = _run(*args, "--quiet-days", days)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().count("\n") == 0 and f"--quiet-days {days}:" in done.stderr
    assert "1 to 3,660" in done.stderr and "Traceback" not in done.stderr


def test_page_charts_months_over_a_month_end(tmp_path):
    generate(tmp_path / "logs", servers=2, days=2, messages=20, seed=3, start=dt.date(2026, 3, 31))
    store = tmp_path / "store"
    assert _run("ingest", str(tmp_path / "logs"), "--store", str(store)).returncode == 0
    page = tmp_path / "page.html"
    args = ["report", "daily", "--store", str(store), "--date", "2026-04-01", "--days", "2"]
    done = _run(*args, "--rollups", "--out", str(page))
    assert done.returncode == 0, done.stderr
    html = page.read_text(encoding="utf-8")
    assert "Recipients delivered or sent out per month and server" in html
    got = _report(store, "2026-04-01", 2, "--rollups")
    assert {m["month"] for m in got["tables"]["monthly_servers"]} == {"2026-03", "2026-04"}


def test_redacted_history_names_nobody(logs_and_store):
    truth, store = logs_and_store
    out = json.dumps(_report(store, "2026-03-08", 3, "--rollups", "--quiet-days", "2", "--redact"))
    assert '"quiet_mailboxes": [{' in out
    people = {r["recipient"].lower() for r in truth} | {(r["sender"] or "").lower() for r in truth}
    leaked = [a for a in people if a and f'"{a}"' in out.lower()]
    assert not leaked
