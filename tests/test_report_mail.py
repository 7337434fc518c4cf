"""Mailing the report through a real SMTP server (aiosmtpd on localhost)."""

from __future__ import annotations

import copy
import email
import json
import os
import shutil
import socket
import ssl
import subprocess
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from conftest import CORPUS, IN_CI, LOGANALYZER
from reportdata import DAY, synth_store

from loganalyzer.errors import BadInput
from loganalyzer.report import daily_report
from loganalyzer.report.mail import PASSWORD_ENV, send


class Inbox:
    """An aiosmtpd handler that keeps what it receives, and the logins it saw; it refuses
    the recipients of ``refuse`` at RCPT with their reply."""

    def __init__(self, refuse: dict[str, str] | None = None) -> None:
        self.envelopes = []
        self.logins = []
        self.refuse = refuse or {}

    async def handle_RCPT(self, server, session, envelope, address, options):  # noqa: N802
        if address in self.refuse:
            return self.refuse[address]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.envelopes.append(envelope)
        return "250 2.0.0 OK: queued"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        if isinstance(auth_data, LoginPassword):
            self.logins.append((auth_data.login.decode(), auth_data.password.decode()))
            ok = auth_data.password == b"s3cret"
            return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd replies
        return AuthResult(success=False, handled=False)

    def message(self, n: int = 0) -> email.message.EmailMessage:
        return email.message_from_bytes(self.envelopes[n].content, policy=policy.default)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    started = []

    def start(refuse: dict[str, str] | None = None, **kwargs) -> tuple[Inbox, int]:
        inbox = Inbox(refuse)
        port = _free_port()
        controller = Controller(
            inbox,
            hostname="127.0.0.1",
            port=port,
            authenticator=inbox.authenticate,
            auth_require_tls=False,
            **kwargs,
        )
        controller.start()
        started.append(controller)
        return inbox, port

    yield start
    for c in started:
        c.stop()


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    _, store, _ = synth_store(tmp_path_factory)
    return daily_report(store, DAY)


def test_the_mail_carries_the_report(smtp_server, report):
    inbox, port = smtp_server()
    to = ["postmaster@contoso.com", "ops@fabrikam.com"]
    send(report, to, host="127.0.0.1", port=port, sender="reports@contoso.com")
    [envelope] = inbox.envelopes
    assert envelope.mail_from == "reports@contoso.com"
    assert envelope.rcpt_tos == to
    msg = inbox.message()
    assert msg["Subject"].startswith(f"Mail flow {DAY}: ")
    assert msg["To"] == ", ".join(to) and msg["From"] == "reports@contoso.com"
    text = msg.get_body(("plain",)).get_content()
    assert "messages received" in text
    html = msg.get_body(("html",)).get_content()
    assert "<script" not in html and 'id="failures"' in html and "Grand totals" in html
    [attachment] = list(msg.iter_attachments())
    assert attachment.get_filename() == f"mail-flow-{DAY}.html"
    page = attachment.get_content()
    assert "Plotly.newPlot" in page and 'class="chart"' in page


def _mail_as_reporter(cli, report, port, *extra):
    """``report daily`` mailed to ops@contoso.com through the test server, as user reporter."""
    return cli(
        "report",
        "daily",
        "--store",
        report.store,
        "--date",
        DAY,
        *extra,
        "--mail-to",
        "ops@contoso.com",
        "--smtp-host",
        "127.0.0.1",
        "--smtp-port",
        str(port),
        "--smtp-user",
        "reporter",
    )


def test_cli_logs_in_with_the_password_from_the_environment(
    cli, smtp_server, report, monkeypatch, tmp_path
):
    inbox, port = smtp_server()
    monkeypatch.setenv(PASSWORD_ENV, "s3cret")
    out = _mail_as_reporter(
        cli,
        report,
        port,
        "--out",
        tmp_path / "r.html",
        "--traces",
        "0",
        "--mail-from",
        "la@contoso.com",
    )
    assert out.exit_code == 0, out.stdout + out.stderr
    assert inbox.logins == [("reporter", "s3cret")]
    assert inbox.envelopes[0].rcpt_tos == ["ops@contoso.com"]
    assert "mailed to ops@contoso.com" in out.stdout
    assert (tmp_path / "r.html").is_file()


def test_cli_refuses_a_user_without_a_password(cli, smtp_server, report, monkeypatch, tmp_path):
    inbox, port = smtp_server()
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    out = _mail_as_reporter(cli, report, port, "--json")
    assert out.exit_code == 2 and PASSWORD_ENV in out.stderr
    assert inbox.envelopes == []


