"""Trace a message across servers and log kinds: its timeline and a verdict per recipient."""

from __future__ import annotations

import os
from zoneinfo import ZoneInfo

from loganalyzer.store import Store
from loganalyzer.trace.build import build
from loganalyzer.trace.find import Query, candidates, message_rows, session_ids, smtp_rows
from loganalyzer.trace.model import VERDICTS, Event, MessageTrace, TraceResult, Verdict

__all__ = ["VERDICTS", "Event", "MessageTrace", "Query", "TraceResult", "Verdict", "trace"]


def trace(
    store: str | os.PathLike[str] | Store | None = None,
    query: str | None = None,
    *,
    server: str | None = None,
    sender: str | None = None,
    recipient: str | None = None,
    subject: str | None = None,
    since: str | None = None,
    until: str | None = None,
    event_id: str | None = None,
    tz: str = "UTC",
    all: bool = False,
    pick: int | None = None,
    limit: int = 200,
) -> TraceResult:
    """Trace the message(s) matching ``query`` (a Message-ID, a network message ID, or an
    internal message ID with ``server``) and the filters.

    One match is traced; several are listed as ``candidates`` and traced only with ``all``
    (each) or ``pick`` (the 1-based number in the list). ``tz`` is the zone of displayed times.
    """
    st = store if isinstance(store, Store) else Store(store)
    q = Query(query, server, sender, recipient, subject, since, until, event_id)
    zone = ZoneInfo(tz)
    with st.connect() as con:
        found = candidates(con, q, limit)
        chosen = found if all or len(found) == 1 else []
        if pick is not None:
            if not 1 <= pick <= len(found):
                raise ValueError(f"--pick {pick}: there are {len(found)} candidates")
            chosen = [found[pick - 1]]
        servers = _servers(con)
        messages: list[MessageTrace] = []
        per_message = message_rows(con, chosen) if chosen else []
        every = [r for rows in per_message for r in rows]
        ids = sorted(
            {r["message_id"] for r in every if r.get("message_id")}
            | {c["message_id"] for c in chosen if c.get("message_id")}
        )
        smtp = smtp_rows(con, session_ids(every), ids) if chosen else []
        sessions, iis = _group_smtp(smtp)
        for c, rows in zip(chosen, per_message, strict=True):
            mine = [x for r in rows for x in sessions.get(_session(r), [])]
            mine += [
                x
                for i in {r.get("message_id") for r in rows} | {c["message_id"]}
                for x in iis.get(i, [])
            ]
            messages.append(build(rows, mine, servers, zone, c["message_id"]))
    listed = [{**c, "date_time": c["date_time"].isoformat()} for c in found[:limit]]
    return TraceResult(q.to_dict(), listed, messages, tz)


def _session(row: dict) -> str:
    return (row.get("source_context") or "").split(";", 1)[0].strip()


def _group_smtp(smtp: list[dict]) -> tuple[dict, dict]:
    sessions: dict[str, list[dict]] = {}
    iis: dict[str, list[dict]] = {}
    for r in smtp:
        if "anchor_id" in r:
            iis.setdefault(r["anchor_id"], []).append(r)
        elif r.get("session_id"):
            sessions.setdefault(r["session_id"], []).append(r)
    return sessions, iis


def _servers(con) -> set[str]:
    """Every server whose logs are in the store, upper case."""
    names = con.sql("select distinct upper(server) from files").fetchall()
    return {n for (n,) in names if n}
