"""What happened to a recipient: the verdict vocabulary and the rules that give a verdict.

Every row that names a recipient is one step of its story, in time order. The last step
decides: a final event (DELIVER, FAIL, DEFER, DROP, ...) gives its verdict; a send out of the
organisation gives ``sent_external``; a hand-off to another server of the organisation, or any
other step, with nothing after it in the store, means the recipient was last seen there (the
next hop's logs are missing).

The rules are written here once, as data, and read two ways: by the Python functions below
(a trace) and as SQL that this module renders from the same data (the daily report, the
``messages`` view). An event's ``outcome`` (from ``eventcodes``, stored in every row) says
what the event is; a verdict says what a recipient's story came to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Mapping

from eventcodes import OUTCOMES

__all__ = [
    "EXPANDS",
    "FINAL",
    "FINAL_2003",
    "FINAL_EXO",
    "FINALS",
    "IGNORED",
    "INTERNAL_CONNECTOR",
    "OUTCOMES",
    "RANK",
    "REDIRECTS",
    "RELAY_FORMATS",
    "SENDS",
    "SETTLES",
    "TRANSFER_BEGINS",
    "NO_VERDICT",
    "VERDICTS",
    "WRITER_HOST_FORMATS",
    "handoff_sql",
    "host_name",
    "in_sql",
    "is_handoff",
    "kind_of",
    "kind_sql",
    "next_hop",
    "rank_sql",
    "status_text",
    "status_text_sql",
    "step_rank",
    "step_rank_sql",
    "verdict_of",
    "verdict_sql",
]

#: A recipient's verdict (DESIGN.md, Vocabularies). ``OUTCOMES``, the outcome of an event,
#: is owned by ``eventcodes``, whose code tables give every event one.
VERDICTS: tuple[str, ...] = (
    "delivered",
    "sent_external",
    "failed",
    "deferred",
    "dropped",
    "quarantined",
    "moderation",
    "expanded",
    "last_seen",
    "rejected",
)

#: Final events of Exchange 2007-2019 and the verdict they give the recipients they name.
FINAL: Mapping[str, str] = {
    "DELIVER": "delivered",
    "DUPLICATEDELIVER": "delivered",
    "FAIL": "failed",
    "DELIVERFAIL": "failed",
    "BADMAIL": "failed",
    "SUBMITFAIL": "failed",
    "RESUBMITFAIL": "failed",
    "MODERATORREJECT": "failed",
    "MODERATIONEXPIRE": "failed",
    "MODERATORSALLNDR": "failed",
    "DEFER": "deferred",
    "SUBMITDEFER": "deferred",
    "RESUBMITDEFER": "deferred",
    "DROP": "dropped",
    "SUPPRESSED": "dropped",
    "POISONMESSAGE": "quarantined",
    "INITMESSAGECREATED": "moderation",
}
#: Exchange 2000/2003 event numbers that end a recipient's story (their numbers and the
#: names of later versions never collide, so an event ID alone says which table applies).
FINAL_2003: Mapping[str, str] = {
    "1028": "delivered",
    "1023": "delivered",
    "9": "delivered",
    "1000": "delivered",
    "1030": "failed",
    "1021": "failed",
    "1022": "failed",
    "1026": "failed",
    "1032": "deferred",
    "1035": "deferred",
    "1037": "deferred",
    "1039": "dropped",
    "1040": "failed",
    "1041": "quarantined",
    "26": "expanded",  # Exchange 2000's "Distribution list expansion" names the list
}
#: Exchange Online message trace statuses and detail events that end a recipient's story
#: (title case, as the ``exo-status`` table spells them: no collision with the names above).
#: A summary's Pending or GettingStatus is a message still on its way when it was exported;
#: Graph's Recalled (FORMATS.md N.2) is a message its sender took back: no longer in the mailbox.
FINAL_EXO: Mapping[str, str] = {
    "Delivered": "delivered",
    "Deliver": "delivered",
    "Failed": "failed",
    "Fail": "failed",
    "FilteredAsSpam": "dropped",
    "Quarantined": "quarantined",
    "Pending": "deferred",
    "GettingStatus": "deferred",
    "Defer": "deferred",
    "Expanded": "expanded",
    "Expand": "expanded",
    "Recalled": "dropped",
}
#: Exchange Online statuses that give no verdict, and what they say instead: Exchange Online
#: is the last hop, no other server's log is missing. Graph's stand-in for a status its API
#: version does not name (FORMATS.md N.2); None and Resolved of the exo-status table.
NO_VERDICT: Mapping[str, str] = {
    "UnknownFutureValue": "status unknown (the service wrote UnknownFutureValue, a status it "
    "does not name)",
    "None": "no delivery status (the service wrote None: the message was rejected or "
    "redirected to another recipient)",
    "Resolved": "resolved to another address (the service wrote Resolved: the message went "
    "on to the address the directory gave)",
}
#: Every final event and its verdict.
FINALS: Mapping[str, str] = {**FINAL, **FINAL_2003, **FINAL_EXO}
#: Events that defer a recipient (its verdict ``deferred``): without one in a period, no
#: recipient of a message waits at its end.
DEFERS: frozenset[str] = frozenset(e for e, v in FINALS.items() if v == "deferred")
#: Events that send a message on: out of the organisation (final, ``sent_external``) or to
#: another of its servers (a hand-off).
SENDS: frozenset[str] = frozenset(
    {"SEND", "SENDEXTERNAL", "1020", "1031", "7", "1002", "1003", "1011"}
    # Exchange Online's detail events; its Send ends an Enhanced summary's chain of a
    # recipient Exchange Online sent on (the last hop: no other log follows)
    | {"Send", "Send external", "Extern senden"}
)
#: Sends that only begin a transfer: Exchange 2003's 1020 is followed by 1031 when the next
#: server took the message, by 1030 when it refused it. As the last step it still decides;
#: a count of the sends of a period counts the 1031 alone.
TRANSFER_BEGINS: frozenset[str] = frozenset({"1020"})
#: Rows that are no step of a recipient's story (a DSN row follows a failure; shadow copies
#: are kept and discarded beside the message's own path).
IGNORED: frozenset[str] = frozenset({"DSN", "HADISCARD", "HARECEIVE"})
#: Events whose related-recipient-address names the address they act on: a distribution list
#: expanded to the row's recipients (its verdict ``expanded`` when nothing follows), an address
#: redirected or resolved to them (its verdict is theirs).
EXPANDS: frozenset[str] = frozenset({"EXPAND"})
REDIRECTS: frozenset[str] = frozenset({"REDIRECT", "RESOLVE"})
#: Send connectors that lead into the organisation (by their names in connector-id).
INTERNAL_CONNECTOR = re.compile(
    r"intra-?organi[sz]ation|mailbox transport|\\default |frontend", re.IGNORECASE
)
#: The error of a bracketed status list ``[{LED=...};{MSG=...};...]``.
_LED = re.compile(r"\{LED=(.*?)\}(?:;|\]|$)")
#: What follows the LED value in a match of ``_LED``.
_LED_END = r"\}[;\]]?$"
#: Formats whose sends go into the organisation: an IIS SMTP relay fronts it (its send to a
#: public address, ``server_ip``, goes out of it: an IIS service sending mail on itself).
RELAY_FORMATS: frozenset[str] = frozenset({"iis-smtp"})
#: Formats whose ``server_hostname`` may be the server that wrote the row, not the one a send
#: went to (Exchange 2000/2003, FORMATS.md A.4): there it names a next hop only when it is
#: another server.
WRITER_HOST_FORMATS: frozenset[str] = frozenset({"exchange2003-tracking"})
#: Of steps at the same instant, the one that decides comes last: a hand-off, then a
#: passing step (expansions and redirects too), then a final event (of final events, by
#: ``SETTLES``). Ignored steps decide nothing.
RANK: Mapping[str, int] = {
    "handoff": 0,
    "pass": 1,
    "expand": 1,
    "redirect": 1,
    "final": 2,
    "ignored": 6,
}
#: Of final events at the same instant, by their verdict, the one that decides comes last
#: (never the file or line order: Exchange Online's summaries give every status of a message
#: the time it arrived, so two exports of it tie). A status that may still change (deferred:
#: Pending, GettingStatus, DEFER; awaiting a moderator; quarantined, until released) comes
#: before one that cannot. Two that cannot disagree: a drop then a failure come last, so that
#: a failure is shown to be looked at, not hidden behind a delivery at the same instant (and
#: a message recalled or filtered after its delivery is shown so).
SETTLES: Mapping[str, int] = {
    "deferred": 0,
    "moderation": 0,
    "quarantined": 0,
    "delivered": 1,
    "sent_external": 1,
    "expanded": 1,
    "last_seen": 1,
    "dropped": 2,
    "failed": 3,
}


def status_text(status: str | None) -> str | None:
    """The error of a status: the LED value of a bracketed ``[{LED=...};...]`` list."""
    if not status:
        return None
    m = _LED.search(status)
    return (m[1] if m else status).strip() or None


def _first_label(host: str | None) -> str:  # (handoff_sql's rule: the two must agree)
    return (host or "").split(".")[0].upper()


def host_name(host: str | None) -> str:
    """A host without the `` (IP)`` that a trace writes after its name
    (``ex01.contoso.com (10.0.0.11)`` -> ``ex01.contoso.com``); ``""`` for none."""
    return (host or "").split(" (", 1)[0].strip()


def server_name(host: str | None) -> str:
    """A host as the logs' server column names it: the first label of its name in upper case
    (``ex01.contoso.com (10.0.0.11)`` -> ``EX01``); an IP address whole (not ``10``)."""
    text = host_name(host).strip("[]")
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return text.split(".")[0].upper()
    return text


def next_hop(row: Mapping) -> str | None:
    """The server a send row names as its next hop (``server_name``: ``EX02``), ``""`` when
    the row leaves it empty; None when it names none: a row of ``WRITER_HOST_FORMATS`` whose
    host is the server that wrote it."""
    hop = server_name(row.get("server_hostname"))
    if row.get("log_format") in WRITER_HOST_FORMATS and hop in ("", server_name(row.get("server"))):
        return None
    return hop


def is_handoff(row: Mapping, servers: Iterable[str]) -> bool:
    """A send to another server of the organisation (not out of it): by an IIS relay (not to
    a public address), over an internal connector, or to a host whose first label is one of
    ``servers`` (upper case)."""
    if row.get("log_format") in RELAY_FORMATS and not _public(row.get("server_ip")):
        return True
    if INTERNAL_CONNECTOR.search(row.get("connector_id") or ""):
        return True
    return _first_label(row.get("server_hostname")) in servers


def _public(ip: str | None) -> bool:
    """Whether ``ip`` is a public (globally routed) address."""
    try:
        return ipaddress.ip_address((ip or "").strip("[]")).is_global
    except ValueError:
        return False


def kind_of(event: str, row: Mapping, servers: Iterable[str]) -> str:
    """What a row with ``event`` is in its recipients' stories: ``ignored``, ``handoff``,
    ``final`` or ``pass``."""
    if event in IGNORED:
        return "ignored"
    if event in SENDS:
        return "handoff" if is_handoff(row, servers) else "final"
    if event in FINALS:
        return "final"
    return "pass"


def step_rank(kind: str, verdict: str) -> int:
    """Where a step of ``kind`` giving ``verdict`` comes among steps at the same instant
    (``RANK``, then ``SETTLES``): the last decides."""
    return RANK[kind] + (SETTLES.get(verdict, 1) if kind == "final" else 0)


def verdict_of(event: str, kind: str) -> str:
    """The verdict of a recipient whose last step is ``event`` of ``kind``."""
    if kind != "final":
        return "last_seen"  # a hand-off, or a step that ends nothing
    if event in SENDS:
        return "sent_external"
    return FINALS.get(event) or "last_seen"


# --- the same rules in SQL (DuckDB) ---------------------------------------------------------


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def in_sql(column: str, values: Iterable[str]) -> str:
    """SQL: ``column`` is one of ``values`` (one of fate's event sets)."""
    return f"{column} in ({', '.join(_quote(v) for v in sorted(values))})"


def handoff_sql(servers: str, connector: str, host: str, log_format: str) -> str:
    """SQL for ``is_handoff``; ``servers`` is a SQL list of upper-case server names (the
    rows it reads, tracking rows, are of no ``RELAY_FORMATS``: their public addresses aside)."""
    first = f"upper(split_part(coalesce({host}, ''), '.', 1))"
    pattern = _quote("(?i)" + INTERNAL_CONNECTOR.pattern)
    return (
        f"(coalesce({in_sql(log_format, RELAY_FORMATS)}, false)"
        f" or regexp_matches(coalesce({connector}, ''), {pattern})"
        f" or coalesce(list_contains({servers}, {first}), false))"
    )


def kind_sql(
    servers: str,
    event: str = "event_id",
    connector: str = "connector_id",
    host: str = "server_hostname",
    log_format: str = "log_format",
) -> str:
    """SQL for ``kind_of``: 'ignored', 'handoff', 'final' or 'pass'."""
    handoff = handoff_sql(servers, connector, host, log_format)
    return (
        f"case when {in_sql(event, IGNORED)} then 'ignored'"
        f" when {in_sql(event, SENDS)} then if({handoff}, 'handoff', 'final')"
        f" when {in_sql(event, FINALS)} then 'final'"
        " else 'pass' end"
    )


def verdict_sql(event: str = "event_id", kind: str = "kind") -> str:
    """SQL for ``verdict_of``, given the SQL of the step's event and kind."""
    finals = " ".join(f"when {_quote(e)} then {_quote(v)}" for e, v in sorted(FINALS.items()))
    return (
        f"case when {kind} <> 'final' then 'last_seen'"
        f" when {in_sql(event, SENDS)} then 'sent_external'"
        f" else coalesce(case {event} {finals} end, 'last_seen') end"
    )


def rank_sql(kind: str = "kind") -> str:
    """SQL for ``RANK`` of a step's kind."""
    cases = " ".join(f"when {_quote(k)} then {r}" for k, r in sorted(RANK.items()))
    return f"case {kind} {cases} end"


def step_rank_sql(kind: str = "kind", verdict: str = "verdict") -> str:
    """SQL for ``step_rank``, given the SQL of the step's kind and verdict."""
    settles = " ".join(f"when {_quote(v)} then {n}" for v, n in sorted(SETTLES.items()))
    return (
        f"({rank_sql(kind)} + if({kind} = 'final', coalesce(case {verdict} {settles} end, 1), 0))"
    )


def status_text_sql(status: str) -> str:
    """SQL for ``status_text``."""
    led = _quote(_LED.pattern)
    # the whole match less its closing brace and separator: extracting the group itself is
    # three times slower. A match starts with '{LED=' (none: '', the status is the text).
    found = f"regexp_replace(regexp_extract({status}, {led}, 0), {_quote(_LED_END)}, '')"
    text = f"substr(coalesce(nullif({found}, ''), '{{LED=' || {status}), {len('{LED=') + 1})"
    return f"nullif(trim({text}), '')"
