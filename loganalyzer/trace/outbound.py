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
from loganalyzer.read.query import time_filter
from loganalyzer.store.duck import records
from loganalyzer.trace.build import _line
from loganalyzer.trace.find import Query, matches
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
    """SQL of ``lines`` (IIS outbound lines) with each command's ``reply`` and ``reply_text``
    (the next line of the remote, when a reply) and the reply after it (``then_code``,
    ``then_text``: the answer to a message's data follows the 354 reply to DATA)."""
    w = "over (partition by server, remote_ip order by date_time, file, line)"
    return f"""
        select *,
               if(lead(event) {w} = '<', lead(reply_code) {w}, null) as reply,
               if(lead(event) {w} = '<', lead(data) {w}, null) as reply_text,
               if(lead(event, 2) {w} = '<', lead(reply_code, 2) {w}, null) as then_code,
               if(lead(event, 2) {w} = '<', lead(data, 2) {w}, null) as then_text
        from ({lines})
    """


def _transactions_sql(q: Query) -> tuple[str, list]:
    """SQL of the outbound transactions whose MAIL line is in the query's window: one row
    each with its server, remote, sender, RCPT lines and replies, DATA replies and named ID."""
    window, params = time_filter(q.since, q.until, partitioned=False)
    since = q.since and (datetime.fromisoformat(q.since) - _SESSION_REACH).isoformat()
    lines_window, lparams = time_filter(since, q.until)
    lines = (
        f"select {_COLUMNS} from smtp where log_format = 'iis-smtp' and direction = 'send' "
        f"and {lines_window}"
    )
    sql = f"""
        with l as ({transactions(_paired(lines), "server, remote_ip")})
        select server, remote_ip, tx,
               min(date_time) filter (where upper(command) = 'MAIL') as mail_at,
               any_value(mail_from) filter (where upper(command) = 'MAIL') as sender,
               any_value(reply) filter (where upper(command) = 'MAIL') as mail_reply,
               any_value(reply_text) filter (where upper(command) = 'MAIL') as mail_text,
               list(struct_pack(address := rcpt_to, at := date_time, reply := reply,
                                text := reply_text) order by date_time, file, line)
                   filter (where upper(command) = 'RCPT' and rcpt_to is not null) as rcpts,
               any_value(date_time) filter (where upper(command) = 'DATA') as data_at,
               any_value(reply) filter (where upper(command) = 'DATA') as data_reply,
               any_value(reply_text) filter (where upper(command) = 'DATA') as data_text,
               any_value(then_code) filter (where upper(command) = 'DATA') as sent_reply,
               any_value(then_text) filter (where upper(command) = 'DATA') as sent_text,
               max(date_time) as last_at,
               any_value(message_id) filter (where message_id is not null) as named
        from l group by server, remote_ip, tx
    """
    clauses = [window.replace("date_time", "mail_at"), "mail_at is not null", "named is null"]
    if q.server:
        clauses.append("upper(server) = upper(?)")
        params.append(q.server)
    return f"select * from ({sql}) where {' and '.join(clauses)}", lparams + params


def find(con: duckdb.DuckDBPyConnection, q: Query, servers: set[str]) -> list[dict]:
    """The outbound transactions the query names, oldest first: candidates (as
    ``find.candidates`` returns them) with their details under ``attempt`` (as
    ``trace.rejected``'s, ``direction`` send), each recipient's verdict in ``refusals``.
    ``servers``: the store's servers (upper case), whose names a hand-off goes to."""
    if q.subject or q.event_id or q.kind() is not None:
        return []
    if not (q.sender or q.recipient or q.since or q.until):
        return []
    sql, params = _transactions_sql(q)
    found = records(con.sql(sql, params=params))
    if not found:
        return []
    conversations = _conversations(con, found)
    out = []
    for t in found:
        if not matches(q.sender, t["sender"] or ""):
            continue
        lines = conversations.get((t["server"], t["remote_ip"], t["mail_at"]), [])
        outcomes = _outcomes(t, lines, servers)
        if q.recipient and not any(matches(q.recipient, x["address"]) for x in outcomes):
            continue
        recipients = [r["address"] for r in t["rcpts"] or []]
        attempt = {
            "direction": "send",
            "server": t["server"],
            "session_id": None,
            "remote_ip": t["remote_ip"],
            "remote_host": _greeting_host(lines),
            "connector": None,
            "helo": None,
            "sender": t["sender"] or None,
            "message_id": None,
            "lines": lines,
            "agents": [],
            "refusals": outcomes,
        }
        out.append(
            {
                "message_id": None,
                "network_message_id": None,
                "date_time": t["mail_at"],
                "sender": t["sender"] or None,
                "recipients": list(dict.fromkeys(recipients)),
                "subject": None,
                "outcome": outcomes[0]["verdict"],
                "remote_ip": t["remote_ip"],
                "server": t["server"],
                "stage": outcomes[0]["stage"],
                "attempt": attempt,
            }
        )
    out.sort(key=lambda c: (c["date_time"], c["server"] or "", c["remote_ip"] or ""))
    return out


