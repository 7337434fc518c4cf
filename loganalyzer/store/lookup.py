"""A per-file lookup sketch: which files hold a message, without opening every part.

Each ingested file's manifest row keeps the sorted 32-bit hashes of the IDs its rows carry
(Message-ID, network message ID, SMTP session ID). A trace by ID hashes the ID, keeps the files
whose sketch holds it (a file with n IDs is read in vain for about n in 4 billion IDs) and
reads only their parts. A sketch is a hint: a file without one is always read.

Sketch formats: version 2 starts with ``02 00`` and hashes with FNV-1a and the murmur3
finaliser, worked out for a whole column at once with numpy (blake2 called from Python once per
ID cost a tenth of an ingest); version 1, from earlier stores, has no header (its length is a
multiple of 4) and hashes with blake2b. Both are read.
"""

from __future__ import annotations

import hashlib
import sys
import threading
from array import array
from bisect import bisect_left
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from datetime import date

    import numpy as np
    import pyarrow as pa

    from loganalyzer.store.manifest import FileRow, Manifest

# Reading sketches (a trace) uses the standard library only; numpy and pyarrow cost a trace
# command a quarter of a second to import. Sketches are stored little-endian, as numpy wrote.

#: Columns whose values go into the sketch, and how a value is normalised before hashing.
KEYS = {"message_id": str, "network_message_id": str.lower, "session_id": str.upper}
#: How pyarrow does what ``KEYS`` does (to ASCII text; other text goes through ``KEYS``).
_NORMALISE = {"message_id": None, "network_message_id": "utf8_lower", "session_id": "utf8_upper"}
HEADER = b"\x02\x00"
_MASK = 0xFFFFFFFF
_FNV_OFFSET, _FNV_PRIME = 2166136261, 16777619
#: IDs longer than this are hashed one by one (one numpy step per byte of the longest ID).
_LONG = 256


def key_hash(value: str) -> int:
    """The stable 32-bit hash of one ID (sketch version 2)."""
    h = _FNV_OFFSET
    for byte in value.encode():
        h = ((h ^ byte) * _FNV_PRIME) & _MASK
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & _MASK
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & _MASK
    return h ^ (h >> 16)


def key_hash_v1(value: str) -> int:
    """The hash of sketch version 1."""
    return int.from_bytes(hashlib.blake2b(value.encode(), digest_size=4).digest(), "little")


def hashes(values: pa.Array) -> np.ndarray:
    """``key_hash`` of every value of a string array without nulls, as uint32."""
    import numpy as np
    import pyarrow as pa

    values = values.cast(pa.large_string())
    n = len(values)
    offsets = np.frombuffer(values.buffers()[1], np.int64)[values.offset : values.offset + n + 1]
    data = np.frombuffer(values.buffers()[2] or b"", np.uint8)
    lengths = np.diff(offsets)
    # longest first: the IDs still being hashed at byte j are a prefix of the order
    order = np.argsort(-lengths, kind="stable")
    starts, lengths = offsets[:-1][order], lengths[order]
    long = int(np.searchsorted(-lengths, -_LONG, side="left"))  # how many are longer
    starts, lengths = starts[long:], lengths[long:]
    h = np.full(len(starts), _FNV_OFFSET, np.uint32)
    longest = int(lengths[0]) if len(lengths) else 0
    for j, k in enumerate(np.searchsorted(-lengths, -np.arange(longest), side="left").tolist()):
        h[:k] ^= data[starts[:k] + j]
        h[:k] *= np.uint32(_FNV_PRIME)
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    out = np.empty(n, np.uint32)
    out[order[long:]] = h
    if long:
        texts = values.take(pa.array(order[:long])).to_pylist()
        out[order[:long]] = [key_hash(t) for t in texts]
    return out


