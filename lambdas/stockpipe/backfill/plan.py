"""Pure chunk planning: which date range the next scraper invocation of a ticker covers.

Chunks are contiguous and inclusive, so a backfill resumed from any ``next_start`` covers
``[start, end]`` exactly once, whatever happened to earlier runs. A history extended to an earlier
start is walked backwards from the first fetched day (``backward_run``), so what is fetched always
stays one contiguous range.

The chunk is the unit of planning, progress and retry, not of requests: one scraper request covers a
*run* of consecutive pending chunks (``forward_run`` / ``backward_run``, at most ``limit`` of them;
0: all), because Tiingo answers a whole date range for the price of one request.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from datetime import date, timedelta

ONE_DAY = timedelta(days=1)


def add_months(day: date, months: int) -> date:
    """``day`` plus whole months, clamped to the end of a shorter month (Jan 31 + 1 = Feb 28/29)."""
    index = day.year * 12 + (day.month - 1) + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def chunk_end(chunk_start: date, end: date, chunk_months: int) -> date:
    """Last day of the chunk starting at ``chunk_start``; ``chunk_months == 0`` means the whole rest."""
    if chunk_months < 0:
        raise ValueError(f"chunk months must be >= 0, got {chunk_months}")
    if chunk_months == 0:
        return end
    return min(end, add_months(chunk_start, chunk_months) - ONE_DAY)


def next_chunk(next_start: date | None, end: date, chunk_months: int) -> tuple[date, date] | None:
    """The chunk to fetch next, or None when nothing is left."""
    if next_start is None or next_start > end:
        return None
    return next_start, chunk_end(next_start, end, chunk_months)


def forward_run(
    next_start: date | None, end: date, chunk_months: int, limit: int = 0
) -> tuple[date, date, int] | None:
    """The first ``limit`` chunks (0: all) from ``next_start`` as one range: ``(start, end, chunks)``."""
    last, count = None, 0
    for _, chunk_last in iter_chunks(next_start, end, chunk_months) if next_start else ():
        last, count = chunk_last, count + 1
        if count == limit:
            break
    if next_start is None or last is None:
        return None
    return next_start, last, count


def backward_run(
    start: date, before: date, chunk_months: int, limit: int = 0
) -> tuple[date, date, int] | None:
    """The last ``limit`` chunks (0: all) of ``[start, before)`` on the grid from ``start``, as one range."""
    chunks = list(iter_chunks(start, before - ONE_DAY, chunk_months))
    taken = chunks[-limit:] if limit else chunks
    if not taken:
        return None
    return taken[0][0], taken[-1][1], len(taken)


def count_chunks_before(start: date, before: date, chunk_months: int) -> int:
    """How many chunks cover ``[start, before)``."""
    return count_chunks(start, before - ONE_DAY, chunk_months)


def iter_chunks(start: date, end: date, chunk_months: int) -> Iterator[tuple[date, date]]:
    """Every chunk of ``[start, end]`` in order (empty when start > end)."""
    chunk = next_chunk(start, end, chunk_months)
    while chunk is not None:
        yield chunk
        chunk = next_chunk(chunk[1] + ONE_DAY, end, chunk_months)


def count_chunks(start: date | None, end: date, chunk_months: int) -> int:
    """How many invocations are left from ``start``; counts without building the list twice."""
    if start is None:
        return 0
    return sum(1 for _ in iter_chunks(start, end, chunk_months))


def backfill_range(
    backfill_start: date, first_date: date | None, plan_day: date, last_date: date | None = None
) -> tuple[date, date] | None:
    """``[max(BACKFILL_START_DATE, Tiingo's first date), min(plan_day, Tiingo's last date)]`` or None.

    None for a ticker without prices (metadata start date null) or one whose first date is after
    the day its plan is made (the daily scraper covers it from there). A delisted ticker's plan ends
    at its last price: chunks after it would only ever be empty.
    """
    if first_date is None:
        return None
    start = max(backfill_start, first_date)
    end = min(plan_day, last_date) if last_date else plan_day
    if start > end:
        return None
    return start, end
