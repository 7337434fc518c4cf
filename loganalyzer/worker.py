"""One ingest task: parse one file from an offset (or a bundle of small files, ``run_bundle``)
and write its parts under temporary names.

Runs in a worker process; it never renames into place nor touches the manifest.
"""

from __future__ import annotations

import base64
import contextlib
import functools
import itertools
import multiprocessing as mp
import os
import re
import secrets
import signal
import socket
import sys
import threading
import time
import zlib
from collections.abc import Hashable, Iterator
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime
from pathlib import PurePath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from loganalyzer import formats
from loganalyzer.formats import columns as C
from loganalyzer.formats.base import TAG_SHIFT, Bad, ReadState, Run, merge_runs
from loganalyzer.formats.common import Batch, Context
from loganalyzer.formats.contract import Format
from loganalyzer.schema import MEMBER_SEP, QUARANTINE, TABLES, conform
from loganalyzer.sources import busy, is_archive, open_source
from loganalyzer.store import Store
from loganalyzer.store.lookup import encode, slice_hashes, table_hashes
from loganalyzer.store.parts import ROW_GROUP, TMP_SUFFIX, Part, failpoint, part_options

#: A worker holding this much more memory than after its first task gives back what it freed.
KEEP_BYTES = 128 << 20
_floor: int | None = None  # resident bytes after the first task
#: Files with fewer bytes to read have their parts built in memory.
BUFFER_BELOW = 4 << 20
#: The type of a column that holds one value on every row of a part (its file, format and
#: often server): the writer encodes such a dictionary without hashing each row (measured:
#: SMTP parts a tenth quicker to write).
_ONE_VALUE = pa.dictionary(pa.int32(), pa.string())
#: Folder names of Exchange and IIS log trees: never a server's name.
_LOG_FOLDERS = re.compile(
    r"^(messagetracking|protocollog|smtpreceive|smtpsend|hub|frontend|mailbox|delivery|"
    r"submission|edge|logs|transportroles|v1[45]|logfiles|smtpsvc\d*|connectivity|agentlog|"
    r"exchsrvr|.*\.log|tracking\.log|system32|winnt|windows|exchange server|microsoft|"
    r"program files)$",
    re.IGNORECASE,
)


@dataclass
class Task:
    """What to read: a file, its format and where to start. Fields after the store are
    named when given (keyword-only)."""

    path: str
    format: str  # the name of a format (formats.FORMATS)
    file_key: str
    store: str  # the store's root
    _: KW_ONLY
    # where reading starts: a grown file is read on from where the last ingest stopped
    offset: int = 0
    line: int = 0
    header: str = ""
    # how to read it
    log_type: str | None = None
    server: str | None = None  # --server, else the manifest's
    forced: bool = False  # the user named the format (--format)
    final: bool = False  # the file stopped growing
    tz: str | None = None
    # what the planner saw, for the manifest
    size: int = 0
    fingerprint: str = ""
    # how many bytes further on the file's lines are than in the manifest's row: a copy of a
    # known log with (3) or without (-3) the UTF-8 byte-order mark the known one lacks or has
    shift: int = 0
    # the other paths the same log was given at in this run (copies), for the manifest
    copies: list[str] = field(default_factory=list)

    def start(self) -> ReadState:
        """Where reading starts (updated as the file is read)."""
        return ReadState(self.offset, self.line, self.header)

    def context(self) -> Context:
        """What a format's parse needs to know besides the bytes."""
        return Context(
            path=self.path,
            file_key=self.file_key,
            log_type=self.log_type,
            forced=self.forced,
            final=self.final,
            tz=self.tz,
        )


