"""The price scraper: fetch each ticker's bars from Tiingo and upsert them into the Parquet store.

Two modes, chosen by the event: a fixed range (what the backfill orchestrator sends) or catch-up (the
daily schedule: from the last stored date minus a lookback, so Tiingo's late corrections are re-read).

Isolation: whatever goes wrong with one ticker (a refused request, an invalid reply, an unreadable stored
object, even a bug) becomes that ticker's failure in the summary; nothing is raised out of the thread
pool and the other tickers go on. Only failures that would hit every ticker the same way
(``errors.stops_run``: bad token, exhausted quota, Tiingo unreachable) stop further requests at once,
and the tickers not yet started are reported ``skipped``.

Only screened rows are stored (``validation``): rows of the requested range, never after today in New
York; in catch-up mode the summary line also carries ``TradingDaysBehind``, how many NYSE trading days
the stalest ticker's data lags the last completed session (what the freshness alarm watches).
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

import pyarrow.compute as pc

from stockpipe.calendar import last_completed_trading_day, new_york_today, trading_days_after
from stockpipe.errors import FailureKind, StockpipeError, stops_run
from stockpipe.logs import get_logger
from stockpipe.objectstore import ObjectStore, open_store
from stockpipe.partitions import with_partitions
from stockpipe.prices import date_bounds, empty_table
from stockpipe.pricestore import Latest, PriceStore, YearObject
from stockpipe.scrape_event import ScrapeRequest, parse_scrape_event
from stockpipe.scrape_summary import Outcome, ScrapeSummary, log_ticker, summarise
from stockpipe.settings import data_location, env_int
from stockpipe.tiingo import PriceReply, RequestStats, TiingoClient, client_from_env
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


def handle(event: Any, runtime: ScraperRuntime) -> ScrapeSummary:
    """Validate the event (ValueError naming the problem, before any fetch or write), then scrape."""
    request = parse_scrape_event(event)
    tickers = list(request.tickers) if request.tickers else load_universe(runtime.store)
    return scrape(tickers, request, runtime)


class _Stop:
    """Set by the first failure that stops the run; read by every ticker before it starts."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.kind: FailureKind | None = None

    def set(self, kind: FailureKind) -> None:
        if not self._event.is_set():
            self.kind = kind
            self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()


def scrape(tickers: list[str], request: ScrapeRequest, runtime: ScraperRuntime) -> ScrapeSummary:
    started = time.monotonic()
    now = runtime.clock()
    stop = _Stop()
    workers = max(1, min(runtime.settings.concurrency, len(tickers)))
    stored: dict[str, Latest | Outcome] = {}
    catch_up = request.start is None
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape") as pool:
        if catch_up:
            # Catch-up reads what is stored first and fetches the tickers furthest behind first: when a
            # quota stops this run, the next one starts with the tickers it did not reach.
            read = pool.map(lambda t: _read_latest(runtime.prices, t, new_york_today(now).year), tickers)
            stored = dict(zip(tickers, read, strict=True))
            tickers = sorted(tickers, key=lambda t: _stored_last(stored[t]) or date.min)
        outcomes = list(pool.map(lambda t: _scrape_ticker(t, request, runtime, stop, stored.get(t)), tickers))
    behind = _trading_days_behind(outcomes, now) if catch_up else None
    return summarise(outcomes, catch_up=catch_up, seconds=time.monotonic() - started, days_behind=behind)


def _read_latest(prices: PriceStore, ticker: str, year: int) -> Latest | Outcome:
    """The ticker's newest stored year, or its failed Outcome (reported; the others go on)."""
    try:
        return prices.latest(ticker, year_hint=year)
    except Exception as exc:  # isolation: one ticker's store never stops the run
        return _failed(Outcome(ticker), exc)


def _stored_last(latest: Latest | Outcome) -> date | None:
    if latest is None or isinstance(latest, Outcome):
        return None
    return latest[1].last_date


