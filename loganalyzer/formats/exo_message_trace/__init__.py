"""Exchange Online message trace exports (FORMATS.md section I), into the tracking table.

Recognised from the content: the CSV header's column names (matched case-insensitively, quotes
stripped) or JSON records with the reporting API's keys. Encodings: UTF-16 LE/BE with or
without a byte-order mark, UTF-8 with or without one. A JSON document is read whole; a CSV
export's last line without its line end waits for the file to grow, as other logs' do, unless
the file is final (an export often ends so: ``--final`` reads it).

=============  ==============================================  ==========================
log_type       export                                          columns (see normalise.py)
=============  ==============================================  ==========================
EXO-SUMMARY    MTSummary / "Enhanced summary" CSV (11 columns)  ``SUMMARY_COLUMNS``
EXO-DETAIL     MTDetail / "Extended" CSV (27 columns)           the on-premises names, with
                                                                date_time_utc -> date_time
EXO-PS-TRACE   ``Get-MessageTrace | Export-Csv`` (17 columns)   ``TRACE_COLUMNS``
EXO-PS-DETAIL  ``Get-MessageTraceDetail | Export-Csv``          ``TRACE_DETAIL_COLUMNS``
EXO-API        reporting API JSON: NDJSON or OData documents;   ``TRACE_COLUMNS`` (or the
               Microsoft Graph ``exchangeMessageTrace``         detail ones)
               records (``id``, ``receivedDateTime`` ...)
               and ``exchangeMessageTraceDetail`` records
               (``dateTime``, ``event``, ``description`` ...:
               no sender or recipient, unless added)
=============  ==============================================  ==========================

``event_id`` is the Status (or detail Event) in the ``exo-status`` table's spelling (Microsoft
Graph writes ``delivered``, the older API ``Delivered``; unknown values as written),
``source`` is ``EXO`` and ``outcome``
comes from the ``exo-status`` code family; the detail report keeps its own event and source
tokens (``exchange-event`` family). An Enhanced summary line gives one row a recipient, its
``event_id`` the last event of that recipient's chain (I.1). ``server`` is the host of the rows'
RECEIVE/DELIVER/SUBMIT events where they name one, else ``EXCHANGE-ONLINE``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from loganalyzer.formats.base import Bad, ReadState, Run, read_csv_run, read_runs
from loganalyzer.formats.common import Batch, Context, Detected
from loganalyzer.formats.contract import Format, NotALog, Pending
from loganalyzer.formats.exo_message_trace import normalise, records, sniff

NAME = "exo-message-trace"
_SAMPLE = (
    "origin_timestamp_utc,sender_address,recipient_status,message_subject,total_bytes,"
    "message_id,network_message_id,original_client_ip,directionality,connector_id,"
    "delivery_priority\r\n"
    '"2021-03-23T10:00:09.3284899Z","Fname.Lname@domain.com","Fname.Lname@domain.com##Receive, '
    'Deliver;""Fname LName<fname.lname""@domain.com##Receive, Fail","AW: Fwd: SOME SUBJECT",'
    '"49790","<PH0PR04MB7365@PH0PR04MB7365.namprd04.prod.outlook.com>",'
    '"81945af2-cab7-45ad-ba23-08d8ede2715d","192.0.2.12","Originating",'
    '"To_DefaultOpportunisticTLS","Normal"\r\n'
)
#: A slashed date and time anywhere in a file: only then are its dates' order looked for.
_ANY_SLASHED = re.compile(rb"\d{1,2}/\d{1,2}/\d{4}[ T]+\d{1,2}:\d{2}")
_DELIMITER_OF = {v: k for k, v in sniff.DELIMITERS.items()}
SEKOIA_WRAPPER = (
    "a SEKOIA test wrapper, not a message trace export (its input.message holds one record "
    "as a JSON string)"
)


def detect(head: bytes, name: str) -> Detected | None:
    """An export by its CSV column names, or JSON with the reporting API's record keys.

    Raises ``NotALog`` for a SEKOIA intake-format test case, which wraps one record.
    """
    encoding, _ = sniff.encoding_of(head)
    text = sniff.text_of(head)
    if sniff.is_json(text):
        if sniff.is_sekoia_wrapper(text):
            raise NotALog(SEKOIA_WRAPPER)
        return Detected(NAME, sniff.API, encoding) if sniff.is_api_json(text) else None
    line = sniff.header_line(text)
    if line is None:
        return None
    kind = sniff.kind_of(sniff.column_names(line, sniff.delimiter_of(line)))
    return Detected(NAME, kind, encoding) if kind else None


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs of the export (or what was added since ``state``), keyed by how they are read:
    ``("json", whole document)`` or ``("csv", kind, delimiter, column names)``. A CSV
    export's last line without its line end, and a record whose quoted field is still open,
    wait for the file to grow (a copy caught half-way) unless the file is final; a JSON
    document is read whole."""
    saved = state.directives()
    fh.seek(0)
    head = fh.read(4096)
    encoding, bom = sniff.encoding_of(head)
    encoding = saved.get("encoding", encoding)
    start = state.offset or bom
    fh.seek(start)
    body = fh.read()
    data = _line_ends(sniff.to_utf8(body, encoding), sniff.to_utf8(head, encoding))
    as_json = (
        saved["kind"] == "json"
        if "kind" in saved
        else sniff.is_json(data.lstrip()[:64].decode("utf-8", "replace"))
    )
    if not as_json and not ctx.final:
        keep = _finished(data, saved)
        if keep < len(data):
            data = data[:keep]
            body = body[: len(data) if encoding == "utf-8" else len(data.decode().encode(encoding))]
    if saved.get("open") and body:
        # the last line was read as a row before it had its line end (the file was final):
        # the line end that follows closes it, counted then (text added to the line itself
        # is a line of its own, broken)
        if data.startswith((b"\r\n", b"\n")):
            data = data[data.index(b"\n") + 1 :]
        state.header = "\n".join(f"#{k}: {v}" for k, v in saved.items() if k != "open")
    if not data.strip():
        state.offset, state.line = start + len(body), state.line + data.count(b"\n")
        return
    is_open = not data.endswith(b"\n")
    if is_open:
        data += b"\n"
    sub = ReadState(0, state.line, "")
    if as_json:
        header = {"kind": "json"}
        yield from _json(data, sub, whole=state.offset == 0)
    else:
        header = {k: saved[k] for k in ("kind", "delimiter", "columns", "dates") if k in saved}
        yield from _csv(data, sub, header)
    header["encoding"] = encoding
    if is_open:
        header["open"] = "last line read without its line end"
    state.offset, state.line = start + len(body), sub.line
    state.header = "\n".join(f"#{k}: {v}" for k, v in header.items())


