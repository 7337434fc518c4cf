"""Forgetting ingested files: their rows and quarantined lines taken out of the store and their
manifest rows removed, so that the next ingest reads them again (with another ``--tz``,
``--server`` or ``--format``, or after a fix to a reader).

A file's own parts are removed; a part it shares (a bundle of small files, a compacted part)
is rewritten without its rows, as compaction rewrites parts. Atomic as compaction: the new
parts are renamed into place unlisted, then the manifest is replaced in one step (the commit
point), then the old parts are removed; a kill leaves the store as before or forgotten. The
rollups and other per-day aggregates of the days the files touched are then rebuilt.
"""

from __future__ import annotations

import fnmatch
import math
import ntpath
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import nullcontext
from dataclasses import dataclass, field

import duckdb

from loganalyzer.errors import BadInput
from loganalyzer.result import Result
from loganalyzer.schema import MEMBER_SEP, table_columns
from loganalyzer.store import Manifest, Part, Store
from loganalyzer.store.check import check
from loganalyzer.store.compact import ROW_GROUP, _failpoint, _Output, _publish, _relist
from loganalyzer.store.duck import no_progress_bar
from loganalyzer.store.manifest import Identity


@dataclass
class ForgetSummary(Result):
    """What ``forget`` did (or, ``dry_run``, would do); ``to_dict()`` is what ``--json``
    prints."""

    store: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    quarantined: int = 0
    parts_removed: int = 0
    parts_rewritten: int = 0
    days: list[str] = field(default_factory=list)
    dry_run: bool = False
    seconds: float = 0.0

    def __repr__(self) -> str:
        # a notebook shows the last value of a cell: one line, not every path
        verb = "would forget" if self.dry_run else "forgot"
        return (
            f"ForgetSummary({self.store!r}: {verb} {len(self.files):,} files, {self.rows:,} "
            f"rows, {self.quarantined:,} quarantined lines; .files lists them)"
        )

    def to_dict(self) -> dict:
        return {
            "store": self.store,
            "dry_run": self.dry_run,
            "files": self.files,
            "rows": self.rows,
            "quarantined": self.quarantined,
            "parts_removed": self.parts_removed,
            "parts_rewritten": self.parts_rewritten,
            "days": self.days,
            "seconds": round(self.seconds, 3),
        }


def matches(recorded: str, wanted: str, *, pattern: bool = True) -> bool:
    """Whether the path an ingest recorded (as it was given, perhaps relative to another
    folder) is ``wanted``: the same file, a file under that folder or archive, or, where
    ``pattern``, a name the glob pattern ``wanted`` matches. Compared with either slash,
    and without case on Windows."""
    windows = os.name == "nt" or "\\" in recorded or "\\" in wanted
    norm = ntpath.normpath if windows else os.path.normpath

    def forms(p: str) -> set[str]:
        out = {norm(p), norm(os.path.abspath(p))}
        return {o.lower() for o in out} if windows else out

    mine, theirs = forms(recorded), forms(wanted)
    if mine & theirs:
        return True
    seps = ("\\", "/", MEMBER_SEP) if windows else ("/", MEMBER_SEP)
    if any(m.startswith(t.rstrip("\\/") + s) for m in mine for t in theirs for s in seps):
        return True
    return (
        pattern
        and any(ch in wanted for ch in "*?[")
        and any(fnmatch.fnmatchcase(m, t) for m in mine for t in theirs)
    )


