"""The public ``Store`` (``loganalyzer.Store``): the store of ``loganalyzer.store`` with its
readers, DataFrames and SQL over the store's views."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loganalyzer.errors import BadInput
from loganalyzer.read.query import connect
from loganalyzer.store import FileRow, Manifest
from loganalyzer.store import Store as _Store

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

# pandas is imported by the methods that return DataFrames (``read.frames``): a connection
# alone needs DuckDB only.


class Store(_Store):
    """A store: ``tracking/``, ``smtp/``, ``quarantine/`` and ``manifest.parquet`` in a folder
    or under an fsspec URL (``s3://bucket/mailstore``, ``memory://store``), read as
    DataFrames and SQL; it also takes everything ``loganalyzer.store.Store`` does.

    ``lease``: seconds an object store's lock lives without renewal (see
    ``loganalyzer.store.location``).
    """

    def connect(
        self, only: list[FileRow] | None = None, manifest: Manifest | None = None
    ) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection with views ``tracking``, ``smtp``, ``recipients``,
        ``messages``, ``quarantine`` and ``files`` over the parts the manifest lists (or the
        files in ``only``). NotAStore when the path holds no store."""
        return connect(self, only, manifest)

    def sql(self, query: str, params: list | None = None) -> pd.DataFrame:
        """Run SQL over the store's views; returns a DataFrame. BadInput for a text that holds
        no statement (empty, or comments alone) and for SQL that DuckDB refuses (its first
        line says what is wrong). Columns of the same name (``select date_time, * from
        smtp``) are told apart as DuckDB does a subquery's: ``a``, ``a_1``, ``a_2``."""
        import duckdb

        from loganalyzer.read.frames import to_frame

        if not isinstance(query, str):
            raise BadInput(f"SQL {query!r}: give the query as text")
        if isinstance(params, str | bytes):  # would be read as a list of its characters
            raise BadInput(f"SQL parameters {params!r}: give a list of values")
        with self.connect() as con:
            try:
                result = con.sql(query, params=params or None)
                if result is None:  # DuckDB gives no relation for a text of no statement
                    raise BadInput(f"SQL {query.strip()[:40]!r}: no statement to run")
                table = result.to_arrow_table()
                return to_frame(table.rename_columns(_told_apart(table.column_names)))
            except duckdb.Error as exc:
                raise BadInput(f"SQL: {_one_line(str(exc))}") from exc

    def tracking(
        self,
        since=None,
        until=None,
        sender=None,
        recipient=None,
        event_id=None,
        outcome=None,
        server=None,
        columns=None,
        tz=None,
    ) -> pd.DataFrame:
        """Tracking rows, filtered; ``sender``/``recipient`` accept ``*`` wildcards."""
        from loganalyzer.read.frames import select

        return select(
            self,
            "tracking",
            since=since,
            until=until,
            sender=sender,
            recipient=recipient,
            event_id=event_id,
            outcome=outcome,
            server=server,
            columns=columns,
            tz=tz,
        )

    def smtp(
        self,
        since=None,
        until=None,
        server=None,
        remote_ip=None,
        session_id=None,
        columns=None,
        tz=None,
    ) -> pd.DataFrame:
        """SMTP protocol and IIS SMTP rows, filtered."""
        from loganalyzer.read.frames import select

        return select(
            self,
            "smtp",
            since=since,
            until=until,
            server=server,
            remote_ip=remote_ip,
            session_id=session_id,
            columns=columns,
            tz=tz,
        )

    def messages(
        self, since=None, until=None, sender=None, recipient=None, columns=None, tz=None
    ) -> pd.DataFrame:
        """One row per message: first and last row, sender, subject, size, the servers it
        passed, each recipient's last outcome, counts per outcome, latency in seconds."""
        from loganalyzer.read.frames import select

        return select(
            self,
            "messages",
            since=since,
            until=until,
            sender=sender,
            recipient=recipient,
            columns=columns,
            tz=tz,
            time_column="first_seen",
        )

    def quarantine(self) -> pd.DataFrame:
        """Lines that could not be used: file, line, reason, raw text."""
        return self.sql("select * from quarantine order by file, line")

    def files(self) -> pd.DataFrame:
        """The manifest: one row per ingested file."""
        return self.sql("select * from files order by file_key")


#: DuckDB's hints on the lines after its error (the rest are the query and a caret).
_HINTS = ("Did you mean", "Candidate bindings")


def _told_apart(names: list[str]) -> list[str]:
    """``names`` each made unique by a suffix ``_1``, ``_2``... where an earlier one has it (a
    DataFrame, JSON and CSV need a column's name to be one column's)."""
    seen: set[str] = set()
    out = []
    for name in names:
        new, n = name, 0
        while new in seen:
            n += 1
            new = f"{name}_{n}"
        seen.add(new)
        out.append(new)
    return out


def _one_line(error: str) -> str:
    """DuckDB's error in one line: its first, and its hint of a near name where it gives one
    (a misspelt table or column)."""
    lines = error.splitlines()
    hint = next((line.strip() for line in lines[1:] if line.startswith(_HINTS)), "")
    return f"{lines[0]} {hint}".strip()
