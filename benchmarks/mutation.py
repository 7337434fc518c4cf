"""Mutation testing of the decision modules with mutmut: how many plausible one-token changes
to the code (a flipped comparison, a changed string, a dropped condition) some test catches.

    python benchmarks/mutation.py verdict              # one module (minutes on two cores)
    python benchmarks/mutation.py verdict received     # several, one after the other
    python benchmarks/mutation.py                      # all of them (an hour or more)
    python benchmarks/mutation.py verdict --list       # and name every surviving mutant
    python benchmarks/mutation.py metrics --workers 1  # one mutant at a time (default: 2)

Each module is mutated with its own fast, in-process tests only (a test that runs the
``loganalyzer`` command in a subprocess runs the unmutated code, and the slow end-to-end
tests would take hours here). The run happens in a copy of the checkout under
``build/mutation/<module>/`` (mutmut writes its ``mutants/`` there), so the checkout itself
is left as it is; ``mutmut show NAME`` in that folder shows a mutant's change. Needs the test
extra and mutmut 3 (``pip install mutmut``); not part of CI.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

#: What to mutate: its files (globs), and the tests that check them.
MODULES: dict[str, tuple[list[str], list[str]]] = {
    "verdict": (["loganalyzer/fate.py"], ["tests/test_verdict.py", "tests/test_fate.py"]),
    "eventcodes": (
        "eventcodes/__init__.py",
        ["tests/test_eventcodes_lookup.py", "tests/test_eventcodes.py"],
    ),
    "columns": (
        "loganalyzer/formats/columns.py",
        [
            "tests/test_columns.py",
            "tests/test_format_exchange2003.py",
            "tests/test_format_iis_smtp.py",
            "tests/test_format_smtp_protocol.py",
            "tests/test_formats_registry.py",
        ],
    ),
    "received": (
        "loganalyzer/headers/received.py",
        ["tests/test_received.py", "tests/test_headers.py"],
    ),
    # the headline figures and the queries of the sections of the tracking log, checked on a
    # hand-written day (test_report.py builds a synth store per run: minutes a mutant)
    "metrics": (
        [
            "loganalyzer/report/metrics.py",
            *(
                f"loganalyzer/report/sections/{s}.py"
                for s in ("totals", "changes", "traffic", "failures", "deferrals", "latency", "top")
            ),
        ],
        ["tests/test_report_figures.py"],
    ),
}
#: What the copy leaves out: environments, caches, earlier runs.
IGNORE = shutil.ignore_patterns(
    ".venv", ".git", "build", "mutants", "__pycache__", "*.egg-info", ".*_cache", ".hypothesis"
)


def configure(pyproject: Path, files: list[str], tests: list[str]) -> None:
    """Point the copy's ``[tool.mutmut]`` at one module's files and its tests."""
    text = pyproject.read_text()
    start = text.index("[tool.mutmut]")
    end = text.find("\n[", start + 1)
    section = (
        "[tool.mutmut]\n"
        'source_paths = ["loganalyzer", "eventcodes"]\n'
        + f"only_mutate = {files!r}\n".replace("'", '"')
        + f"pytest_add_cli_args_test_selection = {tests!r}\n".replace("'", '"')
        + 'pytest_add_cli_args = ["-q", "-p", "no:cacheprovider"]\n'
    )
    pyproject.write_text(text[:start] + section + (text[end:] if end != -1 else ""))


def run(name: str, list_survivors: bool, workers: int) -> Counter:
    files, tests = MODULES[name]
    work = ROOT / "build" / "mutation" / name
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(ROOT, work, ignore=IGNORE)
    configure(work / "pyproject.toml", files, tests)
    mutmut = [sys.executable, "-m", "mutmut"]
    started = time.monotonic()
    # mutmut draws a progress line per mutant: kept out of the output
    proc = subprocess.run(
        [*mutmut, "run", "--max-children", str(workers)], cwd=work, capture_output=True, text=True
    )
    if proc.returncode:
        sys.exit(f"{name}: mutmut run failed ({proc.returncode}):\n{proc.stdout[-3000:]}")
    results = subprocess.run(
        [*mutmut, "results", "--all", "true"], cwd=work, capture_output=True, text=True
    ).stdout
    status = dict(re.findall(r"^\s*(\S+__mutmut_\d+): (.+)$", results, re.M))
    counts = Counter(status.values())
    total = len(status)
    killed = counts["killed"] + counts["timeout"]
    score = killed / total if total else 0.0
    print(
        f"{name} ({', '.join(files)}): {total} mutants, {killed} killed ({score:.0%}), "
        + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()) if s != "killed")
        + f"; {time.monotonic() - started:.0f} s"
    )
    if len(files) > 1:
        # a mutant is named module.x_function__mutmut_N (a method: module.xǁClassǁmethod...)
        per_file: dict[str, Counter] = {}
        for mutant, s in status.items():
            per_file.setdefault(re.split(r"\.x[_ǁ]", mutant, maxsplit=1)[0], Counter())[s] += 1
        for mod, c in per_file.items():
            n = c["killed"] + c["timeout"]
            print(f"  {mod}: {c.total()} mutants, {n} killed ({n / c.total():.0%})")
    if list_survivors:
        for mutant, s in sorted(status.items()):
            if s not in ("killed", "timeout"):
                print(f"  {s}: {mutant}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("modules", nargs="*", help=f"of: {', '.join(MODULES)} [default: all]")
    parser.add_argument("--list", action="store_true", help="name every surviving mutant")
    parser.add_argument("--workers", type=int, default=2, help="mutants run at once [default: 2]")
    args = parser.parse_args()
    if unknown := [m for m in args.modules if m not in MODULES]:
        parser.error(f"unknown module {unknown[0]!r}: one of {', '.join(MODULES)}")
    for name in args.modules or list(MODULES):
        run(name, args.list, args.workers)


if __name__ == "__main__":
    main()