def test_a_wrong_password_is_an_error(cli, smtp_server, report, monkeypatch):
    inbox, port = smtp_server()
    monkeypatch.setenv(PASSWORD_ENV, "guess")
    out = _mail_as_reporter(cli, report, port, "--json")
    assert out.exit_code == 2 and "535" in out.stderr
    assert inbox.envelopes == []


def test_starttls(smtp_server, report, tmp_path):
    if shutil.which("openssl") is None:
        if IN_CI:
            pytest.fail("no openssl to make a test certificate")
        pytest.skip("no openssl to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            key,
            "-out",
            cert,
            "-days",
            "1",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
    )
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox, port = smtp_server(tls_context=server_tls, require_starttls=True)
    trust = ssl.create_default_context(cafile=str(cert))
    send(report, ["ops@contoso.com"], host="127.0.0.1", port=port, starttls=True, context=trust)
    assert inbox.envelopes[0].rcpt_tos == ["ops@contoso.com"]
    with pytest.raises(ssl.SSLError):  # the system's trust store does not know this server
        send(report, ["ops@contoso.com"], host="127.0.0.1", port=port, starttls=True)


@pytest.mark.parametrize(
    ("option", "value"),
    [("--mail-to", "notanaddress"), ("--mail-to", "a b@c.com"), ("--mail-from", "bad from")],
)
def test_an_address_that_is_none_is_refused_before_the_work(smtp_server, report, option, value):
    """It was mailed to as written (the envelope recipient ``notanaddress``), or cut at the
    space; now one line naming it, exit 2, nothing sent."""
    inbox, port = smtp_server()
    args = [LOGANALYZER, "report", "daily", "--store", report.store, "--date", DAY, "--json"]
    args += ["--smtp-host", "127.0.0.1", "--smtp-port", str(port)]
    args += ["--mail-to", "ops@contoso.com", option, value]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2 and done.stdout == "", done.stderr
    assert done.stderr == f"error: {option} {value!r}: not a mail address (user@example.com)\n"
    assert inbox.envelopes == []


