"""Finding a message in the store: the query, the candidates and all of a message's rows."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from loganalyzer.pages import display_subject
from loganalyzer.read.query import like, messages_sql, time_filter
from loganalyzer.store.duck import records
from loganalyzer.trace.relay import QUEUE_ID, accepted, transactions

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from loganalyzer.store.addresses import Coverage

_GUID = re.compile(
    r"^\{?[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\}?$", re.IGNORECASE
)
_SESSION = re.compile(r"^[0-9A-F]{16}$")
#: Tracking columns a trace reads.
COLUMNS = (
    "date_time, server, event_id, source, outcome, message_id, internal_message_id, "
    "network_message_id, sender_address, return_path, recipient_address, recipient_status, "
    "enhanced_status, recipient_count, related_recipient_address, reference, message_subject, "
    "total_bytes, client_ip, client_hostname, server_ip, server_hostname, source_context, "
    "connector_id, log_format, directionality, linked_msgid, file, line"
)
EX2003 = "exchange2003-tracking"
#: The verdict of every recipient of a message only an IIS relay's log names: no tracking
#: row decides it, the relay's lines show it accepted (or handed on) and no more.
RELAY_VERDICT = "last_seen"
#: How long before its DATA line a relay's session may have started.
_SESSION_REACH = timedelta(minutes=10)


@dataclass
class Query:
    """What the user asked for."""

    text: str | None = None
    server: str | None = None
    sender: str | None = None
    recipient: str | None = None
    subject: str | None = None
    since: str | None = None
    until: str | None = None
    event_id: str | None = None
    verdict: str | None = None
    #: The Message-ID as given, when no message has it and one differing in case was traced.
    as_given: str | None = None
    #: The sender and recipient as given, where the pattern searched differs from them
    #: (``address_pattern``: ``contoso.com`` is ``*@contoso.com``).
    typed: dict[str, str] | None = None

    def kind(self) -> str | None:
        """message_id, network_message_id or internal_message_id (None: filters only)."""
        if not self.text:
            return None
        text = self.text.strip()
        if _GUID.match(text):
            return "network_message_id"
        if text.isdigit():
            return "internal_message_id"
        return "message_id"

    def value(self) -> str | None:
        text = (self.text or "").strip()
        kind = self.kind()
        if kind == "network_message_id":
            h = re.sub(r"[^0-9a-f]", "", text.lower())
            return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        if kind == "message_id":  # also when one of its brackets was lost in copying
            return f"<{text.removeprefix('<').removesuffix('>')}>"
        return text or None

    def to_dict(self) -> dict:
        d = {k: v for k, v in self.__dict__.items() if v is not None}
        if self.text:
            d["kind"] = self.kind()
        return d


def _where(q: Query) -> tuple[str, list]:
    clauses, params = [], []
    kind = q.kind()
    if kind == "network_message_id":
        clauses.append("lower(network_message_id) = ?")
        params.append(q.value())
    elif kind:
        clauses.append(f"{kind} = ?")
        params.append(q.value())
    if q.server:
        clauses.append("upper(server) = upper(?)")
        params.append(q.server)
    if q.sender:
        clauses.append("(sender_address ilike ? escape '\\' or return_path ilike ? escape '\\')")
        params += [like(q.sender)] * 2
    if q.recipient:
        clauses.append("len(list_filter(recipient_address, lambda x: x ilike ? escape '\\')) > 0")
        params.append(like(q.recipient))
    if q.subject:
        clauses.append("message_subject ilike ? escape '\\'")
        params.append(f"%{like(q.subject)}%")
    if q.event_id:
        clauses.append("event_id = ?")
        params.append(q.event_id)
    window, wparams = time_filter(q.since, q.until)
    return " and ".join([*clauses, window]), params + wparams


def indexed(q: Query, index: Coverage | None) -> tuple[str, str] | None:
    """(role, LIKE pattern) of the address index's rows that answer ``q``: a query by one of
    sender, recipient or subject and no other row filter (None: ``q`` reads the rows)."""
    if index is None or q.text or q.server or q.since or q.until or q.event_id:
        return None
    given = [
        (role, v)
        for role, v in (("sender", q.sender), ("recipient", q.recipient), ("subject", q.subject))
        if v
    ]
    if len(given) != 1:
        return None
    role, value = given[0]
    return role, f"%{like(value)}%" if role == "subject" else like(value)


def _keys_sql(q: Query, index: Coverage | None) -> tuple[str, list]:
    """SQL of the matching messages' keys ``k`` and first matching rows ``first`` (one row
    per key): from the address index for the days it covers, the rows for the others."""
    where, params = _where(q)
    key = "coalesce(message_id, network_message_id)"
    rows = f"from tracking where {where} and {key} is not null"
    found = indexed(q, index)
    if found is None or not (index.parts or index.rows):  # (no rows at all)
        return f"select {key} as k, min(date_time) as first {rows} group by 1", params
    role, pattern = found
    parts, out = [], []
    source = index.source()
    if source:
        parts.append(f"select k, first from {source} where role = ? and value ilike ? escape '\\'")
        out += [role, pattern]
    if index.rows:
        days, dparams = index.row_days()
        parts.append(f"select {key} as k, date_time as first {rows} and {days}")
        out += params + dparams
    return f"select k, min(first) as first from ({' union all '.join(parts)}) group by k", out


_CANDIDATE_COLUMNS = (
    "message_id",
    "network_message_id",
    "date_time",
    "sender",
    "recipients",
    "subject",
    "outcome",
    "first",
)


def listing(
    con: duckdb.DuckDBPyConnection,
    q: Query,
    limit: int | None = 200,
    offset: int = 0,
    newest: bool = False,
    narrow: Callable[[list[str], tuple[date, date]], object] | None = None,
    index: Coverage | None = None,
    relay: bool = True,
) -> tuple[list[dict], int]:
    """Messages ``offset`` to ``offset + limit`` matching the query (all when ``limit`` is
    None), oldest first (newest first with ``newest``), and how many match in all.

    One scan finds the matching messages and their first matching row; only the listed ones
    are then summed up from their rows (their days, a day before and two after), after
    ``narrow(keys, days)`` when given (it may point the views at the files holding them).
    ``index``: the store's address index (``store.addresses.coverage``), which answers a
    list by one sender, recipient or subject for the days it covers, with the same result.
    ``relay``: the store holds IIS SMTP logs (their recipients are added to the messages')."""
    keys_sql, params = _keys_sql(q, index)
    reach = None if limit is None else offset + int(limit)
    order = "desc" if newest else ""
    cap = "" if reach is None else f"limit {reach}"
    if q.verdict and relay and q.verdict == RELAY_VERDICT:
        # a relay's own recipients (``relay_recipients``) are decided outside the query
        keys = con.sql(f"select k, first from ({keys_sql})", params=params).fetchall()
        fates = recipient_verdicts(con, [k for k, _ in keys], [f for _, f in keys], relay)
        keys = [(k, f) for k, f in keys if any(_wanted(q, r) for r in fates.get(k, []))]
        keys.sort(key=lambda x: (x[1], x[0]), reverse=newest)
        keys = [(k, f, len(keys)) for k, f in keys[:reach]]
    elif q.verdict:  # the messages with a recipient of that verdict, decided in the query
        keys = _with_verdict(con, keys_sql, params, q, f"order by first {order}, k {order} {cap}")
    else:
        keys = con.sql(
            f"""
            with keys as ({keys_sql})
            select k, first, count(*) over () as total from keys
            order by first {order}, k {order} {cap}
            """,
            params=params,
        ).fetchall()
    total = keys[0][2] if keys else 0
    if not q.verdict and reach is not None and not keys and offset:
        total = count_candidates(con, q, relay=False, index=index)
    found = [(first, k, None) for k, first, _ in keys]
    relay, rparams = _relay_only(q)
    relayed: dict[str, dict] = {}
    if relay:
        extra = con.sql(
            f"""
            select k, min(date_time) as t, any_value(message_id), any_value(queue_id),
                   arg_min(sender, date_time), flatten(list(recipients order by date_time)),
                   bool_or(tracked)
            from ({relay}) group by k order by t {order}, k {order} {cap}
            """,
            params=rparams,
        ).fetchall()
        listed = {k for _, k, _ in found}
        for k, t, mid, queue, sender, recipients, tracked in extra:
            if tracked:  # summed up from its tracking rows, as the others
                if mid not in listed:
                    found.append((t, mid, None))
                    listed.add(mid)
                continue
            found.append((t, k, "relay"))
            relayed[k] = {
                **dict.fromkeys(_CANDIDATE_COLUMNS[:-1]),
                "message_id": mid,
                "queue_id": queue,
                "date_time": t,
                "sender": sender,
                "recipients": list(dict.fromkeys(recipients or [])),
                "relay_only": True,
            }
        total += len(extra) if reach is None or len(extra) < reach else _count(con, relay, rparams)
    # the order of the SQL (first matching row, then the key) whatever the limit, so that the
    # N-th is the same message in a short list and a long one
    found.sort(key=lambda x: (x[0], x[1]), reverse=newest)
    found = found[offset:reach]
    keys = [k for _, k, kind in found if kind is None]
    summed = _summaries(con, keys, [f for f, *_ in found], narrow, index)
    # the recipients a relay handed on itself: no tracking row names them
    ids = {k for k in keys if relay and summed.get(k, {}).get("message_id") == k}
    firsts = [f for f, k, _ in found if k in ids]
    received: dict = {}
    for k, extra in relay_recipients(con, sorted(ids), firsts, received).items():
        summed[k]["recipients"] += extra
    for k, t in received.items():  # first seen where the trace says it was received
        if t and summed[k].get("date_time") and t < summed[k]["date_time"]:
            summed[k]["date_time"] = t
    out = [relayed[k] if kind == "relay" else summed[k] for _, k, kind in found]
    return out, int(total)


def matches(pattern: str | None, value: str | None) -> bool:
    """Whether ``value`` matches a user's wildcard pattern (``*@contoso.com``), any case."""
    if pattern is None:
        return True
    if value is None:
        return False
    # in one pass, back to the last star on a mismatch: time grows with the lengths, never
    # with the stars (a regular expression of many stars took minutes, holding the web app)
    p, v = pattern.lower(), value.lower()
    i = j = 0
    star, mark = -1, 0
    while j < len(v):
        if i < len(p) and p[i] in ("?", v[j]):
            i, j = i + 1, j + 1
        elif i < len(p) and p[i] == "*":
            star, mark, i = i, j, i + 1
        elif star >= 0:
            mark += 1
            i, j = star + 1, mark
        else:
            return False
    return all(c == "*" for c in p[i:])


def _wanted(q: Query, fate: dict) -> bool:
    """A recipient of the verdict asked for (and of the recipient pattern, when given)."""
    return fate["verdict"] == q.verdict and matches(q.recipient, fate["recipient"])


def _around(firsts: list) -> tuple[date, date]:
    """The days a message's rows are read from: those of its first times, a day before
    (a relay hands it on before Exchange logs it) and two after (its deliveries)."""
    return min(firsts).date() - timedelta(days=1), max(firsts).date() + timedelta(days=2)


def _with_verdict(
    con: duckdb.DuckDBPyConnection, keys_sql: str, params: list, q: Query, tail: str
) -> list[tuple]:
    """(key, first, total) of the messages of ``keys_sql`` with a recipient of the verdict
    ``q.verdict`` (and of ``q.recipient``), in the order and limit of ``tail``: the verdicts
    are decided in DuckDB, within its memory limit, from the rows of the messages' days (a
    day before, two after); a list of every message of a big store held in Python took 1 GB."""
    table = "_verdict_keys"  # the connection's own, dropped after (a web app's kept cursor)
    con.execute(
        f"create or replace temp table {table} as select k, first from ({keys_sql})", params
    )
    try:
        lo, hi = con.sql(f"select min(first), max(first) from {table}").fetchall()[0]
        if lo is None:
            return []
        days = _around([lo, hi])
        body = messages_sql("_rows").strip().removeprefix("with ")
        wanted = "r.verdict = ?" + (" and r.recipient ilike ? escape '\\'" if q.recipient else "")
        return con.sql(
            f"""
            select k, first, count(*) over () as total from {table} where k in (
                select message_id from (
                    with _rows as (
                        select * from tracking
                        where message_id in (select k from {table}) and date between ? and ?
                    ), {body})
                where len(list_filter(recipients, lambda r: {wanted})) > 0)
            {tail}
            """,
            params=[*days, q.verdict, *([like(q.recipient)] if q.recipient else [])],
        ).fetchall()
    finally:
        con.execute(f"drop table if exists {table}")


def recipient_verdicts(
    con: duckdb.DuckDBPyConnection,
    ids: list[str],
    firsts: list,
    relay: bool = True,
) -> dict[str, list[dict]]:
    """Each recipient's verdict of the messages ``ids`` (Message-IDs), as the ``messages`` view
    decides it (the rules of ``fate``), from their rows of their days (a day before, two
    after): {message ID: [{recipient, verdict, outcome, server, date_time, latency_s}]}, the
    latency of a delivered or sent-out recipient in seconds since the message was received;
    with ``relay`` (the store holds IIS SMTP logs) also the recipients only a relay names
    (``relay_recipients``), ``RELAY_VERDICT``."""
    if not ids:
        return {}
    days = _around(firsts)
    body = messages_sql("_rows").strip().removeprefix("with ")
    found = con.sql(
        "select message_id, recipients, received_at, first_seen from ("
        "with _rows as (select * from tracking where message_id in "
        f"(select unnest(?::varchar[])) and date between ? and ?), {body})",
        params=[ids, *days],
    ).fetchall()
    out = {}
    for mid, recipients, received, first in found:
        start = received or first
        out[mid] = [
            {
                **r,
                "latency_s": round((r["date_time"] - start).total_seconds(), 3)
                if r["verdict"] in ("delivered", "sent_external") and start and r["date_time"]
                else None,
            }
            for r in recipients or []
        ]
    blank = dict.fromkeys(("outcome", "server", "date_time", "enhanced_status", "latency_s"))
    for mid, extra in relay_recipients(con, list(out) if relay else [], firsts).items():
        out[mid] += [{**blank, "recipient": r, "verdict": RELAY_VERDICT} for r in extra]
    return out


def relay_recipients(
    con: duckdb.DuckDBPyConnection, ids: list[str], firsts: list, received: dict | None = None
) -> dict[str, list[str]]:
    """The recipients of the messages ``ids`` (Message-IDs) that only an IIS SMTP relay
    names: those its session of the message accepted (``trace.relay``) and no tracking row
    of the message names (the relay handed them on itself), in the order its lines name
    them; from the lines of the messages' days (a day before, two after). ``received``, when
    given, gets each message's first accepted DATA line's time at a relay."""
    if not ids:
        return {}
    days = _around(firsts)
    window = "date between $a and $b"
    # the client's lines around each DATA line naming a message (as ``smtp_rows``), each
    # once: ``accepted`` cuts them into transactions
    lines = f"""
        select distinct s.* from smtp s join (
            select server, remote_ip, date_time from smtp
            where log_format = 'iis-smtp' and direction = 'receive'
              and message_id in (select unnest($ids)) and {window}
        ) d on s.server = d.server and s.remote_ip = d.remote_ip
           and s.date_time between d.date_time - interval 5 minute
                               and d.date_time + interval 1 minute
        where s.log_format = 'iis-smtp' and s.direction = 'receive' and s.{window}
    """
    found = con.sql(
        f"""
        with a as (
            select message_id, flatten(list(recipients order by date_time)) as recipients,
                   min(date_time) as received
            from ({accepted(lines)}) where message_id in (select unnest($ids)) group by 1
        ),
        t as (
            select message_id, list(distinct lower(r)) as named from (
                select message_id, unnest(recipient_address) as r from tracking
                where message_id in (select message_id from a) and {window})
            group by 1
        )
        select a.message_id, list_filter(a.recipients, lambda x:
                   not list_contains(coalesce(t.named, []), lower(x))), a.received
        from a left join t using (message_id)
        """,
        params={"ids": ids, "a": days[0], "b": days[1]},
    ).fetchall()
    out = {}
    for mid, extra, first in found:
        if received is not None:
            received[mid] = first
        seen: dict[str, str] = {}
        for r in extra or []:
            seen.setdefault(r.lower(), r)
        if seen:
            out[mid] = list(seen.values())
    return out


def _count(con: duckdb.DuckDBPyConnection, sql: str, params: list) -> int:
    return int(con.sql(f"select count(distinct k) from ({sql})", params=params).fetchall()[0][0])


def _summaries(
    con: duckdb.DuckDBPyConnection,
    keys: list[str],
    firsts: list,
    narrow=None,
    index: Coverage | None = None,
) -> dict[str, dict]:
    """A candidate's summary (sender, recipients, subject, last outcome) of each key (a
    Message-ID, or a network message ID where a message has none), from all its rows (or
    from the address index's ``message`` rows of their days, where it covers them all)."""
    if not keys:
        return {}
    days = _around(firsts)
    source = index.source() if index is not None else None
    if source and not [d for d in index.rows if days[0].isoformat() <= d <= days[1].isoformat()]:
        found = con.sql(
            f"""
            with m as (
                select k, any_value(message_id) as message_id,
                       any_value(network_message_id) as network_message_id,
                       min(first) as first,
                       arg_min(sender, sender_at) filter (where sender is not null) as sender,
                       arg_min(subject, subject_at) filter (where subject is not null)
                           as subject,
                       arg_max(outcome, outcome_at) filter (where outcome is not null)
                           as outcome
                from {source} where role = 'message' and value in (select unnest($keys))
                  and date between $a and $b
                group by k
            ),
            r as (  -- each recipient where first named (rows in order: the list's order)
                select k, list(value order by first, file, line, pos) as recipients
                from {source} where role = 'recipient' and k in (select unnest($keys))
                  and date between $a and $b
                group by k
            )
            select k, message_id, network_message_id, first, sender, recipients, subject,
                   outcome
            from m left join r using (k)
            """,
            params={"keys": keys, "a": days[0], "b": days[1]},
        ).fetchall()
        return _summed(found)
    if narrow is not None:
        narrow(keys, days)
    # one query per column: each prunes by its own statistics and Bloom filters (see _rows)
    queries, params = [], []
    for column, extra in (("message_id", ""), ("network_message_id", " and message_id is null")):
        queries.append(
            f"select {column} as k, date_time, sender_address, recipient_address, "
            "message_subject, outcome, network_message_id, message_id, file, line from tracking "
            f"where {column} in (select unnest(?::varchar[])){extra} and date between ? and ?"
        )
        params += [keys, *days]
    found = con.sql(
        f"""
        select k, any_value(message_id) as message_id,
               any_value(network_message_id) as network_message_id,
               min(date_time) as date_time,
               arg_min(sender_address, date_time) filter (where sender_address is not null)
                   as sender,
               flatten(list(recipient_address order by date_time, file, line))
                   as recipients,
               arg_min(message_subject, date_time) filter (where message_subject is not null)
                   as subject,
               arg_max(outcome, date_time) as outcome
        from ({" union all ".join(queries)}) group by k
        """,
        params=params,
    ).fetchall()
    return _summed(found)


def _summed(found: list[tuple]) -> dict[str, dict]:
    out = {r[0]: dict(zip(_CANDIDATE_COLUMNS[:-1], r[1:], strict=True)) for r in found}
    for c in out.values():  # each once, in the order the rows name them
        c["recipients"] = list(dict.fromkeys(c["recipients"] or []))
        c["subject"] = display_subject(c["subject"]) if c["subject"] else c["subject"]
    return out


def candidates(con: duckdb.DuckDBPyConnection, q: Query, limit: int | None = 200) -> list[dict]:
    """The first ``limit`` messages matching the query, oldest first (all when None)."""
    return listing(con, q, limit)[0]


def count_candidates(
    con: duckdb.DuckDBPyConnection, q: Query, relay: bool = True, index: Coverage | None = None
) -> int:
    """How many messages match the query (``candidates`` without a limit, counted)."""
    keys_sql, params = _keys_sql(q, index)
    (n,) = con.sql(f"select count(*) from ({keys_sql})", params=params).fetchall()[0]
    sql, rparams = _relay_only(q) if relay else ("", [])
    if sql:
        n += _count(con, sql, rparams)
    return int(n)


def _relay_only(q: Query) -> tuple[str, list]:
    """SQL (and parameters) of the messages that only an IIS SMTP log names (the next hop's
    logs are missing): ``trace.relay.accepted`` rows, their DATA line in the window and
    matching the sender, recipient and server asked for (``tracked``: Exchange tracked it
    too; with a recipient, those whose tracking rows do not match the query are kept: the
    recipient may be one the relay handed on itself); empty when the query cannot name
    such messages (a subject or event filter, an ID of another kind, no filter at all)."""
    if q.subject or q.event_id or q.kind() not in (None, "message_id"):
        return "", []
    if q.verdict not in (None, RELAY_VERDICT):
        return "", []
    if not (q.kind() or q.since or q.until or q.sender or q.recipient):
        return "", []
    # the lines of a session that started before the window (its DATA line is in it)
    since = q.since and datetime.fromisoformat(q.since) - _SESSION_REACH
    lines_window, params = time_filter(since, q.until)
    lines = (
        "select * from smtp where log_format = 'iis-smtp' and direction = 'receive' "
        f"and {lines_window}"
    )
    window, wparams = time_filter(q.since, q.until, partitioned=False)
    clauses, cparams = [window], wparams
    if q.kind() == "message_id":
        # a queue ID (a DATA line without a Message-ID) in any case: it is the server's name
        # and hex digits (``0019E3517201287MAIL01``), both case-insensitive, and no lookup
        # sketch holds it (these lines are read whole anyway); a Message-ID in any case too,
        # as a tracked one is found in another case (``other_cases``)
        bare = q.value().removeprefix("<").removesuffix(">")
        clauses.append("(lower(k) in (lower(?), lower(?)) or upper(queue_id) = ?)")
        cparams += [q.value(), bare, bare.upper()]
    if q.server:
        clauses.append("upper(server) = upper(?)")
        cparams.append(q.server)
    if q.sender:
        clauses.append("sender ilike ? escape '\\'")
        cparams.append(like(q.sender))
    if q.recipient:
        clauses.append("len(list_filter(recipients, lambda x: x ilike ? escape '\\')) > 0")
        cparams.append(like(q.recipient))
    # tracked messages are listed from their tracking rows (of their days, a day around)
    tracked, tparams = time_filter(
        q.since and datetime.fromisoformat(q.since) - timedelta(days=1),
        q.until and datetime.fromisoformat(q.until) + timedelta(days=1),
    )
    # with --server the relay's own messages are listed whoever tracked them later: their
    # tracking rows name other servers, so the tracking rows do not list them (``tracked``)
    sql = (
        f"with found as (select * from ({accepted(lines)}) where {' and '.join(clauses)}) "
        "select *, coalesce(message_id in "
        f"(select message_id from tracking where {tracked} and message_id in "
        "(select message_id from found)), false) as tracked from found"
    )
    if q.recipient and not q.server:
        # a recipient the relay handed on itself is in no tracking row: its tracked
        # messages are listed too, unless their tracking rows list them already
        where, wparams = _where(q)
        sql = (
            f"select * from ({sql}) where not tracked or message_id not in "
            f"(select message_id from tracking where {where} and message_id is not null)"
        )
        return sql, params + cparams + tparams + wparams
    if not q.server:
        sql = f"select * from ({sql}) where not tracked"
    return sql, params + cparams + tparams


Dates = tuple[date, date] | None


def _in_dates(dates: Dates, pad_after: int = 0, pad_before: int = 0) -> tuple[str, list]:
    """A partition filter: rows of a message's days (and ``pad_before`` days before them,
    ``pad_after`` days after them)."""
    if dates is None:
        return "", []
    first, last = dates[0] - timedelta(days=pad_before), dates[1] + timedelta(days=pad_after)
    return " and date between ? and ?", [first, last]


def other_cases(message_id: str) -> list[str]:
    """The spellings of a Message-ID a trace tries when none is logged as given, the given
    one left out: its domain (case-insensitive) in lower and upper case, then the whole ID
    in lower and upper case (a local part copied in another case: the store's lookup
    sketches hash an ID as logged, so only a few spellings can be looked up fast)."""
    local, at, domain = message_id.rpartition("@")
    spellings = [message_id]
    if at:
        spellings += [local + at + domain.lower(), local + at + domain.upper()]
    spellings += [message_id.lower(), message_id.upper()]
    return [x for x in dict.fromkeys(spellings) if x != message_id]


def ids_in_any_case(con: duckdb.DuckDBPyConnection, message_id: str) -> list[str]:
    """The Message-IDs logged that differ from ``message_id`` in case alone (a local part
    copied in another case than ``other_cases`` tries): one scan of the Message-ID column."""
    found = con.sql(
        "select distinct message_id from tracking where lower(message_id) = lower(?) "
        "order by message_id",
        params=[message_id],
    ).fetchall()
    return [m for (m,) in found]


def rows_for_id(
    con: duckdb.DuckDBPyConnection, q: Query, values: list[str] | None = None
) -> list[dict]:
    """The tracking rows of the message(s) an ID names (or any of ``values``, IDs of the
    query's kind): one scan of the store."""
    kind, value = q.kind(), q.value()
    column = "lower(network_message_id)" if kind == "network_message_id" else kind
    where, params = f"{column} = ?", [value]
    if values:
        where, params = f"{column} in (select unnest(?::varchar[]))", [values]
    if q.server:
        where += " and upper(server) = upper(?)"
        params.append(q.server)
    rows = con.sql(f"select {COLUMNS} from tracking where {where}", params=params)
    return records(rows)


def candidates_from_rows(rows: list[dict]) -> list[dict]:
    """Candidates (as ``candidates`` returns them) from rows already read."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        key = r.get("message_id") or r.get("network_message_id")
        if key:
            groups.setdefault(key, []).append(r)
    out = []
    for group in groups.values():
        group.sort(key=lambda r: r["date_time"])
        first = group[0]
        recipients: dict[str, None] = {}
        for r in group:
            recipients.update(dict.fromkeys(r.get("recipient_address") or []))
        out.append(
            {
                "message_id": first.get("message_id"),
                "network_message_id": next(
                    (r["network_message_id"] for r in group if r.get("network_message_id")), None
                ),
                "date_time": first["date_time"],
                "sender": next(
                    (r["sender_address"] for r in group if r.get("sender_address")), None
                ),
                "recipients": list(recipients),
                "subject": display_subject(
                    next((r["message_subject"] for r in group if r.get("message_subject")), None)
                )
                or None,
                "outcome": group[-1].get("outcome"),
            }
        )
    return sorted(out, key=lambda c: (c["date_time"], c["message_id"] or ""))


def days_of(rows: list[dict], found: list[dict]) -> Dates:
    """The first and last day of the rows and candidates (None when there are none)."""
    times = [r["date_time"] for r in rows] + [c["date_time"] for c in found if c.get("date_time")]
    return (min(times).date(), max(times).date()) if times else None


def message_rows(
    con: duckdb.DuckDBPyConnection,
    found: list[dict],
    dates: Dates = None,
    known: list[dict] | None = None,
    complete: bool = False,
    widen: Callable[[dict[str, list[str]]], None] | None = None,
) -> list[list[dict]]:
    """Every tracking row of each message on every server, and of the NDRs it caused.

    One query for all the messages (restricted to ``dates`` when given, a day's margin after
    them); ``known`` rows already read are kept, and with ``complete`` they are every row of
    the messages' Message-IDs (only their network message IDs' rows are read). NDR rows are
    flagged ``is_ndr``. ``widen`` is called with the NDRs' Message-IDs before their rows are
    read, when the views hold only the files of the messages.
    """
    ids = sorted({c["message_id"] for c in found if c.get("message_id")})
    nids = sorted({c["network_message_id"] for c in found if c.get("network_message_id")})
    rows = _rows(con, [] if complete and known else ids, nids, dates)
    if known:
        seen = {_identity(r) for r in rows}
        rows += [r for r in known if _identity(r) not in seen]
    refs = {_bracket(r["reference"]) for r in rows if r["event_id"] == "DSN" and r["reference"]}
    linked = linked_ndrs(con, rows, dates)
    refs |= {ndr for _, ndr in linked}
    if widen is not None and refs - set(ids):
        widen({"message_id": sorted(refs - set(ids))})
    ndr_rows = _rows(con, sorted(refs - set(ids)), [], dates) if refs - set(ids) else []
    by_id: dict[str, list[dict]] = {}
    for r in rows + ndr_rows:
        if r.get("message_id"):
            by_id.setdefault(r["message_id"], []).append(r)
    by_nid: dict[str, list[dict]] = {}
    for r in rows:
        if r.get("network_message_id"):
            by_nid.setdefault(r["network_message_id"], []).append(r)
    out = []
    for c in found:
        own = {id(r): r for r in by_id.get(c.get("message_id"), [])}
        own.update({id(r): r for r in by_nid.get(c.get("network_message_id"), [])})
        mine = list(own.values())
        links = {
            _bracket(r["reference"]) for r in mine if r["event_id"] == "DSN" and r["reference"]
        } | {ndr for original, ndr in linked if original == c.get("message_id")}
        links -= {c.get("message_id")}
        ndr = [{**r, "is_ndr": True} for ref in sorted(links) for r in by_id.get(ref, [])]
        both = mine + ndr
        both.sort(key=lambda r: (r["date_time"], r["server"] or "", r["line"] or 0))
        out.append(both)
    return out


def linked_ndrs(
    con: duckdb.DuckDBPyConnection, rows: list[dict], dates: Dates = None
) -> set[tuple[str, str]]:
    """(original, NDR) Message-IDs of Exchange 2000/2003 NDRs of the messages of ``rows``: an
    NDR's lines name the original in Linked-MSGID (these logs have no DSN row)."""
    ids = sorted(
        {r["message_id"] for r in rows if r.get("log_format") == EX2003 and r.get("message_id")}
    )
    if not ids:
        return set()
    window, wparams = _in_dates(dates, pad_after=2)
    bare = [i[1:-1] if i.startswith("<") and i.endswith(">") else i for i in ids]
    marks = ", ".join("?" for _ in bare + ids)
    found = con.sql(
        f"select distinct linked_msgid, message_id from tracking where log_format = '{EX2003}' "
        f"and message_id is not null and linked_msgid in ({marks}){window}",
        params=bare + ids + wparams,
    ).fetchall()
    return {(_bracket(original), ndr) for original, ndr in found}


