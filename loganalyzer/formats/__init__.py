"""The explicit registry of log formats, and detection of a file's format from its first bytes.

Each format is one module with ``NAME``, ``TABLE``, ``DESCRIPTION``, ``FILE_NAMES``, ``SAMPLE``,
``detect(head, name)``, optionally ``detect_headerless(head, name)`` (used only when the user
names the format), and ``parse(fh, state, ctx)`` yielding ``Batch`` objects.
"""

from __future__ import annotations

from types import ModuleType

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

__all__ = ["FORMATS", "Batch", "Context", "Detected", "NotALog", "detect", "get"]

FORMATS: dict[str, ModuleType] = {
    exchange_tracking.NAME: exchange_tracking,
    exchange_smtp_protocol.NAME: exchange_smtp_protocol,
    iis_smtp.NAME: iis_smtp,
    exchange2003.NAME: exchange2003,
    exo_message_trace.NAME: exo_message_trace,
    exchange_agent.NAME: exchange_agent,
    exchange_connectivity.NAME: exchange_connectivity,
}

#: Exchange log kinds recognised by their #Log-type but not ingested (yet).
UNSUPPORTED_KINDS: dict[str, str] = {
    "ews logs": "EWS log",
    "ews log": "EWS log",
    "routing table log": "routing table log",
    "pipeline tracing log": "pipeline tracing log",
}

HEAD_BYTES = 64 << 10


class NotALog(ValueError):
    """A file that no format claims, or a log kind that is not supported."""


def get(name: str) -> ModuleType:
    """The format module called ``name``."""
    try:
        return FORMATS[name]
    except KeyError:
        raise BadInput(f"unknown format {name!r}; known: {', '.join(FORMATS)}") from None


def detect(head: bytes, name: str, forced: str | None = None) -> tuple[ModuleType, Detected]:
    """The format of a file from its first bytes; raises ``NotALog`` with the reason."""
    if not head.strip(b"\x00 \r\n\t"):
        raise NotALog("empty file" if not head else "no text: only NUL bytes or blanks")
    modules = [get(forced)] if forced else list(FORMATS.values())
    for module in modules:
        found = module.detect(head, name)
        if found:
            return module, found
    if forced and hasattr(modules[0], "detect_headerless"):
        found = modules[0].detect_headerless(head, name)
        if found:
            return modules[0], found
    raise NotALog(_why_not(head, forced))


def _why_not(head: bytes, forced: str | None) -> str:
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
    return (
        "not a log this tool reads: no known header or line format "
        "(a header-less log needs --format; see `loganalyzer formats`)"
    )


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
