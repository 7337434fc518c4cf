"""``store check``: the manifest against the files it lists and the files it does not.

Damage (the store misleads its readers): a listed part that is missing, does not read as
Parquet or lacks its table's columns, and row counts that differ from the manifest's. Leftovers
(what a killed run left; ``Store.clean`` removes them, and readers that go around the manifest
see them): parts no file lists and temporary files. A consistent store has neither.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pyarrow.parquet as pq

from loganalyzer.schema import LOG_TABLES, QUARANTINE, TABLES
from loganalyzer.store import addresses, rollups
from loganalyzer.store.manifest import MANIFEST_FILE, Manifest
from loganalyzer.store.parts import TMP_SUFFIX

if TYPE_CHECKING:
    from loganalyzer.store import Store


#: How a leftover of an interrupted run is named (and told from other problems).
LEFT = "left by an interrupted run"


def check(store: Store, on_part: Callable[[], None] | None = None) -> dict:
    """Check ``store``; ``problems`` names each inconsistency, ``ok`` is True when none.

    Every listed part's footer is read (its columns and row count), not its data.
    """
    busy = store.loc.holder()
    manifest = store.manifest()  # refuses a store of a newer schema version
    listed = set(store.listed_parts(manifest=manifest))
    found = {rel for sub in (*LOG_TABLES, "quarantine") for rel in store.loc.files(sub)}
    found |= set(store.loc.glob(f"{MANIFEST_FILE}.*{TMP_SUFFIX}"))
    missing = sorted(listed - found)
    rows: dict[str, int] = {}
    unreadable: list[str] = []
    for rel in sorted(listed & found):
        reason = _read_footer(store, rel, rows)
        if reason:
            unreadable.append(f"{rel}: {reason}")
        if on_part:
            on_part()
    counts = _count_mismatches(manifest, rows, set(missing) | {u.split(":")[0] for u in unreadable})
    unversioned = sum(1 for r in manifest.values() if not r.schema_version)
    unlisted = sorted(p for p in found - listed if p.endswith(".parquet"))
    temporary = sorted(p for p in found if p.endswith(TMP_SUFFIX))
    roll = _rollups(store, manifest)
    index = _rollups(store, manifest, addresses.KIND)
    clients = _rollups(store, manifest, rollups.CLIENTS)
    tls = _rollups(store, manifest, rollups.TLS)
    lines = _rollups(store, manifest, rollups.SMTP_LINES)
    damaged = set(missing) | {u.split(":")[0] for u in unreadable}
    # another process writing the store (an ingest, a watch round) as the check began or
    # ended: its parts in progress are not leftovers of an interrupted run
    if busy is None:
        busy = store.loc.holder()
    if busy is not None:
        unlisted, temporary = [], []
        for r in (roll, index, clients, tls, lines):
            r["problems"] = [p for p in r["problems"] if LEFT not in p]
    problems = (
        [f"missing part: {p}" for p in missing]
        + [f"unreadable part: {u}" for u in unreadable]
        + [f"row count: {c}" for c in counts]
        + _remedy(manifest, damaged)
        + [f"schema version: {unversioned} files have none"] * bool(unversioned)
        + [f"unlisted part ({LEFT}): {p}" for p in unlisted]
        + [f"temporary file ({LEFT}): {p}" for p in temporary]
        + roll["problems"]
        + index["problems"]
        + clients["problems"]
        + tls["problems"]
        + lines["problems"]
    )
    return {
        "store": store.root,
        "ok": not problems,
        # no manifest: an ingest began the store and was stopped before its first commit
        "unfinished": not store.exists(),
        "files": len(manifest),
        "parts": len(listed),
        "schema_versions": sorted({r.schema_version for r in manifest.values()} - {None, 0}),
        "missing": missing,
        "unreadable": unreadable,
        "row_counts": counts,
        "unlisted": unlisted,
        "temporary": temporary,
        "rollups": roll["days"],
        "address_index": index["days"],
        "client_aggregates": clients["days"],
        "tls_aggregates": tls["days"],
        "smtp_line_aggregates": lines["days"],
        "writer": busy,
        "notices": (
            [
                f"another process holds the store's lock{busy}: the parts it is writing are "
                "not counted as leftovers; check again once it has finished"
            ]
            if busy is not None
            else []
        )
        + roll["notices"]
        + index["notices"]
        + clients["notices"]
        + tls["notices"]
        + lines["notices"],
        "problems": problems,
    }


def _remedy(manifest: Manifest, damaged: set[str]) -> list[str]:
    """One line on what damaged parts cost and how to mend it: the logs whose rows they held
    (the first few), to restore the parts from a backup or read again into a new store."""
    if not damaged:
        return []
    logs = sorted({r.paths[0] for r in manifest.values() if r.paths and damaged & set(r.parts)})
    named = ", ".join(logs[:3]) + (f" and {len(logs) - 3:,} more" if len(logs) > 3 else "")
    return [
        f"damaged parts hold rows of {len(logs):,} log files ({named}): `loganalyzer store "
        "forget --damaged` takes those files out of the store, then ingest the logs again; or "
        "restore the store from a backup (--repair removes only what killed runs left)"
    ]


def _rollups(store: Store, manifest: Manifest, kind: rollups.Kind = rollups.ROLLUPS) -> dict:
    """The rollups (or the address index): listed parts missing (damage), unlisted parts and
    temporary files (leftovers); days out of date or missing are a notice, not a problem
    (readers read those days' rows; the next ingest or ``store compact`` rebuilds them)."""
    index = rollups.load(store, kind)
    listed = {e.part for e in index.values()}
    found = set(store.loc.files(kind.folder))
    found |= set(store.loc.glob(f"{kind.index_file}.*{TMP_SUFFIX}"))
    days = rollups.status(store, manifest, index, kind)
    counts = {k: len(v) for k, v in days.items()}
    notices = _marks(manifest, index, kind)
    if kind is not rollups.ROLLUPS:
        if days["stale"] or days["missing"]:
            lacking = sorted(days["stale"] + days["missing"])
            what, who, it = {
                rollups.CLIENTS: (
                    "SMTP clients' aggregates",
                    "the report's clients section reads",
                    "them",
                ),
                rollups.TLS: ("TLS aggregates", "reports of several days read", "them"),
                rollups.SMTP_LINES: ("SMTP line counts", "reports of several days read", "them"),
            }.get(kind, ("address index", "lists by address read", "it"))
            notices.append(
                f"{what} out of date or missing for {_days(len(lacking))} (first "
                f"{lacking[0]}): {who} their rows; the next ingest or `store compact` "
                f"builds {it}"
            )
        days = {"stale": [], "missing": []}  # (said once)
    if days["stale"]:
        notices.append(
            f"rollups out of date for {_days(len(days['stale']))} (first {days['stale'][0]}): "
            "reports read their rows; the next ingest or `store compact` rebuilds them"
        )
    if days["missing"]:
        # the next ingest builds a few missing days, `store compact` any number (rollups.due)
        n = len(days["missing"])
        who = "the next ingest or " if n <= rollups.MISSING_NOW else ""
        notices.append(
            f"no rollups for {_days(n)} (first {days['missing'][0]}): an interrupted run, a "
            "store written before rollups, or an ingest told to build none (Python); "
            f"reports read their rows; {who}`store compact` builds them"
        )
    label = {
        rollups.ROLLUPS: "rollup",
        rollups.CLIENTS: "SMTP clients' aggregate",
        rollups.TLS: "TLS aggregate",
        rollups.SMTP_LINES: "SMTP line count",
    }.get(kind, "address index")
    problems = (
        [f"missing {label} part: {p}" for p in sorted(listed - found)]
        + [
            f"unlisted {label} part ({LEFT}): {p}"
            for p in sorted(found - listed)
            if p.endswith(".parquet")
        ]
        + [f"temporary file ({LEFT}): {p}" for p in sorted(found) if p.endswith(TMP_SUFFIX)]
    )
    return {"days": counts, "notices": notices, "problems": problems}


#: What the parts of each kind with prune's marks are, in ``store check``'s notices.
NAMES = {
    rollups.ROLLUPS: "rollups",
    rollups.CLIENTS: "SMTP clients' aggregates",
    rollups.TLS: "TLS aggregates",
    rollups.SMTP_LINES: "SMTP line counts",
}


def _marks(manifest: Manifest, index: rollups.Index, kind: rollups.Kind) -> list[str]:
    """Prune's marks that disagree with the manifest: those of a ``store prune`` stopped
    midway (``rollups.PRUNING``), and days kept whose rows the manifest lists."""
    if kind not in NAMES:
        return []
    what = NAMES[kind]
    have = rollups.row_days(manifest)
    marked = sorted(d for d, e in index.items() if e.source.startswith(rollups.PRUNING))
    gone = [d for d in marked if rollups.is_kept(index[d], have)]
    listed = [d for d in marked if d not in gone]
    kept = sorted(d for d, e in index.items() if e.source == rollups.KEPT and d in have)
    out = []
    if listed:
        out.append(
            f"{what} marked by a stopped `store prune` for {_days(len(listed))} whose rows are "
            f"still in the store (first {listed[0]}): read as before the prune; the next "
            "ingest, `store compact` or `store prune` clears the marks"
        )
    if gone:
        out.append(
            f"{what} marked by a stopped `store prune` for {_days(len(gone))} whose rows it "
            f"removed (first {gone[0]}): kept as the record of those days; the next ingest, "
            "`store compact` or `store prune` marks them kept"
        )
    if kept:
        out.append(
            f"{what} kept (rows pruned) for {_days(len(kept))} that have rows in the store "
            f"(first {kept[0]}): reports of several days read the kept {what}, not those "
            "rows (logs of those days ingested after the prune, or a `store prune` of an "
            "earlier version stopped midway: run it again with the same --before to finish it)"
        )
    return out


def _read_footer(store: Store, rel: str, rows: dict[str, int]) -> str | None:
    table = rel.split("/", 1)[0]
    schema = TABLES.get(table, QUARANTINE)
    try:
        with store.loc.open(rel) as fh:
            f = pq.ParquetFile(fh)
            names = set(f.schema_arrow.names)
            rows[rel] = f.metadata.num_rows
    except Exception as exc:  # any reason a reader would fail is the finding
        return f"not readable as Parquet ({type(exc).__name__}: {exc})"
    # the hive partition column lives in the folder name, not in the file
    lacking = [n for n in schema.names if n not in names and n != "date"]
    if lacking:
        return f"lacks the {table} columns {', '.join(lacking[:5])}"
    return None


def _count_mismatches(manifest: Manifest, rows: dict[str, int], damaged: set[str]):
    """Files whose parts are shared (a bundle's, compaction) are counted together: a group of
    files must hold, in its parts, the rows and quarantined lines the manifest gives its files."""
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for key, r in manifest.items():
        for p in r.parts:
            parent[find("f:" + key)] = find("p:" + p)
    groups: dict[str, list[str]] = {}
    for key in manifest:
        groups.setdefault(find("f:" + key), []).append(key)
    out = []
    for keys in groups.values():
        parts = {p for k in keys for p in manifest[k].parts}
        if parts & damaged:
            continue  # already named
        for kind, column, in_kind in (
            ("rows", "rows", lambda p: not p.startswith("quarantine/")),
            ("quarantined lines", "quarantined", lambda p: p.startswith("quarantine/")),
        ):
            want = sum(getattr(manifest[k], column) or 0 for k in keys)
            have = sum(rows.get(p, 0) for p in parts if in_kind(p))
            if want != have:
                names = sorted(p for k in keys for p in manifest[k].paths)
                shown = ", ".join(names[:3]) + (
                    f" and {len(names) - 3} more" if len(names) > 3 else ""
                )
                out.append(f"{shown}: the manifest gives {want:,} {kind}, the parts hold {have:,}")
    return out


def _days(n: int) -> str:
    return f"{n:,} day" if n == 1 else f"{n:,} days"
