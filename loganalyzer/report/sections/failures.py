"""Failures: failed recipients by enhanced status (with its meaning), recipient domain,
server and connector; the list of failed recipients grouped by reason, each with the command
that traces its message (and a link to its trace page when one was written)."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd

import eventcodes
from loganalyzer.report.charts import COLORS, Chart, hbar, text
from loganalyzer.report.load import frame
from loganalyzer.report.sections.base import LENGTH, Inputs, Report, Section, Table


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return failures(q.con, q.top, q.limit)


def failures(con: duckdb.DuckDBPyConnection, top: int, limit: int) -> dict[str, pd.DataFrame]:
    """Failed recipients by enhanced status, recipient domain, server and connector; the list."""
    by_status = frame(
        con,
        """
        with texts as (
            select coalesce(enhanced, '') as code, status, count(*) as n
            from fin where kind = 'failed' group by all
        ), example as (  -- the commonest text; on a tie the first in order, for a stable page
            select code, first(status order by n desc, status) as example from texts group by 1
        )
        select code as status, count(*) as recipients, count(distinct msg) as messages,
               any_value(example) as example
        from (select coalesce(enhanced, '') as code, msg from fin where kind = 'failed')
        join example using (code)
        group by 1 order by recipients desc, status
        """,
    )
    by_domain = frame(
        con,
        f"""
        select coalesce(rcpt_domain, '') as domain, count(*) as recipients,
               count(distinct msg) as messages, {LENGTH}
        from fin where kind = 'failed' group by 1 order by recipients desc, domain
        limit {int(top)}
        """,
    )
    by_server = frame(
        con,
        """
        select server, coalesce(connector, '') as connector, count(*) as recipients,
               count(distinct msg) as messages
        from fin where kind = 'failed' group by 1, 2 order by recipients desc, server, connector
        """,
    )
    failed = frame(
        con,
        f"""
        select t as date_time, server, event_id, sender, recipient, subject,
               coalesce(enhanced, '') as status, status as reply, msg as message_id, {LENGTH}
        from fin where kind = 'failed' order by t, msg, rcpt limit {int(limit)}
        """,
    )
    by_status.insert(1, "meaning", [status_meaning(c) for c in by_status["status"]])
    return {
        "failures_by_status": by_status,
        "failures_by_domain": by_domain,
        "failures_by_server": by_server,
        "failed": failed,
    }


def status_meaning(code: str | None) -> str:
    """What an enhanced status code means (eventcodes); empty when unknown."""
    if not code:
        return ""
    try:
        return eventcodes.lookup(code).meaning
    except eventcodes.UnknownCode:
        found = eventcodes.explain_status(code)
        return found[0].meaning if found else ""


def charts(r: Report) -> dict[str, Chart]:
    m = r.metrics
    figs: dict[str, Chart] = {}
    f = m["failures_by_status"]
    if len(f):
        labels = [
            f"{text(c or '(none)')} {text(d, 40)}"
            for c, d in zip(f["status"], f["meaning"], strict=True)
        ]
        figs["failures_by_status"] = hbar(
            f["recipients"], labels, "Failed recipients by status", COLORS["failed"]
        )
    f = m["failures_by_domain"]
    if len(f):
        figs["failures_by_domain"] = hbar(
            f["recipients"],
            [text(d) for d in f["domain"]],
            "Failed recipients by domain",
            COLORS["failed"],
        )
    return figs


def attention(r: Report) -> list[str]:
    failed = r.headline["failed_recipients"]
    if not failed:
        return []
    worst = r.metrics["failures_by_status"].iloc[0]
    code = worst["status"] or "no status code"
    who = "recipient" if failed == 1 else "recipients"
    return [f"{failed:,} {who} failed; most often {code} ({worst['recipients']:,})."]


_ADDRESS = re.compile(r'<?[^\s<>@"]+@[^\s<>"]+>?')
_IP = re.compile(r"\[[0-9A-Fa-f:.]+\](:[0-9]+)?|\b[0-9]{1,3}(\.[0-9]{1,3}){3}(:[0-9]+)?")


@dataclass
class FailureGroup:
    """Failed recipients with one reason: the enhanced status and the reply, with its
    addresses and IPs replaced by placeholders."""

    status: str
    reason: str
    meaning: str
    rows: pd.DataFrame


def failure_groups(report: Report) -> list[FailureGroup]:
    """The listed failed recipients grouped by reason, the largest group first."""
    failed = report.metrics["failed"]
    if not len(failed):
        return []
    meanings = dict(
        zip(
            report.metrics["failures_by_status"]["status"],
            report.metrics["failures_by_status"]["meaning"],
            strict=True,
        )
    )
    reasons = (
        failed["reply"].fillna("").map(lambda t: _IP.sub("<ip>", _ADDRESS.sub("<address>", t)))
    )
    keyed = failed.assign(_status=failed["status"].fillna(""), _reason=reasons)
    groups = [
        FailureGroup(
            status, reason, meanings.get(status, ""), rows.drop(columns=["_status", "_reason"])
        )
        for (status, reason), rows in keyed.groupby(["_status", "_reason"], sort=False)
    ]
    return sorted(groups, key=lambda g: (-len(g.rows), g.status, g.reason))


def trace_command(message_id: str) -> str:
    """The command that traces a message, quoted for a POSIX shell."""
    return f"loganalyzer trace {shlex.quote(message_id)}"


def page(r: Report) -> dict[str, Any]:
    """The failed list's groups and the trace command of each of its messages."""
    failed = r.metrics["failed"]
    return {
        "failure_groups": failure_groups(r),
        "commands": {m: trace_command(m) for m in failed["message_id"].dropna().unique()},
    }


SECTION = Section(
    id="failures",
    title="Failures",
    tables=(
        Table("failures_by_status", "By enhanced status code"),
        Table("failures_by_domain", "By recipient domain", half=True),
        Table("failures_by_server", "By server and connector", half=True),
        Table(
            "failed",
            "Failed recipients",
            # the trace command names the message
            hidden=("message_id",),
            template="report_failed.html.j2",
        ),
    ),
    compute=compute,
    charts=charts,
    attention=attention,
    attention_rank=10,
    problems=10,
    page=page,
)
