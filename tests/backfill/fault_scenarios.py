"""The world and the faulted phases of the orchestrator's fault matrix (test_fault_matrix_backfill.py):
the REAL orchestrator invoking the REAL scraper in process, the Tiingo simulator over HTTP, a moto bucket.
Each fault function runs the faulted phase and returns its run summaries."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from stockpipe import scraper
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource
from stockpipe.backfill.plan import iter_chunks
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.calendar import trading_days
from stockpipe.errors import PreconditionFailed
from stockpipe.layout import BACKFILL_TICKERS_PREFIX as TICKERS_PREFIX
from stockpipe.objectstore import DelegatingStore, ObjectStore
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import TiingoClient
from stockpipe_local.simulator import TiingoSimulator
from tests.backfill.backfill_fakes import Crash, MortalStore
from tests.conftest import TEST_TOKEN
from tests.threads import run_concurrently

TICKERS = ("NVDA", "SPY", "TSLA")  # NVDA: a split and dividends in the window; SPY: dividends; TSLA: none
UNKNOWN = "XYZQ"  # the simulator answers 404
START = date(2023, 10, 1)  # two chunks per ticker; the first spans a year boundary
TODAY = date(2024, 6, 14)  # the simulator fixture's today
EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)
CHUNK_MONTHS = 6
PLAN = list(iter_chunks(START, TODAY, CHUNK_MONTHS))  # each ticker's chunks
CHUNKS = len(TICKERS) * len(PLAN)
REQUESTS = len(TICKERS)  # a fault-free backfill: one request per ticker
LEASE_SECONDS = 900

Summaries = list[dict[str, Any]]


class World:
    """One bucket, one simulator, one scraper runtime; a fresh orchestrator per run (as per Lambda call)."""

    def __init__(self, store: ObjectStore, simulator: TiingoSimulator) -> None:
        self.store = store
        self.sim = simulator
        self.client = TiingoClient(TEST_TOKEN, base_url=simulator.base_url, sleep=lambda _: None, timeout=1.0)
        self.runtime = scraper.ScraperRuntime(store, self.client, clock=lambda: EVENING)
        self.now = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)

    def clock(self) -> datetime:
        return self.now

    def handle(self, event: dict[str, Any]) -> dict[str, Any]:
        return scraper.handle(event, self.runtime)

    def orchestrator(
        self,
        *,
        store: ObjectStore | None = None,
        invoke: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        **overrides: Any,
    ) -> Orchestrator:
        config: dict[str, Any] = {
            "start_date": START,
            "chunk_months": CHUNK_MONTHS,
            "request_budget": 200,
            "concurrency": 2,
            "lease_seconds": LEASE_SECONDS,
            "requests_per_hour": 0,
        }
        return Orchestrator(
            store or self.store,
            InProcessInvoker(invoke or self.handle),
            TiingoMetadataSource(lambda: self.client),
            BackfillSettings(**{**config, **overrides}),
            clock=self.clock,
            today=lambda: TODAY,
        )

    def run(self, tickers: list[str] | None = None, **kwargs: Any) -> dict[str, Any]:
        return self.orchestrator(**kwargs).run(tickers)

    def run_until_complete(self) -> Summaries:
        """The following scheduled runs, fault gone; a crashed run's leases expire in between."""
        summaries: Summaries = []
        for _ in range(30):
            summaries.append(self.run())
            if summaries[-1]["stopped"] == "complete":
                return summaries
            self.now += timedelta(seconds=LEASE_SECONDS + 1)
        raise AssertionError(f"the backfill never completed: {summaries[-1]}")


# ---------------------------------------------------------------- faults (the faulted phase)

Fault = Callable[[World], Summaries]


def no_fault(world: World) -> Summaries:
    return [world.run()]


def inject(fault: str, count: int = 1, *, ticker: str | None = None) -> Fault:
    """An HTTP fault from the simulator (the first requests are the tickers' whole-range requests)."""

    def run(world: World) -> Summaries:
        world.sim.inject(fault, count=count, ticker=ticker)
        return [world.run()]

    return run


def hourly_quota(requests: int) -> Fault:
    """The plan's hourly allocation runs out mid-run (Tiingo's 429 body, on every request after it)."""

    def run(world: World) -> Summaries:
        world.sim.quota = requests
        world.sim.quota_window = 1e9  # no hour boundary can refill the quota mid-test
        try:
            return [world.run()]
        finally:
            world.sim.quota = None  # the next hour

    return run


def token_revoked(world: World) -> Summaries:
    """Every request answers 401 until the token is fixed: the run must stop at once, not storm."""
    world.sim.token = "rotated-elsewhere"  # the simulator now rejects TEST_TOKEN
    try:
        return [world.run()]
    finally:
        world.sim.token = TEST_TOKEN


