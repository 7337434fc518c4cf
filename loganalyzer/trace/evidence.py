"""Evidence from the logs the tracking log does not cover, added to a traced message's verdicts.

- A deferred, failed or last-seen recipient: the connectivity log of the server that held it,
  for its next hop (the recipient's domain) over the message's window: what was tried, what
  failed, how often, since when. The failure is named (``next_hop_failure``: dns, refused,
  timeout, tls, other) and summarised in the verdict sentence.
- A message an anti-spam agent quarantined or deleted after accepting it: which agent, why,
  with what SCL, for each recipient it names.
Each record keeps its log, server, time, text, file and line (``Verdict.evidence``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from loganalyzer.store.duck import records
from loganalyzer.trace.model import MessageTrace, Verdict
from loganalyzer.trace.rejected import REMOVES
from loganalyzer.trace.verdict import said

if TYPE_CHECKING:
    import duckdb

#: Verdicts whose next hop may explain them.
WAITING = ("deferred", "failed", "last_seen")
#: How many connectivity records a verdict keeps as evidence (the latest).
KEEP = 50
_WORDS = {
    "dns": "DNS query failed",
    "refused": "connection refused",
    "timeout": "connection timed out",
    "tls": "TLS negotiation failed",
    "other": "failed",
}


def attach(con: duckdb.DuckDBPyConnection, messages: list[MessageTrace], tz: str) -> None:
    """Add next-hop and agent evidence to the verdicts of ``messages`` (in place)."""
    zone = ZoneInfo(tz)
    traced = []
    for m in messages:
        verdicts = [v for r in m.recipients for v in r.flatten()]
        if any(v.stage for v in verdicts):
            continue  # an attempt (trace.rejected) carries its own evidence
        start = m.received_at or min((e.date_time for e in m.events), default=None)
        for v in verdicts:
            if v.verdict in WAITING and start is not None and v.date_time is not None:
                _next_hop(con, v, start, zone)
        traced.append((m, verdicts))
    decisions = _decisions(con, [m for m, _ in traced])
    for m, verdicts in traced:
        rows = decisions.get(m.message_id or "", []) or decisions.get(
            m.network_message_id or "", []
        )
        _agents(rows, verdicts)


def _next_hop(con: duckdb.DuckDBPyConnection, v: Verdict, start: datetime, zone) -> None:
    domain = (v.address or "").rpartition("@")[2].lower()
    if not domain or not v.server:
        return
    lo, hi = start - timedelta(minutes=1), v.date_time + timedelta(minutes=1)
    rows = records(
        con.sql(
            "select * from connectivity where upper(server) = upper(?) "
            "and lower(destination) = ? and date_time between ? and ? "
            "and date between ? and ? order by date_time, line",
            params=[v.server, domain, lo, hi, lo.date(), hi.date()],
        )
    )
    sessions: dict[str, list[dict]] = {}
    for r in rows:
        sessions.setdefault(r.get("session_id") or "", []).append(r)
    failed = []
    for sid, rs in sessions.items():
        bad = [r for r in rs if r.get("failure")]
        if bad:
            failed.append((sid, bad))
    if not failed:
        return
    kinds = [bad[0]["failure"] for _, bad in failed]
    v.next_hop_failure = kinds[-1]
    last_sid, last_bad = failed[-1]
    last = last_bad[0]
    first_at = failed[0][1][0]["date_time"].astimezone(zone)
    ip = next((r for r in sessions[last_sid] if r.get("remote_ip")), None)
    target = f"{ip['remote_ip']}:{ip['remote_port'] or 25}" if ip else domain
    v.summary += (
        f"; next hop {domain}: {_WORDS[v.next_hop_failure]} ({last['error']}) at {target},"
        f" {len(failed)} of {len(sessions)} attempts failed since {said(first_at, zone)}"
    )
    kept = [r for _, bad in failed for r in bad][-KEEP:]
    v.evidence += [_record("connectivity", r, r.get("description") or "") for r in kept]


def _decisions(con: duckdb.DuckDBPyConnection, messages: list[MessageTrace]) -> dict:
    """The agents' quarantines and deletes of these messages, in one query (one a message
    read every agent row again for each of thousands: ``trace --all``), by Message-ID and by
    network message ID."""
    ids = sorted({m.message_id for m in messages if m.message_id})
    nids = sorted({m.network_message_id for m in messages if m.network_message_id})
    if not ids and not nids:
        return {}
    rows = records(
        con.sql(
            "select * from agent where (list_contains(?, message_id) "
            "or list_contains(?, network_message_id)) "
            f"and {REMOVES} order by date_time",
            params=[ids, nids],
        )
    )
    out: dict[str, list[dict]] = {}
    for a in rows:
        for key in {a.get("message_id"), a.get("network_message_id")} - {None, ""}:
            out.setdefault(key, []).append(a)
    return out


def _agents(rows: list[dict], verdicts: list[Verdict]) -> None:
    """Quarantines and deletes of the accepted message by an anti-spam agent."""
    for a in rows:
        named = {x.lower() for x in a.get("recipient_address") or []}
        data = a.get("reason_data")
        scl = f", SCL {data}" if data and (a.get("reason") or "").startswith("Scl") else ""
        words = f"; {a['action']} by the {a['agent']} ({a.get('reason') or 'no reason'}{scl})"
        for v in verdicts:
            if not named or (v.address or "").lower() in named:
                v.summary += words
                v.agent = v.agent or a.get("agent")
                v.reason = v.reason or a.get("reason")
                v.evidence.append(_record("agent", a, f"{a['agent']} {a['action']}"))


def _record(log: str, r: dict, text: str) -> dict:
    return {
        "log": log,
        "server": r.get("server"),
        "date_time": r["date_time"],
        "text": text,
        "file": r.get("file"),
        "line": r.get("line"),
    }