def _scrape_ticker(
    ticker: str, request: ScrapeRequest, runtime: ScraperRuntime, stop: _Stop, latest: Latest | Outcome
) -> Outcome:
    if isinstance(latest, Outcome):
        log_ticker(latest)
        return latest  # its stored objects could not be read: nothing fetched, nothing written
    outcome = Outcome(ticker, last_date=_stored_last(latest))
    if stop.is_set():
        outcome.fail(FailureKind.SKIPPED, f"{ticker} not attempted: the run stopped at a {stop.kind} failure")
        return outcome
    started = time.monotonic()
    try:
        now = runtime.clock()
        reply, known = _fetch(ticker, request, runtime, new_york_today(now), outcome.stats, latest)
        if _has_new_corporate_action(ticker, reply, runtime.prices):
            reply = _refetch_history(ticker, reply, runtime, new_york_today(now), outcome.stats)
            outcome.rewritten = True
            known = {}
        outcome.rows = runtime.prices.upsert(ticker, reply.table, fetched_at=now, known=known)
        if outcome.rewritten:
            runtime.prices.forget(ticker)
        outcome.reply = reply
        outcome.start, outcome.end = date_bounds(reply.table) or (None, None)
        if outcome.end is not None:
            outcome.last_date = max(outcome.end, outcome.last_date or outcome.end)
    except Exception as exc:  # isolation: see the module docstring
        _failed(outcome, exc)
        if stops_run(outcome.kind):
            stop.set(outcome.kind)  # every other ticker would fail the same way: spend no more requests
    outcome.duration_ms = round((time.monotonic() - started) * 1000)
    log_ticker(outcome)
    return outcome


def _failed(outcome: Outcome, exc: Exception) -> Outcome:
    if isinstance(exc, StockpipeError):
        outcome.fail(exc.kind, exc)
    else:  # a bug: recorded as this ticker's failure, with the traceback in the log (scrubbed)
        log.error("unexpected error", extra={"ticker": outcome.ticker}, exc_info=exc)
        outcome.fail(FailureKind.INTERNAL, f"{outcome.ticker}: unexpected {type(exc).__name__}")
    return outcome


def _fetch(
    ticker: str,
    request: ScrapeRequest,
    runtime: ScraperRuntime,
    today: date,
    stats: RequestStats,
    latest: Latest,
) -> tuple[PriceReply, dict[int, YearObject]]:
    """The screened reply to store, and the year object catch-up read (the upsert reuses it).

    ``today`` is New York's: no request reaches past it, and no row after it is ever stored.
    """
    client = runtime.client
    if request.start is not None:
        end = min(request.end or today, today)
        if request.start > end:
            return PriceReply(empty_table(), [], 0, 0), {}  # a range in the future: nothing to ask for
        return client.get_prices(ticker, request.start, end, stats=stats), {}
    if latest is None:
        return client.get_latest(ticker, until=today, stats=stats), {}
    year, stored = latest
    assert stored.last_date is not None  # latest() returns non-empty years only
    start = min(stored.last_date - timedelta(days=runtime.settings.lookback_days), today)
    return client.get_prices(ticker, start, today, stats=stats), {year: stored}


def _has_new_corporate_action(ticker: str, reply: PriceReply, prices: PriceStore) -> bool:
    """A split/dividend dated on or after the day some stored rows were fetched makes their adj_* stale.

    Historical events (met while backfilling old chunks) predate every stored fetch and trigger nothing:
    Tiingo's current adjusted values already include them.
    """
    table = reply.table
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
    ticker: str, fetched: PriceReply, runtime: ScraperRuntime, today: date, stats: RequestStats
) -> PriceReply:
    """The ticker's whole stored range plus the new rows, in one request, so adj_* agree across years."""
    first_stored = runtime.prices.first_date(ticker)
    bounds = date_bounds(fetched.table)
    start = min(d for d in (first_stored, bounds[0] if bounds else None) if d is not None)
    log.info("corporate action: rewriting stored history", extra={"ticker": ticker, "start": str(start)})
    return runtime.client.get_prices(ticker, start, today, stats=stats)


def _trading_days_behind(outcomes: list[Outcome], now: datetime) -> int | None:
    """NYSE trading days between the last completed session and the stalest ticker's newest stored day.

    Tickers with nothing stored (or unreadable) are left out: they are failures in their own right.
    """
    lasts = [o.last_date for o in outcomes if o.last_date is not None]
    if not lasts:
        return None
    return trading_days_after(min(lasts), last_completed_trading_day(now))
