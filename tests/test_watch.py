"""`loganalyzer watch` as users run it: a subprocess over a log folder that grows hour by hour
(synth logs with incidents), alerts received by a local webhook, a local SMTP server and a
Prometheus textfile; and `watch --once` with the monitoring-plugin exit codes."""

from __future__ import annotations

import datetime as dt
import json
import queue
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import LOGANALYZER, PORTABILITY, built_once
from prometheus_client.parser import text_string_to_metric_families
from reportdata import Expected
from test_report_mail import smtp_server  # noqa: F401 - the fixture

from loganalyzer.store.lock import HOLDER_FILE

DAY = "20260302"
RULES = """
[queue_backlog]
threshold = 4
for_minutes = 15
severity = "critical"

[auth_failures]
threshold = 20
window_minutes = 60  # the folder grows an hour at a time

[vip]
window_minutes = 60
severity = "critical"

[logs_stopped]
minutes = 120

[quarantine]
repeat_minutes = 0
"""


@pytest.fixture(scope="module")
def synth_logs(tmp_path_factory) -> Path:
    """The logs with incidents, made once for the run: read only (the tests copy hours)."""

    def build(folder: Path) -> None:
        done = subprocess.run(
            [LOGANALYZER, "synth", "--out", str(folder / "logs"), "--messages", "300"]
            + ["--incidents"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, done.stderr

    return built_once(tmp_path_factory, "watch-synth", build) / "logs"


def _hour(path: Path) -> int:
    stamp = "".join(c for c in path.stem.split("-")[0] if c.isdigit())
    assert stamp.startswith(DAY), path
    return int(stamp[8:10])


def copy_hours(src: Path, dst: Path, hours: range, servers: set[str] | None = None) -> None:
    """Copies the logs of these hours (of these servers), each file whole (a rename)."""
    for f in sorted(src.rglob("*.LOG")):
        rel = f.relative_to(src)
        if _hour(f) in hours and (servers is None or rel.parts[0] in servers):
            target = dst / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(target.name + ".part")
            shutil.copyfile(f, tmp)
            tmp.rename(target)


def vip_of(src: Path) -> tuple[str, int]:
    """A recipient who failed once, early on the first day (before the incidents), and when."""
    failed = [json.loads(line) for line in (src / "truth.jsonl").read_text().splitlines()]
    failed = [r for r in failed if r["verdict"] == "failed" and r["at"]]
    once = Counter(r["recipient"] for r in failed)
    for rec in failed:
        hour = int(rec["at"][11:13])
        if once[rec["recipient"]] == 1 and rec["at"].startswith("2026-03-02") and 1 <= hour <= 8:
            return rec["recipient"], hour
    raise AssertionError("no recipient failed once between 01:00 and 09:00")


class Hook(BaseHTTPRequestHandler):
    received: list[dict] = []
    tried: list[dict] = []  # every request, answered 500 or not
    failures = 0  # answer this many requests with 500 first

    def do_POST(self):  # noqa: N802 - http.server's name
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        Hook.tried.append(body)
        if Hook.failures:
            Hook.failures -= 1
            self.send_response(500)
        else:
            Hook.received.append(body)
            self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    Hook.received, Hook.tried, Hook.failures = [], [], 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts", Hook
    server.shutdown()


class Rounds:
    """Reads the JSON line watch prints after each round."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: queue.Queue = queue.Queue()
        self.all: list[dict] = []
        threading.Thread(target=self._read, args=(proc.stdout,), daemon=True).start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.put(json.loads(line))

    def after_change(self) -> list[dict]:
        """The rounds up to the first that surely started after the change: the second."""
        got = [self.lines.get(timeout=180), self.lines.get(timeout=180)]
        self.all += got
        return got


def notices(rounds: list[dict]) -> list[tuple[str, str, str]]:
    return [(n["status"], n["rule"], n["key"]) for r in rounds for n in r["notices"]]


#: What the resolution of each rule says.
RECOVERED = {
    "vip": ": no failed or deferred mail in 60 minutes",
    "auth_failures": "20 failed authentications or fewer from ",
    "queue_backlog": "4 messages or fewer waiting on ",
    "logs_stopped": " logs again (silent after ",
    "quarantine": "no new quarantined lines",
}


def test_watch_raises_each_alert_once_and_resolves_it(
    synth_logs,
    tmp_path,
    webhook,
    smtp_server,  # noqa: F811
):
    url, hook = webhook
    inbox, smtp_port = smtp_server()
    vip, vip_hour = vip_of(synth_logs)
    (tmp_path / "vip.txt").write_text(f"# the board\n{vip.upper()}\n")
    (tmp_path / "rules.toml").write_text(RULES)
    watched, store, textfile = tmp_path / "logs", tmp_path / "store", tmp_path / "la.prom"
    watched.mkdir()
    proc = subprocess.Popen(
        [
            LOGANALYZER,
            "watch",
            str(watched),
            "--store",
            str(store),
            "--rules",
            str(tmp_path / "rules.toml"),
            "--vip",
            str(tmp_path / "vip.txt"),
            "--interval",
            "1",
            "--webhook",
            url,
            "--mail-to",
            "ops@contoso.com",
            "--smtp-host",
            "127.0.0.1",
            "--smtp-port",
            str(smtp_port),
            "--textfile",
            str(textfile),
            "--json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = Rounds(proc)
    try:
        steps = {}
        copy_hours(synth_logs, watched, range(0, vip_hour))
        steps["quiet"] = rounds.after_change()
        copy_hours(synth_logs, watched, range(vip_hour, vip_hour + 1))
        steps["vip"] = rounds.after_change()
        # (hours landing at once: one round, with the queue backlog that began at 09:00)
        copy_hours(synth_logs, watched, range(vip_hour + 1, 15))
        steps["vip gone"] = rounds.after_change()
        copy_hours(synth_logs, watched, range(15, 16))
        steps[15] = rounds.after_change()
        # hour 16, after which EX04's logs stop coming, and the others' later hours
        copy_hours(synth_logs, watched, range(16, 17))
        copy_hours(synth_logs, watched, range(17, 24), {"EX01", "EX02", "EX03"})
        steps["16, EX04 stopped"] = rounds.after_change()
        prom = {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(textfile.read_text())
            for s in family.samples
        }
        copy_hours(synth_logs, watched, range(17, 24), {"EX04"})
        (watched / "EX04" / "MessageTracking" / "MSGTRK2026030223-9.LOG").write_bytes(
            (synth_logs / "EX04" / "MessageTracking" / "MSGTRK2026030223-1.LOG").read_bytes()
            + b"2026-03-02T23:59:59.000Z,damaged line\r\n2026-03-02T23:59:59.000Z,"
        )
        steps["EX04 back"] = rounds.after_change()
        steps["after"] = rounds.after_change()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and err.strip().endswith("watch stopped")

    said = {k: notices(v) for k, v in steps.items()}
    assert said["quiet"] == []
    assert said["vip"] == [("firing", "vip", vip)]
    assert ("resolved", "vip", vip) in said["vip gone"]
    assert ("firing", "auth_failures", "203.0.113.210") in said[15]
    assert ("resolved", "auth_failures", "203.0.113.210") in said["16, EX04 stopped"]
    backlog = [n for n in notices(rounds.all) if n[1] == "queue_backlog"]
    assert backlog and {n[0] for n in backlog} == {"firing", "resolved"}
    assert ("firing", "logs_stopped", "EX04") in said["16, EX04 stopped"]
    assert ("resolved", "logs_stopped", "EX04") in said["EX04 back"]
    assert ("firing", "quarantine", "lines") in said["EX04 back"]
    assert ("resolved", "quarantine", "lines") in said["EX04 back"] + said["after"]
    # each alert fires once and resolves once: no repeat within the default quiet period
    everything = Counter(notices(rounds.all))
    assert everything and all(n == 1 for n in everything.values()), everything
    assert {(k[0], k[1]) for k in everything} <= {
        (s, r)
        for s in ("firing", "resolved")
        for r in ("vip", "auth_failures", "queue_backlog", "logs_stopped", "quarantine")
    }
    # the same notices reached the webhook, and the mail server
    assert Counter((h["status"], h["rule"], h["key"]) for h in hook.received) == everything
    # a resolution says the recovery (it repeated the firing text with its last figures)
    said = {(h["status"], h["rule"], h["key"]): h["text"] for h in hook.received}
    for (status, rule, key), text in said.items():
        if status == "resolved":
            assert RECOVERED[rule] in text and text != said[("firing", rule, key)], text
    subjects = [inbox.message(i)["Subject"] for i in range(len(inbox.envelopes))]
    assert any("FIRING critical vip" in s for s in subjects), subjects
    assert any("RESOLVED" in s for s in subjects)
    # the textfile while EX04 was silent
    key = (
        "loganalyzer_alert",
        (("key", "EX04"), ("rule", "logs_stopped"), ("severity", "warning")),
    )
    assert prom[key] == 1.0
    assert prom[("loganalyzer_alerts_firing", (("severity", "warning"),))] >= 1
    # the store is whole after SIGTERM
    check = subprocess.run(
        [LOGANALYZER, "store", "check", "--store", str(store)], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


def run_once(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, "watch", "--once", *args], capture_output=True, text=True, timeout=300
    )


def test_once_follows_the_monitoring_plugin_convention(synth_logs, tmp_path):
    (tmp_path / "rules.toml").write_text(RULES)
    watched, store = tmp_path / "logs", str(tmp_path / "store")
    common = ["--store", store, "--rules", str(tmp_path / "rules.toml")]
    copy_hours(synth_logs, watched, range(0, 9))
    ok = run_once(str(watched), *common)
    assert (ok.returncode, ok.stdout.split(" - ")[0]) == (0, "WATCH OK"), ok.stdout + ok.stderr
    assert len(ok.stdout.splitlines()) == 1
    # hours that land at once: the backlog that began at 09:00 lasts its 15 minutes in them
    copy_hours(synth_logs, watched, range(9, 12))
    critical = run_once(str(watched), *common)
    assert critical.returncode == 2, critical.stdout + critical.stderr
    text, perf = critical.stdout.rstrip().split(" | ")
    alerts = text.removeprefix("WATCH CRITICAL - ").split("; ")
    assert alerts and all(a.startswith("queue_backlog EX0") for a in alerts), text
    assert all(" example.com: " in a and " messages waiting on EX0" in a for a in alerts), text
    assert perf == f"warning=0 critical={len(alerts)}"
    # each round brings the rollups up to date, as the ingest command does
    checked = subprocess.run(
        [LOGANALYZER, "store", "check", "--store", store, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert json.loads(checked.stdout)["rollups"] == {
        "current": 1,
        "kept": 0,
        "missing": 0,
        "stale": 0,
    }
    copy_hours(synth_logs, watched, range(12, 16))
    warning = run_once(str(watched), *common, "--json")  # the burst at 15:00; the queue drained
    data = json.loads(warning.stdout)
    assert warning.returncode == 1 and data["status"] == "WARNING"
    assert [(a["rule"], a["key"]) for a in data["firing"]] == [("auth_failures", "203.0.113.210")]
    assert data["firing"][0]["text"].startswith("40 failed authentications from 203.0.113.210")
    # anything wrong is UNKNOWN (3) with one status line, not a usage error
    (tmp_path / "bad.toml").write_text("[queue_backlog]\nthreshold = 'many'\n")
    bad = run_once("--store", store, "--rules", str(tmp_path / "bad.toml"))
    assert bad.returncode == 3 and "Traceback" not in bad.stderr
    assert bad.stdout.strip() == (
        f"WATCH UNKNOWN - --rules {tmp_path / 'bad.toml'}: [queue_backlog] threshold = 'many'; "
        "give a number >= 0"
    )
    missing = run_once("--store", str(tmp_path / "nothing-here"))
    assert missing.returncode == 3 and missing.stdout.startswith("WATCH UNKNOWN - ")


def test_a_webhook_is_retried_with_backoff(webhook):
    from loganalyzer.watch import Webhook
    from loganalyzer.watch.state import Alert, Notice

    url, hook = webhook
    hook.failures = 2
    waits = []
    alert = Alert(
        "vip",
        "ceo@contoso.com",
        "critical",
        "firing",
        "2026-03-02T10:00:00+00:00",
        1.0,
        "VIP ceo@contoso.com: 1 failed",
    )
    Webhook(url, sleep=waits.append).send([Notice("firing", alert, alert.since)], "store")
    assert waits == [1, 2]
    assert [(h["status"], h["key"], h["store"]) for h in hook.received] == [
        ("firing", "ceo@contoso.com", "store")
    ]
    hook.failures = 10
    with pytest.raises(OSError, match="webhook http://127.0.0.1:.*HTTP Error 500"):
        Webhook(url, sleep=waits.append).send([Notice("firing", alert, alert.since)], "store")


BURST = [
    ("firing", "auth_failures", "203.0.113.210"),
    ("resolved", "auth_failures", "203.0.113.210"),
]


def test_every_notice_of_a_round_is_tried_and_what_failed_is_sent_next_round(
    synth_logs, tmp_path, webhook
):
    """A webhook answering 500 had only the round's first notice retried; the burst's
    resolution was never tried, and lost (only a firing alert was sent again)."""
    url, hook = webhook
    (tmp_path / "rules.toml").write_text(AUTH_ONLY)
    copy_hours(synth_logs, tmp_path / "logs", range(0, 16))  # the burst of 15:00 and its end
    common = ["--store", str(tmp_path / "store"), "--rules", str(tmp_path / "rules.toml")]
    hook.failures = 100
    down = run_once(str(tmp_path / "logs"), *common, "--webhook", url)
    assert down.returncode == 1, down.stdout + down.stderr
    assert {(h["status"], h["rule"], h["key"]) for h in hook.tried} == set(BURST)
    assert "; 2 notices not sent (next round) | " in down.stdout, down.stdout
    hook.failures = 0
    back = run_once(*common, "--webhook", url, "--json")
    assert [(h["status"], h["rule"], h["key"]) for h in hook.received] == BURST
    assert len(json.loads(back.stdout)["resent"]) == 2 and back.returncode == 0
    again = run_once(*common, "--webhook", url)
    assert len(hook.received) == 2 and again.stdout.startswith("WATCH OK - no alert;")


def test_a_refused_alert_mail_names_the_address_and_the_reply(
    synth_logs,
    tmp_path,
    smtp_server,  # noqa: F811
):
    """The relay refused the recipient at RCPT: the line gave a Python dict of bytes."""
    inbox, port = smtp_server(refuse={"ops@contoso.com": "550 5.7.1 Relaying denied"})
    (tmp_path / "rules.toml").write_text(AUTH_ONLY)
    copy_hours(synth_logs, tmp_path / "logs", range(0, 16))  # the burst of 15:00 and its end
    done = run_once(
        str(tmp_path / "logs"),
        *["--store", str(tmp_path / "store"), "--rules", str(tmp_path / "rules.toml")],
        *["--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--mail-to", "ops@contoso.com"],
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "warning: cannot notify mail: ops@contoso.com refused: 550 5.7.1 Relaying denied"
        in done.stderr.splitlines()
    ), done.stderr
    assert inbox.envelopes == []


def test_an_alert_mail_refused_to_one_recipient_is_said_and_not_sent_again(
    synth_logs,
    tmp_path,
    smtp_server,  # noqa: F811
):
    """One recipient refused among others passed unsaid; the others have it: the next
    round does not send it again."""
    inbox, port = smtp_server(refuse={"gone@contoso.com": "550 5.1.1 User unknown"})
    (tmp_path / "rules.toml").write_text(AUTH_ONLY)
    copy_hours(synth_logs, tmp_path / "logs", range(0, 16))  # the burst of 15:00 and its end
    common = ["--store", str(tmp_path / "store"), "--rules", str(tmp_path / "rules.toml")]
    common += ["--smtp-host", "127.0.0.1", "--smtp-port", str(port)]
    common += ["--mail-to", "ops@contoso.com", "--mail-to", "gone@contoso.com"]
    done = run_once(str(tmp_path / "logs"), *common)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stderr.splitlines() == [
        "warning: cannot notify mail: gone@contoso.com refused: 550 5.1.1 User unknown "
        "(mailed to ops@contoso.com)"
    ]
    assert [e.rcpt_tos for e in inbox.envelopes] == [["ops@contoso.com"]]
    again = run_once(*common)
    assert len(inbox.envelopes) == 1 and again.stdout.startswith("WATCH OK - no alert;")


def test_once_gives_up_on_a_hung_webhook_in_seconds(synth_logs, tmp_path):
    """A webhook that never answers held `watch --once` 50 s (four tries of 10 s and the
    waits between): a monitoring plugin is killed long before."""
    hung = socket.create_server(("127.0.0.1", 0))  # connections queue, never answered
    (tmp_path / "rules.toml").write_text(AUTH_ONLY)
    copy_hours(synth_logs, tmp_path / "logs", range(14, 16))
    url = f"http://127.0.0.1:{hung.getsockname()[1]}/alerts"
    rules = ["--rules", str(tmp_path / "rules.toml")]
    start = time.monotonic()
    with hung:
        done = run_once(str(tmp_path / "logs"), "--store", str(tmp_path / "store"), *rules)
        took = time.monotonic() - start
        start = time.monotonic()
        hanging = subprocess.run(
            [LOGANALYZER, "watch", "--once", str(tmp_path / "logs"), "--webhook", url]
            + ["--store", str(tmp_path / "other"), *rules],
            capture_output=True,
            text=True,
            timeout=took + 20,
        )
    assert time.monotonic() - start < took + 8  # the 5 s notifying budget and some slack
    assert hanging.returncode == 1 and done.returncode == 1, hanging.stdout + hanging.stderr
    assert "2 notices not sent (next round)" in hanging.stdout
    assert "cannot notify webhook: webhook http://127.0.0.1:" in hanging.stderr


def test_show_rules_prints_the_documented_defaults():
    done = subprocess.run([LOGANALYZER, "watch", "--show-rules"], capture_output=True, text=True)
    assert done.returncode == 0
    import tomllib

    rules = tomllib.loads(done.stdout)
    assert list(rules) == [
        "queue_backlog",
        "failure_rate",
        "auth_failures",
        "vip",
        "logs_stopped",
        "no_new_logs",
        "quarantine",
    ]
    assert all(r["meaning"] and r["severity"] in ("warning", "critical") for r in rules.values())


def _fails(day: str, n: int, start: int) -> list[dict]:
    from logfiles import row

    return [
        row(
            start + i,
            date_time=f"{day}T10:{i % 60:02d}:{i % 60:02d}.000Z",
            event_id="FAIL",
            source="SMTP",
            recipient_status="550 5.1.1 RESOLVER.ADR.RecipNotFound; not found",
        )
        for i in range(n)
    ]


@pytest.mark.parametrize(("before", "now", "fires"), [(2, 30, True), (12, 30, False)])
def test_failure_rate_compares_with_the_same_hour_a_week_before(tmp_path, before, now, fires):
    from logfiles import write_log

    logs = tmp_path / "logs" / "EX02"
    write_log(logs / "MSGTRK2026030210-1.LOG", _fails("2026-03-02", before, 0))
    write_log(logs / "MSGTRK2026030910-1.LOG", _fails("2026-03-09", now, 100))
    (tmp_path / "rules.toml").write_text("[failure_rate]\nfactor = 3\nmin_failures = 20\n")
    done = run_once(
        str(tmp_path / "logs"),
        "--store",
        str(tmp_path / "store"),
        "--rules",
        str(tmp_path / "rules.toml"),
    )
    if fires:
        assert done.returncode == 1, done.stdout + done.stderr
        assert done.stdout.startswith(
            "WATCH WARNING - failure_rate all: 30 failed recipients in the hour to "
            "2026-03-09 10:29 UTC, 2 in the same hour a week before"
        )
    else:  # 30 is not more than 3 x 12
        assert (done.returncode, done.stdout.split(" - ")[0]) == (0, "WATCH OK"), done.stdout


def tomorrows_logs(tmp_path: Path) -> tuple[Path, Path, str, dt.date]:
    """(a day of synth logs of tomorrow's date, the folder to watch, the store, the day): no
    rows of an earlier day than a round's (as today's, the clock not passing midnight meanwhile)."""
    day = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).date()
    logs, watched, store = tmp_path / "all", tmp_path / "logs", str(tmp_path / "store")
    made = subprocess.run(
        [LOGANALYZER, "synth", "--out", str(logs), "--servers", "2", "--days", "1"]
        + ["--messages", "60", "--start", day.isoformat()],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert made.returncode == 0, made.stderr
    return logs, watched, store, day


def test_a_round_of_todays_rows_brings_the_aggregates_up_to_date_every_refresh_interval(
    tmp_path,
):
    logs, watched, store, day = tomorrows_logs(tmp_path)

    def round_(*options: str) -> dict:
        copied = run_once(str(watched), "--store", store, "--json", *options)
        assert copied.returncode in (0, 1, 2), copied.stdout + copied.stderr
        return json.loads(copied.stdout)

    def rollups() -> dict:
        done = subprocess.run(
            [LOGANALYZER, "store", "check", "--store", store, "--json"],
            capture_output=True,
            text=True,
            timeout=300,
        )
        return json.loads(done.stdout)["rollups"]

    files = sorted(logs.rglob("*.LOG"))
    for i, part in enumerate((files[: len(files) // 2], files[len(files) // 2 :])):
        for f in part:
            target = watched / f.relative_to(logs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)
        if i == 0:
            first = round_()
            assert first["aggregates"] == "refreshed" and first["ingested"]["rows"] > 0
            assert rollups()["current"] == 1
    second = round_()  # within 15 minutes of the first: the rows are in, the day out of date
    assert second["aggregates"] == "deferred" and second["ingested"]["rows"] > 0
    assert rollups() == {"current": 0, "kept": 0, "stale": 1, "missing": 0}
    # what the day's rows say is whole all the same: a report counts them
    report = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", store, "--date", day.isoformat()]
        + ["--json", "--traces", "0"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert report.returncode == 0, report.stderr
    got = json.loads(report.stdout)
    truth = [json.loads(line) for line in (logs / "truth.jsonl").read_text().splitlines()]
    want = Expected(truth, day.isoformat())
    assert got["headline"]["received_messages"] == len(want.received) > 0
    third = round_("--refresh-every", "0s")  # nothing new: what is out of date is built
    assert third["aggregates"] == "refreshed" and third["ingested"]["rows"] == 0
    assert rollups()["current"] == 1
    bad = run_once(str(watched), "--store", store, "--refresh-every", "soon")
    assert bad.returncode == 3 and bad.stdout.strip() == (
        "WATCH UNKNOWN - --refresh-every 'soon': not a length of time; give a number and a "
        "unit: 90s, 5m, 36h, 2d"
    )


def test_an_alert_no_notifier_could_send_is_sent_next_round(synth_logs, tmp_path, webhook):
    """A webhook or mail relay down when an alert fires must not swallow it: the next round
    sends it (it was marked sent, and kept quiet until its repeat)."""
    url, hook = webhook
    (tmp_path / "rules.toml").write_text(RULES)
    watched, store = tmp_path / "logs", str(tmp_path / "store")
    common = ["--store", store, "--rules", str(tmp_path / "rules.toml"), "--json"]
    copy_hours(synth_logs, watched, range(0, 12))
    assert run_once(str(watched), *common).returncode in (0, 2)
    copy_hours(synth_logs, watched, range(12, 16))  # the password-guessing burst at 15:00
    down = run_once(str(watched), *common, "--webhook", "http://127.0.0.1:9/alerts")
    fired = [n for n in json.loads(down.stdout)["notices"] if n["rule"] == "auth_failures"]
    assert [n["status"] for n in fired] == ["firing"], down.stdout
    assert "cannot notify webhook" in down.stdout + down.stderr
    back = run_once(*common, "--webhook", url)
    # and the round's resolutions, kept as they were
    resolved = [(n["status"], n["rule"]) for n in json.loads(down.stdout)["notices"][:-1]]
    assert {n[0] for n in resolved} == {"resolved"}
    sent = [(h["status"], h["rule"]) for h in hook.received]
    assert sent == [*resolved, ("firing", "auth_failures")]
    assert back.returncode == 1, back.stdout
    again = run_once(*common, "--webhook", url)  # heard once: quiet until its repeat
    assert json.loads(again.stdout)["notices"] == [] and len(hook.received) == len(sent)


def test_a_webhook_that_is_no_address_is_refused_at_start(tmp_path):
    done = run_once("--store", str(tmp_path / "store"), "--webhook", "notaurl")
    assert done.returncode == 3
    assert done.stdout.strip() == (
        "WATCH UNKNOWN - --webhook 'notaurl': give an http:// or https:// address"
    )


AUTH_ONLY = """
[auth_failures]
threshold = 20
window_minutes = 10
"""


def test_hours_that_land_at_once_raise_the_alert_of_a_burst_early_in_them_once(
    synth_logs, tmp_path, webhook
):
    """A round that ingests more than a rule's window of rows (hourly copies landing at
    once, a watch that ran behind) evaluates every window in them: the burst of 15:00 fires
    and resolves once, though the newest row is two hours later."""
    url, hook = webhook
    (tmp_path / "rules.toml").write_text(AUTH_ONLY)
    watched, store = tmp_path / "logs", tmp_path / "store"
    copy_hours(synth_logs, watched, range(0, 10))
    proc = subprocess.Popen(
        [LOGANALYZER, "watch", str(watched), "--store", str(store)]
        + ["--rules", str(tmp_path / "rules.toml"), "--interval", "1", "--webhook", url]
        + ["--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rounds = Rounds(proc)
    try:
        first = rounds.after_change()
        copy_hours(synth_logs, watched, range(10, 18))  # 15:00 is two hours before the newest
        batch = rounds.after_change()
        copy_hours(synth_logs, watched, range(18, 24))
        after = rounds.after_change()
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert notices(first) == [] and notices(after) == []
    burst = ("auth_failures", "203.0.113.210")
    assert [n[0] for n in notices(batch) if n[1:] == burst] == ["firing", "resolved"]
    fired = next(n for r in batch for n in r["notices"] if n["status"] == "firing")
    assert "2026-03-02T15:00" <= fired["at"] < "2026-03-02T15:15", fired
    assert all(r["now"] > "2026-03-02T17:00" for r in batch if r["notices"])
    assert [(h["status"], h["rule"], h["key"]) for h in hook.received] == [
        ("firing", *burst),
        ("resolved", *burst),
    ]
    # the first round of a new store reads the day it ingests the same way, and --once
    # warns of the burst that fired and resolved in it
    once = run_once(
        str(watched), "--store", str(tmp_path / "other"), "--rules", str(tmp_path / "rules.toml")
    )
    assert once.returncode == 1, once.stdout + once.stderr
    assert (
        once.stdout.startswith("WATCH WARNING - auth_failures 203.0.113.210: 2")
        and " (at 2026-03-02 15:0" in once.stdout
    ), once.stdout


def _start_watch(watched: Path, store: Path, rules: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [LOGANALYZER, "watch", str(watched), "--store", str(store), "--rules", str(rules)]
        + ["--interval", "1", "--json", "--refresh-every", "0s"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc


def _when_ingesting(store: Path, proc: subprocess.Popen) -> None:
    """Waits until the round holds the store's lock: its ingest is under way."""
    deadline = time.monotonic() + 120
    while not (store / HOLDER_FILE).exists():
        assert proc.poll() is None and time.monotonic() < deadline, "no round started"
        time.sleep(0.005)


def _store_check(store: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, "store", "check", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="no SIGINT")
def test_ctrl_c_in_the_middle_of_a_round_stops_after_it(synth_logs, tmp_path):
    """Ctrl-C as SIGTERM: the round it interrupts ends (its rows committed, the aggregates
    built), then watch stops; a second Ctrl-C stops at once, the store as before the round."""
    (tmp_path / "rules.toml").write_text(RULES)
    watched, store = tmp_path / "logs", tmp_path / "store"
    copy_hours(synth_logs, watched, range(0, 8))
    proc = _start_watch(watched, store, tmp_path / "rules.toml")
    assert json.loads(proc.stdout.readline())["ingested"]["rows"] > 0  # the first round
    copy_hours(synth_logs, watched, range(8, 24))
    _when_ingesting(store, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    assert err.strip().endswith("watch stopped") and "error" not in err, err
    (last,) = [json.loads(line) for line in out.splitlines()]  # the round Ctrl-C came in
    assert last["ingested"]["rows"] > 0 and last["aggregates"] == "refreshed", last
    checked = _store_check(store)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    report = json.loads(checked.stdout)
    assert report["rollups"]["current"] >= 1 and report["rollups"]["stale"] == 0, report

    # twice: at once, the round not committed; the next ingest finishes it
    again = tmp_path / "again"
    proc = _start_watch(watched, again, tmp_path / "rules.toml")
    _when_ingesting(again, proc)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=300)
    head, cut, child = err.partition("Traceback (most recent call last):")
    if (
        PORTABILITY
        and cut
        and "spawn_main" in child
        and child.strip().endswith("EOFError: Ran out of input")
    ):
        # a worker process still starting (spawn, as on Windows) when the watch stops at once
        # reads its start data from a closed pipe: Python's own line of that child (README)
        err = head
    if proc.returncode == 0:  # the round was at its end already: a whole store
        assert _store_check(again).returncode == 0
    else:
        assert proc.returncode == 1 and "Traceback" not in err, err
        assert err.strip().endswith(
            "watch stopped in the middle of a round; the next ingest or watch finishes it"
        )
    done = subprocess.run(
        [LOGANALYZER, "ingest", str(watched), "--store", str(again)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert _store_check(again).returncode == 0
    assert _smtp_rows(again) == _smtp_rows(store)  # the same rows as the whole round's


def _smtp_rows(store: Path) -> str:
    done = subprocess.run(
        [LOGANALYZER, "sql", "select count(*) as n from smtp", "--csv", "--store", str(store)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_a_server_silent_for_more_than_a_day_stays_reported(tmp_path):
    """A server whose logs stopped was forgotten once it had been silent 24 hours (the
    rule's lookback): the alert resolved, WATCH OK, while the server still wrote nothing."""
    logs = tmp_path / "all"
    done = subprocess.run(
        [LOGANALYZER, "synth", "--out", str(logs), "--servers", "2", "--days", "3",
         "--messages", "60", "--start", "2026-03-02"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    watched = tmp_path / "logs"
    for f in sorted(logs.rglob("*.LOG")):  # EX01's three days, EX02's first day only
        rel = f.relative_to(logs)
        if rel.parts[0] == "EX01" or "20260302" in f.name or "260302" in f.name:
            (watched / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, watched / rel)
    out = run_once(str(watched), "--store", str(tmp_path / "store"))
    assert out.returncode == 2, out.stdout + out.stderr
    [alert] = [a for a in out.stdout.split("; ") if "logs_stopped EX02" in a]
    assert "no log rows from EX02 since 2026-03-02" in alert and "resolved" not in alert, alert
    again = run_once(str(watched), "--store", str(tmp_path / "store"))  # nothing new: still so
    assert again.returncode == 2 and "logs_stopped EX02" in again.stdout, again.stdout


def test_watch_refuses_a_login_without_starttls_off_loopback(tmp_path):
    """As `report daily`: the password would cross the network in clear; refused before the
    first round, one line naming --smtp-starttls (with --once: 3, UNKNOWN, as any bad input)."""
    from test_report_mail import _network_address

    address = _network_address()
    (tmp_path / "logs").mkdir()
    done = subprocess.run(
        [LOGANALYZER, "watch", str(tmp_path / "logs"), "--store", str(tmp_path / "store")]
        + ["--once", "--mail-to", "ops@contoso.com", "--smtp-host", address]
        + ["--smtp-user", "reporter"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 3, done.stderr
    assert done.stdout.startswith(
        "WATCH UNKNOWN - --smtp-user 'reporter' without --smtp-starttls: the password would go "
        f"to {address} in clear"
    )
    assert not (tmp_path / "store").exists()


def test_a_log_value_cannot_retitle_the_terminal_or_cut_the_status_line(tmp_path):
    # Built: an IIS log whose server name holds an escape that retitles a terminal, a bell, a
    # "|" (where a monitoring plugin's figures start) and a right-to-left override: the
    # server stopped logging, and watch printed its name raw.
    logs = tmp_path / "logs"
    made = subprocess.run([LOGANALYZER, "synth", "--out", str(logs), "--servers", "2",
                           "--messages", "40", "--seed", "3", "--relay"],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert made.returncode == 0, made.stderr
    [iis] = logs.glob("RELAY01/SMTPSVC1/ex*.log")
    hostile = "R\x1b]0;TITLE\x07|fake=99;1;2\u202e"
    text = iis.read_text(encoding="utf-8").replace(" RELAY01 ", f" {hostile} ")
    (tmp_path / "srv" / "RELAYP").mkdir(parents=True)
    (tmp_path / "srv" / "RELAYP" / iis.name).write_text(text, encoding="utf-8", newline="")
    store = str(tmp_path / "store")
    done = subprocess.run(
        [LOGANALYZER, "ingest", str(tmp_path / "srv"), str(logs / "EX01"), "--store", store],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    once = run_once("--store", store)
    assert once.returncode == 2, once.stdout + once.stderr
    assert "logs_stopped R\ufffd]0;TITLE\ufffd/FAKE=99;1;2\ufffd: " in once.stdout
    assert not any(c in once.stdout for c in "\x1b\x07\u202e")
    assert once.stdout.count("|") == 1 and once.stdout.rstrip().endswith(" | warning=0 critical=1")


def test_logs_that_all_stop_raise_an_alert_by_the_wall_clock(synth_logs, tmp_path):
    """Every server's logs stopping at once (a broken log copy) left each round WATCH OK, its
    newest row older and older: no server fell silent against the others. ``no_new_logs``
    fires once the newest row has stayed the newest ``minutes`` of wall-clock time, and
    resolves when new rows come."""
    (tmp_path / "rules.toml").write_text('[no_new_logs]\nminutes = 0.05\nseverity = "critical"\n')
    watched, store = tmp_path / "logs", str(tmp_path / "store")
    common = ["--store", store, "--rules", str(tmp_path / "rules.toml")]
    copy_hours(synth_logs, watched, range(0, 2))
    first = run_once(str(watched), *common)
    assert first.returncode == 0 and first.stdout.startswith("WATCH OK"), first.stdout
    time.sleep(3.5)  # 0.05 minutes: three seconds of wall clock
    stopped = run_once(str(watched), *common)
    assert stopped.returncode == 2, stopped.stdout + stopped.stderr
    assert stopped.stdout.startswith("WATCH CRITICAL - no_new_logs all logs: no new log rows")
    assert "the newest is of 2026-03-02 01:" in stopped.stdout
    copy_hours(synth_logs, watched, range(2, 3))  # the copy works again
    back = run_once(str(watched), *common, "--json")
    assert back.returncode == 0 and json.loads(back.stdout)["status"] == "OK", back.stdout
    [resolved] = json.loads(back.stdout)["notices"]
    assert resolved["status"] == "resolved", resolved
    assert resolved["text"].startswith("new log rows again (none had come in for "), resolved
