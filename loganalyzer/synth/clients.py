"""SMTP clients and TLS situations that ``synth --clients`` adds to every day, for the
report's "SMTP clients and relays" and "TLS per connector and direction" sections:

- `scanner`: a scanner (KM-C458-3F, 10.0.20.31) submitting anonymously through the relay
  receive connector (`<SERVER>\\Anonymous Relay <SERVER>`, port 25) without TLS, to external
  and internal recipients: an anonymous relay.
- `lob_app`: a line-of-business app (ERP01, 10.0.30.12) relaying anonymously to external
  customers over TLS 1.0.
- `auth_app`: an app (CRM-APP01, 10.0.30.40) that authenticates as svc-crm@contoso.com on the
  client connector (port 587, TLS 1.2) and sends to external recipients.
- `mfp_tls_fail`: a printer (MFP-2F, 10.0.20.45) whose STARTTLS fails
  (`TLS negotiation failed with error SocketError`); it connects again and sends without
  TLS, to an internal recipient.
- `relay_denied`: an application server (SHAREPOINT01, 10.0.30.25) pointed at the default
  frontend connector, which does not relay for anonymous clients: its RCPT to an outside
  address gets `550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain`, the one to
  a mailbox a 250; the message is accepted for the mailbox only (not a relay).
- `legacy_peer`: an Internet server (mail.oldpartner.example, 198.51.100.7) sending to a
  mailbox over TLS 1.1 on the default frontend connector.
- `plain_out`: sends to an MX that offers no STARTTLS (mx.legacy-partner.example,
  198.51.100.9): outbound without TLS.
- `tls_fail_out`: sends whose STARTTLS fails (`TLS negotiation failed with error
  NoCredentials`) against mx1.strict-partner.example (198.51.100.11).

Each message a receive session accepts (its `250 2.6.0 <Message-ID> [InternalId=N,
Hostname=H]` reply) is a message of the organisation: the accepting server H is its hub. It
writes HAREDIRECT and the SMTP RECEIVE row (the client's IP and EHLO name, the receive
connector, the session ID, InternalId N, the accepted recipients only), then the journey every
message takes from a hub (journeys.py, delivery.py): delivery to the recipients' mailbox
servers, SEND over `Internet Send Connector` (with its Send protocol log session) to the
outside. Truth: one row per accepted recipient, as for the other messages; a recipient refused
at RCPT (`relay_denied`) gets a `rejected` row (stage `rcpt`, no agent, `remote_ip` the
client, no `message_id`: it never was a recipient of the message). `plain_out` and
`tls_fail_out` are protocol-log sessions only (no tracking or truth rows).
`sessions.jsonl` (sessionlog.py) records every session, with the `situation` of the client's
own session (null for its message's deliveries).

Generators of their own (seeded from the run's seed) draw the sessions and their messages'
journeys, with session IDs from a range of their own, so every line the other scenarios
write stays the same.
"""

from __future__ import annotations

from collections.abc import Callable

from loganalyzer.synth.clock import HOUR_MS, iso
from loganalyzer.synth.engine import INTERNET
from loganalyzer.synth.model import Message
from loganalyzer.synth.nexthops import NextHops
from loganalyzer.synth.org import PUBLIC_IP, Rng, Server, network_guid
from loganalyzer.synth.origins import Engine
from loganalyzer.synth.protocol import (
    ANON_PERMS,
    CERT_SENT,
    CLOSING,
    EXT_FRONT,
    PUBLIC_CERT,
    TLS10_SERVER,
    TLS11_SERVER,
    TLS_FAILED,
    TLS_SERVER,
    USER_PERMS,
    Op,
    Session,
    banner,
    endpoint,
    play,
)
from loganalyzer.synth.sessionlog import SessionLog
from loganalyzer.synth.tracking import ACCOUNT_FOREST
from loganalyzer.synth.truth import enhanced_status

