"""Exchange 2000/2003 message tracking logs with ground truth: `generate_2003()`.

The organisation is the one of org.py (servers EX01..EXnn, the same mailboxes, lists and
external domains); every server writes `OUT/<SERVER>.log/<yyyymmdd>.log` (one file per UTC
day, FORMATS.md section A): the two `#` header lines, the `# Date<TAB>Time...` column line,
then one tab-separated line per event and recipient (20 fields and a trailing `-`, as in the
one real line), numeric event IDs, unpadded `yyyy-m-d` dates and `h:m:s GMT` times (whole
seconds, UTC), `-` for an empty field.

A message's journey, each step one line per recipient:
- from a mailbox: 1027 (submitted from the store), 1019 (to Advanced Queuing), 1024 (to the
  categorizer) on the sender's server; from the Internet: 1019 (client: the remote MTA) and
  1024 on a random server. That server categorizes: 26 for a distribution list (Exchange
  2000's "Distribution list expansion", KB246959; nested lists too), 1030 (NDR) for an address
  of an accepted domain that does not exist, 1033 for the others.
- a mailbox on the same server: 1036, then 1028 (delivered); while the store is busy, 1037
  (retry local delivery) before it, and a stuck mailbox gets 1037 until the logs end.
- a mailbox on another server: 1034, 1020 and 1031 (server-hostname: the next server), then
  on that server 1019 (client: the first server), 1024, 1033 and the local delivery above.
- an external recipient: 1034, 1020 (server-hostname: the remote MX), then 1031 (sent out)
  or, when the MX rejects it, 1030 (NDR).
- Internet spam: 1019, then 1039 (deleted by the Intelligent Message Filter) or 1041
  (archived) for every recipient.
- an NDR (one per message with failures; none for an NDR): sender `postmaster@contoso.com`,
  Linked-MSGID the original MSGID, subject `Undeliverable: ...`; 1019, 1024, 1033 on the
  server that failed, then the journey of any message to the original sender.

`truth.jsonl` has the keys and meanings of truth.py, with what these logs can show:
`network_message_id`, `reply`, `enhanced_status` and `expanded_from` are null (no such
fields; members of a list are not linked to it); `received_at` is the message's first line;
the verdicts are `delivered` (1028), `sent_external` (1031), `failed` (1030; `ndr_message_id`
the NDR's MSGID), `deferred` (the last 1037), `expanded` (26), `dropped` (1039),
`quarantined` (1041); `deferrals` lists the times of the recipient's 1037 lines.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path

from loganalyzer.synth.clock import DAY_MS, iso, ms_of_date, utc
from loganalyzer.synth.names import spam_subject, subject
from loganalyzer.synth.org import ACCEPTED_DOMAINS, Org, Rng, Server, build_org
from loganalyzer.synth.scenarios import HOUR_WEIGHTS, WEEKDAY_FACTOR
from loganalyzer.synth.truth import VERDICTS

__all__ = ["FIELDS", "generate_2003"]

FIELDS = (
    "Date",
    "Time",
    "Client-IP",
    "Client-hostname",
    "Partner-Name",
    "Server-hostname",
    "Server-IP",
    "Recipient-Address",
    "Event-ID",
    "MSGID",
    "Priority",
    "Recipient-Report-Status",
    "Total-bytes",
    "Number-Recipients",
    "Origination-Time",
    "Encryption",
    "Service-Version",
    "Linked-MSGID",
    "Message-Subject",
    "Sender-Address",
)
HEADER = (
    "# Message Tracking Log File\r\n# Exchange System Attendant Version 6.5.7638.1\r\n# "
    + "\t".join(FIELDS)
    + "\r\n"
)
POSTMASTER = "postmaster@contoso.com"
SERVICE_VERSION = "Version: 6.5.7638.1"
S = 1000  # one second; the logs have whole seconds
MARGIN_MS = 15 * 60 * S  # no message starts later than this before the end of its day

#: Message kinds and their weights; every day starts with one message of each kind.
KINDS = {
    "internal": 30.0,
    "inbound": 28.0,
    "outbound": 20.0,
    "list": 6.0,
    "unknown": 3.0,
    "reject": 3.0,
    "busy": 4.0,
    "stuck": 1.0,
    "spam": 4.0,
    "archive": 1.0,
}


@dataclass
class Rcpt:
    """One recipient of one message and what became of it."""

    address: str
    verdict: str = ""
    server: str = ""
    at: int = 0
    deferrals: list[int] = field(default_factory=list)
    ndr: str | None = None


@dataclass
class Msg:
    mid: str  # as logged: no angle brackets
    sender: str
    subject: str
    size: int
    addressed: list[str]
    first: int  # time of its first line
    linked: str = "-"
    rcpts: dict[str, Rcpt] = field(default_factory=dict)
    ndrs: list[Msg] = field(default_factory=list)

    def rcpt(self, address: str) -> Rcpt:
        if address not in self.rcpts:
            self.rcpts[address] = Rcpt(address)
        return self.rcpts[address]


def _date(t: int) -> str:
    d = utc(t)
    return f"{d.year}-{d.month}-{d.day}"


def _time(t: int) -> str:
    d = utc(t)
    return f"{d.hour}:{d.minute}:{d.second} GMT"


class Gen:
    """Writes the journeys of messages as log lines (held in memory) and records their fates."""

    def __init__(self, rng: Rng, org: Org, end: int) -> None:
        self.rng = rng
        self.org = org
        self.end = end
        self.lines: dict[tuple[str, str], list[tuple[int, int, str]]] = {}
        self.n = 0

    # lines ---------------------------------------------------------------------------------
    def line(
        self,
        t: int,
        srv: Server,
        event: str,
        m: Msg,
        rcpt: str,
        client: tuple[str, str] | None = None,
        host: tuple[str, str] | None = None,
        partner: str = "-",
    ) -> None:
        """One line of `srv`'s log; `client` and `host` are (ip, name), by default `srv`."""
        assert t < self.end, (event, iso(t))
        cip, cname = client or (srv.ip, srv.name)
        hip, hname = host or (srv.ip, srv.name)
        fields = (
            _date(t),
            _time(t),
            cip,
            cname,
            partner,
            hname,
            hip,
            rcpt,
            event,
            m.mid,
            "0",
            "-",
            str(m.size),
            str(len(m.addressed)),
            f"{_date(m.first)} {_time(m.first)}",
            "0",
            SERVICE_VERSION,
            m.linked,
            m.subject,
            m.sender,
            "-",
        )
        key = (srv.name, utc(t).strftime("%Y%m%d"))
        self.n += 1
        self.lines.setdefault(key, []).append((t, self.n, "\t".join(fields) + "\r\n"))

    def final(self, m: Msg, rcpt: str, srv: Server, t: int, verdict: str) -> Rcpt:
        rc = m.rcpt(rcpt)
        rc.verdict, rc.server, rc.at = verdict, srv.name, t
        return rc

    # journeys ------------------------------------------------------------------------------
    def enter(self, m: Msg, srv: Server, client: tuple[str, str] | None, store: bool) -> int:
        """The submission lines of every addressed recipient; returns the next free time."""
        t = m.first
        steps = (
            (("1027", None), ("1019", client), ("1024", None))
            if store
            else (
                ("1019", client),
                ("1024", None),
            )
        )
        for event, who in steps:
            for a in m.addressed:
                self.line(t, srv, event, m, a, client=who)
            t += S
        return t

    def categorize(self, m: Msg, srv: Server, t: int, mode: dict[str, str]) -> None:
        """Expand lists, fail unknown addresses, route the rest; an NDR for the failures."""
        org = self.org
        todo = list(m.addressed)
        seen = {a.lower() for a in todo}
        i = 0
        while i < len(todo):
            a = todo[i]
            i += 1
            if a in org.lists:
                self.line(t, srv, "26", m, a)
                self.final(m, a, srv, t, "expanded")
                for member in org.lists[a].members:
                    if member.lower() not in seen:
                        seen.add(member.lower())
                        todo.append(member)
        t += S
        groups: dict[tuple[str, str], list[str]] = {}
        for a in todo:
            if a in org.lists:
                continue
            m.rcpt(a)
            user = org.by_address.get(a)
            domain = a.split("@")[1]
            if user is None and domain in ACCEPTED_DOMAINS:
                self.line(t, srv, "1030", m, a)
                self.final(m, a, srv, t, "failed")
                continue
            self.line(t, srv, "1033", m, a)
            key = ("server", user.server.name) if user else ("mx", domain)
            groups.setdefault(key, []).append(a)
        t += S
        for (kind, name), rcpts in groups.items():
            if kind == "server" and name == srv.name:
                self.local(m, srv, t, rcpts, mode)
            elif kind == "server":
                self.transfer(m, srv, self.org.server(name), t, rcpts, mode)
            else:
                self.external(m, srv, t, name, rcpts, mode)
        failed = [rc for rc in m.rcpts.values() if rc.verdict == "failed"]
        if failed and m.sender != POSTMASTER:
            when = max(rc.at for rc in failed) + S
            ndr = self.ndr(m, srv, when)
            for rc in failed:
                rc.ndr = f"<{ndr.mid}>"

    def local(self, m: Msg, srv: Server, t: int, rcpts: list[str], mode: dict[str, str]) -> None:
        """Queued for the store of `srv`: delivered, after retries, or still retrying."""
        for a in rcpts:
            self.line(t, srv, "1036", m, a)
        for a in rcpts:
            how = mode.get(a, "ok")
            retries = self.rng.randint(1, 3) if how == "busy" else 0
            u = t + S
            rc = m.rcpt(a)
            while (retries or how == "stuck") and u < self.end:
                self.line(u, srv, "1037", m, a)
                rc.deferrals.append(u)
                self.final(m, a, srv, u, "deferred")
                u += self.rng.randint(5, 20) * 60 * S
                retries = max(0, retries - 1)
            if u < self.end and how != "stuck":  # else deferred at the last 1037
                self.line(u, srv, "1028", m, a, partner="STORE")
                self.final(m, a, srv, u, "delivered")

    def transfer(
        self, m: Msg, src: Server, dst: Server, t: int, rcpts: list[str], mode: dict[str, str]
    ) -> None:
        """SMTP to another server of the organisation, which delivers to its mailboxes."""
        to = (dst.ip, dst.fqdn)
        for event in ("1034", "1020", "1031"):
            for a in rcpts:
                self.line(t, src, event, m, a, host=to, partner="SMTP")
            t += S * (1 if event != "1020" else self.rng.randint(1, 3))
        for event in ("1019", "1024", "1033"):
            for a in rcpts:
                self.line(t, dst, event, m, a, client=(src.ip, src.fqdn))
            t += S
        self.local(m, dst, t, rcpts, mode)

    def external(
        self, m: Msg, srv: Server, t: int, domain: str, rcpts: list[str], mode: dict[str, str]
    ) -> None:
        """SMTP to the remote MX: sent out, or rejected (an NDR follows)."""
        d = self.org.by_domain[domain]
        mx = (d.mx_ip, d.mx_host)
        for a in rcpts:
            self.line(t, srv, "1034", m, a, host=mx, partner="SMTP")
        t += S
        for a in rcpts:
            self.line(t, srv, "1020", m, a, host=mx, partner="SMTP")
        t += self.rng.randint(1, 4) * S
        for a in rcpts:
            if mode.get(a) == "reject":
                self.line(t, srv, "1030", m, a, host=mx, partner="SMTP")
                self.final(m, a, srv, t, "failed")
            else:
                self.line(t, srv, "1031", m, a, host=mx, partner="SMTP")
                self.final(m, a, srv, t, "sent_external")

    def ndr(self, m: Msg, srv: Server, t: int) -> Msg:
        """The non-delivery report of `m` to its sender, created on `srv` at `t`."""
        ndr = Msg(
            mid=f"{self.rng.getrandbits(96):024X}@{srv.fqdn}",
            sender=POSTMASTER,
            subject=f"Undeliverable: {m.subject}",
            size=m.size // 4 + self.rng.randint(2500, 6000),
            addressed=[m.sender],
            first=t,
            linked=m.mid,
        )
        m.ndrs.append(ndr)
        self.categorize(ndr, srv, self.enter(ndr, srv, None, store=False), {})
        return ndr

    def message(self, kind: str, t: int) -> Msg:
        """One message of `kind` starting at `t`, with every line of its journey."""
        rng, org = self.rng, self.org
        users = org.plain_users
        inbound = kind in ("inbound", "spam", "archive") or (
            kind in ("list", "unknown") and rng.random() < 0.4
        )
        if inbound:
            d = rng.choice(org.domains)
            sender = rng.choice(d.people)
            srv = rng.choice(org.servers)
            client: tuple[str, str] | None = (d.out_ip, d.out_host)
        else:
            u = rng.choice(users)
            sender, srv, client = u.address, u.server, None
        mode: dict[str, str] = {}
        addressed = []
        if kind in ("internal", "inbound", "busy", "stuck", "spam", "archive"):
            addressed = [rng.choice(users).address for _ in range(rng.choice((1, 1, 1, 2, 3)))]
            if kind in ("busy", "stuck"):
                mode[addressed[0]] = kind
        elif kind == "outbound":
            addressed = [
                rng.choice(rng.choice(org.domains).people) for _ in range(rng.randint(1, 2))
            ]
            if rng.random() < 0.3:
                addressed.append(rng.choice(users).address)
        elif kind == "list":
            addressed = [rng.choice(sorted(org.lists))]
        elif kind == "unknown":
            addressed = [rng.choice(org.unknown), rng.choice(users).address]
        elif kind == "reject":
            addressed = [rng.choice(rng.choice(org.domains).people)]
            mode[addressed[0]] = "reject"
        addressed = list(dict.fromkeys(a for a in addressed if a != sender)) or [
            next(u.address for u in users if u.address != sender)
        ]
        domain = srv.fqdn if not inbound else sender.split("@")[1]
        m = Msg(
            mid=f"{rng.getrandbits(64):016X}{rng.getrandbits(32):08x}@{domain}",
            sender=sender,
            subject=spam_subject(rng) if kind in ("spam", "archive") else subject(rng),
            size=rng.randint(2_000, 60_000)
            if rng.random() < 0.9
            else rng.randint(60_000, 9_000_000),
            addressed=addressed,
            first=t,
        )
        t = self.enter(m, srv, client, store=not inbound)
        if kind in ("spam", "archive"):
            event, verdict = ("1039", "dropped") if kind == "spam" else ("1041", "quarantined")
            for a in addressed:
                self.line(t, srv, event, m, a)
                self.final(m, a, srv, t, verdict)
            return m
        self.categorize(m, srv, t, mode)
        return m

    def write(self, out: Path) -> tuple[int, int]:
        """Write the files; (files, bytes)."""
        files = size = 0
        for (server, day), lines in sorted(self.lines.items()):
            folder = out / f"{server}.log"
            folder.mkdir(parents=True, exist_ok=True)
            lines.sort()
            data = (HEADER + "".join(text for _, _, text in lines)).encode("utf-8")
            (folder / f"{day}.log").write_bytes(data)
            files += 1
            size += len(data)
        return files, size


