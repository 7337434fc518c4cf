"""Queries over a store, in process with DuckDB, on the parts the manifest lists.

Views: ``tracking``, ``smtp``, ``quarantine``, ``files`` (the manifest), ``recipients`` (one
row per tracking row and recipient, with its status) and ``messages`` (one row per message).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING

import eventcodes
import loganalyzer.fate as fate
from loganalyzer.errors import BadInput
from loganalyzer.schema import LOG_TABLES, columns
from loganalyzer.store import cache
from loganalyzer.store import manifest as _manifest
from loganalyzer.store.duck import kept_views, open_connection, read_parquet
from loganalyzer.store.manifest import MANIFEST_FILE, FileRow, Manifest
from loganalyzer.times import parse_time

if TYPE_CHECKING:
    import duckdb

    from loganalyzer.store import Store

# No pyarrow here: views are typed in SQL (see loganalyzer.store.duck).

_RECIPIENTS = """
create or replace temp view recipients as
select t.* exclude (recipient_address, recipient_status, enhanced_status, smtp_reply),
       r.i as recipient_index,
       t.recipient_address[r.i] as recipient,
       t.recipient_status[r.i] as recipient_status,
       t.enhanced_status[r.i] as enhanced_status,
       t.smtp_reply[r.i] as smtp_reply