@dataclass
class TaskResult:
    """What a task wrote and where reading stopped."""

    task: Task
    table: str
    parts: list[Part] = field(default_factory=list)
    rows: int = 0
    quarantined: int = 0
    server: str | None = None
    state: ReadState = field(default_factory=ReadState)
    seconds: float = 0.0
    error: str | None = None
    busy: bool = False  # another program held the file open without sharing it: read later
    tz_assumed: bool = False
    warnings: list[str] = field(default_factory=list)  # said of the file (``Batch.warnings``)
    lookup: bytes = b""  # the IDs of the rows (see loganalyzer.store.lookup)
    worker: str = ""  # host:pid of the process that ran the task
    #: The log time of its earliest row (None: no rows).
    first: datetime | None = None


def folder_server(path: str, flavour: type[PurePath] = PurePath) -> str | None:
    """The name of the nearest folder above ``path`` that is not a log folder, else the host of
    the Windows share it lies on (``\\\\EX01\\Logs\\MessageTracking\\...``): EX01.
    An archive's log (``logs.zip!EX01/MessageTracking/x.LOG``) is looked up in its folders in
    the archive, then in those holding the archive: as if the archive were unpacked.
    ``flavour``: the path rules (the OS's own, or ``PureWindowsPath``)."""
    outer, sep, member = path.partition(MEMBER_SEP)
    if not (sep and is_archive(flavour(outer))):  # a "!" in a plain folder's name
        outer, member = path, ""
    pure = flavour(outer)
    inside = list(flavour(member).parents) if member else []
    for parent in [*inside, *pure.parents]:
        name = parent.name
        if name and not _LOG_FOLDERS.match(name):
            return name.upper()
    if pure.drive.startswith("\\\\"):  # a UNC share: its drive is \\host\share
        return pure.drive[2:].split("\\")[0].upper() or None
    return None


@functools.cache
def _arrow_schema(schema: pa.Schema) -> str:
    """The ``ARROW:schema`` metadata pyarrow stores for ``schema``: a part whose writer took
    one-value dictionaries says its columns are plain strings, as every other part does."""
    return base64.b64encode(schema.serialize().to_pybytes()).decode()


class _Writer:
    """Part files of one task, one per date partition, plus its quarantine file."""

    def __init__(self, store: Store, table: str, task: Task) -> None:
        self.store, self.table, self.task = store, table, task
        self.schema = TABLES[table]
        self.writers: dict[str, tuple[pq.ParquetWriter, Part]] = {}
        self.single: dict[str, set[str]] = {}  # per date: columns written as dictionaries
        self.buffers: dict[str, pa.BufferOutputStream] = {}
        self.bad: list[Bad] = []
        self.token = f"{os.getpid()}-{secrets.token_hex(4)}"
        # a small file's part is built in memory and written at once: a file opened, written
        # and closed costs a small part more than its encoding
        self.buffered = task.size - task.offset <= BUFFER_BELOW

    def _open(self, date: str, rows: int, single: dict[str, str]) -> tuple[pq.ParquetWriter, Part]:
        if date not in self.writers:
            final = Store.part_name(self.table, date, self.task.file_key, self.task.offset)
            part = Part(f"{final}.{self.token}{TMP_SUFFIX}", final, 0)
            options = part_options(self.table, rows) | {"store_schema": False}
            schema = self.schema
            for name in single:
                at = schema.get_field_index(name)
                schema = schema.set(at, schema.field(at).with_type(_ONE_VALUE))
            if self.buffered:
                self.buffers[date] = pa.BufferOutputStream()
                writer = pq.ParquetWriter(self.buffers[date], schema, **options)
            else:
                writer = self.store.parquet_writer(part.tmp, schema, **options)
            writer.add_key_value_metadata({"ARROW:schema": _arrow_schema(self.schema)})
            self.writers[date] = (writer, part)
            self.single[date] = set(single)
        return self.writers[date]

    def write(self, table: pa.Table, single: dict[str, str]) -> None:
        """Write ``table``; ``single`` maps the columns known to hold one value on every row to
        that value (their values in ``table`` are not read)."""
        for date, rows in _by_date(table):
            self._write(date, rows, single)

    def _write(self, date: str, rows: pa.Table, single: dict[str, str]) -> None:
        writer, part = self._open(date, rows.num_rows, single)
        dictionaries = self.single[date]
        for name in dictionaries | single.keys():
            at = rows.schema.get_field_index(name)
            if name not in single:  # a later batch of the file with several values: rare
                column = pc.dictionary_encode(rows.column(at))
            elif name in dictionaries:
                zeros = pa.array(np.zeros(rows.num_rows, np.int32))
                column = pa.DictionaryArray.from_arrays(zeros, pa.array([single[name]]))
            else:
                column = C.constant(single[name], rows.num_rows)
            rows = rows.set_column(at, rows.schema.field(at).with_type(column.type), column)
        writer.write_table(rows, row_group_size=ROW_GROUP)
        part.rows += rows.num_rows

    def close(self) -> list[Part]:
        self.bad.sort(key=lambda b: b.line)  # file order, however the lines were parsed
        parts = []
        for date, (writer, part) in self.writers.items():
            writer.close()
            if date in self.buffers:
                self.store.write_bytes(part.tmp, self.buffers.pop(date).getvalue())
            parts.append(part)
        if self.bad:
            final = Store.quarantine_name(self.task.file_key, self.task.offset)
            part = Part(f"{final}.{self.token}{TMP_SUFFIX}", final, len(self.bad))
            rows = [_bad_row(self.task, b) for b in self.bad]
            table = pa.Table.from_pylist(rows, schema=QUARANTINE)
            self.store.write_parquet(part.tmp, table, compression="zstd")
            parts.append(part)
        return parts

    def abort(self) -> None:
        """Drop what was written; the next ingest's clean-up removes what this cannot."""
        for writer, part in self.writers.values():
            with contextlib.suppress(OSError):
                writer.close()
            with contextlib.suppress(OSError):
                self.store.remove([part.tmp])


