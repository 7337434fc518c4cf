"""Hiding people in a report: addresses become keyed hashes, subjects disappear."""

from __future__ import annotations

import hashlib
import hmac
import re
from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:
    from loganalyzer.report.model import DailyReport

#: Columns holding one address, columns of free text that may quote addresses, and subjects.
ADDRESS_COLUMNS = frozenset({"sender", "recipient", "address"})
TEXT_COLUMNS = frozenset({"reply", "example", "reason", "last_error", "users"})
SUBJECT_COLUMNS = frozenset({"subject"})
#: The local part of an address quoted in text, with its "@" (the domain stays): a dot-atom
#: (RFC 5322 atext, an apostrophe too: o'brien@, but not first: 'bob@x' in quotes) or a quoted
#: string ("john doe"@), before a domain or a domain literal (@[192.0.2.5]).
_ADDRESS = re.compile(
    r"(?:\"(?:[^\"\\\r\n]|\\.)*\""
    r"|[A-Za-z0-9!#$%&*+/=?^_`{|}~-][A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*)"
    r"@(?=[A-Za-z0-9\[])"
)
HIDDEN = "(hidden)"


def pseudonym(address: str, key: bytes) -> str:
    """The address with its local part replaced by a keyed hash; the domain is kept."""
    local, at, domain = address.rpartition("@")
    if not at:
        local, domain = address, ""
    digest = hmac.new(key, local.lower().encode("utf-8"), hashlib.sha256).hexdigest()[:10]
    return f"{digest}@{domain.lower()}" if at else digest


def redact_text(value: str, key: bytes) -> str:
    """Free text with the local part of every address it quotes replaced by a keyed hash."""
    return _ADDRESS.sub(lambda m: pseudonym(m[0], key), value)


def _column(series: pd.Series, fn) -> pd.Series:
    return series.map(lambda v: fn(v) if isinstance(v, str) and v else v)


def redact(report: DailyReport, key: bytes) -> None:
    """Redact every table of ``report`` in place."""
    for name, df in report.metrics.items():
        for col in df.columns:
            if col in ADDRESS_COLUMNS:
                df[col] = _column(df[col], lambda v: pseudonym(v, key))
            elif col in TEXT_COLUMNS:
                df[col] = _column(df[col], lambda v: redact_text(v, key))
            elif col in SUBJECT_COLUMNS:
                df[col] = _column(df[col], lambda v: HIDDEN)
        report.metrics[name] = df
    report.redacted = True
