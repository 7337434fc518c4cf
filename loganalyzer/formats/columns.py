"""Column transforms shared by the format modules, on whole Arrow arrays.

Per-row Python runs only for the rare values that need it (a recipient-status list with
``;`` inside brackets); everything else is an Arrow compute kernel.
"""

from __future__ import annotations

import itertools
import re
import warnings
from dataclasses import dataclass
from functools import cache

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

import eventcodes

LIST = pa.list_(pa.string())
_PROTECT = "\x1f"
_STATUS_START = re.compile(r"\s*(?:[2-5]\d\d\b|\[|\{|To$|Cc$|Bcc$)")
_ISO_OK = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:?\d{2})?$"


def whole(col: pa.Array | pa.ChunkedArray) -> pa.Array:
    """``col`` as one array: its only chunk as it is (``combine_chunks`` copies even one)."""
    if not isinstance(col, pa.ChunkedArray):
        return col
    return col.chunk(0) if col.num_chunks == 1 else col.combine_chunks()


def constant(value: str, n: int) -> pa.Array:
    """``n`` copies of one string."""
    return pa.repeat(pa.scalar(value, pa.string()), n)


def null_if_empty(col: pa.Array) -> pa.Array:
    """Empty strings become nulls (the logs write empty fields as ``,,``)."""
    return pc.if_else(pc.equal(col, ""), pa.scalar(None, col.type), col)


def parse_utc(col: pa.Array) -> tuple[pa.Array, pa.Array]:
    """ISO 8601 text to UTC milliseconds; returns the times and a mask of unparseable values.

    Text without a zone is taken as UTC (Exchange writes UTC, sometimes without ``Z``).
    """
    try:  # the usual case: every value names its zone (``Z``)
        ts = col.cast(pa.timestamp("ns", tz="UTC"))
        return ts.cast(pa.timestamp("ms", tz="UTC"), safe=False), _none(len(col))
    except pa.ArrowInvalid:
        pass
    # one trailing Z off (a regex here costs most of the parse)
    text = pc.if_else(pc.ends_with(col, "Z"), pc.utf8_slice_codeunits(col, 0, -1), col)
    try:
        ts = text.cast(pa.timestamp("ns"))
    except pa.ArrowInvalid:
        ok = pc.match_substring_regex(col, _ISO_OK)
        text = pc.if_else(ok, text, pa.scalar(None, pa.string()))
        try:
            ts = text.cast(pa.timestamp("ns"))
        except pa.ArrowInvalid:  # well-formed but impossible dates: one by one
            ts = pa.array([_one_time(v) for v in text.to_pylist()], pa.timestamp("ns"))
    ts = ts.cast(pa.timestamp("ms"), safe=False).cast(pa.timestamp("ms", tz="UTC"))
    bad = pc.and_(pc.is_null(ts), pc.and_(pc.is_valid(col), pc.not_equal(col, "")))
    return ts, pc.fill_null(bad, False)


@dataclass
class LocalClock:
    """What reading a file's local times carries from one run to the next (and, saved with
    the read state, to the next ingest of a grown file): the latest local time read, in
    milliseconds, and the local day whose repeated hour has reached its second pass."""

    latest: int | None = None
    second_pass_day: int | None = None

    def text(self) -> str:
        return f"{self.latest} {self.second_pass_day}"

    @classmethod
    def read(cls, text: str | None) -> LocalClock:
        """The clock ``text()`` wrote; a fresh one for none or a damaged one."""
        try:
            latest, day = (None if v == "None" else int(v) for v in (text or "").split())
        except ValueError:
            return cls()
        return cls(latest, day)


_DAY_MS = 86_400_000


