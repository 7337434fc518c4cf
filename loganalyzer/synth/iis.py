"""The IIS SMTP relay's W3C extended log (RELAY01/SMTPSVC1/exYYMMDD.log, UTC, 21 fields).

Inbound sessions from Internet hosts are logged one line per command with the peer's HELO
name as cs-username; the relay's own sessions to the Exchange frontend are logged with
cs-username `OutboundConnectionCommand` (our command) or `OutboundConnectionResponse` (the reply).
Spaces inside values are written as `+`.
"""

from __future__ import annotations

import random

from loganalyzer.synth.clock import w3c
from loganalyzer.synth.org import Server
from loganalyzer.synth.writers import Output

TAIL = " SMTP - - - -\r\n"


def plus(text: str) -> str:
    return text.replace(" ", "+") or "-"


class IisOutbound:
    """The relay's side of a session to the Exchange frontend; plays as the sending peer."""

    def __init__(self, out: Output, relay: Server, remote_ip: str, data_id: str) -> None:
        self.out = out
        self.key = (relay.name, "W3C")
        self.head = f" {remote_ip} {{}} SMTPSVC1 {relay.name} - 25 "
        self.data_id = data_id
        self.connected = True
        self.queued_time = 0  # the reply that names the Message-ID: the hand-off

    def put(self, t: int, event: str, data: str = "", context: str = "") -> None:
        if event == ">":
            verb, _, args = data.partition(" ")
            if verb == "DATA":
                args = self.data_id
            user = "OutboundConnectionCommand"
            tail = f"{verb} - {plus(args)} 0 0 {len(verb)} 0 0"
        elif event == "<":
            if data.startswith("250 2.6.0"):
                self.queued_time = t - t % 1000
            user = "OutboundConnectionResponse"
            tail = f"- - {plus(data)} 0 0 {len(data) + 2} 0 {0 if data[:1] != '2' else 16}"
        else:
            return
        self.out.emit(t, self.key, w3c(t) + self.head.format(user) + tail + TAIL)


def inbound_session(
    out: Output,
    rng: random.Random,
    relay: Server,
    t: int,
    *,
    client_ip: str,
    helo: str,
    mail: str,
    rcpts: list[str],
    mid: str,
    size: int,
) -> tuple[int, int]:
    """An Internet host hands a message to the relay; returns (DATA time, end time)."""
    key = (relay.name, "W3C")
    head = f" {client_ip} {helo} SMTPSVC1 {relay.name} {relay.ip} 0 "
    start = t
    r = rng.randint
    verb = "EHLO" if rng.random() < 0.8 else "HELO"
    lines = [
        (verb, f"+{helo}", 250, 0 if verb == "HELO" else 275, len(helo) + 5, 0),
        ("MAIL", f"+FROM:<{mail}>", 250, 46, len(mail) + 8, 0),
    ]
    lines += [("RCPT", f"+TO:<{a}>", 250, len(a) + 10, len(a) + 6, 0) for a in rcpts]
    lines.append(("DATA", f"+{mid}", 250, 130, size, 0))
    data_time = 0
    for cmd, arg, status, sc, cs, _ in lines:
        t += r(20, 400) if cmd != "DATA" else r(300, 3000) + size // 2000
        if cmd == "DATA":
            data_time = t - t % 1000
        taken = r(0, 16) if cmd != "DATA" else r(100, 2500)
        out.emit(t, key, f"{w3c(t)}{head}{cmd} - {arg} {status} 0 {sc} {cs} {taken}{TAIL}")
    t += r(5, 80)
    out.emit(t, key, f"{w3c(t)}{head}QUIT - {helo} 240 {t - start} 68 4 0{TAIL}")
    return data_time, t


def scan_session(out: Output, rng: random.Random, relay: Server, t: int, client_ip: str) -> None:
    """A port scan: an unknown command and QUIT, no message."""
    key = (relay.name, "W3C")
    head = f" {client_ip} - SMTPSVC1 {relay.name} {relay.ip} 0 "
    rdns = f"host-{client_ip.replace('.', '-').replace(':', '-')}.example.net"
    out.emit(t, key, f"{w3c(t)}{head}xxxx - +{rdns} 500 0 32 {len(rdns) + 1} 0{TAIL}")
    t += rng.randint(100, 900)
    out.emit(t, key, f"{w3c(t)}{head}QUIT - - 240 {rng.randint(100, 900)} 68 4 16{TAIL}")
