"""Bounces (NDRs, DSNs): each failed recipient's status, diagnostic text and meaning, and the
original message's headers.

Sources, best first: the ``message/delivery-status`` part (RFC 3464 fields); else the NDR's
text ("Diagnostic information for administrators" of Exchange 2007 and later, Postfix's
``<address>: ... said: 550 ...``, or the ``RECIPIENT on DATE`` entries of Exchange 5.5, 2000
and 2003, each followed by indented lines: ``<host #5.1.1>`` or ``<host #5.x.x smtp;550 ...>``
(FORMATS.md F.1), or an ``MSEXCH:IMS:... (000C05A6) Unknown Recipient`` diagnostic, which
names no status code). The original headers come from a ``message/rfc822`` or
``text/rfc822-headers`` part, else from the text after "Original message headers:".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from email.message import Message

import eventcodes
from loganalyzer.headers.parse import body_text, html_text, parse_headers, reparse, unfold

_SUBJECT = re.compile(
    r"^\s*(undeliverable|undelivered|delivery status notification|returned mail|"
    r"mail delivery failed|non[- ]?delivery|delivery failure|failure notice)",
    re.IGNORECASE,
)
_ENHANCED = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.]*\d)")
_ADDRESS = re.compile(r"^<?([^\s<>@]+@[^\s<>:;]+?)>?(?:\s|$|:)")
_EXCHANGE_STATUS = re.compile(
    r"^#?\s*(\d{3}[ -][245]\.\d{1,3}\.\d{1,3}.*?)\s*(?:##.*)?$|Remote Server\s+returned\s+'(.*)'",
    re.IGNORECASE,
)

# Exchange 5.5/2000/2003: "jdoe@example.com on 3/14/2004 10:05 AM" (or 'name' on Thu, 29 Apr ...)
_ON_DATE = re.compile(
    r"^(?P<indent>\s*)(?P<rcpt>\S.*?)\s+on\s+(?:[A-Z][a-z]{2},?\s*)?\d{1,4}[\s/.-](?:\d|[A-Z][a-z]{2})"
)
_LEGACY_CODE = re.compile(
    r"^<(?P<host>[^\s<>#]+)\s+#(?P<status>[245]\.\d{1,3}\.\d{1,3})"
    r"(?:\s+(?:smtp|x400);\s*(?P<reply>.*?))?>\s*$",
    re.IGNORECASE,
)
_IMS = re.compile(r"\bMSEXCH:\S.*$")
_ANY_ADDRESS = re.compile(r"[^\s<>'\"@]+@[^\s<>'\":;]+")


@dataclass
class BounceRecipient:
    """One recipient the bounce reports on."""

    recipient: str
    status: str | None  # the enhanced status code, 5.1.1
    diagnostic: str | None  # the remote server's text
    action: str | None = None  # failed, delayed ... (DSN)
    remote_mta: str | None = None
    source: str = "delivery-status"  # or ndr-text
    codes: list[eventcodes.Code] = field(default_factory=list)
    #: The code is another server's reply the reporting one quotes ("Remote Server returned",
    #: a DSN's Remote-MTA): that server may be any kind, not Exchange.
    remote_reply: bool = False

    @property
    def meaning(self) -> str:
        return self.codes[0].meaning if self.codes else ""

    def to_dict(self) -> dict:
        return {
            "recipient": self.recipient,
            "status": self.status,
            "diagnostic": self.diagnostic,
            "meaning": self.meaning,
            "action": self.action,
            "remote_mta": self.remote_mta,
            "source": self.source,
            "codes": [
                {"family": c.family, "code": c.code, "name": c.name, "meaning": c.meaning}
                for c in self.codes
            ],
        }


@dataclass
class Bounce:
    """What a bounce says: its recipients, who reported, and the original's headers."""

    recipients: list[BounceRecipient]
    reporting_mta: str | None
    original: Message | None


def is_bounce(msg: Message) -> bool:
    """The message is a delivery report or looks like an NDR."""
    if msg.get_content_type() == "multipart/report" or "x-ms-exchange-message-is-ndr" in msg:
        return True
    if any(p.get_content_type() == "message/delivery-status" for p in _parts(msg)):
        return True
    return bool(_SUBJECT.match(unfold(msg.get("Subject"))))


