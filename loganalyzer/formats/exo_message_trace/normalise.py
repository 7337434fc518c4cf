"""Exchange Online export columns to the tracking table, on whole Arrow columns (FORMATS I.1-I.5).

The mappings are data: ``SUMMARY_COLUMNS``, ``TRACE_COLUMNS`` and ``TRACE_DETAIL_COLUMNS`` map
an export's lower-cased column names to tracking columns. The 27-column detail report has the
on-premises field names and goes through ``exchange_tracking.normalise``.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, replace

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loganalyzer.formats import columns as C
from loganalyzer.formats import exchange_tracking
from loganalyzer.formats.base import Bad, Run
from loganalyzer.formats.common import Context
from loganalyzer.formats.exchange2003 import one_item_lists
from loganalyzer.formats.exchange_tracking import split_bad
from loganalyzer.schema import TRACKING, build_table

#: MTSummary ("Enhanced summary") column -> tracking column. ``recipient_status`` fills both
#: recipient_address and recipient_status; ``delivery_priority`` becomes ``S:DeliveryPriority=``
#: in custom_data, as the detail report writes it.
SUMMARY_COLUMNS: dict[str, str] = {
    "origin_timestamp_utc": "date_time",
    "sender_address": "sender_address",
    "recipient_status": "recipient_address, recipient_status",
    "message_subject": "message_subject",
    "total_bytes": "total_bytes",
    "message_id": "message_id",
    "network_message_id": "network_message_id",
    "original_client_ip": "original_client_ip",
    "directionality": "directionality",
    "connector_id": "connector_id",
    "delivery_priority": "custom_data",
}
#: Get-MessageTrace properties (CSV export or reporting-API JSON) -> tracking column.
TRACE_COLUMNS: dict[str, str] = {
    "received": "date_time",
    "senderaddress": "sender_address",
    "recipientaddress": "recipient_address",
    "subject": "message_subject",
    "status": "event_id",
    "fromip": "client_ip",
    "toip": "server_ip",
    "size": "total_bytes",
    "messageid": "message_id",
    "messagetraceid": "network_message_id",
    "organization": "tenant_id",
    "id": "network_message_id",  # Microsoft Graph exchangeMessageTrace: the message trace ID
}
#: Get-MessageTraceDetail properties -> tracking column (Detail is the recipient's status text).
TRACE_DETAIL_COLUMNS: dict[str, str] = {
    "date": "date_time",
    "event": "event_id",
    "action": "source_context",
    "detail": "recipient_status",
    "data": "custom_data",
    **{
        k: v
        for k, v in TRACE_COLUMNS.items()
        if k not in ("received", "status", "subject", "id")  # a Graph detail's id is its own
    },
}
#: The documentation's numeric directionality (I.1); real files write the words.
DIRECTIONALITY = {"1": "Incoming", "2": "Originating"}
SERVICE = "EXCHANGE-ONLINE"
_PROTECT = "\x1f"
_EPOCH = r"^\s*/Date\((?P<ms>-?\d{1,15})(?:[+-]\d{4})?\)/\s*$"
_SLASHED = (
    r"^\s*(?P<a>\d{1,2})/(?P<b>\d{1,2})/(?P<y>\d{4})[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?P<f>\.\d{1,9})?)?\s*(?P<p>(?i:AM|PM))?\s*$"
)
_DOTTED = (
    r"^\s*(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})[ T]+(?P<H>\d{1,2}):(?P<M>\d{2})"
    r"(?::(?P<S>\d{2})(?P<f>\.\d{1,9})?)?\s*$"
)
_SERVER_MEP = r'Name="ServerHostName"\s+String="(?P<h>[^"]*)"'


def _pad(parts: pa.Array, name: str) -> pa.Array:
    return pc.utf8_lpad(pc.struct_field(parts, name), width=2, padding="0")


def _iso(parts: pa.Array, month: str, day: str, hour: pa.Array) -> pa.Array:
    seconds = pc.if_else(pc.equal(pc.struct_field(parts, "S"), ""), "00", _pad(parts, "S"))
    return pc.binary_join_element_wise(
        pc.struct_field(parts, "y"),
        "-",
        _pad(parts, month),
        "-",
        _pad(parts, day),
        "T",
        pc.utf8_lpad(hour, width=2, padding="0"),
        ":",
        pc.struct_field(parts, "M"),
        ":",
        seconds,
        pc.struct_field(parts, "f"),
        "",
    )


#: The orders of a slashed date (``d/M/yyyy``, ``M/d/yyyy``): one for a whole file, kept with
#: its read state.
DAY_FIRST, MONTH_FIRST = "day-first", "month-first"
#: The time column of each export read by ``parse_time`` (by its lower-case name).
TIME_COLUMNS = ("origin_timestamp_utc", "received", "date")


@dataclass(frozen=True)
class Slashed:
    """What a file's slashed dates say of their order: how many there are, how many can only
    be day first (a first number above 12) or month first (a second one above 12), and how
    many have a 12-hour time (AM/PM)."""

    dates: int = 0
    day_first: int = 0
    month_first: int = 0
    twelve_hour: int = 0

    def __add__(self, other: Slashed) -> Slashed:
        return Slashed(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


def slashed(col: pa.Array) -> Slashed:
    """The slashed dates of ``col`` counted (``Slashed``)."""
    parts = pc.extract_regex(col, _SLASHED)

    def count(mask: pa.Array) -> int:
        return int(pc.sum(pc.fill_null(mask, False).cast(pa.int64())).as_py() or 0)

    first = pc.struct_field(parts, "a").cast(pa.int32())
    second = pc.struct_field(parts, "b").cast(pa.int32())
    return Slashed(
        count(pc.is_valid(parts)),
        count(pc.greater(first, 12)),
        count(pc.greater(second, 12)),
        count(pc.not_equal(pc.struct_field(parts, "p"), "")),
    )


def date_order(seen: Slashed) -> tuple[str | None, str | None]:
    """The order of a file's slashed dates and, when its dates do not show it alone, why it
    was chosen (for a warning); (None, None) for a file without slashed dates.

    A date with a number above 12 shows the order. Without one, the time's form decides: the
    exporting machine's culture renders the dates (FORMATS.md I.4), and only en-US, of the
    month-first cultures, is common: it writes a 12-hour time (``2/23/2026 11:01:02 PM``); a
    24-hour time is a day-first culture's (en-GB, fr-FR, de-CH...). Dates that show both
    orders: the order most show; the others cannot be read in it.
    """
    if not seen.dates:
        return None, None
    if seen.day_first and not seen.month_first:
        return DAY_FIRST, None
    if seen.month_first and not seen.day_first:
        return MONTH_FIRST, None
    by_clock = MONTH_FIRST if seen.twelve_hour else DAY_FIRST
    if not seen.day_first:
        clock = "12-hour times (AM/PM), as en-US writes" if seen.twelve_hour else "24-hour times"
        return (
            by_clock,
            f"no date shows its order (no number above 12): read {by_clock} by its {clock}",
        )
    if seen.day_first == seen.month_first:
        order = by_clock
    else:
        order = DAY_FIRST if seen.day_first > seen.month_first else MONTH_FIRST
    wrong = seen.month_first if order == DAY_FIRST else seen.day_first
    others = "the other" if wrong == 1 else f"the {wrong:,} others"
    return order, (
        f"dates in both orders ({seen.day_first:,} day first, {seen.month_first:,} month first):"
        f" read {order}, {others} quarantined as bad times"
    )


def parse_time(col: pa.Array, order: str | None = None) -> pa.Array:
    """UTC times from ISO 8601 (no zone = UTC), ``/Date(ms)/``, slashed dates (``M/d/yyyy`` or
    ``d/M/yyyy``, ``h:mm:ss AM/PM`` or ``H:mm:ss``) and ``d.M.yyyy H:mm:ss``; null where none
    fits.

    ``order`` is the slashed dates' order (``DAY_FIRST``, ``MONTH_FIRST``), the file's; without
    it ``date_order`` decides from ``col`` alone (a whole JSON document).
    """
    epoch = pc.struct_field(pc.extract_regex(col, _EPOCH), "ms")
    from_epoch = epoch.cast(pa.int64()).cast(pa.timestamp("ms", tz="UTC"))
    parts = pc.extract_regex(col, _SLASHED)
    hour = pc.struct_field(parts, "H").cast(pa.int32())
    pm = pc.equal(pc.utf8_upper(pc.struct_field(parts, "p")), "PM")
    am_pm = pc.not_equal(pc.struct_field(parts, "p"), "")
    hour = pc.if_else(am_pm, pc.add(pc.remainder(hour, 12), pc.if_else(pm, 12, 0)), hour)
    order = order or date_order(slashed(col))[0]
    month, day = ("b", "a") if order == DAY_FIRST else ("a", "b")
    dotted = pc.extract_regex(col, _DOTTED)
    text = pc.coalesce(
        _iso(parts, month, day, hour.cast(pa.string())),
        _iso(dotted, "m", "d", pc.struct_field(dotted, "H")),
        pc.if_else(pc.is_valid(epoch), pa.scalar(None, pa.string()), col),
    )
    return pc.coalesce(from_epoch, C.parse_utc(text)[0])


def _protect_quoted(value: str) -> str:
    """Hide the ``;`` inside double quotes (a quoted display-name fragment of an address)."""
    out, inside = [], False
    for ch in value:
        inside = inside != (ch == '"')
        out.append(_PROTECT if ch == ";" and inside else ch)
    return "".join(out)


def _lists(parents: np.ndarray, values: pa.Array, n: int) -> pa.ListArray:
    offsets = np.concatenate([[0], np.cumsum(np.bincount(parents, minlength=n))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def split_recipient_status(col: pa.Array) -> tuple[pa.ListArray, pa.ListArray]:
    """``addr##Receive, Deliver;addr##...`` to aligned lists of addresses and event chains.

    Entries split on ``;`` outside double quotes, each at its first ``##``.
    """
    n = len(col)
    col = pc.fill_null(col, "")
    quoted = np.flatnonzero(pc.match_substring(col, '"').to_numpy(zero_copy_only=False))
    if len(quoted):
        values = col.to_pylist()
        for i in quoted.tolist():
            values[i] = _protect_quoted(values[i])
        col = pa.array(values, pa.string())
    entries = pc.split_pattern(col, ";")
    parents = pc.list_parent_indices(entries).to_numpy()
    flat = pc.utf8_trim_whitespace(pc.replace_substring(entries.values, _PROTECT, ";"))
    keep = pc.not_equal(flat, "")
    flat, parents = pc.filter(flat, keep), parents[keep.to_numpy(zero_copy_only=False)]
    parts = pc.extract_regex(flat, r"^(?P<a>.*?)##(?P<s>.*)$")
    address = pc.if_else(pc.is_valid(parts), pc.struct_field(parts, "a"), flat)
    chain = C.null_if_empty(pc.utf8_trim_whitespace(pc.struct_field(parts, "s")))
    return (
        _lists(parents, pc.utf8_trim_whitespace(address), n),
        _lists(parents, chain, n),
    )


def last_events(chains: pa.Array) -> pa.Array:
    """The last event of each chain (``Receive, Deliver`` -> ``Deliver``), in the ``exo-status``
    table's spelling; null for an empty chain."""
    last = pc.struct_field(
        pc.extract_regex(pc.fill_null(chains, ""), r"(?:^|,)\s*(?P<e>[^,]*?)\s*$"), "e"
    )
    return C.null_if_empty(C.spelled(C.null_if_empty(last), "exo-status"))


