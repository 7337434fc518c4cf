"""Alert state: which alerts are pending or firing, kept in the store folder across restarts.

An alert is one rule and one key. It is *pending* while its rule's ``for_minutes`` has not
passed (measured in log time), then *fires* once, is sent again after ``repeat_minutes`` of
wall time while it still fires, and is *resolved* (and said so) when its key no longer breaks
the rule. A round moves the alerts through its evaluation times in order (``walk``), so a
burst inside a batch of rows fires and resolves as it did in log time.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from typing import Any

import fsspec
from fsspec.implementations.local import LocalFileSystem

from loganalyzer.watch.rules import WINDOWED, Finding, Rule

STATE_FILE = "watch/state.json"
VERSION = 1
#: At most this many notices that reached nobody are kept for the next round (the newest).
KEEP_UNSENT = 200
#: How far before the newest row rows copied in late raise the alerts of their windows.
REPLAY = dt.timedelta(hours=24)
#: Where the memory keeps, per alert, the log times it fired over ([since, resolved at])
#: within ``REPLAY``: a replay does not tell them again.
TOLD = "told"


@dataclass
class Alert:
    rule: str
    key: str
    severity: str
    status: str  # pending, firing
    since: str  # log time the key first broke the rule (ISO)
    value: float
    text: str
    #: wall time of the last notification (ISO); None for a firing alert whose notification
    #: reached nobody (every notifier failed): sent again next round
    sent_at: str | None = None
    #: what its resolution says (the text of the rule's last finding of it)
    recovery: str = ""

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ident(self) -> str:
        return f"{self.rule}|{self.key}"


@dataclass(frozen=True)
class Notice:
    """What to tell people: an alert that fires, fires still (a repeat), or resolved."""

    kind: str  # firing, repeat, resolved
    alert: Alert  # as it was then (later steps of the round move the alert on)
    at: str  # log time

    def to_dict(self) -> dict:
        return {**self.alert.to_dict(), "status": self.kind, "at": self.at}

    @classmethod
    def from_state(cls, data: dict) -> Notice:
        return cls(data["kind"], Alert(**data["alert"]), data["at"])

    def to_state(self) -> dict:
        return {"kind": self.kind, "alert": self.alert.to_dict(), "at": self.at}

    def line(self) -> str:
        word = {"firing": "FIRING", "repeat": "STILL FIRING", "resolved": "RESOLVED"}[self.kind]
        return f"{word} {self.alert.severity} {self.alert.rule} {self.alert.key}: {self.alert.text}"


class State:
    """Alerts and rule memory, loaded from and saved to ``<store>/watch/state.json``."""

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/") + "/" + STATE_FILE
        self.alerts: dict[str, Alert] = {}
        self.memory: dict[str, Any] = {}
        #: notices of earlier rounds that reached nobody, but for firing alerts (``sent_at``)
        self.unsent: list[Notice] = []

    def load(self) -> State:
        fs, path = fsspec.core.url_to_fs(self.url)
        if not fs.exists(path):
            return self
        with fs.open(path, "r", encoding="utf-8") as fh:
            data = json.load(fh)
        if data.get("version") == VERSION:
            self.alerts = {k: Alert(**v) for k, v in data.get("alerts", {}).items()}
            self.memory = data.get("memory", {})
            self.unsent = [Notice.from_state(n) for n in data.get("unsent", [])]
        return self

    def save(self) -> None:
        """Write the state whole: a temporary file renamed over the old (an object store's
        put is whole already), so a kill leaves the old state or the new."""
        fs, path = fsspec.core.url_to_fs(self.url)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        text = json.dumps(
            {
                "version": VERSION,
                "alerts": {k: a.to_dict() for k, a in sorted(self.alerts.items())},
                "memory": self.memory,
                "unsent": [n.to_state() for n in self.unsent],
            },
            indent=1,
        )
        if isinstance(fs, LocalFileSystem):
            tmp = path + ".tmp"
            with fs.open(tmp, "w", encoding="utf-8") as fh:
                fh.write(text)
            fs.mv(tmp, path)
        else:
            with fs.open(path, "w", encoding="utf-8") as fh:
                fh.write(text)

    def walk(
        self,
        rules: list[Rule],
        findings: list[Finding],
        at: list[dt.datetime],
        wall: dt.datetime,
        replayed: list[dt.datetime] | None = None,
    ) -> list[Notice]:
        """Moves the alerts through one round's evaluation times ``at`` (ascending, the last
        now) by the findings at each; returns what to send. Windowed rules step at each
        time where something breaks them, the time after it (where it stopped: resolved,
        or a pending alert dropped) and the first; every rule at now. ``replayed``: earlier
        times whose windows got rows late (ascending, within ``REPLAY`` of now), walked
        first (``_replay``)."""
        now, earlier = at[-1], at[:-1]
        by_time: dict[dt.datetime, list[Finding]] = defaultdict(list)
        for f in findings:
            by_time[f.at or now].append(f)
        windowed = [r for r in rules if r.name in WINDOWED]
        notices = self._replay(windowed, by_time, replayed, wall) if replayed else []
        for t in _steps(by_time, earlier):
            notices += self.step(windowed, by_time.get(t, []), t, wall, only=WINDOWED)
        notices += self.step(rules, by_time.get(now, []), now, wall)
        told = self.memory.setdefault(TOLD, {})
        for n in notices:
            if n.kind == "resolved":
                told.setdefault(n.alert.ident, []).append([n.alert.since, n.at])
        horizon = (now - REPLAY).isoformat()
        self.memory[TOLD] = {
            i: kept for i, spans in told.items() if (kept := [s for s in spans if s[1] >= horizon])
        }
        return notices

    def _replay(
        self,
        windowed: list[Rule],
        by_time: dict[dt.datetime, list[Finding]],
        times: list[dt.datetime],
        wall: dt.datetime,
    ) -> list[Notice]:
        """The alerts of windows evaluated in earlier rounds that rows copied in late
        changed: walked from no alert through ``times`` as they would have moved live. One
        over a time it was told of already (it fired and resolved then, or is pending or
        firing now) is not told again; one still open at the end goes on from there."""
        told = {
            ident: [(_time(s), _time(u)) for s, u in spans]
            for ident, spans in self.memory.get(TOLD, {}).items()
        }
        for ident, alert in self.alerts.items():
            told.setdefault(ident, []).append((_time(alert.since), None))
        replay = State(self.url)
        notices: list[Notice] = []
        for t in _steps(by_time, times):
            notices += replay.step(windowed, by_time.get(t, []), t, wall)
        # when each alert of the replay resolved (none: it is open at the end)
        ends = {
            (n.alert.ident, n.alert.since): _time(n.at) for n in notices if n.kind == "resolved"
        }

        def new(ident: str, since: str) -> bool:
            start, end = _time(since), ends.get((ident, since))
            return not any(
                (u is None or start <= u) and (end is None or s <= end)
                for s, u in told.get(ident, [])
            )

        for ident, alert in replay.alerts.items():
            if new(ident, alert.since):
                self.alerts[ident] = alert
        return [n for n in notices if new(n.alert.ident, n.alert.since)]

    def step(
        self,
        rules: list[Rule],
        findings: list[Finding],
        now: dt.datetime,
        wall: dt.datetime,
        only: set[str] | None = None,
    ) -> list[Notice]:
        """Moves every alert (of the rules named in ``only``) on by this evaluation's
        findings; returns what to send."""
        by_rule = {r.name: r for r in rules}
        seen: set[str] = set()
        notices: list[Notice] = []
        at = now.isoformat()
        for f in findings:
            rule = by_rule[f.rule]
            ident = f"{f.rule}|{f.key}"
            seen.add(ident)
            alert = self.alerts.get(ident)
            if alert is None:
                alert = Alert(f.rule, f.key, rule.severity, "pending", at, f.value, f.text)
                self.alerts[ident] = alert
            alert.value, alert.text, alert.severity = f.value, f.text, rule.severity
            alert.recovery = f.resolved
            held = (now - dt.datetime.fromisoformat(alert.since)).total_seconds() / 60
            if alert.status == "pending" and held >= rule.for_minutes:
                alert.status, alert.sent_at = "firing", wall.isoformat()
                notices.append(Notice("firing", replace(alert), at))
            elif alert.status == "firing" and alert.sent_at is None:  # not heard yet
                alert.sent_at = wall.isoformat()
                notices.append(Notice("firing", replace(alert), at))
            elif alert.status == "firing" and rule.repeat_minutes > 0:
                quiet = (wall - dt.datetime.fromisoformat(alert.sent_at)).total_seconds() / 60
                if quiet >= rule.repeat_minutes:
                    alert.sent_at = wall.isoformat()
                    notices.append(Notice("repeat", replace(alert), at))
        for ident in sorted(set(self.alerts) - seen):
            if only is not None and self.alerts[ident].rule not in only:
                continue
            alert = self.alerts.pop(ident)
            if alert.status == "firing":  # it says the recovery, not its last figures
                said = replace(alert, text=alert.recovery or alert.text)
                notices.append(Notice("resolved", said, at))
        return notices

    def unheard(self, notices: list[Notice]) -> None:
        """Notices no notifier could send are sent next round (a mail relay or webhook down
        for a while must not swallow an alert): an alert that still fires is sent again as
        it fires (``sent_at``), any other notice (a resolution, an alert that fired and
        resolved within the round) is kept as it is."""
        for n in notices:
            alert = self.alerts.get(n.alert.ident)
            if (
                n.kind in ("firing", "repeat")
                and alert is not None
                and alert.status == "firing"
                and alert.since == n.alert.since  # not an earlier time it fired
            ):
                alert.sent_at = None
            else:
                self.unsent.append(n)
        del self.unsent[:-KEEP_UNSENT]

    def firing(self) -> list[Alert]:
        return [a for _, a in sorted(self.alerts.items()) if a.status == "firing"]


def _steps(by_time: dict[dt.datetime, list[Finding]], times: list[dt.datetime]) -> list:
    """Of ``times``, those a walk steps at: the first, each with findings and the one after."""
    index = {t: i for i, t in enumerate(times)}
    steps = {times[0]} if times else set()
    for t in by_time:
        if t in index:
            steps.update(times[index[t] : index[t] + 2])
    return sorted(steps)


def _time(iso: str | None) -> dt.datetime | None:
    return None if iso is None else dt.datetime.fromisoformat(iso)
