"""DuckDB over the store's files: a connection that reads them, and the SQL to name them.

The readers (``loganalyzer.read``) build their views on these; the manifest is read with them.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

    from loganalyzer.store import Store

# No pyarrow here: rows come back as Python values. A trace then imports DuckDB alone, a
# quarter of a second less than with pyarrow (and numpy).


def records(relation: duckdb.DuckDBPyRelation) -> list[dict]:
    """The rows of a query as dicts (times as aware UTC datetimes, lists as lists)."""
    names = relation.columns
    return [dict(zip(names, row, strict=True)) for row in relation.fetchall()]


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_parquet(paths: list[str], partitioned: bool = False, mixed: bool = False) -> str:
    """A ``read_parquet(...)`` call over these files, to use in a FROM clause."""
    files = ", ".join(_quote(p) for p in paths)
    hive = ", hive_partitioning = true, hive_types = {'date': DATE}" if partitioned else ""
    # union_by_name reads every file's schema up front: only when schema versions differ
    union = ", union_by_name = true" if mixed else ""
    return f"read_parquet([{files}]{union}{hive})"


def parquet_columns(con: duckdb.DuckDBPyConnection, paths: list[str]) -> dict[str, set[str]]:
    """The column names of each of these Parquet files, by the file name DuckDB gives it
    (only their footers are read)."""
    files = ", ".join(_quote(p) for p in paths)
    sql = f"select file_name, list(name) from parquet_schema([{files}]) group by file_name"
    return {name: set(columns) for name, columns in con.execute(sql).fetchall()}


#: Groups (sessions, messages) one pass of a grouping holds at most under a memory limit of
#: 128 MB (``passes``): DuckDB's grouping of many strings per group does not spill.
GROUPS_PER_PASS = 40_000
#: Set, the number of passes ``passes`` gives whatever the groups (for the tests: results
#: must not change with it).
PASSES_ENV = "LOGANALYZER_REPORT_PASSES"


def passes(groups: int) -> int:
    """The passes for ``groups`` groups: GROUPS_PER_PASS each at most (``$PASSES_ENV``
    overrides it)."""
    forced = os.environ.get(PASSES_ENV, "").strip()
    if forced.isdigit() and int(forced) > 0:
        return int(forced)
    return max(1, -(-groups // GROUPS_PER_PASS))


def domain_sql(address: str) -> str:
    """SQL for the lower-case domain of the address ``address``: what follows its last "@" (a
    quoted local part may hold one: '"john@home"@contoso.com'), '' where it has none."""
    return f"lower(if(contains({address}, '@'), split_part({address}, '@', -1), ''))"


def parts_by_hash(key: str, n: int) -> list[str]:
    """SQL conditions that split rows into ``n`` parts by the hash of ``key``: a grouping by
    ``key`` run once per condition holds a part of its groups at a time."""
    return [f"(hash({key}) % {n} = {i})" if n > 1 else "true" for i in range(n)]


def no_progress_bar(con: duckdb.DuckDBPyConnection) -> None:
    # DuckDB draws a progress bar on stdout for slow queries, terminal or not: never ours.
    # Under Jupyter without ipywidgets it refuses the setting, and draws no bar there anyway.
    import duckdb

    with suppress(duckdb.Error):
        con.execute("set enable_progress_bar = false")


#: A Parquet file an error names (DuckDB quotes it).
_NAMED_PART = re.compile(r'"([^"]+\.parquet)"')
#: What DuckDB (and fsspec through it) says of a file that is not there, on any system.
_NOT_THERE = ("No files found", "No such file", "cannot find the file", "not found", "404")


def part_gone(exc: BaseException) -> bool:
    """Whether ``exc`` is a read of a store's part that is no longer there: what a reader
    that listed the parts meets when a compaction or a prune removes them (see
    ``store.compact``); read again on the new manifest, the query finds its rows."""
    import duckdb

    if isinstance(exc, FileNotFoundError):
        return str(exc.filename or "").endswith(".parquet")
    if not isinstance(exc, duckdb.IOException):
        return False
    named = _NAMED_PART.search(str(exc))
    if named is None:
        return False
    if "://" not in named[1]:  # a local part: whether it is there says it, whatever the words
        return not os.path.exists(named[1])
    return any(words in str(exc) for words in _NOT_THERE)


#: What a reader's DuckDB holds in memory before it spills to a temporary folder; DuckDB's own
#: default is 80% of the machine's memory (listing the delivered messages of a 2 GB store
#: took 1 GB, and ten times the mail would take ten).
MEMORY_LIMIT = "256MB"
_spill: tempfile.TemporaryDirectory | None = None


def limits(memory: str = MEMORY_LIMIT) -> dict[str, str]:
    """The DuckDB settings that bound a reader's memory (to ``memory``): the spill folder is
    one temporary folder of the process, removed at its exit."""
    global _spill
    with _shared_lock:
        if _spill is None:
            _spill = tempfile.TemporaryDirectory(prefix="loganalyzer-", ignore_cleanup_errors=True)
    return {"memory_limit": memory, "temp_directory": _spill.name}


_shared: duckdb.DuckDBPyConnection | None = None
_shared_lock = threading.Lock()


def share(database: duckdb.DuckDBPyConnection | None) -> None:
    """Open every later connection as a cursor of ``database`` (None: a database each): a
    long-running reader (the web app) then keeps one database, whose Parquet footers and file
    blocks stay cached from one request to the next. Cursors keep their own (temporary) views."""
    global _shared
    with _shared_lock:
        _shared = database


def shared() -> bool:
    """Whether connections are cursors of one shared database (``share``): its settings
    (memory limit, spill folder, caches) are every request's, set once."""
    with _shared_lock:
        return _shared is not None


def open_connection(store: Store) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that reads the store's files; times come back in UTC."""
    import duckdb  # here: importing it costs every command, tracing or not, a tenth of a second

    with _shared_lock:
        shared = _shared
    con = duckdb.connect(config=limits()) if shared is None else shared.cursor()
    no_progress_bar(con)
    con.execute("set TimeZone = 'UTC'")
    # a lookup scans the same parts more than once (the matches, then their rows): their
    # footers are read once
    con.execute("set parquet_metadata_cache = true")
    store.loc.register(con)  # a URL store is read through its fsspec filesystem
    return con


_kept = threading.local()


@contextmanager
def connection(store: Store) -> Iterator[duckdb.DuckDBPyConnection]:
    """A connection that reads the store's files, for one call: with a shared database
    (``share``), this thread's kept cursor of it (opened once, its views kept: see
    ``kept_views``); else a new connection, closed afterwards. SQL run on it must leave
    nothing behind but the views (``create or replace``)."""
    with _shared_lock:
        database = _shared
    if database is None or getattr(_kept, "busy", False):  # (a call within a call: its own)
        with open_connection(store) as con:
            yield con
        return
    key = (id(database), store.url)
    kept = getattr(_kept, "cursor", None)
    if kept is None or kept[0] != key or kept[1] is not database:
        if kept is not None:
            with suppress(Exception):
                kept[2].close()
        _kept.cursor = kept = (key, database, open_connection(store), {})
    _kept.busy = True
    try:
        yield kept[2]
    except BaseException:
        kept[3].clear()  # a view may have been re-made half way: make them all again
        raise
    finally:
        _kept.busy = False


def kept_views(con: duckdb.DuckDBPyConnection) -> dict | None:
    """The record of the views on ``con`` when it is this thread's kept cursor (the readers
    re-create only the views that change), else None."""
    kept = getattr(_kept, "cursor", None)
    return kept[3] if kept is not None and kept[2] is con else None
