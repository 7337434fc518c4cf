"""The store's tables, defined once: every column with its type, a description and how it is
stored and read (its flags).

A table is a list of ``(name, type, description[, flags])``: add the list and its name to
``_FIELDS``. ``date`` is never a data column: it is the hive partition key of the log tables.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: Bumped when a column changes meaning or type; stored in the manifest of every file.
SCHEMA_VERSION = 1

# Column types by their SQL (DuckDB) names; the Arrow schemas below are built from them on
# first use, so that reading the store (a trace) need not import pyarrow: 0.25 s of a command.
TS, STR, LIST = "TIMESTAMPTZ", "VARCHAR", "VARCHAR[]"
I32, I64, BOOL, BLOB = "INTEGER", "BIGINT", "BOOLEAN", "BLOB"


class Flag(enum.Flag):
    """How a column is stored in Parquet parts and read into pandas."""

    NONE = 0
    #: Dictionary-encoded: few distinct values, or values that repeat (a session's ID on each
    #: of its lines). Encoding every column tries and drops it on IDs, subjects, times and
    #: line numbers: measured on synth parts, encoding only these makes tracking parts 5%
    #: smaller and 15% faster to write, SMTP parts 20% smaller and 20% faster. Parquet
    #: encodes no boolean so, and the writer takes a list column's name for none of its own
    #: (its values are ``name.list.element``): neither is flagged.
    DICTIONARY = enum.auto()
    #: Min/max statistics: what queries filter on. Statistics of every text column cost a
    #: quarter of the write time and prune nothing (a file's remote IPs span the range).
    STATISTICS = enum.auto()
    #: A Bloom filter per row group: a trace looks the column up by equality, and readers
    #: (DuckDB) skip the row groups that do not hold the value.
    BLOOM = enum.auto()
    #: A pandas category in DataFrames (few distinct values).
    CATEGORY = enum.auto()


DICT, STATS, BLOOM, CAT = Flag.DICTIONARY, Flag.STATISTICS, Flag.BLOOM, Flag.CATEGORY

_TRACKING = [
    ("date_time", TS, "Event time, UTC", STATS),
    (
        "server",
        STR,
        "Server whose log holds the row (--server, read from the file, or its folder)",
        DICT | STATS | CAT,
    ),
    ("log_format", STR, "Format module that parsed the row (exchange-tracking, ...)", DICT | CAT),
    (
        "log_type",
        STR,
        "Log series: MSGTRK, MSGTRKMD, MSGTRKMS, MSGTRKMA, EX2003, EXO-SUMMARY...",
        DICT | CAT,
    ),
    (
        "event_id",
        STR,
        "Tracking event: DELIVER, SEND, RECEIVE, ... or an Exchange 2003 number",
        DICT | STATS | CAT,
    ),
    (
        "source",
        STR,
        "Transport component that logged the event (SMTP, STOREDRIVER, ...)",
        DICT | CAT,
    ),
    (
        "outcome",
        STR,
        "What the event means for the message, from eventcodes (fixed vocabulary)",
        DICT | CAT,
    ),
    ("message_id", STR, "Message-ID header, with angle brackets", STATS | BLOOM),
    ("internal_message_id", STR, "Per-server message number; unique only with its server", STATS),
    (
        "network_message_id",
        STR,
        "ID shared by all copies of a message (Exchange 2013+)",
        STATS | BLOOM,
    ),
    ("sender_address", STR, "Sender (Sender: or From: header)", DICT | STATS),
    ("sender_domain", STR, "Domain of sender_address, lower case (derived)", DICT),
    ("return_path", STR, "Envelope MAIL FROM address; <> for bounces", DICT),
    ("recipient_address", LIST, "Recipients, one list item each"),
    ("recipient_status", LIST, "Status per recipient, aligned with recipient_address"),
    ("enhanced_status", LIST, "Enhanced status code (5.1.1) in each recipient status (derived)"),
    ("smtp_reply", LIST, "SMTP reply code (550) in each recipient status (derived)"),
    ("recipient_count", I32, "Number of recipients as logged"),
    ("related_recipient_address", STR, "Related address of EXPAND, REDIRECT and RESOLVE events"),
    ("reference", STR, "Event-specific link: a DSN's Message-ID, a forked-from internal ID, ..."),
    ("message_subject", STR, "Subject header, as logged"),
    ("total_bytes", I64, "Message size in bytes"),
    ("client_ip", STR, "IP of the submitting client or server", DICT),
    ("client_hostname", STR, "Host name of the submitting client or server", DICT),
    ("server_ip", STR, "IP of the source or destination server", DICT),
    ("server_hostname", STR, "Host name of the destination server", DICT),
    ("original_client_ip", STR, "IP of the original client (2010+)", DICT),
    ("original_server_ip", STR, "IP of the original server (2010+)", DICT),
    (
        "source_context",
        STR,
        "Extra context for source: SMTP session ID, store details, agent",
        DICT,
    ),
    ("connector_id", STR, "Send or Receive connector name", DICT | CAT),
    ("message_info", STR, "Origination time, latency breakdown or authentication codes"),
    ("directionality", STR, "Incoming, Originating or Undefined (2010+)", DICT | CAT),
    ("tenant_id", STR, "Tenant ID (Exchange Online)", DICT),
    ("custom_data", STR, "Event-specific S:key=value items"),
    ("transport_traffic_type", STR, "Email, or blank (2016+)", DICT),
    ("log_id", STR, "Unique row ID (2016+)"),
    ("schema_version", STR, "Exchange build that wrote the row (2016+)", DICT),
    ("partner_name", STR, "Exchange 2003: service the message was handed to (SMTP, MAPI, ...)"),
    ("priority", STR, "Exchange 2003: -1 low, 0 normal, 1 high"),
    ("recipient_report_status", STR, "Exchange 2003: 0 delivered, 1 not delivered (reports only)"),
    ("origination_time", STR, "Exchange 2003: origination time as logged"),
    ("encryption", STR, "Exchange 2003: encryption flag of the primary body part"),
    ("service_version", STR, "Exchange 2003: version of the logging service"),
    ("linked_msgid", STR, "Exchange 2003: related message ID"),
    ("file", STR, "Path the row was read from", DICT),
    ("line", I64, "1-based physical line number in the file", STATS),
]

_SMTP = [
    ("date_time", TS, "Event time, UTC", STATS),
    ("time_approximate", BOOL, "Time taken from the #Date directive: the log has no time"),
    ("tz_assumed", STR, "Zone assumed for a local-time log when --tz was not given", DICT),
    ("server", STR, "Server whose log holds the row", DICT | STATS | CAT),
    (
        "log_format",
        STR,
        "Format module that parsed the row (exchange-smtp-protocol, iis-smtp)",
        DICT | CAT,
    ),
    (
        "direction",
        STR,
        "receive (sessions to this server) or send (sessions it opened)",
        DICT | CAT,
    ),
    ("connector_id", STR, "Connector name, or the IIS site (SMTPSVC1)", DICT | CAT),
    (
        "session_id",
        STR,
        "SMTP session ID, shared by every line of one session",
        DICT | STATS | BLOOM,
    ),
    ("sequence_number", I64, "Line number within the session"),
    ("local_ip", STR, "This server's IP", DICT),
    ("local_port", I32, "This server's port", DICT),
    ("remote_ip", STR, "The peer's IP", DICT),
    ("remote_port", I32, "The peer's port"),
    ("event", STR, "+ connect, - disconnect, > sent, < received, * information", DICT | CAT),
    (
        "command",
        STR,
        "SMTP command on the line: EHLO, MAIL, RCPT, DATA, AUTH, STARTTLS, ...",
        DICT | CAT,
    ),
    # replies and information lines repeat: as a dictionary, SMTP parts are 7% smaller
    ("data", STR, "Text of the command, reply or information", DICT),
    ("context", STR, "Extra context (TLS details, permissions, socket errors)", DICT),
    ("reply_code", I32, "SMTP reply code on the line", DICT),
    ("enhanced_status", STR, "Enhanced status code on the line", DICT),
    ("win32_status", I64, "IIS: Windows status code (0 = success)", DICT),
    ("bytes_sent", I64, "IIS: bytes sent by the server"),
    ("bytes_received", I64, "IIS: bytes received by the server"),
    ("time_taken_ms", I64, "IIS: time the command took, in ms"),
    ("helo", STR, "IIS: the client's HELO/EHLO name", DICT),
    ("username", STR, "Authenticated user name where logged", DICT),
    (
        "message_id",
        STR,
        "Message-ID carried by the line (250 2.6.0 reply, Send log InternetMessageId line, "
        "IIS DATA line)",
        STATS | BLOOM,
    ),
    ("file", STR, "Path the row was read from", DICT),
    ("line", I64, "1-based physical line number in the file", STATS),
]

_AGENT = [
    ("date_time", TS, "Time the agent acted, UTC", STATS),
    ("server", STR, "Server whose log holds the row (--server, or the folder name)", DICT | CAT),
    ("log_format", STR, "Format module that parsed the row (exchange-agent)", DICT | CAT),
    ("session_id", STR, "SMTP Receive session ID: the protocol log's session_id", BLOOM),
    ("local_ip", STR, "This server's IP", DICT),
    ("local_port", I32, "This server's port"),
    ("remote_ip", STR, "The connecting client's IP", DICT),
    ("remote_port", I32, "The connecting client's port"),
    ("entered_org_from_ip", STR, "IP of the first server outside the organisation"),
    (
        "message_id",
        STR,
        "Message-ID header, with angle brackets; often empty before DATA",
        STATS | BLOOM,
    ),
    ("p1_from_address", STR, "Envelope MAIL FROM address"),
    ("p2_from_addresses", LIST, "Addresses of the From: header"),
    ("recipient_address", LIST, "Recipients the action applies to, one list item each"),
    ("num_recipients", I32, "Number of recipients as logged"),
    (
        "agent",
        STR,
        "Agent that acted: Connection Filtering Agent, Content Filter Agent, ...",
        DICT | CAT,
    ),
    (
        "event",
        STR,
        "SMTP event: OnConnect, OnMailCommand, OnRcptCommand, OnEndOfData, ...",
        DICT | CAT,
    ),
    (
        "action",
        STR,
        "What the agent did: RejectCommand, RejectMessage, QuarantineMessage, ...",
        DICT | CAT,
    ),
    ("smtp_response", STR, "SMTP response sent (or that would be sent) to the client"),
    (
        "reason",
        STR,
        "Agent-specific reason: BlockListProvider, SclAtOrAboveRejectThreshold, ...",
        DICT | CAT,
    ),
    ("reason_data", STR, "Detail of the reason: block list provider, SCL, PRA address, ..."),
    ("diagnostics", STR, "Free-text diagnostics (Content Filter diagnostic string)"),
    ("network_message_id", STR, "ID shared by all copies of a message (tracking's, 2013+)", BLOOM),
    ("tenant_id", STR, "Tenant ID; empty on-premises"),
    ("directionality", STR, "Incoming, Originating or Undefined"),
    ("file", STR, "Path the row was read from", DICT),
    ("line", I64, "1-based physical line number in the file (the first of a folded row)", STATS),
]

_CONNECTIVITY = [
    ("date_time", TS, "Event time, UTC", STATS),
    ("server", STR, "Server whose log holds the row (--server, or the folder name)", DICT | CAT),
    ("log_format", STR, "Format module that parsed the row (exchange-connectivity)", DICT | CAT),
    ("session_id", STR, "Session ID: the SMTP Send protocol log's session_id for SMTP rows", BLOOM),
    ("source", STR, "Component: SMTP, MapiDelivery, MapiSubmission, Transport, ...", DICT | CAT),
    ("destination", STR, "Next hop: the queue's next-hop domain, a host, a database GUID", DICT),
    ("direction", STR, "+ connect, - disconnect, > send, * information", DICT | CAT),
    ("description", STR, "What happened, as logged"),
    ("remote_ip", STR, "IP the description names (connection established, failed, aborted)", DICT),
    ("remote_port", I32, "Port the description names"),
    (
        "error",
        STR,
        "Failure the description names: socket error (TimedOut), DNS failure, failover "
        "reason, or the text of a failed disconnect",
    ),
    (
        "failure",
        STR,
        "Kind of the failure in error: dns, refused, timeout, tls or other",
        DICT | CAT,
    ),
    ("file", STR, "Path the row was read from", DICT),
    ("line", I64, "1-based physical line number in the file", STATS),
]

#: Between an archive's path and its member's in a ``file`` value: ``archive.zip!member/x.LOG``.
MEMBER_SEP = "!"

_QUARANTINE = [
    ("file", STR, "Path the line was read from"),
    ("line", I64, "1-based physical line number"),
    ("reason", STR, "Why the line could not be used"),
    ("raw", STR, "The line as read (invalid UTF-8 replaced)"),
    ("log_format", STR, "Format the file was read as"),
    ("file_key", STR, "Identity of the file (see the manifest)"),
]

_MANIFEST = [
    ("file_key", STR, "Short digest of the file's identity (its first bytes when first seen)"),
    ("paths", LIST, "Every path the file was seen at"),
    (
        "size",
        I64,
        "File size at the last ingest, in the bytes it is read in (a UTF-16 log's text as UTF-8)",
    ),
    ("head_len", I64, "Number of leading bytes the fingerprint covers"),
    ("head_fingerprint", STR, "Digest of the first head_len bytes"),
    ("bytes_consumed", I64, "Bytes read so far; a grown file is read on from here"),
    ("lines_consumed", I64, "Physical lines read so far"),
    (
        "header",
        STR,
        "Directive lines in force at bytes_consumed (#Fields ...), for reading on; a local-time "
        "log's clock (#local-clock: the latest local time read, the day its repeated hour "
        "reached the second pass)",
    ),
    ("format", STR, "Format name"),
    ("table", STR, "Table the rows went to (tracking, smtp, agent or connectivity)"),
    ("server", STR, "Server the rows were attributed to"),
    ("rows", I64, "Rows stored from this file"),
    ("quarantined", I64, "Lines quarantined from this file"),
    ("parts", LIST, "Part files of this file, relative to the store"),
    ("final", BOOL, "The file stopped growing; its last partial line was quarantined"),
    ("ingested_at", TS, "When the file was last ingested"),
    ("schema_version", I32, "Store schema version the rows were written with"),
    (
        "lookup",
        BLOB,
        "Sketch of the IDs in the rows: sorted 32-bit hashes (loganalyzer.store.lookup)",
    ),
]


_FIELDS = {
    "tracking": _TRACKING,
    "smtp": _SMTP,
    "agent": _AGENT,
    "connectivity": _CONNECTIVITY,
    "quarantine": _QUARANTINE,
    "manifest": _MANIFEST,
}


@dataclass(frozen=True)
class Column:
    """One column of a table."""

    name: str
    type: str  # SQL (DuckDB) name: TS, STR, LIST, I32, I64, BOOL, BLOB
    description: str
    flags: Flag = Flag.NONE


def tables() -> tuple[str, ...]:
    """The name of every table, in declaration order."""
    return tuple(_FIELDS)


def table_columns(table: str) -> tuple[Column, ...]:
    """The columns of ``table`` in order, with their flags."""
    return tuple(Column(*spec) for spec in _FIELDS[table])


def flagged(table: str, flag: Flag) -> tuple[str, ...]:
    """Names of the columns of ``table`` that carry ``flag``."""
    return tuple(c.name for c in table_columns(table) if flag in c.flags)


#: Columns read into pandas as categories, by name in any table (query results mix them).
CATEGORIES: frozenset[str] = frozenset(n for t in _FIELDS for n in flagged(t, Flag.CATEGORY))


def columns(table: str) -> list[tuple[str, str]]:
    """Name and SQL type of each column of ``table`` (tracking, smtp, quarantine, manifest)."""
    return [(c.name, c.type) for c in table_columns(table)]


def arrow_type(sql: str) -> pa.DataType:
    import pyarrow as pa

    return {
        TS: pa.timestamp("ms", tz="UTC"),
        STR: pa.string(),
        LIST: pa.list_(pa.string()),
        I32: pa.int32(),
        I64: pa.int64(),
        BOOL: pa.bool_(),
        BLOB: pa.binary(),
    }[sql]


def _schema(table: str) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            pa.field(c.name, arrow_type(c.type), metadata={"description": c.description})
            for c in table_columns(table)
        ]
    )


#: Tables that are not log rows.
_BOOKKEEPING = ("quarantine", "manifest")
#: Tables that hold log rows, partitioned by date.
LOG_TABLES = tuple(t for t in _FIELDS if t not in _BOOKKEEPING)

if TYPE_CHECKING:
    TRACKING: pa.Schema
    SMTP: pa.Schema
    AGENT: pa.Schema
    CONNECTIVITY: pa.Schema
    QUARANTINE: pa.Schema
    MANIFEST: pa.Schema
    #: Tables that hold log rows, by name.
    TABLES: dict[str, pa.Schema]


def __getattr__(name: str):
    """The Arrow schema of each table by its name in capitals (``TRACKING``, ``SMTP``,
    ``QUARANTINE``, ``MANIFEST`` ...) and ``TABLES`` (tables that hold log rows, by name),
    built on first use."""
    if name.isupper() and name.lower() in _FIELDS:
        value = globals()[name] = _schema(name.lower())
        return value
    if name == "TABLES":
        value = globals()[name] = {t: __getattr__(t.upper()) for t in LOG_TABLES}
        return value
    raise AttributeError(f"module 'loganalyzer.schema' has no attribute {name!r}")


def describe(schema: pa.Schema) -> dict[str, str]:
    """Column name to description."""
    return {f.name: f.metadata[b"description"].decode() for f in schema}


def build_table(columns: dict, schema: pa.Schema) -> pa.Table:
    """A table in ``schema``'s order and types from named columns; the rest become nulls."""
    import pyarrow as pa

    n = len(next(iter(columns.values())))
    arrays = []
    for f in schema:
        col = columns.get(f.name)
        if col is None:
            arrays.append(pa.nulls(n, f.type))
        else:
            arrays.append(col if col.type == f.type else col.cast(f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Reorder and cast ``table`` to ``schema``; missing columns become nulls."""
    if table.schema.equals(schema):
        return table
    return build_table({name: table.column(name) for name in table.column_names}, schema)
