"""Compaction: fewer, sorted parts; the same answers; incremental ingest goes on; kill-safe."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from conftest import LOGANALYZER
from stores import (
    QUERIES,
    answers,
    assert_same_answers,
    content,
    manifest,
    message_ids,
    rows,
    shared_ingested,
    shared_synth_logs,
    synth_logs,
)

import loganalyzer as la
from loganalyzer import Store
from loganalyzer.errors import StoreError
from loganalyzer.store.compact import FAILPOINT, compact


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return shared_synth_logs(tmp_path_factory)


@pytest.fixture(scope="module")
def ingested(logs, tmp_path_factory) -> Path:
    """A store as ingest leaves it (one part per bundle of files and day), shared by the
    run's tests: copy it before changing it."""
    return shared_ingested(tmp_path_factory)


@pytest.fixture(scope="module")
def before(ingested, logs) -> dict:
    st = Store(ingested)
    return {"answers": answers(st, message_ids(logs)), "content": content(st)}


def _copy(store: Path, tmp_path: Path) -> Store:
    shutil.copytree(store, tmp_path / "store")
    return Store(tmp_path / "store")


def _layout(st: Store) -> dict[tuple[str, str], list[str]]:
    """Names of the listed parts by (table, date folder)."""
    out: dict[tuple[str, str], list[str]] = {}
    for rel in st.listed_parts():
        if not rel.startswith("quarantine/"):
            table, folder, name = rel.split("/")
            out.setdefault((table, folder), []).append(name)
    return out


def test_compaction_keeps_every_answer(ingested, before, logs, tmp_path):
    st = _copy(ingested, tmp_path)
    parts_before = len(st.listed_parts())
    summary = compact(st)
    listed = st.listed_parts()
    data = summary.to_dict()
    # (373 files in 33 parts: the files of a bundle share theirs)
    assert data["parts_before"] > 20 and data["parts_after"] == len(summary.partitions)
    assert len(listed) < parts_before / 5
    # the rows, the quarantine and the manifest (but its part names) are as they were
    got = content(st)
    for table in ("tracking", "smtp", "quarantine"):
        assert got[table] == before["content"][table], table
    assert manifest(st, parts=False) == {
        k: {c: v for c, v in r.items() if c != "parts"}
        for k, r in before["content"]["manifest"].items()
    }
    assert_same_answers(answers(st, message_ids(logs)), before["answers"])
    # nothing is left over, and a second compaction has nothing to do
    check = st.check()
    assert check["missing"] == check["unlisted"] == check["temporary"] == []
    assert compact(st).partitions == []


def test_compacted_parts_are_sorted_with_statistics_and_bloom_filters(ingested, tmp_path):
    st = _copy(ingested, tmp_path)
    compact(st)
    for rel in st.listed_parts("tracking"):
        meta = pq.ParquetFile(st.path(rel)).metadata
        col = meta.schema.names.index("message_id")
        mins = [meta.row_group(i).column(col).statistics for i in range(meta.num_row_groups)]
        assert all(s is not None and s.has_min_max for s in mins)
        ids = pq.read_table(st.path(rel), columns=["message_id"]).column(0).to_pylist()
        present = [i for i in ids if i is not None]
        assert present == sorted(present) and ids[: len(present)] == present  # nulls last
        assert meta.row_group(0).column(col).bloom_filter_offset is not None


def test_small_target_splits_a_day_into_several_sorted_parts(ingested, tmp_path):
    st = _copy(ingested, tmp_path)
    compact(st, target_mb=0.02)
    smtp = [p for p in st.listed_parts("smtp")]
    assert len(smtp) > len({p.split("/")[1] for p in smtp})  # a day spread over parts
    # every file lists only the compacted parts that hold its rows
    for row in st.manifest().values():
        for rel in row.parts:
            if rel.startswith("quarantine/"):
                continue
            files = set(pq.read_table(st.path(rel), columns=["file"]).column(0).to_pylist())
            assert files & set(row.paths), (rel, row.paths)


