"""The base of every result object: ``to_dict()`` written by each, the rest written here.

A result (a trace, a header analysis, a report, an ingest summary) is data first:
``to_dict()`` gives plain JSON-ready values, ``to_json()`` prints them, ``to_html()`` and
``_repr_html_()`` (Jupyter) ask the result's own ``_html()`` for a page or a fragment.
``records()`` turns a DataFrame into JSON-ready rows, with ``plain()`` for one value.
"""

from __future__ import annotations

import datetime as dt
import math
from abc import ABC, abstractmethod
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from loganalyzer.pages import json_text

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Result", "plain", "records"]


class Result(ABC):
    """``to_json()``, ``to_html()`` and ``_repr_html_()`` from ``to_dict()`` and ``_html()``."""

    @abstractmethod
    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready data; its names are the result's contract."""

    def to_json(self, indent: int | None = 2) -> str:
        return json_text(self.to_dict(), indent=indent)

    def to_html(self, **options: Any) -> str:
        """A self-contained HTML page; every value from the logs is escaped. ``options``
        are the result's own (a report's ``charts`` and ``traces``)."""
        return self._html(fragment=False, **options)

    def _repr_html_(self) -> str | None:
        """The HTML fragment Jupyter shows; None (the plain repr) for a result without one."""
        try:
            return self._html(fragment=True)
        except NotImplementedError:
            return None

    def _html(self, fragment: bool = False, **options: Any) -> str:
        """The page (or with ``fragment`` the part of it a notebook shows)."""
        raise NotImplementedError(f"{type(self).__name__} has no HTML rendering")


def plain(v: Any, timespec: str = "milliseconds") -> Any:
    """A value as JSON data: None for missing, ISO 8601 times (to ``timespec``; ``auto``:
    as precise as the time is), Python numbers, lists for arrays, dicts of plain values."""
    import pandas as pd  # only when a DataFrame's cells are at hand

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, dt.datetime | pd.Timestamp):
        return v.isoformat(timespec=timespec)
    if isinstance(v, dt.date):
        return v.isoformat()
    if isinstance(v, dict):
        return {k: plain(x, timespec) for k, x in v.items()}
    if hasattr(v, "tolist") and not isinstance(v, str | bytes):  # numpy arrays and scalars
        v = v.tolist()
    if isinstance(v, Decimal):
        v = int(v) if v == v.to_integral_value() else float(v)
    if isinstance(v, float):
        return None if math.isnan(v) else v
    if isinstance(v, list | tuple):
        return [plain(x, timespec) for x in v]
    return v


def records(df: pd.DataFrame, timespec: str = "milliseconds") -> list[dict[str, Any]]:
    """Rows of a DataFrame as JSON-ready dicts (times to ``timespec``, see ``plain``)."""
    cols = list(df.columns)
    return [
        {c: plain(v, timespec) for c, v in zip(cols, row, strict=True)}
        for row in df.astype(object).itertuples(index=False, name=None)
    ]
