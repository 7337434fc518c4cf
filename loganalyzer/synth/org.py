"""The simulated organisation: servers, databases, users, lists and the outside world."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from loganalyzer.synth.names import EXTERNAL_DOMAINS, FIRST_NAMES, LAST_NAMES, ascii_fold

ACCEPTED_DOMAINS = ("contoso.com", "fabrikam.com")
ORG_DOMAIN = "contoso.com"
PUBLIC_IP = "192.0.2.10"  # the organisation's address as seen from the Internet (NAT)
POSTMASTER = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com"
ARBITRATION = "SystemMailbox{1f05a927-3be2-4fb9-aa03-b59fe3b56f4c}@contoso.com"
ARBITRATION_GUID = "6f5a1c3e-2b7d-4e9f-9a0c-1d2e3f4a5b6c"
N_USERS = 320
T = TypeVar("T")


class Rng(random.Random):
    """random.Random with cheaper randint, randrange and choice (same seed, same numbers)."""

    def randint(self, a: int, b: int) -> int:
        return a + int(self.random() * (b - a + 1))

    def randrange(self, start: int, stop: int | None = None, step: int = 1) -> int:
        if stop is None:
            start, stop = 0, start
        return start + int(self.random() * (stop - start))

    def choice(self, seq: Sequence[T]) -> T:
        return seq[int(self.random() * len(seq))]


def guid(rng: random.Random) -> str:
    """A random dashed GUID."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def network_guid(rng: random.Random) -> str:
    """A network-message-id or log-id shaped like Exchange's (`...-08de....`)."""
    h = f"{rng.getrandbits(96):024x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-08de{h[20:24]}{rng.getrandbits(16):04x}"


@dataclass(frozen=True, slots=True)
class Server:
    """An Exchange 2016 multi-role server (or the IIS relay)."""

    name: str  # NetBIOS name, upper case: EX01
    fqdn: str  # ex01.contoso.com
    ip: str


@dataclass(slots=True)
class Database:
    name: str
    guid: str
    server: Server


@dataclass(slots=True)
class User:
    """A mailbox."""

    display: str
    address: str
    db: Database
    mailbox_guid: str
    client_ip: str
    forward_to: str | None = None  # ForwardingAddress: messages are REDIRECTed there

    @property
    def server(self) -> Server:
        return self.db.server


@dataclass(slots=True)
class DistributionList:
    address: str
    members: list[str]  # addresses: mailboxes, external contacts or nested lists
    moderators: list[str] = field(default_factory=list)


@dataclass(slots=True)
class ExternalDomain:
    name: str
    out_host: str  # the MTA that sends its mail to us
    out_ip: str
    mx_host: str  # where we send its mail
    mx_ip: str
    software: str  # key of names.MX_SOFTWARE
    people: list[str]


@dataclass(slots=True)
class Org:
    servers: list[Server]
    databases: list[Database]
    users: list[User]
    by_address: dict[str, User]
    lists: dict[str, DistributionList]
    domains: list[ExternalDomain]
    by_domain: dict[str, ExternalDomain]
    relay: Server | None
    unknown: list[str]  # internal-looking addresses that do not exist
    plain_users: list[User]  # every mailbox but the forwarded one: senders and recipients
    redirected: User
    moderated: str  # the moderated list
    nested: str  # a list that contains another list
    with_contact: str  # a list with an external contact
    arbitration_db: Database
    attackers: list[str]  # Internet hosts trying passwords

    def server(self, name: str) -> Server:
        return next(s for s in self.servers if s.name == name)

    def closure(self, address: str) -> set[str]:
        """Every address a list reaches, nested lists included."""
        out: set[str] = set()
        for m in self.lists[address].members:
            out.add(m)
            if m in self.lists:
                out |= self.closure(m)
        return out


def _doc_ip(rng: random.Random, used: set[str]) -> str:
    while True:
        net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
        ip = f"{net}.{rng.randint(20, 250)}"
        if ip not in used and ip != PUBLIC_IP:
            used.add(ip)
            return ip


