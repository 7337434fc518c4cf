"""A trace as one self-contained HTML page (no scripts; every log value escaped).

The page opens with each recipient's journey in one line (where the message came from, the
servers that logged it, where it ended), then the verdicts, then the timeline. Each event
row names its kind briefly (its long meaning is a tooltip and is listed once under the
timeline); the SMTP conversation of a hop is folded under its row, one log line per line.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from jinja2 import Environment

from loganalyzer.fate import host_name
from loganalyzer.pages import page_environment
from loganalyzer.times import clock, iso

if TYPE_CHECKING:
    from loganalyzer.trace.model import Event, MessageTrace, TraceResult, Verdict

#: Page policy: no scripts, no network; inline styles only.
CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:"

#: How a journey ends, by verdict; ``None``: at the external host it was sent to.
_ENDS = {
    "delivered": "mailbox",
    "sent_external": None,
    "failed": "failed",
    "deferred": "deferred",
    "dropped": "dropped",
    "quarantined": "quarantined",
    "moderation": "awaiting moderation",
    "expanded": "list expanded",
    "last_seen": "last seen here",
}
#: The mark of the last server of a journey that went wrong (or stopped) there.
_MARKS = {
    "failed": "\u2717",
    "dropped": "\u2717",
    "quarantined": "\u2717",
    "deferred": "\u2026",
    "last_seen": "\u2026",
}


@dataclass
class Journey:
    """One recipient's path: ``hops`` from the sender's side to its end; ``mark``: the sign
    on the last server when it failed or stopped there; ``depth`` > 0 for a list's members."""

    address: str
    verdict: str
    hops: list[str]
    end: str
    mark: str
    depth: int = 0
    note: str = ""
    members: list[Journey] = field(default_factory=list)


def _origin(m: MessageTrace) -> str:
    """Where the message came from: the client of its first RECEIVE, or the sender's mailbox."""
    first = next((e for e in m.events if e.event_id == "RECEIVE" and not e.is_ndr), None)
    if first is None:
        return "sender"
    if (first.source or "").upper() == "STOREDRIVER":
        return "sender's mailbox"
    return host_name(first.client) or "sender"


def _names(e: Event) -> set[str]:
    return {(r.get("address") or "").lower() for r in e.recipients} | {(e.related or "").lower()}


def journey(m: MessageTrace, v: Verdict, depth: int = 0) -> Journey:
    """The servers that logged ``v``'s recipient in the order they first did, and its end."""
    key = (v.address or "").lower()  # none: an attempt refused before RCPT
    mine = [e for e in m.events if not e.is_ndr and key and key in _names(e)]
    servers = list(dict.fromkeys(e.server for e in mine if e.server))
    if v.server and v.server not in servers:
        servers.append(v.server)
    end = _ENDS.get(v.verdict, v.verdict.replace("_", " "))
    if end is None:  # sent out: the host of the last SEND that named it
        sends = [e for e in mine if e.event_id.startswith("SEND") and e.server_host]
        end = host_name(sends[-1].server_host) if sends else "outside the organisation"
    if v.enhanced_status and v.verdict in ("failed", "deferred", "dropped"):
        end += f" {v.enhanced_status}"
    note = ""
    if v.redirected_to:
        note = f"redirected to {v.redirected_to}"
    elif v.verdict == "expanded":
        note = f"{len(v.members)} members"
    return Journey(
        v.address or "(no recipient yet)",
        v.verdict,
        [_origin(m), *servers],
        end,
        _MARKS.get(v.verdict, ""),
        depth,
        note,
        [journey(m, x, depth + 1) for x in v.members],
    )


def journeys(m: MessageTrace) -> list[Journey]:
    """Every recipient's journey, list members after their list."""
    out: list[Journey] = []

    def walk(j: Journey) -> None:
        out.append(j)
        for x in j.members:
            walk(x)

    for v in m.recipients:
        walk(journey(m, v))
    return out


def legend(m: MessageTrace) -> list[tuple[str, str, str]]:
    """(event, short name, meaning) of each kind of event in the timeline, once."""
    seen: dict[tuple[str, str], str] = {}
    for e in m.events:
        seen.setdefault((e.event_id, e.name or ""), e.meaning or "")
    return sorted((code, name, text) for (code, name), text in seen.items())


@cache
def environment() -> Environment:
    return page_environment(iso=iso)


def render_html(result, fragment: bool = False, opening: bool = True, closing: bool = True) -> str:
    """The trace page; ``fragment`` leaves out the document head (for Jupyter). Without
    ``opening`` only the traced messages and the end (without ``closing``, not the end): the
    parts of a page made a page of traces at a time (``render_pages``)."""
    zone = ZoneInfo(result.tz)

    def when(t) -> str:
        if isinstance(t, str):  # a missing-logs entry keeps its time as ISO text
            t = datetime.fromisoformat(t)
        return clock(t, zone)

    return (
        environment()
        .get_template("trace.html.j2")
        .render(
            result=result,
            fragment=fragment,
            opening=opening,
            closing=closing,
            csp=CSP,
            when=when,
            journeys=journeys,
            legend=legend,
        )
    )


def render_pages(results: Iterable[TraceResult]) -> Iterator[str]:
    """One page of every message of ``results`` (``trace_pages``), in parts as they come:
    memory holds a page of traces, not the whole page's."""
    last = None
    for result in results:
        yield render_html(result, opening=last is None, closing=False)
        last = result
    if last is not None:
        yield render_html(replace(last, messages=[]), opening=False)