def _rows(con, ids: list[str], nids: list[str], dates: Dates = None) -> list[dict]:
    if not ids and not nids:
        return []
    window, wparams = _in_dates(dates, pad_after=2)
    literal = len(ids) + len(nids) <= 8  # the usual single trace: literal lists prune best
    # one query per column rather than ``a or b``: each then skips row groups by its own
    # min/max statistics and Bloom filters (an OR of two columns scans every row)
    queries, params = [], []
    for column, values in (("message_id", ids), ("network_message_id", nids)):
        if not values:
            continue
        if literal:
            want = ", ".join("?" for _ in values)
            params += values
        else:
            want = "select unnest(?::varchar[])"
            params.append(values)
        queries.append(f"select {COLUMNS} from tracking where {column} in ({want}){window}")
        params += wparams
    rows = records(con.sql(" union all ".join(queries), params=params or None))
    unique = {_identity(r): r for r in rows}
    return [unique[k] for k in sorted(unique)]  # in file order, whatever the parts' layout


def _identity(row: dict) -> tuple:
    """What tells a tracking row from the others: its file and line, and the recipients and
    event of that line it is (an Exchange Online summary line, a Graph document, gives one
    row a recipient)."""
    return (
        row["file"],
        row["line"],
        tuple(row.get("recipient_address") or ()),
        row.get("event_id") or "",
    )


