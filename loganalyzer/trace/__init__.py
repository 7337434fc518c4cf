"""Trace a message across servers and log kinds: its timeline and a verdict per recipient."""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator

import eventcodes
from loganalyzer.errors import BadInput, as_text, whole
from loganalyzer.fate import VERDICTS, host_name, server_name
from loganalyzer.read.query import add_views, address_pattern, point, tracking_event
from loganalyzer.store import FileRow, Store, addresses, cache
from loganalyzer.store.duck import connection, domain_sql
from loganalyzer.store.lookup import KEYS
from loganalyzer.store.rollups import row_days
from loganalyzer.times import parse_window, zone
from loganalyzer.trace import evidence, outbound, rejected
from loganalyzer.trace.build import build
from loganalyzer.trace.coverage import Coverage
from loganalyzer.trace.find import (
    RELAY_VERDICT,
    Query,
    candidates_from_rows,
    days_of,
    ids_in_any_case,
    indexed,
    linked_ndrs,
    listing,
    matches,
    message_rows,
    other_cases,
    recipient_verdicts,
    rows_for_id,
    session_ids,
    smtp_rows,
)
from loganalyzer.trace.model import Event, MessageTrace, TraceResult, Verdict
from loganalyzer.trace.relay import is_queue_id

#: Formats whose logs add evidence to the verdicts of traced messages (trace.evidence).
EVIDENCE_FORMATS = {"exchange-agent", "exchange-connectivity"}

_DAY = dt.timedelta(days=1)

