"""IIS SMTP service logs (Windows 2000/2003 SMTP, Exchange 2000/2003 virtual servers).

FORMATS.md section D, in its three text formats:

- W3C extended (``ex*.log``): columns from ``#Fields`` (space-separated), ``-`` for empty,
  ``+`` for spaces; date and time are UTC. Without ``date``/``time`` fields the ``#Date``
  directive is the clock: with ``time`` only, the date comes from ``#Date`` (a day is added
  where the time of day runs backwards by more than 12 hours); with no time at all every row
  takes the ``#Date`` time and ``time_approximate`` is true. Header-less files need
  ``--format iis-smtp`` and the 21-field set of D.3.
- Microsoft IIS log format (``in*.log``): 15 comma+space separated fields, local time.
- NCSA common (``nc*.log``): ``host - user [dd/Mon/yyyy:hh:mm:ss +hhmm] "VERB -?args SMTP"
  status bytes``; the offset makes the time exact.

Local times (IIS log format) are read in ``--tz`` (the repeated hour of a clock change by the
file's order: ``columns.local_to_utc``); without it as UTC, marked in ``tz_assumed``.

One row per line. ``cs-username`` is the client's HELO name (``helo``) on inbound lines; the
server's own outbound sessions say ``OutboundConnectionCommand`` (its command) or
``OutboundConnectionResponse`` (the remote reply): these rows get ``direction`` send.
``event`` reads as in Exchange protocol logs: ``<`` received by this server (an inbound
client's command, a remote server's reply), ``>`` sent by it (its own outbound command).
``command`` is the verb (null on reply lines), ``data`` the arguments with ``+`` turned into
spaces (the leading ``+`` of inbound arguments dropped; a ``+`` inside ``<...>`` is kept),
``context`` the target field (``cs-uri-stem``) where one is logged. ``reply_code`` is the
status field; on reply lines it and ``enhanced_status`` are read from the reply text, and a
status of 0 (not an SMTP code) is null. ``message_id`` comes from an inbound DATA line's
arguments when they are a Message-ID (``<local@domain>``; a DATA argument without an ``@``,
such as ``0019E3517201287MAIL01``, is the server's queue ID and gives none), or from the next
server's ``250 2.6.0 <id>`` reply in an outbound session. ``s-port`` is the port configured
for the service: ``local_port`` on inbound lines, ``remote_port`` on outbound ones (the port
the server connects to; the local port of an outbound connection is not logged). IIS logs
have no session ID.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from loganalyzer.formats import columns as C
from loganalyzer.formats.base import Bad, ReadState, Run, read_csv_run, read_runs
from loganalyzer.formats.common import (
    LOCAL_ZONE,
    Batch,
    Context,
    Detected,
    data_lines,
    header_value,
    mostly,
)
from loganalyzer.formats.contract import Format, NotALog, Pending
from loganalyzer.formats.exchange_tracking import split_bad
from loganalyzer.schema import SMTP, build_table

NAME = "iis-smtp"
_SAMPLE = """\
#Software: Microsoft Internet Information Services 6.0
#Version: 1.0
#Date: 2006-10-09 05:00:15
#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method \
cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version
2006-10-09 05:00:15 192.0.2.7 mx.example.com SMTPSVC1 MAIL01 10.0.0.6 25 HELO - \
+mx.example.com 250 0 48 13 0 SMTP
2006-10-09 05:00:16 192.0.2.7 mx.example.com SMTPSVC1 MAIL01 10.0.0.6 25 MAIL - \
+FROM:+<a@example.com> 250 0 57 45 0 SMTP
2006-10-09 05:00:19 192.0.2.7 mx.example.com SMTPSVC1 MAIL01 10.0.0.6 25 DATA - \
+<4F5002F2.860022@example.com> 250 0 108 1399 1922 SMTP
"""

#: The field set of a header-less W3C file (FORMATS.md D.3), taken when a line has 21 fields.
W3C_21 = (
    "date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method cs-uri-stem "
    "cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version cs-host "
    "cs(User-Agent) cs(Cookie) cs(Referer)"
).split()
#: W3C field name to the name used below (the IIS log format and NCSA use the same names).
_W3C_NAMES = {
    "c-ip": "remote_ip",
    "c-port": "remote_port",
    "cs-username": "user",
    "s-sitename": "site",
    "s-computername": "computer",
    "s-ip": "local_ip",
    "s-port": "local_port",
    "cs-method": "method",
    "cs-uri-stem": "target",
    "cs-uri-query": "query",
    "sc-status": "status",
    "sc-win32-status": "win32",
    "sc-bytes": "sc_bytes",
    "cs-bytes": "cs_bytes",
    "time-taken": "time_taken",
}
_NUMBERS = {  # name, output column, type, field name for the quarantine reason
    "status": ("reply_code", pa.int32(), "status"),
    "win32": ("win32_status", pa.int64(), "win32 status"),
    "sc_bytes": ("bytes_sent", pa.int64(), "server bytes"),
    "cs_bytes": ("bytes_received", pa.int64(), "client bytes"),
    "time_taken": ("time_taken_ms", pa.int64(), "time taken"),
    "local_port": ("local_port", pa.int32(), "server port"),
    "remote_port": ("remote_port", pa.int32(), "client port"),
}
_IIS_NAMES = (
    "remote_ip user date time site computer local_ip time_taken cs_bytes sc_bytes status win32 "
    "method target query"
).split()
_IIS_LINE = "^" + "".join(rf"\s*(?P<{n}>[^,]*?)\s*," for n in _IIS_NAMES[:-1])
_IIS_LINE += r"\s*(?P<query>.*?)\s*,\s*$"  # the parameters may hold commas
_NCSA_LINE = (
    r"^(?P<remote_ip>\S+) \S+ (?P<user>\S+) \[(?P<when>[^\]]+)\] "
    r'"(?P<method>\S+) (?P<target>[^?\s]*)(?:\?(?P<query>.*?))? \S+" '
    r"(?P<status>-|-?[0-9]+) (?P<sc_bytes>-|-?[0-9]+)\s*$"
)
_NCSA_RE = re.compile(_NCSA_LINE)
_DATA_ID = r"(?P<id><[^<>\s@]+@[^<>\s]+>|^[^<>\s@]+@[^<>\s]+$)"
_SMTPSVC = re.compile(r"SMTPSVC\d*$")
_OUTBOUND = pa.array(["OutboundConnectionCommand", "OutboundConnectionResponse"])
_SMTP_VERBS = set(
    "HELO EHLO MAIL RCPT DATA BDAT QUIT RSET NOOP VRFY EXPN AUTH STARTTLS TURN ETRN XEXCH50 "
    "X-EXPS X-LINK2STATE XXXX -".split()
)
_HTTP_METHODS = set("GET POST HEAD PUT DELETE OPTIONS TRACE PROPFIND CONNECT PATCH".split())
_PROTECT = "\x1f"
_TS = SMTP.field("date_time").type
_SERVER = "__server__"  # a column no schema has, for a moment
#: The read state's line that keeps a local-time file's clock for reading on (no IIS
#: directive has this name).
_CLOCK = "local-clock"


def detect(head: bytes, name: str) -> Detected | None:
    """W3C by its IIS ``#Software`` and ``#Fields`` lines; the IIS log format and NCSA by the
    shape of most of their first lines. An IIS web (HTTP) log raises ``NotALog``."""
    software = (header_value(head, "software") or "").lower()
    fields = header_value(head, "fields")
    if "internet information services" in software and fields:
        if _is_http(head, fields.split()):
            raise NotALog("IIS web (HTTP) log: not a supported log kind")
        return Detected(NAME, log_type="w3c")
    lines = data_lines(head)
    if mostly(lines, _is_iis_line):
        return Detected(NAME, log_type="iis")
    if mostly(lines, _is_ncsa_line):
        return Detected(NAME, log_type="ncsa")
    return None


def detect_headerless(head: bytes, name: str) -> Detected | None:
    """With ``--format``: a header-less W3C file most of whose first lines have the 21 fields
    of D.3 (a damaged first line does not decide)."""
    if mostly(data_lines(head), _is_w3c_21_line):
        return Detected(NAME, log_type="w3c")
    return None


def _is_iis_line(text: str) -> bool:
    parts = text.split(",")
    return len(parts) >= 16 and not parts[-1].strip() and bool(_SMTPSVC.match(parts[4].strip()))


def _is_ncsa_line(text: str) -> bool:
    return ' SMTP" ' in text and bool(_NCSA_RE.match(text))


def _is_w3c_21_line(text: str) -> bool:
    return bool(re.match(r"\d{4}-\d\d-\d\d \d", text)) and len(text.split(" ")) == len(W3C_21)


def _is_http(head: bytes, fields: list[str]) -> bool:
    """Whether the data lines of a W3C head show a web log: W3SVC site, HTTP/ version or
    method, and nothing of SMTP."""
    pos = {f.lower(): i for i, f in enumerate(fields)}
    http = smtp = False
    for raw in head.split(b"\n")[:200]:
        values = raw.rstrip(b"\r").decode("utf-8", "replace").split(" ")
        if values[0].startswith("#") or len(values) != len(fields):
            continue

        def value(field: str, values: list[str] = values) -> str:
            return values[pos[field]].upper() if field in pos else ""

        site, version, method = value("s-sitename"), value("cs-version"), value("cs-method")
        smtp |= site.startswith("SMTPSVC") or version == "SMTP" or method in _SMTP_VERBS
        http |= site.startswith("W3SVC") or version.startswith("HTTP/") or method in _HTTP_METHODS
    return http and not smtp


def read(fh, state: ReadState, ctx: Context) -> Iterator[Batch | Pending]:
    """Runs keyed by their kind (w3c, iis, ncsa) and W3C field names, or batches of lines
    that cannot be parsed."""
    ctx.clock = C.LocalClock.read(state.directives().get(_CLOCK))
    local = False
    for run, bad in read_runs(fh, state, final=ctx.final, check_quotes=False):
        if run is None or len(run.candidates) == 0:
            if bad:
                yield Batch(None, bad)
            continue
        kind = "w3c" if "fields" in run.directives else ctx.log_type or "w3c"
        local |= kind == "iis"
        if kind not in ("iis", "ncsa"):
            names = _w3c_names(run, ctx)
            if names is None:
                reason = "data line before any #Fields header"
                lines = [Bad(int(run.line_numbers[i]), reason, run.text(i)) for i in run.candidates]
                yield Batch(None, bad + lines)
                continue
            yield Pending(run, ("w3c", tuple(names)), bad)
        else:
            yield Pending(run, (kind, None), bad)
    said = {}
    if ctx.clock.latest is not None:  # (the last run is parsed): what reading on needs
        said[_CLOCK] = ctx.clock.text()
    if local:  # the zone its local times were read in (none: as UTC), for ingest's warnings
        said[LOCAL_ZONE] = ctx.tz or ""
    if said:
        kept = [ln for ln in state.header.splitlines() if ln[1:].split(":")[0] not in said]
        state.header = "\n".join([*kept, *(f"#{k}: {v}" for k, v in said.items())])


def parse_run(run: Run, key: tuple[str, tuple[str, ...] | None], ctx: Context) -> Batch:
    """The rows of one run; ``key`` is its kind and W3C field names (``read``)."""
    kind, names = key
    if kind == "iis":
        cols, rows, wrong = _match_lines(run, _IIS_LINE, "a Microsoft IIS log format line")
        clock = _iis_times(cols, ctx)
    elif kind == "ncsa":
        cols, rows, wrong = _match_lines(run, _NCSA_LINE, "an NCSA common log line")
        clock = _ncsa_times(cols)
    else:
        raw, rows, wrong = read_csv_run(run, list(names), delimiter=" ", quote_char=False)
        cols = {_W3C_NAMES.get(k.lower(), k.lower()): _dash_null(raw.column(k)) for k in names}
        clock = _w3c_times(cols, run, raw.num_rows)
    table, invalid, servers = _normalise(cols, clock, run, rows, ctx)
    assumed = clock[3] is not None and len(rows) > 0
    return Batch(table, wrong + invalid, servers, tz_assumed=assumed)


def _w3c_names(run: Run, ctx: Context) -> list[str] | None:
    fields = run.directives.get("fields")
    if fields:
        return fields.split()
    return W3C_21 if ctx.forced else None


def _dash_null(col) -> pa.Array:
    col = C.whole(col)
    return pc.if_else(pc.equal(col, "-"), pa.scalar(None, pa.string()), col)


def _lines(run: Run) -> pa.Array:
    """The run's non-blank lines as one string column, without copying the text."""
    offsets = np.append(run.starts, len(run.data)).astype(np.int64)
    every = pa.Array.from_buffers(
        pa.large_string(), len(run.starts), [None, pa.py_buffer(offsets), pa.py_buffer(run.data)]
    )
    return pc.utf8_rtrim(pc.take(every, pa.array(run.candidates)), characters="\r\n")


