"""The web app as the help desk uses it: ``loganalyzer serve`` started as a subprocess on a
synth store, driven in headless Chromium (Playwright on the system's Chromium).

Each recipient's verdict read off the page equals ``truth.jsonl``; hostile values from the logs
stay text; no page logs a console error or a Content-Security-Policy violation. With
``LOGANALYZER_WEB_SCREENSHOT=FILE`` the search page's screenshot is written to FILE (the
README's picture).
"""

from __future__ import annotations

import email
import fnmatch
import json
import os
import re
import shutil
from collections import defaultdict
from urllib.parse import unquote

import pytest
from conftest import IN_CI
from test_output_safety import PAYLOADS, hostile_store  # noqa: F401 - the fixture
from webserver import serving

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate

playwright_api = pytest.importorskip("playwright.sync_api")
NO_TOKEN = {"LOGANALYZER_WEB_TOKEN": ""}
TIMEOUT = 120_000  # ms: a report is computed on the first visit, on a shared machine
#: The verdict table of a trace page: [address, verdict] per row, members included.
VERDICTS = """(() => {
  const h = Array.from(document.querySelectorAll('h2'))
    .filter(e => e.textContent.trim() === 'Verdict per recipient');
  return h.flatMap(e => Array.from(e.nextElementSibling.querySelectorAll('tr[class^="v-"]'))
    .map(tr => [tr.cells[0].innerText.trim(), tr.cells[1].innerText.trim()]));
})()"""


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    base = tmp_path_factory.mktemp("web")
    generate(base / "logs", servers=2, days=2, messages=150, seed=7, headers=3)
    assert ingest([base / "logs"], base / "store").exit_code == 0
    truth = [json.loads(x) for x in (base / "logs" / "truth.jsonl").open(encoding="utf-8")]
    return base / "logs", base / "store", truth


