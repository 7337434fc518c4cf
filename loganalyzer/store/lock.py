"""The store's lock: one process at a time changes a store.

An OS file lock for a local folder (``filelock``: ``flock`` on Linux and macOS,
``LockFileEx`` on Windows), released by the OS when its holder dies; the holder writes its host
and pid beside it (``.lock-holder``) for the message of a process that waits.
An object store has no such lock: there the lock is an object (``.lock``) naming
its holder and a lease; the holder renews it every third of the lease, and a new ingest
breaks it once it has not been renewed for a whole lease (its holder was killed). Limits:
object stores give no compare-and-swap through fsspec, so two ingests that start within the
same instant on different machines can both believe they hold it (each writes its claim,
waits, and reads it back to narrow the window; and before every manifest write the holder
checks that the lock is still its own, stopping if another took it); a holder stalled for
longer than the lease (a suspended laptop) loses its lock; clocks of the machines must agree
to within a fraction of the lease.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, Protocol

from loganalyzer.errors import StoreError


class Place(Protocol):
    """What a lock needs of a store's location (``location.Location``): the lock knows no
    more of it, so location may use the lock without a circle."""

    root: str

    def full(self, relative: str) -> str: ...


class RemotePlace(Place, Protocol):
    fs: Any  # rooted at the store: paths relative to it
    shared: bool

    def url(self) -> str: ...


LOCK_FILE = ".lock"
#: Who holds the lock of a local store (host and pid), for the message of one that waits.
HOLDER_FILE = ".lock-holder"
#: Seconds an object-store lock lives without being renewed, unless $LOGANALYZER_LOCK_LEASE.
LEASE = 60.0
LEASE_ENV = "LOGANALYZER_LOCK_LEASE"


def env_lease() -> float:
    """The lease from the environment; read when a store is opened, so that a wrong value
    is named as such (not a crash on import) and only where an object store is used."""
    text = os.environ.get(LEASE_ENV) or ""
    try:
        lease = float(text) if text else LEASE
    except ValueError:
        lease = -1.0
    if not 0 < lease < float("inf"):
        raise StoreError(f"{LEASE_ENV}={text}: the lease takes a number of seconds above 0")
    return lease


@contextmanager
def local_lock(
    loc: Place, wait: float | None, on_wait: Callable[[str], None] | None
) -> Iterator[None]:
    """The lock of a local folder: an OS file lock, released by the OS when its holder dies."""
    import filelock

    try:
        os.makedirs(loc.root, exist_ok=True)
    except OSError as exc:  # a read-only mount, a share without rights
        raise StoreError(f"cannot write to the store {loc.root}: {exc.strerror}") from exc
    lock = filelock.FileLock(loc.full(LOCK_FILE))
    start = time.monotonic()
    told = False
    while True:
        try:
            lock.acquire(timeout=0)
            break
        except filelock.Timeout:
            if wait is not None and time.monotonic() - start >= wait:
                raise StoreError(
                    f"{loc.root} is locked by another loganalyzer process"
                    f"{_holder(loc)}; try again when it has finished"
                ) from None
            if on_wait and not told:
                on_wait(f"waiting for the lock on {loc.root}{_holder(loc)}")
                told = True
            time.sleep(0.2)
        except OSError as exc:
            raise StoreError(f"cannot write to the store {loc.root}: {exc.strerror}") from exc
    try:
        try:
            with open(loc.full(HOLDER_FILE), "w", encoding="utf-8") as fh:
                fh.write(f"{socket.gethostname()} {os.getpid()}\n")
        except OSError as exc:
            raise StoreError(f"cannot write to the store {loc.root}: {exc.strerror}") from exc
        yield
    finally:
        with suppress(OSError):
            os.remove(loc.full(HOLDER_FILE))
        lock.release()  # a killed holder's lock is released by the OS


def local_holder(loc: Place) -> str | None:
    """Who holds the local folder's lock now (`` (pid N)``, or "" when it is not said), None
    when nobody does (or the folder cannot be locked: a read-only mount)."""
    import filelock

    lock = filelock.FileLock(loc.full(LOCK_FILE))
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        return _holder(loc)
    except OSError:
        return None
    lock.release()
    return None


def lease_holder(loc: RemotePlace) -> str | None:
    """Who holds an object store's lock now (its lease not expired), None when nobody does."""
    claim = Lease(loc, LEASE).read()
    if not claim:
        return None
    age = time.time() - float(claim.get("renewed", 0))
    if age > float(claim.get("lease", LEASE)):
        return None
    return f" (held by {claim.get('holder')})"


