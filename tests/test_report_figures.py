"""Every figure of the daily report on a small hand-written day whose answers are known.

The day (2026-03-03, UTC) is a dozen-odd messages through one server, EX01, written as
Exchange writes its tracking log; each table of the report is compared with the figures
worked out by hand below. Fast (one ingest and a few reports per session), so that the
report's metrics can be mutation-tested.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from conftest import run_cli
from logfiles import row, write_log

from loganalyzer.ingest import ingest
from loganalyzer.report import daily_report
from loganalyzer.report.sections import (
    changes,
    deferrals,
    failures,
    latency,
    top,
    totals,
    traffic,
)

DAY = "2026-03-03"
NDR = "MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com"
PROBE = "HealthMailbox0123abcd@contoso.com"
INTERNAL = "Intra-Organization SMTP Send Connector"
DNS = "451 4.4.0 DNS query failed"
DNS_IP = "441 4.4.1 Error communicating with [2001:db8::1]:25 and 192.0.2.1"
BUSY = "432 4.3.2 STOREDRV.Deliver; mailbox of eve@contoso.com busy"
NOT_FOUND = "550 5.1.1 RESOLVER.ADR.RecipNotFound; not found"
DENIED = "550 5.4.1 Recipient address rejected: Access denied"
POLICY = "rejected by policy"
RELAY = "550 5.4.1 Relay access denied"
SENDER_POLICY = "550 5.1.20 Sender policy"
ODD = "550 5.9.99 Odd"


class Day:
    """Rows of one server's log, one message at a time."""

    def __init__(self) -> None:
        self.rows: list[dict] = []

    def message(self, mid: str, sender: str, size: int, direction: str, events: list) -> None:
        """``events``: (time, event ID, recipients, statuses, extra fields) of the message."""
        for when, event, rcpts, statuses, extra in events:
            local = event not in ("SEND",)
            values = {
                "date_time": when if "T" in when else f"{DAY}T{when}.000Z",
                "event_id": event,
                "message_id": f"<{mid}>",
                "network_message_id": f"00000000-0000-0000-0000-{len(self.rows):012x}",
                "sender_address": sender,
                "return_path": sender,
                "recipient_address": ";".join(rcpts),
                "recipient_status": ";".join(statuses),
                "recipient_count": str(len(rcpts)),
                "total_bytes": str(size),
                "message_subject": f"About {mid.split('@')[0]}",
                "directionality": direction,
                "server_hostname": "EX01" if local else "",
                "connector_id": "EX01\\Default EX01" if event == "RECEIVE" else "",
                "source": "SMTP" if event in ("RECEIVE", "SEND") else "STOREDRIVER",
            }
            values.update(extra)
            self.rows.append(row(len(self.rows), **values))


def receive(when: str, *rcpts: str) -> tuple:
    return (when, "RECEIVE", list(rcpts), [], {})


def deliver(when: str, *rcpts: str) -> tuple:
    return (when, "DELIVER", list(rcpts), ["250 2.1.5 Recipient OK"] * len(rcpts), {})


def send_out(when: str, rcpt: str, host: str = "mx.example.org") -> tuple:
    extra = {"server_hostname": host, "connector_id": "Internet"}
    return (when, "SEND", [rcpt], ["250 2.6.0 Queued mail for delivery"], extra)


def event(when: str, name: str, rcpts: list[str], status: str = "") -> tuple:
    return (when, name, rcpts, [status] * len(rcpts) if status else [], {})


def previous_day() -> Day:
    d = Day()
    remote = ["far@remote.example", "near@remote.example"]  # one message sent out to two
    d.message(
        "p1@contoso.com",
        "alice@contoso.com",
        1000,
        "Originating",
        [
            receive("2026-03-02T10:00:00.000Z", "bob@contoso.com"),
            deliver("2026-03-02T10:00:01.000Z", "bob@contoso.com"),
        ],
    )
    d.message(
        "p2@contoso.com",
        "alice@contoso.com",
        1100,
        "Originating",
        [
            receive("2026-03-02T11:00:00.000Z", *remote),
            event("2026-03-02T11:00:05.000Z", "DEFER", ["far@remote.example"], DNS),
            (
                "2026-03-02T11:00:10.000Z",
                "SEND",
                remote,
                ["250 2.6.0 Queued"] * 2,
                {"server_hostname": "mx.remote.example", "connector_id": "Internet"},
            ),
        ],  # fmt: skip
    )
    # a null sender without directionality, failed two days later (on the day after)
    d.message("p3@example.com", "", 450, "",
              [receive("2026-03-02T12:00:00.000Z", "late@contoso.com")])  # fmt: skip
    # received before midnight, delivered after it: counted as received the day before
    d.message(
        "m0@fabrikam.com",
        "carol@Fabrikam.com",
        2000,
        "Incoming",
        [receive("2026-03-02T23:50:00.000Z", "bob@contoso.com")],
    )
    return d


