"""The manifest: one row per ingested file (DESIGN.md, The store), read and written here only.

A ``FileRow`` is one file's row; a ``Manifest`` maps file keys to rows. The ingest changes
rows in place and writes the manifest whole; readers take the parts the rows list.
"""

from __future__ import annotations

import hashlib
import heapq
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
            "is as it was before this command (the parts it wrote are unlisted, removed by the "
            "next ingest or `loganalyzer store check --repair`)"
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


class Identity:
    """Find a file in the manifest by the fingerprints of its first bytes.

    A file is a known log when the digest agrees at the longest length both files cover:
    the same log copied elsewhere, or grown since, or an older and shorter copy of it.
    """

    def __init__(self, manifest: Manifest) -> None:
        self.index: dict[tuple[int, str], str] = {}
        self.lengths: dict[str, list[int]] = {}
        # files shorter than HEAD have a digest at their own length, off the ladder: by the
        # digest at the ladder length below it, so that a new head is hashed only at the
        # lengths of the short files it could be (hashing at every length is quadratic)
        self.short: dict[tuple[int, str], set[int]] = {}
        for key, row in manifest.items():
            self.add(key, decode_fingerprint(row.head_fingerprint or ""))

    def add(self, key: str, fps: dict[int, str]) -> None:
        for n, digest in fps.items():
            self.index.setdefault((n, digest), key)
        self.lengths[key] = sorted({*self.lengths.get(key, ()), *fps})
        for n in fps:
            if n not in LADDER:
                anchor = max((a for a in LADDER if a < n), default=0)
                self.short.setdefault((anchor, fps.get(anchor, "")), set()).add(n)

    def digests(self, head: bytes) -> dict[int, str]:
        """Digests of the head's first bytes at the ladder lengths, at its whole length, and at
        the lengths of the short files whose digest at the ladder length below theirs this head
        shares, in one pass. Two files are the same log when their digests agree at a common
        length."""
        todo = [n for n in LADDER if n < len(head)] + [len(head)]
        todo += [n for n in self.short.get((0, ""), ()) if n <= len(head)]
        heapq.heapify(todo)
        h = hashlib.blake2b(digest_size=12)
        out: dict[int, str] = {}
        pos = 0
        while todo:
            n = heapq.heappop(todo)
            if n in out or n <= 0:
                continue
            h.update(head[pos:n])
            pos = n
            out[n] = h.copy().hexdigest()
            if n in LADDER:
                for m in self.short.get((n, out[n]), ()):
                    if n < m <= len(head):
                        heapq.heappush(todo, m)
        return out

    def find(self, head: bytes) -> tuple[str | None, dict[int, str]]:
        fps = self.digests(head)
        for n in sorted(fps, reverse=True):
            key = self.index.get((n, fps[n]))
            if key and self._covers(key, n, len(head)):
                return key, fps
        return None, fps

    def _covers(self, key: str, n: int, length: int) -> bool:
        """Whether agreeing at ``n`` makes a head of ``length`` bytes the known file ``key``:
        ``n`` is the longest length at which ``key`` has a digest up to ``length``, and reaches
        the ladder's rung below the length both cover (or that length itself, below the first
        rung). Agreeing at the length of a short file seen before is not enough: two logs of
        one kind share their header's first hundred bytes."""
        lengths = self.lengths[key]
        if max(m for m in lengths if m <= length) != n:
            return False
        both = min(length, lengths[-1])
        return n >= max((a for a in LADDER if a <= both), default=both)
