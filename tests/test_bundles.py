"""Small files are parsed in bundles; the store is the same as when each file is parsed alone."""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from logfiles import FIELD_SETS, header, line, row, write_log
from stores import content, manifest

from loganalyzer import worker
from loganalyzer.formats import FORMATS, exchange_tracking
from loganalyzer.ingest import ingest
from loganalyzer.store import Store

ingest_module = importlib.import_module("loganalyzer.ingest")  # the package binds the function
FIELDS_2010 = FIELD_SETS[26]


def _logs(root):
    """Tracking logs of three servers, with what a parse can meet in a small file."""
    texts = {
        # plain files, several servers (each file's server comes from its own rows)
        "EX01/MSGTRK2026030210-1.LOG": header() + "".join(line(row(i)) for i in range(40)),
        "EX02/MSGTRK2026030210-1.LOG": header()
        + "".join(line(row(i, server_hostname="EX02")) for i in range(100, 130)),
        # bad lines among good ones: wrong field count, bad time, unbalanced quote
        "EX01/MSGTRK2026030211-1.LOG": header()
        + line(row(200))
        + "a,b,c\r\n"
        + line(row(201, date_time="yesterday"))
        + line(row(202))[:-2]
        + ',"x\r\n'
        + line(row(203)),
        # the fields change mid-file: two runs with other columns
        "EX03/MSGTRK2026030210-1.LOG": header()
        + line(row(300))
        + header(FIELDS_2010, version="14.03.0123.000")
        + line(row(301), FIELDS_2010)
        + header()
        + line(row(302)),
        # a last line still being written, and a file with only its header
        "EX02/MSGTRK2026030211-1.LOG": header() + line(row(400)) + line(row(401))[:25],
        "EX03/MSGTRK2026030211-1.LOG": header(date="2026-03-02T11:00:00.000Z"),
        # a day boundary inside one file: two parts
        "EX01/MSGTRK2026030223-1.LOG": header()
        + line(row(500, date_time="2026-03-02T23:59:59.900Z"))
        + line(row(501, date_time="2026-03-03T00:00:00.100Z")),
    }
    for name, text in texts.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode())
    return root


@pytest.fixture
def logs(tmp_path):
    return _logs(tmp_path / "logs")


def _patch_parse_run(monkeypatch, module, parse_run) -> None:
    """Every parse of ``module``'s format through ``parse_run``."""
    fmt = replace(module.FORMAT, parse_run=parse_run)
    monkeypatch.setitem(FORMATS, fmt.name, fmt)


def test_bundled_parse_equals_one_file_at_a_time(logs, tmp_path, monkeypatch):
    calls = []
    real = exchange_tracking.parse_run
    _patch_parse_run(monkeypatch, exchange_tracking, lambda *a: calls.append(1) or real(*a))
    bundled = ingest([logs], tmp_path / "bundled", workers=1)
    assert bundled.exit_code == 0
    # the runs of all files went through a few parses (one per field set and final flag)
    parses = len(calls)
    assert 0 < parses <= 4

    monkeypatch.setattr(ingest_module, "_BUNDLE_FILE", -1)  # every file a task of its own
    calls.clear()
    alone = ingest([logs], tmp_path / "alone", workers=1)
    assert len(calls) > 2 * parses
    bundled_store, alone_store = Store(tmp_path / "bundled"), Store(tmp_path / "alone")
    assert content(bundled_store, parts=False) == content(alone_store, parts=False)
    assert bundled.to_dict()["files"] == alone.to_dict()["files"]
    by_file = {f.path.rsplit("logs/", 1)[1]: f for f in bundled.files}
    assert by_file["EX01/MSGTRK2026030211-1.LOG"].quarantined == 3
    assert by_file["EX03/MSGTRK2026030210-1.LOG"].rows == 3
    servers = {
        r.paths[0].rsplit("logs/", 1)[1]: r.server
        for r in Store(tmp_path / "bundled").manifest().values()
    }
    assert servers["EX02/MSGTRK2026030210-1.LOG"] == "EX02"


