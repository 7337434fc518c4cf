"""`loganalyzer watch` stopped by Ctrl-C leaves the store's per-day aggregates up to date,
though its rounds deferred them (``--refresh-every``)."""

from __future__ import annotations

import json
import queue
import shutil
import signal
import subprocess
import threading

import pytest
from conftest import LOGANALYZER
from test_watch import tomorrows_logs


def _lines(stream) -> queue.Queue:
    """The lines of ``stream`` as they come, stripped; "" at its end."""
    got: queue.Queue = queue.Queue()

    def read() -> None:
        for line in stream:
            got.put(line.strip())
        got.put("")

    threading.Thread(target=read, daemon=True).start()
    return got


def _stale(store: str) -> int:
    done = subprocess.run(
        [LOGANALYZER, "store", "check", "--store", store, "--json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)["rollups"]["stale"]


@pytest.mark.skipif(not hasattr(signal, "SIGINT"), reason="no SIGINT")
@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_brings_the_aggregates_a_round_deferred_up_to_date(tmp_path, presses):
    """A round of today's rows defers the aggregates (every 15 minutes by default): stopped
    then, the watch left them out of date (`store check`: "rollups out of date"). Now it
    builds them, saying so; a second Ctrl-C meanwhile stops at once, the store consistent."""
    logs, watched, store, _ = tomorrows_logs(tmp_path)
    files = sorted(logs.rglob("*.LOG"))

    def copy(part: list) -> None:
        for f in part:
            target = watched / f.relative_to(logs)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(f, target)

    copy(files[: len(files) // 2])
    proc = subprocess.Popen(
        [LOGANALYZER, "watch", str(watched), "--store", store, "--interval", "1", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = _lines(proc.stdout), _lines(proc.stderr)
    try:
        assert json.loads(out.get(timeout=180))["aggregates"] == "refreshed"  # the first round
        copy(files[len(files) // 2 :])
        while True:
            round_ = json.loads(out.get(timeout=180))
            if round_["ingested"]["rows"]:
                break
        assert round_["aggregates"] == "deferred", round_
        proc.send_signal(signal.SIGINT)
        said = [err.get(timeout=180)]
        while said[-1] and not said[-1].startswith("bringing"):
            said.append(err.get(timeout=180))
        assert said[-1] == (
            "bringing the store's per-day aggregates up to date (Ctrl-C: stop at once)"
        )
        if presses == 2:
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=300)
    finally:
        proc.kill()
    rest = []
    while rest[-1:] != [""]:
        rest.append(err.get(timeout=60))
    rest.pop()
    if presses == 1 or proc.returncode == 0:  # (the second came after the aggregates were built)
        assert proc.returncode == 0 and rest == ["watch stopped"], rest
        assert _stale(store) == 0
    else:
        assert proc.returncode == 1 and rest == [
            "watch stopped before the store's per-day aggregates were up to date; reports read "
            "the rows meanwhile; the next ingest brings them up to date"
        ], rest
        _stale(store)  # a consistent store (store check exits 0)