from tracking t, unnest(range(1, len(t.recipient_address) + 1)) as r(i)
"""


# One row per message: its first and last row, and each recipient's verdict by the rules of
# ``fate`` (the step that decides it: the last row naming it, ties by ``fate.step_rank``),
# with that step's outcome.
_ACTS_ON = fate.in_sql("event_id", fate.EXPANDS | fate.REDIRECTS)
_MESSAGES_QUERY = f"""
with srv as (
    select coalesce(list(distinct upper(server)) filter (where server <> ''), []) as servers
    from files
),
named as (  -- a row's recipients, then the list an expansion names or the address a redirect names
    select t.*, u.i, u.i > len(t.recipient_address) as acted_on
    from tracking t, unnest(range(1, len(t.recipient_address) + 1
        + if(coalesce(t.related_recipient_address, '') <> '' and {_ACTS_ON}, 1, 0))) as u(i)
    where t.message_id is not null
),
r as (
    select message_id, date_time, server, outcome, event_id, line,
           lower(if(acted_on, related_recipient_address, recipient_address[i])) as recipient,
           if(acted_on, null, enhanced_status[i]) as enhanced_status,
           case when not acted_on then {fate.kind_sql("srv.servers")}
                when {fate.in_sql("event_id", fate.EXPANDS)} then 'expand'
                else 'redirect' end as kind,
           if(acted_on, lower(recipient_address[-1]), null) as target
    from named, srv
),
steps as (
    select *, if(kind = 'expand', 'expanded', {fate.verdict_sql("event_id", "kind")}) as verdict,
           epoch_ms(date_time) * 8 + {fate.step_rank_sql("kind", "verdict")} as step_order
    from r where kind <> 'ignored'
),
last as (
    select message_id, recipient,
           arg_max(outcome, (step_order, line)) as outcome,
           arg_max(verdict, (step_order, line)) as verdict,
           arg_max(kind, (step_order, line)) as kind,
           arg_max(target, (step_order, line)) as target,
           arg_max(server, (step_order, line)) as server,
           max(date_time) as date_time,
           arg_max(enhanced_status, (step_order, line)) as enhanced_status
    from steps group by all
),
per_recipient as (
    select l.message_id, l.recipient, l.outcome,
           if(l.kind = 'redirect' and t.verdict is not null, t.verdict, l.verdict) as verdict,
           l.server, l.date_time, l.enhanced_status
    from last l left join last t
      on t.message_id = l.message_id and t.recipient = l.target and l.kind = 'redirect'
),
finals as (
    select message_id,
           list({{'recipient': recipient, 'outcome': outcome, 'verdict': verdict,
                 'server': server, 'date_time': date_time, 'enhanced_status': enhanced_status}}
                order by recipient) as recipients,
           count(*) filter (where verdict = 'delivered') as delivered,
           count(*) filter (where outcome = 'transferred') as transferred,
           count(*) filter (where verdict = 'failed') as failed,
           count(*) filter (where verdict = 'deferred') as deferred,
           max(date_time) filter (where verdict = 'delivered' or outcome = 'transferred')
               as done_at
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
_MESSAGES = "create or replace temp view messages as " + _MESSAGES_QUERY


def messages_sql(rows: str = "tracking") -> str:
    """The ``messages`` view's query over ``rows``: a table, view or CTE with the tracking
    columns (the rows of a few messages, to decide only their recipients' verdicts)."""
    return _MESSAGES_QUERY.replace("from tracking", f"from {rows}")


def _parts_view(
    con: duckdb.DuckDBPyConnection,
    name: str,
    paths: list[str],
    partitioned: bool,
    mixed: bool = False,
) -> None:
    if paths:
        source = f"select * from {read_parquet(paths, partitioned, mixed)}"
    else:  # no rows: the table's columns, typed, and none
        cols = [*columns(name), ("date", "DATE")] if partitioned else columns(name)
        typed = ", ".join(f'cast(null as {sql}) as "{col}"' for col, sql in cols)
        source = f"select {typed} where false"
    # temporary: a connection's own views, even as a cursor of a shared database (web app)
    con.execute(f"create or replace temp view {name} as {source}")


def connect(
    store: Store, only: list[FileRow] | None = None, manifest: Manifest | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the store's views; times come back in UTC.

    ``only`` (manifest rows) restricts the tracking, smtp and quarantine views to those files.
    NotAStore when the path holds no store (and no ``manifest`` is given).
    """
    if manifest is None:
        store.require()
    con = open_connection(store)
    manifest = store.manifest(con) if manifest is None else manifest
    add_views(con, store, only, manifest)
    return con


def add_views(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    only: list[FileRow] | None,
    manifest: Manifest,
    derived: bool = True,
    tables: tuple[str, ...] | None = None,
) -> dict[str, list[str]]:
    """Create the views of ``connect`` on ``con`` (without ``recipients`` and ``messages``
    unless ``derived``: their SQL takes a while to bind); returns the parts of each (see
    ``point``, and its ``tables``)."""
    parts = point(con, store, only, manifest, tables=tables)
    kept = kept_views(con) or {}  # a kept cursor's views: made again only when they change
    if manifest is store.last_manifest:  # unchanged since read: the file is the table
        files = f"select * from {read_parquet([store.uri(MANIFEST_FILE)])}"
    else:
        con.register("_files", _manifest.table(manifest))
        files = "select * from _files"
        kept.pop("files", None)
    if kept.get("files") != files:
        con.execute(f"create or replace temp view files as {files}")
        kept["files"] = files
    if derived and not kept.get("derived"):
        con.execute(_RECIPIENTS)
        con.execute(_MESSAGES)
        kept["derived"] = True
    return parts


def parts_of(store: Store, only: list[FileRow] | None, manifest: Manifest) -> dict[str, list[str]]:
    """The part URIs of each table for the files in ``only`` (all when None). Not to be
    changed: the store's whole lists are kept with a kept manifest (``cache.kept``)."""
    if only is None:  # (a thousand URIs: 15 ms, per request of the web app)
        return cache.kept(manifest, ("parts", store.url), lambda: _parts_of(store, manifest))
    return _parts_of(store, manifest, only)


def _mixed(manifest: Manifest) -> bool:
    """Whether the store's files are of more than one schema version."""
    return len({row.schema_version for row in manifest.values()}) > 1


def _parts_of(
    store: Store, manifest: Manifest, only: list[FileRow] | None = None
) -> dict[str, list[str]]:
    # a compacted or bundle part holds the rows of several files and is listed by each: read
    # it once
    found: dict[str, set[str]] = {t: set() for t in (*LOG_TABLES, "quarantine")}
    for row in manifest.values() if only is None else only:
        for p in row.parts:
            found[p.split("/", 1)[0]].add(store.uri(p))
    return {name: sorted(paths) for name, paths in found.items()}


def point(
    con: duckdb.DuckDBPyConnection,
    store: Store,
    only: list[FileRow] | None,
    manifest: Manifest,
    current: dict[str, list[str]] | None = None,
    tables: tuple[str, ...] | None = None,
) -> dict[str, list[str]]:
    """(Re)point the log tables' and quarantine views of ``connect`` at the parts of the
    files in ``only`` (all when None): cheaper than a new connection (40 ms). Returns the
    parts of each view; pass it back as ``current`` to leave unchanged views alone.
    ``tables``: point only these at those files, the others at the whole store's."""
    parts = parts_of(store, only, manifest)
    mixed = cache.kept(manifest, "mixed", lambda: _mixed(manifest))
    kept = kept_views(con)  # a kept cursor's views, as the last call left them
    if kept is not None:
        current = kept.get("parts") if kept.get("mixed") == mixed else None
    if tables is not None:
        whole = parts_of(store, None, manifest)
        parts = {name: paths if name in tables else whole[name] for name, paths in parts.items()}
    for name in (*LOG_TABLES, "quarantine"):
        if current is None or current.get(name) != parts[name]:
            partitioned = name != "quarantine"
            _parts_view(con, name, parts[name], partitioned=partitioned, mixed=mixed)
    if kept is not None:
        kept.update(parts=parts, mixed=mixed)
    return parts


def time_filter(
    since: datetime | date | str | None,
    until: datetime | date | str | None,
    column: str = "date_time",
    partitioned: bool = True,
    tz: str | None = "UTC",
) -> tuple[str, list]:
    """A WHERE fragment (with parameters) for a time window; the date partition prunes it.

    ``since`` and ``until`` take every form of ``loganalyzer.times`` (read in ``tz``); an
    aware datetime is taken as is, unchecked: a window a caller widened from a checked time
    may reach past ``times.EARLIEST`` or ``LATEST``.
    """
    clauses, params = [], []
    if since is not None:
        start = _instant(since, tz, "since")
        clauses.append(f"{column} >= ?")
        params.append(start)
        if partitioned:
            clauses.append("date >= ?")
            params.append(start.date())
    if until is not None:
        end = _instant(until, tz, "until")
        clauses.append(f"{column} < ?")
        params.append(end)
        if partitioned:
            clauses.append("date <= ?")
            params.append(end.date())
    return " and ".join(clauses) or "true", params


def _instant(when: datetime | date | str, tz: str | None, option: str) -> datetime:
    if isinstance(when, datetime) and when.tzinfo is not None:
        return when.astimezone(UTC)
    return parse_time(when, tz, option=option).astimezone(UTC)


#: An address as mail programs copy it: ``<a@b>``, ``Name <a@b>``, ``"Last, First" <a@b>``.
_BRACKETED = re.compile(r"[^<>]*<([^<>]+)>")


def address_pattern(text: str) -> str:
    """A sender or recipient as a user gives it, as the pattern searched: the address out of
    ``<a@b>`` or ``Name <a@b>`` (as Outlook copies it); a domain, bare or after an "@"
    (``contoso.com``, ``@contoso.com``), as every address of it (``*@contoso.com``)."""
    value = text.strip()
    if (m := _BRACKETED.fullmatch(value)) and m[1].strip():
        value = m[1].strip()
    if value.startswith("@"):
        return "*" + value
    if "." in value and not any(c in value for c in "@*? "):
        return "*@" + value
    return value or text


def like(pattern: str) -> str:
    """A user's wildcard pattern (``*@contoso.com``) as a case-insensitive SQL LIKE pattern."""
    escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return escaped.replace("*", "%").replace("?", "_")


#: The code tables of the events a tracking row can have.
EVENT_FAMILIES = ("exchange-event", "exchange2003", "exo-status")


def tracking_event(text: str) -> str:
    """An event as the rows spell it (``fail`` -> FAIL, ``delivered`` -> Delivered);
    BadInput when no table of tracking events knows it."""
    for family in EVENT_FAMILIES:
        try:
            return eventcodes.lookup(text, family).code
        except eventcodes.UnknownCode:
            continue
    raise BadInput(
        f"--event-id {text!r}: not a tracking event (see `loganalyzer codes --family "
        "exchange-event`)"
    )
