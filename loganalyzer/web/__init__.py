"""The local web app for the help desk: search, trace, paste a header, reports, store status.

``serve(store)`` runs it (``loganalyzer serve``); ``create_app(store)`` gives the ASGI app.
Read-only; on loopback by default; elsewhere only with an access token.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sys
import threading
from urllib.parse import quote

from loganalyzer.errors import BadInput
from loganalyzer.web.security import TOKEN_ENV, check_token

__all__ = ["TOKEN_ENV", "create_app", "serve"]

#: The memory of the app's one DuckDB database, which the requests at once share (a reader
#: alone has ``store.duck.MEMORY_LIMIT``); beyond it, queries spill to a temporary folder.
WEB_MEMORY = "1GB"


def create_app(
    store: str | None = None,
    token: str | None = None,
    redact: bool = False,
    host: str = "127.0.0.1",
):
    """The ASGI app over ``store`` (None: ``$LOGANALYZER_STORE``, else ``./loganalyzer-store``);
    NotAStore when it holds none."""
    from loganalyzer.read.store import Store
    from loganalyzer.web.app import create_app as build

    return build(Store(store).require().root, token, redact, host)


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket, or BadInput naming the address that cannot be used."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BadInput(f"--host {host}: cannot resolve it ({exc.strerror or exc})") from None
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name != "nt":  # on Windows this option would let two servers share the port
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise BadInput(
            f"--port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
            "give a free port"
        ) from None
    sock.set_inheritable(True)
    return sock


def serve(
    store: str | None = None,
    host: str = "127.0.0.1",
    port: int = 8025,
    *,
    token: str | None = None,
    redact: bool = False,
) -> None:
    """Serve the app on ``host``:``port`` until interrupted. ``token`` (default
    ``$LOGANALYZER_WEB_TOKEN``) is required unless ``host`` is a loopback address; BadInput
    without it, or for a port that cannot be used; NotAStore for a path that holds no store."""
    try:
        import uvicorn
    except ImportError:
        raise BadInput(
            "serving the web app needs its extra: pip install 'loganalyzer[web]'"
        ) from None

    from loganalyzer.read.store import Store
    from loganalyzer.store import default_store

    store = str(store or default_store())
    token = check_token(host, token if token is not None else os.environ.get(TOKEN_ENV))
    Store(store).require()
    app = create_app(store, token, redact, host)
    sock = _listen(host, port)
    if Store(store).local_root is not None:
        import duckdb

        from loganalyzer.store.duck import limits, share

        # one DuckDB database for every request of this process: Parquet footers and file
        # blocks read once stay cached (each worker thread keeps its cursor and views); one
        # thread per query: requests run side by side, and a small query costs less CPU; the
        # requests at once share its memory (``WEB_MEMORY``)
        share(duckdb.connect(config={"threads": 1, **limits(WEB_MEMORY)}))
    # every address of the machine: the link names the machine (0.0.0.0 leads nowhere elsewhere)
    shown = socket.getfqdn() if host in ("0.0.0.0", "::") else host
    shown = f"[{shown}]" if ":" in shown else shown
    url = f"http://{shown}:{sock.getsockname()[1]}/"
    if token:
        print(
            f"serving {store} at {url}; open this link once: {url}?token={quote(token)}",
            file=sys.stderr,
            flush=True,
        )
    else:
        print(
            f"serving {store} at {url} (this machine only); Ctrl+C stops it",
            file=sys.stderr,
            flush=True,
        )
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, server_header=False, lifespan="off"
    )
    # Ctrl-C is the way to stop it: uvicorn finishes the requests in flight, then raises the
    # signal again. A service manager's SIGTERM stops it the same way: uvicorn catches it
    # too, and its raising again comes here as a Ctrl-C (not the default action, status 143).
    # Windows has the name (a handler is allowed) but delivers no SIGTERM from outside.
    # (Signals reach the main thread only: a caller's thread leaves them as they are.)
    main = threading.current_thread() is threading.main_thread()
    stopping = signal.signal(signal.SIGTERM, _as_ctrl_c) if main else None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            uvicorn.Server(config).run(sockets=[sock])
    finally:
        if main:
            signal.signal(signal.SIGTERM, stopping)
    print("stopped", file=sys.stderr, flush=True)


def _as_ctrl_c(signum: int, frame: object) -> None:
    raise KeyboardInterrupt
