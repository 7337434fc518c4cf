"""The "SMTP clients and relays" section from the store's per-day client aggregates: the
clients table of `loganalyzer report daily --json` is the same with the aggregates current,
out of date (a grown file ingested by the library's ingest, which writes none) and removed;
a session across midnight counts once."""

from __future__ import annotations

import json
import shutil
import subprocess

from conftest import LOGANALYZER

from loganalyzer.ingest import ingest

DAY = "2026-03-03"  # synth's second day; the hand-written sessions are of 03-01 to 03-03
ACCEPTED = ("--accepted-domain", "contoso.com", "--accepted-domain", "fabrikam.com")
HEAD = (
    "#Software: Microsoft Exchange Server\r\n#Version: 15.0.0.0\r\n"
    "#Log-type: SMTP Receive Protocol Log\r\n#Date: {date}\r\n"
    "#Fields: date-time,connector-id,session-id,sequence-number,local-endpoint,remote-endpoint,"
    "event,data,context\r\n"
)


def session(sid: str, ip: str, ehlo: str, times: list[str], rcpt: str) -> str:
    """An anonymous session submitting one message to ``rcpt``, its lines at ``times``."""
    steps = [
        ("+", ""),
        ("<", f"EHLO {ehlo}"),
        ("<", "MAIL FROM:<app@contoso.com>"),
        (">", "250 2.1.0 Sender OK"),
        ("<", f"RCPT TO:<{rcpt}>"),
        (">", "250 2.1.5 Recipient OK"),
        (">", f'"250 2.6.0 <{sid}@app> [InternalId=1, Hostname=ex09] Queued mail for delivery"'),
        ("-", ""),
    ]
    return "".join(
        f"{t},EX09\\Anonymous Relay EX09,{sid},{i},10.0.0.19:25,{ip}:50000,{event},{data},\r\n"
        for i, ((event, data), t) in enumerate(zip(steps, times, strict=True))
    )


