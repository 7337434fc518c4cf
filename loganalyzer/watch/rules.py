"""Alert rules: loading a rules file, and each rule's query over the store.

A rule returns its *findings*: one per key (a next hop, a remote IP, a server, a VIP address)
that breaks it now. Whether a finding fires, repeats or resolves is decided in ``state``.
"""

from __future__ import annotations

import datetime as dt
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from loganalyzer.errors import BadInput
from loganalyzer.report.sections import queues

SEVERITIES = ("warning", "critical")
DEFAULT_REPEAT_MINUTES = 240


@dataclass(frozen=True)
class Finding:
    """A key that breaks a rule now: ``value`` is the measured figure, ``text`` says it."""

    rule: str
    key: str
    value: float
    text: str


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str
    meaning: str
    repeat_minutes: float
    for_minutes: float
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class Context:
    """What a rule's query needs: the store's SQL, the newest row's time, the VIP list and
    what the previous evaluation remembered (``memory``, per rule)."""

    sql: Callable[..., Any]
    now: dt.datetime
    vips: list[str]
    memory: dict[str, Any]


# name -> (options with their defaults, evaluator)
_RULES: dict[str, tuple[dict[str, Any], Callable[[Rule, Context], list[Finding]]]] = {}


def _rule(name: str, **defaults: Any):
    def register(fn):
        _RULES[name] = (defaults, fn)
        return fn

    return register


