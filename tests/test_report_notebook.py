"""A report shown in a notebook carries plotly.js once per notebook session, where that is safe.

The kernel tests run a real IPython kernel and send what JupyterLab sends with each run (the
cell's ``cellId``, the ``deletedCells``); the page tests lay the outputs out as a reopened
notebook does, in order, and look at them in Chromium.
"""

from __future__ import annotations

import queue
import re
import uuid
from pathlib import Path

import pytest
from jupyter_client.manager import start_new_kernel

import loganalyzer as la
from loganalyzer.report import notebook

DAY = "2026-03-02"
CHARTS_DRAWN = (
    "Array.from(document.querySelectorAll('.chart'))"
    ".every(c => c.querySelector('.main-svg') !== null)"
)
PLOTLY_JS_SIZE = 3_000_000  # the bundle is about 4.6 MB


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("notebook")
    la.ingest([la.sample_logs(folder / "logs")], folder / "store")
    return folder / "store"


@pytest.fixture(scope="module")
def report(store):
    return la.daily_report(store, DAY)


class FakeShell:
    """What ``notebook`` reads of an IPython kernel: the request being run, and the events."""

    def __init__(self) -> None:
        self.request: dict = {}
        self.kernel = self
        self.events = self
        self.callbacks: list = []

    def get_parent(self, channel: str) -> dict:
        return self.request

    def register(self, event: str, callback) -> None:
        self.callbacks.append(callback)

    def run(self, cell: str, deleted: tuple[str, ...] = ()) -> None:
        for callback in self.callbacks:
            callback(type("Info", (), {"cell_id": cell})())
        meta = {"cellId": cell, "deletedCells": list(deleted)}
        self.request = {"header": {"session": "s1"}, "metadata": meta}


def test_outside_a_notebook_each_report_carries_plotly(report):
    first, second = report._repr_html_(), report._repr_html_()
    assert len(first) > PLOTLY_JS_SIZE and len(second) > PLOTLY_JS_SIZE


def test_the_second_report_of_a_notebook_uses_the_first_ones_plotly(report, monkeypatch):
    shell = FakeShell()
    monkeypatch.setattr(notebook, "_shell", lambda: shell)
    monkeypatch.setattr(notebook, "_CARRIERS", {})
    monkeypatch.setattr(notebook, "_watching", set())
    shell.run("a")
    first = report._repr_html_()
    shell.run("b")
    second = report._repr_html_()
    assert len(first) > PLOTLY_JS_SIZE and len(second) < len(first) / 10
    for page in (first, second):  # each draws its own figures, with the loaded Plotly
        assert "Plotly.newPlot(el, fig.data" in page and "window.Plotly" in page
        assert page.count('<script type="application/json"') >= len(report.figures) >= 12
    blocks = re.findall(r'<script type="application/json" id="[^"]*">(.*?)</script>', first)
    assert blocks and all(b in second for b in blocks)  # the same figures' data
    assert len(report._repr_html_()) == len(second)  # b again: still a carries it
    shell.run("a")  # a is run again: its output, and the plotly.js in it, is replaced
    assert len(report._repr_html_()) > PLOTLY_JS_SIZE
    shell.run("b", deleted=("a",))  # a was deleted
    assert len(report._repr_html_()) > PLOTLY_JS_SIZE
    shell.request = {"header": {"session": "s1"}, "metadata": {}}  # a front end without ids
    assert len(report._repr_html_()) > PLOTLY_JS_SIZE


def _run(kc, code: str, cell: str, deleted: tuple[str, ...] = ()) -> list[str]:
    """Run ``code`` as JupyterLab runs a cell; the HTML of its outputs."""
    msg = kc.session.msg(
        "execute_request",
        {"code": code, "silent": False, "store_history": True, "allow_stdin": False},
        metadata={"cellId": cell, "deletedCells": list(deleted)},
    )
    kc.shell_channel.send(msg)
    out = []
    while True:
        try:
            reply = kc.get_iopub_msg(timeout=120)
        except queue.Empty:
            pytest.fail(f"no answer from the kernel to {code!r}")
        if reply["parent_header"].get("msg_id") != msg["header"]["msg_id"]:
            continue
        kind, content = reply["msg_type"], reply["content"]
        if kind == "error":
            pytest.fail("\n".join(content["traceback"]))
        if kind in ("display_data", "execute_result") and "text/html" in content["data"]:
            out.append(content["data"]["text/html"])
        if kind == "status" and content["execution_state"] == "idle":
            return out


@pytest.fixture(scope="module")
def outputs(store) -> dict[str, str]:
    """The outputs of three cells of one notebook session: a report, another, a re-run."""
    km, kc = start_new_kernel(kernel_name="python3")
    try:
        _run(kc, f"import loganalyzer as la\nr = la.daily_report({str(store)!r}, {DAY!r})", "c0")
        [first] = _run(kc, "r", "c1")
        [second] = _run(kc, "display(r)", "c2")
        [again] = _run(kc, "r", "c1")  # the first cell run again
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    return {"first": first, "second": second, "again": again}


def test_a_kernel_sends_plotly_once_and_again_when_its_cell_is_run_again(outputs):
    assert len(outputs["first"]) > PLOTLY_JS_SIZE
    assert len(outputs["second"]) < len(outputs["first"]) / 10
    assert len(outputs["again"]) > PLOTLY_JS_SIZE


def _notebook_page(tmp_path: Path, *parts: str) -> Path:
    """Outputs one after another, as a reopened notebook shows them."""
    path = tmp_path / f"{uuid.uuid4().hex}.html"
    body = "".join(f'<div class="output">{p}</div>' for p in parts)
    path.write_text(f"<!DOCTYPE html><html><body>{body}</body></html>", encoding="utf-8")
    return path


@pytest.mark.parametrize("order", ["saved", "second-above"])
def test_a_reopened_notebook_draws_every_report(browser, tmp_path, outputs, order):
    parts = [outputs["first"], outputs["second"]]
    page = browser(_notebook_page(tmp_path, *(parts if order == "saved" else parts[::-1])))
    assert page.wait_for(CHARTS_DRAWN), "a chart did not draw"
    drawn = page.evaluate("document.querySelectorAll('.chart .main-svg').length")
    assert drawn >= 2 * 12
    assert page.evaluate("document.body.innerText").count("The charts are not drawn") == 0
    assert page.problems() == []


def test_without_the_output_that_carried_plotly_a_report_says_why(browser, tmp_path, outputs):
    page = browser(_notebook_page(tmp_path, outputs["second"]))
    text = page.evaluate("document.body.innerText")
    assert "The charts are not drawn" in text and "run its cell again" in text
    assert page.evaluate("document.querySelectorAll('.chart .main-svg').length") == 0
