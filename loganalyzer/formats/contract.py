"""The one contract of a log format: a ``Format`` value that each format module exposes as
``FORMAT``, and what its reading yields.

A format reads a file in two steps. ``read(fh, state, ctx)`` splits the file into runs of data
lines (``Pending``: a run with the key its parse depends on) and lines it cannot use (a
``Batch`` without rows). ``parse_run(run, key, ctx)`` turns one run into rows. A file alone is
parsed run by run as it is read (``Format.parse``: memory stays bounded on a huge file); many
small files of a format with ``joins_files`` have their runs of equal key joined and parsed
once (``worker.run_bundle``). Both paths call the same two functions.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import BinaryIO

from loganalyzer.formats.base import Bad, ReadState, Run, read_runs
from loganalyzer.formats.common import Batch, Context, Detected


class NotALog(ValueError):
    """A file that no format claims, or a log kind that is not supported."""


@dataclass
class Pending:
    """A run of data lines to parse, the key its parse depends on (its fields, its direction:
    runs of several files with equal keys may be parsed as one), and lines already
    quarantined before it."""

    run: Run
    key: Hashable
    bad: list[Bad] = field(default_factory=list)


#: ``detect(head, file name)``: the format recognised in a file's first bytes, or None.
Detector = Callable[[bytes, str], "Detected | None"]


@dataclass(frozen=True)
class Format:
    """A log format: what it is called and where its rows go, how it is recognised, how it is
    read."""

    name: str  # as the user names it (--format) and as stored in log_format
    table: str  # the store table its rows go to (schema.py)
    description: str
    file_names: str  # the usual names of its files, for `loganalyzer formats`
    sample: str  # a few real lines (header included): every format reads its own
    detect: Detector
    read: Callable[[BinaryIO, ReadState, Context], Iterator[Batch | Pending]]
    parse_run: Callable[[Run, Hashable, Context], Batch]
    #: Used only when the user names the format: a file without its header.
    detect_headerless: Detector | None = None
    #: Documented field sets by their number of fields (read so when a header is missing).
    field_sets: Mapping[int, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    #: Whether runs of equal key from several files may be parsed as one: the parse of a run
    #: depends on its key and its lines only (not on its file's name, zone or other lines).
    joins_files: bool = False
    #: The server of rows that name none, before the file's folder is asked.
    default_server: str | None = None
    #: Whether a last line without its line end may have been read as a row (a JSON
    #: document, an export read as final): a grown file is read on after it, not again from
    #: that line's start (where the other formats read a line they quarantined unfinished).
    reads_last_line: bool = False

    def parse(self, fh: BinaryIO, state: ReadState, ctx: Context) -> Iterator[Batch]:
        """Rows and quarantined lines of one file, run by run, from ``state.offset`` on."""
        for item in self.read(fh, state, ctx):
            if isinstance(item, Batch):
                yield item
                continue
            batch = self.parse_run(item.run, item.key, ctx)
            yield replace(batch, bad=item.bad + batch.bad) if item.bad else batch


def keyed_runs(
    fh: BinaryIO,
    state: ReadState,
    ctx: Context,
    key: Callable[[Run, Context], Hashable | None],
) -> Iterator[Batch | Pending]:
    """The ``read`` of a format whose lines follow a ``#Fields`` header: each run keyed by
    ``key(run, ctx)``; the lines of a run no key fits (data before any ``#Fields``) are
    quarantined."""
    for run, bad in read_runs(fh, state, final=ctx.final):
        if run is None or len(run.candidates) == 0:
            if bad:
                yield Batch(None, bad)
            continue
        found = key(run, ctx)
        if found is None:
            reason = "data line before any #Fields header"
            lines = [Bad(int(run.line_numbers[i]), reason, run.text(i)) for i in run.candidates]
            yield Batch(None, bad + lines)
            continue
        yield Pending(run, found, bad)
