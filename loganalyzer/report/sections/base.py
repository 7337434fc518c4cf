"""What a report section declares (``Section``, ``Table``) and what its queries read
(``Inputs``) and its charts, notes and alerts see (``Report``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import duckdb
import pandas as pd

from loganalyzer.report.load import Context
from loganalyzer.report.period import Period

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from loganalyzer.report.charts import Chart

#: The column a list cut at ``top`` or ``limit`` rows adds (``LENGTH``): how many rows it
#: has without the limit. ``DailyReport`` takes it out of the table into its ``lengths``,
#: whence the page's "The first 10 of 221." and the JSON's ``cut``.
LISTED_OF = "listed_of"
#: The select item that gives a capped list's ``LISTED_OF`` (after its ``where`` and
#: ``group by``, before its ``limit``).
LENGTH = f"(count(*) over ())::bigint as {LISTED_OF}"


@dataclass(frozen=True)
class Inputs:
    """What a section's queries read: the period loaded into DuckDB's temporary tables
    (``load``, ``sessions``), the report's options and its headline figures."""

    con: duckdb.DuckDBPyConnection
    ctx: Context
    top: int
    limit: int
    headline: dict[str, int]
    previous: dict[str, int] | None
    #: The message expiration timeout (seconds); the VIP addresses (lower case) and the
    #: latency (seconds) over which their deliveries are listed.
    expiration: float = 172_800.0
    vips: tuple[str, ...] = ()
    vip_latency: float = 300.0
    #: The store (``loganalyzer.store.Store``): sections that read its per-day aggregates.
    store: Any = None
    #: The kinds of per-day aggregates (``store.rollups.Kind.name``) whose tables of the
    #: period are on ``con`` already (``tls_grain``): their sections count from them.
    aggregated: frozenset[str] = frozenset()
    #: Each server's lines and messages or sessions per log and hour of the period
    #: (``quality.hour_counts``).
    hours: pd.DataFrame | None = None


class Report(Protocol):
    """The parts of a ``DailyReport`` that a section's charts, notes and alerts read."""

    period: Period
    metrics: dict[str, pd.DataFrame]
    headline: dict[str, int]
    previous: dict[str, int] | None
    #: Why ``previous`` is None: the previous period not in the store, or in part only.
    not_compared: str | None
    accepted_domains: list[str]
    accepted_inferred: bool
    accepted_delivered: int | None
    top: int
    limit: int
    #: The length without its limit of each list cut at ``top`` or ``limit`` rows.
    lengths: dict[str, int]
    expiration_s: float
    vip_latency_s: float | None
    #: The period's tracking rows (None where not known) and its days with SMTP lines alone.
    tracking_rows: int | None
    untracked_days: list[str]

    @property
    def is_empty(self) -> bool: ...


@dataclass(frozen=True)
class Table:
    """One table of a section, and how the page shows it."""

    name: str
    title: str
    #: Shown side by side with its neighbour (on a wide screen).
    half: bool = False
    #: Columns the page leaves out (the JSON keeps them).
    hidden: tuple[str, ...] = ()
    #: An hourly table whose runs of all-zero hours fold into one row (several days).
    folded: bool = False
    #: A boolean column that marks its row on the page.
    flag: str | None = None
    #: Its own template fragment (in ``templates/``), else the generic table.
    template: str | None = None
    #: The columns a table cut at ``--top`` keys (not rows) is cut by: its ``LISTED_OF``
    #: counts those keys, and ``cut_line`` says how many are listed of how many.
    cut_by: tuple[str, ...] = ()
    #: What the page says of a cut table, given ``listed`` and ``total``.
    cut_line: str = "The first {listed:,} of {total:,}."
    #: Whether the page shows it for a report (None: always; the JSON has it either way).
    shown: Callable[[Report], bool] | None = None


@dataclass(frozen=True)
class Section:
    """One section of the report: its tables (computed by ``compute``), its charts and
    what it adds to the page's top and to the counting rules."""

    id: str
    title: str
    tables: tuple[Table, ...]
    #: The section's tables from the loaded period, by name (a table may be left out).
    compute: Callable[[Inputs], dict[str, pd.DataFrame]]
    #: Its plotly figures, by name, in the order shown (only those with data).
    charts: Callable[[Report], dict[str, Chart | go.Figure]] | None = None
    #: A line of text under its title.
    note: Callable[[Report], str] | None = None
    #: Lines for "Needs attention", in plain words.
    attention: Callable[[Report], list[str]] | None = None
    #: Where its lines go among all sections' attention lines (lower first).
    attention_rank: int = 100
    #: Its place with ``problems_first`` (lower first); None: after those, in registry order.
    problems: int | None = None
    #: How its figures are counted (shown on the page and in the JSON).
    rules: Mapping[str, str] = field(default_factory=dict)
    #: Extra values its template fragments read, from the report.
    page: Callable[[Report], dict[str, Any]] | None = None
    #: Whether the page shows it for a report (None: always; its tables are in the JSON
    #: either way).
    shown: Callable[[Report], bool] | None = None


@dataclass
class SectionResult:
    """A section of one report: its tables that have been computed (in order), the note
    under its title and its charts (empty when not asked for)."""

    section: Section
    tables: dict[str, pd.DataFrame]
    note: str | None = None
    figures: dict[str, Chart | go.Figure] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.section.id

    @property
    def title(self) -> str:
        return self.section.title
