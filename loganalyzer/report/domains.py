"""The organisation's accepted domains: those given, else inferred from the whole store.

Mailboxes live in accepted domains, so the domains of delivered recipients are the guess.
It is read over the whole store, not the period: a quiet day (one delivery) would otherwise
give one domain, and the SMTP clients section, which covers the whole store, would call the
organisation's own servers relays to the others. From the day rollups' ``delivered_to``
rows where they are current (or kept), from the tracking rows of the other days.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from loganalyzer.read.query import connect
from loganalyzer.store import rollups
from loganalyzer.store.duck import domain_sql, open_connection, read_parquet

if TYPE_CHECKING:
    from loganalyzer.store import Store

#: Delivered recipients under which a guess of the accepted domains is too thin to call a
#: client a relay on (a store of a quiet day or two).
MIN_DELIVERED = 20


@dataclass(frozen=True)
class Accepted:
    """The accepted domains, whether they were inferred, and from how many delivered
    recipients (None when given)."""

    domains: list[str]
    inferred: bool = False
    delivered: int | None = None

    @property
    def thin(self) -> bool:
        """Whether the domains are a guess from too few deliveries to call a client a relay
        on (fewer than ``MIN_DELIVERED``)."""
        return self.inferred and (self.delivered or 0) < MIN_DELIVERED

    @property
    def relay_domains(self) -> list[str]:
        """The domains a client's recipients are judged against (a relay sends outside
        them): none when the domains are a thin guess, so that none is called a relay."""
        return [] if self.thin else self.domains


NONE = Accepted([])


def decide(st: Store, given: list[str] | None) -> Accepted:
    """The accepted domains of a report: ``given`` (normalised), else inferred from the
    delivered recipients of the whole store (see the module docstring)."""
    if given:
        return Accepted(sorted({d.strip().lower().lstrip("@") for d in given}))
    con = open_connection(st)
    try:
        manifest = st.last_manifest or st.manifest(con)
        index = rollups.load(st, con=con)
        days = rollups.row_days(manifest)
        state = rollups.status(st, manifest, index, days=days)
        done = sorted(set(state["current"]) | set(state["kept"]))
        counts: dict[str, int] = {}
        if done:
            parts = read_parquet([st.uri(index[d].part) for d in done])
            sql = (
                f"select key2, sum(messages) from {parts} where measure = 'delivered_to' "
                "and coalesce(key2, '') <> '' group by 1"
            )
            counts.update(dict(con.execute(sql).fetchall()))
    finally:
        con.close()
    rest = sorted(set(days) - set(done))
    if rest:
        rows = connect(st, only=rollups.files_of(manifest, set(rest)), manifest=manifest)
        dates = ", ".join(f"date '{dt.date.fromisoformat(d).isoformat()}'" for d in rest)
        try:
            sql = f"""
                select d, count(*) from (
                    select {domain_sql("r")} as d from (
                        select unnest(recipient_address) as r from tracking
                        where outcome = 'delivered' and date in ({dates})))
                where coalesce(d, '') <> '' group by 1"""
            for d, n in rows.execute(sql).fetchall():
                counts[d] = counts.get(d, 0) + n
        finally:
            rows.close()
    return Accepted(sorted(counts), inferred=True, delivered=int(sum(counts.values())))