def local_to_utc(local: pa.Array, tz: str, clock: LocalClock) -> pa.Array:
    """Local wall times of one file, in file order, to UTC times in zone ``tz``; ``clock``
    carries what the file's next lines need and is updated.

    The logs are written in time order, so when the clocks go back the repeated hour's
    local times run backwards: a repeated time read after a later one of the same day (the
    step back) and every repeated time of that day after it are the second pass (standard
    time); the others the first. A line logged out of order inside the repeated hour is
    taken for the step back. A skipped time (clocks forward: only a clock or zone set wrong
    writes one) is read with the offset before the change, as ``times`` reads a time given
    on the command line (02:30 in Berlin on the spring day: 01:30 UTC), its order kept.
    """
    early = pc.assume_timezone(local, timezone=tz, ambiguous="earliest", nonexistent="latest")
    late = pc.assume_timezone(local, timezone=tz, ambiguous="latest", nonexistent="latest")
    gap = pc.assume_timezone(local, timezone=tz, ambiguous="earliest", nonexistent="earliest")
    skipped = pc.fill_null(pc.not_equal(gap, early), False)
    if pc.any(skipped).as_py():
        # the offset just before the gap: local wall time minus UTC of its last instant
        offset = pc.subtract(pc.local_timestamp(gap).cast(pa.int64()), gap.cast(pa.int64()))
        shifted = pc.subtract(local.cast(pa.int64()), offset).cast(early.type)
        early, late = pc.if_else(skipped, shifted, early), pc.if_else(skipped, shifted, late)
    repeated = pc.fill_null(pc.not_equal(early, late), False).to_numpy(zero_copy_only=False)
    lowest = np.iinfo(np.int64).min
    ms = pc.fill_null(local.cast(pa.int64()), lowest).to_numpy(zero_copy_only=False)
    before = np.concatenate(([lowest if clock.latest is None else clock.latest], ms))
    latest = np.maximum.accumulate(before)  # latest[i]: the latest time before line i
    at = np.flatnonzero(repeated)
    if len(at):
        day = ms[at] // _DAY_MS
        back = (ms[at] < latest[at]) | (day == clock.second_pass_day)
        # within each stretch of one day's repeated times, from the first step back on
        segment = np.cumsum(np.concatenate(([True], day[1:] != day[:-1])))
        second = np.maximum.accumulate(segment * 2 + back) == segment * 2 + 1
        if second.any():
            clock.second_pass_day = int(day[np.flatnonzero(second)[-1]])
        pick = np.zeros(len(ms), dtype=bool)
        pick[at] = second
        early = pc.if_else(pa.array(pick), late, early)
    if latest[-1] != lowest:
        clock.latest = int(latest[-1])
    return early


def _none(n: int) -> pa.Array:
    return pa.array(np.zeros(n, dtype=bool))


def _one_time(value: str | None):
    if value is None:
        return None
    try:
        with warnings.catch_warnings():
            # numpy takes an offset (+01:00) to UTC, as wanted, and warns that it does: a
            # line of Python on stderr in the middle of the ingest's output
            warnings.simplefilter("ignore", UserWarning)
            return np.datetime64(value.replace(" ", "T"), "ns")
    except ValueError:
        return None


def parse_int(col: pa.Array, type_: pa.DataType | None = None) -> tuple[pa.Array, pa.Array]:
    """Integer text to ``type_`` (int64); returns the values and a mask of non-numeric text."""
    type_ = type_ or pa.int64()
    try:  # the usual case: plain digits (a cast refuses signs, spaces and overflow)
        return col.cast(type_), _none(len(col))
    except pa.ArrowInvalid:
        pass
    text = pc.utf8_trim_whitespace(col)
    ok = pc.match_substring_regex(text, r"^-?\d{1,18}$")
    values = pc.if_else(ok, text, pa.scalar(None, pa.string())).cast(pa.int64())
    if type_ != pa.int64():  # a number past the type's range is as bad as no number
        info = np.iinfo(type_.to_pandas_dtype())
        fits = pc.and_(pc.greater_equal(values, info.min), pc.less_equal(values, info.max))
        ok = pc.and_(ok, fits)
        values = pc.if_else(ok, values, pa.scalar(None, pa.int64())).cast(type_)
    bad = pc.and_(pc.invert(pc.fill_null(ok, False)), pc.fill_null(pc.not_equal(text, ""), False))
    return values, bad


def split_list(col: pa.Array, sep: str = ";") -> pa.ListArray:
    """Split text on ``sep``; an empty or null value is an empty list."""
    parts = pc.split_pattern(null_if_empty(col), sep)
    return pa.ListArray.from_arrays(parts.offsets, parts.values)


_BRACKET = re.compile(r"[\[\]{}]")


def _hide_bracketed(value: str) -> str:
    """``value`` with each ``;`` inside brackets replaced by ``_PROTECT``."""
    segments = value.split(";")
    depth, out = 0, [segments[0]]
    # brackets counted in C, not walked char by char
    for before, segment in itertools.pairwise(segments):
        closes = before.count("]") + before.count("}")
        if closes > depth:  # the depth may bottom out at 0 inside: walk its brackets
            for ch in _BRACKET.findall(before):
                depth = depth + 1 if ch in "[{" else max(0, depth - 1)
        else:
            depth += before.count("[") + before.count("{") - closes
        out.append(_PROTECT if depth else ";")
        out.append(segment)
    return "".join(out)


