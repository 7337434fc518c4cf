"""Alert rules: loading a rules file, and each rule's query over the store.

A rule returns its *findings*: one per key (a next hop, a remote IP, a server, a VIP address)
and evaluation time at which the key breaks it. A round evaluates the windows ending at each
whole minute since the previous round's newest row and at the newest row now (``Context.at``;
from the first row of the round's rows older than that: rows copied in late), each rule in one
query, so a burst early in a batch of rows that landed at once is seen as it would have been
live. Whether a finding fires, repeats or resolves is decided in ``state``.
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
from loganalyzer.report import sessions
from loganalyzer.report.sections import queues

SEVERITIES = ("warning", "critical")
DEFAULT_REPEAT_MINUTES = 240


@dataclass(frozen=True)
class Finding:
    """A key that breaks a rule at ``at`` (log time; None: now): ``value`` is the measured
    figure, ``text`` says it, ``resolved`` says the recovery once the key no longer breaks
    the rule."""

    rule: str
    key: str
    value: float
    text: str
    at: dt.datetime | None = None
    resolved: str = ""


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
    """What a rule's query needs: the store's SQL, the newest row's time, the VIP list, what
    the previous evaluation remembered (``memory``, per rule), the times at which to
    evaluate the windows (``at``, ascending, the last ``now``; default: ``now`` alone) and
    the wall clock (``wall``, UTC; default: now's)."""

    sql: Callable[..., Any]
    now: dt.datetime
    vips: list[str]
    memory: dict[str, Any]
    at: list[dt.datetime] = field(default_factory=list)
    wall: dt.datetime | None = None

    def __post_init__(self) -> None:
        self.at = self.at or [self.now]
        self.wall = self.wall or dt.datetime.now(dt.UTC)


# name -> (options with their defaults, evaluator)
_RULES: dict[str, tuple[dict[str, Any], Callable[[Rule, Context], list[Finding]]]] = {}
#: Rules measured over windows of log time: evaluated at every time of ``Context.at``; the
#: others (what changed since the last round) at ``now`` alone.
WINDOWED: set[str] = set()


def _rule(name: str, *, windowed: bool = True, **defaults: Any):
    def register(fn):
        _RULES[name] = (defaults, fn)
        if windowed:
            WINDOWED.add(name)
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
    """The findings of one rule at each of ``ctx.at`` (a rule of what changed: at now)."""
    return _RULES[rule.name][1](rule, ctx)


def _rows(ctx: Context, query: str, params: list | dict) -> list[tuple]:
    frame = ctx.sql(query, params)
    return list(frame.itertuples(index=False, name=None))


def _at(ctx: Context, at: Any) -> dt.datetime:
    """An evaluation time as the query gives it back, as the one of ``ctx.at`` it is."""
    return at.to_pydatetime().astimezone(dt.UTC) if hasattr(at, "to_pydatetime") else at


#: The evaluation times of a query, one row each (``t``), from the parameter ``$at``.
_AT = "at_ as (select unnest($at::timestamptz[]) as t)"


@_rule(
    "queue_backlog",
    threshold=queues.LARGE_BACKLOG,
    expiration_hours=queues.EXPIRATION.total_seconds() / 3600,
)
def _queue_backlog(rule: Rule, ctx: Context) -> list[Finding]:
    # what waiting means is the report's (its queues section): one definition
    expiration = dt.timedelta(hours=float(rule.options["expiration_hours"]))
    lo, hi = ctx.at[0] - expiration, ctx.now + dt.timedelta(microseconds=1)
    rows = _rows(
        ctx,
        f"""
        with {_AT}, waits as ({queues.waits_sql()})
        select t, server, hop, count(distinct msg) as n, min(since) as oldest
        from at_ join waits w on w.since <= t and w.since >= t - $expiration
                             and (w.until is null or w.until > t)
        group by all having count(distinct msg) > $threshold order by t, n desc, hop, server
        """,
        {
            **queues.window(lo, hi),
            "at": ctx.at,
            "expiration": expiration,
            "threshold": int(rule.options["threshold"]),
        },
    )
    return [
        Finding(
            rule.name,
            f"{server} {hop}",
            float(n),
            f"{n} messages waiting on {server} for {hop}, the oldest since {_hhmm(oldest)}",
            _at(ctx, t),
            f"{rule.options['threshold']} messages or fewer waiting on {server} for {hop} again",
        )
        for t, server, hop, n, oldest in rows
    ]


@_rule("failure_rate", factor=3.0, min_failures=20)
def _failure_rate(rule: Rule, ctx: Context) -> list[Finding]:
    hour, week = dt.timedelta(hours=1), dt.timedelta(days=7)
    rows = _rows(
        ctx,
        f"""
        with {_AT},
        failed as (
            select date_time from recipients
            where outcome = 'failed' and event_id <> 'DSN'
              and ((date_time > $lo - $hour and date_time <= $now)
                   or (date_time > $lo - $week - $hour and date_time <= $now - $week))),
        -- whether the hour a week before has rows at all: the first and last row of each
        -- minute (a minute is shorter than the hour, so one of them falls in it if any does)
        week_before as (
            select min(date_time) as first, max(date_time) as last from recipients
            where date_time > $lo - $week - $hour and date_time <= $now - $week
            group by date_trunc('minute', date_time)),
        now_n as (
            select t, count(f.date_time) as n from at_
            left join failed f on f.date_time > t - $hour and f.date_time <= t group by t),
        before_n as (
            select t, count(f.date_time) as n from at_
            left join failed f on f.date_time > t - $week - $hour and f.date_time <= t - $week
            group by t),
        before_rows as (
            select t, count(b.first) as n from at_
            left join week_before b on b.last > t - $week - $hour and b.first <= t - $week
            group by t)
        select t, now_n.n as now_n, before_n.n as before_n
        from now_n join before_n using (t) join before_rows using (t)
        -- no logs of that hour a week ago: nothing to compare with
        where before_rows.n > 0 and now_n.n >= $min_failures
          and now_n.n > $factor * greatest(before_n.n, 1)
        order by t
        """,
        {
            "at": ctx.at,
            "lo": ctx.at[0],
            "now": ctx.now,
            "hour": hour,
            "week": week,
            "factor": float(rule.options["factor"]),
            "min_failures": int(rule.options["min_failures"]),
        },
    )
    return [
        Finding(
            rule.name,
            "all",
            float(now_n),
            f"{now_n} failed recipients in the hour to {_hhmm(_at(ctx, t))}, "
            f"{before_n} in the same hour a week before",
            _at(ctx, t),
            f"failed recipients in the hour back to {rule.options['factor']:g} times those of "
            f"the same hour a week before or fewer (or under {rule.options['min_failures']})",
        )
        for t, now_n, before_n in rows
    ]


@_rule("auth_failures", threshold=20, window_minutes=10)
def _auth_failures(rule: Rule, ctx: Context) -> list[Finding]:
    minutes = float(rule.options["window_minutes"])
    window = dt.timedelta(minutes=minutes)
    rows = _rows(
        ctx,
        f"""
        with {_AT},
        failed as (
            select remote_ip, date_time from ({sessions.failed_logins("remote_ip, date_time")})
            where date_time > $lo - $window)
        select t, remote_ip, count(*) as n
        from at_ join failed f on f.date_time > t - $window and f.date_time <= t
        group by all having count(*) > $threshold order by t, n desc, remote_ip
        """,
        {
            # what a failed authentication is is the report's: one definition
            **sessions.auth_window(ctx.at[0] - window, ctx.now + dt.timedelta(microseconds=1)),
            "at": ctx.at,
            "lo": ctx.at[0],
            "window": window,
            "threshold": int(rule.options["threshold"]),
        },
    )
    return [
        Finding(
            rule.name,
            str(ip),
            float(n),
            f"{n} failed authentications from {ip} in {minutes:g} minutes",
            _at(ctx, t),
            f"{rule.options['threshold']} failed authentications or fewer from {ip} in "
            f"{minutes:g} minutes again",
        )
        for t, ip, n in rows
    ]


@_rule("vip", window_minutes=60)
def _vip(rule: Rule, ctx: Context) -> list[Finding]:
    if not ctx.vips:
        return []
    minutes = float(rule.options["window_minutes"])
    window = dt.timedelta(minutes=minutes)
    rows = _rows(
        ctx,
        f"""
        with {_AT}, vips as (select unnest($vips::varchar[]) as vip),
        hits as (
            select case when lower(recipient) in (select vip from vips)
                        then lower(recipient) else lower(sender_address) end as vip,
                   outcome, enhanced_status, message_id, date_time
            from recipients
            where outcome in ('failed', 'deferred') and event_id <> 'DSN'
              and date_time > $lo - $window and date_time <= $now
              and (lower(recipient) in (select vip from vips)
                   or lower(sender_address) in (select vip from vips))
        )
        select t, vip, count(*) filter (where outcome = 'failed') as failed,
               count(*) filter (where outcome = 'deferred') as deferred,
               arg_max(enhanced_status, date_time) as status, max(date_time) as at
        from at_ join hits h on h.date_time > t - $window and h.date_time <= t
        group by all order by t, vip
        """,
        {
            "at": ctx.at,
            "vips": ctx.vips,
            "lo": ctx.at[0],
            "now": ctx.now,
            "window": window,
        },
    )
    found = []
    for t, vip, failed, deferred, status, at in rows:
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
                _at(ctx, t),
                f"VIP {vip}: no failed or deferred mail in {minutes:g} minutes",
            )
        )
    return found