def times(start: str, n: int = 8) -> list[str]:
    """``n`` times a second apart from ``start`` (``YYYY-MM-DDTHH:MM:SS``)."""
    import datetime as dt

    t0 = dt.datetime.fromisoformat(start)
    return [(t0 + dt.timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%S.000Z") for i in range(n)]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=600
    )


def clients(store) -> list[dict]:
    done = run("report", "daily", "--store", store, "--date", DAY, "--json", *ACCEPTED)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["tables"]["smtp_clients"]


def without_aggregates(store, tmp_path) -> list[dict]:
    """The clients table of a copy of ``store`` without its per-day client aggregates."""
    bare = tmp_path / "bare"
    shutil.rmtree(bare, ignore_errors=True)
    shutil.copytree(store, bare)
    (bare / "clients.parquet").unlink()
    shutil.rmtree(bare / "clients")
    return clients(bare)


def test_clients_from_day_aggregates_same_as_rows(tmp_path):
    logs, store = tmp_path / "logs", tmp_path / "store"
    done = run(
        "synth", "--out", logs, "--servers", 2, "--days", 2, "--messages", 30, "--seed", 3,
        "--clients", "--agent-logs",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = logs / "EX09" / "ProtocolLog" / "SmtpReceive"
    folder.mkdir(parents=True)
    # a session across midnight (its day's aggregate reads the day after), and a file that grows
    (folder / "RECV2026030123-1.LOG").write_bytes(
        (
            HEAD.format(date="2026-03-01T23:59:57.000Z")
            + session(
                "08DE5C00000000A1",
                "10.0.77.1",
                "NIGHT",
                times("2026-03-01T23:59:57"),
                "x@outside.example",
            )
        ).encode()
    )
    grown = folder / "RECV2026030310-1.LOG"
    grown.write_bytes(
        (
            HEAD.format(date="2026-03-03T10:00:00.000Z")
            + session(
                "08DE5C00000000B1",
                "10.0.77.2",
                "DAYAPP",
                times("2026-03-03T10:00:00"),
                "y@contoso.com",
            )
        ).encode()
    )
    done = run("ingest", logs, "--store", store)
    assert done.returncode == 0, done.stderr
    assert (store / "clients.parquet").exists()  # the command builds them

    current = clients(store)
    assert current == without_aggregates(store, tmp_path)
    night = [r for r in current if r["remote_ip"] == "10.0.77.1"]
    assert [(r["ehlo"], r["messages"], r["relay_messages"]) for r in night] == [("NIGHT", 1, 1)]
    assert night[0]["first_seen"].startswith("2026-03-02T00:00:03")
    assert any(r["anonymous_relay"] for r in current)

    # the file grows, ingested without aggregates: its days (and the day before) are out of
    # date and read from rows, the others from their aggregates
    with grown.open("ab") as fh:
        fh.write(
            session(
                "08DE5C00000000B2",
                "10.0.77.2",
                "DAYAPP",
                times("2026-03-03T11:00:00"),
                "z@outside.example",
            ).encode()  # fmt: skip
        )
    summary = ingest([logs], store)
    assert summary.exit_code == 0
    done = run("store", "check", "--store", store, "--json")
    check = json.loads(done.stdout)
    assert check["ok"] and check["client_aggregates"]["stale"] == 2, check
    assert check["client_aggregates"]["current"] == 1, check  # 2026-03-01's
    assert any("SMTP clients' aggregates out of date" in n for n in check["notices"])
    stale = clients(store)
    assert stale == without_aggregates(store, tmp_path)
    app = [r for r in stale if r["remote_ip"] == "10.0.77.2"]
    assert [(r["messages"], r["relay_messages"]) for r in app] == [(2, 1)]
    assert len(stale) == len(current)


def test_days_built_together_as_each_alone(tmp_path, monkeypatch):
    """``clients.build`` reads the lines of the days it builds together; each day's part is the
    one of that day built alone (from its rows and those of the day before and after)."""
    import pyarrow.compute as pc

    from loganalyzer.read.query import connect
    from loganalyzer.report import load
    from loganalyzer.report.sections import clients as section
    from loganalyzer.store import Store, rollups

    logs, store = tmp_path / "logs", tmp_path / "store"
    done = run(
        "synth", "--out", logs, "--servers", 2, "--days", 2, "--messages", 30, "--seed", 3,
        "--clients",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    folder = logs / "EX09" / "ProtocolLog" / "SmtpReceive"
    folder.mkdir(parents=True)
    night = session(
        "08DE5C00000000A1", "10.0.77.1", "NIGHT", times("2026-03-01T23:59:57"), "x@outside.example"
    )  # fmt: skip
    (folder / "RECV2026030123-1.LOG").write_bytes(
        (HEAD.format(date="2026-03-01T23:59:57.000Z") + night).encode()
    )
    # a session ID seen again two days later: each day's part reads the lines of its own days
    for day in ("2026-03-01", "2026-03-03"):
        again = session(
            "08DE5C00000000C1", "10.0.77.3", "AGAIN", times(f"{day}T10:00:00"), "w@outside.example"
        )  # fmt: skip
        (folder / f"RECV{day.replace('-', '')}10-1.LOG").write_bytes(
            (HEAD.format(date=f"{day}T10:00:00.000Z") + again).encode()
        )
    assert ingest([logs], store).exit_code == 0
    st = Store(store)
    manifest = st.manifest()
    days = sorted(rollups.row_days(manifest))
    assert len(days) >= 3
    con = connect(st, only=rollups.files_of(manifest, set(days)), manifest=manifest)
    spill = load.bound(con)
    try:
        together = section.build(con, days)
        alone = {d: section.build(con, [d])[d] for d in days}
        monkeypatch.setattr(section, "_DAYS_READ_TOGETHER", 2)
        in_twos = section.build(con, days)
    finally:
        con.close()
        spill.cleanup()
    for d in days:
        assert together[d].equals(alone[d]), d
        assert in_twos[d].equals(alone[d]), d
    # the session across midnight, on the day of its submission alone
    ips = {d: together[d].column("remote_ip").to_pylist() for d in days}
    assert [d for d in days if "10.0.77.1" in ips[d]] == ["2026-03-02"]
    again = {d: together[d].filter(pc.equal(together[d]["remote_ip"], "10.0.77.3")) for d in days}
    assert {d: t.column("messages").to_pylist() for d, t in again.items() if t.num_rows} == {
        "2026-03-01": [1],
        "2026-03-03": [1],
    }
