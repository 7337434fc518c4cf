"""Every command that reads a store takes it from $LOGANALYZER_STORE when --store is not given
(the README's promise): `watch --once` said "None: no such folder"."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

from conftest import LOGANALYZER
from stores import shared_ingested


def test_commands_take_the_store_from_the_environment(tmp_path_factory, tmp_path):
    store = tmp_path / "mailstore"  # watch writes its alert state into the store: a copy
    shutil.copytree(shared_ingested(tmp_path_factory), store)
    env = {**os.environ, "LOGANALYZER_STORE": str(store), "COLUMNS": "200"}
    work = tmp_path / "elsewhere"  # no ./loganalyzer-store here to fall back on
    work.mkdir()

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(
            [LOGANALYZER, *args], capture_output=True, text=True, timeout=300, cwd=work, env=env
        )
        assert "no such folder" not in done.stdout + done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr, (args, done.stderr)
        return done

    counted = json.loads(run("sql", "select count(*) as n from tracking", "--json").stdout)
    assert counted[0]["n"] > 1000
    listed = json.loads(run("trace", "--sender", "*", "--limit", "2", "--json").stdout)
    assert listed["total"] > 2 and len(listed["candidates"]) == 2
    report = json.loads(run("report", "daily", "--date", "2026-03-02", "--json").stdout)
    assert report["headline"]["received_messages"] > 0
    assert report["store"] == str(store)
    check = run("store", "check", "--json")
    assert check.returncode == 0 and json.loads(check.stdout)["ok"]
    once = run("watch", "--once")
    # a status line of the store's rules (OK, WARNING or CRITICAL), not UNKNOWN for no store
    assert once.returncode in (0, 1, 2) and once.stdout.startswith("WATCH "), once.stdout
    assert (store / "watch").is_dir()  # its alert state, kept in that store
