"""Where a store lives: a local folder (or a mounted share) or an fsspec URL.

A store path is a folder (``mailstore``, ``/mnt/share/mailstore``, ``file:///...``) or a URL
that fsspec knows (``s3://bucket/mailstore``, ``abfs://container/mailstore``,
``gs://bucket/mailstore``, ``memory://store``). Paths inside a store are relative, with ``/``.
Parquet is written and read by pyarrow, files are listed, renamed and removed by the OS or by
fsspec, and DuckDB reads URL stores through the registered fsspec filesystem.

What a rename gives:

- a local folder or a mounted share: ``os.replace``, atomic (on NFS and SMB as the server
  implements rename, which for a single file within one share is atomic in practice);
- object stores (S3, Azure Blob, GCS): no rename; fsspec's move is a server-side copy and a
  delete. The copy replaces the destination object in one step (a reader sees the old or the
  new object, never a mix), so the manifest is still replaced atomically; a kill between copy
  and delete leaves the temporary object, which the next ingest removes. Parts are written
  once under a temporary name and copied once: object stores pay the bytes twice.
  An upload killed half-way leaves no object, but S3 may keep its parts: a bucket lifecycle
  rule that aborts incomplete multipart uploads reclaims them.

The lock is ``loganalyzer.store.lock``'s.
"""

from __future__ import annotations

import glob as globmod
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from loganalyzer.errors import StoreError
from loganalyzer.store.lock import LOCK_FILE, Lease, env_lease, local_lock

__all__ = ["LOCK_FILE", "Local", "Location", "Remote", "location"]


def is_url(path: str) -> bool:
    return "://" in path


def location(path: str, lease: float | None = None) -> Location:
    """The location of a store path or URL."""
    if not is_url(path):
        return Local(path)
    import fsspec

    try:
        fs, root = fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as exc:  # an unknown protocol, a missing driver (s3fs...)
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    if type(fs).__name__ == "LocalFileSystem":
        return Local(root)
    return Remote(fs, root.rstrip("/"), env_lease() if lease is None else lease)


class Location:
    """Files of one store, by path relative to its root."""

    #: Whether other processes (pool workers, Dask workers) see the same files.
    shared = True
    arrow_fs: Any = None
    root: str

    def full(self, rel: str) -> str:
        raise NotImplementedError

    def url(self, rel: str = "") -> str:
        """The path or URL other readers (DuckDB, Dask workers) use."""
        raise NotImplementedError

    def register(self, con) -> None:
        """Let a DuckDB connection read this location."""

    def exists(self, rel: str) -> bool:
        raise NotImplementedError

    def size(self, rel: str) -> int:
        raise NotImplementedError

    def open(self, rel: str, mode: str = "rb"):
        raise NotImplementedError

    def makedirs_for(self, rel: str) -> None:
        raise NotImplementedError

    def replace(self, src: str, dst: str) -> None:
        raise NotImplementedError

    def remove(self, rels: list[str]) -> None:
        raise NotImplementedError

    def files(self, sub: str) -> list[str]:
        """Every file under the folder ``sub``, relative to the root."""
        raise NotImplementedError

    def glob(self, pattern: str) -> list[str]:
        raise NotImplementedError

    def sizes(self, sub: str) -> dict[str, int]:
        """The size of every file in the folder ``sub`` (not below), by relative path."""
        raise NotImplementedError

    def prune(self, sub: str) -> None:
        """Remove empty folders under ``sub`` (where folders exist)."""

    def sync(self, rel: str) -> None:
        """Flush a written file to stable storage (where that means something)."""

    def lock(self, wait: float | None, on_wait: Callable[[str], None] | None):
        raise NotImplementedError

    def check_lock(self) -> None:
        """Raise StoreError when a lock this process held was taken by another."""


class Local(Location):
    """A folder: local disk or a mounted share."""

    @property
    def arrow_fs(self):  # type: ignore[override]
        import pyarrow.fs as pafs  # here: reading a store (a trace) needs no pyarrow

        return pafs.LocalFileSystem()

    def __init__(self, root: str) -> None:
        self.root = root

    def full(self, rel: str) -> str:
        return os.path.join(self.root, rel) if rel else self.root

    def url(self, rel: str = "") -> str:
        return os.path.abspath(self.full(rel))

    def exists(self, rel: str) -> bool:
        return os.path.isfile(self.full(rel))

    def size(self, rel: str) -> int:
        return os.stat(self.full(rel)).st_size

    def open(self, rel: str, mode: str = "rb"):
        return open(self.full(rel), mode)  # noqa: SIM115 - the caller closes it

    def makedirs_for(self, rel: str) -> None:
        os.makedirs(os.path.dirname(self.full(rel)) or ".", exist_ok=True)

    def replace(self, src: str, dst: str) -> None:
        os.replace(self.full(src), self.full(dst))

    def remove(self, rels: list[str]) -> None:
        for rel in rels:
            Path(self.full(rel)).unlink(missing_ok=True)

    def files(self, sub: str) -> list[str]:
        base = self.full(sub)
        out = []
        for folder, _, names in os.walk(base):
            rel = os.path.relpath(folder, self.root).replace(os.sep, "/")
            out += [f"{rel}/{n}" for n in names]
        return out

    def glob(self, pattern: str) -> list[str]:
        return [
            os.path.relpath(p, self.root).replace(os.sep, "/")
            for p in globmod.glob(os.path.join(globmod.escape(self.root), pattern))
        ]

    def sizes(self, sub: str) -> dict[str, int]:
        try:
            with os.scandir(self.full(sub)) as it:
                return {f"{sub}/{e.name}": e.stat().st_size for e in it if e.is_file()}
        except FileNotFoundError:
            return {}

    def prune(self, sub: str) -> None:
        base = self.full(sub)
        for folder, _, _ in os.walk(base, topdown=False):
            if folder != base:
                with suppress(OSError):
                    os.rmdir(folder)  # only an empty folder goes

    def sync(self, rel: str) -> None:
        with open(self.full(rel), "rb") as fh:
            os.fsync(fh.fileno())

    def lock(self, wait: float | None, on_wait: Callable[[str], None] | None):
        return local_lock(self, wait, on_wait)


