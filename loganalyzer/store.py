"""The Parquet store: layout, manifest, file identity, lock and clean-up (DESIGN.md, The store).

Readers use the manifest to know which parts are complete; only the ingest's parent process
renames parts and replaces the manifest.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow as pa
import pyarrow.parquet as pq

from loganalyzer.schema import MANIFEST, SCHEMA_VERSION

if TYPE_CHECKING:
    import pandas as pd

DEFAULT_STORE = "./loganalyzer-store"
MANIFEST_FILE = "manifest.parquet"
LOCK_FILE = ".lock"
TMP_SUFFIX = ".tmp"
#: Lengths at which a file's first bytes are fingerprinted; see ``fingerprints``.
LADDER = (1 << 10, 4 << 10, 16 << 10, 64 << 10)
HEAD = LADDER[-1]


class StoreError(RuntimeError):
    """A store that cannot be used as asked."""


def default_store() -> str:
    """``$LOGANALYZER_STORE``, else ``./loganalyzer-store``."""
    return os.environ.get("LOGANALYZER_STORE") or DEFAULT_STORE


def fingerprints(head: bytes, extra: tuple[int, ...] = ()) -> dict[int, str]:
    """Digests of the first bytes of a file at the ladder lengths, at ``extra`` lengths, and
    at its whole head. Two files are the same log when their digests agree at a common length.
    """
    lengths = sorted({n for n in (*LADDER, *extra, len(head)) if 0 < n <= len(head)})
    h = hashlib.blake2b(digest_size=12)
    out, pos = {}, 0
    for n in lengths:
        h.update(head[pos:n])
        pos = n
        out[n] = h.copy().hexdigest()
    return out


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
    """A store folder: ``tracking/``, ``smtp/``, ``quarantine/`` and ``manifest.parquet``."""

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.root = Path(path or default_store())

    def __repr__(self) -> str:
        return f"Store({str(self.root)!r})"

    # -- layout -------------------------------------------------------------------------
    def path(self, relative: str) -> Path:
        return self.root / relative

    @staticmethod
    def part_name(table: str, date: str, file_key: str, offset: int) -> str:
        return f"{table}/date={date}/{file_key}-{offset}.parquet"

    @staticmethod
    def quarantine_name(file_key: str, offset: int) -> str:
        return f"quarantine/{file_key}-{offset}.parquet"

    def exists(self) -> bool:
        return (self.root / MANIFEST_FILE).is_file()

    # -- manifest -------------------------------------------------------------------------
    def manifest(self) -> dict[str, dict]:
        """The manifest: one row per ingested file, by file key."""
        path = self.root / MANIFEST_FILE
        if not path.is_file():
            return {}
        rows = pq.ParquetFile(path).read().to_pylist()  # read_table imports datasets: slow
        newest = max((r.get("schema_version") or 0 for r in rows), default=0)
        if newest > SCHEMA_VERSION:
            raise StoreError(
                f"{self.root} was written by a newer loganalyzer (store schema {newest}; "
                f"this version reads up to {SCHEMA_VERSION}): upgrade loganalyzer"
            )
        return {r["file_key"]: r for r in rows}

    def write_manifest(self, rows: dict[str, dict]) -> None:
        """Replace the manifest atomically (write a temporary file, then rename)."""
        table = pa.Table.from_pylist(
            sorted(rows.values(), key=lambda r: r["file_key"]), schema=MANIFEST
        )
        tmp = self.root / f"{MANIFEST_FILE}.{os.getpid()}{TMP_SUFFIX}"
        try:
            pq.write_table(table, tmp, compression="zstd",
                           use_dictionary=["format", "table", "server"])
            with open(tmp, "rb") as fh:
                os.fsync(fh.fileno())
            os.replace(tmp, self.root / MANIFEST_FILE)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(
                f"could not write the manifest of {self.root}: {exc.strerror or exc}; the store "
                "is as it was before this ingest's unsaved files"
            ) from exc

    def listed_parts(self, table: str | None = None) -> list[str]:
        """Relative paths of the parts the manifest lists (``quarantine`` included)."""
        out = []
        for row in self.manifest().values():
            for p in row["parts"] or []:
                if table is None or p.startswith(f"{table}/"):
                    out.append(p)
        return sorted(out)

    # -- lock and clean-up ------------------------------------------------------------------
    @contextmanager
    def lock(
        self, wait: float | None = None, on_wait: Callable[[str], None] | None = None
    ) -> Iterator[None]:
        """Hold the store's lock: an OS file lock that dies with its holder.

        ``wait`` is how long to wait for another process's lock (None: as long as it takes).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fh = open(self.root / LOCK_FILE, "a+")  # noqa: SIM115 - held for the whole block
        try:
            start = time.monotonic()
            told = False
            while True:
                try:
                    fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if wait is not None and time.monotonic() - start >= wait:
                        raise StoreError(
                            f"{self.root} is locked by another loganalyzer process"
                            f"{_holder(fh)}; try again when it has finished"
                        ) from None
                    if on_wait and not told:
                        on_wait(f"waiting for the lock on {self.root}{_holder(fh)}")
                        told = True
                    time.sleep(0.2)
            fh.seek(0)
            fh.truncate()
            fh.write(f"{os.getpid()}\n")
            fh.flush()
            yield
        finally:
            fh.close()  # closing releases the lock

    def clean(self) -> list[str]:
        """Remove temporary files and parts the manifest does not list; call under the lock."""
        listed = set(self.listed_parts())
        removed = []
        for sub in ("tracking", "smtp", "quarantine"):
            base = self.root / sub
            if not base.is_dir():
                continue
            for path in base.rglob("*"):
                if not path.is_file():
                    continue
                rel = path.relative_to(self.root).as_posix()
                if rel.endswith(TMP_SUFFIX) or (rel.endswith(".parquet") and rel not in listed):
                    path.unlink()
                    removed.append(rel)
            for folder in sorted(base.rglob("*"), reverse=True):
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()
        for path in self.root.glob(f"{MANIFEST_FILE}.*{TMP_SUFFIX}"):
            path.unlink()
            removed.append(path.name)
        return removed

    # -- reading ---------------------------------------------------------------------------
    def connect(self, only: list[dict] | None = None, manifest: dict[str, dict] | None = None):
        """A DuckDB connection with views ``tracking``, ``smtp``, ``recipients``,
        ``quarantine`` and ``files`` over the parts the manifest lists (or the files in
        ``only``)."""
        from loganalyzer.query import connect

        return connect(self, only, manifest)

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run SQL over the store's views; returns a DataFrame."""
        from loganalyzer.frames import to_frame

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
        from loganalyzer.frames import select

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
        from loganalyzer.frames import select

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
        from loganalyzer.frames import select

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
            os.replace(self.root / part.tmp, self.root / part.final)


def _holder(fh) -> str:
    try:
        fh.seek(0)
        pid = fh.read().strip()
        return f" (pid {pid})" if pid else ""
    except OSError:
        return ""
