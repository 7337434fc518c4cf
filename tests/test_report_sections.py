"""The report's sections: one module each in an explicit registry; a new section is one module
and one registry line, and then shows in the tables, the JSON, the page and its charts."""

from __future__ import annotations

import json
import pkgutil
import re
import subprocess
from decimal import Decimal

import pandas as pd
import plotly.graph_objects as go
import pytest
from conftest import CORPUS, LOGANALYZER
from reportdata import DAY, synth_store

import loganalyzer
import loganalyzer.report.html  # noqa: F401  (loaded before the test adds a section)
import loganalyzer.report.sections as registry
from loganalyzer.report import daily_report
from loganalyzer.report.sections import Inputs, Report, Section, Table


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    return synth_store(tmp_path_factory)


def test_every_section_module_is_in_the_registry_and_every_table_in_one_section():
    modules = {
        m.name
        for m in pkgutil.iter_modules(registry.__path__)
        if m.name not in ("base", "__init__")
    }
    assert modules == {s.id for s in registry.SECTIONS}
    names = [t.name for s in registry.SECTIONS for t in s.tables]
    assert len(names) == len(set(names)) == len(registry.TABLES)


def test_the_tables_computed_are_those_the_sections_declare(synth):
    report = daily_report(synth[1], DAY)
    declared = [t.name for s in registry.SECTIONS for t in s.tables]
    # "daily" only over several days, the VIP section's tables only with a VIP list
    absent = {"daily", "vip_counts", "vip_events"}
    assert list(report.metrics) == [n for n in declared if n not in absent]
    assert [sid for sid, _, _ in report.sections()] == [
        "totals",
        "changes",
        "traffic",
        "failures",
        "deferrals",
        "queues",
        "latency",
        "top",
        "rejected",
        "smtp",
        "tls",
        "clients",
        "quality",
    ]  # (history: a report of several days)
    first = daily_report(synth[1], DAY, problems_first=True)
    assert [sid for sid, _, _ in first.sections()] == [
        "failures",
        "deferrals",
        "queues",
        "rejected",
        "quality",
        "smtp",
        "tls",
        "clients",
        "changes",
        "totals",
        "traffic",
        "latency",
        "top",
    ]


def _servers(q: Inputs) -> dict[str, pd.DataFrame]:
    df = q.con.execute(
        "select server, count(*) as rows from trk where date_time >= ? and date_time < ? "
        "group by 1 order by 1",
        q.ctx.window(),
    ).df()
    return {"server_rows": df}


def _chart(r: Report) -> dict[str, go.Figure]:
    df = r.metrics["server_rows"]
    return {"server_rows": go.Figure(go.Bar(x=list(df["server"]), y=list(df["rows"])))}


SERVERS = Section(
    id="servers",
    title="Rows per server",
    tables=(Table("server_rows", "Tracking rows per server"),),
    compute=_servers,
    charts=_chart,
    note=lambda r: f"{len(r.metrics['server_rows'])} servers logged.",
    attention=lambda r: ["Servers: see the new section."],
    attention_rank=5,
    problems=1,
    rules={"servers": "Rows: tracking log rows in the period."},
)


def test_a_new_section_is_one_module_and_one_registry_line(synth, monkeypatch):
    monkeypatch.setattr(registry, "SECTIONS", (*registry.SECTIONS, SERVERS))
    monkeypatch.setattr(registry, "TABLES", {**registry.TABLES, "server_rows": SERVERS.tables[0]})
    report = daily_report(synth[1], DAY, problems_first=True)
    rows = loganalyzer.Store(synth[1]).sql(
        "select server, count(*) as n from tracking "
        f"where date_time >= timestamptz '{DAY} 00:00:00+00' "
        f"and date_time < timestamptz '{DAY} 00:00:00+00' + interval 1 day "
        "group by 1 order by 1"
    )
    assert dict(zip(rows["server"], rows["n"], strict=True)) == dict(
        zip(report.server_rows["server"], report.server_rows["rows"], strict=True)
    )
    assert len(report.server_rows) >= 2
    assert report.sections()[0] == ("servers", "Rows per server", ["server_rows"])
    assert report.attention()[0] == "Servers: see the new section."
    d = report.to_dict()
    assert d["tables"]["server_rows"] == [
        {"server": s, "rows": int(n)} for s, n in zip(rows["server"], rows["n"], strict=True)
    ]
    assert d["rules"]["servers"] == "Rows: tracking log rows in the period."
    assert "server_rows" in report.figures
    page = report.to_html()
    section = re.search(r'<section id="servers">(.*?)</section>', page, re.S)
    assert section and section.start() < page.index('<section id="failures">')
    body = section.group(1)
    assert "<h2>Rows per server</h2>" in body and f"{len(rows)} servers logged." in body
    assert 'id="t-server_rows"' in body and "<h3>Tracking rows per server</h3>" in body
    assert 'data-figure="la-fig-server_rows-data"' in body


