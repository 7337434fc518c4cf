"""Where a store lives: one fsspec filesystem rooted at the store.

A store path is a folder (``mailstore``, ``/mnt/share/mailstore``, ``file:///...``) or a URL
that fsspec knows (``s3://bucket/mailstore``, ``abfs://container/mailstore``,
``gs://bucket/mailstore``, ``memory://store``). Either way the store's files are reached through
one fsspec filesystem rooted at the store (``DirFileSystem``), by paths relative to it with
``/``; DuckDB reads URL stores through the registered fsspec filesystem.

What differs by backend is decided once, from the filesystem's class, in ``Location.local``:

- a local folder or a mounted share: a rename is ``os.replace``, atomic (on NFS and SMB as the
  server implements rename, which for a single file within one share is atomic in practice)
  and, unlike ``os.rename``, it replaces an existing file on Windows too; the manifest is
  fsynced before it is renamed into place; pyarrow writes through its own local filesystem;
  the lock is an OS file lock that dies with its holder;
- object stores (S3, Azure Blob, GCS) and fsspec's memory filesystem: no rename; a move is a
  server-side copy and a delete. The copy replaces the destination object in one step (a
  reader sees the old or the new object, never a mix), so the manifest is still replaced
  atomically; a kill between copy and delete leaves the temporary object, which the next
  ingest removes. Parts are written once under a temporary name and copied once: object
  stores pay the bytes twice. An upload killed half-way leaves no object, but S3 may keep its
  parts: a bucket lifecycle rule that aborts incomplete multipart uploads reclaims them.
  The lock is an object with a lease (``loganalyzer.store.lock``).
"""

from __future__ import annotations

import fnmatch
import os
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from loganalyzer.errors import StoreError
from loganalyzer.store.lock import (
    LOCK_FILE,
    Lease,
    env_lease,
    lease_holder,
    local_holder,
    local_lock,
)

__all__ = ["LOCK_FILE", "Location", "location"]


def is_url(path: str) -> bool:
    return "://" in path


def file_url_path(path: str) -> str:
    """The local path a ``file:`` URL names (``file:///srv/x``, ``file:/srv/x``,
    ``file://localhost/srv/x``; on Windows ``file:///C:/x``); any other path unchanged. A file
    URL naming another host is refused (``file://srv/x`` is host ``srv``, path ``/x``)."""
    if path[:5].lower() != "file:":
        return path
    parsed = urllib.parse.urlsplit(path)
    if parsed.netloc not in ("", "localhost"):
        raise StoreError(
            f"{path}: this file URL names the host {parsed.netloc!r}; give "
            f"file:///{parsed.netloc}{parsed.path} (three slashes) or the folder's path"
        )
    return urllib.request.url2pathname(parsed.path)


def location(path: str, lease: float | None = None) -> Location:
    """The location of a store path or URL."""
    import fsspec

    if not is_url(path):
        from fsspec.implementations.local import LocalFileSystem

        return Location(LocalFileSystem(), path, lease)
    try:
        fs, root = fsspec.core.url_to_fs(path)
    except (ImportError, ValueError) as exc:  # an unknown protocol, a missing driver (s3fs...)
        raise StoreError(f"cannot open the store {path}: {exc}") from exc
    return Location(fs, root, lease)


