"""A store in S3, reached through a real S3 API: a local S3 server (moto's server mode on
loopback) and s3fs, with the endpoint and credentials in the environment as a user sets them.
The commands run as a user runs them: the installed ``loganalyzer`` in a subprocess."""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
from conftest import CORPUS, LOGANALYZER, built_once
from stores import content, manifest, message_ids, shared_ingested, shared_synth_logs

from loganalyzer.store import Store
from loganalyzer.store.parts import FAILPOINT

moto_server = pytest.importorskip("moto.server")
pytest.importorskip("s3fs")

#: The lease of the lock objects in these tests: short, so that a dead holder's lock expires
#: within the test, long enough for a live holder on a busy machine to renew it.
LEASE = "3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_env():
    """A local S3 server for this module; the environment that points s3fs at it."""
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a line per request otherwise
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    deadline = time.monotonic() + 30
    while True:  # start() returns before the server listens
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    env = {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    with pytest.MonkeyPatch.context() as mp:
        for k, v in env.items():
            mp.setenv(k, v)
        for k in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_CONFIG_FILE"):
            mp.delenv(k, raising=False)
        yield env
    server.stop()


@pytest.fixture
def bucket(s3_env) -> str:
    """A new, empty bucket: ``s3://<name>``."""
    import s3fs

    name = f"mail-{secrets.token_hex(4)}"
    s3fs.S3FileSystem(skip_instance_cache=True).mkdir(name)
    return f"s3://{name}"


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return shared_synth_logs(tmp_path_factory, days=1, messages=60)


@pytest.fixture(scope="module")
def local(logs, tmp_path_factory) -> dict:
    """What a local ingest gives: the store's content, traces and the report, as JSON (the
    store and the commands' answers made once for the run)."""
    store = shared_ingested(tmp_path_factory, days=1, messages=60)

    def build(folder: Path) -> None:
        ids = message_ids(logs)
        said = {
            "ids": ids,
            "traces": [_json("trace", i, "--store", store) for i in ids],
            "report": _report(store),
        }
        (folder / "local.json").write_text(json.dumps(said))

    said = json.loads((built_once(tmp_path_factory, "s3-local", build) / "local.json").read_text())
    return {"store": str(store), "content": content(Store(store)), **said}


def _run(*args, env: dict | None = None, lease: str = LEASE) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "LOGANALYZER_LOCK_LEASE": lease}
    return subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, env=env, timeout=300
    )


