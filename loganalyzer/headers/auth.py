"""Authentication verdicts: ``Authentication-Results`` (EOP's misplaced or absent authserv-id
tolerated), ``Received-SPF`` and the ``ARC-*`` headers, explained through ``eventcodes``.

FORMATS.md J.4: EOP writes the authserv-id after the spf clause, or not at all, so a clause
without ``=`` anywhere is taken as the authserv-id and nothing requires it first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import eventcodes
from loganalyzer.headers.antispam import NO_VALUE

METHODS = ("spf", "dkim", "dmarc", "arc", "compauth")
_PAIR = re.compile(r'([A-Za-z][\w.-]*)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s;()]*)')
_RESULT_COMMENT = re.compile(r'\s*[A-Za-z][\w.-]*\s*=\s*(?:"[^"]*"|[^\s;()]*)\s*\(')


@dataclass
class AuthResult:
    """One method's result in one header: ``dmarc=pass action=none header.from=contoso.com``."""

    method: str
    result: str
    comment: str | None = None
    properties: dict[str, str] = field(default_factory=dict)
    header: str = "Authentication-Results"
    authserv_id: str | None = None

    @property
    def meaning(self) -> str:
        if not self.result:  # "spf=" says nothing: not the meaning of any result
            return NO_VALUE
        return _meaning(f"{self.method}={self.result}", "auth-result")

    @property
    def notes(self) -> list[str]:
        """Meanings of the DMARC action and the compauth reason code, where given."""
        out = []
        action = self.properties.get("action")
        if self.method == "dmarc" and action:
            text = _meaning(f"action={action}", "auth-result")
            out += [f"action={action}: {text}"] if text else []
        reason = self.properties.get("reason")
        if self.method == "compauth" and reason:
            text = compauth_reason(reason)
            out += [f"reason={reason}: {text}"] if text else []
        return out

    def line(self) -> str:
        """The verdict as one line: ``pass (sender IP is ...) smtp.mailfrom=contoso.com``."""
        text = self.result + (f" ({self.comment})" if self.comment else "")
        return " ".join([text, *(f"{k}={v}" for k, v in self.properties.items())])

    def to_dict(self) -> dict:
        return {
            "result": self.result,
            "comment": self.comment,
            "properties": self.properties,
            "meaning": self.meaning,
            "notes": self.notes,
            "header": self.header,
            "authserv_id": self.authserv_id,
        }


def _meaning(code: str, family: str) -> str:
    try:
        return eventcodes.lookup(code, family).meaning
    except eventcodes.UnknownCode:
        return ""


def compauth_reason(code: str) -> str:
    """Meaning of a compauth reason code (``000``, ``101`` -> ``1xx`` ...)."""
    code = code.strip()
    return _meaning(f"reason={code}", "compauth-reason") or (
        _meaning(f"reason={code[:1]}xx", "compauth-reason") if len(code) == 3 else ""
    )


def _split(value: str, sep: str = ";") -> list[str]:
    """Split on ``sep`` outside comments and quoted strings."""
    out, cur, depth, quoted = [], [], 0, False
    for ch in value:
        if ch == '"' and not depth:
            quoted = not quoted
        elif not quoted:
            depth += ch == "("
            depth -= ch == ")" and depth > 0
        if ch == sep and not depth and not quoted:
            out.append("".join(cur).strip())
            cur = []
        else:
            cur.append(ch)
    out.append("".join(cur).strip())
    return [x for x in out if x]


def _comments(text: str) -> tuple[str, list[str]]:
    """(text without comments, the comments' texts)."""
    found: list[str] = []
    out, depth, cur = [], 0, []
    for ch in text:
        if ch == "(":
            depth += 1
            if depth == 1:
                continue
        elif ch == ")" and depth:
            depth -= 1
            if depth == 0:
                found.append("".join(cur).strip())
                cur = []
                out.append(" ")
                continue
        (cur if depth else out).append(ch)
    return "".join(out), found


