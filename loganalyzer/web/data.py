"""What the pages show, read through the library's calls: a page of search results, the store's
status and its days. Every function here blocks (DuckDB): the app runs them in a thread."""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass, field

from loganalyzer.read.store import Store
from loganalyzer.report.redact import HIDDEN, pseudonym, redact_text
from loganalyzer.trace import trace

#: The search form's fields, as the URL names them.
FIELDS = ("q", "server", "sender", "recipient", "subject", "since", "until", "event")
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
    #: Each recipient's verdict and latency, by Message-ID, where the search traced the
    #: message (a single match); other rows link to their trace.
    verdicts: dict[str, list[dict]] = field(default_factory=dict)

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.size))


def search(
    store: str,
    form: dict[str, str],
    page: int = 1,
    desc: bool = False,
    tz: str = "UTC",
    verdicts: bool = False,
) -> SearchPage:
    """Page ``page`` of the messages matching ``form`` (FIELDS), by first time, oldest first
    unless ``desc``; with ``verdicts`` the page's messages are traced for each recipient's
    verdict (a single match always is). BadInput for a wrong value (a time, a zone)."""
    size = PAGE_SIZE
    offset = (page - 1) * size

    def find(limit: int, **window):
        return trace(
            store,
            form.get("q") or None,
            server=form.get("server") or None,
            sender=form.get("sender") or None,
            recipient=form.get("recipient") or None,
            subject=form.get("subject") or None,
            since=window.get("since", form.get("since") or None),
            until=window.get("until", form.get("until") or None),
            event_id=form.get("event") or None,
            tz=tz,
            limit=limit,
            all=bool(window),
        )

    if not desc:
        found = find(offset + size)
        rows = found.candidates[offset:]
    else:
        found = find(size)
        total = found.total or 0
        if total > size and offset < total:  # the newest first: the list up to this page's end
            found = find(total - offset)
        end = max(0, total - offset)
        rows = found.candidates[max(0, end - size) : end][::-1]
    result = SearchPage(rows, found.total or 0, page, size, desc, _verdicts(found))
    if verdicts and rows and not result.verdicts:
        # the page's time window, traced: its messages (a message whose first matching row
        # comes later than its first row may fall outside and keeps its plain list)
        times = sorted(dt.datetime.fromisoformat(r["date_time"]) for r in rows)
        until = times[-1] + dt.timedelta(milliseconds=1)
        window = find(len(rows) + 25, since=times[0].isoformat(), until=until.isoformat())
        result.verdicts = _verdicts(window)
    return result


def _verdicts(result) -> dict[str, list[dict]]:
    out = {}
    for m in result.messages:
        out[m.message_id] = [
            {
                "recipient": v.address,
                "outcome": v.verdict,
                "latency": "" if v.latency_s is None else f"{v.latency_s:.1f} s",
            }
            for r in m.recipients
            for v in r.flatten()
        ]
    return out


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


def days(store: str) -> list[dt.date]:
    """The days the store holds rows of (tracking or SMTP), oldest first."""
    st = Store(store).require()
    df = st.sql(
        "select distinct date from tracking union select distinct date from smtp order by 1"
    )
    return [dt.date.fromisoformat(str(d)[:10]) for d in df["date"]]


def signature(store: str) -> tuple:
    """What changes when an ingest adds to the store (the key of cached reports); read from
    the manifest alone (a fifth of the time of a query over the store's views)."""
    files = Store(store).require().manifest(fields=["rows", "ingested_at"]).values()
    last = max((str(f.ingested_at) for f in files), default="")
    return (len(files), last, sum(f.rows or 0 for f in files))


# Fields that hold IDs, codes or names of machines: never redacted (an ID is the link to a
# trace, and the redaction's address pattern would match the host part of a Message-ID).
_KEEP = {
    "message_id",
    "network_message_id",
    "ndr_message_id",
    "ndr_message_ids",
    "reference",
    "internal_message_id",
    "related",
    "server",
    "server_host",
    "client",
    "connector",
    "event_id",
    "verdict",
    "status",
    "enhanced_status",
    "file",
    "name",
    "log_format",
    "outcome",
    "direction",
    "session_id",
}
_ADDRESSES = {"address", "sender", "expanded_from", "redirected_to", "recipients"}


def redact_value(name: str, value, key: bytes):
    """``value`` of the field ``name`` as a reader without access to people sees it."""
    if value is None or name in _KEEP:
        return value
    if name == "subject":
        return HIDDEN
    if isinstance(value, str):
        return (
            pseudonym(value, key)
            if name in _ADDRESSES and "@" in value
            else redact_text(value, key)
        )
    if isinstance(value, list):
        return [redact_value(name, v, key) for v in value]
    if isinstance(value, dict):
        return {k: redact_value(k, v, key) for k, v in value.items()}
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            setattr(value, f.name, redact_value(f.name, getattr(value, f.name), key))
    return value


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
