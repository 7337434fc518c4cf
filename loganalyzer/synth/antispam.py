"""Sessions the frontends refuse, and the anti-spam agent log rows that say why (`agent_logs`).

Each day gets, besides its messages, Internet sessions rejected at every SMTP stage, each in
the frontend's SMTP Receive protocol log and (where an agent decided) its agent log
(`<SERVER>/AgentLog/AgentLog<yyyymmddhh>-<n>.LOG`, FORMATS.md L):

- `blocked_ip` (connect): Connection Filtering, OnConnect, RejectConnection, LocalBlockList.
- `bad_helo` (helo): `501 5.5.4 Invalid domain name`, no agent.
- `rbl` (rcpt): Connection Filtering, OnRcptCommand, RejectCommand, BlockListProvider.
- `harvest` (rcpt): a tarpitted bot guessing addresses; Recipient Filter, RecipientDoesNotExist.
- `senderid` (data): Sender Id, OnEndOfHeaders, RejectMessage, Fail_NotPermitted.
- `spam` (data): Content Filter, OnEndOfData, RejectMessage, SclAtOrAboveRejectThreshold.
- `cf_delete`, `cf_quarantine` (data): the frontend accepts the message (`250 2.6.0`), then
  the Content Filter deletes it (DeleteMessage, SclAtOrAboveDeleteThreshold) or sends it to
  the spam quarantine mailbox (QuarantineMessage, SclAtOrAboveQuarantineThreshold). The
  sender is told it was accepted; no tracking row follows (the quarantine mailbox's own
  delivery is not simulated). Truth: `dropped` or `quarantined` at the agent's decision.

None leaves a tracking row. Truth: one `rejected` row per refused recipient (one with a null
recipient and sender when the session ended before RCPT), with `stage`, `agent` (null when no
agent decided), `remote_ip` and `reply`; `message_id` only when the session reached DATA,
`network_message_id` only when the Content Filter Agent decided at its end (it logs one).

A generator of its own (seeded from the run's seed) draws these, so the messages, and every
line the other scenarios write, stay the same.
"""

from __future__ import annotations

from collections.abc import Callable

from loganalyzer.synth.clock import DAY_MS, banner_date, iso
from loganalyzer.synth.engine import EngineBase
from loganalyzer.synth.org import Rng, network_guid
from loganalyzer.synth.protocol import EXT_FRONT, Op, Session, endpoint, play
from loganalyzer.synth.tracking import q
from loganalyzer.synth.truth import enhanced_status

STAGES = (
    "blocked_ip",
    "bad_helo",
    "rbl",
    "harvest",
    "senderid",
    "spam",
    "cf_delete",
    "cf_quarantine",
)
#: Scenario -> (stage, agent).
KINDS = {
    "blocked_ip": ("connect", "Connection Filtering Agent"),
    "bad_helo": ("helo", None),
    "rbl": ("rcpt", "Connection Filtering Agent"),
    "harvest": ("rcpt", "Recipient Filter Agent"),
    "senderid": ("data", "Sender Id Agent"),
    "spam": ("data", "Content Filter Agent"),
    "cf_delete": ("data", "Content Filter Agent"),
    "cf_quarantine": ("data", "Content Filter Agent"),
}
#: Content Filter decisions on accepted messages: kind -> (action, reason, response, verdict).
ACCEPTED = {
    "cf_delete": ("DeleteMessage", "SclAtOrAboveDeleteThreshold", "", "dropped"),
    "cf_quarantine": (
        "QuarantineMessage",
        "SclAtOrAboveQuarantineThreshold",
        "550 5.2.1 Content Filter agent quarantined this message",
        "quarantined",
    ),
}
BLOCKED = (
    "550 5.7.1 External client with IP address {ip} does not have permissions to submit to this"
    " server."
)
BAD_HELO = "501 5.5.4 Invalid domain name"
RBL = "550 5.7.1 Recipient not authorized, your IP has been found on a block list"
UNKNOWN = "550 5.1.1 User unknown"
SENDER_ID = "550 5.7.1 Sender ID (PRA) Not Permitted"
SPAM = "550 5.7.1 Message rejected as spam by Content Filtering."
TARPIT = "Tarpit for '0.00:00:05' due to '550 5.1.1 User unknown'"
BOT_HELOS = ("User", "localhost", "ylmf-pc", "WIN-7H2K4PQ1", "mail.example")
BOT_DOMAINS = ("bulk-offers.example", "promo-mail.example", "cheap-pills.example")
MARGIN_MS = 30 * 60_000


