"""Stores on other filesystems: a folder, a file:// URL and fsspec's in-memory filesystem
(standing in for object stores: no OS lock, no rename, no folders)."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path

import fsspec
import pytest
from conftest import LOGANALYZER
from stores import QUERIES, content, message_ids, synth_logs

import loganalyzer as la
from loganalyzer import Store
from loganalyzer.store import StoreError
from loganalyzer.store.compact import compact


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return synth_logs(tmp_path_factory.mktemp("fs") / "logs", days=1, messages=60)


@pytest.fixture(scope="module")
def local(logs, tmp_path_factory) -> dict:
    """What a plain local ingest gives, to compare the others with."""
    st = Store(tmp_path_factory.mktemp("fs") / "store")
    la.ingest([logs], st)
    return {"content": content(st), "sql": [st.sql(q) for q in QUERIES]}


def _store(kind: str, tmp_path: Path) -> Store:
    if kind == "folder":
        return Store(tmp_path / "store")
    if kind == "file-url":
        return Store(f"file://{tmp_path}/store")
    if kind == "file-url-one-slash":  # file:/path, as urllib and some tools write them
        return Store(f"file:{tmp_path}/store")
    return Store(f"memory://store-{secrets.token_hex(4)}")


@pytest.fixture(params=["folder", "file-url", "file-url-one-slash", "memory"])
def store(request, tmp_path):
    st = _store(request.param, tmp_path)
    yield st
    if request.param == "memory":
        st.loc.fs.rm("", recursive=True)


def test_ingest_reingest_queries_and_trace(store, logs, local):
    first = la.ingest([logs], store)
    assert first.exit_code == 0 and first.rows > 0 and first.quarantined == 2
    assert content(store) == local["content"]
    again = la.ingest([logs], store)
    assert again.rows == 0 and again.count("ingested", "grown") == 0
    assert again.count("unchanged") == first.count("ingested")
    for q, expected in zip(QUERIES, local["sql"], strict=True):
        assert store.sql(q).equals(expected), q
    df = store.tracking(event_id="RECEIVE")
    assert (
        len(df) == store.sql("select count(*) from tracking where event_id = 'RECEIVE'").iat[0, 0]
    )
    for mid in message_ids(logs, 3):
        result = la.trace(store, mid)
        assert [m["message_id"] for m in result.to_dict()["messages"]] == [mid]


def test_clean_removes_temporary_and_unlisted_parts(store, logs):
    la.ingest([logs], store)
    listed = set(store.listed_parts())
    leftovers = [
        "tracking/date=2026-03-02/0123456789abcdef-0.parquet.99-ab.tmp",
        "tracking/date=2026-03-02/0123456789abcdef-0.parquet",
        "smtp/date=2026-03-03/fedcba9876543210-0.parquet",
        "manifest.parquet.99.tmp",
    ]
    for rel in leftovers:
        store.loc.makedirs_for(rel)
        with store.loc.open(rel, "wb") as fh:
            fh.write(b"left by an interrupted run")
    assert set(store.check()["unlisted"]) | set(store.check()["temporary"]) >= set(leftovers[:3])
    summary = la.ingest([logs], store)
    assert set(summary.cleaned) == set(leftovers)
    assert set(store.listed_parts()) == listed
    check = store.check()
    assert check["missing"] == check["unlisted"] == check["temporary"] == []


def test_compaction(store, logs, local):
    la.ingest([logs], store)
    summary = compact(store)
    assert summary.partitions and len(store.listed_parts()) < len(local["content"]["manifest"])
    got = content(store)
    for table in ("tracking", "smtp", "quarantine"):
        assert got[table] == local["content"][table]
    for q, expected in zip(QUERIES, local["sql"], strict=True):
        assert store.sql(q).equals(expected), q


def test_a_file_url_store_is_its_folder_wherever_the_command_runs(logs, tmp_path):
    """``file:/path`` was half URL, half a folder under the current one: the lock went to
    ./file:/path/.lock and the parts to /path (ingest then failed naming a .tmp file)."""
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    for url, folder in [
        (f"file:{tmp_path}/a", tmp_path / "a"),
        (f"file://localhost{tmp_path}/b", tmp_path / "b"),
    ]:
        done = subprocess.run([LOGANALYZER, "ingest", str(logs), "--store", url],
                              capture_output=True, text=True, cwd=elsewhere)  # fmt: skip
        assert done.returncode == 0, done.stderr
        check = subprocess.run([LOGANALYZER, "store", "check", "--store", url],
                               capture_output=True, text=True, cwd=elsewhere)  # fmt: skip
        assert check.returncode == 0 and "consistent" in check.stdout, check.stdout
        assert (folder / "manifest.parquet").exists()
    assert list(elsewhere.iterdir()) == []
    wrong = subprocess.run([LOGANALYZER, "ingest", str(logs), "--store", "file://srv/store"],
                           capture_output=True, text=True, cwd=elsewhere)  # fmt: skip
    assert wrong.returncode == 2 and wrong.stderr.count("\n") == 1, wrong.stderr
    assert "names the host 'srv'; give file:///srv/store" in wrong.stderr
    assert list(elsewhere.iterdir()) == []


def test_a_url_store_is_not_confused_with_a_folder(tmp_path):
    assert Store("memory://x").local_root is None
    assert Store(f"file://{tmp_path}/s").local_root == tmp_path / "s"
    assert Store("memory://x/").root == "memory://x"
    with pytest.raises(StoreError, match="cannot open the store"):
        Store("nosuchprotocol://bucket/store")


# -- the lock of an object store: a lock object with a lease ----------------------------------


def _claim(st: Store, holder: str, age: float, lease: float = 60) -> None:
    claim = {"holder": holder, "since": time.time() - age, "renewed": time.time() - age}
    st.loc.fs.pipe_file(".lock", json.dumps({**claim, "lease": lease}).encode())


def _memory_store(**kw) -> Store:
    return Store(f"memory://lock-{secrets.token_hex(4)}", **kw)


def test_a_live_lock_is_waited_for():
    st = _memory_store()
    _claim(st, "other-host:123:ab", age=1)
    told = []
    with (
        pytest.raises(StoreError, match="other-host:123:ab"),
        st.lock(wait=0.3, on_wait=told.append),
    ):
        pass
    assert told and "waiting for the lock" in told[0]


def test_an_expired_lock_is_broken():
    st = _memory_store()
    _claim(st, "dead-host:1:ab", age=300)
    told = []
    with st.lock(wait=0, on_wait=told.append):
        claim = json.loads(st.loc.fs.cat_file(".lock"))
        assert claim["holder"] != "dead-host:1:ab"
    assert "breaking the lock of dead-host:1:ab" in told[0]
    assert not st.loc.fs.exists(".lock")  # released


def test_the_holder_renews_its_lease_and_stops_when_it_lost_it(logs):
    st = _memory_store(lease=0.6)
    with st.lock():
        first = json.loads(st.loc.fs.cat_file(".lock"))
        time.sleep(0.5)
        renewed = json.loads(st.loc.fs.cat_file(".lock"))
        assert renewed["holder"] == first["holder"] and renewed["renewed"] > first["renewed"]
        _claim(st, "thief:2:cd", age=0)  # another process broke the lease meanwhile
        with pytest.raises(StoreError, match="lost the lock .* thief:2:cd"):
            st.write_manifest({})
    assert json.loads(st.loc.fs.cat_file(".lock"))["holder"] == "thief:2:cd"


def test_an_ingest_waits_for_a_memory_store_lock(logs):
    st = _memory_store()
    _claim(st, "other:1:ab", age=0, lease=0.5)  # not renewed: it expires in half a second
    told = []
    summary = la.ingest([logs], st, on_wait=told.append)
    assert summary.rows > 0 and any("breaking" in m for m in told)
    assert fsspec.filesystem("memory").exists(st.loc.full("manifest.parquet"))


# -- one code path: the same operations give the same files on a folder and in memory ------


def _operations(st: Store) -> dict:
    """Write, commit, list and clean a store through the store's own methods."""
    import pyarrow as pa

    from loganalyzer.schema import SCHEMA_VERSION, TABLES, conform
    from loganalyzer.store import FileRow, Part
    from loganalyzer.store.parts import part_options

    day = "tracking/date=2026-03-02"
    tracking = conform(
        pa.table({"message_id": ["<a@x>", "<b@x>"], "line": [1, 2]}), TABLES["tracking"]
    )
    smtp = conform(pa.table({"session_id": ["08D1"], "line": [7]}), TABLES["smtp"])
    parts = [
        Part(f"{day}/k1-0.parquet.1-ab.tmp", f"{day}/k1-0.parquet", 2),
        Part("smtp/date=2026-03-02/k2-0.parquet.1-ab.tmp", "smtp/date=2026-03-02/k2-0.parquet", 1),
    ]
    with st.lock(wait=0):
        writer = st.parquet_writer(parts[0].tmp, tracking.schema, **part_options("tracking", 2))
        writer.write_table(tracking)
        writer.close()
        st.write_parquet(parts[1].tmp, smtp, compression="zstd")
        st.write_bytes("tracking/date=2026-03-03/k3-0.parquet", b"left by an interrupted run")
        st.write_bytes("manifest.parquet.99.tmp", b"left by an interrupted run")
        st.write_bytes(f"{day}/k1-0.parquet", b"an older part, replaced")
        st.commit_parts(parts)
        st.write_manifest(
            {
                "k1": FileRow(
                    "k1",
                    ["EX01/a.log"],
                    table="tracking",
                    rows=2,
                    parts=[parts[0].final],
                    schema_version=SCHEMA_VERSION,
                ),
                "k2": FileRow(
                    "k2",
                    ["EX01/b.log"],
                    table="smtp",
                    rows=1,
                    parts=[parts[1].final],
                    schema_version=SCHEMA_VERSION,
                ),
            }
        )
        sizes = st.loc.sizes(day)
        removed = st.clean()
    files = sorted(f for sub in ("tracking", "smtp", "quarantine") for f in st.loc.files(sub))
    files += st.loc.glob("manifest.parquet*")
    data = {}
    for rel in files:
        with st.loc.open(rel) as fh:
            data[rel] = fh.read()
    return {"files": data, "removed": sorted(removed), "sizes": sizes, "check": st.check()}


def test_the_same_operations_give_the_same_files_in_a_folder_and_in_memory(tmp_path):
    folder = _operations(Store(tmp_path / "store"))
    memory_store = Store(f"memory://same-{secrets.token_hex(4)}")
    memory = _operations(memory_store)
    memory_store.loc.fs.rm("", recursive=True)
    assert sorted(folder["files"]) == [
        "manifest.parquet",
        "smtp/date=2026-03-02/k2-0.parquet",
        "tracking/date=2026-03-02/k1-0.parquet",
    ]
    assert folder["removed"] == ["manifest.parquet.99.tmp", "tracking/date=2026-03-03/k3-0.parquet"]
    assert list(folder["sizes"]) == ["tracking/date=2026-03-02/k1-0.parquet"]
    assert folder["check"]["problems"] == [] and folder["check"]["parts"] == 2
    assert not (tmp_path / "store" / "tracking" / "date=2026-03-03").exists()  # pruned
    assert memory.pop("check") | {"store": ""} == folder.pop("check") | {"store": ""}
    assert memory == folder  # byte for byte
