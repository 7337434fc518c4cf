"""Starting ``loganalyzer serve`` as a user does (the installed command, in a subprocess) on a
free loopback port, and stopping it."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from conftest import LOGANALYZER


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Url(str):
    """The served app's URL, with its process (``proc``) and, once it stopped, what it wrote
    on stderr (``stderr``)."""

    proc: subprocess.Popen
    stderr: str = ""


@contextlib.contextmanager
def serving(store: Path, *args: str, env: dict | None = None) -> Iterator[Url]:
    """The app on ``store`` at the yielded URL (``http://127.0.0.1:PORT``)."""
    port = free_port()
    proc = subprocess.Popen(
        [LOGANALYZER, "serve", "--store", str(store), "--port", str(port), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    url = Url(f"http://127.0.0.1:{port}")
    url.proc = proc
    try:
        until = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"{url}/favicon.ico", timeout=5)
                break
            except urllib.error.HTTPError:  # it answers (401 with a token)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > until:
                    raise RuntimeError(f"serve did not start: {proc.stderr.read()}") from None
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        url.stderr = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """``loganalyzer serve ARGS`` run to its end (a refusal)."""
    return subprocess.run(
        [LOGANALYZER, "serve", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
