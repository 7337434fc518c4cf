"""The messages the SMTP logs show accepted (IIS SMTP logs, Exchange protocol logs), through
the command: per direction, server and hour, and said in the headline when the period has no
tracking rows; a report of several days gives the sum of its days."""

from __future__ import annotations

import csv
import json
import shutil
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import CORPUS, built_once, run_cli
from stores import ingested_here

from loganalyzer.store import Store, rollups

DAYS = ("2026-03-02", "2026-03-03", "2026-03-04")
#: The synth relay's address: the Exchange servers' tracking logs name it as the client.
RELAY_IP = "10.0.0.250"


def _report(store: Path, date: str, *extra: str) -> dict:
    done = run_cli("report", "daily", "--store", str(store), "--date", date, "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def _ingest(logs: Path, store: Path, *extra: str) -> None:
    done = run_cli("ingest", str(logs), "--store", str(store), *extra)
    assert done.returncode == 0, done.stderr


def test_iis_smtp_logs_alone_count_the_relay_messages(tmp_path):
    logs = tmp_path / "MEE-PDC"  # the server, by its folder
    logs.mkdir()
    for name in ("ossec-docs-exchange2000-ncsa.log", "ossec-docs-exchange2000-w3c.log"):
        shutil.copy(CORPUS / "iis-smtp" / name, logs / name)
    store = tmp_path / "store"
    _ingest(logs, store)
    # 2006-10-11 (NCSA): three inbound DATA lines with 250, one outbound DATA whose 354 the
    # remote (AOL) followed with "250 OK"
    r = _report(store, "2006-10-11")
    assert r["tracking_rows"] == 0
    assert r["headline"]["received_messages"] == 0  # the tracking logs' figure stays theirs
    assert r["smtp_messages"]["smtp_received_messages"] == 3
    assert r["smtp_messages"]["smtp_sent_messages"] == 1
    summary = {s["direction"]: s for s in r["tables"]["smtp_summary"]}
    assert (summary["receive"]["messages"], summary["send"]["messages"]) == (3, 1)
    assert r["tables"]["smtp_servers"] == [
        {"server": "MEE-PDC", "received": 3, "sent": 1, "refused": 0, "deferred": 0}
    ]
    busy = [
        h for h in r["tables"]["smtp_hourly"] if h["inbound_messages"] or h["outbound_messages"]
    ]
    assert [(h["hour"][11:16], h["inbound_messages"], h["outbound_messages"]) for h in busy] == [
        ("19:00", 3, 1)
    ]
    line = "No tracking logs of 2006-10-11: the SMTP logs show 3 messages accepted, 1 sent on"
    assert any(a.startswith(line) for a in r["attention"])
    # the terminal's headline says it instead of "0 messages received"
    done = run_cli("report", "daily", "--store", str(store), "--date", "2006-10-11", "--out",
                   str(tmp_path / "r.html"))  # fmt: skip
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert (
        "No tracking logs of 2006-10-11: the SMTP logs show 3 messages accepted, 1 sent on" in said
    )
    assert "0 messages received" not in said
    # 2006-10-09 (W3C): five messages taken, none handed on
    r = _report(store, "2006-10-09")
    m = r["smtp_messages"]
    assert (m["smtp_received_messages"], m["smtp_sent_messages"]) == (5, 0)


def test_an_outbound_421_to_mail_is_a_deferral(tmp_path):
    store = tmp_path / "store"
    log = CORPUS / "iis-smtp" / "lichty-2017-open-relay-yahoo-421-deferral.log"
    ingested_here(log, store, format="iis-smtp")
    r = _report(store, "2017-02-09")
    send = next(s for s in r["tables"]["smtp_summary"] if s["direction"] == "send")
    assert (send["messages"], send["refused"], send["deferred"]) == (0, 0, 1)
    assert r["tables"]["smtp_servers"][0]["deferred"] == 1
    assert r["smtp_messages"]["smtp_deferrals"] == 1


def _build(folder: Path) -> None:
    run = run_cli("synth", "--out", str(folder / "logs"), "--servers", "2", "--days", "3",
                  "--messages", "60", "--relay", "--clients", "--seed", "3")  # fmt: skip
    assert run.returncode == 0, run.stderr
    _ingest(folder / "logs", folder / "full")
    # the same days with the SMTP logs alone: the relay's IIS log, the protocol logs
    only = folder / "smtp-logs"
    for path in (folder / "logs").rglob("*"):
        if path.is_file() and ("SMTPSVC1" in path.parts or "ProtocolLog" in path.parts):
            target = only / path.relative_to(folder / "logs")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    _ingest(only, folder / "smtp")


@pytest.fixture(scope="module")
def synth(tmp_path_factory) -> Path:
    return built_once(tmp_path_factory, "smtp-messages", _build)


@pytest.fixture(scope="module")
def smtp_days(synth, tmp_path_factory) -> dict[str, Path]:
    """Each day's report of the SMTP logs alone (``--json``), run once per run: ``{day: its
    JSON file}``."""

    def build(folder: Path) -> None:
        for day in DAYS:
            done = run_cli("report", "daily", "--store", str(synth / "smtp"), "--date", day,
                           "--json")  # fmt: skip
            assert done.returncode == 0, done.stderr
            (folder / f"{day}.json").write_text(done.stdout, encoding="utf-8")

    folder = built_once(tmp_path_factory, "smtp-messages-days", build)
    return {day: folder / f"{day}.json" for day in DAYS}


def _day(smtp_days: dict[str, Path], day: str) -> dict:
    """``_report(synth / "smtp", day)``, from the run's one report of it."""
    return json.loads(smtp_days[day].read_text(encoding="utf-8"))


def _relay_receipts(full: Path) -> dict[str, int]:
    """Per UTC day, the messages the Exchange servers' tracking logs received from the relay."""
    con = duckdb.connect()
    rows = con.execute(
        f"""
        select strftime(date_time, '%Y-%m-%d'), count(distinct message_id)
        from read_parquet('{full}/tracking/**/*.parquet', hive_partitioning = true,
                          union_by_name = true)
        where event_id = 'RECEIVE' and source = 'SMTP' and original_client_ip = ?
        group by 1
        """,
        [RELAY_IP],
    ).fetchall()
    return dict(rows)


def _lines(f: Path):
    """A protocol log's session, event and data, line by line."""
    with f.open(encoding="utf-8-sig", newline="") as fh:
        for fields in csv.reader(x for x in fh if x.strip() and x[0] != "#"):
            yield fields[2], fields[6], fields[7]


def _protocol_oracle(logs: Path, day: str) -> tuple[int, int]:
    """Of a UTC day's Exchange protocol logs (hourly files named by their hour), read line by
    line: the Receive logs' "Queued mail for delivery" replies, and the Send logs' 2xx replies
    right after a 354 or BDAT ... LAST."""
    tag = day.replace("-", "")
    received = sent = 0
    for f in logs.rglob(f"RECV{tag}*.LOG"):
        received += sum(
            event == ">" and data.startswith("250 ") and "Queued mail for delivery" in data
            for _, event, data in _lines(f)
        )
    for f in logs.rglob(f"SEND{tag}*.LOG"):
        before: dict[str, str] = defaultdict(str)  # session: its last command or reply
        for session, event, data in _lines(f):
            if (
                event == "<"
                and data[:1] == "2"
                and (before[session].startswith("354") or before[session].endswith(" LAST"))
            ):
                sent += 1
            if event in ("<", ">") and data:
                before[session] = data
    return received, sent


def test_synth_relay_and_protocol_logs_count_what_the_tracking_logs_received(synth, smtp_days):
    full = _relay_receipts(synth / "full")
    for day in DAYS:
        r = _day(smtp_days, day)
        assert r["tracking_rows"] == 0
        servers = {s["server"]: s for s in r["tables"]["smtp_servers"]}
        # every message the relay took it handed on, and the Exchange servers received each
        assert servers["RELAY01"]["received"] == servers["RELAY01"]["sent"] == full[day] > 0
        oracle = _protocol_oracle(synth / "smtp-logs", day)
        exchange = [s for name, s in servers.items() if name != "RELAY01"]
        assert sum(s["received"] for s in exchange) == oracle[0] > 0
        assert sum(s["sent"] for s in exchange) == oracle[1] > 0
        h = r["smtp_messages"]
        assert h["smtp_received_messages"] == sum(s["received"] for s in servers.values())
        assert any(a.startswith(f"No tracking logs of {day}: the SMTP logs show") for a in
                   r["attention"])  # fmt: skip
        # with tracking logs the headline stays theirs
        with_tracking = _report(synth / "full", day)
        assert with_tracking["tracking_rows"] > 0
        assert not any("No tracking logs" in a for a in with_tracking["attention"])
        assert with_tracking["smtp_messages"] == h


def _figures(r: dict) -> dict:
    t = r["tables"]
    hourly = [
        (h["hour"], h["inbound_messages"], h["outbound_messages"])
        for h in t["smtp_hourly"]
        if h["inbound_messages"] or h["outbound_messages"]
    ]
    return {
        "summary": {
            s["direction"]: (s["messages"], s["refused"], s["deferred"]) for s in t["smtp_summary"]
        },
        "servers": {s["server"]: s for s in t["smtp_servers"]},
        "hourly": hourly,
        "messages": r["smtp_messages"],
    }


@pytest.mark.parametrize("how", ["--from-rows", "--rollups"])
def test_several_days_give_the_sum_of_their_days(synth, smtp_days, how):
    days = [_figures(_day(smtp_days, d)) for d in DAYS]
    whole = _figures(_report(synth / "smtp", DAYS[-1], "--days", str(len(DAYS)), how))
    for direction, figures in whole["summary"].items():
        assert figures == tuple(
            sum(d["summary"].get(direction, (0, 0, 0))[i] for d in days) for i in range(3)
        )
    for server, row in whole["servers"].items():
        for col in ("received", "sent", "refused", "deferred"):
            assert row[col] == sum(d["servers"].get(server, {}).get(col, 0) for d in days)
    assert whole["hourly"] == [h for d in days for h in d["hourly"]]
    for name, n in whole["messages"].items():
        assert n == sum(d["messages"][name] for d in days), name
    assert sum(f[1] + f[2] for f in whole["summary"].values()) > 0  # outbound refusals seen


def test_line_counts_of_an_earlier_version_are_rebuilt_not_read(tmp_path):
    """A store whose SMTP line counts an earlier version wrote (no message column): out of
    date, the report counts from rows; compaction builds them again with the column."""
    logs = tmp_path / "MEE-PDC"
    logs.mkdir()
    shutil.copy(CORPUS / "iis-smtp" / "ossec-docs-exchange2000-ncsa.log", logs)
    store = tmp_path / "store"
    ingested_here(logs, store)
    st = Store(store)
    index = rollups.load(st, rollups.SMTP_LINES)
    assert index, "the ingest built the day's line counts"
    old = replace(rollups.SMTP_LINES, version=str(int(rollups.SMTP_LINES.version) - 1))
    manifest = st.manifest()
    for day, entry in index.items():
        part = store / entry.part
        pq.write_table(pq.read_table(part).drop_columns(["message"]), part)
        entry.source = rollups.source(manifest, day, kind=old)
    rollups.save(st, index, rollups.SMTP_LINES)

    def check() -> dict:
        done = run_cli("store", "check", "--store", str(store), "--json")
        return json.loads(done.stdout)["smtp_line_aggregates"]

    assert check()["stale"] == len(index)
    r = _report(store, "2006-10-11")
    assert (
        r["smtp_messages"]["smtp_received_messages"],
        r["smtp_messages"]["smtp_sent_messages"],
    ) == (3, 1)
    done = run_cli("store", "compact", "--store", str(store))
    assert done.returncode == 0, done.stderr
    assert check()["current"] == len(index)
    for entry in rollups.load(st, rollups.SMTP_LINES).values():
        assert "message" in pq.read_schema(store / entry.part).names
    assert _report(store, "2006-10-11")["smtp_messages"] == r["smtp_messages"]


def test_a_day_without_tracking_logs_among_days_with_them_is_named(synth, tmp_path):
    # one day's tracking logs not collected: a report of several days counted 2 days of
    # messages and said nothing of the third
    logs = tmp_path / "logs"
    for path in (synth / "logs").rglob("*"):
        if path.is_file() and not ("MessageTracking" in path.parts and "20260303" in path.name):
            target = logs / path.relative_to(synth / "logs")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(path, target)
    ingested_here(logs, tmp_path / "store")
    r = _report(tmp_path / "store", "2026-03-04", "--days", "3", "--from-rows")
    assert r["untracked_days"] == ["2026-03-03"]
    assert (
        "No tracking logs of 2026-03-03: the SMTP logs hold lines of it; its messages are "
        "missing from the message figures."
    ) in r["attention"]
    # the day alone: its message figures' drop against the day before is the missing logs',
    # said once, not seven "-100%" changes before it
    day = _report(tmp_path / "store", "2026-03-03")
    assert day["previous"]["received_messages"] > 0 and day["tracking_rows"] == 0
    # (the whole store's relaying clients may come before it: the accepted domains are
    # inferred from the store's other days)
    missing = [a for a in day["attention"] if a.startswith("No tracking logs of 2026-03-03:")]
    assert missing and missing[0].startswith("No tracking logs of 2026-03-03: the SMTP logs show")
    assert not any("%)" in a and "SMTP" not in a for a in day["attention"]), day["attention"]
    whole = _report(synth / "full", "2026-03-04", "--days", "3", "--from-rows")
    assert whole["untracked_days"] == [] and not any("No tracking" in a for a in whole["attention"])


#: A Receive protocol log: a session that connects a second before midnight and goes TLS
#: after it, and a session of the next day without TLS.
MIDNIGHT_LOG = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
    "#Log-type: SMTP Receive Protocol Log\r\n#Date: 2026-03-02T23:00:00.000Z\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,"
    "remote-endpoint,event,data,context\r\n"
    + "".join(
        f"{t},EX01\\Default Frontend EX01,{sid},{i},10.0.0.1:25,{ip}:50000,{event},{data},"
        f"{context}\r\n"
        for sid, ip, lines in (
            (
                "08DE5C0000000001",
                "198.51.100.7",
                [
                    ("2026-03-02T23:59:59.000Z", "+", "", ""),
                    ("2026-03-02T23:59:59.500Z", "<", "EHLO mx.partner.example", ""),
                    ("2026-03-03T00:00:01.000Z", "<", "STARTTLS", ""),
                    ("2026-03-03T00:00:01.100Z", ">", "220 2.0.0 SMTP server ready", ""),
                    (
                        "2026-03-03T00:00:01.200Z",
                        "*",
                        "",
                        '"TLS protocol SP_PROT_TLS1_2_SERVER negotiation succeeded using bulk '
                        "encryption algorithm CALG_AES_256 with strength 256 bits, MAC hash "
                        "algorithm CALG_SHA_384 with strength 384 bits and key exchange "
                        'algorithm CALG_ECDHE with strength 384 bits"',
                    ),
                    ("2026-03-03T00:00:02.000Z", "-", "", "Remote"),
                ],
            ),
            (
                "08DE5C0000000002",
                "198.51.100.8",
                [
                    ("2026-03-03T08:00:00.000Z", "+", "", ""),
                    ("2026-03-03T08:00:00.500Z", "<", "EHLO mx.other.example", ""),
                    ("2026-03-03T08:00:01.000Z", "-", "", "Remote"),
                ],
            ),
        )
        for i, (t, event, data, context) in enumerate(lines)
    )
)


