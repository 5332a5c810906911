"""The request budget holds and is spent (issue 9): Lambda invokes are never retried by botocore, and a
run stops for budget only when less than one step's worst case is left, at any concurrency.

Over loopback HTTP: the Tiingo simulator, the real scraper, and a Lambda Invoke API stand-in that answers
HTTP 500 *after* the scraper ran (budget_figures.py, which also prints the before/after figures)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest

from stockpipe.backfill.invoker import NO_RETRIES, InvokeError, LambdaInvoker
from stockpipe.backfill.progress_store import ProgressStore
from tests.backfill.backfill_fakes import World
from tests.backfill.budget_figures import FlakyLambdaService, lambda_5xx_runs, spent_at

SUMMARY = {"mode": "range", "succeeded": {"AAPL": {"rows": 1}}, "failed": {}, "requests": 1}


@pytest.fixture
def lambda_service(monkeypatch: pytest.MonkeyPatch) -> Iterator[FlakyLambdaService]:
    """A Lambda service that runs the function and then always answers 500 (ServiceException)."""
    calls: list[dict[str, Any]] = []

    def function(event: dict[str, Any]) -> dict[str, Any]:
        calls.append(event)
        return SUMMARY

    service = FlakyLambdaService(function, succeed_every=10**9)
    monkeypatch.setenv("AWS_ENDPOINT_URL_LAMBDA", service.url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    yield service
    service.close()


@pytest.mark.parametrize(
    "env",
    [{}, {"AWS_MAX_ATTEMPTS": "10"}, {"AWS_MAX_ATTEMPTS": "10", "AWS_RETRY_MODE": "legacy"}],
    ids=["defaults", "max-attempts-env", "legacy-mode-env"],
)
def test_an_invoke_is_sent_once_whatever_the_environment(
    lambda_service: FlakyLambdaService, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> None:
    """A 5xx after the function ran is not retried (a retry would run the chunk again, uncounted)."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    invoker = LambdaInvoker("tiingo-price-scraper")  # its own boto3 client, as in the Lambda
    assert invoker.client.meta.config.retries == {"mode": "standard", "total_max_attempts": 1}
    with pytest.raises(InvokeError, match="ServiceException") as caught:
        invoker.invoke({"tickers": ["AAPL"], "start_date": "2024-01-02", "end_date": "2024-06-14"})
    assert caught.value.kind == "invoke"
    assert lambda_service.invocations == 1
    assert NO_RETRIES["total_max_attempts"] == 1


def test_reported_requests_cover_what_tiingo_received_under_lambda_5xx() -> None:
    """Budget 7, the Lambda service losing 2 answers of 3: Tiingo never gets more than the budget, and
    the run never reports less than Tiingo got (a lost answer is charged the step's worst case)."""
    figures = lambda_5xx_runs(runs=3, budget=7)
    for reported, received in figures:
        assert received <= reported <= 7, figures


@pytest.mark.parametrize("concurrency", [1, 2, 4])
def test_the_default_budget_is_spent_at_any_concurrency(concurrency: int) -> None:
    """Budget 40, 5 reserved per step, every step costs 1: the run stops with less than 5 left."""
    reported, received = spent_at(concurrency)
    assert reported == received == 36


def test_concurrent_steps_wait_for_in_flight_ones_instead_of_ending_the_run(world: World) -> None:
    world.scraper.delay = 0.01  # steps overlap
    summary = world.orchestrator(
        start_date=date(2000, 1, 1),
        request_budget=20,
        requests_per_step=5,
        concurrency=4,
        max_chunks_per_request=1,
    ).run(["AAPL"])
    assert summary["stopped"] == "budget"
    assert summary["requests"] == world.requests == 16  # stops only when less than 5 are left


def test_a_budget_below_one_step_still_allows_a_step(world: World) -> None:
    """Budget 3 < 5 reserved per step: the step's worst case is the whole budget, so one step runs."""
    summary = world.orchestrator(request_budget=3, requests_per_step=5, concurrency=4).run(["AAPL", "META"])
    assert summary["stopped"] == "budget"
    assert summary["requests"] == world.requests == 1


def test_a_throttled_invoke_stops_the_run_costs_nothing_and_never_counts(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Lambda's 429 (concurrency used up) means the scraper did not run: 0 requests, no attempt, no retry."""
    ran: list[dict[str, Any]] = []
    service = FlakyLambdaService(ran.append, throttle=True)
    for key, value in {
        "AWS_ENDPOINT_URL_LAMBDA": service.url,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    try:
        orchestrator = world.orchestrator(max_attempts=1, concurrency=1)
        orchestrator.invoker = LambdaInvoker("tiingo-price-scraper")
        for _ in range(3):
            summary = orchestrator.run(["NEWCO"])
            assert summary["stopped"] == "rate_limited"
            assert summary["errors"]["NEWCO"].startswith(
                "rate_limited: invoking tiingo-price-scraper was refused"
            )
            assert "ConcurrentInvocationLimitExceeded" in summary["errors"]["NEWCO"]
    finally:
        service.close()
    assert ran == []
    assert service.invocations == 3  # one per run: never retried
    assert summary["requests"] == 0
    record = ProgressStore(world.store).get("NEWCO")
    assert record is not None
    assert (record.attempts, record.parked, record.lease, record.requests) == (0, False, None, 0)
