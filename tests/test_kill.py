"""A kill at any moment leaves every file fully in the store or not at all."""

from __future__ import annotations

import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from conftest import built_once
from logfiles import row, write_log
from test_ingest_tracking import rows_of

from loganalyzer.ingest import ingest
from loganalyzer.store import Store, StoreError

FILES, ROWS = 24, 2500


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    """The logs, written once for the run: read only."""

    def build(folder):
        for f in range(FILES):
            rows = [row(f * ROWS + i, message_subject=f"file {f}, row {i}") for i in range(ROWS)]
            write_log(folder / "logs" / f"EX{f % 3:02d}" / f"MSGTRK20260302{f:02d}-1.LOG", rows)

    return built_once(tmp_path_factory, "kill-logs", build) / "logs"


def _start(logs, store):
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "loganalyzer",
            "ingest",
            str(logs),
            "--store",
            str(store),
            "--workers",
            "2",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )


def _done_parts(store) -> int:
    return len(list(store.glob("tracking/*/*.parquet")))


@pytest.mark.parametrize("when", ["first-temp-part", "first-part", "half"])
def test_sigkill_mid_ingest_then_rerun_completes_without_duplicates(logs, tmp_path, when):
    store = tmp_path / "store"
    proc = _start(logs, store)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        temp = list(store.glob("tracking/*/*.tmp")) if store.exists() else []
        done = _done_parts(store) if store.exists() else 0
        if (
            (when == "first-temp-part" and temp)
            or (when == "first-part" and done)
            or (when == "half" and done >= 3)  # of 8: files of 1.5 MB, three to a bundle
        ):
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    # readers that go through the manifest see only complete files
    listed = rows_of(store)
    per_file = Counter(r["file"] for r in listed)
    assert all(n == ROWS for n in per_file.values())

    summary = ingest([logs], store)
    assert summary.exit_code == 0
    rows = rows_of(store)
    keys = Counter((r["file"], r["line"]) for r in rows)
    assert len(rows) == FILES * ROWS
    assert max(keys.values()) == 1  # no duplicate
    assert {n for (_, n) in keys} == set(range(6, 6 + ROWS))  # no missing line
    # and nothing is left over from the killed run
    on_disk = {
        p.relative_to(store).as_posix()
        for p in store.rglob("*.parquet")
        if p.name != "manifest.parquet"
    }
    assert on_disk == set(Store(store).listed_parts())
    assert not list(store.rglob("*.tmp"))


def test_a_first_ingest_killed_before_its_first_commit_is_checked_and_repaired(logs, tmp_path):
    """No manifest yet, parts left: `store check` says so (it said "not a store" and could
    not remove them), `--repair` removes them, readers say no ingest has finished."""
    from conftest import LOGANALYZER

    for attempt in range(3):  # the manifest is first written after 3 s of reading
        store = tmp_path / f"store{attempt}"
        proc = _start(logs, store)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None:
            if store.exists() and list(store.glob("tracking/*/*.tmp")):
                break
            time.sleep(0.005)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        if not (store / "manifest.parquet").exists():
            break
    assert not (store / "manifest.parquet").exists()
    left = [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".lock")]
    assert left

    def run(*args):
        return subprocess.run([LOGANALYZER, *args], capture_output=True, text=True, timeout=120)

    check = run("store", "check", "-s", str(store))
    assert check.returncode == 1, check.stderr
    last = check.stdout.splitlines()[-1]
    assert last.startswith(f"{store}: no ingest has finished in this store yet; {len(left)} ")
    assert "--repair removes them" in last
    trace = run("trace", "-s", str(store), "someone@contoso.com")
    assert trace.returncode == 2
    assert trace.stderr.startswith(f"error: {store}: no ingest has finished in this store yet")
    assert "Traceback" not in trace.stderr

    repair = run("store", "check", "-s", str(store), "--repair")
    assert repair.returncode == 0, repair.stdout + repair.stderr
    assert f"removed {len(left)} leftovers" in repair.stdout
    assert not [p for p in store.rglob("*") if p.is_file() and not p.name.startswith(".lock")]
    # a folder no ingest ever wrote to is still no store
    other = run("store", "check", "-s", str(tmp_path / "typo"))
    assert other.returncode == 2
    assert "typo: no such folder" in other.stderr
    # and the next ingest makes the whole store
    assert _start(logs, store).wait(120) == 0
    assert len(rows_of(store)) == FILES * ROWS