class Location:
    """The files of one store, by path relative to its root.

    ``fs``: an fsspec filesystem rooted at the store (every path relative to it);
    ``base``: the filesystem it wraps, ``root`` the store's path on it.
    ``local``: the base is the operating system's filesystem (see the module's docstring for
    what that changes); ``shared``: other processes (pool workers, Dask workers) see the same
    files (not so for the memory filesystem, which lives in one process).
    ``lease``: seconds an object store's lock lives without renewal (None on a local one).
    """

    def __init__(self, base: Any, root: str, lease: float | None = None) -> None:
        from fsspec.implementations.dirfs import DirFileSystem
        from fsspec.implementations.local import LocalFileSystem
        from fsspec.implementations.memory import MemoryFileSystem

        self.base = base
        self.local = isinstance(base, LocalFileSystem)
        self.shared = not isinstance(base, MemoryFileSystem)
        self.root = root if self.local else root.rstrip("/")
        self.fs = DirFileSystem(path=self.root, fs=base)
        # read here, so that a wrong value is named when such a store is opened
        self.lease = None if self.local else env_lease() if lease is None else lease
        self._lease: Lease | None = None

    def __repr__(self) -> str:
        return f"Location({self.url()!r})"

    # -- names ---------------------------------------------------------------------------
    def full(self, rel: str) -> str:
        """The path of a file as the base filesystem names it (the OS's, when local)."""
        if self.local:
            return os.path.join(self.root, rel) if rel else self.root
        return f"{self.root}/{rel}" if rel else self.root

    def url(self, rel: str = "") -> str:
        """The path or URL other readers (DuckDB, Dask workers) use."""
        if self.local:
            return os.path.abspath(self.full(rel))
        return self.base.unstrip_protocol(self.full(rel))

    @property
    def arrow_fs(self):
        """A pyarrow filesystem rooted at the store (paths relative, as for ``fs``)."""
        import pyarrow.fs as pafs  # here: reading a store (a trace) needs no pyarrow

        if self.local:  # pyarrow's own: C++ file I/O, no Python per write
            return pafs.SubTreeFileSystem(self.fs.path, pafs.LocalFileSystem())
        return pafs.PyFileSystem(pafs.FSSpecHandler(self.fs))

    def register(self, con) -> None:
        """Let a DuckDB connection read this location."""
        if not self.local:
            con.register_filesystem(self.base)

    # -- files -----------------------------------------------------------------------------
    def exists(self, rel: str) -> bool:
        # not fs.isfile: it answers False to every error, and an unreachable endpoint or a
        # refused credential would read as "no manifest, not a store"
        with _reaching(self.url()):
            try:
                return self.fs.info(rel)["type"] == "file"
            except (FileNotFoundError, NotADirectoryError):  # a file given as the store
                return False

    def size(self, rel: str) -> int:
        return int(self.fs.size(rel))

    def open(self, rel: str, mode: str = "rb"):
        return self.fs.open(rel, mode)

    def makedirs_for(self, rel: str) -> None:
        self.fs.makedirs(rel.rpartition("/")[0], exist_ok=True)  # a no-op on object stores

    def replace(self, src: str, dst: str) -> None:
        """Move ``src`` over ``dst``, which readers then see whole, old or new."""
        if self.local:
            os.replace(self.full(src), self.full(dst))
        else:
            # another process (a worker) wrote src: a listing of its folder this process
            # cached (the clean-up's) lacks it, and the move would not find it
            self.fs.invalidate_cache(src.rpartition("/")[0])
            self.fs.mv(src, dst)

    def remove(self, rels: list[str]) -> None:
        """Remove these files; one already gone is no error."""
        if not rels:
            return
        try:
            self.fs.rm(list(rels))
        except FileNotFoundError:
            for rel in rels:
                with suppress(FileNotFoundError):
                    self.fs.rm_file(rel)

    def names(self) -> list[str]:
        """The names in the root folder (its files and folders, not below); none when the
        root is not there (or is a file)."""
        if self.local:
            try:
                return os.listdir(self.root)
            except (FileNotFoundError, NotADirectoryError):
                return []
        with _reaching(self.url()):
            try:
                found = self.fs.ls("", detail=False)
            except FileNotFoundError:
                return []
        return [name.rstrip("/").rpartition("/")[2] for name in found]

    def files(self, sub: str) -> list[str]:
        """Every file under the folder ``sub``, relative to the root."""
        try:
            return sorted(self.fs.find(sub))
        except FileNotFoundError:
            return []

    def sizes(self, sub: str) -> dict[str, int]:
        """The size of every file in the folder ``sub`` (not below), by relative path."""
        try:
            entries = self.fs.ls(sub, detail=True)
        except FileNotFoundError:
            return {}
        return {e["name"]: int(e.get("size") or 0) for e in entries if e.get("type") == "file"}

    def glob(self, pattern: str) -> list[str]:
        """The files of one folder whose names match ``pattern`` (wildcards in the last
        part only: the root's own name may hold wildcard characters)."""
        folder, _, name = pattern.rpartition("/")
        return [
            rel for rel in self.sizes(folder) if fnmatch.fnmatchcase(rel.rpartition("/")[2], name)
        ]

    def prune(self, sub: str) -> None:
        """Remove empty folders under ``sub`` (object stores have none)."""
        if not self.local:
            return
        try:
            found = self.fs.find(sub, withdirs=True, detail=True)
        except FileNotFoundError:
            return
        folders = [p for p, info in found.items() if info["type"] == "directory" and p != sub]
        for folder in sorted(folders, key=lambda p: p.count("/"), reverse=True):
            with suppress(OSError):
                self.fs.rmdir(folder)  # only an empty folder goes

    def sync(self, rel: str) -> None:
        """Flush a written file to stable storage (on a local disk; an object is stored
        whole when its upload ends)."""
        if self.local:
            # opened for writing: Windows flushes no file opened only for reading
            with open(self.full(rel), "r+b") as fh:
                os.fsync(fh.fileno())

    # -- lock ------------------------------------------------------------------------------
    @contextmanager
    def lock(self, wait: float | None, on_wait: Callable[[str], None] | None) -> Iterator[None]:
        if self.local:
            with local_lock(self, wait, on_wait):
                yield
            return
        lease = Lease(self, float(self.lease or 0))
        with _reaching(self.url()):
            lease.acquire(wait, on_wait)
        self._lease = lease
        try:
            yield
        finally:
            self._lease = None
            lease.release()

    def holder(self) -> str | None:
        """Who holds the store's lock now (another process's ingest, compaction...), as a
        few words to follow the store's name; None when it is free."""
        if self.local:
            return local_holder(self) if os.path.exists(self.full(LOCK_FILE)) else None
        with _reaching(self.url()):
            return lease_holder(self)

    def check_lock(self) -> None:
        """Raise StoreError when a lock this process held was taken by another (a lease
        that expired); an OS lock cannot be taken from a live holder."""
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
