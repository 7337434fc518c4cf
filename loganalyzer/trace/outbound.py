"""Mail an IIS SMTP service sent on itself: its outbound sessions, read from its lines alone.

IIS writes a server's own sessions as ``OutboundConnectionCommand`` (its command) and
``OutboundConnectionResponse`` (the remote server's reply) lines: ingest stores them with
``direction`` send, a command line with its verb, the next reply line of the same remote with
the reply. A transaction starts at a MAIL line (``trace.relay.transactions``); its sender is
the MAIL FROM address, its recipients the RCPT TO addresses. Each recipient's verdict is the
remote's answer: a 4xx reply to MAIL, RCPT or DATA (or after the message's data) defers it, a
5xx one fails it, the ``250`` after the data hands the message on: out of the organisation
(``sent_external``) or to a server of it (``last_seen``), by ``fate.is_handoff``.

Such a transaction is listed as one message of its own, beside the inbound session that
brought the message in: the outbound lines name no Message-ID (an NCSA log's DATA line is
bare, a W3C one holds the relay's internal ID, not the inbound line's Message-ID), and the same
sender and recipients minutes apart do not make one message (a relay sends a newsletter's
copies alike). A transaction whose reply names the message (``250 2.6.0 <id>``) is left out:
it is traced with that message.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from loganalyzer import fate
from loganalyzer.read.query import like, time_filter
from loganalyzer.store.duck import records
from loganalyzer.trace.build import _line
from loganalyzer.trace.find import Query
from loganalyzer.trace.model import Event, MessageTrace, Verdict
from loganalyzer.trace.relay import transactions
from loganalyzer.trace.verdict import explain, said, summary

if TYPE_CHECKING:
    import duckdb

#: A refusing reply's class -> the verdict of the recipients it refused.
REFUSED = {4: "deferred", 5: "failed"}
#: How long before its MAIL line an outbound session may have connected.
_SESSION_REACH = timedelta(minutes=10)
_COLUMNS = (
    "date_time, server, log_format, direction, remote_ip, event, command, data, reply_code, "
    "enhanced_status, message_id, file, line"
)


def _paired(lines: str) -> str:
    """SQL of ``lines`` (IIS outbound lines) with each command's reply (the next line of the
    remote, when a reply: ``answer_code``, ``answer_text``, ``answer_file``, ``answer_line``),
    the reply after it (``then_*``: the answer to a message's data follows the 354 reply to
    DATA) and ``greeting``, the remote's last 220 greeting up to the line."""
    w = "over (partition by server, remote_ip order by date_time, file, line)"
    out = []
    for name, n in (("answer", 1), ("then", 2)):
        said = f"lead(event, {n}) {w} = '<'"
        out += [
            f"if({said}, lead({column}, {n}) {w}, null) as {name}_{suffix}"
            for column, suffix in (
                ("reply_code", "code"),
                ("data", "text"),
                ("file", "file"),
                ("line", "line"),
            )
        ]
    greeting = (
        "last_value(if(event = '<' and reply_code = 220, data, null) ignore nulls) over "
        "(partition by server, remote_ip order by date_time, file, line rows unbounded preceding)"
    )
    return f"select *, {', '.join(out)}, {greeting} as greeting from ({lines})"


