"""Compaction: the many small parts of each day of each table rewritten into few large ones.

An ingest writes one part per day for each large log file and each bundle of small ones
(hourly logs: dozens to hundreds of parts a day).
Compaction rewrites the small parts of a day into parts of up to ``target_mb``, in row groups
of 64k rows sorted by the lookup key (``message_id`` for tracking, ``session_id`` for smtp),
then ``date_time``: min/max statistics then prune a lookup to a row group or two. The parts
keep the statistics and Bloom filters of ingested parts (``store.parts.part_options``).

The manifest model: a compacted part holds the rows of several files (as a bundle's part
does), and every file whose rows it holds lists it among its ``parts``. A file's other manifest
fields (bytes consumed, rows, lookup sketch) describe the file, not its parts, and do not
change; a file that grows is read on from its byte offset into a new part (its own or its
bundle's), listed beside the compacted ones.
Readers take the union of the listed parts (``Store.listed_parts``), so a part listed by many
files is read once; a trace restricted by lookup sketches reads the compacted parts of the
files that may hold the ID, and filters their rows as before.

Atomicity, as for an ingest: new parts are written under temporary names and renamed into
place (unlisted, so invisible), then the manifest is replaced in one step listing the new
parts instead of the old, then the old parts are removed. A kill before the manifest is
replaced leaves the old layout listed and whole; after, the new. What a killed run leaves
(unlisted parts, temporary files) is removed by the next ingest or compaction, under the lock.
A query that read the manifest just before the old parts are removed fails (a missing file,
``store.duck.part_gone``) and can be run again (the web app does so by itself).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loganalyzer.errors import BadInput, StoreError
from loganalyzer.result import Result
from loganalyzer.schema import QUARANTINE, TABLES, conform
from loganalyzer.store import TMP_SUFFIX, Manifest, Part, Store
from loganalyzer.store.duck import no_progress_bar
from loganalyzer.store.parts import (
    FAILPOINT,  # noqa: F401 - set by this name to kill a run
    ROW_GROUP,
    failpoint,
    part_options,
)
from loganalyzer.times import parse_date

#: The size a compacted part grows to; parts of at least half of it are left as they are.
TARGET_MB = 128
#: Rows are sorted by the column lookups use, then time; file and line make the order total.
SORT = {
    "tracking": ("message_id", "date_time"),
    "smtp": ("session_id", "date_time"),
    "agent": ("session_id", "date_time"),
    "connectivity": ("destination", "date_time"),
}
_MANIFEST_EVERY = 1.0


@dataclass
class Partition:
    """What compaction did to one day of one table."""

    table: str
    date: str
    parts_before: int
    parts_after: int
    rows: int
    mb_before: float
    mb_after: float


@dataclass
class CompactSummary(Result):
    """The result of a compaction; ``to_dict()`` is what ``--json`` prints."""

    store: str
    partitions: list[Partition] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "store": self.store,
            "parts_before": sum(p.parts_before for p in self.partitions),
            "parts_after": sum(p.parts_after for p in self.partitions),
            "rows": sum(p.rows for p in self.partitions),
            "seconds": round(self.seconds, 3),
            "cleaned": len(self.cleaned),
            "partitions": [asdict(p) for p in self.partitions],
        }


def _failpoint(stage: str) -> None:
    failpoint(stage)


def compact(
    store: str | os.PathLike[str] | Store | None = None,
    *,
    date: str | None = None,
    target_mb: float = TARGET_MB,
    memory_mb: int = 512,
    on_wait: Callable[[str], None] | None = None,
    rollups: Callable[[Store, Manifest, set[str] | None], object] | None = None,
) -> CompactSummary:
    """Rewrite the small parts of each day (or of ``date``) of each table into few large ones.

    ``rollups``: called last under the lock with the store and its manifest, to build the
    rollups that are out of date or missing (``loganalyzer.report.rollup.refresh``); moving
    rows between parts leaves the others valid.

    ``memory_mb`` bounds the sort's memory (DuckDB spills the rest to a temporary folder).
    Query results do not change; incremental ingest goes on as before.
    """
    started = time.perf_counter()
    if date is not None:  # the store's partitions are UTC days
        date = parse_date(date, "UTC", option="--date").isoformat()
    if target_mb <= 0:
        raise BadInput(f"--target-mb {target_mb}: give a size above 0")
    st = (store if isinstance(store, Store) else Store(store)).require()
    target = int(target_mb * (1 << 20))
    summary = CompactSummary(st.root)
    with st.lock(on_wait=on_wait):
        summary.cleaned = st.clean()
        manifest = st.manifest()
        token = f"{int(time.time()):x}{secrets.token_hex(3)}"
        old: list[str] = []
        last_write = time.monotonic()
        spill = os.path.join(tempfile.gettempdir(), f"loganalyzer-compact-{token}")
        try:
            for (table, day), parts in sorted(_groups(st, manifest, date).items()):
                sizes = st.loc.sizes(f"{table}/date={day}")
                small = [p for p in parts if sizes.get(p, 0) < target / 2]
                if len(small) < 2:
                    continue
                before = sum(sizes.get(p, 0) for p in small)
                new, holders, rows = _rewrite(
                    st, table, day, small, before, target, token, spill, memory_mb
                )
                _failpoint("written")
                st.commit_parts(new)
                _failpoint("renamed")
                _relist(manifest, set(small), [p.final for p in new], holders)
                old += small
                after = sum(st.loc.size(p.final) for p in new)
                summary.partitions.append(
                    Partition(table, day, len(small), len(new), rows, before / 1e6, after / 1e6)
                )
                if time.monotonic() - last_write > _MANIFEST_EVERY:
                    _publish(st, manifest, old)
                    last_write = time.monotonic()
            if old:
                _publish(st, manifest, old)
            if rollups is not None:
                rollups(st, manifest, None)
        except OSError as exc:  # a full disk: pyarrow's errors name no file
            raise StoreError(
                f"could not write to the store {st.root}: {exc.strerror or exc}; compaction "
                "stopped and the store is whole (the days compacted before stay so; the parts "
                "left unlisted are removed by the next ingest or `loganalyzer store check "
                "--repair`)"
            ) from exc
        finally:
            shutil.rmtree(spill, ignore_errors=True)
    summary.seconds = time.perf_counter() - started
    return summary


def _groups(st: Store, manifest: Manifest, only: str | None) -> dict:
    """Listed parts by (table, date)."""
    out: dict[tuple[str, str], list[str]] = {}
    for rel in st.listed_parts(manifest=manifest):
        table, _, rest = rel.partition("/")
        if table not in TABLES or not rest.startswith("date="):
            continue
        day = rest[5:].split("/", 1)[0]
        if only is None or day == only:
            out.setdefault((table, day), []).append(rel)
    return out


def _publish(st: Store, manifest: Manifest, old: list[str]) -> None:
    """Replace the manifest (the commit point), then remove the parts it no longer lists."""
    st.write_manifest(manifest)
    _failpoint("listed")
    half = len(old) // 2
    st.remove(old[:half])
    _failpoint("removing")
    st.remove(old[half:])
    old.clear()


def _relist(
    manifest: Manifest, old: set[str], new: list[str], holders: dict[str, set[str]]
) -> None:
    """Each file that listed an old part lists instead the new parts holding its rows."""
    for row in manifest.values():
        parts = row.parts
        if not old.intersection(parts):
            continue
        paths = set(row.paths)
        # a row's file column is one of its file's paths; a part found by none: list them all
        mine = [p for p in new if holders[p] & paths] or new
        row.parts = sorted({*(p for p in parts if p not in old), *mine})


def _rewrite(
    st: Store,
    table: str,
    day: str,
    parts: list[str],
    size: int,
    target: int,
    token: str,
    spill: str,
    memory_mb: int,
) -> tuple[list[Part], dict[str, set[str]], int]:
    """Write the rows of ``parts``, sorted, into new parts under temporary names."""
    con = duckdb.connect(
        config={
            "memory_limit": f"{memory_mb}MB",
            "temp_directory": spill,  # created and removed by DuckDB when it spills
        }
    )
    out = None
    try:
        no_progress_bar(con)
        con.execute("set TimeZone = 'UTC'")
        st.loc.register(con)
        files = ", ".join("'" + st.uri(p).replace("'", "''") + "'" for p in parts)
        source = f"read_parquet([{files}], union_by_name = true, hive_partitioning = false)"
        rows = con.sql(f"select count(*) from {source}").fetchall()[0][0]
        outputs = max(1, math.ceil(size / target))
        per_part = max(1, math.ceil(rows / outputs / ROW_GROUP)) * ROW_GROUP
        out = _Output(st, table, day, token, per_part, rows)
        keys = ", ".join(f"{c} nulls last" for c in (*SORT[table], "file", "line"))
        for batch in con.sql(f"select * from {source} order by {keys}").to_arrow_reader(ROW_GROUP):
            out.add(batch)
        out.close()
        return out.parts, out.holders, rows
    except BaseException:
        if out is not None:
            out.abort()
        raise
    finally:
        con.close()


class _Output:
    """Sorted rows into parts of up to ``per_part`` rows, in row groups of ``ROW_GROUP``."""

    def __init__(
        self, st: Store, table: str, day: str | None, token: str, per_part: int, rows: int
    ) -> None:
        self.st, self.token = st, token
        # a day's folder of a log table; the quarantine's parts (``day`` None) have none
        self.folder = table if day is None else f"{table}/date={day}"
        self.schema = TABLES[table] if day is not None else QUARANTINE
        self.per_part = per_part
        self.options = part_options(table, min(per_part, rows))  # Bloom filters sized
        self.parts: list[Part] = []
        self.holders: dict[str, set[str]] = {}  # part -> the files (paths) whose rows it holds
        self._writer: pq.ParquetWriter | None = None
        self._in_part = 0
        self._pending: list[pa.RecordBatch] = []
        self._buffered = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self._pending.append(batch)
        self._buffered += batch.num_rows
        while self._buffered >= ROW_GROUP:
            self._flush()

    def close(self) -> None:
        while self._buffered:
            self._flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def abort(self) -> None:
        if self._writer is not None:
            with suppress(OSError):
                self._writer.close()
        with suppress(OSError):
            self.st.remove([p.tmp for p in self.parts])

    def _flush(self) -> None:
        """Write one row group (the last may be short)."""
        n = min(ROW_GROUP, self.per_part - self._in_part, self._buffered)
        chunk = pa.Table.from_batches(self._pending)
        head, rest = chunk.slice(0, n), chunk.slice(n)
        self._pending, self._buffered = rest.to_batches(), rest.num_rows
        if self._writer is None:
            final = f"{self.folder}/compact-{self.token}-{len(self.parts)}.parquet"
            part = Part(f"{final}.{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}", final, 0)
            self.parts.append(part)
            self.holders[final] = set()
            self._writer = self.st.parquet_writer(part.tmp, self.schema, **self.options)
        head = conform(head.combine_chunks(), self.schema)
        self._writer.write_table(head, row_group_size=ROW_GROUP)
        self.parts[-1].rows += n
        self.holders[self.parts[-1].final].update(
            v for v in pc.unique(head.column("file")).to_pylist() if v is not None
        )
        self._in_part += n
        if self._in_part >= self.per_part:
            self._writer.close()
            self._writer, self._in_part = None, 0


@dataclass
class PrunedDay:
    """What ``prune`` removes of one UTC day: its rows by table (``other``: the tables but
    tracking and SMTP), its parts and their bytes; ``rollup_kept``: the day's rollup is kept,
    the only record of it (a day of other rows alone has none)."""

    date: str
    tracking: int = 0
    smtp: int = 0
    other: int = 0
    parts: int = 0
    bytes: int = 0
    rollup_kept: bool = False


@dataclass
class PruneSummary(Result):
    """What ``prune`` did (or, ``dry_run``, would do); ``to_dict()`` is what ``--json``
    prints."""

    store: str
    before: str
    days: list[str] = field(default_factory=list)
    parts: int = 0
    rows: int = 0
    bytes: int = 0
    #: The files whose rows go (some or all of them), by the first path each was read from.
    files: list[str] = field(default_factory=list)
    per_day: list[PrunedDay] = field(default_factory=list)
    rollups_built: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    @property
    def rollups_kept(self) -> list[str]:
        """The pruned days whose rollups are kept as their only record."""
        return [d.date for d in self.per_day if d.rollup_kept]

    def to_dict(self) -> dict:
        return {
            "store": self.store,
            "before": self.before,
            "dry_run": self.dry_run,
            "days": self.days,
            "parts_removed": self.parts,
            "rows_removed": self.rows,
            "rows_by_table": {
                t: sum(getattr(d, t) for d in self.per_day) for t in ("tracking", "smtp", "other")
            },
            "bytes_removed": self.bytes,
            "files": self.files,
            "rollups_kept": self.rollups_kept,
            "rollups_built": self.rollups_built,
            "per_day": [asdict(d) for d in self.per_day],
            "seconds": round(self.seconds, 3),
        }


def prune(
    store: str | os.PathLike[str] | Store | None = None,
    before: str = "",
    *,
    dry_run: bool = False,
    rollups: Callable[[Store, Manifest, set[str] | None], object] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> PruneSummary:
    """Remove the rows of the UTC days before ``before`` (every log table), keeping their
    rollups as the record of those days; quarantined lines and the manifest's files stay (a
    file is not read again). ``rollups`` (``loganalyzer.report.rollup.refresh``) first brings
    the rollups up to date; without it a day to prune without a current rollup is refused.
    ``dry_run``: only say what would go, from the same plan; it reads, takes no lock and
    builds nothing, so a read-only store answers too.

    Atomic as compaction: the rollup indexes mark the days (``rollups.PRUNING``), then the
    manifest is replaced listing the remaining parts, then the old parts are removed and the
    marks made ``kept``.
    """
    from loganalyzer.store import addresses
    from loganalyzer.store import rollups as store_rollups

    started = time.perf_counter()
    day = parse_date(before, "UTC", option="--before").isoformat()
    today = dt.datetime.now(dt.UTC).date().isoformat()
    if day > today:  # a typo (2030 for 2020) would remove every row, today's too
        raise BadInput(
            f"--before {before}: {day} is after today ({today}, UTC): it would remove every "
            "row; give a day up to today"
        )
    st = (store if isinstance(store, Store) else Store(store)).require()
    summary = PruneSummary(st.root, day, dry_run=dry_run)
    if dry_run:  # the rollups a refresh would build are counted kept, not built
        manifest = st.manifest()
        state = store_rollups.status(st, manifest)
        if rollups is not None:  # the days whose rollups the prune would build first
            summary.rollups_built = sorted(state["stale"] + state["missing"])
        _plan(st, manifest, state, summary, building=bool(rollups))
        summary.seconds = time.perf_counter() - started
        return summary
    with st.lock(on_wait=on_wait):
        st.clean()
        manifest = st.manifest()
        if rollups is not None:
            summary.rollups_built = list(rollups(st, manifest, None) or [])
        index = store_rollups.load(st)
        state = store_rollups.status(st, manifest, index)
        valid = set(state["current"])
        aggregates = {kind: store_rollups.load(st, kind) for kind in store_rollups.AGGREGATES}
        aggregates_valid = {
            kind: set(store_rollups.status(st, manifest, got, kind)["current"])
            for kind, got in aggregates.items()
        }
        counts = _plan(st, manifest, state, summary, building=False)
        if not counts:
            summary.seconds = time.perf_counter() - started
            return summary
        _unlist(manifest, counts)
        # marked, not yet kept: a kill before the manifest leaves them what they were
        for d in summary.days:
            if d in index:
                store_rollups.pruning(index[d])
        store_rollups.rekey(manifest, index, sorted(d for d in valid if d >= day))
        # the SMTP clients' and TLS aggregates of the pruned days are kept too (clients by
        # first and last seen over the whole history, TLS peers over long periods), and the
        # current ones after them stay current, as rollups do
        for kind, got in aggregates.items():
            for d in summary.days:
                if d in got and d in aggregates_valid[kind]:
                    store_rollups.pruning(got[d])
            after = sorted(d for d in aggregates_valid[kind] if d >= day)
            store_rollups.rekey(manifest, got, after, kind)
            store_rollups.save(st, got, kind)
        store_rollups.save(st, index)
        _failpoint("prune-indexed")
        _publish(st, manifest, sorted(counts))
        for kind in (store_rollups.ROLLUPS, *store_rollups.AGGREGATES):  # now kept
            store_rollups.settle(st, manifest, kind)
        # the address index of the pruned days goes (a kill before leaves it out of date)
        addresses.refresh(st, manifest, set())
        # and the aggregates of pruned days that were not current (rows gone)
        have = store_rollups.row_days(manifest)
        for kind, got in aggregates.items():
            gone = sorted(
                d for d, e in got.items() if d not in have and not store_rollups.is_kept(e, have)
            )
            if gone:
                store_rollups.commit(st, manifest, {}, kind, drop=gone)
    summary.seconds = time.perf_counter() - started
    return summary


def _plan(
    st: Store,
    manifest: Manifest,
    state: dict[str, list[str]],
    summary: PruneSummary,
    *,
    building: bool,
) -> dict[str, list[dict]]:
    """What pruning the days before ``summary.before`` removes, into ``summary`` (the figures
    a prune and its dry run give); returns the parts to remove, each with its rows counted by
    the ``file`` column's value. ``state``: the rollups' ``status``; a day to prune without a
    current rollup is refused unless ``building`` (a refresh builds it first)."""
    from loganalyzer.store import rollups as store_rollups

    day = summary.before
    lacking = [d for d in state["stale"] + state["missing"] if d < day]
    if lacking and not building:
        raise BadInput(
            f"--before {day}: {len(lacking)} days to prune have no current rollup (first "
            f"{lacking[0]}): run `loganalyzer store compact` first"
        )
    with_rollup = store_rollups.row_days(manifest)  # tracking or SMTP rows: a rollup each
    counts: dict[str, list[dict]] = {}
    days: dict[str, PrunedDay] = {}
    for (table, d), parts in sorted(_groups(st, manifest, None).items()):
        if d >= day:
            continue
        sizes = st.loc.sizes(f"{table}/date={d}")
        entry = days.setdefault(d, PrunedDay(d, rollup_kept=d in with_rollup))
        for rel in parts:
            # read in this thread: pyarrow's readers left on a Python file at exit aborted
            # the process ("terminate called without an active exception", after its output)
            with st.loc.open(rel) as fh:
                read = pq.read_table(fh, columns=["file"], use_threads=False, pre_buffer=False)
            files = read.column("file")
            counts[rel] = pc.value_counts(files).to_pylist()
            column = table if table in ("tracking", "smtp") else "other"
            setattr(entry, column, getattr(entry, column) + len(files))
            entry.parts += 1
            entry.bytes += sizes.get(rel, 0)
    summary.per_day = [days[d] for d in sorted(days)]
    summary.days = sorted(days)
    summary.parts = len(counts)
    summary.rows = sum(d.tracking + d.smtp + d.other for d in summary.per_day)
    summary.bytes = sum(d.bytes for d in summary.per_day)
    summary.files = sorted(
        row.paths[0] for row in manifest.values() if row.paths and counts.keys() & set(row.parts)
    )
    return counts


def _unlist(manifest: Manifest, counts: dict[str, list[dict]]) -> None:
    """Take the parts of ``counts`` (``_plan``'s) off the manifest's files, with their rows (a
    compacted part's rows counted to the files whose path its ``file`` column names)."""
    by_path = {p: key for key, row in manifest.items() for p in row.paths}
    for rel in sorted(counts):
        holders = [k for k, row in manifest.items() if rel in row.parts]
        for c in counts[rel]:
            key = by_path.get(c["values"])
            key = key if key in holders else holders[0]
            manifest[key].rows = (manifest[key].rows or 0) - c["counts"]
        for k in holders:
            manifest[k].parts = [p for p in manifest[k].parts if p != rel]
