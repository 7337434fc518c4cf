"""Mailing a report through an SMTP server (stdlib smtplib and email).

The mail's HTML body is the report without scripts (mail clients do not run them: its tables
read as they are); the full page with its charts is attached.
"""

from __future__ import annotations

import re
import smtplib
import socket
import ssl
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import TYPE_CHECKING

from loganalyzer.errors import BadInput, as_list
from loganalyzer.loopback import is_loopback
from loganalyzer.report.sections.changes import headline_figure

if TYPE_CHECKING:
    from loganalyzer.report.model import DailyReport

#: The environment variable that holds the SMTP password (never a command-line option).
PASSWORD_ENV = "LOGANALYZER_SMTP_PASSWORD"
#: A mail address as an SMTP envelope takes it: a local part, @, a domain; no spaces, no
#: angle brackets, no line breaks.
_ADDRESS = re.compile(r"[^@\s<>,;]+@[^@\s<>,;]+")


def check_addresses(option: str, addresses: list[str] | str | None) -> None:
    """BadInput naming the first value of ``option`` that is no mail address (it was mailed
    to as written: ``notanaddress``, or cut at a space)."""
    for a in [addresses] if isinstance(addresses, str) else addresses or []:
        if not _ADDRESS.fullmatch(a):
            raise BadInput(f"{option} {a!r}: not a mail address (user@example.com)")


def check_login(host: str, starttls: bool, user: str | None) -> None:
    """BadInput when ``user`` would log in to ``host`` without STARTTLS: the password would
    cross the network in clear. A relay on this machine's loopback is spared (it never leaves
    it)."""
    if user and not starttls and not is_loopback(host):
        raise BadInput(
            f"--smtp-user {user!r} without --smtp-starttls: the password would go to {host} "
            "in clear; add --smtp-starttls (only a relay on localhost is logged in to without)"
        )


def smtp_reason(exc: Exception) -> str:
    """What the SMTP server answered, code and text (``535 5.7.8 ...``; each refused
    recipient as ``a@x refused: 550 5.1.1 ...``), or why it could not be reached."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):  # address -> (code, reply) each
        return "; ".join(f"{a} refused: {_reply(*r)}" for a, r in exc.recipients.items())
    if isinstance(exc, smtplib.SMTPSenderRefused):
        return f"sender {exc.sender} refused: {_reply(exc.smtp_code, exc.smtp_error)}"
    if isinstance(exc, smtplib.SMTPResponseException):  # data, login, HELO, ...
        return _reply(exc.smtp_code, exc.smtp_error)
    return getattr(exc, "strerror", None) or str(exc)


def accepted(exc: Exception, to: list[str]) -> list[str]:
    """The recipients of ``to`` the mail reached though sending it raised ``exc``: those
    the server did not refuse at RCPT (none for any other error)."""
    if not isinstance(exc, smtplib.SMTPRecipientsRefused):
        return []
    return [a for a in to if a not in exc.recipients]


def _reply(code: int, text: bytes | str) -> str:
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text or "")
    return f"{code} {text}".strip()


def message(
    report: DailyReport,
    to: list[str] | str,
    sender: str | None = None,
    subject: str | None = None,
    attach: bool = True,
) -> EmailMessage:
    """The report as a mail to ``to`` (the addresses, or one): a text summary, the HTML
    report, the full page attached."""
    to = as_list(to)  # one address given alone is that one
    if not to:
        raise ValueError("no recipient for the report mail")
    host = socket.getfqdn() or "localhost"
    h = report.headline
    msg = EmailMessage()
    smtp = report.smtp_messages
    msg["Subject"] = subject or (
        f"Mail flow {report.period.label()}: SMTP logs only: "
        f"{smtp['smtp_received_messages']:,} accepted, {smtp['smtp_sent_messages']:,} sent on"
        if report.no_tracking()
        else f"Mail flow {report.period.label()}: {h['received_messages']:,} received, "
        f"{h['failed_recipients']:,} failed"
    )
    msg["From"] = sender or f"loganalyzer@{host}"
    msg["To"] = ", ".join(to)
    msg["Date"] = formatdate(localtime=True)
    msg["Message-ID"] = make_msgid("loganalyzer", domain=host)
    lines = [f"Mail flow {report.period.label()} ({report.period.tz})", ""]
    for key in (
        "received_messages",
        "delivered_recipients",
        "sent_out_recipients",
        "failed_recipients",
        "still_deferred_recipients",
        "auth_failures",
    ):
        lines.append(f"{h[key]:>12,}  {headline_figure(key, h[key])}")
    attention = report.attention()
    if attention:
        lines += ["", "Needs attention:", *(f"- {a}" for a in attention)]
    lines += ["", "The report is attached as an HTML file." if attach else ""]
    msg.set_content("\n".join(lines))
    msg.add_alternative(report.to_html(charts=False), subtype="html")
    if attach:
        msg.add_attachment(
            report.to_html().encode("utf-8"),
            maintype="text",
            subtype="html",
            filename=f"mail-flow-{report.period.date.isoformat()}.html",
        )
    return msg


def send(
    report: DailyReport,
    to: list[str] | str,
    *,
    host: str = "localhost",
    port: int = 25,
    starttls: bool = False,
    user: str | None = None,
    password: str | None = None,
    sender: str | None = None,
    subject: str | None = None,
    attach: bool = True,
    timeout: float = 60.0,
    context: ssl.SSLContext | None = None,
) -> EmailMessage:
    """Send the report to ``to`` (the addresses, or one) through the SMTP server
    ``host``:``port``; returns the mail.

    ``starttls`` upgrades the connection (verifying the server's certificate with
    ``context``, default the system's trust store) before ``user`` logs in with ``password``;
    a ``user`` without ``starttls`` is refused (BadInput) unless ``host`` is loopback.
    Raises ``smtplib.SMTPException`` or ``OSError`` when the server refuses or is unreachable;
    ``smtplib.SMTPRecipientsRefused`` when it refused any recipient (``accepted`` names those
    it took).
    """
    to = as_list(to)
    check_addresses("--mail-to", to)
    msg = message(report, to, sender, subject, attach)
    deliver(msg, to, host, port, starttls, user, password, timeout, context)
    return msg


def deliver(
    msg: EmailMessage,
    to: list[str] | str,
    host: str = "localhost",
    port: int = 25,
    starttls: bool = False,
    user: str | None = None,
    password: str | None = None,
    timeout: float = 60.0,
    context: ssl.SSLContext | None = None,
) -> None:
    """Send a mail through the SMTP server ``host``:``port`` (see ``send``)."""
    check_login(host, starttls, user)
    if user and password is None:
        raise ValueError(f"an SMTP user needs a password (the CLI reads ${PASSWORD_ENV})")
    with smtplib.SMTP(host, port, timeout=timeout) as smtp:
        smtp.ehlo()
        if starttls:
            smtp.starttls(context=context or ssl.create_default_context())
            smtp.ehlo()
        if user:
            smtp.login(user, password or "")
        refused = smtp.send_message(msg, to_addrs=as_list(to))
    if refused:  # smtplib raises this itself only when it refused every recipient
        raise smtplib.SMTPRecipientsRefused(refused)
