"""Ingest speed and memory against two baselines measured in the same run.

    python benchmarks/ingest.py --mb 500          # generates 500 MB of synth logs first
    python benchmarks/ingest.py --logs DIR        # or uses existing tracking logs

(a) the fastest plain conversion with none of our work: pyarrow.dataset -> write_dataset, zstd;
(b) what a user writes in a notebook: pandas.read_csv of each file, then to_parquet;
(c) ``loganalyzer ingest``.
Each runs in its own process, twice: once timed, once for its peak memory, the highest PSS
(proportional set size: shared pages counted once) summed over its whole process tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

from common import TRACKING, run_child

FIELDS = TRACKING


def tracking_logs(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("MSGTRK*.LOG"))


def phase_pyarrow(logs: list[str], out: str) -> None:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    fmt = ds.CsvFileFormat(
        read_options=pacsv.ReadOptions(skip_rows=5, column_names=FIELDS),
        convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(FIELDS, pa.string())),
    )
    dataset = ds.dataset(logs, format=fmt)
    ds.write_dataset(
        dataset,
        out,
        format="parquet",
        existing_data_behavior="overwrite_or_ignore",
        file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
    )


def phase_pandas(logs: list[str], out: str) -> None:
    import pandas as pd

    os.makedirs(out, exist_ok=True)
    for i, path in enumerate(logs):
        df = pd.read_csv(path, skiprows=5, names=FIELDS, encoding="utf-8-sig", dtype=str)
        df.to_parquet(f"{out}/{i}.parquet", compression="zstd")


def phase_loganalyzer(logs: list[str], out: str) -> None:
    from loganalyzer.ingest import ingest

    summary = ingest(logs, out)
    assert summary.exit_code == 0 and summary.quarantined == 0, summary.to_dict()


PHASES = {"pyarrow": phase_pyarrow, "pandas": phase_pandas, "loganalyzer": phase_loganalyzer}


def measure(phase: str, logs_file: str, out: str) -> dict:
    """Run one phase in a child process twice: timed alone, then again sampling its process
    tree's memory (sampling would slow the timed run)."""
    args = [sys.executable, __file__, "--phase", phase, logs_file, out]
    code, seconds, _, _ = run_child(args, sample=False)
    if not code:
        shutil.rmtree(out, ignore_errors=True)
        code, _, peak, _ = run_child(args)
    if code:
        raise SystemExit(f"phase {phase} failed with exit code {code}")
    size = sum(f.stat().st_size for f in Path(out).rglob("*.parquet"))
    return {"phase": phase, "seconds": seconds, "peak_mb": peak / 1e6, "parquet_mb": size / 1e6}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--mb", type=float, default=200, help="MB of synth logs to generate")
    ap.add_argument("--logs", help="use the tracking logs under this folder instead")
    ap.add_argument("--keep", action="store_true", help="keep the generated logs and stores")
    ap.add_argument("--phase", nargs=3, help=argparse.SUPPRESS)
    args, rest = ap.parse_known_args()
    if rest and (len(rest) != 3 or rest[0] not in PHASES):  # a child's PHASE LOGS OUT, or a typo
        ap.error(f"unrecognized arguments: {' '.join(rest)}")
    if args.phase or rest:
        phase, logs_file, out = (args.phase or rest)[:3]
        PHASES[phase](Path(logs_file).read_text().split("\n"), out)
        return
    work = Path(tempfile.mkdtemp(prefix="la-bench-"))
    try:
        if args.logs:
            root = Path(args.logs)
        else:
            from loganalyzer.synth import generate

            root = work / "logs"
            t = time.perf_counter()
            generate(root, servers=4, size_mb=args.mb, seed=1)
            print(f"synth: {args.mb:.0f} MB of logs in {time.perf_counter() - t:.1f} s")
        logs = tracking_logs(root)
        mb = sum(p.stat().st_size for p in logs) / 1e6
        logs_file = work / "logs.txt"
        logs_file.write_text("\n".join(map(str, logs)))
        results = [measure(p, str(logs_file), str(work / f"out-{p}")) for p in PHASES]
        base = results[0]["seconds"]
        print(f"\n{len(logs)} tracking log files, {mb:,.0f} MB, {os.cpu_count()} cores\n")
        print(f"{'':<24}{'seconds':>9}{'MB/s':>9}{'vs (a)':>8}{'peak MB':>9}{'parquet MB':>12}")
        for label, r in zip(
            ("(a) pyarrow dataset", "(b) pandas per file", "(c) loganalyzer"), results, strict=True
        ):
            print(
                f"{label:<24}{r['seconds']:>9.2f}{mb / r['seconds']:>9.0f}"
                f"{base / r['seconds']:>8.2f}{r['peak_mb']:>9.0f}{r['parquet_mb']:>12.1f}"
            )
        print(json.dumps({"log_mb": mb, "results": results}))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}")


if __name__ == "__main__":
    main()
