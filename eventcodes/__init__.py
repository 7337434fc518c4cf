"""Meanings of Exchange and SMTP codes: tracking event IDs, sources, status and reply codes.

The tables are CSV files in ``eventcodes/data/``, one per family, loaded once.

Enhanced status codes (RFC 3463) are ``class.subject.detail``: the subject and detail say what
the status is about, the class whether it is a success (2), a temporary (4) or a permanent (5)
failure. The registry's rows are class-less (``X.6.0``); their ``outcome`` says what kind of
detail they are: ``failed`` for a detail that reports a problem (most), ``delivered`` for one
that reports a success (X.1.5, X.3.6, X.6.4), ``info`` for a neutral one (X.s.0, X.1.9). A
concrete code takes its outcome and the first sentence of its meaning from its class.

Exchange gives some codes its own meaning (5.2.1: quarantined, where RFC 3463 says mailbox
disabled); ``explain`` shows the registry's meaning after Exchange's, as other servers mean it.

Exchange writes a status tag after the code (``550 4.3.2 QUEUE.Admin; message deleted by
administrative action``). A tag with a row of its own (``exchange-tag``) decides its own
outcome; its meaning starts with the reply it comes with, whose enhanced code is its code.
"""

from __future__ import annotations

import csv
import re
from dataclasses import asdict, dataclass, replace
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd


__all__ = [
    "ENHANCED_RE2",
    "FAMILIES",
    "OUTCOMES",
    "REPLY_RE2",
    "Code",
    "Explanation",
    "UnknownCode",
    "entries",
    "explain",
    "explain_reply",
    "explain_status",
    "lookup",
    "reply_class",
    "standard",
    "table",
]

#: Families in the order ``lookup`` tries them when no family is given.
FAMILIES: tuple[str, ...] = (
    "exchange-event",
    "exchange2003",
    "exchange-ims",
    "exchange-source",
    "enhanced-exchange",
    "enhanced-iana",
    "exchange-tag",
    "smtp-reply",
    "transport-eventlog",
    "exo-status",
    "antispam-forefront",
    "scl",
    "bcl",
    "pcl",
    "compauth-reason",
    "auth-result",
    "exchange-org-header",
    "agent",
)

#: The fixed outcome vocabulary shared by every layer (DESIGN.md, Vocabularies).
OUTCOMES: tuple[str, ...] = (
    "received",
    "submitted",
    "routed",
    "transferred",
    "delivered",
    "expanded",
    "redirected",
    "deferred",
    "failed",
    "dropped",
    "quarantined",
    "moderated",
    "notification",
    "shadow",
    "pending",
    "info",
)

COLUMNS = (
    "family",
    "code",
    "name",
    "meaning",
    "outcome",
    "is_failure",
    "versions",
    "source",
    "confidence",
)

_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
_RANGE = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})-(\d{1,3})$")
# An enhanced code inside free text: not part of a longer dotted number (IPs, versions).
_ENHANCED_IN_TEXT = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
# A basic reply code: three digits standing alone, followed by a space, a dash or the end.
# IIS logs write a reply's spaces as "+" ("550+5.7.1+Unable+to+relay").
_REPLY_IN_TEXT = re.compile(r"(?<![\w.:/])([2-5]\d\d)(?=[ \-+]|$)")
# An Internet Mail Service diagnostic of an Exchange 5.5-2003 NDR: "MSEXCH:IMS:... (000C05A6)".
_IMS_IN_TEXT = re.compile(r"\bMSEXCH:[^()\n]*\(([0-9A-Fa-f]{8})\)")
#: An Exchange status tag (``RESOLVER.ADR.RecipNotFound``, ``QUEUE.Expired``): a component
#: in capitals, then dotted names.
_TAG_IN_TEXT = re.compile(r"\b([A-Z][A-Z0-9]{2,}(?:\.[A-Za-z][A-Za-z0-9]*)+)\b")
_ANY_TAG_IN_TEXT = re.compile(_TAG_IN_TEXT.pattern, re.IGNORECASE)  # as pasted, in any case
# The same two patterns for Arrow's RE2 engine (no look-around), used on whole columns.
ENHANCED_RE2 = r"(?:^|[^0-9.])(?P<code>[245]\.[0-9]{1,3}\.[0-9]{1,3})(?:$|[^0-9.]|\.[^0-9])"
REPLY_RE2 = r"^(?:\[?\{?LED=)?(?P<code>[2-5][0-9][0-9])(?:[ -]|$)"
# The class of an enhanced code decides a concrete code's outcome, failure flag and sense.
_CLASSES = {
    "2": ("delivered", False, "success", "Success: the action was completed."),
    "4": (
        "deferred",
        True,
        "temporary failure",
        "Temporary failure: the action may succeed if tried again later.",
    ),
    "5": (
        "failed",
        True,
        "permanent failure",
        "Permanent failure: the action will not succeed if tried again.",
    ),
}
# RFC 3463 subjects, for the name of a code whose detail does not fit its class.
_SUBJECTS = {
    "0": "other",
    "1": "addressing",
    "2": "mailbox",
    "3": "mail system",
    "4": "network and routing",
    "5": "mail delivery protocol",
    "6": "message content or media",
    "7": "security or policy",
}