def default_rules_text() -> str:
    """The shipped rules file, with each rule's meaning."""
    return resources.files("loganalyzer.watch").joinpath("rules.toml").read_text("utf-8")


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """The rules of a TOML file (the shipped default when ``path`` is None)."""
    if path is None:
        text, where = default_rules_text(), "the default rules"
    else:
        try:
            text, where = Path(path).read_text("utf-8"), str(path)
        except OSError as exc:
            raise BadInput(f"--rules {path}: cannot read it ({exc.strerror or exc})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise BadInput(f"--rules {where}: not valid TOML ({exc})") from None
    rules = []
    for name, body in data.items():
        if name not in _RULES or not isinstance(body, dict):
            raise BadInput(f"--rules {where}: unknown rule [{name}]; known: {', '.join(_RULES)}")
        rules.append(_parse_rule(name, dict(body), f"--rules {where}: [{name}]"))
    return rules


def _parse_rule(name: str, body: dict[str, Any], where: str) -> Rule:
    defaults = _RULES[name][0]
    severity = body.pop("severity", "warning")
    if severity not in SEVERITIES:
        raise BadInput(f"{where} severity {severity!r}; give warning or critical")
    meaning = " ".join(str(body.pop("meaning", "")).split())
    common = {
        "repeat_minutes": body.pop("repeat_minutes", DEFAULT_REPEAT_MINUTES),
        "for_minutes": body.pop("for_minutes", 0),
    }
    for key in body:
        if key not in defaults:
            known = ", ".join(["severity", "meaning", *common, *defaults])
            raise BadInput(f"{where} has no option {key!r}; known: {known}")
    options = {**defaults, **body}
    for key, value in {**common, **options}.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise BadInput(f"{where} {key} = {value!r}; give a number >= 0")
    return Rule(
        name,
        severity,
        meaning,
        float(common["repeat_minutes"]),
        float(common["for_minutes"]),
        options,
    )


def evaluate(rule: Rule, ctx: Context) -> list[Finding]:
    """The findings of one rule now."""
    return _RULES[rule.name][1](rule, ctx)


def _since(ctx: Context, minutes: float) -> dt.datetime:
    return ctx.now - dt.timedelta(minutes=minutes)


def _rows(ctx: Context, query: str, params: list | dict) -> list[tuple]:
    frame = ctx.sql(query, params)
    return list(frame.itertuples(index=False, name=None))


@_rule(
    "queue_backlog",
    threshold=queues.LARGE_BACKLOG,
    expiration_hours=queues.EXPIRATION.total_seconds() / 3600,
)
def _queue_backlog(rule: Rule, ctx: Context) -> list[Finding]:
    # what waiting means is the report's (its queues section): one definition
    hours = float(rule.options["expiration_hours"])
    lo, hi = ctx.now - dt.timedelta(hours=hours), ctx.now + dt.timedelta(microseconds=1)
    rows = _rows(
        ctx,
        f"""
        select server, hop, count(distinct msg) as n, min(since) as oldest
        from ({queues.waits_sql()}) where until is null
        group by all having count(distinct msg) > $threshold order by n desc, hop, server
        """,
        {**queues.window(lo, hi), "threshold": int(rule.options["threshold"])},
    )
    return [
        Finding(
            rule.name,
            f"{server} {hop}",
            float(n),
            f"{n} messages waiting on {server} for {hop}, the oldest since {_hhmm(oldest)}",
        )
        for server, hop, n, oldest in rows
    ]


@_rule("failure_rate", factor=3.0, min_failures=20)
def _failure_rate(rule: Rule, ctx: Context) -> list[Finding]:
    hour, week = dt.timedelta(hours=1), dt.timedelta(days=7)
    ((now_n, before_n, before_rows),) = _rows(
        ctx,
        """
        select count(*) filter (where outcome = 'failed' and event_id <> 'DSN'
                                and date_time > ?::timestamptz),
               count(*) filter (where outcome = 'failed' and event_id <> 'DSN'
                                and date_time <= ?::timestamptz),
               count(*) filter (where date_time <= ?::timestamptz)
        from recipients
        where (date_time > ?::timestamptz and date_time <= ?::timestamptz)
           or (date_time > ?::timestamptz and date_time <= ?::timestamptz)
        """,
        [
            ctx.now - hour,
            ctx.now - week,
            ctx.now - week,
            ctx.now - hour,
            ctx.now,
            ctx.now - week - hour,
            ctx.now - week,
        ],
    )
    if not before_rows:  # no logs of that hour a week ago: nothing to compare with
        return []
    factor = float(rule.options["factor"])
    if now_n < int(rule.options["min_failures"]) or now_n <= factor * max(before_n, 1):
        return []
    return [
        Finding(
            rule.name,
            "all",
            float(now_n),
            f"{now_n} failed recipients in the hour to {_hhmm(ctx.now)}, "
            f"{before_n} in the same hour a week before",
        )
    ]


@_rule("auth_failures", threshold=20, window_minutes=10)
def _auth_failures(rule: Rule, ctx: Context) -> list[Finding]:
    minutes = float(rule.options["window_minutes"])
    rows = _rows(
        ctx,
        """
        select remote_ip, count(*) as n, count(distinct server) as servers
        from smtp
        where reply_code = 535 and direction = 'receive'
          and date_time > ?::timestamptz and date_time <= ?::timestamptz
        group by 1 having count(*) > ? order by n desc, remote_ip
        """,
        [_since(ctx, minutes), ctx.now, int(rule.options["threshold"])],
    )
    return [
        Finding(
            rule.name,
            str(ip),
            float(n),
            f"{n} failed authentications from {ip} in {minutes:g} minutes",
        )
        for ip, n, _ in rows
    ]


@_rule("vip", window_minutes=60)
def _vip(rule: Rule, ctx: Context) -> list[Finding]:
    if not ctx.vips:
        return []
    minutes = float(rule.options["window_minutes"])
    rows = _rows(
        ctx,
        """
        with hits as (
            select case when lower(recipient) in (select unnest(?::varchar[]))
                        then lower(recipient) else lower(sender_address) end as vip,
                   outcome, enhanced_status, message_id, date_time
            from recipients
            where outcome in ('failed', 'deferred') and event_id <> 'DSN'
              and date_time > ?::timestamptz and date_time <= ?::timestamptz
              and (lower(recipient) in (select unnest(?::varchar[]))
                   or lower(sender_address) in (select unnest(?::varchar[])))
        )
        select vip, count(*) filter (where outcome = 'failed') as failed,
               count(*) filter (where outcome = 'deferred') as deferred,
               arg_max(enhanced_status, date_time) as status, max(date_time) as at
        from hits group by 1 order by vip
        """,
        [ctx.vips, _since(ctx, minutes), ctx.now, ctx.vips, ctx.vips],
    )
    found = []
    for vip, failed, deferred, status, at in rows:
        what = ", ".join(
            f"{n} {word}" for n, word in ((failed, "failed"), (deferred, "deferred")) if n
        )
        found.append(
            Finding(
                rule.name,
                vip,
                float(failed + deferred),
                f"VIP {vip}: {what} in {minutes:g} minutes, last at {_hhmm(at)}"
                + (f" ({status})" if status else ""),
            )
        )
    return found


@_rule("logs_stopped", minutes=60, lookback_hours=24)
def _logs_stopped(rule: Rule, ctx: Context) -> list[Finding]:
    minutes = float(rule.options["minutes"])
    rows = _rows(
        ctx,
        """
        with rows as (
            select server, date_time from tracking where date_time > ?::timestamptz
            union all
            select server, date_time from smtp where date_time > ?::timestamptz
        )
        select server, max(date_time) as newest from rows group by 1
        having max(date_time) < ?::timestamptz order by server
        """,
        [
            ctx.now - dt.timedelta(hours=float(rule.options["lookback_hours"])),
            ctx.now - dt.timedelta(hours=float(rule.options["lookback_hours"])),
            _since(ctx, minutes),
        ],
    )
    return [
        Finding(
            rule.name,
            server,
            round((ctx.now - newest).total_seconds() / 60, 1),
            f"no log rows from {server} since {_hhmm(newest)} "
            f"({(ctx.now - newest).total_seconds() / 60:.0f} minutes)",
        )
        for server, newest in rows
    ]


@_rule("quarantine")
def _quarantine(rule: Rule, ctx: Context) -> list[Finding]:
    ((total,),) = _rows(ctx, "select count(*) from quarantine", [])
    before = ctx.memory.get("quarantine_lines")
    if before is None:  # the first round: only what its own ingest quarantined is new
        before = total - ctx.memory.get("ingest_quarantined", 0)
    ctx.memory["quarantine_lines"] = int(total)
    if total <= before:
        return []
    reasons = _rows(
        ctx,
        "select reason, count(*) as n from quarantine group by 1 order by n desc, reason limit 1",
        [],
    )
    top = f"; most often: {reasons[0][0]}" if reasons else ""
    return [
        Finding(
            rule.name,
            "lines",
            float(total - before),
            f"{total - before} new quarantined lines ({total} in all){top}",
        )
    ]


def _hhmm(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
