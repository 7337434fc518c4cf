"""Writing small Exchange tracking logs for tests, the way Exchange writes them."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from loganalyzer.formats.exchange_tracking import FIELD_SETS

FIELDS_2016 = FIELD_SETS[30]


def header(fields=FIELDS_2016, date="2026-03-02T10:00:00.000Z", version="15.01.2507.035"):
    return (
        "#Software: Microsoft Exchange Server\r\n"
        f"#Version: {version}\r\n"
        "#Log-type: Message Tracking Log\r\n"
        f"#Date: {date}\r\n"
        f"#Fields: {','.join(fields)}\r\n"
    )


def line(values: dict, fields=FIELDS_2016) -> str:
    """One CSV line: quoted only where a value holds a comma or a quote, as Exchange does."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL).writerow(
        [values.get(f, "") for f in fields]
    )
    return buf.getvalue()


def row(i: int = 0, **values) -> dict:
    """A plausible RECEIVE row, with ``values`` overriding fields (dashed names)."""
    base = {
        "date-time": f"2026-03-02T10:{i // 60 % 60:02d}:{i % 60:02d}.{i % 1000:03d}Z",
        "client-ip": "10.0.0.5",
        "client-hostname": "EX01.contoso.com",
        "server-ip": "10.0.0.6",
        "server-hostname": "EX02",
        "source-context": f"08DA9A4C1D2E{i:04X};2026-03-02T10:00:00.000Z;0",
        "connector-id": "EX02\\Default EX02",
        "source": "SMTP",
        "event-id": "RECEIVE",
        "internal-message-id": str(73014444033 + i),
        "message-id": f"<msg{i}@contoso.com>",
        "network-message-id": f"13fad5b7-39c5-46e7-130e-{i:012x}",
        "recipient-address": "bob@contoso.com",
        "recipient-status": "",
        "total-bytes": str(7000 + i),
        "recipient-count": "1",
        "message-subject": f"Subject {i}",
        "sender-address": "alice@contoso.com",
        "return-path": "alice@contoso.com",
        "directionality": "Originating",
        "transport-traffic-type": "Email",
        "log-id": f"05503123-c5b9-46fe-1234-{i:012x}",
        "schema-version": "15.01.2507.035",
    }
    base.update({k.replace("_", "-"): v for k, v in values.items()})
    return base


def write_log(
    path: Path, rows: list[dict], *, fields=FIELDS_2016, bom=True, head=True, tail: str = ""
) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    text = (header(fields) if head else "") + "".join(line(r, fields) for r in rows) + tail
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path
