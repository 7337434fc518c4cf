"""The Received parser rule by rule, with exact values: dates and their zones, where the date
starts, the clauses, IP literals, TLS and the delays of a chain (test_headers.py checks real
headers end to end; these are the cases that are rare in them, and fast enough for a mutation
run)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from loganalyzer.headers.received import chain, parse_date, parse_received, split_date


def _utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Mon, 2 Mar 2026 10:00:00 -0330", (_utc(2026, 3, 2, 13, 30), False)),  # Newfoundland
        ("Mon, 2 Mar 2026 10:00:00 +0530", (_utc(2026, 3, 2, 4, 30), False)),  # India
        ("2 Mar 2026 10:00 +0045", (_utc(2026, 3, 2, 9, 15), False)),  # no seconds
        ("Tue, 2 Mar 49 10:00:00 +0000", (_utc(2049, 3, 2, 10), False)),  # RFC 5322 4.3
        ("2 Mar 50 10:00:00 GMT", (_utc(1950, 3, 2, 10), False)),
        ("2 Mar 99 10:00:00 EST", (_utc(1999, 3, 2, 15), False)),
        ("2 Mar 00 10:00:00 PDT", (_utc(2000, 3, 2, 17), False)),
        ("2 Mar 2026 10:00:00 XYZ", (_utc(2026, 3, 2, 10), True)),  # unknown zone: UTC, flagged
        ("2 Mar 2026 10:00:00 XYZ (UTC)", (_utc(2026, 3, 2, 10), False)),
        ("2 Mar 2026 10:00:00", (_utc(2026, 3, 2, 10), True)),
        ("30 Feb 2026 10:00:00 +0000", (None, False)),
        ("2026-03-02T10:00:00+05:30", (_utc(2026, 3, 2, 4, 30), False)),
        ("2026-03-02 10:00:00.25 -0330", (_utc(2026, 3, 2, 13, 30, 0, 250000), False)),
        ("2026-03-02T10:00:00", (_utc(2026, 3, 2, 10), True)),
        ("2026-03-02 10:00:00 UTC", (_utc(2026, 3, 2, 10), False)),
        ("2026-03-02 10:00:00 (UTC)", (_utc(2026, 3, 2, 10), False)),
        ("2026-03-02T10:00:00Z", (_utc(2026, 3, 2, 10), False)),
        ("2026-02-30T10:00:00Z", (None, False)),
        ("2 Mar 2026 10:00:00 +1400", (_utc(2026, 3, 1, 20), False)),  # Kiribati, the last zone
        ("2 Mar 2026 10:00:00 +9900", (None, False)),  # no zone is 99 hours from UTC
        ("2 Mar 2026 10:00:00 -0075", (None, False)),
        ("2026-03-02T10:00:00+15:00", (None, False)),
        ("no date", (None, False)),
        ("", (None, False)),
        (None, (None, False)),
    ],
)
def test_dates_and_their_zones(text, expected):
    assert parse_date(text) == expected


DATE = "Mon, 2 Mar 2026 10:00:00 +0000"
LATER = "2 Mar 2026 11:00 +0000"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("from a; by b; " + DATE, ("from a; by b", DATE)),
        ("by x;" + DATE, ("by x", DATE)),
        (";" + DATE, ("", DATE)),
        # a weekday date in a comment does not hide the date after the last ";"
        ("by a (" + DATE + ");" + LATER, ("by a (" + DATE + ")", LATER)),
        # no ";": the date starts at its weekday (SendGrid)
        ("by x with SMTP " + DATE, ("by x with SMTP ", DATE)),
        ("by x with SMTP Mon, later", ("by x with SMTP Mon, later", None)),
        ("by x with SMTP id 42", ("by x with SMTP id 42", None)),
        # a ";" without a date after it: the text is kept as the date text
        ("by x;no date", ("by x", "no date")),
        (";no date", ("", "no date")),
        ("by x id 1;  ", ("by x id 1", None)),
    ],
)
def test_where_the_date_starts(value, expected):
    assert split_date(value) == expected


def _hop(**fields) -> dict:
    empty = dict.fromkeys(
        "from_name from_ip by protocol tls id date_time delay_s by_ip via for since_first_s"
        " date from_helo from_rdns".split()
    )
    return {**empty, "clock_skew": False, "tz_assumed": False, **fields}


EXCHANGE = (
    "from mail.fabrikam.com (mail.fabrikam.com [IPv6:2001:db8::25]) by EX01.contoso.com "
    "(10.0.0.1) with Microsoft SMTP Server (version=TLS1_2, "
    "cipher=TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384) id 15.2.1118.40 via Frontend Transport "
    "for <Anna.Berg@contoso.com>; Mon, 2 Mar 2026 10:00:00 -0330"
)


EXIM = (
    "from mail.example.org ([192.0.2.7]) by mx.example.net with esmtpsa (TLS1.3) tls "
    "TLS_AES_256_GCM_SHA384 (Exim 4.96) (envelope-from <a@example.org>) id 1vXyZ-000abc-2Q; "
    "Mon, 02 Mar 2026 10:00:00 +0000"
)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            EXCHANGE,
            _hop(
                from_name="mail.fabrikam.com",
                from_ip="2001:db8::25",
                from_helo="mail.fabrikam.com",
                from_rdns="mail.fabrikam.com",
                by="EX01.contoso.com",
                by_ip="10.0.0.1",
                protocol="Microsoft SMTP Server",
                tls={"version": "TLS1_2", "cipher": "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384"},
                id="15.2.1118.40",
                via="Frontend Transport",
                date_time="2026-03-02T13:30:00.000Z",
                date="Mon, 2 Mar 2026 10:00:00 -0330",
                raw=EXCHANGE,
                **{"for": "Anna.Berg@contoso.com"},
            ),
        ),
        (
            # the literal is the address: an IP written before it in the comment is not
            "from x (1.2.3.4 [ipv6:2001:db8::7]) by <X1.contoso.com> ([fe80::1%14])"
            " with ESMTPS id <XYZ@ex01>;  2026-03-02T10:00:00",
            _hop(
                from_name="x",
                from_ip="2001:db8::7",
                from_helo="x",  # "1.2.3.4" before the literal is no reverse name
                by="<X1.contoso.com>",  # only for and id lose their angle brackets
                by_ip="fe80::1%14",
                protocol="ESMTPS",
                tls={"version": None, "cipher": None},  # the S of ESMTPS
                id="XYZ@ex01",
                date_time="2026-03-02T10:00:00.000Z",
                date="2026-03-02T10:00:00",
                tz_assumed=True,
                raw="from x (1.2.3.4 [ipv6:2001:db8::7]) by <X1.contoso.com> ([fe80::1%14])"
                " with ESMTPS id <XYZ@ex01>; 2026-03-02T10:00:00",
            ),
        ),
        (
            # Exim (its spec, "Received: header line"): the TLS version in a comment, then
            # "tls" and the cipher, after the protocol
            EXIM,
            _hop(
                from_name="mail.example.org",
                from_ip="192.0.2.7",
                from_helo="mail.example.org",
                by="mx.example.net",
                protocol="esmtpsa",
                tls={"version": "TLS1.3", "cipher": "TLS_AES_256_GCM_SHA384"},
                id="1vXyZ-000abc-2Q",
                date_time="2026-03-02T10:00:00.000Z",
                date="Mon, 02 Mar 2026 10:00:00 +0000",
                raw=EXIM,
            ),
        ),
        (
            "from [192.0.2.7] by mx (helo (a (b) c)) with esmtp (version=TLS1_3) id 1",
            _hop(
                from_name="[192.0.2.7]",
                from_ip="192.0.2.7",
                from_helo="[192.0.2.7]",
                by="mx",
                protocol="esmtp",
                tls={"version": "TLS1_3", "cipher": None},
                id="1",
                raw="from [192.0.2.7] by mx (helo (a (b) c)) with esmtp (version=TLS1_3) id 1",
            ),
        ),
        (
            "by mx with smtp(a b)c (cipher=AES256) id a)b c",
            _hop(
                by="mx",
                protocol="smtp(a b)c",  # a comment inside a word stays in the word
                tls={"version": None, "cipher": "AES256"},
                id="a)b",
                raw="by mx with smtp(a b)c (cipher=AES256) id a)b c",
            ),
        ),
        (
            # a word's own (comment) with a space stays in it; a nested comment is one
            "by mx(a b)c with esmtp (a (b) c) d via XFrontend",
            _hop(
                by="mx(a b)c",
                protocol="esmtp d",
                via="XFrontend",
                raw="by mx(a b)c with esmtp (a (b) c) d via XFrontend",
            ),
        ),
        (
            "by mx [10.1.2.3] (unclosed",
            _hop(by="mx", raw="by mx [10.1.2.3] (unclosed"),
        ),
    ],
)
def test_a_received_header_as_a_hop(value, expected):
    assert parse_received(value).to_dict() == expected


def _chain(*stamps: str | None) -> list[tuple]:
    """(delay, since first, clock skew) of hops stamped oldest first."""
    values = [f"by mx{i}" + (f"; {s}" if s else "") for i, s in enumerate(stamps)]
    return [(h.delay_s, h.since_first_s, h.clock_skew) for h in chain(values[::-1])]


def test_delays_and_clock_skew_of_a_chain():
    day = "Mon, 2 Mar 2026 10:00:"
    assert _chain(None, f"{day}00 +0000", f"{day}00.1234 +0000", f"{day}00 +0000") == [
        (None, None, False),  # no date: no delay, and the next dated hop is the first
        (None, 0.0, False),
        (0.123, 0.123, False),
        (-0.123, 0.0, False),  # whole seconds after a fraction: rounding, not skew
    ]
    assert _chain(f"{day}00.5 +0000", f"{day}00.2 +0000")[1] == (-0.3, -0.3, True)
    assert _chain(f"{day}01.0 +0000", f"{day}00 +0000")[1] == (-1.0, -1.0, True)
    assert _chain(f"{day}01.5 +0000", f"{day}00 +0000")[1] == (-1.5, -1.5, True)
    assert _chain(f"{day}00 +0000", f"{day}00 +0000")[1] == (0.0, 0.0, False)
    assert _chain(f"{day}00.0 +0000", f"{day}00.5 +0000")[1] == (0.5, 0.5, False)
    assert _chain(f"{day}00 +0000", f"{day}00.1234 +0000")[1] == (0.123, 0.123, False)


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        # Postfix: HELO name, then (reverse name [IP]); the same name is said once
        (
            "from mail.example.com (mail.example.com [203.0.113.5]) by mx",
            "mail.example.com [203.0.113.5]",
        ),
        # Gmail: the reverse name with its root dot, differing from the HELO name
        (
            "from helo.example.net (rdns.example.net. [198.51.100.7]) by mx.google.com",
            "rdns.example.net [198.51.100.7] (HELO helo.example.net)",
        ),
        # Postfix, no reverse name: the literal HELO is the IP
        ("from [198.51.100.40] (unknown [198.51.100.40]) by mx", "unknown [198.51.100.40]"),
        # Exim: no reverse name, the HELO labelled in a comment
        ("from [203.0.113.5] (helo=x) by relay with esmtp", "[203.0.113.5] (HELO x)"),
        (
            "from rdns.example.org ([203.0.113.5] helo=x) by relay",
            "rdns.example.org [203.0.113.5] (HELO x)",
        ),
        # qmail
        ("from unknown (HELO x) (203.0.113.5) by q with SMTP", "unknown [203.0.113.5] (HELO x)"),
        # Exchange and Exchange Online: HELO name (IP)
        (
            "from mail-ua0-f171.google.com (209.85.217.171) by EX01",
            "mail-ua0-f171.google.com [209.85.217.171]",
        ),
        (
            "from A.prod.outlook.com (2603:10a6:20b:4f6::27) by B",
            "A.prod.outlook.com [2603:10a6:20b:4f6::27]",
        ),
        (
            "from mail.example.com ([192.0.2.25]) by mail.contoso.com",
            "mail.example.com [192.0.2.25]",
        ),
        ("from X.PROD.OUTLOOK.COM ([fe80::1%14]) by X", "X.PROD.OUTLOOK.COM [fe80::1%14]"),
        # a literal HELO that is not the connecting IP is kept, as the HELO
        (
            "from [10.233.168.165] ([186.2.138.141]) by smtp",
            "[186.2.138.141] (HELO [10.233.168.165])",
        ),
        ("from [IPv6:2001:db8::5] (x [IPv6:2001:db8::5]) by mx", "x [2001:db8::5]"),
        ("from 203.0.113.5 (203.0.113.5) by mx", "[203.0.113.5]"),
        ("from [203.0.113.5] by mx", "[203.0.113.5]"),
        ("from AM0.eop.outlook.com by B", "AM0.eop.outlook.com"),
        ("by mx with SMTP", ""),
    ],
)
def test_the_sending_host_shows_each_name_and_ip_once(value, shown):
    assert parse_received(value + "; Mon, 2 Mar 2026 10:00:00 +0000").sender_text == shown