def the_day() -> Day:
    d = Day()
    d.message(
        "m0@fabrikam.com",
        "carol@Fabrikam.com",
        2000,
        "Incoming",
        [deliver("00:10:00", "bob@contoso.com")],
    )
    d.message(
        "m1@contoso.com",
        "Alice@Contoso.com",
        3000,
        "Originating",
        [
            receive("01:00:00", "bob@contoso.com", "Dave@Contoso.com"),
            deliver("01:00:30", "bob@contoso.com", "Dave@Contoso.com"),
        ],
    )
    d.message(
        "m2@contoso.com",
        "alice@contoso.com",
        4000,
        "Originating",
        [receive("02:00:00", "x@example.org"), send_out("02:00:10", "x@example.org")],
    )
    d.message(
        "m3@example.net",
        "ext@Example.NET",
        5000,
        "Incoming",
        [
            receive("03:00:00", "bob@contoso.com", "nobody@contoso.com"),
            deliver("03:00:05", "bob@contoso.com"),
            event("03:00:06", "FAIL", ["nobody@contoso.com"], NOT_FOUND),
        ],
    )
    # the bounce of m3: the DSN row (m3's Message-ID, the bounce's as its reference) creates
    # it; then it is sent out to m3's sender
    dsn = (
        "03:00:07",
        "DSN",
        ["ext@example.net"],
        [],
        {"message_id": "<m3@example.net>", "reference": "ndr3@contoso.com"},
    )
    d.message(
        "ndr3@contoso.com",
        NDR,
        6000,
        "Originating",
        [dsn, send_out("03:00:08", "ext@example.net", "mx.example.net")],
    )
    d.message(
        "m4@contoso.com",
        "alice@contoso.com",
        1500,
        "Originating",
        [
            receive("04:00:00", "slow@remote.example"),
            event("04:00:10", "DEFER", ["slow@remote.example"], DNS),
            event("05:00:10", "DEFER", ["slow@remote.example"], DNS),
            send_out("06:00:00", "slow@remote.example", "mx.remote.example"),
        ],
    )
    d.message(  # still deferred at the end of the day
        "m5@contoso.com",
        "bob@contoso.com",
        2500,
        "Originating",
        [
            receive("07:00:00", "stuck@far.example"),
            event("07:00:10", "DEFER", ["stuck@far.example"], DNS),
            event("08:00:10", "DEFER", ["stuck@far.example"], DNS_IP),
        ],
    )
    d.message(
        "m6@evil.example",
        "spam@evil.example",
        8000,
        "Incoming",
        [receive("09:00:00", "bob@contoso.com"), event("09:00:01", "DROP", ["bob@contoso.com"])],
    )
    expand = (
        "10:00:01",
        "EXPAND",
        ["bob@contoso.com", "carol@contoso.com"],
        [],
        {"related_recipient_address": "All@contoso.com"},
    )
    d.message(
        "m7@contoso.com",
        "alice@contoso.com",
        900,
        "Originating",
        [
            receive("10:00:00", "All@contoso.com"),
            expand,
            deliver("10:00:02", "bob@contoso.com", "carol@contoso.com"),
        ],
    )
    # deferred, then handed to another server of the organisation: no longer pending
    d.message(
        "m8@contoso.com",
        "alice@contoso.com",
        700,
        "Originating",
        [
            receive("11:00:00", "eve@contoso.com"),
            event("11:00:05", "DEFER", ["eve@contoso.com"], BUSY),
            (
                "11:00:30",
                "SEND",
                ["eve@contoso.com"],
                ["250 2.6.0 Queued"],
                {"server_hostname": "ex02.contoso.com", "connector_id": INTERNAL},
            ),
        ],
    )
    d.message(
        "m9@contoso.com",
        PROBE,
        300,
        "Originating",
        [receive("12:00:00", PROBE), deliver("12:00:01", PROBE)],
    )
    d.message(
        "m10@example.net",
        "ext@example.net",
        600,
        "Incoming",
        [
            receive("13:00:00", "dave@contoso.com"),
            event("13:00:01", "POISONMESSAGE", ["dave@contoso.com"]),
        ],
    )
    # no directionality: the side from the accepted domains (those of delivered recipients)
    d.message(
        "m11@fabrikam.com",
        "frank@fabrikam.com",
        400,
        "",
        [receive("14:00:00", "bob@contoso.com"), deliver("14:00:01", "bob@contoso.com")],
    )
    d.message(
        "m12@contoso.com",
        "Grace@CONTOSO.com",
        350,
        "",
        [receive("15:00:00", "x@example.org"), send_out("15:00:02", "x@example.org")],
    )
    gone = [f"{x}@gone.example" for x in "abcde"]
    fail = ("16:00:01", "FAIL", gone, [DENIED, DENIED, RELAY, SENDER_POLICY, ODD], {})
    d.message(
        "m13@contoso.com",
        "alice@contoso.com",
        100,
        "Originating",
        [receive("16:00:00", *gone), fail],
    )
    d.message(
        "m14@contoso.com",
        "alice@contoso.com",
        200,
        "Originating",
        [
            receive("17:00:00", "z@odd.example"),
            event("17:00:01", "FAIL", ["z@odd.example"], POLICY),
        ],
    )
    # a null sender without directionality: neither internal nor external
    d.message(
        "m15@example.com",
        "",
        500,
        "",
        [receive("18:00:00", "bob@contoso.com"), deliver("18:00:01", "bob@contoso.com")],
    )
    late = event("2026-03-04T00:30:00.000Z", "FAIL", ["late@contoso.com"], POLICY)
    d.message("p3@example.com", "", 450, "", [late])
    return d


