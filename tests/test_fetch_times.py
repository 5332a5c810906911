"""The per-ticker fetch times (stockpipe.fetch_times) over moto S3 and a directory: one GET instead of a
history re-read, kept current by the writer, rebuilt from the year objects when missing or unreadable,
and the year objects' stamp that spares even that GET on the daily path."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta

import pyarrow.parquet as pq
import pytest

from stockpipe import fetch_times
from stockpipe.layout import FETCH_TIMES_PREFIX, fetch_times_key
from stockpipe.objectstore import LocalObjectStore, S3ObjectStore
from stockpipe.pricestore import PriceStore, object_key
from stockpipe.year_objects import TICKER_FETCHED_SINCE
from tests.fakes import HookedStore, bars, weekdays
from tests.threads import run_concurrently

FETCHED = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
LATER = FETCHED + timedelta(days=30)


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path):
    if request.param == "s3":
        inner = S3ObjectStore(request.getfixturevalue("bucket"), request.getfixturevalue("s3_client"))
    else:
        inner = LocalObjectStore(tmp_path / "data")
    return HookedStore(inner)


def thirty_years(
    prices: PriceStore, ticker: str, fetched_at: datetime = FETCHED, close: float = 10.0
) -> None:
    for year in range(1995, 2025):
        prices.upsert(ticker, bars(weekdays(date(year, 3, 1), 3), close), fetched_at=fetched_at)


def stored_entries(store, ticker: str) -> dict[int, datetime]:
    return fetch_times.decode(store.get(fetch_times_key(ticker)).body, ticker)


def test_the_object_lives_beside_the_dataset_and_holds_every_year(store):
    PriceStore(store).upsert("AAPL", bars(weekdays(date(2023, 12, 27), 6)), fetched_at=FETCHED)
    assert fetch_times_key("AAPL") == "prices/fetch-times/AAPL.json"
    assert not fetch_times_key("AAPL").startswith("prices/daily/")  # readers glob prices/daily only
    assert stored_entries(store, "AAPL") == {2023: FETCHED, 2024: FETCHED}
    body = json.loads(store.get(fetch_times_key("AAPL")).body)
    assert body == {
        "ticker": "AAPL",
        "adjusted_as_of": {"2023": FETCHED.isoformat(), "2024": FETCHED.isoformat()},
    }


def test_a_cold_check_reads_one_object_not_the_history(store):
    thirty_years(PriceStore(store), "JPM")
    store.reset()
    cold = PriceStore(store)  # a new process: nothing remembered
    assert cold.needs_history_rewrite("JPM", date(2024, 6, 20), {}) is True  # a dividend after the fetch
    assert cold.needs_history_rewrite("JPM", date(2024, 6, 13), {}) is False  # one before it
    assert store.count() == 1  # one GET of prices/fetch-times/JPM.json; no LIST, no year object read
    assert store.count("get", prefix=FETCH_TIMES_PREFIX) == 1


def test_the_daily_stamp_decides_without_any_read(store):
    prices = PriceStore(store)
    thirty_years(prices, "KO")
    known = {2024: prices.read_year("KO", 2024)}
    assert known[2024].fetched_since == FETCHED
    store.reset()
    cold = PriceStore(store)
    assert cold.needs_history_rewrite("KO", date(2024, 6, 13), known) is False  # before every fetch
    assert store.count() == 0
    assert cold.needs_history_rewrite("KO", date(2024, 6, 14), known) is True  # the stamp cannot decide
    assert store.count() == 1


def test_the_stamp_is_a_lower_bound_of_every_year_of_the_ticker(store):
    prices = PriceStore(store)
    prices.upsert("XOM", bars(weekdays(date(2020, 3, 2), 3)), fetched_at=FETCHED)
    prices.upsert("XOM", bars(weekdays(date(2024, 3, 1), 3)), fetched_at=LATER)  # a newer year, later
    latest = PriceStore(store).read_year("XOM", 2024)
    assert latest.adjusted_as_of == LATER
    assert latest.fetched_since == FETCHED  # 2020's rows are older: the stamp says so
    schema = pq.read_schema(io.BytesIO(store.get(object_key("XOM", 2024)).body))
    assert schema.metadata[TICKER_FETCHED_SINCE] == FETCHED.isoformat().encode()


def test_a_full_rewrite_moves_the_oldest_fetch_forward(store):
    prices = PriceStore(store)
    days = weekdays(date(2023, 12, 20), 12)
    prices.upsert("PG", bars(days), fetched_at=FETCHED)
    prices.upsert("PG", bars(days[-2:]), fetched_at=LATER)  # older rows kept: nothing changes
    assert stored_entries(store, "PG") == {2023: FETCHED, 2024: FETCHED}
    prices.upsert("PG", bars(days, close=5.0), fetched_at=LATER)  # every row replaced
    assert stored_entries(store, "PG") == {2023: LATER, 2024: LATER}
    assert PriceStore(store).oldest_fetch("PG") == LATER


def test_a_daily_write_that_keeps_older_rows_does_not_touch_the_object(store):
    prices = PriceStore(store)
    days = weekdays(date(2024, 1, 2), 20)
    prices.upsert("MO", bars(days[:-1]), fetched_at=FETCHED)
    known = {2024: prices.read_year("MO", 2024)}
    store.reset()
    PriceStore(store).upsert("MO", bars(days[-5:]), fetched_at=LATER, known=known)
    assert store.count(prefix=FETCH_TIMES_PREFIX) == 0  # the stamp came from the known object
    assert store.count() == 1  # the PUT of the year object, nothing else


@pytest.mark.parametrize("body", [None, b"not json", b'{"ticker": "T", "adjusted_as_of": {"x": "y"}}'])
def test_missing_or_unreadable_fetch_times_are_rebuilt_from_the_year_objects(store, body):
    prices = PriceStore(store)
    prices.upsert("T", bars(weekdays(date(2022, 3, 1), 3)), fetched_at=FETCHED)
    prices.upsert("T", bars(weekdays(date(2024, 3, 1), 3)), fetched_at=LATER)
    key = fetch_times_key("T")
    current = store.get(key)
    if body is None:
        if isinstance(store.inner, S3ObjectStore):
            store.inner.client.delete_object(Bucket=store.inner.bucket, Key=key)
        else:
            (store.inner.root / key).unlink()
    else:
        store.put(key, body, expected_version=current.version)
    store.reset()
    assert PriceStore(store).oldest_fetch("T") == FETCHED
    assert store.count("list") == 1  # the rebuild: one LIST, one GET per year
    assert stored_entries(store, "T") == {2022: FETCHED, 2024: LATER}  # and written back
    store.reset()
    assert PriceStore(store).oldest_fetch("T") == FETCHED
    assert store.count() == 1


def test_a_remembered_yes_is_confirmed_with_a_fresh_read(store):
    prices = PriceStore(store)
    thirty_years(prices, "IBM")
    assert prices.oldest_fetch("IBM") == FETCHED  # remembered
    thirty_years(PriceStore(store), "IBM", LATER + timedelta(days=1), close=5.0)  # rewritten elsewhere
    assert prices.needs_history_rewrite("IBM", LATER.date(), {}) is False  # confirmed, not acted on


def test_concurrent_writers_of_different_years_keep_every_entry(store):
    prices = [PriceStore(store) for _ in range(6)]
    years = list(range(2019, 2025))

    def write(p: PriceStore, year: int) -> None:
        p.upsert(
            "AMZN", bars(weekdays(date(year, 5, 1), 2)), fetched_at=FETCHED + timedelta(hours=year - 2019)
        )

    run_concurrently([lambda p=p, y=y: write(p, y) for p, y in zip(prices, years, strict=True)])
    assert stored_entries(store, "AMZN") == {y: FETCHED + timedelta(hours=y - 2019) for y in years}