def _transactions_sql(q: Query) -> tuple[str, list]:
    """SQL of the outbound transactions whose MAIL line is in the query's window (and of the
    sender, recipient and server asked for): one row each with its server, remote, sender,
    the replies to its MAIL, RCPT and DATA lines and to its data, and the Message-ID a reply
    names."""
    window, params = time_filter(q.since, q.until, partitioned=False)
    since = q.since and datetime.fromisoformat(q.since) - _SESSION_REACH
    lines_window, lparams = time_filter(since, q.until)
    lines = (
        f"select {_COLUMNS} from smtp where log_format = 'iis-smtp' and direction = 'send' "
        f"and {lines_window}"
    )

    def of(verb: str, column: str, name: str) -> str:
        return f"any_value({column}) filter (where upper(command) = '{verb}') as {name}"

    replies = ", ".join(
        of(verb, f"{part}_{suffix}", f"{verb.lower()}_{part}_{suffix}")
        for verb, parts in (("MAIL", ("answer",)), ("DATA", ("answer", "then")))
        for part in parts
        for suffix in ("code", "text", "file", "line")
    )
    sql = f"""
        with l as ({transactions(_paired(lines), "server, remote_ip")})
        select server, remote_ip, tx,
               {of("MAIL", "date_time", "mail_at")}, {of("MAIL", "mail_from", "sender")},
               {of("MAIL", "greeting", "greeting")}, {of("DATA", "date_time", "data_at")},
               {replies},
               list(struct_pack(address := rcpt_to, at := date_time, code := answer_code,
                                text := answer_text, file := answer_file, line := answer_line)
                    order by date_time, file, line)
                   filter (where upper(command) = 'RCPT' and rcpt_to is not null) as rcpts,
               max(date_time) as last_at,
               any_value(message_id) filter (where message_id is not null) as named
        from l group by server, remote_ip, tx
    """
    clauses = [window.replace("date_time", "mail_at"), "mail_at is not null", "named is null"]
    if q.server:
        clauses.append("upper(server) = upper(?)")
        params.append(q.server)
    if q.sender:
        clauses.append("coalesce(sender, '') ilike ? escape '\\'")
        params.append(like(q.sender))
    if q.recipient:
        clauses.append("len(list_filter(rcpts, lambda x: x.address ilike ? escape '\\')) > 0")
        params.append(like(q.recipient))
    return f"select * from ({sql}) where {' and '.join(clauses)}", lparams + params


def find(con: duckdb.DuckDBPyConnection, q: Query, servers: set[str]) -> list[dict]:
    """The outbound transactions the query names, oldest first: candidates (as
    ``find.candidates`` returns them) with their details under ``attempt`` (as
    ``trace.rejected``'s, ``direction`` send; its ``lines`` read by ``converse``), each
    recipient's verdict in ``refusals``. ``servers``: the store's servers (upper case),
    whose names a hand-off goes to."""
    if q.subject or q.event_id or q.kind() is not None:
        return []
    if not (q.sender or q.recipient or q.since or q.until):
        return []
    sql, params = _transactions_sql(q)
    out = []
    for t in records(con.sql(sql, params=params)):
        outcomes = _outcomes(t, servers)
        attempt = {
            "direction": "send",
            "server": t["server"],
            "session_id": None,
            "remote_ip": t["remote_ip"],
            "remote_host": _greeting_host(t["greeting"]),
            "connector": None,
            "helo": None,
            "sender": t["sender"] or None,
            "message_id": None,
            "mail_at": t["mail_at"],
            "last_at": t["last_at"],
            "lines": [],
            "agents": [],
            "refusals": outcomes,
        }
        out.append(
            {
                "message_id": None,
                "network_message_id": None,
                "date_time": t["mail_at"],
                "sender": t["sender"] or None,
                "recipients": list(dict.fromkeys(r["address"] for r in t["rcpts"] or [])),
                "subject": None,
                "outcome": outcomes[0]["verdict"],
                "remote_ip": t["remote_ip"],
                "server": t["server"],
                "stage": outcomes[0]["stage"],
                "direction": "send",
                "attempt": attempt,
            }
        )
    out.sort(key=lambda c: (c["date_time"], c["server"] or "", c["remote_ip"] or ""))
    return out


