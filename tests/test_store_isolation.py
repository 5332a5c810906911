"""One unreadable stored object costs one ticker: over moto S3 and a local directory, with a loopback
Tiingo stand-in, in catch-up and range mode. Issue 9's regression list: a non-Parquet object, a foreign
schema (one extra column), garbage or naive ``stockpipe.adjusted_as_of`` metadata, rows in the wrong
year object; each used to raise out of the thread pool so the whole run wrote nothing."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from stockpipe import scraper
from stockpipe.errors import StoreError
from stockpipe.objectstore import LocalObjectStore, S3ObjectStore
from stockpipe.prices import PRICE_SCHEMA, rows_to_table
from stockpipe.pricestore import ADJUSTED_AS_OF, PriceStore, encode, object_key
from stockpipe.tiingo import TiingoClient
from tests.conftest import TEST_TOKEN
from tests.tiingo_standin import Replies, TiingoStandIn, bar, json_reply, weekdays

EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)
TICKERS = ["AAPL", "MSFT", "SPY"]
STORED = weekdays(date(2024, 5, 1), date(2024, 6, 7))
FETCHED = datetime(2024, 6, 7, 23, 0, tzinfo=UTC)


def parquet(table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table.replace_schema_metadata(metadata), sink)
    return sink.getvalue()


def good_table(days=STORED) -> pa.Table:
    return rows_to_table([bar(d) for d in days])


CORRUPT = {
    "not parquet": (lambda: b"PAR1 this is not a parquet file", "not a readable Parquet file"),
    "empty object": (lambda: b"", "not a readable Parquet file"),
    "extra column": (
        lambda: parquet(good_table().append_column("note", pa.array(["x"] * len(STORED)))),
        "columns differ from the price schema (unexpected note)",
    ),
    "missing column": (
        lambda: parquet(good_table().drop_columns(["adj_volume"])),
        "columns differ from the price schema (missing adj_volume)",
    ),
    "garbage adjusted_as_of": (
        lambda: parquet(good_table(), {ADJUSTED_AS_OF: b"\xff\xfelast tuesday"}),
        "stockpipe.adjusted_as_of metadata is not an ISO timestamp with a time zone",
    ),
    "naive adjusted_as_of": (
        lambda: parquet(good_table(), {ADJUSTED_AS_OF: b"2024-06-07T23:00:00"}),
        "stockpipe.adjusted_as_of metadata is not an ISO timestamp with a time zone",
    ),
    "rows of another year": (
        lambda: encode(good_table([date(2023, 12, 29), *STORED]), FETCHED),
        "rows dated 2023-12-29..2024-06-07 in the object of year 2024",
    ),
    "uncastable column": (
        lambda: parquet(good_table().set_column(1, "open", pa.array(["ten"] * len(STORED)))),
        "columns cannot be read as the price schema",
    ),
    "null dates": (
        lambda: parquet(
            good_table()
            .cast(PRICE_SCHEMA.set(0, pa.field("date", pa.date32())))
            .set_column(0, pa.field("date", pa.date32()), pa.array([None] * len(STORED), pa.date32()))
        ),
        "row(s) without a date",
    ),
}


@pytest.fixture(params=["s3", "local"])
def store(request, tmp_path):
    if request.param == "s3":
        return S3ObjectStore(request.getfixturevalue("bucket"), request.getfixturevalue("s3_client"))
    return LocalObjectStore(tmp_path / "data")


@pytest.fixture
def replies():
    return Replies()


@pytest.fixture
def runtime(store, replies):
    for ticker in TICKERS:
        replies.by_ticker[ticker] = json_reply(
            [bar(d, close=120.0) for d in weekdays(date(2024, 6, 3), date(2024, 6, 14))]
        )
    with TiingoStandIn(replies) as standin:
        client = TiingoClient(TEST_TOKEN, base_url=standin.url, sleep=lambda s: None)
        rt = scraper.ScraperRuntime(store, client, clock=lambda: EVENING)
        rt.settings = scraper.ScraperSettings(concurrency=2)
        for ticker in TICKERS:
            PriceStore(store).upsert(ticker, good_table(), fetched_at=FETCHED)
        yield rt
        client.close()


@pytest.mark.parametrize("mode", ["catch_up", "range"])
@pytest.mark.parametrize("case", CORRUPT, ids=list(CORRUPT))
def test_an_unreadable_object_fails_its_ticker_only_and_stays_byte_identical(case, mode, runtime, store):
    make, cause = CORRUPT[case]
    key = object_key("AAPL", 2024)
    store.put(key, make(), expected_version=store.get(key).version)
    body = store.get(key).body

    event = {"tickers": TICKERS}
    if mode == "range":
        event |= {"start_date": "2024-06-03", "end_date": "2024-06-14"}
    summary = scraper.handle(event, runtime)

    failure = summary["failed"]["AAPL"]
    assert failure["error"] == "store"
    assert key in failure["message"]
    assert cause in failure["message"]
    assert store.get(key).body == body  # never rewritten: a human looks at it
    for ticker in TICKERS[1:]:
        assert summary["succeeded"][ticker]["rows"] == 10
        assert PriceStore(store).last_date(ticker) == date(2024, 6, 14)


def test_a_bad_object_in_another_year_fails_the_ticker_in_range_mode(runtime, store, replies):
    """A new dividend makes a range write read every stored year: an unreadable old year is a store
    failure naming that object, not an exception out of the pool."""
    key = object_key("MSFT", 2021)
    store.put(key, b"garbage", expected_version=None)
    # A dividend in the reply makes the scraper read every stored year (is the history now stale?).
    days = weekdays(date(2024, 6, 3), date(2024, 6, 14))
    replies.by_ticker["MSFT"] = json_reply([bar(d, divCash=0.5 * (d == days[-1])) for d in days])
    summary = scraper.handle(
        {"tickers": TICKERS, "start_date": "2024-06-03", "end_date": "2024-06-14"}, runtime
    )
    assert summary["failed"]["MSFT"]["error"] == "store"
    assert key in summary["failed"]["MSFT"]["message"]
    assert set(summary["succeeded"]) == {"AAPL", "SPY"}
    assert store.get(key).body == b"garbage"


def test_strict_reads_name_the_key(store):
    key = object_key("KO", 2024)
    store.put(key, b"nope", expected_version=None)
    with pytest.raises(StoreError, match=r"ticker=KO/year=2024/data\.parquet: not a readable Parquet file"):
        PriceStore(store).read_year("KO", 2024)


def test_an_s3_error_other_than_no_such_key_is_a_store_error(s3_client):
    """A missing bucket (or any other S3 error) names the location and the S3 code, never a botocore
    traceback out of the pool."""
    store = S3ObjectStore("no-such-bucket-for-stockpipe", s3_client)
    with pytest.raises(
        StoreError, match=r"reading s3://no-such-bucket-for-stockpipe/.* failed: NoSuchBucket"
    ):
        store.get(object_key("AAPL", 2024))
    with pytest.raises(
        StoreError, match=r"listing s3://no-such-bucket-for-stockpipe/prices/ failed: NoSuchBucket"
    ):
        list(store.list_keys("prices/"))
