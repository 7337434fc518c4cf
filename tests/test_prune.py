"""store prune --dry-run: what a prune would remove (days, rows by table, files, bytes, the
rollups kept), from the plan the prune itself follows; nothing changed, no lock taken, and a
read-only store answers too."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import LOGANALYZER
from stores import run_read_only, snapshot

from loganalyzer import Store
from loganalyzer.report.rollup import refresh
from loganalyzer.store import rollups as store_rollups
from loganalyzer.store.compact import prune

BEFORE = "2026-03-04"
#: What differs between a dry run's summary and the prune's, figures aside.
RUN_ONLY = ("dry_run", "seconds", "rollups_built")


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [LOGANALYZER, *map(str, args)], capture_output=True, text=True, timeout=300
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    """Three days of two servers' logs, the agent and connectivity logs too (other rows)."""
    base = tmp_path_factory.mktemp("prune")
    made = run("synth", "--out", base / "logs", "--servers", "2", "--days", "3",
               "--messages", "60", "--agent-logs", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    done = run("ingest", base / "logs", "--store", base / "store")
    assert done.returncode == 0, done.stderr
    return base / "store"


def _count(store: Path, table: str) -> int:
    out = run("sql", "-s", store, "--json", f"select count(*) as n from {table} "
              f"where date_time < timestamptz '{BEFORE} 00:00:00+00'")  # fmt: skip
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)[0]["n"]


def _figures(summary: dict) -> dict:
    return {k: v for k, v in summary.items() if k not in RUN_ONLY}


def test_a_dry_run_says_what_the_prune_then_removes_and_changes_nothing(store, tmp_path):
    st = tmp_path / "store"
    shutil.copytree(store, st)
    whole = snapshot(st)
    with Store(st).lock(wait=0):  # held here: a dry run takes no lock, so it does not wait
        dry = run("store", "prune", "--store", st, "--before", BEFORE, "--dry-run", "--json")
        table = run("store", "prune", "--store", st, "--before", BEFORE, "--dry-run")
    assert dry.returncode == 0 and table.returncode == 0, dry.stderr + table.stderr
    assert snapshot(st) == whole  # the manifest and every part, byte for byte
    plan = json.loads(dry.stdout)
    assert plan["dry_run"] is True
    assert plan["days"] == ["2026-03-02", "2026-03-03"]
    assert plan["rollups_kept"] == plan["days"]
    by_table = plan["rows_by_table"]
    assert by_table["tracking"] == _count(st, "tracking") > 0
    assert by_table["smtp"] == _count(st, "smtp") > 0
    assert by_table["other"] > 0  # the agent and connectivity logs' rows
    assert plan["rows_removed"] == sum(by_table.values())
    assert plan["bytes_removed"] == sum(
        (st / p).stat().st_size for p in Store(st).listed_parts() if "/date=2026-03-0" in p
        and p.split("/date=")[1][:10] < BEFORE
    )  # fmt: skip
    assert plan["files"] and all("20260304" not in f for f in plan["files"])
    # the terminal's table and line give the same figures
    lines = table.stdout.splitlines()
    assert lines[-1] == (
        f"{Store(st).root}: would remove {plan['rows_removed']:,} rows "
        f"({plan['parts_removed']} parts, {plan['bytes_removed'] / 1e6:,.1f} MB) of 2 days, "
        f"2026-03-02 to 2026-03-03, from {len(plan['files']):,} files; their rollups would be "
        "kept; nothing changed (--dry-run)"
    )
    total = next(x for x in lines if x.startswith("  total")).split()
    assert total[1:4] == [f"{by_table[t]:,}" for t in ("tracking", "smtp", "other")]
    assert any(x.split()[:1] == ["2026-03-02"] and x.endswith("kept") for x in lines)
    # the library's dry run is the command's
    library = prune(st, BEFORE, dry_run=True, rollups=refresh).to_dict()
    assert _figures(library) == _figures(plan)
    assert snapshot(st) == whole
    # the prune removes what the dry run said
    done = run("store", "prune", "--store", st, "--before", BEFORE, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["dry_run"] is False and _figures(summary) == _figures(plan)
    assert _count(st, "tracking") == _count(st, "smtp") == 0
    assert snapshot(st) != whole
    again = run("store", "prune", "--store", st, "--before", BEFORE, "--dry-run")
    assert again.stdout == f"{Store(st).root}: no rows before {BEFORE}\n", again.stdout


def test_a_dry_run_reads_a_read_only_store(store, tmp_path):
    st = tmp_path / "store"
    shutil.copytree(store, st)
    whole = snapshot(st)
    args = ("store", "prune", "--store", st, "--before", BEFORE, "--json")
    dry = run_read_only(st, *args, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    writable = json.loads(run(*args, "--dry-run").stdout)
    assert _figures(json.loads(dry.stdout)) == _figures(writable)
    # the prune itself is refused in one line, the store as it was
    refused = run_read_only(st, *args)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"error: cannot write to the store {st}")
    assert snapshot(st) == whole


def test_a_dry_run_names_the_rollups_the_prune_builds_first(store, tmp_path):
    # a store whose rollups are out of date (here: none kept): the prune builds them before
    # it removes rows; the dry run said nothing of it
    st = tmp_path / "store"
    shutil.copytree(store, st)
    (st / store_rollups.INDEX_FILE).unlink()
    shutil.rmtree(st / store_rollups.FOLDER)
    dry = run("store", "prune", "--store", st, "--before", BEFORE, "--dry-run", "--json")
    table = run("store", "prune", "--store", st, "--before", BEFORE, "--dry-run")
    assert dry.returncode == table.returncode == 0, dry.stderr + table.stderr
    built = json.loads(dry.stdout)["rollups_built"]
    assert built == ["2026-03-02", "2026-03-03", "2026-03-04"]
    assert "the rollups of 3 days out of date would be built first" in " ".join(
        table.stdout.split()
    )
    done = run("store", "prune", "--store", st, "--before", BEFORE, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["rollups_built"] == built
