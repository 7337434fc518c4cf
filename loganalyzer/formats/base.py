"""Reading line-oriented logs in blocks: directives, line numbers and damaged lines.

A format module turns the data lines of a ``Run`` into rows; this module does what every
text log needs first, with numpy on whole blocks rather than Python on each line:
byte offsets for incremental reading, physical line numbers, ``#`` directive lines (a header
block may repeat mid-file), a last line still being written, NUL bytes, unbalanced quotes,
stray byte-order marks and bytes that are not UTF-8.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

BOM = b"\xef\xbb\xbf"
BLOCK_SIZE = 16 << 20


@dataclass
class ReadState:
    """Where reading stopped: the manifest keeps it so that a grown file is read on."""

    offset: int = 0
    line: int = 0
    header: str = ""

    def directives(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for ln in self.header.splitlines():
            name, _, value = ln.lstrip("#").partition(":")
            out[name.strip().lower()] = value.strip()
        return out


@dataclass
class Bad:
    """A line that goes to the quarantine."""

    line: int
    reason: str
    raw: str


@dataclass
class Run:
    """Consecutive data lines under one set of directives."""

    data: bytes  # the lines (UTF-8), damaged ones blanked, line ends kept
    line_numbers: np.ndarray  # physical line number of every line in data
    starts: np.ndarray  # byte offset of every line in data
    candidates: np.ndarray  # indexes (into line_numbers) of non-blank lines
    directives: dict[str, str] = field(default_factory=dict)

    def text(self, i: int) -> str:
        """Text of line ``i`` of the run, without its line end."""
        hi = int(self.starts[i + 1]) if i + 1 < len(self.starts) else len(self.data)
        return self.data[int(self.starts[i]) : hi].rstrip(b"\r\n").decode("utf-8", "replace")

    def line_at(self, pos: int) -> int:
        """Index of the line holding byte ``pos`` of ``data``."""
        return int(np.searchsorted(self.starts, pos, side="right") - 1)


#: Bits below a merged run's file tag in its line numbers (no log has 2**40 lines).
TAG_SHIFT = 40


def merge_runs(runs: list[Run], tags: list[int]) -> Run:
    """One run of the lines of ``runs`` (same fields), each line number carrying the tag of
    its run (``tag << TAG_SHIFT | line``): one CSV parse for many small files."""
    sizes = np.array([len(r.data) for r in runs], dtype=np.int64)
    counts = np.array([len(r.line_numbers) for r in runs], dtype=np.int64)
    at = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    first = np.concatenate(([0], np.cumsum(counts)[:-1]))
    return Run(
        b"".join(r.data for r in runs),
        np.concatenate(
            [r.line_numbers + (t << TAG_SHIFT) for r, t in zip(runs, tags, strict=True)]
        ),
        np.concatenate([r.starts + a for r, a in zip(runs, at, strict=True)]),
        np.concatenate([r.candidates + f for r, f in zip(runs, first, strict=True)]),
        dict(runs[0].directives),
    )


def _decode_line(raw: bytes) -> tuple[bytes, bool]:
    """UTF-8 bytes of a line; cp1252 is assumed for a line that is not UTF-8."""
    try:
        raw.decode("utf-8")
        return raw, False
    except UnicodeDecodeError:
        return raw.decode("cp1252", errors="replace").encode("utf-8"), True


def _tail_reason(tail: bytes) -> str:
    if not tail.strip(b"\x00"):
        return f"NUL padding at the end of the file ({len(tail):,} bytes; a crashed server)"
    return "incomplete last line (file stopped growing)"


def _as_text(raw: bytes) -> str:
    return raw.rstrip(b"\r\n").decode("utf-8", errors="replace").replace("\x00", "\\0")


def _repair_utf8(block: bytes) -> bytes:
    # one binary value over the block's own memory (no copy), cast to check it is UTF-8
    offsets = pa.py_buffer(np.array([0, len(block)], dtype=np.int64))
    value = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(block)])
    try:
        value.cast(pa.large_string())  # validates at memory speed
        return block
    except pa.ArrowInvalid:
        return b"".join(_decode_line(ln)[0] for ln in block.splitlines(keepends=True))


def _line_bounds(arr: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ends = np.flatnonzero(arr == 10)
    starts = np.empty(len(ends), dtype=np.int64)
    starts[:1] = 0
    starts[1:] = ends[:-1] + 1
    content_end = ends - (arr[np.maximum(ends - 1, 0)] == 13)
    return starts, ends, content_end


def _split_block(
    block: bytes, first_line: int, directives: dict[str, str], check_quotes: bool
) -> tuple[list[tuple[Run | None, list[Bad], dict[str, str]]], int]:
    """Runs of data lines of a block that ends with a line end, and its number of lines."""
    block = _repair_utf8(block)
    arr = np.frombuffer(block, dtype=np.uint8)
    starts, ends, content_end = _line_bounds(arr)
    first_byte = np.where(content_end > starts, arr[np.minimum(starts, len(arr) - 1)], 0)
    if (first_byte == BOM[0]).any() and BOM in block:  # a file concatenated onto another
        # the usual case, the file's own BOM, without copying the block through replace()
        only_first = block.startswith(BOM) and BOM not in block[3:]
        block = block[3:] if only_first else block.replace(BOM, b"")
        arr = np.frombuffer(block, dtype=np.uint8)
        starts, ends, content_end = _line_bounds(arr)
        first_byte = np.where(content_end > starts, arr[np.minimum(starts, len(arr) - 1)], 0)
    n = len(ends)
    lengths = content_end - starts
    is_directive = first_byte == ord("#")
    bad = np.zeros(n, dtype=bool)
    reasons: dict[int, str] = {}
    if b"\x00" in block:
        nul_lines = np.unique(np.searchsorted(ends, np.flatnonzero(arr == 0)))
        bad[nul_lines] = True
        reasons.update(dict.fromkeys(nul_lines.tolist(), "NUL bytes in line"))
    if check_quotes:
        # a line's quotes are balanced when their count is even: XOR of its quote flags
        quotes = (arr == 34).view(np.uint8)
        parity = np.bitwise_xor.reduceat(quotes, starts) if n else np.zeros(0, np.uint8)
        odd = parity.view(bool) & ~is_directive & ~bad
        for i in np.flatnonzero(odd).tolist():
            reasons[i] = "broken quoting: unbalanced double quote"
        bad |= odd
    bad &= ~is_directive
    blank = lengths == 0
    line_numbers = np.arange(first_line, first_line + n, dtype=np.int64)

    out = []
    cut_points = np.flatnonzero(is_directive).tolist() + [n]
    a = 0
    for d in cut_points:
        if d > a:
            out.append(
                _make_run(block, starts, ends, line_numbers, a, d, bad, blank, reasons, directives)
            )
        if d < n:
            text = block[starts[d] : content_end[d]].decode("utf-8", errors="replace")
            name, _, value = text.lstrip("#").partition(":")
            key = name.strip().lower()
            if key in ("software", "version") and "fields" in directives:
                directives = {}  # a new header block starts
            directives = {**directives, key: value.strip()}
            out.append((None, [], directives))
        a = d + 1
    return out, n


def _make_run(block, starts, ends, line_numbers, a, b, bad, blank, reasons, directives):
    lo, hi = int(starts[a]), int(ends[b - 1]) + 1
    bad_idx = np.flatnonzero(bad[a:b]) + a
    quarantined = [
        Bad(int(line_numbers[i]), reasons[int(i)], _as_text(block[starts[i] : ends[i]]))
        for i in bad_idx.tolist()
    ]
    if len(bad_idx):
        pieces, pos = [], lo
        for i in bad_idx.tolist():
            pieces.append(block[pos : int(starts[i])])
            pieces.append(b"\n")
            pos = int(ends[i]) + 1
        pieces.append(block[pos:hi])
        data = b"".join(pieces)
        lens = np.where(bad[a:b], 1, ends[a:b] - starts[a:b] + 1)
        run_starts = np.concatenate(([0], np.cumsum(lens)[:-1]))
    else:
        data = block if (lo, hi) == (0, len(block)) else block[lo:hi]
        run_starts = starts[a:b] - lo
    keep = ~(bad[a:b] | blank[a:b])
    run = Run(data, line_numbers[a:b], run_starts, np.flatnonzero(keep), dict(directives))
    return run, quarantined, directives


def read_runs(
    fh: BinaryIO,
    state: ReadState,
    *,
    final: bool,
    check_quotes: bool = True,
    block_size: int = BLOCK_SIZE,
) -> Iterator[tuple[Run | None, list[Bad]]]:
    """Read ``fh`` from ``state.offset``; yield runs and damaged lines, updating ``state``.

    A last line without its line end is left for the next read, unless ``final``: then it is
    quarantined. Directive lines update ``state.header``.
    """
    directives = state.directives()
    fh.seek(state.offset)
    carry = b""
    at_start = state.offset == 0
    while True:
        chunk = fh.read(block_size)
        buf = carry + chunk
        if at_start and buf.startswith(BOM):
            state.offset += len(BOM)
            buf = buf[len(BOM) :]
        at_start = False
        if not chunk:
            if buf and final:
                state.line += 1
                state.offset += len(buf)
                yield (
                    None,
                    [Bad(state.line, _tail_reason(buf), _as_text(buf))],
                )
            break
        cut = buf.rfind(b"\n")
        if cut < 0:
            carry = buf
            continue
        block, carry = buf[: cut + 1], buf[cut + 1 :]
        runs, lines = _split_block(block, state.line + 1, directives, check_quotes)
        for run, bad, now in runs:
            directives = now
            yield run, bad
        state.line += lines
        state.offset += len(block)
        state.header = "\n".join(f"#{k}: {v}" for k, v in directives.items())


def unique_names(names: list[str]) -> list[str]:
    """Column names as a header gives them, made unique (a damaged header may repeat one)."""
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        name = name or f"field-{i + 1}"
        seen[name] = seen.get(name, 0) + 1
        out.append(name if seen[name] == 1 else f"{name}-{seen[name]}")
    return out


def read_csv_run(
    run: Run,
    names: list[str],
    *,
    delimiter: str = ",",
    quote_char: str | bool = '"',
) -> tuple[pa.Table, np.ndarray, list[Bad]]:
    """Parse a run's lines into string columns named ``names``.

    Returns the table, the index in the run of each row's line (``run.line_numbers[rows]``
    are their physical line numbers), and the lines whose field count did not match.
    """
    names = unique_names(names)
    invalid: list[str] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row.text)
        return "skip"

    longest = int(np.diff(run.starts, append=len(run.data)).max()) if len(run.starts) else 0
    table = pacsv.read_csv(
        io.BytesIO(run.data),
        # a block must hold the longest line (a 10 MB line would straddle the default 1 MB);
        # one thread: files are parsed in parallel processes, and Arrow 26's threaded reader
        # once failed with "a chunk failed converting for an unknown reason" in such a worker
        read_options=pacsv.ReadOptions(
            column_names=names, block_size=max(1 << 20, 2 * longest), use_threads=False
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, quote_char=quote_char, invalid_row_handler=on_invalid
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.string()),
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=True,
            check_utf8=False,  # read_runs checked (and repaired) the whole block
        ),
    )
    bad: list[Bad] = []
    dropped: set[int] = set()
    searched_from: dict[bytes, int] = {}
    for text in invalid:
        raw = text.encode("utf-8")
        pos = searched_from.get(raw, 0)
        while True:  # the whole line, not a line that starts or ends with its text
            pos = run.data.find(raw, pos)
            if pos < 0:
                break
            after = run.data[pos + len(raw) : pos + len(raw) + 1]
            if (pos == 0 or run.data[pos - 1 : pos] == b"\n") and after in (b"\r", b"\n", b""):
                break
            pos += 1
        if pos < 0:
            return _parse_slowly(run, names, delimiter, quote_char)
        searched_from[raw] = pos + 1
        idx = run.line_at(pos)
        dropped.add(idx)
        bad.append(
            _wrong_count(int(run.line_numbers[idx]), text, len(names), delimiter, quote_char)
        )
    rows = run.candidates
    if dropped:
        rows = np.array([i for i in rows.tolist() if i not in dropped], dtype=np.int64)
    if len(rows) != table.num_rows:
        return _parse_slowly(run, names, delimiter, quote_char)
    return table, rows, bad


def _fields(text: str, delimiter: str, quote_char: str | bool) -> list[str]:
    if quote_char:
        try:
            return next(csv.reader([text], delimiter=delimiter, quotechar=quote_char))
        except csv.Error:  # a field longer than the csv module takes: count roughly
            return text.split(delimiter)
    return text.split(delimiter)


def _wrong_count(line: int, text: str, expected: int, delimiter: str, quote_char) -> Bad:
    found = len(_fields(text, delimiter, quote_char))
    return Bad(line, f"wrong field count: expected {expected}, found {found}", text)


def _parse_slowly(run: Run, names: list[str], delimiter: str, quote_char: str | bool):
    """Line-by-line fallback for a run the fast reader could not map back to its lines."""
    rows, lines, bad = [], [], []
    for i in run.candidates.tolist():
        text = run.text(i)
        values = _fields(text, delimiter, quote_char)
        if len(values) == len(names):
            rows.append(values)
            lines.append(i)
        else:
            bad.append(
                _wrong_count(int(run.line_numbers[i]), text, len(names), delimiter, quote_char)
            )
    cols = list(zip(*rows, strict=True)) if rows else [()] * len(names)
    table = pa.table(
        {n: pa.array([v or None for v in c], pa.string()) for n, c in zip(names, cols, strict=True)}
    )
    return table, np.array(lines, dtype=np.int64), bad