def test_a_file_that_fails_in_a_bundle_fails_alone(logs, tmp_path, monkeypatch):
    broken = str(logs / "EX02" / "MSGTRK2026030210-1.LOG")
    real = worker.open_source

    def failing(path, *a, **k):
        if str(path) == broken:
            raise OSError(5, "Input/output error")
        return real(path, *a, **k)

    monkeypatch.setattr(worker, "open_source", failing)
    summary = ingest([logs], tmp_path / "store", workers=1)
    errors = [f for f in summary.files if f.status == "error"]
    assert [f.path for f in errors] == [broken]
    assert "could not read: Input/output error" in errors[0].reason
    others = {f.path for f in summary.files if f.status == "ingested"}
    assert len(others) == 6
    monkeypatch.setattr(worker, "open_source", real)
    again = ingest([logs], tmp_path / "store", workers=1)
    assert [f.path for f in again.files if f.status == "ingested"] == [broken]


def test_a_parse_that_raises_fails_its_file_only(logs, tmp_path, monkeypatch):
    """A failure no log line explains (a bug, a library error) sinks one file, not the ingest:
    the bundle is parsed again file by file, the file that fails is reported and not
    committed, and the next ingest reads it."""
    import pyarrow as pa

    broken = logs / "EX01" / "MSGTRK2026030210-1.LOG"
    broken.write_bytes(broken.read_bytes().replace(b"10.0.0.5", b"10.9.9.9"))
    real = exchange_tracking.parse_run

    def failing(run, *a):
        if b"10.9.9.9" in run.data:
            raise pa.ArrowInvalid("a chunk failed converting for an unknown reason")
        return real(run, *a)

    _patch_parse_run(monkeypatch, exchange_tracking, failing)
    summary = ingest([logs], tmp_path / "store", workers=1)
    assert summary.exit_code == 1
    errors = [f for f in summary.files if f.status == "error"]
    assert [f.path for f in errors] == [str(broken)]
    assert errors[0].reason == (
        "could not ingest: ArrowInvalid: a chunk failed converting for an unknown reason"
    )
    assert len([f for f in summary.files if f.status == "ingested"]) == 6
    st = Store(tmp_path / "store")
    assert str(broken) not in {p for r in st.manifest().values() for p in r.paths}
    monkeypatch.setitem(FORMATS, exchange_tracking.FORMAT.name, exchange_tracking.FORMAT)
    again = ingest([logs], tmp_path / "store", workers=1)
    assert [f.path for f in again.files if f.status == "ingested"] == [str(broken)]
    fresh = Store(tmp_path / "fresh")
    assert ingest([logs], fresh, workers=1).exit_code == 0
    # the same rows and quarantine as one clean ingest (head fingerprints record the lengths
    # of the other files each ingest saw)
    same = {"tracking", "quarantine"}
    assert {k: v for k, v in content(st).items() if k in same} == {
        k: v for k, v in content(fresh).items() if k in same
    }
    drop = ("head_fingerprint", "parts")  # (the parts of other bundles)
    assert manifest(st, drop=drop) == manifest(fresh, drop=drop)


def test_a_bundle_whose_parts_fail_to_write_is_written_file_by_file(logs, tmp_path, monkeypatch):
    """A failure writing a bundle's rows together (no log line explains it) does not sink its
    files: each is parsed again alone, into parts of its own."""
    import pyarrow as pa

    def failing(self, part, pieces):
        raise pa.ArrowInvalid("the rows of these files together failed to write")

    monkeypatch.setattr(worker._Bundle, "_write", failing)
    summary = ingest([logs], tmp_path / "store", workers=1)
    assert summary.exit_code == 0 and summary.count("ingested") == 7
    st = Store(tmp_path / "store")
    assert st.check()["ok"]
    assert not any(p.endswith("-bundle.parquet") for p in st.listed_parts())
    monkeypatch.undo()
    assert ingest([logs], tmp_path / "fresh", workers=1).exit_code == 0
    assert content(st, parts=False) == content(Store(tmp_path / "fresh"), parts=False)


def test_bundles_are_grouped_by_format_and_context_and_bounded(logs, tmp_path):
    md_log = header(date="2026-03-02T10:00:01.000Z") + line(row(600, event_id="DELIVER"))
    (logs / "EX01" / "MSGTRKMD2026030210-1.LOG").write_text(md_log)
    st = Store(tmp_path / "store")
    tasks = ingest_module._plan(
        ingest_module.discover([logs])[0],
        {},
        st,
        format=None,
        server=None,
        tz=None,
        final=False,
        reports=[],
    )
    bundles = ingest_module.bundles(tasks, workers=2)
    assert sorted(t.path for b in bundles for t in b) == sorted(t.path for t in tasks)
    for b in bundles:
        assert len({(t.format, t.log_type, t.final) for t in b}) == 1
    assert any(len(b) > 1 for b in bundles)
    md = [b for b in bundles if any("MSGTRKMD" in t.path for t in b)]
    assert len(md) == 1 and len(md[0]) == 1  # another log type: its own bundle


