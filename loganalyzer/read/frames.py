"""pandas DataFrames from the store: filters, proper dtypes and time zones."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from eventcodes import OUTCOMES
from loganalyzer.errors import BadInput, as_list
from loganalyzer.read.query import address_pattern, connect, like, time_filter, tracking_event
from loganalyzer.schema import CATEGORIES, LOG_TABLES
from loganalyzer.schema import columns as schema_columns
from loganalyzer.store import Store
from loganalyzer.times import parse_window, zone_name


def to_frame(table: pa.Table, tz: str | None = None) -> pd.DataFrame:
    """Arrow to pandas: timestamps tz-aware (UTC or ``tz``), categoricals, Arrow strings."""
    df = table.to_pandas(types_mapper=_types, ignore_metadata=True)
    for col in df.columns:
        if col in CATEGORIES and df[col].dtype != "category":
            df[col] = df[col].astype("category")
        elif isinstance(df[col].dtype, pd.DatetimeTZDtype) and tz:
            df[col] = df[col].dt.tz_convert(tz)
    return df


def _types(t: pa.DataType):
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return pd.StringDtype("pyarrow")
    if pa.types.is_integer(t):
        return pd.api.types.pandas_dtype(str(t).replace("int", "Int"))  # nullable integers
    if pa.types.is_boolean(t):
        return pd.BooleanDtype()
    return None


def select(
    store: Store,
    table: str,
    *,
    since=None,
    until=None,
    columns=None,
    tz=None,
    time_column: str = "date_time",
    **filters,
) -> pd.DataFrame:
    """Rows of ``table`` matching the filters, in time order; ``since`` and ``until`` take the
    forms of ``loganalyzer.times``, read in ``tz`` (the zone of the returned times)."""
    if tz:
        tz = zone_name(tz)  # an unknown zone is refused before the store is read
    partitioned = table in LOG_TABLES
    columns = as_list(columns)
    if partitioned:  # (the derived views' columns are their SQL's)
        known = [c for c, _ in schema_columns(table)] + ["date"]
        if wrong := [c for c in columns if c not in known]:
            raise BadInput(
                f"{', '.join(map(repr, wrong))}: no such column of {table} (docs/fields.md "
                "lists them)"
            )
    since, until = parse_window(since, until, tz or "UTC", names=("since", "until"))
    where, params = time_filter(since, until, time_column, partitioned)
    element = "x.recipient" if table == "messages" else "x"
    list_column = "recipients" if table == "messages" else "recipient_address"
    clauses = [where]
    for name, value in filters.items():
        if value is None:
            continue
        values = [str(v) for v in as_list([value] if isinstance(value, int) else value)]
        if name == "sender":
            clauses.append(
                "(" + " or ".join("sender_address ilike ? escape '\\'" for _ in values) + ")"
            )
            params += [like(address_pattern(v)) for v in values]
        elif name == "recipient":
            clauses.append(
                "("
                + " or ".join(
                    f"len(list_filter({list_column}, lambda x: {element} ilike ? escape '\\')) > 0"
                    for _ in values
                )
                + ")"
            )
            params += [like(address_pattern(v)) for v in values]
        else:  # events as trace reads them (fail: FAIL), servers without case
            if name == "event_id":
                values = [tracking_event(v) for v in values]
            elif name == "outcome":
                values = [_outcome(v) for v in values]
            elif name == "server":
                values = [v.upper() for v in values]
            column = f"upper({name})" if name == "server" else name
            clauses.append(f"{column} in ({', '.join('?' for _ in values)})")
            params += values
    cols = ", ".join(columns) if columns else "*"
    query = f"select {cols} from {table} where {' and '.join(clauses)} order by {time_column}"
    with connect(store) as con:
        return to_frame(con.sql(query, params=params).to_arrow_table(), tz=tz)


def _outcome(text: str) -> str:
    """An outcome as the rows spell it; BadInput for a word that is none (a typo read as
    "no rows" would answer wrongly)."""
    word = text.strip().lower()
    if word not in OUTCOMES:
        raise BadInput(f"outcome {text!r}: not an outcome (one of: {', '.join(OUTCOMES)})")
    return word


LIST_COLUMNS = ("recipient_address", "recipient_status", "enhanced_status", "smtp_reply")


def explode_recipients(df: pd.DataFrame) -> pd.DataFrame:
    """One row per recipient of each tracking row, its status, enhanced code and reply beside
    it (``recipient``, ``recipient_status``, ``enhanced_status``, ``smtp_reply``). BadInput
    for a frame without ``recipient_address`` (``Store.tracking()``'s rows have it)."""
    if not isinstance(df, pd.DataFrame) or "recipient_address" not in df.columns:
        raise BadInput(
            "explode_recipients: give tracking rows with their recipient_address column "
            "(Store.tracking(), with it among columns=)"
        )
    df = df.copy()
    lengths = df["recipient_address"].map(lambda x: 0 if x is None else len(x))
    for col in LIST_COLUMNS[1:]:
        if col in df.columns:
            df[col] = [
                list(v if v is not None else [])[:n]
                + [None] * (n - len(v if v is not None else []))
                for v, n in zip(df[col], lengths, strict=True)
            ]
    cols = [c for c in LIST_COLUMNS if c in df.columns]
    out = df[lengths > 0].explode(cols, ignore_index=True)
    return out.rename(columns={"recipient_address": "recipient"})
