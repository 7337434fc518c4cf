"""Building one message's trace: timeline, SMTP conversations and recipient verdicts."""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from functools import cache

import eventcodes
from loganalyzer.fate import (
    DEFERS,
    EXPANDS,
    NO_VERDICT,
    REDIRECTS,
    SETTLES,
    next_hop,
    step_rank,
)
from loganalyzer.pages import display_subject
from loganalyzer.trace.model import Event, Line, MessageTrace, Verdict
from loganalyzer.trace.verdict import (
    Step,
    classify,
    drop_reason,
    explain,
    said,
    status_text,
    summary,
    verdict_of,
)

#: Whether the store holds the tracking log of a server (``EX02``) of a time.
Logged = Callable[[str, datetime], bool]
#: The server that queued a message, in Exchange's reply to DATA
#: (``[InternalId=..., Hostname=ex01.contoso.com]``).
_QUEUED_BY = re.compile(r"\bHostname=([A-Za-z0-9.-]+)")


@cache
def meaning(code: str | None, family: str | None = None) -> tuple[str, str]:
    """(name, meaning) of an event code."""
    if not code:
        return "", ""
    try:
        entry = eventcodes.lookup(code, family)
        return entry.name, entry.meaning
    except (eventcodes.UnknownCode, ValueError):
        return "unknown event", "an event code no table knows"


def _family(row: dict) -> str | None:
    return "exchange2003" if row.get("log_format") == "exchange2003-tracking" else None


def _line(r: dict) -> Line:
    data = r.get("data")
    if r.get("log_format") == "iis-smtp" and r.get("command"):
        # an IIS line keeps the verb apart from its argument; an Exchange line holds both
        data = f"{r['command']} {data}" if data else r["command"]
    return Line(
        r["date_time"],
        r.get("direction"),
        r.get("event"),
        data,
        r.get("reply_code"),
        r.get("server"),
        r.get("session_id"),
        r.get("context"),
    )


def _iis_sessions(lines: list[dict]) -> list[list[dict]]:
    """IIS lines cut into sessions around the line naming the message (the DATA line inbound,
    the next server's ``250`` reply outbound): from the HELO/EHLO before it to the QUIT after.
    """
    by_peer: dict[tuple, list[dict]] = defaultdict(list)
    for r in lines:
        if r.get("log_format") == "iis-smtp" and "data_time" in r:
            by_peer[(r["server"], r["remote_ip"], r["direction"], r["data_time"])].append(r)
    sessions = []
    for group in by_peer.values():
        group = sorted(
            {(x["date_time"], x["file"], x["line"]): x for x in group}.values(),
            key=lambda x: (x["date_time"], x["file"], x["line"]),
        )
        anchor = next(
            i
            for i, x in enumerate(group)
            if x["date_time"] == x["data_time"]
            and (x.get("message_id") or x.get("queue_id")) == x.get("anchor_id")
        )
        start = max(
            (
                i
                for i, x in enumerate(group[: anchor + 1])
                if (x.get("command") or "").upper() in ("HELO", "EHLO")
            ),
            default=0,
        )
        end = next(
            (
                i
                for i, x in enumerate(group)
                if i > anchor and (x.get("command") or "").upper() == "QUIT"
            ),
            len(group) - 1,
        )
        session = group[start : end + 1]
        for x in session:
            x["is_anchor"] = x is group[anchor]
        sessions.append(session)
    return sorted(sessions, key=lambda s: s[0]["date_time"])


#: Said of a message whose transaction holds another message's DATA line (``_transaction``).
MIXED = (
    "; the log mixes this client's sessions here: which sender and recipients are this "
    "message's cannot be told"
)


def _transaction(session: list[dict]) -> list[dict]:
    """The lines of the anchor's mail transaction (``tx`` from ``trace.relay``); none when
    it holds another message's DATA line too (two sessions' lines mixed: whose sender and
    recipients are whose cannot be told)."""
    anchor = next(x for x in session if x.get("is_anchor"))
    if (anchor.get("tx_messages") or 0) > 1:
        return []
    return [x for x in session if x.get("tx") == anchor.get("tx")]