def per_recipient(
    recipients: pa.ListArray, chains: pa.ListArray
) -> tuple[np.ndarray, pa.Array, pa.Array]:
    """One entry per recipient of each row (a row without one keeps one entry, null): the
    row each comes from, its address and its chain."""
    n = len(recipients)
    lengths = pc.fill_null(pc.list_value_length(recipients), 0).to_numpy(zero_copy_only=False)
    counts = np.maximum(lengths, 1)
    out_start = np.cumsum(counts) - counts
    parents = pc.list_parent_indices(recipients).to_numpy()
    first_value = np.cumsum(lengths) - lengths
    at = out_start[parents] + np.arange(len(parents)) - first_value[parents]
    index = np.full(int(counts.sum()), -1, dtype=np.int64)
    index[at] = np.arange(len(parents))
    take = pa.array(index, mask=index < 0)
    return (
        np.repeat(np.arange(n), counts),
        pc.take(pc.list_flatten(recipients), take),
        pc.take(pc.list_flatten(chains), take),
    )


def _text(cols: dict[str, pa.Array], name: str, n: int) -> pa.Array:
    col = cols.get(name)
    return (
        C.null_if_empty(pc.utf8_trim_whitespace(col))
        if col is not None
        else pa.nulls(n, pa.string())
    )


