"""SMTP Receive/Send protocol log sessions.

A conversation is a list of operations `(dt_ms, op, a, b)` played once against both ends: the
receiving server's RECV session and the sending server's SEND session (either may be absent,
e.g. an Internet host keeps no log we write). Ops: `C` client command, `S` server reply, `R`
receive-side information line, `X` send-side information line, `+` connect, `-` disconnect
(a = receive-side context, b = send-side context), `M` mark the time under name `a`.
"""

from __future__ import annotations

import random
from typing import Protocol

from loganalyzer.synth.clock import banner_date, iso
from loganalyzer.synth.tracking import q
from loganalyzer.synth.writers import Output

Op = tuple[int, str, str, str]

TLS = (
    "TLS protocol SP_PROT_TLS1_2_{} negotiation succeeded using bulk encryption algorithm"
    " CALG_AES_256 with strength 256 bits, MAC hash algorithm CALG_SHA_384 with strength 0 bits"
    " and key exchange algorithm CALG_ECDH_EPHEM with strength 256 bits"
)
TLS_SERVER, TLS_CLIENT = TLS.format("SERVER"), TLS.format("CLIENT")
#: What legacy peers negotiate (``--clients``): TLS 1.0 and 1.1 with SHA-1 MACs.
TLS10_SERVER = (
    "TLS protocol SP_PROT_TLS1_0_SERVER negotiation succeeded using bulk encryption algorithm"
    " CALG_AES_128 with strength 128 bits, MAC hash algorithm CALG_SHA1 with strength 160 bits"
    " and key exchange algorithm CALG_ECDH_EPHEM with strength 256 bits"
)
TLS11_SERVER = (
    TLS10_SERVER.replace("TLS1_0", "TLS1_1")
    .replace("AES_128", "AES_256")
    .replace("strength 128", "strength 256")
)
#: The TLS version and cipher of each negotiation line synth writes (for sessions.jsonl).
TLS_LINES = {
    TLS_SERVER: ("TLS 1.2", "CALG_AES_256"),
    TLS_CLIENT: ("TLS 1.2", "CALG_AES_256"),
    TLS10_SERVER: ("TLS 1.0", "CALG_AES_128"),
    TLS11_SERVER: ("TLS 1.1", "CALG_AES_256"),
}
TLS_FAILED = "TLS negotiation failed with error {}"
CERT_SENT = (
    "Sending certificate Subject Issuer name Serial number Thumbprint Not before Not after"
    " Subject alternate names"
)
CERT_REMOTE = (
    "Remote certificate Subject Issuer name Serial number Thumbprint Not before Not after"
    " Subject alternate names"
)
PUBLIC_CERT = (
    " CN=mail.contoso.com, O=Contoso Ltd, L=Berlin, C=DE CN=Example TLS RSA CA G1, O=Example"
    " Trust, C=US 0A7D3F51C2E94B66A0 3E9A41F07B2C55D81A6E0F4B9C27D3E8A15F6B20 2025-09-01T00:00:00"
    ".000Z 2026-09-30T23:59:59.000Z mail.contoso.com;autodiscover.contoso.com"
)
ANON_PERMS = (
    "SMTPSubmit SMTPAcceptAnySender SMTPAcceptAuthoritativeDomainSender AcceptRoutingHeaders"
)
EXCH_PERMS = (
    "SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAuthenticationFlag SMTPAcceptAnySender"
    " SMTPAcceptAuthoritativeDomainSender BypassAntiSpam BypassMessageSizeLimit SMTPSendEXCH50"
    " SMTPAcceptEXCH50 AcceptRoutingHeaders AcceptOrgHeaders SendAs SendRoutingHeaders"
    " SMTPSendXShadow SMTPAcceptXShadow SMTPAcceptXProxyFrom SMTPAcceptXSessionParams"
    " SMTPAcceptXMessageContextADRecipientCache SMTPAcceptXMessageContextExtendedProperties"
    " SMTPAcceptXMessageContextFastIndex"
)
USER_PERMS = (
    "SMTPSubmit SMTPAcceptAnyRecipient SMTPAcceptAnySender SMTPAcceptAuthoritativeDomainSender"
    " BypassAntiSpam AcceptRoutingHeaders"
)
EXT_FRONT = (
    "SIZE 37748736 PIPELINING DSN ENHANCEDSTATUSCODES {}AUTH NTLM LOGIN 8BITMIME BINARYMIME"
    " CHUNKING SMTPUTF8 XRDST"
)
EXT_INTERNAL = (
    "SIZE 37748736 PIPELINING DSN ENHANCEDSTATUSCODES {}AUTH NTLM X-EXPS GSSAPI NTLM 8BITMIME"
    " BINARYMIME CHUNKING XEXCH50 XRDST XSHADOWREQUEST XPROXY XPROXYFROM XRSET XSESSIONPARAMS"
)
CLOSING = "221 2.0.0 Service closing transmission channel"