def test_store_check_during_an_ingest_counts_no_leftovers(logs, tmp_path):
    """A `store check` from cron while an ingest (or a watch round) writes the store called
    the parts in progress leftovers of an interrupted run and exited 1. Here this process
    holds the lock, as a writer does, with a part in progress."""
    from conftest import LOGANALYZER

    store = tmp_path / "store"
    assert _start(logs, store).wait(120) == 0
    part = next(store.glob("tracking/*/*.parquet"))
    in_progress = part.with_name("feedface-0.parquet.123-abcd.tmp")

    def check():
        return subprocess.run([LOGANALYZER, "store", "check", "-s", str(store)],
                              capture_output=True, text=True, timeout=120)  # fmt: skip

    with Store(store).lock():
        in_progress.write_bytes(b"being written")
        busy = check()
    assert busy.returncode == 0, busy.stdout + busy.stderr
    assert f"another process holds the store's lock (pid {os.getpid()})" in busy.stdout
    assert "left by an interrupted run" not in busy.stdout
    idle = check()  # the writer gone, its part is a leftover
    assert idle.returncode == 1
    assert "temporary file (left by an interrupted run)" in idle.stdout
    assert "holds the store's lock" not in idle.stdout


def test_second_ingest_waits_for_the_lock(logs, tmp_path):
    store = tmp_path / "store"
    first = _start(logs, store)
    time.sleep(0.3)
    second = _start(logs, store)
    assert first.wait(120) == 0 and second.wait(120) == 0
    rows = rows_of(store)
    assert len(rows) == FILES * ROWS
    assert max(Counter((r["file"], r["line"]) for r in rows).values()) == 1


def test_kill_loop_at_random_points(logs, tmp_path):
    """Many kills at random moments, each followed by a new run; then one run to the end."""
    import random

    rng = random.Random(7)
    # a random moment in each eighth of the 0.2-2.5 s the kills fall in (early and late ones
    # each time, fewer runs), in random order
    moments = [0.2 + (i + rng.random()) * 2.3 / 8 for i in range(8)]
    rng.shuffle(moments)
    store = tmp_path / "store"
    kills = 0
    for moment in moments:
        proc = _start(logs, store)
        time.sleep(moment)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            kills += 1
        elif proc.wait() == 0:  # it finished first (a fast machine): the next run starts anew,
            shutil.rmtree(store)  # or it would find nothing left to do and no moment to kill
            continue
        proc.wait()
        # after every kill the store is consistent: whole files only, no duplicates
        rows = rows_of(store) if (store / "manifest.parquet").exists() else []
        assert all(n == ROWS for n in Counter(r["file"] for r in rows).values())
        assert max(Counter((r["file"], r["line"]) for r in rows).values(), default=1) == 1
        if rows:  # no damage, at most leftovers that the next run removes
            check = Store(store).check()
            assert check["missing"] == check["unreadable"] == check["row_counts"] == []
    assert kills >= 4
    _start(logs, store).wait(120)  # the command writes rollups too
    check = Store(store).check()
    assert check["ok"]  # rollups included: no leftovers of theirs
    assert check["rollups"]["current"] >= 1
    assert check["rollups"]["stale"] == check["rollups"]["missing"] == 0
    rows = rows_of(store)
    keys = Counter((r["file"], r["line"]) for r in rows)
    lost, duplicated = FILES * ROWS - len(keys), sum(n - 1 for n in keys.values())
    print(f"kill loop: {kills} kills, {lost} rows lost, {duplicated} duplicated")
    assert (lost, duplicated) == (0, 0)