def truth_rows(m: Msg) -> list[dict]:
    """The truth rows of `m` and, after them, of its NDRs."""
    out = []
    for rc in m.rcpts.values():
        assert rc.verdict, (m.mid, rc.address)
        out.append(
            {
                "message_id": f"<{m.mid}>",
                "network_message_id": None,
                "sender": m.sender,
                "recipient": rc.address,
                "subject": m.subject,
                "size": m.size,
                "received_at": iso(m.first),
                "verdict": rc.verdict,
                "server": rc.server,
                "at": iso(rc.at),
                "enhanced_status": None,
                "reply": None,
                "ndr_message_id": rc.ndr,
                "expanded_from": None,
                "deferrals": [iso(x) for x in rc.deferrals],
            }
        )
    for ndr in m.ndrs:
        out += truth_rows(ndr)
    return out


def generate_2003(
    out: Path, *, servers: int, days: int, messages: int, seed: int, start: dt.date
) -> dict:
    """Write the logs and truth.jsonl into `out` (an empty folder); the `SynthResult` fields."""
    rng = Rng(seed)
    org = build_org(rng, servers, False)
    first = ms_of_date(start)
    end = first + days * DAY_MS
    gen = Gen(rng, org, end)
    kinds, weights = list(KINDS), list(KINDS.values())
    verdicts = dict.fromkeys(VERDICTS, 0)
    n_messages = n_rows = 0
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "truth.jsonl", "w", encoding="utf-8", newline="\n") as truth:
        for day in range(days):
            day_start = first + day * DAY_MS
            n = round(messages * WEEKDAY_FACTOR[(start + dt.timedelta(days=day)).weekday()])
            todo = list(kinds) + rng.choices(kinds, weights, k=max(0, n - len(kinds)))
            times = []
            for _ in todo:
                hour = rng.choices(range(24), HOUR_WEIGHTS)[0]
                t = day_start + hour * 3_600_000 + rng.randrange(3600) * S
                times.append(min(t, day_start + DAY_MS - MARGIN_MS))
            for t, kind in sorted(zip(times, todo, strict=True)):
                m = gen.message(kind, t)
                rows = truth_rows(m)
                for rec in rows:
                    truth.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    verdicts[rec["verdict"]] += 1
                n_rows += len(rows)
                n_messages += 1 + len(m.ndrs)
    files, size = gen.write(out)
    return {
        "servers": [s.name for s in org.servers],
        "end": iso(end),
        "files": files,
        "bytes": size,
        "messages": n_messages,
        "recipients": n_rows,
        "verdicts": verdicts,
    }
