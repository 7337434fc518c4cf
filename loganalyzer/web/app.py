"""The web app's routes: search, trace, paste a header, reports, store status.

Read-only: every page reads the store through the library calls the CLI makes, in worker
threads (a few at a time), so that one user's query does not hold up the event loop. Pages are
rendered with the project's Jinja2 setup; the trace, report and header pages are the very
pages ``trace --html``, ``report daily`` and ``headers --html`` write, with the app's links.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html as html_lib
import os
import re
from functools import cache, partial
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

import anyio
from jinja2 import Environment
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from loganalyzer.errors import BadInput, LogAnalyzerError, StoreChanged
from loganalyzer.fate import VERDICTS
from loganalyzer.headers import analyze_headers
from loganalyzer.pages import page_environment
from loganalyzer.read.store import Store
from loganalyzer.report import daily_report
from loganalyzer.store import cache as kept_manifests
from loganalyzer.store.duck import part_gone
from loganalyzer.times import FORMS, zone
from loganalyzer.trace import trace
from loganalyzer.trace.model import BOUNCES, NOTICES
from loganalyzer.web import data
from loganalyzer.web.security import CSP, MAX_BODY, META_CSP, Guard, Protect, TooLarge

#: Seconds a page refused while the store was being reorganised says to wait (Retry-After).
RETRY_AFTER = 2
_META_CSP = re.compile(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">')


@cache
def environment() -> Environment:
    return page_environment()


class App:
    """The pages of one store; ``redact`` pseudonymises addresses and hides subjects."""

    def __init__(self, store: str, guard: Guard, redact: bool = False) -> None:
        self.store = store
        self.guard = guard
        self.redact = redact
        self.key = os.urandom(16)  # the pseudonyms of this run
        self.cached = data.Cache()
        self.memo = data.Memo()  # searches and traces, until the store changes
        self.local = Store(store).local_root is not None
        # a query runs on one DuckDB thread (``serve``): two requests per core keep the cores
        # busy while others wait on the disk
        self.limiter = anyio.CapacityLimiter(max(4, 2 * (os.cpu_count() or 2)))

    async def work(self, fn, *args, **kwargs):
        """``fn(*args, **kwargs)`` in a worker thread, off the event loop; run once more on
        the manifest read afresh when a part it read was removed meanwhile (a compaction
        committed under the request), StoreChanged when that fails so too."""
        call = partial(fn, *args, **kwargs)
        try:
            return await anyio.to_thread.run_sync(call, limiter=self.limiter)
        except Exception as exc:
            if not part_gone(exc):
                raise
        # the kept manifest is dropped whatever its stamp says: a stamp can miss a change
        kept_manifests.forget(Store(self.store))
        try:
            return await anyio.to_thread.run_sync(call, limiter=self.limiter)
        except Exception as exc:
            if part_gone(exc):
                raise StoreChanged(str(exc).splitlines()[0]) from exc
            raise

    # -- rendering

    def page(self, template: str, active: str, status: int = 200, **values) -> HTMLResponse:
        html = (
            environment()
            .get_template(template)
            .render(csp=META_CSP, active=active, redacted=self.redact, **values)
        )
        return HTMLResponse(html, status_code=status)

    def error(self, title: str, message: str, status: int, active: str = "") -> HTMLResponse:
        return self.page("web_error.html.j2", active, status, title=title, error=message)

    def framed(self, html: str, active: str, extra: str = "") -> HTMLResponse:
        """A library page with the app's navigation (and ``extra``) at the top of its body;
        served under the page's own policy, tightened by the app's."""
        nav = (
            environment()
            .get_template("web_nav.html.j2")
            .render(active=active, redacted=self.redact)
        )
        html = html.replace("<body>", f"<body>{nav}{extra}", 1)
        found = _META_CSP.search(html)
        csp = f"{html_lib.unescape(found[1])}; frame-ancestors 'none'" if found else CSP
        return HTMLResponse(html, headers={"content-security-policy": csp})

    # -- pages

    async def stamp(self) -> tuple:
        """The store's state: pages cached under another are stale (a local store's is a
        stat, answered here; a URL store's manifest is read in a worker thread)."""
        if self.local:
            return data.stamp(self.store)
        return await self.work(data.stamp, self.store)

    async def search(self, request: Request) -> Response:
        q = request.query_params
        form = {k: q.get(k, "").strip() for k in data.FIELDS}
        tz = q.get("tz", "").strip() or "UTC"
        values = dict(form=form, tz=tz, events=data.EVENTS, verdicts=VERDICTS, forms=FORMS)
        try:
            zone(tz)  # said at once, even with the form empty (the trace links carry it)
            if not any(form.values()):
                return self.page("web_search.html.j2", "Search", result=None, **values)
            page = _number(q.get("page"), "page", 1)
            desc = q.get("sort") == "newest"
            key = ("search", tuple(form.items()), page, desc, tz, await self.stamp())
            html = await self.memo.get(key, partial(self._search, form, page, desc, tz, values))
        except StoreChanged:
            raise  # the app's page for it (``create_app``)
        except LogAnalyzerError as exc:
            return self.page(
                "web_search.html.j2",
                "Search",
                400,
                error=_in_form_words(str(exc)),
                result=None,
                **values,
            )
        return HTMLResponse(html)

    async def _search(self, form: dict, page: int, desc: bool, tz: str, values: dict) -> str:
        result = await self.work(data.search, self.store, form, page, desc, tz)
        here = ZoneInfo(zone(tz).key)
        for c, fates in zip(result.rows, result.verdicts, strict=True):
            c["when"] = dt.datetime.fromisoformat(c["date_time"]).astimezone(here)
            c["when"] = c["when"].strftime("%Y-%m-%d %H:%M:%S")
            c["fates"] = fates or [{"recipient": r} for r in c.get("recipients") or []]
            c["link"] = _trace_link(c.get("message_id") or c.get("network_message_id"), tz)
        if self.redact:
            for c in result.rows:
                c["fates"] = [data.redact_value("fate", f, self.key) for f in c["fates"]]
                for name in ("sender", "subject"):
                    c[name] = data.redact_value(name, c.get(name), self.key)
        base = {k: v for k, v in form.items() if v} | ({"tz": tz} if tz != "UTC" else {})
        sort = {"sort": "newest"} if desc else {}
        values = values | dict(
            result=result,
            described=_described(form | result.searched),
            sort_link="/?" + urlencode(base | ({} if desc else {"sort": "newest"})),
            prev_link="/?" + urlencode(base | sort | {"page": page - 1}) if page > 1 else None,
            next_link="/?" + urlencode(base | sort | {"page": page + 1})
            if page < result.pages
            else None,
            # a page past the last (an old link, a typed number): said, with the way back
            last_link="/?" + urlencode(base | sort | {"page": result.pages})
            if result.total and page > result.pages
            else None,
        )
        return self.page("web_search.html.j2", "Search", **values).body.decode()

    async def trace(self, request: Request) -> Response:
        q = request.query_params
        text = q.get("id", "").strip()
        tz = q.get("tz", "").strip() or "UTC"
        server = q.get("server") or None
        if not text:
            return self.error("No message", "give a message ID: /trace?id=<id@host>", 400)
        try:
            key = ("trace", text, server, tz, await self.stamp())
            html, found = await self.memo.get(key, partial(self._trace, text, server, tz))
        except StoreChanged:
            raise  # the app's page for it (``create_app``)
        except LogAnalyzerError as exc:
            return self.error("Cannot trace", _in_form_words(str(exc)), 400)
        response = self.framed(html, "Search", "")
        response.status_code = 200 if found else 404
        return response

    async def _trace(self, text: str, server: str | None, tz: str) -> tuple[str, bool]:
        result = await self.work(trace, self.store, text, server=server, tz=tz, limit=50)
        if self.redact:
            data.redact_trace(result, self.key)
        # a redacted sender is a hash: a search for it finds nothing
        related = _related(result, tz, sender_searches=not self.redact)
        links = environment().get_template("web_links.html.j2").render(**related)
        return result.to_html().replace("<body>", f"<body>{links}", 1), bool(result.candidates)

    async def headers_form(self, request: Request) -> Response:
        return self.page("web_headers.html.j2", "Paste a header", csrf=self.guard.csrf)

    async def headers(self, request: Request) -> Response:
        async with request.form(max_part_size=MAX_BODY) as form:
            if not self.guard.csrf_ok(_text(form.get("csrf"))):
                return self.error("Forbidden", "the form's CSRF token is missing or wrong", 403)
            upload = form.get("file")
            raw = await upload.read() if hasattr(upload, "read") else b""
            text = raw or (_text(form.get("text")) or "").encode("utf-8")
        if not text.strip():
            return self.page(
                "web_headers.html.j2",
                "Paste a header",
                400,
                csrf=self.guard.csrf,
                error="paste a message's headers or choose a .eml file",
            )
        # a redacted app shows the headers (the reader holds them) without the logs' trace
        store = None if self.redact else self.store
        try:
            result = await self.work(analyze_headers, text, store, source="the headers")
        except StoreChanged:
            raise  # the app's page for it (``create_app``)
        except LogAnalyzerError as exc:
            return self.page(
                "web_headers.html.j2", "Paste a header", 400, csrf=self.guard.csrf, error=str(exc)
            )
        if self.redact:  # the page shows no address or subject of what was pasted either
            data.redact_value("headers", result, self.key)
        links = ""
        if result.trace is not None and result.trace.messages:
            links = (
                environment()
                .get_template("web_links.html.j2")
                .render(**_related(result.trace, "UTC"))
            )
        return self.framed(result.to_html(), "Paste a header", links)

    async def reports(self, request: Request) -> Response:
        days = await self.work(data.days, self.store)
        return self.page(
            "web_reports.html.j2",
            "Reports",
            calendar=_calendar(days),
            last=days[-1] if days else None,
        )

    async def report(self, request: Request) -> Response:
        q = request.query_params
        tz = q.get("tz", "").strip() or "UTC"
        try:
            days = _number(q.get("days"), "days", 1, 366)
            # no day asked: the newest the store holds, as the Reports form offers it
            date = q.get("date", "").strip() or await self.work(data.last_day, self.store)
            signature = await self.work(data.signature, self.store)
            key = (date, days, tz, signature)
            html = self.cached.get(key)
            if html is None:
                html = await self.work(self._report, date, days, tz)
                self.cached.put(key, html)
        except StoreChanged:
            raise  # the app's page for it (``create_app``)
        except LogAnalyzerError as exc:
            return self.error("No report", _in_form_words(str(exc)), 400, "Reports")
        return self.framed(html, "Reports")

    def _report(self, date: str, days: int, tz: str) -> str:
        report = daily_report(self.store, date, days=days, tz=tz, redact_addresses=self.redact)
        failed = report.metrics["failed"]
        ids = failed["message_id"].dropna().unique() if "message_id" in failed else []
        return report.to_html(traces={m: _trace_link(m, tz) for m in ids})

    async def status(self, request: Request) -> Response:
        s = await self.work(data.status, self.store)
        return self.page(
            "web_status.html.j2", "Store status", s=s, when=_when, gap_runs=data.GAP_RUNS
        )


