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
    """Hashes of the distinct IDs in a batch of rows."""
    out: set[int] = set()
    for column, norm in KEYS.items():
        if column in table.column_names:
            for value in pc.unique(table.column(column)).to_pylist():
                if value:
                    out.add(key_hash(norm(value)))
    return out


def encode(hashes: set[int] | np.ndarray) -> bytes:
    return np.unique(np.fromiter(hashes, dtype=np.uint32, count=len(hashes))).tobytes()


def merge(old: bytes | None, new: bytes) -> bytes:
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
    hashes = [key_hash(KEYS[col](v)) for col, vs in values.items() for v in vs if v]
    return [row for row in manifest.values() if holds(row.get("lookup"), hashes)]
