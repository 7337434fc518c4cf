"""The header analysis as one self-contained HTML page: no scripts, every value escaped, the
delays as an inline SVG bar chart drawn here (server side)."""

from __future__ import annotations

from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from markupsafe import Markup

from loganalyzer.times import duration
from loganalyzer.trace.html import CSP, environment

if TYPE_CHECKING:
    from loganalyzer.headers.model import HeaderAnalysis

BAR_AREA = 420  # px for the bars, negative and positive together
LABEL_W = 300
ROW_H = 22


def chart(result: HeaderAnalysis) -> dict | None:
    """Geometry of the delay chart: one bar per hop after the first dated one."""
    rows = [(i, h) for i, h in enumerate(result.hops, 1) if h.delay_s is not None]
    if not rows:
        return None
    neg = max([-h.delay_s for _, h in rows if h.delay_s < 0] + [0.0])
    pos = max([h.delay_s for _, h in rows if h.delay_s > 0] + [0.0])
    scale = BAR_AREA / (neg + pos) if neg + pos else 0.0
    axis = LABEL_W + neg * scale
    bars = []
    for n, (i, h) in enumerate(rows):
        w = max(abs(h.delay_s) * scale, 2.0 if h.delay_s else 0.0)
        x = axis - w if h.delay_s < 0 else axis
        text = duration(h.delay_s) + (" clock skew" if h.clock_skew else "")
        bars.append(
            {
                "y": 6 + n * ROW_H,
                "x": round(x, 1),
                "w": round(w, 1),
                # the host's first label: a whole name (HE1EUR01HT124.eop-EUR01.prod.
                # protection.outlook.com) was cut at the chart's left edge
                "label": f"{i}. {_short(h.by)}",
                "text": text,
                "text_x": round(max(x + w, axis) + 6, 1),
                "color": "#d9534f" if h.clock_skew else "#9aa3ae" if h.delay_s < 0 else "#4a7bd0",
            }
        )
    return {
        "bars": bars,
        "axis": round(axis, 1),
        "width": LABEL_W + BAR_AREA + 170,
        "height": 12 + len(bars) * ROW_H,
        "label_x": LABEL_W - 8,
    }


def _short(host: str | None) -> str:
    """A host as the chart labels it: an IP whole, a name by its first label, at most 36
    characters."""
    host = (host or "?").strip("[]")
    first = host if host.replace(".", "").isdigit() or ":" in host else host.split(".")[0]
    return first if len(first) <= 36 else first[:35] + "\N{HORIZONTAL ELLIPSIS}"


def render_html(result: HeaderAnalysis, fragment: bool = False) -> str:
    """The page; ``fragment`` leaves out the document head (for Jupyter)."""
    zone = ZoneInfo(result.tz)

    def when(t) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if t else ""

    trace_html = Markup(result.trace._repr_html_()) if result.trace else None
    return (
        environment()
        .get_template("headers.html.j2")
        .render(
            r=result,
            fragment=fragment,
            csp=CSP,
            when=when,
            duration=duration,
            chart=chart(result),
            timeline=result.timeline() if result.trace else [],
            trace_html=trace_html,
        )
    )
