"""The price scraper: fetch each ticker's bars from Tiingo and upsert them into the Parquet store.

Two modes, chosen by the event: a fixed range (what the backfill orchestrator sends) or catch-up (the
daily schedule: from the last stored date minus a lookback, so Tiingo's late corrections are re-read).
One ticker's failure never stops the others, except failures that would fail every ticker the same way
(bad token, exhausted quota): those stop further requests at once instead of burning the quota.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from stockpipe.errors import AuthenticationError, RateLimitError, SkippedError, StockpipeError
from stockpipe.layout import FUNCTION_DIMENSION, ScraperMetric
from stockpipe.logs import emf_fields, get_logger
from stockpipe.objectstore import ObjectStore, open_store
from stockpipe.partitions import with_partitions
from stockpipe.prices import date_bounds
from stockpipe.pricestore import Latest, PriceStore, YearObject
from stockpipe.scrape_event import ScrapeRequest, parse_scrape_event
from stockpipe.settings import data_location, env_int
from stockpipe.tiingo import RequestStats, TiingoClient, client_from_env
from stockpipe.universe import load_universe

log = get_logger("scraper")


@dataclass(frozen=True)
class ScraperSettings:
    concurrency: int = 8
    lookback_days: int = 7

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ScraperSettings:
        return cls(
            concurrency=env_int(env, "SCRAPER_CONCURRENCY", cls.concurrency, minimum=1),
            lookback_days=env_int(env, "LOOKBACK_DAYS", cls.lookback_days),
        )


@dataclass
class ScraperRuntime:
    """What a scrape needs, built once per process (a Lambda cold start or a local run)."""

    store: ObjectStore
    client: TiingoClient
    settings: ScraperSettings = field(default_factory=ScraperSettings)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    prices: PriceStore = field(init=False)

    def __post_init__(self) -> None:
        self.prices = PriceStore(self.store)


def runtime_from_env(
    env: Mapping[str, str] = os.environ,
    *,
    s3_client: Any = None,
    secrets_client: Any = None,
    glue_client: Any = None,
) -> ScraperRuntime:
    settings = ScraperSettings.from_env(env)
    client = client_from_env(env, secrets_client=secrets_client, max_connections=settings.concurrency)
    store = with_partitions(open_store(data_location(env), s3_client), env, glue_client)
    return ScraperRuntime(store, client, settings)


def handle(event: Any, runtime: ScraperRuntime) -> dict[str, Any]:
    """Validate the event (ValueError naming the problem, before any fetch or write), then scrape."""
    request = parse_scrape_event(event)
    tickers = list(request.tickers) if request.tickers else load_universe(runtime.store)
    return scrape(tickers, request, runtime)


@dataclass
class _Outcome:
    ticker: str
    stats: RequestStats
    rows: int = 0
    start: date | None = None
    end: date | None = None
    rewritten: bool = False
    error: StockpipeError | None = None
    duration_ms: int = 0


def scrape(tickers: list[str], request: ScrapeRequest, runtime: ScraperRuntime) -> dict[str, Any]:
    started = time.monotonic()
    stop = threading.Event()
    workers = max(1, min(runtime.settings.concurrency, len(tickers)))
    year = runtime.clock().year
    stored: dict[str, Latest | StockpipeError] = {}
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape") as pool:
        if request.start is None:
            # Catch-up reads what is stored first and fetches the tickers furthest behind first: when a
            # quota stops this run, the next one starts with the tickers it did not reach.
            read = pool.map(lambda t: _read_latest(runtime.prices, t, year), tickers)
            stored = dict(zip(tickers, read, strict=True))
            tickers = sorted(tickers, key=lambda t: _last_date(stored[t]) or date.min)
        outcomes = list(pool.map(lambda t: _scrape_ticker(t, request, runtime, stop, stored.get(t)), tickers))
    return _summarise(outcomes, request, time.monotonic() - started)


def _read_latest(prices: PriceStore, ticker: str, year: int) -> Latest | StockpipeError:
    try:
        return prices.latest(ticker, year_hint=year)
    except StockpipeError as exc:
        return exc  # reported as this ticker's failure; the others go on


def _last_date(latest: Latest | StockpipeError) -> date | None:
    if latest is None or isinstance(latest, StockpipeError):
        return None
    return latest[1].last_date


def _scrape_ticker(
    ticker: str,
    request: ScrapeRequest,
    runtime: ScraperRuntime,
    stop: threading.Event,
    latest: Latest | StockpipeError,
) -> _Outcome:
    outcome = _Outcome(ticker, RequestStats())
    if stop.is_set():
        outcome.error = SkippedError("not attempted: an earlier ticker hit an authentication or quota error")
        return outcome
    started = time.monotonic()
    try:
        if isinstance(latest, StockpipeError):
            raise latest
        now = runtime.clock()
        table, known = _fetch(ticker, request, runtime, now.date(), outcome.stats, latest)
        if _has_new_corporate_action(ticker, table, runtime.prices):
            table = _refetch_history(ticker, table, runtime, now.date(), outcome.stats)
            outcome.rewritten = True
            known = {}
        outcome.rows = runtime.prices.upsert(ticker, table, fetched_at=now, known=known)
        if outcome.rewritten:
            runtime.prices.forget(ticker)
        outcome.start, outcome.end = date_bounds(table) or (None, None)
    except StockpipeError as exc:
        outcome.error = exc
        if isinstance(exc, AuthenticationError | RateLimitError):
            stop.set()  # every other ticker would fail the same way: spend no more requests
    outcome.duration_ms = round((time.monotonic() - started) * 1000)
    _log_ticker(outcome)
    return outcome


def _fetch(
    ticker: str,
    request: ScrapeRequest,
    runtime: ScraperRuntime,
    today: date,
    stats: RequestStats,
    latest: Latest,
) -> tuple[pa.Table, dict[int, YearObject]]:
    """The bars to store, and the year object catch-up read (the upsert reuses it)."""
    client = runtime.client
    if request.start is not None:
        return client.get_prices(ticker, request.start, request.end or today, stats=stats), {}
    if latest is None:
        return client.get_latest(ticker, stats=stats), {}
    year, stored = latest
    assert stored.last_date is not None  # latest() returns non-empty years only
    start = min(stored.last_date - timedelta(days=runtime.settings.lookback_days), today)
    return client.get_prices(ticker, start, today, stats=stats), {year: stored}


def _has_new_corporate_action(ticker: str, table: pa.Table, prices: PriceStore) -> bool:
    """A split/dividend dated on or after the day some stored rows were fetched makes their adj_* stale.

    Historical events (met while backfilling old chunks) predate every stored fetch and trigger nothing:
    Tiingo's current adjusted values already include them.
    """
    if table.num_rows == 0:
        return False
    is_event = pc.or_(
        pc.not_equal(table.column("split_factor"), 1.0), pc.not_equal(table.column("div_cash"), 0.0)
    )
    event_dates = table.column("date").filter(pc.fill_null(is_event, False))
    if len(event_dates) == 0:
        return False
    newest_event = pc.max(event_dates).as_py()
    oldest_fetch = prices.oldest_fetch(ticker)
    return oldest_fetch is not None and newest_event >= oldest_fetch.date()


def _refetch_history(
    ticker: str, fetched: pa.Table, runtime: ScraperRuntime, today: date, stats: RequestStats
) -> pa.Table:
    """The ticker's whole stored range plus the new rows, in one request, so adj_* agree across years."""
    first_stored = runtime.prices.first_date(ticker)
    bounds = date_bounds(fetched)
    start = min(d for d in (first_stored, bounds[0] if bounds else None) if d is not None)
    end = max(today, bounds[1]) if bounds else today
    log.info("corporate action: rewriting stored history", extra={"ticker": ticker, "start": str(start)})
    return runtime.client.get_prices(ticker, start, end, stats=stats)


