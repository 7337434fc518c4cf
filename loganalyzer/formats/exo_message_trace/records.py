"""JSON records of the message trace reporting API: NDJSON, OData ``{"value": [...]}`` documents.

NDJSON goes through pyarrow's JSON reader; a line that it cannot read (or a whole document) is
decoded with the ``json`` module. An OData envelope's records take the envelope's line number;
an envelope with an empty ``value`` adds nothing.
"""

from __future__ import annotations

import io
import json
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pajson

from loganalyzer.formats.base import Bad, Run
from loganalyzer.formats.exo_message_trace.sniff import ALIASES

_RECORD_ARRAY = re.compile(r'\s*\[|.*?"(?:value|results)"\s*:\s*\[', re.DOTALL)
#: Keys of which a record must have one.
_RECORD_KEYS = ("received", "date", "messageid", "senderaddress", "recipientaddress")


def _plain(table: pa.Table) -> pa.Table:
    """Scalar columns as strings, named in lower case (aliases applied); nested ones dropped."""
    cols: dict[str, pa.Array] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        key = ALIASES.get(name.lower(), name.lower())
        if pa.types.is_nested(col.type) or key in cols:
            continue
        cols[key] = col.cast(pa.string()) if col.type != pa.string() else col
    return pa.table(cols) if cols else pa.table({"_": pa.nulls(table.num_rows, pa.string())})


def _is_record(table: pa.Table) -> pa.Array:
    mask = pa.array(np.zeros(table.num_rows, dtype=bool))
    for key in _RECORD_KEYS:
        if key in table.column_names:
            mask = pc.or_(mask, pc.is_valid(table.column(key)))
    return mask


def _from_python(records: list[dict]) -> pa.Table:
    names: dict[str, None] = {}
    for r in records:
        names.update(dict.fromkeys(k for k, v in r.items() if not isinstance(v, dict | list)))
    cols = {
        k: pa.array([None if r.get(k) is None else str(r.get(k)) for r in records], pa.string())
        for k in names
    }
    return _plain(pa.table(cols)) if cols else pa.table({"_": pa.nulls(len(records), pa.string())})


def _envelope_items(value: object) -> list | None:
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        if isinstance(value.get("value"), list):
            return value["value"]
        d = value.get("d")
        if isinstance(d, dict) and isinstance(d.get("results"), list):
            return d["results"]
    return None


def document(run: Run, text: str) -> tuple[pa.Table, np.ndarray, list[Bad], Run]:
    """Records of one JSON document (an array, an OData envelope or one record), with lines,
    and the run of its records (``per_record``) that the rows' lines index."""
    m = _RECORD_ARRAY.match(text)
    decoder = json.JSONDecoder()
    records, where = [], []
    if m is None:
        start = len(text) - len(text.lstrip())
        records.append(decoder.raw_decode(text, start)[0])
        where.append(start)
    else:
        pos = m.end()
        while True:
            while pos < len(text) and text[pos] in " \t\r\n,":
                pos += 1
            if pos >= len(text) or text[pos] == "]":
                break
            item, end = decoder.raw_decode(text, pos)
            records.append(item)
            where.append(pos)
            pos = end
    keep = [i for i, r in enumerate(records) if isinstance(r, dict)]
    chars = np.frombuffer(text.encode("utf-32-le"), np.uint32)
    starts = np.array([where[i] for i in keep], dtype=np.int64)
    rows = np.searchsorted(np.flatnonzero(chars == 10), starts, side="left")
    kept = [records[i] for i in keep]
    one_each = per_record(run, rows, kept)
    return (*_keep_records(_from_python(kept), np.arange(len(kept)), one_each), one_each)


def per_record(run: Run, rows: np.ndarray, kept: list[dict]) -> Run:
    """A run of one line a record (its JSON on one line) at the line where it starts: a
    quarantined record of a pretty-printed document keeps the whole record, not its "{"."""
    texts = [json.dumps(r, ensure_ascii=False).encode() + b"\n" for r in kept]
    starts = np.cumsum([0] + [len(t) for t in texts[:-1]], dtype=np.int64)
    lines = run.line_numbers[rows] if len(rows) else run.line_numbers[:0]
    return Run(b"".join(texts), lines, starts, np.arange(len(kept)), run.directives)


def _keep_records(
    table: pa.Table, rows: np.ndarray, run: Run
) -> tuple[pa.Table, np.ndarray, list[Bad]]:
    ok = _is_record(table)
    ok_np = ok.to_numpy(zero_copy_only=False)
    bad = [
        Bad(int(run.line_numbers[rows[i]]), "not a message trace record", run.text(int(rows[i])))
        for i in np.flatnonzero(~ok_np).tolist()
    ]
    return table.filter(ok), rows[ok_np], bad


def ndjson(run: Run) -> tuple[pa.Table, np.ndarray, list[Bad]]:
    """Records of the run's lines: one record or one OData envelope per line."""
    try:
        table = pajson.read_json(
            io.BytesIO(run.data),
            read_options=pajson.ReadOptions(block_size=max(1 << 20, len(run.data) + 1)),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _ndjson_slowly(run)
    if table.num_rows != len(run.candidates):
        return _ndjson_slowly(run)
    lower = {n.lower(): n for n in table.column_names}
    parts, rows = [], []
    value = table.column(lower["value"]).combine_chunks() if "value" in lower else None
    if value is not None and not pa.types.is_list(value.type):
        value = None
    is_envelope = (
        pc.is_valid(value) if value is not None else pa.array(np.zeros(table.num_rows, bool))
    )
    top = table.filter(pc.invert(is_envelope))
    parts.append(_plain(top))
    rows.append(run.candidates[~is_envelope.to_numpy(zero_copy_only=False)])
    if value is not None and pa.types.is_struct(value.type.value_type):
        items = pc.list_flatten(value)
        parents = pc.list_parent_indices(value).to_numpy()
        parts.append(_plain(pa.Table.from_batches([pa.RecordBatch.from_struct_array(items)])))
        rows.append(run.candidates[parents])
    table = pa.concat_tables(parts, promote_options="default") if len(parts) > 1 else parts[0]
    return _keep_records(table, np.concatenate(rows), run)


def _ndjson_slowly(run: Run) -> tuple[pa.Table, np.ndarray, list[Bad]]:
    """Line by line, for a run that pyarrow's reader refused (a damaged line, mixed types)."""
    records, rows, bad = [], [], []
    for i in run.candidates.tolist():
        text = run.text(i)
        try:
            value = json.loads(text)
        except ValueError as exc:
            bad.append(Bad(int(run.line_numbers[i]), f"bad JSON: {exc}", text))
            continue
        items = _envelope_items(value)
        found = [value] if items is None else items
        found = [r for r in found if isinstance(r, dict)]
        if items is None and not found:
            bad.append(Bad(int(run.line_numbers[i]), "not a message trace record", text))
        records.extend(found)
        rows.extend([i] * len(found))
    table, kept, more = _keep_records(_from_python(records), np.array(rows, dtype=np.int64), run)
    return table, kept, bad + more