def endpoint(ip: str, port: int) -> str:
    """`ip:port`, IPv6 in brackets."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


class Peer(Protocol):
    connected: bool

    def put(self, t: int, event: str, data: str = "", context: str = "") -> None: ...


class Session:
    """One session of one server's RECV or SEND protocol log."""

    __slots__ = ("out", "key", "head", "local", "remote", "seq", "connected", "rec")

    def __init__(
        self,
        out: Output,
        server: str,
        kind: str,
        connector: str,
        sid: str,
        local: str,
        remote: str,
    ) -> None:
        self.out = out
        self.key = (server, kind)
        self.head = f",{q(connector)},{sid},"
        self.local = local
        self.remote = remote
        self.seq = 0
        self.connected = kind == "RECV"
        # what the session does, for sessions.jsonl (only with `--clients`)
        log = getattr(out, "sessions", None)
        self.rec = log.open(server, kind, connector, sid, remote) if log is not None else None

    def put(self, t: int, event: str, data: str = "", context: str = "") -> None:
        if self.rec is not None:
            self.rec.see(t, event, data, context)
        local = self.local if self.connected else ""
        if data:
            data = q(data)
        if context:
            context = q(context)
        self.out.emit(
            t,
            self.key,
            f"{iso(t)}{self.head}{self.seq},{local},{self.remote},{event},{data},{context}\r\n",
        )
        self.seq += 1


def play(t: int, ops: list[Op], recv: Peer | None, send: Peer | None) -> tuple[int, dict[str, int]]:
    """Write `ops` from time `t` to both ends; return the end time and the marked times."""
    marks: dict[str, int] = {}
    for dt, op, a, b in ops:
        t += dt
        if op == "C":
            if send:
                send.put(t, ">", a)
            if recv:
                recv.put(t, "<", a)
        elif op == "S":
            if recv:
                recv.put(t, ">", a)
            if send:
                send.put(t, "<", a)
        elif op == "R":
            if recv:
                recv.put(t, "*", a, b)
        elif op == "X":
            if send:
                send.put(t, "*", a, b)
        elif op == "+":
            if recv:
                recv.put(t, "+")
            if send:
                send.connected = True
                send.put(t, "+")
        elif op == "-":
            if recv:
                recv.put(t, "-", "", a)
            if send:
                send.put(t, "-", "", b)
        else:
            marks[a] = t
    return t, marks


def banner(host: str, t: int) -> str:
    return f"220 {host} Microsoft ESMTP MAIL Service ready at {banner_date(t)}"


def mail_from(return_path: str, size: int) -> str:
    return (
        f"MAIL FROM:{return_path if return_path == '<>' else '<' + return_path + '>'} SIZE={size}"
    )


def self_cert(name: str, fqdn: str) -> str:
    return (
        f" CN={name} CN={name} 5F2A0C7E91B3D46A8E1C 9B0E5D4C3A2F1E0D9C8B7A6F5E4D3C2B1A0F9E8D7C"
        f" 2025-01-10T08:00:00.000Z 2030-01-10T08:00:00.000Z {name};{fqdn}"
    )


