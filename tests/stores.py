"""Helpers of the store tests: synth logs with damaged lines, and what a store holds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
from conftest import LOGANALYZER, built_once
from logfiles import header, line, row

import loganalyzer as la
from loganalyzer import Store
from loganalyzer.report.rollup import refresh
from loganalyzer.synth import generate

#: Aggregations whose results must not change when the parts are rewritten.
QUERIES = [
    "select date, server, event_id, count(*) as n, sum(total_bytes) as bytes,"
    " count(distinct message_id) as ids, min(date_time) as first, max(date_time) as last"
    " from tracking group by all order by all",
    "select date, server, direction, count(*) as n, count(distinct session_id) as sessions,"
    " sum(line) as lines from smtp group by all order by all",
    "select recipient, outcome, count(*) as n from recipients group by all order by all",
    "select message_id, sender_address, delivered, failed, deferred, rows, total_bytes"
    " from messages order by message_id",
    "select file, line, reason from quarantine order by all",
    "select file_key, rows, quarantined, bytes_consumed from files order by all",
    "select count(*) as n from tracking where message_id in"
    " (select message_id from tracking where event_id = 'FAIL')",
]


def synth_logs(folder: Path, days: int = 2, messages: int = 120) -> Path:
    """Two servers and an IIS relay for ``days`` days, and a log with two damaged lines."""
    generate(folder, servers=2, days=days, messages=messages, seed=11, relay=True)
    good = [row(i, message_id=f"<damaged{i}@contoso.com>") for i in range(4)]
    text = (
        header()
        + line(good[0])
        + "2026-03-02T10:00:00.000Z,too,few,fields\r\n"
        + line(good[1])
        + line(good[2])
        + "yesterday"
        + line(good[3])[24:]
    )
    damaged = folder / "EX09" / "MessageTracking" / "MSGTRK2026030210-1.LOG"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(text.encode())
    return folder


def ingested_here(logs: Path, store: Path, format: str | None = None) -> la.IngestSummary:
    """``logs`` ingested into ``store`` in this process, as the command does (rollups
    included): for stores a test only reads; the command's own path is tested elsewhere."""
    summary = la.ingest([logs], store, format=format, rollups=refresh)
    assert summary.exit_code == 0, summary.to_dict()
    return summary


def shared_synth_logs(
    tmp_path_factory: pytest.TempPathFactory, days: int = 2, messages: int = 120
) -> Path:
    """``synth_logs`` made once per test run for every test file that asks for the same days
    and messages (read only: a test that changes them copies them first)."""
    name = f"synth-logs-{days}d-{messages}"
    folder = built_once(tmp_path_factory, name, lambda f: synth_logs(f / "logs", days, messages))
    return folder / "logs"


def shared_ingested(
    tmp_path_factory: pytest.TempPathFactory, days: int = 2, messages: int = 120
) -> Path:
    """The store the ``loganalyzer ingest`` command makes of ``shared_synth_logs`` (rollups
    included), made once per test run (read only)."""
    logs = shared_synth_logs(tmp_path_factory, days, messages)

    def build(folder: Path) -> None:
        done = subprocess.run(
            [LOGANALYZER, "ingest", str(logs), "--store", str(folder / "store")],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr

    return built_once(tmp_path_factory, f"ingested-{days}d-{messages}", build) / "store"


def message_ids(logs: Path, n: int = 6) -> list[str]:
    """A few Message-IDs of different fates from ``truth.jsonl``."""
    by_verdict: dict[str, str] = {}
    for text in (logs / "truth.jsonl").read_text().splitlines():
        t = json.loads(text)
        by_verdict.setdefault(t["verdict"], t["message_id"])
    return sorted(by_verdict.values())[:n]


def rows(st: Store, table: str) -> list[dict]:
    """The rows of the parts the manifest lists, read with pyarrow alone, in file/line order."""
    out = []
    for rel in st.listed_parts(table):
        with st.loc.open(rel) as fh:
            out += pq.ParquetFile(fh).read().to_pylist()
    return sorted(out, key=lambda r: (r["file"], r["line"]))


def manifest(st: Store, parts: bool = True, drop: tuple[str, ...] = ()) -> dict[str, dict]:
    """The manifest without ingest times (and without part names unless ``parts``)."""
    drop = {"ingested_at", *drop} | (set() if parts else {"parts"})
    manifest = st.manifest().items()
    return {k: {c: v for c, v in asdict(r).items() if c not in drop} for k, r in manifest}


def content(st: Store, parts: bool = True) -> dict:
    """What a store holds: rows, quarantine, manifest (times aside; part names unless
    ``parts`` is False: a bundle's files share parts, a file parsed alone has its own)."""
    return {
        "tracking": rows(st, "tracking"),
        "smtp": rows(st, "smtp"),
        "quarantine": rows(st, "quarantine"),
        "manifest": manifest(st, parts),
    }


def answers(st: Store, ids: list[str]) -> dict:
    """What queries answer: aggregations, traces, DataFrames (in a total order)."""
    order = {"tracking": ["file", "line"], "smtp": ["file", "line"], "messages": ["message_id"]}
    frames = {
        "tracking": st.tracking(),
        "smtp": st.smtp(),
        "messages": st.messages(),
    }
    return {
        "sql": [st.sql(q) for q in QUERIES],
        "traces": [la.trace(st, i).to_dict() for i in ids],
        "frames": {k: df.sort_values(order[k]).reset_index(drop=True) for k, df in frames.items()},
    }


def assert_same_answers(a: dict, b: dict) -> None:
    assert len(a["sql"]) == len(b["sql"])
    for x, y in zip(a["sql"], b["sql"], strict=True):
        pd.testing.assert_frame_equal(x, y)
    assert a["traces"] == b["traces"]
    for k in a["frames"]:
        pd.testing.assert_frame_equal(a["frames"][k], b["frames"][k])


def snapshot(store: Path) -> dict[str, str]:
    """Every file of the store folder (the manifest too) by relative path, with a digest of
    its bytes: equal snapshots, a store left byte for byte as it was."""
    return {
        p.relative_to(store).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file()
    }


#: Bind-mounts the folder given first read-only in a mount namespace of its own, then runs
#: the rest: a read-only mount, the one read-only folder root cannot write into.
_READ_ONLY_MOUNT = 'mount --bind "$0" "$0" && mount -o remount,ro,bind "$0" "$0" && exec "$@"'


def run_read_only(store: Path, *args: str) -> subprocess.CompletedProcess:
    """The installed command run with the store folder read-only, as a user sees it: made
    read-only (chmod) for a user; for root, who writes into any folder, a read-only mount of
    it. Skips where the OS cannot make it so (Windows; root without mount namespaces)."""
    command = [LOGANALYZER, *map(str, args)]
    if sys.platform == "win32":
        pytest.skip("the folder cannot be made read-only here")
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        mount = [unshare, "-m", "sh", "-c", _READ_ONLY_MOUNT, str(store)] if unshare else []
        if not mount or subprocess.run([*mount, "true"], capture_output=True).returncode:
            pytest.skip("root writes into read-only folders, and no read-only mount can be made")
        return subprocess.run([*mount, *command], capture_output=True, text=True, timeout=300)
    paths = [store, *store.rglob("*")]
    modes = {p: p.stat().st_mode for p in paths}
    for p in paths:
        p.chmod(0o555 if p.is_dir() else 0o444)
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=300)
    finally:
        for p, mode in modes.items():
            p.chmod(mode)