def _network_address() -> str:
    """An address of this machine that is not loopback (where a remote relay would be)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # a UDP "connect" sends nothing: it picks the route
        except OSError:
            pytest.skip("no network interface but loopback")
        address = s.getsockname()[0]
    if address.startswith("127."):
        pytest.skip("no network interface but loopback")
    return address


def test_a_login_without_starttls_off_loopback_is_refused(smtp_server, report, tmp_path):
    """The password would cross the network in clear to a server that offers AUTH without
    TLS: one line naming --smtp-starttls, exit 2, before the work; nothing reaches it."""
    address = _network_address()
    inbox = Inbox()
    port = _free_port()
    controller = Controller(
        inbox, hostname=address, port=port, authenticator=inbox.authenticate,
        auth_require_tls=False,
    )  # fmt: skip
    controller.start()
    try:
        args = [LOGANALYZER, "report", "daily", "--store", report.store, "--date", DAY]
        args += ["--out", "r.html", "--smtp-host", address, "--smtp-port", str(port)]
        args += ["--mail-to", "ops@contoso.com", "--smtp-user", "reporter"]
        env = {**os.environ, PASSWORD_ENV: "s3cret"}
        done = subprocess.run(
            args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env
        )
        assert done.returncode == 2, done.stderr
        assert done.stderr == (
            f"error: --smtp-user 'reporter' without --smtp-starttls: the password would go to "
            f"{address} in clear; add --smtp-starttls (only a relay on localhost is logged in "
            "to without)\n"
        )
        assert inbox.logins == [] and inbox.envelopes == []
        assert list(tmp_path.iterdir()) == []  # refused before the work
        with pytest.raises(BadInput, match="without --smtp-starttls"):
            send(report, ["ops@contoso.com"], host=address, port=port, user="r", password="s3cret")
        assert inbox.logins == []
    finally:
        controller.stop()


def test_json_stays_clean_and_the_mail_is_said_on_stderr(smtp_server, report, tmp_path):
    inbox, port = smtp_server()
    args = [LOGANALYZER, "report", "daily", "--store", report.store, "--date", DAY, "--json"]
    args += ["--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--mail-to", "ops@contoso.com"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["period"]["date"] == DAY
    assert "mailed to ops@contoso.com" in done.stderr.splitlines()
    assert len(inbox.envelopes) == 1


def test_a_failed_mail_says_the_report_was_written(smtp_server, report, tmp_path):
    _, port = smtp_server()
    args = [LOGANALYZER, "report", "daily", "--store", report.store, "--date", DAY]
    args += ["--out", "r.html", "--traces", "0", "--smtp-host", "127.0.0.1"]
    args += ["--smtp-port", str(port), "--mail-to", "ops@contoso.com", "--smtp-user", "reporter"]
    env = {**os.environ, PASSWORD_ENV: "guess"}
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith(f"error: cannot mail the report via 127.0.0.1:{port}: 535 ")
    assert line.endswith(" (the report is written: r.html)")
    assert (tmp_path / "r.html").is_file()


def test_a_refused_recipient_is_named_with_the_reply(smtp_server, report, tmp_path):
    """Every recipient refused at RCPT: the address and the server's reply, not a Python
    dict of bytes."""
    _, port = smtp_server(refuse={"admin@contoso.com": "550 5.7.1 Relaying denied"})
    args = [LOGANALYZER, "report", "daily", "--store", report.store, "--date", DAY]
    args += ["--out", "r.html", "--traces", "0", "--smtp-host", "127.0.0.1"]
    args += ["--smtp-port", str(port), "--mail-to", "admin@contoso.com"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"error: cannot mail the report via 127.0.0.1:{port}: admin@contoso.com refused: "
        "550 5.7.1 Relaying denied (the report is written: r.html)\n"
    )
    assert (tmp_path / "r.html").is_file()


def test_a_recipient_refused_among_others_is_an_error(smtp_server, report, tmp_path):
    """smtplib raises only when every recipient is refused: one refused among others said
    "mailed to" both, exit 0. Now it names the refused one and who has the mail, exit 2."""
    refuse = {"gone@contoso.com": "550 5.1.1 User unknown"}
    inbox, port = smtp_server(refuse=refuse)
    args = [LOGANALYZER, "report", "daily", "--store", report.store, "--date", DAY]
    args += ["--out", "r.html", "--traces", "0", "--smtp-host", "127.0.0.1"]
    args += ["--smtp-port", str(port), "--mail-to", "ops@contoso.com"]
    args += ["--mail-to", "gone@contoso.com"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr == (
        f"error: cannot mail the report via 127.0.0.1:{port}: gone@contoso.com refused: "
        "550 5.1.1 User unknown (mailed to ops@contoso.com; the report is written: r.html)\n"
    )
    assert [e.rcpt_tos for e in inbox.envelopes] == [["ops@contoso.com"]]
    assert (tmp_path / "r.html").is_file()


@pytest.mark.parametrize(
    ("deferred", "line"), [(1, "recipient still deferred"), (2, "recipients still deferred")]
)
def test_the_mail_text_counts_in_the_singular_and_plural(smtp_server, report, deferred, line):
    inbox, port = smtp_server()
    one = copy.copy(report)
    one.headline = {**report.headline, "still_deferred_recipients": deferred}
    send(one, ["ops@contoso.com"], host="127.0.0.1", port=port)
    text = inbox.message().get_body(("plain",)).get_content()
    assert f"{deferred:>12,}  {line}" in text.splitlines()


def test_one_address_given_as_a_string_is_that_address(smtp_server, report):
    """As elsewhere in the API (was a TypeError from the email package)."""
    inbox, port = smtp_server()
    send(report, "ops@contoso.com", host="127.0.0.1", port=port)
    assert inbox.envelopes[0].rcpt_tos == ["ops@contoso.com"]
    assert inbox.message()["To"] == "ops@contoso.com"


def test_a_day_of_smtp_logs_alone_is_mailed_with_their_figures(smtp_server, tmp_path):
    """An IIS SMTP relay's logs alone: the subject gives the messages they show, not "0
    received"; the text says why under "Needs attention"."""
    logs = tmp_path / "RELAY"
    logs.mkdir()
    shutil.copy(CORPUS / "iis-smtp" / "ossec-docs-exchange2000-ncsa.log", logs)
    store = str(tmp_path / "store")
    done = subprocess.run([LOGANALYZER, "ingest", str(logs), "--store", store],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stderr
    inbox, port = smtp_server()
    args = [LOGANALYZER, "report", "daily", "--store", store, "--date", "2006-10-11", "--out"]
    args += ["r.html", "--smtp-host", "127.0.0.1", "--smtp-port", str(port), "--mail-to", "o@x.org"]
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    msg = inbox.message()
    assert msg["Subject"] == ("Mail flow 2006-10-11: SMTP logs only: 3 accepted, 1 sent on")
    text = " ".join(msg.get_body(("plain",)).get_content().split())
    assert (
        "Needs attention: - No tracking logs of 2006-10-11: the SMTP logs show 3 messages" in text
    )