def crash_after_data_write(*, hard: bool) -> Fault:
    """The process dies after the scraper stored a chunk and before its progress is recorded.

    ``hard`` (kill -9): not even the leases are given back, so the ticker waits for lease expiry.
    """

    def run(world: World) -> Summaries:
        store = MortalStore(world.store)
        crashed: list[dict[str, Any]] = []

        def invoke(event: dict[str, Any]) -> dict[str, Any]:
            summary = world.handle(event)
            if event["tickers"] == ["NVDA"] and event["start_date"] == PLAN[1][0].isoformat():
                crashed.append(event)
                store.dead = hard
                raise Crash("died before the progress write")
            return summary

        with pytest.raises(Crash):  # one chunk per request: the crash lands between two of NVDA's chunks
            world.run(["NVDA"], store=store, invoke=invoke, concurrency=1, max_chunks_per_request=1)
        record = ProgressStore(world.store).load().get("NVDA")
        assert record is not None
        assert record.next_start == PLAN[1][0]  # progress is behind ...
        last_day = list(trading_days(*PLAN[1]))[-1]
        assert PriceStore(world.store).last_date("NVDA") == last_day  # ... the stored data
        assert (record.lease is not None) == hard
        after = world.run()  # the next run, before the lease expires
        assert ("NVDA" in after["leased_elsewhere"]) == hard
        return [after]

    return run


def overlapping_runs(world: World) -> Summaries:
    """Two schedules fire at once on one bucket, each running until it sees 'complete'."""
    world.sim.faults.latency = 0.01
    summaries: Summaries = []

    def loop() -> None:
        for _ in range(200):
            summary = world.run()
            summaries.append(summary)
            if summary["stopped"] == "complete":
                return
            threading.Event().wait(0.02)  # the other run holds the leases: poll, do not spin
        raise AssertionError("never completed")

    try:
        run_concurrently([loop, loop])
    finally:
        world.sim.faults.latency = 0.0
    assert sum(s["chunks_done"] for s in summaries) == CHUNKS  # no chunk recorded by both runs
    return summaries


def empty_twice(world: World) -> Summaries:
    """SPY answers [] twice: first Tiingo's metadata says it has prices there (a glitch), then, with that
    known, the second [] is a glitch for sure: the two-chunk request is split and redone later."""
    world.sim.inject("empty", ticker="SPY")
    orchestrator = world.orchestrator()

    def after(outcome: Any, _: Any) -> None:
        if outcome.work.kind == "metadata":
            world.sim.inject("empty", ticker="SPY")  # the next price request, not the lookup

    orchestrator.listener = after
    return [orchestrator.run()]


def bad_span(world: World) -> Summaries:
    """SPY's answers are unusable for any range holding one day of its second chunk, three times: the
    whole-range request fails and is split, the first chunk loads, the bad one is retried alone."""
    bad_day, failures = PLAN[1][0], []

    def invoke(event: dict[str, Any]) -> dict[str, Any]:
        summary = world.handle(event)
        start, end = date.fromisoformat(event["start_date"]), date.fromisoformat(event["end_date"])
        if event["tickers"] == ["SPY"] and start <= bad_day <= end and len(failures) < 3:
            failures.append((start, end))
            failed = {"error": "bad_payload", "message": "SPY: a row with a NaN close", "requests": 1}
            return {**summary, "succeeded": {}, "failed": {"SPY": failed}}
        return summary

    summaries = [world.run(invoke=invoke) for _ in range(3)]  # each failed request waits for a later run
    assert failures == [(START, TODAY), PLAN[1], PLAN[1]]  # whole range, then the bad chunk alone
    record = ProgressStore(world.store).load().get("SPY")
    assert record is not None
    assert (record.next_start, record.attempts, record.chunks_done) == (PLAN[1][0], 2, 1)
    return summaries


def duplicate_delivery(world: World) -> Summaries:
    """Every chunk event is delivered twice at the same moment (Lambda's at-least-once delivery)."""

    def twice(event: dict[str, Any]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        run_concurrently([lambda: results.append(world.handle(event))] * 2, timeout=30)
        assert len(results) == 2
        return results[0]

    return [world.run(invoke=twice)]


class RacingStore(DelegatingStore):
    """Holds the first ticker write until the rival run is about to write too (a forced 412)."""

    def __init__(self, inner: ObjectStore, barrier: threading.Barrier, conflicts: list[str]) -> None:
        super().__init__(inner)
        self.barrier = barrier
        self.conflicts = conflicts
        self.first = True

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        if key.startswith(TICKERS_PREFIX) and self.first:
            self.first = False
            self.barrier.wait()  # both runs read the ticker before either claims it
        try:
            return super().put(key, body, expected_version=expected_version, content_type=content_type)
        except PreconditionFailed:
            if key.startswith(TICKERS_PREFIX):
                self.conflicts.append(key)
            raise


def progress_race(world: World) -> Summaries:
    """Two runs claim the same ticker from the same version: one gets S3's 412, re-reads and moves on."""
    barrier = threading.Barrier(2, timeout=10)
    conflicts: list[str] = []
    summaries: Summaries = []
    run_concurrently(
        [lambda: summaries.append(world.run(store=RacingStore(world.store, barrier, conflicts)))] * 2
    )
    assert conflicts  # the race really happened
    return summaries
