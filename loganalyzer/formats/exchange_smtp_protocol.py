"""Exchange 2007-2019 SMTP Receive and Send protocol logs (``RECV*.LOG``, ``SEND*.LOG``).

FORMATS.md section C. One row per log line, columns from ``#Fields``. Derived columns:

- ``direction``: from ``#Log-type``; in a header-less file (``--format``) from the file name
  (RECV, Recive, Receive, SEND) or the nearest SmtpReceive / SmtpSend folder, else null.
- ``local_ip``/``local_port``, ``remote_ip``/``remote_port``: the endpoints split at the last
  colon (``a.b.c.d:port``, ``[v6]:port``, ``v6:port``); an empty endpoint gives nulls.
- ``command``: the upper-cased verb of the command lines: ``<`` in RECV logs, ``>`` in SEND logs
  (with an unknown direction: ``<``/``>`` lines that do not start with a reply code).
- ``reply_code``, ``enhanced_status``: from the reply lines (the other of ``<``/``>``); each
  ``250-`` line of an Exchange 2010 multi-line reply is its own row and gets its code.
- ``message_id``: the ``<id>`` of a ``250 2.6.0 <id> [InternalId=...] Queued mail for delivery``
  reply, or of the ``sending message with RecordId N and InternetMessageId <id>`` information
  line that Exchange 2013 and later write in a Send log before each message (the remote
  server's reply rarely names it): the key that joins an outbound session to the trace.
- ``username``: ``User Name: x`` information lines and ``x,authenticated`` lines.

``server`` hint: the host part of receive connector ids (``SRV\\Connector``); send connector ids
are bare names, so send logs fall back to the folder name.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import PurePath

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
from loganalyzer.formats.exchange_tracking import field_count, split_bad
from loganalyzer.schema import SMTP, build_table

NAME = "exchange-smtp-protocol"
_SAMPLE = """\
#Software: Microsoft Exchange Server
#Version: 15.0.0.0
#Log-type: SMTP Receive Protocol Log
#Date: 2020-04-02T07:00:14.501Z
#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,\
event,data,context
2020-04-02T07:57:37.405Z,EX01\\Default EX01,08D7D4D2EFBC4CC6,0,10.0.0.6:25,192.0.2.7:50767,+,,
2020-04-02T07:57:37.426Z,EX01\\Default EX01,08D7D4D2EFBC4CC6,1,10.0.0.6:25,192.0.2.7:50767,<,\
EHLO mx.example.com,
2020-04-02T07:57:37.426Z,EX01\\Default EX01,08D7D4D2EFBC4CC6,2,10.0.0.6:25,192.0.2.7:50767,>,\
250 2.6.0 <a1@example.com> [InternalId=7301444403] Queued mail for delivery,
"""

#: The #Fields line of every known version (FORMATS.md C.2); header-less files are read so.
FIELDS = [
    "date-time",
    "connector-id",
    "session-id",
    "sequence-number",
    "local-endpoint",
    "remote-endpoint",
    "event",
    "data",
    "context",
]

#: #Fields names that only a protocol log has.
_OWN_FIELDS = {"date-time", "session-id", "sequence-number", "local-endpoint", "remote-endpoint"}
_KINDS = {"smtp receive protocol log": "receive", "smtp send protocol log": "send"}
_RECEIVE = re.compile(r"recv|recive|receive", re.IGNORECASE)
_SEND = re.compile(r"send", re.IGNORECASE)
_FOLDER = re.compile(r"^smtp(?:(?P<receive>receive|recive)|(?P<send>send))$", re.IGNORECASE)
_ENDPOINT = r"^\[?(?P<ip>[^\[\]]*?)\]?:(?P<port>[0-9]{1,5})$"
_VERB = r"^\s*(?P<verb>[A-Za-z][A-Za-z0-9_-]*)(?:\s|$)"
_QUEUED_ID = r"^250[ -]+2\.6\.0\s+(?P<id><[^<>\s]*>)"
_USER_NAME = r"^\s*User Name:\s*(?P<user>\S.*?)\s*$"
_SENDING = r"^\s*sending message with RecordId \d+ and InternetMessageId (?P<id><[^<>\s]+>)"


def detect(head: bytes, name: str) -> Detected | None:
    """A protocol log has the Exchange #Software line and an SMTP ... Protocol Log #Log-type,
    or (its other header lines lost) a #Fields line that names the protocol-log fields."""
    software = header_value(head, "software") or ""
    log_type = (header_value(head, "log-type") or "").strip().lower()
    kind = _KINDS.get(log_type)
    if "exchange" in software.lower() and kind:
        return Detected(NAME, log_type=kind)
    fields = {f.strip().lower() for f in (header_value(head, "fields") or "").split(",")}
    if (kind or not log_type) and fields >= _OWN_FIELDS:
        return Detected(NAME, log_type=kind or direction_of_path(name))
    return None