def _by_date(table: pa.Table) -> Iterator[tuple[str, pa.Table]]:
    """The rows of ``table`` by UTC date (``YYYY-MM-DD``), the date partitions of the store."""
    bounds = pc.min_max(table.column("date_time")).as_py()
    first, last = (b.date() for b in bounds.values())
    if first == last:  # the usual case: one log file, one day
        yield first.isoformat(), table
        return
    dates = pc.cast(table.column("date_time"), pa.date32())
    for date in pc.unique(dates).to_pylist():
        yield date.isoformat(), table.filter(pc.equal(dates, pa.scalar(date)))


class _Bundle:
    """The parts of a bundle (``run_bundle``): the rows of all its files in one part per date,
    their bad lines in one quarantine part, each listed by every file whose rows it holds. A
    part costs about 2 ms whatever its rows (a column chunk per column, zstd, footers): one
    per file was most of what writing a small file cost."""

    def __init__(self, store: Store, table: str, tasks: list[Task]) -> None:
        self.store, self.table, self.tasks = store, table, tasks
        self.schema = TABLES[table]
        self.rows: dict[int, _Rows] = {}  # by the file's index in tasks

    def rows_of(self, i: int) -> _Rows:
        """Where ``_store`` puts the rows of file ``i``."""
        self.rows[i] = _Rows(self.schema)
        return self.rows[i]

    @property
    def files(self) -> dict[int, _Rows]:
        """The files read whole (``_store`` closed their rows), by their index in tasks."""
        return {i: rows for i, rows in self.rows.items() if rows.whole}

    def close(self, results: list[TaskResult]) -> None:
        """Write the parts under temporary names; each file's result lists the parts holding
        its rows. A write that fails fails every file of the bundle (nothing is committed)."""
        tmp = f"{os.getpid()}-{secrets.token_hex(4)}{TMP_SUFFIX}"
        files = self.files
        dates: dict[str, list[tuple[int, pa.Table, dict[str, str]]]] = {}
        for i, rows in sorted(files.items()):
            for date, pieces in rows.pieces.items():
                dates.setdefault(date, []).extend((i, t, one) for t, one in pieces)
        written: list[Part] = []
        try:
            for date, pieces in sorted(dates.items()):
                first = self.tasks[pieces[0][0]]
                final = Store.part_name(self.table, date, first.file_key, first.offset, shared=True)
                part = Part(f"{final}.{tmp}", final, sum(t.num_rows for _, t, _ in pieces))
                self._write(part, pieces)
                written.append(part)
                for i in dict.fromkeys(i for i, _, _ in pieces):
                    results[i].parts.append(part)
            bad = [(i, rows.bad) for i, rows in sorted(files.items()) if rows.bad]
            if bad:
                first = self.tasks[bad[0][0]]
                final = Store.quarantine_name(first.file_key, first.offset, shared=True)
                part = Part(f"{final}.{tmp}", final, sum(len(b) for _, b in bad))
                table = pa.Table.from_pylist(
                    [_bad_row(self.tasks[i], b) for i, lines in bad for b in lines],
                    schema=QUARANTINE,
                )
                self.store.write_parquet(part.tmp, table, compression="zstd")
                written.append(part)
                for i, _ in bad:
                    results[i].parts.append(part)
        except BaseException:
            for i in files:
                results[i].parts = []
            with contextlib.suppress(OSError):
                self.store.remove([p.tmp for p in written])
            raise
        finally:
            self.rows.clear()  # the rows, written or not, are let go at once

    def _write(self, part: Part, pieces: list[tuple[int, pa.Table, dict[str, str]]]) -> None:
        """One date's rows of the files, file after file, as ``_Writer`` writes one file's: a
        column one value in each file's rows is a dictionary of those values (no row hashed)."""
        table = pa.concat_tables([t for _, t, _ in pieces])
        sizes = [t.num_rows for _, t, _ in pieces]
        every = set.intersection(*(set(one) for _, _, one in pieces))
        schema = self.schema
        for name in sorted(set().union(*(one.keys() for _, _, one in pieces))):
            at = table.schema.get_field_index(name)
            if name in every:
                values = [one[name] for _, _, one in pieces]
                index = {v: k for k, v in enumerate(dict.fromkeys(values))}
                codes = np.repeat(np.array([index[v] for v in values], np.int32), sizes)
                column = pa.chunked_array(
                    [pa.DictionaryArray.from_arrays(codes, pa.array(list(index), pa.string()))]
                )
                schema = schema.set(at, schema.field(at).with_type(_ONE_VALUE))
            else:  # given in some files, read from the rows in others
                chunks = [
                    [C.constant(one[name], t.num_rows)] if name in one else t.column(name).chunks
                    for _, t, one in pieces
                ]
                column = pa.chunked_array([c for cs in chunks for c in cs], pa.string())
            table = table.set_column(at, table.schema.field(at).with_type(column.type), column)
        options = part_options(self.table, part.rows) | {"store_schema": False}
        buffer = pa.BufferOutputStream()
        with pq.ParquetWriter(buffer, schema, **options) as writer:
            writer.add_key_value_metadata({"ARROW:schema": _arrow_schema(self.schema)})
            writer.write_table(table, row_group_size=ROW_GROUP)
        self.store.write_bytes(part.tmp, buffer.getvalue())


