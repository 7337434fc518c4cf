"""Windows, macOS and Linux: what Linux can prove of the code that runs on all three.

Portability mode (tests/portability/sitecustomize.py) runs a process as on Windows as far as
Linux can; CI runs the whole suite a second time in it. These tests check the mode itself,
Windows path forms (with ``PureWindowsPath`` rules), logs another program holds open, the
store's lock and the pool's workers.
"""

from __future__ import annotations

import json
import ntpath
import os
import shlex
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import suppress
from pathlib import Path, PureWindowsPath

import psutil
import pytest
from conftest import CORPUS, LOGANALYZER, PORTABILITY, ROOT
from logfiles import row, write_log
from stores import content, synth_logs

import loganalyzer as la
from loganalyzer import sources, worker
from loganalyzer.ingest import BUSY, discover
from loganalyzer.sources import os_path, user_path
from loganalyzer.store import Store, StoreError
from loganalyzer.worker import folder_server

MODE = ROOT / "tests" / "portability"


#: A test that starts its processes in the mode itself: run in the first pass only (CI's
#: second pass, in the mode, would run it again just the same).
FIRST_PASS_ONLY = pytest.mark.skipif(
    PORTABILITY, reason="starts its processes in the mode: the run outside the mode does it"
)


def portable_env() -> dict[str, str]:
    """The environment of a process started in portability mode."""
    paths = [str(MODE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "LOGANALYZER_PORTABILITY": "1", "PYTHONPATH": os.pathsep.join(paths)}


def run_portable(code: str) -> str:
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=portable_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@FIRST_PASS_ONLY
def test_the_mode_takes_from_loganalyzer_what_windows_lacks():
    out = run_portable(
        """
        import multiprocessing, os
        for code in ("import fcntl", "import resource", "import termios",
                     "import os; os.register_at_fork",
                     "import importlib; importlib.import_module('termios')"):
            try:
                exec(code, {"__name__": "loganalyzer.probe"})
                print("imported", code)
            except (ImportError, AttributeError) as exc:
                print(type(exc).__name__)
        import fcntl, resource  # the standard library's and other libraries' own imports
        print(hasattr(os, "fork"), multiprocessing.get_start_method())
        """
    )
    assert out.split("\n") == [
        "ModuleNotFoundError",
        "ModuleNotFoundError",
        "ModuleNotFoundError",
        "AttributeError",
        "ModuleNotFoundError",
        "False spawn",
        "",
    ]


@FIRST_PASS_ONLY
def test_every_module_imports_in_portability_mode():
    """fcntl at module level made loganalyzer.store.location (every store command) fail on
    Windows."""
    out = run_portable(
        """
        import importlib, pkgutil, loganalyzer, eventcodes
        failed = []
        for pkg in (loganalyzer, eventcodes):
            for m in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
                try:
                    importlib.import_module(m.name)
                except Exception as exc:
                    failed.append(f"{m.name}: {type(exc).__name__}: {exc}")
        print(failed)
        """
    )
    assert out.strip() == "[]"


@pytest.mark.skipif(not PORTABILITY, reason="looks at the mode from inside it (CI's second run)")
def test_the_mode_reaches_every_process_the_tests_start():
    assert not hasattr(os, "fork")
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import multiprocessing as m, os; print(hasattr(os, 'fork'), m.get_start_method())",
        ],
        capture_output=True,
        text=True,
    )
    assert out.stdout == "False spawn\n"


