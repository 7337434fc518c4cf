"""Messages and recipients as the generator follows them, with each recipient's story.

A story entry is `[time_ms, server, code, status, ndr_message_id]`, one per log row that names
the recipient, in time order. Codes: `pass` (the message moved on inside a server), `handoff`
(sent to the next server we log: intra-organisation SEND, the frontend's `250 2.6.0` reply in
the relay's log), and the
verdict codes `delivered`, `sent_external`, `failed`, `deferred`, `dropped`, `quarantined`,
`moderation`, `expanded`, plus `redirect` (the recipient was replaced; it takes its target's
verdict) and `dsn` (a DSN row after a failure; not a verdict of its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from loganalyzer.synth.org import User


@dataclass(slots=True)
class Rcpt:
    """One recipient of one message."""

    address: str
    kind: str  # mailbox, external, list, moderated, unknown, redirected
    user: User | None = None
    parent: str | None = None  # the list or the redirected address it came from
    story: list[list] = field(default_factory=list)
    target: Rcpt | None = None  # a redirected recipient's new recipient
    busy: int = 0  # the mailbox server answers 432 this many times before it accepts
    busy_on: str = ""  # ... that mailbox server (the next hop its deferrals wait for)
    resubmit: bool = False  # the first delivery is lost; Safety Net resubmits it
    remote: str = "ok"  # an Internet MX's answer: ok, greylist, reject550, reject554
    decision: str = "await"  # a moderated list: await, approve, reject

    def mark(self, t: int, server: str, code: str, status: str = "") -> None:
        self.story.append([t, server, code, status, None])


@dataclass(slots=True)
class Message:
    """One message (an NDR too) with its envelope and its recipients."""

    mid: str
    nid: str
    sender: str
    return_path: str
    subject: str
    size: int
    direction: str  # Incoming or Originating
    orig_time: int
    rcpts: list[Rcpt]  # as addressed
    all: list[Rcpt]  # every recipient in truth order: as addressed, then members and targets
    sender_user: User | None = None
    reference: str = ""  # an NDR's original Message-ID
    fate: str = ""  # poison or drop: what happens to the whole message
    oof: bool = False  # an automatic reply: external recipients are suppressed
    ndr_fails: bool = False  # its NDR is rejected by the sender's MX
    down: frozenset[str] = frozenset()  # recipient domains whose MX does not answer
    down_until: int = 0  # ... until then (ms; 0: never again)
    conn_defers: int = 0  # ... or answers only after this many failed attempts
    received_at: int | None = None
    iids: dict[str, str] = field(default_factory=dict)  # hub internal-message-id per server
    ndrs: list[Message] = field(default_factory=list)
