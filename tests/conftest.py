"""Shared fixtures: the sample corpus, a temporary store, the CLI runner."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
#: Portability mode (``LOGANALYZER_PORTABILITY=1``, see tests/portability/sitecustomize.py):
#: spawn, no fork, no fcntl/resource/termios for loganalyzer's code, in this process and in
#: every process the tests start (they find the folder on PYTHONPATH).
PORTABILITY = os.environ.get("LOGANALYZER_PORTABILITY") == "1"
if PORTABILITY:  # before loganalyzer is imported
    _folder = str(ROOT / "tests" / "portability")
    _paths = os.environ.get("PYTHONPATH", "").split(os.pathsep)
    if _folder not in _paths:
        os.environ["PYTHONPATH"] = os.pathsep.join([_folder, *filter(None, _paths)])
    import importlib.util

    _spec = importlib.util.spec_from_file_location("portability", f"{_folder}/sitecustomize.py")
    _mode = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(_mode)  # installs it (once per process)

import pytest  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

#: The test files the portability-mode run runs (CI's second run, within its time budget):
#: those whose processes the mode changes, started or stopped (ingest's workers, kills, Ctrl-C,
#: watch's rounds and signals, the demo, the command's contract) and the store's lock taken
#: side by side (compaction, prune, check). The others run one process reading the store, or
#: the same workers and lock as these (forget, the cluster's own processes, archives and
#: damaged files, filesystems, parsing, reports, pages, S3's lease): the mode changes nothing
#: they do that these do not.
IN_BOTH_MODES = (
    "test_bundles.py",
    "test_cli_mistakes.py",
    "test_compact.py",
    "test_demo.py",
    "test_kill.py",
    "test_portability.py",
    "test_prune.py",
    "test_store_check.py",
    "test_watch.py",
)


#: Tests of those files the portability-mode run leaves out: the slowest whose processes and
#: lock are the same as in tests it keeps (they test alert rules, zones, SQL output, errors
#: met before any worker starts, or what a file's content makes of it; the kill loop's
#: kills are those of the kill tests kept). Each runs outside the mode.
OUTSIDE_THE_MODE_ONLY = (
    "test_bundles.py::test_a_kill_between_two_files_of_a_bundle_lists_none_of_them",
    "test_kill.py::test_kill_loop_at_random_points",
    "test_watch.py::test_a_log_value_cannot_retitle_the_terminal_or_cut_the_status_line",
    "test_watch.py::test_a_server_silent_for_more_than_a_day_stays_reported",
    "test_watch.py::test_once_follows_the_monitoring_plugin_convention",
    "test_watch.py::test_a_round_of_todays_rows_brings_the_aggregates_up_to_date_every_refresh_interval",
    "test_watch.py::test_an_alert_no_notifier_could_send_is_sent_next_round",
    "test_watch.py::test_hours_that_land_at_once_raise_the_alert_of_a_burst_early_in_them_once",
    "test_watch.py::test_watch_raises_each_alert_once_and_resolves_it",
    "test_watch.py::test_every_notice_of_a_round_is_tried_and_what_failed_is_sent_next_round",
    "test_watch.py::test_once_gives_up_on_a_hung_webhook_in_seconds",
)


def in_the_mode(item: pytest.Item) -> bool:
    """Whether the portability-mode run runs ``item``."""
    name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
    return item.path.name in IN_BOTH_MODES and name not in OUTSIDE_THE_MODE_ONLY


#: The files whose tests take longest (processes that wait for rounds, servers, kills),
#: run first: xdist hands out the rest as workers free up, so no long test starts last and
#: keeps one worker busy after the other has finished.
SLOW_FIRST = (
    "test_watch.py",
    "test_s3.py",
    "test_cluster.py",
    "test_kill.py",
    "test_rollups.py",
    "test_damaged.py",
    "test_forget.py",
)


def pytest_configure(config):
    """The package's bytecode written once, before the run: the suite starts thousands of
    ``loganalyzer`` processes, and with PYTHONDONTWRITEBYTECODE set each compiled every
    module of the package again (a tenth of a second each)."""
    if hasattr(config, "workerinput"):  # an xdist worker: the controller has done it
        return
    import compileall

    for package in ("loganalyzer", "eventcodes"):
        compileall.compile_dir(ROOT / package, quiet=2)


def pytest_collection_modifyitems(config, items):
    if PORTABILITY:
        left = [i for i in items if not in_the_mode(i)]
        if left:
            config.hook.pytest_deselected(items=left)
            items[:] = [i for i in items if in_the_mode(i)]
    first = {name: n for n, name in enumerate(SLOW_FIRST)}
    items.sort(key=lambda i: first.get(i.path.name, len(first)))  # (stable: in file order)


from loganalyzer.cli import app  # noqa: E402

#: Real log samples written by others (tests/corpus/PROVENANCE.md); a copy of the team's
#: shared corpus, kept in the repository so that a clean clone tests the same files.
CORPUS = ROOT / "tests" / "corpus"
#: The team's shared corpus, when this checkout sits beside it.
SHARED_CORPUS = ROOT.parent / "shared" / "corpus"
IN_CI = os.environ.get("CI", "").lower() == "true"
#: The installed ``loganalyzer`` command, this Python's own entry point first: what a user runs.
LOGANALYZER = shutil.which("loganalyzer", path=str(Path(sys.executable).parent)) or shutil.which(
    "loganalyzer"
)


def built_once(tmp_path_factory: pytest.TempPathFactory, name: str, build) -> Path:
    """The folder ``name``, made by ``build(folder)`` once per test run: xdist's workers share
    it (the first to ask builds it, the others wait for it) instead of each building its own.
    What is built there must be read only."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, above each worker's own
    folder = base / f"shared-{name}"
    with FileLock(f"{folder}.lock"):
        if not (folder / ".built").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".built").touch()
    return folder


