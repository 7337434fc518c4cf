"""Watch: keep a store current and raise alerts from rules over its newest rows.

    import loganalyzer.watch as w
    result = w.check("store", logs=["\\\\ex01\\logs"], vips=w.load_vips("vip.txt"))
    result.status, result.status_line()       # 0 OK, 1 WARNING, 2 CRITICAL (monitoring plugins)

``check`` is one round: ingest what is new, evaluate the rules (``rules.toml``), move the
alerts on (``state``), send what fires, repeats or resolves. ``watch`` repeats it every
interval until stopped. Alert state lives in the store folder, so a restart goes on where
it stopped.

A round brings the store's per-day aggregates (rollups, address index, client, TLS and SMTP
line aggregates) up to date as the ``ingest`` command does, but only every ``REFRESH_EVERY``
while the rows it writes are of the current UTC day: each refresh rebuilds the whole days
written (seconds of CPU on a busy day, every minute), and until the next one readers count
today's rows themselves (the rules and one-day reports read rows anyway). Rows of an earlier
day (the last lines of yesterday, a backlog) bring them up to date at once, and so does a
watch that stops.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loganalyzer.errors import LogAnalyzerError
from loganalyzer.report.mail import smtp_reason
from loganalyzer.report.sections.vip import read_vips
from loganalyzer.watch.notify import Mail, Unsent, Webhook, check_textfile, write_textfile
from loganalyzer.watch.rules import Context, Finding, Rule, evaluate, load_rules
from loganalyzer.watch.state import REPLAY, Alert, Notice, State

__all__ = [
    "Check",
    "Mail",
    "Webhook",
    "check",
    "check_textfile",
    "load_rules",
    "load_vips",
    "watch",
]

OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
#: How often a round brings the per-day aggregates up to date while it writes today's rows.
REFRESH_EVERY = dt.timedelta(minutes=15)
#: Where the state keeps the time of the last refresh (ISO 8601, UTC).
_REFRESHED = "aggregates_refreshed_at"
#: Where the state keeps the newest row the last round evaluated (ISO 8601, UTC).
_EVALUATED = "evaluated_to"
#: How far back the first round of a store evaluates the rules' windows.
FIRST_ROUND = dt.timedelta(hours=24)
#: How long a round may spend sending its notices, retries included (each notifier at once):
#: a dead endpoint must not stall the watch; what is not sent goes out next round.
NOTIFY_SECONDS = 30.0
#: The same for ``watch --once``: monitoring plugins are killed after 10 to 30 seconds.
ONCE_NOTIFY_SECONDS = 5.0
STATUS_WORDS = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}


@dataclass
class Check:
    """One round of watch: what was ingested, what fires, what was sent."""

    store: str
    now: dt.datetime | None
    firing: list[Alert]
    notices: list[Notice]
    ingested: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: Whether the round brought the per-day aggregates up to date (None: nothing ingested).
    refreshed: bool | None = None
    #: Notices of earlier rounds that reached nobody then, sent again in this one.
    resent: list[Notice] = field(default_factory=list)
    #: How many notices reached no notifier in this round (kept for the next).
    unsent: int = 0

    @property
    def fired(self) -> list[Notice]:
        """The alerts that fired in this round's rows and resolved within them (a burst in a
        batch of rows that landed at once), as they fired."""
        firing = {a.ident for a in self.firing}
        return [n for n in self.notices if n.kind == "firing" and n.alert.ident not in firing]

    @property
    def status(self) -> int:
        """The monitoring-plugin code: the worst severity that fires, or fired in this
        round's rows."""
        severities = {a.severity for a in self.firing} | {n.alert.severity for n in self.fired}
        return CRITICAL if "critical" in severities else WARNING if severities else OK

    def status_line(self) -> str:
        word = STATUS_WORDS[self.status]
        alerts = [(a, "") for a in self.firing] + [
            (n.alert, f" (at {_hhmm(n.at)}, resolved since)") for n in self.fired
        ]
        if not alerts:
            newest = self.now.strftime("%Y-%m-%d %H:%M UTC") if self.now else "no rows yet"
            text = f"no alert; newest row {newest}"
        else:
            text = "; ".join(f"{a.rule} {a.key}: {a.text}{when}" for a, when in alerts)
            # the performance data starts at the first "|": one in a log value (a server's
            # name) would cut the status short and pass the rest off as figures
            text = text.replace("|", "/")
        if self.unsent:
            text += f"; {self.unsent} notice{'s' * (self.unsent > 1)} not sent (next round)"
        perf = " ".join(
            f"{s}={sum(a.severity == s for a, _ in alerts)}" for s in ("warning", "critical")
        )
        return f"WATCH {word} - {text} | {perf}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "store": self.store,
            "status": STATUS_WORDS[self.status],
            "now": self.now.isoformat() if self.now else None,
            "firing": [a.to_dict() for a in self.firing],
            "notices": [n.to_dict() for n in self.notices],
            "ingested": self.ingested,
            "aggregates": {None: None, True: "refreshed", False: "deferred"}[self.refreshed],
            "errors": self.errors,
            "resent": [n.to_dict() for n in self.resent],
            "unsent": self.unsent,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def load_vips(path: str | Path | None) -> list[str]:
    """The addresses of a VIP file (the report's format: one a line; blank lines and ``#``
    comments skipped); [] without a file."""
    return [] if path is None else read_vips(path)


