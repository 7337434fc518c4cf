"""A trace as one self-contained HTML page (no scripts; every log value escaped)."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo

from jinja2 import Environment

from loganalyzer.pages import page_environment
from loganalyzer.trace.model import iso

#: Page policy: no scripts, no network; inline styles only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"


@cache
def environment() -> Environment:
    return page_environment(iso=iso)


def render_html(result, fragment: bool = False) -> str:
    """The trace page; ``fragment`` leaves out the document head (for Jupyter)."""
    zone = ZoneInfo(result.tz)

    def when(t) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if t else ""

    return (
        environment()
        .get_template("trace.html.j2")
        .render(result=result, fragment=fragment, csp=CSP, when=when)
    )
