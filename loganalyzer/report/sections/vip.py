"""VIP watch: every failure, deferral and slow delivery of mail to or from the addresses of a
VIP list (``--vip FILE``), at the top of the page; absent without a list.

This module owns the VIP file's format (``read_vips``), read by watch's ``vip`` rule too.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from loganalyzer.errors import BadInput
from loganalyzer.report.load import frame
from loganalyzer.report.sections.base import LENGTH, Inputs, Report, Section, Table

#: Deliveries slower than this are listed by default (seconds).
LATENCY = 300.0


def read_vips(path: str | os.PathLike[str]) -> list[str]:
    """The addresses of a VIP file, lower case, sorted: one a line; blank lines and ``#``
    comments are skipped. BadInput for a file that cannot be read, a line that is not an
    address, or a file without any."""
    try:
        text = Path(path).read_text("utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        raise BadInput(f"--vip {path}: cannot read it ({why})") from None
    vips = []
    for number, line in enumerate(text.splitlines(), 1):
        address = line.split("#", 1)[0].strip().lower()
        if not address:
            continue
        if "@" not in address or " " in address:
            raise BadInput(f"--vip {path}: line {number} {line.strip()!r} is not a mail address")
        vips.append(address)
    if not vips:
        raise BadInput(
            f"--vip {path}: no address in it; give one address a line "
            "(blank lines and # comments are skipped)"
        )
    return sorted(set(vips))


def vip_list(vips: str | os.PathLike[str] | Iterable[str] | None) -> tuple[str, ...]:
    """A VIP file's addresses (a path) or the addresses given, lower case; () for None."""
    if vips is None:
        return ()
    if isinstance(vips, (str, os.PathLike)):
        return tuple(read_vips(vips))
    return tuple(sorted({a.strip().lower() for a in vips if a and a.strip()}))


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    if not q.vips:
        return {}
    params = {
        "vips": list(q.vips),
        "latency": q.vip_latency,
        "start": q.ctx.period.start,
        "end": q.ctx.period.end,
    }
    q.con.execute(
        """
        create or replace temp table vipev as
        with ev as (
            select 'failed' as event, t as date_time, server, msg, rcpt, recipient,
                   enhanced as status, status as reply, null::bigint as deferrals,
                   null::double as latency_s
            from fin where kind = 'failed'
            union all
            select 'slow', t, server, msg, rcpt, recipient, null, null, null, latency_s
            from fin where kind in ('delivered', 'sent') and latency_s > $latency
            union all
            select 'deferred', min(date_time), arg_min(server, date_time), msg, rcpt,
                   arg_min(recipient, date_time), arg_max(enhanced, date_time),
                   arg_max(status, date_time), count(*), null
            from rev where kind = 'deferred' and date_time >= $start and date_time < $end
            group by msg, rcpt)
        select e.date_time, e.event,
               if(list_contains($vips, e.rcpt), 'to', 'from') as direction, a.sender,
               e.recipient, e.server, coalesce(e.status, '') as status, e.reply, e.deferrals,
               e.latency_s, a.subject, e.msg as message_id
        from ev e left join attrs a using (msg)
        where list_contains($vips, e.rcpt) or list_contains($vips, a.sender_key)
        """,
        params,
    )
    events = frame(
        q.con,
        f"""
        select *, {LENGTH} from vipev order by date_time, message_id, lower(recipient), event
        limit {int(q.limit)}
        """,
    )
    counts = frame(
        q.con,
        """
        select event, direction, count(*) as recipients, count(distinct message_id) as messages
        from vipev group by event, direction
        order by case event when 'failed' then 0 when 'deferred' then 1 else 2 end, direction
        """,
    )
    return {"vip_counts": counts, "vip_events": events}


def _latency(seconds: float) -> str:
    s = float(seconds)
    return f"{s / 60:g} min" if s >= 60 else f"{s:g} s"


def note(r: Report) -> str:
    latency = _latency(r.vip_latency_s if r.vip_latency_s is not None else LATENCY)
    return (
        f"Mail to or from the VIP list: failures, deferrals and deliveries slower than {latency}."
    )


def attention(r: Report) -> list[str]:
    counts = r.metrics.get("vip_counts")
    if counts is None or not len(counts):
        return []
    n = counts.groupby("event")["recipients"].sum()
    latency = _latency(r.vip_latency_s if r.vip_latency_s is not None else LATENCY)
    words = {"failed": "failed", "deferred": "deferred", "slow": f"slower than {latency}"}
    parts = [f"{int(n[e]):,} {w}" for e, w in words.items() if e in n]
    return [f"VIP mail: {', '.join(parts)} (recipients)."]


SECTION = Section(
    id="vip",
    title="VIP watch",
    tables=(
        Table("vip_counts", "VIP mail by event"),
        Table("vip_events", "Failures, deferrals and slow deliveries"),
    ),
    compute=compute,
    note=note,
    attention=attention,
    attention_rank=0,
    problems=0,
    rules={
        "vip": "VIP watch (--vip FILE, one address a line, compared case-insensitively): mail "
        "to or from the listed addresses. Failed: each failed recipient (as Failures counts "
        "them); deferred: each recipient deferred in the period, at its first DEFER there, "
        "with the number of DEFER rows and the last reply; slow: each recipient delivered or "
        "sent out whose latency (as Latency counts it) exceeds --vip-latency (5 minutes by "
        "default). Direction: to a VIP, else from one.",
    },
)
