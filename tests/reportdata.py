"""A synth store for the report tests, and the report's figures computed from truth.jsonl only.

The synth logs end at midnight UTC after their last day: on that day a recipient that truth
calls ``deferred`` is one still deferred at the end of the day.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections import Counter, defaultdict
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from conftest import built_once

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate

#: Two days: the second is the report's day, the first its previous day.
SYNTH = {"servers": 4, "seed": 7, "days": 2, "messages": 900}
DAY = "2026-03-03"
PREVIOUS = "2026-03-02"
ACCEPTED = ("contoso.com", "fabrikam.com")
NDR_SENDER = "microsoftexchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com"
#: The senders that synth's bounces come from: Exchange 2016's system mailbox, Exchange
#: 2003's postmaster (the report counts them apart from the top senders).
SYSTEM = re.compile(r"^(microsoftexchange[0-9a-f]*|postmaster)@")
#: The lists the report cuts at --top or --limit rows. (The backlog per hour and, from
#: rollups, the monthly domains hold the --top busiest next hops or domains, each with
#: several rows: the queues table and the top recipient domains list them all.)
CAPPED = frozenset(
    """
    top_senders top_senders_by_size top_sender_domains top_sender_domains_by_size
    top_recipients top_recipients_by_size top_recipient_domains top_recipient_domains_by_size
    system_senders failures_by_domain failed deferral_reasons pending slowest queue_reasons
    vip_events remote_ips auth_failures senders_seen quiet_mailboxes
    """.split()
)
#: The tables cut by --top that are not lists of rows (see ``CAPPED``).
CUT_BY_KEY = ("queue_hours", "monthly_domains")

_built: dict[Path, tuple[Path, Path, list[dict]]] = {}


def _build(base: Path) -> None:
    generate(base / "logs", **SYNTH)
    summary = ingest([base / "logs"], base / "store")
    assert summary.exit_code == 0 and summary.quarantined == 0


def synth_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[dict]]:
    """(logs, store, truth rows) of the report tests' synth day, built once per test run."""
    base = built_once(tmp_path_factory, "report-synth", _build)
    if base not in _built:
        logs, store = base / "logs", base / "store"
        truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
        _built[base] = (logs, store, truth)
    return _built[base]


def _t(s: str) -> dt.datetime:
    return dt.datetime.fromisoformat(s.replace("Z", "+00:00"))


class Expected:
    """The report's figures for one local day, from truth.jsonl alone.

    Each (message, recipient) row counts once at its ``at``; a redirected address (the
    recipient whose redirect target names it in ``expanded_from``) is left out, since its
    target's row tells the same story. Messages count by ``received_at``.
    """

    def __init__(self, truth: list[dict], day: str, tz: str = "UTC") -> None:
        self.start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), ZoneInfo(tz))
        self.end = self.start + dt.timedelta(days=1)
        by_message: dict[str, list[dict]] = defaultdict(list)
        for r in truth:
            by_message[r["message_id"]].append(r)
        sources = set()
        for mid, rows in by_message.items():
            parents = {(x["expanded_from"] or "").lower() for x in rows}
            for x in rows:
                if x["verdict"] != "expanded" and x["recipient"].lower() in parents:
                    sources.add((mid, x["recipient"].lower()))
        self.rows = [r for r in truth if (r["message_id"], r["recipient"].lower()) not in sources]
        self.messages = {mid: rows[0] for mid, rows in by_message.items()}
        self.received = [m for m in self.messages.values() if self.inside(m["received_at"])]

    def inside(self, when: str | None) -> bool:
        return when is not None and self.start <= _t(when) < self.end

    def hour(self, when: str) -> int:
        return int((_t(when) - self.start).total_seconds() // 3600)

    def outcome(self, verdict: str) -> list[dict]:
        return [r for r in self.rows if r["verdict"] == verdict and self.inside(r["at"])]

    def counts(self, verdict: str) -> tuple[int, int]:
        """(recipients, messages) of a verdict in the day."""
        rows = self.outcome(verdict)
        return len(rows), len({r["message_id"] for r in rows})

    def bytes_of(self, verdict: str) -> int:
        return sum(
            self.messages[m]["size"] for m in {r["message_id"] for r in self.outcome(verdict)}
        )

    def per_hour(self, verdict: str | None = None) -> list[int]:
        n = int(
            (self.end.astimezone(dt.UTC) - self.start.astimezone(dt.UTC)).total_seconds() // 3600
        )
        if verdict is None:
            c = Counter(self.hour(m["received_at"]) for m in self.received)
        else:
            c = Counter(self.hour(r["at"]) for r in self.outcome(verdict))
        return [c.get(i, 0) for i in range(n)]

    def latencies(self) -> list[float]:
        return [
            (_t(r["at"]) - _t(r["received_at"])).total_seconds()
            for v in ("delivered", "sent_external")
            for r in self.outcome(v)
        ]

    def top(self, rows: list[tuple[str, str, int]], n: int) -> list[tuple[str, int, int]]:
        """(key, messages, bytes) ranked by messages, then bytes, then key; ``rows`` are
        (key, message ID, size), each message once per key."""
        per: dict[str, dict[str, int]] = defaultdict(dict)
        for key, mid, size in rows:
            per[key][mid] = size
        ranked = [(k, len(v), sum(v.values())) for k, v in per.items()]
        return sorted(ranked, key=lambda x: (-x[1], -x[2], x[0]))[:n]

    def top_senders(self, n: int, system: bool = False) -> list[tuple[str, int, int]]:
        """People and applications; ``system``: the mail system's own senders instead."""
        rows = [(m["sender"].lower(), mid, m["size"]) for mid, m in self._received()]
        return self.top([r for r in rows if bool(SYSTEM.match(r[0])) == system], n)

    def top_sender_domains(self, n: int) -> list[tuple[str, int, int]]:
        return self.top(
            [(m["sender"].lower().split("@")[1], mid, m["size"]) for mid, m in self._received()],
            n,
        )

    def top_recipients(self, n: int) -> list[tuple[str, int, int]]:
        rows = self.outcome("delivered") + self.outcome("sent_external")
        return self.top([(r["recipient"].lower(), r["message_id"], r["size"]) for r in rows], n)

    def top_recipient_domains(self, n: int) -> list[tuple[str, int, int]]:
        rows = self.outcome("delivered") + self.outcome("sent_external")
        return self.top(
            [(r["recipient"].lower().split("@")[1], r["message_id"], r["size"]) for r in rows], n
        )

    def _received(self):
        return [(m["message_id"], m) for m in self.received]