@pytest.fixture(scope="module")
def chromium():
    names = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
    exe = next(filter(None, map(shutil.which, names)), None)
    if exe is None:
        if IN_CI:
            pytest.fail("no chromium: install it (apt-get install -y chromium)")
        pytest.skip("no chromium: install it (apt-get install -y chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield browser
        browser.close()


@pytest.fixture
def page(chromium):
    """A page that records console errors, uncaught exceptions and dialogs."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT)
    pg.problems = []
    pg.on("console", lambda m: m.type in ("error", "warning") and pg.problems.append(m.text))
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    pg.on("dialog", lambda d: (pg.problems.append(f"dialog {d.message}"), d.dismiss()))
    yield pg
    context.close()


@pytest.fixture(scope="module")
def app(synth):
    with serving(synth[1], env=NO_TOKEN) as url:
        yield url


def by_message(truth: list[dict]) -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = defaultdict(dict)
    for t in truth:
        out[t["message_id"]][t["recipient"].lower()] = t["verdict"]
    return out


def page_verdicts(page) -> dict[str, str]:
    return {a.lower(): v.replace(" ", "_") for a, v in page.evaluate(VERDICTS)}


def search(page, url: str, **fields: str) -> None:
    page.goto(url + "/")
    for name, value in fields.items():
        page.fill(f"input[name={name}]", value)
    page.click("button[type=submit]")
    page.wait_for_selector("#total")


def test_search_a_message_id_and_read_its_verdicts(synth, app, page, tmp_path):
    _, _, truth = synth
    messages = by_message(truth)
    plain = {t["message_id"] for t in truth if t["expanded_from"] or t["verdict"] == "expanded"}
    # a message with a failed and a delivered recipient, no list expanded
    mid = next(
        m
        for m, rs in sorted(messages.items())
        if m not in plain and {"failed", "delivered"} <= set(rs.values())
    )
    search(page, app, q=mid)
    assert page.inner_text("#total") == f"1 message matches ID {mid}."
    cells = page.eval_on_selector_all(
        "#results td:nth-child(3) div", "ds => ds.map(d => d.innerText)"
    )
    assert {c.split()[0].lower(): c.split()[1] for c in cells} == messages[mid]
    page.click("a.trace")
    page.wait_for_selector("h2:text('Verdict per recipient')")
    assert page_verdicts(page) == messages[mid]
    # the bounce is linked, and its page is the NDR's trace
    ndrs = {t["ndr_message_id"] for t in truth if t["message_id"] == mid} - {None}
    links = page.eval_on_selector_all("a.ndr", "as => as.map(a => a.textContent)")
    assert set(links) == ndrs and ndrs
    page.click("a.ndr")
    page.wait_for_selector("h2:text('Verdict per recipient')")
    assert page.eval_on_selector_all("a.original", "as => as.map(a => a.textContent)") == [mid]
    assert page.problems == [], page.problems


def test_search_a_recipient_wildcard_pages_through_every_match(synth, app, page, tmp_path):
    _, store, truth = synth
    messages = by_message(truth)
    pattern = "*@fabrikam.com"  # more than one page
    wanted = {m for m, rs in messages.items() if any(fnmatch.fnmatch(r, pattern) for r in rs)}
    ndrs = {t["ndr_message_id"] for t in truth} - {None}
    search(page, app, recipient=pattern)
    total = int(page.inner_text("#total").split()[0].replace(",", ""))
    shot = os.environ.get("LOGANALYZER_WEB_SCREENSHOT")
    page.screenshot(path=shot or str(tmp_path / "search.png"))
    listed = []
    while True:
        listed += page.eval_on_selector_all("a.trace", "as => as.map(a => a.textContent)")
        if not page.query_selector("a[rel=next]"):
            break
        page.click("a[rel=next]")
        page.wait_for_selector("#results")
    assert len(listed) == len(set(listed)) == total > 25
    assert wanted <= set(listed) <= wanted | ndrs
    # newest first: the same messages, the other way round
    page.click("#sort")
    page.wait_for_selector("#results")
    newest = page.eval_on_selector_all("a.trace", "as => as.map(a => a.textContent)")
    assert newest == listed[::-1][: len(newest)]
    # each recipient's verdict on the page: truth's
    expanded = {t["message_id"] for t in truth if t["expanded_from"]}
    rows = page.eval_on_selector_all(
        "#results tbody tr",
        """trs => trs.map(tr => [tr.querySelector('a.trace').textContent,
            Array.from(tr.cells[2].querySelectorAll('div')).map(d => d.innerText)])""",
    )
    assert [mid for mid, _ in rows] == newest
    checked = 0
    for mid, cells in rows:
        if mid in wanted and mid not in expanded:
            assert {c.split()[0].lower(): c.split()[1] for c in cells} == messages[mid], mid
            checked += 1
    assert checked >= 10
    # a latency is never broken over two lines ("0.6" at a line's end, "s" under it)
    latencies = page.eval_on_selector_all(
        "#results .latency", "ss => ss.map(s => [s.innerText, s.getClientRects().length])"
    )
    assert len(latencies) > 10 and all(
        re.fullmatch(r"[\d.]+ (ms|s|min|h|d)", t) for t, _ in latencies
    )
    assert {n for _, n in latencies} == {1}, latencies
    # open a result: its verdicts are truth's
    mid = next(m for m in newest if m in wanted)
    page.click(f"a.trace:text-is('{mid}')")
    page.wait_for_selector("h2:text('Verdict per recipient')")
    shown = page_verdicts(page)
    assert {r: v for r, v in shown.items() if r in messages[mid]} == messages[mid]
    assert page.problems == [], page.problems


def test_paste_a_header_and_read_the_trace_joined(synth, app, page):
    logs, _, truth = synth
    messages = by_message(truth)
    eml = sorted((logs / "headers").glob("*.eml"), key=lambda p: int(p.stem))[0]
    text = eml.read_text(encoding="utf-8")
    mid = email.message_from_string(text)["Message-ID"].strip()
    page.goto(app + "/headers")
    page.fill("textarea[name=text]", text)
    page.click("button[type=submit]")
    page.wait_for_selector("h2:text('Trace from the logs')")
    assert "Hops, oldest first" in page.inner_text("body")
    assert page_verdicts(page) == messages[mid]
    assert page.problems == [], page.problems


def test_open_a_report_and_follow_a_failed_recipient(synth, app, page):
    _, _, truth = synth
    page.goto(app + "/reports")
    days = page.eval_on_selector_all(".cal a", "as => as.map(a => a.textContent.trim())")
    assert days == ["2", "3"]
    page.click(".cal a:text-is('3')")
    page.wait_for_selector("h1")
    assert "2026-03-03" in page.inner_text("h1")
    failed = {
        (t["message_id"], t["recipient"].lower())
        for t in truth
        if t["verdict"] == "failed" and t["at"].startswith("2026-03-03")
    }
    links = page.eval_on_selector_all(
        "a[href^='/trace?id=']", "as => as.map(a => a.getAttribute('href'))"
    )
    assert links
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")
    page.locator("a[href^='/trace?id=']").first.click()
    page.wait_for_selector("h2:text('Verdict per recipient')")
    mid = unquote(page.url.split("id=")[1])
    shown = page_verdicts(page)
    assert {(mid, r) for r, v in shown.items() if v == "failed"} <= failed
    assert any(v == "failed" for v in shown.values())
    assert page.problems == [], page.problems


def test_hostile_values_stay_text(hostile_store, page):  # noqa: F811 - the fixture
    with serving(hostile_store, env=NO_TOKEN) as url:
        search(page, url, subject="<")
        dom = """(foreign => ({
            scripts: document.scripts.length,
            handlers: Array.from(document.querySelectorAll('*')).filter(e =>
                Array.from(e.attributes).some(a => a.name.startsWith('on'))).length,
            foreign: document.querySelectorAll(foreign).length,
            js: Array.from(document.querySelectorAll('[href],[src]')).filter(e =>
                (e.getAttribute('href') || e.getAttribute('src')).includes('javascript:')).length,
            text: document.body.innerText,
        }))"""
        # the report draws its charts in SVG; a log's value adds no element anywhere
        tags, report_tags = "img,svg,iframe,math,object,embed", "img,iframe,math,object,embed"
        seen = page.evaluate(dom, tags)
        assert seen["scripts"] == seen["handlers"] == seen["foreign"] == seen["js"] == 0
        shown = [p for p in PAYLOADS if "<" in p]
        assert all(p.strip() in seen["text"] for p in shown[:5])
        for i in range(len(PAYLOADS)):
            page.goto(f"{url}/trace?id=<m{i}@contoso.com>")
            seen = page.evaluate(dom, tags)
            assert seen["scripts"] == seen["handlers"] == seen["foreign"] == seen["js"] == 0, i
        page.goto(url + "/reports")
        page.click(".cal a")
        page.wait_for_selector("h1")
        seen = page.evaluate(dom, report_tags)
        assert seen["handlers"] == seen["foreign"] == seen["js"] == 0
    assert page.problems == [], page.problems


def test_store_status_shows_each_servers_newest_row(synth, app, page):
    from loganalyzer import Store

    _, store, _ = synth
    newest = Store(store).sql(
        "select server, 'tracking' as log, max(date_time) as t from tracking group by all"
        " union all select server, 'smtp', max(date_time) from smtp group by all"
    )
    want = {(r.server, r.log): r.t.strftime("%Y-%m-%d %H:%M:%S UTC") for r in newest.itertuples()}
    page.goto(app + "/status")
    rows = page.eval_on_selector_all(
        "#servers tbody tr", "trs => trs.map(tr => Array.from(tr.cells).map(c => c.innerText))"
    )
    assert {(r[0], r[1]): r[3] for r in rows} == want
    assert {r[5] for r in rows} == {"none"}  # two whole days on each server
    assert page.inner_text("#quarantined") == "0"
    assert page.problems == [], page.problems


def test_a_list_keeps_its_message_ids_readable(app, page):
    """A long sender (a bounce's system mailbox) took the sender column as wide as itself and
    left the Message-IDs a dozen characters a line: both fold, each column keeps a width."""
    search(page, app, sender="*")
    widths = page.eval_on_selector_all(
        "#results tbody tr:first-child td",
        "ts => ts.map(t => t.getBoundingClientRect().width)",
    )
    font = page.evaluate("parseFloat(getComputedStyle(document.body).fontSize)")
    assert widths[4] >= 13 * font and widths[1] <= 19 * font, widths
    assert page.problems == [], page.problems