__all__ = [
    "VERDICTS",
    "Event",
    "MessageTrace",
    "Query",
    "TraceResult",
    "Verdict",
    "trace",
    "trace_pages",
]
#: Messages traced at a time by ``trace_pages``.
PAGE = 200


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
    verdict: str | None = None,
    tz: str = "UTC",
    all: bool = False,
    pick: int | None = None,
    limit: int | None = 200,
    offset: int = 0,
    newest: bool = False,
    verdicts: bool = False,
) -> TraceResult:
    """Trace the message(s) matching ``query`` (a Message-ID, a network message ID, or an
    internal message ID with ``server``) and the filters. A sender, recipient or time filter
    also finds rejected attempts (``trace.rejected``): listed beside the messages, traced as
    their SMTP session with verdict ``rejected``.

    One match is traced; several are listed as ``candidates`` (the first ``limit``, all when
    None; ``total`` counts them all) and traced only with ``all`` (each listed one) or
    ``pick`` (the 1-based number in the list, up to the total; not with ``all``). ``offset``
    skips that many of the list first, ``newest`` lists the newest first (a page of a long
    list). ``verdict`` keeps the messages with a recipient of that verdict (``VERDICTS``);
    with ``verdicts`` each listed message carries each recipient's verdict and latency
    (``verdicts``: a list of {recipient, verdict, latency_s}), decided by the ``messages``
    view's rules. ``tz`` is the zone of the displayed times and of ``since``/``until``
    without a zone (any form of ``loganalyzer.times``). Raises BadInput for a wrong value,
    NotAStore for a path that holds no store.
    """
    query, server, sender, recipient, subject, event_id, verdict = (
        as_text(name, value)
        for name, value in (
            ("the ID", query),
            ("--server", server),
            ("--sender", sender),
            ("--recipient", recipient),
            ("--subject", subject),
            ("--event-id", event_id),
            ("--verdict", verdict),
        )
    )
    limit, pick = (
        None if n is None else whole(name, n) for name, n in (("--limit", limit), ("--pick", pick))
    )
    offset = whole("offset", offset)
    if limit is not None and not 1 <= limit <= _MOST:
        raise BadInput(f"--limit {limit}: give 1 to {_MOST:,}")
    query = _id_of(query)
    given = {"sender": sender, "recipient": recipient}
    sender, recipient = (None if t is None else address_pattern(t) for t in (sender, recipient))
    typed = {k: t for (k, t), s in zip(given.items(), (sender, recipient), strict=True) if t != s}
    here = zone(tz)
    tz = here.key  # the name handed on: without blanks around it
    since, until = (None if t is None else t.isoformat() for t in parse_window(since, until, tz))
    if event_id is not None:
        event_id = tracking_event(event_id)
    if verdict is not None and verdict not in VERDICTS:
        raise BadInput(f"--verdict {verdict!r}: give one of {', '.join(VERDICTS)}")
    if not 0 <= offset <= _MOST:
        raise BadInput(f"offset {offset}: give 0 to {_MOST:,}")
    if pick is not None and all:
        raise BadInput(f"--pick {pick} and --all: give one (the N-th listed message, or every one)")
    if pick is not None and pick < 1:
        raise BadInput(f"--pick {pick}: the listed messages are numbered from 1")
    st = store if isinstance(store, Store) else Store(store)
    st.require()
    q = Query(query, server, sender, recipient, subject, since, until, event_id, verdict)
    q.typed = typed or None
    # one connection for the manifest and every step, its views re-pointed at each step's
    # files: a connection costs 40 ms (the app's worker threads each keep theirs)
    with connection(st) as con:
        manifest = st.manifest(con, shared=True)  # read-only: kept for the next trace
        servers, formats = cache.kept(manifest, "servers, formats", lambda: _kinds(manifest))
        q.server = _server(
            q.server,
            servers,
            lambda host: cache.kept(
                manifest, ("ours", host), lambda: _ours(con, st, manifest, host)
            ),
        )
        iis = "iis-smtp" in formats
        by_id = q.kind() is not None and not any(
            (sender, recipient, subject, since, until, event_id, verdict)
        )
        sketched = by_id and q.kind() in KEYS
        sketches = cache.sketches(manifest)

        def holding(keys: dict[str, list[str]], days=None) -> list[FileRow] | None:
            """Manifest rows of the files that may hold these IDs."""
            return sketches.holding(keys, days)

        first = holding({q.kind() or "": [q.value() or ""]}) if sketched else None
        first = _and_iis(first, manifest, iis and is_queue_id(q.value()))
        if q.kind() == "internal_message_id" and q.server:
            # an internal ID is a server's own: only that server's files can hold it
            first = [r for r in manifest.values() if (r.server or "").upper() == q.server.upper()]
        # the address index answers for the days it covers (a list by one address)
        index = addresses.coverage(st, manifest, con) if not by_id else None
        # a list the index answers alone reads no tracking row until its verdicts (read from
        # the files holding the listed messages, ``narrow``): no view of every tracking part
        # (not with an IIS relay's logs: which of its messages Exchange tracked is read from
        # every tracking part, ``find.listing``)
        lazy = (
            index is not None
            and not index.rows
            and indexed(q, index) is not None
            and not verdict
            and "exchange-agent" not in formats
            and not iis
        )
        tracking = ("tracking",) if lazy else None
        views = add_views(con, st, [] if lazy else first, manifest, derived=False, tables=tracking)

        narrowed: list = []

        def narrow(keys: list[str], days) -> None:
            """Point the views at the files holding the listed messages (``find.listing``)."""
            nonlocal views
            if narrowed == [keys, days]:
                return
            narrowed[:] = [keys, days]
            held = holding({"message_id": keys, "network_message_id": keys}, days)
            # (only tracking: what the summaries and verdicts read)
            views = point(con, st, held, manifest, views, tables=("tracking",))

        def widen(keys: dict[str, list[str]]) -> None:
            """Point the SMTP view at the files holding these sessions too."""
            nonlocal views
            held = [*first, *(holding(keys) or [])]
            views = point(con, st, held, manifest, views, tables=("smtp",))

        known = rows_for_id(con, q) if by_id else []
        if by_id and not known and q.kind() == "message_id":
            # a domain is case-insensitive, a local part formally not: the exact ID first,
            # then these spellings (the trace says which it found)
            spellings = other_cases(q.value() or "")
            held = holding({"message_id": spellings}) if sketched else first
            if held != []:  # (None: every file)
                views = point(con, st, held, manifest, views)
                known = rows_for_id(con, q, spellings)
            if not known:  # any other spelling: the Message-IDs of every file, read once
                views = point(con, st, None, manifest, views, tables=("tracking",))
                if spellings := ids_in_any_case(con, q.value() or ""):
                    held = holding({"message_id": spellings}) if sketched else None
                    views = point(con, st, held, manifest, views)
                    known = rows_for_id(con, q, spellings)
            if known:
                first = held
                q.as_given, q.text = q.value(), min(r["message_id"] for r in known)
        # a pick beyond the listed ones reads that far (the list stays ``limit`` long)
        reach = limit if limit is None or pick is None else max(limit, min(pick, 2**31))
        reach = reach if reach is None else offset + reach
        if by_id:
            found = candidates_from_rows(known)
            total = len(found)
        if not by_id or (not found and q.kind() in rejected.BY_ID):
            # (by ID: a message an agent refused, or only an IIS relay's log names)
            # rejected attempts first: they read all SMTP logs, the list's summaries only
            # the files holding the listed messages
            # (none for a verdict no refused attempt has: failed, delivered... read no SMTP log)
            wanted = not verdict or verdict in rejected.VERDICTS
            widened = widen if first is not None else None
            refused = rejected.find(con, q, formats, index, widened) if wanted else []
            # an IIS service's own outbound sessions: listed as the attempts are
            refused += outbound.find(con, q, set(servers)) if iis else []
            if verdict:
                refused = [c for c in refused if _attempt_wanted(c, q)]
            found, total = listing(
                con, q, reach, newest=newest, narrow=narrow, index=index, relay=iis
            )
        else:
            refused = []
        if refused:  # beside the tracked messages, in time order
            found = sorted([*found, *refused], key=lambda c: c["date_time"], reverse=newest)
            found = found if reach is None else found[:reach]
            total += len(refused)
        listed = found[offset:] if limit is None else found[offset : offset + limit]
        # one match is traced; a list cut to one by ``limit`` stays a list (its total says more)
        chosen = listed if all or total == 1 else []
        if verdicts:  # (those traced below take their trace's verdicts)
            unchosen = [c for c in listed if not any(c is x for x in chosen)]
            tracked = [c for c in unchosen if "attempt" not in c and c.get("message_id")]
            if tracked and not by_id:  # their rows: in the files holding them
                keys = [c["message_id"] for c in tracked]
                firsts = [c["date_time"] for c in tracked]
                narrow(keys, (min(firsts).date() - _DAY, max(firsts).date() + 2 * _DAY))
            _add_verdicts(con, unchosen, iis)
        if pick is not None:
            if not total:
                raise BadInput(f"--pick {pick}: no message matches, there is nothing to pick")
            if not 1 <= pick <= total:
                raise BadInput(f"--pick {pick}: give 1 to {total:,} (the matching messages)")
            chosen = [found[pick - 1]]
        attempts = {id(c): c for c in chosen if "attempt" in c}
        outbound.converse(con, list(attempts.values()))  # (the traced ones' conversations)
        picked, chosen = chosen, [c for c in chosen if id(c) not in attempts]
        ids = sorted({c["message_id"] for c in chosen if c.get("message_id")})
        queues = sorted({c["queue_id"] for c in chosen if c.get("queue_id")})
        refs = sorted({r["reference"] for r in known if r["event_id"] == "DSN" and r["reference"]})
        refs += sorted({ndr for _, ndr in linked_ndrs(con, known, days_of(known, chosen))})
        nids = sorted({c["network_message_id"] for c in chosen if c.get("network_message_id")})
        wanted = {"message_id": ids + refs + [f"<{x}>" for x in refs], "network_message_id": nids}
        per_message: list = []
        smtp: list = []
        if chosen:  # (a list alone leaves the views as they are: no re-pointing)
            held = _and_iis(holding(wanted), manifest, bool(queues))
            views = point(con, st, held, manifest, views)

            def ndrs(keys: dict[str, list[str]]) -> None:
                """Point the views at the files of the bounces the rows name too (a bounce's
                files need not hold any listed message's ID)."""
                nonlocal views
                if held is not None:
                    views = point(con, st, [*held, *(holding(keys) or [])], manifest, views)

            # a trace by Message-ID has read every row of it (every file whose sketch holds it)
            complete = by_id and q.kind() == "message_id" and not q.server
            dates = days_of(known, chosen)
            per_message = message_rows(con, chosen, dates, known, complete, widen=ndrs)
            every = [r for rows in per_message for r in rows]
            ids = sorted({r["message_id"] for r in every if r.get("message_id")} | set(ids))
            sessions = session_ids(every)
            keys = {"session_id": sorted(sessions), "message_id": ids}
            point(con, st, _and_iis(holding(keys), manifest, bool(queues)), manifest, views)
            smtp = smtp_rows(con, sessions, ids, days_of(every, chosen), iis, queues)
    by_session, iis_lines = _group_smtp(smtp)
    # asked only of a hand-off nothing followed: what the store holds of the next server's log
    held = Coverage(st, manifest).logged
    messages: list[MessageTrace] = []
    traced = dict(zip((id(c) for c in chosen), per_message, strict=True))
    # the sessions whose line names a message (a Send log's InternetMessageId), looked up per
    # message below (scanning every line for each of thousands of messages took minutes)
    naming: dict[str, set[str]] = {}
    for x in smtp:
        if x.get("message_id") and x.get("session_id"):
            naming.setdefault(x["message_id"], set()).add(x["session_id"])
    for c in picked:
        if id(c) in attempts:
            sent = c["attempt"].get("direction") == "send"
            messages.append((outbound if sent else rejected).build(c, tz))
            continue
        rows = traced[id(c)]
        own = {r.get("message_id") for r in rows} | {c["message_id"]}
        named = {_session(r) for r in rows}.union(*(naming.get(i, ()) for i in own if i))
        mine = [x for sid in sorted(named - {""}) for x in by_session.get(sid, [])]
        own.add(c.get("queue_id"))
        mine += [x for i in own if i for x in iis_lines.get(i, [])]
        messages.append(build(rows, mine, servers, here, c["message_id"], c.get("queue_id"), held))
    if verdicts:
        for c, m in zip(picked, messages, strict=True):
            c["verdicts"] = [
                {"recipient": v.address, "verdict": v.verdict, "latency_s": v.latency_s}
                for r in m.recipients
                for v in r.flatten()
            ]
    if messages and formats & EVIDENCE_FORMATS:
        with connection(st) as con:
            add_views(con, st, None, manifest)
            evidence.attach(con, messages, tz)
    shown = [
        rejected.shown(c) if "attempt" in c else {**c, "date_time": c["date_time"].isoformat()}
        for c in listed
    ]
    held = _held_days(manifest, q) if not total else None
    hint = _event_hint(q.event_id, formats) if not total else None
    return TraceResult(
        q.to_dict(), shown, messages, tz, total=total, held_days=held, event_hint=hint
    )


