"""The report as one self-contained HTML page, and the trace pages of its failed messages.

The page works offline: plotly.js is inlined once; each figure is a JSON data block
(``<script type="application/json">``, which never runs) read by one small script. Every value
from the logs reaches the page through Jinja2's autoescape or as JSON with ``<``, ``>`` and
``&`` written as ``\\u`` escapes, so it cannot close a tag or a script.

Content-Security-Policy: ``script-src`` lists the SHA-256 hashes of the two inline scripts
(plotly.js and the loader), so no other script can run, not even an injected one, and
neither ``'unsafe-inline'`` nor ``'unsafe-eval'`` is needed for scripts. ``style-src`` allows
inline styles: the page's own style sheet and the ones plotly creates at run time.
Everything else (network, frames, forms, plugins) is refused.

In a notebook (a fragment, no policy) a report carries plotly.js only where ``notebook`` says
it must; the others draw with the copy an earlier output carries.
"""

from __future__ import annotations

import base64
import hashlib
import re
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

import pandas as pd
from jinja2 import Environment

from loganalyzer.pages import page_environment
from loganalyzer.report import sections as registry
from loganalyzer.report.charts import Chart, hour_labels
from loganalyzer.report.notebook import carries_plotly
from loganalyzer.report.sections import Report, SectionResult

if TYPE_CHECKING:
    import plotly.graph_objects as go

#: Draws every figure of the page from its JSON block (run once, after plotly.js).
LOADER = """(function () {
  document.querySelectorAll(".chart[data-figure]").forEach(function (el) {
    var block = document.getElementById(el.getAttribute("data-figure"));
    var fig = JSON.parse(block.textContent);
    el.style.height = (fig.layout.height || 320) + "px";
    Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
  });
})();"""

#: In a notebook (no Content-Security-Policy there): draws the charts of one report, now or once
#: the plotly.js that an earlier output carries has run (a reopened notebook draws its outputs
#: in order, and a report may sit above the one that carries it); then drops the note that
#: says why charts are missing.
NOTEBOOK_LOADER = """(function () {
  function draw() {
    document.querySelectorAll('.chart[data-figure^="%(prefix)s-"]').forEach(function (el) {
      var fig = JSON.parse(document.getElementById(el.getAttribute("data-figure")).textContent);
      el.style.height = (fig.layout.height || 320) + "px";
      Plotly.newPlot(el, fig.data, fig.layout, {responsive: true, displaylogo: false});
    });
    var note = document.getElementById("%(prefix)s-no-plotly");
    if (note) note.remove();
  }
  if (window.Plotly) draw(); else window.addEventListener("%(event)s", draw, {once: true});
})();"""
#: Run right after plotly.js in the output that carries it: the reports waiting for it draw.
PLOTLY_LOADED = 'window.dispatchEvent(new Event("%(event)s"));'
_PLOTLY_EVENT = "loganalyzer-plotly-loaded"

CSP_BASE = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data: blob:; font-src data:; "
    "base-uri 'none'; form-action 'none'"
)

#: The shortest run of all-zero hours that folds.
FOLD_MIN = 3
_SECONDS = frozenset({"latency_s", "p50", "p90", "p99", "max", "oldest_age_s", "longest_wait_s"})
_BYTES = frozenset({"bytes", "bytes_in"})


