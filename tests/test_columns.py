"""The formats' column work on whole Arrow arrays, with exact values: times, integers,
recipient-status lists with ';' inside brackets and inside one status, status and reply codes,
domains, Message-IDs, server names."""

from __future__ import annotations

from datetime import UTC, datetime

import pyarrow as pa

from loganalyzer.formats import columns as c


def _s(*values) -> pa.Array:
    return pa.array(values, pa.string())


def test_times_in_utc_and_the_ones_that_do_not_parse():
    times, bad = c.parse_utc(
        _s("2026-03-02T10:00:00.123Z", "2026-03-02 10:00:01", "2026-02-30T10:00:00Z",
           "yesterday", "", None)
    )  # fmt: skip
    assert times.to_pylist() == [
        datetime(2026, 3, 2, 10, 0, 0, 123000, tzinfo=UTC),
        datetime(2026, 3, 2, 10, 0, 1, tzinfo=UTC),
        None,
        None,
        None,
        None,
    ]
    assert bad.to_pylist() == [False, False, True, True, False, False]
    times, bad = c.parse_utc(_s("2026-03-02T10:00:00Z", "2026-03-02T11:00:00Z"))
    assert bad.to_pylist() == [False, False]
    assert times.type == pa.timestamp("ms", tz="UTC")


def test_integers_and_the_ones_that_are_not():
    values, bad = c.parse_int(_s("12", " 7 ", "-3", "1e3", "", None, "99999999999999999999"))
    assert values.to_pylist() == [12, 7, -3, None, None, None, None]
    assert bad.to_pylist() == [False, False, False, True, False, False, True]
    values, bad = c.parse_int(_s("1", "2"), pa.int32())
    assert (values.type, values.to_pylist(), bad.to_pylist()) == (pa.int32(), [1, 2], [False] * 2)


def test_recipient_statuses_split_outside_brackets_and_inside_one_status():
    statuses = _s(
        "250 2.1.5 Recipient OK;250 2.1.5 Recipient OK",
        "[{LED=441 4.4.1 Error encountered while communicating with primary target IP address:"
        ' "Failed to connect. Winsock error code: 10060"; attempted [2001:db8::26]:25};{MSG=};'
        "{FQDN=mx.fabrikam.com}]",
        "550 4.4.7 QUEUE.Expired;message expired",
        "550 5.1.1 User unknown;{a;b};[c]",
        "",
        None,
    )
    got = c.split_statuses(statuses, pa.array([2, 1, 1, 3, 0, 0], pa.int64()))
    assert got.to_pylist() == [
        ["250 2.1.5 Recipient OK", "250 2.1.5 Recipient OK"],
        [
            "[{LED=441 4.4.1 Error encountered while communicating with primary target IP "
            'address: "Failed to connect. Winsock error code: 10060"; attempted '
            "[2001:db8::26]:25};{MSG=};{FQDN=mx.fabrikam.com}]"
        ],
        ["550 4.4.7 QUEUE.Expired;message expired"],
        ["550 5.1.1 User unknown", "{a;b}", "[c]"],
        [],
        [],
    ]
    enhanced, reply = c.status_codes(got)
    assert enhanced.to_pylist() == [
        ["2.1.5", "2.1.5"],
        ["4.4.1"],
        ["4.4.7"],
        ["5.1.1", None, None],
        [],
        [],
    ]
    assert reply.to_pylist() == [["250", "250"], ["441"], ["550"], ["550", None, None], [], []]


def test_domains_message_ids_and_server_names():
    assert c.domain_of(
        _s("Anna@Contoso.COM", "<bob@fabrikam.com>", "no-domain", "", None, "a@b@EX.com")
    ).to_pylist() == ["contoso.com", "fabrikam.com", None, None, None, "ex.com"]
    assert c.with_brackets(_s("a@b", " <c@d> ", "", None)).to_pylist() == [
        "<a@b>",
        "<c@d>",
        None,
        None,
    ]
    assert c.server_name(
        _s("ex01.contoso.com", "Ex02", "10.0.0.1", "2001:db8::1", "", None, "HOST\\inst")
    ).to_pylist() == ["EX01", "EX02", None, None, None, None, "HOST"]
    assert c.null_if_empty(_s("a", "", None)).to_pylist() == ["a", None, None]
    assert c.constant("x", 3).to_pylist() == ["x", "x", "x"]
    assert c.split_list(_s("a;b", "", None, "c")).to_pylist() == [["a", "b"], [], [], ["c"]]
    assert c.outcomes(_s("deliver", " FAIL ", "NOSUCH", None), "exchange-event").to_pylist() == [
        "delivered",
        "failed",
        None,
        None,
    ]


def test_reply_code_and_status_at_the_start_of_a_reply():
    code, status = c.reply_parts(
        _s("250 2.6.0 <id> Queued", "250-SIZE 1000", "421 4.7.0 [TSS04] busy", "hello", "", None,
           "550 5.1.1;x", "220")
    )  # fmt: skip
    assert code.type == pa.int32()
    assert code.to_pylist() == [250, 250, 421, None, None, None, 550, 220]
    assert status.to_pylist() == ["2.6.0", None, "4.7.0", None, None, None, "5.1.1", None]


