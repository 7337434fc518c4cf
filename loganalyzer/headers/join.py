"""The join: the message's trace from the store, found by Message-ID or network message ID."""

from __future__ import annotations

import os

from loganalyzer.headers.model import HeaderAnalysis
from loganalyzer.store import Store
from loganalyzer.trace import trace


def join(result: HeaderAnalysis, store: str | os.PathLike[str] | Store, tz: str) -> None:
    """Set ``result.trace`` to the first trace found; a bounce's original message first.

    ``result.trace_query`` records every ID tried and the one that found the message.
    """
    st = store if isinstance(store, Store) else Store(store)
    tried: list[dict] = []
    keys = []
    if result.original is not None:
        keys += [
            ("original_message_id", result.original.message_id),
            ("original_network_message_id", result.original.network_message_id),
        ]
    keys += [
        ("message_id", result.message_id),
        ("network_message_id", result.network_message_id),
    ]
    for kind, value in keys:
        if not value:
            continue
        found = trace(st, value, tz=tz)
        if not found.messages and len(found.candidates) > 1:
            found = trace(st, value, tz=tz, all=True)
        tried.append({"by": kind, "value": value, "candidates": len(found.candidates)})
        if found.messages:
            result.trace = found
            result.trace_query = {"found_by": kind, "value": value, "tried": tried}
            return
    result.trace_query = {"found_by": None, "value": None, "tried": tried}
