"""Fault-injection matrix, orchestrator part: each fault hits a full backfill of three tickers (the REAL
orchestrator invoking the REAL scraper in process, the Tiingo simulator over HTTP, a moto S3 bucket).

Per case: the faulted phase runs under the fault; its failure must be reported by kind in the run summary
and (unless the run already recovered from it) in the ticker's ``last_error``; then runs without the
fault go on until ``complete`` and the stored dataset must be exactly the simulator's history (nothing
lost, nothing duplicated). The token must never appear in logs, summaries or progress objects. Each
ticker's history is asked for in one request (two six-month chunks); a failed request is split, an
empty one makes Tiingo's metadata decide. Adding a fault is one line in CASES (scenarios that need more
than an injected HTTP fault are small functions in fault_scenarios.py).
Faults that take the same path as a case here (403 as 401, bandwidth as the monthly text, other non-list
200s as HTML, timeouts as 5xx) are covered per request in test_fault_matrix.py; each is one more line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.calendar import trading_days
from stockpipe.objectstore import S3ObjectStore
from stockpipe.prices import rows_to_table
from stockpipe.pricestore import PriceStore
from stockpipe.universe import save_universe
from stockpipe_local.simulator import TiingoSimulator
from tests.backfill.backfill_fakes import STOPS_RUN
from tests.backfill.fault_scenarios import (
    REQUESTS,
    START,
    TICKERS,
    TODAY,
    UNKNOWN,
    Fault,
    World,
    bad_span,
    crash_after_data_write,
    duplicate_delivery,
    empty_twice,
    hourly_quota,
    inject,
    no_fault,
    overlapping_runs,
    progress_race,
    token_revoked,
)
from tests.conftest import TEST_TOKEN

# ---------------------------------------------------------------- the matrix


@dataclass(frozen=True)
class Case:
    id: str
    fault: Fault
    stopped: str | None = None  # 'stopped' of the faulted phase's last run (None: not checked)
    error: str | None = None  # kind reported in the summary and last_error (None: retried away)
    parked: tuple[str, ...] = ()  # tickers parked for good (all others end complete)
    max_requests: int | None = None  # requests the faulted phase may send (fails fast, no storm)
    recorded: bool = True  # the failure is still in last_error after the faulted phase
    fetches: int | None = None  # price requests over the whole test (chunks fetched exactly so often)
    universe: tuple[str, ...] = TICKERS
    accounted: bool = True  # the summaries' 'requests' equal the requests the simulator saw


# The run stops at once, nothing is parked; the next hour's run carries on.
QUOTA: dict[str, Any] = {"stopped": "rate_limited", "error": "rate_limited"}
# Never retried within the run (no storm on a broken answer); the chunk is redone by a later run.
BAD_BODY: dict[str, Any] = {"stopped": "no_work", "error": "bad_payload"}

CASES = [
    Case("no-fault", no_fault, stopped="complete", fetches=REQUESTS),
    Case("crash-after-data-write", crash_after_data_write(hard=False), fetches=REQUESTS + 2, accounted=False),
    Case("kill-after-data-write", crash_after_data_write(hard=True), fetches=REQUESTS + 2, accounted=False),
    Case("overlapping-runs", overlapping_runs, stopped="complete", fetches=REQUESTS),
    Case("progress-412-race", progress_race, fetches=REQUESTS),
    Case("duplicate-delivery", duplicate_delivery, stopped="complete", fetches=2 * REQUESTS, accounted=False),
    Case("500-burst", inject("500", 3), stopped="complete"),
    Case("503-burst", inject("503", 4, ticker="SPY"), stopped="complete"),
    # a failed request of two chunks is split: the next ones ask for one chunk each (not an attempt)
    Case("500-beyond-retries", inject("500", 5, ticker="SPY"), stopped="no_work", error="server"),
    Case("429-burst", inject("429", 3), stopped="complete"),
    Case("429-beyond-retries", inject("429", 5, ticker="SPY"), **QUOTA),
    Case("hourly-quota", hourly_quota(2), **QUOTA, max_requests=12),  # 2 + two steps' 5 attempts each
    Case("monthly-limit-200", inject("monthly_limit"), **QUOTA, max_requests=2),
    Case("404-ticker", no_fault, stopped="complete", error="not_found", parked=(UNKNOWN,),
         fetches=REQUESTS + 1, universe=(*TICKERS, UNKNOWN)),
    Case("401-token-revoked", token_revoked, stopped="auth", error="auth", max_requests=2),
    Case("truncated-json", inject("truncated", ticker="SPY"), **BAD_BODY),
    Case("html-200", inject("html", ticker="SPY"), **BAD_BODY),
    Case("connection-resets", inject("reset", 2), stopped="complete"),
    # [] for trading days: Tiingo's metadata says SPY has prices there: a glitch, asked again at once
    Case("empty-200", inject("empty", ticker="SPY"), stopped="complete", error="empty", recorded=False,
         fetches=REQUESTS + 1),
    # twice: with the metadata read it is a glitch for sure; the two-chunk request is split, redone later
    Case("empty-200-twice", empty_twice, stopped="no_work", error="empty",
         fetches=REQUESTS + 3),
    # one bad six-month span never blocks the rest of the ticker's history
    Case("bad-span-isolated", bad_span, error="bad_payload", fetches=REQUESTS + 4),
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
            if case.recorded:
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
        assert sim.count(ticker=ticker) == 1  # one request, never retried
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
    stored = [world.store.get(key) for key in world.store.list_keys("backfill/")]
    assert stored
    for text in (
        captured.out,
        captured.err,
        json.dumps([*faulted, *recovery]),
        *(item.body.decode() for item in stored if item is not None),
    ):
        assert TEST_TOKEN not in text