def _event_hint(event: str | None, formats: set[str]) -> str | None:
    """For an event of Exchange 2007 and later (FAIL) asked of a store whose tracking logs
    are all Exchange 2000/2003's, which number their events: those of the same outcome."""
    if not event or "exchange2003-tracking" not in formats:
        return None
    if formats & {"exchange-tracking", "exo-message-trace"}:  # (rows that name it could match)
        return None
    try:
        outcome = eventcodes.lookup(event, "exchange-event").outcome
    except eventcodes.UnknownCode:  # a 2003 number, or another family's name
        return None
    same = [c.code for c in eventcodes.entries("exchange2003") if c.outcome == outcome]
    if not same:
        return None
    return (
        f"Exchange 2000/2003 logs number their events: {outcome} is {', '.join(same)} there "
        "(give one to --event-id; `loganalyzer codes --family exchange2003` lists them)"
    )


def _held_days(manifest, q: Query) -> tuple[str, str] | None:
    """The store's first and last UTC days with rows when the query's time window lies wholly
    outside them (a --since of the wrong year, a store of other days); else None."""
    if not (q.since or q.until):
        return None
    days = sorted(row_days(manifest))
    if not days:
        return None
    start = dt.datetime.fromisoformat(days[0]).replace(tzinfo=dt.UTC)
    end = dt.datetime.fromisoformat(days[-1]).replace(tzinfo=dt.UTC) + _DAY
    since, until = (dt.datetime.fromisoformat(t) if t else None for t in (q.since, q.until))
    outside = (since is not None and since >= end) or (until is not None and until <= start)
    return (days[0], days[-1]) if outside else None


