"""A trace in the terminal (rich): verdicts first, then the timeline, then the SMTP
conversations of its hops."""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

from rich.console import Console
from rich.table import Table
from rich.text import Text

from loganalyzer.terminal.common import clean, fields, safe, table
from loganalyzer.times import clock
from loganalyzer.trace.model import TraceResult, Verdict

STYLE = {
    "delivered": "green",
    "sent_external": "green",
    "failed": "bold red",
    "deferred": "yellow",
    "moderation": "yellow",
    "dropped": "magenta",
    "quarantined": "magenta",
    "expanded": "cyan",
    "last_seen": "magenta",
    "rejected": "bold red",
}


def _verdict_rows(table: Table, v: Verdict, depth: int = 0) -> None:
    table.add_row(
        Text("  " * depth + clean(v.address)),
        Text(v.verdict.replace("_", " "), style=STYLE.get(v.verdict)),
        Text(clean(v.summary)),
    )
    for m in v.members:
        _verdict_rows(table, m, depth + 1)


def _verdicts(result: TraceResult, candidate: dict) -> Text:
    """A listed message's verdicts in words, each in its colour."""
    counts = result.verdict_counts(candidate)
    if len(counts) < 2:
        verdict = counts[0][0] if counts else None
        return Text(clean(result.verdicts_in_words(candidate)), style=STYLE.get(verdict or ""))
    out = Text()
    for i, (verdict, n) in enumerate(counts):
        out.append(", " if i else "")
        out.append(f"{n} {verdict.replace('_', ' ')}", style=STYLE.get(verdict))
    return out


#: The width of a trace written to a file or pipe (no terminal, no COLUMNS): as wide as its
#: tables need, at least ``PIPED`` and at most ``PIPED_MOST`` (wider, a long EHLO reply or
#: certificate line would set the width of every line).
PIPED = 120
PIPED_MOST = 200


def _wide(console: Console, *tables: Table) -> Console:
    """The console to print ``tables`` on: ``console`` itself on a terminal or with COLUMNS
    set. Written elsewhere, rich's 80 columns squeezed a hop's conversation into a column a
    few characters wide (hundreds of lines): one of the width they need within the bounds,
    each table as wide as its cells (not stretched to the width)."""
    if console.is_terminal or os.environ.get("COLUMNS"):
        return console
    wide = console.options.update_width(PIPED_MOST)
    need = max(console.measure(t, options=wide).maximum for t in tables)
    for t in tables:
        t.expand = False
    width = max(PIPED, min(need, PIPED_MOST))
    return Console(file=console.file, width=width, color_system=console.color_system)


def _attempt(c: dict) -> Text:
    """What the list shows of a refused attempt in place of a subject (none was sent): where
    it was refused and from which client, the row of one refused at connect being else
    blank."""
    stage = c.get("stage")  # (an attempt's alone)
    if not stage:
        return Text("")
    stage = stage.upper() if stage in ("helo", "mail", "rcpt", "data") else stage
    return Text(f"refused at {stage} from {clean(c.get('remote_ip') or '?')}", style="dim")


def _conversation(n: int, e, when) -> Table:
    """The SMTP conversation of the timeline's event ``e``, numbered ``n``: a line of the log a
    line, its time and what was said."""
    t = Table.grid(padding=(0, 1))
    t.title = Text(
        f"SMTP conversation {n}: {e.event_id} {clean(e.source or '')} on {clean(e.server)} at "
        f"{when(e.date_time)}",
        style="bold",
    )
    t.title_justify = "left"
    t.add_column(style="dim")
    t.add_column(overflow="fold")
    for c in e.conversation:
        t.add_row(when(c.date_time)[11:], Text(clean(c.text())))
    return t


