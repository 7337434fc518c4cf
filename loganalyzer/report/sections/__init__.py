"""The report's sections, one module each, and their order on the page.

A section module declares ``SECTION``, a ``Section`` (``base.py``): its id and title; its
tables (name, title, how the page shows them); ``compute``, the queries that make its tables
from the period ``load`` read into DuckDB; ``charts``, its plotly figures; and where it needs
them a note under its title, lines for "Needs attention", its counting rules, its place with
``problems_first`` and a template fragment for a table the generic one cannot show.

Adding a section is one new module ``sections/<id>.py`` with its ``SECTION`` and one line in
``SECTIONS`` below (its place on the page): ``daily_report`` computes its tables, the
DailyReport holds them (``metrics``, ``--json``), and the page shows its charts and tables.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd

from loganalyzer.report.charts import themed
from loganalyzer.report.sections import (
    changes,
    clients,
    deferrals,
    failures,
    history,
    latency,
    quality,
    queues,
    rejected,
    smtp,
    tls,
    top,
    totals,
    traffic,
    vip,
)
from loganalyzer.report.sections.base import Inputs, Report, Section, SectionResult, Table

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from loganalyzer.report.charts import Chart

__all__ = ["SECTIONS", "TABLES", "Inputs", "Report", "Section", "SectionResult", "Table"]

#: The sections in their default order on the page.
SECTIONS: tuple[Section, ...] = (
    vip.SECTION,
    totals.SECTION,
    changes.SECTION,
    traffic.SECTION,
    failures.SECTION,
    deferrals.SECTION,
    queues.SECTION,
    latency.SECTION,
    top.SECTION,
    rejected.SECTION,
    smtp.SECTION,
    tls.SECTION,
    clients.SECTION,
    quality.SECTION,
    history.SECTION,
)
#: Every section's tables, by name.
TABLES: dict[str, Table] = {t.name: t for s in SECTIONS for t in s.tables}


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    """Every section's tables, by name, in the order of the sections."""
    out: dict[str, pd.DataFrame] = {}
    for s in SECTIONS:
        out.update(s.compute(q))
    return out


def ordered(problems_first: bool = False) -> list[Section]:
    """The sections in the order the page shows them: with ``problems_first`` those with a
    ``problems`` place first (lower first), then the others in their default order."""
    if not problems_first:
        return list(SECTIONS)
    ranked = sorted((s for s in SECTIONS if s.problems is not None), key=lambda s: s.problems)
    return ranked + [s for s in SECTIONS if s.problems is None]


def figures(r: Report) -> dict[str, dict[str, Chart | go.Figure]]:
    """Each section's charts that have data, by section id and name."""
    out = {s.id: s.charts(r) if s.charts else {} for s in SECTIONS}
    for figs in out.values():
        for fig in figs.values():
            themed(fig)
    return out


def attention(r: Report) -> list[str]:
    """What needs a look: the sections' lines, by their ``attention_rank``, after the line
    that says the period's tracking logs are missing (``smtp.no_tracking``): the lines that
    count from them read in its light (a deferral carried over from the day before)."""
    out = [line] if (line := smtp.no_tracking(r)) else []
    for s in sorted(SECTIONS, key=lambda s: s.attention_rank):
        if s.attention:
            out += s.attention(r)
    return out


def rules(tables: Iterable[str] | None = None) -> dict[str, str]:
    """The sections' own counting rules, in the order of the sections (given the names of
    the tables computed: of the sections with one)."""
    names = None if tables is None else set(tables)
    out: dict[str, str] = {}
    for s in SECTIONS:
        if names is None or any(t.name in names for t in s.tables):
            out.update(s.rules)
    return out
