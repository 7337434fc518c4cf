"""The daily report: its figures against synth's ground truth, its outputs, its edge cases."""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
import shutil
import subprocess
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import pytest
from conftest import LOGANALYZER
from logfiles import row, write_log
from reportdata import (
    ACCEPTED,
    CAPPED,
    CUT_BY_KEY,
    DAY,
    NDR_SENDER,
    PREVIOUS,
    Expected,
    synth_store,
)

import loganalyzer
from loganalyzer.ingest import ingest
from loganalyzer.report import daily_report, load, sections
from loganalyzer.report.period import Period, parse_date


@pytest.fixture(scope="session")
def synth(tmp_path_factory):
    return synth_store(tmp_path_factory)


@pytest.fixture(scope="session")
def report(synth):
    return daily_report(synth[1], DAY)


@pytest.fixture(scope="session")
def expected(synth):
    return Expected(synth[2], DAY)


def test_exported_from_the_package(report):
    assert loganalyzer.daily_report is daily_report
    assert isinstance(report, loganalyzer.DailyReport)
    assert report.totals is report.metrics["totals"]
    assert "DailyReport 2026-03-03" in repr(report)


@pytest.mark.parametrize(
    ("figure", "verdict"),
    [
        ("delivered", "delivered"),
        ("sent out", "sent_external"),
        ("failed", "failed"),
        ("dropped", "dropped"),
        ("quarantined", "quarantined"),
        ("still deferred", "deferred"),
        ("expanded (lists)", "expanded"),
    ],
)
def test_recipient_outcomes_equal_the_truth(report, expected, figure, verdict):
    got = report.totals.set_index("figure").loc[figure]
    assert (got["recipients"], got["messages"]) == expected.counts(verdict)
    assert expected.counts(verdict)[0] > 0  # the synth day has every kind


def test_received_messages_and_bytes_equal_the_truth(report, expected):
    got = report.totals.set_index("figure").loc["received"]
    assert got["messages"] == len(expected.received)
    assert got["bytes"] == sum(m["size"] for m in expected.received) == report.headline["bytes_in"]
    assert report.headline["bytes_out"] == expected.bytes_of("sent_external")
    ndrs = [m for m in expected.received if m["sender"].lower() == NDR_SENDER]
    assert report.headline["bounces"] == len(ndrs) > 0


@pytest.mark.parametrize(
    ("column", "verdict"),
    [
        ("received", None),
        ("delivered", "delivered"),
        ("sent_out", "sent_external"),
        ("failed", "failed"),
    ],
)
def test_per_hour_equals_the_truth(report, expected, column, verdict):
    assert report.hourly[column].tolist() == expected.per_hour(verdict)
    assert len(report.hourly) == 24


def test_per_hour_in_another_zone(synth):
    """Days and hours of Europe/Berlin (UTC+1): the day starts at 23:00 UTC the day before."""
    report = daily_report(synth[1], DAY, tz="Europe/Berlin")
    want = Expected(synth[2], DAY, "Europe/Berlin")
    assert report.hourly["received"].tolist() == want.per_hour()
    assert report.hourly["delivered"].tolist() == want.per_hour("delivered")
    assert str(report.hourly["hour"].iloc[0]) == "2026-03-03 00:00:00+01:00"
    assert report.failed["date_time"].iloc[0].tzinfo is not None


def test_failures_by_status_and_domain_equal_the_truth(report, expected):
    failed = expected.outcome("failed")
    by_status = Counter(r["enhanced_status"] or "" for r in failed)
    got = dict(
        zip(
            report.failures_by_status["status"],
            report.failures_by_status["recipients"],
            strict=True,
        )
    )
    assert got == by_status
    assert all(report.failures_by_status["meaning"])
    by_domain = Counter(r["recipient"].lower().split("@")[1] for r in failed)
    top = report.failures_by_domain
    assert dict(zip(top["domain"], top["recipients"], strict=True)) == dict(
        sorted(by_domain.items(), key=lambda x: (-x[1], x[0]))[: report.top]
    )
    listed = {(r.message_id, r.recipient.lower()) for r in report.failed.itertuples()}
    assert listed == {(r["message_id"], r["recipient"].lower()) for r in failed}


def test_still_pending_equal_the_truth(report, expected):
    got = {
        (
            r.message_id,
            r.recipient.lower(),
            r.server,
            r.date_time.isoformat(timespec="milliseconds"),
        )
        for r in report.pending.itertuples()
    }
    want = {
        (r["message_id"], r["recipient"].lower(), r["server"], r["at"].replace("Z", "+00:00"))
        for r in expected.outcome("deferred")
    }
    assert got == want and want


def test_latency_percentiles_equal_the_truth(report, expected):
    lat = np.array(expected.latencies())
    got = report.latency.set_index("recipients_of").loc["all"]
    assert got["recipients"] == len(lat)
    for col, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99)):
        assert got[col] == pytest.approx(np.quantile(lat, q), abs=1e-6)
    assert got["max"] == pytest.approx(lat.max(), abs=1e-6)
    assert report.slowest["latency_s"].iloc[0] == pytest.approx(lat.max(), abs=1e-6)


