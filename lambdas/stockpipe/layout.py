"""Where the pipeline keeps things and what it calls its metrics: defined once, imported everywhere.

The storage layout and the metric names are public contracts (README "The dataset", the alarms and the
dashboard read them), and three parties use them: the Lambdas, the local tools and the Pulumi program
(IAM resources, the Glue table, alarms). Standard library only, so the Pulumi program and the
orchestrator's lean image can import it without pyarrow.

::

    <root>/prices/daily/ticker=<T>/year=<Y>/data.parquet   the dataset (readers see only this tree)
    <root>/prices/fetch-times/<T>.json                     when each stored year was fetched (fetch_times)
    <root>/config/universe.json                            the tickers (written by `pulumi up`)
    <root>/backfill/tickers/<T>.json                       one ticker's backfill progress (the truth)
    <root>/backfill/shards/<xx>.json                       index: a summary of each ticker of shard xx
    <root>/backfill/index.json                             index root: totals per shard, sync marks
    <root>/backfill/progress.json                          the progress of earlier versions (migrated)
"""

from __future__ import annotations

import zlib
from typing import Final

# ---------------------------------------------------------------- storage layout

PRICES_PREFIX: Final = "prices/daily"
PRICE_OBJECT_NAME: Final = "data.parquet"
# Beside the dataset tree, never inside it: readers glob ``prices/daily`` and must see only Parquet.
FETCH_TIMES_PREFIX: Final = "prices/fetch-times/"
UNIVERSE_KEY: Final = "config/universe.json"
BACKFILL_PREFIX: Final = "backfill/"
# Earlier versions kept every ticker's progress in this one file; it is read once, to migrate it.
PROGRESS_KEY: Final = "backfill/progress.json"
BACKFILL_TICKERS_PREFIX: Final = "backfill/tickers/"
BACKFILL_SHARDS_PREFIX: Final = "backfill/shards/"
BACKFILL_INDEX_KEY: Final = "backfill/index.json"
BACKFILL_SHARDS: Final = 256  # index shards (tickers map to one by CRC-32 of the name)


def ticker_prefix(ticker: str) -> str:
    """``prices/daily/ticker=<T>/``: every year object of one ticker."""
    return f"{PRICES_PREFIX}/ticker={ticker}/"


def price_key(ticker: str, year: int) -> str:
    """``prices/daily/ticker=<T>/year=<Y>/data.parquet``: one ticker-year object."""
    return f"{ticker_prefix(ticker)}year={year}/{PRICE_OBJECT_NAME}"


def fetch_times_key(ticker: str) -> str:
    """``prices/fetch-times/<T>.json``: when each stored year of one ticker was fetched."""
    return f"{FETCH_TIMES_PREFIX}{ticker}.json"


def ticker_progress_key(ticker: str) -> str:
    """``backfill/tickers/<T>.json``: one ticker's backfill progress."""
    return f"{BACKFILL_TICKERS_PREFIX}{ticker}.json"


def shard_of(ticker: str) -> str:
    """The index shard of a ticker: two hex digits, stable across processes and versions."""
    return f"{zlib.crc32(ticker.encode()) % BACKFILL_SHARDS:02x}"


def shard_key(shard: str) -> str:
    """``backfill/shards/<xx>.json``: the index entries of one shard."""
    return f"{BACKFILL_SHARDS_PREFIX}{shard}.json"


# ---------------------------------------------------------------- metrics (CloudWatch EMF)

METRIC_NAMESPACE: Final = "StockPipeline"
FUNCTION_DIMENSION: Final = "Function"


class ScraperMetric:
    """Emitted once per scraper invocation (dimension ``Function``)."""

    ROWS_WRITTEN: Final = "RowsWritten"
    TICKERS_FAILED: Final = "TickersFailed"
    RETRIES: Final = "Retries"
    REQUESTS: Final = "Requests"
    # NYSE trading days between the last trading day and the stalest ticker's last stored date: what
    # the freshness alarm watches (a market holiday is not a missed day).
    TRADING_DAYS_BEHIND: Final = "TradingDaysBehind"


class BackfillMetric:
    """Emitted once per orchestrator run (dimension ``Function``)."""

    CHUNKS: Final = "BackfillChunks"
    CHUNKS_FAILED: Final = "BackfillChunksFailed"
    ROWS: Final = "BackfillRows"
    REQUESTS: Final = "BackfillRequests"
    CHUNKS_LEFT: Final = "BackfillChunksLeft"