def edge_days() -> Day:
    """Two later days whose figures sit on the tables' thresholds: on 2026-03-05 a latency row
    of exactly one recipient and an unknown side of one message; on 2026-03-06 that message's
    failure, an unknown side with nothing to show beside an internal one."""
    d = Day()
    d.message("i1@contoso.com", "alice@contoso.com", 700, "Originating",
              [receive("2026-03-05T10:00:00.000Z", "bob@contoso.com"),
               deliver("2026-03-05T10:00:02.000Z", "bob@contoso.com")])  # fmt: skip
    gone = ["gone@contoso.com"]
    d.message("x1@example.com", "", 300, "",
              [receive("2026-03-05T11:00:00.000Z", *gone),
               event("2026-03-06T09:00:00.000Z", "FAIL", gone, NOT_FOUND)])  # fmt: skip
    d.message("i2@contoso.com", "alice@contoso.com", 800, "Originating",
              [receive("2026-03-06T10:00:00.000Z", "bob@contoso.com"),
               deliver("2026-03-06T10:00:30.000Z", "bob@contoso.com")])  # fmt: skip
    return d


@pytest.fixture(scope="session")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("figures")
    write_log(base / "EX01" / "MSGTRK2026030210-1.LOG", previous_day().rows)
    write_log(base / "EX01" / "MSGTRK2026030300-1.LOG", the_day().rows)
    write_log(base / "EX01" / "MSGTRK2026030510-1.LOG", edge_days().rows)
    summary = ingest([base / "EX01"], base / "store", final=True)
    assert (summary.exit_code, summary.quarantined) == (0, 0)
    return base / "store"


def records(df: pd.DataFrame) -> list[tuple]:
    return [tuple(None if pd.isna(v) else v for v in r) for r in df.itertuples(index=False)]


def check_grand_totals(report):
    assert list(report.totals.columns) == ["figure", "messages", "recipients", "bytes"]
    assert records(report.totals) == [
        ("received", 16, None, 34050),
        ("delivered", 7, 9, 12100),
        ("sent out", 4, 4, 11850),
        ("failed", 3, 7, 5300),
        ("dropped", 1, 1, 8000),
        ("quarantined", 1, 1, 600),
        ("bounces (NDRs created)", 1, None, 6000),
        ("still deferred", 1, 1, None),
        ("deferred at least once", 3, 3, None),
        ("deferrals (attempts)", None, 5, None),
        ("expanded (lists)", 1, 1, None),
    ]