@pytest.mark.parametrize(
    "name", ["top_senders", "top_sender_domains", "top_recipients", "top_recipient_domains"]
)
def test_top_lists_equal_the_truth(report, expected, name):
    want = getattr(expected, name)(report.top)
    df = report.metrics[name]
    assert [tuple(x) for x in df.itertuples(index=False, name=None)] == want
    by_size = report.metrics[f"{name}_by_size"]
    assert by_size["bytes"].is_monotonic_decreasing


def test_system_senders_are_counted_apart_from_the_top_senders(report, expected):
    got = [tuple(x) for x in report.system_senders.itertuples(index=False, name=None)]
    assert got == expected.top_senders(report.top, system=True)
    assert [s for s, _, _ in got] == [NDR_SENDER]
    assert got[0][1] == report.headline["bounces"] > 0  # the bounces the organisation sent
    tops = set(report.top_senders["sender"]) | set(report.top_senders_by_size["sender"])
    assert NDR_SENDER not in tops


@pytest.mark.parametrize(
    ("address", "system"),
    [
        ("microsoftexchange329e71ec88ae4615bbc36ab6ce41109e@contoso.com", True),
        ("postmaster@contoso.com", True),
        ("mailer-daemon@example.org", True),
        ("healthmailbox0123abcd@contoso.com", True),
        ("systemmailbox{1f05a927-3b5e-4a33-b5e7-8d2c6e5a2b39}@contoso.com", True),
        ("federatedemail.4c1f4d8b-8179-4148-93bf-00a95fa1e042@contoso.com", True),
        ("postmaster.jones@contoso.com", False),
        ("microsoftexchangefan@example.org", False),
        ("max.mustermann@contoso.com", False),
    ],
)
def test_which_senders_are_the_mail_system(address, system):
    import duckdb

    from loganalyzer.report.metrics import SYSTEM_SENDER_RE

    sql = f"select regexp_matches(?, '{SYSTEM_SENDER_RE}')"
    # fetchall: a result left unfinished on DuckDB's default connection (fetchone) made a
    # later test's duckdb.sql in the same worker fail (ResourceInUseException)
    assert duckdb.execute(sql, [address]).fetchall()[0][0] is system


def test_distinct_and_internal_external_equal_the_truth(report, expected):
    got = dict(zip(report.distinct["figure"], report.distinct["count"], strict=True))
    assert got["senders"] == len({m["sender"].lower() for m in expected.received})
    finals = [
        r
        for v in ("delivered", "sent_external", "failed", "dropped", "quarantined")
        for r in expected.outcome(v)
    ]
    assert got["recipients"] == len({r["recipient"].lower() for r in finals})
    sides = report.sides.set_index("sender")
    internal = [m for m in expected.received if m["sender"].lower().split("@")[1] in ACCEPTED]
    assert sides.loc["internal", "messages"] == len(internal)
    assert sides.loc["external", "messages"] == len(expected.received) - len(internal)
    assert sides["delivered"].sum() == expected.counts("delivered")[0]
    assert sorted(report.accepted_domains) == sorted(ACCEPTED) and report.accepted_inferred


def test_duckdb_is_held_to_a_memory_limit_and_spills_to_a_folder_it_removes(
    synth, report, monkeypatch
):
    """The report's tables live in DuckDB under ``MEMORY_LIMIT``, spilling beyond it to a
    temporary folder removed afterwards: memory stays flat whatever the day's size, and the
    figures are those of the report computed with more memory."""
    seen = {}
    compute = sections.compute

    def spy(q):
        seen["limit"], seen["folder"] = q.con.execute(
            "select current_setting('memory_limit'), current_setting('temp_directory')"
        ).fetchone()
        return compute(q)

    monkeypatch.setattr(sections, "compute", spy)
    monkeypatch.setattr(load, "MEMORY_LIMIT", "64MB")
    small = daily_report(synth[1], DAY)
    assert seen["limit"] == "61.0 MiB"  # DuckDB's way of saying 64 MB
    assert seen["folder"] != ".tmp" and not Path(seen["folder"]).exists()
    assert small.to_dict() == report.to_dict()


def test_compared_with_the_previous_day(report, synth):
    prev = Expected(synth[2], PREVIOUS)
    changes = report.changes.set_index("figure")
    assert changes.loc["messages received", "previous"] == len(prev.received)
    assert changes.loc["recipients delivered", "previous"] == prev.counts("delivered")[0]
    assert changes.loc["recipients failed", "previous"] == prev.counts("failed")[0]
    assert changes.loc["messages received", "value"] == report.headline["received_messages"]
    assert not changes["flagged"].any()  # two ordinary weekdays


def test_no_previous_day_in_the_store(synth):
    first = daily_report(synth[1], PREVIOUS)
    assert first.previous is None and first.changes["previous"].isna().all()
    assert "The previous period has no message tracking rows in the store" in first.to_html(
        charts=False
    )


def test_several_days(synth):
    both = daily_report(synth[1], DAY, days=2)
    assert len(both.hourly) == 48 and list(both.daily["day"]) == [PREVIOUS, DAY]
    assert both.daily["received"].sum() == both.headline["received_messages"]
    per_day = [daily_report(synth[1], d, compare=False) for d in (PREVIOUS, DAY)]
    assert both.daily["delivered"].tolist() == [r.headline["delivered_recipients"] for r in per_day]