def internal_hop(
    rng: random.Random,
    t: int,
    *,
    client_fqdn: str,
    client_ip: str,
    server_name: str,
    server_fqdn: str,
    mail: str,
    rcpts: list[tuple[str, str]],
    size: int,
    final: str,
    record_id: str,
    mid: str,
    proxy_from: str = "",
) -> list[Op]:
    """Exchange to Exchange: X-ANONYMOUSTLS, Exchange authentication, MAIL, RCPT, BDAT.

    `rcpts` pairs each address with the server's RCPT reply; DATA is sent when one is 250.
    """
    r = rng.randint
    ext = EXT_INTERNAL.format("STARTTLS X-ANONYMOUSTLS ")
    ops: list[Op] = [
        (0, "X", "None", "Set Session Permissions"),
        (0, "X", "", "attempting to connect"),
        (r(1, 3), "+", "", ""),
        (0, "R", "None", "Set Session Permissions"),
        (r(0, 2), "S", banner(server_fqdn, t), ""),
        (r(0, 2), "C", f"EHLO {client_fqdn}", ""),
        (0, "S", f"250  {server_fqdn} Hello [{client_ip}] {ext}", ""),
        (r(0, 2), "C", "X-ANONYMOUSTLS", ""),
        (0, "S", "220 2.0.0 SMTP server ready", ""),
        (r(1, 4), "R", self_cert(server_name, server_fqdn), CERT_SENT),
        (0, "X", self_cert(server_name, server_fqdn), CERT_REMOTE),
        (r(3, 12), "R", "", TLS_SERVER),
        (0, "X", "", TLS_CLIENT),
        (r(0, 2), "C", f"EHLO {client_fqdn}", ""),
        (0, "S", f"250  {server_fqdn} Hello [{client_ip}] {EXT_INTERNAL.format('')}", ""),
        (r(0, 2), "C", "X-EXPS EXCHANGEAUTH SHA256", ""),
        (r(1, 6), "S", "235 <authentication response>", ""),
        (0, "R", EXCH_PERMS, "Set Session Permissions"),
        (0, "R", f"CONTOSO\\{client_fqdn.split('.')[0].upper()}$", "authenticated"),
    ]
    if proxy_from:
        ops += [(r(0, 2), "C", proxy_from, ""), (r(0, 3), "S", "250 XProxyFrom accepted", "")]
    ops += [
        (
            r(0, 2),
            "X",
            "",
            f"sending message with RecordId {record_id} and InternetMessageId {mid}",
        ),
        (0, "C", mail, ""),
    ]
    ops += [(0, "C", f"RCPT TO:<{a}>", "") for a, _ in rcpts]
    ops.append((r(1, 8), "S", "250 2.1.0 Sender OK", ""))
    ops += [(0, "S", reply, "") for _, reply in rcpts]
    ops.append((0, "M", "rcpt", ""))
    if any(reply.startswith("250") for _, reply in rcpts):
        ops += [
            (r(0, 2), "C", f"BDAT {size} LAST", ""),
            (r(10, 40) + size // 4000, "M", "commit", ""),
            (0, "S", final, ""),
        ]
    ops += [(r(0, 3), "C", "QUIT", ""), (r(0, 2), "S", CLOSING, ""), (0, "-", "Local", "Local")]
    return ops


def front_head(
    rng: random.Random,
    t: int,
    *,
    helo: str,
    client_ip: str,
    tls: bool,
    mail: str,
    rcpts: list[str],
    auth_user: str = "",
    hub_fqdn: str = "",
) -> list[Op]:
    """The start of a session at a frontend (port 25 or 587) up to the end of the data."""
    r = rng.randint
    host = "mail.contoso.com"
    starttls = "STARTTLS X-ANONYMOUSTLS " if not auth_user else "STARTTLS "
    ops: list[Op] = [
        (0, "+", "", ""),
        (0, "R", ANON_PERMS, "Set Session Permissions"),
        (r(0, 2), "S", banner(host, t), ""),
        (r(15, 120), "C", f"EHLO {helo}", ""),
        (0, "S", f"250  {host} Hello [{client_ip}] {EXT_FRONT.format(starttls)}", ""),
    ]
    if tls:
        ops += [
            (r(15, 90), "C", "STARTTLS", ""),
            (0, "S", "220 2.0.0 SMTP server ready", ""),
            (r(0, 2), "R", PUBLIC_CERT, CERT_SENT),
            (r(20, 120), "R", "", TLS_SERVER),
            (r(15, 90), "C", f"EHLO {helo}", ""),
            (0, "R", "", "Client certificate chain validation status: 'EmptyCertificate'"),
            (0, "R", "", "TlsDomainCapabilities='None'; Status='NoRemoteCertificate'"),
            (0, "S", f"250  {host} Hello [{client_ip}] {EXT_FRONT.format('')}", ""),
        ]
    if auth_user:
        ops += [
            (r(15, 60), "C", "AUTH LOGIN", ""),
            (0, "S", "334 <authentication response>", ""),
            (r(15, 40), "S", "334 <authentication response>", ""),
            (r(40, 160), "R", USER_PERMS, "Set Session Permissions"),
            (0, "R", auth_user, "authenticated"),
            (
                0,
                "R",
                "",
                f"ASyncBackendLocator.BeginGetDatabaseToServerMappingInfo for user {auth_user}.",
            ),
            (
                r(5, 30),
                "R",
                "",
                f"AsyncBackendLocator.EndGetDatabaseToServerMappingInfo for user {auth_user}",
            ),
            (0, "R", "", f"Setting up client proxy session to destination(s): {hub_fqdn}"),
            (
                r(10, 60),
                "R",
                "",
                f"Proxy session was successfully set up. Session for{auth_user} will now be"
                " proxied",
            ),
            (0, "S", "235 2.7.0 Authentication successful", ""),
        ]
    ops += [(r(15, 90), "C", mail, ""), (r(0, 3), "S", "250 2.1.0 Sender OK", "")]
    for a in rcpts:
        ops += [
            (r(10, 60), "C", f"RCPT TO:<{a}>", ""),
            (r(0, 3), "S", "250 2.1.5 Recipient OK", ""),
        ]
    ops += [
        (r(10, 60), "C", "DATA", ""),
        (0, "S", "354 Start mail input; end with <CRLF>.<CRLF>", ""),
    ]
    return ops


def front_tail(rng: random.Random, final: str) -> list[Op]:
    """The end of a frontend session: the proxied 250 2.6.0, QUIT, disconnect."""
    return [
        (rng.randint(0, 2), "S", final, ""),
        (rng.randint(10, 80), "C", "QUIT", ""),
        (0, "S", CLOSING, ""),
        (0, "-", "Local", "Local"),
    ]


def internet_send(
    rng: random.Random,
    t: int,
    *,
    mx_host: str,
    greeting: str,
    mail: str,
    rcpts: list[tuple[str, str]],
    final: str,
    record_id: str,
    mid: str,
) -> list[Op]:
    """Hub to an Internet MX: STARTTLS, MAIL, one RCPT at a time, DATA."""
    r = rng.randint
    ext = "SIZE 52428800 PIPELINING 8BITMIME {}ENHANCEDSTATUSCODES DSN"
    ops: list[Op] = [
        (0, "X", "SendRoutingHeaders", "Set Session Permissions"),
        (0, "X", "", "attempting to connect"),
        (r(15, 90), "+", "", ""),
        (r(20, 200), "S", f"220 {mx_host} {greeting}", ""),
        (r(0, 2), "C", "EHLO mail.contoso.com", ""),
        (r(15, 90), "S", f"250 {mx_host} Hello [192.0.2.10] {ext.format('STARTTLS ')}", ""),
        (r(0, 2), "C", "STARTTLS", ""),
        (r(15, 90), "S", "220 2.0.0 Ready to start TLS", ""),
        (
            r(30, 150),
            "X",
            f" CN={mx_host} CN=Example TLS RSA CA G1, O=Example Trust, C=US",
            CERT_REMOTE,
        ),
        (0, "X", "", TLS_CLIENT),
        (r(0, 2), "C", "EHLO mail.contoso.com", ""),
        (r(15, 90), "S", f"250 {mx_host} Hello [192.0.2.10] {ext.format('')}", ""),
        (
            r(0, 2),
            "X",
            "",
            f"sending message with RecordId {record_id} and InternetMessageId {mid}",
        ),
        (0, "C", mail, ""),
        (r(15, 90), "S", "250 2.1.0 Ok", ""),
    ]
    for a, reply in rcpts:
        ops += [(r(0, 2), "C", f"RCPT TO:<{a}>", ""), (r(15, 120), "S", reply, "")]
    ops.append((0, "M", "rcpt", ""))
    if any(reply.startswith("250") for _, reply in rcpts):
        ops += [
            (r(0, 2), "C", "DATA", ""),
            (r(15, 90), "S", "354 End data with <CR><LF>.<CR><LF>", ""),
            (r(50, 400), "M", "commit", ""),
            (0, "S", final, ""),
        ]
    ops += [
        (r(0, 2), "C", "QUIT", ""),
        (r(15, 90), "S", "221 2.0.0 Bye", ""),
        (0, "-", "", "Local"),
    ]
    return ops


def connect_failure(winsock: str) -> list[Op]:
    """A send attempt whose TCP connection timed out (21 s)."""
    return [
        (0, "X", "SendRoutingHeaders", "Set Session Permissions"),
        (0, "X", "", "attempting to connect"),
        (21_000, "X", "", winsock),
    ]


def refused(mx_host: str, reply: str) -> list[Op]:
    """A send attempt the remote MX turns away in its greeting (421)."""
    return [
        (0, "X", "SendRoutingHeaders", "Set Session Permissions"),
        (0, "X", "", "attempting to connect"),
        (40, "+", "", ""),
        (120, "S", reply, ""),
        (1, "-", "", "Remote"),
    ]


def auth_failure(rng: random.Random, t: int, client_ip: str, user: str) -> list[Op]:
    """A password-guessing session: AUTH LOGIN, LogonDenied, tarpit, 535 5.7.3."""
    r = rng.randint
    helo = rng.choice(("User", "localhost", f"[{client_ip}]", "WIN-3K4B2D9QF1"))
    ops: list[Op] = [
        (0, "+", "", ""),
        (r(0, 2), "S", banner("mail.contoso.com", t), ""),
        (r(20, 200), "C", f"EHLO {helo}", ""),
        (0, "S", f"250  mail.contoso.com Hello [{client_ip}] {EXT_FRONT.format('STARTTLS ')}", ""),
    ]
    if rng.random() < 0.5:
        ops += [
            (r(20, 90), "C", "STARTTLS", ""),
            (0, "S", "220 2.0.0 SMTP server ready", ""),
            (0, "R", PUBLIC_CERT, CERT_SENT),
            (r(40, 200), "R", "", TLS_SERVER),
            (r(20, 90), "C", f"EHLO {helo}", ""),
            (0, "R", "", "Client certificate chain validation status: 'EmptyCertificate'"),
            (0, "R", "", "TlsDomainCapabilities='None'; Status='NoRemoteCertificate'"),
            (0, "S", f"250  mail.contoso.com Hello [{client_ip}] {EXT_FRONT.format('')}", ""),
        ]
    ops += [
        (r(20, 90), "C", "AUTH LOGIN", ""),
        (0, "S", "334 <authentication response>", ""),
        (r(20, 40), "S", "334 <authentication response>", ""),
        (r(40, 120), "R", "", "Inbound AUTH LOGIN failed because of LogonDenied"),
        (0, "R", "", f"User Name: {user}"),
        (0, "R", "Tarpit for '0.00:00:05' due to '535 5.7.3 Authentication unsuccessful'", ""),
        (5000 + r(0, 20), "S", "535 5.7.3 Authentication unsuccessful", ""),
    ]
    if rng.random() < 0.5:
        ops += [(r(20, 90), "C", "QUIT", ""), (0, "S", CLOSING, ""), (0, "-", "Local", "")]
    else:
        ops.append((r(20, 900), "-", "Remote(SocketError)", ""))
    return ops
