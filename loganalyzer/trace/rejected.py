"""Rejected attempts: mail Exchange refused during the SMTP session, which no tracking log shows.

An attempt is one SMTP Receive session with a refusal (a 5xx reply at connect, HELO, MAIL,
RCPT or DATA), or an anti-spam agent's reject with no protocol log of its session. Each is
listed beside the tracked messages when a trace filters by sender, recipient or time (or
names the Message-ID or network message ID an agent logged), with verdict ``rejected`` for
every refused recipient: the stage, the reply, the agent and its reason where one decided,
the remote IP and HELO.
An agent that deleted or quarantined an accepted message that no tracking log shows makes an
attempt too, with verdict ``dropped`` or ``quarantined`` (the sender was told it was accepted).
Refused AUTH commands (password guessing) are not mail attempts and are left out. IIS SMTP
logs have no session ID and log only reply codes: a client's lines make a session from its
HELO/EHLO to its QUIT.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from loganalyzer.read.query import like, time_filter
from loganalyzer.store.duck import records
from loganalyzer.trace.build import meaning
from loganalyzer.trace.find import Query
from loganalyzer.trace.find import matches as _matches
from loganalyzer.trace.model import Event, Line, MessageTrace, Verdict
from loganalyzer.trace.verdict import explain, said

if TYPE_CHECKING:
    from collections.abc import Callable

    import duckdb

    from loganalyzer.store.addresses import Coverage

REJECTED = "rejected"
#: The IDs an agent logs of a message it refused or removed (after DATA): a trace by one of
#: them finds the attempt.
BY_ID = ("message_id", "network_message_id")
#: What an agent's action did to the message: its verdict.
ACTIONS = {"delete": "dropped", "quarantine": "quarantined"}
#: The verdicts of an attempt's recipients.
VERDICTS = (REJECTED, *ACTIONS.values())
#: SQL over the agent log: an action that removed a message after accepting it, and the
#: verdict of its recipients.
REMOVES = "(" + " or ".join(f"action ilike '{word}%'" for word in ACTIONS) + ")"
REMOVED_VERDICT = (
    "case "
    + " ".join(f"when lower(action) like '{w}%' then '{v}'" for w, v in ACTIONS.items())
    + " end"
)
#: The SMTP command a refusal answered -> its stage (DESIGN.md vocabulary).
STAGES = {
    "HELO": "helo",
    "EHLO": "helo",
    "AUTH": "auth",
    "MAIL": "mail",
    "RCPT": "rcpt",
    "DATA": "data",
    "BDAT": "data",
}
#: An agent's SMTP event -> the stage it acts at.
EVENT_STAGES = {
    "onconnect": "connect",
    "onconnectevent": "connect",
    "onhelocommand": "helo",
    "onehlocommand": "helo",
    "onauthcommand": "auth",
    "onmailcommand": "mail",
    "onrcptcommand": "rcpt",
    "onendofheaders": "data",
    "onendofdata": "data",
    "ondatacommand": "data",
}
_ADDRESS = re.compile(r"<([^<>]*)>")
_DAY = timedelta(days=1)
#: How far before a refusal its session's first lines are looked for (the report): Exchange
#: ends a receive session after 10 minutes at most by default (ConnectionTimeout).
SESSION_LOOKBACK = timedelta(hours=1)
_SMTP_COLUMNS = (
    "server, session_id, date_time, sequence_number, event, command, data, context, "
    "reply_code, remote_ip, connector_id, file, line"
)


def _address(data: str | None) -> str | None:
    m = _ADDRESS.search(data or "")
    return m[1] if m and m[1] else None


def _evidence(log: str, row: dict, text: str) -> dict:
    return {
        "log": log,
        "server": row.get("server"),
        "date_time": row["date_time"],
        "text": text,
        "file": row.get("file"),
        "line": row.get("line"),
    }


def _window(q: Query) -> tuple[str, list]:
    return time_filter(q.since, q.until)


def _days(q: Query) -> tuple[str, list]:
    """The date-partition part of the window alone (it prunes whole days of parts)."""
    where, params = _window(q)
    kept = [
        (c, p) for c, p in zip(where.split(" and "), params, strict=False) if c.startswith("date ")
    ]
    return " and ".join(c for c, _ in kept) or "true", [p for _, p in kept]


def _sessions(
    con: duckdb.DuckDBPyConnection,
    q: Query,
    also: list[tuple] = (),
    index: Coverage | None = None,
) -> list[dict]:
    """Every row of the receive sessions with a refusal in the window; with a sender or
    recipient, only the sessions whose MAIL or RCPT line could name it (``find`` checks the
    address itself), and the sessions ``also`` (server, session ID) whatever their lines.
    Without a window, the address index (``index``) names them for the days it covers."""
    where, params = _window(q)
    # one scan finds the sessions: the refusal rows, and the MAIL/RCPT lines that may name
    # the address (a superset: ``_walk`` reads the address between the angle brackets)
    lines, having, lparams, hparams = [], [f"bool_or(reply_code >= 500 and {where})"], [], []
    for verb, pattern in (("MAIL", q.sender), ("RCPT", q.recipient)):
        if pattern:
            lines.append(f"(command = '{verb}' and data ilike ? escape '\\')")
            lparams.append(f"%<{like(pattern)}>%")
    if lines:
        named = " or ".join(lines)
        pairs = sorted({(s, i) for s, i in also if i})
        known = ""
        if pairs:
            known = " or (server, session_id) in (" + ", ".join("(?, ?)" for _ in pairs) + ")"
        having.append(f"(bool_or({named}){known})")
        hparams = lparams + [x for pair in pairs for x in pair]
        rows = f"(reply_code >= 500 or {named})"
    else:
        rows = "reply_code >= 500"
    days, dparams = _days(q)
    source = None
    # without a window, the covered days' refused sessions (or those naming the address) are
    # the index's, a few kilobytes: the rows are scanned only for the days it does not cover
    if index is not None and not (q.since or q.until):
        source = index.source()
        days, dparams = index.row_days()
    # a session across midnight is one: its MAIL line may be in the day before its refusal
    sql = f"""
        select server, session_id, max(date) as date from smtp
        where direction = 'receive' and log_format = 'exchange-smtp-protocol'
          and session_id is not null and {rows} and {days}
        group by server, session_id having {" and ".join(having)}
    """
    keys = []
    if days != "false":
        keys = con.sql(sql, params=lparams + dparams + params + hparams).fetchall()
    if source:  # the refused sessions' MAIL and RCPT lines, and those of ``also``
        # (a verdict alone: every refused session)
        named, iparams = ([], []) if lines else (["role = 'refused'"], [])
        for role, pattern in (("mail", q.sender), ("rcpt", q.recipient)):
            if pattern:
                named.append(f"(role = '{role}' and value ilike ? escape '\\')")
                iparams.append(f"%<{like(pattern)}>%")
        pairs = sorted({(s, i) for s, i in also if i})
        if pairs:
            named.append(
                "(role = 'refused' and (server, session_id) in ("
                + ", ".join("(?, ?)" for _ in pairs)
                + "))"
            )
            iparams += [x for pair in pairs for x in pair]
        keys += con.sql(
            f"select distinct server, session_id, date from {source} where {' or '.join(named)}",
            params=iparams,
        ).fetchall()
    if not keys:
        return []
    # the sessions' lines: a literal list of IDs lets each part's statistics skip it
    ids = sorted({sid for _, sid, _ in keys})
    marks = ", ".join("?" for _ in ids)
    # a session's lines of the day found and of the days around it (one across midnight: its
    # MAIL line, which the address index names, in the day before its refusal): its ID is
    # Exchange's counter, not reused from one day to the next
    wanted = {(s, sid, d) for s, sid, day in keys for d in (day - _DAY, day, day + _DAY)}
    sql = f"""
        select {_SMTP_COLUMNS}, date from smtp
        where direction = 'receive' and log_format = 'exchange-smtp-protocol'
          and session_id in ({marks})
        order by server, session_id, sequence_number, date_time
    """
    found = records(con.sql(sql, params=ids))
    return [
        {k: v for k, v in r.items() if k != "date"}
        for r in found
        if (r["server"], r["session_id"], r["date"]) in wanted
    ]


def _iis_rows(con: duckdb.DuckDBPyConnection, q: Query) -> list[dict]:
    """Every IIS SMTP line of the clients refused in the window (IIS logs have no sessions:
    a client's lines are split into sessions by ``_iis_sessions``)."""
    where, params = _window(q)
    verbs = ", ".join(f"'{v}'" for v in STAGES)
    sql = f"""
        with bad as (
            select distinct server, remote_ip, date from smtp
            where log_format = 'iis-smtp' and direction = 'receive' and reply_code >= 500
              and upper(command) in ({verbs}) and {where}
        )
        select {_SMTP_COLUMNS}, helo from smtp join bad using (server, remote_ip, date)
        where log_format = 'iis-smtp' and direction = 'receive'
        order by server, remote_ip, date_time, line
    """
    return records(con.sql(sql, params=params))


def _iis_sessions(rows: list[dict]) -> list[list[dict]]:
    """One client's IIS lines as sessions: a new one at each HELO/EHLO, after a QUIT, or
    after ten minutes of silence."""
    out: list[list[dict]] = []
    for r in rows:
        verb = (r.get("command") or "").upper()
        new = (
            not out
            or verb in ("HELO", "EHLO")
            or (out[-1][-1].get("command") or "").upper() == "QUIT"
            or (r["date_time"] - out[-1][-1]["date_time"]).total_seconds() > 600
        )
        if new:
            out.append([r])
        else:
            out[-1].append(r)
    return out


def _from_iis(rows: list[dict]) -> dict:
    """An attempt from one IIS session: each line is a command with its reply code."""
    sender, accepted, refusals = None, [], []
    for r in rows:
        verb = (r.get("command") or "").upper()
        code = r.get("reply_code") or 0
        if verb in ("MAIL", "RSET"):  # a new transaction: its own recipients
            accepted = []
        if verb == "MAIL" and code < 400:
            sender = _address(r.get("data"))
        stage = STAGES.get(verb)
        if verb == "RCPT" and code < 400 and _address(r.get("data")):
            accepted.append(_address(r.get("data")))
        if code < 500 or stage is None:
            continue
        if stage == "mail":
            sender = _address(r.get("data"))
        if stage == "rcpt":
            who = [_address(r.get("data"))]
        else:
            who = (accepted or [None]) if stage == "data" else [None]
        for a in who:
            refusals.append(
                {
                    "address": a,
                    "stage": stage,
                    "reply": str(code),
                    "date_time": r["date_time"],
                    "agent": None,
                    "evidence": [
                        _evidence("smtp", r, f"{r.get('command')} {r.get('data') or ''} -> {code}")
                    ],
                }
            )
    return {
        "server": rows[0]["server"],
        "session_id": None,
        "remote_ip": rows[0].get("remote_ip"),
        "connector": rows[0].get("connector_id"),
        "helo": next((r["helo"] for r in rows if r.get("helo")), None),
        "sender": sender,
        "message_id": None,
        "lines": rows,
        "agents": [],
        "refusals": refusals,
    }


def _agent_rows(con: duckdb.DuckDBPyConnection, q: Query) -> list[dict]:
    """Agent decisions that refused or removed mail, in the window."""
    where, params = _window(q)
    if q.kind() == "message_id":
        where += " and message_id = ?"
        params.append(q.value())
    elif q.kind() == "network_message_id":
        where += " and lower(network_message_id) = ?"
        params.append(q.value())
    # a message an agent deleted or quarantined after it was accepted, unless tracked (in
    # the same window: the agent decides as the message arrives)
    sql = f"""
        with found as (
            select * from agent
            where (action ilike 'Reject%' or action = 'Disconnect' or {REMOVES}) and {where}
        ),
        tracked as (
            select distinct message_id from tracking
            where message_id in (select message_id from found) and {where}
        )
        select * from found
        where not ({REMOVES} and message_id in (select message_id from tracked))
        order by date_time, line
    """
    return records(con.sql(sql, params=params + params))


def _verdict(action: str | None) -> str:
    """The verdict of an agent's action: rejected, dropped (Delete*), quarantined."""
    word = (action or "").lower()
    return next((v for k, v in ACTIONS.items() if word.startswith(k)), REJECTED)


def _session_lines(con: duckdb.DuckDBPyConnection, keys: list[tuple]) -> dict[tuple, list]:
    """The receive protocol lines of the sessions ``keys`` (server, session ID)."""
    ids = sorted({sid for _, sid in keys if sid})
    if not ids:
        return {}
    marks = ", ".join("?" for _ in ids)
    rows = records(
        con.sql(
            f"select {_SMTP_COLUMNS} from smtp where direction = 'receive' "
            f"and session_id in ({marks}) order by server, session_id, sequence_number",
            params=ids,
        )
    )
    out: dict[tuple, list] = {}
    for r in rows:
        out.setdefault((r["server"], r["session_id"]), []).append(r)
    return out


def _walk(rows: list[dict]) -> dict:
    """One session's sender, HELO, recipients and refusals, from its lines in order.

    A reply answers the oldest command still waiting for one: a client that pipelines (MAIL,
    RCPT, RCPT, then the three replies) has each RCPT answered by its own reply. A 3xx reply
    (354 to DATA, 334 to AUTH) and a line of a multi-line reply but its last (``250-``) leave
    the command waiting; a reply while none waits is the greeting."""
    helo = sender = None
    seen_command = False
    waiting: list[tuple[str, str | None]] = []  # (command, recipient of a RCPT)
    accepted: list[str] = []  # the recipients of the current transaction
    refusals: list[dict] = []
    # a session whose first lines are in an earlier log (its first line here is not the
    # connect): a refusal before any command seen is at a stage not known, not at connect
    begun = not rows or rows[0]["event"] == "+" or not rows[0].get("sequence_number")
    for r in rows:
        if r["event"] == "<" and r.get("command"):
            command = r["command"]
            seen_command = True
            text = r.get("data") or ""
            if command in ("HELO", "EHLO"):
                helo = text.split(None, 1)[1].strip() if " " in text.strip() else None
            elif command in ("MAIL", "RSET"):
                sender = _address(text) if command == "MAIL" else sender
                accepted = []
            waiting.append((command, _address(text) if command == "RCPT" else None))
        elif r["event"] == ">" and r.get("reply_code"):
            code = r["reply_code"]
            if 300 <= code < 400 or (r.get("data") or "")[3:4] == "-":
                continue
            if waiting:
                command, rcpt = waiting.pop(0)
                stage = STAGES.get(command)
            else:
                rcpt = None
                stage = "connect" if begun and not seen_command else None
            if stage == "rcpt" and code < 400 and rcpt:
                accepted.append(rcpt)
            if code >= 500 and stage is not None:
                if stage == "rcpt":
                    who = [rcpt]
                elif stage == "data":
                    who = list(accepted) or [None]
                else:
                    who = [None]
                refusals += [{"address": a, "stage": stage, "row": r} for a in who]
    return {"helo": helo, "sender": sender, "refusals": refusals}


def _agent_for(agents: list[dict], address: str | None, stage: str) -> dict | None:
    """The agent decision behind one refusal: the one naming the recipient, else the one
    acting at that stage."""
    at_stage = [a for a in agents if EVENT_STAGES.get((a.get("event") or "").lower()) == stage]
    for a in at_stage:
        if address and address.lower() in [x.lower() for x in a.get("recipient_address") or []]:
            return a
    return at_stage[0] if at_stage else None


def find(
    con: duckdb.DuckDBPyConnection,
    q: Query,
    formats: set[str] | None = None,
    index: Coverage | None = None,
    widen: Callable[[dict[str, list[str]]], None] | None = None,
) -> list[dict]:
    """The rejected attempts the query names, oldest first: candidates (as ``find.candidates``
    returns them, with ``outcome`` rejected) carrying their details under ``attempt``.
    ``formats``: the log formats the store holds (None: any), to skip the logs it has not;
    ``index``: the store's address index (``store.addresses.coverage``), for the days it
    covers; ``widen``: called with the session IDs of the agents' decisions before their
    lines are read, when the views hold only the files naming the ID (a protocol log does
    not name a network message ID)."""

    def held(name: str) -> bool:
        return formats is None or name in formats

    if q.subject or q.event_id or q.kind() not in (None, *BY_ID):
        return []
    by_id = q.kind() in BY_ID
    # a verdict an attempt can have is a filter too (every attempt the store holds that
    # refused, dropped or quarantined a recipient): other verdicts alone read no SMTP log
    if not by_id and not (q.sender or q.recipient or q.since or q.until or q.verdict in VERDICTS):
        return []
    agents = _agent_rows(con, q) if held("exchange-agent") else []
    by_session: dict[tuple, list[dict]] = {}
    for a in agents:
        by_session.setdefault((a.get("server"), a.get("session_id")), []).append(a)
    attempts = []
    if not by_id:
        lines: dict[tuple, list[dict]] = {}
        found = _sessions(con, q, list(by_session), index) if held("exchange-smtp-protocol") else []
        for r in found:
            lines.setdefault((r["server"], r["session_id"]), []).append(r)
        for key, rows in lines.items():
            attempts.append(_from_session(rows, by_session.pop(key, [])))
        clients: dict[tuple, list[dict]] = {}
        for r in _iis_rows(con, q) if held("iis-smtp") else []:
            clients.setdefault((r["server"], r["remote_ip"]), []).append(r)
        for rows in clients.values():
            attempts += [_from_iis(s) for s in _iis_sessions(rows)]
    if widen is not None and by_session:
        widen({"session_id": sorted({sid for _, sid in by_session if sid})})
    lines_of = _session_lines(con, list(by_session))
    for key, rows in by_session.items():
        if by_id and not rows:
            continue
        attempts.append(_from_agents(key, rows, lines_of.get(key, [])))
    out = []
    for a in attempts:
        a["refusals"] = [x for x in a["refusals"] if x["stage"] != "auth"]
        if not a["refusals"] or (q.server and (a["server"] or "").upper() != q.server.upper()):
            continue
        if not _matches(q.sender, a["sender"]):
            continue
        if q.recipient and not any(_matches(q.recipient, x["address"]) for x in a["refusals"]):
            continue
        first = min(x["date_time"] for x in a["refusals"])
        recipients = list(dict.fromkeys(x["address"] for x in a["refusals"] if x["address"]))
        out.append(
            {
                "message_id": a["message_id"],
                "network_message_id": a.get("network_message_id"),
                "date_time": first,
                "sender": a["sender"],
                "recipients": recipients,
                "subject": None,
                "outcome": a["refusals"][0].get("verdict", REJECTED),
                "remote_ip": a["remote_ip"],
                "server": a["server"],
                "stage": a["refusals"][0]["stage"],
                "attempt": a,
            }
        )
    out.sort(key=lambda c: (c["date_time"], c["server"] or "", c["attempt"]["session_id"] or ""))
    return out


def _from_session(rows: list[dict], agents: list[dict]) -> dict:
    walked = _walk(rows)
    refusals = []
    for x in walked["refusals"]:
        r = x["row"]
        agent = _agent_for(agents, x["address"], x["stage"])
        refusals.append(
            {
                "address": x["address"],
                "stage": x["stage"],
                "reply": r.get("data"),
                "date_time": r["date_time"],
                "agent": agent,
                "evidence": [
                    _evidence("smtp", r, r.get("data") or ""),
                    *([_agent_evidence(agent)] if agent else []),
                ],
            }
        )
    mid = next((a["message_id"] for a in agents if a.get("message_id")), None)
    return {
        "network_message_id": _network_id(agents),
        "server": rows[0]["server"],
        "session_id": rows[0]["session_id"],
        "remote_ip": next((r["remote_ip"] for r in rows if r.get("remote_ip")), None),
        "connector": rows[0].get("connector_id"),
        "helo": walked["helo"],
        "sender": walked["sender"] or next((a["p1_from_address"] for a in agents), None),
        "message_id": mid,
        "lines": rows,
        "agents": agents,
        "refusals": refusals,
    }


def _from_agents(key: tuple, agents: list[dict], lines: list[dict]) -> dict:
    refusals = []
    for a in agents:
        stage = EVENT_STAGES.get((a.get("event") or "").lower(), "agent")
        verdict = _verdict(a.get("action"))
        for address in a.get("recipient_address") or [None]:
            refusals.append(
                {
                    "address": address,
                    "stage": stage,
                    "verdict": verdict,
                    "reply": a.get("smtp_response") if verdict == REJECTED else None,
                    "date_time": a["date_time"],
                    "agent": a,
                    "evidence": [_agent_evidence(a)],
                }
            )
    return {
        "server": key[0],
        "session_id": key[1],
        "remote_ip": agents[0].get("remote_ip") or agents[0].get("entered_org_from_ip"),
        "connector": lines[0].get("connector_id") if lines else None,
        "helo": _walk(lines)["helo"] if lines else None,
        "sender": next((a["p1_from_address"] for a in agents if a.get("p1_from_address")), None),
        "message_id": next((a["message_id"] for a in agents if a.get("message_id")), None),
        "network_message_id": _network_id(agents),
        "lines": lines,
        "agents": agents,
        "refusals": refusals,
    }


def _network_id(agents: list[dict]) -> str | None:
    """The network message ID an agent logged of the session's message (after DATA)."""
    return next((a["network_message_id"] for a in agents if a.get("network_message_id")), None)


def _agent_evidence(a: dict) -> dict:
    text = f"{a.get('agent')} {a.get('event')} {a.get('action')}"
    if a.get("reason"):
        text += f" {a['reason']}" + (f" ({a['reason_data']})" if a.get("reason_data") else "")
    if a.get("smtp_response"):
        text += f": {a['smtp_response']}"
    return _evidence("agent", a, text)


def _summary(x: dict, attempt: dict, when: str) -> str:
    agent = x["agent"]
    stage = x["stage"].upper() if x["stage"] in ("helo", "mail", "rcpt", "data") else x["stage"]
    done = {"dropped": "deleted", "quarantined": "quarantined"}.get(x.get("verdict"), "rejected")
    words = f"{done} at {stage} by {attempt['server']} at {when}"
    if agent:
        why = agent.get("reason") or agent.get("action")
        detail = agent.get("reason_data")
        if agent.get("reason") and agent["reason"].startswith("Scl") and detail:
            detail = f"SCL {detail}"
        words += f", by the {agent.get('agent')} ({why}" + (f": {detail})" if detail else ")")
    if x["reply"]:  # (its closing full stop: the sentence goes on)
        words += f": {x['reply'].rstrip().removesuffix('.')}"
    source = attempt["remote_ip"] or "an unknown client"
    words += f"; from {source}" + (f" (HELO {attempt['helo']})" if attempt["helo"] else "")
    if x.get("verdict", REJECTED) != REJECTED:
        words += "; the sender was told it was accepted"
    return words


def build(candidate: dict, tz: str) -> MessageTrace:
    """The trace of one rejected attempt: its SMTP session and agent decisions as the
    timeline, a ``rejected`` verdict per refused recipient."""
    attempt = candidate["attempt"]
    zone = ZoneInfo(tz)

    def when(t: datetime) -> str:
        return said(t, zone)

    events = []
    if attempt["lines"]:
        rows = attempt["lines"]
        events.append(
            Event(
                date_time=rows[0]["date_time"],
                server=attempt["server"],
                event_id="SMTP SESSION",
                meaning="The SMTP Receive session (protocol log)",
                source="SMTP",
                outcome="failed",
                client=attempt["remote_ip"],
                server_host=None,
                connector=attempt["connector"],
                internal_message_id=None,
                conversation=[
                    Line(
                        r["date_time"],
                        "receive",
                        r.get("event"),
                        r.get("data"),
                        r.get("reply_code"),
                        r.get("server"),
                        r.get("session_id"),
                        r.get("context"),
                    )
                    for r in rows
                ],
                log_format="exchange-smtp-protocol",
                file=rows[0].get("file"),
                line=rows[0].get("line"),
                name="SMTP session",
            )
        )
    for a in attempt["agents"]:
        action_name, action_meaning = meaning(a.get("action"), "agent")
        events.append(
            Event(
                date_time=a["date_time"],
                server=attempt["server"],
                event_id=(a.get("action") or "AGENT").upper(),
                meaning=action_meaning,
                source=a.get("agent"),
                outcome={"dropped": "dropped", "quarantined": "quarantined"}.get(
                    _verdict(a.get("action")), "failed"
                ),
                client=a.get("remote_ip"),
                server_host=None,
                connector=None,
                internal_message_id=None,
                recipients=[
                    {"address": x, "status": a.get("smtp_response"), "status_meaning": None}
                    for x in a.get("recipient_address") or []
                ],
                message_id=a.get("message_id"),
                log_format="exchange-agent",
                file=a.get("file"),
                line=a.get("line"),
                name=action_name,
            )
        )
    events.sort(key=lambda e: e.date_time)
    verdicts = []
    for x in attempt["refusals"]:
        enhanced, status_meaning = explain(x["reply"])
        agent = x["agent"] or {}
        verdicts.append(
            Verdict(
                address=x["address"],
                verdict=x.get("verdict", REJECTED),
                server=attempt["server"],
                date_time=x["date_time"],
                summary=_summary(x, attempt, when(x["date_time"])),
                status=x["reply"],
                status_meaning=status_meaning,
                enhanced_status=enhanced,
                stage=x["stage"],
                agent=agent.get("agent"),
                reason=agent.get("reason"),
                remote_ip=attempt["remote_ip"],
                helo=attempt["helo"],
                evidence=x["evidence"],
            )
        )
    return MessageTrace(
        message_id=attempt["message_id"],
        network_message_id=attempt.get("network_message_id"),
        subject=None,
        sender=attempt["sender"],
        received_at=None,
        size=None,
        events=events,
        recipients=verdicts,
    )


def shown(candidate: dict) -> dict:
    """A candidate as the result lists it (JSON-ready, without its details)."""
    out = {k: v for k, v in candidate.items() if k != "attempt"}
    out["date_time"] = candidate["date_time"].isoformat()
    return out
