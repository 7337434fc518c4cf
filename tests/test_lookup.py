"""Lookup sketches: the vectorised hash, and stores whose sketches an earlier version wrote."""

from __future__ import annotations

import json
import random
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from loganalyzer.ingest import ingest
from loganalyzer.store import FileRow, Store, lookup
from loganalyzer.synth import generate
from loganalyzer.trace import trace


def test_column_hashes_equal_one_by_one_hashes():
    rng = random.Random(3)
    chars = "abcDEF0123<>@.-ßé中"
    values = [
        "".join(rng.choice(chars) for _ in range(rng.choice([0, 1, 16, 36, 60, 256, 257, 900])))
        for _ in range(5000)
    ]
    got = lookup.hashes(pa.array(values))
    assert got.tolist() == [lookup.key_hash(v) for v in values]
    assert lookup.hashes(pa.array(values).slice(7, 50)).tolist() == got[7:57].tolist()
    for column, normalise in lookup.KEYS.items():  # Python's case mapping, also of ß
        table = pa.table({column: pa.array([*values, None])})
        want = {lookup.key_hash(normalise(v)) for v in values if v}
        assert lookup.table_hashes(table) == want


def _v1_sketch(store: Store, row: FileRow) -> bytes:
    """The sketch an earlier version wrote: blake2b of each ID, no header."""
    ids = set()
    for part in row.parts:
        if part.startswith("quarantine"):
            continue
        table = pq.read_table(f"{store.root}/{part}")
        for column, normalise in lookup.KEYS.items():
            if column in table.column_names:
                ids |= {normalise(v) for v in table.column(column).to_pylist() if v}
    hashes = sorted({lookup.key_hash_v1(v) for v in ids})
    return np.array(hashes, dtype="<u4").tobytes()


def test_a_store_with_version_1_sketches_still_traces(tmp_path):
    generate(tmp_path / "logs", servers=2, days=1, messages=150, seed=5)
    store = Store(tmp_path / "store")
    assert ingest([tmp_path / "logs"], store).exit_code == 0
    manifest = store.manifest()
    assert all(r.lookup.startswith(lookup.HEADER) for r in manifest.values())
    with store.lock():
        for row in manifest.values():
            row.lookup = _v1_sketch(store, row)
        store.write_manifest(manifest)

    truth = [json.loads(x) for x in (tmp_path / "logs" / "truth.jsonl").open()]
    message = next(t for t in truth if t["verdict"] == "delivered")
    sketches = lookup.Sketches(store.manifest())
    holding = sketches.holding({"message_id": [message["message_id"]]})
    assert 0 < len(holding) < len(manifest)  # the old sketches still narrow the search
    found = trace(store, message["message_id"].strip("<>"))
    assert len(found.messages) == 1
    assert found.messages[0].message_id == message["message_id"]
    by_network_id = trace(store, message["network_message_id"].upper())
    assert by_network_id.messages[0].message_id == message["message_id"]


def test_a_grown_file_keeps_a_sketch_of_its_own_version():
    new = lookup.encode({7, 3})
    assert lookup.merge(new, lookup.encode({5})) == lookup.encode({3, 5, 7})
    old = np.array([1, 9], dtype="<u4").tobytes()
    assert lookup.merge(old, new) is None  # hashed two ways: the file is always read
    assert lookup.merge(old, lookup.encode(set())) == old
    assert lookup.merge(b"", new) == new


def test_the_merged_index_names_the_files_each_sketch_names(tmp_path):
    generate(tmp_path / "logs", servers=2, days=2, messages=80, seed=9)
    store = Store(tmp_path / "store")
    assert ingest([tmp_path / "logs"], store).exit_code == 0
    manifest = store.manifest()
    rows = sorted(manifest.values(), key=lambda r: r.file_key)
    for row in rows[::3]:  # sketches of both versions, and a file without one
        row.lookup = _v1_sketch(store, row)
    rows[1].lookup = None
    truth = [json.loads(x) for x in (tmp_path / "logs" / "truth.jsonl").open()]
    asked = [{"message_id": [t["message_id"]]} for t in truth[:60]]
    asked += [{"network_message_id": [t["network_message_id"].upper()]} for t in truth[:20]]
    asked += [{"message_id": [t["message_id"] for t in truth[i : i + 30]]} for i in (0, 40)]
    asked += [{"message_id": ["<nowhere@example.com>"]}, {"session_id": ["08DE00000000ABCD"]}]
    one_by_one, indexed = lookup.Sketches(manifest), lookup.Sketches(manifest)
    one_by_one.INDEX_AFTER, indexed.INDEX_AFTER = 10**9, 0
    day = date.fromisoformat(min(t["received_at"] for t in truth)[:10])
    narrowed = 0
    for values in asked:
        for days in (None, (day, day)):
            want = one_by_one.holding(values, days)
            got = indexed.holding(values, days)
            assert [r.file_key for r in got] == [r.file_key for r in want]
            narrowed += len(want) < len(manifest)
    assert indexed.index is not None and one_by_one.index is None
    assert narrowed > len(asked) // 2  # the sketches do narrow (the test can fail)
