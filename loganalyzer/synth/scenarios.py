"""Which messages are sent, when, and with which fates.

Each message is of one scenario kind, drawn with `WEIGHTS`. Every day also gets one message of
each kind in `FORCED`, placed at a time that leaves room for its story to finish before the end
of the logs (or, for `down/pending`, that keeps it deferred at the end of the last day).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator

from loganalyzer.synth.clock import HOUR_MS
from loganalyzer.synth.delivery import EXPIRY_MS
from loganalyzer.synth.model import Message, Rcpt
from loganalyzer.synth.names import spam_subject, subject
from loganalyzer.synth.org import ExternalDomain, User, network_guid
from loganalyzer.synth.origins import Engine

MINUTE = 60_000
MARGIN_MS = 30 * MINUTE  # no message starts later than this before the end of the logs

# UTC hours; the organisation works 08:00-18:00 local time (UTC+1)
HOUR_WEIGHTS = (
    0.6,
    0.5,
    0.4,
    0.4,
    0.5,
    0.8,
    1.6,
    3.6,
    6.5,
    8.0,
    8.0,
    7.5,
    6.0,
    7.0,
    7.5,
    7.0,
    6.0,
    4.5,
    3.0,
    2.2,
    1.8,
    1.5,
    1.2,
    0.8,
)
WEEKDAY_FACTOR = (1.0, 1.0, 1.0, 1.0, 1.0, 0.25, 0.2)  # Monday .. Sunday

WEIGHTS = {
    "inbound": 38.0,
    "internal": 25.0,
    "outbound": 15.0,
    "client_submit": 4.0,
    "oof": 1.2,
    "poison": 0.25,
    "drop": 1.5,
    "dl": 2.5,
    "dl_contact": 0.8,
    "moderated": 0.8,
    "unknown_internal": 1.0,
    "unknown_inbound": 1.2,
    "ndr_fails": 0.3,
    "remote_reject": 1.5,
    "greylist": 1.2,
    "down": 0.5,
    "slow": 1.0,
    "internal_busy": 1.0,
    "redirect": 1.0,
    "resubmit": 0.3,
}
_KINDS = tuple(WEIGHTS)
_CUM = tuple(WEIGHTS.values())

# kind, variant, how long before the end of the logs it must start at the latest
FORCED = (
    ("poison", "", MARGIN_MS),
    ("drop", "", MARGIN_MS),
    ("oof", "", MARGIN_MS),
    ("redirect", "", MARGIN_MS),
    ("resubmit", "", 60 * MINUTE),
    ("moderated", "await", MARGIN_MS),
    ("moderated", "approve", 150 * MINUTE),
    ("moderated", "reject", 150 * MINUTE),
    ("dl", "", MARGIN_MS),
    ("dl_contact", "", MARGIN_MS),
    ("unknown_internal", "", MARGIN_MS),
    ("unknown_inbound", "", MARGIN_MS),
    ("ndr_fails", "", MARGIN_MS),
    ("remote_reject", "reject550", MARGIN_MS),
    ("remote_reject", "reject554", MARGIN_MS),
    ("greylist", "", 60 * MINUTE),
    ("slow", "", 120 * MINUTE),
    ("internal_busy", "", 60 * MINUTE),
    ("client_submit", "", MARGIN_MS),
    ("down", "expire", EXPIRY_MS + 40 * MINUTE),
)


def day_events(
    rng: random.Random,
    day_start: int,
    n: int,
    end: int,
    last_day: bool,
    n_attackers: int,
    relay: bool,
) -> Iterator[tuple[int, str, str]]:
    """(time, kind, variant) of one day in time order, one hour at a time.

    Kinds are scenario names, `auth` (password guessing, variant = attacker index) and `scan`.
    """
    counts = [0] * 24
    for h in rng.choices(range(24), HOUR_WEIGHTS, k=n):
        counts[h] += 1
    windows = [
        (day_start + h * HOUR_MS, min(day_start + (h + 1) * HOUR_MS, end - MARGIN_MS))
        for h in range(24)
    ]
    wanted = [(k, v, day_start, end - latest) for k, v, latest in FORCED]
    if last_day:
        wanted.append(("down", "pending", end - EXPIRY_MS + 60 * MINUTE, end - 60 * MINUTE))
    forced: dict[tuple[int, int], tuple[str, str]] = {}
    wanted.sort(key=lambda w: w[3] - w[2])  # the narrowest windows first
    for kind, variant, lo, hi in wanted:
        hours = [h for h in range(24) if counts[h] and windows[h][0] >= lo and windows[h][1] <= hi]
        if not hours:
            continue
        slots = [(h, rng.randrange(counts[h])) for h in (rng.choice(hours) for _ in range(4))]
        slots += [(h, i) for h in hours for i in range(min(counts[h], len(FORCED) + 2))]
        slot = next((s for s in slots if s not in forced), None)
        if slot is not None:
            forced[slot] = (kind, variant)
    n_auth = max(6, n // 15)
    auth_hours = [0] * 24
    for h in rng.choices(range(24), k=n_auth):
        auth_hours[h] += 1
    for h in range(24):
        hs, he = windows[h]
        if he <= hs:
            continue
        times = sorted(rng.randrange(hs, he) for _ in range(counts[h]))
        events = []
        for i, t in enumerate(times):
            kind, variant = forced.get((h, i)) or (rng.choices(_KINDS, _CUM)[0], "")
            events.append((t, kind, variant))
        attacker = str(rng.randrange(n_attackers))
        events += [(rng.randrange(hs, he), "auth", attacker) for _ in range(auth_hours[h])]
        if relay:
            events += [(rng.randrange(hs, he), "scan", "") for _ in range(rng.randint(0, 1))]
        events.sort(key=lambda e: e[0])
        yield from events


class Composer:
    """Builds the message of a scenario and sends it through the engine."""

    def __init__(self, engine: Engine) -> None:
        self.eng = engine
        self.rng = engine.rng
        self.org = engine.org
        self.outage: tuple[ExternalDomain, int] | None = None  # the next hop down, until when

    # building blocks -------------------------------------------------------------------------
    def _users(self, n: int, exclude: set[str]) -> list[User]:
        out: list[User] = []
        while len(out) < n:
            u = self.rng.choice(self.org.plain_users)
            if u.address not in exclude and u not in out:
                out.append(u)
        return out

    def _size(self) -> int:
        return max(1500, min(35_000_000, int(math.exp(self.rng.gauss(10.3, 1.2)))))

    def _external_mid(self, dom: ExternalDomain, t: int) -> str:
        rng = self.rng
        style = dom.software
        if style == "postfix":
            return f"<{t // 1000}.{rng.getrandbits(40):010X}@{dom.out_host}>"
        if style == "java":
            pid = f"{rng.randint(10**8, 10**9)}.{rng.randint(1, 99999)}"
            return f"<{pid}.{t}.JavaMail.app@{dom.out_host}>"
        if style == "gmailish":
            tail = f"{rng.getrandbits(180):045x}"
            return f"<CA+{tail[:20]}={tail[20:]}@mail.{dom.name}>"
        if style == "ses":
            return (
                f"<0100018e{rng.getrandbits(32):08x}-{network_guid(rng)}-000000@email.{dom.name}>"
            )
        if style == "oldoutlook":
            return (
                f"<000001c6{rng.getrandbits(32):08x}${rng.getrandbits(32):08x}$97cfa8c0@{dom.name}>"
            )
        box = f"AM{rng.randint(0, 9)}PR0{rng.randint(1, 9)}MB{rng.randint(1000, 9999)}"
        return f"<{box}{rng.getrandbits(64):016X}@{box}.eurprd0{rng.randint(1, 9)}.prod.{dom.name}>"

    def _msg(
        self,
        sender: str,
        rcpts: list[Rcpt],
        t: int,
        *,
        user: User | None = None,
        dom: ExternalDomain | None = None,
        subj: str = "",
    ) -> Message:
        r = self.rng.randint
        if user is not None:
            mid, direction, orig = self.eng.internal_mid(user.server), "Originating", t - r(5, 400)
        else:
            assert dom is not None
            mid, direction, orig = self._external_mid(dom, t), "Incoming", t - r(500, 60_000)
        return Message(
            mid=mid,
            nid=network_guid(self.rng),
            sender=sender,
            return_path=sender,
            subject=subj or subject(self.rng),
            size=self._size(),
            direction=direction,
            orig_time=orig,
            rcpts=rcpts,
            all=list(rcpts),
            sender_user=user,
        )

    def _rc(self, address: str, **knobs) -> Rcpt:
        rc = self.eng.new_rcpt(address)
        for k, v in knobs.items():
            setattr(rc, k, v)
        return rc

    def _ext_address(self, dom: ExternalDomain | None = None) -> tuple[ExternalDomain, str]:
        dom = dom or self.rng.choice(self.org.domains)
        return dom, self.rng.choice(dom.people)

    # scenarios -----------------------------------------------------------------------------
    def run(self, kind: str, variant: str, t: int) -> Message:
        """Send one message of scenario `kind` starting at `t`; return it (for the truth)."""
        rng, org = self.rng, self.org
        exclude = {org.redirected.address}
        inbound = kind in ("inbound", "drop", "unknown_inbound", "ndr_fails") or (
            kind in ("poison", "redirect") and rng.random() < 0.5
        )
        rcpts: list[Rcpt] = []
        if kind in ("dl", "dl_contact", "moderated"):
            lst = {"dl": org.nested, "dl_contact": org.with_contact, "moderated": org.moderated}[
                kind
            ]
            exclude |= org.closure(lst)
            rcpts.append(
                self._rc(
                    lst,
                    decision=variant or rng.choices(("await", "approve", "reject"), (4, 4, 2))[0],
                )
            )
            if rng.random() < 0.35:
                rcpts.append(self._rc(self._users(1, exclude)[0].address))
        elif kind == "redirect":
            exclude.add(org.redirected.forward_to or "")
            rcpts.append(self._rc(org.redirected.address))
            rcpts += [self._rc(u.address) for u in self._users(rng.randint(0, 1), exclude)]
        elif kind in ("unknown_internal", "unknown_inbound", "ndr_fails"):
            rcpts.append(self._rc(rng.choice(org.unknown)))
            if kind != "ndr_fails":
                rcpts += [self._rc(u.address) for u in self._users(rng.randint(0, 2), exclude)]
        elif kind in ("outbound", "remote_reject", "greylist", "down", "slow", "oof"):
            dom, addr = self._ext_address(self.outage[0] if variant == "outage" else None)
            knobs = {
                "remote_reject": {"remote": variant or rng.choice(("reject550", "reject554"))},
                "greylist": {"remote": "greylist"},
            }.get(kind, {})
            rcpts.append(self._rc(addr, **knobs))
            if kind != "oof":
                for _ in range(rng.choices((0, 1, 2), (60, 30, 10))[0]):
                    other = self._ext_address(dom if rng.random() < 0.7 else None)[1]
                    if other not in {x.address for x in rcpts}:
                        rcpts.append(self._rc(other))
                if rng.random() < 0.3:
                    rcpts.append(self._rc(self._users(1, exclude)[0].address))
        else:
            n = rng.choices((1, 2, 3, 4), (70, 18, 8, 4))[0]
            rcpts += [self._rc(u.address) for u in self._users(n, exclude)]
            if kind == "internal" and rng.random() < 0.08:
                rcpts.append(self._rc(self._ext_address()[1]))
            if kind == "client_submit" and rng.random() < 0.5:
                rcpts = [self._rc(self._ext_address()[1])]
            if kind == "internal_busy":
                rcpts[0].busy = rng.randint(1, 2)
            if kind == "resubmit":
                rcpts[0].resubmit = True
        if inbound:
            dom, sender = self._ext_address()
            m = self._msg(
                sender, rcpts, t, dom=dom, subj=spam_subject(rng) if kind == "drop" else ""
            )
            m.fate = "drop" if kind == "drop" else "poison" if kind == "poison" else ""
            m.ndr_fails = kind == "ndr_fails"
            self.eng.from_internet(m, t, dom)
            return m
        user = self._users(1, set())[0]
        m = self._msg(user.address, rcpts, t, user=user)
        m.fate = "poison" if kind == "poison" else ""
        if kind == "down":
            m.down = frozenset({rcpts[0].address.split("@")[1]})
            if variant == "outage" and self.outage:
                m.down_until = self.outage[1]
        elif kind == "slow":
            m.conn_defers = rng.randint(1, 3)
        if kind == "oof":
            m.oof = True
            m.subject = "Automatic reply: " + m.subject
            self.eng.from_mailbox(m, t, "System")
        elif kind == "client_submit":
            self.eng.from_client(m, t)
        else:
            self.eng.from_mailbox(m, t, rng.choice(("MOMT", "OWA", "AirSync", "MOMT", "MOMT")))
        return m