def _match_lines(run: Run, pattern: str, what: str) -> tuple[dict, np.ndarray, list[Bad]]:
    """Named groups of ``pattern`` in every line; lines that do not match are quarantined."""
    found = pc.extract_regex(_lines(run), pattern)
    ok = pc.is_valid(found).to_numpy(zero_copy_only=False)
    wrong = [
        Bad(int(run.line_numbers[i]), f"not {what}", run.text(i))
        for i in run.candidates[~ok].tolist()
    ]
    found = found.filter(pa.array(ok))
    cols = {
        found.type.field(i).name: _dash_null(
            C.null_if_empty(pc.struct_field(found, [i]).cast(pa.string()))
        )
        for i in range(found.type.num_fields)
    }
    return cols, run.candidates[ok], wrong


#: (UTC times, time_approximate or None, [(mask, quarantine reason)], tz_assumed or None)
Clock = tuple[pa.Array, pa.Array | None, list, str | None]


def _iis_times(cols: dict, ctx: Context) -> Clock:
    """Local m/d/yy h:m:s to UTC: in ``ctx.tz``, else read as UTC (and marked so)."""
    text = pc.binary_join_element_wise(cols["date"], cols["time"], " ")
    four = pc.fill_null(pc.match_substring_regex(cols["date"], r"/[0-9]{4}$"), False)
    fmt = "%m/%d/{} %H:%M:%S"
    local = pc.if_else(
        four,
        pc.strptime(text, format=fmt.format("%Y"), unit="ms", error_is_null=True),
        pc.strptime(text, format=fmt.format("%y"), unit="ms", error_is_null=True),
    )
    bad = pc.and_(pc.is_null(local), pc.is_valid(text))
    if ctx.tz:  # FORMATS.md D.2: the IIS log format writes local time
        when = C.local_to_utc(local, ctx.tz, ctx.clock)
        return when.cast(_TS), None, [(bad, "bad date/time")], None
    return local.cast(_TS), None, [(bad, "bad date/time")], "UTC"