def test_only_where_and_per_distinct_where():
    mask = pa.array([True, False, None, True])
    col = _s("a", "b", "c", "a")
    assert c.only_where(mask, c.pc.utf8_upper, col).to_pylist() == ["A", None, None, "A"]
    pair = c.only_where(mask, lambda x: (c.pc.utf8_upper(x), x), col)
    assert [p.to_pylist() for p in pair] == [["A", None, None, "A"], ["a", None, None, "a"]]
    assert c.per_distinct_where(mask, c.pc.utf8_upper, col).to_pylist() == ["A", None, None, "A"]
    pair = c.per_distinct_where(mask, lambda x: (c.pc.utf8_upper(x), x), col)
    assert [p.to_pylist() for p in pair] == [["A", None, None, "A"], ["a", None, None, "a"]]
    chunked = pa.chunked_array([_s("x"), _s("y")])
    assert c.whole(chunked).to_pylist() == ["x", "y"]
    assert c.most_common(_s("a", "b", "b", None)) == "b"
    assert c.most_common(_s(None)) is None


def test_times_finer_than_a_millisecond_are_cut_to_it():
    times, bad = c.parse_utc(_s("2026-03-02T10:00:00.1234567Z"))
    assert (times.to_pylist(), bad.to_pylist()) == (
        [datetime(2026, 3, 2, 10, 0, 0, 123000, tzinfo=UTC)],
        [False],
    )
    times, bad = c.parse_utc(_s("2026-03-02 10:00:00.1234567", "bad"))
    assert (times.to_pylist(), bad.to_pylist()) == (
        [datetime(2026, 3, 2, 10, 0, 0, 123000, tzinfo=UTC), None],
        [False, True],
    )


def test_status_lists_with_brackets_closing_and_opening_in_one_segment():
    statuses = _s(
        "x];[a;b]", "[a];[b;c]", "{a;[b]};c", "[a;b]", "550 a;b;550 c", "abc;550 x",
        "x] [a;{b}];550 c",
    )  # fmt: skip
    counts = pa.array([2, 2, 2, 2, 2, 1, 2], pa.int64())
    assert c.split_statuses(statuses, counts).to_pylist() == [
        ["x]", "[a;b]"],  # a stray closing bracket does not open anything
        ["[a]", "[b;c]"],
        ["{a;[b]}", "c"],
        ["[a;b]"],  # as many parts as recipients, but the ';' is inside brackets
        ["550 a;b", "550 c"],  # a part that starts no status belongs to the one before
        ["abc", "550 x"],  # no way to reach the count: split as written
        ["x] [a;{b}]", "550 c"],  # closed, then opened again before the ';'
    ]
    # without a recipient count, nothing is merged
    assert c.split_statuses(_s("550 a;b"), pa.array([None], pa.int64())).to_pylist() == [
        ["550 a", "b"]
    ]


def test_integers_too_large_for_their_type_are_bad_not_a_failed_file():
    # a recipient count past 2^31 - 1 is a damaged value of that line, not of the whole file
    values, bad = c.parse_int(_s("5000000000", " 7", "-2147483649", "2147483647"), pa.int32())
    assert values.type == pa.int32()
    assert values.to_pylist() == [None, 7, None, 2147483647]
    assert bad.to_pylist() == [True, False, True, False]


def test_brackets_are_kept_whole_without_a_recipient_count():
    statuses = _s("[a;b];c", "550 a;b [c]", "550 a;b")
    counts = pa.array([None, None, None], pa.int64())
    assert c.split_statuses(statuses, counts).to_pylist() == [
        ["[a;b]", "c"],
        ["550 a", "b [c]"],  # no count: nothing merged
        ["550 a", "b"],
    ]


def test_a_bracket_closed_twice_after_opening_twice_in_one_segment():
    # walked bracket by bracket: ']' at depth 0, then '[' '[' ']' leave one open
    statuses = _s("x] [[a];550 b]", "[a];[b;c]")
    assert c.split_statuses(statuses, pa.array([1, 2], pa.int64())).to_pylist() == [
        ["x] [[a];550 b]"],
        ["[a]", "[b;c]"],
    ]


def test_codes_of_lists_sliced_and_ending_with_a_status():
    lists = pa.array([["250 2.1.5 OK"], ["550 5.1.1 unknown", "452 4.2.2 full"]], c.LIST)
    enhanced, reply = c.status_codes(lists.slice(1))
    assert enhanced.to_pylist() == [["5.1.1", "4.2.2"]]
    assert reply.to_pylist() == [["550", "452"]]


def test_outcomes_and_spelling_of_one_family_only():
    # 1028 is an Exchange 2003 event (delivered), unknown to the 2007+ table
    assert c.outcomes(_s("1028", "DELIVER"), "exchange-event").to_pylist() == [None, "delivered"]
    assert c.spelled(
        _s("delivered", " FAILED ", "Nonsense", None, "send EXTERNAL"), "exo-status"
    ).to_pylist() == ["Delivered", "Failed", "Nonsense", None, "Send external"]
    assert c.spelled(_s("DELIVER"), "exo-status").to_pylist() == ["Deliver"]
    assert c.spelled(_s("1028"), "exo-status").to_pylist() == ["1028"]