#: The headline figures of the day and of the day before it.
HEADLINE = {
    "received_messages": (16, 4),
    "bytes_in": (34050, 4550),
    "delivered_recipients": (9, 1),
    "sent_out_recipients": (4, 2),
    "bytes_out": (11850, 1100),
    "failed_recipients": (7, 0),
    "bounces": (1, 0),
    "still_deferred_recipients": (1, 0),
    "deferrals": (5, 1),
    "distinct_senders": (8, 2),
}


def check_headline_and_the_previous_day(report):
    figures = HEADLINE
    assert {k: report.headline[k] for k in figures} == {k: v[0] for k, v in figures.items()}
    assert {k: report.previous[k] for k in figures} == {k: v[1] for k, v in figures.items()}


def check_distinct_senders_recipients_and_domains(report):
    assert list(report.distinct.columns) == ["figure", "count"]
    assert records(report.distinct) == [
        ("senders", 8),
        ("sender domains", 4),
        ("recipients", 14),
        ("recipient domains", 6),
    ]


def check_internal_external_and_unknown_senders(report):
    assert list(report.sides.columns) == ["sender", "messages", "bytes", "delivered", "sent_out"]
    assert records(report.sides) == [
        ("internal", 11, 19550, 5, 4),
        ("external", 4, 14000, 3, 0),
        ("unknown", 1, 500, 1, 0),
    ]


def check_per_hour(report):
    h = report.hourly
    assert list(h.columns) == [
        "hour",
        "received",
        "delivered",
        "sent_out",
        "failed",
        "deferrals",
        "bytes_in",
    ]
    assert len(h) == 24
    assert h.dtypes.iloc[1:].tolist() == ["int64"] * 6  # counts, not 1.0
    assert h["hour"].iloc[0] == pd.Timestamp("2026-03-03T00:00", tz="UTC")
    assert h["hour"].iloc[23] == pd.Timestamp("2026-03-03T23:00", tz="UTC")

    def per_hour(counts: dict[int, int]) -> list[int]:
        return [counts.get(i, 0) for i in range(24)]

    one = dict.fromkeys
    assert h["received"].tolist() == per_hour(
        {**one([1, 2, 4, 7, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18], 1), 3: 2}
    )
    assert h["delivered"].tolist() == per_hour({0: 1, 1: 2, 3: 1, 10: 2, 12: 1, 14: 1, 18: 1})
    assert h["sent_out"].tolist() == per_hour(one([2, 3, 6, 15], 1))
    assert h["failed"].tolist() == per_hour({3: 1, 16: 5, 17: 1})
    assert h["deferrals"].tolist() == per_hour(one([4, 5, 7, 8, 11], 1))
    assert h["bytes_in"].tolist() == per_hour(
        {1: 3000, 2: 4000, 3: 11000, 4: 1500, 7: 2500, 9: 8000, 10: 900, 11: 700, 12: 300}
        | {13: 600, 14: 400, 15: 350, 16: 100, 17: 200, 18: 500}
    )


def test_two_days_summed_per_day(store):
    """The days of a longer report; its per-hour rows are computed once per day."""
    r = daily_report(store, DAY, days=2)
    assert records(r.daily) == [
        ("2026-03-02", 4, 1, 2, 0, 1, 4550),
        ("2026-03-03", 16, 9, 4, 7, 5, 34050),
    ]
    assert list(r.daily.columns) == [
        "day",
        "received",
        "delivered",
        "sent_out",
        "failed",
        "deferrals",
        "bytes_in",
    ]
    assert len(r.hourly) == 48 and r.hourly["received"].sum() == 20


#: What the codes mean (Microsoft's and RFC 3463's words, in the code tables); an unlisted
#: detail code by its class and subject.
M541 = (
    "Exchange Online: relay access denied, or the recipient address was rejected by "
    "directory-based edge blocking (the RFC's X.4.1 means no answer from host)."
)
M511 = (
    "The recipient does not exist in the destination organization (user unknown); Exchange "
    "2007+ text RESOLVER.ADR.RecipNotFound or RESOLVER.ADR.ExRecipNotFound; not found."
)
M5120 = (
    "Permanent failure: the action will not succeed if tried again. The status concerns an "
    "address (of the sender or of a recipient); no more specific detail code applies."
)