def _protect(value: str, count: int) -> str:
    """Hide the ``;`` that do not separate recipients' statuses: those inside brackets (which
    nest: ``[{LED=... was [2001:db8::26]:25};{MSG=}]``), and those inside one status."""
    protected = _hide_bracketed(value)
    parts = protected.split(";")
    if count and len(parts) != count:  # "550 4.4.7 QUEUE.Expired;message expired"
        merged: list[str] = []
        for part in parts:
            if merged and not _STATUS_START.match(part):
                merged[-1] += _PROTECT + part
            else:
                merged.append(part)
        if len(merged) == count:
            return ";".join(merged)
    return protected


def split_statuses(col: pa.Array, counts: pa.Array) -> pa.ListArray:
    """Split recipient-status on ``;`` only outside ``[...]`` and ``{...}``.

    ``counts`` (the number of recipients of each row) settles a ``;`` inside one status.
    """
    col = pc.fill_null(col, "")
    lengths = pc.list_value_length(pc.split_pattern(col, ";"))
    odd = pc.and_(  # a status without ";" splits into itself, brackets or not
        pc.greater(lengths, 1),
        # Kleene: brackets make a value odd even without a recipient count
        pc.or_kleene(pc.match_substring_regex(col, r"[\[{]"), pc.not_equal(lengths, counts)),
    )
    odd = pc.fill_null(odd, False)
    if not pc.any(odd).as_py():
        return split_list(col)
    # only the odd values go through Python
    values, n = pc.filter(col, odd).to_pylist(), pc.filter(counts, odd).to_pylist()
    done: dict[tuple[str, int], str] = {}  # the same failure text repeats
    for key in zip(values, n, strict=True):
        if key not in done:
            done[key] = _protect(key[0], key[1] or 0)
    protected = pa.array([done[key] for key in zip(values, n, strict=True)], pa.string())
    parts = split_list(pc.replace_with_mask(col, odd, protected))
    restored = pc.replace_substring(parts.values, _PROTECT, ";")
    return pa.ListArray.from_arrays(parts.offsets, restored)


def _extract_in_lists(lists: pa.ListArray, pattern: str) -> pa.ListArray:
    def first_group(values: pa.Array) -> pa.Array:
        found = pc.struct_field(pc.extract_regex(pc.fill_null(values, ""), pattern), [0])
        return null_if_empty(pc.fill_null(found, ""))

    # statuses repeat (``250 2.1.5 Recipient OK``): the regex runs once per distinct one
    flat = lists.values.slice(lists.offsets[0].as_py(), lists.offsets[-1].as_py())
    return pa.ListArray.from_arrays(
        pc.subtract(lists.offsets, lists.offsets[0]), per_distinct(first_group, flat)
    )


def status_codes(statuses: pa.ListArray) -> tuple[pa.ListArray, pa.ListArray]:
    """Enhanced status code and SMTP reply code of each recipient status (aligned lists)."""
    return (
        _extract_in_lists(statuses, eventcodes.ENHANCED_RE2),
        _extract_in_lists(statuses, eventcodes.REPLY_RE2),
    )


def domain_of(addresses: pa.Array) -> pa.Array:
    """Lower-case domain of each address; null where there is none."""

    def domains(values: pa.Array) -> pa.Array:
        found = pc.extract_regex(pc.fill_null(values, ""), r"@(?P<d>[^@<>\s]+?)>?$")
        return null_if_empty(pc.utf8_lower(pc.fill_null(pc.struct_field(found, [0]), "")))

    return per_distinct(domains, addresses)  # a few hundred senders a day


def with_brackets(ids: pa.Array) -> pa.Array:
    """Message-IDs with angle brackets, added where the log omits them."""
    ids = pc.utf8_trim_whitespace(ids)
    bare = pc.and_(pc.invert(pc.starts_with(ids, "<")), pc.not_equal(ids, ""))
    wrapped = pc.binary_join_element_wise("<", ids, ">", "")
    return null_if_empty(pc.if_else(bare, wrapped, ids))


@cache
def _outcome_table(family: str) -> tuple[pa.Array, pa.Array, pa.Array]:
    entries = eventcodes.entries(family)
    return (
        pa.array([e.code.upper() for e in entries], pa.string()),
        pa.array([e.outcome for e in entries], pa.string()),
        pa.array([e.code for e in entries], pa.string()),
    )


