"""Incidents that ``synth --incidents`` adds to the first day, for watch's rules and the
report's insights to find: a next hop down for hours that then recovers (its messages wait
in the queue and are delivered once it answers), and a password-guessing burst from one
remote IP against a receive connector."""

from __future__ import annotations

from loganalyzer.synth.clock import HOUR_MS

MINUTE = 60_000
OUTAGE_FROM_H, OUTAGE_HOURS, OUTAGE_MESSAGES = 9, 3, 30
BURST_AT_H, BURST_SESSIONS, BURST_EVERY_MS = 15, 40, 12_000  # 40 sessions in 8 minutes


def outage(day_start: int) -> tuple[int, int]:
    """When the next hop is down: from, until (ms)."""
    start = day_start + OUTAGE_FROM_H * HOUR_MS
    return start, start + OUTAGE_HOURS * HOUR_MS


def events(day_start: int) -> list[tuple[int, str, str]]:
    """(time, kind, variant) of the incidents of a day, in time order: messages to the
    next hop that is down (in its first two hours), and the burst of attacker 0."""
    start, _ = outage(day_start)
    spread = (OUTAGE_HOURS - 1) * HOUR_MS // OUTAGE_MESSAGES
    found = [(start + i * spread + 7_000, "down", "outage") for i in range(OUTAGE_MESSAGES)]
    burst = day_start + BURST_AT_H * HOUR_MS
    found += [(burst + i * BURST_EVERY_MS, "auth", "0") for i in range(BURST_SESSIONS)]
    return sorted(found)
