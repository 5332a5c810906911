"""Fault-injection matrix, orchestrator part: each fault hits a full backfill of three tickers (the REAL
orchestrator invoking the REAL scraper in process, the Tiingo simulator over HTTP, a moto S3 bucket).

Per case: the faulted phase runs under the fault; its failure (if it could not be retried away) must be
reported by kind in the run summary and in progress.json's ``last_error``; then runs without the fault
go on until ``complete`` and the stored dataset must be exactly the simulator's history (nothing lost,
nothing duplicated). The token must never appear in logs, summaries or progress.json. Adding a fault is
one line in CASES (scenarios that need more than an injected HTTP fault are small functions above it).
Faults that take the same path as a case here (403 as 401, bandwidth as the monthly text, other non-list
200s as HTML, timeouts as 5xx) are covered per request in test_fault_matrix.py; each is one more line.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from backfill_fakes import STOPS_RUN, Crash, MortalStore

from stockpipe import scraper
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource
from stockpipe.backfill.plan import iter_chunks
from stockpipe.backfill.progress_store import PROGRESS_KEY, ProgressStore
from stockpipe.calendar import trading_days
from stockpipe.errors import PreconditionFailed
from stockpipe.objectstore import ObjectStore, S3ObjectStore, StoredObject
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import TiingoClient
from stockpipe.universe import save_universe
from stockpipe_local.simulator import TiingoSimulator
from tests.conftest import TEST_TOKEN

TICKERS = ("NVDA", "SPY", "TSLA")  # NVDA: a split and dividends in the window; SPY: dividends; TSLA: none
UNKNOWN = "XYZQ"  # the simulator answers 404
START = date(2023, 10, 1)  # two chunks per ticker; the first spans a year boundary
TODAY = date(2024, 6, 14)  # the simulator fixture's today
EVENING = datetime(2024, 6, 14, 23, 0, tzinfo=UTC)
CHUNK_MONTHS = 6
PLAN = list(iter_chunks(START, TODAY, CHUNK_MONTHS))  # each ticker's chunks
CHUNKS = len(TICKERS) * len(PLAN)
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

    def run(self, **kwargs: Any) -> dict[str, Any]:
        return self.orchestrator(**kwargs).run()

    def plan(self) -> dict[str, Any]:
        """Metadata lookups only (one request each), so a later injected fault hits a chunk."""
        tickers = len(self.orchestrator().status()["tickers"])
        return self.run(request_budget=tickers, requests_per_step=1)

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


def inject(fault: str, count: int = 1, *, ticker: str | None = None, chunk: bool = False) -> Fault:
    """An HTTP fault from the simulator; ``chunk``: plan first, so the fault hits a chunk, not metadata."""

    def run(world: World) -> Summaries:
        planned = [world.plan()] if chunk else []
        world.sim.inject(fault, count=count, ticker=ticker)
        return [*planned, world.run()]

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

        with pytest.raises(Crash):
            world.run(store=store, invoke=invoke, concurrency=1)
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
    errors: list[BaseException] = []
    barrier = threading.Barrier(2, timeout=10)

    def loop() -> None:
        try:
            barrier.wait()
            for _ in range(200):
                summary = world.run()
                summaries.append(summary)
                if summary["stopped"] == "complete":
                    return
                threading.Event().wait(0.02)  # the other run holds the leases: poll, do not spin
            raise AssertionError("never completed")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    world.sim.faults.latency = 0.0
    assert not errors, errors
    assert sum(s["chunks_done"] for s in summaries) == CHUNKS  # no chunk recorded by both runs
    return summaries


def duplicate_delivery(world: World) -> Summaries:
    """Every chunk event is delivered twice at the same moment (Lambda's at-least-once delivery)."""

    def twice(event: dict[str, Any]) -> dict[str, Any]:
        results: list[dict[str, Any]] = []
        barrier = threading.Barrier(2, timeout=10)

        def deliver() -> None:
            barrier.wait()
            results.append(world.handle(event))

        threads = [threading.Thread(target=deliver) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert len(results) == 2
        return results[0]

    return [world.run(invoke=twice)]


class RacingStore:
    """Holds the first progress.json write until the rival run is about to write too (a forced 412)."""

    def __init__(self, inner: ObjectStore, barrier: threading.Barrier, conflicts: list[str]) -> None:
        self.inner = inner
        self.barrier = barrier
        self.conflicts = conflicts
        self.first = True

    def get(self, key: str) -> StoredObject | None:
        return self.inner.get(key)

    def put(
        self,
        key: str,
        body: bytes,
        *,
        expected_version: str | None,
        content_type: str = "application/octet-stream",
    ) -> str:
        if key == PROGRESS_KEY and self.first:
            self.first = False
            self.barrier.wait()  # both runs read the same version before either writes
        try:
            return self.inner.put(key, body, expected_version=expected_version, content_type=content_type)
        except PreconditionFailed:
            if key == PROGRESS_KEY:
                self.conflicts.append(key)
            raise

    def list_keys(self, prefix: str) -> Iterator[str]:
        return self.inner.list_keys(prefix)

    def describe(self, key: str) -> str:
        return self.inner.describe(key)


def progress_race(world: World) -> Summaries:
    """Two runs write progress.json with the same expected version: one gets S3's 412 and merges."""
    barrier = threading.Barrier(2, timeout=10)
    conflicts: list[str] = []
    summaries: Summaries = []
    errors: list[BaseException] = []

    def one_run() -> None:
        try:
            summaries.append(world.run(store=RacingStore(world.store, barrier, conflicts)))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=one_run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    assert conflicts  # the race really happened
    return summaries


# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Case:
    id: str
    fault: Fault
    stopped: str | None = None  # 'stopped' of the faulted phase's last run (None: not checked)
    error: str | None = None  # kind reported in the summary and last_error (None: retried away)
    parked: tuple[str, ...] = ()  # tickers parked for good (all others end complete)
    max_requests: int | None = None  # requests the faulted phase may send (fails fast, no storm)
    fetches: int | None = None  # price requests over the whole test (chunks fetched exactly so often)
    universe: tuple[str, ...] = TICKERS
    accounted: bool = True  # the summaries' 'requests' equal the requests the simulator saw


# The run stops at once, nothing is parked; the next hour's run carries on.
QUOTA: dict[str, Any] = {"stopped": "rate_limited", "error": "rate_limited"}
# Never retried within the run (no storm on a broken answer); the chunk is redone by a later run.
BAD_BODY: dict[str, Any] = {"stopped": "no_work", "error": "bad_payload"}

CASES = [
    Case("crash-after-data-write", crash_after_data_write(hard=False), fetches=CHUNKS + 1, accounted=False),
    Case("kill-after-data-write", crash_after_data_write(hard=True), fetches=CHUNKS + 1, accounted=False),
    Case("overlapping-runs", overlapping_runs, stopped="complete", fetches=CHUNKS),
    Case("progress-412-race", progress_race, fetches=CHUNKS),
    Case("duplicate-delivery", duplicate_delivery, stopped="complete", fetches=2 * CHUNKS, accounted=False),
    Case("500-burst", inject("500", 3), stopped="complete"),
    Case("503-burst-on-chunk", inject("503", 4, ticker="SPY", chunk=True), stopped="complete"),
    Case("500-beyond-retries", inject("500", 5, ticker="SPY", chunk=True), stopped="no_work", error="server"),
    Case("429-burst", inject("429", 3), stopped="complete"),
    Case("429-beyond-retries", inject("429", 5, ticker="SPY"), **QUOTA),
    Case("hourly-quota", hourly_quota(5), **QUOTA, max_requests=15),  # 5 + two steps' 5 attempts each
    Case("monthly-limit-200", inject("monthly_limit"), **QUOTA, max_requests=2),
    Case("404-ticker", no_fault, stopped="complete", error="not_found", parked=(UNKNOWN,), fetches=CHUNKS,
         universe=(*TICKERS, UNKNOWN)),
    Case("401-token-revoked", token_revoked, stopped="auth", error="auth", max_requests=2),
    Case("truncated-json", inject("truncated", ticker="SPY", chunk=True), **BAD_BODY),
    Case("html-200", inject("html", ticker="SPY", chunk=True), **BAD_BODY),
    Case("connection-resets", inject("reset", 2), stopped="complete"),
    # [] for a chunk with trading days is a glitch: the chunk is redone by a later run, never marked done.
    Case("empty-200-on-chunk", inject("empty", ticker="SPY", chunk=True), stopped="no_work", error="empty"),
]  # fmt: skip


@pytest.fixture
def world(simulator: TiingoSimulator, bucket: str, s3_client: Any) -> Iterator[World]:
    world = World(S3ObjectStore(bucket, s3_client), simulator)
    yield world
    world.client.close()


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_backfill_under_fault(case: Case, world: World, capsys: pytest.CaptureFixture[str]) -> None:
    sim = world.sim
    save_universe(world.store, list(case.universe))
    before = sim.count()
    faulted = case.fault(world)
    spent = sim.count() - before
    progress = ProgressStore(world.store).load()

    if case.max_requests is not None:
        assert spent <= case.max_requests
    if case.accounted:
        assert sum(s["requests"] for s in faulted) == spent
    if case.stopped is not None:
        assert faulted[-1]["stopped"] == case.stopped
    errors = {t: e for s in faulted for t, e in s["errors"].items()}
    if case.error is None:
        assert errors == {}
    else:
        assert errors, "the failure must be reported in the run summary"
        for ticker, error in errors.items():
            assert error.startswith(f"{case.error}: "), error
            assert ticker in error  # the message names what failed
            record = progress.get(ticker)
            assert record is not None
            assert record.last_error is not None
            assert record.last_error.startswith(f"{case.error}: ")
            if case.error in STOPS_RUN:
                assert record.attempts == 0  # quota and auth are not the ticker's fault
    assert {t for s in faulted for t in s["parked"]} <= set(case.parked)

    recovery = world.run_until_complete()
    final = recovery[-1]
    known = [t for t in case.universe if t not in case.parked]
    assert final["parked"] == sorted(case.parked)
    assert final["done"] == sorted(known)
    progress = ProgressStore(world.store).load()
    for ticker in known:
        record = progress.get(ticker)
        assert record is not None
        assert (record.done, record.last_error, record.attempts, record.lease) == (True, None, 0, None)
    for ticker in case.parked:
        record = progress.get(ticker)
        assert record is not None
        assert record.last_error is not None
        assert record.last_error.startswith("not_found: ")
        assert sim.count(ticker=ticker) == 1  # one metadata request, never retried
    if case.fetches is not None:
        assert sim.count(kind="prices") == case.fetches

    prices = PriceStore(world.store)
    for ticker in known:
        truth = rows_to_table(sim.history(ticker, START, TODAY))
        assert truth.num_rows == len(list(trading_days(START, TODAY)))
        assert prices.read_ticker(ticker).equals(truth), ticker  # identical rows, none lost or doubled
    for ticker in case.parked:
        assert prices.read_ticker(ticker).num_rows == 0

    captured = capsys.readouterr()
    stored_progress = world.store.get(PROGRESS_KEY)
    assert stored_progress is not None
    for text in (
        captured.out,
        captured.err,
        json.dumps([*faulted, *recovery]),
        stored_progress.body.decode(),
    ):
        assert TEST_TOKEN not in text
