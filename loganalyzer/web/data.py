"""What the pages show, read through the library's calls: a page of search results, the store's
status and its days. Every function here blocks (DuckDB): the app runs them in a thread."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import re
from collections import OrderedDict
from dataclasses import dataclass, field

from loganalyzer.read.store import Store
from loganalyzer.report.redact import HIDDEN, pseudonym, redact_conversation, redact_text
from loganalyzer.store import cache
from loganalyzer.trace import trace
from loganalyzer.trace.model import held_words

#: The search form's fields, as the URL names them.
FIELDS = ("q", "server", "sender", "recipient", "subject", "since", "until", "event", "verdict")
#: Events a search can require (the tracking event IDs of a fate).
EVENTS = ("FAIL", "DEFER", "DELIVER", "SEND", "DROP", "EXPAND", "REDIRECT", "RESOLVE", "DSN")
PAGE_SIZE = 25


@dataclass
class SearchPage:
    """One page of matching messages, and how many match in all."""

    rows: list[dict]
    total: int
    page: int
    size: int
    desc: bool
    #: Each row's recipients' verdicts and latencies, in the order of ``rows`` (by row: the
    #: attempts refused before DATA have no Message-ID to key them by).
    verdicts: list[list[dict]] = field(default_factory=list)
    #: The store's first and last days with rows when nothing matched a time window wholly
    #: outside them (``TraceResult.held_days``).
    held_days: tuple[str, str] | None = None
    #: The sender and recipient patterns searched where they differ from the form's
    #: (``contoso.com`` searched as ``*@contoso.com``).
    searched: dict[str, str] = field(default_factory=dict)

    @property
    def held(self) -> str | None:
        """The sentence naming the store's days (``held_days``), or None."""
        if not self.held_days:
            return None
        words = held_words(self.held_days)
        return f"{words[0].upper()}{words[1:]}."

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def search(
    store: str | Store,
    form: dict[str, str],
    page: int = 1,
    desc: bool = False,
    tz: str = "UTC",
) -> SearchPage:
    """Page ``page`` of the messages matching ``form`` (FIELDS), by first time, oldest first
    unless ``desc``, each with its recipients' verdicts and latencies; one ``trace`` call.
    BadInput for a wrong value (a time, a zone, a verdict)."""
    size = PAGE_SIZE
    found = trace(
        store,
        form.get("q") or None,
        server=form.get("server") or None,
        sender=form.get("sender") or None,
        recipient=form.get("recipient") or None,
        subject=form.get("subject") or None,
        since=form.get("since") or None,
        until=form.get("until") or None,
        event_id=form.get("event") or None,
        verdict=form.get("verdict") or None,
        tz=tz,
        limit=size,
        offset=(page - 1) * size,
        newest=desc,
        verdicts=True,
    )
    rows = found.candidates
    searched = {k: found.query[k] for k in found.query.get("typed") or {}}
    result = SearchPage(
        rows, found.total or 0, page, size, desc, held_days=found.held_days, searched=searched
    )
    for c in rows:
        fates = c.get("verdicts") or []
        for f in fates:
            f["outcome"] = f["verdict"]
            f["latency"] = "" if f.get("latency_s") is None else f"{f['latency_s']:.1f} s"
        result.verdicts.append(fates)
    return result


def stamp(store: str) -> tuple:
    """What changes when an ingest or a compaction commits (the manifest is replaced whole):
    the key of cached pages. The manifest file is stat-ed (microseconds on a local store);
    on a filesystem that tells nothing that would change, it is read (``signature``)."""
    found = cache.stamp(Store(store))
    return signature(store) if found is None else found


class Memo:
    """Pages computed once per key, the newest ``size`` kept; a page asked for again while
    it is being computed waits for that computation (twenty users, one query)."""

    def __init__(self, size: int = 512) -> None:
        self.size = size
        self.done: OrderedDict = OrderedDict()
        self.running: dict = {}

    async def get(self, key, compute):
        """The value of ``key``, from ``await compute()`` the first time."""
        if key in self.done:
            self.done.move_to_end(key)
            return self.done[key]
        if key in self.running:
            return await asyncio.shield(self.running[key])
        future = asyncio.get_running_loop().create_future()
        self.running[key] = future
        try:
            value = await compute()
        except Exception as exc:  # the same answer (a wrong value's message) for every waiter
            future.set_exception(exc)
            future.exception()  # retrieved: no warning when nobody else waits
            raise
        except BaseException:
            future.cancel()
            raise
        finally:
            self.running.pop(key, None)
        future.set_result(value)
        self.done[key] = value
        while len(self.done) > self.size:
            self.done.popitem(last=False)
        return value


def status(store: str) -> dict:
    """Servers (files, rows, newest row of each log kind), days without rows between a
    server's first and last day, quarantined lines and the last ingest."""
    st = Store(store).require()
    files = st.files()
    newest = st.sql(
        "select server, 'tracking' as log, max(date_time) as newest, count(*) as rows,"
        " list(distinct date order by date) as days from tracking group by all"
        " union all "
        "select server, 'smtp' as log, max(date_time) as newest, count(*) as rows,"
        " list(distinct date order by date) as days from smtp group by all"
        " order by server, log"
    )
    servers = []
    for r in newest.to_dict("records"):
        days = sorted(dt.date.fromisoformat(str(d)[:10]) for d in r["days"])
        gaps = []
        if days:
            every = {days[0] + dt.timedelta(n) for n in range((days[-1] - days[0]).days + 1)}
            gaps = sorted(every - set(days))
        servers.append(
            {
                "server": r["server"],
                "log": r["log"],
                "newest": r["newest"],
                "rows": int(r["rows"]),
                "first_day": days[0] if days else None,
                "last_day": days[-1] if days else None,
                "gaps": gaps,
                "gap_runs": _runs(gaps),
            }
        )
    last = files["ingested_at"].max() if len(files) else None
    return {
        "store": str(st.root),
        "files": len(files),
        "quarantined": int(files["quarantined"].sum()) if len(files) else 0,
        "last_ingest": last,
        "servers": servers,
        "formats": files.groupby("format").size().to_dict() if len(files) else {},
    }


