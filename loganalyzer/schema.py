"""The store's tables, defined once: every column with its type and a description.

``date`` is never a data column: it is the hive partition key of ``tracking`` and ``smtp``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

#: Bumped when a column changes meaning or type; stored in the manifest of every file.
SCHEMA_VERSION = 1

# Column types by their SQL (DuckDB) names; the Arrow schemas below are built from them on
# first use, so that reading the store (a trace) need not import pyarrow: 0.25 s of a command.
TS, STR, LIST = "TIMESTAMPTZ", "VARCHAR", "VARCHAR[]"
I32, I64, BOOL, BLOB = "INTEGER", "BIGINT", "BOOLEAN", "BLOB"

_TRACKING = [
    ("date_time", TS, "Event time, UTC"),
    ("server", STR, "Server whose log holds the row (--server, read from the file, or its folder)"),
    ("log_format", STR, "Format module that parsed the row (exchange-tracking, ...)"),
    ("log_type", STR, "Log series: MSGTRK, MSGTRKMD, MSGTRKMS, MSGTRKMA, EX2003, EXO-SUMMARY..."),
    ("event_id", STR, "Tracking event: DELIVER, SEND, RECEIVE, ... or an Exchange 2003 number"),
    ("source", STR, "Transport component that logged the event (SMTP, STOREDRIVER, ...)"),
    ("outcome", STR, "What the event means for the message, from eventcodes (fixed vocabulary)"),
    ("message_id", STR, "Message-ID header, with angle brackets"),
    ("internal_message_id", STR, "Per-server message number; unique only with its server"),
    ("network_message_id", STR, "ID shared by all copies of a message (Exchange 2013+)"),
    ("sender_address", STR, "Sender (Sender: or From: header)"),
    ("sender_domain", STR, "Domain of sender_address, lower case (derived)"),
    ("return_path", STR, "Envelope MAIL FROM address; <> for bounces"),
    ("recipient_address", LIST, "Recipients, one list item each"),
    ("recipient_status", LIST, "Status per recipient, aligned with recipient_address"),
    ("enhanced_status", LIST, "Enhanced status code (5.1.1) in each recipient status (derived)"),
    ("smtp_reply", LIST, "SMTP reply code (550) in each recipient status (derived)"),
    ("recipient_count", I32, "Number of recipients as logged"),
    ("related_recipient_address", STR, "Related address of EXPAND, REDIRECT and RESOLVE events"),
    ("reference", STR, "Event-specific link: a DSN's Message-ID, a forked-from internal ID, ..."),
    ("message_subject", STR, "Subject header, as logged"),
    ("total_bytes", I64, "Message size in bytes"),
    ("client_ip", STR, "IP of the submitting client or server"),
    ("client_hostname", STR, "Host name of the submitting client or server"),
    ("server_ip", STR, "IP of the source or destination server"),
    ("server_hostname", STR, "Host name of the destination server"),
    ("original_client_ip", STR, "IP of the original client (2010+)"),
    ("original_server_ip", STR, "IP of the original server (2010+)"),
    ("source_context", STR, "Extra context for source: SMTP session ID, store details, agent"),
    ("connector_id", STR, "Send or Receive connector name"),
    ("message_info", STR, "Origination time, latency breakdown or authentication codes"),
    ("directionality", STR, "Incoming, Originating or Undefined (2010+)"),
    ("tenant_id", STR, "Tenant ID (Exchange Online)"),
    ("custom_data", STR, "Event-specific S:key=value items"),
    ("transport_traffic_type", STR, "Email, or blank (2016+)"),
    ("log_id", STR, "Unique row ID (2016+)"),
    ("schema_version", STR, "Exchange build that wrote the row (2016+)"),
    ("partner_name", STR, "Exchange 2003: service the message was handed to (SMTP, MAPI, ...)"),
    ("priority", STR, "Exchange 2003: -1 low, 0 normal, 1 high"),
    ("recipient_report_status", STR, "Exchange 2003: 0 delivered, 1 not delivered (reports only)"),
    ("origination_time", STR, "Exchange 2003: origination time as logged"),
    ("encryption", STR, "Exchange 2003: encryption flag of the primary body part"),
    ("service_version", STR, "Exchange 2003: version of the logging service"),
    ("linked_msgid", STR, "Exchange 2003: related message ID"),
    ("file", STR, "Path the row was read from"),
    ("line", I64, "1-based physical line number in the file"),
]

_SMTP = [
    ("date_time", TS, "Event time, UTC"),
    ("time_approximate", BOOL, "Time taken from the #Date directive: the log has no time"),
    ("tz_assumed", STR, "Zone assumed for a local-time log when --tz was not given"),
    ("server", STR, "Server whose log holds the row"),
    ("log_format", STR, "Format module that parsed the row (exchange-smtp-protocol, iis-smtp)"),
    ("direction", STR, "receive (sessions to this server) or send (sessions it opened)"),
    ("connector_id", STR, "Connector name, or the IIS site (SMTPSVC1)"),
    ("session_id", STR, "SMTP session ID, shared by every line of one session"),
    ("sequence_number", I64, "Line number within the session"),
    ("local_ip", STR, "This server's IP"),
    ("local_port", I32, "This server's port"),
    ("remote_ip", STR, "The peer's IP"),
    ("remote_port", I32, "The peer's port"),
    ("event", STR, "+ connect, - disconnect, > sent, < received, * information"),
    ("command", STR, "SMTP command on the line: EHLO, MAIL, RCPT, DATA, AUTH, STARTTLS, ..."),
    ("data", STR, "Text of the command, reply or information"),
    ("context", STR, "Extra context (TLS details, permissions, socket errors)"),
    ("reply_code", I32, "SMTP reply code on the line"),
    ("enhanced_status", STR, "Enhanced status code on the line"),
    ("win32_status", I64, "IIS: Windows status code (0 = success)"),
    ("bytes_sent", I64, "IIS: bytes sent by the server"),
    ("bytes_received", I64, "IIS: bytes received by the server"),
    ("time_taken_ms", I64, "IIS: time the command took, in ms"),
    ("helo", STR, "IIS: the client's HELO/EHLO name"),
    ("username", STR, "Authenticated user name where logged"),
    (
        "message_id",
        STR,
        "Message-ID carried by the line (250 2.6.0 reply, Send log InternetMessageId line, "
        "IIS DATA line)",
    ),
    ("file", STR, "Path the row was read from"),
    ("line", I64, "1-based physical line number in the file"),
]

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
    ("size", I64, "File size at the last ingest"),
    ("head_len", I64, "Number of leading bytes the fingerprint covers"),
    ("head_fingerprint", STR, "Digest of the first head_len bytes"),
    ("bytes_consumed", I64, "Bytes read so far; a grown file is read on from here"),
    ("lines_consumed", I64, "Physical lines read so far"),
    ("header", STR, "Directive lines in force at bytes_consumed (#Fields ...), for reading on"),
    ("format", STR, "Format name"),
    ("table", STR, "Table the rows went to (tracking or smtp)"),
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


_FIELDS = {"tracking": _TRACKING, "smtp": _SMTP, "quarantine": _QUARANTINE, "manifest": _MANIFEST}


def columns(table: str) -> list[tuple[str, str]]:
    """Name and SQL type of each column of ``table`` (tracking, smtp, quarantine, manifest)."""
    return [(name, sql) for name, sql, _ in _FIELDS[table]]


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


def _schema(fields: list[tuple[str, str, str]]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [pa.field(n, arrow_type(t), metadata={"description": d}) for n, t, d in fields]
    )


_ARROW = {
    "TRACKING": "tracking",
    "SMTP": "smtp",
    "QUARANTINE": "quarantine",
    "MANIFEST": "manifest",
}

if TYPE_CHECKING:
    TRACKING: pa.Schema
    SMTP: pa.Schema
    QUARANTINE: pa.Schema
    MANIFEST: pa.Schema
    #: Tables that hold log rows, by name.
    TABLES: dict[str, pa.Schema]


def __getattr__(name: str):
    """The Arrow schemas ``TRACKING``, ``SMTP``, ``QUARANTINE``, ``MANIFEST`` and ``TABLES``
    (tables that hold log rows, by name), built on first use."""
    if name in _ARROW:
        value = globals()[name] = _schema(_FIELDS[_ARROW[name]])
        return value
    if name == "TABLES":
        value = globals()[name] = {"tracking": __getattr__("TRACKING"), "smtp": __getattr__("SMTP")}
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
