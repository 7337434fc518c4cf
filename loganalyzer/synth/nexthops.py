"""The hubs' connectivity logs and next hops that fail in named ways (`agent_logs`).

Every delivery attempt to an Internet MX writes its connectivity log rows
(`<SERVER>/Connectivity/CONNECTLOG<yyyymmddhh>-<n>.LOG`, FORMATS.md M): `+` with the queue,
`>` the DNS answer, `>` the connection established or failed, `-` the end with its result.

A message whose MX is down (`down`) or refuses it for a while (`slow`) fails in one of four
ways, drawn per message, and the DEFER row of each failed attempt says so:
`dns` (the DNS query fails: no connection at all), `refused` (TCP connection refused),
`timeout` (the connection times out) and `tls` (STARTTLS fails after the greeting).
Truth rows of a deferred or failed recipient whose next hop failed name it in
`next_hop_failure`.

A generator of its own (seeded from the run's seed) draws these, so the rest of the run keeps
its random numbers.
"""

from __future__ import annotations

from loganalyzer.synth.clock import iso
from loganalyzer.synth.model import Message
from loganalyzer.synth.org import ACCEPTED_DOMAINS, ExternalDomain, Rng, Server, guid
from loganalyzer.synth.protocol import EXT_FRONT, Op
from loganalyzer.synth.tracking import conn_failure, q, responded, winsock_failure

FAILURES = ("dns", "refused", "timeout", "tls")
DNS_SERVER = "192.0.2.53"
TLS_ERROR = "TLS negotiation failed with error UnknownCredentials"
TLS_REPLY = "454 4.7.5 " + TLS_ERROR
DNS_DEFER = "451 4.4.0 DNS query failed. The error was: DNS query failed with error ErrorRetry"


def _ep(ip: str) -> str:
    return f"{ip}:25"


def refused_text(ip: str) -> str:
    """LED text of a deferral after the remote MX refused the TCP connection."""
    return (
        '441 4.4.1 Error encountered while communicating with primary target IP address: "Failed'
        ' to connect. Winsock error code: 10061, Win32 error code: 10061." Attempted failover to'
        " alternate host, but that did not succeed. Either there are no alternate hosts, or"
        f" delivery failed to all alternate hosts. The last endpoint attempted was {_ep(ip)}"
    )


class NextHops:
    """Failure kinds of next hops and the connectivity log rows of every Internet attempt."""

    def __init__(self, seed: int, stream: int = 21) -> None:
        self.rng = Rng(seed * 1_000_003 + stream)
        self.kinds: dict[str, str] = {}  # Message-ID -> how its next hop fails

    def kind(self, m: Message) -> str:
        """How the next hop of `m` fails (drawn once per message)."""
        if m.mid not in self.kinds:
            self.kinds[m.mid] = self.rng.choice(FAILURES)
        return self.kinds[m.mid]

    def failure(self, m: Message, dom: ExternalDomain) -> tuple[list[Op], str]:
        """The Send protocol log ops of a failed attempt and the DEFER text it leaves."""
        kind = self.kind(m)
        start = [
            (0, "X", "SendRoutingHeaders", "Set Session Permissions"),
            (0, "X", "", "attempting to connect"),
        ]
        if kind == "dns":
            return [], DNS_DEFER
        if kind == "refused":
            winsock = winsock_failure(dom.name, dom.mx_ip).replace("10060", "10061")
            return [*start, (1_000, "X", "", winsock)], refused_text(dom.mx_ip)
        if kind == "timeout":
            return [*start, (21_000, "X", "", winsock_failure(dom.name, dom.mx_ip))], conn_failure(
                dom.mx_ip
            )
        ops = [
            *start,
            (40, "+", "", ""),
            (120, "S", f"220 {dom.mx_host} ESMTP", ""),
            (2, "C", "EHLO mail.contoso.com", ""),
            (40, "S", f"250-{dom.mx_host} {EXT_FRONT.format('STARTTLS ')}", ""),
            (2, "C", "STARTTLS", ""),
            (40, "S", "220 2.0.0 Ready to start TLS", ""),
            (60, "X", "", TLS_ERROR),
            (1, "-", "", "Local"),
        ]
        return ops, responded(dom.mx_ip, TLS_REPLY)

    def log(
        self,
        out,
        t: int,
        end: int,
        hub: Server,
        dom: ExternalDomain,
        ssid: str,
        failed: Message | None,
        messages: int,
        size: int,
    ) -> None:
        """The connectivity rows of one attempt from `t` to `end` (`failed`: the message whose
        next hop failed, None for an attempt that reached the MX)."""
        r = self.rng.randint
        queue = f"DnsConnectorDelivery {guid(self.rng)};QueueLength=TQ={messages};AN={messages};"
        rows = [(t, "+", queue)]
        kind = self.kind(failed) if failed is not None else None
        if kind == "dns":
            asked = t + r(5, 40)
            rows += [
                (asked, ">", f"DNS server returned ErrorRetry reported by {DNS_SERVER}."),
                (
                    max(end, asked) + r(1, 5),
                    "-",
                    f"Messages: 0 Bytes: 0 (The DNS query for  'MX':'{dom.name}':"
                    f"'{guid(self.rng)}' failed with error : ErrorRetry)",
                ),
            ]
        else:
            rows.append((t + r(5, 40), ">", f"{dom.mx_host}[{dom.mx_ip}]"))
            if kind in ("refused", "timeout"):
                error = "ConnectionRefused:0000274D" if kind == "refused" else "TimedOut:0000274C"
                rows += [
                    (end, ">", f"Failed connection to {dom.mx_ip}:25 ({error})"),
                    (end + r(1, 5), "-", "Messages: 0 Bytes: 0 (Retry : Failed to connect)"),
                ]
            else:
                rows.append((t + r(150, 200), ">", f"Established connection to {dom.mx_ip}"))
                if kind == "tls":
                    rows.append((end + r(1, 5), "-", f"Messages: 0 Bytes: 0 (Retry : {TLS_ERROR})"))
                else:
                    rows.append((end + r(1, 5), "-", f"Messages: {messages} Bytes: {size}"))
        for when, direction, text in rows:
            line = f"{iso(when)},{ssid},SMTP,{dom.name},{direction},{q(text)}\r\n"
            out.emit(when, (hub.name, "CONNECT"), line)

    def failure_of(self, mid: str) -> str | None:
        """How the next hop of the message `mid` failed, if it did."""
        return self.kinds.get(mid)


def next_hop_failure(hops: NextHops, msg: Message, rec: dict) -> str | None:
    """The truth's `next_hop_failure` of one row: how the next hop of a deferred or failed
    recipient failed (null for other verdicts and recipients whose hop did not fail)."""
    kind = hops.failure_of(msg.mid)
    if kind is None or rec["verdict"] not in ("deferred", "failed"):
        return None
    domain = (rec["recipient"] or "").rpartition("@")[2]
    if domain in ACCEPTED_DOMAINS or not (domain in msg.down or msg.conn_defers > 0):
        return None
    return kind
