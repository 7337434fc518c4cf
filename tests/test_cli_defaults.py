"""The command's defaults and the figures its help states are the library's.

The CLI builds its help without importing the heavy modules that own these values (pandas for
the report, the watch's rules), so it states them as literals; these tests hold each literal
to its owner.
"""

from __future__ import annotations

import inspect
import re

import click
import typer

from loganalyzer import cli
from loganalyzer import watch as w
from loganalyzer.report import daily_report, long
from loganalyzer.report.sections import history
from loganalyzer.times import parse_duration


def _options(*path: str) -> dict[str, click.Parameter]:
    command = typer.main.get_command(cli.app)
    for name in path:
        command = command.commands[name]
    return {p.name: p for p in command.params}


def test_report_defaults_are_daily_reports():
    options = _options("report", "daily")
    library = inspect.signature(daily_report).parameters
    for name in ("expiration", "vip_latency", "quiet_days", "top", "limit"):
        if name in options:
            assert options[name].default == library[name].default, name
    assert f"from {long.ROLLUP_DAYS} days up" in options["rollups"].help
    assert f"(1 to {history.QUIET_DAYS_MAX})" in options["quiet_days"].help
    assert options["quiet_days"].default == history.QUIET_DAYS


def test_watch_defaults_are_the_watchs():
    options = _options("watch")
    assert options["interval"].default == inspect.signature(w.watch).parameters["interval"].default
    assert parse_duration(options["refresh_every"].default, "x") == w.REFRESH_EVERY
    said = re.search(r"notifying takes (\d+(?:\.\d+)?) s at most", options["once"].help)
    assert said and float(said.group(1)) == w.ONCE_NOTIFY_SECONDS, options["once"].help