def _text(value) -> str | None:
    return value if isinstance(value, str) else None


def _number(text: str | None, name: str, default: int, most: int = 10**9) -> int:
    if not text:
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= most:
        raise BadInput(f"{name} {text!r}: give a whole number from 1 to {most:,}")
    return int(text)


def _trace_link(message_id: str | None, tz: str = "UTC") -> str:
    query = {"id": message_id or ""} | ({"tz": tz} if tz != "UTC" else {})
    return "/trace?" + urlencode(query)


def _described(form: dict) -> str:
    words = [f"{k} {v}" for k, v in form.items() if v and k != "q"]
    return ("ID " + form["q"] + (", " if words else "") if form.get("q") else "") + ", ".join(words)


def _related(result, tz: str, sender_searches: bool = True) -> dict:
    """The links of a trace page: its bounces, the messages it bounced, related IDs, and
    (``sender_searches``) the sender's messages that day."""
    ndrs, originals, related = [], [], []
    own = {m.message_id for m in result.messages}
    for m in result.messages:
        ndrs += m.ndr_message_ids
        ndrs += [v.ndr_message_id for r in m.recipients for v in r.flatten() if v.ndr_message_id]
        for e in m.events:
            ref = e.reference and (
                e.reference if e.reference.startswith("<") else f"<{e.reference}>"
            )
            if e.event_id == "DSN" and ref:  # the bounce this message caused
                ndrs.append(ref)
            elif e.is_ndr and e.message_id:  # the bounce's rows, shown in this trace
                ndrs.append(e.message_id)
            elif ref and e.message_id == m.message_id:  # this message bounces that one
                originals.append(ref)
            elif e.message_id and e.message_id not in own:
                related.append(e.message_id)
    searches = []
    for m in result.messages if sender_searches else ():
        if m.sender and m.received_at and "@" in m.sender:
            day = m.received_at.date()
            query = {"sender": m.sender, "since": day.isoformat(), "until": day.isoformat()}
            searches.append((f"Messages of {m.sender} that day", "/?" + urlencode(query)))
    seen = set(own)

    def fresh(ids: list[str]) -> list[str]:
        out = [i for i in dict.fromkeys(ids) if i not in seen]
        seen.update(out)
        return out

    return dict(
        ndrs_label=BOUNCES if any(m.bounced for m in result.messages) else NOTICES,
        ndrs=fresh(ndrs),
        originals=fresh(originals),
        related=fresh(related),
        searches=searches,
        candidates=result.candidates if not result.messages else [],
        link=lambda mid: _trace_link(mid, tz),
    )