def _finish(
    out: dict, run: Run, rows: np.ndarray, ctx: Context, name: str, log_type: str, problems: list
) -> tuple[pa.Table, list[Bad], str]:
    n = len(rows)
    out.update(
        sender_domain=C.domain_of(out.get("sender_address", pa.nulls(n, pa.string()))),
        log_format=C.constant(name, n),
        log_type=C.constant(log_type, n),
        file=C.constant(ctx.path, n),
        line=pa.array(run.line_numbers[rows], pa.int64()),
    )
    table = build_table(out, TRACKING)
    problems = [(pc.is_null(out["date_time"]), "bad or missing time"), *problems]
    table, bad = split_bad(table, problems, run, rows)
    return table, bad, server_names(table)


def server_names(table: pa.Table) -> pa.Array:
    """Per row, the host of a local event (RECEIVE, DELIVER, SUBMIT), null on other rows (a
    file whose rows name none is the service's, ``SERVICE``)."""
    local = pc.is_in(
        pc.utf8_upper(table.column("event_id")), pa.array(["RECEIVE", "DELIVER", "SUBMIT"])
    )
    hosts = C.server_name(C.whole(table.column("server_hostname")))
    return pc.if_else(local, hosts, pa.scalar(None, pa.string()))


def summary(
    raw: pa.Table, run: Run, rows, ctx: Context, name: str, log_type: str, order: str | None = None
):
    """MTSummary rows: one a recipient of each line, with its own chain of events, whose last
    event is the row's (FORMATS.md I.1: each recipient has its own chain)."""
    n = raw.num_rows
    cols = {c: C.whole(raw.column(c)) for c in raw.column_names}
    recipients, chains = split_recipient_status(
        cols.get("recipient_status", pa.nulls(n, pa.string()))
    )
    of_row, address, chain = per_recipient(recipients, chains)
    cols = {c: pc.take(col, pa.array(of_row)) for c, col in cols.items()}
    n = len(of_row)
    out = {SUMMARY_COLUMNS[c]: _text(cols, c, n) for c in cols if c in SUMMARY_COLUMNS}
    event_id = last_events(chain)
    total_bytes, bad_bytes = C.parse_int(_text(cols, "total_bytes", n))
    direction = _text(cols, "directionality", n)
    priority = _text(cols, "delivery_priority", n)
    out.update(
        date_time=parse_time(_text(cols, "origin_timestamp_utc", n), order),
        recipient_address=one_item_lists(address),
        recipient_status=one_item_lists(chain),
        event_id=event_id,
        source=C.constant("EXO", n),
        outcome=C.outcomes(event_id, "exo-status"),
        total_bytes=total_bytes,
        message_id=C.with_brackets(_text(cols, "message_id", n)),
        directionality=pc.coalesce(
            pc.take(
                pa.array(list(DIRECTIONALITY.values())),
                pc.index_in(direction, pa.array(list(DIRECTIONALITY))),
            ),
            direction,
        ),
        custom_data=pc.binary_join_element_wise("S:DeliveryPriority=", priority, ""),
    )
    table, bad, servers = _finish(
        out, run, rows[of_row], ctx, name, log_type, [(bad_bytes, "bad total_bytes")]
    )
    # a line's recipients share its faults: the line is quarantined once
    return table, list({b.line: b for b in bad}.values()), servers


