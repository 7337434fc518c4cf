"""Load test of the web app: concurrent searches and traces against ``loganalyzer serve``.

    python benchmarks/web_load.py --store STORE --truth LOGS/truth.jsonl [--users 20] [--seconds 30]
    python benchmarks/web_load.py --mb 50       # generates and ingests ~50 MB of synth logs first

Starts the app on a free loopback port (a subprocess, as a user runs it), then ``--users``
clients each send, in a loop for ``--seconds``, a search by Message-ID, a search by recipient
wildcard, or a trace of a message from ``truth.jsonl`` (in turn): every client the same
sequence, as colleagues opening the same links, or with ``--distinct`` each its own order
(then a page is rarely asked for twice: the app's cache of pages helps little). ``--kinds``
chooses the kinds of request (``search_id,search_wildcard,trace``), ``--messages`` how many
messages of the truth they draw from (once the app has computed every page, it answers from
its cache: give more messages than it computes in the run). Prints the number of requests,
p50 and p95 of the response times per kind and overall, the errors (a status other than 200,
or no answer), the app's CPU seconds per request (user + system of the server process) and
the load average. Loopback only; bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil

KINDS = ("search_id", "search_wildcard", "trace")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    return (
        statistics.quantiles(values, n=100, method="inclusive")[q - 1]
        if len(values) > 1
        else values[0]
    )


async def client(
    url: str, until: float, requests: list, rng: random.Random, out: dict, distinct: bool
) -> None:
    if distinct:
        requests = rng.sample(requests, len(requests))
    async with httpx.AsyncClient(base_url=url, timeout=60) as http:
        n = 0
        while time.monotonic() < until:
            kind, params = requests[n] if n < len(requests) else rng.choice(requests)
            n += 1
            path = "/trace" if kind == "trace" else "/"
            t = time.perf_counter()
            try:
                r = await http.get(path, params=params)
                ok = r.status_code == 200
            except httpx.HTTPError:
                ok = False
            took = time.perf_counter() - t
            out.setdefault(kind, []).append(took)
            if not ok:
                out.setdefault("errors", []).append(kind)


async def load(url: str, users: int, seconds: float, requests: list, distinct: bool) -> dict:
    out: dict[str, list] = {}
    until = time.monotonic() + seconds
    rngs = [random.Random(i) for i in range(users)]
    await asyncio.gather(
        *(client(url, until, requests, rngs[i], out, distinct) for i in range(users))
    )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--store")
    ap.add_argument("--truth")
    ap.add_argument("--mb", type=float, default=50, help="synth logs to generate without --store")
    ap.add_argument("--users", type=int, default=20)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--distinct", action="store_true", help="each client its own order")
    ap.add_argument(
        "--kinds",
        default=",".join(KINDS),
        help=f"kinds of request, comma-separated (default {','.join(KINDS)})",
    )
    ap.add_argument("--messages", type=int, default=200, help="messages the requests draw from")
    args = ap.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    if not kinds or set(kinds) - set(KINDS):
        ap.error(f"--kinds {args.kinds}: give some of {', '.join(KINDS)}")
    work = None
    if not args.store:
        from loganalyzer.ingest import ingest
        from loganalyzer.synth import generate

        work = Path(tempfile.mkdtemp(prefix="la-web-"))
        generate(work / "logs", servers=4, size_mb=args.mb, messages=2000, seed=1)
        ingest([work / "logs"], work / "store")
        args.store, args.truth = str(work / "store"), str(work / "logs" / "truth.jsonl")
    with open(args.truth, encoding="utf-8") as fh:
        truth = [json.loads(x) for x in fh]
    rng = random.Random(1)
    rows = rng.sample(truth, min(args.messages, len(truth)))
    requests = []
    for t in rows:
        local, _, domain = t["recipient"].partition("@")
        made = {
            "search_id": {"q": t["message_id"]},
            "search_wildcard": {"recipient": f"{local.split('.')[0]}*@{domain}"},
            "trace": {"id": t["message_id"]},
        }
        requests += [(kind, made[kind]) for kind in kinds]
    size = sum(f.stat().st_size for f in Path(args.store).rglob("*") if f.is_file())
    exe = shutil.which("loganalyzer", path=str(Path(sys.executable).parent)) or "loganalyzer"
    port = free_port()
    env = {**os.environ, "LOGANALYZER_WEB_TOKEN": ""}
    proc = subprocess.Popen(
        [exe, "serve", "--store", args.store, "--port", str(port)], env=env, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                httpx.get(url + "/favicon.ico", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        server = psutil.Process(proc.pid)
        before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        cpu = server.cpu_times()
        out = asyncio.run(load(url, args.users, args.seconds, requests, args.distinct))
        used = server.cpu_times()
        after = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        cpu_s = (used.user + used.system) - (cpu.user + cpu.system)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:  # still busy with queued requests
            proc.kill()
            proc.wait()
        if work:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"store {size / 1e6:.0f} MB, {len(truth):,} truth rows; "
        f"{args.users} users, {args.seconds:.0f} s"
        + (", each its own order" if args.distinct else ", one order")
        + f"; load average {before:.1f} before, {after:.1f} after"
    )
    every = []
    for kind in kinds:
        times = out.get(kind, [])
        every += times
        print(
            f"{kind:17} {len(times):5} requests  p50 {percentile(times, 50):6.2f} s"
            f"  p95 {percentile(times, 95):6.2f} s"
        )
    errors = len(out.get("errors", []))
    print(
        f"{'all':17} {len(every):5} requests  p50 {percentile(every, 50):6.2f} s"
        f"  p95 {percentile(every, 95):6.2f} s  errors {errors}"
    )
    print(f"app CPU {cpu_s:.1f} s, {cpu_s / max(1, len(every)):.3f} s per request")


if __name__ == "__main__":
    main()
