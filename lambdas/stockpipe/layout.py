"""Where the pipeline keeps things and what it calls its metrics: defined once, imported everywhere.

The storage layout and the metric names are public contracts (README "The dataset", the alarms and the
dashboard read them), and three parties use them: the Lambdas, the local tools and the Pulumi program
(IAM resources, the Glue table, alarms). Standard library only, so the Pulumi program and the
orchestrator's lean image can import it without pyarrow.

::

    <root>/prices/daily/ticker=<T>/year=<Y>/data.parquet   the dataset (readers see only this tree)
    <root>/prices/fetch-times/<T>.json                     when each stored year was fetched (fetch_times)
    <root>/config/universe.json                            the tickers (written by `pulumi up`)
    <root>/backfill/progress.json                          the orchestrator's progress
"""

from __future__ import annotations

from typing import Final

# ---------------------------------------------------------------- storage layout

PRICES_PREFIX: Final = "prices/daily"
PRICE_OBJECT_NAME: Final = "data.parquet"
# Beside the dataset tree, never inside it: readers glob ``prices/daily`` and must see only Parquet.
FETCH_TIMES_PREFIX: Final = "prices/fetch-times/"
UNIVERSE_KEY: Final = "config/universe.json"
BACKFILL_PREFIX: Final = "backfill/"
PROGRESS_KEY: Final = "backfill/progress.json"


def ticker_prefix(ticker: str) -> str:
    """``prices/daily/ticker=<T>/``: every year object of one ticker."""
    return f"{PRICES_PREFIX}/ticker={ticker}/"


def price_key(ticker: str, year: int) -> str:
    """``prices/daily/ticker=<T>/year=<Y>/data.parquet``: one ticker-year object."""
    return f"{ticker_prefix(ticker)}year={year}/{PRICE_OBJECT_NAME}"


def fetch_times_key(ticker: str) -> str:
    """``prices/fetch-times/<T>.json``: when each stored year of one ticker was fetched."""
    return f"{FETCH_TIMES_PREFIX}{ticker}.json"


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