class _Rows:
    """One file's rows and bad lines kept for its bundle's parts (``_store``'s writer)."""

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.pieces: dict[str, list[tuple[pa.Table, dict[str, str]]]] = {}
        self.bad: list[Bad] = []
        self.whole = False  # all the file's rows are here

    def write(self, table: pa.Table, single: dict[str, str]) -> None:
        for date, rows in _by_date(table):
            self.pieces.setdefault(date, []).append((rows, dict(single)))

    def close(self) -> list[Part]:
        """The file is whole: its rows go into the bundle's parts (``_Bundle.close``)."""
        self.bad.sort(key=lambda b: b.line)  # file order, however the lines were parsed
        self.whole = True
        return []

    def abort(self) -> None:
        """Nothing of the file was kept."""


def _bad_row(task: Task, bad: Bad) -> dict:
    """A bad line as a row of the quarantine."""
    return {
        "file": task.path,
        "line": bad.line,
        "reason": bad.reason,
        "raw": bad.raw,
        "log_format": task.format,
        "file_key": task.file_key,
    }


def run_task(task: Task) -> TaskResult:
    """Parse ``task.path`` from ``task.offset`` and write its parts under temporary names."""
    started = time.perf_counter()
    fmt = formats.get(task.format)
    result = TaskResult(task, fmt.table, worker=f"{socket.gethostname()}:{os.getpid()}")
    state = task.start()
    try:
        with open_source(task.path) as fh:
            _store(task, fmt, fmt.parse(fh, state, task.context()), result)
    except (OSError, EOFError, zlib.error) as exc:
        result.error = f"could not read: {getattr(exc, 'strerror', None) or exc}"
        result.busy = busy(exc)
    except Exception as exc:  # the file is reported, the other files go on
        result.error = _failure(exc)
    result = _finish(result, state, started)
    _release()
    return result


