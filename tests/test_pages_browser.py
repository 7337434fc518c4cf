"""Trace pages and the report as a reader sees them: their rendered text in headless Chromium.

Each page is written by the installed ``loganalyzer`` command, opened in Chromium (driven over
the DevTools protocol, tests/chromium.py) and read through ``innerText``, which is what a
person sees, line by line. A screenshot of each page is left in the test's folder. Without a
Chromium the tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
from chromium import Page
from conftest import LOGANALYZER, open_in_chromium
from reportdata import NDR_SENDER, synth_store

import eventcodes
from loganalyzer.report.charts import COLORS

#: A message of the synth day: one recipient fails (5.1.1) on EX03, two are delivered.
FAILED = "<cb90b7e3be42542bbddf532fce153a4e@ex03.contoso.com>"
#: A list expanded on EX02; one member is sent out with ``250 2.6.0 ... Queued mail``.
LISTED = "<be0069aa90336fa30c023c04f6de2b7b@ex02.contoso.com>"
#: One recipient still deferred (4.4.1) on EX01, one delivered on EX04.
DEFERRED = "<1826746480515c0ae58042f91f3d127e@ex01.contoso.com>"

_ENHANCED = re.compile(r"\b[245]\.\d{1,3}\.\d{1,3}\b")
#: Words of a failure's explanation (the meanings of 4.X.X and 5.X.X codes).
_FAILURE = re.compile(
    r"undeliverable|fail|problem|reject|refus|denied|does not exist|not found|could not|"
    r"cannot|bounce|expired|blocked|too long|unknown user|user unknown",
    re.IGNORECASE,
)
_TIME = re.compile(r"\b\d\d:\d\d:\d\d\.\d{3}\b")
OPEN_ALL = "document.querySelectorAll('details').forEach(d => d.open = true)"


def success_explained_as_failure(text: str) -> list[str]:
    """Lines where a 2.X.X status is followed by a failure's explanation (before the next
    status code, on its line or the next one: a meaning sits under its code)."""
    lines = text.split("\n")
    out = []
    for i, line in enumerate(lines):
        for m in _ENHANCED.finditer(line):
            if not m.group().startswith("2."):
                continue
            after = line[m.end() :] + "\n" + (lines[i + 1] if i + 1 < len(lines) else "")
            following = _ENHANCED.search(after)
            if following:
                after = after[: following.start()]
            if _FAILURE.search(after):
                out.append(f"{line} / {lines[i + 1] if i + 1 < len(lines) else ''}".strip())
    return out


#: Every element's title (a tooltip) with the text it explains.
TITLES = (
    "Array.from(document.querySelectorAll('[title]'))"
    ".map(e => e.textContent.trim() + ' ' + e.getAttribute('title'))"
)


def misread_successes(page: Page) -> list[str]:
    """2.X.X statuses explained as failures in the page's text or its tooltips."""
    text = page.evaluate("document.body.innerText")
    tips = [t for t in page.evaluate(TITLES) if _ENHANCED.search(t)]
    return success_explained_as_failure(text) + success_explained_as_failure("\n".join(tips))


def lines_of(page: Page) -> list[str]:
    """The page's rendered lines, whitespace runs as one space."""
    return [" ".join(x.split()) for x in page.evaluate("document.body.innerText").split("\n")]


def loganalyzer(*args: str) -> subprocess.CompletedProcess:
    exe = LOGANALYZER
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=300, check=False
    )


def test_the_check_finds_a_success_explained_as_a_failure():
    bad = "250 2.6.0 <x@y> Queued mail for delivery (Something about the message content made "
    assert success_explained_as_failure(bad + "it undeliverable.)")
    assert success_explained_as_failure("x 250 2.6.0 Queued\nThe message could not be sent")
    assert not success_explained_as_failure("250 2.6.0 Queued mail for delivery (success)")
    assert not success_explained_as_failure("250 2.1.5 OK\n550 5.1.1 user unknown; failed")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    return synth_store(tmp_path_factory)[1]


def _trace_page(store: Path, message_id: str, folder: Path) -> tuple[Path, dict]:
    """The trace page the command writes, and the trace as JSON."""
    page = folder / "trace.html"
    done = loganalyzer("trace", message_id, "--store", store, "--html", page)
    assert done.returncode == 0, done.stderr
    done = loganalyzer("trace", message_id, "--store", store, "--json")
    assert done.returncode == 0, done.stderr
    return page, json.loads(done.stdout)["messages"][0]


def _conversation_lines(message: dict) -> list[str]:
    """Each SMTP log line of the trace as the page shows it (time, direction, data)."""
    out = []
    for e in message["events"]:
        for c in e["conversation"]:
            text = f"{c['date_time'][11:23]} {c['event'] or ''} {c['data'] or ''}"
            if c.get("context"):
                text += f" [{c['context']}]"
            out.append(" ".join(text.split()))
    return out