def _bracket(ref: str) -> str:
    return ref if ref.startswith("<") else f"<{ref}>"


def session_ids(rows: list[dict]) -> set[str]:
    """SMTP session IDs named in the source context of a message's SMTP rows."""
    out = set()
    for r in rows:
        ctx = r.get("source_context") or ""
        head = ctx.split(";", 1)[0].strip()
        if r.get("source") == "SMTP" and _SESSION.match(head):
            out.add(head)
    return out


_SMTP_COLUMNS = (
    "date_time, server, log_format, direction, session_id, sequence_number, connector_id, "
    "remote_ip, local_ip, event, command, data, context, reply_code, message_id, file, line"
)


def smtp_rows(
    con: duckdb.DuckDBPyConnection,
    sessions: set[str],
    message_ids: list[str],
    dates: Dates = None,
    iis: bool = True,
    queue_ids: list[str] = (),
) -> list[dict]:
    """Protocol-log lines of the sessions, and IIS SMTP sessions whose DATA names the message
    (its Message-ID, or one of ``queue_ids``); ``dates`` restricts the search to the
    message's days, ``iis`` False skips IIS logs."""
    window, wparams = _in_dates(dates, pad_after=1)
    out: list[dict] = []
    if message_ids:
        # a Send log names the message in its "InternetMessageId" line, while the SEND row's
        # source context often has no session ID: those sessions are the message's too
        marks = ", ".join("?" for _ in message_ids)
        named = con.sql(
            "select distinct session_id from smtp where log_format = 'exchange-smtp-protocol' "
            f"and message_id in ({marks}) and session_id is not null{window}",
            params=message_ids + wparams,
        ).fetchall()
        sessions = set(sessions) | {sid for (sid,) in named}
    if sessions:
        marks = ", ".join("?" for _ in sessions)
        out += records(
            con.sql(
                f"select {_SMTP_COLUMNS} from smtp where session_id in ({marks}){window}",
                params=sorted(sessions) + wparams,
            )
        )
    if (message_ids or queue_ids) and iis:
        # IIS logs have no session ID: the session is the client's lines around its DATA
        # line, each line with its mail transaction (``trace.relay``); a relay hands a
        # message on before Exchange logs it: the day before too (accepted before midnight)
        window, wparams = _in_dates(dates, pad_after=1, pad_before=1)
        named = " or ".join(
            clause
            for clause, values in (
                (f"message_id in ({', '.join('?' for _ in message_ids)})", message_ids),
                (f"{QUEUE_ID} in ({', '.join('?' for _ in queue_ids)})", queue_ids),
            )
            if values
        )
        cols = ", ".join("s." + c.strip() for c in _SMTP_COLUMNS.split(","))
        lines = f"""
            with data as (
                select server, remote_ip, direction, date_time,
                       coalesce(message_id, {QUEUE_ID}) as message_id from smtp
                where log_format = 'iis-smtp' and ({named}){window}
            )
            select {cols}, d.date_time as data_time, d.message_id as anchor_id
            from smtp s join data d
              on s.server = d.server and s.remote_ip = d.remote_ip
             and s.direction = d.direction
             and s.date_time between d.date_time - interval 5 minute
                                 and d.date_time + interval 1 minute
            where s.log_format = 'iis-smtp'{window.replace("date", "s.date")}
        """
        peer = "server, remote_ip, direction, data_time, anchor_id"
        out += records(
            con.sql(
                transactions(lines, peer),
                params=[*message_ids, *queue_ids, *wparams, *wparams],
            )
        )
    return out
