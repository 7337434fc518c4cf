"""The address index: per UTC day, the addresses and subjects of the tracked messages and
the refused SMTP sessions, so that a list by sender, recipient or subject reads a few small
files instead of the address columns of every part.

Layout: ``addresses/date=YYYY-MM-DD/<token>.parquet``, one part per UTC day, and the index
``addresses.parquet`` (one row per day: its part and the ``source`` it was built from), kept
as the rollups are (``store.rollups``, kind ``KIND``: temporary names, renames, the index
replaced whole). A day's part is built from that day's tracking and SMTP rows alone, so its
``source`` is the digest of the files holding rows of that day; a day whose files changed
is out of date and is not used (readers read that day's rows) until the next ingest or
``store compact`` rebuilds it. A kill leaves the index out of date, never wrong.

A part's rows (``schema``), sorted by ``role`` then ``value``, in small row groups:

- ``sender``: a message's sender address or return path (``value``), ``k`` the message's
  key (its Message-ID, else its network message ID) and ``first`` the time of its first row
  of the day carrying that value in that column;
- ``recipient``: one of the recipients its rows name, with where it is first named (``file``,
  ``line``, ``pos`` in the row's list, after ``first``); ``subject``: its subject;
- ``message``: one row per message of the day (``value`` its key) with what a candidate list
  shows, as the rows of that day give it: the IDs, the first time, the first sender and
  subject (and their times), the last outcome (and its time);
- ``refused``: a Receive protocol session with a refusal (a 5xx reply) that day (``server``,
  ``session_id``); ``mail`` and ``rcpt``: the data of its MAIL and RCPT lines that day, and
  those of a session still open at the day's end (refused, maybe, after midnight).
"""

from __future__ import annotations

import datetime as dt
import tempfile
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from loganalyzer.store import cache, rollups
from loganalyzer.store.duck import parts_by_hash, passes, read_parquet

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from loganalyzer.store import Store
    from loganalyzer.store.manifest import Manifest

INDEX_FILE = "addresses.parquet"
FOLDER = "addresses"


def schema() -> pa.Schema:
    """The columns of an address index part (see the module's docstring)."""
    import pyarrow as pa

    t = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("role", pa.string()),
            ("value", pa.string()),
            ("k", pa.string()),
            ("first", t),
            ("server", pa.string()),
            ("session_id", pa.string()),
            ("message_id", pa.string()),
            ("network_message_id", pa.string()),
            ("sender", pa.string()),
            ("sender_at", t),
            ("subject", pa.string()),
            ("subject_at", t),
            ("outcome", pa.string()),
            ("outcome_at", t),
            ("file", pa.string()),
            ("line", pa.int64()),
            ("pos", pa.int32()),
        ]
    )


#: (``version``: change it with the columns or what they hold; 2: the MAIL and RCPT lines of
#: the sessions open at the day's end)
KIND = rollups.Kind(
    "addresses", INDEX_FILE, FOLDER, schema, lookback=False, row_group=4096, version="2"
)