def _log_ticker(outcome: _Outcome) -> None:
    fields: dict[str, Any] = {
        "ticker": outcome.ticker,
        "rows": outcome.rows,
        "start": outcome.start,
        "end": outcome.end,
        "duration_ms": outcome.duration_ms,
        "requests": outcome.stats.requests,
        "retries": outcome.stats.retries,
    }
    if outcome.error is None:
        log.info("ticker scraped", extra={**fields, "rewritten": outcome.rewritten})
    else:
        log.warning(
            "ticker failed", extra={**fields, "error": outcome.error.kind, "detail": str(outcome.error)}
        )


def _summarise(outcomes: list[_Outcome], request: ScrapeRequest, seconds: float) -> dict[str, Any]:
    succeeded = {
        o.ticker: {
            "rows": o.rows,
            "start": o.start.isoformat() if o.start else None,
            "end": o.end.isoformat() if o.end else None,
            "requests": o.stats.requests,
            "retries": o.stats.retries,
            "rewritten": o.rewritten,
        }
        for o in outcomes
        if o.error is None
    }
    failed = {
        o.ticker: {"error": o.error.kind, "message": str(o.error)[:300], "requests": o.stats.requests}
        for o in outcomes
        if o.error is not None
    }
    totals = {
        ScraperMetric.ROWS_WRITTEN: sum(o.rows for o in outcomes),
        ScraperMetric.TICKERS_FAILED: len(failed),
        ScraperMetric.RETRIES: sum(o.stats.retries for o in outcomes),
        ScraperMetric.REQUESTS: sum(o.stats.requests for o in outcomes),
    }
    summary = {
        "mode": "catch_up" if request.start is None else "range",
        "tickers": len(outcomes),
        "succeeded": succeeded,
        "failed": failed,
        "rows_written": totals[ScraperMetric.ROWS_WRITTEN],
        "requests": totals[ScraperMetric.REQUESTS],
        "retries": totals[ScraperMetric.RETRIES],
        "duration_ms": round(seconds * 1000),
    }
    function = os.environ.get("AWS_LAMBDA_FUNCTION_NAME", "local")
    log.info(
        "scrape finished",
        extra={
            "mode": summary["mode"],
            "tickers": len(outcomes),
            "failed_tickers": sorted(failed),
            "duration_ms": summary["duration_ms"],
            **emf_fields(totals, dimensions={FUNCTION_DIMENSION: function}),
        },
    )
    return summary