def _iis_sender(sessions: list[list[dict]]) -> str | None:
    """The MAIL FROM address the first inbound IIS session accepted (None: the null sender)."""
    for s in sessions:
        if s[0].get("direction") == "receive":
            return next((x["mail_from"] for x in _transaction(s) if x.get("mail_from")), None)
    return None


def _iis_event(session: list[dict]) -> Event:
    first = session[0]
    anchor = next(x for x in session if x.get("is_anchor"))
    # the RCPTs the server accepted in the message's own transaction (trace.relay): a
    # refused one is a rejected attempt, not a recipient
    rcpts = list(dict.fromkeys(x["rcpt_to"] for x in _transaction(session) if x.get("rcpt_to")))
    outbound = first.get("direction") == "send"
    peer = first.get("remote_ip")
    if outbound and (queued := _QUEUED_BY.search(anchor.get("data") or "")):
        peer = f"{queued[1].lower()} ({peer})" if peer else queued[1].lower()
    return Event(
        date_time=anchor["date_time"],
        server=first["server"],
        event_id="SEND" if outbound else "RECEIVE",
        meaning=(
            "relayed to the next server (IIS SMTP)"
            if outbound
            else "received by the IIS SMTP service"
        )
        + (MIXED if (anchor.get("tx_messages") or 0) > 1 else ""),
        source="IIS SMTP",
        outcome="transferred" if outbound else "received",
        client=None if outbound else first.get("remote_ip"),
        server_host=peer if outbound else None,
        connector=first.get("connector_id"),
        internal_message_id=None,
        recipients=[{"address": a, "status": None, "status_meaning": None} for a in rcpts],
        conversation=[_line(x) for x in session],
        message_id=anchor.get("message_id"),
        log_format="iis-smtp",
        line=anchor.get("line"),
    )


def _event_chain(status: str | None) -> bool:
    """Whether a status is an Enhanced summary's chain of a recipient's events (``Receive,
    Defer``): what happened, not an error or a reply to show as the recipient's status."""
    events = [e.strip() for e in (status or "").split(",")]
    return bool(status) and all(_exo_event(e) for e in events)


@cache
def _exo_event(name: str) -> bool:
    try:
        return eventcodes.lookup(name, "exo-status") is not None
    except eventcodes.UnknownCode:
        return False


def _interleaved(session: list[dict]) -> bool:
    """Whether another message's session to the same peer in the same second is logged among
    this one's lines (IIS logs name no session): its RCPT lines cannot be told apart."""
    own = next(x for x in session if x.get("is_anchor")).get("message_id")
    return any(x.get("message_id") not in (None, own) for x in session)


def _event(row: dict, conversation: list[Line]) -> Event:
    statuses = row.get("recipient_status") or []
    recipients = []
    for i, address in enumerate(row.get("recipient_address") or []):
        status = statuses[i] if i < len(statuses) else None
        recipients.append(
            {
                "address": address,
                "status": status,
                "status_meaning": explain(status_text(status))[1] if status else None,
            }
        )
    client = row.get("client_hostname") or row.get("client_ip")
    if row.get("client_hostname") and row.get("client_ip"):
        client = f"{row['client_hostname']} ({row['client_ip']})"
    host = row.get("server_hostname") or row.get("server_ip")
    if row.get("server_hostname") and row.get("server_ip"):
        host = f"{row['server_hostname']} ({row['server_ip']})"
    return Event(
        date_time=row["date_time"],
        server=row["server"],
        event_id=row["event_id"],
        name=meaning(row["event_id"], _family(row))[0],
        meaning=meaning(row["event_id"], _family(row))[1],
        source=row.get("source"),
        outcome=row.get("outcome"),
        client=client,
        server_host=host,
        connector=row.get("connector_id"),
        internal_message_id=row.get("internal_message_id"),
        recipients=recipients,
        conversation=conversation,
        message_id=row.get("message_id"),
        related=row.get("related_recipient_address"),
        reference=row.get("reference"),
        log_format=row.get("log_format"),
        file=row.get("file"),
        line=row.get("line"),
        is_ndr=bool(row.get("is_ndr")),
    )