def check_failures_by_status_domain_and_server(report):
    assert list(report.failures_by_status.columns) == [
        "status",
        "meaning",
        "recipients",
        "messages",
        "example",
    ]
    # the example of a status is its commonest text
    assert records(report.failures_by_status) == [
        ("5.4.1", M541, 3, 1, DENIED),
        ("", "", 1, 1, POLICY),
        ("5.1.1", M511, 1, 1, NOT_FOUND),
        ("5.1.20", M5120, 1, 1, SENDER_POLICY),
        ("5.9.99", "", 1, 1, ODD),  # no meaning known
    ]
    assert records(report.failures_by_domain) == [
        ("gone.example", 5, 1),
        ("contoso.com", 1, 1),
        ("odd.example", 1, 1),
    ]
    assert records(report.failures_by_server) == [("EX01", "", 7, 3)]


def check_the_failed_recipients(report):
    f = report.failed
    assert list(f.columns) == [
        "date_time",
        "server",
        "event_id",
        "sender",
        "recipient",
        "subject",
        "status",
        "reply",
        "message_id",
    ]
    assert [
        (t.strftime("%H:%M:%S"), *rest) for t, *rest in records(f)
    ] == [
        ("03:00:06", "EX01", "FAIL", "ext@Example.NET", "nobody@contoso.com", "About m3",
         "5.1.1", NOT_FOUND, "<m3@example.net>"),
        ("16:00:01", "EX01", "FAIL", "alice@contoso.com", "a@gone.example", "About m13",
         "5.4.1", DENIED, "<m13@contoso.com>"),
        ("16:00:01", "EX01", "FAIL", "alice@contoso.com", "b@gone.example", "About m13",
         "5.4.1", DENIED, "<m13@contoso.com>"),
        ("16:00:01", "EX01", "FAIL", "alice@contoso.com", "c@gone.example", "About m13",
         "5.4.1", RELAY, "<m13@contoso.com>"),
        ("16:00:01", "EX01", "FAIL", "alice@contoso.com", "d@gone.example", "About m13",
         "5.1.20", SENDER_POLICY, "<m13@contoso.com>"),
        ("16:00:01", "EX01", "FAIL", "alice@contoso.com", "e@gone.example", "About m13",
         "5.9.99", ODD, "<m13@contoso.com>"),
        ("17:00:01", "EX01", "FAIL", "alice@contoso.com", "z@odd.example", "About m14",
         "", POLICY, "<m14@contoso.com>"),
    ]  # fmt: skip


def check_deferral_reasons_hide_addresses_and_ips(report):
    assert records(report.deferral_reasons) == [
        ("4.4.0", DNS, 3, 2, 2, "far.example, remote.example"),
        ("4.3.2", "432 4.3.2 STOREDRV.Deliver; mailbox of <address> busy", 1, 1, 1, "contoso.com"),
        ("4.4.1", "441 4.4.1 Error communicating with <ip> and <ip>", 1, 1, 1, "far.example"),
    ]
    assert list(report.deferral_reasons.columns) == [
        "status",
        "reason",
        "deferrals",
        "recipients",
        "messages",
        "domains",
    ]


def check_pending_at_the_end_of_the_day(report):
    p = report.pending
    assert list(p.columns) == [
        "date_time",
        "server",
        "recipient",
        "sender",
        "subject",
        "since",
        "deferrals",
        "last_error",
        "message_id",
    ]
    assert [
        (t.strftime("%H:%M:%S"), server, rcpt, sender, subj, since.strftime("%H:%M:%S"), *rest)
        for t, server, rcpt, sender, subj, since, *rest in records(p)
    ] == [
        ("08:00:10", "EX01", "stuck@far.example", "bob@contoso.com", "About m5", "07:00:10", 2,
         DNS_IP, "<m5@contoso.com>")
    ]  # fmt: skip


#: Seconds from first receipt to each delivery and sending out of the day.
DELIVERED_S = {0: [1200], 1: [30, 30], 3: [5], 10: [2, 2], 12: [1], 14: [1], 18: [1]}
SENT_S = {2: [10], 3: [1], 6: [7200], 15: [2]}


def _stats(values: list[float]) -> tuple:
    q = np.quantile(values, [0.5, 0.9, 0.99])  # linear, as DuckDB's quantile_cont
    return (len(values), *(pytest.approx(float(x)) for x in q), max(values))


def check_latency_percentiles(report):
    delivered = sum(DELIVERED_S.values(), [])
    sent = sum(SENT_S.values(), [])
    assert list(report.latency.columns) == [
        "recipients_of",
        "recipients",
        "p50",
        "p90",
        "p99",
        "max",
    ]
    assert records(report.latency) == [
        ("all", *_stats(delivered + sent)),
        ("delivered", *_stats(delivered)),
        ("sent out", *_stats(sent)),
    ]
    # by hand, for the median of all: 1 1 1 1 2 2 [2] 5 10 30 30 1200 7200
    assert report.latency["p50"].iloc[0] == 2.0


