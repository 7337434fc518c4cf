"""Column flags are declared with the schema, and the parts and DataFrames follow them."""

from __future__ import annotations

import subprocess

import pyarrow.parquet as pq
import pytest
from conftest import LOGANALYZER

from loganalyzer import schema
from loganalyzer.formats import get
from loganalyzer.read import frames
from loganalyzer.schema import Flag
from loganalyzer.store import Store

#: What a part of each log table carries, column by column (the store's format: a change here
#: changes what readers can skip and how large parts are).
EXPECTED = {
    "tracking": {
        "statistics": [
            "date_time",
            "server",
            "event_id",
            "message_id",
            "internal_message_id",
            "network_message_id",
            "sender_address",
            "line",
        ],
        "bloom": ["message_id", "network_message_id"],
        "dictionary": [
            "server",
            "log_format",
            "log_type",
            "event_id",
            "source",
            "outcome",
            "sender_address",
            "sender_domain",
            "return_path",
            "client_ip",
            "client_hostname",
            "server_ip",
            "server_hostname",
            "original_client_ip",
            "original_server_ip",
            "source_context",
            "connector_id",
            "directionality",
            "tenant_id",
            "transport_traffic_type",
            "schema_version",
            "file",
        ],
    },
    "smtp": {
        "statistics": ["date_time", "server", "session_id", "message_id", "line"],
        "bloom": ["session_id", "message_id"],
        "dictionary": [
            "tz_assumed",
            "server",
            "log_format",
            "direction",
            "connector_id",
            "session_id",
            "local_ip",
            "local_port",
            "remote_ip",
            "event",
            "command",
            "data",
            "context",
            "reply_code",
            "enhanced_status",
            "win32_status",
            "helo",
            "username",
            "file",
        ],
    },
}


def test_flags_are_read_from_the_declaration():
    server = next(c for c in schema.table_columns("tracking") if c.name == "server")
    assert server.flags == Flag.DICTIONARY | Flag.STATISTICS | Flag.CATEGORY
    assert schema.flagged("smtp", Flag.BLOOM) == ("session_id", "message_id")
    assert schema.flagged("quarantine", Flag.DICTIONARY) == ()
    # a column declared without flags has none
    assert next(c for c in schema.table_columns("manifest") if c.name == "rows").flags == Flag.NONE
    assert frames.CATEGORIES == schema.CATEGORIES
    assert sorted(schema.CATEGORIES) == [
        "action",
        "agent",
        "command",
        "connector_id",
        "direction",
        "directionality",
        "event",
        "event_id",
        "failure",
        "log_format",
        "log_type",
        "outcome",
        "reason",
        "server",
        "source",
    ]


@pytest.mark.parametrize(
    ("table", "fmt", "name"),
    [("tracking", "exchange-tracking", "MSGTRK2022091915-1.LOG"), ("smtp", "iis-smtp", "ex.log")],
)
def test_parts_carry_the_declared_encodings_statistics_and_bloom_filters(
    tmp_path, table, fmt, name
):
    log = tmp_path / "EX01" / name
    log.parent.mkdir()
    log.write_text(get(fmt).sample)
    store = tmp_path / "store"
    done = subprocess.run(
        [LOGANALYZER, "ingest", str(log), "--store", str(store), "--final"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    [rel] = Store(store).listed_parts(table)
    meta = pq.ParquetFile(Store(store).path(rel)).metadata
    group = meta.row_group(0)
    chunks = {
        meta.schema.column(i).path.split(".")[0]: group.column(i) for i in range(meta.num_columns)
    }
    stats = [n for n, c in chunks.items() if c.is_stats_set]
    blooms = [n for n, c in chunks.items() if c.bloom_filter_offset is not None]
    dictionary = [
        n
        for n, c in chunks.items()
        if "PLAIN_DICTIONARY" in c.encodings or "RLE_DICTIONARY" in c.encodings
    ]
    assert sorted(stats) == sorted(EXPECTED[table]["statistics"])
    assert sorted(blooms) == sorted(EXPECTED[table]["bloom"])
    assert sorted(dictionary) == sorted(EXPECTED[table]["dictionary"])
    # what the schema declares is what the part holds
    assert sorted(dictionary) == sorted(schema.flagged(table, Flag.DICTIONARY))
    assert sorted(stats) == sorted(schema.flagged(table, Flag.STATISTICS))
