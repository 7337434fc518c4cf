"""The explicit registry of log formats, and detection of a file's format from its first bytes.

Each format is one module exposing ``FORMAT``, a ``Format`` value (``formats.contract``): its
name, table, description, file names, sample, detection and parse. A new format is a module
and one line below.
"""

from __future__ import annotations

from loganalyzer.errors import BadInput
from loganalyzer.formats import (
    exchange2003,
    exchange_agent,
    exchange_connectivity,
    exchange_smtp_protocol,
    exchange_tracking,
    exo_message_trace,
    iis_smtp,
)
from loganalyzer.formats.common import Batch, Context, Detected, header_value
from loganalyzer.formats.contract import Format, NotALog, Pending

__all__ = [
    "FORMATS",
    "Batch",
    "Context",
    "Detected",
    "Format",
    "NotALog",
    "Pending",
    "detect",
    "get",
]

#: Every format by name, in the order detection tries them.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        exchange_tracking.FORMAT,
        exchange_smtp_protocol.FORMAT,
        iis_smtp.FORMAT,
        exchange2003.FORMAT,
        exo_message_trace.FORMAT,
        exchange_agent.FORMAT,
        exchange_connectivity.FORMAT,
    )
}

#: Exchange log kinds recognised by their #Log-type but not ingested (yet).
UNSUPPORTED_KINDS: dict[str, str] = {
    "ews logs": "EWS log",
    "ews log": "EWS log",
    "routing table log": "routing table log",
    "pipeline tracing log": "pipeline tracing log",
}

HEAD_BYTES = 64 << 10


def get(name: str) -> Format:
    """The format called ``name``."""
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInput(f"unknown format {name!r}; known: {', '.join(FORMATS)}") from None


def detect(head: bytes, name: str, forced: str | None = None) -> tuple[Format, Detected]:
    """The format of a file from its first bytes; raises ``NotALog`` with the reason.
    ``forced`` (``--format``) is the format of header-less files: a file whose header or
    content says another format is still that format."""
    if not head.strip(b"\x00 \r\n\t"):
        raise NotALog("empty file" if not head else "no text: only NUL bytes or blanks")
    candidates = list(FORMATS.values())
    if forced:
        candidates.sort(key=lambda f: f is not get(forced))  # the one asked for first
    for fmt in candidates:
        found = fmt.detect(head, name)
        if found:
            return fmt, found
    if forced and get(forced).detect_headerless is not None:
        found = get(forced).detect_headerless(head, name)
        if found:
            return get(forced), found
    raise NotALog(_why_not(head, forced, name))


def _why_not(head: bytes, forced: str | None, name: str = "") -> str:
    log_type = header_value(head, "log-type")
    if log_type:
        kind = UNSUPPORTED_KINDS.get(log_type.strip().lower(), f"Exchange {log_type.strip()}")
        return f"{kind}: not a supported log kind"
    if b"\x00" in head[:4096] and not head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return "binary data, not a text log"
    if forced:
        return (
            f"does not look like {_article(forced)} {forced} log (no header, and most of its "
            "first lines do not match a documented field set)"
        )
    # header-less lines of a known shape: name the option that reads them (never guessed:
    # an excerpt's field set and zone are the user's to confirm)
    shaped = [
        f.name for f in FORMATS.values() if f.detect_headerless and f.detect_headerless(head, name)
    ]
    if shaped:
        looks = " or ".join(f"{_article(f)} {f} log's" for f in shaped)
        return f"no header; its lines look like {looks}: ingest it with --format {shaped[0]}"
    return (
        "not a log this tool reads: no known header or line format "
        "(a header-less log needs --format; see `loganalyzer formats`)"
    )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
