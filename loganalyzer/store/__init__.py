"""The Parquet store: layout, manifest, file identity, lock and clean-up (DESIGN.md, The store).

Readers use the manifest to know which parts are complete; only the ingest's parent process
(or ``store compact``) renames parts and replaces the manifest. The store is a folder or an
fsspec URL (``s3://bucket/mailstore``); see ``loganalyzer.store.location`` for what each filesystem
gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from loganalyzer.errors import NotAStore
from loganalyzer.schema import SCHEMA_VERSION, columns
from loganalyzer.store.location import LOCK_FILE, Local, Location, StoreError, location

__all__ = ["LOCK_FILE", "Part", "Store", "StoreError"]

if TYPE_CHECKING:
    import duckdb
    import pandas as pd
    import pyarrow as pa
    import pyarrow.parquet as pq

# pyarrow is imported where a method writes: reading a store (a trace) then needs only DuckDB,
# and starts a quarter of a second sooner.

DEFAULT_STORE = "./loganalyzer-store"
MANIFEST_FILE = "manifest.parquet"
TMP_SUFFIX = ".tmp"
#: Lengths at which a file's first bytes are fingerprinted; see ``fingerprints``.
LADDER = (1 << 10, 4 << 10, 16 << 10, 64 << 10)
HEAD = LADDER[-1]


def default_store() -> str:
    """``$LOGANALYZER_STORE``, else ``./loganalyzer-store``."""
    return os.environ.get("LOGANALYZER_STORE") or DEFAULT_STORE


def encode_fingerprint(fp: dict[int, str]) -> str:
    return ";".join(f"{n}:{d}" for n, d in sorted(fp.items()))


def decode_fingerprint(text: str) -> dict[int, str]:
    return {int(n): d for n, _, d in (p.partition(":") for p in text.split(";") if p)}


@dataclass
class Part:
    """A part file written under a temporary name, to be renamed into place."""

    tmp: str  # relative to the store root
    final: str
    rows: int


class Store:
    """A store: ``tracking/``, ``smtp/``, ``quarantine/`` and ``manifest.parquet`` in a folder
    or under an fsspec URL (``s3://bucket/mailstore``, ``memory://store``).

    ``lease``: seconds an object store's lock lives without renewal (see storefs).
    """

    def __init__(
        self, path: str | os.PathLike[str] | None = None, *, lease: float | None = None
    ) -> None:
        text = os.fspath(path or default_store())
        self.root: str = text.rstrip("/") if "://" in text and not text.endswith(":///") else text
        self.loc: Location = location(self.root, lease)
        self.last_manifest: dict[str, dict] | None = None  # as read, when it has every column

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
        return Path(self.loc.root) if isinstance(self.loc, Local) else None

    def path(self, relative: str) -> str:
        """The path of a file of the store, as its filesystem names it."""
        return self.loc.full(relative)

    def uri(self, relative: str) -> str:
        """The path or URL of a file of the store, as DuckDB (once registered) reads it."""
        return self.loc.url(relative)

    @staticmethod
    def part_name(table: str, date: str, file_key: str, offset: int) -> str:
        return f"{table}/date={date}/{file_key}-{offset}.parquet"

    @staticmethod
    def quarantine_name(file_key: str, offset: int) -> str:
        return f"quarantine/{file_key}-{offset}.parquet"

    def exists(self) -> bool:
        return self.loc.exists(MANIFEST_FILE)

    def require(self) -> Store:
        """This store, when its path holds one (its manifest); else NotAStore. Every reader
        calls it first: a misspelt path must not read as an empty store."""
        if not self.exists():
            raise NotAStore(f"{self.root} is not a loganalyzer store (no manifest)")
        return self

    def parquet_writer(self, relative: str, schema: pa.Schema, **options) -> pq.ParquetWriter:
        """A Parquet writer of a new file of the store (its folder is created)."""
        import pyarrow.parquet as pq

        self.loc.makedirs_for(relative)
        return pq.ParquetWriter(
            self.loc.full(relative), schema, filesystem=self.loc.arrow_fs, **options
        )

    def write_bytes(self, relative: str, data: pa.Buffer | bytes) -> None:
        """Write a whole file of the store (its folder is created)."""
        self.loc.makedirs_for(relative)
        with self.loc.open(relative, "wb") as fh:
            fh.write(data)

    def write_parquet(self, relative: str, table: pa.Table, **options) -> None:
        """Write a whole Parquet file of the store."""
        import pyarrow.parquet as pq

        self.loc.makedirs_for(relative)
        pq.write_table(table, self.loc.full(relative), filesystem=self.loc.arrow_fs, **options)

    def remove(self, relatives: list[str]) -> None:
        self.loc.remove(relatives)

    # -- manifest -------------------------------------------------------------------------
    def manifest(
        self, con: duckdb.DuckDBPyConnection | None = None, fields: list[str] | None = None
    ) -> dict[str, dict]:
        """The manifest: one row per ingested file, by file key (read with ``con``, a
        connection of ``query.open_connection``, when given). ``fields``: only these
        columns (``file_key`` and ``schema_version`` always), for a reader in a hurry."""
        from loganalyzer.read.query import open_connection, read_parquet, records

        if not self.loc.exists(MANIFEST_FILE):
            return {}
        own = con is None
        con = open_connection(self) if con is None else con
        source = read_parquet([self.uri(MANIFEST_FILE)])
        try:
            names = con.sql(f"select * from {source} limit 0").columns
            wanted = names if fields is None else ["file_key", "schema_version", *fields]
            select = ", ".join(f'"{n}"' for n in names if n in wanted)
            rows = records(con.sql(f"select {select} from {source}"))
        finally:
            if own:
                con.close()
        newest = max((r.get("schema_version") or 0 for r in rows), default=0)
        if newest > SCHEMA_VERSION:
            raise StoreError(
                f"{self.root} was written by a newer loganalyzer (store schema {newest}; "
                f"this version reads up to {SCHEMA_VERSION}): upgrade loganalyzer"
            )
        out = {r["file_key"]: r for r in rows}
        # a manifest of this version, unchanged since read, is its file (the files view)
        complete = list(names) == [name for name, _ in columns("manifest")]
        self.last_manifest = out if complete else None
        return out

    def manifest_table(self, manifest: dict[str, dict]) -> pa.Table:
        """``manifest`` as an Arrow table in the manifest's schema."""
        import pyarrow as pa

        from loganalyzer.schema import MANIFEST

        return pa.Table.from_pylist(list(manifest.values()), schema=MANIFEST)

    def write_manifest(self, rows: dict[str, dict]) -> None:
        """Replace the manifest atomically (write a temporary file, then rename)."""
        table = self.manifest_table(dict(sorted(rows.items())))
        tmp = f"{MANIFEST_FILE}.{os.getpid()}{TMP_SUFFIX}"
        self.loc.check_lock()  # an object store's lease may have been broken meanwhile
        try:
            self.write_parquet(
                tmp, table, compression="zstd", use_dictionary=["format", "table", "server"]
            )
            self.loc.sync(tmp)
            self.loc.replace(tmp, MANIFEST_FILE)
        except OSError as exc:
            with suppress(OSError):
                self.loc.remove([tmp])
            raise StoreError(
                f"could not write the manifest of {self.root}: {exc.strerror or exc}; the store "
                "is as it was before this ingest's unsaved files"
            ) from exc

    def listed_parts(
        self, table: str | None = None, manifest: dict[str, dict] | None = None
    ) -> list[str]:
        """Relative paths of the parts the manifest lists (``quarantine`` included), each
        once (a compacted part holds the rows of several files and is listed by each)."""
        out = set()
        for row in (self.manifest() if manifest is None else manifest).values():
            for p in row["parts"] or []:
                if table is None or p.startswith(f"{table}/"):
                    out.add(p)
        return sorted(out)

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
        """Remove temporary files and parts the manifest does not list; call under the lock."""
        listed = set(self.listed_parts())
        removed = []
        for sub in ("tracking", "smtp", "quarantine"):
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
        return removed + gone

    def check(self, on_part: Callable[[], None] | None = None) -> dict:
        """Damage (missing or unreadable parts, row counts that differ from the manifest) and
        leftovers of killed runs (unlisted parts, temporary files): ``loganalyzer.store.check``."""
        from loganalyzer.store.check import check

        return check(self, on_part)

    # -- reading ---------------------------------------------------------------------------
    def connect(self, only: list[dict] | None = None, manifest: dict[str, dict] | None = None):
        """A DuckDB connection with views ``tracking``, ``smtp``, ``recipients``,
        ``quarantine`` and ``files`` over the parts the manifest lists (or the files in
        ``only``). NotAStore when the path holds no store."""
        from loganalyzer.read.query import connect

        if manifest is None:
            self.require()
        return connect(self, only, manifest)

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run SQL over the store's views; returns a DataFrame."""
        from loganalyzer.read.frames import to_frame

        with self.connect() as con:
            return to_frame(con.sql(query, params=params or None).to_arrow_table())

    def tracking(
        self,
        since=None,
        until=None,
        sender=None,
        recipient=None,
        event_id=None,
        outcome=None,
        server=None,
        columns=None,
        tz=None,
    ) -> pd.DataFrame:
        """Tracking rows, filtered; ``sender``/``recipient`` accept ``*`` wildcards."""
        from loganalyzer.read.frames import select

        return select(
            self,
            "tracking",
            since=since,
            until=until,
            sender=sender,
            recipient=recipient,
            event_id=event_id,
            outcome=outcome,
            server=server,
            columns=columns,
            tz=tz,
        )

    def smtp(
        self,
        since=None,
        until=None,
        server=None,
        remote_ip=None,
        session_id=None,
        columns=None,
        tz=None,
    ) -> pd.DataFrame:
        """SMTP protocol and IIS SMTP rows, filtered."""
        from loganalyzer.read.frames import select

        return select(
            self,
            "smtp",
            since=since,
            until=until,
            server=server,
            remote_ip=remote_ip,
            session_id=session_id,
            columns=columns,
            tz=tz,
        )

    def messages(
        self, since=None, until=None, sender=None, recipient=None, columns=None, tz=None
    ) -> pd.DataFrame:
        """One row per message: first and last row, sender, subject, size, the servers it
        passed, each recipient's last outcome, counts per outcome, latency in seconds."""
        from loganalyzer.read.frames import select

        return select(
            self,
            "messages",
            since=since,
            until=until,
            sender=sender,
            recipient=recipient,
            columns=columns,
            tz=tz,
            time_column="first_seen",
        )

    def quarantine(self) -> pd.DataFrame:
        """Lines that could not be used: file, line, reason, raw text."""
        return self.sql("select * from quarantine order by file, line")

    def files(self) -> pd.DataFrame:
        """The manifest: one row per ingested file."""
        return self.sql("select * from files order by file_key")

    def commit_parts(self, parts: list[Part]) -> None:
        """Rename written parts into place (the manifest is replaced afterwards)."""
        for part in parts:
            self.loc.replace(part.tmp, part.final)
