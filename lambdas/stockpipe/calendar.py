"""The NYSE trading calendar and New York time: shared by the scraper's freshness figure, the
orchestrator, the simulator and the gap report.

Rule-based: weekends, New Year's Day, MLK Day (1998+), Washington's Birthday, Good Friday, Memorial
Day, Juneteenth (2022+), Independence Day, Labor Day, Thanksgiving and Christmas, with the exchange's
weekend-observance rules, plus the one-off closures since 2000 (``SPECIAL_CLOSURES``). Checked against
``exchange_calendars``' XNYS for 2000-2030 in the tests (a test-only oracle: it needs pandas, which the
images never carry). A closure announced later is one line in ``SPECIAL_CLOSURES``.

New York time is computed from the US daylight-saving rule in force since 2007 rather than from the
IANA database: the Lambda base image carries no time-zone data, and one rule for one zone is all the
pipeline needs (the tests compare it with ``zoneinfo`` hour by hour around every change, 2007-2035).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Final

# Days the exchange closed outside its holiday rules (attacks, storms, national days of mourning).
SPECIAL_CLOSURES: Final = frozenset(
    {
        date(2001, 9, 11),  # the September 11 attacks: closed through the 14th
        date(2001, 9, 12),
        date(2001, 9, 13),
        date(2001, 9, 14),
        date(2004, 6, 11),  # national day of mourning, President Reagan
        date(2007, 1, 2),  # national day of mourning, President Ford
        date(2012, 10, 29),  # Hurricane Sandy
        date(2012, 10, 30),
        date(2018, 12, 5),  # national day of mourning, President George H. W. Bush
        date(2025, 1, 9),  # national day of mourning, President Carter
    }
)
# When a session's end-of-day bar is due: Tiingo publishes around 17:30 New York time.
EOD_DUE: Final = time(18, 0)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (Anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    weekday_fix = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * weekday_fix) // 451
    month, day = divmod(h + weekday_fix - 7 * m + 114, 31)
    return date(year, month, day + 1)


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    first = date(year, month, 1)
    return first + timedelta(days=(weekday - first.weekday()) % 7 + 7 * (n - 1))


def _last_weekday(year: int, month: int, weekday: int) -> date:
    last = date(year + month // 12, month % 12 + 1, 1) - timedelta(days=1)
    return last - timedelta(days=(last.weekday() - weekday) % 7)


def _observed(day: date) -> date:
    if day.weekday() == 5:
        return day - timedelta(days=1)
    if day.weekday() == 6:
        return day + timedelta(days=1)
    return day


@lru_cache(maxsize=256)
def holidays(year: int) -> frozenset[date]:
    days = {
        _nth_weekday(year, 2, 0, 3),  # Washington's Birthday
        _easter(year) - timedelta(days=2),  # Good Friday
        _last_weekday(year, 5, 0),  # Memorial Day
        _observed(date(year, 7, 4)),
        _nth_weekday(year, 9, 0, 1),  # Labor Day
        _nth_weekday(year, 11, 3, 4),  # Thanksgiving
        _observed(date(year, 12, 25)),
    }
    new_year = date(year, 1, 1)
    if new_year.weekday() != 5:  # a Saturday New Year's Day is not observed on the Friday before
        days.add(_observed(new_year))
    if year >= 1998:
        days.add(_nth_weekday(year, 1, 0, 3))  # Martin Luther King Jr. Day
    if year >= 2022:
        days.add(_observed(date(year, 6, 19)))  # Juneteenth
    days.update(day for day in SPECIAL_CLOSURES if day.year == year)
    return frozenset(days)


def is_trading_day(day: date) -> bool:
    return day.weekday() < 5 and day not in holidays(day.year)


def trading_days(start: date, end: date) -> Iterator[date]:
    """Trading days in [start, end], oldest first."""
    day = start
    while day <= end:
        if is_trading_day(day):
            yield day
        day += timedelta(days=1)


def previous_trading_day(day: date) -> date:
    """The last trading day strictly before ``day``."""
    day -= timedelta(days=1)
    while not is_trading_day(day):
        day -= timedelta(days=1)
    return day


def trading_days_after(last: date, until: date) -> int:
    """How many trading days lie in ``(last, until]`` (0 when ``last >= until``)."""
    return sum(1 for _ in trading_days(last + timedelta(days=1), until))


def new_york_time(instant: datetime) -> datetime:
    """``instant`` (time-zone aware) as naive New York wall-clock time (EST, or EDT in summer).

    Daylight time runs from the second Sunday of March, 2:00 EST (07:00 UTC), to the first Sunday of
    November, 2:00 EDT (06:00 UTC): the US rule since 2007.
    """
    utc = instant.astimezone(UTC).replace(tzinfo=None)
    begins = datetime.combine(_nth_weekday(utc.year, 3, 6, 2), time(7))
    ends = datetime.combine(_nth_weekday(utc.year, 11, 6, 1), time(6))
    return utc - timedelta(hours=4 if begins <= utc < ends else 5)


def new_york_today(instant: datetime) -> date:
    return new_york_time(instant).date()


def last_completed_trading_day(instant: datetime) -> date:
    """The newest trading day whose end-of-day bar is due at ``instant`` (from EOD_DUE New York time)."""
    local = new_york_time(instant)
    if is_trading_day(local.date()) and local.time() >= EOD_DUE:
        return local.date()
    return previous_trading_day(local.date())