def test_ingest_after_compaction_reads_grown_files_on(tmp_path):
    """A file cut in the middle of a line, ingested, compacted, then grown: the store equals
    one ingested from the whole logs."""
    work = synth_logs(tmp_path / "logs", days=1, messages=60)
    newest = sorted((work / "EX01" / "MessageTracking").glob("MSGTRK2*.LOG"))[-1]
    whole = newest.read_bytes()
    newest.write_bytes(whole[: len(whole) * 2 // 3])
    st = Store(tmp_path / "store")
    la.ingest([work], st)
    compact(st)
    key = next(k for k, r in st.manifest().items() if str(newest) in r.paths)
    consumed = st.manifest()[key].bytes_consumed
    newest.write_bytes(whole)
    summary = la.ingest([work], st)
    assert summary.count("grown") == 1 and summary.count("ingested") == 0
    assert summary.bytes_read == len(whole) - consumed
    grown = st.manifest()[key].parts
    assert any("compact-" in p for p in grown) and f"-{consumed}.parquet" in " ".join(grown)
    fresh = Store(tmp_path / "fresh")
    la.ingest([work], fresh)
    assert content(st) | {"manifest": None} == content(fresh) | {"manifest": None}

    # the same per-file facts (a file's key and head fingerprints depend on how much of it,
    # and of the other files, was there when it was first seen)
    def by_path(s: Store) -> dict:
        drop = ("file_key", "head_fingerprint", "head_len")
        return {tuple(r["paths"]): r for r in manifest(s, parts=False, drop=drop).values()}

    assert by_path(st) == by_path(fresh)
    # and a trace of a message of the grown file finds its rows in both
    ids = [r["message_id"] for r in rows(st, "tracking") if r["file"] == str(newest)]
    mid = next(i for i in reversed(ids) if i)
    assert la.trace(st, mid).to_dict() == la.trace(fresh, mid).to_dict()
    compact(st)
    assert content(st)["tracking"] == content(fresh)["tracking"]


def test_other_engines_read_the_store_without_loganalyzer(ingested, tmp_path):
    st = _copy(ingested, tmp_path)
    for stage in ("ingested", "compacted"):
        for table in ("tracking", "smtp"):
            expected = len(rows(st, table))
            root = Path(st.root) / table
            by_pyarrow = ds.dataset(root, format="parquet", partitioning="hive").count_rows()
            by_duckdb = duckdb.sql(
                f"select count(*) from read_parquet('{root}/*/*.parquet', hive_partitioning = true)"
            ).fetchall()[0][0]
            assert by_pyarrow == by_duckdb == expected, (stage, table)
            per_day = duckdb.sql(
                f"select date, count(*) from read_parquet('{root}/*/*.parquet', "
                "hive_partitioning = true) group by 1 order by 1"
            ).fetchall()
            assert per_day == [
                tuple(r)
                for r in st.sql(
                    f"select date, count(*) from {table} group by 1 order by 1"
                ).itertuples(index=False)
            ]
        compact(st)


def _compact_process(store: Path, failpoint: str | None = None) -> subprocess.Popen:
    env = {**os.environ, FAILPOINT: failpoint or ""}
    return subprocess.Popen(
        [sys.executable, "-m", "loganalyzer", "store", "compact", "--store", str(store)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _assert_whole(st: Store, before: dict) -> None:
    """Readable through the manifest, every row once, each day old or new."""
    assert st.check()["missing"] == []
    got = content(st)
    for table in ("tracking", "smtp", "quarantine"):
        assert got[table] == before["content"][table], table
    for where, names in _layout(st).items():
        compacted = [n.startswith("compact-") for n in names]
        assert all(compacted) or not any(compacted), (where, names)


@pytest.mark.parametrize("failpoint", ["written", "renamed", "listed", "removing"])
def test_sigkill_in_compaction_then_the_next_run_finishes(
    ingested, before, logs, tmp_path, failpoint
):
    st = _copy(ingested, tmp_path)
    proc = _compact_process(Path(st.root), failpoint)
    assert proc.wait(120) == -signal.SIGKILL, proc.stderr.read().decode()
    check = st.check()
    left = {"written": "temporary", "renamed": "unlisted", "listed": "unlisted"}
    if failpoint in left:  # the killed run left something behind
        assert check[left[failpoint]], check
    _assert_whole(st, before)
    pd.testing.assert_frame_equal(st.sql(QUERIES[0]), before["answers"]["sql"][0])
    summary = compact(st)  # the next run cleans up and finishes the job
    assert set(summary.cleaned) == set(check["unlisted"] + check["temporary"])
    check = st.check()
    assert check["missing"] == check["unlisted"] == check["temporary"] == []
    assert all(len(names) == 1 for names in _layout(st).values())
    _assert_whole(st, before)


def test_the_next_ingest_cleans_what_a_killed_compaction_left(ingested, before, logs, tmp_path):
    st = _copy(ingested, tmp_path)
    assert _compact_process(Path(st.root), "renamed").wait(120) == -signal.SIGKILL
    assert st.check()["unlisted"]
    summary = la.ingest([logs], st)
    assert summary.rows == 0 and summary.cleaned
    assert st.check()["unlisted"] == []
    _assert_whole(st, before)


def test_kills_at_random_moments(ingested, before, tmp_path):
    st = _copy(ingested, tmp_path)
    rng = random.Random(3)
    kills = 0
    for _ in range(3):
        proc = _compact_process(Path(st.root))
        time.sleep(rng.uniform(0.8, 3.0))
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        proc.wait()
        _assert_whole(st, before)
    compact(st)
    _assert_whole(st, before)
    print(f"{kills} kills")


def test_store_commands(ingested, tmp_path, cli):
    st = _copy(ingested, tmp_path)
    (Path(st.root) / "tracking" / "date=2026-03-02" / "leftover.parquet.1-ab.tmp").write_bytes(b"x")
    out = cli("store", "check", "--store", st.root, "--json")
    assert out.exit_code == 1 and out.stdout.count("leftover") == 2  # in temporary, problems
    out = cli("store", "compact", "--store", st.root, "--date", "2026-03-02", "--json")
    assert out.exit_code == 0
    days = {p.split("/")[1] for p in st.listed_parts() if "compact-" in p}
    assert days == {"date=2026-03-02"}
    out = cli("store", "check", "--store", st.root, "--repair")
    assert out.exit_code == 0 and "consistent" in out.stdout
    assert cli("store", "compact", "--store", st.root, "--date", "monday").exit_code == 2
    assert cli("store", "compact", "--store", tmp_path / "none").exit_code == 2


def test_a_full_disk_is_one_line_naming_the_store_which_stays_whole(ingested, before, tmp_path):
    """pyarrow's error on a full disk names no file ("Error writing bytes to file"); built:
    the commit's rename refused as a full disk refuses it (the tests cannot fill a disk)."""
    st = _copy(ingested, tmp_path)
    real = st.commit_parts

    def full(parts):
        raise OSError(28, "No space left on device")

    st.commit_parts = full
    with pytest.raises(StoreError) as caught:
        compact(st, target_mb=64)
    said = str(caught.value)
    assert said.startswith(f"could not write to the store {st.root}: No space left on device")
    assert "store check --repair" in said
    st.commit_parts = real
    assert content(Store(st.root)) == before["content"]
    after = Store(st.root)
    after.clean()  # what the next ingest or check --repair does: the unlisted parts go
    assert after.check()["ok"]


def test_store_check_shows_a_few_leftovers_of_a_kind_and_counts_the_rest(ingested, tmp_path):
    """An interrupted ingest leaves a part per bundle: store check printed a line for each
    (125 after a few seconds of a big ingest); now the first few of a kind and how many more."""
    st = _copy(ingested, tmp_path)
    day = Path(st.root) / "tracking" / "date=2026-03-02"
    part = next(day.glob("*.parquet"))
    for i in range(8):
        shutil.copy(part, day / f"left-{i}-bundle.parquet")
    out = subprocess.run(
        [LOGANALYZER, "store", "check", "--store", st.root],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 1, out.stderr
    lines = out.stdout.splitlines()
    assert sum(x.startswith("unlisted part") for x in lines) == 5, lines
    assert "... and 3 more: unlisted part (left by an interrupted run) (--json lists all)" in lines
    every = subprocess.run(
        [LOGANALYZER, "store", "check", "--store", st.root, "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert len(json.loads(every.stdout)["unlisted"]) == 8
