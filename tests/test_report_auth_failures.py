"""Failed SMTP logins are counted once per attempt, whatever the server logs: Exchange writes
an "Inbound AUTH ... failed" line, tarpits 5 s, then replies 535 (a client that disconnects
during the tarpit gets no 535); IIS SMTP logs only the 535."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from conftest import report_json, run_cli

from loganalyzer.store import Store
from loganalyzer.store import rollups as store_rollups

HEAD = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
    "#Log-type: SMTP Receive Protocol Log\r\n#Date: {date}\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
    "event,data,context\r\n"
)
FAILED = "Inbound AUTH LOGIN failed because of LogonDenied"
TARPIT = "Tarpit for '0.00:00:05' due to '535 5.7.3 Authentication unsuccessful'"
REFUSED = "535 5.7.3 Authentication unsuccessful"


def _attempt(mechanism: str = "LOGIN", reason: str = "LogonDenied", answered: bool = True):
    """One failed login as Exchange logs it: the failed line, the tarpit, the 535 (unless the
    client left during the tarpit)."""
    # Exchange names NTLM and Kerberos logins "Negotiate" in the line
    named = "Negotiate" if mechanism in ("NTLM", "GSSAPI") else f"AUTH {mechanism}"
    steps = [
        ("<", f"AUTH {mechanism}", ""),
        ("*", "", f"Inbound {named} failed because of {reason}"),
        ("*", "", "User Name: admin@contoso.com"),
        ("*", TARPIT, ""),
    ]
    return [*steps, (">", REFUSED, "")] if answered else steps


def _session(start: str, session: str, ip: str, steps: list[tuple[str, str, str]]) -> str:
    """Protocol log lines of one inbound session from ``ip``, a second apart from ``start``."""
    t0 = dt.datetime.fromisoformat(start)
    steps = [("+", "", ""), ("<", "EHLO guesser", ""), *steps, ("-", "", "Remote(SocketError)")]
    return "".join(
        f"{(t0 + dt.timedelta(seconds=i)):%Y-%m-%dT%H:%M:%S.000Z},EX01\\Client Frontend EX01,"
        f"{session},{i},10.0.0.6:587,{ip}:50000,{event},{data},{context}\r\n"
        for i, (event, data, context) in enumerate(steps)
    )


def _iis(when: str, ip: str) -> str:
    """An IIS SMTP W3C line of a refused AUTH (535) from ``ip``."""
    return (
        f"{when} {ip} guesser SMTPSVC1 MAIL01 10.1.1.1 0 AUTH - +LOGIN 535 0 42 12 0 SMTP - - - -\n"
    )


IIS_HEAD = (
    "#Software: Microsoft Internet Information Services 6.0\n#Version: 1.0\n#Date: {date}\n"
    "#Fields: date time c-ip cs-username s-sitename s-computername s-ip s-port cs-method "
    "cs-uri-stem cs-uri-query sc-status sc-win32-status sc-bytes cs-bytes time-taken cs-version "
    "cs-host cs(User-Agent) cs(Cookie) cs(Referer)\n"
)


def _logs(root: Path) -> Path:
    """Two days of failed logins. 2026-03-02: 198.51.100.7 left during the tarpit once, then
    was answered once and left during the next tarpit (3); 198.51.100.8 was answered twice, by
    Exchange (2); 203.0.113.9 was refused by IIS SMTP (1); 198.51.100.20 failed at 23:59:58 and
    got its 535 after midnight (1, on 2026-03-02). 2026-03-03: 198.51.100.8 once more (1)."""
    recv = root / "EX01" / "ProtocolLog" / "SmtpReceive"
    recv.mkdir(parents=True)
    (recv / "RECV2026030210-1.LOG").write_text(
        HEAD.format(date="2026-03-02T10:00:00.000Z")
        + _session(
            "2026-03-02T10:00:00",
            "08DE5A1B2C3D4F01",
            "198.51.100.7",
            _attempt("LOGIN", answered=False),
        )
        + _session(
            "2026-03-02T10:05:00",
            "08DE5A1B2C3D4F02",
            "198.51.100.8",
            [*_attempt("LOGIN"), *_attempt("PLAIN", "InvalidCredentials")],
        )
        + _session(
            "2026-03-02T10:10:00",
            "08DE5A1B2C3D4F03",
            "198.51.100.7",
            [*_attempt("NTLM", answered=False), *_attempt("LOGIN", answered=False)],
        ),
        newline="",
    )  # fmt: skip
    (recv / "RECV2026030223-1.LOG").write_text(
        HEAD.format(date="2026-03-02T23:59:56.000Z")
        + _session("2026-03-02T23:59:56", "08DE5A1B2C3D4F04", "198.51.100.20", _attempt()),
        newline="",
    )
    (recv / "RECV2026030310-1.LOG").write_text(
        HEAD.format(date="2026-03-03T10:00:00.000Z")
        + _session("2026-03-03T10:00:00", "08DE5A1B2C3D4F05", "198.51.100.8", _attempt()),
        newline="",
    )
    iis = root / "MAIL01" / "SMTPSVC1"
    iis.mkdir(parents=True)
    (iis / "ex260302.log").write_text(
        IIS_HEAD.format(date="2026-03-02 11:00:00") + _iis("2026-03-02 11:00:00", "203.0.113.9"),
        newline="",
    )
    return root


DAY1 = {"198.51.100.7": 3, "198.51.100.8": 2, "198.51.100.20": 1, "203.0.113.9": 1}


def _failures(report: dict) -> dict[str, int]:
    return {r["remote_ip"]: r["failures"] for r in report["tables"]["auth_failures"]}


def _ingested(tmp_path: Path) -> Path:
    st = tmp_path / "store"
    done = run_cli("ingest", str(_logs(tmp_path / "logs")), "--store", str(st))
    assert done.returncode == 0, done.stderr
    return st


def test_a_failed_login_is_counted_once_whatever_the_server_logs(tmp_path):
    """A client gone during the tarpit (no 535) is counted; Exchange's line and 535 of one
    attempt count once; IIS's 535 alone counts; the report says the rule."""
    st = _ingested(tmp_path)
    for how in ("--from-rows", "--rollups"):  # from rows, and from the day's line counts
        report, _ = report_json(st, "--date", "2026-03-02", how)
        assert report["headline"]["auth_failures"] == sum(DAY1.values()) == 7, how
        assert _failures(report) == DAY1, how
        summary = {r["direction"]: r["auth_failures"] for r in report["tables"]["smtp_summary"]}
        assert summary["receive"] == 7
        ips = {r["remote_ip"]: r["auth_failures"] for r in report["tables"]["remote_ips"]}
        assert ips["198.51.100.7"] == 3
    assert "Inbound AUTH ... failed" in report["rules"]["sessions"]
    assert "535 replies to clients (password" not in report["rules"]["sessions"]
    # the next day: the 535 after midnight belongs to the attempt of the day before
    report, _ = report_json(st, "--date", "2026-03-03", "--from-rows")
    assert _failures(report) == {"198.51.100.8": 1}


