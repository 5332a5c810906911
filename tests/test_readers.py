"""The local dataset as its users read it: the whole ``prices/daily`` directory, written by the
pipeline (scraper handler, simulator over HTTP, local store), read by pyarrow, pandas, polars and
DuckDB. Every reader must see exactly the same rows, and the tree may hold nothing but data files
(lock and temporary files live in ``<root>/.stockpipe/``: DuckDB's ``**`` reads every file it matches).
"""

from __future__ import annotations

import os
import stat
from datetime import UTC, date, datetime

import duckdb
import pandas as pd
import polars as pl
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest

from stockpipe import scraper
from stockpipe.objectstore import LocalObjectStore
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import TiingoClient
from tests.conftest import TEST_TOKEN
from tests.tiingo_standin import bar

EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)
TICKERS = ["AAPL", "BRK-B", "MSFT"]
COLUMNS = ["ticker", "year", "date", "open", "close", "volume", "adj_close", "split_factor"]


def canonical(rows) -> list[tuple]:
    """Rows as plain, comparable tuples whatever the reader's types (dictionary, categorical, int32)."""
    out = []
    for row in rows:
        day = row["date"]
        day = day.date() if isinstance(day, datetime) else day
        out.append((str(row["ticker"]), int(row["year"]), day, *(row[c] for c in COLUMNS[3:])))
    return sorted(out)


@pytest.fixture
def dataset(simulator, tmp_path):
    root = tmp_path / "data"
    store = LocalObjectStore(root)
    with TiingoClient(TEST_TOKEN, base_url=simulator.base_url) as client:
        runtime = scraper.ScraperRuntime(store, client, clock=lambda: EVENING)
        summary = scraper.handle(
            {"tickers": TICKERS, "start_date": "2022-11-01", "end_date": "2024-06-14"}, runtime
        )
        assert summary["failed"] == {}
        scraper.handle({"tickers": TICKERS, "start_date": "2024-06-10", "end_date": "2024-06-14"}, runtime)
    truth = []
    for ticker in TICKERS:
        for row in PriceStore(store).read_ticker(ticker).to_pylist():
            truth.append({"ticker": ticker, "year": row["date"].year, **row})
    return root / "prices" / "daily", canonical(truth)


def test_every_reader_reads_the_directory_and_gets_the_same_rows(dataset):
    directory, truth = dataset
    assert len(truth) > 1000
    readers = {
        "pyarrow.parquet.read_table": lambda: pq.read_table(directory).to_pylist(),
        "pyarrow.dataset hive": lambda: ds.dataset(directory, partitioning="hive").to_table().to_pylist(),
        "pandas.read_parquet": lambda: pd.read_parquet(directory).to_dict("records"),
        "polars.read_parquet hive": lambda: pl.read_parquet(directory, hive_partitioning=True).to_dicts(),
        "polars.scan_parquet glob": lambda: (
            pl.scan_parquet(f"{directory}/**/*.parquet", hive_partitioning=True).collect().to_dicts()
        ),
        "duckdb **": lambda: _duckdb(f"{directory}/**"),
        "duckdb */*/*": lambda: _duckdb(f"{directory}/*/*/*.parquet"),
    }
    for name, read in readers.items():
        assert canonical(read()) == truth, name


def _duckdb(pattern: str) -> list[dict]:
    relation = duckdb.sql(f"SELECT * FROM read_parquet('{pattern}', hive_partitioning = true)")
    return [dict(zip(relation.columns, values, strict=True)) for values in relation.fetchall()]


def test_the_tree_holds_only_world_readable_data_files(dataset):
    directory, _ = dataset
    files = [os.path.join(d, f) for d, _, names in os.walk(directory) for f in names]
    assert files
    assert {os.path.basename(f) for f in files} == {"data.parquet"}
    assert {stat.S_IMODE(os.stat(f).st_mode) for f in files} == {0o644}
    internal = directory.parent.parent / ".stockpipe"
    assert internal.is_dir()  # locks and temporary files went here, beside the data
    assert not list((internal / "tmp").iterdir())  # and no temporary file is left behind


def test_a_lock_left_by_an_earlier_version_is_removed_on_the_next_write(tmp_path):
    store = LocalObjectStore(tmp_path)
    prices = PriceStore(store)
    prices.upsert("KO", rows_to_table([bar(date(2024, 6, 3))]), fetched_at=EVENING)
    legacy = tmp_path / "prices/daily/ticker=KO/year=2024/data.parquet.lock"
    legacy.touch()
    assert list(store.list_keys("prices/daily/")) == ["prices/daily/ticker=KO/year=2024/data.parquet"]
    prices.upsert("KO", rows_to_table([bar(date(2024, 6, 4))]), fetched_at=EVENING)
    assert not legacy.exists()
    assert pq.read_table(tmp_path / "prices/daily").num_rows == 2
