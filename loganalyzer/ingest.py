"""Ingest: find log files, recognise them, parse them in parallel and commit them to a store."""

from __future__ import annotations

import glob
import multiprocessing as mp
import os
import re
import signal
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from loganalyzer import formats
from loganalyzer.errors import BadInput, as_list
from loganalyzer.formats.base import BOM, ReadState
from loganalyzer.formats.common import LOCAL_ZONE
from loganalyzer.result import Result
from loganalyzer.schema import SCHEMA_VERSION
from loganalyzer.sources import (
    BombError,
    busy,
    expand,
    open_source,
    os_path,
    read_head,
    user_path,
)
from loganalyzer.store import LOCK_FILE, FileRow, Manifest, Store
from loganalyzer.store.lookup import merge
from loganalyzer.store.manifest import HEAD, Identity, decode_fingerprint, encode_fingerprint
from loganalyzer.store.parts import failpoint
from loganalyzer.times import zone_name
from loganalyzer.worker import Task, TaskResult, run_bundle, starting_workers, watch_parent

if TYPE_CHECKING:
    from loganalyzer.store.forget import ForgetSummary

#: Called with (bytes done, bytes in all, path just finished).
Progress = Callable[[int, int, str], None]
#: Called with the store, its manifest (written) and the UTC days that got tracking rows.
Rollups = Callable[[Store, Manifest, set[str]], object]
_SERIES = re.compile(
    r"^(?P<prefix>[a-z]+?)(?P<stamp>\d{4,10})(?:-(?P<n>\d+))?\.(?P<ext>log)$", re.IGNORECASE
)
# seconds between manifest rewrites during a long ingest (what a kill can cost), and at least
# this many times the last rewrite took: a big manifest must not slow the ingest it saves
_MANIFEST_EVERY, _MANIFEST_SHARE = 3.0, 20
#: The reason given for a file another program holds open without sharing it.
BUSY = "in use by another program (held open without sharing): read next run"
#: Files up to this size are parsed in bundles of up to _BUNDLE_BYTES and _BUNDLE_FILES.
_BUNDLE_FILE = 4 << 20
_BUNDLE_BYTES = 8 << 20
_BUNDLE_FILES = 64


@dataclass
class FileReport:
    """What happened to one input file."""

    path: str
    status: str  # ingested, grown, unchanged, duplicate, skipped, error
    format: str | None = None
    reason: str | None = None
    rows: int = 0
    quarantined: int = 0
    bytes: int = 0
    server: str | None = None
    #: Its last line has no line end yet: it is read once the file grows, or with ``--final``.
    held_back: bool = False


@dataclass
class IngestSummary(Result):
    """The result of an ingest; ``to_dict()`` is what ``--json`` prints."""

    store: str
    files: list[FileReport] = field(default_factory=list)
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    cleaned: list[str] = field(default_factory=list)
    #: The UTC days that got tracking or SMTP rows.
    days: set[str] = field(default_factory=set, repr=False)
    #: The log time of the earliest tracking or SMTP row written (None: none).
    first: datetime | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # a notebook shows the last value of a cell: one line, not a FileReport a file
        f = self.to_dict()["files"]
        return (
            f"IngestSummary({self.store!r}: {f['ingested']:,} files ingested, "
            f"{f['unchanged']:,} unchanged, {f['skipped']:,} skipped, {f['errors']:,} unreadable; "
            f"{self.rows:,} rows, {self.quarantined:,} quarantined lines; .files lists them)"
        )

    def count(self, *statuses: str) -> int:
        return sum(f.status in statuses for f in self.files)

    def count_held_back(self) -> int:
        """Incomplete last lines waiting for their file to grow (one file has at most one)."""
        return sum(f.held_back for f in self.files)

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    @property
    def bytes_read(self) -> int:
        return sum(f.bytes for f in self.files)

    @property
    def exit_code(self) -> int:
        """Non-zero only when a file could not be read at all."""
        return 1 if self.count("error") else 0

    def to_dict(self) -> dict:
        mb = self.bytes_read / 1e6
        return {
            "store": self.store,
            "files": {
                "seen": len(self.files),
                "ingested": self.count("ingested", "grown"),
                "unchanged": self.count("unchanged", "duplicate"),
                "duplicates": self.count("duplicate"),  # (of the unchanged)
                "skipped": self.count("skipped"),
                "errors": self.count("error"),
            },
            "rows": self.rows,
            "quarantined": self.quarantined,
            "held_back": self.count_held_back(),
            "bytes_read": self.bytes_read,
            "seconds": round(self.seconds, 3),
            "mb_per_s": round(mb / self.seconds, 1) if self.seconds > 0 else None,
            "warnings": self.warnings,
            "details": [asdict(f) for f in self.files],
        }


