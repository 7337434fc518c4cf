"""store forget: ingested files taken out of the store so that the next ingest reads them
again (a wrong --tz); bundles and compacted parts rewritten without their rows; kill-safe."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from pathlib import Path

import pytest
from conftest import CORPUS, LOGANALYZER, built_once
from stores import content, run_read_only, shared_synth_logs, snapshot, synth_logs

import loganalyzer as la
from loganalyzer import Store
from loganalyzer.store.forget import forget, matches
from loganalyzer.store.parts import FAILPOINT


def run(*args: str, env: dict | None = None, cwd: Path | None = None):
    return subprocess.run(
        [LOGANALYZER, *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return shared_synth_logs(tmp_path_factory)


@pytest.fixture(scope="module")
def compacted(logs, tmp_path_factory) -> Path:
    """A compacted store of the logs (every file's rows share parts with others); built once
    for the run and read only: each test changes a copy (``_copy``)."""

    def build(folder: Path) -> None:
        la.ingest([logs], folder / "store")
        done = run("store", "compact", "-s", folder / "store")
        assert done.returncode == 0, done.stderr

    return built_once(tmp_path_factory, "forget-compacted", build) / "store"


def _copy(store: Path, tmp_path: Path) -> Path:
    shutil.copytree(store, tmp_path / "store")
    return tmp_path / "store"


def _held(store: Path) -> dict:
    """Rows, quarantine and manifest; the fingerprints aside (a file read again is also
    fingerprinted at the length of each shorter log read before it, as a first read in another
    order would be)."""
    out = content(Store(store), parts=False)
    for row in out["manifest"].values():
        row.pop("head_fingerprint")
    return out


def _report(store: Path) -> dict:
    out = run("report", "daily", "-s", store, "--date", "2026-03-02", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _count(store: Path, sql: str) -> int:
    out = run("sql", "-s", store, "--json", sql)
    assert out.returncode == 0, out.stderr
    return next(iter(json.loads(out.stdout)[0].values()))


def test_forgotten_files_leave_the_store_and_the_next_ingest_reads_them_again(
    logs, compacted, tmp_path
):
    store = _copy(compacted, tmp_path)
    before = _report(store)
    whole = _held(store)
    tracking = logs / "EX01" / "MessageTracking"
    damaged = logs / "EX09"  # a folder: its file of two quarantined lines
    one = sorted(tracking.glob("*.LOG"))[3]
    n_rows = _count(store, f"select count(*) from tracking where file = '{one}'")
    assert n_rows > 0

    dry = run("store", "forget", "-s", store, one, damaged, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would forget 2 files" in dry.stdout and "nothing changed" in dry.stdout
    assert _held(store) == whole

    done = run("store", "forget", "-s", store, one, damaged, "--json")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert sorted(summary["files"]) == sorted([str(one), *map(str, damaged.rglob("*.LOG"))])
    assert summary["quarantined"] == 2 and summary["rows"] == n_rows + 3  # its three good lines
    # the compacted tracking part rewritten, the file's own quarantine part removed
    assert summary["parts_rewritten"] >= 1 and summary["parts_removed"] == 1
    # their rows and quarantined lines are gone, every other row is there
    left = run(
        "sql", "-s", store, "--json",
        f"select (select count(*) from tracking where file = '{one}') as one,"
        " (select count(*) from quarantine) as quarantined,"
        " (select count(*) from tracking) as tracking",
    )  # fmt: skip
    assert left.returncode == 0, left.stderr
    left = json.loads(left.stdout)[0]
    assert left["one"] == 0
    assert left["quarantined"] == 0
    assert left["tracking"] == len(whole["tracking"]) - n_rows - 3
    check = run("store", "check", "-s", store)
    assert check.returncode == 0 and "consistent" in check.stdout, check.stdout
    assert _report(store)["headline"] != before["headline"]
    # the next ingest reads them again: the store is what it was
    again = run("ingest", "-s", store, logs, "--json")
    assert json.loads(again.stdout)["files"]["ingested"] == 2, again.stdout
    assert _held(store) == whole
    assert _report(store) == before


def test_a_dry_run_reads_a_read_only_store(logs, compacted, tmp_path):
    """A dry run only reads: it took the store's lock and cleaned it first, and a store that
    cannot be written (a read-only folder or mount) was refused. The forget itself still is."""
    store = _copy(compacted, tmp_path)
    whole = snapshot(store)
    one = sorted((logs / "EX01" / "MessageTracking").glob("*.LOG"))[3]
    dry = run_read_only(store, "store", "forget", "-s", store, one, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    said = json.loads(dry.stdout)
    assert said["dry_run"] is True and said["files"] == [str(one)] and said["rows"] > 0
    both = run_read_only(store, "store", "forget", "-s", store, one, "--damaged", "--dry-run")
    assert both.returncode == 0 and "would forget 1 file (" in both.stdout, both.stderr
    refused = run_read_only(store, "store", "forget", "-s", store, one)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused.stderr
    assert refused.stderr.startswith(f"error: cannot write to the store {store}")
    assert snapshot(store) == whole


def test_a_wrong_zone_is_mended_by_forgetting_and_ingesting_again(tmp_path):
    log = tmp_path / "SMTPSVC1" / "in070101.log"
    log.parent.mkdir()
    shutil.copy(CORPUS / "iis-smtp" / "msdoc-ex2007-smtp-iislogformat-example.log", log)
    store = tmp_path / "store"
    assert run("ingest", "-s", store, log).returncode == 0
    first = "select strftime(min(date_time) at time zone 'UTC', '%H:%M') as t from smtp"
    utc = _count(store, first)
    again = run("ingest", "-s", store, log, "--tz", "America/New_York")
    assert again.returncode == 0 and _count(store, first) == utc  # the file was read already
    said = " ".join(again.stdout.split())
    assert "1 file was read before with another --tz and not again: --tz applies" in said
    assert "store forget" in again.stdout
    same = run("ingest", "-s", store, log, "--tz", "UTC")  # read so (as UTC) before: no warning
    assert same.returncode == 0 and "read before" not in same.stdout, same.stdout
    assert run("store", "forget", "-s", store, log.parent).returncode == 0
    assert run("ingest", "-s", store, log, "--tz", "America/New_York").returncode == 0
    hours = int(_count(store, first)[:2]) - int(utc[:2])
    assert hours % 24 in (4, 5), (utc, _count(store, first))  # EDT or EST
    # a nightly run given the same zone, and a log of UTC times beside it, warn of nothing
    tracking = tmp_path / "MSGTRK20260302-1.LOG"
    shutil.copy(
        CORPUS / "exchange2007plus" / "kinesistap-ExchangeLogParserTest-msgtrk.log", tracking
    )
    assert run("ingest", "-s", store, tracking).returncode == 0
    nightly = run("ingest", "-s", store, log, tracking, "--tz", "America/New_York", "--json")
    assert nightly.returncode == 0 and json.loads(nightly.stdout)["warnings"] == []


def test_paths_that_match_nothing_are_named(compacted, tmp_path):
    store = _copy(compacted, tmp_path)
    out = run("store", "forget", "-s", store, tmp_path / "nowhere.LOG")
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "nowhere.LOG: no log of the store" in out.stderr
    assert "Traceback" not in out.stderr
    out = run("store", "forget", "-s", store, " ")
    assert out.returncode == 2 and "give the paths" in out.stderr
    out = run("store", "forget", "-s", tmp_path / "nostore", tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr


def test_paths_match_as_ingest_was_given_them():
    assert matches("logs/EX01/MSGTRK1.LOG", "logs/EX01/MSGTRK1.LOG")
    assert matches("logs/EX01/MSGTRK1.LOG", "logs/./EX01/")
    assert matches("logs/EX01/MSGTRK1.LOG", os.path.abspath("logs/EX01"))
    assert matches("logs/EX01/MSGTRK1.LOG", "logs/*/MSGTRK*.LOG")
    assert matches("old/EX01.zip!MessageTracking/MSGTRK1.LOG", "old/EX01.zip")
    assert matches("\\\\ex01\\logs\\MessageTracking\\MSGTRK1.LOG", "\\\\EX01\\Logs")
    assert not matches("logs/EX01/MSGTRK1.LOG", "logs/EX0")
    assert not matches("logs/EX01/MSGTRK1.LOG", "logs/EX01/MSGTRK1.LOG.gz")
    assert not matches("logs/EX011/MSGTRK1.LOG", "logs/EX01")


@pytest.mark.parametrize("stage", ["forget-written", "forget-renamed", "listed", "removing"])
def test_a_kill_leaves_the_store_as_before_or_without_the_files(logs, compacted, tmp_path, stage):
    store = _copy(compacted, tmp_path)
    whole = _held(store)
    target = sorted((logs / "EX02" / "MessageTracking").glob("*.LOG"))[:2]
    killed = run("store", "forget", "-s", store, *target, env={**os.environ, FAILPOINT: stage})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = _held(store)
    names = {str(t) for t in target}
    if stage in ("forget-written", "forget-renamed"):  # before the commit point: as before
        assert after == whole
    else:  # after it: without them, every other row there
        kept = [r for r in whole["tracking"] if r["file"] not in names]
        assert after["tracking"] == kept
    repaired = run("store", "check", "-s", store, "--repair")
    assert repaired.returncode == 0 and "consistent" in repaired.stdout, repaired.stdout
    if stage.startswith("forget"):  # the files are still there to forget
        assert sorted(forget(store, map(str, target)).files) == sorted(names)
        assert Store(store).check()["ok"]


def test_damaged_parts_are_mended_by_forgetting_their_files_and_ingesting_again(
    logs, compacted, tmp_path
):
    store = _copy(compacted, tmp_path)
    whole = _held(store)
    st = Store(store)
    tracking = sorted(p for p in st.listed_parts("tracking"))
    smtp = sorted(p for p in st.listed_parts("smtp"))
    (store / tracking[0]).write_bytes((store / tracking[0]).read_bytes()[:1000])  # cut short
    (store / smtp[-1]).unlink()  # lost
    hit = {tracking[0], smtp[-1]}
    holders = {p for r in st.manifest().values() if hit.intersection(r.parts) for p in r.paths}
    check = run("store", "check", "-s", store)
    assert check.returncode == 1 and "store forget --damaged" in check.stdout, check.stdout
    assert run("store", "forget", "-s", store, "--damaged", "--dry-run").returncode == 0
    done = run("store", "forget", "-s", store, "--damaged", "--json")
    assert done.returncode == 0, done.stderr
    forgotten = json.loads(done.stdout)["files"]
    assert forgotten and set(forgotten) == holders
    check = run("store", "check", "-s", store)
    assert check.returncode == 0 and "consistent" in check.stdout, check.stdout
    again = run("ingest", "-s", store, logs, "--json")
    assert json.loads(again.stdout)["files"]["ingested"] == len(forgotten), again.stdout
    assert _held(store) == whole
    nothing = run("store", "forget", "-s", store, "--damaged")
    assert nothing.returncode == 0 and "no damaged part" in nothing.stdout


def test_a_log_is_known_by_its_content_wherever_the_ingest_ran(tmp_path):
    """Ingest records paths as it was given them (here relative to another folder): a file
    named here is known by its first bytes, a copy of it too."""
    la_logs = tmp_path / "site" / "logs"
    synth_logs(la_logs, days=1, messages=40)
    assert run("ingest", "-s", "store", "logs", cwd=tmp_path / "site").returncode == 0
    store = tmp_path / "site" / "store"
    folder = la_logs / "EX01" / "ProtocolLog"
    n = len(list(folder.rglob("*.LOG")))
    out = run("store", "forget", "-s", store, "site/logs/EX01/ProtocolLog", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    files = json.loads(out.stdout)["files"]
    assert len(files) == n and all(f.startswith("logs/EX01/ProtocolLog/") for f in files)
    log = sorted((la_logs / "EX02" / "MessageTracking").glob("*.LOG"))[-1]
    copy = tmp_path / "copy.LOG"
    shutil.copy(log, copy)
    out = run("store", "forget", "-s", store, copy, "--json")
    assert json.loads(out.stdout)["files"] == [str(log.relative_to(tmp_path / "site"))]
    again = run("ingest", "-s", "store", "logs", "--json", cwd=tmp_path / "site")
    assert json.loads(again.stdout)["files"]["ingested"] == n + 1, again.stdout


def test_a_file_read_from_two_folders_is_forgotten_as_one(tmp_path):
    log = tmp_path / "iis" / "SMTPSVC1" / "in070101.log"
    log.parent.mkdir(parents=True)
    shutil.copy(CORPUS / "iis-smtp" / "msdoc-ex2007-smtp-iislogformat-example.log", log)
    store = tmp_path / "store"
    assert run("ingest", "-s", store, "SMTPSVC1", cwd=tmp_path / "iis").returncode == 0
    assert run("ingest", "-s", store, "iis/SMTPSVC1", cwd=tmp_path).returncode == 0
    out = run("store", "forget", "-s", store, log, "--json")
    assert out.returncode == 0, out.stderr
    assert len(json.loads(out.stdout)["files"]) == 1  # the manifest's one row, not its paths
    nothing = run("store", "forget", "-s", store, tmp_path / "nowhere.log")
    assert f"--store {store}" in nothing.stderr  # the hint's command reads this store


def test_a_path_with_brackets_in_its_name_is_that_path(tmp_path):
    """``EX [old]`` named here was taken for a glob pattern: a folder ingested from elsewhere
    was not known by its logs' content ("no log of the store"), and ``M[1].LOG`` forgot
    ``M1.LOG`` as well."""
    site = tmp_path / "site"
    for rel, log in [
        ("EX [old]/M1.LOG", "exchange2007plus/kinesistap-ExchangeLogParserTest-msgtrk.log"),
        ("EX9/M1.LOG", "iis-smtp/msdoc-ex2007-smtp-iislogformat-example.log"),
        ("EX9/M[1].LOG", "exchange2007plus/beats-bom8-ex2010-msgtrk.log"),
    ]:
        (site / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(CORPUS / log, site / rel)
    store = tmp_path / "store"
    assert run("ingest", "-s", store, "EX [old]", "EX9", cwd=site).returncode == 0
    out = run("store", "forget", "-s", store, "--dry-run", "--json", site / "EX [old]")
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"] == ["EX [old]/M1.LOG"]
    out = run("store", "forget", "-s", store, "--dry-run", "--json", "EX9/M[1].LOG", cwd=site)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["files"] == ["EX9/M[1].LOG"]
