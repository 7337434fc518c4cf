"""What the report's charts share: the colours, the layout, labels from the logs, bars.

Each section builds its own figures (``sections/<id>.py``) with these.

Every text that comes from the logs (addresses, domains, IPs, reasons) is HTML-escaped
before it goes into a figure: plotly renders a few HTML tags (``<b>``, ``<a href>``...) in
labels and hover texts, and decodes entities, so escaped text shows as typed and stays text.
"""

from __future__ import annotations

import html

import pandas as pd
import plotly.graph_objects as go

#: The one colour of each outcome, in every chart (and no other series uses these colours).
COLORS = {
    "received": "#4c78a8",
    "delivered": "#54a24b",
    "sent out": "#72b7b2",
    "failed": "#e45756",
    "deferred": "#f58518",
    "dropped": "#9d755d",
    "quarantined": "#b279a2",
}
COLORS |= {
    "messages received": COLORS["received"],
    "deferrals": COLORS["deferred"],
    "still deferred": COLORS["deferred"],
}
#: Series that are not outcomes: shades of grey, darkest first.
NEUTRAL = ("#3b4450", "#7b8794", "#b8c0c9")


def text(value: object, width: int = 48) -> str:
    """A label from the logs: shortened, HTML-escaped (plotly shows it as typed)."""
    s = "" if value is None or value is pd.NA else str(value)
    if len(s) > width:
        s = s[: width - 1] + "\N{HORIZONTAL ELLIPSIS}"
    return html.escape(s, quote=False)


#: The charts' plotly template (``themed`` gives it).
TEMPLATE = "plotly_white"


def themed(fig: go.Figure) -> go.Figure:
    """``fig`` with ``TEMPLATE``, given the way plotly gives its default template: the
    registered template object (validated once) without validating and copying it again for
    each figure (15 ms each, a tenth of the page)."""
    import plotly.io as pio

    template = pio.templates[TEMPLATE]
    fig.layout._validate = False  # what plotly's to_dict does for its default template
    try:
        fig.layout.template = template
    finally:
        fig.layout._validate = fig._validate
    return fig


def layout(fig: go.Figure, title: str, height: int = 320, **kw) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0, "font": {"size": 15}},
        height=height,
        margin={"l": 10, "r": 10, "t": 48, "b": 10},
        font={"family": "system-ui, sans-serif", "size": 12},
        legend={"orientation": "h", "y": 1.02, "yanchor": "bottom", "x": 1, "xanchor": "right"},
        **kw,
    )
    fig.update_xaxes(automargin=True)
    fig.update_yaxes(automargin=True)
    return fig


def hour_labels(hours: pd.Series) -> list[str]:
    """``HH:MM`` (with the date over several days); a repeated hour gets its zone name."""
    multi = hours.dt.date.nunique() > 1
    out, seen = [], set()
    for t in hours:
        label = t.strftime("%m-%d %H:%M" if multi else "%H:%M")
        if label in seen:
            label += f" {t.tzname()}"
        seen.add(label)
        out.append(label)
    return out


def hbar(values: pd.Series, labels: list[str], title: str, color: str) -> go.Figure:
    """Horizontal bars; ``labels`` are escaped already (``text``)."""
    fig = go.Figure(go.Bar(x=list(values), y=labels, orientation="h", marker_color=color))
    fig.update_yaxes(autorange="reversed", type="category")
    return layout(fig, title, height=120 + 24 * len(labels))
