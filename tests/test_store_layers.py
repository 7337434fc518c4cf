"""The store package imports no reader, the readers nothing above them, and the manifest's row
type has the manifest's columns."""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest
from conftest import LOGANALYZER

import loganalyzer as la
from loganalyzer.schema import columns
from loganalyzer.store import FileRow, Store
from loganalyzer.store.manifest import FIELDS

PACKAGE = Path(la.__file__).parent
#: Modules above each package (DESIGN.md, Layout): none of them may be imported from it,
#: not even inside a function.
ABOVE_READ = (
    "cli",
    "web",
    "watch",
    "terminal",
    "render",
    "headers",
    "trace",
    "report",
    "ingest",
    "worker",
    "cluster",
    "demo",
    "synth",
)
ABOVE = {
    "store": (*ABOVE_READ, "read", "query", "frames", "export", "lookup", "formats", "sources"),
    "read": ABOVE_READ,
}


def imported(path: Path) -> set[str]:
    """Every loganalyzer module ``path`` imports, at any depth of its code."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        out |= {n for n in names if n == "loganalyzer" or n.startswith("loganalyzer.")}
    return out


@pytest.mark.parametrize("package", sorted(ABOVE))
def test_a_package_imports_nothing_above_it(package):
    wrong = []
    for path in sorted((PACKAGE / package).glob("*.py")):
        for name in sorted(imported(path)):
            parts = name.split(".")
            if name == "loganalyzer" or (len(parts) > 1 and parts[1] in ABOVE[package]):
                wrong.append(f"{path.name}: {name}")
    assert wrong == []


def test_the_row_type_has_the_manifests_columns_in_order():
    assert list(FIELDS) == [name for name, _ in columns("manifest")]


def test_the_public_store_is_the_store_with_its_readers(tmp_path):
    assert issubclass(la.Store, Store)
    assert not hasattr(Store, "sql") and not hasattr(Store, "tracking")
    logs = la.sample_logs(tmp_path / "logs")
    la.ingest([logs], tmp_path / "store")
    st = la.Store(tmp_path / "store")
    manifest = st.manifest()
    assert manifest and all(isinstance(r, FileRow) for r in manifest.values())
    files = st.files()
    assert sorted(files["file_key"]) == sorted(manifest)
    for table, frame in (("tracking", st.tracking()), ("smtp", st.smtp())):
        assert sum(r.rows for r in manifest.values() if r.table == table) == len(frame) > 0
    # the command reads the store the same way: the manifest's files and row counts
    done = subprocess.run(
        [LOGANALYZER, "sql", "select file_key, rows from files", "--store", st.root, "--json"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    got = {r["file_key"]: r["rows"] for r in json.loads(done.stdout)}
    assert got == {k: r.rows for k, r in manifest.items()}
