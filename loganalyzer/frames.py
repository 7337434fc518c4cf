"""pandas DataFrames from the store: filters, proper dtypes and time zones."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa

from loganalyzer.query import like, time_filter

#: Low-cardinality columns returned as categoricals.
CATEGORIES = (
    "event_id",
    "source",
    "outcome",
    "server",
    "log_format",
    "log_type",
    "direction",
    "event",
    "command",
    "connector_id",
    "directionality",
)


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
    store, table: str, *, since=None, until=None, columns=None, tz=None, **filters
) -> pd.DataFrame:
    """Rows of ``table`` matching the filters, in time order."""
    where, params = time_filter(since, until)
    clauses = [where]
    for name, value in filters.items():
        if value is None:
            continue
        values = [value] if isinstance(value, str | int) else list(value)
        if name == "sender":
            clauses.append(
                "(" + " or ".join("sender_address ilike ? escape '\\'" for _ in values) + ")"
            )
            params += [like(v) for v in values]
        elif name == "recipient":
            clauses.append(
                "("
                + " or ".join(
                    "len(list_filter(recipient_address, lambda x: x ilike ? escape '\\')) > 0"
                    for _ in values
                )
                + ")"
            )
            params += [like(v) for v in values]
        else:
            clauses.append(f"{name} in ({', '.join('?' for _ in values)})")
            params += [str(v).upper() if name == "event_id" else str(v) for v in values]
    cols = ", ".join(columns) if columns else "*"
    query = f"select {cols} from {table} where {' and '.join(clauses)} order by date_time"
    with store.connect() as con:
        return to_frame(con.sql(query, params=params).to_arrow_table(), tz=tz)
