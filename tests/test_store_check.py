"""``store check``: a consistent store passes; each kind of damage and leftover is named."""

from __future__ import annotations

import importlib
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import corpus_files, run_cli

from loganalyzer.ingest import ingest
from loganalyzer.store import Store, StoreError

ingest_module = importlib.import_module("loganalyzer.ingest")  # the package binds the function


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("check") / "store"
    logs = corpus_files("exchange2007plus", "smtp-protocol")
    # parts of both kinds: a bundle's (the tracking logs), each file's own (the others)
    assert ingest(logs[:7], store, final=True).exit_code == 0
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ingest_module, "_BUNDLE_FILE", -1)  # every file a task of its own
        assert ingest(logs, store, final=True).exit_code == 0
    return store


@pytest.fixture
def store(built, tmp_path) -> Path:
    return Path(shutil.copytree(built, tmp_path / "store"))


def _check(cli, store, *extra):
    return cli("store", "check", "--store", str(store), *extra)


def test_a_fresh_store_is_consistent(cli, store):
    out = _check(cli, store)
    assert out.exit_code == 0, out.output
    assert "consistent" in out.stdout
    report = Store(store).check()
    assert report["ok"] and report["problems"] == [] and report["schema_versions"] == [1]
    parts = Store(store).listed_parts()
    assert report["parts"] >= 8 and any(p.startswith("quarantine/") for p in parts)
    assert any(p.endswith("-bundle.parquet") for p in parts)


def test_a_missing_part_is_damage(cli, store):
    part = Store(store).listed_parts("tracking")[0]
    (store / part).unlink()
    out = _check(cli, store)
    assert out.exit_code == 1
    assert f"missing part: {part}" in out.stdout and "1 damaged" in out.stdout
    # which logs lost rows, and what mends it
    held = sorted({r.paths[0] for r in Store(store).manifest().values() if part in r.parts})
    assert held and f"damaged parts hold rows of {len(held):,} log files ({held[0]}" in out.stdout
    assert "`loganalyzer store forget --damaged` takes those files out" in out.stdout
    # a command that reads it says so in one line (as when a compaction removed it meanwhile)
    read = run_cli("sql", "-s", str(store), "select count(*) from tracking")
    assert read.returncode == 1 and "Traceback" not in read.stderr, read.stderr
    assert read.stderr.count("\n") == 1 and "a part of the store was gone" in read.stderr


def test_a_truncated_part_does_not_read(cli, store):
    part = Store(store).listed_parts("smtp")[0]
    data = (store / part).read_bytes()
    (store / part).write_bytes(data[: len(data) // 2])
    out = _check(cli, store)
    assert out.exit_code == 1
    assert f"unreadable part: {part}: not readable as Parquet" in out.stdout


def test_a_part_with_other_rows_than_the_manifest_says(cli, store):
    st = Store(store)
    part = st.listed_parts("tracking")[0]
    table = pq.read_table(store / part)
    assert table.num_rows > 1
    pq.write_table(table.slice(1), store / part)  # one row lost, the file still reads
    out = _check(cli, store)
    assert out.exit_code == 1
    line = next(p for p in out.stdout.splitlines() if p.startswith("row count:"))
    assert (
        f"the manifest gives {table.num_rows:,} rows, the parts hold {table.num_rows - 1:,}" in line
    )
    keys = [k for k, r in st.manifest().items() if part in r.parts]
    assert Path(st.manifest()[keys[0]].paths[0]).name in line


def test_a_part_of_another_table_lacks_its_columns(cli, store):
    part = Store(store).listed_parts("tracking")[0]
    pq.write_table(pa.table({"x": [1]}), store / part)
    out = _check(cli, store)
    assert out.exit_code == 1
    assert f"unreadable part: {part}: lacks the tracking columns date_time" in out.stdout


def test_leftovers_are_named_and_repair_removes_them(cli, store):
    day = next((store / "tracking").iterdir())
    (day / "abc-0.parquet.1-ff.tmp").write_bytes(b"half a part")
    shutil.copy(next(day.glob("*.parquet")), day / "orphan-0.parquet")
    (store / "manifest.parquet.77.tmp").write_bytes(b"")
    out = _check(cli, store, "--json")
    assert out.exit_code == 1
    report = json.loads(out.stdout)
    assert report["unlisted"] == [f"tracking/{day.name}/orphan-0.parquet"]
    assert len(report["temporary"]) == 2 and not report["missing"]
    out = _check(cli, store, "--repair")
    assert out.exit_code == 0 and "removed 3 leftovers" in out.stdout
    assert not list(store.rglob("*.tmp")) and not (day / "orphan-0.parquet").exists()


def test_a_compacted_store_is_consistent(cli, store):
    assert cli("store", "compact", "--store", str(store)).exit_code == 0
    st = Store(store)
    assert any("compact-" in p for p in st.listed_parts())
    assert _check(cli, store).exit_code == 0


def test_a_store_of_a_newer_version_is_refused(cli, store):
    table = pq.read_table(store / "manifest.parquet")
    versions = pa.array([99] * table.num_rows, pa.int32())
    table = table.set_column(
        table.schema.get_field_index("schema_version"), "schema_version", versions
    )
    pq.write_table(table, store / "manifest.parquet")
    for args in (("store", "check"), ("sql", "select 1"), ("trace", "x")):
        out = cli(*args, "--store", str(store))
        assert out.exit_code == 2, args
        assert "written by a newer loganalyzer (store schema 99" in out.output
    with pytest.raises(StoreError, match="newer loganalyzer"):
        ingest(corpus_files("exchange2007plus"), store)
    assert pq.read_table(store / "manifest.parquet").equals(table)  # left as it was
