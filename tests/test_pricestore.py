"""The Parquet store over a real moto S3 server and a local directory: layout, schema, upserts, races."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta

import duckdb
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockpipe.objectstore import LocalObjectStore, S3ObjectStore
from stockpipe.prices import PRICE_SCHEMA, normalize
from stockpipe.pricestore import PriceStore, merge, object_key
from tests.fakes import bars, weekdays
from tests.threads import run_concurrently

FETCHED = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path):
    if request.param == "s3":
        s3 = request.getfixturevalue("s3_client")
        return S3ObjectStore(request.getfixturevalue("bucket"), s3)
    return LocalObjectStore(tmp_path / "data")


def test_layout_schema_and_compression(store):
    prices = PriceStore(store)
    days = weekdays(date(2023, 12, 27), 6)  # spans two years
    assert prices.upsert("AAPL", bars(days), fetched_at=FETCHED) == 6
    keys = list(store.list_keys("prices/daily/"))
    assert keys == [
        "prices/daily/ticker=AAPL/year=2023/data.parquet",
        "prices/daily/ticker=AAPL/year=2024/data.parquet",
    ]
    raw = store.get(keys[0]).body
    meta = pq.ParquetFile(io.BytesIO(raw)).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    table = pq.read_table(io.BytesIO(raw))
    assert table.schema.remove_metadata() == PRICE_SCHEMA
    assert not {"ticker", "year"} & set(table.column_names)


def test_values_round_trip_exactly(store):
    prices = PriceStore(store)
    table = bars(weekdays(date(2024, 1, 2), 20))
    prices.upsert("MSFT", table, fetched_at=FETCHED)
    assert prices.read_ticker("MSFT").equals(table)


def test_upsert_replaces_same_dates_and_keeps_others(store):
    prices = PriceStore(store)
    days = weekdays(date(2024, 1, 2), 10)
    prices.upsert("SPY", bars(days, close=10.0), fetched_at=FETCHED)
    prices.upsert("SPY", bars(days[5:] + weekdays(date(2024, 2, 1), 3), close=99.0), fetched_at=FETCHED)
    stored = prices.read_ticker("SPY").to_pydict()
    assert stored["date"] == days + weekdays(date(2024, 2, 1), 3)
    assert stored["close"][:5] == [10.0 + i * 0.01 for i in range(5)]
    assert stored["close"][5] == 99.0


def test_writing_the_same_data_twice_is_idempotent_and_creates_no_new_version(store):
    prices = PriceStore(store)
    table = bars(weekdays(date(2024, 3, 1), 5))
    prices.upsert("NVDA", table, fetched_at=FETCHED)
    version = store.get(object_key("NVDA", 2024)).version
    prices.upsert("NVDA", table, fetched_at=FETCHED + timedelta(days=1))
    assert store.get(object_key("NVDA", 2024)).version == version
    assert prices.read_ticker("NVDA").equals(table)


def test_concurrent_writers_lose_nothing(store):
    """Eight threads upsert disjoint dates of the same ticker-year at once: every row survives."""
    prices = PriceStore(store)
    all_days = weekdays(date(2024, 1, 2), 80)
    slices = [all_days[i::8] for i in range(8)]

    def write(days: list[date]) -> None:
        for day in days:
            prices.upsert("AMZN", bars([day]), fetched_at=FETCHED)

    run_concurrently([lambda s=s: write(s) for s in slices])
    assert prices.read_ticker("AMZN").column("date").to_pylist() == all_days


def test_adjusted_as_of_is_the_oldest_kept_row(store):
    prices = PriceStore(store)
    days = weekdays(date(2024, 1, 2), 10)
    prices.upsert("JPM", bars(days), fetched_at=FETCHED)
    later = FETCHED + timedelta(days=30)
    prices.upsert("JPM", bars(days[-2:]), fetched_at=later)  # older rows kept -> still as of FETCHED
    assert prices.read_year("JPM", 2024).adjusted_as_of == FETCHED
    prices.upsert("JPM", bars(days, close=5.0), fetched_at=later)  # every row replaced
    assert prices.read_year("JPM", 2024).adjusted_as_of == later
    assert PriceStore(store).oldest_fetch("JPM") == later
    assert prices.first_date("JPM") == days[0]


def test_oldest_fetch_is_remembered_as_a_lower_bound(store):
    prices = PriceStore(store)
    days = weekdays(date(2023, 12, 20), 12)
    assert prices.oldest_fetch("KO") is None
    prices.upsert("KO", bars(days), fetched_at=FETCHED)
    assert prices.oldest_fetch("KO") == FETCHED
    later = FETCHED + timedelta(days=9)
    PriceStore(store).upsert("KO", bars(days, close=3.0), fetched_at=later)  # a full rewrite elsewhere...
    assert prices.oldest_fetch("KO") == FETCHED  # ...is not seen: remembered, and still a lower bound
    assert PriceStore(store).oldest_fetch("KO") == later  # the writer kept the fetch times current
    prices.forget("KO")
    assert prices.oldest_fetch("KO") == later


def test_latest_uses_the_year_hint_and_falls_back_to_listing(store):
    prices = PriceStore(store)
    prices.upsert("XOM", bars(weekdays(date(2023, 12, 27), 3)), fetched_at=FETCHED)
    year, obj = prices.latest("XOM", year_hint=2024)  # nothing in 2024 yet: the listing finds 2023
    assert year == 2023
    assert obj.table.num_rows == 3
    prices.upsert("XOM", bars(weekdays(date(2024, 1, 2), 2)), fetched_at=FETCHED)
    assert prices.latest("XOM", year_hint=2024)[0] == 2024
    assert prices.last_date("XOM") == date(2024, 1, 3)


def test_a_stale_known_object_only_costs_a_reread(store):
    """The object read for catch-up changed (or vanished) before the write: nothing is lost."""
    prices = PriceStore(store)
    days = weekdays(date(2024, 3, 1), 6)
    prices.upsert("WMT", bars(days[:3]), fetched_at=FETCHED)
    stale = prices.read_year("WMT", 2024)
    prices.upsert("WMT", bars(days[3:4]), fetched_at=FETCHED)  # another writer
    prices.upsert("WMT", bars(days[4:]), fetched_at=FETCHED, known={2024: stale})
    assert prices.read_ticker("WMT").column("date").to_pylist() == days
    if isinstance(store, S3ObjectStore):  # deleted meanwhile: S3 answers IfMatch with 404 NoSuchKey
        store.client.delete_object(Bucket=store.bucket, Key=object_key("WMT", 2024))
        prices.upsert("WMT", bars(days[:1]), fetched_at=FETCHED, known={2024: stale})
        assert prices.read_ticker("WMT").column("date").to_pylist() == days[:1]


def test_duckdb_reads_the_dataset_with_hive_partitions(tmp_path):
    prices = PriceStore(LocalObjectStore(tmp_path))
    prices.upsert("AAPL", bars(weekdays(date(2023, 12, 20), 12)), fetched_at=FETCHED)
    prices.upsert("BRK-B", bars(weekdays(date(2024, 5, 1), 4)), fetched_at=FETCHED)
    rows = duckdb.sql(
        f"""SELECT ticker, year, count(*) AS n, min(date) AS first
        FROM read_parquet('{tmp_path}/prices/daily/*/*/*.parquet', hive_partitioning=true)
        GROUP BY ALL ORDER BY ALL"""
    ).fetchall()
    assert rows == [
        ("AAPL", 2023, 8, date(2023, 12, 20)),
        ("AAPL", 2024, 4, date(2024, 1, 1)),
        ("BRK-B", 2024, 4, date(2024, 5, 1)),
    ]


day_lists = st.lists(st.dates(date(2020, 1, 1), date(2020, 12, 31)), max_size=15)


@given(day_lists, day_lists)
def test_merge_properties(a_days, b_days):
    a = normalize(bars(a_days, close=1.0))
    b = normalize(bars(b_days, close=2.0))
    merged = merge(a, b)
    dates = merged.column("date").to_pylist()
    assert dates == sorted(set(a_days) | set(b_days))  # sorted, unique, nothing lost
    assert merge(merged, b).equals(merged)  # idempotent
    newest = dict(zip(dates, merged.column("close").to_pylist(), strict=True))
    assert all(newest[d] >= 2.0 for d in b_days)  # the newest write wins on shared dates
    if not set(a_days) & set(b_days):
        assert merge(b, a).equals(merged)  # order-independent for disjoint dates
