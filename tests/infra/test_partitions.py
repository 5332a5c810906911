"""Partitions registered as the store creates ticker-year objects, over moto's S3 and Glue (HTTP).

The Glue table is created from components.catalog.table_input, the exact definition Pulumi deploys; the
scraper runs through its real Lambda entry point with the environment the component gives it.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from datetime import datetime

import boto3
import pytest

import lambda_function
from components.catalog import table_input
from stockpipe import partitions, scraper
from stockpipe.layout import price_key
from stockpipe.objectstore import S3ObjectStore
from stockpipe.partitions import CatalogTarget, PartitionRegistrar, RegisteringStore, partition_of
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from tests.conftest import TEST_TOKEN

_databases = itertools.count()


@pytest.fixture
def glue(moto_endpoint):
    return boto3.client("glue", endpoint_url=moto_endpoint)


@pytest.fixture
def table(glue, bucket) -> CatalogTarget:
    target = CatalogTarget(f"stock_pipeline_test_{next(_databases)}", "prices_daily")
    glue.create_database(DatabaseInput={"Name": target.database})
    glue.create_table(DatabaseName=target.database, TableInput=table_input(bucket))
    return target


@pytest.fixture
def env(simulator, bucket, table) -> dict[str, str]:
    """The scraper's environment: the bucket, the simulator with its token, the Glue table."""
    return {
        "DATA_BUCKET": bucket,
        "TIINGO_API_TOKEN": TEST_TOKEN,
        "TIINGO_BASE_URL": simulator.base_url,
        **table.to_env(),
    }


@pytest.fixture
def handler(env, monkeypatch) -> Iterator:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    lambda_function.runtime.cache_clear()
    yield lambda event: lambda_function.lambda_handler(event, None)
    lambda_function.runtime.cache_clear()


def registered(glue, table: CatalogTarget) -> dict[tuple[str, int], str]:
    pages = glue.get_paginator("get_partitions").paginate(DatabaseName=table.database, TableName=table.table)
    return {
        (p["Values"][0], int(p["Values"][1])): p["StorageDescriptor"]["Location"]
        for page in pages
        for p in page["Partitions"]
    }


def stored_partitions(s3_client, bucket: str) -> set[tuple[str, int]]:
    keys = S3ObjectStore(bucket, s3_client).list_keys("prices/daily/")
    return {partition_of(key) for key in keys}


def test_every_stored_ticker_year_has_its_partition_at_its_own_location(
    handler, glue, table, bucket, s3_client
):
    summary = handler({"tickers": ["AAPL", "MSFT"], "start_date": "2023-12-01", "end_date": "2024-01-31"})
    assert summary["failed"] == {}
    partitions_now = registered(glue, table)
    assert (
        set(partitions_now)
        == stored_partitions(s3_client, bucket)
        == {
            ("AAPL", 2023),
            ("AAPL", 2024),
            ("MSFT", 2023),
            ("MSFT", 2024),
        }
    )
    for (ticker, year), location in partitions_now.items():
        # The object sits directly in its partition's folder (what Athena lists).
        assert price_key(ticker, year).startswith(location.removeprefix(f"s3://{bucket}/"))
    partition = glue.get_partition(
        DatabaseName=table.database, TableName=table.table, PartitionValues=["AAPL", "2024"]
    )
    table_sd = table_input(bucket)["StorageDescriptor"]
    assert partition["Partition"]["StorageDescriptor"]["Columns"] == table_sd["Columns"]
    assert partition["Partition"]["StorageDescriptor"]["SerdeInfo"] == table_sd["SerdeInfo"]


def test_a_ticker_added_later_is_registered_with_its_first_rows(handler, glue, table):
    handler({"tickers": ["AAPL"], "start_date": "2024-06-03", "end_date": "2024-06-07"})
    assert set(registered(glue, table)) == {("AAPL", 2024)}
    handler({"tickers": ["AAPL", "NVDA"], "start_date": "2022-12-28", "end_date": "2023-01-04"})
    assert set(registered(glue, table)) == {
        ("AAPL", 2024),
        ("AAPL", 2022),
        ("AAPL", 2023),
        ("NVDA", 2022),
        ("NVDA", 2023),
    }


