"""Deferrals by reason, and the recipients still pending at the end of the period."""

from __future__ import annotations

import duckdb
import pandas as pd

from loganalyzer.report.charts import COLORS, Chart, hbar, text
from loganalyzer.report.load import Context, frame
from loganalyzer.report.sections.base import LENGTH, Inputs, Report, Section, Table


def compute(q: Inputs) -> dict[str, pd.DataFrame]:
    return {
        "deferral_reasons": deferrals(q.con, q.ctx, q.top),
        "pending": pending(q.con, q.limit),
    }


#: A deferral's reason: its status text (column ``status``) with addresses and IPs replaced.
REASON_SQL = """
    regexp_replace(regexp_replace(regexp_replace(coalesce(status, ''),
        '<?[^\\s<>@"]+@[^\\s<>"]+>?', '<address>', 'g'),
        '\\[[0-9A-Fa-f:.]+\\](:[0-9]+)?', '<ip>', 'g'),
        '\\b[0-9]{1,3}(\\.[0-9]{1,3}){3}(:[0-9]+)?', '<ip>', 'g')
"""


def deferrals(con: duckdb.DuckDBPyConnection, ctx: Context, top: int) -> pd.DataFrame:
    """Deferrals by reason (addresses and IPs of the status text replaced by placeholders)."""
    return frame(
        con,
        f"""
        select coalesce(enhanced, '') as status, {REASON_SQL} as reason, count(*) as deferrals,
               count(distinct (msg, rcpt)) as recipients, count(distinct msg) as messages,
               array_to_string(list(distinct rcpt_domain order by rcpt_domain)[1:5], ', ')
                   as domains, {LENGTH}
        from rev where kind = 'deferred' and date_time >= ? and date_time < ?
        group by 1, 2 order by deferrals desc, status, reason limit {int(top)}
        """,
        ctx.window(),
    )


def pending(con: duckdb.DuckDBPyConnection, limit: int = 200) -> pd.DataFrame:
    """The recipients still pending at the end of the period (``metrics.load_pending``)."""
    sql = (
        f"select *, {LENGTH} from pend "
        f"order by date_time, message_id, lower(recipient) limit {int(limit)}"
    )
    return frame(con, sql)


def charts(r: Report) -> dict[str, Chart]:
    f = r.metrics["deferral_reasons"]
    if not len(f):
        return {}
    reasons = list(zip(f["status"], f["reason"], strict=True))
    labels = [f"{text(c)} {text(why, 60)}" for c, why in reasons]
    whole = [f"{text(c)} {text(why, 1000)}" for c, why in reasons]  # the hover: past the cut
    title, color = "Deferrals by reason", COLORS["deferrals"]
    return {"deferral_reasons": hbar(f["deferrals"], labels, title, color, hover=whole)}


def attention(r: Report) -> list[str]:
    n = r.headline["still_deferred_recipients"]
    return [f"{n:,} {'recipient is' if n == 1 else 'recipients are'} still deferred."] if n else []


SECTION = Section(
    id="deferrals",
    title="Deferrals and pending mail",
    tables=(
        Table("deferral_reasons", "Deferrals by reason"),
        Table("pending", "Still pending at the end of the period"),
    ),
    compute=compute,
    charts=charts,
    attention=attention,
    attention_rank=20,
    problems=20,
)
