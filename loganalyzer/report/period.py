"""The days a report covers: local days of a time zone, as a UTC-aware window."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import cached_property

from loganalyzer.errors import BadInput
from loganalyzer.times import parse_date as _parse_date
from loganalyzer.times import zone, zone_name

__all__ = ["LOOKBACK", "Period", "parse_date", "zone"]

#: How far before a period's start the first receipt of a message is looked for (a message
#: delivered just after midnight was received the day before).
LOOKBACK = dt.timedelta(days=1)
_HOUR = dt.timedelta(hours=1)
_TICK = dt.timedelta(seconds=1)


def parse_date(value: str | dt.date, tz: str = "UTC", now: dt.datetime | None = None) -> dt.date:
    """A report's ``--date`` as a day of zone ``tz`` (``loganalyzer.times``); BadInput."""
    return _parse_date(value, tz, now=now, option="--date")


@dataclass(frozen=True)
class Period:
    """``days`` local days ending with ``date`` (inclusive) in zone ``tz``."""

    date: dt.date
    days: int = 1
    tz: str = "UTC"

    def __post_init__(self) -> None:
        if self.days < 1:
            raise BadInput(f"--days {self.days}: give a number of days of 1 or more")
        # the name handed on (DuckDB, pages) is the one zone() reads: without blanks around it
        object.__setattr__(self, "tz", zone_name(self.tz))
        try:
            self.start, self.end  # noqa: B018 - a period must lie within the calendar
        except OverflowError:
            raise BadInput(
                f"--days {self.days} before {self.date}: the period starts before year 1"
            ) from None

    @property
    def first(self) -> dt.date:
        return self.date - dt.timedelta(days=self.days - 1)

    @property
    def start(self) -> dt.datetime:
        return dt.datetime.combine(self.first, dt.time(), zone(self.tz))

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.combine(self.date + dt.timedelta(days=1), dt.time(), zone(self.tz))

    @property
    def hours(self) -> int:
        """Its number of hours (``hour_starts``): 24 a day, 23 or 25 on a day the clocks
        change by an hour, 25 or 24 on a day they change by half an hour (Lord Howe)."""
        return len(self.hour_starts)

    @cached_property
    def offsets(self) -> list[tuple[dt.datetime, dt.datetime, dt.timedelta]]:
        """The period as spans of one UTC offset of its zone: (start, end, offset), in UTC."""
        tz = zone(self.tz)
        a, b = self.start.astimezone(dt.UTC), self.end.astimezone(dt.UTC)
        out, since, off = [], a, a.astimezone(tz).utcoffset()
        t = a
        while t < b:  # hour by hour: no zone changes its offset twice within an hour
            n = min(t + _HOUR, b)
            last = n - _TICK
            if last.astimezone(tz).utcoffset() != off:
                # the first second of the new offset: t - 1 s still had the old one
                lo, hi = -1, int((last - t).total_seconds())
                while hi - lo > 1:
                    mid = (lo + hi) // 2
                    if (t + mid * _TICK).astimezone(tz).utcoffset() == off:
                        lo = mid
                    else:
                        hi = mid
                hi = t + hi * _TICK
                out.append((since, hi, off))
                since, off = hi, hi.astimezone(tz).utcoffset()
            t = n
        out.append((since, b, off))
        return out

    @cached_property
    def hour_starts(self) -> list[dt.datetime]:
        """Where each of its hours starts (UTC): at every whole hour of its local time and where
        the clocks change (the hour the clocks go back through twice is two hours, and a change
        of half an hour leaves an hour of 30 minutes), so that each hour lies within one local
        hour and one local day."""
        out = []
        for a, b, off in self.offsets:
            out.append(a)
            local = a + off  # naive arithmetic on the UTC instants, shifted by the offset
            t = local.replace(minute=0, second=0, microsecond=0) + _HOUR
            while t - off < b:
                out.append(t - off)
                t += _HOUR
        return out

    def previous(self) -> Period:
        """The period of the same length just before this one."""
        return Period(self.date - dt.timedelta(days=self.days), self.days, self.tz)

    def utc_dates(self, since: dt.datetime | None = None) -> tuple[dt.date, dt.date]:
        """First and last UTC date the window touches (the store's ``date`` partitions)."""
        return utc_dates(since or self.start, self.end)

    def label(self) -> str:
        if self.days == 1:
            return self.date.isoformat()
        return f"{self.first.isoformat()} to {self.date.isoformat()}"

    def to_dict(self) -> dict:
        return {
            "date": self.date.isoformat(),
            "days": self.days,
            "first": self.first.isoformat(),
            "tz": self.tz,
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
        }


def utc_dates(a: dt.datetime, b: dt.datetime) -> tuple[dt.date, dt.date]:
    """The first and last UTC date of the instants [a, b) (the store's ``date`` partitions):
    not the dates of a local day's times, which east of UTC begins the UTC day before."""
    return a.astimezone(dt.UTC).date(), (b - dt.timedelta(milliseconds=1)).astimezone(dt.UTC).date()