def trace(
    raw: pa.Table, run: Run, rows, ctx: Context, name: str, log_type: str, order: str | None = None
):
    """Get-MessageTrace(Detail) rows from a CSV export or API JSON: one recipient each."""
    n = raw.num_rows
    cols = {c: C.whole(raw.column(c)) for c in raw.column_names}
    is_detail = "event" in cols and "received" not in cols
    mapping = TRACE_DETAIL_COLUMNS if is_detail else TRACE_COLUMNS
    out: dict[str, pa.Array] = {}
    for c in cols:
        if c in mapping:  # two names of one column (MessageTraceId, Graph's id): either
            value, target = _text(cols, c, n), mapping[c]
            out[target] = pc.coalesce(out[target], value) if target in out else value
    # Graph writes the status in camelCase (delivered, filteredAsSpam): the table's spelling
    event_id = C.spelled(out.get("event_id", pa.nulls(n, pa.string())), "exo-status")
    out["event_id"] = event_id
    total_bytes, bad_bytes = C.parse_int(out.get("total_bytes", pa.nulls(n, pa.string())))
    out.update(
        date_time=parse_time(out.get("date_time", pa.nulls(n, pa.string())), order),
        recipient_address=one_item_lists(out.get("recipient_address", pa.nulls(n, pa.string()))),
        source=C.constant("EXO", n),
        outcome=C.outcomes(event_id, "exo-status"),
        total_bytes=total_bytes,
        message_id=C.with_brackets(out.get("message_id", pa.nulls(n, pa.string()))),
    )
    if is_detail:
        statuses = one_item_lists(out.get("recipient_status", pa.nulls(n, pa.string())))
        enhanced, reply = C.status_codes(statuses)
        data = pc.fill_null(out.get("custom_data", pa.nulls(n, pa.string())), "")
        host = pc.struct_field(pc.extract_regex(data, _SERVER_MEP), "h")
        out.update(
            recipient_status=statuses,
            enhanced_status=enhanced,
            smtp_reply=reply,
            server_hostname=C.null_if_empty(pc.fill_null(host, "")),
        )
    return _finish(out, run, rows, ctx, name, log_type, [(bad_bytes, "bad Size")])


def detail(raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context, name: str, log_type: str):
    """MTDetail rows: the on-premises fields, read by the 2007+ module's ``normalise``."""
    raw = raw.rename_columns(["date_time" if c == "date_time_utc" else c for c in raw.column_names])
    if "date_time" not in raw.column_names:
        raw = raw.append_column("date_time", pa.nulls(raw.num_rows, pa.string()))
    times = C.whole(raw.column("date_time"))
    missing = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(times), ""), True)
    bad = [
        Bad(int(run.line_numbers[rows[i]]), "bad or missing time", run.text(int(rows[i])))
        for i in np.flatnonzero(missing.to_numpy(zero_copy_only=False)).tolist()
    ]
    if bad:
        keep = pc.invert(missing)
        raw, rows = raw.filter(keep), rows[keep.to_numpy(zero_copy_only=False)]
    table, invalid = exchange_tracking.normalise(raw, run, rows, replace(ctx, log_type=log_type))
    table = table.set_column(
        table.schema.get_field_index("log_format"), "log_format", C.constant(name, table.num_rows)
    )
    return table, bad + invalid, server_names(table)
