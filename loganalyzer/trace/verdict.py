"""A recipient's verdict in a trace: its steps, and the verdict in plain words.

The rules that decide a verdict are ``loganalyzer.fate``'s (the report and the ``messages``
view read the same rules as SQL); here they are applied to the steps of one trace.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import eventcodes
from loganalyzer import fate
from loganalyzer.fate import is_handoff, status_text

__all__ = [
    "DROP_REASONS",
    "HANDED",
    "Step",
    "classify",
    "drop_reason",
    "explain",
    "is_handoff",
    "said",
    "status_text",
    "summary",
    "verdict_of",
]

#: Why a final event dropped or quarantined a recipient, by (event, source) or by event
#: alone: such rows usually carry no status to explain.
DROP_REASONS = {
    "SUPPRESSED": (
        "suppressed: Exchange sends no copy and no non-delivery report, as it does for an"
        " automatic reply (such as an out-of-office notice) that the remote domain settings"
        " do not allow, or for a duplicate"
    ),
    ("DROP", "AGENT"): (
        "deleted by a transport agent (for example a transport rule) without a non-delivery report"
    ),
    "DROP": (
        "deleted without a non-delivery report, for example silently discarded spam or a"
        " finished moderation request"
    ),
    "1039": "deleted as spam by the Intelligent Message Filter, without a non-delivery report",
    "FilteredAsSpam": "filtered as spam by Exchange Online and blocked (not quarantined)",
    "Quarantined": "Exchange Online's quarantine: spam, bulk, phishing or malware",
    "Recalled": "recalled by its sender (Exchange Online took it back from the mailbox)",
}


#: What a recipient last seen at a hand-off says of the next hop, by what the store holds of
#: its logs (``build``'s ``_Stories.handed`` decides which): none of its logs; none of that
#: time; its logs of that time, without the message (look at its queues and agents, not for
#: files); no next hop named (an Exchange 2003 log names only the server that wrote it); and
#: of a recipient not handed on, the server it was last seen on.
HANDED = {
    "absent": "handed to {hop}, whose logs are not in the store",
    "gap": "handed to {hop}, whose logs of that time are not in the store",
    "silent": (
        "handed to {hop}, whose logs of that time are in the store and hold no record of"
        " the message"
    ),
    "unnamed": "handed on by {server} (the log does not name the next server)",
    # not handed on: its last row (a receipt, a submission, an agent's note) leaves it on
    # the server that wrote it, whose later rows would say more
    "kept": (
        "no later record of it in {server}'s logs (in a queue there, or its logs of later"
        " times are not in the store)"
    ),
}


@dataclass
class Step:
    """One row naming a recipient."""

    time: datetime
    server: str
    event: str
    status: str | None
    row: dict
    kind: str = "pass"  # pass, handoff, final, expand, redirect


def said(t: datetime, tz) -> str:
    """A time in a verdict's plain words: ``2026-03-02 00:02:29 UTC`` (in ``tz``, a
    ``ZoneInfo``); the JSON keeps the exact times."""
    return t.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S %Z")


def explain(status: str | None) -> tuple[str | None, str | None]:
    """(enhanced status code, meaning) of a status text."""
    codes = eventcodes.explain_status(status or "")
    enhanced = next((c.code for c in codes if c.family.startswith("enhanced")), None)
    return enhanced, (codes[0].meaning if codes else None)


def classify(step: Step, servers: set[str]) -> None:
    """Set ``step.kind`` by the rules of ``fate`` (expansions and redirects are set apart)."""
    step.kind = fate.kind_of(step.event, step.row, servers)


def verdict_of(step: Step) -> str:
    """The verdict of a recipient whose last step is ``step``."""
    return fate.verdict_of(step.event, step.kind)


def drop_reason(event: str | None, source: str | None = None) -> str | None:
    """Why ``event`` (from ``source``) dropped a recipient; None when no reason is known."""
    return DROP_REASONS.get((event, source)) or DROP_REASONS.get(event)


#: A status's codes: the reply code and the enhanced status code (``550 5.7.1``).
_CODES = re.compile(r"\b[245]\d\d\b|\b[245]\.\d{1,3}\.\d{1,3}\b")


def _general(status: str, meaning: str) -> str:
    """The meaning of a status's code as it is said beside the status: marked as the code's
    meaning in general where the server gave its own words (a moderator's rejection is a
    5.7.1, whose table meaning names relaying and rules: read as the reason, it contradicted
    the server's)."""
    code = _CODES.findall(status)
    words = re.sub(r"[^A-Za-z]+", "", _CODES.sub("", status))
    if code and len(words) > 3:
        return f"{code[-1]}, in general: {meaning.rstrip('.')}"
    return meaning


def summary(
    verdict: str,
    server: str | None,
    when: str,
    status: str | None,
    meaning: str | None,
    extra: str = "",
    reason: str | None = None,
    since: str | None = None,
    next_hop: str | None = None,
    unknown: str | None = None,
    handed: str | None = None,
) -> str:
    """The verdict in plain words; ``reason`` says why a recipient was dropped or where it
    was quarantined (by default the poison message queue); ``since``
    when a deferred recipient's first deferral there was (``when``: its last); ``next_hop``
    the server a recipient last seen was handed to, when the logs name it, and ``handed``
    what the store holds of its logs (a key of ``HANDED``); ``unknown`` what a status that
    gives no verdict says instead (``fate.NO_VERDICT``)."""
    why = f": {status}" + (f" ({_general(status, meaning)})" if meaning else "") if status else ""
    waiting = f"since {when}" if since in (None, when) else f"since {since} (last try {when})"
    if verdict == "dropped" and reason:
        why = f": {reason}" + (f"; status {why[2:]}" if why else "")
    words = {
        "delivered": f"delivered to a mailbox on {server} at {when}",
        "sent_external": f"sent out of the organisation by {server} at {when}{why}",
        "failed": f"failed at {server} at {when}{why}",
        "deferred": f"still deferred at {server} {waiting}; last error{why or ': unknown'}",
        "dropped": f"dropped by {server} at {when}{why}",
        "quarantined": f"quarantined ({reason or 'poison message queue'}) on {server} at {when}",
        "moderation": f"awaiting a moderator's decision since {when} ({server})",
        "expanded": f"a distribution list, expanded on {server} at {when}",
        "last_seen": f"last seen at {server} at {when}; "
        + (
            unknown
            if unknown
            else HANDED[handed].format(hop=next_hop, server=server)
            if handed
            else "the next hop's logs are not in the store"
        ),
    }
    return words[verdict] + extra