def test_smtp_sessions_and_password_guessing(report, synth):
    """Failed logins by remote IP equal the LogonDenied lines of the receive logs."""
    logs = synth[0]
    want = Counter()
    day = DAY.replace("-", "")
    for path in logs.glob("*/ProtocolLog/SmtpReceive/RECV*.LOG"):
        if not path.name.startswith(f"RECV{day}"):
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if "LogonDenied" in line:
                remote = line.split(",")[5].rsplit(":", 1)[0].strip("[]")
                want[remote] += 1
    got = list(
        zip(report.auth_failures["remote_ip"], report.auth_failures["failures"], strict=True)
    )
    assert got == sorted(want.items(), key=lambda x: (-x[1], x[0]))[: report.top] and got
    s = report.smtp_summary.set_index("direction")
    assert s.loc["receive", "sessions"] > 0 and 0 < s.loc["receive", "tls_share"] < 1
    assert report.smtp_hourly["inbound"].sum() == s.loc["receive", "sessions"]
    assert report.headline["auth_failures"] == sum(want.values())
    assert 535 in set(report.reply_codes["reply_code"])
    # the line at the top counts them all, however short the list (--top)
    line = (
        f"{sum(want.values()):,} failed SMTP authentications from {len(want):,} remote "
        f"{'IP' if len(want) == 1 else 'IPs'} (most: {got[0][0]}, {got[0][1]:,})."
    )
    for top in (1, report.top):
        short = daily_report(synth[1], DAY, top=top, compare=False)
        assert line in short.attention(), short.attention()


def _hops_in_the_logs(logs, day: str) -> dict[tuple[str, str], list[float]]:
    """(from, to) server -> seconds from each hop's SEND to its RECEIVE, read from the
    tracking logs with the csv module: a RECEIVE on one server in the day whose client is
    another server, paired with the nearest SEND of the message from it to this server."""
    sends, receives = defaultdict(list), []
    for path in sorted(logs.glob("*/MessageTracking/MSGTRK*.LOG")):
        server = path.parts[-3]
        for text in path.read_text(encoding="utf-8-sig").splitlines():
            if text.startswith("#"):
                continue
            f = next(csv.reader([text]))
            at = dt.datetime.fromisoformat(f[0].replace("Z", "+00:00"))
            if f[8] == "SEND" and f[4]:
                sends[(f[10], server, f[4].split(".")[0].upper())].append(at)
            elif f[8] == "RECEIVE" and f[2] and at.date().isoformat() == day:
                receives.append((f[10], f[2].split(".")[0].upper(), server, at))
    hops = defaultdict(list)
    for mid, a, b, at in receives:
        if a != b and a.startswith("EX") and sends[(mid, a, b)]:
            sent = min(sends[(mid, a, b)], key=lambda s: abs((at - s).total_seconds()))
            hops[(a, b)].append((at - sent).total_seconds())
    return hops


def test_data_quality_of_a_clean_day(report, synth):
    assert report.unknown_codes.empty and report.quarantine.empty
    hops = _hops_in_the_logs(synth[0], DAY)
    got = {
        (x.from_server, x.to_server): (x.hops, x.median_s, x.min_s, x.max_s, x.flagged)
        for x in report.clock_skew.itertuples()
    }
    assert got == {
        k: (len(v), round(float(np.median(v)), 3), round(min(v), 3), round(max(v), 3), False)
        for k, v in hops.items()
    }
    assert len(got) == 12  # every pair of the four servers
    files = report.files.set_index("format")
    assert files.loc["exchange-tracking", "lines"] > 0


def test_data_quality_problems(tmp_path, store_dir):
    """Skew (EX02's RECEIVE 30 s before EX01's SEND), an hour without EX02 rows where 25
    messages an hour were usual, unknown events and a quarantined line are all reported."""
    ex01, ex02 = [], []
    for hour in (10, 11, 12):
        for k in range(25):
            i = hour * 100 + k
            ex01.append(
                row(
                    i,
                    date_time=f"2026-03-02T{hour}:{k:02d}:30.000Z",
                    event_id="SEND",
                    server_hostname="ex02.contoso.com",
                    connector_id="Intra-Organization SMTP Send Connector",
                )
            )
            if hour != 11:
                ex02.append(
                    row(
                        i,
                        date_time=f"2026-03-02T{hour}:{k:02d}:00.000Z",
                        client_hostname="ex01.contoso.com",
                        server_hostname="EX02",
                    )
                )
    ex01.append(row(9, date_time="2026-03-02T12:50:00.000Z", event_id="WIBBLE"))
    write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", ex01, tail="not,a,line\r\n")
    write_log(tmp_path / "EX02" / "MSGTRK2026030210-1.LOG", ex02)
    ingest([tmp_path / "EX01", tmp_path / "EX02"], store_dir, final=True)
    r = daily_report(store_dir, "2026-03-02")
    skew = r.clock_skew.set_index(["from_server", "to_server"]).loc[("EX01", "EX02")]
    assert skew["median_s"] == pytest.approx(-30.0) and skew["flagged"]
    assert skew["hops"] == skew["receive_before_send"] == 50
    missing = r.missing_hours.set_index(["server", "log"])
    assert list(missing.index) == [("EX02", "tracking")]
    assert missing.iloc[0]["missing_hours"] == 1 and missing.iloc[0]["hours"] == "11:00-11:59"
    assert r.unknown_codes["event_id"].tolist() == ["WIBBLE"]
    assert r.quarantine.to_dict("records") == [
        {"reason": "wrong field count: expected 30, found 3", "lines": 1, "files": 1}
    ]
    attention = " ".join(r.attention())
    assert "Clock skew: EX02" in attention and "No tracking log rows from EX02" in attention