def _and_iis(held: list[FileRow] | None, manifest, needed: bool) -> list[FileRow] | None:
    """The files ``held`` (None: every file) and, when ``needed`` (a queue ID is looked
    for, which no lookup sketch holds), the IIS SMTP logs; else the IIS SMTP logs of a held
    one's server and days (and the day before): a client's session runs on across the
    service's daily or hourly log, and only the file of its DATA line names the message."""
    if held is None:
        return held
    iis = [r for r in manifest.values() if r.format == "iis-smtp"]
    if needed:
        return [*held, *iis]
    near = {(r.server, d) for r in held if r.format == "iis-smtp" for d in _days(r, before=1)}
    if not near:
        return held
    keys = {r.file_key for r in held}
    return held + [
        r for r in iis if r.file_key not in keys and any((r.server, d) in near for d in _days(r))
    ]


def _days(row: FileRow, before: int = 0) -> set[str]:
    """The days of a file's parts (``date=`` of their paths), and ``before`` days before each."""
    days = {m[1] for p in row.parts if (m := _PART_DAY.search(p))}
    return {
        (dt.date.fromisoformat(d) - dt.timedelta(days=n)).isoformat()
        for d in days
        for n in range(before + 1)
    }


_PART_DAY = re.compile(r"date=(\d{4}-\d{2}-\d{2})")


