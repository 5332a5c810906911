"""The freshness alarm's metric math, evaluated over simulated weeks: quiet on holidays, loud on stops.

CloudWatch evaluates a 1-day metric alarm every minute over the 24 hours before now; DAY() and HOUR()
give the weekday (1 = Monday) and hour (UTC) of the window's timestamp, its start (see
components.alarms.FreshnessWindow). The expression is taken from the alarm the program creates and
evaluated here with those semantics, against reports the scraper would send: TradingDaysBehind once
per scheduled run (cron(30 20 ? * MON-FRI *) America/New_York, holidays included).
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from components.alarms import MAX_TRADING_DAYS_BEHIND, NO_REPORT
from tests.infra.conftest import run_program, stack_config, stack_files

NEW_YORK = ZoneInfo("America/New_York")
INDEPENDENCE_DAY = date(2024, 7, 4)  # a Thursday, NYSE closed; the weekday schedule still runs


@pytest.fixture(scope="module")
def alarm() -> dict:
    run = run_program(stack_config(stack_files()[0]))
    return run.one("aws:cloudwatch/metricAlarm:MetricAlarm", "tiingo-price-scraper-freshness-alarm").plain


def evaluator(expression: str):
    """The CloudWatch expression as a Python function of (filled, day, hour), for this grammar only."""
    python = (
        expression.replace("DAY(filled)", "day")
        .replace("HOUR(filled)", "hour")
        .replace(" OR ", " or ")
        .replace(" AND ", " and ")
        .replace("IF(", "_if(")
    )
    assert re.fullmatch(r"[a-z_() 0-9=!,]+", python), python
    code = compile(python, "<alarm>", "eval")
    return lambda filled, day, hour: eval(
        code, {"_if": lambda c, a, b: a if c else b, "filled": filled, "day": day, "hour": hour}
    )


def runs(first: date, last: date) -> list[datetime]:
    """The schedule's run times (UTC), the report arriving five minutes after the start."""
    days = (first + timedelta(n) for n in range((last - first).days + 1))
    return [datetime.combine(d, time(20, 35), NEW_YORK).astimezone(UTC) for d in days if d.isoweekday() <= 5]


def alarm_times(alarm: dict, reports: dict[datetime, int], start: datetime, end: datetime) -> list[datetime]:
    """Every 10 minutes from start to end: when is the alarm breaching?"""
    queries = {q["id"]: q for q in alarm["metricQueries"]}
    assert queries["filled"]["expression"] == f"FILL(behind, {NO_REPORT})"
    assert queries["behind"]["metric"]["stat"] == "Maximum"
    due = evaluator(queries["due"]["expression"])
    breaching, now = [], start
    while now <= end:
        window_start = now - timedelta(seconds=queries["behind"]["metric"]["period"])
        values = [v for at, v in reports.items() if window_start <= at < now]
        filled = max(values) if values else NO_REPORT
        value = due(filled, window_start.isoweekday(), window_start.hour)
        if value > alarm["threshold"]:
            breaching.append(now)
        now += timedelta(minutes=10)
    return breaching


START = datetime(2024, 7, 1, 12, tzinfo=UTC)  # Monday
END = datetime(2024, 7, 13, 12, tzinfo=UTC)  # Saturday of the next week


def test_a_healthy_fortnight_with_a_holiday_never_alarms(alarm):
    # Every run stores the last trading day: 0 behind, on July 4th too (July 3rd is the last trading day).
    reports = dict.fromkeys(runs(date(2024, 6, 28), date(2024, 7, 12)), 0)
    assert INDEPENDENCE_DAY in {r.astimezone(NEW_YORK).date() for r in reports}
    assert alarm_times(alarm, reports, START, END) == []


def test_one_trading_day_behind_is_tolerated(alarm):
    # Tiingo late for one ticker at run time: 1 behind, caught up by the next run's lookback.
    reports = dict.fromkeys(runs(date(2024, 6, 28), date(2024, 7, 12)), 1)
    assert alarm_times(alarm, reports, START, END) == []
    assert MAX_TRADING_DAYS_BEHIND == 1


def test_a_stopped_schedule_alarms_within_a_day_of_the_first_missed_run(alarm):
    reports = dict.fromkeys(runs(date(2024, 6, 28), date(2024, 7, 2)), 0)  # nothing after Tuesday
    first_missed = runs(date(2024, 7, 3), date(2024, 7, 3))[0]
    breaching = alarm_times(alarm, reports, START, END)
    assert breaching
    assert first_missed < breaching[0] <= first_missed + timedelta(hours=24)


def test_falling_behind_alarms_and_clears_after_a_good_run(alarm):
    reports = dict.fromkeys(runs(date(2024, 6, 28), date(2024, 7, 12)), 0)
    bad = runs(date(2024, 7, 9), date(2024, 7, 9))[0]  # Tuesday's run: 2 trading days behind
    reports[bad] = 2
    breaching = alarm_times(alarm, reports, START, END)
    assert breaching
    # Windows starting in the run's hours are not judged (a run may be in progress): hours, not a day.
    assert bad < breaching[0] <= bad + timedelta(hours=3)
    assert breaching[-1] <= bad + timedelta(hours=24, minutes=10)  # the bad report leaves the window