def detect_headerless(head: bytes, name: str) -> Detected | None:
    """With ``--format``: a header-less file most of whose first lines start with a date and
    have the 9 protocol-log fields (a damaged first line does not decide)."""
    if mostly(data_lines(head), _looks_like_a_line):
        return Detected(NAME, log_type=direction_of_path(name))
    return None


def _looks_like_a_line(text: str) -> bool:
    return bool(re.match(r"\d{4}-\d\d-\d\dT", text)) and field_count(text) == len(FIELDS)


def direction_of_path(path: str) -> str | None:
    """receive or send from a file name (RECV..., SmtpSend.log) or its SmtpReceive/SmtpSend
    folder; None when neither says."""
    p = PurePath(path)
    receive, send = bool(_RECEIVE.search(p.name)), bool(_SEND.search(p.name))
    if receive != send:
        return "receive" if receive else "send"
    for parent in p.parents:
        m = _FOLDER.match(parent.name)
        if m:
            return "receive" if m["receive"] else "send"
    return None


def _direction(run: Run, ctx: Context) -> str | None:
    kind = _KINDS.get(run.directives.get("log-type", "").strip().lower())
    return kind or ctx.log_type or direction_of_path(ctx.path)


def _field_names(run: Run, ctx: Context) -> list[str] | None:
    fields = run.directives.get("fields")
    if fields:
        return [f.strip().lower() for f in fields.split(",")]
    return FIELDS if ctx.forced else None


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs keyed by what their parse depends on (their fields and direction), or batches of
    lines that cannot be parsed."""
    return keyed_runs(fh, state, ctx, _key)


def _key(run: Run, ctx: Context) -> tuple | None:
    names = _field_names(run, ctx)
    return None if names is None else (tuple(names), _direction(run, ctx))


def parse_run(run: Run, key: tuple, ctx: Context) -> Batch:
    """The rows of one run; ``key`` is its fields and direction (``read``)."""
    names, direction = key
    raw, rows, wrong = read_csv_run(run, list(names))
    table, invalid = normalise(raw, run, rows, ctx, direction)
    return Batch(table, wrong + invalid, server_names(table, direction))


def server_names(table: pa.Table, direction: str | None = None) -> pa.Array:
    """Per row, the server its connector names (``EX01\\Default Frontend EX01``), null when
    none or on a send row: a send connector names no server of its own. ``direction``: that
    of every row, when the caller knows it (a run's), so that no row is compared."""

    def servers(ids: pa.Array) -> pa.Array:
        named = pc.match_substring(ids, "\\")
        return C.server_name(pc.if_else(named, ids, pa.scalar(None, pa.string())))

    if direction == "send":
        return pa.nulls(table.num_rows, pa.string())
    names = C.per_distinct(servers, table.column("connector_id"))
    if direction is not None:
        return names
    received = pc.not_equal(pc.fill_null(table.column("direction"), ""), "send")
    return pc.if_else(received, names, pa.scalar(None, pa.string()))


def split_endpoint(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """IP and port (int32) of ``ip:port`` text; an endpoint without a port keeps its IP."""
    text = pc.utf8_trim_whitespace(pc.fill_null(col, ""))
    v6 = pc.greater(pc.count_substring(text, ":"), 1)
    # IPv4 (nearly all rows) by a plain split, IPv6 by a regex on its rows only
    halves = pc.split_pattern(pc.binary_join_element_wise(text, ":", ""), ":", max_splits=1)
    port = pc.utf8_rtrim(pc.list_element(halves, 1), characters=":")
    found = pc.extract_regex(pc.if_else(v6, text, ""), _ENDPOINT)
    ip = pc.if_else(
        v6,
        pc.if_else(pc.is_valid(found), pc.struct_field(found, [0]), text),
        pc.list_element(halves, 0),
    )
    port = pc.if_else(v6, pc.fill_null(pc.struct_field(found, [1]), ""), port)
    port = pc.if_else(pc.match_substring_regex(port, r"^[0-9]{1,5}$"), port, "")
    return C.null_if_empty(ip), C.null_if_empty(port).cast(pa.int32())


def _group(col: pa.Array, pattern: str) -> pa.Array:
    """First group of ``pattern`` in each value; null where it does not match."""
    found = pc.extract_regex(pc.fill_null(col, ""), pattern)
    return C.null_if_empty(pc.fill_null(pc.struct_field(found, [0]), ""))


def _reply_parts(text: pa.Array) -> tuple[pa.Array, pa.Array, pa.Array]:
    """Reply code, enhanced status and queued Message-ID of reply text (null where none)."""
    return (*C.reply_parts(text), _group(text, _QUEUED_ID))


def _info_parts(context: pa.Array, data: pa.Array) -> tuple[pa.Array, pa.Array]:
    """User name and sent Message-ID of information lines, each field's distinct texts read
    by both regexes (one filter and one encoding of each field).

    User name: ``User Name: x`` in either field, or ``x`` of ``x,authenticated``. Sent ID: the
    InternetMessageId of ``sending message with RecordId N and InternetMessageId <id>`` (in
    the context field; the data field read too)."""

    def parts(text: pa.Array) -> tuple[pa.Array, pa.Array]:
        return _group(text, _USER_NAME), _group(text, _SENDING)

    (user_context, sent_context), (user_data, sent_data) = (
        C.per_distinct(parts, c) for c in (context, data)
    )
    authenticated = pc.if_else(pc.equal(context, "authenticated"), data, None)
    return (
        pc.coalesce(user_context, user_data, authenticated),
        pc.coalesce(sent_context, sent_data),
    )


def _command(is_command: pa.Array, data: pa.Array) -> pa.Array:
    """The upper-cased verb of command lines: the verb regex on each distinct first word
    (commands repeat a handful of verbs), which gives what it gives on the whole line."""
    is_command = pc.fill_null(is_command, False)
    lines = pc.filter(data, is_command)
    text = pc.utf8_ltrim(pc.fill_null(lines, ""), characters=" \t\n\f\r")  # RE2's \s
    words = pc.list_element(pc.split_pattern(text, " ", max_splits=1), 0)
    verbs = C.per_distinct(lambda w: pc.utf8_upper(_group(w, _VERB)), words)
    return pc.replace_with_mask(pa.nulls(len(data), pa.string()), is_command, verbs)


def normalise(
    raw: pa.Table, run: Run, rows: np.ndarray, ctx: Context, direction: str | None
) -> tuple[pa.Table, list[Bad]]:
    """String columns named by #Fields to the smtp schema; bad rows to the quarantine."""
    n = raw.num_rows
    cols = {c.replace("-", "_"): C.whole(raw.column(c)) for c in raw.column_names}
    missing = pa.nulls(n, pa.string())
    date_time, bad_time = C.parse_utc(cols.get("date_time", missing))
    sequence, bad_sequence = C.parse_int(cols.get("sequence_number", missing))
    # endpoints repeat (one per session, a handful of local ones): split each distinct once
    local_ip, local_port = C.per_distinct(split_endpoint, cols.get("local_endpoint", missing))
    remote_ip, remote_port = C.per_distinct(split_endpoint, cols.get("remote_endpoint", missing))
    event = pc.utf8_trim_whitespace(cols.get("event", missing))
    data, context = cols.get("data", missing), cols.get("context", missing)
    connector = cols.get("connector_id", missing)

    # each regex runs once per distinct text of the lines it concerns: replies and
    # information lines repeat, a few verbs start every command
    if direction:
        ours, theirs = ("<", ">") if direction == "receive" else (">", "<")
        is_command, is_reply = pc.equal(event, ours), pc.equal(event, theirs)
        code, enhanced, queued = C.per_distinct_where(is_reply, _reply_parts, data)
    else:  # tell commands from replies by their text (a reply has a code)
        talk = pc.is_in(event, pa.array(["<", ">"]))
        code, enhanced, queued = C.per_distinct_where(talk, _reply_parts, data)
        is_command = pc.and_(talk, pc.is_null(code))
    info = pc.equal(event, "*")
    username, sent = C.only_where(info, _info_parts, context, data)
    out = {
        "date_time": date_time,
        "time_approximate": pa.array(np.zeros(n, dtype=bool)),
        "log_format": C.constant(NAME, n),
        "direction": C.constant(direction, n) if direction else pa.nulls(n, pa.string()),
        "connector_id": connector,
        "session_id": cols.get("session_id", missing),
        "sequence_number": sequence,
        "local_ip": local_ip,
        "local_port": local_port,
        "remote_ip": remote_ip,
        "remote_port": remote_port,
        "event": C.null_if_empty(event),
        "command": _command(is_command, data),
        "data": data,
        "context": context,
        "reply_code": code,
        "enhanced_status": enhanced,
        "username": username,
        "message_id": pc.coalesce(queued, sent),
        "file": C.constant(ctx.path, n),
        "line": pa.array(run.line_numbers[rows], pa.int64()),
    }
    table = build_table(out, SMTP)
    problems = [
        (bad_time, "bad date-time"),
        (pc.is_null(date_time), "no date-time"),
        (bad_sequence, "bad sequence-number"),
    ]
    return split_bad(table, problems, run, rows)


FORMAT = Format(
    name=NAME,
    table="smtp",
    description="Exchange 2007-2019 SMTP Receive/Send protocol logs (CSV, columns from #Fields)",
    file_names="RECV*.LOG, SEND*.LOG (ProtocolLog\\SmtpReceive, ProtocolLog\\SmtpSend)",
    sample=_SAMPLE,
    detect=detect,
    detect_headerless=detect_headerless,
    read=read,
    parse_run=parse_run,
    field_sets={len(FIELDS): tuple(FIELDS)},
    joins_files=True,
)
