"""Times and dates given by a user: the one parser every option and API argument uses.

Accepted forms, read in the zone ``tz`` when they carry none:

- an ISO 8601 date or time, with or without a zone: ``2026-03-02``, ``2026-03-02T14:30``,
  ``2026-03-02 14:30:05``, ``2026-03-02T14:30+01:00``, ``2026-03-02T13:30Z``;
- ``now``, ``today`` (its midnight), ``yesterday`` (its midnight);
- an offset back from now: ``-30m``, ``-2h``, ``-7d``, ``-1w`` (also ``-45s``).

A ``datetime`` is taken as is (a naive one in ``tz``), a ``date`` as its midnight in ``tz``.

Also how results write times back: ``show`` (for people, in a zone), ``iso`` (JSON) and
``duration`` (a delay for people).
"""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from loganalyzer.errors import BadInput

__all__ = [
    "FORMS",
    "clock",
    "iso",
    "parse_date",
    "parse_duration",
    "parse_time",
    "parse_window",
    "show",
    "zone",
    "zone_name",
]

#: What a time option accepts, as the messages say it.
FORMS = (
    "an ISO date or time (2026-03-02, 2026-03-02T14:30, 2026-03-02T14:30+01:00), "
    "now, today, yesterday, or an offset (-30m, -2h, -7d, -1w)"
)
#: The first and last times accepted (read on the value's own clock): a century inside
#: Python's calendar (years 1 to 9999), so that the windows computed from them (a report's
#: previous period of up to 3660 days, its day of look-back, a trace's reach) stay inside it.
EARLIEST = dt.datetime(100, 1, 1)
LATEST = dt.datetime(9899, 12, 31, 23, 59, 59, 999999)
_OFFSET = re.compile(r"^-\s*(\d{1,6})\s*([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
#: Files of the zone database that are not zones: the system's zone and a rules template
#: (DuckDB's ICU knows neither), and the ``posix/`` and ``right/`` copies (leap seconds).
_NOT_ZONES = ("localtime", "posixrules")
_NOT_ZONE_FOLDERS = ("posix/", "right/")


def zone(tz: str | None) -> ZoneInfo:
    """The IANA zone named ``tz`` (UTC when None; blanks around the name ignored); BadInput
    for an unknown name."""
    if tz is None:
        return ZoneInfo("UTC")
    name = str(tz).strip()
    try:
        if name in _NOT_ZONES or name.startswith(_NOT_ZONE_FOLDERS):
            raise ValueError(name)
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise BadInput(f"unknown time zone {tz!r} (an IANA name: UTC, Europe/Berlin)") from None


def zone_name(tz: str | None) -> str:
    """The name of zone ``tz`` as ``zone`` reads it (``'Europe/Berlin '`` is
    ``Europe/Berlin``), for code that hands the name on (pyarrow, DuckDB, pages); BadInput for
    an unknown name."""
    return zone(tz).key


def _now(now: dt.datetime | None, tz: ZoneInfo) -> dt.datetime:
    return (now or dt.datetime.now(dt.UTC)).astimezone(tz)


def parse_time(
    value: str | dt.datetime | dt.date,
    tz: str | None = "UTC",
    *,
    now: dt.datetime | None = None,
    option: str = "time",
    noun: str = "time",
) -> dt.datetime:
    """``value`` as an aware datetime (its own zone kept, else ``tz``'s).

    ``option`` names the value in the error (``--since``), ``noun`` what it should be.
    Raises BadInput.
    """
    z = zone(tz)
    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=z)
    elif isinstance(value, dt.date):
        when = dt.datetime.combine(value, dt.time(), z)
    elif not isinstance(value, str):
        raise BadInput(f"{option} {value!r}: not a {noun}; give {FORMS}")
    else:
        when = _parse_text(value, z, now, option, noun)
    return _within(when, value, option, noun)


def _parse_text(
    value: str, z: ZoneInfo, now: dt.datetime | None, option: str, noun: str
) -> dt.datetime:
    text = value.strip().lower()
    current = _now(now, z)
    if text == "now":
        return current
    if text in ("today", "yesterday"):
        day = current.date() - dt.timedelta(days=text == "yesterday")
        return dt.datetime.combine(day, dt.time(), z)
    if m := _OFFSET.match(text):
        try:
            return current - dt.timedelta(**{_UNITS[m[2]]: int(m[1])})
        except OverflowError:  # before year 1
            return dt.datetime.min.replace(tzinfo=z)
    try:
        parsed = dt.datetime.fromisoformat(value.strip())
    except ValueError as exc:
        raise BadInput(_why(value, option, noun, exc)) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=z)


def _within(when: dt.datetime, value: object, option: str, noun: str) -> dt.datetime:
    """``when``, or BadInput naming ``value`` when it lies outside ``EARLIEST``-``LATEST``."""
    if not EARLIEST <= when.replace(tzinfo=None) <= LATEST:
        first, last = EARLIEST.date().isoformat(), LATEST.date().isoformat()
        raise BadInput(
            f"{option} {str(value)!r}: out of range; give a {noun} from {first} to {last}"
        )
    return when


