"""The web app in process (Starlette's test client): reports computed once and kept until the
store changes, a range of days, and wrong values answered with the library's one-line message."""

from __future__ import annotations

import json
import re
import warnings

import pytest

from loganalyzer.ingest import ingest
from loganalyzer.synth import generate
from loganalyzer.web import app as web_app
from loganalyzer.web import create_app

with warnings.catch_warnings():  # this Starlette would rather have httpx2 (httpx works)
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

#: The app answers on loopback names only (TestClient's default is "testserver").
LOCAL = "http://localhost"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    base = tmp_path_factory.mktemp("webapp")
    generate(base / "logs", servers=1, days=2, messages=20, seed=5, headers=2)
    assert ingest([base / "logs"], base / "store").exit_code == 0
    return base / "store"


def test_a_report_is_computed_once_until_the_store_changes(store, monkeypatch):
    client = TestClient(create_app(str(store)), base_url=LOCAL)
    first = client.get("/report", params={"date": "2026-03-03"})
    assert first.status_code == 200
    assert "2026-03-03" in first.text
    calls = []
    real = web_app.daily_report
    monkeypatch.setattr(web_app, "daily_report", lambda *a, **k: calls.append(a) or real(*a, **k))
    again = client.get("/report", params={"date": "2026-03-03"})
    assert again.text == first.text and calls == []
    # an ingest changes the manifest: the report is computed afresh
    monkeypatch.setattr(web_app.data, "signature", lambda store: ("changed",))
    client.get("/report", params={"date": "2026-03-03"})
    assert len(calls) == 1


def test_a_report_without_a_day_is_of_the_newest_day_the_store_holds(store):
    """It was of yesterday by the wall clock: an empty report of a day the store never held."""
    client = TestClient(create_app(str(store)), base_url=LOCAL)
    newest = client.get("/report", params={"date": "2026-03-03"})
    for params in ({}, {"date": ""}, {"date": " "}):
        r = client.get("/report", params=params)
        assert r.status_code == 200 and r.text == newest.text, params


def test_a_search_until_a_day_covers_that_day(store):
    """Since and Until the same day was refused: "Since ... is not before Until ..."."""
    client = TestClient(create_app(str(store)), base_url=LOCAL)
    total = re.compile(r'<p id="total"><strong>([\d,]+)</strong>')
    search = {"sender": "*", "since": "2026-03-02"}
    day = client.get("/", params=search | {"until": "2026-03-03T00:00"})
    same = client.get("/", params=search | {"until": "2026-03-02"})
    assert same.status_code == 200
    assert total.search(same.text)[1] == total.search(day.text)[1] != "0"


def test_a_range_of_days(store):
    client = TestClient(create_app(str(store)), base_url=LOCAL)
    r = client.get("/report", params={"date": "2026-03-03", "days": "2"})
    assert r.status_code == 200
    assert "2026-03-02" in r.text and "2026-03-03" in r.text
    assert "script-src 'sha256-" in r.headers["content-security-policy"]
    assert r.headers["content-security-policy"].endswith("; frame-ancestors 'none'")


@pytest.mark.parametrize(
    ("path", "params", "message"),
    [
        ("/report", {"days": "0"}, "days &#39;0&#39;: give a whole number from 1 to 366"),
        ("/report", {"date": "someday"}, "Date &#39;someday&#39;: not a date"),
        ("/report", {"date": "2026-03-03", "tz": "Mars/Olympus"}, "zone &#39;Mars/Olympus&#39;"),
        ("/", {"since": "last tuesday"}, "Since &#39;last tuesday&#39;: not a time"),
        ("/", {"since": "2026-03-03", "until": "2026-03-02"}, "is not before Until"),
        ("/", {"since": "0001-01-01"}, "Since &#39;0001-01-01&#39;: out of range; give a time"),
        ("/", {"until": "9999-12-31T23:59+00:00"}, "from 0100-01-01 to 9899-12-31"),
        ("/", {"q": "<>"}, "The ID &#39;&lt;&gt;&#39;: give a Message-ID"),
        ("/", {"recipient": "*", "page": "x"}, "page &#39;x&#39;: give a whole number"),
        ("/trace", {}, "give a message ID"),
        ("/", {"tz": "Mars/Olympus"}, "unknown time zone &#39;Mars/Olympus&#39;"),
    ],
)
def test_wrong_values_are_named(store, path, params, message):
    r = TestClient(create_app(str(store)), base_url=LOCAL).get(path, params=params)
    assert r.status_code == 400
    assert message in r.text
    assert "Traceback" not in r.text
    said = re.search(r'<p class="la-error" role="alert">(.*?)</p>', r.text, re.S)
    assert said and " --" not in said[1]  # the page's words, not the command's options


