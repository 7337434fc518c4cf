"""`loganalyzer watch` over logs that land after newer ones: their windows raise the alerts
they would have raised live, and what was told already is not told again."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_watch import _hour, run_once, synth_logs  # noqa: F401 - the fixture

BURST = ("auth_failures", "203.0.113.210")  # the password guessing of 15:00 (synth --incidents)


def _receive_15(rel: Path) -> bool:
    """The receive logs of 15:00."""
    return rel.parts[1:3] == ("ProtocolLog", "SmtpReceive") and _hour(rel) == 15


def _behind_ex01(rel: Path) -> bool:
    """The logs of the servers but EX01 from 11:00 on."""
    return rel.parts[0] != "EX01" and _hour(rel) >= 11


def _copy(src: Path, dst: Path, which) -> None:
    for f in sorted(src.rglob("*.LOG")):
        rel = f.relative_to(src)
        if which(rel):
            (dst / rel).parent.mkdir(parents=True, exist_ok=True)
            (dst / rel).write_bytes(f.read_bytes())


@pytest.mark.parametrize("late", [_receive_15, _behind_ex01])
def test_rows_older_than_the_newest_raise_the_alerts_of_their_windows(
    synth_logs,  # noqa: F811
    tmp_path,
    late,
):
    """A round read only the windows after the newest row it had seen: a burst in rows that
    landed later than newer ones raised nothing."""
    watched, store = tmp_path / "logs", str(tmp_path / "store")
    _copy(synth_logs, watched, lambda rel: not late(rel))
    first = run_once(str(watched), "--store", store, "--json")
    assert first.returncode in (0, 2), first.stdout + first.stderr
    told = [(n["status"], n["rule"], n["key"]) for n in json.loads(first.stdout)["notices"]]
    assert BURST not in {t[1:] for t in told}
    _copy(synth_logs, watched, late)
    landed = run_once(str(watched), "--store", store, "--json")
    data = json.loads(landed.stdout)
    said = [(n["status"], n["rule"], n["key"]) for n in data["notices"]]
    assert [s for s, *key in said if tuple(key) == BURST] == ["firing", "resolved"], said
    fired = next(n for n in data["notices"] if (n["rule"], n["key"]) == BURST)
    assert "2026-03-02T15:00" <= fired["at"] < "2026-03-02T15:15", fired
    # what the first round told (a server silent for a while) is not told again
    assert not {("firing", r, k) for _, r, k in told} & set(said), said
    again = run_once(str(watched), "--store", store, "--json")  # nothing new: nothing said
    assert json.loads(again.stdout)["notices"] == []
