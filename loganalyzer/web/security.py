"""What keeps the web app safe to leave running: the access token, the CSRF token, request
size limits and the headers every response carries (the report's strict CSP among them).

Everything here is plain ASGI, so it wraps every route, error pages included.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qsl, urlencode

from loganalyzer.errors import BadInput
from loganalyzer.loopback import is_loopback
from loganalyzer.report.html import CSP_BASE

#: The variable holding the access token the app needs on a non-loopback address.
TOKEN_ENV = "LOGANALYZER_WEB_TOKEN"
#: A token shorter than this is refused: it could be guessed.
MIN_TOKEN = 16
#: The largest request body accepted (a pasted header or an uploaded .eml); more gets 413.
MAX_BODY = 2 * 1024 * 1024
COOKIE = "la_session"
#: The report's policy: nothing loads from anywhere, no script runs (the report page alone
#: sends its own, which allows its hashed scripts); forms post only back to the app.
META_CSP = CSP_BASE.replace("form-action 'none'", "form-action 'self'") + "; script-src 'none'"
#: As a header it also forbids framing (a ``<meta>`` policy cannot say that).
CSP = META_CSP + "; frame-ancestors 'none'"
HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-store"),
]


def check_token(host: str, token: str | None) -> str | None:
    """The token the app requires on ``host`` (None on loopback without one); BadInput when
    ``host`` is not loopback and no usable token is given."""
    token = (token or "").strip() or None
    if token is None:
        if is_loopback(host):
            return None
        raise BadInput(
            f"--host {host}: not a loopback address; set ${TOKEN_ENV} (a secret of "
            f"{MIN_TOKEN} or more characters) to serve on it, or use --host 127.0.0.1"
        )
    if len(token) < MIN_TOKEN:
        raise BadInput(f"${TOKEN_ENV}: too short; give {MIN_TOKEN} or more characters")
    return token


class Guard:
    """The app's secrets: the access token (if any) and the CSRF token of its forms."""

    def __init__(self, token: str | None, host: str = "127.0.0.1") -> None:
        self.token = token
        #: the name the app was started on, answered as a loopback name
        self.served = frozenset({host.strip("[]").lower()})
        self._key = secrets.token_bytes(32)
        # the cookie holds a value derived from the token, never the token itself
        self.session = (
            hmac.new(token.encode(), b"loganalyzer-session", hashlib.sha256).hexdigest()
            if token
            else None
        )
        self.csrf = hmac.new(self._key, b"csrf", hashlib.sha256).hexdigest()

    def token_ok(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(
            given.encode("utf-8", "replace"), self.token.encode()
        )

    def session_ok(self, given: str) -> bool:
        return self.session is not None and hmac.compare_digest(
            given.encode("utf-8", "replace"), self.session.encode()
        )

    def csrf_ok(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(
            given.encode("utf-8", "replace"), self.csrf.encode()
        )


async def _plain(send, status: int, text: str, extra: list | None = None) -> None:
    body = text.encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", str(len(body)).encode()),
                (b"content-security-policy", CSP.encode()),
                *HEADERS,
                *(extra or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class TooLarge(Exception):
    """A body read past the limit (one sent without a length); the app answers 413."""


def loopback_name(host_header: bytes | None, served: frozenset[str] = frozenset()) -> bool:
    """Whether a request's Host header names a loopback address (``localhost``, an address of
    127.0.0.0/8 or ``[::1]``, or a name in ``served``: the one given to ``--host``), with any
    port; a request without one (HTTP/1.0) passes."""
    if host_header is None:
        return True
    text = host_header.decode("latin-1").strip().lower()
    name = text[1 : text.find("]")] if text.startswith("[") else text.rsplit(":", 1)[0]
    if name == "localhost" or name.endswith(".localhost") or name in served:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


class Protect:
    """ASGI middleware: headers on every response, 413 beyond ``MAX_BODY``, and with a token
    401 for requests that carry neither the token link nor its cookie. Without a token (on
    loopback) a request addressed to another name is refused: a web page could otherwise
    point its own name at 127.0.0.1 and read the app (DNS rebinding)."""

    def __init__(self, app, guard: Guard, max_body: int = MAX_BODY) -> None:
        self.app = app
        self.guard = guard
        self.max_body = max_body

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return await _plain(send, 413, f"request too large: at most {self.max_body:,} bytes")
        if self.guard.token is None and not loopback_name(headers.get(b"host"), self.guard.served):
            return await _plain(
                send, 421, "this app answers only at a loopback address (localhost, 127.0.0.1)"
            )
        if self.guard.token is not None:
            query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1")))
            if "token" in query:
                return await self._login(scope, send, query)
            cookie = SimpleCookie()
            try:
                cookie.load(headers.get(b"cookie", b"").decode("latin-1"))
            except Exception:  # a malformed Cookie header is no session
                cookie = SimpleCookie()
            given = cookie[COOKIE].value if COOKIE in cookie else ""
            if not self.guard.session_ok(given):
                return await _plain(
                    send, 401, "this app needs its access link (the one it printed at start)"
                )
        return await self.app(scope, self._counted(receive, send), self._headed(send))

    async def _login(self, scope, send, query: dict) -> None:
        """The token link: a cookie, then the same address without the token."""
        if not self.guard.token_ok(query.pop("token")):
            return await _plain(send, 401, "wrong access token")
        rest = urlencode(query)
        # one leading slash: ``//host`` would send the browser to another site
        where = "/" + (scope.get("path") or "").lstrip("/\\") + (f"?{rest}" if rest else "")
        cookie = f"{COOKIE}={self.guard.session}; Path=/; HttpOnly; SameSite=Strict"
        await _plain(
            send,
            303,
            "signed in",
            [(b"location", where.encode()), (b"set-cookie", cookie.encode())],
        )

    def _counted(self, receive, send):
        """``receive`` that stops a body beyond the limit (one sent without a length)."""
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise TooLarge
            return message

        return counted

    def _headed(self, send):
        async def headed(message):
            if message["type"] == "http.response.start":
                names = {k.lower() for k, _ in message.get("headers", [])}
                extra = [h for h in HEADERS if h[0] not in names]
                if b"content-security-policy" not in names:
                    extra.append((b"content-security-policy", CSP.encode()))
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        return headed
