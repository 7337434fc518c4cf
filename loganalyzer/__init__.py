"""loganalyzer: offline tracing and daily reports for Exchange and IIS SMTP logs.

    import loganalyzer as la
    la.ingest(["logs/"], "store")                  # -> IngestSummary
    store = la.Store("store")
    store.tracking(recipient="*@contoso.com")      # -> pandas DataFrame
    store.sql("select event_id, count(*) from tracking group by 1")
    la.trace("store", "<id@host>")                 # -> TraceResult (renders itself in Jupyter)
    la.daily_report("store", "2026-03-02")         # -> DailyReport
    la.analyze_headers(open("message.eml").read()) # -> the hops, verdicts and trace of a message

The other names load on first use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

__version__ = "0.1.0"

# ``ingest`` and ``trace`` share their names with their modules: importing a module sets the
# package attribute, so these two are bound here, once, to the functions.
from loganalyzer.ingest import IngestSummary, ingest  # noqa: E402
from loganalyzer.store import Store  # noqa: E402
from loganalyzer.trace import TraceResult, trace  # noqa: E402

_EXPORTS = {
    "explode_recipients": "loganalyzer.frames",
    "daily_report": "loganalyzer.report",
    "DailyReport": "loganalyzer.report",
    "analyze_headers": "loganalyzer.headers",
    "sample_logs": "loganalyzer.demo",
}

__all__ = [
    "DailyReport",
    "IngestSummary",
    "Store",
    "TraceResult",
    "__version__",
    "analyze_headers",
    "daily_report",
    "explode_recipients",
    "ingest",
    "sample_logs",
    "trace",
]

if TYPE_CHECKING:
    from loganalyzer.demo import sample_logs
    from loganalyzer.frames import explode_recipients
    from loganalyzer.headers import analyze_headers
    from loganalyzer.report import DailyReport, daily_report


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'loganalyzer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