#: The runs of days without rows the status page lists for a server (the rest counted).
GAP_RUNS = 20


def _runs(days: list[dt.date]) -> list[str]:
    """Consecutive ``days`` as runs: ``2020-04-03 to 2020-04-09`` (one day: itself)."""
    runs: list[list[dt.date]] = []
    for d in days:
        if runs and d - runs[-1][1] == dt.timedelta(1):
            runs[-1][1] = d
        else:
            runs.append([d, d])
    return [f"{a}" if a == b else f"{a} to {b}" for a, b in runs]


def days(store: str) -> list[dt.date]:
    """The days the store holds rows of (tracking or SMTP), oldest first."""
    st = Store(store).require()
    df = st.sql(
        "select distinct date from tracking union select distinct date from smtp order by 1"
    )
    return [dt.date.fromisoformat(str(d)[:10]) for d in df["date"]]


def last_day(store: str) -> str:
    """The newest day the store holds rows of (``days``); ``yesterday`` when it holds none."""
    held = days(store)
    return held[-1].isoformat() if held else "yesterday"


def signature(store: str) -> tuple:
    """What changes when an ingest adds to the store (the key of cached reports); read from
    the manifest alone (a fifth of the time of a query over the store's views)."""
    files = Store(store).require().manifest(shared=True).values()
    last = max((str(f.ingested_at) for f in files), default="")
    return (len(files), last, sum(f.rows or 0 for f in files))


# Fields that hold IDs, codes or names of machines: never redacted (an ID is the link to a
# trace, and the redaction's address pattern would match the host part of a Message-ID). A
# recipient's status is a reply's text, which quotes the address ("550 5.1.1 <a@b>: ..."):
# redacted.
_KEEP = {
    "message_id",
    "network_message_id",
    "ndr_message_id",
    "ndr_message_ids",
    "reference",
    "internal_message_id",
    "server",
    "server_host",
    "client",
    "connector",
    "event_id",
    "verdict",
    "enhanced_status",
    "file",
    "name",
    "log_format",
    "outcome",
    "direction",
    "session_id",
    # a bounce's code-table rows: meanings, no address; shared and frozen, never changed
    "codes",
}
#: Fields that hold addresses (an event's ``related``: the list it expanded, the address it
#: redirected, the moderator; a pasted header's To, which may name several people).
_ADDRESSES = {"address", "sender", "expanded_from", "redirected_to", "recipients", "related", "to"}
#: An address in angle brackets, a display name before it or not.
_NAMED = re.compile(r"([^<>]*)<([^<>]*@[^<>]*)>")
#: One entry of an address list: up to a comma outside quotes and angle brackets.
_ENTRY = re.compile(r'(?:"(?:[^"\\]|\\.)*"|<[^<>]*>|[^,"<>])+')


def redact_value(name: str, value, key: bytes):
    """``value`` of the field ``name`` as a reader without access to people sees it."""
    if value is None or name in _KEEP:
        return value
    if name == "subject":
        return HIDDEN
    if name == "conversation" and isinstance(value, list):
        # a line's text is redacted knowing the paths the whole conversation gave
        said = redact_conversation([getattr(x, "data", None) for x in value], key)
        for line, text in zip(value, said, strict=True):
            redact_value("line", line, key)
            line.data = text
        return value
    if isinstance(value, str):
        if name not in _ADDRESSES or "@" not in value:
            return redact_text(value, key)
        return ", ".join(_mailbox(e.strip(), key) for e in _ENTRY.findall(value) if e.strip())
    if isinstance(value, list):
        return [redact_value(name, v, key) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(k, v, key) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            setattr(value, f.name, redact_value(f.name, getattr(value, f.name), key))
    return value


def _mailbox(entry: str, key: bytes) -> str:
    """One address of an address field, redacted: a header's "Thomas Larsen <t.larsen@x>" with
    the name hidden and the address hashed."""
    named = _NAMED.fullmatch(entry)
    if not named:
        return pseudonym(entry, key)
    name = f"{HIDDEN} " if named[1].strip() else ""
    return f"{name}<{pseudonym(named[2], key)}>"


def redact_trace(result, key: bytes):
    """The trace ``result`` with addresses pseudonymised and subjects hidden (in place)."""
    result.candidates = [redact_value("candidate", c, key) for c in result.candidates]
    for m in result.messages:
        redact_value("message", m, key)
    return result


@dataclass
class Cache:
    """A few rendered reports, the newest kept (a report page holds plotly.js: megabytes)."""

    size: int = 6
    pages: dict = field(default_factory=dict)

    def get(self, key):
        page = self.pages.pop(key, None)
        if page is not None:
            self.pages[key] = page
        return page

    def put(self, key, page) -> None:
        self.pages[key] = page
        while len(self.pages) > self.size:
            self.pages.pop(next(iter(self.pages)))