def check(
    store: str | Path | None,
    *,
    logs: Sequence[str | Path] = (),
    rules: list[Rule] | None = None,
    vips: list[str] | None = None,
    notifiers: Iterable[Mail | Webhook] = (),
    textfile: str | Path | None = None,
    ingest_options: dict[str, Any] | None = None,
    wall: dt.datetime | None = None,
    refresh_every: dt.timedelta = REFRESH_EVERY,
    notify_seconds: float = NOTIFY_SECONDS,
) -> Check:
    """One round: ingest ``logs`` (if any) into ``store``, bringing its per-day aggregates up
    to date when due (``refresh_every``; 0: every round; see the module docstring), evaluate
    ``rules`` (the default rules when None), move the alerts on and send the notices to each
    notifier."""
    from loganalyzer.ingest import ingest
    from loganalyzer.read.store import Store

    rules = load_rules() if rules is None else rules
    st = Store(store)  # None: $LOGANALYZER_STORE, else ./loganalyzer-store
    wall = wall or dt.datetime.now(dt.UTC)
    state = State(st.url).load()  # (none yet for a store this round creates)
    held = None if _EVALUATED in state.memory or not st.exists() else _newest(st)
    ingested: dict[str, int] = {}
    errors: list[str] = []
    refreshed: list[bool] = []
    first = None  # the log time of the earliest row ingested
    if logs:
        rollups = _refresher(state.memory, wall, refresh_every, refreshed)
        summary = ingest(list(logs), st, **{"rollups": rollups, **(ingest_options or {})})
        ingested = {"files": summary.count("ingested", "grown"), "rows": summary.rows}
        ingested["quarantined"] = summary.quarantined
        first = summary.first
        errors += [f"{f.path}: {f.reason}" for f in summary.files if f.status == "error"]
    st.require()
    state.memory["ingest_quarantined"] = ingested.get("quarantined", 0)
    newest = _newest(st)
    now = max(newest.values()) if newest else None
    findings: list[Finding] = []
    notices: list[Notice] = []
    if now is not None:
        at = _evaluation_times(state.memory.get(_EVALUATED), held, now)
        late = _late_times(state.memory.get(_EVALUATED), first, now)
        ctx = Context(st.sql, now, vips or [], state.memory, late + at, wall)
        for rule in rules:
            findings += evaluate(rule, ctx)
        notices = state.walk(rules, findings, at, wall, late)
        state.memory[_EVALUATED] = now.isoformat()
    notifiers = list(notifiers)
    resent: list[Notice] = []
    unheard: list[Notice] = []
    if notifiers:
        resent, state.unsent = state.unsent, []
        unheard = _notify(notifiers, resent + notices, st.url, notify_seconds, errors)
        state.unheard(unheard)
    state.save()  # after sending: what reached nobody is sent again next round
    result = Check(st.url, now, state.firing(), notices, ingested, errors)
    result.refreshed = refreshed[0] if refreshed else None
    result.resent, result.unsent = resent, len(unheard)
    if textfile is not None:
        write_textfile(
            textfile,
            result.firing,
            {"newest": {s: t.timestamp() for s, t in newest.items()}},
            wall.timestamp(),
        )
    return result


def watch(
    store: str | Path | None,
    *,
    logs: Sequence[str | Path] = (),
    interval: float = 60.0,
    stop: threading.Event | None = None,
    on_check: Callable[[Check], None] | None = None,
    on_refresh: Callable[[], None] | None = None,
    **options: Any,
) -> None:
    """``check`` every ``interval`` seconds until ``stop`` is set (Ctrl-C or SIGTERM in the
    CLI: the round in progress ends first); then, if the rounds left the store's per-day
    aggregates out of date (``refresh_every``), bring them up to date, ``on_refresh`` called
    first: a watch stopped leaves them as an ingest does."""
    stop = stop or threading.Event()
    first = True
    deferred = False  # whether the rounds since the last refresh deferred it
    while not stop.is_set():
        try:
            result = check(store, logs=logs, **options)
        except (LogAnalyzerError, OSError) as exc:
            if first:  # a mistake of the user's: say it and stop
                raise
            # later, a share that went away or a folder emptied by rotation: try again
            from loganalyzer.read.store import Store

            result = Check(Store(store).url, None, [], [], errors=[str(exc)])
        first = False
        if result.refreshed is not None:
            deferred = not result.refreshed
        if on_check is not None:
            on_check(result)
        deadline = time.monotonic() + interval
        while not stop.is_set() and (left := deadline - time.monotonic()) > 0:
            stop.wait(min(left, 1.0))  # short waits: Windows runs a Ctrl-C handler between them
    if deferred:
        from loganalyzer.read.store import Store
        from loganalyzer.report.rollup import refresh

        if on_refresh is not None:
            on_refresh()
        st = Store(store)
        with st.lock():
            refresh(st, st.manifest(), set())