class Refusals:
    """Writes the day's refused sessions in time order, each with its truth rows."""

    def __init__(self, engine: EngineBase, seed: int, per_day: int) -> None:
        self.eng = engine
        self.org = engine.org
        self.out = engine.out
        self.rng = Rng(seed * 1_000_003 + 20)
        self.per_day = per_day
        self.queue: list[tuple[int, str]] = []

    def plan_day(self, day_start: int, end: int) -> None:
        """Schedule the refused sessions of the day starting at `day_start`: every kind at
        least once, then the rest drawn."""
        hi = min(day_start + DAY_MS, end - MARGIN_MS)
        if hi <= day_start:
            return
        kinds = list(STAGES) + [
            self.rng.choice(STAGES) for _ in range(max(0, self.per_day - len(STAGES)))
        ]
        self.queue += [(self.rng.randrange(day_start, hi), k) for k in kinds]
        self.queue.sort()

    def until(self, t: int, write: Callable[[dict], None]) -> None:
        """Write the sessions that start before `t` (and their truth rows with `write`)."""
        while self.queue and self.queue[0][0] < t:
            start, kind = self.queue.pop(0)
            for row in self.session(start, kind):
                write(row)

    # one session -----------------------------------------------------------------------------
    def _bot_ip(self) -> str:
        return f"198.18.{self.rng.randint(0, 255)}.{self.rng.randint(1, 254)}"

    def session(self, t: int, kind: str) -> list[dict]:
        """One refused session of `kind` at `t`; returns its truth rows."""
        rng, r = self.rng, self.rng.randint
        front = rng.choice(self.org.servers)
        ip, port = self._bot_ip(), r(1024, 65535)
        sid = self.eng.sid(front)
        local, remote = endpoint(front.ip, 25), endpoint(ip, port)
        recv = Session(
            self.out,
            front.name,
            "RECV",
            f"{front.name}\\Default Frontend {front.name}",
            sid,
            local,
            remote,
        )
        stage, agent = KINDS[kind]
        helo = rng.choice(BOT_HELOS)
        sender = f"{rng.choice(('info', 'news', 'sales', 'offer'))}@{rng.choice(BOT_DOMAINS)}"
        spoofed = sender  # the message's From: address
        rcpts = [u.address for u in rng.sample(self.org.plain_users, r(1, 2))]
        mid = None
        ops: list[Op] = [(0, "+", "", "")]
        if kind == "blocked_ip":
            reply = BLOCKED.format(ip=ip)
            sender, rcpts = None, [None]
            ops += [
                (r(1, 3), "S", reply, ""),
                (0, "mark", "reject", ""),
                (r(1, 3), "-", "Local", ""),
            ]
        else:
            ops += [
                (
                    r(0, 2),
                    "S",
                    f"220 mail.contoso.com Microsoft ESMTP MAIL Service ready at {banner_date(t)}",
                    "",
                ),
            ]
        if kind == "bad_helo":
            reply = BAD_HELO
            sender, rcpts = None, [None]
            ops += [
                (r(20, 300), "C", f"EHLO {helo}..", ""),
                (0, "S", reply, ""),
                (0, "mark", "reject", ""),
                (r(20, 300), "-", "Remote", ""),
            ]
        elif kind != "blocked_ip":
            ops += [
                (r(20, 300), "C", f"EHLO {helo}", ""),
                (0, "S", f"250  mail.contoso.com Hello [{ip}] {EXT_FRONT.format('STARTTLS ')}", ""),
                (r(20, 200), "C", f"MAIL FROM:<{sender}>", ""),
                (0, "S", "250 2.1.0 Sender OK", ""),
            ]
        if kind == "harvest":
            reply = UNKNOWN
            rcpts = rng.sample(self.org.unknown, min(len(self.org.unknown), r(3, 6)))
            for a in rcpts:
                ops += [
                    (r(20, 200), "C", f"RCPT TO:<{a}>", ""),
                    (0, "R", "", TARPIT),
                    (5000, "S", reply, ""),
                    (0, "mark", f"rcpt:{a}", ""),
                ]
            ops += [
                (r(20, 200), "C", "QUIT", ""),
                (0, "S", "221 2.0.0 Service closing transmission channel", ""),
                (0, "-", "Local", ""),
            ]
        elif kind == "rbl":
            reply = RBL
            for a in rcpts:
                ops += [
                    (r(20, 200), "C", f"RCPT TO:<{a}>", ""),
                    (0, "S", reply, ""),
                    (0, "mark", f"rcpt:{a}", ""),
                ]
            ops += [
                (r(20, 200), "C", "QUIT", ""),
                (0, "S", "221 2.0.0 Service closing transmission channel", ""),
                (0, "-", "Local", ""),
            ]
        elif kind in ("senderid", "spam", "cf_delete", "cf_quarantine"):
            reply = SENDER_ID if kind == "senderid" else SPAM
            if kind == "senderid":  # a spoofed organisation address in From: (P2), not MAIL
                spoofed = rng.choice(self.org.plain_users).address
            mid = f"<{rng.getrandbits(64):016x}.{t // 1000}@{rng.choice(BOT_DOMAINS)}>"
            for a in rcpts:
                ops += [
                    (r(20, 200), "C", f"RCPT TO:<{a}>", ""),
                    (0, "S", "250 2.1.5 Recipient OK", ""),
                ]
            if kind in ACCEPTED:  # the sender is told it was accepted
                reply = (
                    f"250 2.6.0 {mid} [InternalId={r(10**12, 9 * 10**12)}, Hostname="
                    f"{front.fqdn}] Queued mail for delivery"
                )
            ops += [
                (r(20, 200), "C", "DATA", ""),
                (0, "S", "354 Start mail input; end with <CRLF>.<CRLF>", ""),
                (r(300, 4000), "S", reply, ""),
                (0, "mark", "data", ""),
                (r(20, 200), "C", "QUIT", ""),
                (0, "S", "221 2.0.0 Service closing transmission channel", ""),
                (0, "-", "Local", ""),
            ]
        _, marks = play(t, ops, recv, None)  # an op play does not know marks its time

        def decide(
            when: int, event: str, action: str, response: str, reason: str, data: str, **message
        ) -> None:
            """One agent log row of this session: `agent` did `action` at `event`."""
            self._agent_row(
                when,
                front.name,
                [sid, local, remote, ip],
                agent or "",
                event,
                action,
                [response, reason, data],
                **message,
            )

        rows = []
        for a in rcpts:
            if kind in ("harvest", "rbl"):
                at = marks[f"rcpt:{a}"]
            elif kind in ("senderid", "spam", *ACCEPTED):
                at = marks["data"]
            else:
                at = marks["reject"]
            rows.append(
                {
                    "message_id": mid,
                    "network_message_id": None,
                    "sender": sender,
                    "recipient": a,
                    "subject": None,
                    "size": None,
                    "received_at": None,
                    "verdict": ACCEPTED[kind][3] if kind in ACCEPTED else "rejected",
                    "server": front.name,
                    "at": iso(at),
                    "enhanced_status": None if kind in ACCEPTED else enhanced_status(reply),
                    "reply": None if kind in ACCEPTED else reply,
                    "ndr_message_id": None,
                    "expanded_from": None,
                    "deferrals": [],
                    "queue": [],
                    "stage": stage,
                    "agent": agent,
                    "remote_ip": ip,
                }
            )
            if kind in ("harvest", "rbl"):
                harvest = kind == "harvest"
                decide(
                    at,
                    "OnRcptCommand",
                    "RejectCommand",
                    reply,
                    "RecipientDoesNotExist" if harvest else "BlockListProvider",
                    "" if harvest else "ExampleRBL",
                    p1=sender or "",
                    rcpts=[a],
                )
        message = {"mid": mid, "p1": sender, "p2": f"{spoofed};", "rcpts": rcpts}
        if kind == "blocked_ip":
            decide(
                marks["reject"],
                "OnConnect",
                "RejectConnection",
                reply,
                "LocalBlockList",
                "entry created by administrator",
            )
        elif kind == "senderid":
            decide(
                marks["data"],
                "OnEndOfHeaders",
                "RejectMessage",
                reply,
                "Fail_NotPermitted",
                spoofed,
                **message,
            )
        elif kind in ACCEPTED or kind == "spam":
            action, reason, response, _ = ACCEPTED.get(
                kind, ("RejectMessage", "SclAtOrAboveRejectThreshold", reply, "")
            )
            scl = {"cf_delete": (9,), "cf_quarantine": (6, 7)}.get(kind, (7, 8, 9, 9))
            level = str(rng.choice(scl))
            nid = network_guid(rng)  # (drawn after the SCL: the logs stay as they were)
            for row in rows:  # the agent logs the message's network ID with its decision
                row["network_message_id"] = nid
            decide(
                marks["data"],
                "OnEndOfData",
                action,
                response,
                reason,
                level,
                diagnostics=f"DV:3.3.5705.600;SID:SenderIDStatus None;OrigIP:{ip}",
                nid=nid,
                **message,
            )
        return rows

    def _agent_row(
        self,
        t: int,
        server: str,
        session: list[str],
        agent: str,
        event: str,
        action: str,
        why: list[str],
        *,
        mid: str = "",
        p1: str = "",
        p2: str = "",
        rcpts: list | None = None,
        diagnostics: str = "",
        nid: str = "",
    ) -> None:
        """One agent log line: `session` is [session id, local and remote endpoint, IP],
        `why` [SMTP response, reason, reason data]."""
        rcpts = rcpts or []
        sid, local, remote, ip = session
        fields = [
            iso(t), sid, local, remote, ip, mid or "", p1 or "", p2, ";".join(rcpts),
            str(len(rcpts)), agent, event, action, *why, diagnostics, nid, "", "Incoming",
        ]  # fmt: skip
        self.out.emit(t, (server, "AGENT"), ",".join(q(f) for f in fields) + "\r\n")
