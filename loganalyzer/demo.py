"""``loganalyzer demo``: the bundled sample logs, ingested and traced, for a first look.

The samples are one day of a three-server organisation with an IIS SMTP relay, written by
``synth`` with a fixed seed (every fate a trace must tell) and zipped into the package.
Regenerate them with ``python -m loganalyzer.demo --make-samples``.
"""

from __future__ import annotations

import io
import os
import sys
import tempfile
import zipfile
from dataclasses import dataclass, field
from datetime import date
from importlib import resources
from pathlib import Path

from loganalyzer.errors import BadInput
from loganalyzer.ingest import IngestSummary, ingest
from loganalyzer.trace import TraceResult, trace

SAMPLES = "contoso-2026-03-02.zip"
#: Marks a folder the demo made (a run into a folder of other things would mix the samples
#: into a store there, and overwrite a truth.jsonl).
MARKER = ".loganalyzer-demo"
SAMPLE_DAY = date(2026, 3, 2)
SYNTH_ARGS = {
    "servers": 3,
    "days": 1,
    "messages": 120,
    "seed": 2026,
    "relay": True,
    "start": SAMPLE_DAY,
}


@dataclass
class DemoResult:
    """What the demo did, and where it put it."""

    folder: Path
    logs: Path
    store: Path
    ingest: IngestSummary
    traces: dict[str, TraceResult] = field(default_factory=dict)
    report: Path | None = None
    #: The day of the samples (and of the report): not yesterday, which has no data.
    day: date = SAMPLE_DAY


def make_samples(target: Path) -> Path:
    """Write the bundled sample zip (deterministic: same bytes every time)."""
    from loganalyzer.synth import generate

    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp) / "logs", **SYNTH_ARGS)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
            root = Path(tmp) / "logs"
            for path in sorted(p for p in root.rglob("*") if p.is_file()):
                info = zipfile.ZipInfo(path.relative_to(root).as_posix(), (2026, 3, 3, 0, 0, 0))
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, path.read_bytes())
        target.write_bytes(buf.getvalue())
    return target


def extract_samples(logs: Path) -> Path:
    """Unpack the bundled sample logs into ``logs`` (once)."""
    if logs.is_dir() and any(logs.iterdir()):
        return logs
    logs.mkdir(parents=True, exist_ok=True)
    data = (resources.files("loganalyzer") / "samples" / SAMPLES).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        for name in zf.namelist():
            # the generator's ground truth goes beside the logs, not among them
            target = logs.parent / name if name == "truth.jsonl" else logs / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(name))
    return logs


def sample_logs(folder: str | os.PathLike[str] = "loganalyzer-demo/logs") -> Path:
    """The bundled sample logs (one day, three Exchange servers and an IIS SMTP relay),
    unpacked into ``folder`` (once); ``folder``/../truth.jsonl is what really happened."""
    return extract_samples(Path(folder))


def _claim(base: Path) -> None:
    """Take ``base`` for the demo: new, empty, or a demo's own (its marker, or the samples
    of a demo made before the marker); raises BadInput for any other folder."""
    if base.exists() and not base.is_dir():
        raise BadInput(f"--folder {base}: a file, not a folder")
    if base.is_dir() and any(base.iterdir()) and not (base / MARKER).exists():
        bundled = (resources.files("loganalyzer") / "samples" / SAMPLES).read_bytes()
        with zipfile.ZipFile(io.BytesIO(bundled)) as zf:
            truth = zf.read("truth.jsonl")
        earlier = (base / "truth.jsonl").is_file() and (base / "truth.jsonl").read_bytes() == truth
        if not earlier:
            raise BadInput(
                f"--folder {base}: not empty and not a demo's folder; give a new or empty one "
                "(the demo writes logs, a store and a report there)"
            )
    base.mkdir(parents=True, exist_ok=True)
    (base / MARKER).touch()


def _first(store: Path, **filters) -> str | None:
    found = trace(store, since=SAMPLE_DAY.isoformat(), **filters).candidates
    return found[0]["message_id"] if found else None


def run_demo(folder: str | os.PathLike[str] = "loganalyzer-demo", progress=None) -> DemoResult:
    """Unpack the samples into ``folder``/logs, ingest them into ``folder``/store, trace one
    failed and one delivered message, and write the day's report with its trace pages."""
    base = Path(folder)
    _claim(base)
    logs = extract_samples(base / "logs")
    store = base / "store"
    from loganalyzer.report.rollup import refresh  # as `loganalyzer ingest` builds them

    summary = ingest([logs], store, progress=progress, rollups=refresh)
    result = DemoResult(base, logs, store, summary)
    for label, event in (("failed", "FAIL"), ("delivered", "DELIVER")):
        mid = _first(store, event_id=event)
        if mid:
            result.traces[label] = trace(store, mid)
    from loganalyzer.report import daily_report  # the report's modules load only here

    report = base / f"report-{SAMPLE_DAY.isoformat()}.html"
    daily_report(store, SAMPLE_DAY).save(report, traces=20)
    result.report = report
    return result


if __name__ == "__main__" and "--make-samples" in sys.argv:
    out = Path(__file__).parent / "samples" / SAMPLES
    make_samples(out)
    print(f"wrote {out.name}: {out.stat().st_size:,} bytes")