_KEY = "coalesce(message_id, network_message_id)"
#: The rows of one day's part, in two steps: each reads what it needs of the day's rows
#: (views ``_tv`` tracking and ``_sv`` smtp) once into a small temporary table (each
#: statement reading the parts again cost a fifth of the build), then runs its statements
#: over it, one each (each spills within the memory limit on its own), then drops it; the
#: recipients, which each row names its own, are read from the rows. A statement with
#: ``{part}`` runs in passes of messages (``duck.passes``): its grouping of each message's
#: strings ran out of memory under the limit on a day of 100,000 messages.
_BUILD = (
    (
        # of the tracking rows of a message with a key, ``_g``: one row per message and
        # values of its rows other than their times and outcomes (about one per message:
        # copying the rows whole cost a third of the build), with their first time and last
        # outcome; what a message's rows give is the same taken from them
        (
            f"""create or replace temp table _g as
            select {_KEY} as k, sender_address, return_path, message_subject, message_id,
                   network_message_id, min(date_time) as first,
                   arg_max(outcome, date_time) filter (where outcome is not null) as outcome,
                   max(date_time) filter (where outcome is not null) as outcome_at
            from _tv where {_KEY} is not null
            group by all""",
        ),
        (
            """select 'sender' as role, value, k, min(first) as first from (
                select sender_address as value, k, first from _g
                where sender_address is not null
                union all
                select return_path, k, first from _g where return_path is not null
            ) group by all""",
            # where a recipient is first named: the candidate list names them in that order
            f"""select 'recipient' as role, r as value, k, a.t as first, a.f as file,
                   a.l as line, a.p as pos
            from (
                select r, k, min({{'t': date_time, 'f': file, 'l': line, 'p': p}}) as a from (
                    select unnest(recipient_address) as r,
                           generate_subscripts(recipient_address, 1) as p, {_KEY} as k,
                           date_time, file, line
                    from _tv where {_KEY} is not null
                ) where r is not null group by all
            )""",
            """select 'subject' as role, message_subject as value, k, min(first) as first
            from _g where message_subject is not null group by all""",
            """select 'message' as role, k as value, k, min(first) as first,
               any_value(message_id) as message_id,
               any_value(network_message_id) as network_message_id,
               arg_min(sender_address, first) filter (where sender_address is not null)
                   as sender,
               min(first) filter (where sender_address is not null) as sender_at,
               arg_min(message_subject, first) filter (where message_subject is not null)
                   as subject,
               min(first) filter (where message_subject is not null) as subject_at,
               arg_max(outcome, outcome_at) filter (where outcome is not null) as outcome,
               max(outcome_at) filter (where outcome is not null) as outcome_at
            from _g where {part} group by k""",
        ),
        ("_g",),
    ),
    (
        # of the Receive protocol sessions, only their refusals, disconnects and MAIL and
        # RCPT lines are looked at: ``_m`` those lines, ``_r`` the sessions with a refusal (a
        # 5xx reply) and those still open at the day's end, whose refusal may come after
        # midnight (their MAIL and RCPT lines are named here, their refusal the next day)
        (
            """create or replace temp table _m as
            select server, session_id, event, command, data, reply_code from _sv
            where direction = 'receive' and log_format = 'exchange-smtp-protocol'
              and session_id is not null
              and (reply_code >= 500 or event = '-'
                   or (command in ('MAIL', 'RCPT') and data is not null))""",
            """create or replace temp table _r as
            select server, session_id, bool_or(reply_code >= 500) as refused from _m
            group by all having bool_or(reply_code >= 500) or not bool_or(event = '-')""",
        ),
        (
            "select 'refused' as role, server, session_id from _r where refused",
            *(
                f"""select distinct '{role}' as role, data as value, server, session_id
                from _m join _r using (server, session_id)
                where command = '{command}' and data is not null"""
                for role, command in (("mail", "MAIL"), ("rcpt", "RCPT"))
            ),
        ),
        ("_m", "_r"),
    ),
)
#: The order of a part's rows: by ``role`` (each statement of ``_BUILD`` gives one), then these.
_SORT = ("value", "k", "server", "session_id")
#: DuckDB's memory while a day is built (beyond it, it spills to a temporary folder).
MEMORY_LIMIT = "128MB"


def _day_parts(store: Store, manifest: Manifest, day: str) -> dict[str, list[str]]:
    found: dict[str, set[str]] = {t: set() for t in rollups.SOURCES}
    for row in manifest.values():
        for p in row.parts:
            table, _, rest = p.partition("/date=")
            if table in found and rest.split("/", 1)[0] == day:
                found[table].add(store.uri(p))
    return {t: sorted(v) for t, v in found.items()}