def test_the_command_writes_every_section_of_the_registry(synth, tmp_path):
    out = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", synth[1], "--date", DAY, "--traces", "0"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr
    page = (tmp_path / f"mail-flow-{DAY}.html").read_text(encoding="utf-8")
    ids = re.findall(r'<section id="([a-z_]+)">', page)
    # the VIP section needs --vip, the history several days
    shown = [s for s in registry.SECTIONS if s.id not in ("vip", "history")]
    assert ids == [s.id for s in shown] + ["rules"]
    for s in shown:
        assert f"<h2>{s.title}</h2>" in page
    out = subprocess.run(
        [LOGANALYZER, "report", "daily", "--store", synth[1], "--date", DAY, "--json"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    tables = json.loads(out.stdout)["tables"]
    assert set(tables) == set(registry.TABLES) - {"daily", "vip_counts", "vip_events"}


def _plain(value):
    """A figure's JSON with plotly's typed arrays (``bdata``) decoded to lists."""
    import base64

    import numpy as np

    if isinstance(value, dict):
        if set(value) == {"bdata", "dtype"}:
            raw = base64.b64decode(value["bdata"])
            return np.frombuffer(raw, dtype=value["dtype"]).tolist()
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def test_every_chart_is_the_plotly_figure_its_graph_object_gives(synth):
    """The page writes the charts as plain data, unvalidated: each must be a valid plotly
    figure (a misspelt property raises here) whose JSON is the graph object's."""
    import numpy as np
    import plotly.io as pio

    from loganalyzer.report.charts import Chart, themed
    from loganalyzer.report.html import _figure_json

    for rollups in (False, True):  # from rows, and from rollups (DuckDB's decimal sums)
        report = daily_report(synth[1], DAY, days=3, rollups=rollups)
        charts = {n: f for figs in registry.figures(report).values() for n, f in figs.items()}
        assert len(charts) >= 12 and all(isinstance(f, Chart) for f in charts.values())
        for name, chart in charts.items():
            page = json.loads(_figure_json(chart))
            validated = json.loads(pio.to_json(chart.figure(), validate=True))
            assert _plain(page) == _plain(validated), name
            assert page["data"] and page["layout"]["title"]["text"], name
        assert set(report.figures) == set(charts)
        assert all(isinstance(f, go.Figure) for f in report.figures.values())
    # values the report's data may hold: missing, infinite, numpy, times
    odd = Chart().add_scatter(
        x=[pd.Timestamp("2026-03-02 10:00", tz="UTC"), pd.Timestamp("2026-03-02").date(), "x", 4],
        y=[np.int64(3), float("nan"), float("inf"), Decimal("2.5")],
        name="NaN <b>",
    )
    themed(odd)
    assert json.loads(odd.to_json()) == _plain(json.loads(pio.to_json(odd.figure())))


def test_one_quarantined_line_is_said_in_the_singular(tmp_path):
    # Real: the protocol logs of tests/corpus hold one stray IMAP line
    store = str(tmp_path / "store")
    ingested = subprocess.run([LOGANALYZER, "ingest", str(CORPUS / "smtp-protocol"), "--store",
                               store], capture_output=True, text=True)  # fmt: skip
    assert "1 quarantined line;" in " ".join(ingested.stdout.split()), ingested.stderr
    done = subprocess.run([LOGANALYZER, "report", "daily", "--date", "2021-05-29", "--store",
                           store, "--json"], capture_output=True, text=True)  # fmt: skip
    # the session from 37.49.225.153 left during the tarpit of its failed login: no 535;
    # protocol logs alone, none with a message: said (first), rather than a bare "0 messages
    # received"
    assert json.loads(done.stdout)["attention"] == [
        "No tracking logs of 2021-05-29: the SMTP logs show 0 messages accepted, 0 sent on (the "
        "message and recipient figures come from tracking logs).",
        "1 log line quarantined.",
        "1 failed SMTP authentication from 1 remote IP (most: 37.49.225.153, 1).",
    ]
