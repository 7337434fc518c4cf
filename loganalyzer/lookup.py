"""A per-file lookup sketch: which files hold a message, without opening every part.

Each ingested file's manifest row keeps the sorted 32-bit hashes of the IDs its rows carry
(Message-ID, network message ID, SMTP session ID). A trace by ID hashes the ID, keeps the files
whose sketch holds it (false positives: about one file in 4 billion per ID) and reads only
their parts. A sketch is a hint: a file without one is always read.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

#: Columns whose values go into the sketch, and how a value is normalised before hashing.
KEYS = {"message_id": str, "network_message_id": str.lower, "session_id": str.upper}


def key_hash(value: str) -> int:
    """The stable 32-bit hash of one ID."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "little")


def table_hashes(table: pa.Table) -> set[int]:
    """Hashes of the distinct IDs in a batch of rows (``key_hash`` of each)."""
    values: set[str] = set()
    for column, norm in KEYS.items():
        if column in table.column_names:
            values.update(norm(v) for v in pc.unique(table.column(column)).to_pylist() if v)
    digests = b"".join(hashlib.blake2b(v.encode(), digest_size=4).digest() for v in values)
    return set(np.frombuffer(digests, "<u4").tolist())


def encode(hashes: set[int] | np.ndarray) -> bytes:
    return np.unique(np.fromiter(hashes, dtype=np.uint32, count=len(hashes))).tobytes()


def merge(old: bytes | None, new: bytes) -> bytes:
    if not old:
        return new  # already sorted and unique (``encode``)
    both = np.concatenate([np.frombuffer(old or b"", np.uint32), np.frombuffer(new, np.uint32)])
    return np.unique(both).tobytes()


def holds(sketch: bytes | None, hashes: list[int]) -> bool:
    """Whether a file may hold any of the IDs (True when it has no sketch)."""
    if sketch is None:
        return True
    keys = np.frombuffer(sketch, np.uint32)
    want = np.array(hashes, dtype=np.uint32)
    at = np.searchsorted(keys, want)
    return bool(np.any(keys[np.minimum(at, len(keys) - 1)] == want)) if len(keys) else False


def files_holding(manifest: dict[str, dict], values: dict[str, list[str]]) -> list[dict]:
    """Manifest rows of the files that may hold any of ``values`` (column -> IDs)."""
    return Sketches(manifest).holding(values)


class Sketches:
    """The sketches of a whole manifest in one array, for several lookups in a row (a trace
    looks up three times; one pass over every key beats a search per file)."""

    def __init__(self, manifest: dict[str, dict]) -> None:
        self.rows = list(manifest.values())
        arrays = [np.frombuffer(r.get("lookup") or b"", np.uint32) for r in self.rows]
        self.keys = np.concatenate(arrays) if arrays else np.empty(0, np.uint32)
        self.ends = np.cumsum([len(a) for a in arrays])
        self.unsketched = [i for i, r in enumerate(self.rows) if r.get("lookup") is None]

    def holding(self, values: dict[str, list[str]]) -> list[dict]:
        """Manifest rows of the files that may hold any of ``values`` (column -> IDs)."""
        hashes = np.array(
            [key_hash(KEYS[col](v)) for col, vs in values.items() for v in vs if v], np.uint32
        )
        at = np.flatnonzero(np.isin(self.keys, hashes)) if len(hashes) else np.empty(0, int)
        found = set(np.searchsorted(self.ends, at, side="right").tolist())
        return [self.rows[i] for i in sorted(found.union(self.unsketched))]
