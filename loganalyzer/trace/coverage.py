"""Whether the store holds a server's tracking log of a time: what a recipient handed to a
server of the store, with no row of it there, says of that server's logs (``build``)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from loganalyzer.store.duck import read_parquet

if TYPE_CHECKING:
    import duckdb

    from loganalyzer.store import FileRow, Manifest, Store

#: How far from the time asked about a server's rows are looked for: a server that logged
#: nothing for a day around it is taken as one whose logs of that time are missing.
REACH = timedelta(days=1)
#: The creation time in a W3C-style header (``#Date: 2024-01-25T15:00:00.000Z``), as the
#: manifest keeps it (directive names in lower case).
_STARTED = re.compile(r"^#date:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


def logged(
    con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest, server: str, t: datetime
) -> bool:
    """Whether the store holds ``server``'s (upper case) tracking log of time ``t``: its
    rows, or the start of one of its files (its header's ``#Date``), at or before ``t``, and
    a row at or after it, each within ``REACH``. A gap between two of its files inside that
    reach is not seen."""
    lo, hi = t - REACH, t + REACH
    first, last = lo.date().isoformat(), hi.date().isoformat()
    files = [
        r
        for r in manifest.values()
        if r.table == "tracking" and (r.server or "").upper() == server and _on(r, first, last)
    ]
    if not files:
        return False
    started = any(lo <= s <= t for s in filter(None, map(_start, files)))
    parts = sorted({store.uri(p) for r in files for p in r.parts if p.startswith("tracking/")})
    mixed = len({r.schema_version for r in files}) > 1
    # a bundle part holds other servers' rows too
    before, after = con.execute(
        f"""
        select coalesce(bool_or(date_time <= $t), false), coalesce(bool_or(date_time >= $t), false)
        from {read_parquet(parts, partitioned=True, mixed=mixed)}
        where upper(server) = $server and date between $first and $last
          and date_time between $lo and $hi
        """,
        {"t": t, "lo": lo, "hi": hi, "server": server, "first": lo.date(), "last": hi.date()},
    ).fetchone()
    return (before or started) and after


def _on(row: FileRow, first: str, last: str) -> bool:
    """Whether a part of the file is of a day from ``first`` to ``last`` (ISO dates)."""
    for part in row.parts:
        at = part.find("date=")
        if at >= 0 and first <= part[at + 5 : at + 15] <= last:
            return True
    return False


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