@pytest.fixture(scope="module")
def failed_trace(store, tmp_path_factory) -> tuple[Path, dict]:
    return _trace_page(store, FAILED, tmp_path_factory.mktemp("pages-trace"))


def test_trace_page_smtp_lines_one_per_line_folded_under_each_hop(browser, failed_trace, tmp_path):
    path, message = failed_trace
    page = browser(path)
    folded = page.evaluate(
        "[document.querySelectorAll('details').length, "
        "document.querySelectorAll('details[open]').length]"
    )
    assert folded == [sum(bool(e["conversation"]) for e in message["events"]), 0]
    conversation = _conversation_lines(message)
    assert len(conversation) >= 40
    assert not set(conversation) & set(lines_of(page))  # folded away until opened
    page.evaluate(OPEN_ALL)
    lines = lines_of(page)
    assert [x for x in conversation if x not in lines] == []
    assert [x for x in lines if len(_TIME.findall(x)) > 1] == []  # no two log lines run together
    assert page.problems() == []  # no CSP violation, no error
    page.evaluate("document.querySelectorAll('details').forEach((d, i) => d.open = i < 1)")
    page.screenshot(tmp_path / "trace.png")


def test_trace_page_opens_with_the_journey(browser, failed_trace):
    page = browser(failed_trace[0])
    lines = lines_of(page)
    journey = [
        "former.employee@fabrikam.com sender's mailbox → EX03 ✗ → failed 5.1.1",
        "lukas.laurent@contoso.com sender's mailbox → EX03 → EX04 → mailbox",
        "zoe.dubois@fabrikam.com sender's mailbox → EX03 → mailbox",
    ]
    assert [x for x in lines if x in journey] == journey
    before = lines.index(journey[0])
    assert before < lines.index("Verdict per recipient") < lines.index("Timeline (UTC)")


def test_trace_page_gives_an_event_kind_meaning_once(browser, failed_trace):
    path, message = failed_trace
    page = browser(path)
    receive = eventcodes.lookup("RECEIVE").meaning
    rows = sum(e["event_id"] == "RECEIVE" for e in message["events"])
    assert rows >= 2 and page.evaluate("document.body.innerText").count(receive) == 1
    legend = page.evaluate("document.querySelector('dl.legend').innerText")
    assert f"RECEIVE (Received)\n{receive}" in legend
    assert (
        page.evaluate(
            "Array.from(document.querySelectorAll('td[title]')).filter(t => "
            "t.innerText.startsWith('RECEIVE')).map(t => t.title)"
        )
        == [receive] * rows
    )


@pytest.mark.parametrize("message_id", [FAILED, LISTED, DEFERRED], ids=["fail", "list", "defer"])
def test_no_success_reads_as_a_failure_in_a_trace(browser, store, tmp_path, message_id):
    path, _ = _trace_page(store, message_id, tmp_path)
    page = browser(path)
    assert misread_successes(page) == []  # a 2.X.X code's meaning depends on its class
    assert page.problems() == []
    page.screenshot(tmp_path / "trace.png")


def test_trace_page_journeys_of_a_list_and_a_deferral(browser, store, tmp_path):
    want = {
        LISTED: [
            "project-phoenix@contoso.com sender's mailbox → EX02 → list expanded (5 members)",
            "petra.novak@contoso.com sender's mailbox → EX02 → mailbox",
            "felix.costa@contoso.com sender's mailbox → EX02 → mailbox",
            "petra.becker@contoso.com sender's mailbox → EX02 → EX04 → mailbox",
            "christian.overgard@fabrikam.com sender's mailbox → EX02 → EX03 → mailbox",
            "francois.li@adatum.com sender's mailbox → EX02 → adatum-com.mail.eo.example.net",
        ],
        DEFERRED: [
            "francois.li@adatum.com sender's mailbox → EX01 … → deferred 4.4.1",
            "paul.schafer2@contoso.com sender's mailbox → EX01 → EX04 → mailbox",
        ],
    }
    for n, (message_id, journey) in enumerate(want.items()):
        folder = tmp_path / str(n)
        folder.mkdir()
        path, _ = _trace_page(store, message_id, folder)
        rows = browser(path).evaluate(
            "Array.from(document.querySelectorAll('table.journey tr')).slice(1)"
            ".map(r => r.innerText.split(/\\s+/).join(' '))"
        )
        assert rows == journey


