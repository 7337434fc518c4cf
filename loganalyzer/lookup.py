"""A per-file lookup sketch: which files hold a message, without opening every part.

Each ingested file's manifest row keeps the sorted 32-bit hashes of the IDs its rows carry
(Message-ID, network message ID, SMTP session ID). A trace by ID hashes the ID, keeps the files
whose sketch holds it (false positives: about one file in 4 billion per ID) and reads only
their parts. A sketch is a hint: a file without one is always read.
"""

from __future__ import annotations

import hashlib
import sys
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

# Reading sketches (a trace) uses the standard library only; numpy and pyarrow cost a trace
# command a quarter of a second to import. Sketches are stored little-endian, as numpy wrote.

#: Columns whose values go into the sketch, and how a value is normalised before hashing.
KEYS = {"message_id": str, "network_message_id": str.lower, "session_id": str.upper}


def key_hash(value: str) -> int:
    """The stable 32-bit hash of one ID."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "little")


def table_hashes(table: pa.Table) -> set[int]:
    """Hashes of the distinct IDs in a batch of rows (``key_hash`` of each)."""
    import numpy as np
    import pyarrow.compute as pc

    values: set[str] = set()
    for column, norm in KEYS.items():
        if column in table.column_names:
            values.update(norm(v) for v in pc.unique(table.column(column)).to_pylist() if v)
    digests = b"".join(hashlib.blake2b(v.encode(), digest_size=4).digest() for v in values)
    return set(np.frombuffer(digests, "<u4").tolist())


def slice_hashes(table: pa.Table, cuts: list[int]) -> list[set[int]]:
    """``table_hashes`` of each slice ``[cuts[i], cuts[i + 1])`` of ``table`` (the files of
    a bundle), each distinct value normalised and hashed once for all."""
    import numpy as np
    import pyarrow.compute as pc

    found: list[list] = [[] for _ in cuts[1:]]
    for column, norm in KEYS.items():
        if column not in table.column_names:
            continue
        encoded = pc.dictionary_encode(table.column(column).combine_chunks())
        values = [norm(v) if v else "" for v in encoded.dictionary.to_pylist()]
        digests = b"".join(hashlib.blake2b(v.encode(), digest_size=4).digest() for v in values)
        hashes = np.frombuffer(digests, "<u4").astype(np.int64)
        hashes[[i for i, v in enumerate(values) if not v]] = -1  # empty: not an ID
        indices = pc.fill_null(encoded.indices, -1).to_numpy()
        for k, (lo, hi) in enumerate(zip(cuts, cuts[1:], strict=False)):
            used = np.unique(indices[lo:hi])
            h = hashes[used[used >= 0]]
            found[k].append(h[h >= 0])
    return [set(np.concatenate(f).tolist()) if f else set() for f in found]


def encode(hashes: set[int] | np.ndarray) -> bytes:
    import numpy as np

    return np.unique(np.fromiter(hashes, dtype=np.uint32, count=len(hashes))).tobytes()


def merge(old: bytes | None, new: bytes) -> bytes:
    if not old:
        return new  # already sorted and unique (``encode``)
    import numpy as np

    both = np.concatenate([np.frombuffer(old or b"", np.uint32), np.frombuffer(new, np.uint32)])
    return np.unique(both).tobytes()


def _keys(sketch: bytes) -> array:
    keys = array("I", sketch)  # 32-bit on every platform Python runs on
    if sys.byteorder == "big":
        keys.byteswap()
    return keys


def _holds_any(keys: array, want: list[int]) -> bool:
    for h in want:
        at = bisect_left(keys, h)
        if at < len(keys) and keys[at] == h:
            return True
    return False


class Sketches:
    """The sketches of a whole manifest, read once for several lookups in a row (a trace
    looks up three times)."""

    def __init__(self, manifest: dict[str, dict]) -> None:
        self.rows = list(manifest.values())
        self.keys = [None if r.get("lookup") is None else _keys(r["lookup"]) for r in self.rows]

    def holding(self, values: dict[str, list[str]]) -> list[dict]:
        """Manifest rows of the files that may hold any of ``values`` (column -> IDs)."""
        want = sorted({key_hash(KEYS[col](v)) for col, vs in values.items() for v in vs if v})
        return [
            row
            for row, keys in zip(self.rows, self.keys, strict=True)
            if keys is None or _holds_any(keys, want)
        ]