def test_several_days_from_rollups_count_them_as_the_rows(tmp_path):
    """Two days from the rollups and line counts give what the rows give, and what the two
    one-day reports from rows add up to."""
    st = _ingested(tmp_path)
    both = ["--date", "2026-03-03", "--days", "2"]
    fast, _ = report_json(st, *both, "--rollups")
    slow, _ = report_json(st, *both, "--from-rows")
    days = [report_json(st, "--date", d, "--from-rows")[0] for d in ("2026-03-02", "2026-03-03")]
    want = sum(d["headline"]["auth_failures"] for d in days)
    assert want == 8
    assert fast["headline"]["auth_failures"] == slow["headline"]["auth_failures"] == want
    assert _failures(fast) == _failures(slow) == {**DAY1, "198.51.100.8": 3}


def test_line_counts_kept_by_an_earlier_version_are_not_read(tmp_path):
    """A store whose per-day line counts and rollups were built before failed lines counted
    (their figures without the clients gone during the tarpit) shows the figures of the rows:
    those parts are out of date (the next ingest or compaction builds them again)."""
    st = _ingested(tmp_path)
    store = Store(st)
    manifest = store.manifest()
    for kind, old in (
        (store_rollups.SMTP_LINES, dataclasses.replace(store_rollups.SMTP_LINES, version="1")),
        (store_rollups.ROLLUPS, dataclasses.replace(store_rollups.ROLLUPS, version="6")),
    ):
        index = store_rollups.load(store, kind)
        for day, entry in index.items():
            entry.source = store_rollups.source(manifest, day, kind=old)
            path = st / entry.part  # the old figures (none, to tell them apart)
            t = pq.read_table(path)
            if kind is store_rollups.SMTP_LINES:
                column = [None if k == "auth" else k for k in t.column("kind").to_pylist()]
                t = t.set_column(t.schema.get_field_index("kind"), "kind", pa.array(column))
            else:
                column = [
                    0 if m == "auth_failures" else n
                    for m, n in zip(t["measure"].to_pylist(), t["n"].to_pylist(), strict=True)
                ]
                t = t.set_column(t.schema.get_field_index("n"), "n", pa.array(column, pa.int64()))
            pq.write_table(t, path)
        store_rollups.save(store, index, kind)
    report, _ = report_json(st, "--date", "2026-03-03", "--days", "2", "--rollups")
    assert report["headline"]["auth_failures"] == 8
    assert _failures(report) == {**DAY1, "198.51.100.8": 3}
    report, _ = report_json(st, "--date", "2026-03-02")  # a day: its line counts if current
    assert _failures(report) == DAY1


def test_watch_warns_of_guessing_whose_client_leaves_during_each_tarpit(tmp_path):
    """25 guesses in 10 minutes from one IP, each client gone during the tarpit (no 535):
    `watch --once` warns of them as of answered ones."""
    recv = tmp_path / "logs" / "EX01" / "ProtocolLog" / "SmtpReceive"
    recv.mkdir(parents=True)
    start = dt.datetime(2026, 3, 2, 10, 0, tzinfo=dt.UTC)
    (recv / "RECV2026030210-1.LOG").write_text(
        HEAD.format(date="2026-03-02T10:00:00.000Z")
        + "".join(
            _session(
                f"{start + dt.timedelta(seconds=20 * i):%Y-%m-%dT%H:%M:%S}",
                f"08DE5A1B2C3D5{i:03X}",
                "198.51.100.66",
                _attempt(answered=False),
            )
            for i in range(25)
        ),
        newline="",
    )
    rules = tmp_path / "rules.toml"
    rules.write_text("[auth_failures]\nthreshold = 20\nwindow_minutes = 10\n")
    done = run_cli(
        "watch", "--once", str(tmp_path / "logs"), "--store", str(tmp_path / "st"),
        "--rules", str(rules),
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("WATCH WARNING - auth_failures 198.51.100.66: 2"), done.stdout
