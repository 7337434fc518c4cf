"""The header analysis result: hops, verdicts, antispam fields, bounce, and the joined trace.

The names of ``to_dict()`` listed in the issue are a contract (message_id, network_message_id,
subject, hops, auth, antispam, bounce, trace); the other keys are additions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from loganalyzer.headers.antispam import AntispamField
from loganalyzer.headers.auth import METHODS, AuthResult
from loganalyzer.headers.bounce import BounceRecipient
from loganalyzer.headers.received import Hop
from loganalyzer.result import Result
from loganalyzer.times import iso

if TYPE_CHECKING:
    from loganalyzer.trace.model import TraceResult


@dataclass
class Original:
    """The original message a bounce returns (from its attached headers)."""

    message_id: str | None
    network_message_id: str | None
    subject: str | None
    sender: str | None
    date: datetime | None
    hops: list[Hop]

    def to_dict(self) -> dict:
        return {
            "message_id": self.message_id,
            "network_message_id": self.network_message_id,
            "subject": self.subject,
            "from": self.sender,
            "date": iso(self.date),
            "hops": [h.to_dict() for h in self.hops],
        }


@dataclass
class TimelineEntry:
    """One moment of the joined story: a Received hop, or a log event of the trace."""

    date_time: datetime | None
    source: str  # header, original-header, log
    server: str | None
    what: str
    detail: str | None = None
    flag: str | None = None  # clock skew, bounce

    def to_dict(self) -> dict:
        return {
            "date_time": iso(self.date_time),
            "source": self.source,
            "server": self.server,
            "what": self.what,
            "detail": self.detail,
            "flag": self.flag,
        }


#: The IDs a join asks the store for (``join``), in words.
_ID_WORDS = {
    "original_message_id": "the original's Message-ID",
    "original_network_message_id": "the original's network message ID",
    "message_id": "Message-ID",
    "network_message_id": "network message ID",
}


@dataclass
class HeaderAnalysis(Result):
    """What ``analyze_headers`` returns; the CLI renders it as text, JSON or HTML."""

    message_id: str | None
    network_message_id: str | None
    subject: str | None
    sender: str | None
    to: str | None
    date: datetime | None
    hops: list[Hop]
    auth: dict[str, AuthResult | None]
    antispam: list[AntispamField]
    bounce: list[BounceRecipient] = field(default_factory=list)
    is_bounce: bool = False
    reporting_mta: str | None = None
    original: Original | None = None
    auth_all: list[AuthResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    trace: TraceResult | None = None
    trace_query: dict | None = None  # what was looked up in the store, and what found it
    tz: str = "UTC"

    @property
    def original_message_id(self) -> str | None:
        return self.original.message_id if self.original else None

    def not_found(self) -> str | None:
        """The line saying which of the message's IDs the store was asked for and found nothing
        by (None: found, or no store asked)."""
        if self.trace is not None or self.trace_query is None:
            return None
        tried = ", ".join(f"{_ID_WORDS[t['by']]} {t['value']}" for t in self.trace_query["tried"])
        tried = tried or "the headers give no Message-ID or network message ID"
        return f"Not found in the store: {tried}."

    def timeline(self) -> list[TimelineEntry]:
        """The hops (the original's first, for a bounce) and the trace's log events, by time."""
        out: list[TimelineEntry] = []
        chains = [("original-header", self.original.hops)] if self.original else []
        for source, hops in [*chains, ("header", self.hops)]:
            for h in hops:
                sender = h.sender_text
                out.append(
                    TimelineEntry(
                        h.date_time,
                        source,
                        h.by,
                        f"Received from {sender or 'unknown'}",
                        " ".join(x for x in (h.protocol, f"via {h.via}" if h.via else "") if x)
                        or None,
                        "clock skew" if h.clock_skew else None,
                    )
                )
        for m in self.trace.messages if self.trace else []:
            for e in m.events:
                out.append(
                    TimelineEntry(
                        e.date_time,
                        "log",
                        e.server,
                        " ".join(x for x in (e.event_id, e.source) if x),
                        e.meaning,
                        "bounce" if e.is_ndr else None,
                    )
                )
        dated = sorted((e for e in out if e.date_time), key=lambda e: e.date_time)
        return dated + [e for e in out if not e.date_time]

    def to_dict(self) -> dict:
        return {
            "message_id": self.message_id,
            "network_message_id": self.network_message_id,
            "subject": self.subject,
            "hops": [h.to_dict() for h in self.hops],
            "auth": {k: (v.to_dict() if v else None) for k, v in self.auth.items()},
            "antispam": [a.to_dict() for a in self.antispam],
            "bounce": [b.to_dict() for b in self.bounce],
            "trace": self.trace.to_dict() if self.trace else None,
            "from": self.sender,
            "to": self.to,
            "date": iso(self.date),
            "is_bounce": self.is_bounce,
            "reporting_mta": self.reporting_mta,
            "original": self.original.to_dict() if self.original else None,
            "auth_all": [{"method": a.method, **a.to_dict()} for a in self.auth_all],
            "trace_query": self.trace_query,
            "timeline": [e.to_dict() for e in self.timeline()] if self.trace else [],
            "notes": self.notes,
        }

    def _html(self, fragment: bool = False) -> str:
        """The page has no scripts; every header value is escaped."""
        from loganalyzer.headers.html import render_html

        return render_html(self, fragment=fragment)

    def verdict_lines(self) -> list[tuple[str, AuthResult | None]]:
        """(method, result) in the fixed order spf, dkim, dmarc, arc, compauth."""
        return [(m, self.auth.get(m)) for m in METHODS]
