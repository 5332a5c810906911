"""The NYSE calendar against exchange_calendars' XNYS (a test-only oracle) and New York time against
the IANA database (zoneinfo): the rules the freshness figure and the gap report stand on."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from stockpipe.calendar import (
    SPECIAL_CLOSURES,
    last_completed_trading_day,
    new_york_time,
    previous_trading_day,
    trading_days,
    trading_days_after,
)

NEW_YORK = ZoneInfo("America/New_York")


@pytest.mark.filterwarnings("ignore:Series.values returning an ndarray")  # inside exchange_calendars
def test_every_session_2000_to_2030_matches_xnys():
    import exchange_calendars  # test-only (pandas): imported here, not at collection

    xnys = exchange_calendars.get_calendar("XNYS", start="2000-01-01", end="2030-12-31")
    sessions = [ts.date() for ts in xnys.sessions]
    assert list(trading_days(date(2000, 1, 1), date(2030, 12, 31))) == sessions


@pytest.mark.parametrize(
    "closed",
    [
        date(2001, 9, 11),
        date(2001, 9, 14),
        date(2004, 6, 11),
        date(2007, 1, 2),
        date(2012, 10, 29),
        date(2012, 10, 30),
        date(2018, 12, 5),
        date(2025, 1, 9),
    ],
)
def test_one_off_closures_are_not_trading_days(closed):
    assert closed in SPECIAL_CLOSURES
    assert closed not in set(trading_days(closed - timedelta(days=7), closed + timedelta(days=7)))


def test_new_york_time_matches_the_iana_database_around_every_change():
    for year in range(2007, 2036):
        for month in (3, 11):
            start = datetime(year, month, 1, tzinfo=UTC)
            for quarter_hours in range(14 * 24 * 4):  # the first two weeks: every change is in them
                instant = start + timedelta(minutes=15 * quarter_hours)
                assert new_york_time(instant) == instant.astimezone(NEW_YORK).replace(tzinfo=None), instant


@pytest.mark.parametrize(
    ("utc", "expected"),
    [
        (datetime(2024, 6, 14, 23, 0), date(2024, 6, 14)),  # Friday 19:00 EDT: today's bar is due
        (datetime(2024, 6, 14, 21, 0), date(2024, 6, 13)),  # Friday 17:00 EDT: not yet
        (datetime(2024, 6, 15, 2, 0), date(2024, 6, 14)),  # Saturday 02:00 UTC is Friday evening there
        (datetime(2024, 6, 17, 12, 0), date(2024, 6, 14)),  # Monday morning: Friday
        (datetime(2024, 7, 5, 1, 0), date(2024, 7, 3)),  # July 4th evening: a holiday
        (datetime(2025, 1, 10, 0, 0), date(2025, 1, 8)),  # the Carter day of mourning
        (datetime(2024, 12, 2, 23, 30), date(2024, 12, 2)),  # winter: 18:30 EST
        (datetime(2024, 12, 2, 22, 30), date(2024, 11, 29)),  # winter: 17:30 EST, Monday not yet due
    ],
)
def test_last_completed_trading_day(utc, expected):
    assert last_completed_trading_day(utc.replace(tzinfo=UTC)) == expected


def test_trading_days_after_counts_sessions_not_calendar_days():
    assert trading_days_after(date(2024, 7, 3), date(2024, 7, 5)) == 1  # July 4th is no missed day
    assert trading_days_after(date(2025, 1, 8), date(2025, 1, 10)) == 1
    assert trading_days_after(date(2024, 6, 14), date(2024, 6, 14)) == 0
    assert trading_days_after(date(2024, 6, 17), date(2024, 6, 14)) == 0
    assert previous_trading_day(date(2012, 10, 31)) == date(2012, 10, 26)
