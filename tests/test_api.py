"""The Python API: DataFrames, SQL, and the README's example."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess

import pandas as pd
import pytest
from conftest import LOGANALYZER, ROOT

import loganalyzer as la
from loganalyzer.errors import BadInput
from loganalyzer.read.export import defuse


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("api")
    la.ingest([la.sample_logs(base / "logs")], base / "store")
    return la.Store(base / "store")


def test_public_names():
    for name in (
        "ingest",
        "Store",
        "trace",
        "daily_report",
        "explode_recipients",
        "analyze_headers",
        "sample_logs",
    ):
        assert callable(getattr(la, name)), name
    assert callable(la.ingest) and not hasattr(la.ingest, "__path__")


def test_dataframes_agree_with_sql(store):
    df = store.tracking()
    assert len(df) == store.sql("select count(*) as n from tracking")["n"][0]
    by_event = df["event_id"].value_counts().sort_index()
    sql = store.sql("select event_id, count(*) as n from tracking group by 1 order by 1")
    assert by_event.to_dict() == dict(zip(sql["event_id"], sql["n"], strict=True))
    fails = store.tracking(event_id="fail", recipient="*@contoso.com")
    assert (
        len(fails)
        == store.sql(
            "select count(*) as n from tracking where event_id = 'FAIL' and "
            "len(list_filter(recipient_address, lambda x: x ilike '%@contoso.com')) > 0"
        )["n"][0]
    )
    messages = store.messages()
    assert (
        len(messages) == store.sql("select count(distinct message_id) as n from tracking")["n"][0]
    )
    assert messages["message_id"].is_unique
    smtp = store.smtp()
    assert len(smtp) == store.sql("select count(*) as n from smtp")["n"][0] > 0
    assert len(store.files()) == len(store.manifest())
    assert store.quarantine().empty


def test_dtypes_and_time_zones(store):
    df = store.tracking()
    assert str(df["date_time"].dt.tz) == "UTC"
    for col in ("event_id", "source", "outcome", "server"):
        assert isinstance(df[col].dtype, pd.CategoricalDtype), col
    assert isinstance(df["message_id"].dtype, pd.StringDtype)
    berlin = store.tracking(tz="Europe/Berlin")
    assert str(berlin["date_time"].dt.tz) == "Europe/Berlin"
    assert (berlin["date_time"] == df["date_time"]).all()  # the same instants
    assert str(store.sql("select min(date_time) t from tracking")["t"].dt.tz) == "UTC"
    window = store.tracking(since="2026-03-02T10:00:00Z", until="2026-03-02T11:00:00Z")
    assert (
        len(window)
        and window["date_time"]
        .between(
            pd.Timestamp("2026-03-02 10:00", tz="UTC"), pd.Timestamp("2026-03-02 11:00", tz="UTC")
        )
        .all()
    )


def test_explode_recipients_aligns_statuses(store):
    df = store.tracking(event_id="FAIL")
    one = la.explode_recipients(df)
    assert len(one) == df["recipient_address"].map(len).sum()
    assert one["enhanced_status"].notna().all()
    assert (one.apply(lambda r: r["enhanced_status"] in r["recipient_status"], axis=1)).all()


def test_sql_cli_table_csv_json(cli, store):
    q = "select event_id, count(*) as n from tracking group by 1 order by 2 desc, 1"
    table = cli("sql", q, "--store", str(store.root))
    assert table.exit_code == 0 and "RECEIVE" in table.stdout
    as_json = json.loads(cli("sql", q, "--store", str(store.root), "--json").stdout)
    assert as_json == store.sql(q).to_dict("records")
    hostile = cli(
        "sql",
        "select '=HYPERLINK(\"x\")' as a, '+1' b, '-2' c, '@SUM(1)' d, 'ok' e",
        "--store",
        str(store.root),
        "--csv",
    )
    row = list(csv.reader(io.StringIO(hostile.stdout)))[1]
    assert row == ['\'=HYPERLINK("x")', "'+1", "'-2", "'@SUM(1)", "ok"]
    assert cli("sql", "select nothing", "--store", str(store.root)).exit_code == 2
    for empty in ("", ";", "  -- a comment alone"):  # no statement: one line, not a traceback
        done = subprocess.run([LOGANALYZER, "sql", "--store", str(store.root), "--", empty],
                              capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
        assert "no statement to run" in done.stderr


def test_formats_names_are_never_cut():
    """The names are what --format takes: whole in a narrow terminal."""
    done = subprocess.run([LOGANALYZER, "formats"], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "80"})  # fmt: skip
    assert done.returncode == 0
    from loganalyzer.formats import FORMATS

    for name in FORMATS:
        assert f"│ {name} " in done.stdout, name


def test_sql_null_time_is_null(cli, store):
    """A missing time is null in JSON and empty in CSV, not the text NaT."""
    q = "select null::timestamptz as t, timestamptz '2026-03-02 10:00:00.5+00' as u"
    as_json = json.loads(cli("sql", q, "--store", str(store.root), "--json").stdout)
    assert as_json == [{"t": None, "u": "2026-03-02T10:00:00.500000+00:00"}]
    rows = list(csv.reader(io.StringIO(cli("sql", q, "--store", str(store.root), "--csv").stdout)))
    assert rows == [["t", "u"], ["", "2026-03-02T10:00:00.500000+00:00"]]


def test_defuse():
    assert [defuse(v) for v in ("=1+1", "+x", "-x", "@x", "\tx", "a=b", 5)] == [
        "'=1+1",
        "'+x",
        "'-x",
        "'@x",
        "'\tx",
        "a=b",
        5,
    ]


def test_readme_in_python_example_runs(tmp_path, monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## In Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)[1]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {})


def test_sql_table_says_the_rows_it_leaves_out(store):
    """The table shows the first --limit rows and the true count; CSV and JSON have all."""
    exe = LOGANALYZER
    q = "select * from range(250)"
    run = [exe, "sql", q, "--store", str(store.root)]
    out = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    note = "showing the first 100 of 250 rows; --limit N, --csv or --json to see more"
    assert out.stdout.splitlines()[-1] == note
    out = subprocess.run([*run, "--limit", "7"], capture_output=True, text=True, timeout=120)
    assert out.stdout.splitlines()[-1] == note.replace("100", "7")
    out = subprocess.run([*run, "--limit", "250"], capture_output=True, text=True, timeout=120)
    assert "showing" not in out.stdout and "│ 249 " in out.stdout
    out = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    assert len(json.loads(out.stdout)) == 250


def test_sql_columns_of_the_same_name_are_told_apart(store):
    """Two columns of one name (``select date_time, * from smtp``) ended in "unexpected
    AttributeError"; they are named as DuckDB names a subquery's, in every output."""
    q = "select 1 as a, 2 as a, 3 as a_1, 4 as a"
    names = ["a", "a_1", "a_1_1", "a_2"]
    run = [LOGANALYZER, "sql", q, "--store", str(store.root)]
    table = subprocess.run(run, capture_output=True, text=True, timeout=120)
    assert table.returncode == 0, table.stderr
    assert [x.strip() for x in table.stdout.splitlines()[1].split("┃")[1:-1]] == names
    as_json = subprocess.run([*run, "--json"], capture_output=True, text=True, timeout=120)
    assert json.loads(as_json.stdout) == [dict(zip(names, (1, 2, 3, 4), strict=True))]
    as_csv = subprocess.run([*run, "--csv"], capture_output=True, text=True, timeout=120)
    assert as_csv.stdout.splitlines() == [",".join(names), "1,2,3,4"]
    assert list(store.sql("select date_time, * from smtp limit 1").columns[:2]) == [
        "date_time",
        "date_time_1",
    ]