def print_trace(
    console: Console, result: TraceResult, conversation: bool = True, first: int = 1, of: int = 1
) -> None:
    """The list of matching messages, or each traced message: its head, verdicts, timeline and
    (with ``conversation``) its SMTP conversations. Traced messages are counted from ``first``,
    each headed "n of ``of``" when ``of`` is more than one (a page of ``trace --all``)."""
    zone = ZoneInfo(result.tz)

    def when(t) -> str:
        return clock(t, zone)

    if not result.messages:
        if not result.candidates:
            console.print(clean(result.not_found()), highlight=False, markup=False)
            return
        t = table(
            "#",
            "first seen",
            "sender",
            "recipients",
            "subject",
            "verdicts",
            title=f"{result.total:,} messages match (times in {result.tz})",
        )
        for i, c in enumerate(result.candidates, 1):
            rcpts = c.get("recipients") or []
            shown = ", ".join(rcpts[:3]) + (f" +{len(rcpts) - 3}" if len(rcpts) > 3 else "")
            t.add_row(
                str(i),
                result.first_seen(c),
                safe(c.get("sender")),
                safe(shown),
                safe(c.get("subject")) or _attempt(c),
                _verdicts(result, c),
            )
        _wide(console, t).print(t)
        if result.cut:
            console.print(
                f"showing the first {len(result.candidates):,} of {result.total:,}; "
                "--limit N or --all to see more",
                highlight=False,
            )
        console.print("Trace one with --pick N, or each with --all.")
        return
    for n, m in enumerate(result.messages, first):
        if of > 1:
            console.rule(f"[bold]{n:,} of {of:,}[/bold]")
        head = fields(
            (
                ("Message-ID", m.message_id),
                ("Network ID", m.network_message_id),
                ("Queue ID", m.queue_id),
                ("Subject", m.subject),
                ("Sender", m.sender),
                ("Received", f"{when(m.received_at)} {result.tz}" if m.received_at else None),
                ("Size", f"{m.size:,} bytes" if m.size else None),
                (m.notices_label, ", ".join(m.ndr_message_ids) or None),
            )
        )
        verdicts = table(
            "recipient",
            "verdict",
            "what happened",
            title="Verdict per recipient",
            title_justify="left",
        )
        for v in m.recipients:
            _verdict_rows(verdicts, v)
        timeline = table(
            "time",
            "server",
            "event",
            "from / to",
            "recipients",
            title=f"Timeline ({result.tz})",
            title_justify="left",
        )
        talks = [e for e in m.events if e.conversation] if conversation else []
        for e in m.events:
            event = Text(e.event_id, style="bold")
            event.append(f" {clean(e.source or '')}\n", style="dim")
            note = f" ({m.notice_word})" if e.is_ndr else ""
            event.append(clean(e.name or e.meaning) + note, style="dim")
            if e.internal_id_changed:  # (here, not under the server: that column stays narrow)
                event.append(f"\nnew internal ID {clean(e.internal_message_id)}", style="red")
            if e in talks:  # its lines are below the timeline: a row reads at a glance
                event.append(f"\nconversation {talks.index(e) + 1} below", style="dim")
            hop = clean(e.client or "") + (f" -> {clean(e.server_host)}" if e.server_host else "")
            if e.connector:
                hop += f"\n[{clean(e.connector)}]"
            rcpts = Text()
            for i, r in enumerate(e.recipients):
                rcpts.append(("\n" if i else "") + clean(r["address"]))
                if r.get("status"):
                    rcpts.append(f" {clean(r['status'])}", style="yellow")
            cells = [Text(when(e.date_time)), Text(clean(e.server)), event, Text(hop), rcpts]
            timeline.add_row(*cells, style="dim" if e.is_ndr else None)
        shown = [_conversation(n, e, when) for n, e in enumerate(talks, 1)]
        _wide(console, verdicts, timeline, *shown).print(head, verdicts, timeline, *shown)
        for x in m.missing_logs:
            after = x["after"]
            after = datetime.fromisoformat(after) if isinstance(after, str) else after
            console.print(
                f"[magenta]missing logs:[/magenta] {safe(x['server'] or 'next hop')} "
                f"after {when(after)} ({result.tz})",
                highlight=False,
            )
