"""The one-day report's groupings in passes (``load.in_passes``): `loganalyzer report daily
--json` gives the same figures whether the TLS sessions are grouped in one pass or in several
(a pass that dropped or doubled a part's rows would change the counts)."""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from conftest import LOGANALYZER

from loganalyzer.ingest import ingest
from loganalyzer.report import load
from loganalyzer.synth import generate

DAY = "2026-03-03"


def report(store, passes: int | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != load.PASSES_ENV}
    if passes is not None:
        env[load.PASSES_ENV] = str(passes)
    done = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", str(store), "--date", DAY, "--traces", "0",
         "--json"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("passes")
    generate(base / "logs", servers=2, days=2, messages=60, seed=11, clients=True)
    summary = ingest([base / "logs"], base / "store")
    assert summary.exit_code == 0
    return base / "store"


def test_passes_give_the_figures_of_one_pass(store):
    one, three = report(store, None), report(store, 3)
    versions = one["tables"]["tls_versions"]
    assert sum(r["sessions"] for r in versions) > 100  # enough sessions for every pass to hold some
    assert {r["version"] for r in versions} >= {"TLS 1.2", "none"}
    for table in ("tls_versions", "tls_legacy", "tls_failures", "tls_plain", "smtp_clients"):
        assert three["tables"][table] == one["tables"][table], table
    assert three == one


def test_passes_follow_the_groups(monkeypatch):
    monkeypatch.delenv(load.PASSES_ENV, raising=False)
    assert load.passes(0) == 1
    assert load.passes(load.GROUPS_PER_PASS) == 1
    assert load.passes(load.GROUPS_PER_PASS * 2 + 1) == 3
    monkeypatch.setenv(load.PASSES_ENV, "4")
    assert load.passes(1) == 4
