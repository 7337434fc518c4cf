"""What every format module shares: its detection result, parse context and output batch."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import pyarrow as pa

from loganalyzer.formats.base import Bad
from loganalyzer.formats.columns import LocalClock


@dataclass
class Detected:
    """A format recognised in a file's first bytes."""

    format: str
    log_type: str | None = None
    encoding: str = "utf-8"


@dataclass
class Context:
    """What a parse needs to know besides the bytes."""

    path: str
    file_key: str = ""
    log_type: str | None = None
    forced: bool = False  # the user named the format (--format)
    final: bool = False  # the file stopped growing: quarantine a partial last line
    tz: str | None = None  # zone of local-time logs (--tz)
    encoding: str = "utf-8"
    #: Local times read so far: a file alone is parsed run after run, in file order
    clock: LocalClock = field(default_factory=LocalClock)


@dataclass
class Batch:
    """Rows for the store (or None) and lines for the quarantine."""

    table: pa.Table | None
    bad: list[Bad]
    #: Per row, the server it names as its log's own (null where none): the commonest is the
    #: file's server when the user gave none.
    servers: pa.Array | None = None
    #: Local times were read as UTC for want of --tz (the summary warns).
    tz_assumed: bool = False
    #: What the ingest summary says of the file (how it was read where its lines did not say).
    warnings: list[str] = field(default_factory=list)


#: The read state's directive naming the zone a local-time file's times were read in (--tz;
#: empty: read as UTC for want of it): ingest tells by it whether a --tz given again differs.
LOCAL_ZONE = "local-zone"

_BOM = b"\xef\xbb\xbf"
#: Data lines of a file's head that detection looks at.
SAMPLE_LINES = 200
# a BOM may start any line (files concatenated); matched in place, not replaced in 64 KB
_DIRECTIVE = re.compile(rb"^(?:\xef\xbb\xbf)*#\s*([A-Za-z-]+)\s*:\s*(.*?)\s*$", re.MULTILINE)


def header_value(head: bytes, name: str) -> str | None:
    """Value of the ``#name:`` directive in a file's first bytes (case-insensitive)."""
    for m in _DIRECTIVE.finditer(head):
        if m[1].decode("ascii").lower() == name.lower():
            return m[2].replace(_BOM, b"").decode("utf-8", "replace")
    return None


def data_lines(head: bytes, limit: int = SAMPLE_LINES) -> list[str]:
    """The first non-blank lines of a file's head that are not ``#`` directives, BOMs removed;
    a last line cut short by the end of the head is left out when others remain."""
    lines = head.replace(_BOM, b"").split(b"\n")
    if len(lines) > 1 and not head.endswith(b"\n"):
        lines = lines[:-1]
    out = []
    for raw in lines:
        text = raw.rstrip(b"\r").decode("utf-8", "replace")
        if text.strip() and not text.startswith("#"):
            out.append(text)
            if len(out) == limit:
                break
    return out


def mostly(lines: list[str], test: Callable[[str], bool]) -> bool:
    """Whether at least half of ``lines`` (and at least one) pass ``test``: detection that a
    damaged line, the first one included, does not decide."""
    passed = sum(1 for line in lines if test(line))
    return passed > 0 and 2 * passed >= len(lines)


def commonest(values: Iterable) -> object | None:
    """The most frequent of ``values`` (the first seen on a tie), None when there are none."""
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=counts.__getitem__) if counts else None
