"""What the report's charts share: the figure, the colours, the layout, labels from the
logs, bars.

Each section builds its own figures (``sections/<id>.py``) with these. A figure is a
``Chart``: plotly's figure as plain data (traces and layout), which the page writes as JSON
as it is. Building plotly's graph objects instead validated every property: a quarter of a
second for the report's charts, about a tenth of a small day's report. ``Chart.figure()``
gives the graph object (the library's ``report.figures``).

Every text that comes from the logs (addresses, domains, IPs, reasons) is HTML-escaped
before it goes into a figure: plotly renders a few HTML tags (``<b>``, ``<a href>``...) in
labels and hover texts, and decodes entities, so escaped text shows as typed and stays text.
"""

from __future__ import annotations

import html
import json
from collections import Counter
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
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


def _plain(value: Any) -> Any:
    """``value``, a column, an array or a numpy number made plain data (a copy) when set."""
    if isinstance(value, pd.Series | pd.Index | np.ndarray | np.generic):
        return _encode(value)
    return value


def _set(target: dict, props: dict[str, Any]) -> None:
    """Set plotly properties, with its "magic underscores" (``marker_color`` is
    ``marker.color``; plotly's property names have no underscore), merging nested dicts."""
    for key, value in props.items():
        *path, last = key.split("_")
        node = target
        for k in path:
            node = node.setdefault(k, {})
        if isinstance(value, dict):
            _set(node.setdefault(last, {}), value)
        else:
            node[last] = _plain(value)


class Chart:
    """A plotly figure as plain data, with the part of ``go.Figure``'s API the sections use."""

    def __init__(self, *traces: dict[str, Any]) -> None:
        self.data: list[dict[str, Any]] = list(traces)
        self.layout: dict[str, Any] = {}

    def add_trace(self, kind: str, **props: Any) -> Chart:
        trace: dict[str, Any] = {"type": kind}
        _set(trace, props)
        self.data.append(trace)
        return self

    def add_bar(self, **props: Any) -> Chart:
        return self.add_trace("bar", **props)

    def add_scatter(self, **props: Any) -> Chart:
        return self.add_trace("scatter", **props)

    def update_layout(self, **props: Any) -> Chart:
        _set(self.layout, props)
        return self

    def update_xaxes(self, **props: Any) -> Chart:
        return self.update_layout(xaxis=_nested(props))

    def update_yaxes(self, **props: Any) -> Chart:
        return self.update_layout(yaxis=_nested(props))

    def to_plotly_json(self) -> dict[str, Any]:
        return {"data": self.data, "layout": self.layout}

    def to_json(self) -> str:
        """The figure as strict JSON, as plotly writes it (NaN and infinities as null, times
        in ISO format), without importing plotly's encoder (a tenth of a second)."""
        text = json.dumps(self.to_plotly_json(), default=_encode)
        if "NaN" in text or "Infinity" in text:  # maybe in a label only: then a no-op
            text = json.dumps(json.loads(text, parse_constant=lambda _: None))
        return text

    def figure(self) -> go.Figure:
        """The plotly graph object (validated)."""
        import plotly.graph_objects as go

        return go.Figure(self.to_plotly_json())


def _encode(value: Any) -> Any:
    """What ``json`` cannot write itself: numpy values, times, missing values."""
    if isinstance(value, np.ndarray | pd.Series | pd.Index):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Decimal):  # DuckDB's sums
        return float(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON: {type(value).__name__}")


def _nested(props: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    _set(out, props)
    return out


@cache
def _template() -> dict[str, Any]:
    """``TEMPLATE`` as data: read from plotly's package, as ``plotly.io.templates`` reads it
    (without building and validating its graph object)."""
    try:
        path = resources.files("plotly") / "package_data" / "templates" / f"{TEMPLATE}.json"
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):  # another layout of plotly's package
        import plotly.io as pio

        return pio.templates[TEMPLATE].to_plotly_json()


def themed(fig: Chart | go.Figure) -> Chart | go.Figure:
    """``fig`` with ``TEMPLATE``. A graph object (a section of the library's user) gets the
    registered template object the way plotly gives its default template, without validating
    and copying it again for each figure."""
    if isinstance(fig, Chart):
        fig.layout["template"] = _template()
        return fig
    import plotly.io as pio

    template = pio.templates[TEMPLATE]
    fig.layout._validate = False  # what plotly's to_dict does for its default template
    try:
        fig.layout.template = template
    finally:
        fig.layout._validate = fig._validate
    return fig


def layout(fig: Chart, title: str, height: int = 320, **kw) -> Chart:
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


def hour_labels(hours: pd.Series, fmt: str | None = None) -> list[str]:
    """The hours as ``fmt`` (by default ``HH:MM``, ``MM-DD HH:MM`` over several dates); an
    hour the clocks go through twice also names its zone time (``02:00 CEST``, ``02:00 CET``),
    both passes, so neither reads as the plain hour."""
    if fmt is None:
        fmt = "%m-%d %H:%M" if hours.dt.date.nunique() > 1 else "%H:%M"
    labels = hours.dt.strftime(fmt)
    if hours.dt.tz is not None:
        # a wall time that maps to two instants is the one a plain label cannot tell apart
        wall = hours.dt.tz_localize(None)
        twice = wall.dt.tz_localize(hours.dt.tz, ambiguous="NaT", nonexistent="NaT").isna()
        labels = labels.where(~twice, labels + " " + hours.dt.strftime("%Z"))
    return labels.tolist()


def hbar(
    values: pd.Series, labels: list[str], title: str, color: str, hover: list[str] | None = None
) -> Chart:
    """Horizontal bars, one a row; ``labels`` (and ``hover``, the hover's text, by default
    the labels) are escaped already (``text``). A label met again is numbered: ``... (2)``."""
    # each bar is its own category, its row number: labels cut to the same text (two reasons
    # that differ after the cut) were one category, their bars stacked into one
    rows = [str(i) for i in range(len(labels))]
    seen: Counter[str] = Counter()
    ticks = []
    for x in labels:
        seen[x] += 1
        ticks.append(f"{x} ({seen[x]})" if seen[x] > 1 else x)
    fig = Chart().add_bar(
        x=values,
        y=rows,
        orientation="h",
        marker_color=color,
        hovertext=hover or ticks,
        hovertemplate="%{hovertext}: %{x:,}<extra></extra>",
    )
    fig.update_yaxes(
        autorange="reversed", type="category", tickmode="array", tickvals=rows, ticktext=ticks
    )
    return layout(fig, title, height=120 + 24 * len(labels))
