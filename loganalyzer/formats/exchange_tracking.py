"""Exchange 2007-2019 message tracking logs (``MSGTRK*.LOG``), FORMATS.md section B."""

from __future__ import annotations

import csv
import re
from collections.abc import Iterator
from pathlib import PurePath

import pyarrow as pa
import pyarrow.compute as pc

from loganalyzer.formats import columns as C
from loganalyzer.formats.base import Bad, ReadState, Run, read_csv_run, read_runs
from loganalyzer.formats.common import (
    SAMPLE_LINES,
    Batch,
    Context,
    Detected,
    commonest,
    data_lines,
    header_value,
    mostly,
)
from loganalyzer.formats.contract import Format, Pending
from loganalyzer.schema import TRACKING, build_table

NAME = "exchange-tracking"
_SAMPLE = """\
#Software: Microsoft Exchange Server
#Version: 15.01.2375.007
#Log-type: Message Tracking Log
#Date: 2022-09-19T15:00:00.000Z
#Fields: date-time,client-ip,client-hostname,server-ip,server-hostname,source-context,\
connector-id,source,event-id,internal-message-id,message-id,network-message-id,\
recipient-address,recipient-status,total-bytes,recipient-count,related-recipient-address,\
reference,message-subject,sender-address,return-path,message-info,directionality,tenant-id,\
original-client-ip,original-server-ip,custom-data,transport-traffic-type,log-id,schema-version
2022-09-19T15:02:29.232Z,10.0.0.5,EX01.contoso.com,10.0.0.6,EX02,08DA9A4C1D2E3F40;\
2022-09-19T15:02:29.100Z;0,EX02\\Default EX02,SMTP,RECEIVE,73014444033,<a@contoso.com>,\
13fad5b7-39c5-46e7-130e-08d4a138ac67,bob@contoso.com,,7229,1,,,"Hello, world",\
alice@contoso.com,alice@contoso.com,,Originating,,10.0.0.5,10.0.0.6,,Email,\
05503123-c5b9-46fe-1234-56dc1db88f8f,15.01.2375.007
"""

_2007 = [
    "date-time",
    "client-ip",
    "client-hostname",
    "server-ip",
    "server-hostname",
    "source-context",
    "connector-id",
    "source",
    "event-id",
    "internal-message-id",
    "message-id",
    "recipient-address",
    "recipient-status",
    "total-bytes",
    "recipient-count",
    "related-recipient-address",
    "reference",
    "message-subject",
    "sender-address",
    "return-path",
    "message-info",
]
_2010 = _2007 + [
    "directionality",
    "tenant-id",
    "original-client-ip",
    "original-server-ip",
    "custom-data",
]
_2013 = _2010[:11] + ["network-message-id"] + _2010[11:]
_2016 = _2013 + ["transport-traffic-type", "log-id", "schema-version"]
#: Documented #Fields sets by field count: 2007, 2010, 2013, 2016/2019 (FORMATS.md B.3).
FIELD_SETS: dict[int, list[str]] = {len(f): f for f in (_2007, _2010, _2013, _2016)}

_LOG_TYPE = re.compile(r"^(MSGTRK(?:MA|MD|MS)?)", re.IGNORECASE)
_DATE = re.compile(r"\d{4}-\d\d-\d\dT")
#: #Fields names that only a tracking log has (every version).
_OWN_FIELDS = {"date-time", "event-id", "internal-message-id"}
_LOCAL_EVENTS = ("RECEIVE", "DELIVER", "SUBMIT")


def detect(head: bytes, name: str) -> Detected | None:
    """A tracking log has the Exchange #Software line and a Message Tracking #Log-type, or
    (its other header lines lost) a #Fields line that names tracking fields."""
    software = header_value(head, "software") or ""
    log_type = header_value(head, "log-type") or ""
    if "exchange" in software.lower() and log_type.lower() == "message tracking log":
        return Detected(NAME, log_type=_log_type(name))
    if log_type.lower() in ("", "message tracking log") and names_tracking_fields(head):
        return Detected(NAME, log_type=_log_type(name))
    return None


def names_tracking_fields(head: bytes) -> bool:
    """Whether the head's #Fields line names the fields only a tracking log has."""
    fields = header_value(head, "fields") or ""
    return {f.strip().lower() for f in fields.split(",")} >= _OWN_FIELDS


def detect_headerless(head: bytes, name: str) -> Detected | None:
    """With ``--format``: a header-less file most of whose first lines start with a date and
    have the field count of a documented set (a damaged first line does not decide)."""
    if mostly(data_lines(head), _looks_like_a_line):
        return Detected(NAME, log_type=_log_type(name))
    return None


def _looks_like_a_line(text: str) -> bool:
    return bool(_DATE.match(text)) and field_count(text) in FIELD_SETS


def field_count(text: str) -> int:
    """Number of CSV fields of one line."""
    try:
        return len(next(csv.reader([text.rstrip("\r")])))
    except (csv.Error, StopIteration):
        return 0


def _log_type(name: str) -> str:
    m = _LOG_TYPE.match(PurePath(name).name)
    return m[1].upper() if m else "MSGTRK"


