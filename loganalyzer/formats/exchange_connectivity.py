"""Exchange 2007-2019 transport connectivity logs (``CONNECTLOG*.LOG``).

FORMATS.md section M. One row per log line, columns from ``#Fields``
(``date-time,session,source,Destination,direction,description``). Derived from the
description where it names them (M.3):

- ``remote_ip``/``remote_port``: ``Established connection to <ip>``, ``Failed connection to
  <ip>:<port> (...)``, ``Aborted connection to <ip>``.
- ``error``: the socket error of a failed connection (``TimedOut``, ``ConnectionRefused``),
  the reason of a DNS failure (``Non-existent domain``, ``DNS server returned ErrorRetry``),
  ``Aborted`` for an aborted connection, the reason of a ``Session Failover``, the text in
  parentheses of a ``-`` row that ended in failure, ``Failed to connect to server`` (MAPI).
- ``failure``: the kind of that error (``failure_kind``): dns, refused, timeout, tls, other.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loganalyzer.formats import columns as C
from loganalyzer.formats.base import Bad, ReadState, Run, read_csv_run
from loganalyzer.formats.common import (
    Batch,
    Context,
    Detected,
    data_lines,
    header_value,
    mostly,
)
from loganalyzer.formats.contract import Format, Pending, keyed_runs
from loganalyzer.formats.exchange_tracking import field_count, split_bad
from loganalyzer.schema import CONNECTIVITY, build_table

NAME = "exchange-connectivity"
_SAMPLE = """\
#Software: Microsoft Exchange Server
#Version: 15.0.0.0
#Log-type: Transport Connectivity Log
#Date: 2026-03-02T08:30:00.000Z
#Fields: date-time,session,source,Destination,direction,description
2026-03-02T08:30:21.140Z,08DE5A1B2C3D4E70,SMTP,fabrikam.com,>,\
Failed connection to 203.0.113.5:25 (TimedOut:0000274C)
"""

#: The #Fields line (M.2); header-less files are read so.
FIELDS = ["date-time", "session", "source", "destination", "direction", "description"]

_LOG_TYPES = {"transport connectivity log", "connectivity log"}
_OWN_FIELDS = {"date-time", "session", "source", "destination", "direction", "description"}
_FAILED = re.compile(r"^Failed connection to \[?([^\s\]]+?)\]?:(\d{1,5}) \((\w+)")
_ESTABLISHED = re.compile(
    r"^(?:Established|Aborted) connection to \[?([0-9A-Fa-f.:]+?)\]?(?::(\d{1,5}))?(?:\s|$)"
)
_DNS = re.compile(
    r"^(Non-existent domain|Mail would loop back to itself|Invalid DNS data returned"
    r"|DNS server returned \w+) reported by "
)
_FAILOVER = re.compile(r"^Session Failover;.*?reason = (\w+)")
_ENDED = re.compile(r"^Messages: \d+ Bytes: \d+.*?\((.+)\)\s*$")
_NOT_FAILURES = {"Attempting next target"}
_DNS_TEXT = re.compile(
    r"DNS|domain name does not exist|Non-existent domain|loop back", re.IGNORECASE
)


def failure_kind(error: str | None) -> str | None:
    """The kind of a connectivity failure from its ``error`` text (None: no failure)."""
    if not error:
        return None
    if "TimedOut" in error or "timed out" in error.lower():
        return "timeout"
    if "Refused" in error or "10061" in error:
        return "refused"
    if "TLS" in error or "certificate" in error.lower():
        return "tls"
    if _DNS_TEXT.search(error):
        return "dns"
    return "other"


def detect(head: bytes, name: str) -> Detected | None:
    """A connectivity log has a ``Transport Connectivity Log`` #Log-type, or (its other
    header lines lost) exactly the connectivity-log #Fields."""
    log_type = (header_value(head, "log-type") or "").strip().lower()
    if log_type in _LOG_TYPES:
        return Detected(NAME, log_type="connectivity")
    fields = {f.strip().lower() for f in (header_value(head, "fields") or "").split(",")}
    if not log_type and fields == _OWN_FIELDS:
        return Detected(NAME, log_type="connectivity")
    return None


