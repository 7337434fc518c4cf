"""Candidate lists and their lookups: a wildcard list's true total and rows against the
ground truth, pages of it in both orders, the verdict filter, each listed recipient's verdict,
and lookups that open only the files that can hold the message."""

from __future__ import annotations

import fnmatch
import importlib
import json
import re
import subprocess
import sys
from collections import defaultdict
from html import unescape
from pathlib import Path

import pytest

from loganalyzer.errors import BadInput
from loganalyzer.ingest import ingest
from loganalyzer.read.store import Store
from loganalyzer.synth import generate
from loganalyzer.trace import trace

trace_module = importlib.import_module("loganalyzer.trace")  # the package, not the function
LOGANALYZER = str(Path(sys.executable).with_name("loganalyzer"))


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    base = tmp_path_factory.mktemp("lists")
    generate(base / "logs", servers=2, days=2, messages=120, seed=11)
    assert ingest([base / "logs"], base / "store").exit_code == 0
    truth = [json.loads(x) for x in (base / "logs" / "truth.jsonl").open(encoding="utf-8")]
    return base / "store", truth


def by_message(truth: list[dict]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for t in truth:
        if t["message_id"] and t["recipient"]:
            out[t["message_id"]][t["recipient"].lower()] = t["verdict"]
    return out


def test_a_wildcard_list_has_the_true_total_and_rows_in_pages(synth):
    store, truth = synth
    messages = by_message(truth)
    pattern = "*@fabrikam.com"
    wanted = {m for m, rs in messages.items() if any(fnmatch.fnmatch(r, pattern) for r in rs)}
    ndrs = {t["ndr_message_id"] for t in truth} - {None}
    whole = trace(store, recipient=pattern, limit=None)
    listed = [c["message_id"] for c in whole.candidates]
    assert whole.total == len(listed) == len(set(listed)) > 25
    assert wanted <= set(listed) <= wanted | ndrs
    # pages of 25, oldest first and newest first, each with the true total
    pages, newest = [], []
    for offset in range(0, whole.total, 25):
        page = trace(store, recipient=pattern, limit=25, offset=offset)
        back = trace(store, recipient=pattern, limit=25, offset=offset, newest=True)
        assert page.total == back.total == whole.total
        pages += page.candidates
        newest += [c["message_id"] for c in back.candidates]
    assert pages == whole.candidates
    assert newest == listed[::-1]


def test_the_verdict_filter_and_each_listed_recipients_verdict(synth):
    store, truth = synth
    messages = by_message(truth)
    failed = {m for m, rs in messages.items() if "failed" in rs.values()}
    found = trace(store, recipient="*", verdict="failed", limit=None, verdicts=True)
    assert {c["message_id"] for c in found.candidates} == failed
    assert found.total == len(failed) > 0
    fab = trace(store, recipient="*@fabrikam.com", verdict="delivered", limit=None)
    assert {c["message_id"] for c in fab.candidates} == {
        m
        for m, rs in messages.items()
        if any(v == "delivered" and fnmatch.fnmatch(r, "*@fabrikam.com") for r, v in rs.items())
    }
    checked = 0
    for c in found.candidates:
        shown = {v["recipient"]: v["verdict"] for v in c["verdicts"]}
        assert {r: v for r, v in shown.items() if r in messages[c["message_id"]]} == messages[
            c["message_id"]
        ]
        delivered = [v for v in c["verdicts"] if v["verdict"] == "delivered"]
        assert all(v["latency_s"] is not None and v["latency_s"] >= 0 for v in delivered)
        checked += 1
    assert checked == len(failed)
    with pytest.raises(BadInput, match="verdict 'lost': give one of delivered"):
        trace(store, recipient="*", verdict="lost")


def _tracking_parts(monkeypatch) -> list[int]:
    """The number of tracking parts each view of a trace is pointed at, as it runs."""
    seen: list[int] = []
    real_add, real_point = trace_module.add_views, trace_module.point

    def count(only, manifest, tables):
        rows = manifest.values() if only is None else only
        if tables is not None and "tracking" not in tables:
            rows = manifest.values()  # (the other views: the whole store)
        seen.append(sum(p.startswith("tracking/") for r in rows for p in r.parts))

    def add_views(con, st, only, manifest, derived=True, tables=None):
        count(only, manifest, tables)
        return real_add(con, st, only, manifest, derived, tables)

    def point(con, st, only, manifest, current=None, tables=None):
        count(only, manifest, tables)
        return real_point(con, st, only, manifest, current, tables)

    monkeypatch.setattr(trace_module, "add_views", add_views)
    monkeypatch.setattr(trace_module, "point", point)
    return seen


def test_lookups_open_only_the_files_that_can_hold_the_message(synth, monkeypatch):
    store, truth = synth
    manifest = Store(store).manifest()
    every = sum(p.startswith("tracking/") for r in manifest.values() for p in r.parts)
    mid = truth[40]["message_id"]
    seen = _tracking_parts(monkeypatch)
    assert trace(store, mid).messages
    assert max(seen) < every / 4, (seen, every)  # the sketches name a few files
    # an internal ID: only its server's files, then the message's own
    import duckdb

    internal, server = duckdb.sql(
        f"select internal_message_id, server from read_parquet('{store}/tracking/*/*.parquet') "
        f"where message_id = '{mid}' and internal_message_id is not null limit 1"
    ).fetchall()[0]
    seen.clear()
    found = trace(store, internal, server=server)
    assert [m.message_id for m in found.messages] == [mid]
    servers = {r.server for r in manifest.values() if r.server}
    assert len(servers) == 2 and seen[0] < every and max(seen[1:]) < every / 4, (seen, every)
    # a list's rows are read from the files holding the listed messages
    seen.clear()
    # (none at first where the address index answers the list alone)
    page = trace(store, recipient="*@fabrikam.com", limit=3)
    assert page.total > 3 and seen[0] in (0, every) and min(seen[1:]) < every / 4, (seen, every)


def test_the_command_lists_the_first_of_a_wildcard_list_with_its_true_total(synth):
    store, _ = synth
    run = subprocess.run(
        [LOGANALYZER, "trace", "--recipient", "*@FABRIKAM.com", "--store", str(store)]
        + ["--limit", "5", "--json"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    whole = trace(store, recipient="*@fabrikam.com", limit=None, verdicts=True)
    assert listed["total"] == whole.total > 5
    assert listed["candidates"] == whole.candidates[:5]


def test_the_command_lists_the_messages_of_a_verdict(synth):
    """``loganalyzer trace --verdict failed`` lists every message with a failed recipient (and
    no other); a verdict not among them is one line naming the choices; nothing of that verdict
    in the window says which filter found nothing."""
    store, truth = synth
    messages = by_message(truth)
    failed = {m for m, rs in messages.items() if "failed" in rs.values()}
    run = subprocess.run(
        [
            LOGANALYZER,
            "trace",
            "--verdict",
            "failed",
            "--limit",
            "1000",
            "--json",
            "-s",
            str(store),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    listed = json.loads(run.stdout)
    assert {c["message_id"] for c in listed["candidates"]} == failed
    assert listed["total"] == len(failed) > 0
    assert all(any(v["verdict"] == "failed" for v in c["verdicts"]) for c in listed["candidates"])
    wrong = subprocess.run(
        [LOGANALYZER, "trace", "--verdict", "lost", "-s", str(store)],
        capture_output=True,
        text=True,
    )
    assert wrong.returncode == 2
    assert wrong.stderr.strip().splitlines() == [
        "error: --verdict 'lost': give one of delivered, sent_external, failed, deferred, dropped,"
        " quarantined, moderation, expanded, last_seen, rejected"
    ]
    assert not any(t["verdict"] == "last_seen" for t in truth)
    none = subprocess.run(
        [LOGANALYZER, "trace", "--verdict", "last_seen", "--recipient", "*", "-s", str(store)],
        capture_output=True,
        text=True,
    )
    assert none.returncode == 1
    assert "matches recipient *, verdict last_seen." in none.stderr


def test_every_match_traced_into_one_page_a_page_of_traces_at_a_time(synth, tmp_path):
    """``trace --all --html`` traced every match at once into memory (a day's thousands of
    messages took gigabytes) while ``--all`` alone went a page of traces at a time: the page
    is now written in parts as the pages come, one document with every message; ``--limit``
    keeps the first N."""
    store, truth = synth
    page = tmp_path / "all.html"
    run = subprocess.run(
        [LOGANALYZER, "trace", "--since", "2000-01-01", "--all", "--json", "--html", str(page)]
        + ["-s", str(store)],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr
    traced = json.loads(run.stdout)
    ids = [m["message_id"] for m in traced["messages"]]
    assert len(ids) == traced["total"] > trace_module.PAGE  # more than one page of traces
    html = page.read_text(encoding="utf-8")
    assert html.count("<!DOCTYPE html>") == 1 and html.rstrip().endswith("</html>")
    assert html.count("<h2>Verdict per recipient</h2>") == len(ids)
    shown = re.findall(r"<dt>Message-ID</dt><dd>(.*?)</dd>", html)
    assert [unescape(m) for m in shown] == [m or "" for m in ids]  # in the order traced
    assert not list(tmp_path.glob(".*.part"))
    first = subprocess.run(
        [LOGANALYZER, "trace", "--since", "2000-01-01", "--all", "--limit", "150"]
        + ["--html", str(page), "-s", str(store)],
        capture_output=True,
        text=True,
    )
    assert first.returncode == 0, first.stderr
    assert page.read_text(encoding="utf-8").count("<h2>Verdict per recipient</h2>") == 150
    none = subprocess.run(
        [LOGANALYZER, "trace", "--sender", "nobody@nowhere.example", "--all", "--html"]
        + [str(page), "-s", str(store)],
        capture_output=True,
        text=True,
    )
    assert none.returncode == 1
    assert "No message in the store matches sender nobody@nowhere.example" in none.stderr
    assert "No message in the store matches" in page.read_text(encoding="utf-8")


def test_the_page_of_every_match_is_written_as_its_parts_come(synth, tmp_path):
    """Each page of traces is rendered and written before the next is traced (memory holds a
    page of them), and the page made so equals the one made of every trace at once; an error
    while its parts come leaves neither the page nor a part file."""
    from loganalyzer.pages import write_page
    from loganalyzer.trace import trace_pages
    from loganalyzer.trace.html import render_pages

    store, _ = synth
    seen: list[str] = []

    def pages():
        for result in trace_pages(store, since="2000-01-01", page=50):
            seen.append("traced")
            yield result

    def parts():
        for chunk in render_pages(pages()):
            seen.append("written")
            yield chunk

    path = write_page(tmp_path / "paged.html", parts())
    assert seen[:4] == ["traced", "written", "traced", "written"] and seen.count("traced") > 2
    whole = trace(store, since="2000-01-01", all=True, limit=None)
    assert path.read_text(encoding="utf-8") == whole.to_html()

    def broken():
        yield "<!DOCTYPE html>"
        raise RuntimeError("the store went away")

    with pytest.raises(RuntimeError):
        write_page(tmp_path / "broken.html", broken())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["paged.html"]
