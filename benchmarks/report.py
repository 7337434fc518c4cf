"""The daily report's wall time and peak memory beside a bare DuckDB group-by of the same day.

    python benchmarks/report.py --day STORE_A --day STORE_B --long STORE_C --runs 3
    python benchmarks/report.py --logs DIR --messages 10000   # generates one day first

For each ``--day`` store (its last day, or ``--date``), in turn and ``--runs`` times, each in
a fresh process: (a) a bare DuckDB group-by of the day's rows (tracking rows by server,
event and hour; SMTP rows by server, direction and hour), (b) ``loganalyzer report daily
--traces 0``, (c) the same with 100 trace pages, (d) the report of the day after (no rows:
what a report costs whatever the day's size, its imports, queries and page). For each
``--long`` store, ``--days 30`` and ``--days 90`` reports ending on its last day. The table
shows medians, the ratios (b)/(a) and (d)/(a) of each run's pair (their median), (b) - (d)
against (a) (the work that grows with the day's rows, in bare scans) and the peak memory (PSS
of the process tree). ``--tz ZONE``: the reports of that zone's days, and the bare scan of the
same local day's rows (on its two UTC dates, filtered by time; the day after may hold an
hour or two of rows).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import run_child

#: What the bare baseline runs in its own process: the day's rows grouped, nothing else.
BARE = """
import sys, duckdb
store, dates, window = sys.argv[1], sys.argv[2].split(","), sys.argv[3:]
con = duckdb.connect()
con.execute("set enable_progress_bar = false")
where = ("where date_time >= '%s'::timestamptz and date_time < '%s'::timestamptz" % tuple(window)
         if window else "")
for table, keys in (("tracking", "server, event_id"), ("smtp", "server, direction")):
    files = [f"{store}/{table}/date={d}/**/*.parquet" for d in dates]
    con.sql(f"select {keys}, hour(date_time) as h, count(*) from read_parquet({files}) "
            f"{where} group by all").fetchall()
