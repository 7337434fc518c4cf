"""loganalyzer: offline tracing and daily reports for Exchange and IIS SMTP logs.

    import loganalyzer as la
    la.ingest(["logs/"], "store")                  # -> IngestSummary
    la.forget(["logs/EX01"], "store")              # read again by the next ingest
    store = la.Store("store")
    store.tracking(recipient="*@contoso.com")      # -> pandas DataFrame
    store.sql("select event_id, count(*) from tracking group by 1")
    la.trace("store", "<id@host>")                 # -> TraceResult (renders itself in Jupyter)
    la.daily_report("store", "2026-03-02")         # -> DailyReport
    la.analyze_headers(open("message.eml").read()) # -> the hops, verdicts and trace of a message

Every name loads on first use, so that ``import loganalyzer`` and the command start fast.
"""

from __future__ import annotations

import sys
from importlib import import_module
from types import ModuleType
from typing import TYPE_CHECKING

__version__ = "0.1.0"

_EXPORTS = {
    "ingest": "loganalyzer.api",
    "IngestSummary": "loganalyzer.ingest",
    "forget": "loganalyzer.ingest",
    "Store": "loganalyzer.read.store",
    "trace": "loganalyzer.trace",
    "TraceResult": "loganalyzer.trace",
    "explode_recipients": "loganalyzer.read.frames",
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
    "forget",
    "ingest",
    "sample_logs",
    "trace",
]

if TYPE_CHECKING:
    from loganalyzer.api import ingest
    from loganalyzer.demo import sample_logs
    from loganalyzer.headers import analyze_headers
    from loganalyzer.ingest import IngestSummary, forget
    from loganalyzer.read.frames import explode_recipients
    from loganalyzer.read.store import Store
    from loganalyzer.report import DailyReport, daily_report
    from loganalyzer.trace import TraceResult, trace


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'loganalyzer' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)


class _Package(ModuleType):
    """Keeps ``loganalyzer.ingest`` and ``loganalyzer.trace`` the functions.

    Importing a submodule sets the package attribute of its name to the module; these two
    submodules share their names with their functions, so the function is kept instead
    (``la.ingest``: ``loganalyzer.api``'s, which builds the rollups too).
    """

    def __setattr__(self, name: str, value: object) -> None:
        if name in ("ingest", "trace") and isinstance(value, ModuleType):
            value = getattr(import_module(_EXPORTS[name]), name)
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