#: situation -> (sessions a day, client IP, EHLO name or remote MX host)
SITUATIONS = {
    "scanner": (6, "10.0.20.31", "KM-C458-3F"),
    "lob_app": (4, "10.0.30.12", "ERP01"),
    "auth_app": (3, "10.0.30.40", "CRM-APP01"),
    "mfp_tls_fail": (2, "10.0.20.45", "MFP-2F"),
    "relay_denied": (2, "10.0.30.25", "SHAREPOINT01"),
    "legacy_peer": (3, "198.51.100.7", "mail.oldpartner.example"),
    "plain_out": (3, "198.51.100.9", "mx.legacy-partner.example"),
    "tls_fail_out": (2, "198.51.100.11", "mx1.strict-partner.example"),
}
#: situation -> (subject with `{n}` for a number, smallest and largest size in bytes)
MESSAGES = {
    "scanner": ("Message from KM-C458-3F", 60_000, 4_000_000),
    "lob_app": ("Invoice {n} from Contoso", 20_000, 400_000),
    "auth_app": ("Your case {n} has been updated", 6_000, 60_000),
    "mfp_tls_fail": ("Scanned from MFP-2F", 60_000, 3_000_000),
    "relay_denied": ("Alert: Shared Documents has changed", 8_000, 40_000),
    "legacy_peer": ("Order confirmation {n}", 8_000, 200_000),
}
APP_USER = "svc-crm@contoso.com"
RELAY_DENIED = "550 5.7.54 SMTP; Unable to relay recipient in non-accepted domain"
FIRST_H, LAST_H = 7, 19  # office hours (UTC) in which the situations happen
#: Writes a message's truth rows (with the next hops its deliveries used) / one refused row.
WriteMessage = Callable[[Message, NextHops | None], None]
WriteRow = Callable[[dict], None]


class Journeys(Engine):
    """The engine's journey steps for the client messages, with a generator and session IDs of
    their own: the other messages' lines keep their random numbers."""

    def __init__(self, main: Engine, seed: int, sid: Callable[[str], str]) -> None:
        super().__init__(Rng(seed * 1_000_003 + 22), main.org, main.out, main.end)
        self._session_id = sid
        if main.next_hops is not None:  # connectivity logs, drawn apart from the others'
            self.next_hops = NextHops(seed, stream=23)

    def sid(self, server: Server) -> str:
        return self._session_id(server.name)