_LONE_CR = re.compile(rb"\r(?!\n)")


def _line_ends(data: bytes, head: bytes) -> bytes:
    """``data`` with its lone carriage returns (not before a line feed) made line ends where
    the file (its ``head``) has no line feed at all (saved with classic Mac line ends), else
    spaces (a line break inside a subject). The same length: offsets in the file stay."""
    if b"\r" not in data:
        return data
    if b"\n" not in head:
        return data.replace(b"\r", b"\n")
    return _LONE_CR.sub(b" ", data)


def _json(data: bytes, sub: ReadState, whole: bool) -> Iterator[Batch | Pending]:
    runs = read_runs(io.BytesIO(data), sub, final=True, check_quotes=False, block_size=len(data))
    for run, bad in runs:
        if run is None or len(run.candidates) == 0:
            if bad:
                yield Batch(None, bad)
            continue
        yield Pending(run, ("json", whole and _is_document(run.data)), bad)


def _is_document(data: bytes) -> bool:
    """One JSON value (an array, an envelope, a record) rather than one record per line."""
    try:
        json.loads(data)
    except ValueError:
        return False
    return True


def _csv(data: bytes, sub: ReadState, header: dict[str, str]) -> Iterator[Batch | Pending]:
    """The runs of a CSV export, keyed by its kind, delimiter, columns and date order: one
    order for the whole file (``normalise.date_order``), decided from all its dates before
    its first run is parsed, and kept in ``header`` for the lines added later."""
    data = _join_quoted_line_breaks(data, header)
    order, why = _date_order(data, sub, header)
    if why:
        yield Batch(None, [], warnings=[why])
    for run, bad in _data_runs(data, sub, header):
        if run is None or len(run.candidates) == 0:
            if bad:
                yield Batch(None, bad)
            continue
        if header["kind"] == "unknown":
            why = "columns of no known message trace export"
            yield Batch(
                None,
                bad + [Bad(int(run.line_numbers[i]), why, run.text(i)) for i in run.candidates],
            )
            continue
        delimiter = _DELIMITER_OF[header["delimiter"]]
        names = tuple(header["columns"].split("\t"))
        yield Pending(run, ("csv", header["kind"], delimiter, names, order), bad)


#: The most lines one quoted field of an export may run over.
FIELD_LINES = 50