def converse(con: duckdb.DuckDBPyConnection, candidates: list[dict]) -> None:
    """Each outbound candidate's session lines (``attempt.lines``), in place: from the
    remote's greeting (the last ``220`` reply before its MAIL line, within
    ``_SESSION_REACH``) to the reply after its QUIT. Read for the messages traced alone."""
    attempts = [c["attempt"] for c in candidates if c["attempt"].get("direction") == "send"]
    if not attempts:
        return
    rows = records(
        con.sql(
            f"""
            with k as (select unnest($servers) as server, unnest($ips) as remote_ip,
                              unnest($mails) as mail_at, unnest($lasts) as last_at)
            select k.mail_at, {", ".join("s." + c.strip() for c in _COLUMNS.split(","))}
            from smtp s join k on s.server = k.server and s.remote_ip = k.remote_ip
             and s.date_time between k.mail_at - interval 10 minute
                                 and k.last_at + interval 1 minute
            where s.log_format = 'iis-smtp' and s.direction = 'send'
              and s.date between $first and $last
            order by s.date_time, s.file, s.line
            """,
            params={
                "servers": [a["server"] for a in attempts],
                "ips": [a["remote_ip"] for a in attempts],
                "mails": [a["mail_at"] for a in attempts],
                "lasts": [a["last_at"] for a in attempts],
                "first": min(a["mail_at"] for a in attempts).date() - timedelta(days=1),
                "last": max(a["last_at"] for a in attempts).date() + timedelta(days=1),
            },
        )
    )
    by_key: dict[tuple, list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["server"], r["remote_ip"], r.pop("mail_at")), []).append(r)
    for a in attempts:
        lines = by_key.get((a["server"], a["remote_ip"], a["mail_at"]), [])
        a["lines"] = _session(lines, a["mail_at"]) if lines else []


def _session(lines: list[dict], mail_at: datetime) -> list[dict]:
    """The lines of the session holding the MAIL line at ``mail_at``."""
    mail = next(
        (
            i
            for i, x in enumerate(lines)
            if x["date_time"] == mail_at and (x.get("command") or "").upper() == "MAIL"
        ),
        0,
    )
    start = max(
        (i for i, x in enumerate(lines[: mail + 1]) if x.get("reply_code") == 220),
        default=mail,
    )
    end = next(
        (i for i, x in enumerate(lines) if i > mail and (x.get("command") or "").upper() == "QUIT"),
        None,
    )
    if end is not None and end + 1 < len(lines) and lines[end + 1].get("event") == "<":
        end += 1  # the remote's reply to QUIT
    if end is None:  # the session's end is not logged: its transaction's lines
        end = next(
            (
                i - 1
                for i, x in enumerate(lines)
                if i > mail and (x.get("command") or "").upper() in ("MAIL", "HELO", "EHLO")
            ),
            len(lines) - 1,
        )
    return lines[start : end + 1]


def _greeting_host(greeting: str | None) -> str | None:
    """The host a remote's greeting (``220 mx.example.com ESMTP ...``) names."""
    words = (greeting or "")[3:].lstrip(" -").split()
    return words[0] if words else None


def _outcomes(t: dict, servers: set[str]) -> list[dict]:
    """Each recipient's verdict in one transaction (``address`` None where the remote refused
    the MAIL line before any RCPT was sent), with its stage, reply and evidence."""

    def outcome(address, verdict, stage, reply: dict, at, note=None) -> dict:
        text = reply["text"] or (str(reply["code"]) if reply["code"] else None)
        return {
            "address": address,
            "verdict": verdict,
            "note": note if verdict == "last_seen" else None,
            "stage": stage,
            "reply": text,
            "date_time": at,
            "agent": None,
            "evidence": [
                {
                    "log": "smtp",
                    "server": t["server"],
                    "date_time": at,
                    "text": f"{stage.upper()} -> {text}" if text else stage.upper(),
                    "file": reply["file"],
                    "line": reply["line"],
                }
            ],
        }

    def reply(prefix: str) -> dict:
        return {k: t[f"{prefix}_{k}"] for k in ("code", "text", "file", "line")}

    rcpts = t["rcpts"] or []
    if refused := _refused(t["mail_answer_code"]):
        return [
            outcome(r, refused, "mail", reply("mail_answer"), t["mail_at"])
            for r in [x["address"] for x in rcpts] or [None]
        ]
    if not rcpts:
        return [outcome(None, "last_seen", "mail", reply("mail_answer"), t["mail_at"], "unnamed")]
    out, taken = [], []
    for r in rcpts:
        if verdict := _refused(r["code"]):
            out.append(outcome(r["address"], verdict, "rcpt", r, r["at"]))
        else:
            taken.append(r["address"])
    if not taken:
        return out
    at, data, sent = t["data_at"] or t["last_at"], reply("data_answer"), reply("data_then")
    note = "handed"  # (a 250 after the data to a server of the organisation)
    if t["data_at"] is None or sent["code"] is None and not _refused(data["code"]):
        # the remote's answer to the data is not logged: no more than that it was offered
        answer, verdict, note = data, "last_seen", "unanswered"
    elif verdict := _refused(data["code"]) or _refused(sent["code"]):
        answer = data if _refused(data["code"]) else sent
    else:
        answer, at = sent, t["last_at"]
        host = _greeting_host(t["greeting"])
        row = {"log_format": "iis-smtp", "server_ip": t["remote_ip"], "server_hostname": host}
        verdict = fate.verdict_of("SEND", fate.kind_of("SEND", row, servers))
    out += [outcome(a, verdict, "data", answer, at, note) for a in taken]
    order = {r["address"]: i for i, r in reversed(list(enumerate(rcpts)))}
    return sorted(out, key=lambda x: order[x["address"]])  # in the order of the RCPT lines