class CountingGlue:
    """The real moto client, counting create_partition calls (an update must cost none)."""

    def __init__(self, client) -> None:
        self.client = client
        self.exceptions = client.exceptions
        self.creates: list[list[str]] = []

    def get_table(self, **kw):
        return self.client.get_table(**kw)

    def create_partition(self, **kw):
        self.creates.append(kw["PartitionInput"]["Values"])
        return self.client.create_partition(**kw)


def test_updates_cost_no_glue_call_and_a_new_process_tolerates_existing_partitions(
    env, glue, table, bucket, s3_client
):
    first = CountingGlue(glue)
    runtime = scraper.runtime_from_env(env, s3_client=s3_client, glue_client=first)
    scraper.handle({"tickers": ["SPY"], "start_date": "2024-06-03", "end_date": "2024-06-05"}, runtime)
    scraper.handle({"tickers": ["SPY"], "start_date": "2024-06-06", "end_date": "2024-06-07"}, runtime)
    assert first.creates == [["SPY", "2024"]]  # the second run updated the object: no registration

    # A cold start that sees the object vanish (lifecycle, manual delete) re-creates it: Glue already
    # knows the partition, and that is fine.
    S3ObjectStore(bucket, s3_client).client.delete_object(Bucket=bucket, Key=price_key("SPY", 2024))
    second = CountingGlue(glue)
    runtime = scraper.runtime_from_env(env, s3_client=s3_client, glue_client=second)
    summary = scraper.handle(
        {"tickers": ["SPY"], "start_date": "2024-06-03", "end_date": "2024-06-07"}, runtime
    )
    assert summary["failed"] == {}
    assert second.creates == [["SPY", "2024"]]
    assert set(registered(glue, table)) == {("SPY", 2024)}


def test_when_glue_refuses_the_object_is_not_written_and_the_error_names_table_and_partition(
    env, glue, table, bucket, s3_client
):
    glue.delete_table(DatabaseName=table.database, Name=table.table)
    runtime = scraper.runtime_from_env(env, s3_client=s3_client, glue_client=glue)
    summary = scraper.handle(
        {"tickers": ["JPM"], "start_date": "2024-06-03", "end_date": "2024-06-07"}, runtime
    )
    assert "JPM" in summary["failed"]
    assert stored_partitions(s3_client, bucket) == set()  # no object without its partition
    message = str(summary["failed"]["JPM"])
    assert "ticker=JPM/year=2024" in message
    assert table.describe() in message
    assert TEST_TOKEN not in message


def test_a_partition_created_meanwhile_by_another_writer_is_not_an_error(glue, table, bucket, s3_client):
    registrar = PartitionRegistrar(glue, table)
    other = PartitionRegistrar(glue, table)
    other.register("AMZN", 2024)
    store = RegisteringStore(S3ObjectStore(bucket, s3_client), registrar)
    rows = rows_to_table([{"date": "2024-06-03T00:00:00.000Z", "close": 1.0, "volume": 10}])
    PriceStore(store).upsert("AMZN", rows, fetched_at=datetime(2024, 6, 3, 22))
    assert set(registered(glue, table)) == {("AMZN", 2024)}
    assert stored_partitions(s3_client, bucket) == {("AMZN", 2024)}


# --- pure parts ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        (price_key("BRK-B", 2024), ("BRK-B", 2024)),
        (price_key("A", 1999), ("A", 1999)),
        ("prices/daily/ticker=AAPL/year=2024/data.parquet.lock", None),
        ("prices/daily/ticker=AAPL/year=24/data.parquet", None),
        ("backfill/progress.json", None),
        ("config/universe.json", None),
    ],
)
def test_only_price_objects_have_a_partition(key, expected):
    assert partition_of(key) == expected


def test_catalog_target_needs_both_names_or_none():
    assert CatalogTarget.from_env({}) is None
    target = CatalogTarget.from_env({partitions.DATABASE_ENV: "db", partitions.TABLE_ENV: "t"})
    assert target == CatalogTarget("db", "t")
    assert CatalogTarget.from_env(target.to_env()) == target
    with pytest.raises(ValueError, match="GLUE_TABLE is missing"):
        CatalogTarget.from_env({partitions.DATABASE_ENV: "db"})


def test_local_runs_have_no_catalog(tmp_path):
    store = partitions.with_partitions(S3ObjectStore("b", None), {"DATA_DIR": str(tmp_path)})
    assert isinstance(store, S3ObjectStore)
