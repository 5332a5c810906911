"""A cold-start daily catch-up of 30-year tickers over moto S3: what it reads and writes.

Per ticker: one GET of the current year's object and one PUT of it. The corporate-action check is
decided by that object's ``ticker_fetched_since`` stamp when the event predates every fetch, by one GET of
``prices/fetch-times/<T>.json`` otherwise; never by re-reading the history (before: LIST + 31 GETs).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from stockpipe import scraper
from stockpipe.layout import FETCH_TIMES_PREFIX, PRICES_PREFIX
from stockpipe.objectstore import S3ObjectStore
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import TiingoClient
from stockpipe.year_objects import encode
from tests.conftest import TEST_TOKEN
from tests.fakes import HookedStore

FRIDAY = date(2024, 6, 14)  # the simulator fixture's "today"
MONDAY = date(2024, 6, 17)
TICKERS = ["AAPL", "MSFT", "SPY"]


def evening(day: date) -> datetime:
    return datetime.combine(day, datetime.min.time(), UTC) + timedelta(hours=23)


def runtime(store, simulator, day: date) -> scraper.ScraperRuntime:
    client = TiingoClient(TEST_TOKEN, base_url=simulator.base_url, sleep=lambda s: None)
    return scraper.ScraperRuntime(store, client, clock=lambda: evening(day))


@pytest.fixture
def seeded(simulator, bucket, s3_client):
    """Thirty years of each ticker, fetched on Friday evening; the store seen through hooks."""
    store = HookedStore(S3ObjectStore(bucket, s3_client))
    seeding = runtime(store, simulator, FRIDAY)
    summary = scraper.handle(
        {"tickers": TICKERS, "start_date": "1994-06-14", "end_date": "2024-06-14"}, seeding
    )
    assert not summary["failed"], summary["failed"]
    seeding.client.close()
    simulator.today = MONDAY
    store.reset()
    return store


def monday(store, simulator) -> dict:
    cold = runtime(store, simulator, MONDAY)  # a new process: nothing remembered
    try:
        summary = scraper.handle({"tickers": TICKERS}, cold)
    finally:
        cold.client.close()
    assert not summary["failed"], summary["failed"]
    return summary


def test_an_event_before_the_fetch_costs_nothing_beyond_get_and_put(seeded, simulator):
    for ticker in TICKERS:
        simulator.add_event(ticker, FRIDAY - timedelta(days=1), div_cash=0.25)  # known when fetched
    summary = monday(seeded, simulator)
    assert not any(s["rewritten"] for s in summary["succeeded"].values())
    assert seeded.count("get", prefix=PRICES_PREFIX + "/") == len(TICKERS)
    assert seeded.count("put", prefix=PRICES_PREFIX + "/") == len(TICKERS)
    assert seeded.count(prefix=FETCH_TIMES_PREFIX) == 0
    assert seeded.count("list") == 0
    assert seeded.count() == 2 * len(TICKERS)


def test_an_event_after_the_fetch_reads_the_fetch_times_once_and_rewrites(seeded, simulator):
    simulator.add_event("AAPL", MONDAY, div_cash=5.0)  # the stored rows predate it
    summary = monday(seeded, simulator)
    assert summary["succeeded"]["AAPL"]["rewritten"] is True
    assert not summary["succeeded"]["MSFT"]["rewritten"]
    assert seeded.count("get", prefix=FETCH_TIMES_PREFIX) == 1  # the check; then the rewrite records
    assert seeded.count("list") == 1  # the rewrite's first stored date (not the check)
    assert PriceStore(seeded).oldest_fetch("AAPL") == evening(MONDAY)


def test_objects_written_before_fetch_times_existed_are_read_once_then_never(seeded, simulator):
    """An upgrade: the year objects carry no stamp and no fetch-times object exists. The first run
    rebuilds it from the year objects (one LIST, one GET per year) and stamps what it writes."""
    prices = PriceStore(seeded.inner)
    for ticker in TICKERS:
        for year in prices.years(ticker):
            obj = prices.read_year(ticker, year)
            legacy = encode(obj.table, obj.adjusted_as_of)  # as the previous version wrote it
            assert b"ticker_fetched_since" not in legacy
            seeded.inner.put(
                f"{PRICES_PREFIX}/ticker={ticker}/year={year}/data.parquet",
                legacy,
                expected_version=obj.version,
            )
        seeded.inner.client.delete_object(
            Bucket=seeded.inner.bucket, Key=f"{FETCH_TIMES_PREFIX}{ticker}.json"
        )
    seeded.reset()
    monday(seeded, simulator)
    assert seeded.count("list") == len(TICKERS)  # the rebuild, once per ticker
    simulator.today = MONDAY + timedelta(days=1)
    seeded.reset()
    cold = runtime(seeded, simulator, MONDAY + timedelta(days=1))
    try:
        scraper.handle({"tickers": TICKERS}, cold)
    finally:
        cold.client.close()
    assert seeded.count() == 2 * len(TICKERS)