def _failure(exc: Exception) -> str:
    """The report of a file whose parse failed for a reason no log line explains (a bug, or
    a failure inside a library): nothing of it is committed."""
    return f"could not ingest: {type(exc).__name__}: {exc}"


def _release() -> None:
    """Give freed memory back to the system once a worker holds ``KEEP_BYTES`` more than after
    its first task: its memory stays bounded, and below that the next task reuses the pages
    (giving them back after every task cost a sixth of the ingest in page faults)."""
    global _floor
    if _floor is None or _resident() > _floor + KEEP_BYTES:
        pa.default_memory_pool().release_unused()
        if _floor is None:
            _floor = _resident()


def _resident() -> int:
    """This process's resident memory in bytes."""
    import psutil

    return psutil.Process().memory_info().rss


def watch_parent(parent_owns_ctrl_c: bool = False) -> None:
    """Pool initialiser: the worker exits as soon as its parent is gone (a killed ingest
    cannot stop its workers; on every platform, through the sentinel multiprocessing gives a
    child: a pipe that closes, or on Windows the parent's process handle). When the parent
    handles Ctrl-C itself (``watch`` finishes its round), the worker ignores it: a terminal's
    Ctrl-C reaches every process of its group (on Windows, of its console). A forked worker
    drops its parent's handlers (``watch`` would have it finish a round it is not in; the
    pool's start holds Ctrl-C back). The worker hears Ctrl-C from here on (``starting_workers``)."""
    ctrl_c = signal.SIG_IGN if parent_owns_ctrl_c else signal.default_int_handler
    parent = mp.parent_process()
    if parent is not None and parent.sentinel is not None:
        threading.Thread(target=_exit_after, args=(parent.sentinel,), daemon=True).start()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    # a Ctrl-C held back while the worker started reached its parent too, which ends the
    # pool: it is dropped here, not raised in the middle of this initialiser
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _hear_ctrl_c()
    signal.signal(signal.SIGINT, ctrl_c)


@contextlib.contextmanager
def starting_workers() -> Iterator[None]:
    """Workers started in this block do not hear Ctrl-C until ``watch_parent`` has set up
    their handling: a spawned worker (Windows, macOS) takes seconds importing, and a
    terminal's Ctrl-C reaches it too (its process group; on Windows, its console), which
    printed its own KeyboardInterrupt traceback under the command's one line. POSIX: SIGINT
    blocked in this thread, a mask the processes it starts inherit through fork and exec (a
    Ctrl-C meanwhile waits, or goes to another thread: ``ingest``'s ``_ctrl_c_held``
    handles it). Windows: the console's inheritable ignore-Ctrl-C attribute, which this
    process has too meanwhile (a Ctrl-C in the block is lost, not held)."""
    if sys.platform == "win32":
        _ignore_console_ctrl_c(True)
        try:
            yield
        finally:
            _ignore_console_ctrl_c(False)
    elif hasattr(signal, "pthread_sigmask"):
        before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            yield
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, before)
    else:
        yield