def _join_quoted_line_breaks(data: bytes, header: dict[str, str]) -> bytes:
    """``data`` with the line breaks inside a quoted field made spaces: a subject of two lines,
    as the admin center and Export-Csv write it, is one record. Its record is followed by as
    many empty lines as it lost, so the lines after it keep their numbers."""
    quoted = _quoted(data, header)
    if quoted is None or not quoted.records:
        return data
    out, pos = [], 0
    for i, j in quoted.records:
        record = _one_line(data, quoted.starts, quoted.ends, i, j)
        out += [data[pos : quoted.starts[i]], record, b"\n" * (j - i + 1)]
        pos = int(quoted.ends[j]) + 1
    return b"".join([*out, data[pos:]])


def _finished(data: bytes, saved: dict[str, str]) -> int:
    """How much of ``data`` holds finished records: up to its last line end, and before a
    record whose quoted field is still open at the end (within ``FIELD_LINES`` lines)."""
    keep = data.rfind(b"\n") + 1
    quoted = _quoted(data[:keep], saved)
    if quoted is not None and quoted.open_from is not None:
        keep = min(keep, quoted.open_from)
    return keep


@dataclass
class _Quoted:
    starts: np.ndarray  # of each line
    ends: np.ndarray  # its line end
    records: list[tuple[int, int]]  # the first and last line of each record over several
    open_from: int | None  # the byte where a record still open at the end starts


def _quoted(data: bytes, header: dict[str, str]) -> _Quoted | None:
    """The records of ``data`` whose quoted field runs over several lines: a line with an odd
    number of quotes opens one, the next such line closes it, where the record then has the
    header's number of fields and closes within ``FIELD_LINES`` lines (an unbalanced quote
    otherwise stays a broken line, quarantined alone: joining it would take the good lines
    after it). None when no line has an odd number of quotes."""
    arr = np.frombuffer(data, dtype=np.uint8)
    ends = np.flatnonzero(arr == 10)
    if not len(ends) or b'"' not in data:
        return None
    starts = np.concatenate(([0], ends[:-1] + 1))
    parity = np.bitwise_xor.reduceat((arr == 34).view(np.uint8), starts)
    odd = np.flatnonzero(parity).tolist()
    fields = _field_count(data, header) if odd else None
    if fields is None:
        return None
    delimiter, count = fields
    records, k = [], 0
    while k + 1 < len(odd):
        i, j = odd[k], odd[k + 1]
        if j - i < FIELD_LINES and _fields(_one_line(data, starts, ends, i, j), delimiter) == count:
            records.append((i, j))
            k += 2
        else:
            k += 1
    # the last quote left open starts a record still being written where it and the lines
    # after it hold fewer fields than a record (a broken line is followed by whole records)
    last, n = (odd[k] if k < len(odd) else None), len(ends)
    is_open = last is not None and n - last < FIELD_LINES
    is_open = is_open and _fields(_one_line(data, starts, ends, last, n - 1), delimiter) < count
    return _Quoted(starts, ends, records, int(starts[last]) if is_open else None)


def _one_line(data: bytes, starts: np.ndarray, ends: np.ndarray, i: int, j: int) -> bytes:
    """Lines ``i`` to ``j`` of ``data`` as one, their line breaks made spaces."""
    return b" ".join(data[starts[x] : ends[x] + 1].rstrip(b"\r\n") for x in range(i, j + 1))


def _field_count(data: bytes, header: dict[str, str]) -> tuple[str, int] | None:
    """The export's delimiter and number of columns (its header line, or ``header``)."""
    if "columns" in header:
        return _DELIMITER_OF[header["delimiter"]], len(header["columns"].split("\t"))
    line = sniff.header_line(data[:65536].decode("utf-8", "replace"))
    if line is None:
        return None
    delimiter = sniff.delimiter_of(line)
    return delimiter, len(sniff.column_names(line, delimiter))


def _fields(record: bytes, delimiter: str) -> int:
    rows = list(csv.reader([record.decode("utf-8", "replace")], delimiter=delimiter))
    return len(rows[0]) if len(rows) == 1 else -1


def _data_runs(
    data: bytes, sub: ReadState, header: dict[str, str]
) -> Iterator[tuple[Run | None, list[Bad]]]:
    """The runs of data lines of a CSV export; its header line (the first) fills ``header``
    (kind, delimiter, column names) when it is not known yet."""
    for run, bad in read_runs(io.BytesIO(data), sub, final=True):
        if run is not None and "columns" not in header and len(run.candidates):
            first = int(run.candidates[0])
            line = run.text(first)
            delimiter = sniff.delimiter_of(line)
            names = _unique(sniff.column_names(line, delimiter))
            header.update(
                kind=sniff.kind_of(names) or "unknown",
                delimiter=sniff.DELIMITERS[delimiter],
                columns="\t".join(names),
            )
            run = _after(run, first)
        yield run, bad


