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
#: (RFC 5322 atext and, as RFC 6531 allows, any character beyond ASCII but a blank: müller@,
#: 山田@, प्रिया@ with its combining marks, decomposed accents; an apostrophe too: o'brien@, but
#: not first: 'bob@x' in quotes) or a quoted string ("john doe"@), before a domain (an
#: international one too) or a domain literal (@[192.0.2.5]).
_BEYOND_ASCII = r"[^\x00-\x7f\s]"
_ADDRESS = re.compile(
    r"(?:\"(?:[^\"\\\r\n]|\\.)*\""
    rf"|(?:[A-Za-z0-9!#$%&*+/=?^_`{{|}}~-]|{_BEYOND_ASCII})"
    rf"(?:[A-Za-z0-9!#$%&'*+/=?^_`{{|}}~.-]|{_BEYOND_ASCII})*)"
    rf"@(?=[A-Za-z0-9\[]|{_BEYOND_ASCII})"
)
#: A domain or domain literal kept beside a hashed local part; any other text after the last
#: "@" ("[bad literal]", markup) is hidden with it.
_DOMAIN = re.compile(r"[^\s<>()\[\]@,;:\"\\]+|\[[^\[\]\s\\]*\]")
#: The argument of MAIL FROM / RCPT TO, whatever its shape (IIS writes "MAIL +FROM:").
_COMMAND = re.compile(r"\b(?:MAIL[\s+]+FROM|RCPT[\s+]+TO)[\s+]*:[\s+]*(.*)", re.IGNORECASE)
#: An ESMTP parameter after the argument (SIZE=7001, SMTPUTF8), read from the end.
_PARAM = re.compile(r"\s+[A-Za-z0-9][A-Za-z0-9-]*(?:=[^\s<>]*)?$")
_KEY_VALUE = re.compile(r"\s+[A-Za-z0-9][A-Za-z0-9-]*=[^\s<>]*$")
HIDDEN = "(hidden)"


def _digest(text: str, key: bytes) -> str:
    return hmac.new(key, text.lower().encode("utf-8"), hashlib.sha256).hexdigest()[:10]


def pseudonym(address: str, key: bytes) -> str:
    """The address with its local part replaced by a keyed hash; the domain is kept when it is
    one (a domain or a literal), else the whole value is the hash."""
    local, at, domain = address.rpartition("@")
    if at and _DOMAIN.fullmatch(domain):
        return f"{_digest(local, key)}@{domain.lower()}"
    return _digest(address, key)


def _argument(rest: str) -> str:
    """The path of a MAIL FROM / RCPT TO line's text after the colon, ESMTP parameters left
    off: after ``<...>`` any parameter, without brackets only KEY=VALUE ones (a bare word
    may be part of a malformed address)."""
    param = _PARAM if rest.startswith("<") else _KEY_VALUE
    rest = rest.rstrip()
    closed = _closing(rest) if rest.startswith("<") else -1
    while m := param.search(rest):
        if rest.startswith("<") and m.start() <= closed:
            break  # inside the brackets: "<a b=c>" is all address
        rest = rest[: m.start()]
    return rest


def _closing(text: str) -> int:
    """Where the ``<`` that ``text`` starts with is closed (nested brackets inside it), or
    the end of the text when it is not."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch == "<") - (ch == ">")
        if depth == 0:
            return i
    return len(text)


def _bracketed(value: str) -> list[tuple[int, int]]:
    """Spans of ``<...>`` holding an "@", nested brackets inside ("<a<svg x>@b>")."""
    spans, opened = [], []
    for i, ch in enumerate(value):
        if ch == "<":
            opened.append(i)
        elif ch == ">" and opened:
            start = opened.pop()
            if not opened and "@" in value[start:i]:
                spans.append((start, i + 1))
    return spans


def _inner(path: str) -> str:
    """A path without its angle brackets and surrounding blanks."""
    return (path[1:-1] if path.startswith("<") and path.endswith(">") else path).strip()


def _hide_path(path: str, key: bytes) -> str:
    """A MAIL FROM / RCPT TO path hashed, its angle brackets kept; the null path stays."""
    inner = _inner(path)
    return path.replace(inner, pseudonym(inner, key), 1) if inner else path


def redact_text(value: str, key: bytes, said: frozenset[str] = frozenset()) -> str:
    """Free text with every address it quotes hashed: the argument of a MAIL FROM / RCPT TO
    command, a ``<path>`` with an "@" in it, a value of ``said`` (paths the conversation gave,
    echoed in a reply), and the local part of any other address."""
    spans: list[tuple[int, int, str]] = []
    m = _COMMAND.search(value)
    if m:
        arg = _argument(m[1])
        if arg:
            spans.append((m.start(1), m.start(1) + len(arg), _hide_path(arg, key)))
    for s in said:
        # the whole value only: "b@x" said is no licence to cut "bob@x" in two
        for hit in re.finditer(rf"(?<![\w.!#$%&'*+/=?^`{{|}}~-]){re.escape(s)}(?![\w.-])", value):
            spans.append((hit.start(), hit.end(), pseudonym(s, key)))
    for a, b in _bracketed(value) if "<" in value and "@" in value else ():
        spans.append((a, b, _hide_path(value[a:b], key)))
    out, at = [], 0
    for a, b, text in sorted(spans, key=lambda x: (x[0], -x[1])):
        if a < at:
            continue  # inside a span already hidden
        out += [_local_parts(value[at:a], key), text]
        at = b
    out.append(_local_parts(value[at:], key))
    return "".join(out)


#: An address after MAIL FROM's AUTH= parameter: the "AUTH=" is no part of its local part (the
#: address hashes as it does in the command's path).
_AFTER_AUTH = re.compile(r"((?<![^\s<(,;])AUTH=)?(" + _ADDRESS.pattern + ")", re.IGNORECASE)


def _local_parts(value: str, key: bytes) -> str:
    return _AFTER_AUTH.sub(lambda m: f"{m[1] or ''}{_digest(m[2][:-1], key)}@", value)


def redact_conversation(lines: list[str | None], key: bytes) -> list[str | None]:
    """An SMTP conversation's lines redacted: the paths its MAIL FROM and RCPT TO commands
    gave are hidden wherever a line repeats them, whatever their shape."""
    commands = [_COMMAND.search(x or "") for x in lines]
    said = frozenset(_inner(_argument(m[1])) for m in commands if m) - {""}
    return [redact_text(x, key, said) if x else x for x in lines]


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