def test_a_killed_holders_lock_is_no_lock(logs, tmp_path):
    store = tmp_path / "store"
    proc = _start(logs, store)
    deadline = time.monotonic() + 30
    while not (store / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    started = time.monotonic()
    with Store(store).lock(wait=0):  # taken at once: the lock died with its holder
        pass
    assert time.monotonic() - started < 1


def test_read_only_store_is_refused_clearly(logs, tmp_path, monkeypatch):
    import errno

    store = tmp_path / "store"
    ingest([next(logs.rglob("*.LOG"))], store)
    before = sorted((r["file"], r["line"]) for r in rows_of(store))
    real_open = open

    def read_only(path, mode="r", *a, **k):  # as a read-only mount answers (root ignores chmod)
        if str(path).startswith(str(store)) and any(c in mode for c in "wax+"):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr("builtins.open", read_only)
    with pytest.raises(StoreError, match="Read-only file system"):
        ingest([logs], store)
    monkeypatch.setattr("builtins.open", real_open)
    assert sorted((r["file"], r["line"]) for r in rows_of(store)) == before
    assert Store(store).check()["ok"]


def test_a_worker_killed_mid_ingest_loses_only_its_files(logs, tmp_path):
    """A worker process killed (the kernel's OOM killer, a user) fails the files it and the
    pool's others were reading, each named, in one line each; those read before are kept,
    the store stays consistent and the next run reads the rest."""
    store = tmp_path / "store"
    env = {**os.environ, "LOGANALYZER_FAILPOINT": "reading MSGTRK2026030212-1.LOG"}
    args = [sys.executable, "-m", "loganalyzer", "ingest", str(logs), "--store", str(store)]
    killed = subprocess.run([*args, "--workers", "2", "--json"], capture_output=True, text=True,
                            env=env, timeout=300)  # fmt: skip
    assert killed.returncode == 1 and "Traceback" not in killed.stderr, killed.stderr
    import json

    got = json.loads(killed.stdout)
    lost = [f for f in got["details"] if f["status"] == "error"]
    assert lost and all("a worker process ended abruptly" in f["reason"] for f in lost)
    assert any(f["path"].endswith("MSGTRK2026030212-1.LOG") for f in lost)
    check = Store(store).check()
    assert check["ok"], check["problems"]
    again = subprocess.run(args, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert len(rows_of(store)) == FILES * ROWS
    assert Counter(r["message_id"] for r in rows_of(store)).most_common(1)[0][1] == 1


@pytest.mark.parametrize("when", ["first-temp-part", "first-part"])
def test_ctrl_c_mid_ingest_says_so_in_one_line_and_a_rerun_completes(logs, tmp_path, when):
    # Built: a Ctrl-C ended the ingest silently with 130 (Typer's way), or, inside a DuckDB
    # query, as "unexpected RuntimeError: Query interrupted" with exit 1
    from conftest import LOGANALYZER

    store = tmp_path / "store"
    proc = subprocess.Popen(
        [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--workers", "2"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_ctrl_c_default,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        temp = list(store.glob("tracking/*/*.tmp")) if store.exists() else []
        if temp if when == "first-temp-part" else _done_parts(store) if store.exists() else 0:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the ingest finished before Ctrl-C"
    # to the command alone, mid-ingest (test_portability sends a terminal's Ctrl-C, to the
    # whole process group, while spawned workers start)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.splitlines() == [
        "error: interrupted (Ctrl-C): the store holds what was finished; run the command again"
    ]
    assert ingest([logs], store).exit_code == 0
    keys = Counter((r["file"], r["line"]) for r in rows_of(store))
    assert len(keys) == FILES * ROWS and max(keys.values()) == 1


def _ctrl_c_default() -> None:
    # a run started in the background (nohup, CI) ignores Ctrl-C, and so would the command
    signal.signal(signal.SIGINT, signal.SIG_DFL)


#: A pool whose reader waits for the rest of a result a worker never sent, then stopped as a
#: Ctrl-C stops it: the process must end (it waited for that reader for ever).
_HALF_SENT = """
import multiprocessing as mp, os, struct, sys, time
from loganalyzer.ingest import _pool, _stop
if __name__ == "__main__":
    before = set(mp.active_children())
    pool = _pool(2)
    pool.submit(time.sleep, 0).result()  # the workers and the pool's reader have started
    # what a worker ended mid-send leaves in the pipe: a length, part of the message
    os.write(pool._result_queue._writer.fileno(), struct.pack("!i", 100_000) + b"x" * 10)
    time.sleep(0.5)
    _stop(pool, before)
    print("stopped", flush=True)
"""


def test_a_pool_stopped_with_a_result_half_sent_lets_the_process_end(tmp_path):
    # seen once: an ingest Ctrl-C'd (the whole group, as a terminal does) as a worker sent a
    # result hung for good after its one line, its pool's reader waiting for the rest
    script = tmp_path / "half.py"
    script.write_text(_HALF_SENT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0 and done.stdout == "stopped\n", done.stderr


def test_a_pool_broken_while_files_are_handed_out_fails_the_rest_in_words(monkeypatch):
    """A worker that died while the pool was still being handed its files made the next
    hand-out raise, and the ingest ended "unexpected BrokenProcessPool" with nothing kept
    (seen under load, the kill test above on a busy machine): the files not handed out fail
    as the killed worker's do, the finished ones are kept."""
    from concurrent.futures import Future
    from concurrent.futures.process import BrokenProcessPool

    ingest_module = importlib.import_module("loganalyzer.ingest")

    class Broken:
        """A pool whose first hand-out finishes and the next finds a worker dead."""

        def __init__(self) -> None:
            self.handed = 0

        def submit(self, fn, bundle):
            self.handed += 1
            if self.handed > 1:
                raise BrokenProcessPool("A child process terminated abruptly")
            done = Future()
            done.set_result([f"read {t}" for t in bundle])
            return done

        def shutdown(self, *args, **kwargs) -> None:
            pass

    monkeypatch.setattr(ingest_module, "_pool", lambda workers: Broken())
    monkeypatch.setattr(ingest_module, "bundles", lambda tasks, workers: [[t] for t in tasks])
    got = list(ingest_module._run(["a", "b", "c"], workers=2))
    assert got[0] == ["read a"]
    assert [[(r.task, r.error) for r in x] for x in got[1:]] == [
        [("b", ingest_module.WORKER_DIED)],
        [("c", ingest_module.WORKER_DIED)],
    ]
