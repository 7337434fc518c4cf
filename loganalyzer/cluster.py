"""Parse tasks on a Dask cluster (``ingest --scheduler ADDRESS``); imported only then.

The workers run ``worker.run_task`` as a local pool would: they read the logs at the paths
given (a share mounted at the same place on every worker) and write parts under temporary
names into the store (a shared folder or an object store URL). The ingest's own process
receives the results as they finish and renames parts and writes the manifest, as it does
for a local ingest: a cluster never commits anything.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import replace

from loganalyzer.errors import LogAnalyzerError
from loganalyzer.store import Store
from loganalyzer.worker import Task, TaskResult, run_task

#: Prefix of the keys of the parse tasks on the scheduler (its dashboard groups them by it).
KEY_PREFIX = "loganalyzer-parse"


class ClusterError(LogAnalyzerError, RuntimeError):
    """The cluster cannot be used: Dask missing, the scheduler unreachable (exit 2)."""


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
    # workers resolve the store as they see it: an absolute path or a URL
    tasks = sorted(tasks, key=lambda t: t.size - t.offset, reverse=True)
    run = secrets.token_hex(4)
    with client:
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
        for future in as_completed(futures, loop=client.loop):
            try:
                result = future.result()
            except Exception as exc:  # KilledWorker, or the worker could not run the task
                result = TaskResult(futures[future], "", error=_lost(exc))
            future.release()
            yield result


def _lost(exc: Exception) -> str:
    name = type(exc).__name__
    if name == "KilledWorker":
        return "not ingested: the Dask workers running it died; it is read again next run"
    return f"not ingested: the Dask task failed: {name}: {exc}"