def parse_authentication_results(value: str, header: str = "Authentication-Results") -> list:
    """Every method result of one ``Authentication-Results`` value (any clause order)."""
    results: list[AuthResult] = []
    authserv: str | None = None
    for clause in _split(value):
        bare, comments = _comments(clause)
        pairs = _PAIR.findall(bare)
        if not pairs:
            word = bare.strip().split()
            if word and word[0].lower() != "none" and authserv is None:
                authserv = word[0]
            continue
        (method, result), rest = pairs[0], pairs[1:]
        method = method.lower()
        if method in ("i", "v") and not rest:  # ARC instance tag or version
            continue
        result = result.strip('"').lower()
        own = _RESULT_COMMENT.match(clause) is not None  # "(...)" right after the result
        results.append(
            AuthResult(
                method,
                result,
                comment=comments[0] if own and comments else None,
                properties={k: v.strip('"') for k, v in rest},
                header=header,
            )
        )
    for r in results:
        r.authserv_id = authserv
    return results


def parse_received_spf(value: str) -> AuthResult | None:
    """``Received-SPF: Pass (receiver: domain of ... designates ...) client-ip=...; helo=...;``"""
    bare, comments = _comments(value)
    m = re.match(r"\s*([A-Za-z]+)", bare)
    if not m:
        return None
    props = {k.lower(): v.strip('"') for k, v in _PAIR.findall(bare[m.end() :])}
    comment = comments[0] if comments else None
    return AuthResult("spf", m[1].lower(), comment, props, header="Received-SPF")


def _tags(value: str) -> dict[str, str]:
    """A DKIM-style tag list (``i=1; cv=none; d=example.com``)."""
    out = {}
    for part in value.split(";"):
        k, sep, v = part.partition("=")
        if sep:
            out[k.strip().lower()] = "".join(v.split())
    return out


def _instance(value: str) -> int:
    m = re.search(r"(?:^|;)\s*i\s*=\s*(\d+)", value)
    return int(m[1]) if m else 0


def verdicts(items: list[tuple[str, str]]) -> tuple[dict[str, AuthResult | None], list]:
    """(the verdict per method, every result found) from a message's header items, top first.

    Each method takes the topmost ``Authentication-Results`` that names it (the last receiving
    server's); SPF falls back to ``Received-SPF``; each falls back to the newest
    ``ARC-Authentication-Results``; ARC, absent from those, to the newest ``ARC-Seal``'s cv=.
    """
    found: list[AuthResult] = []
    spf: list[AuthResult] = []
    aar: list[tuple[int, str]] = []
    seals: list[tuple[int, str]] = []
    for name, value in items:
        key = name.lower()
        if key == "authentication-results":
            found += parse_authentication_results(value)
        elif key == "received-spf":
            r = parse_received_spf(value)
            spf += [r] if r else []
        elif key == "arc-authentication-results":
            aar.append((_instance(value), value))
        elif key == "arc-seal":
            seals.append((_instance(value), value))
    chosen: dict[str, AuthResult | None] = dict.fromkeys(METHODS)
    for r in found:
        if r.method in chosen and chosen[r.method] is None:
            chosen[r.method] = r
    if chosen["spf"] is None and spf:
        chosen["spf"] = spf[0]
    if aar:
        newest = max(aar, key=lambda x: x[0])
        arc_results = parse_authentication_results(newest[1], "ARC-Authentication-Results")
        found += arc_results
        for r in arc_results:
            if r.method in chosen and chosen[r.method] is None:
                chosen[r.method] = r
    if chosen["arc"] is None and seals:
        i, value = max(seals, key=lambda x: x[0])
        tags = _tags(value)
        if tags.get("cv"):
            chosen["arc"] = AuthResult(
                "arc",
                tags["cv"].lower(),
                f"chain status stated by seal i={i}" + (f" of {tags['d']}" if "d" in tags else ""),
                header="ARC-Seal",
            )
    found += spf
    return chosen, found
