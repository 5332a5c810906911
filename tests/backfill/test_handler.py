"""The Lambda handler end to end: boto3 lambda.invoke -> a loopback Lambda API running the real
scraper -> the Tiingo simulator over HTTP and the moto S3 server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import boto3
import pytest

import backfill_orchestrator
from stockpipe import scraper
from stockpipe.backfill.invoker import InvokeError, LambdaInvoker
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.objectstore import S3ObjectStore
from stockpipe.pricestore import PriceStore
from stockpipe.universe import save_universe
from tests.backfill.backfill_fakes import LambdaEmulator
from tests.conftest import TEST_TOKEN

FUNCTION = "tiingo-price-scraper-test"
START = date(2023, 7, 1)


class Context:
    """What the Lambda runtime passes: only the remaining time matters to the orchestrator."""

    def __init__(self, remaining_ms: int = 600_000) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_env(monkeypatch, moto_endpoint, bucket, s3_client, simulator) -> Iterator[LambdaEmulator]:
    env = {
        "DATA_BUCKET": bucket,
        "TIINGO_API_TOKEN": TEST_TOKEN,
        "TIINGO_BASE_URL": simulator.base_url,
        "TIINGO_REQUESTS_PER_HOUR": "0",
    }
    scraper_runtime = scraper.runtime_from_env(env, s3_client=s3_client)
    with LambdaEmulator(lambda event: scraper.handle(event, scraper_runtime), FUNCTION) as emulator:
        for key, value in {
            **env,
            "SCRAPER_FUNCTION_NAME": FUNCTION,
            "AWS_ENDPOINT_URL_LAMBDA": emulator.url,
            "BACKFILL_START_DATE": START.isoformat(),
            "BACKFILL_CHUNK_MONTHS": "6",
            "BACKFILL_REQUEST_BUDGET": "5",
            "BACKFILL_CONCURRENCY": "2",
        }.items():
            monkeypatch.setenv(key, value)
        backfill_orchestrator.runtime.cache_clear()
        yield emulator
    backfill_orchestrator.runtime.cache_clear()


def test_hourly_runs_backfill_the_universe_within_budget(
    lambda_env, bucket, s3_client, simulator, json_logs
) -> None:
    store = S3ObjectStore(bucket, s3_client)
    save_universe(store, ["AAPL", "XYZ", "META"])
    summaries: list[dict[str, Any]] = []
    for _ in range(20):
        before = simulator.count()
        summary = backfill_orchestrator.lambda_handler({}, Context())
        assert simulator.count() - before == summary["requests"] <= 5
        summaries.append(summary)
        if summary["stopped"] == "complete":
            break
    assert summaries[-1]["stopped"] == "complete"
    assert summaries[0]["stopped"] == "budget"
    assert summaries[-1]["parked"] == ["XYZ"]
    prices = PriceStore(store)
    for ticker in ("AAPL", "META"):
        expected = [row["date"][:10] for row in simulator.history(ticker, START, simulator.today)]
        got = [d.isoformat() for d in prices.read_ticker(ticker).column("date").to_pylist()]
        assert got == expected
    # every chunk went through the Lambda Invoke API, in order, one ticker each
    assert all(set(event) == {"tickers", "start_date", "end_date"} for event in lambda_env.invocations)
    aapl = [e for e in lambda_env.invocations if e["tickers"] == ["AAPL"]]
    assert aapl == [{"tickers": ["AAPL"], "start_date": START.isoformat(), "end_date": aapl[0]["end_date"]}]
    assert aapl[0]["end_date"] >= simulator.today.isoformat()  # the whole range at once, to the plan day
    status = backfill_orchestrator.lambda_handler({"action": "status"}, None)
    assert status["counts"] == {"done": 2, "in_progress": 0, "parked": 1, "pending": 0}
    assert status["tickers"]["XYZ"]["last_error"].startswith("not_found")
    logs = json_logs.getvalue()
    assert TEST_TOKEN not in logs
    assert TEST_TOKEN not in json.dumps([*summaries, status])
    # structured logs: one JSON object per line, the run summary carries EMF metrics
    finished = [json.loads(line) for line in logs.splitlines() if '"backfill run finished"' in line]
    assert finished
    assert finished[-1]["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "StockPipeline"


def test_stops_before_the_lambda_timeout(lambda_env, bucket, s3_client, simulator) -> None:
    save_universe(S3ObjectStore(bucket, s3_client), ["AAPL"])
    summary = backfill_orchestrator.lambda_handler({}, Context(remaining_ms=45_000))
    assert summary["stopped"] == "deadline"
    assert simulator.count() == 0
    assert lambda_env.invocations == []


def test_manual_events(lambda_env, bucket, s3_client, simulator) -> None:
    store = S3ObjectStore(bucket, s3_client)
    save_universe(store, ["AAPL", "XYZ"])
    backfill_orchestrator.lambda_handler({"tickers": ["XYZ"]}, Context())
    assert (
        backfill_orchestrator.lambda_handler({"action": "status"}, None)["tickers"]["XYZ"]["state"]
        == "parked"
    )
    retried = backfill_orchestrator.lambda_handler({"action": "retry", "tickers": ["XYZ"]}, None)
    assert retried == {"action": "retry", "tickers": ["XYZ"], "unknown": []}
    assert (
        backfill_orchestrator.lambda_handler({"action": "status"}, None)["tickers"]["XYZ"]["state"]
        == "pending"
    )
    reset = backfill_orchestrator.lambda_handler({"action": "reset", "tickers": ["XYZ", "AAPL"]}, None)
    assert reset == {"action": "reset", "tickers": ["XYZ"], "unknown": ["AAPL"]}
    assert ProgressStore(store).read("XYZ") == (None, 4)  # forgotten (claimed, parked, retried, reset)
    status = backfill_orchestrator.lambda_handler({"action": "status", "tickers": ["XYZ", "AAPL"]}, None)
    assert status["tickers"] == {
        "XYZ": {"state": "pending", "chunks_left": None},
        "AAPL": {"state": "pending", "chunks_left": None},
    }
    assert status["unknown"] == []  # both are in the universe


@pytest.mark.parametrize(
    "event",
    [{"action": "delete"}, {"action": "retry"}, {"tickers": "AAPL"}, {"tickers": ["AAPL"], "extra": 1}, [1]],
)
def test_malformed_events_change_nothing(lambda_env, bucket, s3_client, simulator, event: Any) -> None:
    store = S3ObjectStore(bucket, s3_client)
    with pytest.raises(ValueError, match=r"unknown|tickers|JSON object"):
        backfill_orchestrator.lambda_handler(event, Context())
    assert list(store.list_keys("backfill/")) == []
    assert simulator.count() == 0
    assert lambda_env.invocations == []


def test_lambda_invoker_reports_function_errors(lambda_env) -> None:
    invoker = LambdaInvoker(FUNCTION, boto3.client("lambda", endpoint_url=lambda_env.url))
    with pytest.raises(InvokeError, match="ValueError: unknown event key") as caught:
        invoker.invoke({"tickers": ["AAPL"], "start": "2024-01-01"})
    assert caught.value.kind == "invalid_event"
    missing = LambdaInvoker("no-such-function", boto3.client("lambda", endpoint_url=lambda_env.url))
    with pytest.raises(InvokeError, match="ResourceNotFoundException"):
        missing.invoke({})


def test_missing_configuration_is_named(monkeypatch) -> None:
    monkeypatch.delenv("DATA_BUCKET", raising=False)
    monkeypatch.delenv("DATA_DIR", raising=False)
    backfill_orchestrator.runtime.cache_clear()
    with pytest.raises(ValueError, match="DATA_BUCKET"):
        backfill_orchestrator.lambda_handler({"action": "status"}, None)
    backfill_orchestrator.runtime.cache_clear()