def _notify(
    notifiers: list[Mail | Webhook],
    notices: list[Notice],
    store: str,
    seconds: float,
    errors: list[str],
) -> list[Notice]:
    """Sends the notices to every notifier at once (a hung one must not eat the others'
    time), for ``seconds`` at most; returns those that reached none."""
    from concurrent.futures import ThreadPoolExecutor

    if not notices:
        return []
    deadline = time.monotonic() + seconds
    unheard = {id(n) for n in notices}
    with ThreadPoolExecutor(len(notifiers)) as pool:
        sends = [(n, pool.submit(n.send, notices, store, deadline)) for n in notifiers]
    for notifier, sent in sends:
        try:
            sent.result()
            unheard.clear()
        except (OSError, ValueError) as exc:  # smtplib's errors are OSErrors
            errors.append(f"cannot notify {type(notifier).__name__.lower()}: {smtp_reason(exc)}")
            unheard &= {id(n) for n in (exc.notices if isinstance(exc, Unsent) else notices)}
    return [n for n in notices if id(n) in unheard]


def _evaluation_times(
    evaluated: str | None, held: dict[str, dt.datetime] | None, now: dt.datetime
) -> list[dt.datetime]:
    """The times at which a round evaluates the rules' windows: each whole minute after the
    newest row the previous round evaluated, and now. The first round of a store goes back
    to the newest row the store held before it (all its rows when it had none), at most
    ``FIRST_ROUND``: a store of months of logs does not raise months of alerts at its start."""
    if evaluated is not None:
        since = dt.datetime.fromisoformat(evaluated)
    else:
        since = max([now - FIRST_ROUND, *(held or {}).values()])
    minute = dt.timedelta(minutes=1)
    first = since.replace(second=0, microsecond=0) + minute
    return [first + i * minute for i in range(max(0, -(-(now - first) // minute)))] + [now]


def _late_times(
    evaluated: str | None, first: dt.datetime | None, now: dt.datetime
) -> list[dt.datetime]:
    """The whole minutes from the round's earliest row ``first`` to the newest row the
    previous round evaluated: rows older than that (copied in late, replayed, one server's
    logs behind the others') raise the alerts they would have raised live, and the windows
    after them changed too. At most ``state.REPLAY`` before now."""
    if evaluated is None or first is None:  # the first round reads back on its own
        return []
    until = dt.datetime.fromisoformat(evaluated)
    since = max(first, now - REPLAY)
    minute = dt.timedelta(minutes=1)
    start = since.replace(second=0, microsecond=0) + minute
    return [start + i * minute for i in range(max(0, (until - start) // minute + 1))]


def _refresher(
    memory: dict[str, Any], wall: dt.datetime, every: dt.timedelta, done: list[bool]
) -> Callable:
    """What ingest calls once the rows are written: ``report.rollup.refresh`` when due (see
    the module docstring), the time kept in ``memory``; appends to ``done`` whether it ran."""
    from loganalyzer.report.rollup import refresh

    def run(st, manifest, touched) -> list[str]:
        last = memory.get(_REFRESHED)
        today = wall.astimezone(dt.UTC).date().isoformat()
        due = (
            every <= dt.timedelta(0)
            or last is None
            or any(day < today for day in touched or ())
            or wall - dt.datetime.fromisoformat(last) >= every
        )
        done.append(due)
        if not due:
            return []
        built = refresh(st, manifest, touched)
        memory[_REFRESHED] = wall.isoformat()
        return built

    return run


def _hhmm(iso: str) -> str:
    return dt.datetime.fromisoformat(iso).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _newest(st) -> dict[str, dt.datetime]:
    frame = st.sql(
        "select server, max(date_time) as newest from ("
        " select server, date_time from tracking union all"
        " select server, date_time from smtp) where date_time is not null group by 1"
    )
    return {
        str(s): t.to_pydatetime().astimezone(dt.UTC)
        for s, t in zip(frame["server"], frame["newest"], strict=True)
    }