def test_json_output_equals_the_library_result(cli, synth, tmp_path):
    out = cli("report", "daily", "--store", synth[1], "--date", DAY, "--json")
    assert out.exit_code == 0
    assert json.loads(out.stdout) == daily_report(synth[1], DAY).to_dict()
    assert not list(tmp_path.glob("*.html"))


def test_to_dict_is_plain_json(report):
    d = report.to_dict()
    assert json.loads(json.dumps(d)) == d
    assert set(d["tables"]) == set(report.metrics)
    assert d["period"]["date"] == DAY and d["rules"]["messages"]
    assert d["tables"]["hourly"][0]["hour"] == "2026-03-03T00:00:00.000+00:00"


def test_cli_writes_the_page_and_trace_pages(cli, synth, tmp_path):
    page = tmp_path / "daily report.html"
    out = cli(
        "report",
        "daily",
        "--store",
        synth[1],
        "--date",
        DAY,
        "--out",
        page,
        "--traces",
        "3",
        "--problems-first",
    )
    assert out.exit_code == 0, out.stdout
    html = page.read_text(encoding="utf-8")
    traces = sorted((tmp_path / "daily report_traces").glob("*.html"))
    assert len(traces) == 3
    assert 'href="daily%20report_traces/1.html"' in html
    assert "loganalyzer trace &#39;&lt;" in html  # the command, shell-quoted and escaped
    first = html.index('id="failures"')
    assert first < html.index('id="totals"')
    assert "recipients failed" in out.stdout


def test_redact_hashes_addresses_and_hides_subjects(synth, report):
    r = daily_report(synth[1], DAY, redact_addresses=True, redact_key=b"k")
    page = r.to_html(charts=False)
    for sender in report.top_senders["sender"]:
        assert sender not in page
    assert "@contoso.com" in page  # domains stay
    assert set(r.failed["subject"]) == {"(hidden)"}
    again = daily_report(synth[1], DAY, redact_addresses=True, redact_key=b"k")
    assert again.top_senders["sender"].tolist() == r.top_senders["sender"].tolist()
    assert r.headline == report.headline


def test_html_without_charts_has_no_script(report):
    page = report.to_html(charts=False)
    assert "<script" not in page and "script-src &#39;none&#39;" in page
    for sid, _, _ in report.sections():
        assert f'<section id="{sid}">' in page


def test_jupyter_fragment(report):
    frag = report._repr_html_()
    assert not frag.startswith("<!DOCTYPE") and 'class="chart"' in frag
    assert "Content-Security-Policy" not in frag


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-03-03", dt.date(2026, 3, 3)),
        ("today", dt.date(2026, 3, 4)),
        ("yesterday", dt.date(2026, 3, 3)),
        (" Yesterday ", dt.date(2026, 3, 3)),
    ],
)
def test_dates(text, want):
    now = dt.datetime(2026, 3, 4, 0, 30, tzinfo=dt.UTC)
    assert parse_date(text, "UTC", now=now) == want
    # at 00:30 UTC it is still the 3rd in New York
    assert parse_date("today", "America/New_York", now=now) == dt.date(2026, 3, 3)


def test_period_over_a_dst_change(synth):
    p = Period(dt.date(2026, 10, 25), tz="Europe/Berlin")
    assert p.hours == 25 and Period(dt.date(2026, 3, 29), tz="Europe/Berlin").hours == 23
    r = daily_report(synth[1], "2026-10-25", tz="Europe/Berlin")
    hours = [t.strftime("%H:%M%z") for t in r.hourly["hour"]]
    assert len(hours) == 25 and hours[2:4] == ["02:00+0200", "02:00+0100"]


def test_the_repeated_hour_is_labelled_apart_on_the_page(synth, tmp_path):
    """On the day the clocks go back, the page's tables and charts name the zone time of
    the hour that occurs twice (two rows "02:00" could not be told apart)."""
    page = tmp_path / "oct.html"
    args = ["--date", "2026-10-25", "--tz", "Europe/Berlin", "--traces", "0"]
    done = _loganalyzer("report", "daily", "--store", synth[1], *args, "--out", page)
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    tables = re.findall(r'<td class="c-hour">([^<]*)</td>', html)
    axes = re.findall(r'"x": \[("\d\d:\d\d[^]]*)\]', html)
    assert tables and axes
    for hours in [tables[:25], *(json.loads(f"[{x}]") for x in axes if len(x) > 200)]:
        assert hours[:5] == ["00:00", "01:00", "02:00 CEST", "02:00 CET", "03:00"], hours
        assert len(hours) == len(set(hours)) == 25
    # the JSON keeps its figures: the hours as times with their offsets
    done = _loganalyzer("report", "daily", "--store", synth[1], *args, "--json")
    hourly = json.loads(done.stdout)["tables"]["hourly"]
    assert [h["hour"][11:] for h in hourly[2:4]] == ["02:00:00.000+02:00", "02:00:00.000+01:00"]