@pytest.fixture(scope="module")
def report_page(store, tmp_path_factory) -> Path:
    """Four days over the synth store's two: 2026-03-04 and 05 are empty."""
    path = tmp_path_factory.mktemp("pages-report") / "report.html"
    done = loganalyzer(
        "report", "daily", "--store", store, "--date", "2026-03-05", "--days", "4",
        "--out", path, "--traces", "2",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return path


CHARTS_DRAWN = (
    "Array.from(document.querySelectorAll('.chart'))"
    ".every(c => c.querySelector('.main-svg') !== null)"
)
#: Each chart's series as drawn: figure id, series name, colour(s), x values.
SERIES = """Array.from(document.querySelectorAll('.chart')).flatMap(c => c._fullData.map(t => [
    c.id, t.name, (t.type === 'scatter' ? t.line.color : t.marker.color), Array.from(t.x)]))"""
#: How many pixels above the bottom of the latency chart its median p50 is drawn.
P50_HEIGHT = """(() => {
    const el = document.querySelector('[id$="-fig-latency_hourly"]');
    const y = el._fullLayout.yaxis;
    const p50 = Array.from(el._fullData.find(t => t.name === 'p50').y).filter(v => v > 0)
        .sort((a, b) => a - b);
    const v = p50[Math.floor(p50.length / 2)];
    return [y.type, y._length - y.l2p(y.type === 'log' ? Math.log10(v) : v)];
})()"""


@pytest.fixture(scope="module")
def report(report_page, tmp_path_factory):
    """The report open in Chromium once for the tests that read it (none changes it)."""
    page = open_in_chromium(report_page, tmp_path_factory.mktemp("pages-report-profile"))
    try:
        assert page.wait_for(CHARTS_DRAWN), "a chart did not draw"
        assert page.problems() == []  # no script error, no Content-Security-Policy violation
        yield page
    finally:
        page.close()


def test_report_explains_no_success_as_a_failure(report, tmp_path):
    assert misread_successes(report) == []
    report.screenshot(tmp_path / "report.png")


def test_report_groups_failed_recipients_by_reason_folded(report):
    groups = report.evaluate(
        "Array.from(document.querySelectorAll('#t-failed details.group'))"
        ".map(d => [d.open, d.querySelector('summary').innerText])"
    )
    counts = [int(s.split(" ", 1)[0].replace(",", "")) for _, s in groups]
    text = report.evaluate("document.body.innerText")
    failed = int(re.search(r"([\d,]+)\nrecipients failed", text)[1].replace(",", ""))
    assert len(groups) >= 4 and not any(o for o, _ in groups)
    assert sum(counts) == failed and counts == sorted(counts, reverse=True)
    assert groups[0][1].startswith(f"{counts[0]} × 550 5.1.1 RESOLVER.ADR.RecipNotFound; not")


def test_report_counts_system_senders_apart(report):
    system = report.evaluate("document.getElementById('t-system_senders').innerText")
    assert NDR_SENDER in system
    assert NDR_SENDER not in report.evaluate("document.getElementById('t-top_senders').innerText")


def test_report_draws_p50_clear_of_the_axis_beside_p99(report):
    # p50 (about a second) beside p99 (up to hours): on a linear axis p50 lay on the axis,
    # under a pixel high; a log axis lifts it
    axis, height = report.evaluate(P50_HEIGHT)
    assert axis == "log" and height >= 15


def test_report_gives_each_outcome_one_colour_in_every_chart(report):
    outcome_colours = set(COLORS.values())
    series = report.evaluate(SERIES)
    assert len(series) >= 25
    for fig, name, colour, x in series:
        if fig.endswith("-fig-outcomes"):
            assert colour == [COLORS[bar] for bar in x]
        elif name in COLORS:
            assert colour == COLORS[name], (fig, name)
        elif fig.endswith(("failures_by_status", "failures_by_domain")):
            assert colour == COLORS["failed"]
        elif fig.endswith("deferral_reasons"):
            assert colour == COLORS["deferred"]
        else:  # not an outcome: none of their colours
            assert colour not in outcome_colours, (fig, name, colour)


@pytest.mark.parametrize("table", ["hourly", "smtp_hourly"])
def test_report_folds_empty_hours_of_several_days(report, table):
    rows = report.evaluate(
        f"Array.from(document.querySelectorAll('#t-{table} tbody > tr')).map(r => r.innerText)"
    )
    assert len(rows) == 2 * 24 + 1
    assert rows[-1] == "2026-03-04 00:00 to 2026-03-05 23:00: 48 hours, all zero"


def test_report_trace_pages_read_line_by_line(browser, report_page, tmp_path):
    path = report_page.parent / "report_traces" / "1.html"
    page = browser(path)
    assert misread_successes(page) == []
    page.evaluate(OPEN_ALL)
    lines = lines_of(page)
    shown = [" ".join(x.split()) for x in page.evaluate(
        "Array.from(document.querySelectorAll('.conv > div')).map(d => d.innerText)"
    )]  # fmt: skip
    assert len(shown) >= 20 and [x for x in shown if x not in lines] == []
    assert [x for x in lines if len(_TIME.findall(x)) > 1] == []
    assert page.problems() == []
    page.screenshot(tmp_path / "report-trace.png")


def test_trace_page_fits_a_phone(browser, failed_trace):
    page = browser(failed_trace[0], width=390)
    page.evaluate(OPEN_ALL)
    # wide tables and conversations scroll inside their boxes, not the whole page
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.problems() == []