class Remote(Location):
    """A folder of an fsspec filesystem: an object store, a memory filesystem, ..."""

    def __init__(self, fs, root: str, lease: float) -> None:
        self.fs, self.root, self.lease = fs, root, lease
        protocols = (fs.protocol,) if isinstance(fs.protocol, str) else fs.protocol
        # the memory filesystem lives in one process: workers would write into their own
        self.shared = "memory" not in protocols
        self._lease: Lease | None = None

    @property
    def arrow_fs(self):  # type: ignore[override]
        import pyarrow.fs as pafs

        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def full(self, rel: str) -> str:
        return f"{self.root}/{rel}" if rel else self.root

    def url(self, rel: str = "") -> str:
        return self.fs.unstrip_protocol(self.full(rel))

    def register(self, con) -> None:
        con.register_filesystem(self.fs)

    def exists(self, rel: str) -> bool:
        # not fs.isfile: it answers False to every error, and an unreachable endpoint or a
        # refused credential would read as "no manifest, not a store"
        with _reaching(self.url()):
            try:
                return self.fs.info(self.full(rel))["type"] == "file"
            except FileNotFoundError:
                return False

    def size(self, rel: str) -> int:
        return int(self.fs.size(self.full(rel)))

    def open(self, rel: str, mode: str = "rb"):
        return self.fs.open(self.full(rel), mode)

    def makedirs_for(self, rel: str) -> None:
        parent = self.full(rel).rsplit("/", 1)[0]
        self.fs.makedirs(parent, exist_ok=True)  # a no-op on object stores

    def replace(self, src: str, dst: str) -> None:
        self.fs.mv(self.full(src), self.full(dst))

    def remove(self, rels: list[str]) -> None:
        paths = [self.full(r) for r in rels]
        if paths:
            try:
                self.fs.rm(paths)
            except FileNotFoundError:
                for p in paths:
                    if self.fs.exists(p):
                        self.fs.rm(p)

    def files(self, sub: str) -> list[str]:
        base = self.full(sub)
        if not self.fs.exists(base):
            return []
        prefix = self.root.rstrip("/") + "/"
        out = []
        for p in self.fs.find(base):
            p = self.fs._strip_protocol(p)
            if p.startswith(prefix):
                out.append(p[len(prefix) :])
        return out

    def glob(self, pattern: str) -> list[str]:
        prefix = self.root.rstrip("/") + "/"
        return [
            p[len(prefix) :]
            for p in map(self.fs._strip_protocol, self.fs.glob(self.full(pattern)))
            if p.startswith(prefix)
        ]

    def sizes(self, sub: str) -> dict[str, int]:
        prefix = self.root.rstrip("/") + "/"
        try:
            entries = self.fs.ls(self.full(sub), detail=True)
        except FileNotFoundError:
            return {}
        out = {}
        for e in entries:
            name = self.fs._strip_protocol(e["name"])
            if e.get("type") == "file" and name.startswith(prefix):
                out[name[len(prefix) :]] = int(e.get("size") or 0)
        return out

    @contextmanager
    def lock(self, wait: float | None, on_wait: Callable[[str], None] | None) -> Iterator[None]:
        lease = Lease(self, self.lease)
        with _reaching(self.url()):
            lease.acquire(wait, on_wait)
        self._lease = lease
        try:
            yield
        finally:
            self._lease = None
            lease.release()

    def check_lock(self) -> None:
        if self._lease is not None:
            self._lease.check()


@contextmanager
def _reaching(url: str) -> Iterator[None]:
    """A driver's own errors (botocore's for S3: an unreachable endpoint, ...) as StoreError,
    which commands report in one line; OSError (missing, access denied) passes as it is."""
    try:
        yield
    except (OSError, StoreError):
        raise
    except Exception as exc:
        raise StoreError(f"cannot reach the store {url}: {exc}") from exc
