"""Exchange 2007-2019 anti-spam agent logs (``AgentLog*.LOG``, ``#Log-type: Agent Log``).

FORMATS.md section L. One row per agent decision, columns from ``#Fields``. Derived columns:

- ``local_ip``/``local_port``, ``remote_ip``/``remote_port``: the endpoints split as in the
  protocol logs (an endpoint without a port keeps its IP).
- ``message_id``: with angle brackets; empty before DATA gives null.
- ``p2_from_addresses``, ``recipient_address``: lists split at ``;`` (the From: addresses
  each end with one), empty items dropped.
- Continuation rows (L.5 b): a row that lists one recipient but counts N, followed by up to
  N-1 rows of the same session, agent, event and action that each list one recipient, is one
  decision: they are folded into it (its ``line`` is the first).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loganalyzer.formats import columns as C
from loganalyzer.formats.base import Bad, ReadState, Run, read_csv_run
from loganalyzer.formats.common import (
    Batch,
    Context,
    Detected,
    data_lines,
    header_value,
    mostly,
)
from loganalyzer.formats.contract import Format, Pending, keyed_runs
from loganalyzer.formats.exchange_smtp_protocol import split_endpoint
from loganalyzer.formats.exchange_tracking import field_count, split_bad
from loganalyzer.schema import AGENT, build_table

NAME = "exchange-agent"
_SAMPLE = """\
#Software: Microsoft Exchange Server
#Version: 15.0.0.0
#Log-type: Agent Log
#Date: 2026-03-02T00:00:00.000Z
#Fields: Timestamp,SessionId,LocalEndpoint,RemoteEndpoint,EnteredOrgFromIP,MessageId,\
P1FromAddress,P2FromAddresses,Recipient,NumRecipients,Agent,Event,Action,SmtpResponse,Reason,\
ReasonData,Diagnostics,NetworkMsgID,TenantID,Directionality
2026-03-02T08:16:40.501Z,08DE5A1B2C3D4E61,192.0.2.10:25,198.51.100.7:40022,198.51.100.7,,\
x@bad.example,,nobody@contoso.com,1,Recipient Filter Agent,OnRcptCommand,RejectCommand,\
550 5.1.1 User unknown,RecipientDoesNotExist,,,,,Incoming
"""

#: The #Fields line of 2013-2019 (L.2); 2007/2010 end at Diagnostics, the docs at ReasonData.
FIELDS = [
    "timestamp",
    "sessionid",
    "localendpoint",
    "remoteendpoint",
    "enteredorgfromip",
    "messageid",
    "p1fromaddress",
    "p2fromaddresses",
    "recipient",
    "numrecipients",
    "agent",
    "event",
    "action",
    "smtpresponse",
    "reason",
    "reasondata",
    "diagnostics",
    "networkmsgid",
    "tenantid",
    "directionality",
]
#: Header-less files: the documented field sets by their field count.
FIELD_SETS = {20: FIELDS, 17: FIELDS[:17], 16: FIELDS[:16]}

#: #Fields names that only an agent log has.
_OWN_FIELDS = {"sessionid", "enteredorgfromip", "agent", "action", "reasondata"}
_LOG_TYPE = "agent log"
#: #Fields name to column.
_COLUMNS = {
    "timestamp": "date_time",
    "sessionid": "session_id",
    "enteredorgfromip": "entered_org_from_ip",
    "messageid": "message_id",
    "p1fromaddress": "p1_from_address",
    "p2fromaddresses": "p2_from_addresses",
    "recipient": "recipient_address",
    "numrecipients": "num_recipients",
    "smtpresponse": "smtp_response",
    "reasondata": "reason_data",
    "networkmsgid": "network_message_id",
    "tenantid": "tenant_id",
}


def detect(head: bytes, name: str) -> Detected | None:
    """An agent log has an ``Agent Log`` #Log-type, or (its other header lines lost) a
    #Fields line that names the agent-log fields."""
    log_type = (header_value(head, "log-type") or "").strip().lower()
    if log_type == _LOG_TYPE:
        return Detected(NAME, log_type="agent")
    fields = {f.strip().lower() for f in (header_value(head, "fields") or "").split(",")}
    if not log_type and fields >= _OWN_FIELDS:
        return Detected(NAME, log_type="agent")
    return None


def detect_headerless(head: bytes, name: str) -> Detected | None:
    """With ``--format``: a header-less file most of whose first lines start with a date and
    have the field count of a documented set."""
    if mostly(data_lines(head), _looks_like_a_line):
        return Detected(NAME, log_type="agent")
    return None


def _looks_like_a_line(text: str) -> bool:
    return bool(re.match(r"\d{4}-\d\d-\d\dT", text)) and field_count(text) in FIELD_SETS


