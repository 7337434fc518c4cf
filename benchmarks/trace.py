"""Lookup speed: each kind of trace lookup (CLI wall time) beside a bare DuckDB process doing
the same lookup over the same Parquet files, in one run.

    python benchmarks/trace.py --store STORE --truth LOGS/truth.jsonl [--n 5]
    python benchmarks/trace.py --mb 2000        # generates and ingests 2 GB of synth logs first
    python benchmarks/trace.py --store STORE --truth T --only sender,recipient,web

Kinds: a Message-ID, a network message ID, an internal message ID with ``--server``, and the
candidate lists by sender, by recipient wildcard and by subject words. For each, the median of
``--n`` runs (different messages of ``truth.jsonl``) of ``loganalyzer trace ... --json`` and
of a fresh ``python -c`` process that imports DuckDB and runs the plainest query for it (the
baseline: ``where message_id = ?`` or the filter of the list, no pruning but DuckDB's own),
then the library call ``loganalyzer.trace`` by Message-ID in this process, and the CPU time
in this process of the web app's search (``web.data.search``) by recipient wildcard.
``--only`` runs the lookups whose names contain one of its comma-separated words.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

BARE = """
import sys, duckdb
con = duckdb.connect()
con.execute("set TimeZone = 'UTC'")
sql, params = sys.argv[1], sys.argv[2:]
con.execute(sql, params).fetchall()
"""


def wall(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store")
    ap.add_argument("--truth")
    ap.add_argument("--mb", type=float, default=2000)
    ap.add_argument("--n", type=int, default=5, help="runs of each kind (different messages)")
    ap.add_argument(
        "--only", help="comma-separated words: the lookups whose names contain one (e.g. sender)"
    )
    args = ap.parse_args()
    only = [w.strip().lower() for w in args.only.split(",")] if args.only else None

    def chosen(name: str) -> bool:
        return only is None or any(w in name.lower() for w in only)

    from loganalyzer.ingest import ingest
    from loganalyzer.trace import trace

    if not args.store:
        from loganalyzer.synth import generate

        work = Path(tempfile.mkdtemp(prefix="la-trace-"))
        generate(work / "logs", servers=4, size_mb=args.mb, messages=20000, seed=1)
        ingest([work / "logs"], work / "store")
        args.store, args.truth = str(work / "store"), str(work / "logs" / "truth.jsonl")
    with open(args.truth, encoding="utf-8") as fh:
        truth = [json.loads(x) for x in fh]
    rng = random.Random(1)
    rows = rng.sample([t for t in truth if t["message_id"] and t["recipient"]], args.n)
    glob = f"{args.store}/tracking/*/*.parquet"
    src = f"read_parquet('{glob}', hive_partitioning = true)"
    con = duckdb.connect()
    internal = {}
    for t in rows:
        internal[t["message_id"]] = con.execute(
            f"select internal_message_id, server from {src} "
            "where message_id = ? and internal_message_id is not null limit 1",
            [t["message_id"]],
        ).fetchone()
    exe = str(Path(sys.executable).with_name("loganalyzer"))
    trace_cmd = [exe, "trace", "--store", args.store, "--json"]
    bare_cmd = [sys.executable, "-c", BARE]
    contains = "len(list_filter(recipient_address, lambda x: x ilike ?)) > 0"
    kinds = {
        "Message-ID": (
            lambda t: [t["message_id"]],
            lambda t: (f"select * from {src} where message_id = ?", [t["message_id"]]),
        ),
        "network message ID": (
            lambda t: [t["network_message_id"]],
            lambda t: (
                f"select * from {src} where network_message_id = ?",
                [t["network_message_id"]],
            ),
        ),
        "internal ID --server": (
            lambda t: [*internal[t["message_id"]][:1], "--server", internal[t["message_id"]][1]],
            lambda t: (
                f"select * from {src} where internal_message_id = ? and server = ?",
                list(internal[t["message_id"]]),
            ),
        ),
        "list --sender": (
            lambda t: ["--sender", t["sender"]],
            lambda t: (f"select * from {src} where sender_address ilike ?", [t["sender"]]),
        ),
        "list --recipient a*@dom": (
            lambda t: ["--recipient", _wildcard(t["recipient"])],
            lambda t: (
                f"select * from {src} where {contains}",
                [_wildcard(t["recipient"]).replace("*", "%")],
            ),
        ),
        "list --subject word": (
            lambda t: ["--subject", _word(t["subject"])],
            lambda t: (
                f"select * from {src} where message_subject ilike ?",
                [f"%{_word(t['subject'])}%"],
            ),
        ),
    }
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    wall(trace_cmd + [rows[0]["message_id"]])  # warm the file cache
    size = sum(p.stat().st_size for p in Path(args.store).rglob("*.parquet")) / 1e6
    print(f"store {size:,.0f} MB, {len(truth):,} truth rows; median of {args.n} runs each")
    print(f"{'lookup':<26}{'CLI s':>8}{'bare s':>8}{'ratio':>7}")
    for name, (argv, bare) in kinds.items():
        if not chosen(name):
            continue
        ours, base = [], []
        for t in rows:
            ours.append(wall(trace_cmd + argv(t)))
            sql, params = bare(t)
            base.append(wall(bare_cmd + [sql, *params]))
        a, b = statistics.median(ours), statistics.median(base)
        print(f"{name:<26}{a:>8.2f}{b:>8.2f}{a / b:>6.2f}x")
    if chosen("trace() by Message-ID"):
        times = []
        for t in rows:
            start = time.perf_counter()
            assert trace(args.store, t["message_id"]).messages
            times.append(time.perf_counter() - start)
        took = statistics.median(times)
        print(f"{'trace() by Message-ID':<26}{took:>8.3f} (library, in process)")
    if chosen("web search --recipient a*@dom"):
        from loganalyzer.web.data import search

        search(args.store, {"recipient": _wildcard(rows[0]["recipient"])})  # imports, caches
        cpu = []
        for t in rows:
            start = time.process_time()
            search(args.store, {"recipient": _wildcard(t["recipient"])})
            cpu.append(time.process_time() - start)
        took = statistics.median(cpu)
        print(f"{'web search --recipient a*@dom':<30}{took:>4.3f} (CPU s, in process)")
    end = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"load average (1 min) {load:.1f} at the start, {end:.1f} at the end")


def _wildcard(address: str) -> str:
    """``first*@domain`` of an address (a list of the people of that first name there)."""
    local, _, domain = address.partition("@")
    return f"{local.split('.')[0]}*@{domain}"


def _word(subject: str | None) -> str:
    words = [w for w in (subject or "").split() if len(w) > 3 and w.isalpha()]
    return max(words, key=len) if words else "the"


if __name__ == "__main__":
    main()
