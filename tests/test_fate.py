"""The verdict rules of ``loganalyzer.fate`` in Python and as SQL give the same answers.

A trace applies the rules in Python; the daily report and the ``messages`` view run the SQL
that fate renders from the same data. Each rule is checked here both ways, on every event
code the code tables know and on strings built to hit the edges of the patterns; the
expected values are written here (the trace's verdicts themselves are test_verdict.py's).
These run in a second, for a mutation run of fate.py (benchmarks/mutation.py).
"""

from __future__ import annotations

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import eventcodes
from loganalyzer import fate

SERVERS = ["EX01", "EX02"]
#: Rows of each shape a send can take: (connector_id, server_hostname, log_format).
SHAPES = [
    ("EX01\\Internet", "mx.fabrikam.com", "exchange-tracking"),  # out of the organisation
    ("EX01\\Internet", "ex02.contoso.com", "exchange-tracking"),  # to a server of it
    ("Intra-Organization SMTP Send Connector", None, "exchange-tracking"),
    (None, None, "iis-smtp"),  # an IIS relay hands everything on
    (None, None, None),
    ("EX01\\Default EX01", "EX03", "exchange2003-tracking"),
]
#: Every event the code tables know, and one they do not.
EVENTS = sorted(
    {e.code for e in eventcodes.entries("exchange-event")}
    | {e.code for e in eventcodes.entries("exchange2003")}
    | {"NOSUCHEVENT"}
)


_CON = duckdb.connect()


def _sql(expression: str, rows: list[tuple], columns: str) -> list:
    """``expression`` over ``rows`` (a VALUES table with ``columns``), in row order."""
    con = _CON
    con.execute(
        f"create or replace temp table t as select * from (values {_values(rows)}) v({columns})"
    )
    sql = f"select {expression} from (select row_number() over () as i, * from t) order by i"
    return [x for (x,) in con.execute(sql).fetchall()]


def _values(rows: list[tuple]) -> str:
    def lit(v):
        return "null::varchar" if v is None else "'" + str(v).replace("'", "''") + "'"

    return ", ".join("(" + ", ".join(lit(v) for v in r) + ")" for r in rows)


def _python(event, connector, host, log_format) -> tuple[str, str]:
    row = {"connector_id": connector, "server_hostname": host, "log_format": log_format}
    kind = fate.kind_of(event, row, set(SERVERS))
    return kind, fate.verdict_of(event, kind)


def _in_sql(rows: list[tuple]) -> list[tuple[str, str]]:
    """(kind, verdict) of each (event, connector, host, format) row, in SQL; the columns named
    unlike the store's, so that each argument is seen to count."""
    servers = "['" + "', '".join(SERVERS) + "']"
    kind = fate.kind_sql(servers, "ev", "conn", "host_name", "fmt")
    verdict = fate.verdict_sql("ev", kind)
    return [tuple(x) for x in _sql(f"[{kind}, {verdict}]", rows, "ev, conn, host_name, fmt")]


def test_the_sql_reads_the_store_columns_by_default():
    """The store's column names (those of the tracking table) are the defaults; the kind of a
    step is read from ``kind``."""
    rows = [(e, *shape) for e in ("DELIVER", "SEND", "DSN", "RECEIVE") for shape in SHAPES]
    servers = "['" + "', '".join(SERVERS) + "']"
    con = _CON
    con.execute(
        "create or replace temp table t as select * from (values "
        + _values(rows)
        + ") v(event_id, connector_id, server_hostname, log_format)"
    )
    got = con.execute(
        f"select [kind, {fate.verdict_sql()}, {fate.rank_sql()}::varchar] from"
        f" (select *, {fate.kind_sql(servers)} as kind from t)"
    ).fetchall()
    want = [_python(*r) for r in rows]
    assert [tuple(x[:2]) for (x,) in got] == want
    assert [int(x[2]) for (x,) in got] == [fate.RANK[k] for k, _ in want]


def test_the_vocabularies():
    assert fate.VERDICTS == (
        "delivered",
        "sent_external",
        "failed",
        "deferred",
        "dropped",
        "quarantined",
        "moderation",
        "expanded",
        "last_seen",
        "rejected",
    )
    assert fate.OUTCOMES is eventcodes.OUTCOMES  # one owner: the code tables'
    assert set(fate.FINAL.values()) | set(fate.FINAL_2003.values()) < set(fate.VERDICTS)


