"""Parse tasks on a Dask cluster (``ingest --scheduler ADDRESS``); imported only then.

The workers run ``worker.run_task`` as a local pool would: they read the logs at the paths
given (a share mounted at the same place on every worker) and write parts under temporary
names into the store (a shared folder or an object store URL). The ingest's own process
receives the results as they finish and renames parts and writes the manifest, as it does
for a local ingest: a cluster never commits anything.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace

from loganalyzer.errors import LogAnalyzerError
from loganalyzer.store import Store
from loganalyzer.worker import Task, TaskResult, run_task

#: Prefix of the keys of the parse tasks on the scheduler (its dashboard groups them by it).
KEY_PREFIX = "loganalyzer-parse"
_NO_WORKER = (
    "no Dask worker is connected to the scheduler at {address} (waited {seconds:g} s): start "
    "one with `dask worker {address}`"
)


class ClusterError(LogAnalyzerError, RuntimeError):
    """The cluster cannot be used: Dask missing, the scheduler unreachable (exit 2)."""


def _connect_timeout() -> float:
    """Seconds of dask's ``distributed.comm.timeouts.connect`` (30 s unless configured)."""
    import dask
    from dask.utils import parse_timedelta

    return parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")


def check_scheduler(address: str) -> None:
    """Refuse ``address`` unless a Dask scheduler answers there, within dask's connect timeout
    (``distributed.comm.timeouts.connect``, 30 s): before the store is locked, so that a
    wrong address (the dashboard's port, a web server) fails in seconds instead of waiting
    for ever with the lock held."""
    try:
        from distributed.comm.addressing import parse_address, parse_host_port
        from distributed.core import rpc
    except ImportError as exc:
        raise ClusterError("--scheduler needs Dask: pip install 'loganalyzer[dask]'") from exc
    try:
        parse_host_port(parse_address(address)[1])
    except ValueError:
        raise ClusterError(
            f"--scheduler {address!r}: give the scheduler's address as tcp://HOST:PORT "
            "(its port is 8786 unless it was started with another)"
        ) from None
    seconds = _connect_timeout()

    async def identity() -> dict:
        scheduler = rpc(address, timeout=seconds)
        try:  # a server that is no scheduler may never answer: the wait is ours (after the
            # connect's own, so that a refused or unknown address says so)
            answer = await asyncio.wait_for(scheduler.identity(), seconds + 5)
            # workers that are starting may join in a while: wait for one as long again
            for _ in range(int(seconds)):
                if not isinstance(answer, dict) or answer.get("workers"):
                    break
                await asyncio.sleep(1)
                answer = await asyncio.wait_for(scheduler.identity(), seconds + 5)
            return answer
        finally:
            await scheduler.close_rpc()

    try:
        answer = asyncio.run(identity())
    except TimeoutError:
        answer = None
    except Exception as exc:  # refused, unknown host, a reply that is no Dask message
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    if not isinstance(answer, dict) or answer.get("type") != "Scheduler":
        raise ClusterError(
            f"no Dask scheduler answers at {address} (within {seconds + 5:g} s): is it the "
            "dashboard's port? The scheduler's is 8786 unless it was started with another"
        )
    if not answer.get("workers"):
        raise ClusterError(_NO_WORKER.format(address=address, seconds=seconds))