class _Stories:
    """Each recipient's steps, the lists' members and the redirects."""

    def __init__(self, servers: set[str], logged: Logged | None = None) -> None:
        self.servers = servers
        #: Whether the store holds a server's tracking log of a time (None: not known, as
        #: if it did not)
        self.logged: Logged = logged or (lambda server, t: False)
        self.steps: dict[str, list[Step]] = defaultdict(list)
        self.names: dict[str, str] = {}
        self.order: list[str] = []
        self.members: dict[str, list[str]] = defaultdict(list)
        self.parent: dict[str, str] = {}
        self.target: dict[str, str] = {}
        self.linked: list[tuple[datetime, str]] = []  # (time, Message-ID) of 2003 NDR lines

    def add(self, address: str, step: Step) -> str:
        key = address.strip().lower()
        if key not in self.names:
            self.names[key] = address.strip()
            self.order.append(key)
        if step.kind not in ("expand", "redirect"):
            classify(step, self.servers)
        self.steps[key].append(step)
        return key

    def row(self, row: dict) -> None:
        t, server, ev = row["date_time"], row["server"], row["event_id"]
        statuses = row.get("recipient_status") or []
        related = row.get("related_recipient_address")
        recipients = row.get("recipient_address") or []
        if (ev in EXPANDS or ev in REDIRECTS) and related:
            kind = "expand" if ev in EXPANDS else "redirect"
            head = self.add(related, Step(t, server, ev, None, row, kind))
            for address in recipients:
                key = self.add(address, Step(t, server, ev, None, row))
                self.parent.setdefault(key, head)
                if kind == "expand" and key not in self.members[head]:
                    self.members[head].append(key)
                elif kind == "redirect":
                    self.target[head] = key
            return
        for i, address in enumerate(recipients):
            self.add(address, Step(t, server, ev, statuses[i] if i < len(statuses) else None, row))

    def iis(self, event: Event) -> None:
        row = {"log_format": "iis-smtp", "server_hostname": event.server_host}
        for r in event.recipients:
            step = Step(event.date_time, event.server, event.event_id, None, row)
            self.add(r["address"], step)
            if event.event_id == "RECEIVE":
                step.kind = "pass"

    def verdict(self, key: str, received_at: datetime | None, tz, missing: list) -> Verdict:
        steps = sorted(
            (s for s in self.steps[key] if s.kind != "ignored"),
            key=lambda s: (s.time, step_rank(s.kind, verdict_of(s))),
        )
        address = self.names[key]
        parent = self.parent.get(key)
        if not steps:
            return Verdict(
                address,
                "last_seen",
                None,
                None,
                "no log row names it",
                expanded_from=self.names.get(parent) if parent else None,
            )
        last = steps[-1]

        def shown(t: datetime) -> str:
            return said(t, tz) if tz else str(t)

        when = shown(last.time)
        if last.kind == "redirect" and key in self.target:
            target = self.verdict(self.target[key], received_at, tz, missing)
            return Verdict(
                address,
                target.verdict,
                target.server,
                target.date_time,
                f"redirected to {target.address}: {target.summary}",
                target.latency_s,
                target.status,
                target.status_meaning,
                target.enhanced_status,
                target.ndr_message_id,
                self.names.get(parent) if parent else None,
                target.address,
                [target],
            )
        if last.kind == "expand":
            members = [self.verdict(m, received_at, tz, missing) for m in self.members[key]]
            return Verdict(
                address,
                "expanded",
                last.server,
                last.time,
                summary("expanded", last.server, when, None, None, f" to {len(members)} members"),
                expanded_from=self.names.get(parent) if parent else None,
                members=members,
            )
        verdict = verdict_of(last) if last.kind in ("final", "handoff") else "last_seen"
        status = (
            status_text(last.status)
            if verdict in ("failed", "deferred", "sent_external", "dropped")
            and not _event_chain(last.status)
            else None
        )
        enhanced, status_meaning = explain(status) if status else (None, None)
        ndr = self._ndr(last) if verdict == "failed" else None
        latency = None
        if verdict in ("delivered", "sent_external") and received_at is not None:
            latency = round((last.time - received_at).total_seconds(), 3)
        host, handed = self.handed(last) if verdict == "last_seen" else (None, None)
        if handed in ("absent", "gap") or (last.kind == "handoff" and handed is None):
            after = {"server": host or None, "after": last.time}
            if after not in missing:
                missing.append(after)
        extra = f"; bounced back to the sender (NDR {ndr})" if ndr else ""
        if verdict != "deferred" and (other := _also_said(steps, verdict)):
            extra += f"; another record of the same time says {other} ({verdict} outranks it)"
        return Verdict(
            address,
            verdict,
            last.server,
            last.time,
            summary(
                verdict,
                last.server,
                when,
                status,
                status_meaning,
                extra,
                drop_reason(last.event, last.row.get("source")),
                shown(_first_deferral(steps).time) if verdict == "deferred" else None,
                host,
                NO_VERDICT.get(last.event) if verdict == "last_seen" else None,
                handed,
            ),
            latency,
            status,
            status_meaning,
            enhanced,
            ndr,
            self.names.get(parent) if parent else None,
        )

    def handed(self, last: Step) -> tuple[str | None, str | None]:
        """The next hop of a recipient last seen at ``last`` and what the store holds of its
        logs (a key of ``verdict.HANDED``: ``kept`` without a hand-off; None: one to a host
        the row leaves empty). Missing logs are listed for ``absent`` and ``gap``, and for an
        empty host."""
        if last.kind != "handoff":
            return None, "kept"
        hop = next_hop(last.row)
        if hop is None:
            return None, "unnamed"
        if not hop:
            return None, None
        if hop not in self.servers:
            return hop, "absent"
        return hop, "silent" if self.logged(hop, last.time) else "gap"

    def _ndr(self, failed: Step) -> str | None:
        """The Message-ID of the bounce: the reference of the DSN row after the failure; in
        Exchange 2000/2003 logs, the first NDR naming the message in Linked-MSGID after it."""
        for steps in self.steps.values():
            for s in steps:
                if s.event == "DSN" and s.time >= failed.time and s.row.get("reference"):
                    ref = s.row["reference"]
                    return ref if ref.startswith("<") else f"<{ref}>"
        return next((mid for t, mid in self.linked if t >= failed.time), None)


