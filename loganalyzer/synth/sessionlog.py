"""`OUT/sessions.jsonl` (with `--clients`): one JSON object per SMTP protocol-log session synth
wrote, what the report's TLS and SMTP clients sections count, recorded as the lines are written.

Keys: `server`, `log` (RECV or SEND), `connector`, `session_id`, `remote_ip`, `connected_at`
(the `+` line; null for a send attempt that never connected), `host` (RECV: the first EHLO or
HELO name; SEND: the remote server's name in its 220 greeting), `tls` (`TLS 1.0` ... `TLS 1.2`
from the negotiation line written, null without one), `cipher` (its bulk encryption
algorithm), `tls_error` (the error of a `TLS negotiation failed with error X` line), `user`
(the `authenticated` line's user, null when anonymous), `situation` (the `--clients` situation
that wrote it, null for the others) and `messages`: the messages a RECV session accepted (its
`250 2.6.0` reply), each with `message_id`, `at` and the `recipients` whose RCPT got a 250
(replies are matched to commands in order: after MAIL, one reply per RCPT).
Sessions of an omitted server are left out. Rows are in the order of `connected_at` (then the
first line), server and session ID.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from loganalyzer.synth.clock import iso
from loganalyzer.synth.protocol import TLS_LINES

_FAILED = re.compile(r"^TLS negotiation failed with error (\S+)")


class Record:
    """One session as its lines are written."""

    __slots__ = ("row", "first", "log", "pending", "mail_reply", "message")

    def __init__(self, row: dict, log: str) -> None:
        self.row = row
        self.log = log
        self.first: int | None = None
        self.pending: list[str] = []  # RCPT addresses waiting for their reply
        self.mail_reply = False  # the next reply answers MAIL
        self.message: list[str] | None = None  # accepted recipients of the current message

    def see(self, t: int, event: str, data: str, context: str) -> None:
        row = self.row
        if self.first is None:
            self.first = t
        if event == "+":
            row["connected_at"] = iso(t)
        if event == "*":
            if context in TLS_LINES:
                row["tls"], row["cipher"] = TLS_LINES[context]
            m = _FAILED.match(context)
            if m:
                row["tls_error"] = m.group(1)
            if context == "authenticated" and row["user"] is None:
                row["user"] = data
            return
        command, reply = ("<", ">") if self.log == "RECV" else (">", "<")
        if event == command:
            verb = data.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO") and row["host"] is None and self.log == "RECV":
                row["host"] = data.split(" ", 1)[1].strip()
            elif verb == "MAIL":
                self.message, self.pending, self.mail_reply = [], [], True
            elif verb == "RCPT":
                self.pending.append(data[data.index("<") + 1 : data.index(">")])
        elif event == reply:
            if self.log == "SEND" and row["host"] is None and data.startswith("220 "):
                row["host"] = data.split(" ")[1]
            if self.log == "RECV" and data.startswith("250 2.6.0 ") and self.message is not None:
                row["messages"].append(
                    {"message_id": data.split(" ")[2], "at": iso(t), "recipients": self.message}
                )
                self.message = None
            elif self.mail_reply:
                self.mail_reply = False
            elif self.pending:
                address = self.pending.pop(0)
                if data.startswith("250") and self.message is not None:
                    self.message.append(address)


class SessionLog:
    """Every session's record; written to `sessions.jsonl` at the end of the run."""

    def __init__(self, omitted: frozenset[str]) -> None:
        self.omitted = omitted
        self.records: list[Record] = []
        self.situation: str | None = None  # set while a `--clients` situation writes

    def open(self, server: str, kind: str, connector: str, sid: str, remote: str) -> Record | None:
        if server in self.omitted or kind not in ("RECV", "SEND"):
            return None
        ip = remote.rsplit(":", 1)[0].strip("[]")
        row = {
            "server": server,
            "log": kind,
            "connector": connector,
            "session_id": sid,
            "remote_ip": ip,
            "connected_at": None,
            "host": None,
            "tls": None,
            "cipher": None,
            "tls_error": None,
            "user": None,
            "situation": self.situation,
            "messages": [],
        }
        rec = Record(row, kind)
        self.records.append(rec)
        return rec

    def write(self, path: Path) -> None:
        def key(r: Record) -> tuple:
            return (
                r.row["connected_at"] or iso(r.first or 0),
                r.row["server"],
                r.row["session_id"],
            )

        with open(path, "w", encoding="utf-8", newline="\n") as fh:
            for r in sorted((r for r in self.records if r.first is not None), key=key):
                fh.write(json.dumps(r.row, ensure_ascii=False) + "\n")