def check_latency_per_hour(report):
    assert list(report.latency_hourly.columns) == ["hour", "recipients", "p50", "p90", "p99", "max"]
    hours = sorted(set(DELIVERED_S) | set(SENT_S))
    want = [
        (
            pd.Timestamp(f"2026-03-03T{h:02d}:00", tz="UTC"),
            *_stats(DELIVERED_S.get(h, []) + SENT_S.get(h, [])),
        )
        for h in hours
    ]
    assert records(report.latency_hourly) == want


def check_the_slowest(r):
    assert [(s, o, rcpt, snd, m) for _, s, o, rcpt, snd, _, _, m in records(r.slowest)] == [
        (7200.0, "sent out", "slow@remote.example", "alice@contoso.com", "<m4@contoso.com>"),
        (1200.0, "delivered", "bob@contoso.com", "carol@Fabrikam.com", "<m0@fabrikam.com>"),
        (30.0, "delivered", "bob@contoso.com", "Alice@Contoso.com", "<m1@contoso.com>"),
        (30.0, "delivered", "Dave@Contoso.com", "Alice@Contoso.com", "<m1@contoso.com>"),
    ]
    first = records(r.slowest)[0]
    assert first[0].isoformat() == "2026-03-03T06:00:00+00:00"
    assert str(r.slowest["date_time"].dt.tz) == "Europe/London"  # the report's zone
    assert first[5] == "About m4" and first[6].isoformat() == "2026-03-03T04:00:00+00:00"
    assert list(r.slowest.columns) == [
        "date_time",
        "latency_s",
        "outcome",
        "recipient",
        "sender",
        "subject",
        "received_at",
        "message_id",
    ]


TOPS = {
    "top_senders": [
        ("alice@contoso.com", 7, 10400),
        ("ext@example.net", 2, 5600),
        ("spam@evil.example", 1, 8000),
        ("bob@contoso.com", 1, 2500),
        ("frank@fabrikam.com", 1, 400),
        ("grace@contoso.com", 1, 350),
    ],
    "top_senders_by_size": [
        ("alice@contoso.com", 7, 10400),
        ("spam@evil.example", 1, 8000),
        ("ext@example.net", 2, 5600),
        ("bob@contoso.com", 1, 2500),
        ("frank@fabrikam.com", 1, 400),
        ("grace@contoso.com", 1, 350),
    ],
    "top_sender_domains": [
        ("contoso.com", 11, 19550),
        ("example.net", 2, 5600),
        ("evil.example", 1, 8000),
        ("fabrikam.com", 1, 400),
    ],
    "top_sender_domains_by_size": [
        ("contoso.com", 11, 19550),
        ("evil.example", 1, 8000),
        ("example.net", 2, 5600),
        ("fabrikam.com", 1, 400),
    ],
    "top_recipients": [
        ("bob@contoso.com", 6, 11800),
        ("x@example.org", 2, 4350),
        ("ext@example.net", 1, 6000),
        ("dave@contoso.com", 1, 3000),
        ("slow@remote.example", 1, 1500),
        ("carol@contoso.com", 1, 900),
        ("healthmailbox0123abcd@contoso.com", 1, 300),
    ],
    "top_recipients_by_size": [
        ("bob@contoso.com", 6, 11800),
        ("ext@example.net", 1, 6000),
        ("x@example.org", 2, 4350),
        ("dave@contoso.com", 1, 3000),
        ("slow@remote.example", 1, 1500),
        ("carol@contoso.com", 1, 900),
        ("healthmailbox0123abcd@contoso.com", 1, 300),
    ],
    "top_recipient_domains": [
        ("contoso.com", 7, 12100),
        ("example.org", 2, 4350),
        ("example.net", 1, 6000),
        ("remote.example", 1, 1500),
    ],
    "top_recipient_domains_by_size": [
        ("contoso.com", 7, 12100),
        ("example.net", 1, 6000),
        ("example.org", 2, 4350),
        ("remote.example", 1, 1500),
    ],
    "system_senders": [
        (NDR.lower(), 1, 6000),
        (PROBE.lower(), 1, 300),
    ],
}


