"""Trace speed against a bare DuckDB lookup of the same Message-ID, in one run.

    python benchmarks/trace.py --store STORE --truth LOGS/truth.jsonl [--n 20]
    python benchmarks/trace.py --mb 2000        # generates and ingests 2 GB of synth logs first

Prints the median time of ``loganalyzer.trace(store, message_id)``, of a bare DuckDB query for
the same ID over the same Parquet files (the baseline), and the wall time of the CLI command.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb


def median_time(fn, ids) -> float:
    times = []
    for i in ids:
        t = time.perf_counter()
        fn(i)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store")
    ap.add_argument("--truth")
    ap.add_argument("--mb", type=float, default=2000)
    ap.add_argument("--n", type=int, default=20, help="messages to trace")
    args = ap.parse_args()
    from loganalyzer.ingest import ingest
    from loganalyzer.trace import trace

    if not args.store:
        from loganalyzer.synth import generate

        work = Path(tempfile.mkdtemp(prefix="la-trace-"))
        generate(work / "logs", servers=4, size_mb=args.mb, messages=20000, seed=1)
        ingest([work / "logs"], work / "store")
        args.store, args.truth = str(work / "store"), str(work / "logs" / "truth.jsonl")
    with open(args.truth, encoding="utf-8") as fh:
        ids = sorted({json.loads(x)["message_id"] for x in fh})
    rng = random.Random(1)
    sample = rng.sample(ids, min(args.n, len(ids)))
    glob = f"{args.store}/tracking/*/*.parquet"
    con = duckdb.connect()

    def bare(mid: str) -> None:
        con.execute(
            f"select * from read_parquet('{glob}', hive_partitioning = true) where message_id = ?",
            [mid],
        ).fetchall()

    def library(mid: str) -> None:
        result = trace(args.store, mid)
        assert result.messages, mid

    def cli(mid: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "loganalyzer", "trace", mid, "--store", args.store, "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    bare(sample[0])
    library(sample[0])  # warm the file cache for both
    size = sum(p.stat().st_size for p in Path(args.store).rglob("*.parquet")) / 1e6
    t_bare, t_lib = median_time(bare, sample), median_time(library, sample)
    t_cli = median_time(cli, sample[: max(3, args.n // 4)])
    print(f"store {size:,.0f} MB, {len(ids):,} messages, median of {len(sample)} traces")
    print(f"{'bare DuckDB lookup':<28}{t_bare:>8.3f} s")
    print(f"{'loganalyzer.trace()':<28}{t_lib:>8.3f} s  ({t_lib / t_bare:.1f}x the bare lookup)")
    print(f"{'loganalyzer trace (CLI)':<28}{t_cli:>8.3f} s  (wall, process start included)")


if __name__ == "__main__":
    main()
