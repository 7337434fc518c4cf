"""Queries over a store, in process with DuckDB, on the parts the manifest lists.

Views: ``tracking``, ``smtp``, ``quarantine``, ``files`` (the manifest), ``recipients`` (one
row per tracking row and recipient, with its status) and ``messages`` (one row per message).
"""

from __future__ import annotations

from contextlib import suppress
from datetime import date, datetime
from typing import TYPE_CHECKING

import pyarrow as pa

from loganalyzer.schema import QUARANTINE, TABLES

if TYPE_CHECKING:
    import duckdb

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


# One row per message: its first and last row, and the last outcome of each recipient (the
# outcome of the last row naming it, shadow copies and DSN rows aside).
_MESSAGES = """
create view messages as
with r as (
    select * from recipients
    where message_id is not null
      and event_id not in ('DSN', 'HAREDIRECT', 'HARECEIVE', 'HADISCARD', 'AGENTINFO')
),
per_recipient as (
    select message_id, lower(recipient) as recipient,
           arg_max(outcome, date_time) as outcome, arg_max(server, date_time) as server,
           max(date_time) as date_time,
           arg_max(enhanced_status, date_time) as enhanced_status
    from r group by all
),
finals as (
    select message_id,
           list({'recipient': recipient, 'outcome': outcome, 'server': server,
                 'date_time': date_time, 'enhanced_status': enhanced_status}
                order by recipient) as recipients,
           count(*) filter (where outcome = 'delivered') as delivered,
           count(*) filter (where outcome = 'transferred') as transferred,
           count(*) filter (where outcome = 'failed') as failed,
           count(*) filter (where outcome = 'deferred') as deferred,
           max(date_time) filter (where outcome in ('delivered', 'transferred')) as done_at
    from per_recipient group by message_id
),
msg as (
    select message_id, any_value(network_message_id) as network_message_id,
           min(date_time) as first_seen, max(date_time) as last_seen,
           min(date_time) filter (where event_id = 'RECEIVE') as received_at,
           arg_min(sender_address, date_time) as sender_address,
           arg_min(message_subject, date_time) as message_subject,
           max(total_bytes) as total_bytes,
           list(distinct server order by server) as servers,
           count(*) as rows
    from tracking where message_id is not null group by message_id
)
select msg.*, finals.recipients, finals.delivered, finals.transferred, finals.failed,
       finals.deferred,
       epoch(finals.done_at - coalesce(msg.received_at, msg.first_seen)) as latency_s
from msg left join finals using (message_id)
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


def no_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    # DuckDB draws a progress bar on stdout for slow queries, terminal or not: never ours.
    # Under Jupyter without ipywidgets it refuses the setting, and draws no bar there anyway.
    import duckdb

    with suppress(duckdb.Error):
        con.execute("set enable_progress_bar = false")


def connect(
    store: Store, only: list[dict] | None = None, manifest: dict[str, dict] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the store's views; times come back in UTC.

    ``only`` (manifest rows) restricts the tracking, smtp and quarantine views to those files.
    """
    import duckdb  # here: importing it costs every command, tracing or not, a tenth of a second

    con = duckdb.connect()
    no_progress_bar(con)
    con.execute("set TimeZone = 'UTC'")
    store.loc.register(con)  # a URL store is read through its fsspec filesystem
    manifest = store.manifest() if manifest is None else manifest
    # a compacted part holds the rows of several files and is listed by each: read it once
    parts: dict[str, set[str]] = {"tracking": set(), "smtp": set(), "quarantine": set()}
    for row in manifest.values() if only is None else only:
        for p in row["parts"] or []:
            parts[p.split("/", 1)[0]].add(store.uri(p))
    mixed = len({row["schema_version"] for row in manifest.values()}) > 1
    for name, schema in TABLES.items():
        _parts_view(con, name, sorted(parts[name]), schema, partitioned=True, mixed=mixed)
    _parts_view(con, "quarantine", sorted(parts["quarantine"]), QUARANTINE, partitioned=False)
    con.register("_files", store.manifest_table(manifest))
    con.execute("create view files as select * from _files")
    con.execute(_RECIPIENTS)
    con.execute(_MESSAGES)
    return con


def time_filter(
    since: datetime | date | str | None,
    until: datetime | date | str | None,
    column: str = "date_time",
    partitioned: bool = True,
) -> tuple[str, list]:
    """A WHERE fragment (with parameters) for a time window; the date partition prunes it."""
    clauses, params = [], []
    if since is not None:
        clauses.append(f"{column} >= ?::timestamptz")
        params.append(str(since))
        if partitioned:
            clauses.append("date >= ?::timestamptz::date")
            params.append(str(since))
    if until is not None:
        clauses.append(f"{column} < ?::timestamptz")
        params.append(str(until))
        if partitioned:
            clauses.append("date <= ?::timestamptz::date")
            params.append(str(until))
    return " and ".join(clauses) or "true", params


def like(pattern: str) -> str:
    """A user's wildcard pattern (``*@contoso.com``) as a case-insensitive SQL LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")
