"""The search page of ``loganalyzer serve`` (a subprocess, read over HTTP): the verdict filter,
each listed recipient's verdict and latency equal to the ground truth, pages in both orders
with the true total, and a search answered again from the cache until the store changes."""

from __future__ import annotations

import fnmatch
import html
import json
import re
import urllib.error
import urllib.request
from collections import defaultdict
from pathlib import Path
from urllib.parse import urlencode

import pytest
from webserver import serving

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate

NO_TOKEN = {"LOGANALYZER_WEB_TOKEN": ""}
_ROW = re.compile(r"<tr>\s*<td>(.*?)</tr>", re.S)
_FATE = re.compile(
    r"<div>(\S+) <span class=\"badge (\w+)\">\w+</span>"
    r"(?: <span class=\"latency\">([\d.]+) s</span>)?</div>"
)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    base = tmp_path_factory.mktemp("websearch")
    generate(base / "logs", servers=2, days=2, messages=100, seed=3)
    assert ingest([base / "logs"], base / "store").exit_code == 0
    truth = [json.loads(x) for x in (base / "logs" / "truth.jsonl").open(encoding="utf-8")]
    with serving(base / "store", env=NO_TOKEN) as url:
        yield url, truth


def get(url: str, **params: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{url}/?{urlencode(params)}", timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def rows(page: str) -> list[tuple[str, dict[str, tuple[str, str | None]]]]:
    """(Message-ID, {recipient: (verdict, latency)}) of each result row."""
    out = []
    for row in _ROW.findall(page):
        mid = html.unescape(re.search(r'<a class="trace"[^>]*>([^<]*)</a>', row)[1])
        fates = {html.unescape(a).lower(): (v, s) for a, v, s in _FATE.findall(row)}
        out.append((mid, fates))
    return out


def total(page: str) -> int:
    return int(re.search(r'<p id="total"><strong>([\d,]+)</strong>', page)[1].replace(",", ""))


def by_message(truth: list[dict]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for t in truth:
        if t["message_id"] and t["recipient"]:
            out[t["message_id"]][t["recipient"].lower()] = t["verdict"]
    return out


def test_the_verdict_filter_lists_each_recipients_verdict(served):
    url, truth = served
    messages = by_message(truth)
    failed = {m for m, rs in messages.items() if "failed" in rs.values()}
    status, page = get(url, recipient="*", verdict="failed")
    assert status == 200
    assert total(page) == len(failed) > 0
    listed = rows(page)
    assert {mid for mid, _ in listed} == failed  # fewer than a page
    for mid, fates in listed:
        assert {r: v for r, (v, _) in fates.items()} == messages[mid], mid
        assert all(s is not None for v, s in fates.values() if v == "delivered")
    assert '<option value="failed" selected>failed</option>' in page
    status, page = get(url, recipient="*", verdict="lost")
    assert status == 400
    assert "verdict &#39;lost&#39;: give one of delivered" in page


def test_a_wildcard_search_pages_both_ways_with_verdicts(served):
    url, truth = served
    messages = by_message(truth)
    pattern = "*@fabrikam.com"
    wanted = {m for m, rs in messages.items() if any(fnmatch.fnmatch(r, pattern) for r in rs)}
    ndrs = {t["ndr_message_id"] for t in truth} - {None}
    status, first = get(url, recipient=pattern)
    assert status == 200
    n = total(first)
    assert n > 25
    listed = rows(first)
    for number in range(2, (n + 24) // 25 + 1):
        listed += rows(get(url, recipient=pattern, page=str(number))[1])
    ids = [mid for mid, _ in listed]
    assert len(ids) == len(set(ids)) == n
    assert wanted <= set(ids) <= wanted | ndrs
    expanded = {t["message_id"] for t in truth if t["expanded_from"]}
    checked = 0
    for mid, fates in listed:
        if mid in wanted and mid not in expanded:
            shown = {r: v for r, (v, _) in fates.items() if r in messages[mid]}
            assert shown == messages[mid], mid
            checked += 1
    assert checked > 20
    _, newest = get(url, recipient=pattern, sort="newest")
    assert [mid for mid, _ in rows(newest)] == ids[::-1][:25]
    # asked again: the same page, from the cache
    assert get(url, recipient=pattern)[1] == first
    # a page past the last (an old link): said, with a link to the last page
    last = (n + 24) // 25
    status, past = get(url, recipient=pattern, page=str(last + 1))
    assert status == 200 and rows(past) == []
    assert f"Page {last + 1} is past the last page of these results" in past
    assert re.search(rf'<a href="/\?recipient=[^"]+&amp;page={last}">page {last}</a>', past)


def test_a_message_ingested_while_the_app_runs_is_found(tmp_path):
    for name, seed in (("before", 11), ("after", 12)):
        generate(tmp_path / name, servers=1, days=1, messages=30, seed=seed)
    assert ingest([tmp_path / "before"], tmp_path / "store").exit_code == 0
    before, after = (
        [json.loads(x) for x in (tmp_path / name / "truth.jsonl").open(encoding="utf-8")]
        for name in ("before", "after")
    )
    new = next(t["message_id"] for t in after if t["verdict"] == "delivered")
    assert new not in {t["message_id"] for t in before}

    def trace(mid: str) -> tuple[int, str]:
        try:
            with urllib.request.urlopen(f"{url}/trace?{urlencode({'id': mid})}") as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    with serving(tmp_path / "store", env=NO_TOKEN) as url:
        for t in before[:3]:  # lookups enough for the app to keep a merged index
            assert trace(t["message_id"])[0] == 200
        assert trace(new)[0] == 404
        assert total(get(url, q=new)[1]) == 0
        assert ingest([tmp_path / "after"], tmp_path / "store").exit_code == 0
        status, page = trace(new)
        assert status == 200 and html.escape(new) in page
        assert [mid for mid, _ in rows(get(url, q=new)[1])] == [new]
        assert trace(before[0]["message_id"])[0] == 200


def test_attempts_refused_without_an_id_name_their_session(tmp_path):
    """An attempt the SMTP session refused before any ID was given has no trace link (it was
    a link to an empty ID, labelled None): its row says where it was refused instead."""
    generate(tmp_path / "logs", servers=2, days=1, messages=100, seed=2, agent_logs=True)
    assert ingest([tmp_path / "logs"], tmp_path / "store").exit_code == 0
    with serving(tmp_path / "store", env=NO_TOKEN) as url:
        status, page = get(url, verdict="rejected", since="2026-03-01")
    assert status == 200 and total(page) > 0
    assert 'href="/trace?id="' not in page and ">None<" not in page
    assert "no ID: refused during the SMTP session by EX0" in page
    # each row shows its own attempt's refused recipients: rows without an ID showed the
    # last such row's (their verdicts were kept by Message-ID, None for all of them)
    truth = [json.loads(x) for x in (tmp_path / "logs" / "truth.jsonl").open(encoding="utf-8")]
    refused = sorted(
        t["recipient"].lower() for t in truth if t["verdict"] == "rejected" and t["recipient"]
    )
    shown = sorted(
        html.unescape(a).lower() for row in _ROW.findall(page) for a, v, _ in _FATE.findall(row)
    )
    assert shown == refused and len(set(shown)) > 1


def test_mail_an_iis_service_sent_on_itself_is_named_by_its_session(tmp_path):
    """An IIS outbound session's message has no ID either: its row says where it went, not
    that it was refused."""
    log = Path(__file__).parent / "corpus" / "iis-smtp" / "ossec-docs-exchange2000-ncsa.log"
    assert ingest([log], tmp_path / "store").exit_code == 0
    with serving(tmp_path / "store", env=NO_TOKEN) as url:
        status, page = get(url, sender="pbourque@*", since="2006-10-01")
    assert status == 200 and total(page) == 1
    assert "no ID: sent by IIS-SMTP to 205.188.158.121" in page
    assert "refused during the SMTP session" not in page
    assert '<span class="badge sent_external">' in page


def test_a_message_refused_before_any_recipient_shows_no_recipient(tmp_path):
    # Yahoo refused the MAIL of an IIS outbound session: no recipient, and the row read "None"
    log = (
        Path(__file__).parent
        / "corpus"
        / "iis-smtp"
        / "lichty-2017-open-relay-yahoo-421-deferral.log"
    )
    assert ingest([log], tmp_path / "store", format="iis-smtp").exit_code == 0
    with serving(tmp_path / "store", env=NO_TOKEN) as url:
        status, page = get(url, sender="MillionairesBlueprint@*", since="2017-01-01")
    assert status == 200 and total(page) == 1
    assert '<span class="badge deferred">' in page and "None" not in page


def test_ctrl_c_stops_the_app_as_its_banner_says(tmp_path):
    # Built: uvicorn stops on Ctrl-C, then raises it again; the command took that for an
    # interrupted job ("error: interrupted ... run the command again", exit 130)
    import signal
    import subprocess
    import time

    from conftest import LOGANALYZER
    from webserver import free_port

    generate(tmp_path / "logs", servers=1, days=1, messages=10, seed=3)
    assert ingest([tmp_path / "logs"], tmp_path / "store").exit_code == 0
    port = free_port()
    args = [LOGANALYZER, "serve", "--store", str(tmp_path / "store"), "--port", str(port)]
    proc = subprocess.Popen(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    # (a run started in the background, nohup or CI, ignores Ctrl-C, and so would the app)
    until = time.monotonic() + 60
    while time.monotonic() < until:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/favicon.ico", timeout=5)
            break
        except OSError:
            time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert err.splitlines()[-1] == "stopped" and "error" not in err


def test_a_window_outside_the_stores_days_says_which_days_it_holds(served):
    """Nothing in a window of another year: the page says which days the store's logs are
    of, as the command does; a window within them that matches nothing says nothing so."""
    url, truth = served
    days = sorted({t["at"][:10] for t in truth if t.get("at")})
    status, page = get(url, recipient="*@fabrikam.com", since="2020-01-01", until="2020-01-02")
    assert status == 200 and total(page) == 0
    said = html.unescape(re.search(r'<p class="la-note" id="held">(.*?)</p>', page)[1])
    assert said.startswith(f"The store's logs are of {days[0]} to ") and said.endswith(" (UTC).")
    _, inside = get(url, recipient="nobody@fabrikam.com", since=days[0])
    assert total(inside) == 0 and 'id="held"' not in inside


def test_an_address_as_outlook_copies_it_a_domain_and_a_half_bracketed_id_are_found(served):
    """The search found nothing for ``Name <a@b>``, ``<a@b>``, ``@domain``, ``domain`` and an
    ID whose closing ``>`` was lost; now they are found, and the page says what was searched."""
    url, truth = served
    t = next(t for t in truth if t["message_id"] and t["sender"] and t["verdict"] == "delivered")
    sender, domain = t["sender"], t["recipient"].split("@")[1]
    by_sender, by_domain = (total(get(url, **f)[1]) for f in
                            ({"sender": sender}, {"recipient": f"*@{domain}"}))  # fmt: skip
    assert by_sender > 0 and by_domain > 0
    for field, given, found, searched in [
        ("sender", f"<{sender}>", by_sender, sender),
        ("sender", f"Anna Jansen <{sender}>", by_sender, sender),
        ("recipient", f"@{domain}", by_domain, f"*@{domain}"),
        ("recipient", domain, by_domain, f"*@{domain}"),
    ]:
        status, page = get(url, **{field: given})
        assert status == 200 and total(page) == found, given
        assert f"match{'es' if found == 1 else ''} {field} {searched}." in html.unescape(page)
    status, page = get(url, q=t["message_id"][:-1])
    assert status == 200 and [mid for mid, _ in rows(page)] == [t["message_id"]]