@_rule("logs_stopped", minutes=60, lookback_hours=168)
def _logs_stopped(rule: Rule, ctx: Context) -> list[Finding]:
    minutes = float(rule.options["minutes"])
    lookback = dt.timedelta(hours=float(rule.options["lookback_hours"]))
    rows = _rows(
        ctx,
        f"""
        with {_AT},
        rows as (
            select server, date_time from tracking where date_time > $lo - $lookback
            union all
            select server, date_time from smtp where date_time > $lo - $lookback),
        -- the first and last row of each server's minutes, a minute ending on the minute:
        -- the newest row at or before a whole minute t is the last of the newest minute
        -- whose first row is at or before t (and at now, the last of its newest minute)
        minutes as (
            select server, min(date_time) as first, max(date_time) as last from rows
            group by server, date_trunc('minute', date_time - interval 1 microsecond)),
        servers as (select distinct server from minutes),
        newest as (
            select l.t, l.server, m.last as newest
            from (select t, server from at_, servers) l
            asof join minutes m on l.server = m.server and l.t >= m.first),
        -- what was "now" at t: the newest row of any server
        ref as (select t, max(newest) as ref from newest group by t)
        select t, server, newest, ref from newest join ref using (t)
        where newest < ref - $minutes and newest > ref - $lookback
        order by t, server
        """,
        {
            "at": ctx.at,
            "lo": ctx.at[0],
            "lookback": lookback,
            "minutes": dt.timedelta(minutes=minutes),
        },
    )
    found = []
    for t, server, newest, ref in rows:
        quiet = (ref - newest).total_seconds() / 60
        found.append(
            Finding(
                rule.name,
                server,
                round(quiet, 1),
                f"no log rows from {server} since {_hhmm(newest)} ({quiet:.0f} minutes)",
                _at(ctx, t),
                f"{server} logs again (silent after {_hhmm(newest)}, up to {quiet:.0f} minutes "
                "behind the other servers)",
            )
        )
    return found