def test_sql_json_bytes_are_hex_and_no_rows_is_one_line(cli, store):
    """The manifest's sketches (bytes) are hexadecimal text in JSON, not a Python repr; a result
    of no rows is one line naming its columns, not a table of empty headers."""
    got = json.loads(cli("sql", "select lookup from files limit 1", "--store", str(store.root),
                         "--json").stdout)  # fmt: skip
    assert re.fullmatch(r"[0-9a-f]+", got[0]["lookup"])
    empty = cli("sql", "select event_id, server from tracking where false", "--store",
                str(store.root))  # fmt: skip
    assert empty.exit_code == 0 and empty.stdout.strip() == "0 rows (columns: event_id, server)"


def test_one_path_or_domain_given_alone_is_one_item(tmp_path, monkeypatch):
    """A string where a list is asked is that one item: iterated, "/" walked the whole disk and
    "contoso.com" became the accepted domains ".", "c", "m", "n", "o", "s", "t"."""
    from loganalyzer.synth import generate

    logs = tmp_path / "logs"
    generate(logs, servers=1, messages=40, seed=2)
    tracking = next(logs.glob("EX01/MessageTracking*"))
    monkeypatch.chdir(tmp_path)
    store = tmp_path / "store"
    summary = la.ingest(str(tracking), store)
    assert summary.rows > 0
    assert summary.files and all(f.path.startswith(str(tracking)) for f in summary.files)
    day = la.Store(store).tracking()["date_time"].min().date().isoformat()
    report = la.daily_report(store, day, accepted_domains="contoso.com")
    assert report.accepted_domains == ["contoso.com"]
    forgotten = la.forget(tracking, store, dry_run=True)
    assert forgotten.files and all(f.startswith(str(tracking)) for f in forgotten.files)


