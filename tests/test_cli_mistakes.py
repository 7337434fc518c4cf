"""The command contract, from the outside: every command run as a user runs it (the installed
``loganalyzer`` in a fresh process) with the mistakes users make. Each must end with its exit
code (2 for a wrong input, 1 for nothing found) and one line on stderr that names the wrong
value; never a traceback."""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import CORPUS, LOGANALYZER, PORTABILITY, built_once

import loganalyzer as la
from loganalyzer import Store
from loganalyzer.errors import BadInput, NotAStore
from loganalyzer.synth import generate

EML = CORPUS / "headers" / "mha_ForefrontAntispam-test_value.txt"
DAY = "2026-03-02"


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "LOGANALYZER_STORE": "", "COLUMNS": "100"}
    return subprocess.run(
        [str(LOGANALYZER), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict[str, str]:
    """A small store, an empty one, and the files users mistake for logs or stores (built
    once per run: the workers share them, and the mistakes' outcomes)."""
    root = built_once(tmp_path_factory, "mistakes", _world)
    logs = root / "logs"
    truth = [json.loads(t) for t in (logs / "truth.jsonl").read_text().splitlines()]
    return {
        "root": str(root),
        "store": str(root / "store"),
        "empty": str(root / "empty"),
        "logs": str(logs),
        "pdf": str(root / "doc.pdf"),
        "bin": str(root / "blob.bin"),
        "emptyfile": str(root / "empty.log"),
        "emptydir": str(root / "emptydir"),
        "pdfonly": str(root / "pdfonly"),
        "missing": str(root / "no-such-store"),
        "missingfile": str(root / "no-such-file.log"),
        "eml": str(EML),
        "mid": truth[0]["message_id"],
    }


def _world(root: Path) -> None:
    logs = root / "logs"
    generate(logs, servers=2, days=1, messages=40, seed=5)
    la.ingest([logs], root / "store", workers=1)
    Store(root / "empty").write_manifest({})  # a store that holds no file
    (root / "doc.pdf").write_bytes(b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj << /Type /Catalog >>\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 16)
    (root / "empty.log").write_bytes(b"")
    (root / "emptydir").mkdir()
    (root / "pdfonly").mkdir()
    (root / "pdfonly" / "scan.pdf").write_bytes((root / "doc.pdf").read_bytes())


S = ["--store", "{store}"]
WITH_SENDER = ["trace", "--sender", "*", *S]
REPORT = ["report", "daily", *S, "--date", DAY, "--traces", "0"]
SYNTH = ["synth", "--out", "{root}/synth-new"]
OUT_TIMES = "out of range; give a time from 0100-01-01 to 9899-12-31"
OUT_DAYS = OUT_TIMES.replace("a time", "a date")
#: (id, arguments, exit code, what the one line on stderr names)
MISTAKES = [
    # paths that are not stores: missing, misspelt, a file, a folder of logs
    (
        "trace-missing-store",
        ["trace", "<x@y>", "--store", "{missing}"],
        2,
        "{missing}: no such folder",
    ),
    ("trace-filter-missing", ["trace", "--sender", "*", "--store", "{missing}"], 2, "{missing}"),
    (
        "trace-misspelt-store",
        ["trace", "<x@y>", "--store", "{store}e"],
        2,
        "{store}e: no such folder",
    ),
    ("trace-logs-as-store", ["trace", "<x@y>", "--store", "{logs}"], 2, "{logs} is not a"),
    (
        "sql-missing-store",
        ["sql", "select 1", "--store", "{missing}"],
        2,
        "{missing}: no such folder",
    ),
    ("sql-file-as-store", ["sql", "select 1", "--store", "{pdf}"], 2, "{pdf} is a file"),
    (
        "report-missing-store",
        ["report", "daily", "--store", "{missing}"],
        2,
        "{missing}: no such folder",
    ),
    ("report-file-as-store", ["report", "daily", "--store", "{pdf}"], 2, "{pdf} is a file"),
    (
        "headers-missing-store",
        ["headers", "{eml}", "--store", "{missing}"],
        2,
        "{missing}: no such folder",
    ),
    ("headers-file-as-store", ["headers", "{eml}", "--store", "{pdf}"], 2, "{pdf} is a file"),
    (
        "check-missing-store",
        ["store", "check", "--store", "{missing}"],
        2,
        "{missing}: no such folder",
    ),
    ("check-file-as-store", ["store", "check", "--store", "{pdf}"], 2, "{pdf} is a file"),
    (
        "compact-missing",
        ["store", "compact", "--store", "{missing}"],
        2,
        "{missing}: no such folder",
    ),
    ("compact-file-as-store", ["store", "compact", "--store", "{pdf}"], 2, "{pdf} is a file"),
    # inputs that hold no log, and paths that are not there
    ("ingest-pdf", ["ingest", "{pdf}", "--store", "{root}/new1"], 2, "{pdf}: not a log"),
    ("ingest-binary", ["ingest", "{bin}", "--store", "{root}/new2"], 2, "{bin}"),
    ("ingest-empty-file", ["ingest", "{emptyfile}", "--store", "{root}/new3"], 2, "empty file"),
    (
        "ingest-missing-file",
        ["ingest", "{missingfile}", "--store", "{root}/new5"],
        2,
        "{missingfile}: no such file",
    ),
    (
        "ingest-empty-folder",
        ["ingest", "{emptydir}", "--store", "{root}/new6"],
        2,
        "no file in {emptydir}",
    ),
    ("ingest-pdf-folder", ["ingest", "{pdfonly}", "--store", "{root}/new4"], 2, "scan.pdf"),
    (  # the logs' folder given as the store too: its files were excluded as the store's
        "ingest-store-is-the-logs-folder",
        ["ingest", "{logs}", "--store", "{logs}"],
        2,
        "{logs} is in the store's folder",
    ),
    (
        "ingest-no-match",
        ["ingest", "{root}/MSGTRK*.LOG", "--store", "{root}/new7"],
        2,
        "MSGTRK*.LOG: no file",
    ),
    # the same words as the readers' (it said "cannot write to the store ...: File exists")
    (
        "ingest-file-as-store",
        ["ingest", "{logs}", "--store", "{pdf}"],
        2,
        "{pdf} is a file: give a store's folder",
    ),
    (  # a folder of other files is not made a store (its files would mix with the parts)
        "ingest-store-is-a-folder-of-documents",
        ["ingest", "{logs}", "--store", "{pdfonly}"],
        2,
        "{pdfonly} is not a loganalyzer store and not empty (it holds 'scan.pdf')",
    ),
    ("ingest-unknown-zone", ["ingest", "{logs}", *S, "--tz", "Nowhere/Land"], 2, "Nowhere/Land"),
    ("ingest-unknown-format", ["ingest", "{logs}", *S, "--format", "msgtrk"], 2, "'msgtrk'"),
    ("ingest-zero-workers", ["ingest", "{logs}", *S, "--workers", "0"], 2, "'--workers': 0"),
    ("ingest-negative-workers", ["ingest", "{logs}", *S, "--workers", "-3"], 2, "'--workers'"),
    ("ingest-huge-workers", ["ingest", "{logs}", *S, "--workers", "10" * 9], 2, "'--workers'"),
    ("ingest-no-path", ["ingest", *S], 2, "Missing argument 'paths'"),
    # headers given what is not a message
    ("headers-pdf", ["headers", "{pdf}"], 2, "{pdf}: no message header"),
    ("headers-binary", ["headers", "{bin}"], 2, "{bin}: no message header"),
    ("headers-empty-file", ["headers", "{emptyfile}"], 2, "{emptyfile}: no message header"),
    ("headers-missing-file", ["headers", "{missingfile}"], 2, "{missingfile}"),
    ("headers-folder", ["headers", "{emptydir}"], 2, "{emptydir}"),
    ("headers-unknown-zone", ["headers", "{eml}", "--tz", "Nowhere/Land"], 2, "'Nowhere/Land'"),
    # times and dates: natural, non-ISO, impossible, unknown zones
    ("since-typo", [*WITH_SENDER, "--since", "yesterdy"], 2, "--since 'yesterdy': not a time"),
    ("since-natural", [*WITH_SENDER, "--since", "last week"], 2, "--since 'last week'"),
    ("since-us-date", [*WITH_SENDER, "--since", "03/02/2026"], 2, "--since '03/02/2026'"),
    ("since-impossible", [*WITH_SENDER, "--since", "2026-02-30"], 2, "'2026-02-30': no such date"),
    ("until-month-13", [*WITH_SENDER, "--until", "2026-13-01"], 2, "--until '2026-13-01'"),
    ("since-hour-25", [*WITH_SENDER, "--since", "2026-03-02T25:00"], 2, "no such time"),
    ("since-bad-offset", [*WITH_SENDER, "--since", "-2x"], 2, "--since '-2x'"),
    ("since-offset-ahead", [*WITH_SENDER, "--since", "+2h"], 2, "--since '+2h'"),
    ("trace-unknown-zone", ["trace", "<x@y>", *S, "--tz", "Nowhere/Land"], 2, "'Nowhere/Land'"),
    ("report-impossible-date", [*REPORT, "--date", "2026-02-30"], 2, "'2026-02-30': no such"),
    ("report-tomorrow", [*REPORT, "--date", "tomorrow"], 2, "--date 'tomorrow': not a date"),
    ("report-dotted-date", [*REPORT, "--date", "02.03.2026"], 2, "--date '02.03.2026'"),
    ("report-unknown-zone", [*REPORT, "--tz", "Nowhere/Land"], 2, "'Nowhere/Land'"),
    # times past the ends of the calendar, less the windows computed from them (a report's
    # previous period and look-back, a trace's reach): an OverflowError, or a wrong end named
    ("report-year-1", [*REPORT, "--date", "0001-01-01"], 2, f"--date '0001-01-01': {OUT_DAYS}"),
    ("report-year-9999", [*REPORT, "--date", "9999-12-31"], 2, f"'9999-12-31': {OUT_DAYS}"),
    ("report-year-1-days", [*REPORT, "--date", "0001-01-02", "--days", "2"], 2, OUT_DAYS),
    ("since-year-1", [*WITH_SENDER, "--since", "0001-01-01"], 2, f"'0001-01-01': {OUT_TIMES}"),
    ("until-year-9999", [*WITH_SENDER, "--until", "9999-12-31"], 2, f"'9999-12-31': {OUT_TIMES}"),
    ("since-offset-year-0", [*WITH_SENDER, "--since", "-999999d"], 2, f"'-999999d': {OUT_TIMES}"),
    ("prune-year-1", ["store", "prune", *S, "--before", "0001-01-01", "--dry-run"], 2, OUT_DAYS),
    ("compact-impossible", ["store", "compact", *S, "--date", "2026-02-30"], 2, "'2026-02-30'"),
    ("compact-word-date", ["store", "compact", *S, "--date", "someday"], 2, "'someday'"),
    ("synth-impossible-start", [*SYNTH, "--start", "2026-02-30"], 2, "--start '2026-02-30'"),
    ("synth-word-start", [*SYNTH, "--start", "soon"], 2, "--start 'soon'"),
    # numbers: negative, zero, huge, not a number
    ("report-top-negative", [*REPORT, "--top", "-1"], 2, "'--top': -1"),
    ("report-top-zero", [*REPORT, "--top", "0"], 2, "'--top': 0"),
    ("report-top-huge", [*REPORT, "--top", "10" * 12], 2, "'--top'"),
    ("report-top-word", [*REPORT, "--top", "ten"], 2, "'ten'"),
    ("report-traces-negative", [*REPORT, "--traces", "-5"], 2, "'--traces': -5"),
    ("report-days-zero", [*REPORT, "--days", "0"], 2, "'--days': 0"),
    ("report-days-negative", [*REPORT, "--days", "-7"], 2, "'--days': -7"),
    ("report-days-huge", [*REPORT, "--days", "99999999"], 2, "'--days': 99999999"),
    ("report-port-zero", [*REPORT, "--smtp-port", "0"], 2, "'--smtp-port': 0"),
    ("report-port-huge", [*REPORT, "--smtp-port", "70000"], 2, "'--smtp-port': 70000"),
    ("pick-zero", [*WITH_SENDER, "--pick", "0"], 2, "--pick 0: the listed messages are numbered"),
    ("pick-negative", [*WITH_SENDER, "--pick", "-1"], 2, "--pick -1"),
    ("pick-huge", [*WITH_SENDER, "--pick", "9" * 20], 2, "--pick " + "9" * 20),
    ("sql-limit-zero", ["sql", "select 1", *S, "--limit", "0"], 2, "'--limit': 0"),
    ("sql-limit-negative", ["sql", "select 1", *S, "--limit", "-1"], 2, "'--limit': -1"),
    ("synth-servers-zero", [*SYNTH, "--servers", "0"], 2, "'--servers': 0"),
    ("synth-servers-huge", [*SYNTH, "--servers", "1000"], 2, "'--servers': 1000"),
    ("synth-days-zero", [*SYNTH, "--days", "0"], 2, "'--days': 0"),
    ("synth-messages-negative", [*SYNTH, "--messages", "-1"], 2, "'--messages': -1"),
    ("synth-size-negative", [*SYNTH, "--size-mb", "-1"], 2, "--size-mb -1"),
    ("synth-headers-negative", [*SYNTH, "--headers", "-1"], 2, "'--headers': -1"),
    ("compact-target-zero", ["store", "compact", *S, "--target-mb", "0"], 2, "--target-mb 0"),
    ("compact-target-negative", ["store", "compact", *S, "--target-mb", "-5"], 2, "--target-mb"),
    # output paths that cannot be written, and folders where files are expected
    ("trace-html-under-file", ["trace", "{mid}", *S, "--html", "{pdf}/x.html"], 2, "{pdf}/x.html"),
    ("trace-html-is-folder", ["trace", "{mid}", *S, "--html", "{emptydir}"], 2, "{emptydir}"),
    ("headers-html-under-file", ["headers", "{eml}", "--html", "{pdf}/h.html"], 2, "{pdf}/h.html"),
    ("report-out-under-file", [*REPORT, "--out", "{pdf}/r.html"], 2, "{pdf}/r.html"),
    ("report-out-is-folder", [*REPORT, "--out", "{emptydir}"], 2, "cannot write {emptydir}"),
    ("synth-out-file", ["synth", "--out", "{pdf}"], 2, "--out {pdf}: a file, not a folder"),
    ("synth-out-full-folder", ["synth", "--out", "{logs}"], 2, "--out {logs}: not an empty"),
    ("synth-omit-unknown", [*SYNTH, "--omit-server", "EX99"], 2, "'EX99'"),
    # IDs and filters that match nothing (exit 1), in a store and in an empty store
    ("trace-unknown-id", ["trace", "<nothing@nowhere>", *S], 1, "Message-ID <nothing@nowhere>"),
    ("trace-unknown-bare-id", ["trace", "nothing@nowhere", *S], 1, "Message-ID nothing@nowhere"),
    ("trace-unknown-guid", ["trace", "0" * 8 + "-0000-0000-0000-" + "0" * 12, *S], 1, "network"),
    ("trace-unknown-internal", ["trace", "4242", "--server", "EX01", *S], 1, "4242 on EX01"),
    ("trace-unknown-sender", ["trace", "--sender", "nobody@none.example", *S], 1, "nobody@"),
    ("trace-empty-store", ["trace", "<x@y>", "--store", "{empty}"], 1, "Message-ID <x@y>"),
    (
        "pick-in-empty-store",
        ["trace", "--sender", "*", "--store", "{empty}", "--pick", "1"],
        2,
        "--pick 1: no message matches",
    ),
    ("codes-unknown", ["codes", "9.9.9"], 1, "'9.9.9'"),
    ("codes-unknown-family", ["codes", "--family", "nope"], 2, "'nope'"),
    ("codes-empty", ["codes", "5.1.1", " "], 2, "an empty code: give a code"),
    # empty values, queries that cannot match, addresses that are none
    ("store-empty", ["trace", "<x@y>", "--store", ""], 2, "'--store'"),
    ("ingest-server-empty", ["ingest", "{logs}", *S, "--server", ""], 2, "'--server'"),
    ("trace-server-blank", ["trace", "4242", *S, "--server", " "], 2, "'--server'"),
    ("trace-sender-empty", ["trace", *S, "--sender", ""], 2, "'--sender'"),
    ("trace-recipient-empty", ["trace", *S, "--recipient", ""], 2, "'--recipient'"),
    ("trace-subject-empty", ["trace", *S, "--subject", ""], 2, "'--subject'"),
    ("trace-event-empty", ["trace", *S, "--event-id", ""], 2, "'--event-id'"),
    ("trace-blank-id", ["trace", "   ", *S], 2, "give a Message-ID"),
    ("trace-empty-brackets", ["trace", "<>", *S], 2, "the ID '<>'"),
    (
        "trace-reversed-range",
        [*WITH_SENDER, "--since", "2026-03-03", "--until", "2026-03-02"],
        2,
        "is not before --until",
    ),  # fmt: skip
    (
        "trace-since-year-1",
        [*WITH_SENDER, "--since", "0001-01-01"],
        2,
        "--since '0001-01-01': " + OUT_TIMES,
    ),  # fmt: skip
    ("trace-until-year-9999", [*WITH_SENDER, "--until", "9999-12-31"], 2, "'9999-12-31': out"),
    ("trace-unknown-event", [*WITH_SENDER, "--event-id", "NOPE"], 2, "--event-id 'NOPE'"),
    ("trace-huge-limit", [*WITH_SENDER, "--limit", "9" * 20], 2, "--limit " + "9" * 20),
    ("sql-no-statement", ["sql", *S, "--", ";"], 2, "no statement to run"),
    ("report-mail-to-word", [*REPORT, "--mail-to", "ops"], 2, "--mail-to 'ops': not a mail"),
    ("watch-webhook-word", ["watch", "--once", *S, "--webhook", "x"], 3, ""),
    ("watch-webhook-bracket", ["watch", *S, "--webhook", "http://[::1"], 2, "'http://[::1'"),
    (
        "watch-textfile-no-folder",
        ["watch", "--once", *S, "--textfile", "{root}/nodir/a.prom"],
        3,
        "--textfile '{root}/nodir/a.prom': no folder",
    ),  # fmt: skip
    # usage
    ("trace-nothing-asked", ["trace", *S], 2, "give a message ID or at least one filter"),
    ("codes-nothing-asked", ["codes"], 2, "give one or more codes"),
    ("sql-bad-sql", ["sql", "select nope from tracking", *S], 2, '"nope"'),
    (  # DuckDB's hint of the near name, on the one line
        "sql-misspelt-table",
        ["sql", "select count(*) from trackin", *S],
        2,
        'Table with name trackin does not exist! Did you mean "tracking"?',
    ),
    (
        "sql-misspelt-column",
        ["sql", "select sendr from tracking", *S],
        2,
        'column "sendr" not found in FROM clause! Candidate bindings: "sender',
    ),
    ("unknown-option", ["trace", "<x@y>", "--bogus"], 2, "--bogus"),
    ("unknown-command", ["tarce", "<x@y>"], 2, "'tarce'"),
]


#: The mistakes the portability-mode run makes: those of the commands that start processes or
#: take the store's lock (the mode changes nothing the others do; they run outside it).
MADE = [m for m in MISTAKES if not PORTABILITY or m[1][0] in ("ingest", "store", "watch")]


@pytest.fixture(scope="module")
def outcomes(world, tmp_path_factory) -> dict[str, tuple[list[str], subprocess.CompletedProcess]]:
    """Every mistake run once per run, in parallel (each process starts in about half a
    second); the workers share what each printed."""

    def one(case):
        name, args, _, _ = case
        argv = [a.format(**world) for a in args]
        done = run(*argv, cwd=Path(world["root"]))
        return name, [argv, done.returncode, done.stdout, done.stderr]

    def made(folder: Path) -> None:
        with ThreadPoolExecutor(4) as pool:
            (folder / "outcomes.json").write_text(json.dumps(dict(pool.map(one, MADE))))

    folder = built_once(tmp_path_factory, "mistakes-outcomes", made)
    return {
        name: (argv, subprocess.CompletedProcess(argv, code, out, err))
        for name, (argv, code, out, err) in json.loads(
            (folder / "outcomes.json").read_text()
        ).items()
    }


def test_the_table_is_long_enough():
    assert len(MISTAKES) >= 60 and len({m[0] for m in MISTAKES}) == len(MISTAKES)


@pytest.mark.parametrize(("name", "args", "code", "names"), MADE, ids=[m[0] for m in MADE])
def test_mistake(outcomes, world, name, args, code, names):
    argv, done = outcomes[name]
    lines = done.stderr.strip().splitlines()
    assert "Traceback" not in done.stdout + done.stderr, argv
    assert len(lines) == 1, (argv, done.stderr)
    assert lines[0].startswith("error: ") and names.format(**world) in lines[0], (argv, lines)
    assert done.returncode == code, (argv, done.returncode, lines)
    if code == 2:
        assert done.stdout == "", (argv, done.stdout)


# -- each defect of the issue, as it was met ------------------------------------------------


def test_since_yesterday_is_a_time_not_a_traceback(world):
    args = ["trace", "--recipient", "*@fabrikam.com", "--since", "yesterday"]
    done = run(*args, "--store", world["store"], cwd=Path(world["root"]))
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: No message in the store matches recipient *@fabrikam.com")
    # a window wholly outside the store's days says which days it holds; one inside does not
    assert re.search(r": the store's logs are of 2026-03-02( to 2026-03-\d\d)? \(UTC\)\.$",
                     done.stderr.strip()), done.stderr  # fmt: skip
    args = ["trace", "--recipient", "nobody@fabrikam.com", "--since", f"{DAY}T10:00"]
    inside = run(*args, "--store", world["store"], cwd=Path(world["root"]))
    assert inside.returncode == 1 and inside.stderr == (
        f"error: No message in the store matches recipient nobody@fabrikam.com, since {DAY}"
        "T10:00:00+00:00.\n"
    )


def test_since_and_until_are_read_in_tz(world):
    # 11:00 to 12:00 in Berlin is 10:00 to 11:00 UTC
    done = run(
        "trace",
        "--sender",
        "*",
        "--store",
        world["store"],
        "--json",
        "--tz",
        "Europe/Berlin",
        "--since",
        f"{DAY}T11:00",
        "--until",
        f"{DAY}T12:00",
        cwd=Path(world["root"]),
    )
    found = json.loads(done.stdout)
    assert found["query"]["since"] == f"{DAY}T11:00:00+01:00"
    times = sorted(c["date_time"] for c in found["candidates"])
    assert times and f"{DAY}T10:00" <= times[0] and times[-1] < f"{DAY}T11:00", times


@pytest.mark.parametrize(
    "args",
    [
        [*REPORT, "--date", "0100-01-01", "--days", "3660", "--tz", "Pacific/Kiritimati"],
        [*REPORT, "--date", "9899-12-31", "--tz", "Etc/GMT+12"],
        [*WITH_SENDER, "--since", "0100-01-01", "--until", "9899-12-31T23:59:59"],
        ["trace", "--verdict", "rejected", *S, "--since", "0100-01-01"],
    ],
    ids=["report-first", "report-last", "trace", "trace-rejected"],
)
def test_the_first_and_last_times_accepted_are_taken(world, args, tmp_path):
    """The windows computed from them (a previous period, a day of look-back, a session's
    reach) stay inside the calendar."""
    done = run(*[a.format(**world) for a in args], cwd=tmp_path)
    assert done.returncode in (0, 1) and "error: unexpected" not in done.stderr, done.stderr


def test_trace_html_creates_its_folder(world, tmp_path):
    page = tmp_path / "no" / "such" / "dir" / "x.html"
    done = run("trace", world["mid"], "--store", world["store"], "--html", str(page), cwd=tmp_path)
    assert done.returncode == 0 and page.is_file() and f"HTML: {page}" in done.stderr


def test_a_misspelt_store_is_not_an_empty_store(world, tmp_path):
    done = run(
        "sql",
        "select count(*) as n from tracking",
        "--store",
        str(tmp_path / "typo"),
        "--csv",
        cwd=tmp_path,
    )
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"error: {tmp_path / 'typo'}: no such folder: give a store's folder (--store or "
        "$LOGANALYZER_STORE)\n"
    )
    # a folder that holds no store, and a file
    (tmp_path / "logs").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    for path, said in (
        ("logs", "is not a loganalyzer store (no manifest)"),
        ("notes.txt", "is a file"),
    ):
        done = run("trace", "<x@y>", "--store", str(tmp_path / path), cwd=tmp_path)
        assert done.returncode == 2 and done.stderr.startswith(f"error: {tmp_path / path} {said}")


def test_ingest_of_a_pdf_leaves_no_store(world, tmp_path):
    store = tmp_path / "st"
    done = run("ingest", world["pdf"], "--store", str(store), cwd=tmp_path)
    assert done.returncode == 2 and not store.exists()
    assert done.stderr.startswith(f"error: nothing to ingest: {world['pdf']}: not a log")


def test_negative_trace_pages_and_top_name_the_option(world):
    for option in ("--traces", "--top"):
        done = run(
            "report", "daily", "--store", world["store"], option, "-5", cwd=Path(world["root"])
        )
        assert done.returncode == 2 and f"'{option}': -5 is not in the range" in done.stderr
        assert "limit" not in done.stderr


def test_not_found_is_a_sentence_not_a_dict(world):
    done = run("trace", "<gone@nowhere>", "--store", world["store"], cwd=Path(world["root"]))
    assert done.stderr == "error: No message in the store matches Message-ID <gone@nowhere>.\n"
    assert done.stdout == "" and done.returncode == 1


def test_unknown_zone_is_one_clean_line(world):
    done = run(
        "trace", "<x@y>", "--store", world["store"], "--tz", "Nowhere/Land", cwd=Path(world["root"])
    )
    assert done.stderr == (
        "error: unknown time zone 'Nowhere/Land' (an IANA name: UTC, Europe/Berlin)\n"
    )


def test_a_zone_file_that_is_no_zone_is_one_clean_line(world):
    # Python read these files of the zone database as zones; the report's DuckDB did not
    # ("unexpected NotImplementedException: ... Unknown TimeZone 'localtime'")
    for name in ("localtime", "right/UTC"):
        done = run(
            "report", "daily", "--store", world["store"], "--tz", name, "--date", "2026-03-02",
            cwd=Path(world["root"]),
        )  # fmt: skip
        assert done.stderr == (
            f"error: unknown time zone '{name}' (an IANA name: UTC, Europe/Berlin)\n"
        )
        assert done.returncode == 2


def test_debug_shows_the_traceback(world):
    done = run("--debug", "trace", "<x@y>", "--store", world["missing"], cwd=Path(world["root"]))
    assert done.returncode == 2 and "Traceback" in done.stderr and "NotAStore" in done.stderr
    assert (
        done.stderr.splitlines()[-1]
        == f"error: {world['missing']}: no such folder: give a store's folder (--store or "
        "$LOGANALYZER_STORE)"
    )


def test_an_unexpected_error_is_one_line_unless_debug(cli, monkeypatch, world):
    def broken(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    # the module (the package's ``trace`` is the function); imported here, as the command
    # imports it only when it runs: this test alone would find it not imported yet
    module = importlib.import_module("loganalyzer.trace")
    monkeypatch.setattr(module, "trace", broken)
    out = cli("trace", "<x@y>", "--store", world["store"])
    assert out.exit_code == 1 and out.stderr.count("\n") == 1
    assert out.stderr.startswith("error: unexpected RuntimeError: boom (")
    out = cli("--debug", "trace", "<x@y>", "--store", world["store"])
    assert "Traceback" in out.stderr and out.exit_code == 1


# -- the library raises the same errors -------------------------------------------------------


def test_the_library_refuses_a_path_that_is_not_a_store(world):
    with pytest.raises(NotAStore, match="no such folder"):
        la.Store(world["missing"]).sql("select 1")
    with pytest.raises(NotAStore):
        la.trace(world["missing"], "<x@y>")
    with pytest.raises(NotAStore):
        la.daily_report(world["missing"], DAY)
    with pytest.raises(NotAStore):
        la.analyze_headers(EML.read_bytes(), world["missing"])
    assert not Path(world["missing"]).exists()


def test_the_library_takes_every_time_form(world):
    st = la.Store(world["store"])
    berlin = st.tracking(since=f"{DAY}T11:00", until=f"{DAY}T12:00", tz="Europe/Berlin")
    utc = st.tracking(since=f"{DAY}T10:00Z", until=f"{DAY}T11:00Z")
    assert len(berlin) == len(utc) > 0
    assert len(st.tracking(since="-1w")) == 0  # the logs are of March 2026
    with pytest.raises(BadInput, match="since 'next week'"):
        st.tracking(since="next week")
    with pytest.raises(BadInput, match="--date '2026-02-30': no such date"):
        la.daily_report(world["store"], "2026-02-30")


def test_refused_ingests_made_no_store(outcomes, world):
    made = [f"new{i}" for i in range(1, 8) if (Path(world["root"]) / f"new{i}").exists()]
    assert made == []
    # the folder of documents refused as a store holds what it held: no lock, no part
    assert [p.name for p in Path(world["pdfonly"]).iterdir()] == ["scan.pdf"]


def test_a_new_volume_or_a_folder_with_os_files_is_taken_as_a_new_store(world, tmp_path):
    """What an operating system leaves in an empty folder or at a new disk's root (mounted as
    the store) is no one's files: the ingest makes its store there."""
    volume = tmp_path / "volume"
    (volume / "lost+found").mkdir(parents=True)
    (volume / "Thumbs.db").write_bytes(b"\0")
    done = run("ingest", world["logs"], "--store", str(volume), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (volume / "manifest.parquet").is_file()


@pytest.mark.skipif(
    sys.platform == "win32" or os.geteuid() == 0, reason="root writes into read-only folders"
)
def test_a_read_only_output_folder_is_one_line(world, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        done = run("headers", world["eml"], "--html", str(locked / "h.html"), cwd=tmp_path)
    finally:
        locked.chmod(0o700)
    assert done.returncode == 2
    assert done.stderr == f"error: cannot write {locked / 'h.html'}: Permission denied\n"