def _also_said(steps: list[Step], verdict: str) -> str | None:
    """Another settled verdict (``fate.SETTLES``) a final step at the instant of the last of
    ``steps`` gives: two exports of a message that disagree."""
    others = {
        verdict_of(s)
        for s in steps
        if s.time == steps[-1].time and s.kind == "final" and SETTLES.get(verdict_of(s), 1)
    }
    return ", ".join(sorted(others - {verdict})) or None


def _first_deferral(steps: list[Step]) -> Step:
    """The first of the deferrals that end ``steps`` (in time order) on the last one's
    server: steps between them that decide nothing (an agent's note) do not end the run."""
    first = steps[-1]
    for s in reversed(steps[:-1]):
        if s.server != first.server or (s.kind in ("final", "handoff") and s.event not in DEFERS):
            break
        if s.event in DEFERS:
            first = s
    return first


def build(
    rows: list[dict],
    smtp: list[dict],
    servers: set[str],
    tz,
    message_id: str | None = None,
    queue_id: str | None = None,
    logged: Logged | None = None,
) -> MessageTrace:
    """The trace of one message from its rows (NDR rows flagged ``is_ndr``) and its SMTP
    lines; ``message_id`` (or ``queue_id``, where its DATA line names no Message-ID) names a
    message that only an IIS relay's log holds; ``logged``: whether the store holds a
    server's tracking log of a time (a hand-off to a server of the store)."""
    by_session: dict[tuple, list[dict]] = defaultdict(list)
    sent: dict[tuple, list[dict]] = defaultdict(list)  # Send-log lines naming a message
    for r in smtp:
        if r.get("session_id"):
            by_session[(r["session_id"], r["server"])].append(r)
            if r.get("direction") == "send" and r.get("message_id"):
                sent[(r["message_id"], r["server"])].append(r)
    events: list[Event] = []
    for row in rows:
        session = (row.get("source_context") or "").split(";", 1)[0].strip()
        lines = by_session.get((session, row["server"])) or []
        if not lines and session:  # a log whose server name is not the tracking log's
            lines = [x for (sid, _), v in by_session.items() if sid == session for x in v]
        if not lines and not session and row.get("event_id") in _SENDS:
            lines = _sent_session(row, sent, by_session)
        lines = sorted(lines, key=lambda x: (x.get("sequence_number") or 0, x["date_time"]))
        events.append(_event(row, [_line(x) for x in lines]))
    sessions = _iis_sessions(smtp)
    iis = [(_iis_event(s), _interleaved(s)) for s in sessions]
    events += [e for e, _ in iis]
    events.sort(key=lambda e: (e.date_time, e.server or "", e.line or 0))
    _mark_id_changes(events)

    own = [r for r in rows if not r.get("is_ndr")]
    stories = _Stories(servers, logged)
    stories.linked = sorted(
        (r["date_time"], r["message_id"])
        for r in rows
        if r.get("is_ndr") and r.get("linked_msgid") and r.get("message_id")
    )
    for row in own:
        stories.row(row)
    known = set(stories.order)
    for e, interleaved in iis:
        if interleaved and known:  # another session's RCPTs are among its lines
            e.recipients = [r for r in e.recipients if r["address"].strip().lower() in known]
        stories.iis(e)
    received = [e.date_time for e in events if not e.is_ndr and e.event_id == "RECEIVE"]
    received_at = min(received) if received else (own[0]["date_time"] if own else None)
    missing: list[dict] = []
    top = [k for k in stories.order if k not in stories.parent]
    verdicts = [stories.verdict(k, received_at, tz, missing) for k in top]
    first = own[0] if own else (rows[0] if rows else {})
    return MessageTrace(
        message_id=first.get("message_id") or message_id,
        network_message_id=next(
            (r["network_message_id"] for r in own if r.get("network_message_id")), None
        ),
        subject=display_subject(
            next((r["message_subject"] for r in own if r.get("message_subject")), None)
        )
        or None,
        sender=next((r["sender_address"] for r in own if r.get("sender_address")), None)
        or _iis_sender(sessions),
        received_at=received_at,
        size=next((r["total_bytes"] for r in own if r.get("total_bytes")), None),
        events=events,
        recipients=verdicts,
        missing_logs=[{"server": m["server"], "after": m["after"].isoformat()} for m in missing],
        ndr_message_ids=sorted(
            {r["message_id"] for r in rows if r.get("is_ndr") and r.get("message_id")}
        ),
        queue_id=queue_id,
    )


_SENDS = ("SEND", "SENDEXTERNAL")


def _sent_session(row: dict, sent: dict, by_session: dict) -> list[dict]:
    """The Send-log session of a SEND row without a session ID: the one whose
    ``InternetMessageId`` line names the row's message, the last such line before the row."""
    named = sent.get((row.get("message_id"), row["server"])) or []
    before = [x for x in named if x["date_time"] <= row["date_time"]] or named
    if not before:
        return []
    last = max(before, key=lambda x: x["date_time"])
    return by_session.get((last["session_id"], row["server"])) or []


def _mark_id_changes(events: list[Event]) -> None:
    last: tuple[str, str] | None = None
    for e in events:
        if e.is_ndr or not e.internal_message_id:
            continue
        if last and e.server != last[0] and e.internal_message_id != last[1]:
            e.internal_id_changed = True
        last = (e.server, e.internal_message_id)
