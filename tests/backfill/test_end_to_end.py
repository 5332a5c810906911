"""The orchestrator driving the real scraper (stockpipe.scraper) against the Tiingo simulator over HTTP,
on the moto S3 server or a local directory."""

from __future__ import annotations

from datetime import date
from typing import Any

import duckdb
import pytest

from stockpipe import scraper
from stockpipe.backfill import progress as prog
from stockpipe.backfill.invoker import InProcessInvoker
from stockpipe.backfill.orchestrator import BackfillSettings, Orchestrator, TiingoMetadataSource
from stockpipe.backfill.progress_store import ProgressStore
from stockpipe.objectstore import LocalObjectStore, ObjectStore, S3ObjectStore
from stockpipe.pricestore import PriceStore
from stockpipe.tiingo import TiingoClient
from tests.backfill.backfill_fakes import Crash
from tests.conftest import TEST_TOKEN
from tests.threads import run_concurrently

START = date(2023, 7, 1)
TICKERS = ["AAPL", "META", "XYZ", "BRK-B"]
KNOWN = ["AAPL", "META", "BRK-B"]


def make_orchestrator(
    store: ObjectStore, simulator: Any, invoke: Any = None, **settings: Any
) -> Orchestrator:
    client = TiingoClient(TEST_TOKEN, base_url=simulator.base_url, sleep=lambda _: None)
    runtime = scraper.ScraperRuntime(store, client)
    handler = invoke(runtime) if invoke else (lambda event: scraper.handle(event, runtime))
    defaults: dict[str, Any] = {"start_date": START, "request_budget": 1000, "requests_per_hour": 0}
    return Orchestrator(
        store,
        InProcessInvoker(handler),
        TiingoMetadataSource(lambda: client),
        BackfillSettings(**{**defaults, **settings}),
        today=lambda: simulator.today,
    )


def run_until_complete(store: ObjectStore, simulator: Any, **settings: Any) -> list[dict[str, Any]]:
    summaries = []
    for _ in range(60):
        summaries.append(make_orchestrator(store, simulator, **settings).run(TICKERS))
        if summaries[-1]["stopped"] == "complete":
            return summaries
    raise AssertionError(f"never completed: {summaries[-1]}")


def expected_chunks() -> int:
    return sum(prog.count_chunks(START, date(2024, 6, 14), 6) for _ in KNOWN)


def assert_equals_simulator(store: ObjectStore, simulator: Any) -> None:
    prices = PriceStore(store)
    for ticker in KNOWN:
        rows = simulator.history(ticker, START, simulator.today)
        table = prices.read_ticker(ticker)
        assert [d.isoformat() for d in table.column("date").to_pylist()] == [r["date"][:10] for r in rows]
        assert table.column("adj_close").to_pylist() == [r["adjClose"] for r in rows]
        assert table.column("volume").to_pylist() == [r["volume"] for r in rows]


def test_full_backfill_is_exactly_the_simulators_history(tmp_path, simulator) -> None:
    store = LocalObjectStore(tmp_path)
    summaries = run_until_complete(store, simulator, concurrency=3)
    assert len(summaries) == 1
    assert summaries[0]["parked"] == ["XYZ"]
    assert simulator.count(kind="metadata") == 0  # the whole range in one request per ticker
    assert simulator.count(kind="prices") == len(TICKERS)
    assert summaries[0]["chunks_done"] == expected_chunks()
    assert summaries[0]["requests"] == simulator.count()
    got = duckdb.sql(
        f"SELECT ticker, date, close, adj_close FROM read_parquet('{tmp_path}/prices/daily/*/*/*.parquet', "
        "hive_partitioning=true) ORDER BY ticker, date"
    ).fetchall()
    expected = sorted(
        (t, date.fromisoformat(r["date"][:10]), r["close"], r["adjClose"])
        for t in KNOWN
        for r in simulator.history(t, START, simulator.today)
    )
    assert got == expected  # every trading day once: no gaps, no duplicates, same values
    again = make_orchestrator(store, simulator).run(TICKERS)
    assert again["requests"] == 0
    assert again["stopped"] == "complete"


def test_budget_is_never_exceeded_even_with_retries(bucket, s3_client, simulator) -> None:
    store = S3ObjectStore(bucket, s3_client)
    simulator.inject("500", 3)  # the scraper's client retries; the retries count against the budget
    budget = 12
    for _ in range(30):
        before = simulator.count()
        # 5 = 1 + the client's 4 retries: the worst case a step can cost, so the budget is strict
        summary = make_orchestrator(
            store, simulator, request_budget=budget, requests_per_step=5, max_chunks_per_request=1
        ).run(TICKERS)
        spent = simulator.count() - before
        assert spent == summary["requests"] <= budget
        if summary["stopped"] == "complete":
            break
    assert summary["stopped"] == "complete"
    assert simulator.count(status=500) == 3
    assert_equals_simulator(store, simulator)


def test_crash_after_data_write_then_next_run_completes(bucket, s3_client, simulator) -> None:
    store = S3ObjectStore(bucket, s3_client)
    crashed: list[dict[str, Any]] = []

    def crash_once_after_write(runtime: Any) -> Any:
        def handle(event: dict[str, Any]) -> dict[str, Any]:
            summary = scraper.handle(event, runtime)  # the chunk's data is now stored...
            if event["tickers"] == ["META"] and event["start_date"] == "2024-01-01" and not crashed:
                crashed.append(event)
                raise Crash  # ... and the process dies before progress is saved
            return summary

        return handle

    with pytest.raises(Crash):
        make_orchestrator(
            store, simulator, crash_once_after_write, concurrency=1, max_chunks_per_request=1
        ).run(TICKERS)
    assert PriceStore(store).last_date("META") == date(2024, 6, 14)
    assert ProgressStore(store).get("META").next_start == date(2024, 1, 1)  # type: ignore[union-attr]
    run_until_complete(store, simulator, max_chunks_per_request=1)
    assert simulator.count(kind="prices", ticker="META") == prog.count_chunks(START, simulator.today, 6) + 1
    assert_equals_simulator(store, simulator)


def test_two_overlapping_runs_on_one_bucket(bucket, s3_client, simulator) -> None:
    simulator.faults.latency = 0.01
    store = S3ObjectStore(bucket, s3_client)
    summaries: list[dict[str, Any]] = []
    run_concurrently(
        [
            lambda: summaries.extend(
                run_until_complete(store, simulator, concurrency=2, max_chunks_per_request=1)
            )
            for _ in range(2)
        ]
    )
    assert simulator.count(kind="prices") == expected_chunks() + 1  # no chunk by both runs (+1: XYZ's 404)
    assert simulator.count(kind="metadata") == 0
    assert sum(s["chunks_done"] for s in summaries) == expected_chunks()
    assert_equals_simulator(store, simulator)
