"""Every notebook runs top to bottom on the bundled samples, with no edits."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from conftest import ROOT
from nbclient import NotebookClient

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01-quickstart.ipynb",
        "02-trace-a-lost-message.ipynb",
        "03-failures-and-deferrals.ipynb",
        "04-traffic-and-latency.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_committed_without_outputs(path: Path):
    nb = nbformat.read(path, as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert sum(c.cell_type == "markdown" for c in nb.cells) >= 3  # prose between the steps


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path: Path, tmp_path: Path):
    nb = nbformat.read(path, as_version=4)
    NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()
    errors = [
        o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"
    ]
    assert errors == []
    last = [c for c in nb.cells if c.cell_type == "code"][-1]
    assert last.outputs, "the last cell shows a result"


def test_the_notebook_extra_installs_what_opens_them():
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    names = {re.split(r"[<>=;\[ ]", d)[0] for d in project["optional-dependencies"]["notebook"]}
    assert names == {"jupyterlab", "ipykernel"}
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert "pip install -e '.[notebook]' && jupyter lab notebooks/" in readme
