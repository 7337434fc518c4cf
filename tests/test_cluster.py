"""``ingest --scheduler``: the parse tasks run on a Dask cluster, the store is the same."""

from __future__ import annotations

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import IN_CI
from stores import content, synth_logs

import loganalyzer as la
from loganalyzer.cluster import KEY_PREFIX
from loganalyzer.store import Store
from loganalyzer.worker import Task, run_task

# in the test extra: CI runs these tests, never skips them
distributed = (
    importlib.import_module("distributed") if IN_CI else pytest.importorskip("distributed")
)


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return synth_logs(tmp_path_factory.mktemp("cluster") / "logs", days=1, messages=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with (
        distributed.LocalCluster(
            local_directory=tmp_path_factory.mktemp("dask"),
            n_workers=2,
            threads_per_worker=1,
            processes=True,
            dashboard_address=None,
            silence_logs=logging.ERROR,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        client.wait_for_workers(2)
        yield cluster, client


def test_the_cluster_parses_and_the_store_is_the_same(cluster, client_pids, logs, tmp_path):
    cluster, client = cluster
    local = Store(tmp_path / "local")
    on_cluster = Store(tmp_path / "cluster")
    la.ingest([logs], local)
    with distributed.get_task_stream(client) as stream:
        summary = la.ingest([logs], on_cluster, scheduler=cluster.scheduler_address)
    assert summary.exit_code == 0 and summary.quarantined == 2
    # the scheduler ran one parse task per file, on both worker processes (not this one)
    parsed = [t for t in stream.data if t["key"].startswith(KEY_PREFIX)]
    assert len(parsed) == summary.count("ingested") > 100
    assert {t["worker"] for t in parsed} == set(cluster.scheduler_info["workers"])
    assert os.getpid() not in client_pids
    # rows, quarantine and manifest (ingest times aside) as a local ingest writes them
    assert content(on_cluster) == content(local)
    assert on_cluster.check() == {**local.check(), "store": on_cluster.root}


@pytest.fixture(scope="module")
def client_pids(cluster):
    return set(cluster[1].run(os.getpid).values())


def test_the_workers_record_where_they_ran(cluster, client_pids, logs):
    _, client = cluster
    path = next(logs.glob("EX01/MessageTracking/MSGTRK*.LOG"))
    # a store in the worker's own memory: nothing reaches this process but the result
    task = Task(str(path), "exchange-tracking", "0123456789abcdef", "memory://scratch")
    result = client.submit(run_task, task, pure=False).result()
    assert int(result.worker.rsplit(":", 1)[1]) in client_pids and result.rows > 0


def test_no_dask_without_scheduler(logs, tmp_path):
    code = f"""
import sys
import loganalyzer as la
from loganalyzer.cli import app
la.ingest([{str(logs)!r}], {str(tmp_path / "store")!r})
la.trace({str(tmp_path / "store")!r}, "<x@y>")
print(sorted(m for m in sys.modules if m.split(".")[0] in ("dask", "distributed")))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_an_unknown_scheduler_is_a_clear_error(logs, tmp_path, cli):
    import dask

    with dask.config.set({"distributed.comm.timeouts.connect": "1s"}):
        out = cli("ingest", logs, "--store", tmp_path / "store", "--scheduler", "tcp://127.0.0.1:9")
    assert out.exit_code == 2 and "cannot reach the Dask scheduler" in out.stderr


def test_a_memory_store_cannot_take_a_cluster(cluster, logs):
    with pytest.raises(RuntimeError, match="cannot write to it"):
        la.ingest([logs], "memory://nowhere", scheduler=cluster[0].scheduler_address)
