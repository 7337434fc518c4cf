"""``ingest --scheduler``: a Dask cluster started as the README starts one, the store the same.

The scheduler and the workers are separate processes started with the README's own commands
(on loopback, at free ports), and the ingest is the ``loganalyzer`` command: nothing of the
cluster lives in the process that ingests, as on real machines.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import IN_CI, LOGANALYZER, ROOT, built_once
from logfiles import row, write_log
from stores import content, shared_ingested, shared_synth_logs

import loganalyzer as la
from loganalyzer.cluster import KEY_PREFIX
from loganalyzer.store import Store
from loganalyzer.worker import Task, run_task

# in the test extra: CI runs these tests, never skips them
distributed = (
    importlib.import_module("distributed") if IN_CI else pytest.importorskip("distributed")
)


def readme_commands() -> dict[str, list[str]]:
    """The README's commands that start the scheduler and the workers, as words."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Many machines", 1)[1].split("\n### ", 1)[0]
    found = {}
    for kind in ("scheduler", "worker"):
        line = re.search(rf"^dask {kind}\b[^#\n]*", section, re.MULTILINE)
        assert line, f"the README's cluster section starts no dask {kind}"
        found[kind] = shlex.split(line.group(0))
    return found


def _dask() -> list[str]:
    """The ``dask`` command of this environment (``python -m dask`` where it has no script)."""
    script = Path(sys.executable).with_name("dask")
    return [str(script)] if script.exists() else [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and a ``--nworkers 2`` worker, started as the README says; yields the
    scheduler's address and a client to look at it (the ingest never uses it)."""
    commands = readme_commands()
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    assert commands["worker"][2] == "tcp://scheduler:8786"
    here = tmp_path_factory.mktemp("dask")
    scheduler = [*_dask(), *commands["scheduler"][1:]]
    scheduler += ["--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    worker = [*_dask(), "worker", address, *commands["worker"][3:]]
    worker += ["--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(here)]
    logs = [open(here / f"{n}.log", "w") for n in ("scheduler", "worker")]  # noqa: SIM115
    procs = [
        subprocess.Popen(cmd, cwd=here, stdout=log, stderr=subprocess.STDOUT)
        for cmd, log in zip((scheduler, worker), logs, strict=True)
    ]
    try:
        with distributed.Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(2, timeout=120)
            client.get_task_stream()  # the scheduler records the tasks from now on
            yield address, client
    finally:
        for p in reversed(procs):
            p.send_signal(signal.SIGINT)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        for log in logs:
            log.close()


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return shared_synth_logs(tmp_path_factory, days=1, messages=60)


@pytest.fixture(scope="module")
def local(tmp_path_factory) -> Store:
    """The store of a local ingest of ``logs`` by the command (it writes rollups too)."""
    return Store(shared_ingested(tmp_path_factory, days=1, messages=60))


def ingest_command(logs: Path, store: Path, address: str, timeout: float = 600):
    return subprocess.run(
        [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--scheduler", address, "--json"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_the_cluster_parses_and_the_store_is_the_same(cluster, logs, local, tmp_path):
    address, client = cluster
    started = time.time()
    out = ingest_command(logs, tmp_path / "cluster", address)
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["quarantined"] == 2 and summary["files"]["errors"] == 0
    # the scheduler ran one parse task per file, on both worker processes
    parsed = [t for t in client.get_task_stream(start=started) if t["key"].startswith(KEY_PREFIX)]
    assert len(parsed) == summary["files"]["ingested"] > 100
    assert {t["worker"] for t in parsed} == set(client.scheduler_info()["workers"])
    # rows, quarantine and manifest (ingest times aside) as a local ingest writes them, but
    # one part per file (a local ingest's bundles of small files share theirs)
    on_cluster = Store(tmp_path / "cluster")
    assert content(on_cluster, parts=False) == content(local, parts=False)
    parts = {"store": on_cluster.root, "parts": None}
    assert {**on_cluster.check(), **parts} == {**local.check(), **parts}
    assert not any(p.endswith("-bundle.parquet") for p in on_cluster.listed_parts())


def test_the_workers_record_where_they_ran(cluster, logs):
    _, client = cluster
    pids = set(client.run(os.getpid).values())
    path = next(logs.glob("EX01/MessageTracking/MSGTRK*.LOG"))
    # a store in the worker's own memory: nothing reaches this process but the result
    task = Task(str(path), "exchange-tracking", "0123456789abcdef", "memory://scratch")
    result = client.submit(run_task, task, pure=False).result()
    assert int(result.worker.rsplit(":", 1)[1]) in pids and os.getpid() not in pids
    assert result.rows > 0


FILES, ROWS = 32, 2000


@pytest.fixture(scope="module")
def big_logs(tmp_path_factory) -> Path:
    """FILES logs of ROWS rows each, written once for the run: read only."""

    def build(folder: Path) -> None:
        for f in range(FILES):
            write_log(
                folder / "logs" / f"EX{f % 4:02d}" / f"MSGTRK20260302{f:02d}-1.LOG",
                [row(f * ROWS + i, message_subject=f"file {f}, row {i}") for i in range(ROWS)],
            )

    return built_once(tmp_path_factory, "cluster-logs", build) / "logs"


def file_lines(st: Store) -> Counter:
    """How often each (file, line) is in the parts the manifest lists."""
    keys: Counter = Counter()
    for rel in st.listed_parts("tracking"):
        t = pq.read_table(st.path(rel), columns=["file", "line"])
        keys.update(zip(t.column("file").to_pylist(), t.column("line").to_pylist(), strict=True))
    return keys


def test_a_worker_killed_mid_ingest(cluster, big_logs, tmp_path):
    """Each file ends fully in the store or reported as not ingested, the store is clean, and
    the next run completes it."""
    address, client = cluster
    logs = big_logs
    store = tmp_path / "store"
    victim = next(iter(client.run(os.getpid).values()))
    proc = subprocess.Popen(
        [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--scheduler", address, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(store.glob("tracking/*/*.parquet"))) >= 3:  # a few files committed
            break
        time.sleep(0.02)
    assert proc.poll() is None, "the ingest finished before a worker could be killed"
    os.kill(victim, signal.SIGKILL)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode in (0, 1), stderr
    details = json.loads(stdout)["details"]
    assert len(details) == FILES
    st = Store(store)
    per_file = Counter(f for f, _ in file_lines(st).elements())
    for d in details:
        if d["status"] == "ingested":
            assert per_file[d["path"]] == d["rows"] == ROWS
        else:  # its worker died more often than the scheduler allows
            assert d["status"] == "error" and d["reason"].startswith("not ingested"), d
            assert per_file[d["path"]] == 0
    assert st.check()["problems"] == []  # what `store check` prints
    again = ingest_command(logs, store, address)
    assert again.returncode == 0, again.stderr
    keys = file_lines(st)
    assert len(keys) == FILES * ROWS and max(keys.values()) == 1
    assert st.check()["ok"]


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


def test_an_address_where_no_scheduler_answers_fails_before_the_store_is_locked(logs, tmp_path):
    """A web server (the dashboard's port, a typo) accepts the connection and never answers
    Dask: ingest waited for ever holding the store's lock; a portless address was an
    unexpected ValueError (exit 1) and a traceback a minute later."""
    port = _free_port()
    web = subprocess.Popen(
        [sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "3s"}
    try:
        for address, said in [
            (f"tcp://127.0.0.1:{port}", f"no Dask scheduler answers at tcp://127.0.0.1:{port}"),
            ("127.0.0.1", "--scheduler '127.0.0.1': give the scheduler's address as tcp://HOST"),
        ]:
            store = tmp_path / "store"
            started = time.monotonic()
            out = subprocess.run(
                [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--scheduler", address],
                capture_output=True, text=True, timeout=120, env=env,
            )  # fmt: skip
            assert out.returncode == 2, out.stderr
            assert out.stderr.startswith(f"error: {said}") and out.stderr.count("\n") == 1
            assert time.monotonic() - started < 60
            assert not store.exists()  # never locked, never made
    finally:
        web.terminate()
        web.wait()


def test_a_scheduler_without_workers_is_named_before_the_store_is_locked(logs, tmp_path):
    """A scheduler started without its workers held the tasks, and the store's lock, for
    ever."""
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    cmd = [*_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"]
    scheduler = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)  # fmt: skip
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    try:
        with distributed.Client(address, timeout=60, set_as_default=False):
            pass  # (it answers)
        store = tmp_path / "store"
        out = subprocess.run(
            [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--scheduler", address],
            capture_output=True, text=True, timeout=120, env=env,
        )  # fmt: skip
        assert out.returncode == 2, out.stderr
        assert out.stderr == (
            f"error: no Dask worker is connected to the scheduler at {address} (waited 5 s): "
            f"start one with `dask worker {address}`\n"
        )
        assert not store.exists()
    finally:
        scheduler.send_signal(signal.SIGINT)
        try:
            scheduler.wait(30)
        except subprocess.TimeoutExpired:
            scheduler.kill()


def test_every_worker_gone_mid_ingest_ends_the_ingest(big_logs, tmp_path):
    """When the whole `dask worker` stops for good mid-ingest, the ingest waited for ever
    with the store's lock held. After dask's connect timeout without a worker it commits
    what was done, names the files left as not ingested and ends (exit 1); the next ingest
    with a worker reads them."""
    logs = big_logs
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    scheduler = subprocess.Popen(
        [*_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
        cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip

    def start_worker():
        cmd = [*_dask(), "worker", address, "--nworkers", "1", "--nthreads", "1", "--host",
               "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp_path)]  # fmt: skip
        return subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)  # fmt: skip

    worker = start_worker()
    env = {**os.environ, "DASK_DISTRIBUTED__COMM__TIMEOUTS__CONNECT": "5s"}
    store = tmp_path / "store"
    try:
        with distributed.Client(address, timeout=60, set_as_default=False) as client:
            client.wait_for_workers(1, timeout=120)
        cmd = [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--scheduler", address]
        proc = subprocess.Popen([*cmd, "--json"], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if list(store.glob("tracking/*/*.parquet")):  # a file committed
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the ingest finished before its worker could be stopped"
        os.killpg(worker.pid, signal.SIGKILL)  # the nanny and its worker: none comes back
        worker.wait()
        stopped = time.monotonic()
        stdout, stderr = proc.communicate(timeout=120)
        assert time.monotonic() - stopped < 60
        assert proc.returncode == 1, stderr
        assert "Traceback" not in stderr and "Couldn't gather" not in stderr, stderr
        details = json.loads(stdout)["details"]
        assert len(details) == FILES
        left = [d for d in details if d["status"] != "ingested"]
        assert left and len(left) < FILES
        reason = f"not ingested: no Dask worker left at {address} for 5 s; it is read again"
        assert all(d["status"] == "error" and d["reason"].startswith(reason) for d in left), left
        st = Store(store)
        per_file = Counter(f for f, _ in file_lines(st).elements())
        assert all(per_file[d["path"]] == ROWS for d in details if d["status"] == "ingested")
        assert all(per_file[d["path"]] == 0 for d in left)
        worker = start_worker()
        again = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert again.returncode == 0, again.stderr
        keys = file_lines(st)
        assert len(keys) == FILES * ROWS and max(keys.values()) == 1
        assert st.check()["ok"]
    finally:
        for p in (worker, scheduler):
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL) if p is worker else p.kill()
            p.wait()


def test_a_memory_store_cannot_take_a_cluster(cluster, logs):
    with pytest.raises(RuntimeError, match="cannot write to it"):
        la.ingest([logs], "memory://nowhere", scheduler=cluster[0])
