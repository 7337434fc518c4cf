"""A verdict per recipient, from the last row of the logs that names it.

Every row that names a recipient is one step of its story, in time order. The last step
decides: a final event (DELIVER, FAIL, DEFER, DROP, ...) gives its verdict; a hand-off to
another server of the organisation, or any other step, with nothing after it in the store,
means the recipient was last seen there (the next hop's logs are missing).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

import eventcodes

#: Final events and the verdict they give the recipients they name.
FINAL = {
    "DELIVER": "delivered",
    "DUPLICATEDELIVER": "delivered",
    "FAIL": "failed",
    "DELIVERFAIL": "failed",
    "BADMAIL": "failed",
    "SUBMITFAIL": "failed",
    "RESUBMITFAIL": "failed",
    "MODERATORREJECT": "failed",
    "MODERATIONEXPIRE": "failed",
    "MODERATORSALLNDR": "failed",
    "DEFER": "deferred",
    "SUBMITDEFER": "deferred",
    "RESUBMITDEFER": "deferred",
    "DROP": "dropped",
    "SUPPRESSED": "dropped",
    "POISONMESSAGE": "quarantined",
    "INITMESSAGECREATED": "moderation",
}
#: Exchange 2000/2003 event numbers that end a recipient's story.
FINAL_2003 = {
    "1028": "delivered",
    "1023": "delivered",
    "9": "delivered",
    "1000": "delivered",
    "1030": "failed",
    "1021": "failed",
    "1022": "failed",
    "1026": "failed",
    "1032": "deferred",
    "1035": "deferred",
    "1037": "deferred",
    "1039": "dropped",
    "1040": "failed",
    "1041": "quarantined",
    "26": "expanded",  # Exchange 2000's "Distribution list expansion" names the list
}
#: Why a final event dropped a recipient, by (event, source) or by event alone: such rows
#: usually carry no status to explain.
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
}
SENDS = {"SEND", "SENDEXTERNAL", "1020", "1031", "7", "1002", "1003", "1011"}
#: Rows that are not steps of a recipient's story (a DSN row follows a failure).
IGNORED = {"DSN", "HADISCARD", "HARECEIVE"}
_INTERNAL_CONNECTOR = re.compile(
    r"intra-?organi[sz]ation|mailbox transport|"
    r"\\default |frontend",
    re.IGNORECASE,
)
_LED = re.compile(r"\{LED=(.*?)\}(?:;|\]|$)")


@dataclass
class Step:
    """One row naming a recipient."""

    time: datetime
    server: str
    event: str
    status: str | None
    row: dict
    kind: str = "pass"  # pass, handoff, final, expand, redirect


def status_text(status: str | None) -> str | None:
    """The error of a status: the LED value of a bracketed ``[{LED=...};...]`` list."""
    if not status:
        return None
    m = _LED.search(status)
    return m[1].strip() if m else status.strip()


def explain(status: str | None) -> tuple[str | None, str | None]:
    """(enhanced status code, meaning) of a status text."""
    codes = eventcodes.explain_status(status or "")
    enhanced = next((c.code for c in codes if c.family.startswith("enhanced")), None)
    return enhanced, (codes[0].meaning if codes else None)


def is_handoff(row: dict, servers: set[str]) -> bool:
    """A SEND to another server of the organisation (not out of it)."""
    if row.get("log_format") == "iis-smtp":
        return True  # the relay hands everything to the organisation it fronts
    host = (row.get("server_hostname") or "").split(".")[0].upper()
    return bool(_INTERNAL_CONNECTOR.search(row.get("connector_id") or "")) or host in servers


def classify(step: Step, servers: set[str]) -> None:
    ev = step.event
    if ev in IGNORED:
        step.kind = "ignored"
    elif ev in SENDS:
        step.kind = "handoff" if is_handoff(step.row, servers) else "final"
    elif ev in FINAL or ev in FINAL_2003:
        step.kind = "final"


def verdict_of(step: Step) -> str:
    if step.event in SENDS:
        return "sent_external" if step.kind == "final" else "last_seen"
    return FINAL.get(step.event) or FINAL_2003.get(step.event) or "last_seen"


def drop_reason(event: str | None, source: str | None = None) -> str | None:
    """Why ``event`` (from ``source``) dropped a recipient; None when no reason is known."""
    return DROP_REASONS.get((event, source)) or DROP_REASONS.get(event)


def summary(
    verdict: str,
    server: str | None,
    when: str,
    status: str | None,
    meaning: str | None,
    extra: str = "",
    reason: str | None = None,
) -> str:
    """The verdict in plain words; ``reason`` says why a recipient was dropped."""
    why = f": {status}" + (f" ({meaning})" if meaning else "") if status else ""
    if verdict == "dropped" and reason:
        why = f": {reason}" + (f"; status {why[2:]}" if why else "")
    words = {
        "delivered": f"delivered to a mailbox on {server} at {when}",
        "sent_external": f"sent out of the organisation by {server} at {when}{why}",
        "failed": f"failed at {server} at {when}{why}",
        "deferred": f"still deferred at {server} since {when}; last error{why or ': unknown'}",
        "dropped": f"dropped by {server} at {when}{why}",
        "quarantined": f"quarantined (poison message queue) on {server} at {when}",
        "moderation": f"awaiting a moderator's decision since {when} ({server})",
        "expanded": f"a distribution list, expanded on {server} at {when}",
        "last_seen": f"last seen at {server} at {when}; the next hop's logs are not in the store",
    }
    return words[verdict] + extra