class UnknownCode(LookupError):
    """A code that no table knows."""

    def __init__(self, code: object, family: str | None = None) -> None:
        where = f" in family {family!r}" if family else ""
        super().__init__(f"unknown code {str(code)!r}{where}")
        self.code = code
        self.family = family


@dataclass(frozen=True)
class Code:
    """One row of a code table."""

    family: str
    code: str
    name: str
    meaning: str
    outcome: str
    is_failure: bool
    versions: str
    source: str
    confidence: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@cache
def _rows(family: str) -> tuple[Code, ...]:
    path = resources.files(__package__) / "data" / f"{family}.csv"
    with path.open(encoding="utf-8", newline="") as fh:
        return tuple(
            Code(**{**r, "is_failure": r["is_failure"].strip().lower() == "true"})
            for r in csv.DictReader(fh)
        )


@cache
def _index(family: str) -> dict[str, Code]:
    out = {c.code.upper(): c for c in _rows(family)}
    for c in _rows(family):
        # a name that spells the code with spaces finds it too: the admin center shows
        # FilteredAsSpam as "Filtered as spam" (FORMATS.md I.5)
        name = c.name.upper()
        if name.replace(" ", "") == c.code.upper().replace(" ", ""):
            out.setdefault(name, c)
    return out


@cache
def _ranges(family: str) -> tuple[tuple[str, str, int, int, Code], ...]:
    out = []
    for c in _rows(family):
        m = _RANGE.match(c.code)
        if m:
            out.append((m[1], m[2], int(m[3]), int(m[4]), c))
    return tuple(out)


def _check_family(family: str) -> None:
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; known: {', '.join(FAMILIES)}")


def _normalise(code: object) -> str:
    return str(code).strip().lstrip("#").strip().upper()


def _in_class(row: Code, concrete: str) -> Code:
    """``concrete`` (``2.6.0``) read through a registry row without its class (``X.6.0``)."""
    cls, subject, detail = concrete.split(".")
    outcome, failure, word, sense = _CLASSES[cls]
    entry = replace(row, code=concrete, outcome=outcome, is_failure=failure)
    if row.outcome == "info":  # neutral: the class gives the sense, the row what it is about
        return replace(entry, name=f"{row.name} ({word})", meaning=f"{sense} {row.meaning}")
    if (row.outcome == "delivered") == (cls == "2"):
        return replace(entry, meaning=f"{sense} {row.meaning}")
    # a detail defined for the other sense (2.1.1, 5.6.4): only the class can be trusted
    return replace(
        entry,
        name=f"{word.capitalize()}, {_SUBJECTS[subject]} status",
        meaning=f"{sense} The detail .{subject}.{detail} does not go with this class, so only"
        " the class is certain.",
    )


def _find(key: str, family: str) -> Code | None:
    hit = _index(family).get(key)
    m = _ENHANCED.match(key)
    if not family.startswith("enhanced-") or not m:
        return hit
    if hit is not None:
        return hit
    cls, subject, detail = m[1], m[2], int(m[3])
    for rc, rs, lo, hi, entry in _ranges(family):
        if rc == cls and rs == subject and lo <= detail <= hi:
            return replace(entry, code=key)  # a range of one class: its row's meaning
    generic = _index(family).get(f"X.{subject}.{m[3]}")
    return _in_class(generic, key) if generic else None


def lookup(code: object, family: str | None = None) -> Code:
    """Return the entry for ``code`` (``1020``, ``"deliver"``, ``"#5.1.1"``, ``"550"``...).

    Without ``family`` the families are tried in the order of ``FAMILIES``.
    Raises ``UnknownCode`` when no table knows the code, ``ValueError`` for an unknown family.
    """
    key = _normalise(code)
    if family is not None:
        _check_family(family)
    for fam in (family,) if family else FAMILIES:
        hit = _find(key, fam)
        if hit is not None:
            return hit
    raise UnknownCode(code, family)


def _generic(code: str) -> Code | None:
    """Subject-level entry (X.y.0) for an enhanced code whose detail no table lists."""
    cls, subject, _ = code.split(".")
    base = _index("enhanced-iana").get(f"X.{subject}.0")
    if base is None:
        return None
    entry = _in_class(base, code)
    return replace(entry, name=f"{entry.name} (unlisted detail code)", confidence="unverified")