@pytest.mark.parametrize(
    ("args", "hours", "table", "axis"),
    [
        # the clocks go forward: 23 hours, none twice, none named
        (["--date", "2026-03-29"], 23, ["00:00", "01:00", "03:00"], ["00:00", "01:00", "03:00"]),
        ([], 24, ["00:00", "01:00", "02:00"], ["00:00", "01:00", "02:00"]),  # an ordinary day
        # several days: the hours with their date (the all-zero ones folded into a list)
        (
            ["--date", "2026-10-26", "--days", "2"],
            25,
            [f"2026-10-25 {h}" for h in ("00:00", "01:00", "02:00 CEST", "02:00 CET")],
            [f"10-25 {h}" for h in ("00:00", "01:00", "02:00 CEST", "02:00 CET")],
        ),
    ],
)
def test_hours_on_the_page_around_a_clock_change(synth, tmp_path, args, hours, table, axis):
    """Only an hour that occurs twice is named by its zone time, in tables and on axes."""
    page = tmp_path / "day.html"
    args = ["--date", DAY, *args, "--tz", "Europe/Berlin", "--traces", "0"]
    done = _loganalyzer("report", "daily", "--store", synth[1], *args, "--out", page)
    assert done.returncode == 0, done.stderr
    html = page.read_text()
    cells = re.findall(r'<td class="c-hour">([^<]*)</td>|all zero</summary>([^<]*)</details>', html)
    shown = [h for one, folded in cells for h in ([one] if one else folded.split(", "))]
    axes = [json.loads(f"[{x}]") for x in re.findall(r'"x": \[("[\d -]*\d\d:\d\d[^]]*)\]', html)]
    axes = [x for x in axes if len(x) >= 23]
    assert shown and axes
    for labels, want in [(shown, table), *((x, axis) for x in axes)]:
        at = labels.index(want[0])
        day = labels[at : at + hours]
        assert day[: len(want)] == want and len(set(day)) == hours, day
        assert sum(" CE" in h for h in day) == (2 if hours == 25 else 0), day


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--date", "03/03/2026"], "--date '03/03/2026': not a date"),
        (["--tz", "Mars/Olympus"], "unknown time zone 'Mars/Olympus'"),
        (["--days", "0"], "Invalid value for '--days': 0 is not in the range"),
    ],
)
def test_cli_errors(cli, synth, args, message):
    out = cli("report", "daily", "--store", synth[1], "--json", *args)
    assert out.exit_code == 2 and message in " ".join(out.stderr.split())


def test_not_a_store(cli, tmp_path):
    out = cli("report", "daily", "--store", tmp_path / "nothing", "--date", DAY)
    assert out.exit_code == 2 and "nothing: no such folder" in " ".join(out.stderr.split())


def _loganalyzer(*args, cwd=None) -> subprocess.CompletedProcess:
    """The installed command, in a fresh process, as a user runs it."""
    exe = LOGANALYZER
    return subprocess.run(
        [exe, *map(str, args)], capture_output=True, text=True, timeout=300, cwd=cwd
    )


def test_clock_skew_counts_every_receive_before_send(tmp_path, store_dir):
    """EX02 logs RECEIVE 0.5 s and 0.25 s before EX01's SEND, and once 0.75 s after it:
    two hops received before they were sent, though within the tolerance (not flagged).
    The two servers logged in 10:00-10:59 only: every other hour is named, per server."""
    ex01, ex02 = [], []
    for i, delta in ((1, -500), (2, -250), (3, 750)):
        sent = dt.datetime(2026, 3, 2, 10, i, 10, tzinfo=dt.UTC)
        received = sent + dt.timedelta(milliseconds=delta)
        ex01.append(
            row(
                i,
                date_time=sent.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                event_id="SEND",
                server_hostname="ex02.contoso.com",
                connector_id="Intra-Organization SMTP Send Connector",
            )
        )
        ex02.append(
            row(i, date_time=received.isoformat(timespec="milliseconds").replace("+00:00", "Z"))
        )
    write_log(tmp_path / "EX01" / "MSGTRK2026030210-1.LOG", ex01)
    write_log(tmp_path / "EX02" / "MSGTRK2026030210-1.LOG", ex02)
    ingest([tmp_path / "EX01", tmp_path / "EX02"], store_dir, final=True)
    r = daily_report(store_dir, "2026-03-02")
    assert r.clock_skew.drop(columns="flagged").to_dict("records") == [
        {
            "from_server": "EX01",
            "to_server": "EX02",
            "hops": 3,
            "median_s": -0.25,
            "min_s": -0.5,
            "max_s": 0.75,
            "receive_before_send": 2,
        }
    ]
    assert not r.clock_skew["flagged"].any()
    # an hour of three messages: no other hour of the day would have held mail (no gap)
    assert r.quiet_hours == {} and r.empty_days == [] and r.notices() == []


def test_a_day_without_data_is_said(synth):
    r = daily_report(synth[1], "2099-01-01")
    assert r.is_empty and r.empty_days == [dt.date(2099, 1, 1)] and r.quiet_hours == {}
    assert r.store_days == (dt.date(2026, 3, 2), dt.date(2026, 3, 3))
    notice = (
        "No log rows for 2099-01-01 (UTC): every figure is zero; the store holds "
        "2026-03-02 to 2026-03-03 (UTC days)."
    )
    assert r.notices() == [notice]
    d = r.to_dict()
    assert (d["empty_days"], d["quiet_hours"]) == (["2099-01-01"], {})
    assert d["store_days"] == {"first": "2026-03-02", "last": "2026-03-03"}
    page = r.to_html(charts=False)
    banner = page.index("Gaps in this report")
    assert banner < page.index('id="totals"') and notice in page