def _distinct_hashes(column: str, values: pa.Array) -> np.ndarray:
    """Hashes (int64) of the distinct values of an ID column, normalised as ``KEYS`` says;
    -1 for an empty value, which is no ID."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    values = pc.fill_null(values, "")
    normalise = _NORMALISE[column]
    out = hashes(getattr(pc, normalise)(values) if normalise else values).astype(np.int64)
    if normalise:  # pyarrow's case mapping of non-ASCII text may differ from Python's
        other = np.flatnonzero(~pc.string_is_ascii(values).to_numpy(zero_copy_only=False))
        if len(other):
            texts = values.take(pa.array(other)).to_pylist()
            out[other] = [key_hash(KEYS[column](t)) for t in texts]
    out[pc.equal(values, "").to_numpy(zero_copy_only=False)] = -1
    return out


def table_hashes(table: pa.Table) -> set[int]:
    """Hashes of the distinct IDs in a batch of rows (``key_hash`` of each)."""
    return slice_hashes(table, [0, table.num_rows])[0]


def slice_hashes(table: pa.Table, cuts: list[int]) -> list[set[int]]:
    """``table_hashes`` of each slice ``[cuts[i], cuts[i + 1])`` of ``table`` (the files of
    a bundle), each distinct value normalised and hashed once for all."""
    import numpy as np
    import pyarrow.compute as pc

    found: list[list] = [[] for _ in cuts[1:]]
    for column in KEYS:
        if column not in table.column_names:
            continue
        col = table.column(column)  # one array: its only chunk as it is (no copy)
        col = col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()
        encoded = pc.dictionary_encode(col)
        distinct = _distinct_hashes(column, encoded.dictionary)
        n = len(distinct)
        indices = pc.fill_null(encoded.indices, n).to_numpy()  # null: the extra slot n
        for k, (lo, hi) in enumerate(zip(cuts, cuts[1:], strict=False)):
            used = np.zeros(n + 1, dtype=bool)
            used[indices[lo:hi]] = True
            h = distinct[used[:n]]
            found[k].append(h[h >= 0])
    return [set(np.concatenate(f).tolist()) if f else set() for f in found]


def encode(hashes: set[int] | np.ndarray) -> bytes:
    """A version 2 sketch of ``hashes``."""
    import numpy as np

    found = np.fromiter(hashes, dtype=np.uint32, count=len(hashes))
    return HEADER + np.unique(found).astype("<u4").tobytes()


def merge(old: bytes | None, new: bytes) -> bytes | None:
    """The sketch of a grown file: ``old`` and ``new`` together; None (always read the file)
    when ``old`` was hashed the old way."""
    if not old or old == HEADER:
        return new  # already sorted and unique (``encode``)
    if new == HEADER:
        return old
    if _version(old) != _version(new):
        return None
    import numpy as np

    both = np.concatenate([np.frombuffer(s[len(HEADER) :], "<u4") for s in (old, new)])
    return HEADER + np.unique(both).astype("<u4").tobytes()


def _version(sketch: bytes) -> int:
    return 2 if len(sketch) % 4 == len(HEADER) and sketch.startswith(HEADER) else 1


def _keys(sketch: bytes) -> tuple[int, array]:
    version = _version(sketch)
    keys = array("I", sketch[len(HEADER) :] if version == 2 else sketch)  # 32-bit everywhere
    if sys.byteorder == "big":
        keys.byteswap()
    return version, keys


def _holds_any(keys: array, want: list[int], wanted: set[int]) -> bool:
    if len(want) > 16:  # many IDs (a page of a list): one pass over the sketch in C
        return not wanted.isdisjoint(keys)
    for h in want:
        at = bisect_left(keys, h)
        if at < len(keys) and keys[at] == h:
            return True
    return False


class Sketches:
    """The sketches of a whole manifest, read once for several lookups in a row (a trace
    looks up three to five times). Kept for many lookups (``store.cache``: the web app), they
    are merged into one sorted index after ``INDEX_AFTER`` lookups: a lookup is then a binary
    search of it, not a test of every file's sketch. Thread-safe; read-only once built."""

    #: Lookups answered file by file before the index is built (a trace's, its bounces' and
    #: its rejected attempts' are: the index needs numpy, a fifth of a second to import).
    INDEX_AFTER = 6

    def __init__(self, manifest: Manifest) -> None:
        self.rows = list(manifest.values())
        self.keys = [None if r.lookup is None else _keys(r.lookup) for r in self.rows]
        #: How many files the last ``holding`` named (of ``len(self.rows)``).
        self.last_count: int | None = None
        self.lookups = 0
        self.index: _Index | None = None
        self._building = threading.Lock()

    def holding(
        self, values: dict[str, list[str]], days: tuple[date, date] | None = None
    ) -> list[FileRow]:
        """Manifest rows of the files that may hold any of ``values`` (column -> IDs); with
        ``days`` (first, last), only files with a part of those days."""
        ids = {KEYS[col](v) for col, vs in values.items() for v in vs if v}
        want = {1: sorted(map(key_hash_v1, ids)), 2: sorted(map(key_hash, ids))}
        self.lookups += 1
        if self.index is None and self.lookups > self.INDEX_AFTER:
            with self._building:
                if self.index is None:
                    self.index = _Index(self.keys)
        if self.index is not None:
            rows = [self.rows[i] for i in self.index.holding(want)]
        else:
            wanted = {v: set(hs) for v, hs in want.items()}
            rows = [
                row
                for row, keys in zip(self.rows, self.keys, strict=True)
                if keys is None or _holds_any(keys[1], want[keys[0]], wanted[keys[0]])
            ]
        out = [row for row in rows if days is None or _on_days(row, days)]
        self.last_count = len(out)
        return out


class _Index:
    """Every file's sketch in one sorted array per sketch version, with the file (its
    position in ``Sketches.rows``) of each hash; files without a sketch always listed."""

    def __init__(self, keys: list[tuple[int, array] | None]) -> None:
        import numpy as np

        self.always = np.array([i for i, k in enumerate(keys) if k is None], dtype=np.int64)
        self.hashes: dict[int, np.ndarray] = {}
        self.files: dict[int, np.ndarray] = {}
        for version in (1, 2):
            mine = [(i, k[1]) for i, k in enumerate(keys) if k is not None and k[0] == version]
            hashes = [np.frombuffer(k, dtype=np.uint32) for _, k in mine]
            files = [np.full(len(k), i, dtype=np.int32) for i, k in mine]
            h = np.concatenate(hashes) if hashes else np.empty(0, np.uint32)
            f = np.concatenate(files) if files else np.empty(0, np.int32)
            order = np.argsort(h, kind="stable")
            self.hashes[version], self.files[version] = h[order], f[order]

    def holding(self, want: dict[int, list[int]]) -> list[int]:
        """Positions of the files whose sketch holds any hash of ``want`` (by version), or
        that have none, in manifest order."""
        import numpy as np

        found = [self.always]
        for version, hs in want.items():
            keys = self.hashes[version]
            if not hs or not len(keys):
                continue
            h = np.array(hs, dtype=np.uint32)
            lo = np.searchsorted(keys, h, side="left")
            hi = np.searchsorted(keys, h, side="right")
            found += [self.files[version][a:b] for a, b in zip(lo, hi, strict=True) if b > a]
        return np.unique(np.concatenate(found)).tolist()


def _on_days(row: FileRow, days: tuple[date, date]) -> bool:
    """Whether a part of the file is of a day in ``days`` (a part without a date partition
    in its name counts as any day)."""
    first, last = days[0].isoformat(), days[1].isoformat()
    for part in row.parts:
        at = part.find("date=")
        if at < 0 or first <= part[at + 5 : at + 15] <= last:
            return True
    return False