def test_protocol_logs_bundled_equal_one_file_at_a_time(tmp_path, monkeypatch):
    from stores import synth_logs

    from loganalyzer.formats import exchange_smtp_protocol

    logs = synth_logs(tmp_path / "logs", days=1, messages=60)
    calls = []
    real = exchange_smtp_protocol.parse_run
    _patch_parse_run(
        monkeypatch, exchange_smtp_protocol, lambda *a: calls.append(a[1][1]) or real(*a)
    )
    assert ingest([logs], tmp_path / "bundled", workers=1).exit_code == 0
    bundled_calls = len(calls)
    assert {"receive", "send"} <= set(calls)  # runs of each direction parsed apart
    monkeypatch.setattr(ingest_module, "_BUNDLE_FILE", -1)
    calls.clear()
    assert ingest([logs], tmp_path / "alone", workers=1).exit_code == 0
    assert len(calls) > 2 * bundled_calls
    bundled = content(Store(tmp_path / "bundled"), parts=False)
    alone = content(Store(tmp_path / "alone"), parts=False)
    assert bundled["smtp"] and bundled == alone


def test_each_row_names_its_own_file_format_and_server(tmp_path):
    """The worker writes a part's file, format and (where rows name none) server as one-value
    columns: every row still says which file it came from, as any Parquet reader sees it."""
    import duckdb
    import pyarrow as pa
    import pyarrow.dataset as ds
    import pyarrow.parquet as pq
    from stores import synth_logs

    from loganalyzer.schema import TABLES

    logs = synth_logs(tmp_path / "logs", days=1, messages=60)
    assert ingest([logs], tmp_path / "st", workers=1).exit_code == 0
    entries = [e for e in Store(tmp_path / "st").manifest().values() if e.rows]
    sends = 0
    for table in ("tracking", "smtp"):
        folder = tmp_path / "st" / table
        stored = duckdb.sql(
            "select file, list(distinct log_format), list(distinct server), count(*) "
            f"from read_parquet('{folder}/*/*.parquet') group by file"
        ).fetchall()
        expected = {e.paths[0]: e for e in entries if e.table == table}
        assert {row[0] for row in stored} == expected.keys()
        for path, formats, servers, n in stored:
            assert formats == [expected[path].format] and n == expected[path].rows
            if "Send" in path:  # a send log names no server: its rows get the file's
                sends += 1
                assert servers == [expected[path].server]
        # other readers see the store's schema: plain text columns, their descriptions
        assert ds.dataset(folder, partitioning="hive").schema.field("file").type == pa.string()
        for part in folder.glob("*/*.parquet"):
            schema = pq.read_schema(part)
            assert schema.equals(TABLES[table])
            assert [f.metadata for f in schema] == [f.metadata for f in TABLES[table]]
    assert sends