def _date_order(
    data: bytes, sub: ReadState, header: dict[str, str]
) -> tuple[str | None, str | None]:
    """The order of the export's slashed dates, the same in every run however the file is
    cut (a run alone may hold no day above 12), and a warning when the dates do not show it
    alone or contradict it. The order read before (``header["dates"]``) stays."""
    if not _ANY_SLASHED.search(data):
        return header.get("dates"), None
    scan = dict(header)
    seen = normalise.Slashed()
    for run, _ in _data_runs(data, ReadState(sub.offset, sub.line, sub.header), scan):
        names = scan.get("columns", "").split("\t")
        column = next((c for c in normalise.TIME_COLUMNS if c in names), None)
        if run is not None and len(run.candidates) and column is not None:
            delimiter = _DELIMITER_OF[scan["delimiter"]]
            seen += normalise.slashed(_column(run, names, delimiter, column))
    order, why = normalise.date_order(seen)
    kept = header.get("dates")
    if kept:  # lines added to a file read before: its order stays
        wrong = seen.month_first if kept == normalise.DAY_FIRST else seen.day_first
        dates = "1 added date is" if wrong == 1 else f"{wrong:,} added dates are"
        why = f"{dates} not {kept} as the file's first ones: quarantined as bad times"
        why, order = (why if wrong else None), kept
    if order:
        header["dates"] = order
    return order, why


def _column(run: Run, names: list[str], delimiter: str, column: str) -> pa.Array:
    """One column of a run's CSV lines, as text (lines of a wrong field count left out)."""
    table = pacsv.read_csv(
        io.BytesIO(run.data),
        read_options=pacsv.ReadOptions(
            column_names=names, block_size=max(1 << 20, len(run.data) + 1), use_threads=False
        ),
        parse_options=pacsv.ParseOptions(
            delimiter=delimiter, invalid_row_handler=lambda _row: "skip"
        ),
        convert_options=pacsv.ConvertOptions(
            include_columns=[column], column_types={column: pa.string()}, check_utf8=False
        ),
    )
    return table.column(column).combine_chunks()


def parse_run(run: Run, key: tuple, ctx: Context) -> Batch:
    """The rows of one run; ``key`` says how it is read (``read``)."""
    if key[0] == "json":
        if key[1]:
            text = run.data.decode("utf-8", "replace")
            raw, rows, invalid, run = records.document(run, text)
        else:
            raw, rows, invalid = records.ndjson(run)
        table, more, servers = normalise.trace(raw, run, rows, ctx, NAME, sniff.API)
        return Batch(table, invalid + more, servers)
    _, kind, delimiter, names, order = key
    raw, rows, wrong = read_csv_run(run, list(names), delimiter=delimiter)
    table, invalid, servers = _normalise(kind, raw, run, rows, ctx, order)
    return Batch(table, wrong + invalid, servers)


def _normalise(kind: str, raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context, order):
    if kind == sniff.SUMMARY:
        return normalise.summary(raw, run, rows, ctx, NAME, kind, order)
    if kind == sniff.DETAIL:
        return normalise.detail(raw, run, rows, ctx, NAME, kind)
    return normalise.trace(raw, run, rows, ctx, NAME, kind, order)


def _unique(names: list[str]) -> list[str]:
    out: list[str] = []
    for i, name in enumerate(names):
        name = name or f"column_{i + 1}"
        out.append(name if name not in out else f"{name}_{i + 1}")
    return out


def _after(run: Run, k: int) -> Run:
    """The lines of ``run`` after its line ``k`` (the header line)."""
    lo = int(run.starts[k + 1]) if k + 1 < len(run.starts) else len(run.data)
    later = run.candidates[run.candidates > k] - (k + 1)
    return Run(
        run.data[lo:], run.line_numbers[k + 1 :], run.starts[k + 1 :] - lo, later, run.directives
    )


FORMAT = Format(
    name=NAME,
    table="tracking",
    description="Exchange Online message trace exports (CSV, often UTF-16; API JSON records)",
    file_names="MTSummary_*.csv, MTDetail_*.csv, Export-Csv of Get-MessageTrace, API *.json",
    sample=_SAMPLE,
    detect=detect,
    read=read,
    parse_run=parse_run,
    default_server=normalise.SERVICE,
    reads_last_line=True,
)
