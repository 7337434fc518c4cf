"""The trace result: a message's timeline and a verdict per recipient (DESIGN.md, Trace).

The names of ``to_dict()`` are a contract: later work and outside scripts rely on them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from loganalyzer.result import Result
from loganalyzer.times import clock, iso
from loganalyzer.trace.relay import is_queue_id

#: How a query's ID is named in messages.
_KINDS = {
    "message_id": "Message-ID",
    "network_message_id": "network message ID",
    "internal_message_id": "internal message ID",
}


@dataclass
class Line:
    """One line of an SMTP conversation (protocol log or IIS SMTP log)."""

    date_time: datetime
    direction: str | None
    event: str | None
    data: str | None
    reply_code: int | None
    server: str | None = None
    session_id: str | None = None
    context: str | None = None

    def text(self) -> str:
        """The line as the trace shows it, after its time: ``* None [Set Session
        Permissions]`` (the context says what a ``*`` line is: a TLS negotiation, a login)."""
        said = f"{self.event or ''} {self.data or ''}"
        return f"{said} [{self.context}]" if self.context else said

    def to_dict(self) -> dict:
        return {
            "date_time": iso(self.date_time),
            "direction": self.direction,
            "event": self.event,
            "data": self.data,
            "reply_code": self.reply_code,
            "context": self.context,
        }


@dataclass
class Event:
    """One log row of the message, on one server, with its meaning."""

    date_time: datetime
    server: str
    event_id: str
    meaning: str
    source: str | None
    outcome: str | None
    client: str | None
    server_host: str | None
    connector: str | None
    internal_message_id: str | None
    recipients: list[dict] = field(default_factory=list)  # address, status, status_meaning
    conversation: list[Line] = field(default_factory=list)
    message_id: str | None = None
    related: str | None = None
    reference: str | None = None
    log_format: str | None = None
    file: str | None = None
    line: int | None = None
    internal_id_changed: bool = False
    is_ndr: bool = False
    name: str | None = None  # the event's short name (eventcodes)

    def to_dict(self) -> dict:
        d = {k: v for k, v in asdict(self).items() if k != "conversation"}
        d["date_time"] = iso(self.date_time)
        d["conversation"] = [c.to_dict() for c in self.conversation]
        return d


#: What pages call the notices a message's sender got: bounces when a recipient failed, else
#: notices of a delay or a relay (DSNs all the same).
BOUNCES, NOTICES = "Bounces (NDR)", "Notices to the sender (DSN)"


@dataclass
class Verdict:
    """What happened to one recipient, in plain words, with its evidence."""

    address: str
    verdict: str
    server: str | None
    date_time: datetime | None
    summary: str
    latency_s: float | None = None
    status: str | None = None
    status_meaning: str | None = None
    enhanced_status: str | None = None
    ndr_message_id: str | None = None
    expanded_from: str | None = None
    redirected_to: str | None = None
    members: list[Verdict] = field(default_factory=list)
    #: A rejected attempt: where in the SMTP session, which agent and why, from where.
    stage: str | None = None
    agent: str | None = None
    reason: str | None = None
    remote_ip: str | None = None
    helo: str | None = None
    #: How the next hop failed (dns, refused, timeout, tls, other), from its connectivity log.
    next_hop_failure: str | None = None
    #: Log records behind the verdict: log, server, date_time, text, file, line.
    evidence: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "address": self.address,
            "verdict": self.verdict,
            "server": self.server,
            "date_time": iso(self.date_time),
            "latency_s": self.latency_s,
            "status": self.status,
            "status_meaning": self.status_meaning,
            "enhanced_status": self.enhanced_status,
            "ndr_message_id": self.ndr_message_id,
            "expanded_from": self.expanded_from,
            "redirected_to": self.redirected_to,
            "summary": self.summary,
            "members": [m.to_dict() for m in self.members],
            "stage": self.stage,
            "agent": self.agent,
            "reason": self.reason,
            "remote_ip": self.remote_ip,
            "helo": self.helo,
            "next_hop_failure": self.next_hop_failure,
            "evidence": [{**e, "date_time": iso(e.get("date_time"))} for e in self.evidence],
        }

    def flatten(self) -> list[Verdict]:
        """This verdict and those of its members, depth first."""
        return [self, *(v for m in self.members for v in m.flatten())]


@dataclass
class MessageTrace:
    """One message: its events on every server and the verdict of each recipient."""

    message_id: str | None
    network_message_id: str | None
    subject: str | None
    sender: str | None
    received_at: datetime | None
    size: int | None
    events: list[Event]
    recipients: list[Verdict]
    missing_logs: list[dict] = field(default_factory=list)  # server, after
    ndr_message_ids: list[str] = field(default_factory=list)
    #: The IIS SMTP service's queue ID of a message whose DATA line names no Message-ID.
    queue_id: str | None = None

    @property
    def bounced(self) -> bool:
        """Whether a recipient failed: the notices the sender got (``ndr_message_ids``) are
        then bounces; else they told of a delay or a relay (a DSN all the same)."""
        return any(v.verdict == "failed" for r in self.recipients for v in r.flatten())

    @property
    def notices_label(self) -> str:
        """What pages call ``ndr_message_ids``."""
        return BOUNCES if self.bounced else NOTICES

    @property
    def notice_word(self) -> str:
        """What pages call a row of one of them."""
        return "the bounce" if self.bounced else "the notice to the sender"

    def to_dict(self) -> dict:
        return {
            "message_id": self.message_id,
            "queue_id": self.queue_id,
            "network_message_id": self.network_message_id,
            "subject": self.subject,
            "sender": self.sender,
            "received_at": iso(self.received_at),
            "size": self.size,
            "events": [e.to_dict() for e in self.events],
            "recipients": [r.to_dict() for r in self.recipients],
            "missing_logs": self.missing_logs,
            "ndr_message_ids": self.ndr_message_ids,
            # whether those are bounces (a recipient failed) or notices of a delay or relay
            "bounced": self.bounced,
        }


def held_words(days: tuple[str, str]) -> str:
    """``the store's logs are of 2026-03-02 to 2026-03-04 (UTC)``, of (first, last) UTC days."""
    first, last = days
    return f"the store's logs are of {first if first == last else f'{first} to {last}'} (UTC)"