def _conversations(con: duckdb.DuckDBPyConnection, found: list[dict]) -> dict[tuple, list]:
    """Each transaction's session lines: from the remote's greeting (the last ``220`` reply
    before its MAIL line, within ``_SESSION_REACH``) to the reply after its QUIT."""
    keys = [(t["server"], t["remote_ip"], t["mail_at"], t["last_at"]) for t in found]
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
                "servers": [k[0] for k in keys],
                "ips": [k[1] for k in keys],
                "mails": [k[2] for k in keys],
                "lasts": [k[3] for k in keys],
                "first": min(k[2] for k in keys).date() - timedelta(days=1),
                "last": max(k[3] for k in keys).date() + timedelta(days=1),
            },
        )
    )
    by_key: dict[tuple, list[dict]] = {}
    for r in rows:
        by_key.setdefault((r["server"], r["remote_ip"], r.pop("mail_at")), []).append(r)
    return {key: _session(lines, key[2]) for key, lines in by_key.items()}


def _session(lines: list[dict], mail_at: datetime) -> list[dict]:
    """The lines of the session holding the MAIL line at ``mail_at``."""
    mail = next(
        i
        for i, x in enumerate(lines)
        if x["date_time"] == mail_at and (x.get("command") or "").upper() == "MAIL"
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


def _greeting_host(lines: list[dict]) -> str | None:
    """The host the remote's greeting (``220 mx.example.com ...``) names."""
    for x in lines:
        if x.get("reply_code") == 220 and x.get("data"):
            words = x["data"][3:].lstrip(" -").split()
            return words[0] if words else None
    return None


def _outcomes(t: dict, lines: list[dict], servers: set[str]) -> list[dict]:
    """Each recipient's verdict in one transaction (``address`` None where the remote refused
    the MAIL line before any RCPT was sent), with its stage, reply and evidence."""
    mail_line = next(
        (x for x in lines if x["date_time"] == t["mail_at"] and x.get("command") == "MAIL"), {}
    )

    def outcome(address, verdict, stage, code, text, at) -> dict:
        reply = text or (str(code) if code else None)
        return {
            "address": address,
            "verdict": verdict,
            "stage": stage,
            "reply": reply,
            "date_time": at,
            "agent": None,
            "evidence": [
                {
                    "log": "smtp",
                    "server": t["server"],
                    "date_time": at,
                    "text": f"{stage.upper()} -> {reply}" if reply else stage.upper(),
                    "file": mail_line.get("file"),
                    "line": mail_line.get("line"),
                }
            ],
        }

    rcpts = t["rcpts"] or []
    refused = _refused(t["mail_reply"])
    if refused:
        return [
            outcome(r, refused, "mail", t["mail_reply"], t["mail_text"], t["mail_at"])
            for r in [x["address"] for x in rcpts] or [None]
        ]
    out, taken = [], []
    for r in rcpts:
        if verdict := _refused(r["reply"]):
            out.append(outcome(r["address"], verdict, "rcpt", r["reply"], r["text"], r["at"]))
        else:
            taken.append(r["address"])
    if not taken:
        return out
    at = t["data_at"] or t["last_at"]
    if t["data_at"] is None or t["sent_reply"] is None and not _refused(t["data_reply"]):
        # the remote's answer to the data is not logged: no more than that it was offered
        code, text, verdict = t["data_reply"], t["data_text"], "last_seen"
    elif verdict := _refused(t["data_reply"]) or _refused(t["sent_reply"]):
        failed = _refused(t["data_reply"])
        code = t["data_reply"] if failed else t["sent_reply"]
        text = t["data_text"] if failed else t["sent_text"]
    else:
        code, text = t["sent_reply"], t["sent_text"]
        host = _greeting_host(lines)
        row = {"log_format": "iis-smtp", "server_ip": t["remote_ip"], "server_hostname": host}
        verdict = fate.verdict_of("SEND", fate.kind_of("SEND", row, servers))
        at = t["last_at"]
    out += [outcome(a, verdict, "data", code, text, at) for a in taken]
    order = {r["address"]: i for i, r in reversed(list(enumerate(rcpts)))}
    return sorted(out, key=lambda x: order[x["address"]])  # in the order of the RCPT lines


def _refused(code: int | None) -> str | None:
    """The verdict of recipients a reply of ``code`` refused (None: it did not refuse)."""
    return REFUSED.get((code or 0) // 100)


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
        answered = _ANSWERED[x["stage"]]
        if x["verdict"] == "last_seen" and x["stage"] == "data" and not x["reply"]:
            answered = "the DATA command; its answer to the message's data is not logged"
        extra = f"; {remote} answered {answered}"
        if x["address"] is None:
            extra += ", before any recipient was named"
        when = said(x["date_time"], zone)
        words = summary(
            x["verdict"],
            attempt["server"],
            when,
            x["reply"],
            status_meaning,
            extra,
            unknown=f"handed to {remote}, a server of the organisation whose logs are not in "
            "the store"
            if x["verdict"] == "last_seen"
            else None,
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
