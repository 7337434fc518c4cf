"""Trace a message across servers and log kinds: its timeline and a verdict per recipient."""

from __future__ import annotations

import os

from loganalyzer.errors import BadInput
from loganalyzer.lookup import KEYS, Sketches
from loganalyzer.query import add_views, open_connection, point
from loganalyzer.store import Store
from loganalyzer.times import parse_time, zone
from loganalyzer.trace.build import build
from loganalyzer.trace.find import (
    Query,
    candidates,
    candidates_from_rows,
    days_of,
    message_rows,
    rows_for_id,
    session_ids,
    smtp_rows,
)
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
    (each) or ``pick`` (the 1-based number in the list). ``tz`` is the zone of displayed times
    and of ``since``/``until`` without a zone (any form of ``loganalyzer.times``).
    Raises BadInput for a wrong value, NotAStore for a path that holds no store.
    """
    here = zone(tz)
    since, until = (
        None if t is None else parse_time(t, tz, option=name).isoformat()
        for t, name in ((since, "--since"), (until, "--until"))
    )
    if pick is not None and pick < 1:
        raise BadInput(f"--pick {pick}: the listed messages are numbered from 1")
    st = store if isinstance(store, Store) else Store(store)
    st.require()
    q = Query(query, server, sender, recipient, subject, since, until, event_id)
    # one connection for the manifest and every step, its views re-pointed at each step's
    # files: a connection costs 40 ms
    with open_connection(st) as con:
        manifest = st.manifest(con, ["parts", "server", "format", "lookup"])
        servers = {(r["server"] or "").upper() for r in manifest.values()} - {""}
        iis = any(r["format"] == "iis-smtp" for r in manifest.values())
        by_id = q.kind() is not None and not any(
            (sender, recipient, subject, since, until, event_id)
        )
        sketched = by_id and q.kind() in KEYS
        sketches = Sketches(manifest) if sketched else None

        def holding(keys: dict[str, list[str]]) -> list[dict] | None:
            """Manifest rows of the files that may hold these IDs (None, all, when not sketched)."""
            return sketches.holding(keys) if sketches is not None else None

        first = holding({q.kind() or "": [q.value() or ""]})
        views = add_views(con, st, first, manifest)
        known = rows_for_id(con, q) if by_id else []
        found = candidates_from_rows(known) if by_id else candidates(con, q, limit)
        if by_id and not found and q.kind() == "message_id":
            found = candidates(con, q, limit)  # a message only an IIS relay's log names
        chosen = found if all or len(found) == 1 else []
        if pick is not None:
            if not 1 <= pick <= len(found):
                raise BadInput(
                    f"--pick {pick}: there are {len(found)} listed messages, numbered from 1"
                    if found
                    else f"--pick {pick}: no message matches"
                )
            chosen = [found[pick - 1]]
        ids = sorted({c["message_id"] for c in chosen if c.get("message_id")})
        refs = sorted({r["reference"] for r in known if r["event_id"] == "DSN" and r["reference"]})
        nids = sorted({c["network_message_id"] for c in chosen if c.get("network_message_id")})
        wanted = {"message_id": ids + refs + [f"<{x}>" for x in refs], "network_message_id": nids}
        views = point(con, st, holding(wanted), manifest, views)
        per_message = message_rows(con, chosen, days_of(known, chosen), known) if chosen else []
        every = [r for rows in per_message for r in rows]
        ids = sorted({r["message_id"] for r in every if r.get("message_id")} | set(ids))
        sessions = session_ids(every)
        keys = {"session_id": sorted(sessions), "message_id": ids if iis else []}
        point(con, st, holding(keys), manifest, views)
        smtp = smtp_rows(con, sessions, ids, days_of(every, chosen), iis) if chosen else []
    by_session, iis_lines = _group_smtp(smtp)
    messages: list[MessageTrace] = []
    for c, rows in zip(chosen, per_message, strict=True):
        mine = [x for r in rows for x in by_session.get(_session(r), [])]
        mine += [
            x
            for i in {r.get("message_id") for r in rows} | {c["message_id"]}
            for x in iis_lines.get(i, [])
        ]
        messages.append(build(rows, mine, servers, here, c["message_id"]))
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
