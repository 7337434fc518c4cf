"""Realistic multi-server Exchange 2016 (or 2000/2003) logs with ground truth: `generate()`.

The organisation (org.py): accepted domains contoso.com and fabrikam.com, servers EX01..EXnn
(multi-role, one DAG, two databases active on each), a few hundred mailboxes, distribution
lists (one nested, one moderated, one with an external contact), ten external domains with
their MX hosts, and with `relay=True` the IIS SMTP relay RELAY01 in front of the frontends.

Output (under `out`):
- `<SERVER>/MessageTracking/MSGTRK|MSGTRKMS|MSGTRKMD|MSGTRKMA<yyyymmddhh>-<n>.LOG`
- `<SERVER>/ProtocolLog/SmtpReceive/RECV<yyyymmddhh>-<n>.LOG`, `.../SmtpSend/SEND...`
- `RELAY01/SMTPSVC1/ex<yymmdd>.log` (with `relay=True`)
- `truth.jsonl`: one row per message and recipient; its fields are defined in `truth.py`.
- `headers/<n>.eml` with `headers=N`: header blocks of delivered messages and NDRs (headers.py).
- with `agent_logs=True`: `<SERVER>/AgentLog/AgentLog...LOG` and `<SERVER>/Connectivity/
  CONNECTLOG...LOG`, sessions refused at every SMTP stage (truth verdict `rejected`) and next
  hops that fail in named ways (antispam.py, nexthops.py).
- with `clients=True`: SMTP clients and TLS situations every day (a scanner and an app relaying
  anonymously, an authenticated app, peers on TLS 1.0/1.1, peers without TLS, failed TLS
  negotiations; clients.py), the journeys and truth rows of the messages they hand in (a
  recipient refused at RCPT: verdict `rejected`), and `sessions.jsonl`, one row per
  protocol-log session (sessionlog.py).

The same arguments give byte-identical output. Lines are generated message by message and
written every ten minutes of log time, so memory does not grow with the run.
"""

from __future__ import annotations

import datetime as dt
import heapq
import json
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

from loganalyzer.errors import BadInput
from loganalyzer.synth.antispam import Refusals
from loganalyzer.synth.clock import DAY_MS, iso, ms_of_date
from loganalyzer.synth.iis import scan_session
from loganalyzer.synth.model import Message
from loganalyzer.synth.nexthops import NextHops, next_hop_failure
from loganalyzer.synth.org import Rng, build_org
from loganalyzer.synth.origins import Engine
from loganalyzer.synth.scenarios import WEEKDAY_FACTOR, Composer, day_events
from loganalyzer.synth.truth import VERDICTS, rows
from loganalyzer.synth.writers import Output

__all__ = ["SynthResult", "generate"]

EST_BYTES_PER_MESSAGE = 31_000  # first guess of log bytes per message, for `size_mb`


@dataclass
class SynthResult:
    """What `generate` wrote."""

    out: str
    servers: list[str]
    omitted: str | None
    start: str
    end: str  # the logs stop at this instant (midnight UTC after the last day)
    days: int
    seed: int
    files: int
    bytes: int  # log bytes, truth.jsonl excluded
    messages: int  # messages with truth rows, NDRs included (refused attempts not)
    recipients: int  # truth rows (a refused attempt's too)
    verdicts: dict[str, int] = field(default_factory=dict)
    refused: int = 0  # truth rows of refused attempts (an agent's or at RCPT)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary(self) -> str:
        counts = ", ".join(f"{k} {v}" for k, v in self.verdicts.items() if v)
        return (
            f"{self.out}: {self.files} files, {self.bytes / 1e6:.1f} MB, {self.days} "
            f"day{'' if self.days == 1 else 's'} from {self.start}, "
            f"servers {' '.join(self.servers)}"
            + (f" ({self.omitted} omitted)" if self.omitted else "")
            + f"\n{self.messages} messages, {self.recipients} truth rows"
            + (f" ({self.refused} of refused attempts)" if self.refused else "")
            + (f": {counts}" if counts else "")
        )


