"""Helpers for the backfill tests: a small fake scraper that writes real Parquet through the store,
and a metadata source; both count requests like the Tiingo simulator does."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import Orchestrator
from stockpipe.backfill.settings import BackfillSettings
from stockpipe.backfill.state import Work
from stockpipe.backfill.steps import StepOutcome
from stockpipe.calendar import trading_days
from stockpipe.errors import FailureKind
from stockpipe.objectstore import ObjectStore
from stockpipe.prices import PRICE_SCHEMA
from stockpipe.pricestore import PriceStore
from tests.fakes import Clock, HookedStore
from tests.loopback import LoopbackServer, Reply, Request

TODAY = date(2024, 6, 14)


def expected_days(first: date, start: date, end: date = TODAY) -> list[date]:
    return list(trading_days(max(first, start), end))


def bars(ticker: str, days: list[date]) -> pa.Table:
    """Deterministic rows (a function of ticker and day) so re-fetching writes identical values."""
    base = sum(map(ord, ticker))
    prices = [base + d.toordinal() % 97 for d in days]
    columns: dict[str, Any] = {"date": days}
    for name in PRICE_SCHEMA.names[1:]:
        if name == "volume":
            columns[name] = [1000 + d.day for d in days]
        elif name == "split_factor":
            columns[name] = [1.0] * len(days)
        elif name == "div_cash":
            columns[name] = [0.0] * len(days)
        else:
            columns[name] = [float(p) for p in prices]
    return pa.table(columns, schema=PRICE_SCHEMA)


class FakeScraper:
    """The scraper's range contract over a real store: summary shape, not_found, requests counted.

    ``fail`` maps a ticker to an error kind returned for every chunk; ``after_write`` runs after the
    data is written and before the summary is returned (to inject crashes).
    """

    def __init__(self, store: ObjectStore, known: dict[str, date]) -> None:
        self.prices = PriceStore(store)
        self.known = known
        self.requests = 0
        self.calls: list[tuple[str, date, date]] = []
        self.fail: dict[str, str] = {}
        self.after_write: Callable[[str, date, date], None] | None = None
        self.in_flight: set[tuple[str, date]] = set()
        self.overlaps: list[tuple[str, date]] = []
        self.delay = 0.0
        self._lock = threading.Lock()

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        if set(event) != {"tickers", "start_date", "end_date"} or len(event["tickers"]) != 1:
            raise ValueError(f"bad chunk event {event}")
        ticker = event["tickers"][0]
        start, end = date.fromisoformat(event["start_date"]), date.fromisoformat(event["end_date"])
        key = (ticker, start)
        with self._lock:
            self.requests += 0 if self.fail.get(ticker) == FailureKind.NETWORK else 1
            self.calls.append((ticker, start, end))
            if key in self.in_flight:
                self.overlaps.append(key)
            self.in_flight.add(key)
        try:
            if self.delay:
                threading.Event().wait(self.delay)
            if ticker in self.fail:
                kind = self.fail[ticker]
                cost = 0 if kind == FailureKind.NETWORK else 1  # Tiingo was never reached
                failed = {"error": kind, "message": f"{kind} for {ticker}", "requests": cost}
                return _summary({}, {ticker: failed}, requests=cost)
            if ticker not in self.known:
                failed = {"error": "not_found", "message": f"Ticker '{ticker}' not found", "requests": 1}
                return _summary({}, {ticker: failed})
            days = list(trading_days(max(start, self.known[ticker]), min(end, TODAY)))
            rows = self.prices.upsert(
                ticker, bars(ticker, days), fetched_at=datetime(2024, 6, 14, tzinfo=UTC)
            )
            if self.after_write is not None:
                self.after_write(ticker, start, end)
            first, last = (days[0].isoformat(), days[-1].isoformat()) if days else (None, None)
            done = {"rows": rows, "start": first, "end": last, "requests": 1, "retries": 0}
            return _summary({ticker: done}, {})
        finally:
            with self._lock:
                self.in_flight.discard(key)


def _summary(succeeded: dict[str, Any], failed: dict[str, Any], *, requests: int = 1) -> dict[str, Any]:
    return {
        "mode": "range",
        "succeeded": succeeded,
        "failed": failed,
        "rows_written": sum(s["rows"] for s in succeeded.values()),
        "requests": requests,
        "retries": 0,
    }


class FakeMetadata:
    """A metadata source: first dates of ``known``, 404 for the rest; ``error`` fails every lookup."""

    def __init__(self, known: dict[str, date | None]) -> None:
        self.known = known
        self.requests = 0
        self.error: FailureKind | None = None
        self._lock = threading.Lock()

    def lookup(self, work: Work) -> StepOutcome:
        ticker = work.ticker
        cost = 0 if self.error == FailureKind.NETWORK else 1  # a network failure never reached Tiingo
        with self._lock:
            self.requests += cost
        if self.error:
            return StepOutcome.failed(work, self.error, f"{self.error} while reading {ticker}", requests=cost)
        if ticker not in self.known:
            return StepOutcome.failed(work, FailureKind.NOT_FOUND, f"Ticker '{ticker}' not found", requests=1)
        return StepOutcome(work, 1, ok=True, first_date=self.known[ticker])


# Where every World's clock starts (a Friday evening after the close, New York).
CLOCK_START = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)


class World:
    """One bucket, a fake Tiingo (metadata + scraper) and a factory for orchestrator runs."""

    def __init__(self, store: ObjectStore, known: dict[str, date]) -> None:
        self.store = store
        self.scraper = FakeScraper(store, known)
        self.metadata = FakeMetadata(dict(known))
        self.clock = Clock(CLOCK_START)

    @property
    def requests(self) -> int:
        return self.scraper.requests + self.metadata.requests

    def orchestrator(self, **settings: Any) -> Orchestrator:
        defaults: dict[str, Any] = {
            "start_date": date(2020, 1, 1),
            "chunk_months": 6,
            "request_budget": 1000,
            "requests_per_hour": 0,
        }
        return Orchestrator(
            self.store,
            InProcessInvoker(self.scraper.handle),
            self.metadata,
            BackfillSettings(**{**defaults, **settings}),
            clock=self.clock,
            today=lambda: TODAY,
        )


KNOWN = {"AAPL": date(1980, 12, 12), "META": date(2021, 5, 18), "NEWCO": date(2023, 11, 1)}


class LambdaEmulator(LoopbackServer):
    """The Lambda Invoke REST API on loopback, running a Python handler like the Lambda runtime does.

    ``POST /2015-03-31/functions/<name>/invocations``; an exception becomes HTTP 200 with
    ``X-Amz-Function-Error: Unhandled`` and ``{"errorType", "errorMessage"}``, as in AWS. boto3 reaches it
    through ``AWS_ENDPOINT_URL_LAMBDA``.
    """

    def __init__(self, handler: Callable[[dict[str, Any]], dict[str, Any]], function_name: str) -> None:
        super().__init__(self._invoke)
        self.handler = handler
        self.function_name = function_name
        self.invocations: list[dict[str, Any]] = []

    def _invoke(self, request: Request) -> Reply:
        headers = {"X-Amz-Executed-Version": "$LATEST"}
        if request.path != f"/2015-03-31/functions/{self.function_name}/invocations":
            headers["x-amzn-ErrorType"] = "ResourceNotFoundException"
            payload: Any = {"Type": "User", "message": f"Function not found: {request.path}"}
            return 404, headers, json.dumps(payload).encode()
        event = json.loads(request.body or b"{}")
        self.invocations.append(event)
        try:
            payload = self.handler(event)
        except Exception as exc:
            payload = {"errorType": type(exc).__name__, "errorMessage": str(exc)}
            headers["X-Amz-Function-Error"] = "Unhandled"
        return 200, headers, json.dumps(payload, default=str).encode()


# Failures that are not the ticker's fault: they stop a run and never park (stated here, not imported,
# so that a change in the pipeline cannot change the expectation with it).
STOPS_RUN = {"auth", "rate_limited", "network"}


class Crash(BaseException):
    """The process dies (not an Exception: nothing in the pipeline may swallow it)."""


class MortalStore(HookedStore):
    """The orchestrator's view of the store; once ``dead`` (kill -9) nothing more reaches it.

    A dead process cannot give its leases back, so a hard crash leaves them in progress.json.
    """

    def __init__(self, inner: ObjectStore) -> None:
        super().__init__(inner, hook=self._check)
        self.dead = False

    def _check(self, operation: str, key: str) -> None:
        if self.dead:
            raise Crash(f"the process is gone ({operation} {key})")