def _ncsa_times(cols: dict) -> Clock:
    text = cols["when"]
    when = pc.strptime(text, format="%d/%b/%Y:%H:%M:%S %z", unit="ms", error_is_null=True)
    bad = pc.and_(pc.is_null(when), pc.is_valid(text))
    return when.cast(_TS), None, [(bad, "bad date/time")], None


def _w3c_times(cols: dict, run: Run, n: int) -> Clock:
    """UTC times from ``date``/``time``, or from the ``#Date`` directive where they are missing."""
    date, time = cols.get("date"), cols.get("time")
    if date is not None and time is not None:
        when, bad = C.parse_utc(pc.binary_join_element_wise(date, time, "T"))
        return when, None, [(bad, "bad date/time")], None
    start = C.parse_utc(pa.array([run.directives.get("date")], pa.string()))[0][0]
    if not start.is_valid:
        none = pa.array(np.ones(n, dtype=bool))
        return pa.nulls(n, _TS), None, [(none, "no date/time field and no #Date directive")], None
    if time is None:
        return pa.array(np.full(n, start.value), _TS), pa.array(np.ones(n, bool)), [], None
    day = start.as_py().date().isoformat()
    when, bad = C.parse_utc(pc.binary_join_element_wise(day, time, "T"))
    valid = pc.is_valid(when).to_numpy(zero_copy_only=False)
    ms = pc.fill_null(when.cast(pa.int64()), 0).to_numpy()
    last = np.maximum.accumulate(np.where(valid, np.arange(n), -1))
    seen = np.where(last >= 0, ms[np.maximum(last, 0)], start.value)
    days = np.cumsum(np.diff(np.concatenate(([start.value], seen))) < -12 * 3600 * 1000)
    when = pa.array(ms + days * 86_400_000, _TS, mask=~valid)
    return when, None, [(bad, "bad date/time")], None