@FIRST_PASS_ONLY
def test_the_readme_line_runs_the_tests_in_the_mode():
    line = next(
        t
        for t in (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
        if t.startswith("LOGANALYZER_PORTABILITY=1 python -m pytest")
    )
    assignment, python, *args = shlex.split(line)
    name, value = assignment.split("=")
    assert (python, args) == ("python", ["-m", "pytest", "-n", "auto"])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", name)}
    inner = "tests/test_portability.py::test_the_mode_reaches_every_process_the_tests_start"
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-rs", inner],
        env={**env, name: value},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0 and "1 passed" in out.stdout, out.stdout + out.stderr


@pytest.fixture(scope="module")
def logs(tmp_path_factory) -> Path:
    return synth_logs(tmp_path_factory.mktemp("portable") / "logs", days=1, messages=40)


@FIRST_PASS_ONLY
def test_spawned_workers_ingest_what_a_local_ingest_does(logs, tmp_path):
    """The command, with two workers started by spawn (fork does not exist in the mode)."""
    here = Store(tmp_path / "here")
    la.ingest([logs], here, workers=1)
    spawned = tmp_path / "spawned"
    out = subprocess.run(
        [LOGANALYZER, "ingest", str(logs), "--store", str(spawned), "--workers", "2", "--json"],
        env=portable_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    assert content(Store(spawned)) == content(here)


def _big_logs(folder: Path, files: int = 12, rows: int = 4000) -> Path:
    for f in range(files):
        write_log(
            folder / f"EX{f % 3:02d}" / f"MSGTRK20260302{f:02d}-1.LOG",
            [row(f * rows + i, message_subject=f"file {f}, row {i}") for i in range(rows)],
        )
    return folder


def _workers(parent: psutil.Process) -> list[psutil.Process]:
    """The pool's workers below ``parent`` (not multiprocessing's resource tracker)."""
    out = []
    for child in parent.children(recursive=True):
        with suppress(psutil.Error):
            if "resource_tracker" not in " ".join(child.cmdline()):
                out.append(child)
    return out


@pytest.mark.parametrize("mode", ["default", pytest.param("portability", marks=FIRST_PASS_ONLY)])
def test_workers_end_when_their_parent_is_killed(tmp_path, mode):
    logs = _big_logs(tmp_path / "logs")
    env = portable_env() if mode == "portability" else None
    proc = subprocess.Popen(
        [LOGANALYZER, "ingest", str(logs), "--store", str(tmp_path / "s"), "--workers", "2"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    parent = psutil.Process(proc.pid)
    deadline = time.monotonic() + 60
    workers: list[psutil.Process] = []
    while time.monotonic() < deadline and proc.poll() is None and len(workers) < 2:
        workers = _workers(parent)
        time.sleep(0.05)
    assert len(workers) >= 2, "the ingest ended before its workers started"
    children = parent.children(recursive=True)
    os.kill(proc.pid, signal.SIGKILL)  # the parent alone, not its process group
    proc.wait()
    gone, alive = psutil.wait_procs(children, timeout=20)
    for p in alive:
        p.kill()
    assert alive == []


def test_an_interruption_while_the_pool_starts_leaves_no_worker_waiting(tmp_path):
    """Ctrl-C between the pool's first and second worker (a watch's second Ctrl-C hung so in
    CI): the pool never recorded the worker it started, which waited for work for ever, and
    the process for it at its exit. The interrupted ingest ends its workers and exits."""
    logs = _big_logs(tmp_path / "logs", files=6, rows=10)
    code = f"""
        import signal
        from concurrent.futures import ProcessPoolExecutor
        import loganalyzer as la

        signal.signal(signal.SIGTERM, lambda *_: None)  # as watch's: a forked worker has it too
        spawn, started = ProcessPoolExecutor._spawn_process, []

        def interrupted(pool):
            if started:
                raise KeyboardInterrupt  # as the signal handler raises it, here
            started.append(spawn(pool))

        ProcessPoolExecutor._spawn_process = interrupted
        try:
            la.ingest([{str(logs)!r}], {str(tmp_path / "s")!r}, workers=2)
        except KeyboardInterrupt:
            print("interrupted")
    """
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        for p in psutil.Process(proc.pid).children(recursive=True):
            p.kill()
        proc.kill()
        pytest.fail("the interrupted ingest did not exit: it waits for a worker")
    assert proc.returncode == 0 and out.strip() == "interrupted", err


INTERRUPTED = (
    "error: interrupted (Ctrl-C): the store holds what was finished; run the command again"
)


@FIRST_PASS_ONLY
@pytest.mark.skipif(not hasattr(os, "killpg"), reason="sends SIGINT to a process group")
def test_a_terminals_ctrl_c_while_spawned_workers_import_is_said_in_one_line(tmp_path):
    """A terminal's Ctrl-C reaches the command's whole process group: a spawned worker still
    importing (for about a second, before the pool's initialiser sets up its Ctrl-C) printed
    its own KeyboardInterrupt traceback under the command's one line. Each Ctrl-C comes a
    moment after the first worker process appears, while it imports."""
    logs = _big_logs(tmp_path / "logs", files=6, rows=2000)
    for i, after in enumerate((0.2, 0.4)):
        store = tmp_path / f"s{i}"
        proc = subprocess.Popen(
            [LOGANALYZER, "ingest", str(logs), "--store", str(store), "--workers", "2"],
            env=portable_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
            # Ctrl-C's default handling (a run started in the background ignores it)
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and proc.poll() is None and not _spawned(parent):
            time.sleep(0.005)
        time.sleep(after)
        children = parent.children(recursive=True)
        assert proc.poll() is None and _spawned(parent), "no worker was starting"
        os.killpg(proc.pid, signal.SIGINT)  # as a terminal's Ctrl-C: the command and workers
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130 and err.splitlines() == [INTERRUPTED], err
        _, alive = psutil.wait_procs(children, timeout=10)
        for p in alive:
            p.kill()
        assert alive == [], "workers outlived the interrupted ingest"
        check = subprocess.run([LOGANALYZER, "store", "check", "--store", str(store)],
                               capture_output=True, text=True, timeout=60)  # fmt: skip
        assert check.returncode == 0, check.stdout + check.stderr


def _spawned(parent: psutil.Process) -> bool:
    """Whether ``parent`` has started a spawned pool worker."""
    for child in parent.children():
        with suppress(psutil.Error):
            if "spawn_main" in " ".join(child.cmdline()):
                return True
    return False


class SharingViolation(PermissionError):
    """What Windows raises for a file another program holds open without sharing it."""

    winerror = 32


def test_a_log_held_open_without_sharing_is_read_next_run(tmp_path, monkeypatch):
    logs = _big_logs(tmp_path / "logs", files=3, rows=10)
    held = str(next(logs.glob("EX01/*.LOG")))
    real = sources.open_shared

    def sharing(path):
        if os.fspath(path) == held:
            raise SharingViolation(13, "The process cannot access the file", held)
        return real(path)

    monkeypatch.setattr(sources, "open_shared", sharing)
    first = la.ingest([logs], tmp_path / "store", workers=1)
    assert first.exit_code == 0  # not an error: the file is read once it can be
    assert [(f.path, f.status, f.reason) for f in first.files if f.path == held] == [
        (held, "skipped", BUSY)
    ]
    assert first.count("ingested") == 2
    monkeypatch.setattr(sources, "open_shared", real)
    again = la.ingest([logs], tmp_path / "store", workers=1)
    assert [(f.path, f.status, f.rows) for f in again.files if f.status == "ingested"] == [
        (held, "ingested", 10)
    ]


def test_a_log_taken_between_planning_and_reading_is_read_next_run(tmp_path, monkeypatch):
    logs = _big_logs(tmp_path / "logs", files=2, rows=10)
    held = str(next(logs.glob("EX01/*.LOG")))
    real = worker.open_source

    def sharing(name):
        if name == held:
            raise SharingViolation(13, "The process cannot access the file", held)
        return real(name)

    monkeypatch.setattr(worker, "open_source", sharing)
    first = la.ingest([logs], tmp_path / "store", workers=1)
    assert first.exit_code == 0
    assert {f.path: (f.status, f.reason) for f in first.files}[held] == ("skipped", BUSY)
    monkeypatch.setattr(worker, "open_source", real)
    again = la.ingest([logs], tmp_path / "store", workers=1)
    assert [f.path for f in again.files if f.status == "ingested"] == [held]


def test_a_waiting_ingest_names_the_holder_and_a_killed_holders_lock_is_free(tmp_path):
    store = tmp_path / "store"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from loganalyzer.store import Store\n"
            f"with Store({str(store)!r}).lock():\n    print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline() == "held\n"
    with pytest.raises(StoreError) as exc, Store(store).lock(wait=0.3):
        pass
    assert str(exc.value) == (
        f"{store} is locked by another loganalyzer process (pid {holder.pid}); "
        "try again when it has finished"
    )
    holder.kill()
    holder.wait()
    with Store(store).lock(wait=0):  # the OS released it with its holder
        pass


# -- Windows path forms -------------------------------------------------------------------
LONG = "x" * 250


@pytest.mark.parametrize(
    ("given", "to_the_os"),
    [
        (r"D:\logs\EX02\MSGTRK2026030210-1.LOG", r"D:\logs\EX02\MSGTRK2026030210-1.LOG"),
        (r"\\ex01\logs\MessageTracking", r"\\ex01\logs\MessageTracking"),
        ("D:/logs/EX02/**/*.LOG", "D:/logs/EX02/**/*.LOG"),
        (rf"D:\logs\{LONG}\a.LOG", rf"\\?\D:\logs\{LONG}\a.LOG"),
        (f"D:/logs/{LONG}/a.LOG", rf"\\?\D:\logs\{LONG}\a.LOG"),
        (rf"D:\logs\EX02\..\{LONG}\a.LOG", rf"\\?\D:\logs\{LONG}\a.LOG"),
        (rf"\\ex01\logs\{LONG}\a.LOG", rf"\\?\UNC\ex01\logs\{LONG}\a.LOG"),
        (rf"\\?\D:\logs\{LONG}\a.LOG", rf"\\?\D:\logs\{LONG}\a.LOG"),
    ],
)
def test_windows_paths_reach_the_os_whole(given, to_the_os):
    assert os_path(given, windows=True) == to_the_os
    assert os_path(given, windows=False) == given  # elsewhere the OS takes any length
    if to_the_os != given:  # the store and the reports keep the path's own form
        assert user_path(to_the_os) == ntpath.normpath(given)


@pytest.mark.parametrize(
    ("path", "server"),
    [
        (r"\\ex01\logs\MessageTracking\MSGTRK2026030210-1.LOG", "EX01"),
        (r"\\ex01\logs\ProtocolLog\SmtpReceive\RECV2026030210-1.LOG", "EX01"),
        ("//ex01/logs/ProtocolLog/SmtpSend/SEND2026030210-1.LOG", "EX01"),
        (r"\\fs1\exchange\EX03\MessageTracking\MSGTRK2026030210-1.LOG", "EX03"),
        (r"D:\logs\EX02\MessageTracking\MSGTRK2026030210-1.LOG", "EX02"),
        ("D:/logs/EX02/2026/MSGTRK2026030210-1.LOG", "2026"),
        # in an archive: its folders, then those holding it (never the archive's name)
        (r"D:\backup\ex13-logs.zip!EX13/MessageTracking/MSGTRK2026030210-1.LOG", "EX13"),
        (r"D:\logs\EX02\MessageTracking\old.zip!MSGTRK2026030210-1.LOG", "EX02"),
        (r"\\fs1\logs\all.tar.gz!./MessageTracking/MSGTRK2026030210-1.LOG", "FS1"),
        (
            r"C:\Program Files\Microsoft\Exchange Server\V15\TransportRoles\Logs\FrontEnd"
            r"\ProtocolLog\SmtpReceive\RECV2026030210-1.LOG",
            None,
        ),
    ],
)
def test_the_server_of_a_windows_path(path, server):
    assert folder_server(path, PureWindowsPath) == server


def test_double_star_globs_match_every_depth(tmp_path):
    for rel in ("a.LOG", "EX01/b.LOG", "EX01/2026/03/c.LOG", "EX01/d.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    found, missing = discover([f"{tmp_path}/**/*.LOG"])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in found] == [
        "EX01/2026/03/c.LOG",
        "EX01/b.LOG",
        "a.LOG",
    ]
    assert missing == []


def test_a_path_with_brackets_in_its_name_is_that_path(tmp_path):
    """Folders like ``EX [old]`` or ``Logs [2024]`` are common on Windows: an ingest of one
    was taken for a glob pattern ("no file matches this pattern", exit 2). A name is a
    pattern only where no file or folder has it."""
    log = CORPUS / "exchange2007plus" / "kinesistap-ExchangeLogParserTest-msgtrk.log"
    folder = tmp_path / "EX [old]" / "MessageTracking"
    folder.mkdir(parents=True)
    shutil.copy(log, folder / "MSGTRK2017052217-1.LOG")
    single = tmp_path / "EX7" / "MSGTRK [copy].LOG"
    single.parent.mkdir()
    shutil.copy(CORPUS / "exchange2007plus" / "beats-bom8-ex2010-msgtrk.log", single)
    run = [LOGANALYZER, "ingest", "--store", str(tmp_path / "store"), "--json"]
    done = subprocess.run(
        [*run, folder.parent, single], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    got = {f["path"]: (f["status"], f["server"]) for f in json.loads(done.stdout)["details"]}
    assert got == {
        str(folder / "MSGTRK2017052217-1.LOG"): ("ingested", "EX [OLD]"),
        str(single): ("ingested", "EX7"),
    }
    # where no such path exists, the brackets are a pattern's
    (tmp_path / "EX8").mkdir()
    shutil.copy(log, tmp_path / "EX8" / "MSGTRK2017052217-1.LOG")
    done = subprocess.run([*run, tmp_path / "EX[89]"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    statuses = [(f["path"], f["status"]) for f in json.loads(done.stdout)["details"]]
    assert statuses == [(str(tmp_path / "EX8" / "MSGTRK2017052217-1.LOG"), "unchanged")]


def test_an_entry_without_rights_is_named_and_the_rest_is_read(tmp_path, monkeypatch):
    """A share's subfolder or file the account may not read (``\\\\ex01\\C$`` often has some)
    stopped the whole ingest with exit 2; it is one file's error now. Built: the operating
    system's refusal is simulated (the tests run as an account that may read everything)."""
    for rel in ("EX01/a.LOG", "EX01/locked.LOG", "EX01/closed/b.LOG", "EX02/c.LOG"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x")
    real_is_file, real_scandir = Path.is_file, os.scandir

    def is_file(self):
        if self.name == "locked.LOG":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    def scandir(path="."):
        if Path(path).name == "closed":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(Path, "is_file", is_file)
    monkeypatch.setattr(os, "scandir", scandir)
    found, missing = discover([tmp_path])
    assert [Path(f).relative_to(tmp_path).as_posix() for f in found] == ["EX01/a.LOG", "EX02/c.LOG"]
    assert sorted((Path(m.path).name, m.status, m.reason) for m in missing) == [
        ("closed", "error", "could not read: Permission denied"),
        ("locked.LOG", "error", "could not read: Permission denied"),
    ]