def _kinds(manifest) -> tuple[frozenset[str], frozenset[str]]:
    """The store's servers (upper case) and log formats."""
    servers = {(r.server or "").upper() for r in manifest.values()} - {""}
    return frozenset(servers), frozenset(r.format for r in manifest.values())


def _server(given: str | None, servers: frozenset[str], ours: Callable[[str], bool]) -> str | None:
    """``--server`` as the logs name the server: a host name of the organisation (``ours``)
    whose first label is a server of the store (``ex02.contoso.com``: EX02) by that label;
    any other value as given (``ex02.fabrikam.com`` is another organisation's host: it
    matches no row, as an unknown server)."""
    if given is None:
        return given
    if given.strip().upper() in servers:
        return given.strip()
    name = server_name(given)
    host = host_name(given).lower().rstrip(".")
    return name if name in servers and "." in host and ours(host) else given


def _ours(con, st: Store, manifest, host: str) -> bool:
    """Whether the logs make ``host`` (``ex02.contoso.com``) a host of the organisation: in
    the domain of a name its servers give themselves (a SEND row's client, a RECEIVE row's
    server) or a subdomain of it, or in a domain (or a subdomain of one) its mailboxes are
    delivered in. One scan of the tracking rows, which stops at the first that tells. A
    store without tracking rows (an IIS relay's logs alone) cannot tell: any host is."""
    if not any(r.table == "tracking" for r in manifest.values()):
        return True
    domain = host.partition(".")[2]
    labels = domain.split(".")
    # the domain and its parents, a top-level domain alone left out (``ex02.com`` is not in
    # the organisation because its servers' names end in .com)
    domains = [".".join(labels[i:]) for i in range(len(labels) - 1)]
    own = "contains({0}, '.') and list_contains($domains, lower(substr({0}, strpos({0}, '.') + 1)))"
    point(con, st, None, manifest, tables=("tracking",))
    [(found,)] = con.sql(
        f"""
        select exists (
            select 1 from tracking
            where (event_id = 'SEND' and {own.format("client_hostname")})
               or (event_id = 'RECEIVE' and {own.format("server_hostname")})
               or (outcome = 'delivered' and list_has_any(
                       list_transform(recipient_address, lambda x: {domain_sql("x")}),
                       $domains))
        )
        """,
        params={"domains": domains},
    ).fetchall()
    return bool(found)