def _holder(loc: Place) -> str:
    try:
        with open(loc.full(HOLDER_FILE), encoding="utf-8") as fh:
            host, _, pid = fh.read().strip().rpartition(" ")
    except (OSError, ValueError):
        return ""
    if not pid:
        return ""
    return f" (pid {pid})" if host == socket.gethostname() else f" (pid {pid} on {host})"


class Lease:
    """The lock object of an object store: holder, when taken, when last renewed, lease."""

    def __init__(self, loc: RemotePlace, lease: float) -> None:
        self.loc, self.lease = loc, lease
        self.token = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        # time for a competing claim to land before ours is read back
        self.settle = 0.0 if not loc.shared else min(1.0, lease / 20)
        self.lost: dict | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def read(self) -> dict | None:
        try:
            data = self.loc.fs.cat_file(LOCK_FILE)
        except FileNotFoundError:
            return None
        try:
            claim = json.loads(data)
            return claim if isinstance(claim, dict) else {}
        except ValueError:
            return {}  # unreadable: treated as a lock that expired long ago

    def _write(self, since: float) -> None:
        claim = {"holder": self.token, "since": since, "renewed": time.time(), "lease": self.lease}
        self.loc.fs.pipe_file(LOCK_FILE, json.dumps(claim).encode())

    def acquire(self, wait: float | None, on_wait: Callable[[str], None] | None) -> None:
        start, told = time.monotonic(), False
        self.loc.fs.makedirs("", exist_ok=True)
        while True:
            claim = self.read()
            age = time.time() - float((claim or {}).get("renewed", 0))
            if claim is None or age > float(claim.get("lease", self.lease)):
                if claim and on_wait:
                    on_wait(
                        f"breaking the lock of {claim.get('holder', 'an unknown holder')} on "
                        f"{self.loc.url()}: not renewed for {age:.0f} s (its lease has expired)"
                    )
                self.since = time.time()
                self._write(self.since)
                time.sleep(self.settle)
                if (self.read() or {}).get("holder") == self.token:
                    break
                continue  # another claimed it at the same moment
            holder = f" (held by {claim.get('holder')})"
            if wait is not None and time.monotonic() - start >= wait:
                raise StoreError(
                    f"{self.loc.url()} is locked by another loganalyzer process{holder}; "
                    "try again when it has finished"
                )
            if on_wait and not told:
                on_wait(f"waiting for the lock on {self.loc.url()}{holder}")
                told = True
            time.sleep(min(1.0, max(0.05, self.lease / 20)))
        self._thread = threading.Thread(target=self._renew, daemon=True, name="store-lease")
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(self.lease / 3):
            claim = self.read()
            if (claim or {}).get("holder") != self.token:
                self.lost = claim or {}
                return
            self._write(self.since)

    def check(self) -> None:
        claim = self.read() if self.lost is None else self.lost
        if (claim or {}).get("holder") != self.token:
            self.lost = claim or {}
            raise StoreError(
                f"lost the lock on {self.loc.url()} to {self.lost.get('holder', 'nobody')}: "
                "its lease expired while this process held it; nothing more is written"
            )

    def release(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if (self.read() or {}).get("holder") == self.token:
            self.loc.fs.rm(LOCK_FILE)