def decode_plus(col: pa.Array) -> pa.Array:
    """IIS argument text: one leading ``+`` dropped, other ``+`` to spaces except inside ``<>``."""
    text = pc.replace_substring_regex(col, r"^\+", "")
    inside = r"(<[^<>+]*)\+([^<>]*>)"
    for _ in range(64):  # one + per <...> per pass; addresses hold few
        if not pc.any(pc.match_substring_regex(text, inside)).as_py():
            break
        text = pc.replace_substring_regex(text, inside, rf"\1{_PROTECT}\2")
    text = pc.replace_substring(pc.replace_substring(text, "+", " "), _PROTECT, "+")
    return C.null_if_empty(text)


def _normalise(cols: dict, clock: Clock, run: Run, rows: np.ndarray, ctx: Context):
    """The columns of the three formats to the smtp schema; bad rows to the quarantine."""
    when, approx, problems, tz_assumed = clock
    n = len(rows)
    missing = pa.nulls(n, pa.string())
    none = pa.scalar(None, pa.string())
    user = cols.get("user", missing)
    outbound = pc.fill_null(pc.is_in(user, _OUTBOUND), False)
    response = pc.fill_null(pc.equal(user, "OutboundConnectionResponse"), False)
    method = pc.utf8_trim_whitespace(cols.get("method", missing))
    verb = pc.list_element(pc.split_pattern(method, " ", max_splits=1), 0)
    data = decode_plus(cols.get("query", missing))
    out = {
        "date_time": when,
        "time_approximate": approx if approx is not None else pa.array(np.zeros(n, bool)),
        "tz_assumed": C.constant(tz_assumed, n) if tz_assumed else missing,
        "log_format": C.constant(NAME, n),
        "direction": pc.if_else(outbound, "send", "receive"),
        "connector_id": cols.get("site", missing),
        "remote_ip": cols.get("remote_ip", missing),
        "local_ip": cols.get("local_ip", missing),
        "event": pc.if_else(pc.and_(outbound, pc.invert(response)), ">", "<"),
        "command": pc.if_else(response, none, verb),
        "data": data,
        "context": cols.get("target", missing),
        "helo": pc.if_else(outbound, none, user),
        "file": C.constant(ctx.path, n),
        "line": pa.array(run.line_numbers[rows], pa.int64()),
    }
    problems = list(problems)
    for name, (column, type_, label) in _NUMBERS.items():
        if name in cols:
            out[column], bad = C.parse_int(cols[name], type_)
            problems.append((bad, f"bad {label}"))
    problems.append((pc.is_null(when), "no date/time"))
    if "local_port" in out:
        # s-port is "the server port number that is configured for the service" (IIS 6 W3C
        # fields); on the server's own outbound lines (s-ip "-", c-ip the remote server) that
        # is the port it connects to (the SMTP service's RemoteSmtpPort, 25): the remote one
        local, remote = out["local_port"], out.get("remote_port", pa.nulls(n, pa.int32()))
        out["remote_port"] = pc.if_else(outbound, pc.coalesce(remote, local), remote)
        out["local_port"] = pc.if_else(outbound, pa.scalar(None, pa.int32()), local)
    code, enhanced = C.reply_parts(pc.if_else(response, data, none))
    status = out.get("reply_code", pa.nulls(n, pa.int32()))
    status = pc.if_else(pc.equal(status, 0), pa.scalar(None, pa.int32()), status)
    out["reply_code"] = pc.if_else(response, pc.coalesce(code, status), status)
    out["enhanced_status"] = pc.if_else(response, enhanced, none)
    # The Message-ID: on an inbound DATA line, or in the next server's "250 2.6.0 <id>" reply
    # to an outbound session (an outbound DATA line carries the relay's own internal ID).
    is_data = pc.fill_null(
        pc.and_(pc.equal(pc.utf8_upper(verb), "DATA"), pc.invert(outbound)), False
    )
    # a Message-ID has an @; a DATA argument without one is the server's queue ID
    ids = pc.extract_regex(pc.if_else(is_data, data, ""), _DATA_ID)
    ids = C.with_brackets(pc.fill_null(pc.struct_field(ids, [0]), ""))
    queued = pc.extract_regex(
        pc.fill_null(pc.if_else(response, data, ""), ""), r"^250[ -]+2\.6\.0\s+(?P<id><[^<>\s]+>)"
    )
    queued = C.null_if_empty(pc.fill_null(pc.struct_field(queued, [0]), ""))
    out["message_id"] = pc.if_else(is_data, ids, queued)
    table = build_table(out, SMTP)
    if "computer" not in cols:
        return (*split_bad(table, problems, run, rows), None)
    # the server each row names goes through the same filter as the row
    table = table.append_column(_SERVER, C.server_name(cols["computer"]))
    table, invalid = split_bad(table, problems, run, rows)
    servers = C.whole(table.column(_SERVER))
    return table.drop_columns([_SERVER]), invalid, servers


FORMAT = Format(
    name=NAME,
    table="smtp",
    description="IIS SMTP service logs: W3C extended, Microsoft IIS log format, NCSA common",
    file_names="SMTPSVC*\\ex*.log, in*.log, nc*.log",
    sample=_SAMPLE,
    detect=detect,
    detect_headerless=detect_headerless,
    read=read,
    parse_run=parse_run,
    field_sets={len(W3C_21): tuple(W3C_21)},
)
