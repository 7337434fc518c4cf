"""Read a received message's headers: hops and delays, authentication and antispam verdicts,
a bounce's failed recipients, and (with a store) the same message's trace from the logs.

```python
import loganalyzer as la
result = la.analyze_headers(open("message.eml", "rb").read(), store="mailstore")
result.to_dict()["hops"]
```
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING

from loganalyzer.errors import BadInput
from loganalyzer.headers.antispam import AntispamField, decode
from loganalyzer.headers.auth import AuthResult, verdicts
from loganalyzer.headers.bounce import BounceRecipient, read_bounce
from loganalyzer.headers.model import HeaderAnalysis, Original, TimelineEntry
from loganalyzer.headers.parse import decoded, is_message, items, message_id, parse_message
from loganalyzer.headers.received import Hop, chain, parse_date, parse_received
from loganalyzer.times import zone_name

if TYPE_CHECKING:
    from email.message import Message

    from loganalyzer.store import Store

__all__ = [
    "AntispamField",
    "AuthResult",
    "BounceRecipient",
    "HeaderAnalysis",
    "Hop",
    "Original",
    "TimelineEntry",
    "analyze_headers",
    "parse_received",
]

#: Headers holding the network message ID, best first.
NETWORK_ID_HEADERS = (
    "X-MS-Exchange-Organization-Network-Message-Id",
    "X-MS-Exchange-CrossTenant-Network-Message-Id",
)
_GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def _network_id(msg: Message) -> str | None:
    for name in NETWORK_ID_HEADERS:
        m = _GUID.search(str(msg.get(name) or "").replace("\n", "").replace(" ", ""))
        if m:
            return m[0].lower()
    return None


def _received(msg: Message) -> list[Hop]:
    return chain([value for name, value in items(msg) if name.lower() == "received"])


def _input(value: object, source: str | None) -> tuple[str | bytes, str | None]:
    """The text of ``analyze_headers``'s input, and its name: a path's file or an open file
    read whole; BadInput for anything else that is not text or bytes."""
    if isinstance(value, str | bytes):
        return value, source
    if isinstance(value, os.PathLike):
        try:
            with open(value, "rb") as fh:
                return fh.read(), source or os.fspath(value)
        except OSError as exc:
            raise BadInput(f"{os.fspath(value)}: cannot read it ({exc.strerror})") from None
    if callable(getattr(value, "read", None)):
        data = value.read()
        if isinstance(data, str | bytes):
            return data, source or getattr(value, "name", None)
    raise BadInput(f"headers {value!r}: give the text or bytes of a message, or a file's path")


def analyze_headers(
    text: str | bytes | os.PathLike[str],
    store: str | os.PathLike[str] | Store | None = None,
    *,
    tz: str = "UTC",
    source: str | None = None,
) -> HeaderAnalysis:
    """Analyse a message's headers: a ``.eml`` file's text, a saved bounce (NDR) or pasted
    headers. With ``store``, the message is looked up in the logs and its trace joined: for
    a bounce, the original message's trace. ``tz`` is the zone of displayed times; ``source``
    names the input in messages (its file name).

    Raises BadInput when the text holds no header or ``tz`` is unknown, NotAStore when
    ``store`` holds no store. ``text`` may also be a file's path (``pathlib.Path``) or an open
    file, read whole.
    """
    text, source = _input(text, source)
    tz = zone_name(tz)
    if store is not None:
        from loganalyzer.store import Store

        store = (store if isinstance(store, Store) else Store(store)).require()
    notes: list[str] = []
    msg = parse_message(text, notes)
    if not is_message(msg):
        named = isinstance(text, str) and "\n" not in text.strip() and os.path.isfile(text.strip())
        hint = "; to read the file, give pathlib.Path(...)" if named else ""
        raise BadInput(
            f"{source or 'the input'}: no message header found "
            f"(give a .eml file, a saved bounce or pasted headers{hint})"
        )
    ids = list(dict.fromkeys(filter(None, map(message_id, msg.get_all("Message-ID") or []))))
    if len(ids) > 1:  # (a relay or a client added one): the first is the one looked up
        notes.append(f"{len(ids)} Message-ID headers: {ids[0]} is used, not {', '.join(ids[1:])}")
    header_items = items(msg)
    chosen, found = verdicts(header_items)
    bounce = read_bounce(msg, notes)
    original = None
    if bounce is not None:
        original = _original(bounce.original, msg)
    date, _ = parse_date(decoded(msg.get("Date")))
    result = HeaderAnalysis(
        message_id=message_id(msg.get("Message-ID")),
        network_message_id=_network_id(msg),
        subject=decoded(msg.get("Subject")),
        sender=decoded(msg.get("From")),
        to=decoded(msg.get("To")),
        date=date,
        hops=_received(msg),
        auth=chosen,
        antispam=decode(header_items),
        bounce=bounce.recipients if bounce else [],
        is_bounce=bounce is not None,
        reporting_mta=bounce.reporting_mta if bounce else None,
        original=original,
        auth_all=found,
        notes=notes,
        tz=tz,
    )
    if store is not None:
        from loganalyzer.headers.join import join

        join(result, store, tz)
    return result


def _original(headers: Message | None, bounce: Message) -> Original | None:
    """The bounced message: its attached headers; else only the ID the bounce refers to
    (Exchange puts the original Message-ID in In-Reply-To and References)."""
    if headers is not None and headers.keys():
        date, _ = parse_date(decoded(headers.get("Date")))
        return Original(
            message_id=message_id(headers.get("Message-ID"))
            or message_id(bounce.get("In-Reply-To")),
            network_message_id=_network_id(headers),
            subject=decoded(headers.get("Subject")),
            sender=decoded(headers.get("From")),
            date=date,
            hops=_received(headers),
        )
    ref = message_id(bounce.get("In-Reply-To")) or message_id(bounce.get("References"))
    return Original(ref, None, None, None, None, []) if ref else None