def check_top_lists(report, n: int):
    for name, want in TOPS.items():
        assert (name, records(report.metrics[name])) == (name, want[:n])
        label = "sender" if "senders" in name else "recipient" if "recipients" in name else "domain"
        assert list(report.metrics[name].columns) == [label, "messages", "bytes"]


# The report is computed in each test rather than once per session: a mutation tool links a
# function to the tests during which it runs, and a session fixture runs in the first only.


def test_the_day(store):
    """Every table of the day's report, against the figures worked out by hand."""
    r = daily_report(store, DAY)
    for check in (
        check_grand_totals,
        check_headline_and_the_previous_day,
        check_distinct_senders_recipients_and_domains,
        check_internal_external_and_unknown_senders,
        check_per_hour,
        check_failures_by_status_domain_and_server,
        check_the_failed_recipients,
        check_deferral_reasons_hide_addresses_and_ips,
        check_pending_at_the_end_of_the_day,
        check_latency_percentiles,
        check_latency_per_hour,
    ):
        check(r)
    check_top_lists(r, 10)


def test_the_day_after_has_nothing_and_compares_with_the_day(store):
    r = daily_report(store, "2026-03-04")
    figures = HEADLINE
    # the recipient deferred on the day, with no row since, is still deferred at this day's
    # end too (the last two days are read), as the queues show it waiting
    assert {k: r.headline[k] for k in figures} == {
        **dict.fromkeys(figures, 0),
        "failed_recipients": 1,
        "still_deferred_recipients": 1,
    }
    assert {k: r.previous[k] for k in figures} == {k: v[0] for k, v in figures.items()}
    assert records(r.totals) == [
        ("received", 0, None, 0),
        *[(kind, 0, 0, 0) for kind in ("delivered", "sent out")],
        ("failed", 1, 1, 450),  # received two days before: no sender side to show
        ("dropped", 0, 0, 0),
        ("quarantined", 0, 0, 0),
        ("bounces (NDRs created)", 0, None, 0),
        ("still deferred", 1, 1, None),
        ("deferred at least once", 0, 0, None),
        ("deferrals (attempts)", None, 0, None),
        ("expanded (lists)", 0, 0, None),
    ]
    assert r.latency.empty and r.slowest.empty and r.sides.empty
    assert records(r.pending) == records(daily_report(store, DAY).pending)


def test_lists_cut_to_the_top(store):
    """Four rows a top list, two of the failed recipients; in London (UTC in March)."""
    r = daily_report(store, DAY, top=4, limit=2, tz="Europe/London")
    assert r.failed["recipient"].tolist() == ["nobody@contoso.com", "a@gone.example"]
    check_the_slowest(r)
    check_top_lists(r, 4)


def test_rows_on_the_thresholds(store):
    """A latency row of one recipient is shown; an unknown side is shown when it has one
    message to show, and left out beside an internal side when it has none."""
    r = daily_report(store, "2026-03-05")
    assert records(r.latency) == [
        ("all", 1, 2.0, 2.0, 2.0, 2.0),
        ("delivered", 1, 2.0, 2.0, 2.0, 2.0),
    ]
    assert records(r.sides) == [("internal", 1, 700, 1, 0), ("unknown", 1, 300, 0, 0)]
    assert "daily" not in r.metrics and len(r.hourly) == 24  # one day: no per-day table
    r = daily_report(store, "2026-03-06")
    assert records(r.sides) == [("internal", 1, 800, 1, 0)]
    assert records(r.latency) == [
        ("all", 1, 30.0, 30.0, 30.0, 30.0),
        ("delivered", 1, 30.0, 30.0, 30.0, 30.0),
    ]
    assert records(r.totals)[3] == ("failed", 1, 1, 300)


def test_the_tables_do_not_hang_on_the_order_the_engine_returns_rows_in(store, monkeypatch):
    """A query without ORDER BY may return its rows in any order (DuckDB works in parallel):
    every table comes out the same when each such result comes reversed."""
    want = daily_report(store, DAY, days=2).metrics

    def reversing(real):
        def frame(con, sql, *args, **kwargs):
            df = real(con, sql, *args, **kwargs)
            return df if "order by" in sql.lower() else df.iloc[::-1].reset_index(drop=True)

        return frame

    for module in (deferrals, failures, latency, top, totals, traffic):
        monkeypatch.setattr(module, "frame", reversing(module.frame))
    got = daily_report(store, DAY, days=2).metrics
    assert list(got) == list(want)
    for name, df in want.items():
        pd.testing.assert_frame_equal(got[name], df, obj=name)


