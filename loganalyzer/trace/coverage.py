"""Whether the store holds a server's tracking log of a time: what a recipient handed to a
server of the store, with no row of it there, says of that server's logs (``build``)."""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from loganalyzer.store.duck import connection, read_parquet

if TYPE_CHECKING:
    from loganalyzer.store import FileRow, Manifest, Store

#: How close to the time asked about the server must have logged, before it and after it,
#: when no one of its files runs across that time: a gap longer than this in its rows around
#: it (a missing file, an hour or a day not ingested) is taken for missing logs. A server
#: quiet for longer between two files reads so too (the wording then sends the admin to
#: look for its logs, as it did before the store was asked).
NEAR = timedelta(minutes=30)
#: The creation time in a W3C-style header (``#Date: 2024-01-25T15:00:00.000Z``), as the
#: manifest keeps it (directive names in lower case).
_STARTED = re.compile(r"^#date:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class _Day:
    """A server's tracking rows of a UTC day: their times, and each file's first and last."""

    times: list[datetime]
    spans: dict[str, tuple[datetime, datetime]]


class Coverage:
    """What the store holds of its servers' tracking logs around given times, read once per
    server and UTC day (a list of thousands of handed-on recipients asks a query a day)."""

    def __init__(self, store: Store, manifest: Manifest) -> None:
        self.store, self.manifest = store, manifest
        self._days: dict[tuple[str, str], _Day] = {}
        self._near: dict[tuple, tuple[list[datetime], list[tuple[datetime, datetime]]]] = {}

    def logged(self, server: str, t: datetime) -> bool:
        """Whether the store holds ``server``'s (upper case) tracking log of time ``t``: one
        of its files runs across ``t`` (from its header's ``#Date`` or first row to its last
        row), or it logged within ``NEAR`` before ``t`` and within ``NEAR`` after it."""
        key = (server, *(u.astimezone(UTC).date() for u in (t - NEAR, t + NEAR)))
        if key not in self._near:  # the days' rows together, once (thousands of times asked)
            days = [self._day(server, d) for d in dict.fromkeys(key[1:])]
            spans: dict[str, tuple[datetime, datetime]] = {}
            for day in days:
                for name, (lo, hi) in day.spans.items():
                    a, b = spans.get(name, (lo, hi))
                    spans[name] = (min(a, lo), max(b, hi))
            times = sorted({x for day in days for x in day.times})
            self._near[key] = (times, sorted(spans.values()))
        times, spans = self._near[key]
        if any(lo <= t <= hi for lo, hi in spans):
            return True
        before = bisect.bisect_left(times, t - NEAR) < bisect.bisect_right(times, t)
        after = bisect.bisect_left(times, t) < bisect.bisect_right(times, t + NEAR)
        return before and after

    def _day(self, server: str, day) -> _Day:
        """The times of ``server``'s tracking rows of a UTC day, and each file's span."""
        key = (server, day.isoformat())
        if key not in self._days:
            files = [
                r
                for r in self.manifest.values()
                if r.table == "tracking" and (r.server or "").upper() == server and _on(r, key[1])
            ]
            self._days[key] = self._read(server, day, files) if files else _Day([], {})
        return self._days[key]

    def _read(self, server: str, day, files: list[FileRow]) -> _Day:
        parts = sorted({self.store.uri(p) for r in files for p in r.parts if _of(p, day)})
        mixed = len({r.schema_version for r in files}) > 1
        source = read_parquet(parts, partitioned=True, mixed=mixed)
        mine = "upper(server) = $server and date = $day and date_time is not null"
        params = {"server": server, "day": day}
        with connection(self.store) as con:  # a bundle part holds other servers' rows too
            times = con.execute(f"select distinct date_time from {source} where {mine}", params)
            times = sorted(t for (t,) in times.fetchall())
            spans = {
                name: (lo, hi)
                for name, lo, hi in con.execute(
                    f"select file, min(date_time), max(date_time) from {source} where {mine}"
                    " group by file",
                    params,
                ).fetchall()
            }
        for r in files:  # a file's rows begin at its start (#Date), the first may come later
            started = _start(r)
            for name in r.paths if started is not None else ():
                if name in spans:
                    spans[name] = (min(started, spans[name][0]), spans[name][1])
        return _Day(times, spans)


def _of(part: str, day) -> bool:
    """Whether a part is of the UTC day ``day`` (its ``date=`` folder)."""
    return f"date={day.isoformat()}" in part


def _on(row: FileRow, day: str) -> bool:
    """Whether a part of the file is of the day ``day`` (an ISO date)."""
    return any(f"date={day}" in part for part in row.parts)


def _start(row: FileRow) -> datetime | None:
    """When the file was started, by its header's ``#Date`` (None: no such header, or a time
    without a zone: the header of a local-time log)."""
    m = _STARTED.search(row.header or "")
    if not m:
        return None
    try:
        started = datetime.fromisoformat(m[1])
    except ValueError:
        return None
    return started if started.tzinfo else None
