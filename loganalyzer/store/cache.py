"""Manifests kept while their store is unchanged: a long-running reader (the web app) reads a
store's manifest, and builds its lookup sketches, once per store state instead of per request.

An ingest or a compaction replaces the manifest whole (a new file renamed into place), so the
manifest file's identity is the store's state: on a local or mounted filesystem its stat
(modification time in nanoseconds, size, inode), elsewhere what the filesystem's ``info``
gives (size with a modification time or an ETag); a filesystem that gives neither is not
cached. The kept ``Manifest`` and ``Sketches`` are shared between threads and requests:
callers must not change them (copy a row before changing it).
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, TypeVar

from loganalyzer.store import manifest as _manifest
from loganalyzer.store.lookup import Sketches
from loganalyzer.store.manifest import MANIFEST_FILE, Manifest

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable

    import duckdb

    from loganalyzer.store import Store

#: How many stores' manifests are kept (the newest used).
STORES = 4
#: ``info`` fields of an fsspec filesystem that change when a file is replaced.
_CHANGES = ("mtime", "LastModified", "last_modified", "ETag", "etag", "created", "updated")


@dataclass
class _Kept:
    stamp: tuple
    manifest: Manifest
    whole: bool
    sketches: Sketches | None = None
    #: Values computed from the manifest alone (see ``kept``), by name.
    memo: dict = field(default_factory=dict)


T = TypeVar("T")
_lock = threading.Lock()
_kept: OrderedDict[str, _Kept] = OrderedDict()


def stamp(store: Store, relative: str = MANIFEST_FILE) -> tuple | None:
    """What changes when the manifest of ``store`` (or another file replaced whole) is
    replaced; None when the filesystem says nothing that would (then nothing is kept).
    FileNotFoundError without the file."""
    if store.loc.local:
        info = os.stat(store.loc.full(relative))
        return (info.st_mtime_ns, info.st_size, info.st_ino)
    info = store.loc.fs.info(relative)
    changes = tuple(str(info[k]) for k in _CHANGES if info.get(k) is not None)
    return (info.get("size"), *changes) if changes else None


def manifest(store: Store, con: duckdb.DuckDBPyConnection | None = None) -> tuple[Manifest, bool]:
    """The manifest of ``store`` (every column) and whether it was read whole (see
    ``manifest.load``): the kept one while the file is unchanged, else read (with ``con``)
    and kept. Not to be changed by the caller."""
    try:
        before = stamp(store)
    except FileNotFoundError:
        return _manifest.load(store, con)
    key = store.url
    with _lock:
        kept = _kept.get(key)
        if kept is not None and before is not None and kept.stamp == before:
            _kept.move_to_end(key)
            return kept.manifest, kept.whole
    rows, whole = _manifest.load(store, con)
    try:
        after = stamp(store)
    except FileNotFoundError:
        after = None
    if before is not None and after == before:  # not replaced while it was read
        with _lock:
            _kept[key] = _Kept(before, rows, whole)
            _kept.move_to_end(key)
            while len(_kept) > STORES:
                _kept.popitem(last=False)
    return rows, whole


def sketches(manifest: Manifest) -> Sketches:
    """The lookup sketches of ``manifest``: kept with it when it is a kept manifest (built on
    first use), else new."""
    with _lock:
        kept = next((k for k in _kept.values() if k.manifest is manifest), None)
        if kept is None:
            return Sketches(manifest)
        if kept.sketches is None:
            kept.sketches = Sketches(manifest)
        return kept.sketches


def kept(manifest: Manifest, name: Hashable, compute: Callable[[], T]) -> T:
    """``compute()``, a function of ``manifest`` alone (and of what ``name`` says): kept with
    the manifest under ``name`` when it is a kept manifest (computed once per store state),
    else computed each time. Not to be changed by the caller."""
    with _lock:
        entry = next((k for k in _kept.values() if k.manifest is manifest), None)
        if entry is not None and name in entry.memo:
            return entry.memo[name]
    value = compute()
    if entry is not None:
        with _lock:
            value = entry.memo.setdefault(name, value)
    return value


def forget(store: Store | None = None) -> None:
    """Drop the kept manifest of ``store`` (None: of every store), to be read again: a process
    that knows the store changed whatever its stamp says (tests; a part gone under a reader)."""
    with _lock:
        if store is None:
            _kept.clear()
        else:
            _kept.pop(store.url, None)
