"""Exchange 2000/2003 message tracking logs (``YYYYMMDD.log``), FORMATS.md section A.

Tab-separated, 20 fields (a trailing extra empty or ``-`` field is accepted), numeric event IDs,
times in GMT, ``-`` for an empty field. Columns follow a ``# Date Time ...`` column-name line
when the file has one (any letter case, tab or space between names), else the documented order
(A.4). The mapping to the tracking table, also as data in ``COLUMNS``:

==========================  ===========================================================
log field                   tracking column
==========================  ===========================================================
Date + Time                 date_time (UTC; ``2003-8-12`` + ``0:58:14 GMT`` accepted)
Client-IP, Client-hostname  client_ip, client_hostname
Server-hostname, Server-IP  server_hostname, server_ip
Recipient-address           recipient_address (a one-item list: one recipient per line)
Event-ID                    event_id (the number as text); outcome from ``exchange2003``
MSGID                       message_id (angle brackets added)
Total-bytes                 total_bytes
Number-recipients           recipient_count
Message-Subject             message_subject (raw; ``pages.display_subject`` decodes RFC 2047)
Sender-Address              sender_address (and the derived sender_domain)
Partner-name, Priority,     partner_name, priority, recipient_report_status,
Recipient-Report-Status,    origination_time (as logged: a timestamp in the one real line),
Origination-time,           encryption, service_version, linked_msgid
Encryption, Service-version,
Linked-MSGID
==========================  ===========================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loganalyzer.formats import columns as C
from loganalyzer.formats.base import BOM, Bad, ReadState, Run, read_csv_run, read_runs
from loganalyzer.formats.common import Batch, Context, Detected, data_lines, mostly
from loganalyzer.formats.contract import Format, Pending
from loganalyzer.formats.exchange_tracking import split_bad
from loganalyzer.schema import TRACKING, build_table

NAME = "exchange2003-tracking"
LOG_TYPE = "EX2003"
_SAMPLE = (
    "# Message Tracking Log File\r\n"
    "# Exchange System Attendant Version 6.5.7638.1\r\n"
    "# Date\tTime\tClient-IP\tClient-hostname\tPartner-Name\tServer-hostname\tServer-IP\t"
    "Recipient-Address\tEvent-ID\tMSGID\tPriority\tRecipient-Report-Status\tTotal-bytes\t"
    "Number-Recipients\tOrigination-Time\tEncryption\tService-Version\tLinked-MSGID\t"
    "Message-Subject\tSender-Address\r\n"
    "2003-8-12\t0:58:14 GMT\t66.218.66.69\tn14.grp.scd.yahoo.com\t-\tPACKRAT\t192.168.1.2\t"
    "christina@pirnie.org\t1019\tbh9e3f+5qvo@eGroups.com\t0\t0\t4281\t1\t2003-8-12 0:58:14 GMT\t"
    "0\tVersion: 6.0.3790.0\t-\t [SRESafeHaven] Re: More Baby Stuff\tjtluvs2cq@wmconnect.com\t-\r\n"
)

#: Log field (documented order, FORMATS.md A.4) -> tracking column.
COLUMNS: dict[str, str] = {
    "date": "date_time",
    "time": "date_time",
    "client-ip": "client_ip",
    "client-hostname": "client_hostname",
    "partner-name": "partner_name",
    "server-hostname": "server_hostname",
    "server-ip": "server_ip",
    "recipient-address": "recipient_address",
    "event-id": "event_id",
    "msgid": "message_id",
    "priority": "priority",
    "recipient-report-status": "recipient_report_status",
    "total-bytes": "total_bytes",
    "number-recipients": "recipient_count",
    "origination-time": "origination_time",
    "encryption": "encryption",
    "service-version": "service_version",
    "linked-msgid": "linked_msgid",
    "message-subject": "message_subject",
    "sender-address": "sender_address",
}
FIELDS: list[str] = list(COLUMNS)

_HEADER = re.compile(rb"^#\s*Message Tracking Log File\s*$", re.IGNORECASE | re.MULTILINE)
_VERSION = re.compile(
    rb"^#\s*Exchange System Attendant Version\s+6\.", re.IGNORECASE | re.MULTILINE
)
_DATE = r"^\s*(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})\s*$"
_TIME = r"^\s*(?P<H>\d{1,2}):(?P<M>\d{1,2}):(?P<S>\d{1,2})(?P<f>\.\d{1,9})?\s*(?i:GMT|UTC|Z)?\s*$"


def detect(head: bytes, name: str) -> Detected | None:
    """The ``# Message Tracking Log File`` and ``# Exchange System Attendant Version 6.x`` lines."""
    top = head.replace(BOM, b"")[:4096]
    if _HEADER.search(top) and _VERSION.search(top):
        return Detected(NAME, log_type=LOG_TYPE)
    return None


