"""Queries over a store, in process with DuckDB, on the parts the manifest lists.

Views: ``tracking``, ``smtp``, ``quarantine``, ``files`` (the manifest), and
``recipients`` (one row per tracking row and recipient, with its status).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import TYPE_CHECKING

import duckdb
import pyarrow as pa

from loganalyzer.schema import MANIFEST, QUARANTINE, TABLES

if TYPE_CHECKING:
    from loganalyzer.store import Store

_RECIPIENTS = """
create view recipients as
select t.* exclude (recipient_address, recipient_status, enhanced_status, smtp_reply),
       r.i as recipient_index,
       t.recipient_address[r.i] as recipient,
       t.recipient_status[r.i] as recipient_status,
       t.enhanced_status[r.i] as enhanced_status,
       t.smtp_reply[r.i] as smtp_reply
from tracking t, unnest(range(1, len(t.recipient_address) + 1)) as r(i)
"""


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _parts_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    paths: list[str],
    schema: pa.Schema,
    partitioned: bool,
    mixed: bool = False,
) -> None:
    if not paths:
        fields = [*schema, pa.field("date", pa.date32())] if partitioned else list(schema)
        con.register(f"_{name}_empty", pa.schema(fields).empty_table())
        con.execute(f"create view {name} as select * from _{name}_empty")
        return
    files = ", ".join(_quote(p) for p in paths)
    hive = ", hive_partitioning = true, hive_types = {'date': DATE}" if partitioned else ""
    # union_by_name reads every file's schema up front: only when schema versions differ
    union = ", union_by_name = true" if mixed else ""
    con.execute(f"create view {name} as select * from read_parquet([{files}]{union}{hive})")


def connect(
    store: Store, only: list[dict] | None = None, manifest: dict[str, dict] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the store's views; times come back in UTC.

    ``only`` (manifest rows) restricts the tracking, smtp and quarantine views to those files.
    """
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    manifest = store.manifest() if manifest is None else manifest
    parts: dict[str, list[str]] = {"tracking": [], "smtp": [], "quarantine": []}
    for row in manifest.values() if only is None else only:
        for p in row["parts"] or []:
            parts[p.split("/", 1)[0]].append(str(store.path(p)))
    mixed = len({row["schema_version"] for row in manifest.values()}) > 1
    for name, schema in TABLES.items():
        _parts_view(con, name, sorted(parts[name]), schema, partitioned=True, mixed=mixed)
    _parts_view(con, "quarantine", sorted(parts["quarantine"]), QUARANTINE, partitioned=False)
    con.register("_files", pa.Table.from_pylist(list(manifest.values()), schema=MANIFEST))
    con.execute("create view files as select * from _files")
    con.execute(_RECIPIENTS)
    return con


def time_filter(
    since: datetime | date | str | None,
    until: datetime | date | str | None,
    column: str = "date_time",
) -> tuple[str, list]:
    """A WHERE fragment (with parameters) for a time window; the date partition prunes it."""
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{column} >= ?::timestamptz and date >= ?::timestamptz::date")
        params += [str(since), str(since)]
    if until is not None:
        clauses.append(f"{column} < ?::timestamptz and date <= ?::timestamptz::date")
        params += [str(until), str(until)]
    return " and ".join(clauses) or "true", params


def like(pattern: str) -> str:
    """A user's wildcard pattern (``*@contoso.com``) as a case-insensitive SQL LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