def generate(
    out: str | Path,
    *,
    servers: int = 4,
    days: int = 1,
    messages: int = 1000,
    seed: int = 0,
    start: dt.date = dt.date(2026, 3, 2),
    relay: bool = False,
    omit_server: str | None = None,
    size_mb: float | None = None,
    headers: int = 0,
    exchange: int = 2016,
    incidents: bool = False,
    agent_logs: bool = False,
    clients: bool = False,
) -> SynthResult:
    """Write logs of `servers` Exchange servers for `days` days from `start` (UTC) into `out`.

    `messages` is the number of messages sent on a weekday (Saturday 25 %, Sunday 20 %).
    `size_mb` instead keeps adding days until the logs reach about that many MB.
    `omit_server` names a server whose logs are not written (truth verdicts become last_seen).
    `headers` > 0 also writes `out/headers/<n>.eml` (headers.py); the logs do not change.
    `incidents` adds to the first day a next hop down for hours and a password-guessing
    burst (incidents.py).
    `exchange=2003` writes Exchange 2000/2003 tracking logs instead (ex2003.py; without
    `relay`, `omit_server`, `size_mb` and `headers`).
    `agent_logs` also writes anti-spam agent logs and connectivity logs, with refused sessions
    and named next-hop failures (their truth rows: `rejected`, `next_hop_failure`).
    `clients` adds every day's SMTP client and TLS situations and their messages (clients.py)
    and writes `sessions.jsonl` (sessionlog.py).
    Raises BadInput (a ValueError) for bad arguments or an `out` that is not empty.
    """
    if not 1 <= servers <= 99:
        raise BadInput(f"--servers {servers}: give 1 to 99")
    if days < 1:
        raise BadInput(f"--days {days}: give 1 or more")
    if messages < 0:
        raise BadInput(f"--messages {messages}: give 0 or more")
    if size_mb is not None and size_mb <= 0:
        raise BadInput(f"--size-mb {size_mb}: give a size above 0")
    if headers < 0:
        raise BadInput(f"--headers {headers}: give 0 or more")
    if exchange not in (2016, 2003):
        raise BadInput(f"--exchange {exchange}: give 2016 or 2003")
    extras = incidents or agent_logs or clients
    if exchange == 2003 and (relay or omit_server or size_mb is not None or headers or extras):
        raise BadInput(
            "--relay, --omit-server, --size-mb, --headers, --incidents, --agent-logs and --clients"
            " are for Exchange 2016 logs"
        )
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out}: a file, not a folder (give a new or empty folder)")
    if out.exists() and any(out.iterdir()):
        raise BadInput(f"--out {out}: not an empty folder (give a new or empty one)")
    existed = out.exists()
    if exchange == 2003:
        from loganalyzer.synth.ex2003 import generate_2003

        try:
            made = generate_2003(
                out, servers=servers, days=days, messages=messages, seed=seed, start=start
            )
        except BaseException:
            _remove_begun(out, existed)
            raise
        return SynthResult(
            out=str(out), omitted=None, start=start.isoformat(), days=days, seed=seed, **made
        )
    rng = Rng(seed)
    org = build_org(rng, servers, relay)
    names = [s.name for s in org.servers] + ([org.relay.name] if org.relay else [])
    omitted: frozenset[str] = frozenset()
    if omit_server is not None:
        if omit_server.upper() not in names:
            raise BadInput(f"--omit-server {omit_server!r}: no such server; {', '.join(names)}")
        if len(names) == 1:
            raise BadInput(f"--omit-server {omit_server!r}: the only server (give --servers 2)")
        omitted = frozenset({omit_server.upper()})
    out.mkdir(parents=True, exist_ok=True)
    output = None
    try:
        output = Output(out, omitted)
        first = ms_of_date(start)
        engine = Engine(rng, org, output, first + days * DAY_MS)
        composer = Composer(engine)
        verdicts = dict.fromkeys(VERDICTS + (("rejected",) if agent_logs or clients else ()), 0)
        refusals = hops = None
        if agent_logs:
            hops = engine.next_hops = NextHops(seed)
            refusals = Refusals(engine, seed, per_day=max(12, messages // 40))
        sessions = extra = None
        if clients:
            from loganalyzer.synth.clients import Clients
            from loganalyzer.synth.sessionlog import SessionLog

            sessions = output.sessions = SessionLog(omitted)
            extra = Clients(engine, seed, sessions)
        n_messages = n_refused = n_sent = 0
        n_days = 0
        with open(out / "truth.jsonl", "w", encoding="utf-8", newline="\n") as truth:

            def write_refused(rec: dict) -> None:
                nonlocal n_refused
                truth.write(json.dumps(rec, ensure_ascii=False) + "\n")
                verdicts[rec["verdict"]] += 1
                n_refused += 1

            def write_message(msg: Message, next_hops: NextHops | None) -> None:
                """The truth rows of `msg` and its NDRs."""
                nonlocal n_messages
                seen = set()
                for rec in rows(msg, omitted):
                    if next_hops is not None:
                        rec["next_hop_failure"] = next_hop_failure(next_hops, msg, rec)
                    truth.write(json.dumps(rec, ensure_ascii=False) + "\n")
                    verdicts[rec["verdict"]] += 1
                    seen.add(rec["message_id"])
                n_messages += len(seen)

            while True:
                day_start = first + n_days * DAY_MS
                weekday = (start + dt.timedelta(days=n_days)).weekday()
                n = round(messages * WEEKDAY_FACTOR[weekday])
                if size_mb is None:
                    last = n_days == days - 1
                else:  # the last day gets just the messages that fill the remaining bytes
                    done = output.stats.bytes
                    per_message = done / n_sent if n_sent else EST_BYTES_PER_MESSAGE
                    wanted = max(1, round((size_mb * 1e6 - done) / per_message))
                    last = wanted <= 1.25 * n or messages == 0
                    if last and messages:
                        n = wanted
                    engine.end = day_start + DAY_MS * (1 if last else 2)
                n_sent += n
                events = day_events(
                    rng, day_start, n, engine.end, last, len(org.attackers), org.relay is not None
                )
                if incidents and n_days == 0:
                    from loganalyzer.synth import incidents as inc

                    composer.outage = (org.domains[0], inc.outage(day_start)[1])
                    events = heapq.merge(events, inc.events(day_start), key=lambda e: e[0])
                if refusals is not None:
                    refusals.plan_day(day_start, engine.end)
                if extra is not None:
                    extra.plan_day(day_start, engine.end)
                for t, kind, variant in events:
                    if refusals is not None:
                        refusals.until(t, write_refused)
                    if extra is not None:
                        extra.until(t, write_message, write_refused)
                    output.flush_before(t)
                    if kind == "auth":
                        engine.auth_noise(t, org.attackers[int(variant)])
                        continue
                    if kind == "scan":
                        assert org.relay is not None
                        scan_session(output, rng, org.relay, t, rng.choice(org.attackers))
                        continue
                    write_message(composer.run(kind, variant, t), hops)
                if refusals is not None:
                    refusals.until(day_start + DAY_MS, write_refused)
                if extra is not None:
                    extra.until(day_start + DAY_MS, write_message, write_refused)
                n_days += 1
                output.flush_before(day_start + DAY_MS)
                if last:
                    break
        output.close()
        if sessions is not None:
            sessions.write(out / "sessions.jsonl")
        if headers:
            from loganalyzer.synth.headers import write_headers

            write_headers(out, org, headers, seed)
        return SynthResult(
            out=str(out),
            servers=[n for n in names if n not in omitted],
            omitted=next(iter(omitted), None),
            start=start.isoformat(),
            end=iso(engine.end),
            days=n_days,
            seed=seed,
            files=output.stats.files,
            bytes=output.stats.bytes,
            messages=n_messages,
            recipients=sum(verdicts.values()),
            refused=n_refused,
            verdicts=verdicts,
        )
    except BaseException:  # a Ctrl-C or a full disk: no partial logs to mistake for whole
        if output is not None:
            output.discard()
        _remove_begun(out, existed)
        raise


def _remove_begun(out: Path, existed: bool) -> None:
    """Remove what a stopped run wrote into ``out`` (new, or empty before it): running the
    command again then finds the folder as it was."""
    if not existed:
        shutil.rmtree(out, ignore_errors=True)
        return
    for p in out.iterdir():
        if p.is_dir():
            shutil.rmtree(p, ignore_errors=True)
        else:
            p.unlink(missing_ok=True)
