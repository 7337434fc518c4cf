"""Message tracking log lines (Exchange 2016, 30 fields) and the status texts they carry."""

from __future__ import annotations

import random

from loganalyzer.synth.clock import iso, lrt
from loganalyzer.synth.writers import TRACKING_VERSION

ACCOUNT_FOREST = "S:DeliveryPriority=Normal;S:AccountForest=contoso.com"


def q(value: str) -> str:
    """CSV-quote a field that holds a comma or a double quote; quotes are doubled."""
    if '"' in value:
        return '"' + value.replace('"', '""') + '"'
    if "," in value:
        return '"' + value + '"'
    return value


def row(
    t: int,
    *,
    source: str,
    event: str,
    log_id: str,
    client_ip: str = "",
    client_host: str = "",
    server_ip: str = "",
    server_host: str = "",
    context: str = "",
    connector: str = "",
    iid: str = "",
    mid: str = "",
    nid: str = "",
    rcpts: list[str] | tuple[str, ...] = (),
    statuses: list[str] | None = None,
    size: int | None = None,
    related: str = "",
    reference: str = "",
    subject: str = "",
    sender: str = "",
    return_path: str = "",
    info: str = "",
    direction: str = "",
    orig_client: str = "",
    orig_server: str = "",
    custom: str = "",
    traffic: str = "Email",
) -> str:
    """One tracking line with its CRLF; `recipient-count` is the number of `rcpts`."""
    return (
        ",".join(
            (
                iso(t),
                client_ip,
                client_host,
                server_ip,
                server_host,
                q(context),
                q(connector),
                source,
                event,
                iid,
                mid,
                nid,
                ";".join(rcpts),
                q(";".join(statuses)) if statuses else "",
                "" if size is None else str(size),
                str(len(rcpts)) if rcpts else "",
                related,
                q(reference),
                q(subject),
                sender,
                return_path,
                q(info),
                direction,
                "",
                orig_client,
                orig_server,
                q(custom),
                traffic,
                log_id,
                TRACKING_VERSION,
            )
        )
        + "\r\n"
    )


def _ep(ip: str) -> str:
    return f"[{ip}]:25" if ":" in ip else f"{ip}:25"


def led(text: str, fqdn: str = "", ip: str = "", t: int | None = None, msg: str = "") -> str:
    """The bracketed recipient-status form `[{LED=...};{MSG=...};{FQDN=...};{IP=...};{LRT=...}]`."""
    when = lrt(t) if t is not None else ""
    return f"[{{LED={text}}};{{MSG={msg}}};{{FQDN={fqdn}}};{{IP={ip}}};{{LRT={when}}}]"


RECIP_NOT_FOUND = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
QUEUE_EXPIRED = "550 4.4.7 QUEUE.Expired; message expired"
MTD_BUSY = "432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded"
AGENT_DELETED = "550 4.3.2 QUEUE.TransportAgent; message deleted by transport agent"
MODERATOR_REJECTED = "550 5.7.1 Message rejected by the moderator"


def conn_failure(ip: str) -> str:
    """LED text of a deferral after the remote MX did not answer."""
    return (
        '441 4.4.1 Error encountered while communicating with primary target IP address: "Failed'
        ' to connect. Winsock error code: 10060, Win32 error code: 10060." Attempted failover to'
        " alternate host, but that did not succeed. Either there are no alternate hosts, or"
        f" delivery failed to all alternate hosts. The last endpoint attempted was {_ep(ip)}"
    )


SERVICE_UNAVAILABLE = "421 4.3.2 Service not available, closing transmission channel"


def responded(ip: str, reply: str = SERVICE_UNAVAILABLE) -> str:
    """LED text of a deferral after the remote MX refused the session in its greeting."""
    return (
        f'451 4.4.0 Primary target IP address responded with: "{reply}." Attempted failover to'
        " alternate host, but that did not succeed. Either there are no alternate hosts, or"
        f" delivery failed to all alternate hosts. The last endpoint attempted was {_ep(ip)}"
    )


def winsock_failure(domain: str, ip: str) -> str:
    """The protocol-log text of the same failed connection."""
    return (
        "Failed to connect. Winsock error code: 10060, Win32 error code: 10060, Destination"
        f" domain: {domain}, Error Message: A connection attempt failed because the connected"
        " party did not properly respond after a period of time, or established connection failed"
        f" because connected host has failed to respond {_ep(ip)}."
    )


def greylisted(address: str) -> str:
    return (
        f"451 4.7.1 <{address}>: Recipient address rejected: Greylisted, please try again"
        " in 300 seconds"
    )


def user_unknown(address: str) -> str:
    return (
        f"550 5.1.1 <{address}>: Recipient address rejected: User unknown in virtual mailbox table"
    )


def policy_block(address: str) -> str:
    return (
        f"554 5.7.1 <{address}>: Recipient address rejected: Access denied; client host"
        " [192.0.2.10] blocked using dnsbl.example.net"
    )


def perf(rng: random.Random, fqdn: str, kind: str = "HUB") -> str:
    """The latency breakdown Exchange appends to message-info."""
    smr = rng.randint(20, 400) / 1000
    cat = rng.randint(10, 300) / 1000
    sms = rng.randint(5, 120) / 1000
    total = smr + cat + sms + rng.randint(1, 50) / 1000
    return (
        f"SRV={fqdn}:TOTAL-{kind}={total:.3f}|SMR={smr:.3f}(SMRDE=0.003|SMRC={smr - 0.003:.3f}"
        f"(SMRCL=0.102|X-SMRCR={smr - 0.003:.3f}))|CAT={cat:.3f}(CATRESL=0.004|CATORES="
        f"{cat - 0.004:.3f}(CATRS={cat - 0.004:.3f}(CATRS-Index Routing Agent={cat - 0.006:.3f})))"
        f"|QDM=0.004|SMSC=0.010|SMS={sms:.3f}"
    )