def _hear_ctrl_c() -> None:
    """Undoes ``starting_workers`` in the worker it started."""
    if sys.platform == "win32":
        _ignore_console_ctrl_c(False)
    elif hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _ignore_console_ctrl_c(ignore: bool) -> None:
    import ctypes

    # SetConsoleCtrlHandler(NULL, TRUE): this process ignores Ctrl-C, as its children will
    ctypes.WinDLL("kernel32").SetConsoleCtrlHandler(None, ignore)


def _exit_after(sentinel: int) -> None:
    from multiprocessing.connection import wait

    wait([sentinel])
    os._exit(1)


def run_bundle(tasks: list[Task]) -> list[TaskResult]:
    """Several small files of one format and context: their runs with the same key are
    parsed together (the CSV reader's and the normalising's cost per call is paid once),
    then the rows of the files read whole go into shared parts (``_Bundle``): the ingest
    commits the bundle's files together. A file that fails has no rows in them."""
    for t in tasks:
        failpoint(f"reading {PurePath(t.path).name}")  # (tests: a worker killed mid-ingest)
    fmt = formats.get(tasks[0].format)
    if len(tasks) == 1 or not fmt.joins_files:
        return [run_task(t) for t in tasks]
    started = time.perf_counter()
    worker = f"{socket.gethostname()}:{os.getpid()}"
    results = [TaskResult(t, fmt.table, worker=worker) for t in tasks]
    states = [t.start() for t in tasks]
    try:
        batches, hashes = _parse_together(tasks, fmt, results, states)
    except Exception:  # one file sank the bundle: each alone, to find which
        return [run_task(t) for t in tasks]
    bundle = _Bundle(Store(tasks[0].store), fmt.table, tasks)
    for i, task in enumerate(tasks):
        if not results[i].error:
            try:
                _store(task, fmt, iter(batches[i]), results[i], hashes[i], bundle.rows_of(i))
            except Exception as exc:  # reported; the other files go on
                results[i].error = _failure(exc)
    whole = list(bundle.files)
    try:
        bundle.close(results)
    except (OSError, EOFError, zlib.error) as exc:
        for i in whole:
            why = getattr(exc, "strerror", None) or exc
            results[i].error = f"could not write to the store: {why}"
    except Exception:  # the files' rows together sank the write: each alone, to find which
        return [run_task(t) for t in tasks]
    out = [_finish(r, s, started) for r, s in zip(results, states, strict=True)]
    _release()
    return out


def _parse_together(tasks: list[Task], fmt: Format, results, states):
    """``run_bundle``'s parse: each file's batches and the lookup hashes of its rows."""
    batches: list[list[Batch]] = [[] for _ in tasks]
    runs: dict[Hashable, list[tuple[int, Run]]] = {}  # by what their parse depends on
    for i, task in enumerate(tasks):
        found: dict[Hashable, list[tuple[int, Run]]] = {}
        try:
            with open_source(task.path) as fh:
                for item in fmt.read(fh, states[i], task.context()):
                    if isinstance(item, Batch):
                        batches[i].append(item)
                        continue
                    batches[i].append(Batch(None, item.bad))
                    found.setdefault(item.key, []).append((i, item.run))
        except (OSError, EOFError, zlib.error) as exc:
            results[i].error = f"could not read: {getattr(exc, 'strerror', None) or exc}"
            results[i].busy = busy(exc)
            continue
        for key, items in found.items():
            runs.setdefault(key, []).extend(items)
    hashes: list[set[int]] = [set() for _ in tasks]
    ctx = tasks[0].context()  # a bundle's files share format and context (ingest.bundles)
    for key, items in runs.items():
        merged = merge_runs([r for _, r in items], [i for i, _ in items])
        for i, batch, ids in _split(fmt.parse_run(merged, key, ctx)):
            batches[i].append(batch)
            hashes[i] |= ids
    return batches, hashes