@dataclass
class TraceResult(Result):
    """What ``loganalyzer.trace`` returns; the CLI renders it as text, JSON or HTML."""

    query: dict
    candidates: list[dict]
    messages: list[MessageTrace]
    tz: str = "UTC"
    #: How many messages match (``candidates`` lists the first of them); None: as many as
    #: are listed.
    total: int | None = None
    #: The first and last UTC days the store has rows of, when nothing matched a time window
    #: that lies wholly outside them (``not_found`` says so); else None.
    held_days: tuple[str, str] | None = None
    #: When an event filter matched nothing: the events of the same outcome in the store's
    #: other kind of logs (``not_found`` says them); else None.
    event_hint: str | None = None

    def __post_init__(self) -> None:
        if self.total is None:
            self.total = len(self.candidates)

    @property
    def cut(self) -> bool:
        """True when more messages match than ``candidates`` lists."""
        return (self.total or 0) > len(self.candidates)

    def describe_query(self) -> str:
        """The query in words, times in ``tz``: ``Message-ID <a@b>, sender *@contoso.com``."""
        q = self.query
        words = []
        if q.get("text"):
            kind = _KINDS.get(q.get("kind") or "", "ID")
            if q.get("kind") == "message_id" and is_queue_id(q["text"]):
                kind = "Message-ID or queue ID"  # (an IIS SMTP relay's DATA line names either)
            words.append(f"{kind} {q['text']}" + (f" on {q['server']}" if q.get("server") else ""))
        elif q.get("server"):
            words.append(f"server {q['server']}")
        for key in ("sender", "recipient", "subject"):
            if q.get(key):
                words.append(f"{key} {q[key]}")
        for key in ("since", "until"):
            if q.get(key):
                when = datetime.fromisoformat(q[key]).astimezone(ZoneInfo(self.tz))
                words.append(f"{key} {when.isoformat(timespec='seconds')}")
        if q.get("event_id"):
            words.append(f"event {q['event_id']}")
        if q.get("verdict"):
            words.append(f"verdict {q['verdict']}")
        return ", ".join(words) or "the query"

    def first_seen(self, candidate: dict) -> str:
        """A listed message's first time in ``tz``: ``2026-03-02 01:02:29`` (``times.clock``)."""
        return clock(datetime.fromisoformat(candidate["date_time"]), ZoneInfo(self.tz), ms=False)

    @staticmethod
    def verdict_counts(candidate: dict) -> list[tuple[str, int]]:
        """A listed message's recipients' verdicts, the commonest first, then by name (empty
        where the trace was not asked for them: its ``outcome`` is then its last event's)."""
        counts: dict[str, int] = {}
        for v in candidate.get("verdicts") or []:
            counts[v["verdict"]] = counts.get(v["verdict"], 0) + 1
        return sorted(counts.items(), key=lambda x: (-x[1], x[0]))

    def verdicts_in_words(self, candidate: dict) -> str:
        """``failed``, ``2 delivered, 1 failed``; its last event's outcome without verdicts."""
        counts = self.verdict_counts(candidate)
        if len(counts) == 1:
            return counts[0][0].replace("_", " ")
        if counts:
            return ", ".join(f"{n} {v.replace('_', ' ')}" for v, n in counts)
        return candidate.get("outcome") or ""

    def case_note(self) -> str | None:
        """What was traced when no Message-ID is logged as given but one differing in case is
        (``query.as_given``); None otherwise."""
        given = self.query.get("as_given")
        if not given:
            return None
        return (
            f"no message has the Message-ID {given} exactly; traced {self.query['text']}, "
            "which differs from it only in case"
        )

    def notes(self) -> list[str]:
        """What a reader should know of how the query was read: a Message-ID traced in another
        case (``case_note``), a sender or recipient searched as another pattern
        (``query.typed``: ``contoso.com`` as ``*@contoso.com``)."""
        typed = self.query.get("typed") or {}
        said = [f"searched {k} {self.query[k]} for {v!r}" for k, v in typed.items()]
        return [n for n in (self.case_note(), *said) if n]

    def not_found(self) -> str:
        """The sentence that says nothing matched (and, for a time window outside the
        store's days, which days it holds)."""
        said = f"No message in the store matches {self.describe_query()}"
        if self.held_days:
            said += f": {held_words(self.held_days)}"
        if self.event_hint:
            said += f". {self.event_hint}"
        return said + "."

    def to_dict(self) -> dict:
        return {
            "query": self.query,
            "total": self.total,
            "candidates": self.candidates,
            "messages": [m.to_dict() for m in self.messages],
        }

    def _html(self, fragment: bool = False) -> str:
        from loganalyzer.trace.html import render_html

        return render_html(self, fragment=fragment)

    def verdicts(self) -> list[Verdict]:
        """Every recipient verdict of every traced message, members included."""
        return [v for m in self.messages for r in m.recipients for v in r.flatten()]
