"""The price scraper: fetch each ticker's bars from Tiingo and upsert them into the Parquet store.

Two modes, chosen by the event: a fixed range (what the backfill orchestrator sends) or catch-up (the
daily schedule: from the last stored date minus a lookback, so Tiingo's late corrections are re-read).

Isolation: whatever goes wrong with one ticker (a refused request, an invalid reply, an unreadable stored
object, even a bug) becomes that ticker's failure in the summary; nothing is raised out of the thread
pools and the other tickers go on. Only failures that would hit every ticker the same way
(``errors.stops_run``: bad token, exhausted quota, Tiingo unreachable) stop further requests at once,
and the tickers not yet started are reported ``skipped``.

Only screened rows are stored (``validation``): rows of the requested range, never after today in New
York; in catch-up mode the summary line also carries ``TradingDaysBehind``, how many NYSE trading days
the stalest ticker's data lags the last completed session (what the freshness alarm watches).

Two pools, so that Tiingo always has ``concurrency`` requests in flight: the *fetch* pool only sends
requests; the *store* pool reads what is stored (catch-up, ahead of the fetches) and merges and writes
what was fetched (behind them). When the client-side limit cannot serve every ticker (more tickers than
free requests this hour), catch-up first reads them all and fetches the furthest behind first, so the
next run starts with the tickers a stopped run did not reach; otherwise each ticker is fetched as soon
as its stored state is known.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from stockpipe.calendar import last_completed_trading_day, new_york_today, trading_days_after
from stockpipe.errors import FailureKind, StockpipeError, stops_run
from stockpipe.logs import get_logger
from stockpipe.objectstore import ObjectStore, open_store
from stockpipe.partitions import with_partitions
from stockpipe.prices import reply_table
from stockpipe.pricestore import Latest, PriceStore, YearObject
from stockpipe.scrape_event import ScrapeRequest, parse_scrape_event
from stockpipe.scrape_summary import Outcome, ScrapeSummary, log_ticker, summarise
from stockpipe.settings import ScraperSettings, data_location
from stockpipe.tiingo import PriceReply, RequestStats, TiingoClient, client_from_env
from stockpipe.universe import load_universe

__all__ = ["ScraperRuntime", "ScraperSettings", "handle", "runtime_from_env", "scrape"]

log = get_logger("scraper")
# Tickers in flight per worker: enough queued work that one slow ticker (retries, a rewrite) never
# idles the pools, few enough that a 20,000-ticker run holds a few hundred at a time.
WINDOW_PER_WORKER = 16


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
    """Every variable is read through a settings class (``stockpipe.settings``)."""
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
    catch_up = request.start is None
    workers = max(1, min(runtime.settings.concurrency, len(tickers)))
    year = new_york_today(now).year
    with (
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scrape") as fetchers,
        ThreadPoolExecutor(max_workers=workers, thread_name_prefix="store") as storers,
    ):
        run = _Run(request, runtime, storers)

        def read(ticker: str) -> Future[Latest | Outcome]:
            return storers.submit(_read_latest, runtime.prices, ticker, year)

        reads: deque[Future[Latest | Outcome]] = deque()
        if catch_up and _quota_may_stop(runtime, len(tickers)):
            # Fetch the tickers furthest behind first: a run the quota stops leaves the others for the
            # next run, which then starts with them.
            ahead = [read(t) for t in tickers]
            order = sorted(range(len(tickers)), key=lambda i: _stored_last(ahead[i].result()) or date.min)
            tickers, reads = [tickers[i] for i in order], deque(ahead[i] for i in order)
            ahead.clear()
        # A sliding window of tickers in flight: the run holds O(window) futures and year objects, not
        # one per ticker of the universe, and outcomes come back in run order.
        window = WINDOW_PER_WORKER * workers
        in_flight: deque[Future[Outcome | Future[Outcome]]] = deque()
        outcomes: list[Outcome] = []
        for ticker in tickers:
            stored = reads.popleft() if reads else (read(ticker) if catch_up else None)
            in_flight.append(fetchers.submit(run.fetch, ticker, stored))
            if len(in_flight) >= window:
                outcomes.append(_resolve(in_flight.popleft().result()))
        outcomes.extend(_resolve(job.result()) for job in in_flight)
    behind = _trading_days_behind(outcomes, now) if catch_up else None
    return summarise(outcomes, catch_up=catch_up, seconds=time.monotonic() - started, days_behind=behind)


def _quota_may_stop(runtime: ScraperRuntime, tickers: int) -> bool:
    limiter = runtime.client.rate_limiter
    return limiter is not None and limiter.available() < tickers


def _resolve(result: Outcome | Future[Outcome]) -> Outcome:
    return result.result() if isinstance(result, Future) else result


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


def _failed(outcome: Outcome, exc: Exception) -> Outcome:
    if isinstance(exc, StockpipeError):
        outcome.fail(exc.kind, exc)
    else:  # a bug: recorded as this ticker's failure, with the traceback in the log (scrubbed)
        log.error("unexpected error", extra={"ticker": outcome.ticker}, exc_info=exc)
        outcome.fail(FailureKind.INTERNAL, f"{outcome.ticker}: unexpected {type(exc).__name__}")
    return outcome


class _Run:
    """One scrape's shared state; ``fetch`` runs in the fetch pool, ``store`` in the store pool."""

    def __init__(self, request: ScrapeRequest, runtime: ScraperRuntime, storers: ThreadPoolExecutor) -> None:
        self.request = request
        self.runtime = runtime
        self.storers = storers
        self.stop = _Stop()

    def fetch(self, ticker: str, read: Future[Latest | Outcome] | None) -> Outcome | Future[Outcome]:
        latest = read.result() if read is not None else None
        if isinstance(latest, Outcome):
            log_ticker(latest)
            return latest  # its stored objects could not be read: nothing fetched, nothing written
        outcome = Outcome(ticker, last_date=_stored_last(latest))
        if self.stop.is_set():
            outcome.fail(
                FailureKind.SKIPPED, f"{ticker} not attempted: the run stopped at a {self.stop.kind} failure"
            )
            return outcome
        started = time.monotonic()
        try:
            now = self.runtime.clock()
            reply, known = _fetch(
                ticker, self.request, self.runtime, new_york_today(now), outcome.stats, latest
            )
        except Exception as exc:  # isolation: see the module docstring
            return self._finish(outcome, started, exc)
        return self.storers.submit(self.store, outcome, reply, known, now, started)

    def store(
        self, outcome: Outcome, reply: PriceReply, known: dict[int, YearObject], now: datetime, started: float
    ) -> Outcome:
        ticker, runtime = outcome.ticker, self.runtime
        try:
            if runtime.prices.needs_history_rewrite(ticker, reply.newest_event(), known):
                reply = _refetch_history(ticker, reply, runtime, new_york_today(now), outcome.stats)
                outcome.rewritten = True
                known = {}
            outcome.rows = runtime.prices.upsert(ticker, reply_table(reply), fetched_at=now, known=known)
            outcome.note_reply(reply)
            outcome.start, outcome.end = reply.first_date, reply.last_date
            if outcome.end is not None:
                outcome.last_date = max(outcome.end, outcome.last_date or outcome.end)
        except Exception as exc:  # isolation: see the module docstring
            return self._finish(outcome, started, exc)
        return self._finish(outcome, started)

    def _finish(self, outcome: Outcome, started: float, exc: Exception | None = None) -> Outcome:
        if exc is not None:
            _failed(outcome, exc)
            if stops_run(outcome.kind):
                self.stop.set(
                    outcome.kind
                )  # every other ticker would fail the same way: spend no more requests
        outcome.duration_ms = round((time.monotonic() - started) * 1000)
        log_ticker(outcome)
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
            return PriceReply(), {}  # a range in the future: nothing to ask for
        return client.get_prices(ticker, request.start, end, stats=stats), {}
    if latest is None:
        return client.get_latest(ticker, until=today, stats=stats), {}
    year, stored = latest
    assert stored.last_date is not None  # latest() returns non-empty years only
    start = min(stored.last_date - timedelta(days=runtime.settings.lookback_days), today)
    return client.get_prices(ticker, start, today, stats=stats), {year: stored}


def _refetch_history(
    ticker: str, fetched: PriceReply, runtime: ScraperRuntime, today: date, stats: RequestStats
) -> PriceReply:
    """The ticker's whole stored range plus the new rows, in one request, so adj_* agree across years."""
    first_stored = runtime.prices.first_date(ticker)
    start = min(d for d in (first_stored, fetched.first_date) if d is not None)
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