def corpus_files(*folders: str, pattern: str = "*") -> list[Path]:
    """Sample files of the given corpus folders (all when none is given)."""
    roots = [CORPUS / f for f in folders] if folders else [CORPUS]
    return sorted(p for r in roots for p in r.rglob(pattern) if p.is_file() and p.suffix != ".md")


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    return tmp_path / "store"


def run_cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """The installed ``loganalyzer`` run with ``args``, as a user runs it."""
    return subprocess.run([LOGANALYZER, *args], capture_output=True, text=True, timeout=timeout)


def report_json(store: Path, *args: str) -> tuple[dict, str]:
    """``report daily --json`` of ``store``: its JSON and what it said on stderr."""
    done = run_cli("report", "daily", "--store", str(store), "--json", *args)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@pytest.fixture
def cli():
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(app, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


def open_in_chromium(path: Path, profile: Path, width: int = 1280):
    """``path`` opened in a new headless Chromium (its profile in ``profile``): a Page. Close
    it after use. Without a Chromium the test skips, under CI=true it fails."""
    from chromium import Page, find_chromium

    exe = find_chromium()
    if exe is None:
        message = "no chromium: install it (apt-get install -y chromium)"
        if IN_CI:
            pytest.fail(message)
        pytest.skip(message)
    page = Page(exe, profile)
    page.send(
        "Emulation.setDeviceMetricsOverride",
        width=width,
        height=900,
        deviceScaleFactor=1,
        mobile=width < 600,
    )
    page.open(path.as_uri())
    return page


@pytest.fixture
def browser(tmp_path):
    """Opens pages in headless Chromium: ``browser(path, width=1280)`` gives a Page."""
    pages = []

    def open_page(path: Path, width: int = 1280):
        pages.append(open_in_chromium(path, tmp_path / f"profile{len(pages)}", width))
        return pages[-1]

    yield open_page
    for page in pages:
        page.close()