def test_form_errors_name_the_fields_and_an_address_as_id_gets_a_hint(store):
    """The form's messages name its fields, not the command's options; an address typed in
    the ID box that matches nothing says where addresses go."""
    client = TestClient(create_app(str(store)), base_url=LOCAL)
    r = client.get("/", params={"since": "garbage"})
    assert r.status_code == 400 and "--since" not in r.text and "Since &#39;garbage&#39;" in r.text
    r = client.get("/", params={"q": "omar.bernard@example.net"})
    assert r.status_code == 200 and 'id="hint"' in r.text and "Sender or Recipient" in r.text
    assert 'id="hint"' not in client.get("/", params={"q": "<omar@example.net>"}).text


def test_a_message_not_in_the_store(store):
    r = TestClient(create_app(str(store)), base_url=LOCAL).get(
        "/trace", params={"id": "<none@example.net>"}
    )
    assert r.status_code == 404
    assert "No message in the store matches Message-ID &lt;none@example.net&gt;." in r.text


def test_an_uploaded_eml_is_joined_to_its_trace(store):
    logs = store.parent / "logs"
    eml = logs / "headers" / "1.eml"
    mid = re.search(r"^Message-ID: (<[^>]+>)", eml.read_text(encoding="utf-8"), re.M)[1]
    truth = [json.loads(x) for x in (logs / "truth.jsonl").open(encoding="utf-8")]
    recipients = {t["recipient"]: t["verdict"] for t in truth if t["message_id"] == mid}
    client = TestClient(create_app(str(store)), base_url=LOCAL)
    csrf = re.search(r'name="csrf" value="(\w+)"', client.get("/headers").text)[1]
    files = {"file": ("1.eml", eml.read_bytes(), "message/rfc822")}
    r = client.post("/headers", data={"csrf": csrf}, files=files)
    assert r.status_code == 200
    assert "<h2>Trace from the logs</h2>" in r.text
    rows = re.findall(r'<tr class="v-(\w+)">\s*<td[^>]*>([^<]+)</td>', r.text)
    assert {a: v for v, a in rows} == recipients
    empty = client.post("/headers", data={"csrf": csrf, "text": "  "})
    assert empty.status_code == 400
    assert "paste a message&#39;s headers or choose a .eml file" in empty.text


def test_the_status_page_gives_days_without_rows_as_runs(tmp_path, monkeypatch):
    # a server with years of gaps listed every missing date, one by one (1,243 of them)
    generate(tmp_path / "logs", servers=1, days=6, messages=30, seed=5)
    kept = [f for f in (tmp_path / "logs").rglob("*.LOG") if re.search(r"2026030[247]", f.name)]
    assert ingest(kept, tmp_path / "store").exit_code == 0
    client = TestClient(create_app(str(tmp_path / "store")), base_url=LOCAL)
    cells = re.findall(r"<td>([^<]*days: [^<]*)</td>", client.get("/status").text)
    assert cells and set(cells) == {"3 days: 2026-03-03, 2026-03-05 to 2026-03-06"}, cells
    monkeypatch.setattr(web_app.data, "GAP_RUNS", 1)
    cells = re.findall(r"<td>([^<]*days: [^<]*)</td>", client.get("/status").text)
    assert set(cells) == {"3 days: 2026-03-03 (the first 1 of 2 runs)"}, cells


def test_reports_keep_the_shared_databases_memory_limit_and_spill_folder(store):
    """The app's one database (``serve``) keeps its settings: each report set its own memory
    limit and spill folder on it, then removed the folder; once a report had spilled, DuckDB
    refused the next one's folder and every search and report answered 500 until a restart."""
    import duckdb

    from loganalyzer.store.duck import limits, share

    database = duckdb.connect(config={"threads": 1, **limits("1GB")})
    share(database)
    try:
        settings = "select current_setting('memory_limit'), current_setting('temp_directory')"
        before = database.sql(settings).fetchall()
        client = TestClient(create_app(str(store)), base_url=LOCAL)
        for day in ("2026-03-02", "2026-03-03"):
            assert client.get("/report", params={"date": day}).status_code == 200
        assert database.sql(settings).fetchall() == before
        assert client.get("/", params={"verdict": "delivered"}).status_code == 200
    finally:
        share(None)
        database.close()