#: Where ``no_new_logs`` keeps the newest row it saw and the wall time it first saw it.
_NEWEST_SEEN = "no_new_logs"


@_rule("no_new_logs", windowed=False, minutes=120)
def _no_new_logs(rule: Rule, ctx: Context) -> list[Finding]:
    """The store's newest row has not moved for ``minutes`` of wall-clock time: every log
    stopped at once, which ``logs_stopped`` (a server against the others) cannot see."""
    seen = ctx.memory.get(_NEWEST_SEEN) or {}
    if seen.get("newest") != ctx.now.isoformat() or not seen.get("since"):
        ctx.memory[_NEWEST_SEEN] = {"newest": ctx.now.isoformat(), "since": ctx.wall.isoformat()}
        return []
    quiet = (ctx.wall - dt.datetime.fromisoformat(seen["since"])).total_seconds() / 60
    if quiet < float(rule.options["minutes"]):
        return []
    return [
        Finding(
            rule.name,
            "all logs",
            round(quiet, 1),
            f"no new log rows for {_minutes(quiet)}: the newest is of {_hhmm(ctx.now)}",
            ctx.now,
            f"new log rows again (none had come in for {_minutes(quiet)} or more)",
        )
    ]


@_rule("quarantine", windowed=False)
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
            ctx.now,
            "no new quarantined lines",
        )
    ]


def _minutes(n: float) -> str:
    """A quiet time in words: ``135 minutes``, ``40 seconds`` under a minute."""
    return f"{n:.0f} minutes" if n >= 1 else f"{n * 60:.0f} seconds"


def _hhmm(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
