"""The header analysis in the terminal (rich); every header value passes through ``clean``."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from loganalyzer.headers.model import HeaderAnalysis
from loganalyzer.terminal.common import clean, fields, table
from loganalyzer.times import duration

RESULT_STYLE = {
    "pass": "green",
    "bestguesspass": "green",
    "fail": "bold red",
    "softfail": "red",
    "permerror": "red",
    "softpass": "yellow",
    "neutral": "yellow",
    "temperror": "yellow",
}
VERDICT_STYLE = {"delivered": "green", "sent_external": "green", "failed": "bold red"}


def _t(value: object, style: str | None = None) -> Text:
    """A cell from header text: control characters gone, never read as rich markup."""
    return Text(clean(value), style=style or "")


def _table(*columns: str, title: str | Text) -> Table:
    return table(*columns, title=title, title_justify="left")


def print_headers(console: Console, result: HeaderAnalysis) -> None:
    """Head, verdicts, hops, antispam fields, bounce, then the joined timeline and verdicts."""
    zone = ZoneInfo(result.tz)

    def when(t) -> str:
        return t.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if t else ""

    original = result.original_message_id
    head = fields(
        (
            ("Subject", result.subject),
            ("From", result.sender),
            ("To", result.to),
            ("Date", f"{when(result.date)} {result.tz}" if result.date else None),
            ("Message-ID", result.message_id),
            ("Network ID", result.network_message_id),
            ("Bounce", f"reported by {result.reporting_mta or '?'}" if result.is_bounce else None),
            ("Original", original),
        )
    )
    console.print(head)
    for note in result.notes:
        console.print(Text(f"note: {clean(note)}", style="dim"))

    auth = _table("check", "result", "details", "what it means", title="Authentication")
    for method, a in result.verdict_lines():
        name = method.upper() if method != "compauth" else method
        if a is None:
            auth.add_row(name, _t("-", "dim"), _t("not stated", "dim"), "")
            continue
        detail = _t(" ".join(a.line().split()[1:]))
        detail.append(f"\nfrom {clean(a.header)}", style="dim")
        meaning = _t("\n".join(x for x in [a.meaning, *a.notes] if x))
        auth.add_row(name, _t(a.result, RESULT_STYLE.get(a.result)), detail, meaning)
    console.print(auth)

    if result.hops:
        console.print(_hops(result, result.hops, when, "Hops, oldest first"))
    else:  # as the page says it (an empty table of wide columns said nothing)
        console.print("Hops: no Received header.")
    if result.antispam:
        spam = _table("header", "field", "value", "what it means", title="Antispam")
        for f in result.antispam:
            spam.add_row(_t(f.header, "dim"), _t(f.field), _t(f.value), _t(f.meaning))
        console.print(spam)
    if result.is_bounce:
        bounce = _table("recipient", "status", "diagnostic", "what it means", title="Bounce")
        for b in result.bounce:
            bounce.add_row(_t(b.recipient), _t(b.status, "red"), _t(b.diagnostic), _t(b.meaning))
        console.print(bounce)
        if result.original and result.original.hops:
            title = _t(f"The original message{f' {original}' if original else ''}: its hops")
            console.print(_hops(result, result.original.hops, when, title))
    _print_join(console, result, when)


def _hops(result: HeaderAnalysis, hops, when, title: str | Text) -> Table:
    t = _table("#", f"time ({result.tz})", "delay", "from", "by", "with", "TLS", title=title)
    for i, h in enumerate(hops, 1):
        delay = Text(duration(h.delay_s))
        if h.clock_skew:
            delay.append(" clock skew", style="bold red")
        tls = ""
        if h.tls is not None:
            tls = clean(h.tls.get("version") or "TLS")
            tls += f"\n{clean(h.tls['cipher'])}" if h.tls.get("cipher") else ""
        by = clean(h.by) + (f"\nvia {clean(h.via)}" if h.via else "")
        t.add_row(
            str(i),
            _t(when(h.date_time) or h.date_text or "no date"),
            delay,
            _t(h.sender_text),
            _t(by),
            _t((h.protocol or "") + (f"\nid {h.id}" if h.id else "")),
            _t(tls),
        )
    return t


def _print_join(console: Console, result: HeaderAnalysis, when) -> None:
    if result.trace is None:
        if missed := result.not_found():
            console.print(Text(clean(missed)))
        return
    t = _table("time", "from", "server", "what", title=f"Timeline: headers and logs ({result.tz})")
    label = {"log": "log", "header": "Received", "original-header": "original"}
    for e in result.timeline():
        what = Text(clean(e.what), style="bold" if e.source == "log" else None)
        if e.flag:
            what.append(f" [{e.flag}]", style="red" if e.flag == "clock skew" else "dim")
        if e.detail:
            what.append("\n" + clean(e.detail), style="dim")
        t.add_row(when(e.date_time), label[e.source], _t(e.server), what)
    console.print(t)
    v = _table("recipient", "verdict", "what happened", title="Verdict per recipient (logs)")
    for m in result.trace.messages:
        for r in m.recipients:
            for x in r.flatten():
                v.add_row(
                    _t(x.address),
                    _t(x.verdict.replace("_", " "), VERDICT_STYLE.get(x.verdict)),
                    _t(x.summary),
                )
    console.print(v)