def _field_names(run: Run, ctx: Context) -> list[str] | None:
    fields = run.directives.get("fields")
    if fields:
        return [f.strip().lower() for f in fields.split(",")]
    if not ctx.forced:
        return None
    counts = [field_count(run.text(i)) for i in run.candidates[:200].tolist()]
    known = [c for c in counts if c in FIELD_SETS]
    return FIELD_SETS[max(set(known), key=known.count)] if known else FIELDS


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs keyed by their fields, or batches of lines that cannot be parsed."""
    return keyed_runs(fh, state, ctx, _key)


def _key(run: Run, ctx: Context) -> tuple | None:
    names = _field_names(run, ctx)
    return None if names is None else tuple(names)


def parse_run(run: Run, key: tuple, ctx: Context) -> Batch:
    """The rows of one run; ``key`` is its fields."""
    raw, rows, wrong = read_csv_run(run, list(key))
    table, invalid = normalise(raw, run, rows, ctx)
    return Batch(table, wrong + invalid)


def _addresses(col: pa.Array) -> pa.ListArray:
    """``a@x;b@y;`` as a list, blanks dropped."""
    lists = C.split_list(pc.utf8_trim_whitespace(pc.fill_null(col, "")))
    flat = pc.utf8_trim_whitespace(pc.list_flatten(lists))
    parents = pc.list_parent_indices(lists)
    keep = pc.not_equal(flat, "")
    kept, kept_parents = pc.filter(flat, keep), pc.filter(parents, keep)
    counts = np.bincount(kept_parents.to_numpy(), minlength=len(col))
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), kept)


def normalise(
    raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context
) -> tuple[pa.Table, list[Bad]]:
    """String columns named by #Fields to the agent schema; bad rows to the quarantine."""
    n = raw.num_rows
    cols = {_COLUMNS.get(c, c): C.whole(raw.column(c)) for c in raw.column_names}
    missing = pa.nulls(n, pa.string())
    date_time, bad_time = C.parse_utc(cols.get("date_time", missing))
    count, bad_count = C.parse_int(cols.get("num_recipients", missing), pa.int32())
    local_ip, local_port = C.per_distinct(split_endpoint, cols.get("localendpoint", missing))
    remote_ip, remote_port = C.per_distinct(split_endpoint, cols.get("remoteendpoint", missing))
    out = {
        "date_time": date_time,
        "log_format": C.constant(NAME, n),
        "session_id": cols.get("session_id", missing),
        "local_ip": local_ip,
        "local_port": local_port,
        "remote_ip": remote_ip,
        "remote_port": remote_port,
        "entered_org_from_ip": cols.get("entered_org_from_ip", missing),
        "message_id": C.with_brackets(pc.fill_null(cols.get("message_id", missing), "")),
        "p1_from_address": cols.get("p1_from_address", missing),
        "p2_from_addresses": _addresses(cols.get("p2_from_addresses", missing)),
        "recipient_address": _addresses(cols.get("recipient_address", missing)),
        "num_recipients": count,
        "file": C.constant(ctx.path, n),
        "line": pa.array(run.line_numbers[rows], pa.int64()),
    }
    for name in ("agent", "event", "action", "smtp_response", "reason", "reason_data"):
        out[name] = cols.get(name, missing)
    for name in ("diagnostics", "network_message_id", "tenant_id", "directionality"):
        out[name] = cols.get(name, missing)
    table = build_table(out, AGENT)
    problems = [
        (bad_time, "bad Timestamp"),
        (pc.is_null(date_time), "no Timestamp"),
        (bad_count, "bad NumRecipients"),
    ]
    table, bad = split_bad(table, problems, run, rows)
    return fold_continuations(table), bad


def fold_continuations(table: pa.Table) -> pa.Table:
    """Rows that list one recipient of N, each followed by the N-1 rows that add one recipient
    each (L.5 b), as one row listing all N; other rows as they are."""
    listed = pc.list_value_length(table.column("recipient_address")).to_numpy(zero_copy_only=False)
    counts = pc.fill_null(table.column("num_recipients"), 0).to_numpy(zero_copy_only=False)
    if not ((listed == 1) & (counts > 1)).any():
        return table
    recipients = table.column("recipient_address").to_pylist()
    # a continuation row is the same decision in the same session, only its recipient differs
    decision = [table.column(c).to_pylist() for c in ("session_id", "agent", "event", "action")]
    same = list(zip(*decision, strict=True))
    keep = np.ones(table.num_rows, dtype=bool)
    i = 0
    while i < table.num_rows:
        want = int(counts[i])
        if listed[i] == 1 and want > 1:
            j = i + 1
            while j < table.num_rows and j < i + want and listed[j] == 1 and same[j] == same[i]:
                recipients[i] = recipients[i] + recipients[j]
                keep[j] = False
                j += 1
            i = j
        else:
            i += 1
    at = table.schema.get_field_index("recipient_address")
    table = table.set_column(at, table.schema.field(at), pa.array(recipients, C.LIST))
    return table.filter(pa.array(keep))


FORMAT = Format(
    name=NAME,
    table="agent",
    description="Exchange 2007-2019 anti-spam agent logs (CSV, columns from #Fields)",
    file_names="AgentLog*.LOG (Logs\\Hub, Logs\\FrontEnd or Logs\\Edge, then \\AgentLog)",
    sample=_SAMPLE,
    detect=detect,
    detect_headerless=detect_headerless,
    read=read,
    parse_run=parse_run,
    field_sets=FIELD_SETS,
    joins_files=False,
)
