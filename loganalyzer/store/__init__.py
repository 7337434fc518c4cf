"""The Parquet store: layout, manifest, file identity, lock and clean-up (DESIGN.md, The store).

Readers use the manifest to know which parts are complete; only the ingest's parent process
(or ``store compact``) renames parts and replaces the manifest. The store is a folder or an
fsspec URL (``s3://bucket/mailstore``), reached through one fsspec filesystem rooted at it;
see ``loganalyzer.store.location`` for what differs by filesystem. This package imports no
reader: the views, DataFrames and exports over a store are ``loganalyzer.read``'s, which
builds the public ``Store`` on this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from loganalyzer.errors import BadInput, NotAStore, StoreError
from loganalyzer.schema import LOG_TABLES
from loganalyzer.store import cache as _cache
from loganalyzer.store import manifest as _manifest
from loganalyzer.store.location import LOCK_FILE, Location, file_url_path
from loganalyzer.store.location import location as _locate
from loganalyzer.store.manifest import MANIFEST_FILE, FileRow, Manifest
from loganalyzer.store.parts import TMP_SUFFIX, Part

__all__ = [
    "LOCK_FILE",
    "MANIFEST_FILE",
    "TMP_SUFFIX",
    "FileRow",
    "Manifest",
    "Part",
    "Store",
    "StoreError",
    "default_store",
]

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

# pyarrow is imported where a method writes: reading a store (a trace) then needs only DuckDB,
# and starts a quarter of a second sooner.

DEFAULT_STORE = "./loganalyzer-store"
#: What an operating system puts in a folder or at a volume's root (a new disk mounted as the
#: store): a folder holding only these is empty.
_FOLDER_LITTER = frozenset(
    {
        ".DS_Store",
        "desktop.ini",
        "Thumbs.db",
        "lost+found",
        "System Volume Information",
        "$RECYCLE.BIN",
    }
)


def _not_own(names: list[str]) -> list[str]:
    """Of the names in a folder, those a store's top folder never holds: not its tables, the
    manifest, the per-day aggregates and their indexes (and their temporary files), the lock
    files, nor what an operating system puts in any folder."""
    from loganalyzer.store import addresses, rollups
    from loganalyzer.store.lock import HOLDER_FILE

    kinds = (rollups.ROLLUPS, *rollups.AGGREGATES, addresses.KIND)
    stems = {*LOG_TABLES, "quarantine", *(k.folder for k in kinds)}
    stems |= {f.split(".", 1)[0] for f in (MANIFEST_FILE, *(k.index_file for k in kinds))}
    exact = {LOCK_FILE, HOLDER_FILE, *_FOLDER_LITTER}
    return [n for n in names if n not in exact and n.split(".", 1)[0] not in stems]


def default_store() -> str:
    """``$LOGANALYZER_STORE``, else ``./loganalyzer-store``."""
    return os.environ.get("LOGANALYZER_STORE") or DEFAULT_STORE


class Store:
    """A store: ``tracking/``, ``smtp/``, ``quarantine/`` and ``manifest.parquet`` in a folder
    or under an fsspec URL (``s3://bucket/mailstore``, ``memory://store``).

    ``lease``: seconds an object store's lock lives without renewal (see
    ``loganalyzer.store.location``).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, lease: float | None = None
    ) -> None:
        if isinstance(path, Store):  # a store given where its path is asked
            path = path.root
        if path is not None and not isinstance(path, str | os.PathLike):
            raise BadInput(f"store {path!r}: give the store's folder or URL")
        text = file_url_path(os.fspath(path or default_store()))
        self.root: str = text.rstrip("/") if "://" in text and not text.endswith(":///") else text
        self.loc: Location = _locate(self.root, lease)
        self.last_manifest: Manifest | None = None  # as read, when it has every column

    def __repr__(self) -> str:
        return f"Store({self.root!r})"

    # -- layout -------------------------------------------------------------------------
    @property
    def url(self) -> str:
        """The store's absolute path or URL, as other processes and machines name it."""
        return self.loc.url()

    @property
    def local_root(self) -> Path | None:
        """The folder of a store on a local or mounted filesystem; None for a URL store."""
        return Path(self.loc.root) if self.loc.local else None

    def path(self, relative: str) -> str:
        """The path of a file of the store, as its filesystem names it."""
        return self.loc.full(relative)

    def uri(self, relative: str) -> str:
        """The path or URL of a file of the store, as DuckDB (once registered) reads it."""
        return self.loc.url(relative)

    @staticmethod
    def part_name(table: str, date: str, file_key: str, offset: int, shared: bool = False) -> str:
        """The part of a file's rows of ``date`` read from ``offset``. ``shared``: the part of
        several files' rows (a bundle's), named after the first of them with rows in it: no
        other part can have the name, as that file is never read from that offset again."""
        tail = "-bundle" if shared else ""
        return f"{table}/date={date}/{file_key}-{offset}{tail}.parquet"

    @staticmethod
    def quarantine_name(file_key: str, offset: int, shared: bool = False) -> str:
        """The quarantine part of a file's bad lines (``shared``: as for ``part_name``)."""
        tail = "-bundle" if shared else ""
        return f"quarantine/{file_key}-{offset}{tail}.parquet"

    def exists(self) -> bool:
        return self.loc.exists(MANIFEST_FILE)

    def begun(self) -> bool:
        """True when the path holds a store, or one whose first ingest was interrupted before
        it committed (its lock is there, its manifest not yet): ``store check`` and
        ``--repair`` read such a store, to remove what the ingest left."""
        return self.exists() or self.loc.exists(LOCK_FILE)

    def require(self) -> Store:
        """This store, when its path holds one (its manifest); else NotAStore. Every reader
        calls it first: a misspelt path must not read as an empty store."""
        if not self.exists():
            if self.loc.exists(LOCK_FILE):  # an ingest began it and was stopped
                raise NotAStore(
                    f"{self.root}: no ingest has finished in this store yet (ingest the logs "
                    "again; `loganalyzer store check --repair` removes what a stopped one left)"
                )
            if self.loc.local and not os.path.isdir(self.loc.root):  # a misspelt path
                raise NotAStore(self._not_a_folder())
            raise NotAStore(f"{self.root} is not a loganalyzer store (no manifest)")
        return self

    def _not_a_folder(self) -> str:
        """What a local store path that is a file, or nothing, is said with."""
        what = " is a file" if os.path.exists(self.loc.root) else ": no such folder"
        return f"{self.root}{what}: give a store's folder (--store or $LOGANALYZER_STORE)"

    def require_new_or_begun(self) -> Store:
        """This store, when its path is a store (or one whose first ingest stopped before its
        manifest: its folder holds only a store's names), an empty folder or none yet: the
        only places an ingest may write. A folder (or an object store's prefix) holding other
        files (documents, logs) is refused with NotAStore: a store's parts and clean-up never
        mix with them."""
        if self.begun():
            return self
        if self.loc.local and os.path.isfile(self.loc.root):
            raise NotAStore(self._not_a_folder())
        others = sorted(_not_own(self.loc.names()))
        if others:  # only the store's own names: a first ingest stopped before its manifest
            more = f" and {len(others) - 1} more" if len(others) > 1 else ""
            raise NotAStore(
                f"{self.root} is not a loganalyzer store and not empty (it holds "
                f"{others[0]!r}{more}): give a new or empty folder for a new store, or an "
                "existing store's (--store or $LOGANALYZER_STORE)"
            )
        return self

    def parquet_writer(self, relative: str, schema: pa.Schema, **options) -> pq.ParquetWriter:
        """A Parquet writer of a new file of the store (its folder is created)."""
        import pyarrow.parquet as pq

        self.loc.makedirs_for(relative)
        return pq.ParquetWriter(relative, schema, filesystem=self.loc.arrow_fs, **options)

    def write_bytes(self, relative: str, data: pa.Buffer | bytes) -> None:
        """Write a whole file of the store (its folder is created)."""
        self.loc.makedirs_for(relative)
        with self.loc.open(relative, "wb") as fh:
            fh.write(data)

    def write_parquet(self, relative: str, table: pa.Table, **options) -> None:
        """Write a whole Parquet file of the store."""
        import pyarrow.parquet as pq

        self.loc.makedirs_for(relative)
        pq.write_table(table, relative, filesystem=self.loc.arrow_fs, **options)

    def remove(self, relatives: list[str]) -> None:
        self.loc.remove(relatives)

    # -- manifest (loganalyzer.store.manifest) ---------------------------------------------
    def manifest(
        self,
        con: duckdb.DuckDBPyConnection | None = None,
        fields: list[str] | None = None,
        *,
        shared: bool = False,
    ) -> Manifest:
        """The manifest: one row per ingested file, by file key (read with ``con``, a
        connection of ``store.duck.open_connection``, when given). ``fields``: only these
        columns (``file_key`` and ``schema_version`` always), for a reader in a hurry.
        ``shared``: every column, kept while the manifest file is unchanged and shared with
        the process's other readers (``store.cache``): read-only, never to be changed."""
        if shared:
            rows, whole = _cache.manifest(self, con)
        else:
            rows, whole = _manifest.load(self, con, fields)
        self.last_manifest = rows if whole else None
        return rows

    def write_manifest(self, rows: Manifest) -> None:
        """Replace the manifest atomically (write a temporary file, then rename)."""
        _manifest.save(self, rows)

    def listed_parts(self, table: str | None = None, manifest: Manifest | None = None) -> list[str]:
        """Relative paths of the parts the manifest lists (``quarantine`` included), each
        once (a bundle's or a compacted part holds the rows of several files and is listed by
        each)."""
        return _manifest.listed_parts(self.manifest() if manifest is None else manifest, table)

    # -- lock and clean-up ------------------------------------------------------------------
    @contextmanager
    def lock(
        self, wait: float | None = None, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Hold the store's lock: an OS file lock that dies with its holder, or on an object
        store a lock object with a lease (see ``loganalyzer.store.location``).

        ``wait`` is how long to wait for another process's lock (None: as long as it takes).
        """
        with self.loc.lock(wait, on_wait):
            yield

    def clean(self) -> list[str]:
        """Remove temporary files and parts the manifest does not list, and resolve the marks of
        a ``store prune`` killed midway (``rollups.settle``); call under the lock, before the
        manifest changes."""
        from loganalyzer.store import addresses, rollups  # their own leftovers

        manifest = self.manifest()
        for kind in (rollups.ROLLUPS, *rollups.AGGREGATES):
            rollups.settle(self, manifest, kind)
        listed = set(self.listed_parts(manifest=manifest))
        removed = []
        for sub in (*LOG_TABLES, "quarantine"):
            gone = [
                rel
                for rel in self.loc.files(sub)
                if rel.endswith(TMP_SUFFIX) or (rel.endswith(".parquet") and rel not in listed)
            ]
            self.loc.remove(gone)
            removed += gone
            self.loc.prune(sub)
        gone = self.loc.glob(f"{MANIFEST_FILE}.*{TMP_SUFFIX}")
        self.loc.remove(gone)
        return (
            removed
            + gone
            + rollups.clean(self)
            + addresses.clean(self)
            + [p for kind in rollups.AGGREGATES for p in rollups.clean(self, kind)]
        )

    def check(self, on_part: Callable[[], None] | None = None) -> dict:
        """Damage (missing or unreadable parts, row counts that differ from the manifest) and
        leftovers of interrupted runs (unlisted parts, temporary files):
        ``loganalyzer.store.check``."""
        from loganalyzer.store.check import check  # pyarrow: only this command reads footers

        return check(self, on_part)

    def commit_parts(self, parts: list[Part]) -> None:
        """Rename written parts into place (the manifest is replaced afterwards)."""
        for part in parts:
            self.loc.replace(part.tmp, part.final)