def run_on_cluster(tasks: list[Task], address: str, store: Store) -> Iterator[TaskResult]:
    """Yield the results of ``tasks`` run on the Dask cluster at ``address``, as they finish.

    A task whose worker died more often than the scheduler allows (``KilledWorker``), or that
    failed on the worker for another reason, comes back as a result with its ``error``: its
    file is reported as not ingested and read again by the next ingest.
    """
    if not tasks:
        return
    try:
        from distributed import Client, as_completed
    except ImportError as exc:
        raise ClusterError("--scheduler needs Dask: pip install 'loganalyzer[dask]'") from exc
    if not store.loc.shared:
        raise ClusterError(
            f"{store.root} lives in this process's memory: cluster workers cannot write to it"
        )
    try:
        # waits up to dask's distributed.comm.timeouts.connect (30 s); not the default client:
        # a program that calls ingest may have its own
        client = Client(address, set_as_default=False)
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"cannot reach the Dask scheduler at {address}: {exc}") from exc
    _drop_lost_gathers(client)
    # workers resolve the store as they see it: an absolute path or a URL
    tasks = sorted(tasks, key=lambda t: t.size - t.offset, reverse=True)
    run = secrets.token_hex(4)
    with _quiet(), client:
        try:  # a scheduler without workers would hold the tasks (and the lock) for ever
            client.wait_for_workers(1, timeout=_connect_timeout())
        except TimeoutError:
            raise ClusterError(
                _NO_WORKER.format(address=address, seconds=_connect_timeout())
            ) from None
        futures = {
            client.submit(
                run_task,
                replace(t, store=store.url),
                key=f"{KEY_PREFIX}-{run}-{t.file_key}-{t.offset}",
                pure=False,
                priority=len(tasks) - i,  # biggest files first
            ): t
            for i, t in enumerate(tasks)
        }
        # as_completed and the futures use this client, not a default one (there is none)
        done = as_completed(futures, loop=client.loop)
        alone = _Alone(client, _connect_timeout())
        while not done.is_empty():
            if not done.has_ready():
                if alone.too_long():  # every worker gone: the tasks would wait for ever
                    yield from _abandon(futures, address, alone.seconds)
                    return
                time.sleep(0.05)
                continue
            for future in done.next_batch(block=False):
                result = _result(future, futures[future], lambda: not alone.too_long())
                if result is None:  # its result died with the last worker
                    yield from _abandon(futures, address, alone.seconds)
                    return
                del futures[future]
                yield result


def _drop_lost_gathers(client) -> None:
    """A gather given up with its task (``_abandon``) ends in dask's ``AllExit`` once the
    client closes; asyncio printed it as "Task exception was never retrieved" with a
    traceback after the ingest's own report. Only that exception is dropped."""
    loop = getattr(client.loop, "asyncio_loop", None)
    if loop is None:
        return

    def handler(loop, context: dict) -> None:
        if type(context.get("exception")).__name__ != "AllExit":
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


@contextmanager
def _quiet() -> Iterator[None]:
    """Without Dask's own log line about results it lost with a worker ("Couldn't gather ...,
    rescheduling"): ingest says what became of each file itself. Only that line: the
    program's other Dask warnings still show meanwhile."""
    logger = logging.getLogger("distributed.client")
    lost = _LostResults()
    logger.addFilter(lost)
    try:
        yield
    finally:
        logger.removeFilter(lost)


class _LostResults(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Couldn't gather")


def _result(future, task: Task, keep_waiting: Callable[[], bool]) -> TaskResult | None:
    """The task's result; None when it cannot be had and ``keep_waiting()`` says to stop (a
    finished task whose worker died before its result was fetched runs again, on a worker
    that may never come)."""
    while True:
        try:
            result = future.result(timeout=2)
        except TimeoutError:
            if keep_waiting():
                continue
            return None
        except Exception as exc:  # KilledWorker, or the worker could not run the task
            result = TaskResult(task, "", error=_lost(exc))
        future.release()
        return result


class _Alone:
    """Whether the scheduler has been without workers for longer than ``seconds`` (asked
    every two seconds while no result comes)."""

    def __init__(self, client, seconds: float) -> None:
        self.client, self.seconds = client, seconds
        self.asked = self.since = None

    def too_long(self) -> bool:
        now = time.monotonic()
        if self.asked is None or now - self.asked >= 2:
            self.asked = now
            if self.client.nthreads():
                self.since = None
            elif self.since is None:
                self.since = now
        return self.since is not None and now - self.since > self.seconds


def _abandon(futures: dict, address: str, seconds: float) -> Iterator[TaskResult]:
    """The results of the tasks not yet given: those finished meanwhile as they are, the
    others cancelled, each with its error (its file is reported as not ingested and read
    again by the next ingest; the finished ones are committed)."""
    error = (
        f"not ingested: no Dask worker left at {address} for {seconds:g} s; it is read again "
        "next run"
    )
    for future, task in futures.items():
        result = _result(future, task, lambda: False) if future.done() else None
        if result is None:
            future.cancel()
            result = TaskResult(task, "", error=error)
        yield result


def _lost(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return "not ingested: the Dask workers running it died; it is read again next run"
    return f"not ingested: the Dask task failed: {name}: {exc}"
