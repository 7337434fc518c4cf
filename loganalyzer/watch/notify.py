"""Where alerts go: mail (the report's SMTP settings), a webhook, a Prometheus textfile."""

from __future__ import annotations

import json
import os
import smtplib
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path

from loganalyzer.errors import BadInput
from loganalyzer.watch.state import Alert, Notice

WEBHOOK_TRIES = 4  # the first and three retries, 1, 2 and 4 seconds apart


class Unsent(OSError):
    """A notifier could not send these notices (the others went out)."""

    def __init__(self, message: str, notices: list[Notice]) -> None:
        super().__init__(message)
        self.notices = notices


def _left(deadline: float) -> float:
    return deadline - time.monotonic()


@dataclass
class Mail:
    to: list[str]
    host: str = "localhost"
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    sender: str | None = None
    timeout: float = 30.0

    def send(self, notices: list[Notice], store: str, deadline: float = float("inf")) -> None:
        """One mail for all the notices; raises OSError, waiting until ``deadline``
        (``time.monotonic``) at most."""
        from loganalyzer.report.mail import accepted, deliver, smtp_reason

        host = socket.getfqdn() or "localhost"
        msg = EmailMessage()
        first = notices[0]
        more = f" (+{len(notices) - 1} more)" if len(notices) > 1 else ""
        msg["Subject"] = f"[loganalyzer] {first.line()}{more}"[:250]
        msg["From"] = self.sender or f"loganalyzer@{host}"
        msg["To"] = ", ".join(self.to)
        msg["Date"] = formatdate(localtime=True)
        msg["Message-ID"] = make_msgid("loganalyzer-watch", domain=host)
        body = [f"loganalyzer watch of {store}", ""]
        body += [f"- {n.line()} (since {n.alert.since})" for n in notices]
        msg.set_content("\n".join(body) + "\n")
        timeout = min(self.timeout, _left(deadline))
        if timeout <= 0:
            raise OSError(f"mail to {', '.join(self.to)}: no time left in the round")
        try:
            deliver(
                msg, self.to, self.host, self.port, self.starttls, self.user, self.password, timeout
            )
        except smtplib.SMTPRecipientsRefused as exc:
            mailed = accepted(exc, self.to)
            if not mailed:
                raise
            # heard by the others: sent again next round, it would reach them each round
            raise Unsent(f"{smtp_reason(exc)} (mailed to {', '.join(mailed)})", []) from exc


@dataclass
class Webhook:
    url: str
    timeout: float = 10.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        from urllib.parse import urlsplit

        try:
            parts = urlsplit(self.url)
            ok = parts.scheme in ("http", "https") and bool(parts.hostname)
            ok = ok and (parts.port or 0) >= 0  # (raises on a port out of range)
        except ValueError:  # an unclosed IPv6 bracket, a port out of range
            ok = False
        if not ok:
            raise BadInput(f"--webhook {self.url!r}: give an http:// or https:// address")

    def send(self, notices: list[Notice], store: str, deadline: float = float("inf")) -> None:
        """POSTs one JSON document per notice, each notice tried once before any is tried
        again; the failed ones are retried together with backoff while ``deadline``
        (``time.monotonic``) allows, then raises ``Unsent`` with them."""
        pending, error = list(notices), ""
        for attempt in range(WEBHOOK_TRIES):
            if attempt:
                wait = 2 ** (attempt - 1)
                if _left(deadline) <= wait:
                    break
                self.sleep(wait)
            failed = []
            for notice in pending:
                timeout = min(self.timeout, _left(deadline))
                if timeout <= 0:  # not tried: kept for the next round with the failed ones
                    failed.append(notice)
                    error = error or "no time left in the round"
                    continue
                try:
                    self._post({"store": store, **notice.to_dict()}, timeout)
                except (urllib.error.URLError, OSError) as exc:
                    failed.append(notice)
                    error = str(exc)
            pending = failed
            if not pending:
                return
        n = len(pending)
        raise Unsent(f"webhook {self.url}: {error} ({n} of {len(notices)} not sent)", pending)

    def _post(self, document: dict, timeout: float) -> None:
        request = urllib.request.Request(
            self.url,
            json.dumps(document).encode(),
            {"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            reply.read()


def check_textfile(path: str | Path | None) -> None:
    """Refuse a ``--textfile`` whose folder does not exist, before the first round (found
    only when the round wrote it, after its ingest, named by its temporary file)."""
    if path is None:
        return
    folder = Path(path).parent
    if not folder.is_dir():
        raise BadInput(f"--textfile {str(path)!r}: no folder {str(folder)!r} to write it in")


def write_textfile(path: str | Path, alerts: list[Alert], values: dict, now: float) -> None:
    """The Prometheus text format for node_exporter's textfile collector, written whole
    (a temporary file renamed into place, as the collector asks)."""
    lines = [
        "# HELP loganalyzer_alert 1 for each alert that fires (rule, key, severity).",
        "# TYPE loganalyzer_alert gauge",
    ]
    lines += [
        f"loganalyzer_alert{{rule={_q(a.rule)},key={_q(a.key)},severity={_q(a.severity)}}} 1"
        for a in alerts
    ]
    lines += [
        "# HELP loganalyzer_alerts_firing Alerts that fire, by severity.",
        "# TYPE loganalyzer_alerts_firing gauge",
    ]
    for severity in ("warning", "critical"):
        n = sum(a.severity == severity for a in alerts)
        lines.append(f"loganalyzer_alerts_firing{{severity={_q(severity)}}} {n}")
    lines += [
        "# HELP loganalyzer_newest_row_timestamp_seconds Time of the newest log row per server.",
        "# TYPE loganalyzer_newest_row_timestamp_seconds gauge",
    ]
    for server, ts in sorted(values.get("newest", {}).items()):
        lines.append(f"loganalyzer_newest_row_timestamp_seconds{{server={_q(server)}}} {ts:.3f}")
    lines += [
        "# HELP loganalyzer_watch_last_run_timestamp_seconds When watch last evaluated its rules.",
        "# TYPE loganalyzer_watch_last_run_timestamp_seconds gauge",
        f"loganalyzer_watch_last_run_timestamp_seconds {now:.3f}",
    ]
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, target)


def _q(value: str) -> str:
    escaped = str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')
    return f'"{escaped}"'