def detect_headerless(head: bytes, name: str) -> Detected | None:
    """With ``--format``: a header-less file most of whose first lines start with a date and
    have the 6 connectivity-log fields."""
    if mostly(data_lines(head), _looks_like_a_line):
        return Detected(NAME, log_type="connectivity")
    return None


def _looks_like_a_line(text: str) -> bool:
    return bool(re.match(r"\d{4}-\d\d-\d\dT", text)) and field_count(text) == len(FIELDS)


def _field_names(run: Run, ctx: Context) -> list[str] | None:
    fields = run.directives.get("fields")
    if fields:
        return [f.strip().lower() for f in fields.split(",")]
    return FIELDS if ctx.forced else None


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs keyed by their fields, or batches of lines that cannot be parsed."""
    return keyed_runs(fh, state, ctx, _key)


def _key(run: Run, ctx: Context) -> tuple | None:
    names = _field_names(run, ctx)
    return None if names is None else tuple(names)


def parse_run(run: Run, key: tuple, ctx: Context) -> Batch:
    """The rows of one run; ``key`` is its fields."""
    raw, rows, wrong = read_csv_run(run, list(key))
    table, invalid = normalise(raw, run, rows, ctx)
    return Batch(table, wrong + invalid)


def describe(text: str | None) -> tuple[str | None, int | None, str | None]:
    """Remote IP, port and error named by one description (None where it names none)."""
    text = (text or "").strip()
    m = _FAILED.match(text)
    if m:
        return m[1], int(m[2]), m[3]
    m = _ESTABLISHED.match(text)
    if m:
        port = int(m[2]) if m[2] else None
        return m[1], port, "Aborted" if text.startswith("Aborted") else None
    m = _DNS.match(text) or _FAILOVER.match(text)
    if m:
        return None, None, m[1]
    m = _ENDED.match(text)
    if m and m[1].strip() not in _NOT_FAILURES:
        return None, None, m[1].strip()
    if text.startswith("Failed to connect to server"):
        return None, None, "Failed to connect to server"
    return None, None, None


def _parts(descriptions: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array, pa.Array]:
    found = [describe(t) for t in descriptions.to_pylist()]
    ips, ports, errors = zip(*found, strict=True) if found else ((), (), ())
    return (
        pa.array(ips, pa.string()),
        pa.array(ports, pa.int32()),
        pa.array(errors, pa.string()),
        pa.array([failure_kind(e) for e in errors], pa.string()),
    )


def normalise(
    raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context
) -> tuple[pa.Table, list[Bad]]:
    """String columns named by #Fields to the connectivity schema; bad rows to the quarantine."""
    n = raw.num_rows
    cols = {c.replace("-", "_"): C.whole(raw.column(c)) for c in raw.column_names}
    missing = pa.nulls(n, pa.string())
    date_time, bad_time = C.parse_utc(cols.get("date_time", missing))
    description = cols.get("description", missing)
    # descriptions repeat (connects, DNS answers, ends): each distinct text read once
    remote_ip, remote_port, error, failure = C.per_distinct(_parts, description)
    out = {
        "date_time": date_time,
        "log_format": C.constant(NAME, n),
        "session_id": cols.get("session", missing),
        "source": cols.get("source", missing),
        "destination": cols.get("destination", missing),
        "direction": C.null_if_empty(pc.utf8_trim_whitespace(cols.get("direction", missing))),
        "description": description,
        "remote_ip": remote_ip,
        "remote_port": remote_port,
        "error": error,
        "failure": failure,
        "file": C.constant(ctx.path, n),
        "line": pa.array(run.line_numbers[rows], pa.int64()),
    }
    table = build_table(out, CONNECTIVITY)
    problems = [(bad_time, "bad date-time"), (pc.is_null(date_time), "no date-time")]
    return split_bad(table, problems, run, rows)


FORMAT = Format(
    name=NAME,
    table="connectivity",
    description="Exchange 2007-2019 transport connectivity logs (CSV, columns from #Fields)",
    file_names="CONNECTLOG*.LOG (Logs\\Hub\\Connectivity, Logs\\FrontEnd\\Connectivity, ...)",
    sample=_SAMPLE,
    detect=detect,
    detect_headerless=detect_headerless,
    read=read,
    parse_run=parse_run,
    field_sets={len(FIELDS): tuple(FIELDS)},
    joins_files=False,
)