def test_store_frames_take_arguments_as_trace_does(store):
    """A server in any case, one column given alone, a number as a recipient; an unknown
    column or an empty window is a BadInput naming it (were DuckDB's errors, or nothing)."""
    server = str(store.tracking(columns=["server"])["server"].iloc[0])
    assert len(store.tracking(server=server.lower())) == len(store.tracking(server=server)) > 0
    assert list(store.tracking(columns="event_id").columns) == ["event_id"]
    assert len(store.tracking(recipient=5)) == 0
    with pytest.raises(BadInput, match="'nope': no such column of tracking"):
        store.tracking(columns=["event_id", "nope"])
    with pytest.raises(BadInput, match="is not before until"):
        store.smtp(since="2026-03-03", until="2026-03-02")


def test_a_report_takes_a_count_given_as_text(store):
    """A notebook widget's "2" is 2 days (was a bare TypeError); a value that is no whole
    number is a BadInput naming it."""
    day = store.tracking(columns=["date_time"])["date_time"].max().date().isoformat()
    assert la.daily_report(store, day, days="2").period.days == 2
    with pytest.raises(BadInput, match=r"^days 'seven': give a whole number$"):
        la.daily_report(store, day, days="seven")
    with pytest.raises(BadInput, match=r"^limit 2\.5: give a whole number$"):
        la.daily_report(store, day, limit=2.5)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        # a typo answered "no rows" (a plausible "no failures")
        (lambda st: st.tracking(outcome="fail"), "outcome 'fail': not an outcome (one of: "),
        (lambda st: st.tracking(event_id="NOPE"), "--event-id 'NOPE': not a tracking event"),
        # DuckDB's own exceptions, and a string of parameters read as its characters
        (lambda st: st.sql("selec 1"), 'SQL: Parser Error: syntax error at or near "selec"'),
        (lambda st: st.sql("select ?", "x"), "SQL parameters 'x': give a list of values"),
        # TypeError and AttributeError from inside the library
        (lambda st: la.trace(st, 12345), "the ID 12345: give it as text"),
        (lambda st: la.trace(st, sender=["a@b.com"]), "--sender ['a@b.com']: give it as text"),
        (lambda st: la.trace(st, sender="*", limit=5.0), "--limit 5.0: give a whole number"),
        (lambda st: la.daily_report(st, accepted_domains=5), "5: give one value or a list"),
        (lambda st: la.analyze_headers(None), "headers None: give the text or bytes of a"),
        (
            lambda st: la.ingest(None, str(st.root) + "-other"),
            "nothing to ingest: no file in (none)",
        ),
        (lambda st: la.trace(5, "<a@b>"), "store 5: give the store's folder or URL"),
        (lambda st: la.explode_recipients(st.smtp()), "explode_recipients: give tracking rows"),
        (lambda st: la.forget(st.root, [st.root]), "store ["),  # the arguments swapped
    ],
)
def test_a_wrong_value_of_the_library_is_named_in_one_message(store, call, message):
    with pytest.raises(BadInput) as caught:
        call(store)
    assert str(caught.value).startswith(message)