def _start(*args) -> subprocess.Popen:
    env = {**os.environ, "LOGANALYZER_LOCK_LEASE": LEASE}
    return subprocess.Popen(
        [LOGANALYZER, *map(str, args)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _json(*args, code: int = 0):
    proc = _run(*args, "--json")
    assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr
    return json.loads(proc.stdout)


def _report(store) -> dict:
    report = _json("report", "daily", "--store", store, "--date", "2026-03-02")
    report.pop("store")
    return report


def _store(url: str) -> Store:
    """The store at ``url`` as another process left it (no listing cached in this one)."""
    st = Store(url)
    st.loc.fs.invalidate_cache()
    return st


def _exists(url: str, rel: str) -> bool:
    st = _store(url)
    return st.loc.fs.exists(rel)


def test_ingest_lock_trace_report_compact_and_check_in_s3(logs, local, bucket):
    url = f"{bucket}/mailstore"
    first = _start("ingest", logs, "--store", url)
    deadline = time.monotonic() + 60
    while not _exists(url, ".lock") and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert first.poll() is None, "the ingest finished before the second one started"
    # a second ingest waits for the first's lock, which the first renews while it works
    second = _run("ingest", logs, "--store", url)
    out, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert "157 files ingested, 0 unchanged, 1 skipped, 0 unreadable; 8,605 rows, 2" in " ".join(
        out.split()
    )
    assert "lost the lock" not in err
    assert second.returncode == 0, second.stderr
    assert "waiting for the lock on s3://" in second.stderr
    assert "breaking" not in second.stderr
    assert "0 files ingested, 157 unchanged" in " ".join(second.stdout.split())
    assert not _exists(url, ".lock")  # released

    check = _run("store", "check", "--store", url)
    assert (check.returncode, check.stdout) == (
        0,
        f"{url}: 157 files, 14 parts listed; consistent\n",
    )
    assert content(_store(url)) == local["content"]
    assert [_json("trace", i, "--store", url) for i in local["ids"]] == local["traces"]
    assert _report(url) == local["report"]

    compact = _run("store", "compact", "--store", url)
    assert compact.returncode == 0, compact.stderr
    assert "13 parts in 2 day partitions rewritten as 2 (8,605 rows)" in compact.stdout
    check = _run("store", "check", "--store", url)
    assert (check.returncode, check.stdout) == (
        0,
        f"{url}: 157 files, 3 parts listed; consistent\n",
    )
    got = content(_store(url))
    for table in ("tracking", "smtp", "quarantine"):
        assert got[table] == local["content"][table], table
    assert _report(url) == local["report"]


def test_a_killed_ingest_leaves_a_store_that_check_accepts_and_a_rerun_completes(
    logs, local, bucket
):
    url = f"{bucket}/mailstore"
    # one server's logs ingested, then a kill in the middle of the others' (between two files
    # of a bundle: its parts in place, none of its files listed)
    assert _run("ingest", logs / "EX01", "--store", url).returncode == 0
    killed = _run("ingest", logs, "--store", url, env={FAILPOINT: "bundle-listed"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    killed_at = time.monotonic()
    assert _exists(url, ".lock")  # the dead holder's lock object stays

    # readers see whole files only: no damage, at most leftovers of the killed run
    check = _run("store", "check", "--store", url, "--json")
    report = json.loads(check.stdout)
    assert report["missing"] == report["unreadable"] == report["row_counts"] == []
    assert check.returncode == (1 if report["unlisted"] or report["temporary"] else 0)
    assert 0 < report["files"] < 157
    listed = content(_store(url))
    # (the files of the first ingest share other parts, and saw other lengths of the others)
    drop = ("head_fingerprint",)
    assert (
        manifest(_store(url), False, drop).items()
        <= manifest(Store(local["store"]), False, drop).items()
    )
    for table in ("tracking", "smtp", "quarantine"):
        files = {r["file"] for r in listed[table]}
        assert listed[table] == [r for r in local["content"][table] if r["file"] in files]

    # the rerun breaks the dead holder's lock once its lease has run out, and completes
    rerun = _run("ingest", logs, "--store", url)
    assert rerun.returncode == 0, rerun.stderr
    assert "breaking the lock of " in rerun.stderr
    assert "its lease has expired" in rerun.stderr
    assert time.monotonic() - killed_at >= float(LEASE) - 1
    check = _run("store", "check", "--store", url)
    assert check.returncode == 0 and check.stdout.startswith(f"{url}: 157 files, ")
    assert check.stdout.endswith(" parts listed; consistent\n")
    got, want = content(_store(url), parts=False), content(Store(local["store"]), parts=False)
    assert {**got, "manifest": manifest(_store(url), False, drop)} == {
        **want,
        "manifest": manifest(Store(local["store"]), False, drop),
    }


@pytest.mark.parametrize("lease", ["abc", "0", "-5"])
def test_a_wrong_lease_is_named_not_a_traceback(bucket, lease):
    for args in (["ingest", "nothing-here"], ["store", "check"]):
        proc = _run(*args, "--store", f"{bucket}/mailstore", lease=lease)
        assert proc.returncode == 2, proc.stderr
        assert proc.stderr.strip() == (
            f"error: LOGANALYZER_LOCK_LEASE={lease}: the lease takes a number of seconds above 0"
        )


def test_an_unreachable_endpoint_is_named_not_taken_for_an_empty_store(bucket, s3_env):
    closed = f"http://127.0.0.1:{_free_port()}"  # nothing listens there
    env = {"AWS_ENDPOINT_URL": closed, "AWS_MAX_ATTEMPTS": "1"}
    log = str(CORPUS / "exchange2007plus" / "elastic-integrations-messagetracking.log")
    for args in (["ingest", log], ["store", "check"]):
        proc = _run(*args, "--store", f"{bucket}/mailstore", env=env)
        assert proc.returncode == 2, proc.stderr
        message = " ".join(proc.stderr.split())
        assert message.startswith(
            f"error: cannot reach the store {bucket}/mailstore: Could not connect to the "
            f'endpoint URL: "{closed}/'
        ), message


def test_a_prefix_of_other_objects_is_not_made_a_store(logs, bucket):
    """An ingest into a prefix that holds other objects (and no store) is refused with one
    line naming one, and writes nothing there; a new prefix beside it becomes a store."""
    import s3fs

    fs = s3fs.S3FileSystem(skip_instance_cache=True)
    fs.pipe(f"{bucket[5:]}/exports/report.xlsx", b"not a store")
    refused = _run("ingest", logs / "EX01", "--store", f"{bucket}/exports")
    assert refused.returncode == 2, refused.stderr
    assert refused.stderr == (
        f"error: {bucket}/exports is not a loganalyzer store and not empty (it holds "
        "'report.xlsx'): give a new or empty folder for a new store, or an existing store's "
        "(--store or $LOGANALYZER_STORE)\n"
    )
    fs.invalidate_cache()
    assert fs.ls(f"{bucket[5:]}/exports", detail=False) == [f"{bucket[5:]}/exports/report.xlsx"]
    assert _run("ingest", logs / "EX01", "--store", f"{bucket}/mailstore").returncode == 0