"""


COMMAND: list[str] = []
#: The zone of the reports (``--tz``); the bare scan reads the rows of the same local day.
ZONE: list[str] = ["UTC"]


def command() -> str:
    """The ``loganalyzer`` command measured: ``--command``, else the installed one."""
    return (
        COMMAND[0]
        if COMMAND
        else shutil.which("loganalyzer") or str(Path(sys.executable).with_name("loganalyzer"))
    )


def last_day(store: str) -> str:
    days = sorted(p.name.split("=", 1)[1] for p in Path(store, "tracking").glob("date=*"))
    if not days:
        sys.exit(f"{store}: no tracking rows")
    return days[-1]


def scope(store: str, day: str) -> tuple[list[str], list[str]]:
    """The UTC dates the local ``day`` (in ``ZONE``) touches that the store holds, and its
    window as two ISO times (none in UTC: the whole date is the day)."""
    if ZONE[0] == "UTC":
        return [day], []
    from zoneinfo import ZoneInfo

    start = dt.datetime.combine(dt.date.fromisoformat(day), dt.time(), ZoneInfo(ZONE[0]))
    end = dt.datetime.combine(start.date() + dt.timedelta(days=1), dt.time(), start.tzinfo)
    a, b = start.astimezone(dt.UTC), end.astimezone(dt.UTC) - dt.timedelta(microseconds=1)
    dates = sorted({a.date().isoformat(), b.date().isoformat()})
    held = [d for d in dates if Path(store, "tracking", f"date={d}").is_dir()]
    return held, [start.isoformat(), end.isoformat()]


def day_rows(store: str, day: str) -> tuple[int, int, float]:
    import duckdb

    con = duckdb.connect()
    out = []
    dates, window = scope(store, day)
    where = (
        f"where date_time >= '{window[0]}'::timestamptz and date_time < '{window[1]}'::timestamptz"
        if window
        else ""
    )
    for table in ("tracking", "smtp"):
        files = [f"{store}/{table}/date={d}/**/*.parquet" for d in dates]
        out.append(con.sql(f"select count(*) from read_parquet({files}) {where}").fetchall()[0][0])
    mb = sum(f.stat().st_size for d in dates for f in Path(store).rglob(f"date={d}/**/*.parquet"))
    return out[0], out[1], mb / 1e6


def report(store: str, day: str, days: int, traces: int, out: Path) -> tuple[float, int]:
    args = [command(), "report", "daily", "-s", store, "--date", day, "--days", str(days)]
    args += ["--tz", ZONE[0], "--traces", str(traces), "--out", str(out)]
    code, wall, peak, _ = run_child(args, capture=True)
    if code != 0:
        sys.exit(f"report failed ({code}): {' '.join(args)}")
    return wall, peak


def bare(store: str, day: str) -> tuple[float, int]:
    dates, window = scope(store, day)
    args = [sys.executable, "-c", BARE, store, ",".join(dates), *window]
    code, wall, peak, _ = run_child(args, capture=True)
    if code != 0:
        sys.exit(f"baseline failed ({code})")
    return wall, peak


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def against_bare(runs: dict[str, list], x: str, minus: str | None = None) -> float:
    """The median over the runs of step ``x`` (less step ``minus``) against the bare scan."""
    pairs = zip(runs["a"], runs[x], runs[minus or x], strict=True)
    return median([(b[0] - (d[0] if minus else 0)) / a[0] for a, b, d in pairs])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--day", action="append", default=[], help="store of the one-day rows")
    ap.add_argument("--long", action="append", default=[], help="store for --days 30 and 90")
    ap.add_argument("--date", help="the day (default: each store's last day)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--traces", type=int, default=100, help="trace pages of (c); 0: no (c)")
    ap.add_argument("--logs", help="generate one day of synth logs here first (and ingest)")
    ap.add_argument("--messages", type=int, default=10000, help="messages of that day")
    ap.add_argument("--command", help="the loganalyzer command to measure (another version)")
    ap.add_argument("--tz", default="UTC", help="the reports' zone (the bare scan: that day)")
    args = ap.parse_args(argv)
    COMMAND[:] = [args.command] if args.command else []
    ZONE[:] = [args.tz]
    if args.logs:
        logs = Path(args.logs)
        cli = command()
        subprocess.run(
            [
                cli,
                "synth",
                "--out",
                str(logs / "logs"),
                "--servers",
                "4",
                "--days",
                "1",
                "--messages",
                str(args.messages),
            ],
            check=True,
        )
        subprocess.run(
            [cli, "ingest", "-s", str(logs / "store"), str(logs / "logs")],
            check=False,
            stdout=subprocess.DEVNULL,
        )
        args.day.append(str(logs / "store"))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "r.html"
        for store in args.day:
            day = args.date or last_day(store)
            tracking, smtp, mb = day_rows(store, day)
            after = (dt.date.fromisoformat(day) + dt.timedelta(days=1)).isoformat()
            runs: dict[str, list] = {"a": [], "b": [], "c": [], "d": []}
            for _ in range(args.runs):  # alternated: the machine's load hits both alike
                runs["a"].append(bare(store, day))
                runs["b"].append(report(store, day, 1, 0, out))
                runs["d"].append(report(store, after, 1, 0, out))
                if args.traces:
                    runs["c"].append(report(store, day, 1, args.traces, out))
            label = f"{day}: {tracking:,} tracking + {smtp:,} SMTP rows, {mb:,.0f} MB Parquet"

            grows = [(b[0] - d[0], 0) for b, d in zip(runs["b"], runs["d"], strict=True)]
            rows.append((label, "(a) bare DuckDB group-by", runs["a"], None))
            rows.append((label, "(b) report --traces 0", runs["b"], against_bare(runs, "b")))
            empty = f"(d) report of {after} (no rows)"
            rows.append((label, empty, runs["d"], against_bare(runs, "d")))
            rows.append((label, "    (b) - (d) seconds", grows, against_bare(runs, "b", "d")))
            if runs["c"]:
                extra = median([c[0] - b[0] for b, c in zip(runs["b"], runs["c"], strict=True)])
                rows.append((label, f"(c) report --traces {args.traces}", runs["c"], None))
                rows.append((label, "    (c) - (b) seconds", [(extra, 0)], None))
        for store in args.long:
            day = args.date or last_day(store)
            for days in (30, 90):
                runs_ = [report(store, day, days, 0, out) for _ in range(args.runs)]
                rows.append((f"{store} to {day}", f"report --days {days}", runs_, None))

    print(
        f"{'day / store':60} {'step':34} {'s (median)':>10} {'runs':>22} {'ratio':>6} "
        f"{'peak MB':>8}"
    )
    for label, step, runs_, ratio in rows:
        walls = [w for w, _ in runs_]
        peak = max(p for _, p in runs_) / 1e6  # 0: a difference, no process
        each = " ".join(f"{w:.2f}" for w in walls)
        r = f"{ratio:.1f}x" if ratio is not None else ""
        print(f"{label[:60]:60} {step:34} {median(walls):10.2f} {each:>22} {r:>6} {peak:8.0f}")


if __name__ == "__main__":
    main()
