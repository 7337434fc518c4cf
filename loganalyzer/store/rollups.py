"""Rollups: per-day aggregates of the tracking rows, for reports over long periods.

Layout: ``rollup/date=YYYY-MM-DD/<token>.parquet``, one part per UTC day (its rows in the
columns of ``ROLLUP``), and the index ``rollups.parquet``: one row per day with its part and
the ``source`` it was built from. What a day's figures are is the report's (it builds them
with its own queries); this module keeps them in the store under the commit protocol.

A day's rollup is read from the tracking rows of that day and of the day before it (where the
first receipt of a message delivered after midnight is found), so ``source`` is a digest of
the files (key and bytes consumed) that hold tracking or SMTP rows of those two days. A rollup whose
source differs from the manifest's is out of date (a kill between an ingest's manifest and
its rollups, or a store written before rollups): readers compute that day from its rows, and
the next ingest or ``store compact`` rebuilds it. Compaction moves rows between parts but not
between files, so rollups stay valid. ``store prune`` marks the rollups of the days whose
rows it removes as ``kept``: they are then the only record of those days. It marks them
``pruning:<source>`` before its manifest drops their rows and ``kept`` after: a mark of a
day whose rows the manifest still lists (a prune killed before its manifest) is the source
it had, one of a day without rows is kept. The day after them, whose part was built with
their rows, is marked ``rekeyed:<source>:<new source>`` likewise: the source it had while the
day before has rows, the new one once it has none. ``settle`` writes that down, under the lock,
before any writer changes the manifest (the mark alone could not tell, once the rows of
such a day changed, whether the prune had removed them).

Commit: new parts under temporary names, renamed into place (unlisted), then the index
replaced in one step, then the parts it no longer lists removed.

The address index (``store.addresses``) and the SMTP clients', TLS and SMTP line count
per-day aggregates (``CLIENTS``, ``TLS``, ``SMTP_LINES``) are kept the same way: a ``Kind``
names a table of per-day parts (its folder, index file, columns, and whether a day is read
with the day before or after it); every function here takes one (rollups by default).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import time
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loganalyzer.errors import StoreError
from loganalyzer.store.duck import open_connection, read_parquet, records
from loganalyzer.store.manifest import Manifest
from loganalyzer.store.parts import TMP_SUFFIX, failpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    import pyarrow as pa

    from loganalyzer.store import Store

INDEX_FILE = "rollups.parquet"
FOLDER = "rollup"
#: The ``source`` of a day whose rows were pruned: its rollup is the record of that day.
KEPT = "kept"
#: The ``source`` prefix of a day whose rows ``store prune`` is removing, before its source:
#: kept once the manifest no longer lists the day's rows, that source while it does.
PRUNING = "pruning:"
#: The ``source`` prefix of a day after those ``store prune`` is removing, before the source its
#: part had and the one the prune gives it (``rekey``): that one once the manifest no longer
#: lists the rows of the day before, the first while it does.
REKEYED = "rekeyed:"
#: The tables rollups are built from.
SOURCES = ("tracking", "smtp")


def rollup_schema() -> pa.Schema:
    """The columns of a rollup part: one row per figure, its keys and its counts.

    ``measure`` names what a row counts (the report's long-period module defines them);
    ``hour`` the UTC hour it falls in, where it is counted per hour; ``key``/``key2`` its
    keys (a sender and its domain, a status code and its text...); ``value`` a latency in
    seconds; ``n`` recipients or rows, ``messages`` distinct messages, ``bytes`` their sizes.
    """
    import pyarrow as pa

    return pa.schema(
        [
            ("measure", pa.string()),
            ("hour", pa.timestamp("ms", tz="UTC")),
            ("key", pa.string()),
            ("key2", pa.string()),
            ("value", pa.float64()),
            ("n", pa.int64()),
            ("messages", pa.int64()),
            ("bytes", pa.int64()),
        ]
    )


@dataclass(frozen=True)
class Kind:
    """A table of per-day parts kept under the commit protocol: rollups, the address index."""

    #: Its name in failpoints (``<name>-renamed``, ``<name>-indexed``) and messages.
    name: str
    index_file: str
    folder: str
    schema: Callable[[], pa.Schema]
    #: Whether a day's part is built from the day before it too (its ``source`` then
    #: covers both days).
    lookback: bool = True
    #: Whether it is built from the day after it too (its ``source`` then covers that day).
    lookahead: bool = False
    #: Rows per row group of a part (None: the writer's default).
    row_group: int | None = None
    #: What the parts hold, in the ``source`` digest: a part another version built (other
    #: columns) is out of date.
    version: str = ""


#: ``version``: change it when the report's measures or the verdict rules (``fate``) change (a
#: rollup built before then lacks them: out of date, rebuilt by the next ingest or compaction;
#: a kept one stays as it is). 3: Exchange Online's statuses decide verdicts. 4: Graph's
#: Recalled drops a recipient. 5: an Enhanced summary row is one recipient's (its own verdict)
#: and receives the message. 6: Exchange Online's Send is a send, its Expand expands a list.
#: 7: still deferred at the day's end looks back two days (``report.metrics.PENDING_DAYS``);
#: a failed login is counted once per attempt, from Exchange's "Inbound AUTH ... failed" line
#: too (a client gone during the tarpit gets no 535). 8: of a recipient's outcomes at one
#: instant only those that decide (``fate.SETTLES``) count.
ROLLUPS = Kind("rollups", INDEX_FILE, FOLDER, rollup_schema, version="8")


def clients_schema() -> pa.Schema:
    """The columns of a part of the SMTP clients' per-day aggregates (the report's clients
    section defines them): per client and what its sessions showed (EHLO name, user, TLS
    version, the domains of its messages' accepted recipients), the messages and the first
    and last time one was accepted."""
    import pyarrow as pa

    t = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("connector", pa.string()),
            ("remote_ip", pa.string()),
            ("ehlo", pa.string()),
            ("auth_user", pa.string()),
            ("tls", pa.string()),
            ("domains", pa.list_(pa.string())),
            ("messages", pa.int64()),
            ("first_seen", t),
            ("last_seen", t),
        ]
    )


#: The SMTP clients' per-day aggregates: a day's part holds the sessions that submitted
#: first on that day, read with the day before and the day after (a session across
#: midnight); ``version``: change it with the columns or what they hold.
CLIENTS = Kind("clients", "clients.parquet", "clients", clients_schema, lookahead=True, version="1")


def tls_schema() -> pa.Schema:
    """The columns of a part of the TLS per-day aggregates (the report's TLS section defines
    them): the sessions connected that day per UTC hour, direction, connector, peer (remote IP
    and host name), TLS version, cipher and error, with the first and last connect time."""
    import pyarrow as pa

    t = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("hour", t),
            ("direction", pa.string()),
            ("connector", pa.string()),
            ("remote_ip", pa.string()),
            ("host", pa.string()),
            ("version", pa.string()),
            ("cipher", pa.string()),
            ("error", pa.string()),
            ("sessions", pa.int64()),
            ("first_seen", t),
            ("last_seen", t),
        ]
    )


#: The TLS per-day aggregates: a day's part holds the sessions connected that day, read with
#: the first hour of the day after (a session that starts before midnight negotiates after
#: it); per UTC hour, so that the whole hours of a day give a day of a zone whole hours from
#: UTC; ``version``: change it with the columns or what they hold.
TLS = Kind("tls", "tls.parquet", "tls", tls_schema, lookback=False, lookahead=True, version="2")


def smtp_lines_schema() -> pa.Schema:
    """The columns of a part of the SMTP per-day line counts (the report's sessions module
    defines them): the lines per server, log format, direction, remote IP, UTC hour, reply code
    and its enhanced status code, and kind (a session's connect line, a TLS command, a failed
    login) and the message a line ends (accepted, refused, deferred), with the first and last
    line's time."""
    import pyarrow as pa

    t = pa.timestamp("us", tz="UTC")
    return pa.schema(
        [
            ("server", pa.string()),
            ("log_format", pa.string()),
            ("direction", pa.string()),
            ("remote_ip", pa.string()),
            ("hour", t),
            ("reply_code", pa.int32()),
            ("enhanced", pa.string()),
            ("kind", pa.string()),
            ("message", pa.string()),
            ("lines", pa.int64()),
            ("first_seen", t),
            ("last_seen", t),
        ]
    )


#: The SMTP per-day line counts: a day's part holds the lines of that day, but whether a line
#: is a failed login, or a send reply ends a message, is read from its session's lines of the
#: hour before too (the day before: ``lookback``); ``version``: change it with the columns or
#: what they hold. 2: the ``auth`` kind (one per attempt, Exchange's "Inbound AUTH ... failed"
#: lines too). 3: the message a line ends. 4: an Exchange session's TLS is counted on its
#: connect line, read from the day after too (``lookahead``: a session across midnight).
#: 5: a reply's enhanced status code (``enhanced``).
SMTP_LINES = Kind(
    "smtp-lines", "smtp_lines.parquet", "smtp_lines", smtp_lines_schema, lookahead=True,
    version="5",
)  # fmt: skip
#: The kinds kept like the SMTP clients' aggregates: built from the rows around each day,
#: kept by ``store prune`` for the days it removes.
AGGREGATES = (CLIENTS, TLS, SMTP_LINES)


@dataclass
class Entry:
    """A day's rollup: its part and the source it was built from."""

    date: str
    part: str
    source: str


Index = dict[str, Entry]


def row_days(manifest: Manifest) -> dict[str, set[str]]:
    """The UTC days that have tracking or SMTP rows (what rollups are built from), each with
    the file keys holding them."""
    out: dict[str, set[str]] = {}
    for key, row in manifest.items():
        for p in row.parts:
            table, _, rest = p.partition("/date=")
            if table in SOURCES and rest:
                out.setdefault(rest.split("/", 1)[0], set()).add(key)
    return out


def files_of(manifest: Manifest, days: set[str]) -> list:
    """The manifest rows of the files with rows on any of ``days`` (``YYYY-MM-DD``): what a
    reader of those days needs, not every file of the store."""
    out = []
    for row in manifest.values():
        for p in row.parts:
            _, _, rest = p.partition("/date=")
            if rest and rest.split("/", 1)[0] in days:
                out.append(row)
                break
    return out


def built_from(days, kind: Kind) -> set[str]:
    """``days`` and the days their parts of ``kind`` are built from too: the day before each
    (``kind.lookback``) and the day after (``kind.lookahead``)."""
    out = set(days)
    for d in days:
        day = dt.date.fromisoformat(d)
        if kind.lookback:
            out.add((day - dt.timedelta(days=1)).isoformat())
        if kind.lookahead:
            out.add((day + dt.timedelta(days=1)).isoformat())
    return out


def with_day_before(days) -> set[str]:
    """``days`` and the day before each (a day's rollup looks back one day)."""
    return built_from(days, ROLLUPS)


def source(
    manifest: Manifest,
    day: str,
    days: dict[str, set[str]] | None = None,
    kind: Kind = ROLLUPS,
) -> str:
    """The digest of what ``day``'s part is built from (see the module's docstring)."""
    days = row_days(manifest) if days is None else days
    before = (dt.date.fromisoformat(day) - dt.timedelta(days=1)).isoformat()
    after = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
    keys = sorted(
        days.get(day, set())
        | (days.get(before, set()) if kind.lookback else set())
        | (days.get(after, set()) if kind.lookahead else set())
    )
    h = hashlib.blake2b(digest_size=8)
    h.update(kind.version.encode())
    for k in keys:
        h.update(f"{k}:{manifest[k].bytes_consumed};".encode())
    return h.hexdigest()


def load(store: Store, kind: Kind = ROLLUPS, con=None) -> Index:
    """The index of ``kind`` (empty when the store has none); read with ``con`` when given."""
    if not store.loc.exists(kind.index_file):
        return {}
    own = con is None
    con = open_connection(store) if own else con
    try:
        rows = records(con.sql(f"select * from {read_parquet([store.uri(kind.index_file)])}"))
    finally:
        if own:
            con.close()
    return {r["date"]: Entry(r["date"], r["part"], r["source"]) for r in rows}


def save(store: Store, index: Index, kind: Kind = ROLLUPS) -> None:
    """Replace the index atomically (a temporary file, then a rename)."""
    import pyarrow as pa

    rows = [index[d] for d in sorted(index)]
    table = pa.table(
        {
            "date": [e.date for e in rows],
            "part": [e.part for e in rows],
            "source": [e.source for e in rows],
        }
    )
    tmp = f"{kind.index_file}.{os.getpid()}{TMP_SUFFIX}"
    store.loc.check_lock()
    try:
        store.write_parquet(tmp, table, compression="zstd")
        store.loc.sync(tmp)
        store.loc.replace(tmp, kind.index_file)
    except OSError as exc:
        with suppress(OSError):
            store.loc.remove([tmp])
        raise StoreError(
            f"could not write the {kind.name} index of {store.root}: {exc.strerror or exc}"
        ) from exc


#: Days without a part that an ingest builds on its way (a run killed before its first parts,
#: a store written before this kind existed); more, months of an old store, are left to
#: `store compact`, which builds them all.
MISSING_NOW = 7


def due(
    state: dict[str, list[str]], touched: set[str] | None, also: set[str] = frozenset()
) -> set[str]:
    """The days a refresh builds, from ``status``: those out of date, and those without a part
    (all of them with ``touched`` None or when at most ``MISSING_NOW``, else those touched, and
    ``also``)."""
    todo = set(state["stale"])
    if touched is None or len(state["missing"]) <= MISSING_NOW:
        return todo | set(state["missing"])
    return todo | (set(touched) & set(state["missing"])) | set(also)


def status(
    store: Store,
    manifest: Manifest,
    index: Index | None = None,
    kind: Kind = ROLLUPS,
    days: dict[str, set[str]] | None = None,
) -> dict[str, list[str]]:
    """Days by the state of their part: ``current``, ``kept`` (rows pruned), ``stale``
    (built from other rows than the store holds) and ``missing`` (rows but no part).
    ``days``: ``row_days(manifest)``, when the caller has it (a manifest of thousands of
    files takes a few hundredths of a second to go through)."""
    index = load(store, kind) if index is None else index
    days = row_days(manifest) if days is None else days
    out: dict[str, list[str]] = {"current": [], "kept": [], "stale": [], "missing": []}
    for day in sorted(set(days) | set(index)):
        out[state_of(manifest, day, index.get(day), days, kind)].append(day)
    return out


def state_of(
    manifest: Manifest,
    day: str,
    entry: Entry | None,
    days: dict[str, set[str]] | None = None,
    kind: Kind = ROLLUPS,
) -> str:
    """The state of ``day``'s part ``entry`` (one of ``status``'s keys); a ``PRUNING`` mark
    is kept when the day has no rows, else the source it carries."""
    if entry is None:
        return "missing"
    days = row_days(manifest) if days is None else days
    mark = resolved(entry, days)
    if mark == KEPT:
        return "kept"
    return "current" if mark == source(manifest, day, days, kind) else "stale"


def is_kept(entry: Entry, days: dict[str, set[str]]) -> bool:
    """Whether ``entry`` is the record of a pruned day (``days``: ``row_days``)."""
    return resolved(entry, days) == KEPT


def resolved(entry: Entry, days: dict[str, set[str]]) -> str:
    """The source ``entry`` stands for (``days``: ``row_days``): a ``PRUNING`` mark is
    ``KEPT`` once the manifest no longer lists the day's rows (the prune's manifest was
    written), the source it carries while it does (the prune was stopped before); a
    ``REKEYED`` mark is the prune's new source once the day before has no rows, the old one
    while it has."""
    if entry.source.startswith(REKEYED):
        before, _, after = entry.source[len(REKEYED) :].partition(":")
        day_before = (dt.date.fromisoformat(entry.date) - dt.timedelta(days=1)).isoformat()
        return before if day_before in days else after
    if not entry.source.startswith(PRUNING):
        return entry.source
    return KEPT if entry.date not in days else entry.source[len(PRUNING) :]


def pruning(entry: Entry) -> None:
    """Mark ``entry``'s day as one whose rows ``store prune`` is removing (``PRUNING``); a
    day kept already stays kept."""
    if entry.source != KEPT and not entry.source.startswith(PRUNING):
        entry.source = PRUNING + entry.source


def settle(store: Store, manifest: Manifest, kind: Kind = ROLLUPS) -> list[str]:
    """Resolve the ``PRUNING`` and ``REKEYED`` marks of ``kind`` against ``manifest`` (under
    the lock, before the manifest changes): what they stand for (``resolved``). Returns the
    days kept."""
    index = load(store, kind)
    marked = [e for e in index.values() if e.source.startswith((PRUNING, REKEYED))]
    if not marked:
        return []
    days = row_days(manifest)
    kept = []
    for e in marked:
        e.source = resolved(e, days)
        if e.source == KEPT:
            kept.append(e.date)
    save(store, index, kind)
    return kept


def commit(
    store: Store,
    manifest: Manifest,
    tables: dict[str, pa.Table],
    kind: Kind = ROLLUPS,
    drop: list[str] = (),
) -> None:
    """Write the parts of these days (built from the store as ``manifest`` lists it) and
    replace their entries in the index, and take the days ``drop`` off it; under the
    store's lock."""
    index = load(store, kind)
    days = row_days(manifest)
    token = f"{int(time.time()):x}{secrets.token_hex(3)}"
    schema = kind.schema()
    options = {} if kind.row_group is None else {"row_group_size": kind.row_group}
    old = [index.pop(d).part for d in drop if d in index]
    for day, table in sorted(tables.items()):
        final = f"{kind.folder}/date={day}/{token}.parquet"
        tmp = f"{final}.{os.getpid()}{TMP_SUFFIX}"
        store.write_parquet(tmp, table.cast(schema) if table.schema != schema else table, **options)
        store.loc.replace(tmp, final)
        if day in index:
            old.append(index[day].part)
        index[day] = Entry(day, final, source(manifest, day, days, kind))
    failpoint(f"{kind.name}-renamed")
    save(store, index, kind)
    failpoint(f"{kind.name}-indexed")
    store.remove([p for p in old if p not in {e.part for e in index.values()}])


def rekey(manifest: Manifest, index: Index, valid: list[str], kind: Kind = ROLLUPS) -> None:
    """Give the days in ``valid`` the source ``manifest`` gives them: after a prune removed
    the rows of the day before them, their part, built with those rows, stays the better
    record of them (a rebuild would no longer see what began the day before). A changed
    source is a ``REKEYED`` mark with the one it had: a prune stopped before its manifest
    leaves the day as it was."""
    days = row_days(manifest)
    for day in valid:
        entry = index.get(day)
        if entry is None or entry.source == KEPT or entry.source.startswith((PRUNING, REKEYED)):
            continue
        new = source(manifest, day, days, kind)
        if new != entry.source:
            entry.source = f"{REKEYED}{entry.source}:{new}"


def listed(store: Store, kind: Kind = ROLLUPS) -> set[str]:
    """The parts the index lists."""
    return {e.part for e in load(store, kind).values()}


def clean(store: Store, kind: Kind = ROLLUPS) -> list[str]:
    """Remove temporary files and parts the index does not list (under the lock)."""
    keep = listed(store, kind)
    gone = [
        rel
        for rel in store.loc.files(kind.folder)
        if rel.endswith(TMP_SUFFIX) or (rel.endswith(".parquet") and rel not in keep)
    ]
    gone += store.loc.glob(f"{kind.index_file}.*{TMP_SUFFIX}")
    store.loc.remove(gone)
    store.loc.prune(kind.folder)
    return gone