def _run(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """The rows of ``sql``; with ``{part}``, in passes of the messages of ``_g``."""
    if "{part}" not in sql:
        return con.sql(sql).to_arrow_table()
    (groups,) = con.execute("select approx_count_distinct(k) from _g").fetchall()[0]
    import pyarrow as pa

    return pa.concat_tables(
        con.sql(sql.replace("{part}", part)).to_arrow_table()
        for part in parts_by_hash("k", passes(groups))
    )


def build_day(
    con: duckdb.DuckDBPyConnection, store: Store, manifest: Manifest, day: str
) -> pa.Table:
    """The address index part of ``day`` (``YYYY-MM-DD``) from its rows."""
    from loganalyzer.schema import columns

    mixed = len({row.schema_version for row in manifest.values()}) > 1
    parts = _day_parts(store, manifest, day)
    for view, table in (("_tv", "tracking"), ("_sv", "smtp")):
        paths = parts[table]
        if paths:
            src = f"select * from {read_parquet(paths, True, mixed)}"
        else:
            typed = ", ".join(f'cast(null as {sql}) as "{c}"' for c, sql in columns(table))
            src = f"select {typed} where false"
        con.execute(f"create or replace temp view {view} as {src}")
    want = schema()
    tables = {}
    for reads, statements, temporary in _BUILD:
        for sql in reads:
            con.execute(sql)
        for sql in statements:
            got = _run(con, sql)
            if not got.num_rows:
                continue
            # each statement's rows are of one role: sorted apart, on the keys they have (a
            # sort of all the rows on every key cost a tenth of the build)
            keys = [(c, "ascending") for c in _SORT if c in got.column_names]
            role = got.column("role")[0].as_py()
            got = got.sort_by(keys)
            cols = {
                f.name: got.column(f.name).cast(f.type)
                if f.name in got.column_names
                else _nulls(got.num_rows, f.type)
                for f in want
            }
            tables[role] = _table(cols, want)
        for name in temporary:
            con.execute(f"drop table {name}")
    import pyarrow as pa

    if not tables:
        return want.empty_table()
    return pa.concat_tables(tables[role] for role in sorted(tables))


def _nulls(n: int, type_):
    import pyarrow as pa

    return pa.nulls(n, type_)


def _table(cols: dict, want):
    import pyarrow as pa

    return pa.table(cols, schema=want)


def refresh(st: Store, manifest: Manifest, touched: set[str] | None = None) -> list[str]:
    """Bring the address index up to date (under the lock, ``manifest`` written): the days
    out of date and those without one (``rollups.due``); days whose rows are gone (pruned)
    are taken off. Returns the days built."""
    from loganalyzer.store.duck import open_connection

    index = rollups.load(st, KIND)
    state = rollups.status(st, manifest, index, KIND)
    have = set(rollups.row_days(manifest))
    todo = rollups.due(state, touched)
    drop = sorted(d for d in todo | set(index) if d not in have)
    days = sorted(todo & have)
    if not days and not drop:
        return []
    con = open_connection(st)
    spill = tempfile.TemporaryDirectory(prefix="loganalyzer-", ignore_cleanup_errors=True)
    try:
        con.execute(f"set memory_limit = '{MEMORY_LIMIT}'")
        con.execute("set parquet_metadata_cache = false")  # (it counts against the limit)
        con.execute("set temp_directory = " + "'" + spill.name.replace("'", "''") + "'")
        tables = {d: build_day(con, st, manifest, d) for d in days}
    finally:
        con.close()
        spill.cleanup()
    rollups.commit(st, manifest, tables, KIND, drop=drop)
    return days


def clean(store: Store) -> list[str]:
    """Remove temporary files and parts the index does not list (under the lock)."""
    return rollups.clean(store, KIND)


@dataclass
class Coverage:
    """Which days of a store the address index answers for: ``parts`` (day -> part URI)
    the days it is up to date for, ``rows`` the days with rows it does not cover."""

    parts: dict[str, str] = field(default_factory=dict)
    rows: list[str] = field(default_factory=list)

    def source(self) -> str | None:
        """A FROM-clause source of the covered days' parts (with their ``date``), or None."""
        if not self.parts:
            return None
        return read_parquet([self.parts[d] for d in sorted(self.parts)], partitioned=True)

    def row_days(self) -> tuple[str, list]:
        """A WHERE fragment keeping the rows of the days the index does not cover."""
        if not self.rows:
            return "false", []
        marks = ", ".join("?" for _ in self.rows)
        return f"date in ({marks})", [dt.date.fromisoformat(d) for d in self.rows]


def coverage(store: Store, manifest: Manifest, con=None) -> Coverage:
    """The days the address index covers and those read from rows: kept with a kept manifest
    (``cache.kept``) while the index file is unchanged. Not to be changed by the caller."""
    try:
        seen = cache.stamp(store, KIND.index_file)
    except FileNotFoundError:
        seen = ()
    if seen is None:  # a filesystem that tells nothing that would change
        return _coverage(store, manifest, con)
    key = ("coverage", store.url, seen)
    return cache.kept(manifest, key, lambda: _coverage(store, manifest, con))


def _coverage(store: Store, manifest: Manifest, con=None) -> Coverage:
    index = rollups.load(store, KIND, con)
    state = rollups.status(store, manifest, index, KIND)
    current = set(state["current"])
    out = Coverage()
    for day in sorted(rollups.row_days(manifest)):
        if day in current:
            out.parts[day] = store.uri(index[day].part)
        else:
            out.rows.append(day)
    return out