def detect_headerless(head: bytes, name: str) -> Detected | None:
    """With ``--format``: most first data lines have 20 or 21 tab fields, a date and a numeric
    event (a damaged first line does not decide)."""
    return Detected(NAME, log_type=LOG_TYPE) if mostly(data_lines(head), _is_line) else None


def _is_line(text: str) -> bool:
    fields = text.split("\t")
    return (
        len(fields) in (len(FIELDS), len(FIELDS) + 1)
        and fields[8].strip().isdigit()
        and re.match(_DATE, fields[0]) is not None
    )


def _field_names(run: Run) -> list[str]:
    """Names from a ``# Date Time ...`` line (or ``#Fields:``), else the documented order."""
    for key, value in reversed(run.directives.items()):
        text = value if key == "fields" else key
        names = [n.replace("_", "-") for n in re.split(r"[\t ]+", text.strip().lower())]
        if names[:2] == ["date", "time"] and "event-id" in names:
            return names
    return FIELDS


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs keyed by their field names, or batches of damaged lines."""
    for run, bad in read_runs(fh, state, final=ctx.final, check_quotes=False):
        if run is None or len(run.candidates) == 0:
            if bad:
                yield Batch(None, bad)
            continue
        yield Pending(run, tuple(_field_names(run)), bad)


def parse_run(run: Run, names: tuple[str, ...], ctx: Context) -> Batch:
    """The rows of one run whose fields are ``names``; its bad lines to the quarantine."""
    raw, rows, wrong = read_fields(run, list(names))
    table, invalid, servers = normalise(raw, run, rows, ctx)
    return Batch(table, wrong + invalid, servers)


def read_fields(run: Run, names: list[str]) -> tuple[pa.Table, np.ndarray, list[Bad]]:
    """String columns of the run's lines (pyarrow's CSV reader, tab-separated, no quoting).

    A line has ``len(names)`` fields, or one more that is empty or ``-``; both may mix in a file.
    Returns the columns of the known fields, the run index of each row's line and the bad lines.
    """
    n = len(names)
    first = run.text(int(run.candidates[0])).count("\t") + 1
    extra = first == n + 1
    columns = [f"{i}:{name}" for i, name in enumerate(names)] + (["extra"] if extra else [])
    raw, rows, wrong = read_csv_run(run, columns, delimiter="\t", quote_char=False)
    bad, other = [], []
    for b in wrong:  # lines of the other accepted width are read apart (files rarely mix them)
        fields = b.raw.split("\t")
        if len(fields) == n + (0 if extra else 1) and (extra or fields[-1] in ("", "-")):
            other.append((b.line - int(run.line_numbers[0]), fields[:n]))
        else:
            bad.append(Bad(b.line, f"wrong field count: expected {n}, found {len(fields)}", b.raw))
    if extra:
        odd = pc.fill_null(pc.not_equal(raw.column("extra"), "-"), False)
        for i in pc.indices_nonzero(odd).to_pylist():
            reason = f"wrong field count: expected {n}, found {n + 1}"
            bad.append(Bad(int(run.line_numbers[rows[i]]), reason, run.text(int(rows[i]))))
        raw, rows = raw.filter(pc.invert(odd)), rows[~odd.to_numpy(zero_copy_only=False)]
    raw = raw.select(columns[:n]).rename_columns(names)
    if other:
        values = [pa.array(v, pa.string()) for v in zip(*(f for _, f in other), strict=True)]
        raw = pa.concat_tables([raw, pa.table(values, names=names)])
        rows = np.concatenate([rows, np.array([i for i, _ in other], dtype=np.int64)])
    keep = [i for i, name in enumerate(names) if name in COLUMNS and name not in names[:i]]
    return raw.select(keep), rows, sorted(bad, key=lambda b: b.line)


def parse_time(date: pa.Array, time: pa.Array) -> pa.Array:
    """UTC times from ``yyyy-m-d`` and ``h:m:s[ GMT]`` text, on whole columns.

    Each distinct date and time of day is parsed once (a daily log has one date): the dates are
    padded and cast, the times turned into milliseconds; null where either does not parse.
    """
    dates, times = pc.dictionary_encode(date), pc.dictionary_encode(time)
    d = pc.extract_regex(dates.dictionary, _DATE)
    day = pc.binary_join_element_wise(pc.struct_field(d, "y"), _pad(d, "m"), _pad(d, "d"), "-")
    midnight = C.parse_utc(pc.binary_join_element_wise(day, "T00:00:00", ""))[0]
    t = pc.extract_regex(times.dictionary, _TIME)
    h, m, s = (pc.struct_field(t, k).cast(pa.int64()) for k in ("H", "M", "S"))
    digits = pc.utf8_slice_codeunits(pc.struct_field(t, "f"), 1, 4)
    millis = pc.if_else(pc.equal(digits, ""), "0", pc.utf8_rpad(digits, 3, "0")).cast(pa.int64())
    ms = pc.add(pc.add(pc.multiply(h, 3_600_000), pc.multiply(m, 60_000)), pc.multiply(s, 1000))
    ok = pc.and_(pc.and_(pc.less(h, 24), pc.less(m, 60)), pc.less(s, 60))
    ms = pc.if_else(ok, pc.add(ms, millis), pa.scalar(None, pa.int64()))
    day = pc.take(midnight, dates.indices)
    offset = pc.take(ms, times.indices).cast(pa.duration("ms"))
    return pc.add(day, offset)


def _pad(parts: pa.Array, name: str) -> pa.Array:
    return pc.utf8_lpad(pc.struct_field(parts, name), width=2, padding="0")


def _text(col: pa.Array) -> pa.Array:
    """``-`` and empty fields become nulls."""
    return pc.if_else(pc.is_in(col, pa.array(["", "-"])), pa.scalar(None, pa.string()), col)


def one_item_lists(col: pa.Array) -> pa.ListArray:
    """A list of one item per non-null value; an empty list for a null."""
    valid = pc.is_valid(col).to_numpy(zero_copy_only=False)
    offsets = np.concatenate([[0], np.cumsum(valid)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pc.drop_null(col))


def normalise(
    raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context
) -> tuple[pa.Table, list[Bad], pa.Array | None]:
    """Tab-split string columns named by log field to the tracking schema; bad rows out.
    Also per row the server it names (its server-hostname)."""
    n = raw.num_rows
    missing = pa.nulls(n, pa.string())
    cols = {f: _text(C.whole(raw.column(f))) for f in raw.column_names}
    out = {COLUMNS[f]: v for f, v in cols.items() if f not in ("date", "time")}
    date_time = parse_time(cols.get("date", missing), cols.get("time", missing))
    event_id = pc.utf8_trim_whitespace(out.get("event_id", missing))
    _, bad_event = C.parse_int(event_id)
    total_bytes, bad_bytes = C.parse_int(out.get("total_bytes", missing))
    count, bad_count = C.parse_int(out.get("recipient_count", missing), pa.int32())
    out.update(
        date_time=date_time,
        event_id=event_id,
        outcome=C.outcomes(event_id, "exchange2003"),
        total_bytes=total_bytes,
        recipient_count=count,
        recipient_address=one_item_lists(out.get("recipient_address", missing)),
        message_id=C.with_brackets(out.get("message_id", missing)),
        sender_domain=C.domain_of(out.get("sender_address", missing)),
        log_format=C.constant(NAME, n),
        log_type=C.constant(ctx.log_type or LOG_TYPE, n),
        file=C.constant(ctx.path, n),
        line=pa.array(run.line_numbers[rows], pa.int64()),
    )
    table = build_table(out, TRACKING)
    problems = [
        (pc.is_null(date_time), "bad date/time"),
        (bad_event, "bad event-id"),
        (bad_bytes, "bad total-bytes"),
        (bad_count, "bad number-recipients"),
    ]
    table, invalid = split_bad(table, problems, run, rows)
    hosts = table.column("server_hostname") if "server_hostname" in table.column_names else None
    return table, invalid, C.server_name(C.whole(hosts)) if hosts is not None else None


FORMAT = Format(
    name=NAME,
    table="tracking",
    description="Exchange 2000/2003 message tracking logs (tab-separated, numeric event IDs)",
    file_names="YYYYMMDD.log (in <Server>.log folders)",
    sample=_SAMPLE,
    detect=detect,
    detect_headerless=detect_headerless,
    read=read,
    parse_run=parse_run,
    field_sets={len(FIELDS): tuple(FIELDS)},
)
