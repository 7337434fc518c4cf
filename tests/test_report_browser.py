"""The report page in a real headless Chromium: it draws, and log values stay text.

Chromium is driven over the DevTools protocol (tests/chromium.py). Without a Chromium the
tests skip, except under CI=true, where they fail.
"""

from __future__ import annotations

import re
from html import unescape

import pytest
from logfiles import row, write_log
from reportdata import DAY, synth_store

from loganalyzer.ingest import ingest
from loganalyzer.report import daily_report

HOSTILE_SUBJECT = "<img src=x onerror=alert(1)>"
HOSTILE_SENDER = '"><script>alert(2)</script>@evil.example'
HOSTILE_DOMAIN = "<img src=y onerror=alert(3)>.example"
CHARTS_DRAWN = (
    "Array.from(document.querySelectorAll('.chart'))"
    ".every(c => c.querySelector('.main-svg') !== null)"
)


@pytest.fixture(scope="module")
def synth_page(tmp_path_factory):
    _, store, _ = synth_store(tmp_path_factory)
    report = daily_report(store, DAY)
    path = tmp_path_factory.mktemp("page") / "report.html"
    report.save(path, traces=2)
    return report, path


@pytest.mark.parametrize("width", [1280, 390])
def test_every_section_and_chart_draws_without_errors(browser, synth_page, width):
    report, path = synth_page
    page = browser(path, width)
    assert page.wait_for(CHARTS_DRAWN), "a chart did not draw"
    assert page.problems() == []
    sections = page.evaluate("Array.from(document.querySelectorAll('section')).map(s => s.id)")
    assert sections == [sid for sid, _, _ in report.sections()] + ["rules"]
    charts = page.evaluate("document.querySelectorAll('.chart .main-svg').length")
    assert charts >= len(report.figures) >= 12
    # a phone-wide page scrolls its wide tables inside their boxes, not the whole page
    assert page.evaluate("document.documentElement.scrollWidth") <= width
    link = page.evaluate("document.querySelector('#t-failed a').getAttribute('href')")
    assert link == "report_traces/1.html" and (path.parent / link).is_file()


def test_hostile_values_are_inert(browser, tmp_path, store_dir):
    bad = {"message_subject": HOSTILE_SUBJECT, "sender_address": HOSTILE_SENDER}
    fail = {
        **bad,
        "event_id": "FAIL",
        "source": "ROUTING",
        "recipient_address": f"x@{HOSTILE_DOMAIN}",
        "recipient_status": "550 5.1.1 <b onmouseover=alert(4)>unknown</b>",
    }
    log = write_log(
        tmp_path / "EX01" / "MSGTRK2026030210-1.LOG",
        [row(0, **bad, recipient_address=f"x@{HOSTILE_DOMAIN}"), row(1, **fail)],
    )
    ingest([log], store_dir)
    report = daily_report(store_dir, "2026-03-02")
    assert HOSTILE_DOMAIN in set(report.failures_by_domain["domain"])
    path = tmp_path / "hostile.html"
    report.save(path, traces=0)
    html = path.read_text(encoding="utf-8")
    for raw in (HOSTILE_SUBJECT, "<script>alert(2)", "<img src=y", "<b onmouseover"):
        assert raw not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&#34;&gt;&lt;script&gt;alert(2)&lt;/script&gt;@evil.example" in html
    csp = unescape(re.search(r'http-equiv="Content-Security-Policy" content="([^"]*)"', html)[1])
    assert csp.startswith("default-src 'none';")
    assert re.search(r"; script-src 'sha256-[A-Za-z0-9+/=]+' 'sha256-[A-Za-z0-9+/=]+'$", csp)
    assert "unsafe-eval" not in csp

    page = browser(path)
    assert page.wait_for(CHARTS_DRAWN)
    page.evaluate("document.querySelectorAll('details').forEach(d => d.open = true)")  # unfold
    dom = page.evaluate(
        """({
        imgs: document.querySelectorAll('img').length,
        handlers: document.querySelectorAll('[onerror],[onmouseover]').length,
        scripts: Array.from(document.scripts).filter(s => s.type !== 'application/json').length,
        text: document.body.innerText,
        labels: Array.from(document.querySelectorAll('.chart text')).map(t => t.textContent),
    })"""
    )
    assert dom["imgs"] == 0 and dom["handlers"] == 0 and dom["scripts"] == 2
    assert HOSTILE_SUBJECT in dom["text"] and HOSTILE_SENDER in dom["text"]
    assert HOSTILE_DOMAIN in dom["labels"]  # the chart shows it as text
    assert page.problems() == []
    assert not [e for e in page.events() if e["method"] == "Page.javascriptDialogOpening"]
