"""The manifest: one row per ingested file (DESIGN.md, The store), read and written here only.

A ``FileRow`` is one file's row; a ``Manifest`` maps file keys to rows. The ingest changes
rows in place and writes the manifest whole; readers take the parts the rows list.
"""

from __future__ import annotations

import os
from contextlib import suppress
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import TYPE_CHECKING

from loganalyzer.errors import StoreError
from loganalyzer.schema import SCHEMA_VERSION, columns
from loganalyzer.store.duck import open_connection, read_parquet
from loganalyzer.store.parts import TMP_SUFFIX

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from loganalyzer.store import Store

MANIFEST_FILE = "manifest.parquet"
#: Lengths at which a file's first bytes are fingerprinted; see ``fingerprints``.
LADDER = (1 << 10, 4 << 10, 16 << 10, 64 << 10)
HEAD = LADDER[-1]


def encode_fingerprint(fp: dict[int, str]) -> str:
    return ";".join(f"{n}:{d}" for n, d in sorted(fp.items()))


def decode_fingerprint(text: str) -> dict[int, str]:
    return {int(n): d for n, _, d in (p.partition(":") for p in text.split(";") if p)}


@dataclass(slots=True)
class FileRow:
    """One ingested file (the columns of ``schema.MANIFEST``, described there). A column a
    reader did not ask for, or that an older store lacks, is None; ``lookup`` None means no
    sketch (the file is always read)."""

    file_key: str
    paths: list[str] = field(default_factory=list)
    size: int | None = None
    head_len: int | None = None
    head_fingerprint: str | None = None
    bytes_consumed: int | None = None
    lines_consumed: int | None = None
    header: str | None = None
    format: str | None = None
    table: str | None = None
    server: str | None = None
    rows: int | None = None
    quarantined: int | None = None
    parts: list[str] = field(default_factory=list)
    final: bool | None = None
    ingested_at: datetime | None = None
    schema_version: int | None = None
    lookup: bytes | None = None

    def add_path(self, path: str) -> None:
        """Record another path the file was seen at."""
        if path not in self.paths:
            self.paths = [*self.paths, path]


#: The manifest's columns, in its order.
FIELDS = tuple(f.name for f in fields(FileRow))
Manifest = dict[str, FileRow]


def load(
    store: Store,
    con: duckdb.DuckDBPyConnection | None = None,
    wanted: list[str] | None = None,
) -> tuple[Manifest, bool]:
    """The manifest of ``store`` (empty when it has none) and whether it was read whole, in
    this version's columns. ``con``: a connection of ``duck.open_connection`` to read it
    with; ``wanted``: only these columns (``file_key`` and ``schema_version`` always).
    StoreError for a store a newer version wrote."""
    if not store.loc.exists(MANIFEST_FILE):
        return {}, False
    own = con is None
    con = open_connection(store) if con is None else con
    source = read_parquet([store.uri(MANIFEST_FILE)])
    try:
        names = con.sql(f"select * from {source} limit 0").columns
        keep = set(names if wanted is None else ["file_key", "schema_version", *wanted])
        # read positionally, in FileRow's order: a dict per row costs more than the read;
        # a column not asked for (or that an older store lacks) is None, a list []
        select = ", ".join(_column(n, n in keep and n in names) for n in FIELDS)
        rows = con.sql(f"select {select} from {source}").fetchall()
    finally:
        if own:
            con.close()
    version = FIELDS.index("schema_version")
    newest = max((r[version] or 0 for r in rows), default=0)
    if newest > SCHEMA_VERSION:
        raise StoreError(
            f"{store.root} was written by a newer loganalyzer (store schema {newest}; "
            f"this version reads up to {SCHEMA_VERSION}): upgrade loganalyzer"
        )
    out = {r[0]: FileRow(*r) for r in rows}
    # a manifest of this version, unchanged since read, is its file (the files view)
    return out, list(names) == [name for name, _ in columns("manifest")]


def _column(name: str, read: bool) -> str:
    """The select expression of manifest column ``name``: the column, or its empty value."""
    if name in ("paths", "parts"):
        return f'coalesce("{name}", []::varchar[])' if read else "[]::varchar[]"
    return f'"{name}"' if read else "null"


def table(manifest: Manifest) -> pa.Table:
    """``manifest`` as an Arrow table in the manifest's schema, in file key order."""
    import pyarrow as pa

    from loganalyzer.schema import MANIFEST

    rows = [manifest[k] for k in sorted(manifest)]
    return pa.table({n: [getattr(r, n) for r in rows] for n in FIELDS}, schema=MANIFEST)


def save(store: Store, manifest: Manifest) -> None:
    """Replace the manifest atomically (write a temporary file, then rename)."""
    tmp = f"{MANIFEST_FILE}.{os.getpid()}{TMP_SUFFIX}"
    store.loc.check_lock()  # an object store's lease may have been broken meanwhile
    try:
        store.write_parquet(
            tmp, table(manifest), compression="zstd", use_dictionary=["format", "table", "server"]
        )
        store.loc.sync(tmp)
        store.loc.replace(tmp, MANIFEST_FILE)
    except OSError as exc:
        with suppress(OSError):
            store.loc.remove([tmp])
        raise StoreError(
            f"could not write the manifest of {store.root}: {exc.strerror or exc}; the store "
            "is as it was before this ingest's unsaved files"
        ) from exc


def listed_parts(manifest: Manifest, table: str | None = None) -> list[str]:
    """Relative paths of the parts the manifest lists (``quarantine`` included), each once
    (a bundle's or a compacted part holds the rows of several files and is listed by each)."""
    out = set()
    for row in manifest.values():
        for p in row.parts:
            if table is None or p.startswith(f"{table}/"):
                out.add(p)
    return sorted(out)