def is_pattern(name: str) -> bool:
    """Whether the path argument ``name`` is a glob pattern: it has glob characters and names
    no file or folder (``Logs [2024]`` is a folder's name where that folder exists)."""
    return glob.has_magic(name) and not os.path.lexists(os_path(name))


def discover(paths: Iterable[str | os.PathLike[str]], exclude: Path | None = None):
    """Files named by ``paths`` (files, folders searched recursively, globs), and the errors. A
    path that exists is taken as it is, even when its name holds glob characters."""
    found: dict[str, None] = {}
    missing: list[FileReport] = []
    exclude = exclude.resolve() if exclude else None  # once, not once per file
    for p in map(str, as_list(paths)):
        if not p:  # Path("") is the current folder: an empty name from a script is not
            missing.append(FileReport(p, "error", reason="empty path"))
            continue
        pattern = is_pattern(p)
        if pattern:  # "**" matches any depth of folders
            # the pattern as given: the "?" of a \\?\ prefix is a wildcard to glob
            matches = sorted(glob.glob(p, recursive=True))
            if not matches:
                missing.append(FileReport(p, "error", reason="no file matches this pattern"))
            candidates = [Path(os_path(m)) for m in matches]
        else:
            candidates = [Path(os_path(p))]
        for c in candidates:
            try:
                if c.is_dir():
                    found.update(dict.fromkeys(_files_under(c, exclude, missing)))
                elif c.is_file():
                    found[user_path(str(c))] = None
                elif not pattern:
                    why = "no such file or folder" if not c.exists() else "not a regular file"
                    missing.append(FileReport(user_path(str(c)), "error", reason=why))
            except OSError as exc:  # no right to look: named, the others are read
                missing.append(_unread(user_path(str(c)), exc))
    return list(found), missing