def _people(rng: random.Random, n: int, domains: tuple[str, ...], taken: set[str]) -> list[tuple]:
    out = []
    while len(out) < n:
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        local = ascii_fold(f"{first}.{last}").replace(" ", "")
        dom = domains[0] if len(domains) == 1 or rng.random() < 0.8 else rng.choice(domains[1:])
        addr = f"{local}@{dom}"
        k = 2
        while addr in taken:
            addr = f"{local}{k}@{dom}"
            k += 1
        taken.add(addr)
        out.append((f"{first} {last}", addr))
    return out


def build_org(rng: random.Random, n_servers: int, relay: bool) -> Org:
    """Build the organisation: `n_servers` DAG members, a few hundred mailboxes, lists, domains."""
    servers = [
        Server(f"EX{i:02d}", f"ex{i:02d}.contoso.com", f"10.0.0.{10 + i}")
        for i in range(1, n_servers + 1)
    ]
    dbs = [
        Database(f"DB{2 * i + k + 1:02d}", guid(rng), s)
        for i, s in enumerate(servers)
        for k in range(2)
    ]
    taken: set[str] = set()
    users = []
    for display, addr in _people(rng, N_USERS, ACCEPTED_DOMAINS, taken):
        if rng.random() < 0.15:
            ip = f"fd00:10:{rng.randint(1, 9)}::{rng.getrandbits(16):x}"
        else:
            ip = f"10.0.{rng.randint(2, 9)}.{rng.randint(10, 250)}"
        users.append(User(display, addr, rng.choice(dbs), guid(rng), ip))
    by_address = {u.address: u for u in users}

    pool = list(users)
    rng.shuffle(pool)

    def take(n: int) -> list[str]:
        return [pool.pop().address for _ in range(n)]

    used_ips: set[str] = set()
    domains = []
    for name, out_host, mx_host, software in EXTERNAL_DOMAINS:
        people = [a for _, a in _people(rng, 12, (name,), taken)]
        if name == "fourthcoffee.com":
            out_ip, mx_ip = "2001:db8:4::25", "2001:db8:4::26"
        else:
            out_ip = _doc_ip(rng, used_ips)
            mx_ip = out_ip if mx_host == out_host else _doc_ip(rng, used_ips)
        domains.append(ExternalDomain(name, out_host, out_ip, mx_host, mx_ip, software, people))
    by_domain = {d.name: d for d in domains}

    lists = {
        "sales-emea@contoso.com": DistributionList("sales-emea@contoso.com", take(5)),
        "it-support@contoso.com": DistributionList("it-support@contoso.com", take(5)),
        "hr@fabrikam.com": DistributionList("hr@fabrikam.com", take(4)),
    }
    lists["sales@contoso.com"] = DistributionList(
        "sales@contoso.com", take(6) + ["sales-emea@contoso.com"]
    )
    partner = by_domain["adatum.com"].people[0]
    lists["project-phoenix@contoso.com"] = DistributionList(
        "project-phoenix@contoso.com", take(4) + [partner]
    )
    moderator = take(1)[0]
    lists["announcements@contoso.com"] = DistributionList(
        "announcements@contoso.com", take(8), moderators=[moderator]
    )
    redirected = by_address[take(1)[0]]
    redirected.forward_to = take(1)[0]  # the manager; in no list, so never a duplicate
    plain = [u for u in users if u is not redirected]

    unknown = []
    for u in rng.sample(users, 6):
        local, dom = u.address.split("@")
        unknown.append(f"{local[:-1] or local}x{local[-1]}@{dom}")
    unknown += ["info2@contoso.com", "former.employee@fabrikam.com", "helpdesk-old@contoso.com"]
    unknown = [a for a in unknown if a not in by_address and a not in lists]

    relay_server = Server("RELAY01", "relay01.contoso.com", "10.0.0.250") if relay else None
    attackers = [_doc_ip(rng, used_ips) for _ in range(4)] + ["2001:db8:bad::17"]
    return Org(
        servers=servers,
        databases=dbs,
        users=users,
        by_address=by_address,
        lists=lists,
        domains=domains,
        by_domain=by_domain,
        relay=relay_server,
        unknown=unknown,
        plain_users=plain,
        redirected=redirected,
        moderated="announcements@contoso.com",
        nested="sales@contoso.com",
        with_contact="project-phoenix@contoso.com",
        arbitration_db=dbs[0],
        attackers=attackers,
    )
