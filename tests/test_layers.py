"""The layers of the code (README: Architecture; the contract in pyproject.toml) hold: no
import points from a lower layer to a higher one, not even inside a function."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_lint_imports_keeps_every_contract():
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or shutil.which(
        "lint-imports"
    )
    assert exe, "import-linter is in the test extra: pip install -e '.[test]'"
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "Contracts: 2 kept, 0 broken." in done.stdout


def test_a_lower_layer_importing_a_higher_one_is_caught(tmp_path):
    """The contract is not vacuous: a copy of the package where the store imports a reader
    breaks it (and names the import)."""
    copy = tmp_path / "src"
    shutil.copytree(
        ROOT / "loganalyzer", copy / "loganalyzer", ignore=shutil.ignore_patterns("*.pyc")
    )
    shutil.copytree(ROOT / "eventcodes", copy / "eventcodes")
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    check = copy / "loganalyzer" / "store" / "check.py"
    check.write_text(check.read_text() + "\n\ndef _up():\n    from loganalyzer.read import query\n")
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    done = subprocess.run(
        [exe],
        cwd=copy,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(copy)},
    )
    assert done.returncode == 1, done.stdout[-2000:]
    assert "loganalyzer.store.check -> loganalyzer.read.query" in done.stdout