def _refused(code: int | None) -> str | None:
    """The verdict of recipients a reply of ``code`` refused (None: it did not refuse)."""
    return REFUSED.get((code or 0) // 100)


#: What a ``last_seen`` recipient's story ends with, by its outcome's ``note``.
_NOTES = {
    "handed": "handed to {remote}, a server of the organisation whose logs are not in the store",
    "unanswered": "offered to {remote}, whose answer to the message's data is not logged",
    "unnamed": "the session with {remote} ends before any recipient is named",
}
#: What the remote's reply answered, by stage.
_ANSWERED = {"mail": "the MAIL command", "rcpt": "the RCPT command", "data": "the message's data"}


def build(candidate: dict, tz: str) -> MessageTrace:
    """The trace of one outbound transaction: its SMTP session as the timeline, each
    recipient's verdict with the remote's reply."""
    attempt = candidate["attempt"]
    zone = ZoneInfo(tz)
    lines = attempt["lines"]
    remote = attempt["remote_ip"]
    if attempt.get("remote_host"):
        remote = f"{attempt['remote_host']} ({remote})"
    events = [
        Event(
            date_time=candidate["date_time"],
            server=attempt["server"],
            event_id="SEND",
            name="SMTP session (outbound)",
            meaning=f"sent by the IIS SMTP service to {remote}",
            source="IIS SMTP",
            outcome=candidate["outcome"],
            client=None,
            server_host=remote,
            connector=None,
            internal_message_id=None,
            recipients=[
                {"address": x["address"], "status": x["reply"], "status_meaning": None}
                for x in attempt["refusals"]
                if x["address"]
            ],
            conversation=[_line(x) for x in lines],
            log_format="iis-smtp",
            file=lines[0].get("file") if lines else None,
            line=lines[0].get("line") if lines else None,
        )
    ]
    verdicts = []
    for x in attempt["refusals"]:
        enhanced, status_meaning = explain(x["reply"])
        extra = f"; {remote} answered {_ANSWERED[x['stage']]}" if x["reply"] else ""
        if x["address"] is None and x["verdict"] != "last_seen":
            extra += ", before any recipient was named"
        words = summary(
            x["verdict"],
            attempt["server"],
            said(x["date_time"], zone),
            x["reply"],
            status_meaning,
            "" if x.get("note") == "unanswered" else extra,
            unknown=_NOTES[x["note"]].format(remote=remote) if x.get("note") else None,
        )
        verdicts.append(
            Verdict(
                address=x["address"],
                verdict=x["verdict"],
                server=attempt["server"],
                date_time=x["date_time"],
                summary=words,
                status=x["reply"],
                status_meaning=status_meaning,
                enhanced_status=enhanced,
                stage=x["stage"],
                remote_ip=attempt["remote_ip"],
                evidence=x["evidence"],
            )
        )
    return MessageTrace(
        message_id=None,
        network_message_id=None,
        subject=None,
        sender=attempt["sender"],
        received_at=None,
        size=None,
        events=events,
        recipients=verdicts,
    )
