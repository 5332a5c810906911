"""Pure chunk planning: chunks tile [start, end] exactly, whatever the dates and chunk size."""

from __future__ import annotations

import itertools
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockpipe.backfill.plan import (
    add_months,
    backfill_range,
    chunk_end,
    count_chunks,
    iter_chunks,
    next_chunk,
)

DATES = st.dates(min_value=date(1960, 1, 1), max_value=date(2060, 12, 31))


@given(start=DATES, end=DATES, months=st.integers(min_value=0, max_value=40))
def test_chunks_cover_the_range_exactly_in_order(start: date, end: date, months: int) -> None:
    chunks = list(iter_chunks(start, end, months))
    if start > end:
        assert chunks == []
        return
    assert chunks[0][0] == start
    assert chunks[-1][1] == end
    for (_, e), (next_s, _) in itertools.pairwise(chunks):
        assert next_s == e + timedelta(days=1)  # no gap, no overlap
    for s, e in chunks:
        assert s <= e
        if months:
            assert e < add_months(s, months)  # never longer than the chunk size
    if months == 0:
        assert chunks == [(start, end)]
    assert count_chunks(start, end, months) == len(chunks)


@given(start=DATES, end=DATES, months=st.integers(min_value=1, max_value=24))
def test_resuming_from_any_chunk_gives_the_same_remaining_chunks(start: date, end: date, months: int) -> None:
    chunks = list(iter_chunks(start, end, months))
    for index in {0, 1, len(chunks) // 2, len(chunks) - 1}:
        if 0 <= index < len(chunks):
            assert list(iter_chunks(chunks[index][0], end, months)) == chunks[index:]


def test_six_month_chunks_of_twenty_years() -> None:
    chunks = list(iter_chunks(date(2000, 1, 1), date(2019, 12, 31), 6))
    assert len(chunks) == 40
    assert chunks[0] == (date(2000, 1, 1), date(2000, 6, 30))
    assert chunks[1] == (date(2000, 7, 1), date(2000, 12, 31))
    assert count_chunks(date(2000, 1, 1), date(2019, 12, 31), 0) == 1


def test_add_months_clamps_to_month_end() -> None:
    assert add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert add_months(date(2023, 1, 31), 1) == date(2023, 2, 28)
    assert add_months(date(2023, 11, 15), 3) == date(2024, 2, 15)


def test_next_chunk_edges() -> None:
    assert next_chunk(None, date(2024, 1, 1), 6) is None
    assert next_chunk(date(2024, 1, 2), date(2024, 1, 1), 6) is None
    assert next_chunk(date(2024, 1, 1), date(2024, 1, 1), 6) == (date(2024, 1, 1), date(2024, 1, 1))
    with pytest.raises(ValueError, match="chunk months"):
        chunk_end(date(2024, 1, 1), date(2024, 6, 1), -1)


def test_backfill_range() -> None:
    today = date(2024, 6, 14)
    assert backfill_range(date(2000, 1, 1), date(1980, 12, 12), today) == (date(2000, 1, 1), today)
    assert backfill_range(date(2000, 1, 1), date(2012, 5, 18), today) == (date(2012, 5, 18), today)
    assert backfill_range(date(2000, 1, 1), None, today) is None  # Tiingo has no prices
    assert backfill_range(date(2000, 1, 1), date(2024, 6, 15), today) is None