def outcomes(events: pa.Array, family: str) -> pa.Array:
    """The eventcodes outcome of each event; null for an unknown event."""
    codes, values, _ = _outcome_table(family)
    idx = pc.index_in(pc.utf8_upper(pc.utf8_trim_whitespace(events)), value_set=codes)
    return pc.take(values, idx)


def spelled(events: pa.Array, family: str) -> pa.Array:
    """Each event in its code table's spelling (``delivered`` -> ``Delivered``); an unknown
    event as written."""
    codes, _, names = _outcome_table(family)
    idx = pc.index_in(pc.utf8_upper(pc.utf8_trim_whitespace(events)), value_set=codes)
    return pc.coalesce(pc.take(names, idx), events)


def only_where(mask: pa.Array, fn, *cols: pa.Array):
    """``fn(*cols)`` on the rows where ``mask`` holds, null on the others (an array or a tuple
    of arrays): a regex then runs on the lines it concerns only."""
    mask = whole(pc.fill_null(mask, False))
    out = fn(*(pc.filter(col, mask) for col in cols))

    def back(values: pa.Array) -> pa.Array:
        values = whole(values)
        return pc.replace_with_mask(pa.nulls(len(mask), values.type), mask, values)

    return tuple(back(o) for o in out) if isinstance(out, tuple) else back(out)


def per_distinct_where(mask: pa.Array, fn, col: pa.Array):
    """``per_distinct(fn, col)`` on the rows where ``mask`` holds, null on the others: for a
    regex on the lines it concerns whose texts repeat (replies, information lines)."""
    mask = whole(pc.fill_null(mask, False))
    encoded = whole(pc.dictionary_encode(pc.filter(col, mask)))
    # each row's index into the distinct values (null off the mask): one take per output
    at = pc.replace_with_mask(pa.nulls(len(col), encoded.indices.type), mask, encoded.indices)
    out = fn(encoded.dictionary)
    if isinstance(out, tuple):
        return tuple(pc.take(o, at) for o in out)
    return pc.take(out, at)


def per_distinct(fn, col: pa.Array):
    """``fn(col)`` worked out once per distinct value of ``col`` (an array or a tuple of
    arrays, row-aligned), for columns whose values repeat: endpoints, connectors. Nulls stay
    null."""
    encoded = pc.dictionary_encode(whole(col))
    out = fn(encoded.dictionary)
    if isinstance(out, tuple):
        return tuple(pc.take(o, encoded.indices) for o in out)
    return pc.take(out, encoded.indices)


def server_name(names: pa.Array) -> pa.Array:
    """Server names as stored: the first DNS label, upper case; IP addresses are dropped."""
    names = pc.utf8_trim_whitespace(pc.fill_null(names, ""))
    is_ip = pc.match_substring_regex(names, r"^[\d.]+$|:")
    first = pc.struct_field(pc.extract_regex(names, r"^(?P<h>[^.\\]*)"), [0])
    return null_if_empty(pc.if_else(is_ip, "", pc.utf8_upper(first)))


def most_common(values: pa.Array) -> str | None:
    """The most frequent non-null value, or None."""
    values = pc.drop_null(values)
    if len(values) == 0:
        return None
    counts = pc.value_counts(values)
    best = pc.index(counts.field("counts"), pc.max(counts.field("counts")))
    return counts.field("values")[best.as_py()].as_py()


_REPLY_START = (
    r"^(?P<code>[1-5][0-9]{2})"
    r"(?:[ -]+(?P<status>[245]\.[0-9]{1,3}\.[0-9]{1,3})(?:[ ;,]|$)|[ -]|$)"
)


def reply_parts(text: pa.Array) -> tuple[pa.Array, pa.Array]:
    """Reply code (int32) and enhanced status at the start of SMTP reply text; null where none.

    ``250 2.6.0 <id> Queued``, ``250-SIZE`` and ``421 4.7.0 [TSS04] ...`` all count: each line
    of a multi-line reply starts with its code.
    """
    found = pc.extract_regex(pc.fill_null(text, ""), _REPLY_START)
    code = null_if_empty(pc.fill_null(pc.struct_field(found, [0]), ""))
    status = null_if_empty(pc.fill_null(pc.struct_field(found, [1]), ""))
    return code.cast(pa.int32()), status
