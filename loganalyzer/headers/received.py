"""``Received:`` headers read leniently (RFC 5322 tokens, then RFC 5321 clauses), Exchange's
dialect included; the hop chain oldest first, with delays and clock skew.

FORMATS.md K: the date is the text after the last ``;`` (else a weekday or ISO date, as
SendGrid writes); clause values run from a keyword (from, by, via, with, id, for) to the next,
so ``with Microsoft SMTP Server (version=TLS1_2, cipher=...)`` stays one value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from loganalyzer.times import iso

KEYWORDS = ("from", "by", "via", "with", "id", "for")
_MONTHS = {m: i for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split(), 1)}
# RFC 5322 zones, obsolete names included; "-0000" and unknown names count as UTC (flagged).
_ZONES = {"UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5}
_ZONES |= {"MST": -7, "MDT": -6, "PST": -8, "PDT": -7}
_RFC_DATE = re.compile(
    r"(?:\b[A-Za-z]{3},?\s*)?\b(\d{1,2})\s+([A-Za-z]{3})[a-z]*\.?\s+(\d{2,4})\s+"
    r"(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(?:([+-]\d{4})|\(?([A-Za-z]{1,5})\b)?"
)
_ISO_DATE = re.compile(
    r"\b(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2}):(\d{2})(?:[.,](\d+))?\s*"
    r"(Z\b|[+-]\d{2}:?\d{2}|UTC\b|GMT\b)?"
)
_DATE_START = re.compile(r"\b(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun),|\b\d{4}-\d{1,2}-\d{1,2}[T ]\d")
_TLS_PROTOCOL = re.compile(r"^(?:utf8)?(?:e?smtp|lmtp)sa?$|tls|^https$", re.IGNORECASE)
_VERSION = re.compile(r"\bversion=([A-Za-z0-9_.]+)", re.IGNORECASE)
_CIPHER = re.compile(r"\bcipher=([A-Za-z0-9_-]+)", re.IGNORECASE)
_POSTFIX_TLS = re.compile(r"\busing (TLSv?[\d.]+) with cipher ([A-Za-z0-9_-]+)", re.IGNORECASE)
#: Exim: ``with esmtps (TLS1.3) tls TLS_AES_256_GCM_SHA384``.
_EXIM_TLS = re.compile(r"\((TLS ?v?1\.\d)\)\s+tls\s+([A-Za-z0-9_-]+)", re.IGNORECASE)
_TLS_WORD = re.compile(r"\(TLS\)|over TLS secured channel|\bSTARTTLS\b", re.IGNORECASE)
_BRACKETED = re.compile(r"\[([^\]]+)\]")
#: Exim ``(helo=x)``, qmail ``(HELO x)``: the client's greeting, labelled in a comment.
_HELO_LABEL = re.compile(r"\b[EH]ELO(?:=|\s+)([^\s()\[\]]+(?:\[[^\]]*\])?)", re.IGNORECASE)
#: RFC 5321 TCP-info ``(Domain address-literal)``: the reverse name before the literal.
_TCP_INFO_NAME = re.compile(r"^\(\s*([^\s()\[\]=]+)\s+\[")


@dataclass
class Hop:
    """One ``Received:`` header: who handed the message to whom, how and when."""

    from_name: str | None  # the first word of the from clause, as written
    from_ip: str | None
    by: str | None
    by_ip: str | None
    protocol: str | None
    tls: dict | None  # {"version", "cipher"}; None when nothing says TLS was used
    id: str | None
    via: str | None
    for_: str | None
    date_time: datetime | None  # UTC
    date_text: str | None
    tz_assumed: bool = False
    delay_s: float | None = None  # since the previous dated hop
    since_first_s: float | None = None
    clock_skew: bool = False  # stamped earlier than the hop before it, beyond rounding
    raw: str = ""
    from_helo: str | None = None  # the name the client greeted with (HELO/EHLO)
    from_rdns: str | None = None  # the receiver's reverse lookup of from_ip ("unknown": none)

    def sender(self) -> tuple[str | None, str | None, str | None]:
        """(name, IP, HELO) of the sending host, each shown once: the reverse name (else the
        HELO name), the IP, and the HELO name only when it says something the others do not."""
        ip = _same(self.from_ip)
        name = self.from_rdns
        # the from word itself (``from host (IP)``, RFC 5321's greeting) reads as the host's
        # name; a greeting only labelled (Exim's ``helo=x``) is shown as one
        greeted = self.from_helo == self.from_name
        if name is None and greeted and self.from_helo and _same(self.from_helo) != ip:
            name = None if _ip(self.from_helo) else self.from_helo
        helo = self.from_helo
        if helo and _same(helo) in {ip, _same(name)}:
            helo = None
        return name, self.from_ip, helo

    @property
    def sender_text(self) -> str:
        """The sending host in one line: ``name [IP] (HELO x)``; empty when nothing says."""
        name, ip, helo = self.sender()
        parts = [name, f"[{ip}]" if ip else None, f"(HELO {helo})" if helo else None]
        return " ".join(p for p in parts if p)

    @property
    def whole_seconds(self) -> bool:
        """The date has no fraction: the true time may be up to a second later."""
        return not re.search(r":\d\d[.,]\d", self.date_text or "")

    def to_dict(self) -> dict:
        return {
            "from_name": self.from_name,
            "from_ip": self.from_ip,
            "by": self.by,
            "protocol": self.protocol,
            "tls": self.tls,
            "id": self.id,
            "date_time": iso(self.date_time),
            "delay_s": self.delay_s,
            "clock_skew": self.clock_skew,
            "by_ip": self.by_ip,
            "via": self.via,
            "for": self.for_,
            "since_first_s": self.since_first_s,
            "date": self.date_text,
            "tz_assumed": self.tz_assumed,
            "raw": self.raw,
            "from_helo": self.from_helo,
            "from_rdns": self.from_rdns,
        }


def _same(name: str | None) -> str | None:
    """``name`` as compared: no brackets, IPv6: prefix or root dot, lower case."""
    if not name:
        return None
    bare = name.strip("[]").removeprefix("IPv6:").removeprefix("ipv6:").rstrip(".").lower()
    return bare or None


def parse_date(text: str | None) -> tuple[datetime | None, bool]:
    """(UTC datetime, zone assumed) of an RFC 5322 or ISO-style date; (None, False) if none."""
    if not text:
        return None, False
    m = _RFC_DATE.search(text)
    if m and m[2].lower() in _MONTHS:
        day, mon, year, hh, mm, ss, frac, offset, name = m.groups()
        y = int(year)
        y += 0 if len(year) == 4 else 1900 if y >= 50 else 2000
        try:
            local = datetime(y, _MONTHS[mon.lower()], int(day), int(hh), int(mm), int(ss or 0))
        except ValueError:
            return None, False
        delta, assumed = _offset(offset, name, text[m.end() :])
        if delta is None:
            return None, False
        return _finish(local, frac, delta), assumed
    m = _ISO_DATE.search(text)
    if m:
        y, mo, d, hh, mm, ss, frac, zone = m.groups()
        try:
            local = datetime(int(y), int(mo), int(d), int(hh), int(mm), int(ss))
        except ValueError:
            return None, False
        z = (zone or "").replace(":", "")
        if z[:1] in "+-" and z:
            delta, assumed = _offset(z, None, "")
            if delta is None:
                return None, False
        else:
            delta, assumed = timedelta(0), not z and not re.search(r"\bUTC\b", text[m.end() :])
        return _finish(local, frac, delta), assumed
    return None, False


def _offset(offset: str | None, name: str | None, rest: str) -> tuple[timedelta | None, bool]:
    """The zone's offset from UTC and whether it was assumed; None for an offset no zone has
    (``+9900``: zones lie within -12:00 and +14:00)."""
    if offset:
        sign = -1 if offset[0] == "-" else 1
        hours, minutes = int(offset[1:3]), int(offset[3:5])
        if hours > 14 or minutes > 59:
            return None, False
        return sign * timedelta(hours=hours, minutes=minutes), False
    zone = (name or "").upper()
    if zone in _ZONES:
        return timedelta(hours=_ZONES[zone]), False
    return timedelta(0), not re.search(r"\b(UTC|GMT|UT)\b", rest)


def _finish(local: datetime, frac: str | None, delta: timedelta) -> datetime:
    micro = int((frac or "0")[:6].ljust(6, "0"))
    return (local - delta).replace(tzinfo=UTC, microsecond=micro)


def _tokens(text: str) -> list[str]:
    """Words, (comments) with nesting, [literals] and <paths>, each one token."""
    out: list[str] = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if ch.isspace():
            i += 1
            continue
        j = i
        if ch in "([<":
            close = {"(": ")", "[": "]", "<": ">"}[ch]
            depth = 0
            while j < n:
                if text[j] == ch and ch == "(":
                    depth += 1
                elif text[j] == close:
                    depth -= 1 if ch == "(" else 0
                    if ch != "(" or depth == 0:
                        j += 1
                        break
                j += 1
        else:
            depth = 0
            while j < n and (depth or not text[j].isspace()):
                depth += text[j] == "("
                depth -= text[j] == ")" and depth > 0
                j += 1
        out.append(text[i:j])
        i = j
    return out


def _ip(text: str) -> str | None:
    """The first IP address in ``text`` (as written, zone id kept), literals first."""
    candidates = [m.removeprefix("IPv6:").removeprefix("ipv6:") for m in _BRACKETED.findall(text)]
    candidates += re.split(r"[\s()\[\],]+", text)
    for c in candidates:
        c = c.strip()
        try:
            ipaddress.ip_address(c.split("%", 1)[0])
        except ValueError:
            continue
        return c
    return None


def split_date(value: str) -> tuple[str, str | None]:
    """(clauses, date text) of an unfolded Received value."""
    idx = value.rfind(";")
    if idx >= 0 and parse_date(value[idx + 1 :])[0] is not None:
        return value[:idx], value[idx + 1 :].strip()
    starts = list(_DATE_START.finditer(value))
    m = starts[-1] if starts else None  # the last: no clause follows the date
    if m is not None and parse_date(value[m.start() :])[0] is not None:
        return value[: m.start()], value[m.start() :].strip()
    if idx >= 0:
        return value[:idx], value[idx + 1 :].strip() or None
    return value, None


def parse_received(value: str) -> Hop:
    """One unfolded ``Received:`` value as a hop (UTC time, no delay yet)."""
    raw = " ".join(value.split())
    clauses, date_text = split_date(raw)
    parts: dict[str, list[str]] = {}
    current: list[str] | None = None
    for tok in _tokens(clauses):
        key = tok.lower()
        if key in KEYWORDS and key not in parts:
            current = parts[key] = []
        elif current is not None:
            current.append(tok)
    words = {k: [t for t in v if not t.startswith("(")] for k, v in parts.items()}

    def first(key: str) -> str | None:
        w = words.get(key) or []
        if not w:
            return None
        return w[0].strip("<>") if key in ("for", "id") else w[0]

    def joined(key: str) -> str | None:
        w = words.get(key) or []
        return " ".join(w) or None

    def ip_of(key: str) -> str | None:
        toks = parts.get(key) or []
        comments = " ".join(t for t in toks if t.startswith("("))
        return _ip(comments) or (_ip(toks[0]) if toks and toks[0].startswith("[") else None)

    helo, rdns = _greeting(first("from"), parts.get("from") or [])
    when, assumed = parse_date(date_text)
    protocol = joined("with")
    if protocol and _EXIM_TLS.search(clauses):  # Exim's "tls CIPHER" is no protocol word
        protocol = re.sub(r"\s+tls\s+\S+$", "", protocol, flags=re.IGNORECASE)
    return Hop(
        from_name=first("from"),
        from_ip=ip_of("from"),
        by=first("by"),
        by_ip=ip_of("by"),
        protocol=protocol,
        tls=_tls(clauses, protocol),
        id=first("id"),
        via=joined("via"),
        for_=first("for"),
        date_time=when,
        date_text=date_text,
        tz_assumed=assumed,
        raw=raw,
        from_helo=helo,
        from_rdns=rdns,
    )


def _greeting(word: str | None, toks: list[str]) -> tuple[str | None, str | None]:
    """(HELO name, reverse name) of a from clause. RFC 5321 writes ``from HELO (rdns [IP])``;
    Exim and qmail write ``from rdns ([IP] helo=HELO)`` / ``from rdns (HELO x) (IP)``."""
    comments = [t for t in toks if t.startswith("(")]
    for c in comments:
        m = _HELO_LABEL.search(c)
        if m:
            rdns = None if word is None or _ip(word) else word.rstrip(".")
            return m[1], rdns
    for c in comments:
        m = _TCP_INFO_NAME.match(c)
        if m and not _ip(m[1]):
            return word, m[1].rstrip(".")
    return word, None


def _tls(text: str, protocol: str | None) -> dict | None:
    m = _POSTFIX_TLS.search(text) or _EXIM_TLS.search(text)
    if m:
        return {"version": m[1], "cipher": m[2]}
    version, cipher = _VERSION.search(text), _CIPHER.search(text)
    if version or cipher:
        return {"version": version[1] if version else None, "cipher": cipher[1] if cipher else None}
    if _TLS_WORD.search(text) or (protocol and _TLS_PROTOCOL.search(protocol)):
        return {"version": None, "cipher": None}
    return None


def chain(values: list[str]) -> list[Hop]:
    """Hops of the ``Received:`` values in header order (newest first), returned oldest first
    with the delay since the previous dated hop and since the first one.

    A negative delay is kept as it is and flagged as clock skew, unless it is less than a
    second between a whole-second stamp and a fractional one (truncation, not skew).
    """
    hops = [parse_received(v) for v in reversed(values)]
    first = previous = None
    for h in hops:
        if h.date_time is None:
            continue
        if first is None:
            first = h.date_time
        else:
            h.delay_s = round((h.date_time - previous.date_time).total_seconds(), 3)
            # a whole-second stamp after a fractional one can be up to 1 s "early": rounding
            rounding = h.whole_seconds != previous.whole_seconds and h.delay_s > -1
            h.clock_skew = h.delay_s < 0 and not rounding
        h.since_first_s = round((h.date_time - first).total_seconds(), 3)
        previous = h
    return hops