@cache
def _tags() -> dict[str, list[Code]]:
    """Exchange's status tags (``RESOLVER.ADR.RecipNotFound``) -> the enhanced codes they come
    with: the code a tag's own row starts with, then every code whose Exchange meaning names
    the tag (a component's tag, ``STOREDRV.Deliver``, follows several codes)."""
    out: dict[str, list[Code]] = {}

    def add(tag: str, row: Code) -> None:
        if row not in out.setdefault(tag.upper(), []):
            out[tag.upper()].append(row)

    for tag_row in _rows("exchange-tag"):
        code = _ENHANCED_IN_TEXT.search(tag_row.meaning)
        row = _find(code.group(1), "enhanced-exchange") if code else None
        if row is not None:
            add(tag_row.code, row)
    for row in _rows("enhanced-exchange"):
        for tag in _TAG_IN_TEXT.findall(row.meaning):
            add(tag, row)
    return out


#: Basic reply codes of AUTH alone (RFC 4954): mechanism too weak, credentials invalid,
#: encryption required for the mechanism.
AUTH_REPLIES = frozenset({"534", "535", "538"})


def explain_status(text: str, family: str | None = None) -> list[Code]:
    """Every enhanced and basic reply code found in a status string, specific before generic.

    Enhanced codes (``5.1.1``) come first, then an Internet Mail Service diagnostic of an old
    Exchange NDR (``MSEXCH:IMS:... (000C05A6)``), then basic reply codes (``550``); each code
    once; but a reply code of AUTH alone (``AUTH_REPLIES``: 535) comes first. Enhanced codes
    that no table lists fall back to their subject's generic entry. An Exchange status tag
    gives its own row after the enhanced code (``exchange-tag``); a tag alone
    (``RESOLVER.ADR.RecipNotFound``, pasted from an NDR) also gives the enhanced codes it comes
    with. With ``family``, only that family's entries (an enhanced code looked up there, not in
    the first family that knows it).
    """
    if not text:
        return []
    found: list[Code] = []
    seen: set[tuple[str, str]] = set()

    def add(entry: Code | None) -> None:
        if entry is not None and (entry.family, entry.code) not in seen:
            seen.add((entry.family, entry.code))
            found.append(entry)

    enhanced = _ENHANCED_IN_TEXT.findall(text)
    for code in enhanced:
        try:
            add(lookup(code, family if family and family.startswith("enhanced") else None))
        except UnknownCode:
            add(_generic(code))
    # an enhanced code's subject and detail (5.1.3 and 4.1.3 alike)
    details = {c.split(".", 1)[1] for c in enhanced}
    for tag in _ANY_TAG_IN_TEXT.findall(text):
        own = _index("exchange-tag").get(tag.upper())
        # the tag's own row, unless it is of another code than the reply's (its row says
        # what the tag means with its code: STOREDRV.Submit's 5.1.3 is no reading of a
        # "432 4.3.2 STOREDRV.Submit" submit deferral)
        code = _ENHANCED_IN_TEXT.search(own.meaning) if own is not None else None
        if not (details and code and code.group(1).split(".", 1)[1] not in details):
            add(own)
        # a tag alone: the codes it comes with (beside its own code, the tag names another
        # code's row: 4.3.2's mentions STOREDRV.Deliver, which follows 5.3.2 too)
        for entry in [] if enhanced else _tags().get(tag.upper(), []):
            add(entry)
    for code in _IMS_IN_TEXT.findall(text):
        add(_index("exchange-ims").get(code.upper()))
    for code in _REPLY_IN_TEXT.findall(text):
        add(_index("smtp-reply").get(code))
    # a reply code that only AUTH gives (RFC 4954) says more than an enhanced code that other
    # causes share (535 5.7.3: wrong credentials, not Exchange's X-EXPS meaning of 5.7.3)
    found.sort(key=lambda c: not (c.family == "smtp-reply" and c.code in AUTH_REPLIES))
    return [c for c in found if family in (None, c.family)]


def reply_class(text: str) -> tuple[str, str] | None:
    """A whole reply's basic code and what its class makes of the reply (``550 4.4.7 ...``:
    ``("550", "permanent failure")``, whatever the enhanced code's own entry says), or None
    when the text has no basic code."""
    m = _REPLY_IN_TEXT.search(text or "")
    if m is None:
        return None
    code = m.group(1)
    word = "intermediate reply" if code[0] == "3" else _CLASSES[code[0]][2]
    return code, word


def names_tag(text: str) -> bool:
    """Whether ``text`` (a reply) names an Exchange status tag this package knows
    (``RESOLVER.ADR.RecipNotFound``): Exchange gave that reply."""
    return any(t.upper() in _tags() for t in _ANY_TAG_IN_TEXT.findall(text))


