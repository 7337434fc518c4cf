"""What kind of Exchange Online export a file is: its encoding, delimiter and columns (FORMATS I.3).

The admin center's CSVs are UTF-16 LE, often without a byte-order mark; users re-save them as
UTF-8. PowerShell's ``Export-Csv`` may write a ``#TYPE`` line first and a culture delimiter.
"""

from __future__ import annotations

import csv
import re

import numpy as np

BOMS: tuple[tuple[bytes, str], ...] = (
    (b"\xef\xbb\xbf", "utf-8"),
    (b"\xff\xfe", "utf-16-le"),
    (b"\xfe\xff", "utf-16-be"),
)
#: Header names that other tools and the documentation spell differently.
ALIASES: dict[str, str] = {
    "origin_timestamp": "origin_timestamp_utc",
    "receiveddatetime": "received",  # Microsoft Graph exchangeMessageTrace
    # Microsoft Graph exchangeMessageTraceDetail: Get-MessageTraceDetail's Date and Detail
    "datetime": "date",
    "description": "detail",
}
#: log_type of each kind of export.
SUMMARY, DETAIL, PS_TRACE, PS_DETAIL, API = (
    "EXO-SUMMARY",
    "EXO-DETAIL",
    "EXO-PS-TRACE",
    "EXO-PS-DETAIL",
    "EXO-API",
)
DELIMITERS: dict[str, str] = {",": "comma", ";": "semicolon", "\t": "tab"}
_RECORD_KEYS = re.compile(
    r'"(messagetraceid|senderaddress|recipientaddress|status|received)"\s*:', re.IGNORECASE
)
#: Keys of a trace detail record (Microsoft Graph's exchangeMessageTraceDetail, or the older
#: API's MessageTraceDetail), which may name neither sender nor recipient.
_DETAIL_KEYS = re.compile(r'"(datetime|date|event|description|detail|action)"\s*:', re.IGNORECASE)
_SEKOIA = re.compile(r'^\s*\{\s*"(input|expected)"\s*:\s*\{', re.IGNORECASE)
_EMPTY_API_RESULT = re.compile(
    r"Reporting\.svc/\$metadata#MessageTrace|microsoft\.graph\.exchangeMessageTraceDetail",
    re.IGNORECASE,
)


def encoding_of(head: bytes) -> tuple[str, int]:
    """Encoding of a file from its first bytes, and the length of its byte-order mark.

    Without a BOM, zero bytes in most odd (even) positions mean UTF-16 LE (BE).
    """
    for bom, name in BOMS:
        if head.startswith(bom):
            return name, len(bom)
    sample = head[: min(len(head), 4096) // 2 * 2]
    if sample:
        pairs = np.frombuffer(sample, np.uint8).reshape(-1, 2)
        even, odd = (pairs == 0).mean(axis=0)
        if odd > 0.3 and even < 0.05:
            return "utf-16-le", 0
        if even > 0.3 and odd < 0.05:
            return "utf-16-be", 0
    return "utf-8", 0


def to_utf8(raw: bytes, encoding: str) -> bytes:
    """UTF-8 bytes of ``raw`` (UTF-8 passes as is: the block reader repairs stray cp1252)."""
    if encoding == "utf-8":
        return raw
    return raw[: len(raw) // 2 * 2].decode(encoding, errors="replace").encode("utf-8")


def text_of(head: bytes) -> str:
    """The first bytes of a file as text, for recognising it."""
    encoding, bom = encoding_of(head)
    body = head[bom:]
    if encoding != "utf-8":
        body = body[: len(body) // 2 * 2]
    return body.decode(encoding, errors="replace").replace("\x00", "")


def header_line(text: str) -> str | None:
    """The first line that is not blank and not a PowerShell ``#TYPE`` line."""
    for line in text.splitlines():
        stripped = line.strip().lstrip("\ufeff")
        if stripped and not stripped.upper().startswith("#TYPE"):
            return stripped
    return None


def delimiter_of(line: str) -> str:
    """The delimiter that splits a header line into the most fields (outside quotes)."""
    outside = re.sub(r'"[^"]*"', "", line)
    return max(DELIMITERS, key=lambda d: (outside.count(d), d == ","))


def column_names(line: str, delimiter: str) -> list[str]:
    """Header names: lower case, quotes, blanks and a stray BOM removed, aliases applied."""
    names = next(csv.reader([line], delimiter=delimiter))
    out = []
    for name in names:
        clean = name.strip().lstrip("\ufeff").strip().strip('"').strip().lower()
        out.append(ALIASES.get(clean, clean))
    return out


def kind_of(names: list[str] | set[str]) -> str | None:
    """Which export has these columns (summary, detail, PowerShell trace or detail)."""
    s = set(names)
    if "origin_timestamp_utc" in s:
        return SUMMARY
    if "date_time_utc" in s:
        return DETAIL
    if "received" in s and ({"senderaddress", "recipientaddress"} <= s or "messagetraceid" in s):
        return PS_TRACE
    if {"date", "event"} <= s and s & {"action", "detail", "messagetraceid"}:
        return PS_DETAIL
    return None


def is_json(text: str) -> bool:
    return text.lstrip("\ufeff \t\r\n")[:1] in ("{", "[")


def is_sekoia_wrapper(text: str) -> bool:
    """A SEKOIA intake-format test case: ``input.message`` holds one record as a JSON string."""
    return bool(_SEKOIA.match(text)) and '"expected"' in text and '"message"' in text


def is_api_json(text: str) -> bool:
    """JSON records of the reporting API (at least three of its keys), trace details (their
    time, event and description, detail or action), or an empty result."""
    keys = {m.lower() for m in _RECORD_KEYS.findall(text[:65536])}
    detail = {m.lower() for m in _DETAIL_KEYS.findall(text[:65536])}
    return (
        "messagetraceid" in keys
        or len(keys) >= 3
        or (
            "event" in detail
            and bool(detail & {"datetime", "date"})
            and bool(detail & {"description", "detail", "action"})
        )
        or bool(_EMPTY_API_RESULT.search(text))
    )