def _explain(status: str | None, diagnostic: str | None) -> list[eventcodes.Code]:
    found = eventcodes.explain_status(diagnostic or "")
    if status and not any(c.code == status for c in found):
        found = eventcodes.explain_status(status) + found
    return found


def _strip_type(value: str | None) -> str | None:
    """``smtp;550 ...`` -> ``550 ...``, ``rfc822; a@b`` -> ``a@b``, ``dns;mx`` -> ``mx``."""
    if value is None:
        return None
    text = unfold(value)
    return re.sub(r"^[\w-]+\s*;\s*", "", text) or None


def _dsn_blocks(part: Message) -> list[Message]:
    payload = part.get_payload()
    if isinstance(payload, list):
        return [b for b in payload if isinstance(b, Message)]
    text = payload if isinstance(payload, str) else ""
    return [parse_headers(b) for b in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if b.strip()]


def _from_dsn(msg: Message) -> tuple[list[BounceRecipient], str | None]:
    out: list[BounceRecipient] = []
    reporting = None
    for part in _parts(msg):
        if part.get_content_type() != "message/delivery-status":
            continue
        for block in _dsn_blocks(part):
            reporting = reporting or _strip_type(block.get("Reporting-MTA"))
            rcpt = _strip_type(block.get("Final-Recipient") or block.get("Original-Recipient"))
            if not rcpt:
                continue
            status = unfold(block.get("Status")) or None
            diag = _strip_type(block.get("Diagnostic-Code"))
            if status is None and diag:
                m = _ENHANCED.search(diag)
                status = m[1] if m else None
            out.append(
                BounceRecipient(
                    rcpt.strip("<>"),
                    status,
                    diag,
                    action=unfold(block.get("Action")) or None,
                    remote_mta=_strip_type(block.get("Remote-MTA")),
                    codes=_explain(status, diag),
                    remote_reply=bool(block.get("Remote-MTA")),
                )
            )
    return out, reporting


def _parts(msg: Message) -> list[Message]:
    """The message's own parts, not those inside an attached message or report."""
    out = [msg]
    if msg.is_multipart() and not msg.get_content_type().startswith("message/"):
        for sub in msg.get_payload():
            out += _parts(sub)
    return out


def _texts(msg: Message) -> list[str]:
    """The NDR's texts: its plain-text parts, then its HTML ones as the text they show (an
    NDR forwarded from Outlook often has only an HTML body)."""
    parts = _parts(msg)
    plain = [body_text(p) for p in parts if p.get_content_type() == "text/plain"]
    return plain + [html_text(body_text(p)) for p in parts if p.get_content_type() == "text/html"]


def _from_text(text: str) -> tuple[list[BounceRecipient], str | None]:
    """Recipients from an NDR's words (Exchange's diagnostic section, or Postfix's)."""
    reporting = None
    m = re.search(r"Generating server:\s*(\S+)", text)
    if m:
        reporting = m[1]
    diag_at = text.find("Diagnostic information for administrators")
    section = text[diag_at:] if diag_at >= 0 else text
    section = section.split("Original message headers:", 1)[0]
    out: list[BounceRecipient] = []
    for para in re.split(r"\n\s*\n", section):
        lines = [ln.strip() for ln in para.strip().split("\n") if ln.strip()]
        if not lines:
            continue
        addr = _ADDRESS.match(lines[0])
        if not addr:
            continue
        diag, remote = None, False
        for ln in lines[1:]:
            s = _EXCHANGE_STATUS.search(ln)
            if s:
                diag, remote = (s[1] or s[2]).strip(), s[2] is not None
                break
        if diag is None:  # Postfix: "<a@b>: host mx[1.2.3.4] said: 550 5.2.1 ... (in reply ...)"
            joined = " ".join(lines)
            said = re.search(r"said:\s*(.*?)(?:\s*\(in reply to .*\))?$", joined)
            diag = said[1] if said else None
        if diag is None:
            continue
        enhanced = _ENHANCED.search(diag)
        status = enhanced[1] if enhanced else None
        codes = _explain(status, diag)
        out.append(
            BounceRecipient(
                addr[1], status, diag, source="ndr-text", codes=codes, remote_reply=remote
            )
        )
    if not out:
        out, host = _from_legacy_text(section)
        reporting = reporting or host
    return out, reporting