def test_days_without_data_are_named(synth):
    # from rollups: the empty days too, but no data quality (quiet hours need the rows)
    long = daily_report(synth[1], "2026-03-08", days=7, rollups=True)
    empty = [dt.date(2026, 3, d) for d in range(4, 9)]
    assert long.empty_days == empty and not long.is_empty and long.quiet_hours == {}
    r = daily_report(synth[1], "2026-03-08", days=7, rollups=False)
    assert r.empty_days == empty and not r.is_empty
    assert r.quiet_hours == {}  # (EX02's quiet night hour on the 3rd held no mail)
    assert r.notices() == [
        "No log rows on 5 of 7 days: 2026-03-04 to 2026-03-08; "
        "the store holds 2026-03-02 to 2026-03-03 (UTC days).",
    ]


def test_hours_before_the_store_begins_are_no_gap(synth):
    """In a zone ahead of UTC the store's first local day begins before its first row (05:30
    in Kolkata): those hours are not a server's silence; the hours of a real gap still are."""
    r = daily_report(synth[1], "2026-03-02", tz="Asia/Kolkata")
    assert not any("00:00-04:59" in x for hours in r.quiet_hours.values() for x in hours)
    assert not any("logged nothing in 00:00" in n for n in r.notices()), r.notices()


def test_quiet_hours_are_the_gaps_of_hours_that_would_have_held_mail(synth, report, tmp_path):
    """A server's hour without a line is named (the page's gaps, the warnings, the data
    quality table alike) when it would have logged mail then: a lost hour of logs in the
    working day is; EX02's quiet hour at night (01:00, no line, little mail anywhere) is not:
    it was a red "gap" beside a data quality table that said none was missing."""
    logs = synth[0]
    quiet = {
        h
        for h in range(24)
        if not any(
            line.startswith(DAY) and line[11:13] == f"{h:02d}"
            for path in (logs / "EX02").rglob("*.LOG")
            for line in path.read_text(encoding="utf-8-sig").splitlines()
        )
    }
    assert quiet == {1} and report.quiet_hours == {} and report.empty_days == []
    assert report.metrics["missing_hours"].empty
    # EX02's logs of 10:00 lost (every log kind's file of the hour)
    copy = tmp_path / "logs"
    shutil.copytree(logs, copy)
    lost = [p for p in (copy / "EX02").rglob("*.LOG") if "2026030310" in p.name]
    assert lost
    for p in lost:
        p.unlink()
    assert ingest([copy], tmp_path / "store").exit_code == 0
    out = _loganalyzer(
        "report", "daily", "--store", tmp_path / "store", "--date", DAY, "--traces", "0",
        "--json", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["quiet_hours"] == {"EX02": [f"{DAY} 10:00-10:59"]}
    assert "warning: EX02 logged nothing in 10:00-10:59 (UTC)." in out.stderr.splitlines()
    missing = got["tables"]["missing_hours"]
    assert {(m["server"], m["hours"]) for m in missing} == {("EX02", "10:00-10:59")}, missing


def test_a_page_leaves_out_what_the_report_cannot_count(synth, tmp_path):
    """A one-day report has no history (five tables of "None." under a note with Markdown
    quotes), and a day with no previous one in the store no comparison table (a column of
    figures beside four empty ones, under a note saying it was not compared)."""
    out = _loganalyzer(
        "report", "daily", "--store", synth[1], "--date", PREVIOUS, "--traces", "0",
        "--out", "day.html", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    page = (tmp_path / "day.html").read_text(encoding="utf-8")
    assert 'id="changes"' in page and "not compared" in page
    assert "Headline figures against the previous period" not in page
    assert 'id="history"' not in page and "`" not in page.split("<script")[0]
    out = _loganalyzer(
        "report", "daily", "--store", synth[1], "--date", DAY, "--days", "2", "--traces", "0",
        "--out", "two.html", cwd=tmp_path,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert 'id="history"' in (tmp_path / "two.html").read_text(encoding="utf-8")
    out = _loganalyzer(
        "report", "daily", "--store", synth[1], "--date", DAY, "--traces", "0",
        "--out", "compared.html", cwd=tmp_path,
    )  # fmt: skip
    compared = (tmp_path / "compared.html").read_text(encoding="utf-8")
    assert "Headline figures against the previous period" in compared
    # a column's unit in brackets: "latency s" read as a word
    assert "<th>latency (s)</th>" in compared and "<th>change (%)</th>" in compared
    assert not re.search(r"<th>[^<]* (s|pct)</th>", compared)


def test_cli_warns_of_an_empty_day_and_says_it_in_the_json(synth, tmp_path):
    out = _loganalyzer(
        "report", "daily", "--store", synth[1], "--date", "2099-01-01", "--json", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        "warning: No log rows for 2099-01-01 (UTC): every figure is zero; "
        "the store holds 2026-03-02 to 2026-03-03 (UTC days)."
    ]
    got = json.loads(out.stdout)
    assert got["empty_days"] == ["2099-01-01"] and got["headline"]["received_messages"] == 0


def test_a_day_without_logs_after_a_day_with_mail_flags_no_changes(synth, tmp_path):
    # no logs yet (ingest failed, or not run): one warning, not a -100% for every figure
    args = ("report", "daily", "--store", synth[1], "--date", "2026-03-04", "--json")
    out = _loganalyzer(*args, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    assert got["previous"]["received_messages"] > 0  # the day before had mail
    assert [c["flagged"] for c in got["tables"]["changes"]].count(True) >= 5
    # no change flagged; the recipients still deferred at the day before's end, with no row
    # since, are still deferred at this one's (the last two days are read)
    n = got["previous"]["still_deferred_recipients"]
    assert n > 0 and got["headline"]["still_deferred_recipients"] == n
    assert got["attention"] == [f"{n} recipients are still deferred."]
    assert out.stderr.startswith("warning: No log rows for 2026-03-04 (UTC)")


def test_cli_fail_if_empty_exits_1_and_writes_nothing(synth, tmp_path):
    args = ("report", "daily", "--store", synth[1], "--fail-if-empty", "--out", "day.html")
    out = _loganalyzer(*args, "--date", "2099-01-01", cwd=tmp_path)
    assert out.returncode == 1 and out.stdout == ""
    assert out.stderr.splitlines() == [
        "error: No log rows for 2099-01-01 (UTC): every figure is zero; "
        "the store holds 2026-03-02 to 2026-03-03 (UTC days)."
    ]
    assert not (tmp_path / "day.html").exists()
    out = _loganalyzer(*args, "--date", DAY, "--traces", "0", cwd=tmp_path)
    assert out.returncode == 0 and (tmp_path / "day.html").is_file()


def test_cli_names_the_empty_days_of_a_week(synth, tmp_path):
    week = ("--date", "2026-03-08", "--days", "7", "--traces", "0", "--from-rows")  # quiet hours
    out = _loganalyzer("report", "daily", "--store", synth[1], *week, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == [
        "warning: No log rows on 5 of 7 days: 2026-03-04 to 2026-03-08; "
        "the store holds 2026-03-02 to 2026-03-03 (UTC days).",
    ]
    page = (tmp_path / "mail-flow-2026-03-08.html").read_text(encoding="utf-8")
    assert "No log rows on 5 of 7 days: 2026-03-04 to 2026-03-08;" in page


def test_cli_says_how_many_failed_messages_have_no_trace_page(synth, expected, tmp_path):
    failed_messages = expected.counts("failed")[1]
    assert failed_messages > 3
    out = _loganalyzer(
        "report", "daily", "--store", synth[1], "--date", DAY, "--traces", "3", cwd=tmp_path
    )
    assert out.returncode == 0, out.stderr
    notice = (
        f"Trace pages for the first 3 of {failed_messages:,} failed messages (--traces N for more)."
    )
    assert out.stderr.splitlines() == [f"warning: {notice}"]
    assert notice in (tmp_path / f"mail-flow-{DAY}.html").read_text(encoding="utf-8")


def test_lists_cut_at_the_limit_say_their_totals(synth, expected):
    failed, _ = expected.counts("failed")
    deferred, _ = expected.counts("deferred")
    assert failed > 5 and deferred > 1
    r = daily_report(synth[1], DAY, limit=1, top=100_000)
    assert r.cut() == {
        "failed": {"listed": 1, "total": failed},
        "pending": {"listed": 1, "total": deferred},
        "queue_reasons": {"listed": 1, "total": r.lengths["queue_reasons"]},
    }
    assert r.to_dict()["cut"] == r.cut()
    assert r.lengths["queue_reasons"] > 1
    assert daily_report(synth[1], DAY, top=100_000).cut() == {}  # the limits hold them all


def _under(html: str, name: str) -> str:
    """The part of a report page under table ``name``: its rows and the notes after them."""
    return html.split(f'id="t-{name}"', 1)[1].split('id="t-', 1)[0]


def _sql(store, query: str) -> list[dict]:
    done = _loganalyzer("sql", "--store", store, "--json", query)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_every_list_cut_at_top_or_limit_says_its_length(synth, report, expected, tmp_path):
    """Every list --top or --limit cuts says its length on the page and in `cut`: failures by
    domain, the busiest remote IPs and failed logins by IP said nothing, the failed
    recipients' list (its own template) nothing on the page."""
    vip = tmp_path / "vip.txt"  # failed and deferred recipients: VIP events to cut
    vip.write_text("\n".join([*report.failed["recipient"][:3], *report.pending["recipient"]]))
    page = tmp_path / "day.html"
    args = ["report", "daily", "--store", synth[1], "--date", DAY, "--traces", "0", "--vip", vip]
    done = _loganalyzer(*args, "--top", "100000", "--limit", "100000", "--json", "--out", page)
    assert done.returncode == 0, done.stderr
    whole, html = json.loads(done.stdout), page.read_text(encoding="utf-8")
    assert whole["cut"] == {} and 'class="note">The first' not in html  # whole: nothing said
    lengths = {name: len(rows) for name, rows in whole["tables"].items()}

    done = _loganalyzer(*args, "--top", "1", "--limit", "1", "--json", "--out", page)
    assert done.returncode == 0, done.stderr
    cut, html = json.loads(done.stdout), page.read_text(encoding="utf-8")
    # every list longer than one row is cut and says so; no other table lost a row
    peaks = [(q["hop"], q["server"]) for q in whole["tables"]["queues"] if q["peak"] > 0]
    assert len(peaks) > 1  # the backlog per hour: cut at the --top next hops and servers
    assert set(cut["cut"]) == {n for n in CAPPED if lengths.get(n, 0) > 1} | {"queue_hours"}
    assert set(cut["cut"]) >= CAPPED - {"system_senders", "senders_seen", "quiet_mailboxes"}
    for name, rows in cut["tables"].items():
        if name not in CAPPED and name not in CUT_BY_KEY:
            assert len(rows) == lengths[name], name
    for name, c in cut["cut"].items():
        if name == "queue_hours":
            assert c == {"listed": 1, "total": len(peaks)}
            said = f"1 of {len(peaks)} next hops and servers: those with the highest peaks"
            assert said in _under(html, name)
            continue
        assert c == {"listed": 1, "total": lengths[name]}, name
        assert f'class="note">The first 1 of {lengths[name]:,}.</p>' in _under(html, name)
    assert lengths["system_senders"] == 1 and "The first" not in _under(html, "system_senders")
    # the lengths against the truth and the store's own rows
    distinct = {d["figure"]: d["count"] for d in cut["tables"]["distinct"]}
    assert cut["cut"]["failed"]["total"] == expected.counts("failed")[0]
    assert cut["cut"]["pending"]["total"] == expected.counts("deferred")[0]
    assert cut["cut"]["top_sender_domains"]["total"] == distinct["sender domains"]
    assert lengths["top_senders"] + lengths["system_senders"] == distinct["senders"]
    (ips,) = _sql(
        synth[1],
        "select count(distinct remote_ip) as n from smtp where reply_code = 535 "
        f"and direction = 'receive' and date_time >= '{DAY}T00:00:00Z' "
        f"and date_time < '{DAY}T00:00:00Z'::timestamptz + interval 1 day",
    )
    assert cut["cut"]["auth_failures"]["total"] == ips["n"] > 1
    assert f"failed SMTP authentications from {ips['n']:,} remote IPs" in html
    assert "ips" not in cut["tables"]["auth_failures"][0]  # the length is in `cut`
    assert "top_totals" not in cut["tables"]


def test_an_address_whose_quoted_local_part_holds_an_at_is_of_its_own_domain(tmp_path):
    # Built: '"john@home"@contoso.com' was counted under the domain 'home"' (the text after
    # its first "@"), and a redacted report showed that part of the local part in clear.
    rcpt, sender = '"john@home"@contoso.com', '"eve@attacker"@fabrikam.com'
    rows = []
    for i in range(2):
        common = {
            "message-id": f"<at{i}@fabrikam.com>",
            "sender-address": sender,
            "return-path": sender,
            "recipient-address": rcpt,
            "directionality": "Incoming",
        }
        rows += [row(2 * i, **common), row(2 * i + 1, **common, **{"event-id": "DELIVER"})]
    write_log(tmp_path / "EX02" / "MSGTRK2026030210-1.LOG", rows)
    store = tmp_path / "store"
    assert ingest([tmp_path / "EX02"], store).exit_code == 0
    args = ["report", "daily", "--store", str(store), "--date", "2026-03-02", "--json", "--redact"]
    done = subprocess.run([LOGANALYZER, *args], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    tables = data["tables"]
    assert [r["domain"] for r in tables["top_recipient_domains"]] == ["contoso.com"]
    assert [r["domain"] for r in tables["top_sender_domains"]] == ["fabrikam.com"]
    for part in ("john@", "@home", "eve@", "@attacker"):
        assert part not in done.stdout, part


def test_a_failure_and_a_delivery_at_one_instant_count_as_the_trace_judges(tmp_path):
    """A recipient that EX02 logged delivered and failed at the same instant is failed in
    the report's figures and lists, from rows and from rollups, as its trace says (it counted
    in both totals); a delivery at another time of another message counts as ever."""
    at = "2026-03-02T10:00:05.000Z"
    full = "550 5.2.2 STOREDRV.Deliver; mailbox full"
    write_log(
        tmp_path / "logs" / "MSGTRK2026030210-1.LOG",
        [
            row(1),
            row(1, date_time=at, event_id="DELIVER", source="STOREDRIVER"),
            row(1, date_time=at, event_id="FAIL", source="STOREDRIVER", recipient_status=full),
            row(2),
            row(2, date_time="2026-03-02T10:00:09.000Z", event_id="DELIVER", source="STOREDRIVER"),
        ],
    )
    store = tmp_path / "store"
    assert _loganalyzer("ingest", tmp_path / "logs", "--store", store).returncode == 0
    for way in ("--from-rows", "--rollups"):
        done = _loganalyzer(
            "report", "daily", "--date", "2026-03-02", "--store", store, "--json", way
        )
        figures = json.loads(done.stdout)
        headline = figures["headline"]
        assert (headline["delivered_recipients"], headline["failed_recipients"]) == (1, 1), way
        by_status = figures["tables"]["failures_by_status"]
        assert [r["recipients"] for r in by_status] == [1], (way, by_status)
    failed = json.loads(
        _loganalyzer("report", "daily", "--date", "2026-03-02", "--store", store, "--json").stdout
    )["tables"]["failed"]
    assert [(r["recipient"], r["event_id"], r["message_id"]) for r in failed] == [
        ("bob@contoso.com", "FAIL", "<msg1@contoso.com>")
    ]
    trace = json.loads(
        _loganalyzer("trace", "<msg1@contoso.com>", "--store", store, "--json").stdout
    )
    assert [r["verdict"] for r in trace["messages"][0]["recipients"]] == ["failed"]
