"""Coverage-guided fuzzing (atheris) of every format parser, on mutated real samples.

    python tests/fuzz/fuzz_parsers.py -max_total_time=600     # a long run
    python tests/fuzz/fuzz_parsers.py -runs=3000               # what the tests run

Each input is a sample file of the corpus, mutated by libFuzzer. It goes through format
detection and the format's parser, as ingest runs them. The only acceptable outcomes are rows
and quarantined lines with a reason, every line accounted for once; anything else (an
exception, a line both a row and quarantined, a line number past the end) is a finding, saved
by libFuzzer as a crash-* file. libFuzzer prints the executions ("Done N runs") and stops at
the first finding; the README's reliability section keeps the figures of the last long run.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["loganalyzer", "eventcodes"]):
    from loganalyzer import formats
    from loganalyzer.formats.base import ReadState
    from loganalyzer.formats.common import Context

CORPUS = Path(__file__).resolve().parents[1] / "corpus"
STATS = {"executions": 0, "parsed": 0, "refused": 0}


def parse_all(data: bytes, name: str, forced: str | None = None) -> tuple[list, list]:
    """Every row and quarantined line of ``data`` parsed as the file ``name``."""
    try:
        module, found = formats.detect(data[: 64 << 10], name, forced=forced)
    except formats.NotALog:
        STATS["refused"] += 1
        return [], []
    ctx = Context(path=name, log_type=found.log_type, final=True, forced=bool(forced))
    lines, bad = [], []
    for batch in module.parse(io.BytesIO(data), ReadState(), ctx):
        bad += [b.line for b in batch.bad]
        assert all(b.reason for b in batch.bad), "a quarantined line without a reason"
        if batch.table is not None:
            lines += batch.table.column("line").to_pylist()
    STATS["parsed"] += 1
    return lines, bad


def check(data: bytes, name: str) -> None:
    lines, bad = parse_all(data, name)
    assert len(set(lines)) == len(lines), "a line became two rows"
    assert not set(lines) & set(bad), "a line is both a row and quarantined"
    physical = data.count(b"\n") + 1
    assert all(1 <= n <= physical for n in lines + bad), "a line number past the end"


SEEDS = sorted(p for p in CORPUS.rglob("*") if p.is_file() and p.suffix not in (".md", ".txt"))


def one_input(data: bytes) -> None:
    STATS["executions"] += 1
    if not data:
        return
    seed = SEEDS[data[0] % len(SEEDS)]
    check(data[1:], seed.name)


if __name__ == "__main__":
    seeds_dir = Path(__file__).parent / "seeds"
    if not seeds_dir.exists():
        seeds_dir.mkdir()
        for i, p in enumerate(SEEDS):
            (seeds_dir / f"{i:02d}").write_bytes(bytes([i]) + p.read_bytes())
    atheris.Setup([sys.argv[0], *sys.argv[1:], str(seeds_dir)], one_input)
    atheris.Fuzz()
