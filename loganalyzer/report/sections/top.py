"""Top senders, recipients and their domains, by messages and by bytes; system senders
apart."""

from __future__ import annotations

import duckdb
import pandas as pd

from loganalyzer.report.charts import NEUTRAL, Chart, hbar, text
from loganalyzer.report.load import Context, frame
from loganalyzer.report.metrics import SYSTEM_SENDER_RE
from loganalyzer.report.sections.base import LENGTH, Inputs, Report, Section, Table

_LISTS = (  # name, title
    ("senders", "Senders"),
    ("sender_domains", "Sender domains"),
    ("recipients", "Recipients"),
    ("recipient_domains", "Recipient domains"),
)


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return tops(q.con, q.ctx, q.top)


def tops(con: duckdb.DuckDBPyConnection, ctx: Context, top: int) -> dict[str, pd.DataFrame]:
    """Top senders, recipients and their domains, by messages and by bytes, each with its
    length without the limit (``LENGTH``)."""
    n = int(top)
    out = {}
    fin = "select distinct msg, {col}, size from fin where kind in ('delivered', 'sent')"
    sources = {  # name: (column, its label, the rows: one per message and column value)
        "senders": ("sender_key", "sender", "select msg, sender_key, size from msgs_of($a, $b)"),
        "sender_domains": (
            "sender_domain",
            "domain",
            "select msg, sender_domain, size from msgs_of($a, $b)",
        ),
        "recipients": ("rcpt", "recipient", fin.format(col="rcpt")),
        "recipient_domains": ("rcpt_domain", "domain", fin.format(col="rcpt_domain")),
    }
    a, b = ctx.window()
    orders = {"": "messages desc, bytes desc", "_by_size": "bytes desc, messages desc"}

    def system(col: str) -> str:
        return f"regexp_matches({col}, '{SYSTEM_SENDER_RE}')"

    for name, (col, label, src) in sources.items():
        params = {"a": a, "b": b} if "$a" in src else {}
        people = f"and not {system(col)}" if name == "senders" else ""
        for suffix, order in orders.items():
            out[f"top_{name}{suffix}"] = frame(
                con,
                f"""
                select {col} as {label}, count(distinct msg) as messages,
                       coalesce(sum(size), 0)::bigint as bytes, {LENGTH}
                from ({src}) where {col} is not null and {col} <> '' {people}
                group by 1 order by {order}, 1 limit {n}
                """,
                params,
            )
    out["system_senders"] = frame(
        con,
        f"""
        select sender_key as sender, count(distinct msg) as messages,
               coalesce(sum(size), 0)::bigint as bytes, {LENGTH}
        from msgs_of($a, $b) where {system("sender_key")}
        group by 1 order by messages desc, bytes desc, 1 limit {n}
        """,
        {"a": a, "b": b},
    )
    return out


def charts(r: Report) -> dict[str, Chart]:
    figs: dict[str, Chart] = {}
    for name, title in (
        ("top_sender_domains", "Top sender domains"),
        ("top_recipient_domains", "Top recipient domains"),
    ):
        f = r.metrics[name]
        if len(f):
            labels = [text(d) for d in f["domain"]]
            figs[name] = hbar(f["messages"], labels, f"{title} (messages)", NEUTRAL[1])
    return figs


SECTION = Section(
    id="top",
    title="Top senders and recipients",
    tables=tuple(
        Table(f"top_{name}{suffix}", f"{title} by {by}", half=True)
        for name, title in _LISTS
        for suffix, by in (("", "messages"), ("_by_size", "bytes"))
    )
    + (
        Table(
            "system_senders",
            "System senders (bounces and notices; not in the lists above)",
            half=True,
        ),
    ),
    compute=compute,
    charts=charts,
)