def _attempt_wanted(candidate: dict, q: Query) -> bool:
    """An attempt that refused a recipient with the verdict asked for (and of the pattern)."""
    return any(
        x.get("verdict", rejected.REJECTED) == q.verdict and matches(q.recipient, x["address"])
        for x in candidate["attempt"]["refusals"]
    )


def trace_pages(
    store: str | os.PathLike[str] | Store,
    query: str | None = None,
    *,
    page: int = PAGE,
    most: int | None = None,
    **options,
) -> Iterator[TraceResult]:
    """``trace(..., all=True)`` a page of ``page`` messages at a time, oldest first: every
    match (the first ``most``, when given) traced while memory holds one page (a whole day's
    thousands of traces at once took gigabytes). Each result lists and traces its page;
    ``total`` counts them all. ``options`` are ``trace``'s (not ``all``, ``limit``,
    ``offset``, ``pick``)."""
    offset = 0
    while True:
        size = page if most is None else min(page, most - offset)
        result = trace(store, query, all=True, limit=size, offset=offset, **options)
        yield result
        offset += size
        if offset >= (result.total or 0) or (most is not None and offset >= most):
            return


def _id_of(query: str | None) -> str | None:
    """The ID a query gives, as pasted (``Message-ID: <a@b>`` too); BadInput when it holds
    none (blanks, ``<>``)."""
    if query is None:
        return None
    text = re.sub(r"^\s*message-id\s*:\s*", "", query, flags=re.IGNORECASE).strip()
    if not text.strip("<>").strip():
        raise BadInput(f"the ID {query!r}: give a Message-ID, a network or an internal message ID")
    return text


#: The longest list a trace gives (a longer one overflows the queries' 64-bit integers).
_MOST = 2**31 - 1


def _add_verdicts(con, listed: list[dict], relay: bool) -> None:
    """Each listed candidate's ``verdicts`` (recipient, verdict, latency_s), in place
    (``relay``: the store holds IIS SMTP logs)."""
    tracked = [
        c for c in listed if "attempt" not in c and not c.get("relay_only") and c.get("message_id")
    ]
    fates = recipient_verdicts(
        con, [c["message_id"] for c in tracked], [c["date_time"] for c in tracked], relay
    )
    for c in listed:
        if "attempt" in c:
            c["verdicts"] = [
                {
                    "recipient": x["address"],
                    "verdict": x.get("verdict", rejected.REJECTED),
                    "latency_s": None,
                }
                for x in c["attempt"]["refusals"]
            ]
        elif c.get("relay_only"):
            c["verdicts"] = [
                {"recipient": r, "verdict": RELAY_VERDICT, "latency_s": None}
                for r in c["recipients"]
            ]
        else:
            c["verdicts"] = [
                {k: r[k] for k in ("recipient", "verdict", "latency_s")}
                for r in fates.get(c.get("message_id"), [])
            ]


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