def _calendar(days: list[dt.date]) -> list[tuple[str, list[list]]]:
    """Months of ``days``: (``March 2026``, weeks of {date, held} or None)."""
    held = set(days)
    months = sorted({(d.year, d.month) for d in days})
    out = []
    for year, month in months:
        weeks = [
            [None if d.month != month else {"date": d, "held": d in held} for d in week]
            for week in calendar.Calendar().monthdatescalendar(year, month)
        ]
        out.append((f"{calendar.month_name[month]} {year}", weeks))
    return out


def _when(t) -> str:
    if t is None:
        return ""
    t = t.to_pydatetime() if hasattr(t, "to_pydatetime") else t
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    return t.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


#: The command's option names in the library's messages -> the search form's fields.
_FIELDS = {
    "--since": "Since",
    "--until": "Until",
    "--event-id": "With the event",
    "--tz": "Time zone",
    "--date": "Date",
    "--days": "Days",
    "--server": "Server",
    "the ID": "The ID",
}


def _in_form_words(message: str) -> str:
    """A message about a value, naming the form's field rather than the command's option."""
    for option, field in _FIELDS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(option)}(?![\w-])", field, message)
    return message


def create_app(store: str, token: str | None = None, redact: bool = False, host: str = "127.0.0.1"):
    """The ASGI app over ``store`` (already checked to be one): with ``token``, every
    request needs the token link or its cookie; without, only requests to a loopback name or
    ``host`` (the address it is served on) are answered."""
    guard = Guard(token, host)
    pages = App(store, guard, redact)

    async def too_large(request: Request, exc: Exception) -> Response:
        return Response(f"request too large: at most {MAX_BODY:,} bytes", 413)

    async def changed(request: Request, exc: Exception) -> Response:
        # the request read the store as a compaction committed, twice: a moment later it reads
        response = pages.error(
            "The store is being reorganised",
            "a compaction (or a prune) was replacing the parts this page reads: reload the page"
            " in a moment",
            503,
        )
        response.headers["retry-after"] = str(RETRY_AFTER)
        return response

    async def not_found(request: Request, exc: Exception) -> Response:
        status = getattr(exc, "status_code", 404)
        return pages.error("Not here", f"{request.url.path}: no such page", status)

    routes = [
        Route("/", pages.search),
        Route("/trace", pages.trace),
        Route("/headers", pages.headers_form, methods=["GET"]),
        Route("/headers", pages.headers, methods=["POST"]),
        Route("/reports", pages.reports),
        Route("/report", pages.report),
        Route("/status", pages.status),
        Route("/favicon.ico", lambda request: Response(status_code=204)),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={TooLarge: too_large, StoreChanged: changed, 404: not_found},
    )
    app.state.pages = pages
    return Protect(app, guard)
