"""Exchange and Exchange Online Protection antispam headers, field by field, with meanings
from ``eventcodes`` (families antispam-forefront, scl, bcl, pcl, exchange-org-header).

FORMATS.md J.1: ``X-Forefront-Antispam-Report`` is ``FIELD:value;`` pairs; like MHA we drop a
literal ``(null)``, add a missing final ``;`` and collapse ``;;`` before splitting.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

import eventcodes

#: Headers made of ``FIELD:value;`` pairs, lower case.
PAIR_HEADERS = (
    "x-forefront-antispam-report",
    "x-forefront-antispam-report-untrusted",
    "x-microsoft-antispam",
    "x-microsoft-antispam-untrusted",
)
#: Single-value Exchange headers: lower-case name -> field shown.
VALUE_HEADERS = {
    "x-ms-exchange-organization-scl": "SCL",
    "x-ms-exchange-organization-pcl": "PCL",
    "x-ms-exchange-organization-authas": "AuthAs",
    "x-ms-exchange-organization-authsource": "AuthSource",
    "x-ms-exchange-organization-messagedirectionality": "MessageDirectionality",
    "x-customspam": "X-CustomSpam",
}
_LEVEL_FAMILIES = {"SCL": "scl", "BCL": "bcl", "PCL": "pcl"}
UNDOCUMENTED = (
    "Not documented by Microsoft: fields outside its table are used only by its anti-spam team."
)
#: The meaning of a field with no value: never that of one of its values (``SFTY:;``).
NO_VALUE = "No value: the field is present but empty."


@dataclass
class AntispamField:
    """One field of an antispam header, with what it means."""

    header: str
    field: str
    value: str
    meaning: str

    def to_dict(self) -> dict:
        return asdict(self)


def _lookup(code: str, family: str) -> str | None:
    try:
        return eventcodes.lookup(code, family).meaning
    except eventcodes.UnknownCode:
        return None


def meaning(field: str, value: str) -> str:
    """What ``field`` with ``value`` means; the field's own meaning when the value has none of
    its own; ``NO_VALUE`` when it is empty."""
    name = field.strip().upper()
    value = value.strip()
    if not value:
        return NO_VALUE
    if name in _LEVEL_FAMILIES:
        level = _lookup(f"{name}:{value}", _LEVEL_FAMILIES[name])
        return level or _lookup(name, "antispam-forefront") or ""
    specific = _lookup(f"{name}:{value}", "antispam-forefront")
    return specific or _lookup(name, "antispam-forefront") or UNDOCUMENTED


def split_pairs(value: str) -> list[tuple[str, str]]:
    """``CIP:1.2.3.4;CTRY:US;SFV:NSPM;`` -> [(CIP, 1.2.3.4), (CTRY, US), (SFV, NSPM)]."""
    text = " ".join(value.split()).replace("(null)", "")
    if not text.endswith(";"):
        text += ";"
    text = re.sub(r";(\s*;)+", ";", text)
    out = []
    for part in text.split(";"):
        part = part.strip()
        if not part:
            continue
        name, _, val = part.partition(":")
        out.append((name.strip(), val.strip()))
    return out


def _org_meaning(field: str, value: str) -> str:
    if field in ("SCL", "PCL") or not value:
        return meaning(field, value)
    return (
        _lookup(f"{field}:{value}", "exchange-org-header")
        or _lookup(field, "exchange-org-header")
        or ""
    )


def decode(items: list[tuple[str, str]]) -> list[AntispamField]:
    """Every antispam field of the message's header items, in header order."""
    out: list[AntispamField] = []
    for name, value in items:
        key = name.lower()
        if key in PAIR_HEADERS:
            out += [AntispamField(name, f, v, meaning(f, v)) for f, v in split_pairs(value)]
        elif key in VALUE_HEADERS:
            field, v = VALUE_HEADERS[key], " ".join(value.split())
            text = meaning(field, v) if key == "x-customspam" else _org_meaning(field, v)
            out.append(AntispamField(name, field, v, text))
    return out