def _field_names(run: Run, ctx: Context) -> list[str] | None:
    fields = run.directives.get("fields")
    if fields:
        return [f.strip().lower() for f in fields.split(",")]
    if not ctx.forced:
        return None
    # the documented set most lines have: a damaged first line must not choose it
    sample = run.candidates[:SAMPLE_LINES].tolist()
    counts = (field_count(run.text(i)) for i in sample)
    return FIELD_SETS.get(commonest(c for c in counts if c in FIELD_SETS), FIELD_SETS[30])


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs keyed by their field names, or batches of lines that cannot be parsed."""
    for run, bad in read_runs(fh, state, final=ctx.final):
        if run is None or len(run.candidates) == 0:
            if bad:
                yield Batch(None, bad)
            continue
        names = _field_names(run, ctx)
        if names is None:
            yield Batch(None, bad + _no_header(run))
        elif "date-time" not in names:
            yield Batch(None, bad + _no_header(run, "the #Fields header names no date-time"))
        else:
            yield Pending(run, tuple(names), bad)


def parse_run(run: Run, names: tuple[str, ...], ctx: Context) -> Batch:
    """The rows of one run whose fields are ``names``; its bad lines to the quarantine."""
    raw, rows, wrong = read_csv_run(run, list(names))
    table, invalid = normalise(raw, run, rows, ctx)
    return Batch(table, wrong + invalid, server_names(table))


def server_names(table: pa.Table) -> pa.Array:
    """Per row, the server it names as the log's own: the server-hostname of its local
    events (null on other rows)."""
    local = pc.is_in(table.column("event_id"), pa.array(_LOCAL_EVENTS))
    names = C.whole(table.column("server_hostname"))
    return C.per_distinct(C.server_name, pc.if_else(local, names, pa.scalar(None, pa.string())))


def _no_header(run: Run, reason: str = "data line before any #Fields header") -> list[Bad]:
    return [Bad(int(run.line_numbers[i]), reason, run.text(i)) for i in run.candidates.tolist()]


def normalise(raw: pa.Table, run: Run, rows, ctx: Context) -> tuple[pa.Table, list[Bad]]:
    """String columns named by #Fields to the tracking schema; bad rows to the quarantine."""
    n = raw.num_rows
    cols = {c.replace("-", "_"): C.whole(raw.column(c)) for c in raw.column_names}
    missing = pa.nulls(n, pa.string())
    date_time, bad_time = C.parse_utc(cols.pop("date_time"))
    total_bytes, bad_bytes = C.parse_int(cols.pop("total_bytes", missing))
    count, bad_count = C.parse_int(cols.pop("recipient_count", missing), pa.int32())
    recipients = C.split_list(cols.pop("recipient_address", missing))
    statuses = C.split_statuses(
        cols.pop("recipient_status", missing),
        pc.fill_null(count, pc.list_value_length(recipients).cast(pa.int32())),
    )
    enhanced, reply = C.status_codes(statuses)
    event_id = pc.utf8_upper(cols.pop("event_id", missing))
    out = dict(cols)
    out.update(
        date_time=date_time,
        total_bytes=total_bytes,
        recipient_count=count,
        recipient_address=recipients,
        recipient_status=statuses,
        enhanced_status=enhanced,
        smtp_reply=reply,
        event_id=event_id,
        source=pc.utf8_upper(cols.get("source", missing)),
        outcome=C.outcomes(event_id, "exchange-event"),
        message_id=C.with_brackets(cols.get("message_id", missing)),
        sender_domain=C.domain_of(cols.get("sender_address", missing)),
        log_format=C.constant(NAME, n),
        log_type=C.constant(ctx.log_type or "MSGTRK", n),
        file=C.constant(ctx.path, n),
        line=pa.array(run.line_numbers[rows], pa.int64()),
    )
    table = build_table(out, TRACKING)
    problems = [
        (bad_time, "bad date-time"),
        (pc.and_(pc.is_null(date_time), pc.invert(bad_time)), "no date-time"),
        (bad_bytes, "bad total-bytes"),
        (bad_count, "bad recipient-count"),
    ]
    return split_bad(table, problems, run, rows)


def split_bad(table: pa.Table, problems, run: Run, rows) -> tuple[pa.Table, list[Bad]]:
    """Move rows flagged in ``problems`` (mask, reason) out of ``table`` into ``Bad`` lines."""
    mask = None
    for m, _ in problems:
        mask = m if mask is None else pc.or_(mask, m)
    if mask is None or not pc.any(mask).as_py():
        return table, []
    bad = []
    for i in pc.indices_nonzero(mask).to_pylist():
        reason = next(r for m, r in problems if m[i].as_py())
        bad.append(Bad(int(run.line_numbers[rows[i]]), reason, run.text(int(rows[i]))))
    return table.filter(pc.invert(mask)), bad


FORMAT = Format(
    name=NAME,
    table="tracking",
    description="Exchange 2007-2019 message tracking logs (CSV, columns from #Fields)",
    file_names="MSGTRK*.LOG, MSGTRKMA*.LOG, MSGTRKMD*.LOG, MSGTRKMS*.LOG",
    sample=_SAMPLE,
    detect=detect,
    detect_headerless=detect_headerless,
    read=read,
    parse_run=parse_run,
    field_sets={n: tuple(f) for n, f in FIELD_SETS.items()},
    joins_files=True,
)