def _build_tls(folder: Path) -> None:
    _ingest(CORPUS / "smtp-protocol" / "ipban-smtp_auth_unsuccessful.log", folder / "store")
    logs = folder / "EX01"
    logs.mkdir()
    (logs / "RECV2026030223-1.LOG").write_text(MIDNIGHT_LOG)
    _ingest(logs, folder / "midnight")


@pytest.mark.parametrize("source", ["--rollups", "--from-rows"])
def test_a_sessions_tls_is_counted_on_its_day_as_the_tls_table_counts_it(tmp_path_factory, source):
    """With TLS counts the sessions of the period that went TLS, on the day of their connect
    line: never more than the sessions (a STARTTLS whose session connected before the log
    began gave 200%), and per day what the TLS table says."""
    stores = built_once(tmp_path_factory, "smtp-messages-tls", _build_tls)  # (read only)
    store = stores / "store"
    (summary,) = _report(store, "2023-08-31", source)["tables"]["smtp_summary"]
    assert (summary["sessions"], summary["with_tls"], summary["tls_share"]) == (1, 1, 1.0)

    store = stores / "midnight"
    for day, tls in (("2026-03-02", 1), ("2026-03-03", 0)):
        r = _report(store, day, source)
        (summary,) = r["tables"]["smtp_summary"]
        assert (summary["sessions"], summary["with_tls"]) == (1, tls), day
        versions = {v["version"]: v["sessions"] for v in r["tables"]["tls_versions"]}
        assert versions == ({"TLS 1.2": 1} if tls else {"none": 1}), day
    # a report of both days counts the session once
    (summary,) = _report(store, "2026-03-03", "--days", "2", source)["tables"]["smtp_summary"]
    assert (summary["sessions"], summary["with_tls"]) == (2, 1)