def _split(batch: Batch) -> Iterator[tuple[int, Batch, set[int]]]:
    """The rows and bad lines of a merged parse, back to the file each came from, with the
    lookup hashes of each file's rows."""
    mask = (1 << TAG_SHIFT) - 1
    for bad in batch.bad:
        yield (
            bad.line >> TAG_SHIFT,
            Batch(None, [Bad(bad.line & mask, bad.reason, bad.raw)]),
            set(),
        )
    table = batch.table
    if table is None or table.num_rows == 0:
        return
    line = table.column("line")
    tags = pc.shift_right(line, TAG_SHIFT).to_numpy()
    table = table.set_column(
        table.schema.get_field_index("line"), "line", pc.bit_wise_and(line, mask)
    )
    # the runs were joined file after file: each file's rows are one slice
    cuts = [0, *(np.flatnonzero(np.diff(tags)) + 1).tolist(), len(tags)]
    ids = slice_hashes(table, cuts)
    for k, (lo, hi) in enumerate(itertools.pairwise(cuts)):
        rows = table.slice(lo, hi - lo)  # its file column is set when written (see _store)
        servers = batch.servers.slice(lo, hi - lo) if batch.servers is not None else None
        yield int(tags[lo]), Batch(rows, [], servers, batch.tz_assumed, batch.warnings), ids[k]


def _store(
    task: Task,
    fmt: Format,
    batches: Iterator[Batch],
    result: TaskResult,
    hashes: set[int] | None = None,
    writer: _Writer | _Rows | None = None,
) -> None:
    """Write the rows of ``batches`` into the task's parts (temporary names); ``hashes``:
    their lookup hashes, when already known; ``writer``: where the rows go (a bundle's
    shared parts), else the file's own parts."""
    writer = writer or _Writer(Store(task.store), result.table, task)
    server = task.server
    keys: set[int] = set()
    stage = "read"
    try:
        for batch in batches:
            writer.bad.extend(batch.bad)
            result.tz_assumed |= batch.tz_assumed
            result.warnings += [w for w in batch.warnings if w not in result.warnings]
            if batch.table is None or batch.table.num_rows == 0:
                continue
            if server is None:
                named = C.most_common(batch.servers) if batch.servers is not None else None
                server = named or fmt.default_server or folder_server(task.path) or "UNKNOWN"
            table = conform(batch.table, writer.schema)
            # every row's file and format are the task's; its server is the file's where the
            # row names none
            single = {"file": task.path, "log_format": task.format}
            at = table.schema.get_field_index("server")
            if table.column(at).null_count == table.num_rows:
                single["server"] = server
            else:
                table = table.set_column(at, "server", pc.fill_null(table.column(at), server))
            stage = "write to the store"
            writer.write(table, single)
            stage = "read"
            result.rows += table.num_rows
            earliest = pc.min(table.column("date_time")).as_py()
            if earliest is not None:
                result.first = min(earliest, result.first or earliest)
            if hashes is None:
                keys |= table_hashes(table)
        stage = "write to the store"
        result.parts = writer.close()
    except (OSError, EOFError, zlib.error) as exc:
        writer.abort()
        result.error = f"could not {stage}: {getattr(exc, 'strerror', None) or exc}"
        return
    except BaseException:
        writer.abort()
        raise
    result.lookup = encode(keys if hashes is None else hashes)
    result.quarantined = len(writer.bad)
    result.server = server


def _finish(result: TaskResult, state: ReadState, started: float) -> TaskResult:
    result.state = state
    result.seconds = time.perf_counter() - started
    return result