def parse_window(
    since: str | dt.datetime | dt.date | None,
    until: str | dt.datetime | dt.date | None,
    tz: str | None = "UTC",
    *,
    now: dt.datetime | None = None,
    names: tuple[str, str] = ("--since", "--until"),
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """The window [``since``, ``until``) a search reads (None: open on that side), each time
    in its own zone, else ``tz``'s, as ``parse_time`` reads it; an ``until`` that names a day
    (``2026-03-02``, ``today``, ``yesterday``) is the end of that day (the next midnight).

    ``names`` name the two values in the errors. Raises BadInput for a wrong value, a time
    outside ``EARLIEST``..``LATEST`` (``parse_time``) or a window that ends before it starts.
    """
    bounds: list[dt.datetime | None] = []
    for value, name, end in zip((since, until), names, (False, True), strict=True):
        if value is None:
            bounds.append(None)
            continue
        when = parse_time(value, tz, now=now, option=name)  # (within EARLIEST..LATEST)
        if end and _names_a_day(value):
            when = dt.datetime.combine(when.date() + dt.timedelta(1), dt.time(), when.tzinfo)
        bounds.append(when)
    start, end = bounds
    if start is not None and end is not None and start >= end:
        raise BadInput(
            f"{names[0]} {show(start, tz)} is not before {names[1]} {show(end, tz)}: "
            "nothing can match"
        )
    return start, end


def _names_a_day(value: str | dt.datetime | dt.date) -> bool:
    """``value`` is a whole day: a ``date``, an ISO date, ``today`` or ``yesterday``."""
    if isinstance(value, dt.date):
        return not isinstance(value, dt.datetime)
    text = str(value).strip()
    if text.lower() in ("today", "yesterday"):
        return True
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def parse_date(
    value: str | dt.datetime | dt.date,
    tz: str | None = "UTC",
    *,
    now: dt.datetime | None = None,
    option: str = "date",
) -> dt.date:
    """``value`` as a day of zone ``tz`` (a time given with a zone is moved into ``tz``).

    Raises BadInput.
    """
    if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return _within(dt.datetime.combine(value, dt.time()), value, option, "date").date()
    when = parse_time(value, tz, now=now, option=option, noun="date")
    return when.astimezone(zone(tz)).date()


def _why(value: str, option: str, noun: str, exc: ValueError) -> str:
    """The message for a value that is not a time: impossible dates and times say so."""
    reason = str(exc)
    if re.match(r"^\s*\d{4}-?\d{2}-?\d{2}", value) and ("range" in reason or "must be" in reason):
        what = "date" if "day" in reason or "month" in reason or "year" in reason else "time"
        return f"{option} {value!r}: no such {what} ({reason}); give {FORMS}"
    return f"{option} {value!r}: not a {noun}; give {FORMS}"


_DURATION = re.compile(r"^(\d{1,9}(?:\.\d{1,6})?)\s*([smhd])$")


def parse_duration(value: str | float | dt.timedelta, option: str = "duration") -> dt.timedelta:
    """A length of time: ``90s``, ``5m``, ``36h``, ``2d`` (also ``1.5h``), a ``timedelta``, or
    a number of seconds. ``option`` names the value in the error. Raises BadInput."""
    if isinstance(value, dt.timedelta):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return dt.timedelta(seconds=value)
    m = _DURATION.match(value.strip().lower()) if isinstance(value, str) else None
    if m is None:
        raise BadInput(
            f"{option} {value!r}: not a length of time; give a number and a unit: 90s, 5m, 36h, 2d"
        )
    return dt.timedelta(**{_UNITS[m[2]]: float(m[1])})


def show(when: dt.datetime, tz: str | None = "UTC") -> str:
    """A time as messages show it: in ``tz``, to the second, with its offset."""
    return when.astimezone(zone(tz)).isoformat(timespec="seconds")


def clock(t: dt.datetime | None, tz: ZoneInfo, ms: bool = True) -> str:
    """A time as timelines show it: in ``tz``, to the millisecond (to the second without
    ``ms``, as lists show it); in the hour that comes twice when the clocks go back, with the
    zone's abbreviation (``02:30:00.000 CEST``, an hour later ``02:30:00.000 CET``), as it
    would read as time running backwards."""
    if t is None:
        return ""
    local = t.astimezone(tz)
    text = local.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] if ms else f"{local:%Y-%m-%d %H:%M:%S}"
    if local.replace(fold=1 - local.fold).utcoffset() != local.utcoffset():
        text += f" {local.tzname()}"
    return text


def iso(t: dt.datetime | None) -> str | None:
    """A time as results' JSON writes it: ISO 8601 with milliseconds, UTC as ``...Z``."""
    if t is None:
        return None
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def duration(seconds: float | None) -> str:
    """A delay for people: ``40 ms``, ``2.5 s``, ``3 min 5 s``, ``2 h 10 min``, ``-3 s``."""
    if seconds is None:
        return ""
    sign, s = ("-" if seconds < 0 else ""), abs(seconds)
    if s < 1:
        text = f"{s * 1000:.0f} ms"
    elif s < 10:
        text = f"{s:.1f} s".replace(".0 s", " s")
    elif s < 60:
        text = f"{s:.0f} s"
    elif s < 3600:
        text = f"{int(s // 60)} min {int(s % 60)} s"
    elif s < 86400:
        text = f"{int(s // 3600)} h {int(s % 3600 // 60)} min"
    else:
        text = f"{int(s // 86400)} d {int(s % 86400 // 3600)} h"
    return sign + text