def _build_reply_codes(folder: Path) -> None:
    logs = folder / "EX01"
    logs.mkdir()
    head = MIDNIGHT_LOG.split("2026-03-02T23:59:59")[0]
    steps = [
        ("+", ""),
        (">", "220 ex01.contoso.com Microsoft ESMTP MAIL Service ready"),
        ("<", "AUTH LOGIN"),
        (">", "535 5.7.3 Authentication unsuccessful"),
        ("<", "MAIL FROM:<a@contoso.com>"),
        (">", "250 2.1.0 Sender OK"),
        ("<", "RCPT TO:<b@contoso.com>"),
        (">", "432 4.3.2 STOREDRV.Deliver; recipient thread limit exceeded"),
        ("<", "QUIT"),
        (">", "221 2.0.0 Service closing transmission channel"),
        ("-", ""),
    ]
    (logs / "RECV2026030308-1.LOG").write_text(
        head
        + "".join(
            f"2026-03-03T08:00:{i:02d}.000Z,EX01\\Default Frontend EX01,08DE5C0000000003,{i},"
            f"10.0.0.1:25,10.0.0.2:50000,{event},{data},\r\n"
            for i, (event, data) in enumerate(steps)
        )
    )
    _ingest(logs, folder / "store")


@pytest.mark.parametrize("source", ["--rollups", "--from-rows"])
def test_a_reply_code_is_explained_by_its_enhanced_code(tmp_path_factory, source):
    """432 with 4.3.2 is Exchange's recipient thread limit, not RFC 4954's "authenticate with
    another mechanism": the table lists each reply with its enhanced code, explained by it
    (by the reply code where the line has none, or only a class: 2.0.0; and AUTH's 535)."""
    store = built_once(tmp_path_factory, "smtp-messages-replies", _build_reply_codes) / "store"
    rows = _report(store, "2026-03-03", source)["tables"]["reply_codes"]
    got = {(r["reply_code"], r["enhanced"]): r["meaning"] for r in rows}
    assert set(got) == {(220, None), (535, "5.7.3"), (250, "2.1.0"), (432, "4.3.2"), (221, "2.0.0")}
    assert "recipient thread limit exceeded" in got[(432, "4.3.2")]
    assert "authenticate" not in got[(432, "4.3.2")]
    assert got[(535, "5.7.3")] == "Authentication failed because the credentials were wrong."
    assert got[(221, "2.0.0")] == "The server is closing the connection at the end of the session."