def _from_legacy_text(text: str) -> tuple[list[BounceRecipient], str | None]:
    """Recipients of an Exchange 5.5/2000/2003 NDR: each ``RECIPIENT on DATE`` line with the
    more indented lines under it; an entry without a diagnostic line is not a recipient."""
    entries: list[tuple[str, list[str]]] = []
    indent: int | None = None
    for line in text.split("\n"):
        m = _ON_DATE.match(line)
        if m and not _LEGACY_CODE.match(line.strip()):
            entries.append((m["rcpt"], []))
            indent = len(m["indent"].expandtabs())
        elif indent is not None and line.strip():
            if len(line) - len(line.lstrip()) > indent or line.startswith(";"):
                entries[-1][1].append(line.strip())
            else:
                indent = None
    out: list[BounceRecipient] = []
    reporting = None
    for rcpt, details in entries:
        status = diag = None
        for detail in details:
            code, ims = _LEGACY_CODE.match(detail), _IMS.search(detail)
            if code:
                status, diag = code["status"], code["reply"] or detail
                reporting = reporting or code["host"]
                break
            if ims and diag is None:
                diag = ims[0]
        if diag is None:
            continue
        address = _ANY_ADDRESS.search(rcpt)
        name = address[0] if address else rcpt.strip().strip("'\"<>")
        out.append(
            BounceRecipient(name, status, diag, source="ndr-text", codes=_explain(status, diag))
        )
    return out, reporting


def _original(msg: Message, notes: list[str]) -> Message | None:
    for part in _parts(msg):
        kind = part.get_content_type()
        if kind == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload:
                return reparse(payload[0], notes)
        if kind == "text/rfc822-headers":
            return parse_headers(body_text(part), notes)
    for text in _texts(msg):
        at = text.find("Original message headers:")
        if at >= 0:
            block = text[at + len("Original message headers:") :].lstrip("\n")
            headers = parse_headers(block, notes)
            if headers.keys():
                return headers
    return None


def _by_exchange(msg: Message) -> bool:
    """Exchange wrote the bounce: its NDR header, the "Diagnostic information for
    administrators" of Exchange 2007 and later, or an Exchange 5.5-2003 NDR's diagnostic lines.
    Other X-MS-Exchange-* headers do not tell: Exchange Online stamps them on any bounce it
    delivers, a Postfix one too."""
    if "x-ms-exchange-message-is-ndr" in msg:
        return True
    for text in _texts(msg):
        if "Diagnostic information for administrators" in text or _IMS.search(text):
            return True
        if any(_LEGACY_CODE.match(line.strip()) for line in text.split("\n")):
            return True
    return False


def _standard_first(codes: list[eventcodes.Code]) -> list[eventcodes.Code]:
    """``codes`` with the standard (RFC 3463) meaning of each code before Exchange's own."""
    out: list[eventcodes.Code] = []
    for code in codes:
        standard = eventcodes.standard(code)
        out += [c for c in (standard, code) if c is not None and c not in out]
    return out


def read_bounce(msg: Message, notes: list[str]) -> Bounce | None:
    """The bounce in ``msg``, or None when it is not one. A bounce that Exchange did not write
    (Postfix, Gmail) explains its codes by their standard meaning first: 5.2.1 is "mailbox
    disabled" there, not Exchange 2016's "quarantined"; so does an Exchange bounce quoting
    another server's reply without an Exchange status tag in it."""
    if not is_bounce(msg):
        return None
    recipients, reporting = _from_dsn(msg)
    if not recipients:
        for text in _texts(msg):
            recipients, by_text = _from_text(text)
            reporting = reporting or by_text
            if recipients:
                break
    by_exchange = _by_exchange(msg)
    for r in recipients:
        # Exchange quoting another server's reply: that server's code, unless an Exchange
        # status tag in it says Exchange gave it
        theirs = r.remote_reply and not eventcodes.names_tag(r.diagnostic or "")
        if not by_exchange or theirs:
            r.codes = _standard_first(r.codes)
    return Bounce(recipients, reporting, _original(msg, notes))