def test_a_part_whose_server_is_one_value_then_many_keeps_every_row(tmp_path):
    """A big file's batches go to one part: the server given as one value for the first batch
    (no row named one) and read from the rows of the next, and the other way round."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from loganalyzer.schema import TABLES, build_table

    def batch(n: int, servers: list | None, start: int) -> pa.Table:
        times = pa.array([1772409600000 + i for i in range(start, start + n)])
        columns = {
            "date_time": times.cast(pa.timestamp("ms", tz="UTC")),
            "server": pa.array(servers or [None] * n, pa.string()),
            "line": pa.array(range(start, start + n), pa.int64()),
        }
        return build_table(columns, TABLES["smtp"])

    st = Store(tmp_path / "st")
    for name, first, second in (
        ("one-then-many", None, ["EX07", "EX08", "EX07"]),
        ("many-then-one", ["EX07", "EX08", "EX07"], None),
    ):
        task = worker.Task(f"/logs/{name}.LOG", "exchange-smtp-protocol", name, str(st.root))
        writer = worker._Writer(st, "smtp", task)
        for k, servers in enumerate((first, second)):
            single = {"file": task.path, "log_format": task.format}
            if servers is None:
                single["server"] = "EX01"
            writer.write(batch(3, servers, 3 * k), single)
        (part,) = writer.close()
        rows = pq.read_table(st.loc.full(part.tmp)).to_pylist()
        servers = [r["server"] for r in rows]
        expected = [*(first or ["EX01"] * 3), *(second or ["EX01"] * 3)]
        assert servers == expected
        assert {r["file"] for r in rows} == {task.path}
        assert [r["line"] for r in rows] == list(range(6))


def _small_logs(folder, servers: tuple[str, ...], start: int = 0):
    """One small tracking log per server, of one hour: one bundle. The first runs past
    midnight (rows of two dates), the second has a bad line."""
    for k, server in enumerate(servers):
        n = start + 100 * k
        rows = [row(n + i, server_hostname=server) for i in range(20)]
        if k == 0:
            rows.append(row(n + 20, date_time="2026-03-03T00:00:00.100Z"))
        tail = "a,b,c\r\n" if k == 1 else ""
        write_log(folder / server / "MSGTRK2026030210-1.LOG", rows, tail=tail)
    return folder


def _cli_ingest(logs, store, env=None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loganalyzer", "ingest", str(logs), "--store", str(store)],
        capture_output=True,
        env=env,
        timeout=300,
    )


def test_a_bundle_is_one_part_per_date_listed_by_each_of_its_files(tmp_path):
    """Through the command: the rows of a bundle's files are one part per date (their file
    column names each row's file), their bad lines one quarantine part, each listed in the
    manifest by every file whose rows it holds; `store check` finds the counts agree."""
    import duckdb

    logs = _small_logs(tmp_path / "logs", ("EX01", "EX02", "EX03", "EX04"))
    store = tmp_path / "store"
    assert _cli_ingest(logs, store).returncode == 0
    st = Store(store)
    files = st.manifest()
    assert len(files) == 4
    tracking = st.listed_parts("tracking")
    assert [p.split("/")[1] for p in tracking] == ["date=2026-03-02", "date=2026-03-03"]
    assert len(st.listed_parts("quarantine")) == 1
    for part in st.listed_parts():
        counts = dict(
            duckdb.sql(
                f"select file, count(*) from read_parquet('{st.path(part)}') group by file"
            ).fetchall()
        )
        holders = {r.paths[0] for r in files.values() if part in r.parts}
        assert set(counts) == holders, part
        if part in tracking:  # 20 rows of each file on 2 March, EX01's last on 3 March
            assert set(counts.values()) == ({20} if part == tracking[0] else {1})
    rows = {Path(r.paths[0]).parent.name: (r.rows, r.quarantined) for r in files.values()}
    assert rows == {"EX01": (21, 0), "EX02": (20, 1), "EX03": (20, 0), "EX04": (20, 0)}
    assert all(tracking[0] in r.parts for r in files.values())  # every file's 2 March rows
    check = subprocess.run(
        [sys.executable, "-m", "loganalyzer", "store", "check", "--store", str(store)],
        capture_output=True,
    )
    assert check.returncode == 0, check.stdout.decode() + check.stderr.decode()


def test_a_kill_between_two_files_of_a_bundle_lists_none_of_them(tmp_path):
    """A bundle's files share their parts: a kill while they are being listed leaves the
    manifest as before the bundle (its parts unlisted leftovers), and the next ingest gives
    the store one ingest of every file would."""
    from loganalyzer.store.parts import FAILPOINT

    logs = _small_logs(tmp_path / "logs", ("EX01", "EX02"))
    store = tmp_path / "store"
    assert _cli_ingest(logs, store).returncode == 0
    st = Store(store)
    before = st.manifest()
    _small_logs(logs, ("EX05", "EX06", "EX07"), start=1000)
    killed = _cli_ingest(logs, store, env={**os.environ, FAILPOINT: "bundle-listed"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()
    assert st.manifest().keys() == before.keys()
    check = st.check()
    assert check["missing"] == check["unreadable"] == check["row_counts"] == []
    assert check["unlisted"]  # the bundle's parts, renamed into place but never listed
    assert _cli_ingest(logs, store).returncode == 0
    assert st.check()["ok"]
    fresh = Store(tmp_path / "fresh")
    assert _cli_ingest(logs, fresh.root).returncode == 0
    drop = ("head_fingerprint",)
    assert {**content(st, parts=False), "manifest": manifest(st, parts=False, drop=drop)} == {
        **content(fresh, parts=False),
        "manifest": manifest(fresh, parts=False, drop=drop),
    }