class Clients:
    """Writes the day's client sessions in time order (like antispam.Refusals), and the
    journeys and truth rows of the messages they hand in."""

    def __init__(self, engine: Engine, seed: int, log: SessionLog) -> None:
        self.eng = engine
        self.org = engine.org
        self.out = engine.out
        self.log = log
        self.rng = Rng(seed * 1_000_003 + 21)
        self.queue: list[tuple[int, str]] = []
        self._sid: dict[str, int] = {}
        self.journeys = Journeys(engine, seed, self.sid)
        self._write_message: WriteMessage | None = None
        self._write_row: WriteRow | None = None

    def sid(self, server: str) -> str:
        """A session ID of `server` from a range of its own (the other sessions' stay)."""
        v = self._sid.get(server)
        v = 0x08DE5B0000000000 + self.rng.getrandbits(36) if v is None else v + 1
        self._sid[server] = v
        return f"{v:016X}"

    def plan_day(self, day_start: int, end: int) -> None:
        lo = day_start + FIRST_H * HOUR_MS
        hi = min(day_start + LAST_H * HOUR_MS, end - HOUR_MS)
        if hi <= lo:
            return
        for kind, (n, _, _) in SITUATIONS.items():
            self.queue += [(self.rng.randrange(lo, hi), kind) for _ in range(n)]
        self.queue.sort()

    def until(self, t: int, message: WriteMessage, refused: WriteRow) -> None:
        """Write the sessions that start before `t`; `message` and `refused` write the truth
        rows of each accepted message and of each refused recipient."""
        self._write_message, self._write_row = message, refused
        self.journeys.end = self.eng.end  # (synth --size-mb moves the end day by day)
        while self.queue and self.queue[0][0] < t:
            start, kind = self.queue.pop(0)
            self.log.situation = kind
            try:
                self.session(start, kind)
            finally:
                self.log.situation = None

    # sessions --------------------------------------------------------------------------------
    def _external(self) -> str:
        return self.rng.choice(self.rng.choice(self.org.domains).people)

    def _internal(self) -> str:
        return self.rng.choice(self.org.plain_users).address

    def session(self, t: int, kind: str) -> None:
        rng = self.rng
        _, ip, name = SITUATIONS[kind]
        srv = rng.choice(self.org.servers)
        if kind in ("plain_out", "tls_fail_out"):
            self._send(t, srv, ip, name, kind == "tls_fail_out")
            return
        if kind == "scanner":
            rcpts = [self._external()] + ([self._internal()] if rng.random() < 0.5 else [])
            self._receive(t, srv, kind, "relay", "scanner@contoso.com", rcpts)
        elif kind == "lob_app":
            rcpts = list(dict.fromkeys(self._external() for _ in range(rng.randint(1, 2))))
            self._receive(t, srv, kind, "relay", "erp@contoso.com", rcpts, tls=TLS10_SERVER)
        elif kind == "auth_app":
            self._receive(
                t, srv, kind, "client", APP_USER, [self._external()], tls=TLS_SERVER, user=APP_USER
            )
        elif kind == "mfp_tls_fail":
            end = self._receive(t, srv, kind, "relay", "mfp@contoso.com", [], fail="SocketError")
            self._receive(end + 5000, srv, kind, "relay", "mfp@contoso.com", [self._internal()])
        elif kind == "relay_denied":
            rcpts = [self._external(), self._internal()]
            self._receive(t, srv, kind, "default", "sharepoint@contoso.com", rcpts, denied=1)
        else:  # legacy_peer
            self._receive(
                t, srv, kind, "default", "orders@oldpartner.example", [self._internal()],
                tls=TLS11_SERVER,
            )  # fmt: skip

    def _receive(
        self,
        t: int,
        srv: Server,
        kind: str,
        connector: str,
        sender: str,
        rcpts: list[str],
        *,
        tls: str = "",
        fail: str = "",
        user: str = "",
        denied: int = 0,
    ) -> int:
        """One session of the client of `kind` at `srv`'s receive connector; returns its end.
        The first `denied` recipients are refused (not a relay); the message is accepted
        for the others, then goes its way from `srv`."""
        r = self.rng.randint
        _, ip, helo = SITUATIONS[kind]
        name, port = {
            "relay": (f"{srv.name}\\Anonymous Relay {srv.name}", 25),
            "client": (f"{srv.name}\\Client Frontend {srv.name}", 587),
            "default": (f"{srv.name}\\Default Frontend {srv.name}", 25),
        }[connector]
        sid = self.sid(srv.name)
        recv = Session(
            self.out,
            srv.name,
            "RECV",
            name,
            sid,
            endpoint(srv.ip, port),
            endpoint(ip, r(49152, 65535)),
        )
        host = srv.fqdn
        hello = f"250  {host} Hello [{ip}] "
        ops: list[Op] = [
            (0, "+", "", ""),
            (0, "R", ANON_PERMS, "Set Session Permissions"),
            (r(0, 2), "S", banner(host, t), ""),
            (r(15, 120), "C", f"EHLO {helo}", ""),
            (0, "S", hello + EXT_FRONT.format("STARTTLS "), ""),
        ]
        if tls or fail:
            ops += [
                (r(15, 90), "C", "STARTTLS", ""),
                (0, "S", "220 2.0.0 SMTP server ready", ""),
                (r(0, 2), "R", PUBLIC_CERT, CERT_SENT),
            ]
        if fail:
            ops += [
                (r(20, 200), "R", "", TLS_FAILED.format(fail)),
                (0, "-", "Remote(SocketError)", ""),
            ]
            return play(t, ops, recv, None)[0]
        if tls:
            ops += [
                (r(20, 120), "R", "", tls),
                (r(15, 90), "C", f"EHLO {helo}", ""),
                (0, "S", hello + EXT_FRONT.format(""), ""),
            ]
        if user:
            ops += [
                (r(15, 60), "C", "AUTH LOGIN", ""),
                (0, "S", "334 <authentication response>", ""),
                (r(15, 40), "S", "334 <authentication response>", ""),
                (r(40, 160), "R", USER_PERMS, "Set Session Permissions"),
                (0, "R", user, "authenticated"),
                (0, "S", "235 2.7.0 Authentication successful", ""),
            ]
        ops += [(r(15, 90), "C", f"MAIL FROM:<{sender}>", ""), (0, "S", "250 2.1.0 Sender OK", "")]
        for i, a in enumerate(rcpts):
            reply = RELAY_DENIED if i < denied else "250 2.1.5 Recipient OK"
            ops += [
                (r(10, 60), "C", f"RCPT TO:<{a}>", ""),
                (0, "S", reply, ""),
                (0, "mark", f"rcpt:{i}", ""),
            ]
        mid = f"<{self.rng.getrandbits(64):016X}@{helo.lower()}>"
        m = self._message(t, kind, mid, sender, rcpts[denied:], authenticated=bool(user))
        iid = m.iids[srv.name] = self.journeys.iid(srv, "hub")
        ops += [
            (r(10, 60), "C", "DATA", ""),
            (0, "S", "354 Start mail input; end with <CRLF>.<CRLF>", ""),
            (r(200, 3000), "mark", "queued", ""),
            (0, "S", self.journeys.queued(m, iid, srv), ""),
            (r(10, 80), "C", "QUIT", ""),
            (0, "S", CLOSING, ""),
            (0, "-", "Local", ""),
        ]
        end, marks = play(t, ops, recv, None)
        for i, a in enumerate(rcpts[:denied]):
            self._refused(marks[f"rcpt:{i}"], srv, ip, sender, a)
        self._accepted(m, srv, marks["queued"], sid, t, name, ip, helo, bool(user))
        return end

    def _message(
        self, t: int, kind: str, mid: str, sender: str, rcpts: list[str], *, authenticated: bool
    ) -> Message:
        """The message a client of `kind` hands in (drawn by the journeys' generator)."""
        jr = self.journeys
        r = jr.rng.randint
        text, lo, hi = MESSAGES[kind]
        rs = [jr.new_rcpt(a) for a in rcpts]
        return Message(
            mid=mid,
            nid=network_guid(jr.rng),
            sender=sender,
            return_path=sender,
            subject=text.format(n=r(10_000, 99_999)),
            size=r(lo, hi),
            direction="Originating" if authenticated else "Incoming",
            orig_time=t - r(100, 3000),  # the client wrote the message just before it connected
            rcpts=rs,
            all=list(rs),
        )

    def _accepted(
        self,
        m: Message,
        srv: Server,
        queued: int,
        sid: str,
        start: int,
        connector: str,
        ip: str,
        helo: str,
        authenticated: bool,
    ) -> None:
        """`srv` received `m` (its `250 2.6.0` reply at `queued`): its RECEIVE, its journey
        and its truth rows."""
        jr = self.journeys
        tc = queued - jr.rng.randint(1, 3)  # committed, then the reply
        m.received_at = tc
        entity = "Hosted" if authenticated else "Internet"
        situation, self.log.situation = self.log.situation, None  # the deliveries are not
        jr.hub_receive(
            m,
            srv,
            tc,
            m.rcpts,
            client_ip=ip,
            client_host=helo,
            sid=sid,
            ts=start,
            connector=connector,
            orig_client=ip,
            custom=f"S:FromEntity={entity};{ACCOUNT_FOREST}",
        )
        jr.categorize(m, srv, tc, m.rcpts)
        self.log.situation = situation  # ... the client's sessions
        assert self._write_message is not None
        self._write_message(m, jr.next_hops)

    def _refused(self, at: int, srv: Server, ip: str, sender: str, address: str) -> None:
        """The truth row of a recipient refused at RCPT (the refusal is in the logs only)."""
        if srv.name in self.out.omitted:
            return
        assert self._write_row is not None
        self._write_row(
            {
                "message_id": None,
                "network_message_id": None,
                "sender": sender,
                "recipient": address,
                "subject": None,
                "size": None,
                "received_at": None,
                "verdict": "rejected",
                "server": srv.name,
                "at": iso(at),
                "enhanced_status": enhanced_status(RELAY_DENIED),
                "reply": RELAY_DENIED,
                "ndr_message_id": None,
                "expanded_from": None,
                "deferrals": [],
                "queue": [],
                "stage": "rcpt",
                "agent": None,
                "remote_ip": ip,
            }
        )

    def _send(self, t: int, srv, ip: str, mx: str, fail: bool) -> None:
        """A send to an Internet MX without STARTTLS, or one whose STARTTLS fails."""
        r = self.rng.randint
        send = Session(
            self.out,
            srv.name,
            "SEND",
            INTERNET,
            self.sid(srv.name),
            endpoint(srv.ip, r(49152, 65535)),
            endpoint(ip, 25),
        )
        ext = "SIZE 10240000 PIPELINING 8BITMIME" + (" STARTTLS" if fail else "")
        ops: list[Op] = [
            (0, "X", "SendRoutingHeaders", "Set Session Permissions"),
            (0, "X", "", "attempting to connect"),
            (r(15, 90), "+", "", ""),
            (r(20, 200), "S", f"220 {mx} ESMTP", ""),
            (r(0, 2), "C", "EHLO mail.contoso.com", ""),
            (r(15, 90), "S", f"250 {mx} Hello [{PUBLIC_IP}] {ext}", ""),
        ]
        if fail:
            ops += [
                (r(0, 2), "C", "STARTTLS", ""),
                (r(15, 90), "S", "220 2.0.0 Ready to start TLS", ""),
                (r(30, 150), "X", "", TLS_FAILED.format("NoCredentials")),
                (0, "-", "", "Local"),
            ]
        else:
            ops += [
                (r(0, 2), "C", f"MAIL FROM:<{self._internal()}>", ""),
                (r(15, 90), "S", "250 2.1.0 Ok", ""),
                (r(0, 2), "C", f"RCPT TO:<info@{mx.split('.', 1)[1]}>", ""),
                (r(15, 90), "S", "250 2.1.5 Ok", ""),
                (r(0, 2), "C", "DATA", ""),
                (r(15, 90), "S", "354 End data with <CR><LF>.<CR><LF>", ""),
                (r(50, 400), "S", f"250 2.0.0 Ok: queued as {self.rng.getrandbits(40):010X}", ""),
                (r(0, 2), "C", "QUIT", ""),
                (r(15, 90), "S", "221 2.0.0 Bye", ""),
                (0, "-", "", "Local"),
            ]
        play(t, ops, None, send)
