"""What ``import loganalyzer as la`` offers that joins layers: ``la.ingest`` reads logs into a
store and brings its rollups and per-day aggregates up to date, as the command does (the
ingest layer cannot call the report's rollups itself)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from loganalyzer.ingest import IngestSummary
    from loganalyzer.store import Store


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    store: str | os.PathLike[str] | Store | None = None,
    **options,
) -> IngestSummary:
    """Ingest log files into ``store`` as ``loganalyzer ingest`` does, the rollups that long
    reports, ``store prune`` and the web app read included; the ``options`` of
    ``loganalyzer.ingest.ingest`` (``format``, ``server``, ``tz``, ``final``, ``workers``,
    ``progress``, ``on_wait``, ``scheduler``; ``rollups=None`` builds none)."""
    from loganalyzer.ingest import ingest as read
    from loganalyzer.report.rollup import refresh

    options.setdefault("rollups", refresh)
    return read(paths, store, **options)