def test_every_event_in_every_shape_the_same_in_sql():
    rows = [(e, *shape) for e in EVENTS for shape in SHAPES]
    assert _in_sql(rows) == [_python(*r) for r in rows]


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (("DELIVER", None, None, None), ("final", "delivered")),
        (("DUPLICATEDELIVER", None, None, None), ("final", "delivered")),
        (("1031", "x", "mx.fabrikam.com", "exchange2003-tracking"), ("final", "sent_external")),
        (("SEND", "EX01\\Internet", "ex02.contoso.com", None), ("handoff", "last_seen")),
        (("SEND", "EX01\\Internet", "mx.ex01.example", None), ("final", "sent_external")),
        (("SENDEXTERNAL", "intraorganization", None, None), ("handoff", "last_seen")),
        (("SEND", "Client Frontend EX01", None, None), ("handoff", "last_seen")),
        (("SEND", "EX01\\Defaults", None, None), ("final", "sent_external")),
        (("SEND", None, None, "iis-smtp"), ("handoff", "last_seen")),
        (("DSN", None, None, None), ("ignored", "last_seen")),
        (("HARECEIVE", None, None, None), ("ignored", "last_seen")),
        (("RECEIVE", None, None, None), ("pass", "last_seen")),
        (("THROTTLE", None, None, None), ("pass", "last_seen")),
        (("26", None, None, None), ("final", "expanded")),
        (("INITMESSAGECREATED", None, None, None), ("final", "moderation")),
        (("1041", None, None, None), ("final", "quarantined")),
    ],
)
def test_rules_in_sql(row, expected):
    assert _in_sql([row]) == [expected]
    assert _python(*row) == expected


def test_a_final_step_of_an_event_no_rule_ends_is_last_seen():
    assert fate.verdict_of("RECEIVE", "final") == "last_seen"
    assert _sql(fate.verdict_sql("e", "k"), [("RECEIVE", "final")], "e, k") == ["last_seen"]


def test_the_sets_of_events():
    assert {"1020"} == fate.TRANSFER_BEGINS and fate.TRANSFER_BEGINS < fate.SENDS
    assert {"EXPAND"} == fate.EXPANDS
    assert {"REDIRECT", "RESOLVE"} == fate.REDIRECTS
    assert {"iis-smtp"} == fate.RELAY_FORMATS


def test_ranks_in_sql():
    kinds = sorted(fate.RANK)
    assert _sql(fate.rank_sql("k"), [(k,) for k in kinds], "k") == [fate.RANK[k] for k in kinds]
    assert fate.RANK["handoff"] < fate.RANK["pass"] < fate.RANK["final"] < fate.RANK["ignored"]
    assert fate.RANK["expand"] == fate.RANK["redirect"] == fate.RANK["pass"]


def test_in_sql_quotes_its_values():
    assert _sql(fate.in_sql("c", ["O'Brien", "x"]), [("O'Brien",), ("y",)], "c") == [True, False]


STATUSES = [
    ("[{LED=550 5.1.1 User unknown};{MSG=};{FQDN=mx.fabrikam.com}]", "550 5.1.1 User unknown"),
    ("[{LED= 451 4.4.0 DNS query failed }]", "451 4.4.0 DNS query failed"),
    ("{LED=432 4.3.2 Busy}", "432 4.3.2 Busy"),
    ("  550 5.7.1 Relay denied  ", "550 5.7.1 Relay denied"),
    ("[{LED=550 5.1.1 a};{LED=other}]", "550 5.1.1 a"),
    ("{LED=not closed", "{LED=not closed"),
    # a value ending in a brace: the closing brace is the last before the separator
    ("{LED=450 {x}}", "450 {x}"),
    ("[{LED=450 {x}}];{MSG=}]", "450 {x}"),
    ("[{LED=};{MSG=x}]", None),
    ("   ", None),
    ("", None),
    (None, None),
]


@pytest.mark.parametrize(("status", "expected"), STATUSES)
def test_the_error_of_a_status_both_ways(status, expected):
    assert fate.status_text(status) == expected
    assert _sql(fate.status_text_sql("s"), [(status,)], "s") == [expected]


# text near the patterns: LED lists, brackets, connector names, spaces (Python's strip() and
# DuckDB's trim() agree on the space; other white space is not in logs' status fields)
_PIECES = st.sampled_from(
    ["{LED=", "}", ";", "]", "[", "550 5.1.1", " ", "x", "{MSG=", "Default ", "\\", "intra-"]
    + ["organisation", "ORGANIZATION", "Mailbox Transport", "frontend", "ex01", "."]
)
_TEXT = st.lists(_PIECES, max_size=8).map("".join)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(_TEXT, _TEXT), min_size=1, max_size=10))
def test_statuses_and_connectors_the_same_in_sql(pairs):
    statuses = [s for s, _ in pairs]
    assert _sql(fate.status_text_sql("s"), [(s,) for s in statuses], "s") == [
        fate.status_text(s) for s in statuses
    ]
    rows = [("SEND", c, h, "exchange-tracking") for c, h in pairs]
    assert _in_sql(rows) == [_python(*r) for r in rows]


def test_an_iis_send_to_a_public_address_leaves_the_organisation():
    row = {"log_format": "iis-smtp", "server_hostname": "mx.fabrikam.com"}
    assert fate.is_handoff(row, SERVERS)  # no address: the relay hands on, as ever
    assert fate.is_handoff({**row, "server_ip": "10.0.0.25"}, SERVERS)
    assert not fate.is_handoff({**row, "server_ip": "205.188.158.121"}, SERVERS)
    ours = {**row, "server_hostname": "ex02.contoso.com", "server_ip": "205.188.158.121"}
    assert fate.is_handoff(ours, SERVERS)  # a server of the store, at a public address
