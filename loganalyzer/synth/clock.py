"""Time formats of the logs the generator writes; times are integer milliseconds since the epoch."""

from __future__ import annotations

import datetime as dt

_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

#: Offset of the organisation's local time, shown in SMTP banners (Central European winter time).
LOCAL_OFFSET_MS = 3_600_000

HOUR_MS = 3_600_000
DAY_MS = 86_400_000


def ms_of_date(day: dt.date) -> int:
    """Milliseconds since the epoch of midnight UTC starting `day`."""
    return (day - _EPOCH.date()).days * DAY_MS


def utc(t: int) -> dt.datetime:
    """The aware UTC datetime of `t`."""
    return _EPOCH + dt.timedelta(milliseconds=t)


_SECONDS: dict[int, str] = {}


def iso(t: int) -> str:
    """`yyyy-mm-ddThh:mm:ss.fffZ`; the text of each second is cached."""
    head = _SECONDS.get(t // 1000)
    if head is None:
        if len(_SECONDS) > 200_000:
            _SECONDS.clear()
        head = _SECONDS[t // 1000] = utc(t - t % 1000).strftime("%Y-%m-%dT%H:%M:%S.")
    return f"{head}{t % 1000:03d}Z"


def banner_date(t: int) -> str:
    """RFC 5322 date in the organisation's local time, as Exchange banners show it."""
    d = utc(t + LOCAL_OFFSET_MS)
    off = LOCAL_OFFSET_MS // 60_000
    sign = "+" if off >= 0 else "-"
    return (
        f"{_DAYS[d.weekday()]}, {d.day} {_MONTHS[d.month - 1]} {d.year} "
        f"{d:%H:%M:%S} {sign}{abs(off) // 60:02d}{abs(off) % 60:02d}"
    )


def lrt(t: int) -> str:
    """Last-retry time as recipient-status shows it: `3/2/2026 8:15:42 AM` (UTC)."""
    d = utc(t)
    hour = d.hour % 12 or 12
    return f"{d.month}/{d.day}/{d.year} {hour}:{d:%M:%S} {'AM' if d.hour < 12 else 'PM'}"


def w3c(t: int) -> str:
    """`yyyy-mm-dd hh:mm:ss` (UTC) of the IIS W3C log."""
    return utc(t).strftime("%Y-%m-%d %H:%M:%S")


def hour_stamp(t: int) -> str:
    """`yyyymmddhh` of the hour holding `t`, for log file names."""
    return utc(t).strftime("%Y%m%d%H")
