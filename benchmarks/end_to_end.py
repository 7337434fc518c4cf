"""End to end on synth logs: ingest, trace, daily report and SQL, each beside its baseline.

    python benchmarks/end_to_end.py --logs DIR     # a synth folder (with truth.jsonl)
    python benchmarks/end_to_end.py --mb 2000      # generates 2 GB of synth logs first

Steps, each in its own process (time, and peak memory as the PSS of its process tree; the
ingest steps run --repeat times each, in turn, timed (their median, and the ratio of each
pair), then once more for memory, as sampling memory slows them):
  ingest   pyarrow CSV-to-Parquet of the same files (dataset per log kind, zstd) | ingest
  trace    a bare DuckDB lookup of the Message-ID over the tracking Parquet files |
           loganalyzer.trace(store, message_id), median of --n messages; and the CLI's wall
  report   a bare DuckDB count of the day's rows | loganalyzer.daily_report(store, date)
  sql      the same aggregation with bare DuckDB over the files | Store.sql()
then ``store compact`` (timed), and trace, report and SQL again on the compacted store.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import PROTOCOL, TRACKING, run_child

TRACKING_FIELDS, PROTOCOL_FIELDS = TRACKING, PROTOCOL
SQL = (
    "select date, event_id, count(*) as n, sum(total_bytes) as bytes, "
    "count(distinct message_id) as messages from {tracking} group by all order by all"
)


# -- steps (each runs in a child process and prints one JSON line) -----------------------------


def step_ingest_baseline(logs: str, store: str, **_) -> dict:
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.dataset as ds

    root = Path(logs)
    kinds = {
        "tracking": (sorted(root.glob("*/MessageTracking/*.LOG")), TRACKING_FIELDS),
        "smtp": (sorted(root.glob("*/ProtocolLog/*/*.LOG")), PROTOCOL_FIELDS),
    }
    for name, (files, fields) in kinds.items():
        fmt = ds.CsvFileFormat(
            read_options=pacsv.ReadOptions(skip_rows=5, column_names=fields),
            convert_options=pacsv.ConvertOptions(column_types=dict.fromkeys(fields, pa.string())),
        )
        ds.write_dataset(
            ds.dataset([str(f) for f in files], format=fmt),
            f"{store}/{name}",
            format="parquet",
            existing_data_behavior="overwrite_or_ignore",
            file_options=ds.ParquetFileFormat().make_write_options(compression="zstd"),
        )
    return {}


def step_ingest(logs: str, store: str, **_) -> dict:
    from loganalyzer import ingest

    summary = ingest([logs], store)
    assert summary.exit_code == 0, summary.to_dict()["files"]
    return {"rows": summary.rows, "files": summary.count("ingested")}


def step_compact(store: str, **_) -> dict:
    from loganalyzer.store.compact import compact

    return compact(store).to_dict() | {"partitions": None}


def _sample(logs: str, n: int) -> list[str]:
    with open(Path(logs) / "truth.jsonl", encoding="utf-8") as fh:
        ids = sorted({json.loads(x)["message_id"] for x in fh})
    return random.Random(1).sample(ids, min(n, len(ids)))


def _median(fn, items) -> float:
    fn(items[0])  # warm the file cache and the imports
    times = []
    for item in items:
        t = time.perf_counter()
        fn(item)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def step_trace(logs: str, store: str, n: int, **_) -> dict:
    from loganalyzer import trace

    def one(mid: str) -> None:
        assert trace(store, mid).messages, mid

    return {"seconds": _median(one, _sample(logs, n))}


def step_trace_bare(logs: str, store: str, n: int, **_) -> dict:
    import duckdb

    con = duckdb.connect()
    glob = f"{store}/tracking/*/*.parquet"

    def one(mid: str) -> None:
        con.execute(
            f"select * from read_parquet('{glob}', hive_partitioning = true) where message_id = ?",
            [mid],
        ).fetchall()

    return {"seconds": _median(one, _sample(logs, n))}


def step_trace_cli(logs: str, store: str, n: int, **_) -> dict:
    def one(mid: str) -> None:
        subprocess.run(
            [sys.executable, "-m", "loganalyzer", "trace", mid, "--store", store, "--json"],
            check=True,
            stdout=subprocess.DEVNULL,
        )

    return {"seconds": _median(one, _sample(logs, max(3, n // 4)))}


def step_report(store: str, date: str, **_) -> dict:
    try:
        from loganalyzer import daily_report
    except (ImportError, AttributeError) as exc:
        return {"unavailable": str(exc)}
    t = time.perf_counter()
    report = daily_report(store, date)
    return {"seconds": time.perf_counter() - t, "html_kb": len(report.to_html()) // 1024}


def step_report_bare(store: str, date: str, **_) -> dict:
    import duckdb

    t = time.perf_counter()
    duckdb.sql(
        f"select (select count(*) from read_parquet('{store}/tracking/*/*.parquet', "
        f"hive_partitioning = true) where date = '{date}'), "
        f"(select count(*) from read_parquet('{store}/smtp/*/*.parquet', "
        f"hive_partitioning = true) where date = '{date}')"
    ).fetchall()
    return {"seconds": time.perf_counter() - t}


def step_sql(store: str, **_) -> dict:
    from loganalyzer import Store

    st = Store(store)
    return {"seconds": _median(lambda _: st.sql(SQL.format(tracking="tracking")), [0, 1, 2, 3])}


def step_sql_bare(store: str, **_) -> dict:
    import duckdb

    con = duckdb.connect()
    files = f"read_parquet('{store}/tracking/*/*.parquet', hive_partitioning = true)"
    return {"seconds": _median(lambda _: con.sql(SQL.format(tracking=files)).df(), [0, 1, 2, 3])}


STEPS = {name[5:].replace("_", "-"): fn for name, fn in globals().items() if name[:5] == "step_"}


# -- the parent: runs each step in a child and samples its memory ------------------------------


def run(step: str, fresh: str | None = None, memory: bool = True, **kwargs) -> dict:
    """Run a step in a child. ``fresh``: the folder the step writes, emptied first; the step
    then runs timed alone, and (``memory``) again into the emptied folder for its memory
    (sampling the memory of a process tree costs CPU, and would slow the timed run)."""
    args = [sys.executable, __file__, "--step", step, json.dumps(kwargs)]
    if fresh:
        shutil.rmtree(fresh, ignore_errors=True)
    code, wall, peak, out = run_child(args, capture=True, sample=fresh is None)
    if fresh and memory and not code:
        shutil.rmtree(fresh, ignore_errors=True)
        code, _, peak, _ = run_child(args, capture=True)
    if code:
        raise SystemExit(f"step {step} failed with exit code {code}")
    result = json.loads(out.decode().strip().splitlines()[-1])
    result.setdefault("seconds", wall)
    memory_note = f"  peak {peak / 1e6:>7,.0f} MB" if peak else ""
    print(f"  {step:<16}{result.get('seconds', 0):>9.3f} s{memory_note}", flush=True)
    return result | {"peak_mb": peak / 1e6, "wall": wall}


def ingests(logs: str, store: Path, base: Path, repeat: int) -> dict:
    """The baseline and our ingest, ``repeat`` times each in turn (a machine's speed drifts
    between runs): each one's median run, and the ratio of every pair. The last runs leave
    their stores, and measure memory."""
    runs: dict[str, list[dict]] = {"ingest-baseline": [], "ingest": []}
    for i in range(repeat):
        for step, folder in (("ingest-baseline", base), ("ingest", store)):
            result = run(step, str(folder), i == repeat - 1, logs=logs, store=str(folder))
            runs[step].append(result)
    out = {}
    for step, results in runs.items():
        seconds = [r["seconds"] for r in results]
        out[step] = results[-1] | {"seconds": statistics.median(seconds), "runs": seconds}
    out["ingest"]["pair_ratios"] = [
        b / o for b, o in zip(out["ingest-baseline"]["runs"], out["ingest"]["runs"], strict=True)
    ]
    return out


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            return next(x.split(":", 1)[1].strip() for x in fh if x.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor()


def size_mb(folder: Path) -> tuple[float, int]:
    files = [p for p in folder.rglob("*.parquet") if p.name != "manifest.parquet"]
    return sum(p.stat().st_size for p in files) / 1e6, len(files)


def queries(logs: str, store: str, date: str, n: int) -> dict:
    return {
        "trace": run("trace", logs=logs, store=store, n=n),
        "trace-bare": run("trace-bare", logs=logs, store=store, n=n),
        "trace-cli": run("trace-cli", logs=logs, store=store, n=n),
        "report": run("report", store=store, date=date),
        "report-bare": run("report-bare", store=store, date=date),
        "sql": run("sql", store=store),
        "sql-bare": run("sql-bare", store=store),
    }


def table(results: dict, log_mb: float) -> str:
    rows = [
        "| step | loganalyzer s | baseline s | ratio | peak MB (ours / baseline) |",
        "|---|---|---|---|---|",
    ]
    ing, base = results["ingest"], results["ingest-baseline"]
    pairs = ing["pair_ratios"]
    spread = f" (runs {min(pairs):.2f}-{max(pairs):.2f}x)" if len(pairs) > 1 else ""
    rows.append(
        f"| ingest {log_mb:,.0f} MB ({log_mb / ing['seconds']:.0f} MB/s), median of "
        f"{len(pairs)} | {ing['seconds']:.1f} | {base['seconds']:.1f} (pyarrow CSV to Parquet) | "
        f"{base['seconds'] / ing['seconds']:.2f}x{spread} | "
        f"{ing['peak_mb']:,.0f} / {base['peak_mb']:,.0f} |"
    )
    c = results["compact"]
    rows.append(
        f"| store compact ({c['parts_before']:,} parts to {c['parts_after']}) | "
        f"{c['seconds']:.1f} | | | {c['peak_mb']:,.0f} |"
    )
    for label, key in (("", "plain"), (" (compacted)", "compacted")):
        q = results[key]
        t, tb, cli = q["trace"], q["trace-bare"], q["trace-cli"]
        rows.append(
            f"| trace by Message-ID{label}, median | {t['seconds']:.3f} (CLI wall "
            f"{cli['seconds']:.2f}) | {tb['seconds']:.3f} (bare DuckDB lookup) | "
            f"{tb['seconds'] / t['seconds']:.2f}x | {t['peak_mb']:,.0f} / {tb['peak_mb']:,.0f} |"
        )
        r, rb = q["report"], q["report-bare"]
        if "unavailable" in r:
            rows.append(f"| daily report{label} | not available | | | |")
        else:
            rows.append(
                f"| daily report{label}, one day | {r['seconds']:.2f} | {rb['seconds']:.2f} "
                f"(bare DuckDB count of the day) | {rb['seconds'] / r['seconds']:.2f}x | "
                f"{r['peak_mb']:,.0f} / {rb['peak_mb']:,.0f} |"
            )
        s, sb = q["sql"], q["sql-bare"]
        rows.append(
            f"| SQL aggregation{label} | {s['seconds']:.3f} | {sb['seconds']:.3f} (bare DuckDB) | "
            f"{sb['seconds'] / s['seconds']:.2f}x | {s['peak_mb']:,.0f} / {sb['peak_mb']:,.0f} |"
        )
    return "\n".join(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--logs", help="a synth folder (with truth.jsonl) instead of generating one")
    ap.add_argument("--mb", type=float, default=2000, help="MB of synth logs to generate")
    ap.add_argument("--date", help="day of the daily report [default: the logs' second day]")
    ap.add_argument("--n", type=int, default=20, help="messages to trace")
    ap.add_argument(
        "--repeat", type=int, default=3, help="runs of each ingest, in turn (median) [3]"
    )
    ap.add_argument("--work", help="folder for the stores [default: a temporary one]")
    ap.add_argument("--keep", action="store_true", help="keep the stores")
    ap.add_argument("--step", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step[0]](**json.loads(args.step[1])), default=str))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="la-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.logs:
            logs = Path(args.logs)
        else:
            from loganalyzer.synth import generate

            logs = work / "logs"
            generate(logs, servers=4, size_mb=args.mb, seed=1)
        log_mb = sum(p.stat().st_size for p in logs.rglob("*.LOG")) / 1e6
        with open(logs / "truth.jsonl", encoding="utf-8") as fh:
            days = sorted({json.loads(x)["received_at"][:10] for x in fh})
        date = args.date or days[min(1, len(days) - 1)]
        store, base = work / "store", work / "baseline"
        for p in (store, base):
            shutil.rmtree(p, ignore_errors=True)
        print(f"{log_mb:,.0f} MB of logs, {os.cpu_count()} cores, {cpu_model()}")
        results: dict = ingests(str(logs), store, base, args.repeat)
        results["store_mb"], results["parts"] = size_mb(store)
        results["plain"] = queries(str(logs), str(store), date, args.n)
        results["compact"] = run("compact", store=str(store))
        results["compacted_mb"], results["compacted_parts"] = size_mb(store)
        results["compacted"] = queries(str(logs), str(store), date, args.n)
        print()
        print(
            f"{log_mb:,.0f} MB of synth logs; store {results['store_mb']:,.0f} MB in "
            f"{results['parts']:,} parts, compacted {results['compacted_mb']:,.0f} MB in "
            f"{results['compacted_parts']:,}; report day {date}; {os.cpu_count()} cores\n"
        )
        print(table(results, log_mb))
        print(json.dumps(results, default=str))
    finally:
        if not args.keep and not args.work:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