def standard(entry: Code) -> Code | None:
    """The registry's (RFC 3463) entry for ``entry``, a concrete code with Exchange's meaning:
    what servers other than Exchange mean by it. None for any other entry, or when the
    registry does not list the code's detail."""
    if entry.family != "enhanced-exchange" or not _ENHANCED.match(entry.code):
        return None
    return _find(entry.code, "enhanced-iana")


def explain(text: object, family: str | None = None) -> list[Code]:
    """What one code (``5.1.1``, ``DELIVER``) or one whole reply text means.

    A code a table knows gives its entry; any other text gives every code ``explain_status``
    finds in it (``250 2.6.0 <id> Queued mail for delivery``: the enhanced code, then the reply
    code), only those of ``family`` when one is given. Without ``family``, an Exchange status
    tag also gives the codes it comes with, and an enhanced code Exchange gives its own meaning
    is followed by the registry's (RFC 3463) entry, the meaning other servers give it.
    Raises ``UnknownCode`` when neither finds a code, ``ValueError`` for an unknown family.
    """
    try:
        found = [lookup(text, family)]
    except UnknownCode:
        found = explain_status(str(text), family)
        if not found:
            raise
    if family is not None:
        return found
    if found[0].family == "exchange-tag":
        found = explain_status(str(text))
    out: list[Code] = []
    for entry in found:
        std = standard(entry)
        out += [entry] if std is None or std in found else [entry, std]
    return out


@dataclass(frozen=True)
class Explanation:
    """One asked code or whole reply, its entries, and what the reply is as a whole when its
    codes disagree (``550 4.4.7 QUEUE.Expired``: 4.4.7's entry is a delay, the reply code 550
    makes the reply a permanent failure, RFC 5321 4.2.1); ``reply_code`` and ``as_a_whole``
    are None otherwise. ``notes`` say how the entries go together: which meaning is Exchange's
    and which the standard's, which row decides the outcome."""

    asked: str
    entries: tuple[Code, ...]
    reply_code: str | None = None
    as_a_whole: str | None = None
    notes: tuple[str, ...] = ()

    def rows(self) -> list[dict[str, object]]:
        """The entries as dicts (what ``codes --json`` prints), each entry of a reply whose codes
        disagree with ``as_a_whole``: the reply, its reply code and what that makes it."""
        whole = {"reply": self.asked, "reply_code": self.reply_code, "outcome": self.as_a_whole}
        return [
            e.to_dict() | ({"as_a_whole": whole} if self.as_a_whole else {}) for e in self.entries
        ]


def _notes(found: list[Code]) -> tuple[str, ...]:
    """Which of ``found`` is Exchange's meaning and which the standard's; what a tag with an
    outcome of its own says (a whole reply is still what its reply code makes it)."""
    out = []
    for entry, after in zip(found, found[1:], strict=False):
        if after == standard(entry):
            out.append(
                f"{entry.code}: Exchange's meaning first (enhanced-exchange), then the standard"
                " RFC 3463 meaning (enhanced-iana), which other servers (Postfix, Gmail) use."
            )
    for tag in (e for e in found if e.family == "exchange-tag"):
        codes = [e.code for e in found if e.family.startswith("enhanced")]
        if codes and any(e.outcome != tag.outcome for e in found if e.code in codes):
            out.append(
                f"{tag.code}: the tag says what became of the message ({tag.outcome}); the"
                f" rows of {', '.join(dict.fromkeys(codes))} explain the code it comes with."
            )
    return tuple(out)


def explain_reply(text: object, family: str | None = None) -> Explanation:
    """``explain(text, family)`` with what a whole reply is as a whole when its codes disagree,
    and notes on how its entries go together.

    Raises ``UnknownCode`` when no code is found, ``ValueError`` for an unknown family.
    """
    found = explain(text, family)
    notes = _notes(found)
    whole = reply_class(str(text)) if len(found) > 1 else None
    if whole is None or len({e.outcome for e in found}) == 1:
        return Explanation(str(text), tuple(found), notes=notes)
    return Explanation(str(text), tuple(found), whole[0], whole[1], notes)


def entries(family: str | None = None) -> list[Code]:
    """Every stored entry of one family, or of all families in lookup order."""
    if family is not None:
        _check_family(family)
    return [c for fam in ((family,) if family else FAMILIES) for c in _rows(fam)]


def table(family: str | None = None) -> pd.DataFrame:
    """The code table of one family, or of all families, as a DataFrame."""
    import pandas as pd  # only here: the lookups do not need it

    return pd.DataFrame([c.to_dict() for c in entries(family)], columns=list(COLUMNS))