def check_changes(r, flagged: set[str]):
    labels = dict(changes.HEADLINE)
    want = []
    for key, label in changes.HEADLINE:
        value, before = HEADLINE.get(key, (0, 0))
        pct = round((value - before) / before, 4) if before else None
        want.append((label, value, before, value - before, pct, label in flagged))
    assert list(r.changes.columns) == [
        "figure",
        "value",
        "previous",
        "change",
        "change_pct",
        "flagged",
    ]
    assert records(r.changes) == want
    assert {labels[k] for k in ("received_messages", "bytes_in", "bytes_out")} == flagged


def test_changes_against_the_day_before(store):
    """16 messages against 4 (+300%), bytes in 34,050 against 4,550 (+648.35%), bytes out
    11,850 against 1,100: flagged; 9 delivered against 1 is below the minimum of 10."""
    r = daily_report(store, DAY)
    check_changes(r, {"messages received", "bytes in", "bytes out"})
    assert records(r.changes)[1][4] == 6.4835


def test_the_terminal_says_1_message_received(store, tmp_path):
    """2026-03-06 received one message: its headline said "1 messages received"."""
    page = tmp_path / "r.html"
    done = run_cli("report", "daily", "--store", str(store), "--date", "2026-03-06",
                   "--out", str(page), "--traces", "0")  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "Mail flow 2026-03-06 (UTC): 1 message received; recipients: 1 delivered" in said


@pytest.mark.parametrize(
    ("value", "before", "pct", "flagged"),
    [
        (10, 20, -0.5, True),  # half the previous value, the larger one 10 or more
        (10, 5, 1.0, True),  # the larger value exactly the minimum
        (9, 4, 1.25, False),  # below the minimum
        (14, 10, 0.4, False),  # less than half
        (12, 0, None, True),  # from nothing
        (0, 0, None, False),
    ],
)
def test_a_change_is_flagged_at_half_and_ten(value, before, pct, flagged):
    got = changes.changes({"received_messages": value}, {"received_messages": before})
    assert records(got)[0] == ("messages received", value, before, value - before, pct, flagged)
    assert records(got)[1] == ("bytes in", 0, 0, 0, None, False)
    first = changes.changes({"received_messages": value}, None)
    assert records(first)[0] == ("messages received", value, None, None, None, False)
    assert records(first)[1:] == [
        (label, 0, None, None, None, False) for _, label in changes.HEADLINE[1:]
    ]


def test_reasons_cut_to_the_same_label_are_two_bars(tmp_path):
    """Two 4.4.1 reasons that differ after the label's cut were one category of the chart:
    their bars were drawn as one stacked bar. Now one bar a reason, the second label numbered;
    the hover says each whole."""
    common = "441 4.4.1 Error communicating with target host. The last endpoint attempted"
    reasons = [f"{common} was the primary MX", f"{common} was the backup MX"]
    d = Day()
    d.message("m1@contoso.com", "alice@contoso.com", 900, "Originating",
              [receive("09:00:00", "a@far.example", "b@far.example"),
               event("09:00:10", "DEFER", ["a@far.example"], reasons[0]),
               event("09:00:11", "DEFER", ["b@far.example"], reasons[1])])  # fmt: skip
    write_log(tmp_path / "EX01" / "MSGTRK2026030309-1.LOG", d.rows)
    store, page = str(tmp_path / "store"), tmp_path / "r.html"
    done = run_cli("ingest", str(tmp_path / "EX01"), "--store", store, "--final")
    assert done.returncode == 0, done.stderr
    done = run_cli("report", "daily", "--store", store, "--date", DAY, "--out", str(page))
    assert done.returncode == 0, done.stderr
    data = page.read_text(encoding="utf-8").split('id="la-fig-deferral_reasons-data">')[1]
    fig = json.loads(data.split("</script>")[0])
    [bar], axis = fig["data"], fig["layout"]["yaxis"]
    assert len(set(bar["y"])) == 2 and list(bar["x"]) == [1, 1]
    cut = f"4.4.1 {common[:59]}\N{HORIZONTAL ELLIPSIS}"
    assert axis["ticktext"] == [cut, f"{cut} (2)"]  # the labels are cut the same: numbered
    assert sorted(bar["hovertext"]) == sorted(f"4.4.1 {r}" for r in reasons)
