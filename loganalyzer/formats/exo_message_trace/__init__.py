"""Exchange Online message trace exports (FORMATS.md section I), into the tracking table.

Recognised from the content: the CSV header's column names (matched case-insensitively, quotes
stripped) or JSON records with the reporting API's keys. Encodings: UTF-16 LE/BE with or
without a byte-order mark, UTF-8 with or without one. Exports are written once, so the whole
file is read, a last line without its line end included.

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
tokens (``exchange-event`` family). A summary row's ``event_id`` is the last event of the
recipient that matters most (a failure before a delivery). ``server`` is the host of the rows'
RECEIVE/DELIVER/SUBMIT events where they name one, else ``EXCHANGE-ONLINE``.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

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
    """Runs of the whole export (or what was added since ``state``), keyed by how they are
    read: ``("json", whole document)`` or ``("csv", kind, delimiter, column names)``."""
    saved = state.directives()
    fh.seek(0)
    encoding, bom = sniff.encoding_of(fh.read(4096))
    encoding = saved.get("encoding", encoding)
    start = state.offset or bom
    fh.seek(start)
    body = fh.read()
    data = sniff.to_utf8(body, encoding)
    if not data.strip():
        state.offset = start + len(body)
        return
    if not data.endswith(b"\n"):
        data += b"\n"
    as_json = (
        saved["kind"] == "json"
        if "kind" in saved
        else sniff.is_json(data[:64].decode("utf-8", "replace"))
    )
    sub = ReadState(0, state.line, "")
    if as_json:
        header = {"kind": "json"}
        yield from _json(data, sub, whole=state.offset == 0)
    else:
        header = {k: saved[k] for k in ("kind", "delimiter", "columns") if k in saved}
        yield from _csv(data, sub, header)
    header["encoding"] = encoding
    state.offset, state.line = start + len(body), sub.line
    state.header = "\n".join(f"#{k}: {v}" for k, v in header.items())


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
    delimiter = {v: k for k, v in sniff.DELIMITERS.items()}.get(header.get("delimiter", ""), ",")
    names = header["columns"].split("\t") if "columns" in header else None
    for run, bad in read_runs(io.BytesIO(data), sub, final=True):
        if run is not None and names is None and len(run.candidates):
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
        yield Pending(run, ("csv", header["kind"], delimiter, tuple(names)), bad)


def parse_run(run: Run, key: tuple, ctx: Context) -> Batch:
    """The rows of one run; ``key`` says how it is read (``read``)."""
    if key[0] == "json":
        if key[1]:
            raw, rows, invalid = records.document(run, run.data.decode("utf-8", "replace"))
        else:
            raw, rows, invalid = records.ndjson(run)
        table, more, servers = normalise.trace(raw, run, rows, ctx, NAME, sniff.API)
        return Batch(table, invalid + more, servers)
    _, kind, delimiter, names = key
    raw, rows, wrong = read_csv_run(run, list(names), delimiter=delimiter)
    table, invalid, servers = _normalise(kind, raw, run, rows, ctx)
    return Batch(table, wrong + invalid, servers)


def _normalise(kind: str, raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context):
    if kind == sniff.SUMMARY:
        return normalise.summary(raw, run, rows, ctx, NAME, kind)
    if kind == sniff.DETAIL:
        return normalise.detail(raw, run, rows, ctx, NAME, kind)
    return normalise.trace(raw, run, rows, ctx, NAME, kind)


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
)
