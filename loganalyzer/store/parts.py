"""Part files: written under a temporary name, renamed into place by the committing process;
the Parquet writer options every part gets (ingest and compaction)."""

from __future__ import annotations

import functools
import os
import signal
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    pass

TMP_SUFFIX = ".tmp"
#: Set to a stage name, the process kills itself there (tests of a kill at that moment).
FAILPOINT = "LOGANALYZER_FAILPOINT"


def failpoint(stage: str) -> None:
    """Kill this process here when ``$LOGANALYZER_FAILPOINT`` names ``stage``."""
    if os.environ.get(FAILPOINT) == stage:
        # Windows has no SIGKILL: there os.kill ends the process at once (TerminateProcess)
        os.kill(os.getpid(), getattr(signal, "SIGKILL", signal.SIGTERM))


#: Rows per row group (a log file of up to 10 MB is one group; Bloom filters make lookups skip it).
ROW_GROUP = 65536


@dataclass
class Part:
    """A part file written under a temporary name, to be renamed into place."""

    tmp: str  # relative to the store root
    final: str
    rows: int


def part_options(table: str, rows: int) -> dict:
    """ParquetWriter options of every part of ``table`` (ingest and compaction): zstd, and
    per column what ``schema`` declares (dictionaries, min/max statistics, Bloom filters
    sized for ``rows`` expected rows)."""
    dictionary, statistics, bloom, delta = _column_options(table)
    ndv = min(ROW_GROUP, max(1024, rows))
    return {
        "compression": "zstd",
        "use_dictionary": list(dictionary),
        "write_statistics": list(statistics),
        "bloom_filter_options": {c: {"ndv": ndv, "fpp": 0.01} for c in bloom},
        "column_encoding": delta,
    }


@functools.cache
def _column_options(table: str) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], dict]:
    """The flagged columns of ``table`` (worked out once: a part of a small file is quick),
    and its delta-encoded ones: times, line numbers and counters that are not dictionaries,
    as they mostly grow by small steps (parts a fifth smaller and quicker to write than plain
    encoding)."""
    import pyarrow as pa

    from loganalyzer.schema import TABLES, Flag, flagged

    dictionary = flagged(table, Flag.DICTIONARY)
    delta = {
        f.name: "DELTA_BINARY_PACKED"
        for f in TABLES[table]
        if (pa.types.is_integer(f.type) or pa.types.is_timestamp(f.type))
        and f.name not in dictionary
    }
    return dictionary, flagged(table, Flag.STATISTICS), flagged(table, Flag.BLOOM), delta
