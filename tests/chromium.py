"""Driving a real headless Chromium over the DevTools protocol, with no extra package.

Chromium speaks the protocol over a pipe (``--remote-debugging-pipe``: it reads commands from
fd 3 and writes replies and events to fd 4, each JSON message ended by a NUL byte).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--remote-debugging-pipe",
)


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Page:
    """One page of a Chromium started for it; ``problems`` collects console errors."""

    def __init__(self, exe: str, profile: Path, timeout: float = 60.0) -> None:
        self.timeout = timeout
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def fds() -> None:  # in the child: the pipe ends become fds 3 and 4 (inheritable)
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 10) for fd in (to_chrome_r, from_chrome_w)]
            for target, fd in zip((3, 4), high, strict=True):
                os.dup2(fd, target)

        self.proc = subprocess.Popen(
            [exe, *FLAGS, f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=fds,  # noqa: PLW1509 - single-threaded test process
            close_fds=False,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._out = os.fdopen(to_chrome_w, "wb", buffering=0)
        self._in = os.fdopen(from_chrome_r, "rb", buffering=0)
        self._messages: queue.Queue = queue.Queue()
        self._events: list[dict] = []
        self._next = 0
        self._session: str | None = None
        threading.Thread(target=self._read, daemon=True).start()
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)[
            "sessionId"
        ]
        for domain in ("Page", "Runtime", "Log"):
            self.send(f"{domain}.enable")

    def _read(self) -> None:
        buf = b""
        while True:
            chunk = self._in.read(1 << 16)
            if not chunk:
                self._messages.put(None)
                return
            buf += chunk
            *done, buf = buf.split(b"\0")
            for raw in done:
                self._messages.put(json.loads(raw))

    def _take(self, until: float) -> dict:
        msg = self._messages.get(timeout=max(0.01, until - time.monotonic()))
        if msg is None:
            raise RuntimeError("Chromium closed the DevTools pipe")
        if "method" in msg:
            self._events.append(msg)
        return msg

    def send(self, method: str, **params) -> dict:
        self._next += 1
        msg = {"id": self._next, "method": method, "params": params}
        if self._session and not method.startswith(("Target.", "Browser.")):
            msg["sessionId"] = self._session
        self._out.write(json.dumps(msg).encode() + b"\0")
        until = time.monotonic() + self.timeout
        while True:
            reply = self._take(until)
            if reply.get("id") == self._next:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_event(self, method: str) -> dict:
        until = time.monotonic() + self.timeout
        seen = len(self._events)
        while True:
            for e in self._events[seen:]:
                if e["method"] == method:
                    return e
            seen = len(self._events)
            self._take(until)

    def open(self, url: str) -> None:
        """Load ``url`` and wait for its load event."""
        self.send("Page.navigate", url=url)
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """The value of a JavaScript expression in the page (JSON-serialisable)."""
        result = self.send("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str) -> bool:
        """Poll until ``expression`` is true; False after the timeout."""
        until = time.monotonic() + self.timeout
        while time.monotonic() < until:
            if self.evaluate(expression):
                return True
            time.sleep(0.1)
        return False

    def screenshot(self, path: Path) -> Path:
        """A PNG of the whole page (beyond the window), written to ``path``."""
        import base64

        size = self.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.scrollHeight]"
        )
        shot = self.send(
            "Page.captureScreenshot",
            format="png",
            captureBeyondViewport=True,
            clip={"x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def events(self) -> list[dict]:
        """Every DevTools event received so far."""
        return list(self._events)

    def problems(self) -> list[str]:
        """Console errors, uncaught exceptions and browser log errors (CSP violations...)."""
        out = []
        for e in self._events:
            p = e.get("params", {})
            if e["method"] == "Runtime.exceptionThrown":
                d = p["exceptionDetails"]
                out.append(d.get("exception", {}).get("description") or d.get("text", ""))
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append(" ".join(str(a.get("value", a.get("description"))) for a in p["args"]))
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(p["entry"]["text"])
        return out

    def close(self) -> None:
        with contextlib.suppress(Exception):  # it may be gone already
            self.send("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._out.close()