def test_the_library_takes_what_a_notebook_user_gives(store, tmp_path):
    failed = store.tracking(outcome="failed")
    assert len(store.tracking(outcome="FAILED")) == len(failed) > 0
    ips = store.smtp(columns=["remote_ip"])["remote_ip"].dropna().astype(str).unique()
    ipv6 = next(ip for ip in ips if ip != ip.upper())  # compared as written, not upper-cased
    assert len(store.smtp(remote_ip=ipv6)) > 0
    assert la.Store(store).root == store.root  # a store where its path is asked
    listed = la.trace(store, sender="*", limit="3")  # a widget's value
    assert len(listed.candidates) == 3
    day = failed["date_time"].min().date().isoformat()
    one = la.daily_report(store, day, redact_addresses=True, redact_key="secret")
    assert (
        one.to_dict()
        == la.daily_report(store, day, redact_addresses=True, redact_key=b"secret").to_dict()
    )
    eml = tmp_path / "m.eml"
    eml.write_text("From: a@contoso.com\nTo: b@fabrikam.com\nMessage-ID: <x1@contoso.com>\n\nhi\n")
    by_path = la.analyze_headers(eml)
    with eml.open("rb") as fh:
        assert la.analyze_headers(fh).to_dict() == by_path.to_dict()
    assert by_path.to_dict() == la.analyze_headers(eml.read_text(), source=str(eml)).to_dict()


def test_an_ingest_shows_in_a_notebook_as_one_line(tmp_path):
    # Built: the README's la.ingest(...) left last in a cell printed a FileReport a file
    logs = la.sample_logs(tmp_path / "logs")
    summary = la.ingest([logs], tmp_path / "store")
    shown = repr(summary)
    assert "\n" not in shown and "FileReport" not in shown
    assert f"{summary.rows:,} rows" in shown and f"{len(summary.files):,} files ingested" in shown
    forgotten = la.forget([logs], tmp_path / "store", dry_run=True)
    assert repr(forgotten).startswith(f"ForgetSummary({forgotten.store!r}: would forget ")


def test_la_ingest_builds_the_rollups_as_the_command_does(tmp_path):
    """A notebook's ``la.ingest`` left the store without rollups, address index or per-day
    aggregates (``store check`` named five kinds missing; long reports and searches read
    every row instead): it builds them as ``loganalyzer ingest`` does."""
    import sys

    logs, store = tmp_path / "logs", tmp_path / "store"
    la.sample_logs(logs)
    script = (
        "import sys, loganalyzer as la; "
        "s = la.ingest([sys.argv[1]], sys.argv[2]); sys.exit(s.exit_code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(logs), str(store)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    check = subprocess.run(
        [LOGANALYZER, "store", "check", "--store", str(store), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stderr
    got = json.loads(check.stdout)
    assert got["ok"] and not [n for n in got["notices"] if "no rollups" in n], got["notices"]
    assert got["rollups"]["current"] and got["address_index"]["current"]