def _hash(script: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"


@cache
def _plotly_js() -> tuple[str, str]:
    """plotly.js (the offline bundle) and its CSP hash."""
    from plotly.offline import get_plotlyjs

    js = get_plotlyjs()
    if "</script" in js.lower():  # would end the inline script early
        raise RuntimeError("this plotly.js bundle cannot be inlined")
    return js, _hash(js)


#: A column's unit as its name ends, as a heading says it: ``latency_s`` -> "latency (s)".
_UNITS = {"_s": "s", "_ms": "ms", "_pct": "%", "_mb": "MB"}


def label(column: object) -> str:
    """A table column's heading: its words, its unit in brackets ("oldest age s" read as
    a word)."""
    name = str(column)
    for end, unit in _UNITS.items():
        if name.endswith(end) and len(name) > len(end):
            return f"{name[: -len(end)].replace('_', ' ')} ({unit})"
    return name.replace("_", " ")


@cache
def environment() -> Environment:
    return page_environment(cell=cell, label=label)


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return str(n)


def seconds(s: float) -> str:
    if abs(s) < 60:
        return f"{s:,.1f} s" if abs(s) < 10 else f"{s:,.0f} s"
    if abs(s) < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{int(s // 3600)} h {int(s % 3600 // 60)} min"


def cell(value: object, column: str) -> str:
    """A table cell as text (escaped later by the template); a table's hours come labelled
    (``table_rows``)."""
    if value is None or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if pd.api.types.is_bool(value):
        return "yes" if value else ""
    if column in _BYTES:
        return human_bytes(float(value))
    if column in _SECONDS:
        return seconds(float(value))
    if column in ("tls_share", "share", "change_pct"):
        return f"{float(value):+.0%}" if column == "change_pct" else f"{float(value):.0%}"
    if isinstance(value, int) or (hasattr(value, "is_integer") and float(value).is_integer()):
        try:
            return f"{int(value):,}"
        except (TypeError, ValueError):
            pass
    if isinstance(value, float):
        return f"{value:,.3f}"
    return str(value)


@dataclass
class Zeros:
    """A run of all-zero hours shown as one folded row."""

    first: str
    last: str
    hours: list[str]


def table_rows(df: pd.DataFrame, name: str, days: int) -> list[tuple | Zeros]:
    """The rows of a table as shown, its hours labelled (without their date in a one-day
    report): in a report of several days, each run of at least ``FOLD_MIN`` hours whose
    figures are all zero becomes one ``Zeros``."""
    labels = df
    if "hour" in df.columns and pd.api.types.is_datetime64_any_dtype(df["hour"]):
        fmt = "%H:%M" if days == 1 else "%Y-%m-%d %H:%M"
        labels = df.assign(hour=hour_labels(df["hour"], fmt))
    rows = list(labels.itertuples(index=False, name=None))
    if not registry.TABLES[name].folded or days < 2 or "hour" not in df.columns:
        return rows
    figures = df.drop(columns="hour").select_dtypes("number")
    zero = (figures.fillna(0) == 0).all(axis=1).tolist() if len(figures.columns) else []
    out: list[tuple | Zeros] = []
    i = 0
    while i < len(rows):
        j = i
        while j < len(rows) and zero[j]:
            j += 1
        if j - i >= FOLD_MIN:
            hours = labels["hour"].iloc[i:j].tolist()
            out.append(Zeros(hours[0], hours[-1], hours))
            i = j
        else:
            out.append(rows[i])
            i += 1
    return out


def _figure_json(fig: Chart | go.Figure) -> str:
    """A figure as JSON that is inert inside a script element."""
    if isinstance(fig, Chart):
        text = fig.to_json()
    else:  # a graph object (a section of the library's user)
        from plotly.io import to_json

        text = to_json(fig, validate=False)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e")


class Page(Report, Protocol):
    """What the page reads of a ``DailyReport``."""

    store: str
    redacted: bool
    rules: dict[str, str]

    def results(self, figures: bool = True) -> list[SectionResult]: ...
    def sections(self) -> list[tuple[str, str, list[str]]]: ...
    def attention(self) -> list[str]: ...
    def notices(self, trace_pages: int | None = None) -> list[str]: ...


def render(
    report: Page,
    charts: bool = True,
    traces: dict[str, str] | None = None,
    fragment: bool = False,
) -> str:
    """The page (``fragment``: without the document head, for Jupyter)."""
    prefix = f"la-{uuid.uuid4().hex[:8]}" if fragment else "la"
    results = report.results(figures=charts)
    figures: dict[str, list[tuple[str, str]]] = {
        r.id: [(f"{prefix}-fig-{name}", _figure_json(fig)) for name, fig in r.figures.items()]
        for r in results
        if r.figures
    }
    scripts: list[str] = []
    js = hashes = ""
    if figures and fragment:  # a notebook: plotly.js once per notebook where that is safe
        names = {"prefix": prefix, "event": _PLOTLY_EVENT}
        if carries_plotly():
            scripts = [_plotly_js()[0], PLOTLY_LOADED % names]
        scripts.append(NOTEBOOK_LOADER % names)
    elif figures:
        js, plotly_hash = _plotly_js()
        scripts = [js, LOADER]
        hashes = f"{plotly_hash} {_hash(LOADER)}"
    csp = CSP_BASE + (f"; script-src {hashes}" if hashes else "; script-src 'none'")
    extra: dict[str, Any] = {}
    for s in registry.SECTIONS:  # what the sections' own fragments read
        if s.page:
            extra.update(s.page(report))
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            **extra,
            r=report,
            sections=report.sections(),
            results=results,
            specs=registry.TABLES,
            figures=figures,
            scripts=scripts,
            csp=csp,
            fragment=fragment,
            prefix=prefix,
            traces=traces or {},
            attention=report.attention(),
            rules=report.rules,
            rows=lambda name: table_rows(report.metrics[name], name, report.period.days),
        )
    )


#: The names of the trace pages a report writes in its folder (``1.html``, ``2.html``...):
#: the files a later report there replaces; no other file in the folder is touched.
TRACE_PAGE = re.compile(r"[0-9]+\.html")


def trace_folder(path: Path) -> Path:
    """The folder of the trace pages of the report page ``path``: ``<stem>_traces``."""
    return path.parent / f"{path.stem}_traces"


def write_traces(
    report: Page, folder: Path, limit: int, link: str
) -> tuple[dict[str, str], list[str]]:
    """Trace pages of the first ``limit`` failed messages written to ``folder/<n>.html``;
    returns the links (into the folder named ``link`` beside the page) by message ID and the
    names of the files written."""
    from loganalyzer.trace import trace
    from loganalyzer.trace.model import TraceResult

    failed = report.metrics["failed"].dropna(subset=["message_id"])
    wanted = list(dict.fromkeys(failed["message_id"]))[:limit]
    if not wanted:
        return {}, []
    found = {}
    rows = failed[failed["message_id"].isin(wanted)]
    for event_id, group in rows.groupby("event_id", observed=True):
        # one batch per failure event, in the window up to the last listed failure
        last = group["date_time"].max() + pd.Timedelta(milliseconds=1)
        result = trace(
            report.store,
            since=report.period.start.isoformat(),
            until=min(last, pd.Timestamp(report.period.end)).isoformat(),
            event_id=str(event_id),
            all=True,
            limit=len(set(group["message_id"])) + 50,
            tz=report.period.tz,
        )
        for m in result.messages:
            if m.message_id in wanted and m.message_id not in found:
                found[m.message_id] = m
    links, written = {}, []
    for n, mid in enumerate(wanted, 1):
        m = found.get(mid)
        if m is None:
            continue
        name = f"{n}.html"
        result = TraceResult({"text": mid, "kind": "message_id"}, [], [m], report.period.tz)
        (folder / name).write_text(result.to_html(), encoding="utf-8")
        links[mid] = f"{quote(link)}/{name}"
        written.append(name)
    return links, written