def _files_under(folder: Path, exclude: Path | None, missing: list[FileReport]) -> list[str]:
    """The files below ``folder`` in name order; a folder or entry that cannot be read (no
    rights, a dangling share) is added to ``missing`` instead of stopping the search."""
    out = []

    def unreadable(exc: OSError) -> None:
        missing.append(_unread(user_path(exc.filename or str(folder)), exc))

    for root, _dirs, names in os.walk(folder, onerror=unreadable):
        for name in names:
            f = Path(root) / name
            try:
                regular = f.is_file()
            except OSError as exc:
                missing.append(_unread(user_path(str(f)), exc))
                continue
            if regular and not (exclude and _inside(f, exclude)):
                out.append(f)
    return [user_path(str(f)) for f in sorted(out)]


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` lies in ``folder`` (resolved)."""
    try:
        path.resolve().relative_to(folder)
        return True
    except ValueError:
        return False


class _Series:
    """Whether a newer file of the same series exists beside a file (then it stopped growing)."""

    def __init__(self) -> None:
        self._newest: dict[Path, dict[tuple, tuple[int, int]]] = {}

    @staticmethod
    def _key(name: str) -> tuple[tuple, tuple[int, int]] | None:
        m = _SERIES.match(name)
        if not m:
            return None
        series = (m["prefix"].lower(), m["ext"].lower(), len(m["stamp"]))
        return series, (int(m["stamp"]), int(m["n"] or 0))

    def has_newer(self, path: Path) -> bool:
        mine = self._key(path.name)
        if mine is None:
            return False
        if path.parent not in self._newest:
            newest: dict[tuple, tuple[int, int]] = {}
            for name in os.listdir(path.parent):
                k = self._key(name)
                if k and k[1] > newest.get(k[0], (-1, -1)):
                    newest[k[0]] = k[1]
            self._newest[path.parent] = newest
        return self._newest[path.parent].get(mine[0], mine[1]) > mine[1]


def _read_on_from(name: str, offset: int, line: int) -> tuple[int, int]:
    """Where a grown file is read on from (byte offset, lines before it): where the last
    ingest stopped, or the start of its last line when that ingest quarantined the line
    unfinished (the file had stopped growing, then grew after all): read whole now, at its
    own line number, and the lines after it at theirs."""
    if offset <= 0:
        return offset, line
    start = max(0, offset - HEAD)
    try:
        with open_source(name) as fh:
            fh.seek(start)
            before = fh.read(offset - start)
    except OSError:
        return offset, line  # the read itself names the problem
    cut = before.rfind(b"\n")
    tail = before[cut + 1 :]
    if not tail or not tail.strip(b"\x00") or (cut < 0 and start > 0) or line < 1:
        return offset, line  # at a line's start, after NUL padding, or a line past the head
    return start + cut + 1, line - 1


def _sources(files: list[str], reports: list[FileReport]):
    """(name, size, archived) of every log: the files, and the logs inside archives."""
    for name in files:
        path = Path(name)
        try:
            for src in expand(path):
                yield src.name, src.size, src.archived
        except BombError as exc:
            reports.append(FileReport(name, "skipped", reason=str(exc)))
        except (OSError, EOFError, zipfile.BadZipFile, ValueError) as exc:
            reports.append(_unread(name, exc))


def _unread(name: str, exc: BaseException) -> FileReport:
    """The report of a file that could not be read: skipped for now when another program
    holds it open (it is read next run), else an error."""
    if busy(exc):
        return FileReport(name, "skipped", reason=BUSY)
    why = getattr(exc, "strerror", None) or str(exc)
    return FileReport(name, "error", reason=f"could not read: {why}")


def _differs(row: FileRow, *, format, server, tz) -> str | None:
    """The options given now that would have read the file ``row`` differently ("--tz and
    --server"), or None: a file read before is not read again, so they do not apply."""
    zone = ReadState(header=row.header or "").directives().get(LOCAL_ZONE)
    named = [
        ("--format", format is not None and format != row.format),
        ("--server", server is not None and server != row.server),
        ("--tz", tz is not None and zone is not None and (zone or "UTC") != tz),
    ]
    return " and ".join(o for o, other in named if other) or None


def _plan(files, manifest, store, *, format, server, tz, final, reports):
    identity = Identity(manifest)
    series = _Series()
    tasks: list[Task] = []
    planned: dict[str, Task] = {}
    for name, size, archived in _sources(files, reports):
        path = Path(name)
        try:
            head = read_head(name, HEAD)
        except BombError as exc:
            reports.append(FileReport(name, "skipped", reason=str(exc)))
            continue
        except (OSError, EOFError, zipfile.BadZipFile) as exc:
            reports.append(_unread(name, exc))
            continue
        if size == 0:
            reports.append(FileReport(name, "skipped", reason="empty file"))
            continue
        try:
            _, found = formats.detect(head, path.name, forced=format)
        except formats.NotALog as exc:
            reports.append(FileReport(name, "skipped", reason=str(exc)))
            continue
        key, fps = identity.find(head)
        shift = 0
        if key is None:
            key, shift = _bom_twin(identity, head)
        is_final = final or archived or series.has_newer(path)
        if key in planned:  # the same log twice in one run: read the longer copy
            other = planned[key]
            if size - shift > other.size - other.shift:
                other.path, name = name, other.path
                if other.offset:  # the same line, in this copy's bytes (0: its start, mark or not)
                    other.offset += shift - other.shift
                other.size, other.shift, other.final = size, shift, is_final
                if not shift:  # a copy with the mark is known by the other's first bytes
                    other.fingerprint = encode_fingerprint(fps)
            other.copies.append(name)
            reports.append(
                FileReport(name, "duplicate", found.format, reason=f"same log as {other.path}")
            )
            continue
        row = manifest.get(key) if key else None
        if row is not None:
            row.add_path(name)
            consumed = row.bytes_consumed + shift
            known = None if row.size is None else row.size + shift
            if size <= consumed or (size == known and not is_final):
                differs = _differs(row, format=format, server=server, tz=tz)
                report = FileReport(name, "unchanged", row.format, reason=differs)
                report.held_back = not is_final and consumed < size  # still waiting
                reports.append(report)
                continue
            offset, line = consumed, row.lines_consumed or 0
            if not formats.get(row.format).reads_last_line:
                offset, line = _read_on_from(name, offset, line)
            task = Task(
                name,
                row.format,
                key,
                str(store.root),
                offset=offset,
                line=line,
                header=row.header or "",
                log_type=found.log_type,
                server=server or row.server,
                forced=bool(format),
                final=is_final,
                tz=tz,
                size=size,
                shift=shift,
            )
        else:
            key = fps[max(fps)][:16]
            identity.add(key, fps)
            task = Task(
                name,
                found.format,
                key,
                str(store.root),
                log_type=found.log_type,
                server=server,
                forced=bool(format),
                final=is_final,
                tz=tz,
                size=size,
            )
        # a copy with the mark is known by the other's first bytes: its own would be wrong
        task.fingerprint = "" if shift else encode_fingerprint(fps)
        planned[key] = task
        tasks.append(task)
    return tasks


def _bom_twin(identity: Identity, head: bytes) -> tuple[str | None, int]:
    """The known log a file is a copy of but for a UTF-8 byte-order mark (an editor's "UTF-8
    with BOM" save), and how many bytes further on its lines are (``Task.shift``); a UTF-16
    copy needs none of this: it is read as its text, the mark dropped."""
    if head.startswith(BOM):
        key, shift = identity.find(head[len(BOM) :])[0], len(BOM)
    else:
        key, shift = identity.find((BOM + head)[:HEAD])[0], -len(BOM)
    return key, (shift if key else 0)


def _commit(manifest: Manifest, res: TaskResult) -> FileReport:
    """List a file's parts (renamed into place) and what was read of it in its manifest row."""
    t = res.task
    row = manifest.get(t.file_key)
    status = "grown" if row else "ingested"
    if row is None:
        row = manifest[t.file_key] = FileRow(
            t.file_key,
            paths=[t.path],
            rows=0,
            quarantined=0,
            format=t.format,
            table=res.table,
            server=res.server,
            lookup=b"",
        )
    fps = {
        **decode_fingerprint(row.head_fingerprint or ""),
        **decode_fingerprint(t.fingerprint),
    }
    row.size = t.size - t.shift
    row.head_len = max(fps) if fps else 0
    row.head_fingerprint = encode_fingerprint(fps)
    row.bytes_consumed = res.state.offset - t.shift
    row.lines_consumed = res.state.line
    row.header = res.state.header
    row.server = row.server or res.server
    row.rows = (row.rows or 0) + res.rows
    row.quarantined = (row.quarantined or 0) + res.quarantined
    row.parts = sorted({*row.parts, *(p.final for p in res.parts)})
    row.final = t.final and res.state.offset >= t.size
    row.ingested_at = datetime.now(UTC)
    # a file ingested before sketches existed keeps none: it is always read
    row.lookup = None if row.lookup is None else merge(row.lookup, res.lookup)
    row.schema_version = SCHEMA_VERSION
    for path in (t.path, *t.copies):
        row.add_path(path)
    return FileReport(
        t.path,
        status,
        t.format,
        rows=res.rows,
        quarantined=res.quarantined,
        bytes=res.state.offset - t.offset,
        server=row.server,
        held_back=not t.final and res.state.offset < t.size,
    )


def _pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes started as Python starts them on this platform (spawn
    on Windows and macOS, fork on Linux up to 3.13; ``$LOGANALYZER_MP`` names another): a
    worker needs nothing from its parent's memory. Each watches its parent and exits when it
    is gone, so a killed ingest leaves no workers behind."""
    ctx = mp.get_context(os.environ.get("LOGANALYZER_MP") or None)
    handler = signal.getsignal(signal.SIGINT)
    own = callable(handler) and handler is not signal.default_int_handler
    return ProcessPoolExecutor(workers, mp_context=ctx, initializer=watch_parent, initargs=(own,))


def ingest(
    paths: Iterable[str | os.PathLike[str]],
    store: str | os.PathLike[str] | Store | None = None,
    *,
    format: str | None = None,
    server: str | None = None,
    tz: str | None = None,
    final: bool = False,
    workers: int | None = None,
    progress: Progress | None = None,
    on_wait: Callable[[str], None] | None = None,
    scheduler: str | None = None,
    rollups: Rollups | None = None,
) -> IngestSummary:
    """Ingest log files into ``store``; returns what happened to each file.

    ``paths`` are files, folders (searched recursively) and glob patterns. ``format`` names
    the format of header-less files; ``server`` overrides the server name read from the
    files; ``tz`` is the zone of local-time logs; ``final`` says the files stopped growing.
    ``scheduler``: the address of a Dask scheduler whose workers parse the files (they must
    reach the logs at the same paths, and the store); this process still commits them.
    ``rollups``: called under the lock once the manifest is written, with the store, the
    manifest and the UTC days that got tracking or SMTP rows, to bring the store's rollups up
    to date (those days, and any a killed run left out of date):
    ``loganalyzer.report.rollup.refresh`` (the report owns what they hold).
    """
    started = time.perf_counter()
    st = store if isinstance(store, Store) else Store(store)
    if format is not None:
        formats.get(format)
    if tz is not None:
        tz = zone_name(tz)  # an unknown zone is refused before any file is read
    paths = as_list(paths)  # one path given alone is that path
    files, reports = discover(paths, exclude=st.local_root)
    if not files:  # nothing to read: refused before the store is touched
        raise BadInput(_nothing_to_ingest(paths, reports, st.local_root))
    st.require_new_or_begun()  # never a folder of other files: refused before it is touched
    if scheduler:  # a wrong address is refused before the store is locked
        from loganalyzer.cluster import check_scheduler

        check_scheduler(scheduler)
    summary = IngestSummary(str(st.root), reports)
    folder = st.local_root
    made = folder is not None and not folder.exists()  # the lock creates it
    with st.lock(on_wait=on_wait):
        summary.cleaned = st.clean()
        manifest = st.manifest()
        tasks = _plan(
            files,
            manifest,
            st,
            format=format,
            server=server,
            tz=tz,
            final=final,
            reports=summary.files,
        )
        known = any(
            f.status in ("unchanged", "duplicate") or f.reason == BUSY for f in summary.files
        )  # a file held open by Exchange is a log, read next run
        if tasks:
            _read(st, manifest, tasks, summary, workers, scheduler, progress)
        if tasks or known:
            st.write_manifest(manifest)
        if rollups is not None and (tasks or known):  # also those a killed run left stale
            rollups(st, manifest, summary.days)
        if tasks and (scheduler or any(f.reason == WORKER_DIED for f in summary.files)):
            st.clean()  # the temporary parts of workers that died
    if not tasks and not known:
        if made:  # leave no half-made store behind: the lock file and its folder go
            with suppress(OSError):
                os.remove(folder / LOCK_FILE)
                os.rmdir(folder)
        raise BadInput(_nothing_to_ingest(paths, summary.files))
    differ = [f.reason for f in summary.files if f.status == "unchanged" and f.reason]
    if differ:  # each option once, in the order _differs names them
        given = " and ".join(dict.fromkeys(o for r in differ for o in r.split(" and ")))
        many = " and " in given
        summary.warnings.append(
            f"{len(differ)} {'file was' if len(differ) == 1 else 'files were'} read before "
            f"with another {given} and not again: {given} "
            f"{'apply' if many else 'applies'} to files read for the first time "
            "(`loganalyzer store forget` takes files out of the store, to be read again)"
        )
    summary.seconds = time.perf_counter() - started
    return summary


def forget(
    paths: Iterable[str | os.PathLike[str]],
    store: str | os.PathLike[str] | Store | None = None,
    *,
    dry_run: bool = False,
    damaged: bool = False,
    rollups: Callable[[Store, Manifest, set[str] | None], object] | None = None,
    on_wait: Callable[[str], None] | None = None,
) -> ForgetSummary:
    """Take the logs ``paths`` name out of the store so that the next ingest reads them again
    (``store.forget.forget``, which says what each option does). A log is known by a path as
    an ingest was given it, or, where the path names files here (a file, folder, glob or
    archive), by their first bytes, as ingest knows a log."""
    from loganalyzer.store import forget as store_forget

    wanted = [str(p) for p in as_list(paths)]
    heads = {w: _heads(w) for w in wanted if w.strip()}
    return store_forget.forget(
        store,
        wanted,
        heads=heads,
        literal=[w for w in wanted if not is_pattern(w)],
        dry_run=dry_run,
        damaged=damaged,
        rollups=rollups,
        on_wait=on_wait,
    )


def _heads(path: str) -> list[bytes]:
    """The first bytes of each log ``path`` names (none when it names none)."""
    files, _ = discover([path])
    out = []
    for name, _size, _archived in _sources(files, []):
        with suppress(OSError, EOFError, zipfile.BadZipFile):  # a BombError is an OSError
            out.append(read_head(name, HEAD))
    return out


def _read(st, manifest, tasks, summary, workers, scheduler, progress) -> None:
    """Parse the planned files (in workers or on a Dask cluster) and commit each bundle."""
    total = sum(t.size - t.offset for t in tasks)
    done = 0
    last_write, every = time.monotonic(), _MANIFEST_EVERY
    n = min(workers or os.cpu_count() or 1, len(tasks))
    if scheduler:
        from loganalyzer.cluster import run_on_cluster

        # a task per file, each with parts of its own
        results = ([res] for res in run_on_cluster(tasks, scheduler, st))
    else:
        # workers of a process-local filesystem (memory://) would write into their own
        results = _run(tasks, n if st.loc.shared else 1)
    for bundle in results:
        read = []
        for res in bundle:
            if res.error:
                status, why = ("skipped", BUSY) if res.busy else ("error", res.error)
                report = FileReport(res.task.path, status, res.task.format, reason=why)
                summary.files.append(report)
            else:
                read.append(res)
        # a bundle's files share parts: all of them are listed in the manifest, or none
        st.commit_parts(list({p.final: p for res in read for p in res.parts}.values()))
        for k, res in enumerate(read):
            if k == 1:
                failpoint("bundle-listed")  # (tests: a kill between two files of a bundle)
            summary.files.append(_commit(manifest, res))
            summary.days.update(
                p.final.split("/")[1][len("date=") :]
                for p in res.parts
                if p.final.startswith(("tracking/date=", "smtp/date="))
            )
            if res.first and res.table in ("tracking", "smtp"):
                summary.first = min(res.first, summary.first or res.first)
            if res.tz_assumed:
                summary.warnings.append(f"{res.task.path}: local times read as UTC (no --tz)")
            summary.warnings += [f"{res.task.path}: {w}" for w in res.warnings]
            done += res.task.size - res.task.offset
            if progress:
                progress(done, total, res.task.path)
        if (now := time.monotonic()) - last_write > every:
            st.write_manifest(manifest)
            last_write = time.monotonic()
            every = max(_MANIFEST_EVERY, _MANIFEST_SHARE * (last_write - now))


def _nothing_to_ingest(
    paths: Iterable[str | os.PathLike[str]], files: list[FileReport], store: Path | None = None
) -> str:
    """One line: no input holds a log; the first file and why, and how many more. A path in
    the store's own folder (whose files are never read as logs) is named as such."""
    if not files:
        held = [p for p in paths if store is not None and _inside(Path(p), store.resolve())]
        if held:
            return (
                f"nothing to ingest: {held[0]} is in the store's folder ({store}), whose "
                "files are never read as logs: give the store a folder of its own with "
                "--store (beside the logs, not around them)"
            )
        names = ", ".join(map(str, paths)) or "(none)"
        return f"nothing to ingest: no file in {names}"
    first = files[0]
    more = f" (and {len(files) - 1} more files, none of them a log)" if len(files) > 1 else ""
    return f"nothing to ingest: {first.path}: {first.reason or first.status}{more}"


def bundles(tasks: list[Task], workers: int) -> list[list[Task]]:
    """Tasks in the order to run them, biggest first; small files of one format and context
    go together (``worker.run_bundle``), a few bundles per worker so that all finish together."""
    tasks = sorted(tasks, key=lambda t: t.size - t.offset, reverse=True)
    small = [t for t in tasks if t.size - t.offset <= _BUNDLE_FILE]
    budget = min(
        _BUNDLE_BYTES, max(1 << 20, sum(t.size - t.offset for t in small) // (4 * max(1, workers)))
    )
    out = [[t] for t in tasks if t.size - t.offset > _BUNDLE_FILE]
    groups: dict[tuple, list[Task]] = {}
    for t in small:
        groups.setdefault((t.format, t.log_type, t.forced, t.final, t.tz, t.server), []).append(t)
    for group in groups.values():
        bundle: list[Task] = []
        size = 0
        for t in group:
            if bundle and (size + t.size - t.offset > budget or len(bundle) >= _BUNDLE_FILES):
                out.append(bundle)
                bundle, size = [], 0
            bundle.append(t)
            size += t.size - t.offset
        if bundle:
            out.append(bundle)
    return out


def _run(tasks: list[Task], workers: int):
    """Yield the task results of each bundle as it finishes."""
    todo = bundles(tasks, workers)
    if workers <= 1:
        for bundle in todo:
            yield run_bundle(bundle)
        return
    before = set(mp.active_children())
    pool = _pool(workers)
    try:
        futures, unsent = {}, []
        with _ctrl_c_held(), starting_workers():  # the submits start the workers
            for i, bundle in enumerate(todo):
                try:
                    futures[pool.submit(run_bundle, bundle)] = bundle
                except BrokenProcessPool:  # a worker died while the rest were handed out
                    unsent = todo[i:]
                    break
        for future in as_completed(futures):
            try:
                yield future.result()
            except BrokenProcessPool:  # a worker was killed (out of memory...): the others too
                yield [TaskResult(t, "", error=WORKER_DIED) for t in futures[future]]
        for bundle in unsent:
            yield [TaskResult(t, "", error=WORKER_DIED) for t in bundle]
    except BaseException:  # Ctrl-C, or the caller gave up: the workers stop now
        _stop(pool, before)
        raise
    pool.shutdown()


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Ctrl-C held back until the block ends, then delivered: a pool interrupted while it
    starts a worker loses track of it (forked, it waits for work for ever; spawned, it
    fails reading what its parent sent it). Only the main thread handles signals."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    held: list[int] = []
    handler = signal.signal(signal.SIGINT, lambda signum, _frame: held.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, handler)
        for _ in held:
            signal.raise_signal(signal.SIGINT)


def _stop(pool: ProcessPoolExecutor, before: set) -> None:
    """Ends ``pool`` without waiting for the files queued to it. Its workers are ended too,
    found as the children started since ``before``: an interruption while the pool starts
    can leave a worker it never recorded, waiting for work for ever (and the exit waiting
    for that worker). Their unfinished parts are never committed, as after a kill."""
    # a worker ended while it sent a result (a terminal's Ctrl-C reaches it too) leaves the
    # pool's reader waiting for the rest for ever, as this process holds the pipe's other
    # end, and the exit waits for that reader: closed, the reader gets the pipe's end (taken
    # before the shutdown, which forgets the queue)
    writer = getattr(getattr(pool, "_result_queue", None), "_writer", None)
    # the pool's manager thread closes its pipes as it ends; Python 3.11's exit wakes it
    # through one of them without a lock and printed "Bad file descriptor" when the two
    # met: the thread is waited for here, before the exit
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for child in set(mp.active_children()) - before:
        child.kill()
        child.join(5)
    if writer is not None:
        with suppress(OSError):
            writer.close()
    if manager is not None:
        manager.join(5)


#: A file whose worker process died: the files read before it are kept.
WORKER_DIED = (
    "not ingested: a worker process ended abruptly (killed, or out of memory); "
    "it is read again next run"
)
