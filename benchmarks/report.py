"""Daily report time for one day of a store, against a bare DuckDB count of the same day.

    python benchmarks/report.py STORE                  # the store's last day
    python benchmarks/report.py STORE --date 2026-03-03 --repeat 3

(a) baseline: open the store's views and count the day's tracking and SMTP rows (DuckDB, the
same partition pruning the report uses);
(b) ``loganalyzer.daily_report(store, date)``: every metric of the report as DataFrames;
(c) ``report.to_html()``: its charts and the HTML page (plotly.js inlined);
(d) ``report.save(...)`` with trace pages of up to 100 failed messages.
Each time is the best of ``--repeat`` runs in this process.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path


def best(repeat: int, fn) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return min(times), result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store", help="store folder")
    ap.add_argument("--date", help="day to report (default: the store's last day)")
    ap.add_argument("--tz", default="UTC")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--traces", type=int, default=100, help="trace pages for (d); 0: skip (d)")
    args = ap.parse_args(argv)

    from loganalyzer import Store, daily_report

    store = Store(args.store)
    if not store.exists():
        sys.exit(f"{args.store} is not a loganalyzer store")
    with store.connect() as con:
        day = args.date or str(con.sql("select max(date) from tracking").fetchall()[0][0])
        rows = con.sql(
            "select (select count(*) from tracking where date = ?::date), "
            "(select count(*) from smtp where date = ?::date)",
            params=[day, day],
        ).fetchall()[0]

    def baseline():
        with store.connect() as con:
            return con.sql(
                "select (select count(*) from tracking where date = ?::date), "
                "(select count(*) from smtp where date = ?::date)",
                params=[day, day],
            ).fetchall()

    t_base, _ = best(args.repeat, baseline)
    t_report, report = best(args.repeat, lambda: daily_report(store, day, tz=args.tz))
    t_html, page = best(args.repeat, report.to_html)
    results = [
        ("(a) DuckDB count of the day", t_base),
        ("(b) daily_report()", t_report),
        ("(c) to_html()", t_html),
    ]
    if args.traces:
        with tempfile.TemporaryDirectory() as tmp:
            t_save, files = best(1, lambda: report.save(Path(tmp) / "r.html", args.traces))
        results.append((f"(d) save() with {len(files) - 1} trace pages", t_save))
    print(
        f"store {args.store}, day {day} ({args.tz}): {rows[0]:,} tracking rows, "
        f"{rows[1]:,} SMTP rows; page {len(page) / 1e6:.1f} MB"
    )
    print(f"{'':38} {'seconds':>8} {'vs (a)':>7}")
    for label, t in results:
        print(f"{label:38} {t:8.2f} {t / t_base:7.1f}")


if __name__ == "__main__":
    main()