def forget(
    store: str | os.PathLike[str] | Store | None,
    paths: Iterable[str],
    *,
    heads: Mapping[str, list[bytes]] | None = None,
    literal: Iterable[str] = (),
    dry_run: bool = False,
    damaged: bool = False,
    rollups: Callable[[Store, Manifest, set[str] | None], object] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> ForgetSummary:
    """Take the files ``paths`` (files, folders or archives they were read from, or glob
    patterns, as ``ingest`` was given them) out of the store: their rows and quarantined
    lines, and their manifest rows. ``heads``: by path, the first bytes (``manifest.HEAD``)
    of the logs it names here: a log is then known by its content, as ingest knows it,
    whatever folder the ingest ran from (the paths recorded are as it was given them).
    ``literal``: those of ``paths`` that are paths here, never glob patterns (``Logs [2024]``).
    ``damaged``: also every file whose rows a damaged part
    held (missing or unreadable, as ``store check`` finds them): the parts go unread, and the
    files can be ingested again. ``dry_run``: only say what would go (it reads, takes no
    lock and changes nothing: a read-only store answers too). ``rollups``
    (``loganalyzer.report.rollup.refresh``) rebuilds the days' aggregates afterwards.
    BadInput names a path that matches no ingested file."""
    started = time.perf_counter()
    wanted, literal = list(paths), set(literal)
    if (not wanted and not damaged) or any(not p.strip() for p in wanted):
        raise BadInput(
            "give the paths of ingested log files, folders or patterns to forget (or --damaged)"
        )
    st = (store if isinstance(store, Store) else Store(store)).require()
    summary = ForgetSummary(st.root, dry_run=dry_run)
    # a dry run only reads: no lock, no clean-up, so that a read-only store answers too
    with nullcontext() if dry_run else st.lock(on_wait=on_wait):
        if not dry_run:
            st.clean()
        manifest = st.manifest()
        keys: set[str] = set()
        identity = Identity(manifest) if heads else None
        for w in wanted:
            pattern = w not in literal
            found = {
                k
                for k, row in manifest.items()
                if any(matches(p, w, pattern=pattern) for p in row.paths)
            }
            if identity is not None:
                found |= {identity.find(h)[0] for h in heads.get(w, ())} - {None}
            if not found:
                raise BadInput(
                    f"{w}: no log of the store {st.root} was read from this path, and no log "
                    "there is one it holds (its paths: loganalyzer sql "
                    f'"select paths from files" --store {st.root})'
                )
            keys |= found
        if damaged:
            report = check(st)
            bad = {*report["missing"], *(u.split(":")[0] for u in report["unreadable"])}
            keys |= {k for k, row in manifest.items() if bad.intersection(row.parts)}
        rows = [manifest[k] for k in sorted(keys)]
        summary.files = sorted(r.paths[0] for r in rows if r.paths)  # a file once, however
        # many paths it was read from (the first)
        summary.rows = sum(r.rows or 0 for r in rows)
        summary.quarantined = sum(r.quarantined or 0 for r in rows)
        parts = sorted({p for r in rows for p in r.parts})
        summary.days = sorted({p.split("/")[1][5:] for p in parts if "/date=" in p})
        shared = {
            p: [k for k, r in manifest.items() if k not in keys and p in r.parts] for p in parts
        }
        summary.parts_removed = sum(1 for p in parts if not shared[p])
        summary.parts_rewritten = len(parts) - summary.parts_removed
        if dry_run:
            summary.seconds = time.perf_counter() - started
            return summary
        paths_gone = {p for r in rows for p in r.paths}
        token = f"{int(time.time()):x}{secrets.token_hex(3)}"
        spill = os.path.join(tempfile.gettempdir(), f"loganalyzer-forget-{token}")
        try:
            for n, part in enumerate(p for p in parts if shared[p]):
                new, holders = _without(st, part, paths_gone, keys, f"{token}{n}", spill)
                _failpoint("forget-written")
                st.commit_parts(new)
                _failpoint("forget-renamed")
                _relist(manifest, {part}, [p.final for p in new], holders)
            for k in keys:
                del manifest[k]
            _publish(st, manifest, list(parts))
        finally:
            shutil.rmtree(spill, ignore_errors=True)
        if rollups is not None:
            rollups(st, manifest, None)
    summary.seconds = time.perf_counter() - started
    return summary


def _without(
    st: Store, part: str, paths: set[str], keys: set[str], token: str, spill: str
) -> tuple[list[Part], dict[str, set[str]]]:
    """The rows of ``part`` but those of the files forgotten, written into new parts under
    temporary names (none when no row is left); and the files whose rows each holds."""
    table, _, rest = part.partition("/")
    quarantine = table == "quarantine"
    con = duckdb.connect(config={"memory_limit": "512MB", "temp_directory": spill})
    out = None
    try:
        no_progress_bar(con)
        con.execute("set TimeZone = 'UTC'")
        st.loc.register(con)
        source = f"read_parquet(['{st.uri(part).replace(chr(39), chr(39) * 2)}'])"
        column, gone = ("file_key", keys) if quarantine else ("file", paths)
        where = f"{column} is null or {column} not in (select unnest($gone))"
        rows = con.sql(
            f"select count(*) from {source} where {where}", params={"gone": sorted(gone)}
        )
        count = rows.fetchall()[0][0]
        if not count:
            return [], {}
        day = None if quarantine else rest.split("/", 1)[0][5:]
        out = _Output(
            st, table, day, token, max(1, math.ceil(count / ROW_GROUP)) * ROW_GROUP, count
        )
        names = ", ".join(f'"{c.name}"' for c in table_columns(table))
        query = con.sql(
            f"select {names} from {source} where {where}", params={"gone": sorted(gone)}
        )
        for batch in query.to_arrow_reader(ROW_GROUP):
            out.add(batch)
        out.close()
        return out.parts, out.holders
    except BaseException:
        if out is not None:
            out.abort()
        raise
    finally:
        con.close()
